"""Count reconciliation: every input row is loaded, quarantined, an exact duplicate dropped, or erased."""

from __future__ import annotations

import duckdb

from pipelines.lib.warehouse import raw_table


def reconcile(con: duckdb.DuckDBPyConnection, batch_id: str | None = None,
              entity: str | None = None) -> list[dict]:
    """Load-log rows (of a batch and/or entity) whose counts do not add up; empty means reconciled.

    The quarantine table is counted too, so a log that claims rows were quarantined while the rows are
    missing from `raw._quarantine` is caught as well.
    """
    clauses, params = ["status = 'loaded'"], []
    if batch_id:
        clauses.append("l.batch_id = ?")
        params.append(batch_id)
    if entity:
        clauses.append("l.entity = ?")
        params.append(entity)
    sql = f"""
        SELECT l.batch_id, l.entity, l.source_file, l.rows_read, l.rows_loaded, l.rows_quarantined,
               l.duplicates_dropped, l.rows_erased
        FROM {raw_table('_load_log')} AS l
        WHERE {' AND '.join(clauses)}
          AND l.rows_read <> l.rows_loaded + l.rows_quarantined + l.duplicates_dropped + l.rows_erased
    """  # noqa: S608 - fixed clauses, values are parameters
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def batch_summary(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[dict]:
    """Per entity of a batch: files loaded/skipped/unreadable/ignored and row counts, for run summaries.

    `ignored`: what the load log says of each file the batch did not read (the file, why, what to do);
    an unknown folder under landing/ appears under its own name."""
    cur = con.execute(f"""
        SELECT entity,
               count(*) FILTER (WHERE status = 'loaded') AS sources_loaded,
               count(*) FILTER (WHERE status = 'skipped_unchanged') AS sources_skipped,
               count(*) FILTER (WHERE status = 'unreadable') AS sources_unreadable,
               count(*) FILTER (WHERE status = 'ignored') AS sources_ignored,
               coalesce(sum(rows_read), 0) AS rows_read,
               coalesce(sum(rows_loaded), 0) AS rows_loaded,
               coalesce(sum(rows_quarantined), 0) AS rows_quarantined,
               coalesce(sum(duplicates_dropped), 0) AS duplicates_dropped,
               coalesce(sum(rows_erased), 0) AS rows_erased,
               string_agg(error, ' | ') FILTER (WHERE status = 'unreadable') AS errors,
               list(error ORDER BY source_file) FILTER (WHERE status = 'ignored') AS ignored
        FROM {raw_table('_load_log')} WHERE batch_id = ? GROUP BY entity ORDER BY entity
    """, [batch_id])  # noqa: S608
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
