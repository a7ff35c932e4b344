"""Load warnings: things about a file that loaded but deserve a look, kept in `raw._load_warnings`.

Today these come from `collapse: true` in the column mapping (`pipelines.lib.ingest.transform`): how many
repeated lines were folded into one record, and which attributes differed between the repeats, with
counts and examples. They are not quarantine (every row is accounted for in the load log: folded lines
count as duplicates dropped); the `crm run` summary and the `crm import` report show them per batch
(`batch_warnings`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import polars as pl

from pipelines.lib.ingest.rows import LoadWarning
from pipelines.lib.warehouse import quote_ident, raw_table

LOAD_WARNINGS_COLUMNS: dict[str, str] = {
    "batch_id": "VARCHAR",
    "entity": "VARCHAR",
    "source_file": "VARCHAR",
    "kind": "VARCHAR",       # collapsed | collapse_conflict
    "field": "VARCHAR",
    "record_count": "BIGINT",
    "examples": "VARCHAR",
    "message": "VARCHAR",
    "created_at": "TIMESTAMP",
}


def ensure_load_warnings_table(con: duckdb.DuckDBPyConnection) -> None:
    body = ", ".join(f"{quote_ident(n)} {t}" for n, t in LOAD_WARNINGS_COLUMNS.items())
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(f"CREATE TABLE IF NOT EXISTS {raw_table('_load_warnings')} ({body})")


def write_load_warnings(con: duckdb.DuckDBPyConnection, batch_id: str, entity: str,
                        warnings: list[tuple[str, LoadWarning]]) -> None:
    """Append the warnings (source file, warning) of one entity's chunk to `raw._load_warnings`."""
    if not warnings:
        return
    ensure_load_warnings_table(con)
    now = datetime.now(UTC).replace(tzinfo=None)
    frame = pl.DataFrame([{
        "batch_id": batch_id, "entity": entity, "source_file": source_file, "kind": w.kind, "field": w.field,
        "record_count": w.count, "examples": w.examples, "message": w.message, "created_at": now}
        for source_file, w in warnings],
        schema={"batch_id": pl.String, "entity": pl.String, "source_file": pl.String, "kind": pl.String,
                "field": pl.String, "record_count": pl.Int64, "examples": pl.String, "message": pl.String,
                "created_at": pl.Datetime("us")})
    con.register("__warnings", frame.to_arrow())
    try:
        names = ", ".join(quote_ident(c) for c in LOAD_WARNINGS_COLUMNS)
        con.execute(f"INSERT INTO {raw_table('_load_warnings')} ({names}) SELECT {names} FROM __warnings")  # noqa: S608
    finally:
        con.unregister("__warnings")


def batch_warnings(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[dict]:
    """The warnings of a batch, by entity and file (empty when none was ever written)."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' "
                         "AND table_name = '_load_warnings'").fetchall()[0][0]
    if not exists:
        return []
    cur = con.execute(f"SELECT entity, source_file, kind, field, record_count, examples, message "  # noqa: S608
                      f"FROM {raw_table('_load_warnings')} WHERE batch_id = ? ORDER BY entity, source_file, "
                      "kind, field", [batch_id])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
