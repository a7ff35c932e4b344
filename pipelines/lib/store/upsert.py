"""Many records into the operational store at once: the write path of `crm import` (`upsert_many`).

A file of ten thousand deals cannot go through `create`/`update` one record at a time (each validates a
one-row frame: about 15 ms), so the batch is validated as a whole by the contract checks ingestion uses
(`check_batch`, which runs `validate_frame`, the function `validate_record` wraps) on the entity of the
store's contract (the installation's vocabulary, `OperationalStore.contract`), with the portal's
rules on top: a reference must exist in the store (references to landing-only entities are checked when
`crm run` ingests, as for portal edits), ids of erased customers never come back, and a store record
that is newer than the file's row is kept. Each changed record is written like a portal edit: version 1
for a new id, version + 1 for a changed one, one audit row, and for deals the stage event
(`_after_change`), all in one transaction per `BATCH_ROWS` rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl
from sqlalchemy import text as sql_text
from sqlalchemy.sql.elements import TextClause

from pipelines.contract import Entity
from pipelines.contract.validate import ROW, to_text
from pipelines.lib.erasure import drop_erased, load_tombstones
from pipelines.lib.ingest.checks import LINE, PARENT_SCHEMA, QUARANTINE_SCHEMA, SRC, KnownIds, check_batch
from pipelines.lib.store.values import StaleEditError, _ident, _normalise, _now

if TYPE_CHECKING:
    from pipelines.lib.store import OperationalStore

#: Rows per write transaction: large enough to amortise the commit, small enough to keep locks short.
BATCH_ROWS = 5_000
#: Ids per `IN (...)` list (well below SQLite's limit on bound parameters).
_IN_CHUNK = 500

#: Faults of rows not written, one per row: the row's line in its file, the id and what is wrong.
FAULT_SCHEMA = {"line": pl.Int64, "record_id": pl.String, "field": pl.String, "reason": pl.String,
                "value": pl.String, "message": pl.String}


@dataclass
class UpsertResult:
    """What one call did (or, with `dry_run`, would do) to the store."""

    entity: str
    source: str                                            # the file the rows come from, for messages
    rows_read: int = 0
    inserted: list[str] = field(default_factory=list)      # ids created (version 1)
    updated: list[str] = field(default_factory=list)       # ids whose values changed (version + 1)
    unchanged: int = 0                                     # rows equal to the stored record
    kept_newer: list[tuple[int | None, str]] = field(default_factory=list)  # (line, id): store is newer
    duplicates: int = 0                                    # exact repeats of a row earlier in the batch
    erased: int = 0                                        # rows of customers erased on request
    superseded: int = 0                                    # earlier versions of an id later in the batch
    faults: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FAULT_SCHEMA))
    filled: list[str] = field(default_factory=list)        # columns absent from the file, set as create() does

    @property
    def quarantined(self) -> int:
        return self.faults.height



def upsert_frame(store: OperationalStore, entity: Entity, frame: pl.DataFrame, actor: str, source: str,
                 dry_run: bool = False, pending_ids: Mapping[str, Iterable[str]] | None = None) -> UpsertResult:
    """Validate and write `frame` (contract columns as text, `__row` = line in `source`); see module doc.

    `pending_ids`: ids of other entities this import writes too (a dry run has not written them, so
    references to them count as existing).
    """

    result = UpsertResult(entity.name, source, rows_read=frame.height)
    now = _now().strftime("%Y-%m-%dT%H:%M:%S")
    text = _as_batch(entity, frame, now, result)
    text, erased = _drop_erased(store, entity, text)
    result.erased = erased
    pending = {name: ids if isinstance(ids, (set, frozenset)) else set(ids)
               for name, ids in (pending_ids or {}).items()}
    checked = check_batch(entity, text, pl.DataFrame(schema=QUARANTINE_SCHEMA),
                          lambda name: _reference_ids(store, entity, name, text, pending))
    result.duplicates = sum(checked.duplicates.values())
    result.superseded = sum(checked.loaded_counts.values()) - checked.loaded.height
    result.faults = checked.quarantine.select(
        pl.col(LINE).alias("line"), "record_id", "field", "reason", "value", "message").cast(FAULT_SCHEMA)
    records = _db_values(entity, checked.loaded)
    lines = checked.loaded.get_column(LINE).to_list()
    for start in range(0, len(records), BATCH_ROWS):
        _write_batch(store, entity, records[start:start + BATCH_ROWS], lines[start:start + BATCH_ROWS],
                     actor, dry_run, result)
    return result


def _as_batch(entity: Entity, frame: pl.DataFrame, now: str, result: UpsertResult) -> pl.DataFrame:
    """Text contract columns plus SRC and LINE, the shape `check_batch` reads.

    Columns the file does not have at all get what `create` gives a new record: the time of the import
    for `created_at` and `updated_at`, `false` for `is_archived` (listed in `result.filled`)."""
    frame = to_text(frame)
    lines = (pl.col(ROW).cast(pl.Int64) if ROW in frame.columns
             else pl.int_range(1, pl.len() + 1, dtype=pl.Int64))
    fills = {"created_at": now, entity.updated_at: now, "is_archived": "false"}
    columns = []
    for column in entity.column_names:
        if column in frame.columns:
            columns.append(pl.col(column).cast(pl.String))
        elif column in fills and entity.column(column).type in ("timestamp", "boolean"):
            columns.append(pl.lit(fills[column], dtype=pl.String).alias(column))
            result.filled.append(column)
        else:
            columns.append(pl.lit(None, dtype=pl.String).alias(column))
    return frame.select(*columns, pl.lit(0, dtype=pl.Int64).alias(SRC), lines.alias(LINE))


def _drop_erased(store: OperationalStore, entity: Entity, text: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    tombstones = load_tombstones(store)
    if not tombstones:
        return text, 0
    with duckdb.connect() as con:
        kept, erased = drop_erased(con, tombstones, entity.name, text)
    return kept, erased.height


def _reference_ids(store: OperationalStore, entity: Entity, target_name: str, text: pl.DataFrame,
                   pending: dict[str, set[str]]) -> KnownIds:
    """Ids of `target_name` that the batch's references may point to.

    For a store entity: the referenced ids that exist in the store, plus those this import writes. For a
    landing-only entity the store cannot tell (the portal does not check them either): every referenced
    value counts as known here and `crm run` checks them against the warehouse."""
    target = store.contract.entity(target_name)
    wanted = pl.concat([text.get_column(c.name) for c in entity.columns
                        if c.reference and c.reference[0] == target_name]).drop_nulls().unique()
    if target_name == entity.name:  # the batch's own ids are added by check_batch
        wanted = wanted.filter(~wanted.is_in(text.get_column(entity.primary_key).implode()))
    if not target.in_store:
        return KnownIds(wanted, pl.DataFrame(schema=PARENT_SCHEMA))
    values = wanted.to_list()
    pending_ids = pending.get(target_name, set())
    found: list[str] = [v for v in values if v in pending_ids]
    with store.engine.connect() as conn:
        for start in range(0, len(values), _IN_CHUNK):
            chunk = values[start:start + _IN_CHUNK]
            params = {f"p{i}": v for i, v in enumerate(chunk)}
            rows = conn.execute(sql_text(
                f"SELECT {target.primary_key} FROM {target.name} "  # noqa: S608 - names from the contract
                f"WHERE {target.primary_key} IN ({', '.join(':' + k for k in params)})"), params)
            found.extend(str(r[0]) for r in rows)
    return KnownIds(pl.Series("id", found, dtype=pl.String), pl.DataFrame(schema=PARENT_SCHEMA))


def _db_values(entity: Entity, typed: pl.DataFrame) -> list[dict[str, Any]]:
    """Typed rows as `validate_record` hands them to the database: timestamps and dates as ISO text."""
    exprs = []
    for column in entity.columns:
        if column.type == "timestamp":
            exprs.append(pl.col(column.name).dt.strftime("%Y-%m-%dT%H:%M:%S"))
        elif column.type == "date":
            exprs.append(pl.col(column.name).dt.strftime("%Y-%m-%d"))
        else:
            exprs.append(pl.col(column.name))
    return typed.select(exprs).to_dicts()


def _comparable(entity: Entity, record: Mapping[str, Any]) -> dict[str, Any]:
    """A record's values as read back from either database, without `updated_at` and `version`."""

    row = _normalise({k: v for k, v in record.items() if k in entity.column_names}, entity)
    out = {}
    for column in entity.columns:
        if column.name == entity.updated_at:
            continue
        value = row.get(column.name)
        if value is not None and column.type == "decimal":
            value = float(value)
        elif value is not None and column.type == "integer":
            value = int(value)
        out[column.name] = value
    return out


def _write_batch(store: OperationalStore, entity: Entity, records: list[dict[str, Any]],
                 lines: list[int | None], actor: str, dry_run: bool, result: UpsertResult) -> None:
    """Compare one batch with the stored records and write the new and changed ones in one transaction."""

    pk, updated_at = entity.primary_key, entity.updated_at
    table = _ident(entity.name)
    with store.engine.connect() if dry_run else store.engine.begin() as conn:
        before = _stored(conn, entity, [r[pk] for r in records])
        inserts, updates, changes = [], [], []
        for record, line in zip(records, lines, strict=True):
            old = before.get(record[pk])
            if old is None:
                inserts.append(record)
                changes.append((None, {**record, "version": 1}))
                result.inserted.append(record[pk])
                continue
            if _comparable(entity, old) == _comparable(entity, record):
                result.unchanged += 1
                continue
            if old.get(updated_at) and record[updated_at] < old[updated_at]:
                result.kept_newer.append((line, record[pk]))
                continue
            updates.append({**record, "__id": record[pk], "__version": int(old["version"])})
            changes.append((old, {**record, "version": int(old["version"]) + 1}))
            result.updated.append(record[pk])
        if dry_run:
            return
        columns = entity.column_names
        if inserts:
            conn.execute(sql_text(f"INSERT INTO {table} ({', '.join(columns)}, version) "
                                  f"VALUES ({', '.join(':' + c for c in columns)}, 1)"), inserts)
        if updates:
            sets = ", ".join(f"{c} = :{c}" for c in columns if c != pk)
            done = conn.execute(sql_text(f"UPDATE {table} SET {sets}, version = version + 1 "
                                         f"WHERE {pk} = :__id AND version = :__version"), updates)
            if done.rowcount not in (len(updates), -1):
                raise StaleEditError(f"{result.source}: {len(updates) - done.rowcount} {entity.name} record(s) were "
                                     "changed by someone else during the import, so this batch of "
                                     f"{len(records):,} rows was not written (earlier ones were); run the "
                                     "import again: what is already stored is skipped as unchanged.")
        deferred = _DeferredInserts(conn)
        for old, after in changes:  # `after` is already what `get` returns: ISO text, bool, float
            store._audit(deferred, actor, "import", entity, after[pk], old, after)
            store._after_change(deferred, entity, old, after, actor)
        store.record_changes(deferred, entity.name, [after[pk] for _, after in changes])
        deferred.flush()


class _DeferredInserts:
    """The write connection as the store's per-record helpers (`_audit`, `_after_change`,
    `record_changes`) see it during an import: their INSERTs are collected and each statement is sent once
    with all its rows (one executemany instead of ten thousand round trips), in the same transaction.
    Any other statement first sends what was collected, so the helpers read what they wrote."""

    def __init__(self, conn):
        self.conn = conn
        self.pending: dict[str, tuple[Any, list[dict[str, Any]]]] = {}

    def execute(self, statement, parameters=None):
        sql = statement.text if isinstance(statement, TextClause) else str(statement)
        if sql.lstrip()[:6].upper() != "INSERT":
            self.flush()
            return self.conn.execute(statement, parameters)
        rows = parameters if isinstance(parameters, list) else [parameters or {}]
        self.pending.setdefault(sql, (statement, []))[1].extend(rows)
        return None

    def flush(self) -> None:
        for statement, rows in self.pending.values():
            if rows:
                self.conn.execute(statement, rows)
        self.pending.clear()

    def __getattr__(self, name: str):
        return getattr(self.conn, name)


def _stored(conn, entity: Entity, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored records (with `version`) of `ids`, normalised as `get` returns them."""

    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start:start + _IN_CHUNK]
        params = {f"p{i}": v for i, v in enumerate(chunk)}
        rows = conn.execute(sql_text(
            f"SELECT * FROM {entity.name} "  # noqa: S608 - names from the contract
            f"WHERE {entity.primary_key} IN ({', '.join(':' + k for k in params)})"), params).mappings()
        for row in rows:
            record = _normalise(dict(row), entity)
            out[str(record[entity.primary_key])] = record
    return out

