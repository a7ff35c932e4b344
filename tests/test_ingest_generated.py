"""Ingestion against the demo generator: quarantine equals the fault manifest, nothing clean is lost."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from test_ingest import table_fingerprints

from pipelines.contract import load_contract
from pipelines.lib.home import CrmHome
from pipelines.lib.ingest import ingest_all, reconcile
from pipelines.lib.store import OperationalStore


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> CrmHome:
    from rich.console import Console

    from pipelines.generate.run import generate_home

    home = CrmHome(tmp_path_factory.mktemp("gen") / "home")
    generate_home(home, customers=250, seed=11, dirty=0.01, console=Console(quiet=True))
    return home


@pytest.fixture
def home(generated: CrmHome, tmp_path: Path) -> CrmHome:
    target = tmp_path / "home"
    shutil.copytree(generated.root, target)
    return CrmHome(target)


def _manifest(home: CrmHome) -> set[tuple]:
    frame = pl.read_csv(home.ground_truth / "dirty_rows.csv", infer_schema=False)
    return {(e, f, int(n), r) for e, f, n, r in frame.select("entity", "file", "line", "reason").iter_rows()}


def _file_ids(path: Path, pk: str) -> dict[int, str]:
    """line -> primary key of every row of a landing file, read independently of the ingest readers."""
    if path.suffix == ".parquet":
        ids = pl.read_parquet(path, columns=[pk]).get_column(pk).to_list()
        return {i + 1: v for i, v in enumerate(ids)}
    text = path.read_bytes().decode("utf-8", "replace")
    if path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        col = rows[0].index(pk)
        return {i + 2: r[col] for i, r in enumerate(rows[1:]) if len(r) > col}
    return {i + 1: json.loads(line)[pk] for i, line in enumerate(text.splitlines()) if line.strip()}


def test_quarantine_equals_the_fault_manifest_and_no_clean_row_is_missing(home: CrmHome):
    ingest_all(home)
    manifest = _manifest(home)
    assert len(manifest) > 50  # the fixture really is dirty
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        quarantine = set(con.execute("SELECT entity, source_file, source_line, reason FROM raw._quarantine").fetchall())
        assert quarantine == manifest
        assert reconcile(con) == []
        contract = load_contract()
        store = OperationalStore(home.operational_db_url)
        for entity in contract.entities.values():
            raw_ids = {r[0] for r in con.execute(
                f'SELECT {entity.primary_key} FROM raw."{entity.name}"').fetchall()}  # noqa: S608
            expected: set[str] = set()
            if entity.in_store:
                expected |= set(store.read_frame(entity.name).get_column(entity.primary_key).to_list())
            folder = home.landing / entity.name
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                rel = path.relative_to(home.landing).as_posix()
                bad_lines = {line for e, f, line, _ in manifest if e == entity.name and f == rel}
                expected |= {pk for line, pk in _file_ids(path, entity.primary_key).items() if line not in bad_lines}
            missing = expected - raw_ids
            assert not missing, f"{entity.name}: clean rows missing from raw: {sorted(missing)[:5]}"
        store.dispose()
    finally:
        con.close()


def test_ingest_twice_changes_no_table(home: CrmHome):
    ingest_all(home)
    before = table_fingerprints(home.warehouse)
    results = ingest_all(home)
    assert table_fingerprints(home.warehouse) == before
    landing = [s for r in results for s in r.sources if not s.source_file.startswith("store:")]
    assert landing and all(s.status == "skipped_unchanged" for s in landing)
