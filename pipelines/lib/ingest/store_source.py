"""Read the operational store for ingestion, converting whole columns instead of single values.

`OperationalStore.read_frame` renders each value with a Python function; at 100,000 customers that is
ten million calls and the largest single cost of a full ingest. `read_store_frame` runs the same query
through the same driver connection and converts each column with polars, falling back to the store's
own per-value rendering (`_as_text`) for a column whose values are not all of one type. The text it
returns is the text `read_frame` returns (tests compare the two on SQLite and PostgreSQL).

Which rows are read is the store's business (`OperationalStore.select_changed`: all of them, or those
changed at or after a change-log position), so both readers run the very same query.
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from pipelines.contract import Entity
from pipelines.lib.store import OperationalStore, _as_text


def _column_text(values: tuple, boolean: bool) -> pl.Series:
    kinds = set(map(type, values)) - {type(None)}
    if boolean:
        if kinds <= {bool, int}:
            return pl.Series(values, dtype=pl.Int64, strict=False).cast(pl.Boolean).cast(pl.String)
        return pl.Series([_as_text(bool(v)) if v is not None else None for v in values], dtype=pl.String)
    if kinds <= {str}:
        return pl.Series(values, dtype=pl.String)
    if kinds == {int}:
        return pl.Series(values, dtype=pl.Int64).cast(pl.String)
    if kinds == {float}:
        return pl.Series(values, dtype=pl.Float64).cast(pl.String)
    if kinds == {datetime}:
        return pl.Series(values, dtype=pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%S")
    if kinds == {date}:
        return pl.Series(values, dtype=pl.Date).dt.strftime("%Y-%m-%d")
    return pl.Series([_as_text(v) for v in values], dtype=pl.String)


def read_store_frame(store: OperationalStore, entity: Entity, since: int | None = None) -> pl.DataFrame:
    """Rows of a store table as text columns (the shape of `OperationalStore.read_frame`); with `since`
    (a position from `OperationalStore.change_position`) only the rows changed at or after it."""
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        store.select_changed(cur, entity, since)
        rows = cur.fetchall()
    finally:
        raw.close()
    return _text_frame(entity, rows)


#: Ids per `IN (...)` list (well below SQLite's limit on bound parameters).
_IDS_PER_QUERY = 500


def read_store_rows(store: OperationalStore, entity: Entity, ids: list[str]) -> pl.DataFrame:
    """The store rows with these ids (those that still exist), as `read_store_frame` renders them."""
    mark = "?" if store.dialect == "sqlite" else "%s"
    rows: list[tuple] = []
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = list(ids[start:start + _IDS_PER_QUERY])
            cur.execute(f"SELECT {', '.join(entity.column_names)} FROM {entity.name} "  # noqa: S608 - contract names
                        f"WHERE {entity.primary_key} IN ({', '.join([mark] * len(chunk))}) "
                        f"ORDER BY {entity.primary_key}", chunk)
            rows.extend(cur.fetchall())
    finally:
        raw.close()
    return _text_frame(entity, rows)


def _text_frame(entity: Entity, rows: list[tuple]) -> pl.DataFrame:
    names = entity.column_names
    if not rows:
        return pl.DataFrame(schema={c: pl.String for c in names})
    columns = list(zip(*rows, strict=True))
    del rows
    return pl.DataFrame([
        _column_text(values, entity.column(name).type == "boolean").alias(name)
        for name, values in zip(names, columns, strict=True)])
