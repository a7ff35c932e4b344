"""Count reconciliation: every input row is loaded, quarantined, an exact duplicate dropped, or erased.

`reconcile` checks the load log; the counters below (`physical_rows`, `physical_json_lines`) say how many
rows a landing file holds, from its bytes and a simple documented rule, so the rows read that the log
records do not depend on the parser whose output they check.
"""

from __future__ import annotations

import csv
import io

import duckdb
import numpy as np

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


# --- physical rows: counted from the bytes, independently of the parsers ---------------------------
#
# Rule (documented in docs/IMPORT_FORMAT.md): a text file is split into lines at LF, CRLF or a lone CR
# (JSON Lines: at LF and CRLF only); a line holding nothing but spaces, tabs and CR is blank and no row
# (with a tab delimiter, tabs are not blank);
# a delimited file's first line is its header unless the mapping says `header: false`. Every other line
# is one row, except the lines a quoted field carries over into (a value with a line break): those are
# counted only for records that Python's own `csv` module, re-reading exactly those lines, finds to be one
# record with the header's number of fields. So whatever the fast reader does, rows read in the load log
# come from the file itself, and a reader that loses rows fails the reconciliation.

_WHITESPACE = b" \t\r"


def line_spans(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, without the LF) byte offsets of each LF-terminated line."""
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(arr)]))
    if starts[-1] >= len(arr):  # the file ends with a line break: no line after it
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


def blank_lines(data: bytes, starts: np.ndarray, ends: np.ndarray, delimiter: str | None = None) -> np.ndarray:
    """Mask of the lines holding only spaces, tabs and CR (a tab delimiter is not blank: it separates
    empty fields); checked exactly where the first byte is one of them."""
    space = _WHITESPACE.replace(delimiter.encode(), b"") if delimiter and len(delimiter) == 1 else _WHITESPACE
    arr = np.frombuffer(data, dtype=np.uint8)
    empty = ends <= starts
    first = arr[np.minimum(starts, max(len(arr) - 1, 0))] if len(arr) else np.zeros(len(starts), np.uint8)
    candidates = np.flatnonzero(~empty & np.isin(first, np.frombuffer(space, np.uint8)))
    blank = empty.copy()
    for k in candidates:
        blank[k] = not data[starts[k]:ends[k]].strip(space)
    return blank


def normalise_line_breaks(data: bytes) -> bytes:
    """A lone CR (old Mac exports) becomes LF; CRLF and LF stay as they are."""
    if b"\r" not in data or data.count(b"\r") == data.count(b"\r\n"):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def physical_rows(data: bytes, header: bool, continued: list[tuple[int, int]] = (), delimiter: str = ",",
                  width: int | None = None) -> int:
    """Rows of a delimited text file (`data` as the reader saw it: UTF-8, line breaks normalised).

    `continued`: the reader's multi-line records as (first line, number of lines); each is re-read with
    Python's `csv` module and its extra lines are subtracted only if that finds exactly one record of
    `width` fields spanning exactly those lines."""
    starts, ends = line_spans(data)
    nonblank = ~blank_lines(data, starts, ends, delimiter)
    rows = int(nonblank.sum()) - (1 if header and len(starts) and nonblank[0] else 0)
    for first, count in continued:
        text = data[starts[first - 1]:ends[first + count - 2]].decode("utf-8", "replace")
        try:
            records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        except csv.Error:
            continue
        if len(records) == 1 and (width is None or len(records[0]) == width):
            rows -= int(nonblank[first:first + count - 1].sum())
    return rows


def physical_json_lines(data: bytes) -> int:
    """Rows of a JSON Lines file: its non-blank lines (a lone CR does not end a line in JSON Lines)."""
    starts, ends = line_spans(data)
    return int((~blank_lines(data, starts, ends)).sum())
