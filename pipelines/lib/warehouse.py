"""The one place that opens the warehouse DuckDB file for writing (architecture rule 1 in docs).

A DuckDB file has one writing process at a time and a second process cannot even open it read-only while
the writer holds it. Pipeline runs are serialised by Dagster (one `warehouse` pool slot); this module adds
the last line of defence: `connect_writer` waits a little for a lock held by someone else and then raises
`WarehouseLockedError`, which the ingest assets turn into a retry with backoff instead of a failed run.

`ensure_raw_schema` creates the `raw` layer from the import contract (see the raw layer contract in the
ingest package docstring): one table per entity with the contract columns in contract order plus the
lineage columns, and the bookkeeping tables `raw._quarantine`, `raw._load_log` and `raw._landing_files`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipelines.contract import DUCKDB_TYPES, Entity, load_contract

RAW_SCHEMA = "raw"

#: Lineage columns appended to every raw table, after the contract columns.
LINEAGE_COLUMNS: dict[str, str] = {
    "_source": "VARCHAR",        # 'store' or 'landing'
    "_source_file": "VARCHAR",   # path relative to landing/, or 'store:<table>'
    "_source_line": "BIGINT",    # CSV physical line (header = 1), JSONL line, Parquet row (1-based); NULL for store
    "_batch_id": "VARCHAR",
    "_ingested_at": "TIMESTAMP",
}

QUARANTINE_COLUMNS: dict[str, str] = {
    "batch_id": "VARCHAR",
    "entity": "VARCHAR",
    "source_file": "VARCHAR",
    "source_line": "BIGINT",
    "record_id": "VARCHAR",
    "field": "VARCHAR",
    "reason": "VARCHAR",
    "value": "VARCHAR",
    "message": "VARCHAR",
    "quarantined_at": "TIMESTAMP",
}

#: Quarantine rows that left the quarantine: when, in which batch, and why (`loaded`: the record loaded;
#: `quarantined_again`: re-read and quarantined with another reason or line; `not_in_source`: gone from
#: its file or the store).
QUARANTINE_LOG_COLUMNS: dict[str, str] = {
    **QUARANTINE_COLUMNS, "resolved_at": "TIMESTAMP", "resolved_by_batch": "VARCHAR", "resolution": "VARCHAR"}

LOAD_LOG_COLUMNS: dict[str, str] = {
    "batch_id": "VARCHAR",
    "entity": "VARCHAR",
    "source_file": "VARCHAR",
    "rows_read": "BIGINT",
    "rows_loaded": "BIGINT",
    "rows_quarantined": "BIGINT",
    "duplicates_dropped": "BIGINT",
    "rows_erased": "BIGINT",  # rows of customers erased on request (tombstones), dropped on purpose
    "status": "VARCHAR",  # loaded | skipped_unchanged | unreadable
    "error": "VARCHAR",
    "started_at": "TIMESTAMP",
    "finished_at": "TIMESTAMP",
}

#: Which version of each landing file was last loaded (sha256), so unchanged files are skipped.
LANDING_FILES_COLUMNS: dict[str, str] = {
    "entity": "VARCHAR",
    "source_file": "VARCHAR",
    "sha256": "VARCHAR",
    "size_bytes": "BIGINT",
    "mtime_ns": "BIGINT",  # with size: an unchanged file is skipped without even reading it
    "batch_id": "VARCHAR",
    "loaded_at": "TIMESTAMP",
}

#: How far each entity has read the operational store's change log (pipelines/lib/store, docs/store-changes.md):
#: every change below `position` of the store `store` (its URL, password masked) is in raw. Written in the
#: transaction of the load it stands for.
STORE_CURSOR_COLUMNS: dict[str, str] = {
    "entity": "VARCHAR",
    "store": "VARCHAR",  # the store's URL without password and its identity (OperationalStore.cursor_key)
    "position": "BIGINT",
    "batch_id": "VARCHAR",
    "loaded_at": "TIMESTAMP",
}


class WarehouseLockedError(OSError):
    """Another process holds the warehouse file; transient, so the caller should retry later."""


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("could not set" in text or "conflicting" in text)


def connect_writer(path: Path, wait_seconds: float = 10.0) -> duckdb.DuckDBPyConnection:
    """Open the warehouse for writing, waiting up to `wait_seconds` for another writer to let go."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), config={"checkpoint_threshold": "1GB"})
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseLockedError(
                    f"The warehouse {path} is locked by another process; wait for the running pipeline "
                    f"to finish (or stop the process holding it) and try again. ({exc})"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


@contextmanager
def warehouse_writer(path: Path, wait_seconds: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """`connect_writer` as a context manager that makes sure the raw schema exists and closes after."""
    con = connect_writer(path, wait_seconds)
    try:
        ensure_raw_schema(con)
        yield con
    finally:
        con.close()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def raw_table(entity: Entity | str) -> str:
    name = entity if isinstance(entity, str) else entity.name
    return f"{RAW_SCHEMA}.{quote_ident(name)}"


def raw_columns(entity: Entity) -> dict[str, str]:
    """Column name -> DuckDB type of `raw.<entity>`: contract columns in order, then lineage."""
    cols = {c.name: DUCKDB_TYPES[c.type] for c in entity.columns}
    cols.update(LINEAGE_COLUMNS)
    return cols


def _create(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]) -> None:
    body = ", ".join(f"{quote_ident(n)} {t}" for n, t in columns.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body})")


#: Score tables customer 360 joins (see dbt_project/macros/optional_score_columns.sql). They exist, empty,
#: before the first scoring run so the 360 view always joins them and shows the scores of the same run.
SCORE_PLACEHOLDERS: dict[str, dict[str, str]] = {
    # the same columns models/jobs.py writes, so every reader works on the empty table too
    "churn_scores": {"customer_key": "VARCHAR", "churn_probability": "DOUBLE", "risk_band": "VARCHAR",
                     "driver_1": "VARCHAR", "driver_2": "VARCHAR", "driver_3": "VARCHAR",
                     "driver_1_effect": "DOUBLE", "driver_2_effect": "DOUBLE", "driver_3_effect": "DOUBLE",
                     "as_of_cutoff": "DATE", "model_version": "VARCHAR", "scored_at": "TIMESTAMP"},
    "clv_scores": {"customer_key": "VARCHAR", "expected_purchases_12m": "DOUBLE", "probability_alive": "DOUBLE",
                   "expected_average_spend": "DOUBLE", "predicted_clv": "DOUBLE", "model_version": "VARCHAR",
                   "scored_at": "TIMESTAMP"},
}


def ensure_score_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS scores")
    for table, columns in SCORE_PLACEHOLDERS.items():
        _create(con, f"scores.{quote_ident(table)}", columns)


def _add_new_contract_columns(con: duckdb.DuckDBPyConnection, contract, existing: set[str]) -> None:
    """A contract column added after the warehouse was created (e.g. order_lines.line_amount) is added to
    its raw table, at the end (every insert names its columns)."""
    have: dict[str, set[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                     "WHERE table_schema = ?", [RAW_SCHEMA]).fetchall():
        have.setdefault(table, set()).add(column)
    for entity in contract.entities.values():
        if entity.name in existing:
            for column, kind in raw_columns(entity).items():
                if column not in have.get(entity.name, set()):
                    con.execute(f"ALTER TABLE {raw_table(entity)} ADD COLUMN {quote_ident(column)} {kind}")


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw schema and every table the contract defines, and the score tables (idempotent)."""
    ensure_score_tables(con)
    existing = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [RAW_SCHEMA]).fetchall()}
    contract = load_contract()
    _add_new_contract_columns(con, contract, existing)
    wanted = set(contract.entities) | {"_quarantine", "_load_log", "_landing_files", "_store_cursor",
                                       "_quarantine_log"}
    if wanted <= existing:
        return
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    for entity in contract.entities.values():
        _create(con, raw_table(entity), raw_columns(entity))
    _create(con, raw_table("_quarantine"), QUARANTINE_COLUMNS)
    _create(con, raw_table("_quarantine_log"), QUARANTINE_LOG_COLUMNS)
    _create(con, raw_table("_load_log"), LOAD_LOG_COLUMNS)
    _create(con, raw_table("_landing_files"), LANDING_FILES_COLUMNS)
    _create(con, raw_table("_store_cursor"), STORE_CURSOR_COLUMNS)
