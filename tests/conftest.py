"""Shared fixtures. Fixtures are grouped by area; keep them small and session-scoped."""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest

DEFAULT_TEST_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """URL of the real PostgreSQL server; in CI an unreachable server fails the test instead of skipping."""
    import psycopg

    url = os.environ.get("CRM_TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {url} is unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL at {url} is unreachable (set CRM_TEST_POSTGRES_URL): {exc}")
    return url


@pytest.fixture
def postgres_url(postgres_server_url: str):
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    import psycopg

    schema = f"crm_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in postgres_server_url else "?"
    yield f"{postgres_server_url}{sep}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# --- dbt: the generated source files read back independently with polars --------------------------


def _typed_text_frame(entity, frame):
    """Cast a frame of text columns to the contract types (the same rules as the import contract)."""
    import polars as pl

    exprs = []
    for column in entity.columns:
        text = pl.col(column.name).cast(pl.String).str.strip_chars()
        text = pl.when(text == "").then(None).otherwise(text)
        if column.type == "integer":
            expr = text.cast(pl.Float64).cast(pl.Int64)
        elif column.type == "decimal":
            expr = text.cast(pl.Float64)
        elif column.type == "boolean":
            expr = text.str.to_lowercase().replace_strict(
                {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False},
                default=None, return_dtype=pl.Boolean)
        elif column.type == "date":
            expr = text.str.slice(0, 10).str.to_date("%Y-%m-%d")
        elif column.type == "timestamp":
            expr = text.str.replace("T", " ").str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us")
        else:
            expr = text
        exprs.append(expr.alias(column.name))
    return frame.select(exprs)


def read_generated_entity(home, entity_name: str):
    """One contract entity as the generator wrote it (landing files and/or the SQLite store), typed, one row
    per primary key (the latest `updated_at` wins, as the contract says). Independent of ingestion and dbt."""
    import sqlite3

    import polars as pl

    from pipelines.contract import load_contract

    entity = load_contract().entity(entity_name)
    names = [c.name for c in entity.columns]
    parts = []
    if "store" in entity.source and home.operational_db.exists():
        with sqlite3.connect(home.operational_db) as conn:
            # identifiers come from the contract, never from user input
            cursor = conn.execute(f"select {', '.join(names)} from {entity_name}")  # noqa: S608
            rows = cursor.fetchall()
        parts.append(pl.DataFrame(
            {name: [None if r[i] is None else str(r[i]) for r in rows] for i, name in enumerate(names)},
            schema={name: pl.String for name in names}))
    folder = home.landing / entity_name
    if "landing" in entity.source and folder.exists():
        for path in sorted(folder.iterdir()):
            suffix = path.suffix.lower()
            if suffix == ".csv":
                frame = pl.read_csv(path, infer_schema=False)
            elif suffix in (".jsonl", ".ndjson", ".json"):
                frame = pl.read_ndjson(path, infer_schema_length=None)
            elif suffix == ".parquet":
                frame = pl.read_parquet(path)
            else:
                continue
            frame = frame.select([
                (pl.col(n).cast(pl.String) if n in frame.columns else pl.lit(None, dtype=pl.String)).alias(n)
                for n in names])
            parts.append(frame)
    typed = _typed_text_frame(entity, pl.concat(parts, how="vertical"))
    return (typed.sort([entity.primary_key, entity.updated_at], nulls_last=False)
            .unique(subset=[entity.primary_key], keep="last", maintain_order=True))


@pytest.fixture(scope="session")
def generated(built_home):
    """`generated("opportunities")`: an entity read back from the built home's generated files (cached)."""
    cache: dict = {}

    def read(entity_name: str):
        if entity_name not in cache:
            cache[entity_name] = read_generated_entity(built_home, entity_name)
        return cache[entity_name]

    return read


@pytest.fixture(scope="session")
def marts(built_home):
    """`marts("select ... where x = ?", [value])`: a polars frame from the built warehouse (read-only)."""
    import duckdb

    def query(sql: str, params: list | None = None):
        with duckdb.connect(str(built_home.warehouse), read_only=True) as con:
            return con.sql(sql, params=params).pl()

    return query


# --- dbt: one generated, ingested and dbt-built home shared by the dbt tests ---------------------

BUILT_HOME_CUSTOMERS = 600
BUILT_HOME_SEED = 20261031


def build_home(root, customers: int, seed: int, dirty: float = 0.0):
    """Generate a demo home into `root`, ingest it and `dbt build` it; returns (CrmHome, dbt exit code, log).

    The plain path (no Dagster) so dbt failures show dbt's own output; the Dagster wiring has its own test.
    """
    import subprocess
    import sys
    from pathlib import Path

    from pipelines.generate.run import generate_home
    from pipelines.lib.home import CrmHome
    from pipelines.lib.ingest import ingest_all

    home = CrmHome(Path(root)).ensure()
    generate_home(home, customers=customers, seed=seed, dirty=dirty, years=3.0, console=None)
    ingest_all(home)
    dbt = Path(sys.executable).with_name("dbt")
    project = Path(__file__).resolve().parents[1] / "dbt_project"
    result = subprocess.run(
        [str(dbt), "build", "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(home.root / "dbt_target"), "--log-path", str(home.logs)],
        env={**os.environ, "CRM_WAREHOUSE": str(home.warehouse)},
        capture_output=True, text=True, check=False,
    )
    return home, result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="session")
def built_home(tmp_path_factory):
    """A CrmHome with ~600 generated customers (fixed seed), ingested and built by dbt (clean data).

    Read its warehouse read-only (`marts` fixture); its generated files are the independent truth.
    """
    home, code, log = build_home(tmp_path_factory.mktemp("built_home"), BUILT_HOME_CUSTOMERS, BUILT_HOME_SEED)
    if code != 0:
        pytest.fail("dbt build failed on the built_home fixture:\n" + log[-6000:])
    return home


# --- portal engineer: a built home with a published snapshot and one sign-in per role ----------------------

PORTAL_PASSWORD = "portal-test-pw"


PAST_FORECAST_MONTHS = 3


def score_portal_home(home) -> None:
    """Train and score every model on the home's marts (the scores pages read them), and add the current
    forecast as if it had also been made PAST_FORECAST_MONTHS earlier, so forecast accuracy has history
    to show (scored by the ML code's own `score_past_forecasts`)."""
    import duckdb

    from models.jobs import score_models, score_past_forecasts

    with duckdb.connect(str(home.warehouse)) as con:
        score_models(home, con)
        con.execute(f"""
            insert into scores.forecast_history by name
            select * replace (
                cast(origin_month - interval {PAST_FORECAST_MONTHS} month as date) as origin_month,
                cast(month_start - interval {PAST_FORECAST_MONTHS} month as date) as month_start,
                forecast_made_at - interval {PAST_FORECAST_MONTHS} month as forecast_made_at)
            from scores.forecast_history""")
        score_past_forecasts(con)


@pytest.fixture(scope="session")
def portal_home(request, tmp_path_factory):
    """A copy of `built_home` (its own store: portal tests write to it), published as a snapshot, with the
    sign-ins admin, manager, rep, rep2 and analyst (password PORTAL_PASSWORD).

    CRM_TEST_PORTAL_HOME=<a home you already built and published> skips the build while iterating.
    """
    import shutil
    from pathlib import Path

    from pipelines.lib.home import CrmHome
    from pipelines.lib.portal_users import PortalUsers
    from pipelines.lib.snapshot import current_snapshot_path, publish
    from pipelines.lib.store import OperationalStore

    source = os.environ.get("CRM_TEST_PORTAL_HOME")
    source_root = Path(source) if source else request.getfixturevalue("built_home").root
    home = CrmHome(tmp_path_factory.mktemp("portal_home") / "home")
    shutil.copytree(source_root, home.root, ignore=shutil.ignore_patterns("*.wal", "dbt_target", "dagster"))
    home.ensure()
    if current_snapshot_path(home) is None:
        score_portal_home(home)
        publish(home)
    store = OperationalStore(home.operational_db_url)
    store.migrate()
    with store.engine.connect() as conn:
        reps = conn.exec_driver_sql(
            "SELECT u.user_id, u.team_id FROM users u JOIN accounts a ON a.owner_user_id = u.user_id "
            "WHERE u.role = 'sales_rep' GROUP BY u.user_id, u.team_id ORDER BY count(*) DESC, u.user_id").fetchall()
    users = PortalUsers(store)
    users.add("admin", PORTAL_PASSWORD, "admin")
    users.add("analyst", PORTAL_PASSWORD, "analyst")
    users.add("manager", PORTAL_PASSWORD, "manager", team_id=reps[0][1])
    users.add("rep", PORTAL_PASSWORD, "sales_rep", user_id=reps[0][0])
    other = next(r for r in reps if r[1] != reps[0][1])
    users.add("rep2", PORTAL_PASSWORD, "sales_rep", user_id=other[0])
    store.dispose()
    return home


# --- models: a larger built home for the model backtests (models/) ---------------------------

ML_HOME_CUSTOMERS = 4_000
ML_HOME_SEED = 20260505
#: the dbt models the ML code reads, with everything upstream of them
ML_DBT_SELECTION = "+path:models/marts/ml +fct_opportunities +fct_deal_stages"


@pytest.fixture(scope="session")
def ml_home(tmp_path_factory):
    """A CrmHome with 4,000 generated customers, ingested, and the ML feature marts built by `dbt run`.

    Churn, win-probability and next-product backtests need more customers and deals than `built_home`
    holds; only the marts the models read are built, which keeps this to about half a minute.
    Treat it as read-only; tests that write scores work on a copy (`ml_home_copy`).
    """
    import subprocess
    import sys
    from pathlib import Path

    from pipelines.generate.run import generate_home
    from pipelines.lib.home import CrmHome
    from pipelines.lib.ingest import ingest_all

    home = CrmHome(tmp_path_factory.mktemp("ml_home") / "home").ensure()
    generate_home(home, customers=ML_HOME_CUSTOMERS, seed=ML_HOME_SEED, dirty=0.0, years=3.0, console=None)
    ingest_all(home)
    project = Path(__file__).resolve().parents[1] / "dbt_project"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "run", "--project-dir", str(project), "--profiles-dir",
         str(project), "--target-path", str(home.root / "dbt_target"), "--log-path", str(home.logs),
         "--select", ML_DBT_SELECTION],
        env={**os.environ, "CRM_WAREHOUSE": str(home.warehouse)}, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail("dbt run of the ML marts failed:\n" + (result.stdout + result.stderr)[-6000:])
    return home


@pytest.fixture(scope="session")
def ml_marts(ml_home):
    """The five marts the models read, loaded once (models.jobs.MartInputs)."""
    import duckdb

    from models.jobs import MartInputs

    with duckdb.connect(str(ml_home.warehouse), read_only=True) as con:
        return MartInputs.read(con)


@pytest.fixture
def ml_home_copy(ml_home, tmp_path):
    """A writable copy of `ml_home` (warehouse and ground truth) for tests that train, score or publish."""
    import shutil

    from pipelines.lib.home import CrmHome

    home = CrmHome(tmp_path / "home").ensure()
    shutil.copy2(ml_home.warehouse, home.warehouse)
    return home


@pytest.fixture
def cli_output(monkeypatch):
    """What the `crm` command's console prints, as one line of words (the console wraps long lines).

    The console is bound to the stdout of the moment `pipelines.cli` was first imported (so that `crm run`
    can redirect sys.stdout to its log), which in a whole-suite run is some earlier test's capture, not
    this test's `capsys`: the fixture points it at a buffer of its own instead."""
    import io

    from pipelines import cli

    buffer = io.StringIO()
    monkeypatch.setattr(cli.console, "file", buffer)

    def read() -> str:
        said = " ".join(buffer.getvalue().split())
        buffer.seek(0)
        buffer.truncate()
        return said

    return read


def portal_store_copy(portal_home, folder):
    """A private copy of the portal home's operational store, with the environment pointing the portal at
    it (CRM_HOME, CRM_OPERATIONAL_DB_URL): for tests that write sign-ins, lockouts and records without
    touching the shared home. A generator: use it as the body of a module-scoped fixture."""
    import sqlite3

    from pipelines.lib.store import OperationalStore

    copy = folder / "operational.db"
    with sqlite3.connect(portal_home.operational_db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    url = f"sqlite:///{copy}"
    mp = pytest.MonkeyPatch()
    mp.setenv("CRM_HOME", str(portal_home.root))
    mp.setenv("CRM_OPERATIONAL_DB_URL", url)
    store = OperationalStore(url)
    store.migrate()
    try:
        yield store
    finally:
        store.dispose()
        mp.undo()
