"""Write one checked batch to the warehouse in ONE DuckDB transaction.

Rows, quarantine, load log and the landing-file register commit together or not at all, so a process
killed mid-load (even by SIGKILL) leaves the previous state and the next run simply loads again.

Quarantine rows of what was re-read are replaced; a row that leaves the quarantine (its record loaded,
or was quarantined again differently, or is gone from its source) is kept in `raw._quarantine_log` with
when, by which batch and why, in the same transaction.

Upsert rule: a row replaces the stored row with the same id when its `updated_at` is the same or later;
an older version never overwrites a newer one. Day-partitioned entities (interactions) replace whole
days instead: every row in the half-open range [day, day + 1) of the days being loaded is deleted and
the day's rows inserted, so re-running a day changes nothing and its neighbours are untouched. Only the
replaced days are searched for existing ids, which keeps a day's cost independent of the history; the
price is that an interaction id repeated on two different days is stored on both (ids are expected to
be unique, and dbt's unique test on the staging model reports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import duckdb
import polars as pl
import pyarrow as pa

from pipelines.contract import Entity
from pipelines.lib.warehouse import (
    LANDING_FILES_COLUMNS,
    LOAD_LOG_COLUMNS,
    QUARANTINE_COLUMNS,
    quote_ident,
    raw_columns,
    raw_table,
)


@dataclass
class LoadPlan:
    entity: Entity
    rows: pl.DataFrame                 # raw columns (contract + lineage), typed
    quarantine: pl.DataFrame           # QUARANTINE_COLUMNS
    load_log: pl.DataFrame             # LOAD_LOG_COLUMNS
    landing_files: pl.DataFrame        # LANDING_FILES_COLUMNS, files read successfully in this batch
    replace_quarantine_files: list[str]  # landing files re-read: their old quarantine rows go
    replace_quarantine_ids: list[str]    # store ids re-read: their old quarantine rows go
    store_file: str | None = None
    days: list[date] | None = None     # day-partitioned: the days replaced
    batch_id: str | None = None        # the batch writing: named in raw._quarantine_log
    written_at: datetime | None = None
    store_cursor: tuple[str, int] | None = None  # (store, change position) the store rows were read up to


def _frame(rows: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    return rows.select(list(columns))


def write_plan(con: duckdb.DuckDBPyConnection, plan: LoadPlan) -> None:
    entity = plan.entity
    table = raw_table(entity)
    pk, updated = quote_ident(entity.primary_key), quote_ident(entity.updated_at)
    cols = ", ".join(quote_ident(c) for c in raw_columns(entity))
    same = " AND ".join(f"t.{quote_ident(c)} IS NOT DISTINCT FROM s.{quote_ident(c)}"
                        for c in [*entity.column_names, "_source_file", "_source_line"])
    con.execute("BEGIN TRANSACTION")
    try:
        stage = _frame(plan.rows, raw_columns(entity)).to_arrow()
        con.register("__stage", stage)
        empty = plan.days is None and not con.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchall()[0][0]
        # an identical row (same content and origin) is left alone, so re-runs change nothing at all
        unchanged = f"EXISTS (SELECT 1 FROM __stage AS s WHERE t.{pk} = s.{pk} AND {same})"  # noqa: S608
        if plan.days is not None:
            part = quote_ident(entity.partition_by_day or entity.updated_at)
            first, last = (min(plan.days), max(plan.days)) if plan.days else (None, None)
            if plan.days:  # the range lets DuckDB skip row groups of other days (zone maps)
                con.execute(f"DELETE FROM {table} AS t WHERE {part} >= ? AND {part} < ? + INTERVAL 1 DAY "  # noqa: S608
                            f"AND list_contains(?, CAST({part} AS DATE)) AND NOT {unchanged}",
                            [datetime(first.year, first.month, first.day),
                             datetime(last.year, last.month, last.day), list(plan.days)])
        elif stage.num_rows and not empty:
            con.execute(f"""DELETE FROM {table} AS t USING __stage AS s
                            WHERE t.{pk} = s.{pk} AND s.{updated} >= t.{updated}
                            AND NOT {unchanged}""")  # noqa: S608
        if stage.num_rows and plan.days is not None:
            # only the replaced days can still hold these ids (kept identical rows): look nowhere else,
            # so the cost of loading a day does not grow with the history
            bounds = [datetime(first.year, first.month, first.day), datetime(last.year, last.month, last.day)]
            in_range = f"FROM {table} AS t WHERE t.{part} >= ? AND t.{part} < ? + INTERVAL 1 DAY"
            if con.execute(f"SELECT EXISTS (SELECT 1 {in_range})", bounds).fetchall()[0][0]:  # noqa: S608
                con.execute(f"""INSERT INTO {table} ({cols}) SELECT {cols} FROM __stage AS s
                                WHERE NOT EXISTS (SELECT 1 {in_range} AND t.{pk} = s.{pk})""",  # noqa: S608
                            bounds)
            else:  # nothing kept in these days (a first load or a changed day): no anti-join needed
                con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM __stage")  # noqa: S608
        elif stage.num_rows and empty:  # first load: nothing to compare with
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM __stage")  # noqa: S608
        elif stage.num_rows:
            con.execute(f"""INSERT INTO {table} ({cols}) SELECT {cols} FROM __stage AS s
                            WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE t.{pk} = s.{pk})""")  # noqa: S608
        con.unregister("__stage")
        _replace_quarantine(con, plan)
        _append(con, "_load_log", plan.load_log, LOAD_LOG_COLUMNS)
        if plan.landing_files.height:  # a forced re-read of an unchanged file keeps its entry as it was
            lf = raw_table("_landing_files")
            con.register("__files", plan.landing_files.select(list(LANDING_FILES_COLUMNS)).to_arrow())
            con.execute(f"DELETE FROM {lf} AS f USING __files AS n WHERE f.entity = n.entity "  # noqa: S608
                        "AND f.source_file = n.source_file "
                        "AND (f.sha256 IS DISTINCT FROM n.sha256 OR f.mtime_ns IS DISTINCT FROM n.mtime_ns)")
            names = ", ".join(LANDING_FILES_COLUMNS)
            con.execute(f"INSERT INTO {lf} ({names}) SELECT {names} FROM __files AS n WHERE NOT EXISTS "  # noqa: S608
                        f"(SELECT 1 FROM {lf} AS f WHERE f.entity = n.entity AND f.source_file = n.source_file)")
            con.unregister("__files")
        if plan.store_cursor is not None:  # the change-log position moves with the rows it stands for
            _set_store_cursor(con, plan)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _set_store_cursor(con: duckdb.DuckDBPyConnection, plan: LoadPlan) -> None:
    """Keep the change-log position the entity's store rows are now complete up to (unchanged: untouched)."""
    store, position = plan.store_cursor
    table = raw_table("_store_cursor")
    con.execute(f"DELETE FROM {table} WHERE entity = ? AND (store <> ? OR position <> ?)",  # noqa: S608
                [plan.entity.name, store, position])
    con.execute(f"INSERT INTO {table} (entity, store, position, batch_id, loaded_at) "  # noqa: S608
                f"SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE entity = ?)",
                [plan.entity.name, store, position, plan.batch_id,
                 plan.written_at or datetime.now(UTC).replace(tzinfo=None),
                 plan.entity.name])


def _replace_quarantine(con: duckdb.DuckDBPyConnection, plan: LoadPlan) -> None:
    """Replace the quarantine rows of what was re-read; identical rows stay as they were (idempotent)."""
    q = raw_table("_quarantine")
    key = ["entity", "source_file", "source_line", "record_id", "field", "reason", "value"]
    same = " AND ".join(f"q.{c} IS NOT DISTINCT FROM n.{c}" for c in key)
    con.register("__new_q", plan.quarantine.select(list(QUARANTINE_COLUMNS)).to_arrow())
    keep = f"EXISTS (SELECT 1 FROM __new_q AS n WHERE {same})"  # noqa: S608
    if plan.replace_quarantine_files:
        where = f"entity = ? AND list_contains(?, source_file) AND NOT {keep}"
        params = [plan.entity.name, plan.replace_quarantine_files]
        _log_resolved(con, plan, where, params)
        con.execute(f"DELETE FROM {q} AS q WHERE {where}", params)  # noqa: S608
    if plan.replace_quarantine_ids and plan.store_file and con.execute(
            f"SELECT count(*) FROM {q} WHERE entity = ? AND source_file = ?",  # noqa: S608
            [plan.entity.name, plan.store_file]).fetchall()[0][0]:
        con.register("__ids", pa.table({"id": pa.array(plan.replace_quarantine_ids, pa.string())}))
        where = f"entity = ? AND source_file = ? AND record_id IN (SELECT id FROM __ids) AND NOT {keep}"
        _log_resolved(con, plan, where, [plan.entity.name, plan.store_file])
        con.execute(f"DELETE FROM {q} AS q WHERE {where}", [plan.entity.name, plan.store_file])  # noqa: S608
        con.unregister("__ids")
    if plan.quarantine.height:
        names = ", ".join(QUARANTINE_COLUMNS)
        con.execute(f"INSERT INTO {q} ({names}) SELECT {names} FROM __new_q AS n "  # noqa: S608
                    f"WHERE NOT EXISTS (SELECT 1 FROM {q} AS q WHERE {same})")
    con.unregister("__new_q")


def _log_resolved(con: duckdb.DuckDBPyConnection, plan: LoadPlan, where: str, params: list) -> None:
    """Copy the quarantine rows `where` selects (about to be deleted) to `raw._quarantine_log`."""
    q = raw_table("_quarantine")
    if not con.execute(f"SELECT EXISTS (SELECT 1 FROM {q} AS q WHERE {where})", params).fetchall()[0][0]:  # noqa: S608
        return
    pk = plan.entity.primary_key
    ids = plan.rows.get_column(pk).cast(pl.String) if pk in plan.rows.columns else pl.Series([], dtype=pl.String)
    con.register("__loaded_ids", pa.table({"id": ids.drop_nulls().to_arrow()}))
    names = ", ".join(QUARANTINE_COLUMNS)
    again = ("EXISTS (SELECT 1 FROM __new_q AS n WHERE n.entity = q.entity AND (n.record_id = q.record_id "
             "OR (q.record_id IS NULL AND n.source_file = q.source_file AND n.source_line = q.source_line)))")
    con.execute(f"""INSERT INTO {raw_table('_quarantine_log')} ({names}, resolved_at, resolved_by_batch, resolution)
                    SELECT {', '.join(f'q.{c}' for c in QUARANTINE_COLUMNS)}, ?, ?,
                           CASE WHEN q.record_id IN (SELECT id FROM __loaded_ids) THEN 'loaded'
                                WHEN {again} THEN 'quarantined_again' ELSE 'not_in_source' END
                    FROM {q} AS q WHERE {where}""",  # noqa: S608 - fixed names, values are parameters
                [plan.written_at or datetime.now(UTC).replace(tzinfo=None), plan.batch_id, *params])
    con.unregister("__loaded_ids")


def _append(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, columns: dict[str, str]) -> None:
    if not frame.height:
        return
    arrow = frame.select(list(columns)).to_arrow()
    con.register("__append", arrow)
    names = ", ".join(quote_ident(c) for c in columns)
    con.execute(f"INSERT INTO {raw_table(table)} ({names}) SELECT {names} FROM __append")  # noqa: S608
    con.unregister("__append")


def append_load_log(con: duckdb.DuckDBPyConnection, log: pl.DataFrame) -> None:
    """Log rows that carry no data (skipped or unreadable files) in their own small transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        _append(con, "_load_log", log, LOAD_LOG_COLUMNS)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
