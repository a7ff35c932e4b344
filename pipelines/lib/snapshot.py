"""Published snapshots: what the portal and notebooks read (architecture rule 2 in docs).

A DuckDB file cannot be read while a pipeline run writes it, so readers never open the warehouse. After a
successful build, `publish` copies the marts, the model scores and the data-quality tables into a new
DuckDB file, then switches the `CURRENT` pointer to it with `os.replace` (atomic on POSIX). A reader
follows the pointer once per connection, so it sees the old snapshot or the new one, never a half-built
one, and a run never waits for a reader. Old snapshots are pruned; a reader that still has one open keeps
reading it (the file lives until its last handle closes).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.lib.home import CrmHome

#: Schemas copied whole into a snapshot; missing ones are skipped (e.g. before any model has run).
PUBLISHED_SCHEMAS = ("marts", "scores")
#: Tables stored sorted, so the portal's per-customer lookups read only the row groups of that customer
#: (DuckDB skips row groups by their min/max) instead of scanning millions of rows.
SORT_KEYS = {"marts.fct_customer_interactions": "customer_key, occurred_at",
             "marts.fct_orders": "customer_key, order_date"}
#: Individual tables copied into the `quality` schema for the data-quality page.
QUALITY_TABLES = {"raw._quarantine": "quarantine", "raw._load_log": "load_log"}
KEEP_SNAPSHOTS = 3
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PublishResult:
    snapshot_id: str
    path: Path
    tables: dict[str, int]  # "schema.table" -> rows
    seconds: float


def _quote(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"unexpected identifier in warehouse: {name!r}")
    return f'"{name}"'


def publish(home: CrmHome, warehouse: duckdb.DuckDBPyConnection | None = None) -> PublishResult:
    """Copy the marts and scores into a new snapshot file and point readers at it atomically."""
    start = time.perf_counter()
    home.snapshots.mkdir(parents=True, exist_ok=True)
    published_at = datetime.now(UTC).replace(tzinfo=None)
    # microseconds first: names sort in publishing order, which pruning relies on
    snapshot_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
    target = home.snapshots / f"snapshot-{snapshot_id}.duckdb"
    tmp = target.with_suffix(".duckdb.tmp")
    own = warehouse is None
    con = warehouse if warehouse is not None else duckdb.connect(str(home.warehouse))
    tables: dict[str, int] = {}
    try:
        con.execute(f"ATTACH '{tmp}' AS snap")  # path built by us, not user input
        try:
            existing = con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_catalog = current_database() order by 1, 2").fetchall()
            present = {(s, t) for s, t in existing}
            for schema in PUBLISHED_SCHEMAS:
                names = [t for s, t in existing if s == schema]
                if not names:
                    continue
                con.execute(f"CREATE SCHEMA IF NOT EXISTS snap.{_quote(schema)}")
                for name in names:
                    order = f" ORDER BY {SORT_KEYS[f'{schema}.{name}']}" if f"{schema}.{name}" in SORT_KEYS else ""
                    con.execute(f"CREATE TABLE snap.{_quote(schema)}.{_quote(name)} AS "
                                f"SELECT * FROM {_quote(schema)}.{_quote(name)}{order}")
                    tables[f"{schema}.{name}"] = _count(con, f"snap.{_quote(schema)}.{_quote(name)}")
            con.execute("CREATE SCHEMA IF NOT EXISTS snap.quality")
            for source, name in QUALITY_TABLES.items():
                schema, table = source.split(".")
                if (schema, table) in present:
                    con.execute(f"CREATE TABLE snap.quality.{_quote(name)} AS "
                                f"SELECT * FROM {_quote(schema)}.{_quote(table)}")
                    tables[f"quality.{name}"] = _count(con, f"snap.quality.{_quote(name)}")
            con.execute("CREATE TABLE snap.main.snapshot_meta (snapshot_id VARCHAR, published_at TIMESTAMP, "
                        "tables_json VARCHAR)")
            con.execute("INSERT INTO snap.main.snapshot_meta VALUES (?, ?, ?)",
                        [snapshot_id, published_at, json.dumps(tables, sort_keys=True)])
        finally:
            con.execute("DETACH snap")
    finally:
        if own:
            con.close()
    os.replace(tmp, target)
    pointer_tmp = home.snapshots / f".CURRENT.{uuid.uuid4().hex}"
    pointer_tmp.write_text(target.name, encoding="utf-8")
    os.replace(pointer_tmp, home.snapshots / "CURRENT")
    prune(home)
    return PublishResult(snapshot_id, target, tables, time.perf_counter() - start)


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0])


def current_snapshot_path(home: CrmHome | None = None) -> Path | None:
    """The snapshot readers should open now, or None before the first publish."""
    home = home or CrmHome.from_env()
    pointer = home.snapshots / "CURRENT"
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    path = home.snapshots / name
    return path if path.exists() else None


class NoSnapshotError(RuntimeError):
    """Nothing has been published yet."""


def connect_snapshot(home: CrmHome | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the current snapshot with external access disabled (architecture rule 6 in docs).

    Callers keep the connection for one consistent view; open a new one to see a newer snapshot.
    """
    path = current_snapshot_path(home)
    if path is None:
        raise NoSnapshotError("No published snapshot yet: run `crm run` to build and publish one.")
    for attempt in range(3):
        try:
            return duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})
        except duckdb.IOException:
            # pruned between reading the pointer and opening it: follow the pointer again
            if attempt == 2:
                raise
            path = current_snapshot_path(home) or path
    raise AssertionError("unreachable")


@contextmanager
def snapshot(home: CrmHome | None = None):
    """`with snapshot() as con:` for notebooks and scripts."""
    con = connect_snapshot(home)
    try:
        yield con
    finally:
        con.close()


def prune(home: CrmHome, keep: int = KEEP_SNAPSHOTS) -> list[Path]:
    """Delete all but the newest `keep` snapshots (never the current one) and stale temp files."""
    current = current_snapshot_path(home)
    files = sorted(home.snapshots.glob("snapshot-*.duckdb"))
    removed = []
    for path in files[:-keep] if keep else files:
        if path != current:
            path.unlink(missing_ok=True)
            removed.append(path)
    for stale in home.snapshots.glob("*.duckdb.tmp"):
        if time.time() - stale.stat().st_mtime > 3600:
            stale.unlink(missing_ok=True)
    return removed
