"""Ingest one entity (or all of them) from its sources into `raw`: the function the Dagster assets wrap.

Sources of an entity: the operational store (read incrementally by its change log, from the position kept
in `raw._store_cursor` with the load it stands for; docs/store-changes.md) and/or the files in
`landing/<entity>/` sorted by name. A landing file whose sha256 is the one last loaded is skipped
(`skipped_unchanged`); a changed file is read again in full.
Day-partitioned entities (interactions) read `landing/interactions/YYYY-MM-DD.<ext>` and replace whole
days, a chunk of days per transaction. Reading runs one chunk ahead of checking and writing, in a thread.

Quarantined rows are looked at again on every run (docs/quarantine.md): store rows in quarantine are read
again by id, and an unchanged landing file is read again when it holds rows quarantined because of a
reference that may resolve now. Landing files that are not read are named in the load log, once per batch.
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import TypeVar

import duckdb
import polars as pl

from pipelines.contract import DUCKDB_TYPES, Entity, load_contract
from pipelines.contract.validate import ROW, to_text
from pipelines.lib.erasure import drop_erased, load_tombstones, malformed_of_erased
from pipelines.lib.home import CrmHome
from pipelines.lib.ingest.checks import LINE, PARENT_SCHEMA, QUARANTINE_SCHEMA, SRC, KnownIds, check_batch
from pipelines.lib.ingest.landing import IgnoredFile, ignored_landing_files, landing_files
from pipelines.lib.ingest.load import LoadPlan, append_load_log, write_plan
from pipelines.lib.ingest.load_warnings import write_load_warnings
from pipelines.lib.ingest.mapping import (
    ColumnMapping,
    MappingError,
    load_column_mapping,
    mapping_for_file,
    sidecar_path,
)
from pipelines.lib.ingest.readers import (
    FILE_INDEX,
    FileRows,
    UnreadableFileError,
    file_format,
    read_file,
    read_jsonl_many,
)
from pipelines.lib.ingest.store_source import read_store_frame, read_store_rows
from pipelines.lib.settings import load_settings, write_settings_tables
from pipelines.lib.warehouse import (
    LANDING_FILES_COLUMNS,
    LOAD_LOG_COLUMNS,
    QUARANTINE_COLUMNS,
    quote_ident,
    raw_table,
)

T = TypeVar("T")

DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[._-].*)?$")
DAYS_PER_TRANSACTION = 62

_POLARS_TYPES = {"VARCHAR": pl.String, "BIGINT": pl.Int64, "DOUBLE": pl.Float64, "BOOLEAN": pl.Boolean,
                 "DATE": pl.Date, "TIMESTAMP": pl.Datetime("us")}


@dataclass
class SourceResult:
    source_file: str
    status: str  # loaded | skipped_unchanged | unreadable
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    duplicates_dropped: int = 0
    rows_erased: int = 0
    error: str | None = None

    @property
    def reconciled(self) -> bool:
        return self.rows_read == (self.rows_loaded + self.rows_quarantined + self.duplicates_dropped
                                  + self.rows_erased)


@dataclass
class EntityResult:
    entity: str
    batch_id: str
    sources: list[SourceResult] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.sources)

    @property
    def unreadable(self) -> list[SourceResult]:
        return [s for s in self.sources if s.status == "unreadable"]


@dataclass
class _Part:
    source: str         # store | landing
    source_file: str
    rows: FileRows | None = None
    sha256: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    shared_rows: int = 0  # rows of this file held in a frame shared with other files (JSON Lines batch)
    recheck_ids: list[str] = field(default_factory=list)  # store part: quarantined ids read again by id
    store_cursor: tuple[str, int] | None = None  # store part: (store, change position) it was read up to

    @property
    def rows_read(self) -> int:
        return (self.rows.rows_read if self.rows is not None else 0) + self.shared_rows
    day: date | None = None


#: One chunk as read: (parts with their rows, log rows of files without data, shared JSON Lines frames).
_Chunk = tuple[list[_Part], list[SourceResult], list[pl.DataFrame]]


@dataclass(eq=False)  # compared by identity: `groupby` splits the read stream per entity
class _Opened:
    """An entity whose sources are being read: its store rows, and its landing files grouped in chunks."""

    entity: Entity
    started: datetime
    store_part: _Part | None = None
    log_only: list[SourceResult] = field(default_factory=list)
    chunks: list[list[tuple[Path, _Part]]] = field(default_factory=list)
    known: dict[str, tuple[str, int, int]] = field(default_factory=dict)


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Iterate `items` in a background thread, at most `depth` items ahead of the consumer.

    An exception of the producer is raised in the consumer at the point it happened; when the consumer
    stops early (an error, or it is closed), the producer stops after the item it is working on."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put((done, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="ingest-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        worker.join()


def new_batch_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def entity_order() -> list[str]:
    """Entities sorted so that every referenced entity is loaded before the ones pointing at it."""
    contract = load_contract()
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done or name in path:
            return
        for column in contract.entity(name).columns:
            ref = column.reference
            if ref and ref[0] != name:
                visit(ref[0], (*path, name))
        done.append(name)

    for name in contract.entities:
        visit(name, ())
    return done


def file_day(path: Path) -> date | None:
    match = DAY_FILE.match(path.name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


class Ingestor:
    """Loads entities of one home into its warehouse within one batch (a Dagster run or a CLI call)."""

    def __init__(self, home: CrmHome, con: duckdb.DuckDBPyConnection, batch_id: str | None = None,
                 store_url: str | None = None, mapping: ColumnMapping | None = None,
                 log: Callable[[str], None] | None = None):
        self.home = home
        self.con = con
        self.batch_id = batch_id or new_batch_id()
        self.settings = load_settings(home.settings_file)
        self.contract = self.settings.contract()  # the installation's allowed values (crm.yaml)
        self.mapping = mapping if mapping is not None else load_column_mapping(home.column_mapping)
        self.store_url = store_url or home.operational_db_url
        self._store = None
        self._ref_cache: dict[str, KnownIds] = {}
        self.ignored: list[IgnoredFile] = []  # landing files not read (all of them, as of the last ingest)
        self.ignored_logged: list[IgnoredFile] = []  # those this Ingestor wrote to the load log
        self._tombstones: set[str] | None = None
        self.log = log or (lambda _msg: None)

    # --- sources ----------------------------------------------------------------------------------
    @property
    def store(self):
        if self._store is None:
            if self.store_url.startswith("sqlite") and not Path(self.store_url.split(":///", 1)[1]).exists():
                return None
            from pipelines.lib.store import OperationalStore

            self._store = OperationalStore(self.store_url)
        return self._store

    @property
    def tombstones(self) -> set[str]:
        """Hashes of records erased on request; their rows never come back (pipelines.lib.erasure)."""
        if self._tombstones is None:
            self._tombstones = load_tombstones(self.store) if self.store is not None else set()
        return self._tombstones

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()

    def _watermark(self, con: duckdb.DuckDBPyConnection, entity: Entity) -> int | None:
        """The store change-log position the entity's raw rows are complete up to; None: read everything.

        Not `max(updated_at)`: that is stamped before commit, so an edit committing after a later-stamped
        one had been loaded would fall below it for good. A position kept for another store does not count:
        the cursor is keyed by URL and store identity, so neither another URL nor a store deleted and
        created again under the same URL (its ids start again at 1) is read from the old position."""
        rows = con.execute(f"SELECT position FROM {raw_table('_store_cursor')} "  # noqa: S608
                           "WHERE entity = ? AND store = ?", [entity.name, self.store.cursor_key]).fetchall()
        return rows[0][0] if rows else None

    def _known_files(self, con: duckdb.DuckDBPyConnection, entity: Entity) -> dict[str, tuple[str, int, int]]:
        """Landing files last loaded: path -> (sha256, size, mtime_ns)."""
        rows = con.execute(f"SELECT source_file, sha256, size_bytes, mtime_ns "  # noqa: S608
                                f"FROM {raw_table('_landing_files')} WHERE entity = ?", [entity.name]).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def known_ids(self, entity_name: str) -> KnownIds:
        """Ids of an entity loaded in raw, and those only in quarantine (where, why); cached for the batch."""
        if entity_name not in self._ref_cache:
            target = self.contract.entity(entity_name)
            pk = quote_ident(target.primary_key)
            loaded = self.con.sql(f"SELECT {pk} AS id FROM {raw_table(target)}").pl()  # noqa: S608
            quarantined = self.con.sql(
                f"SELECT record_id AS id, source_file, source_line, reason FROM {raw_table('_quarantine')} AS q "  # noqa: S608
                f"WHERE entity = ? AND record_id IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {raw_table(target)} AS t WHERE CAST(t.{pk} AS VARCHAR) = q.record_id) "
                "ORDER BY record_id, source_file, source_line NULLS FIRST", params=[entity_name]).pl()
            self._ref_cache[entity_name] = KnownIds(
                loaded.get_column("id").cast(pl.String),
                quarantined.cast(PARENT_SCHEMA).unique("id", keep="first", maintain_order=True))
        return self._ref_cache[entity_name]

    def _quarantined_store_ids(self, con: duckdb.DuckDBPyConnection, entity: Entity) -> list[str]:
        """Store ids of the entity held in quarantine: read again on every run, whatever the store's
        change tracking says, so a row fixed in place (even without a new `updated_at`) loads."""
        rows = con.execute(f"SELECT DISTINCT record_id FROM {raw_table('_quarantine')} "  # noqa: S608
                           "WHERE entity = ? AND source_file = ? AND record_id IS NOT NULL ORDER BY 1",
                           [entity.name, f"store:{entity.name}"]).fetchall()
        return [r[0] for r in rows]

    def _with_quarantined_store_rows(self, con: duckdb.DuckDBPyConnection, entity: Entity,
                                     frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
        """The store rows read incrementally plus the quarantined ones not among them, sorted by id;
        and the quarantined ids asked for (those no longer in the store leave the quarantine)."""
        pk = entity.primary_key
        wanted = self._quarantined_store_ids(con, entity)
        missing = sorted(set(wanted) - set(frame.get_column(pk).drop_nulls().to_list())) if wanted else []
        if not missing:
            return frame, wanted
        again = read_store_rows(self.store, entity, missing)
        return pl.concat([frame, again.select(frame.columns)]).sort(pk, nulls_last=True), wanted

    def _files_to_recheck(self, entity: Entity) -> set[str]:
        """Landing files of the entity holding rows quarantined for a reference that may resolve now.

        A row quarantined for its content (a bad value, a malformed line) stays quarantined until its file
        changes, and a changed file is read anyway. A `parent_quarantined` or `unknown_reference` row
        depends on other rows: its file is read again, even unchanged, once the id it refers to is loaded
        (or has left the quarantine). Decided on the writing side, after the parents are committed."""
        clauses = []
        for column in entity.columns:
            if not column.reference:
                continue
            target = self.contract.entity(column.reference[0])
            pk = quote_ident(target.primary_key)
            clauses.append(
                f"(q.field = '{column.name}' AND (EXISTS (SELECT 1 FROM {raw_table(target)} AS t "
                f"WHERE CAST(t.{pk} AS VARCHAR) = q.value) OR (q.reason = 'parent_quarantined' AND NOT EXISTS "
                f"(SELECT 1 FROM {raw_table('_quarantine')} AS p WHERE p.entity = '{target.name}' "
                "AND p.record_id = q.value))))")
        if not clauses or not entity.in_landing:
            return set()
        rows = self.con.execute(
            f"SELECT DISTINCT source_file FROM {raw_table('_quarantine')} AS q "  # noqa: S608 - contract names
            "WHERE q.entity = ? AND q.reason IN ('parent_quarantined', 'unknown_reference') "
            f"AND q.source_file NOT LIKE 'store:%' AND ({' OR '.join(clauses)})", [entity.name]).fetchall()
        return {r[0] for r in rows}

    def _log_ignored(self) -> None:
        """Name every landing file that is not read in the load log (status `ignored`), once per batch:
        the first ingest of a batch (a Dagster run ingests each entity in its own step) writes them."""
        found = ignored_landing_files(self.home, self.contract)
        logged = {r[0] for r in self.con.execute(
            f"SELECT source_file FROM {raw_table('_load_log')} WHERE batch_id = ? AND status = 'ignored'",  # noqa: S608
            [self.batch_id]).fetchall()}
        new = [f for f in found if f.source_file not in logged]
        if new:
            now = _now()
            append_load_log(self.con, pl.DataFrame([{
                "batch_id": self.batch_id, "entity": f.entity, "source_file": f.source_file, "rows_read": 0,
                "rows_loaded": 0, "rows_quarantined": 0, "duplicates_dropped": 0, "rows_erased": 0,
                "status": "ignored", "error": f.message, "started_at": now, "finished_at": now} for f in new],
                schema={c: _POLARS_TYPES[t] for c, t in LOAD_LOG_COLUMNS.items()}))
            for f in new:
                self.log(f.message)
        self.ignored, self.ignored_logged = found, new

    # --- the main entry -----------------------------------------------------------------------------
    def ingest(self, entity_name: str, force: bool = False, days: Iterable[date] | None = None) -> EntityResult:
        """Load one entity. `force` re-reads unchanged files; `days` limits a day-partitioned entity.

        Files are read, checked and written a chunk at a time (all files at once, or for day-partitioned
        entities `DAYS_PER_TRANSACTION` days), so memory is bounded by a chunk, not by the history.
        """
        return self.ingest_many([entity_name], force=force, days=days)[0]

    def ingest_many(self, entity_names: Iterable[str], force: bool = False,
                    days: Iterable[date] | None = None) -> list[EntityResult]:
        """Load entities in the order given, one transaction per chunk, as `ingest` does for one.

        Reading (file I/O, hashing, parsing, the store query) runs one chunk ahead in a background thread
        (`read_ahead`), so it overlaps the checks and the warehouse write of the chunk before it. Reading
        never depends on what is being written: references are checked by the writing side, after the
        entities they point at are committed.
        """
        names = list(entity_names)
        self._log_ignored()
        write_settings_tables(self.con, self.settings)  # what the marts read the vocabulary from
        _ = self.tombstones  # loaded here, before the reading thread starts using the store
        stream = read_ahead(self._read_stream(names, force, days))
        return [self._load(opened, (chunk for _, chunk in items if chunk is not None))
                for opened, items in groupby(stream, key=itemgetter(0))]

    def _read_stream(self, names: list[str], force: bool, days: Iterable[date] | None
                     ) -> Iterator[tuple[_Opened, _Chunk | None]]:
        """(entity, None) when an entity starts, then (entity, chunk) for each chunk of its sources."""
        reader = self.con.cursor()  # this thread's own connection to the warehouse (committed state)
        try:
            for name in names:
                opened = self._open(reader, name, force, days)
                yield opened, None
                for chunk in opened.chunks:
                    yield opened, self._read_chunk(opened.entity, chunk, opened.known, force)
        finally:
            reader.close()

    def _open(self, con: duckdb.DuckDBPyConnection, entity_name: str, force: bool,
              days: Iterable[date] | None) -> _Opened:
        """What to read for an entity: the store rows past the watermark and the landing files by chunk."""
        entity = self.contract.entity(entity_name)
        opened = _Opened(entity, _now())
        if entity.in_store and self.store is not None:
            position = self.store.change_position()  # taken first: what commits meanwhile is read again
            since = None if force or position is None else self._watermark(con, entity)
            frame = read_store_frame(self.store, entity, since)
            frame, recheck = self._with_quarantined_store_rows(con, entity, frame)
            opened.store_part = _Part("store", f"store:{entity.name}",
                                      FileRows(frame.with_columns(pl.lit(None, dtype=pl.Int64).alias(ROW))),
                                      store_cursor=None if position is None else (self.store.cursor_key, position))
            opened.store_part.recheck_ids = recheck
        wanted_days = set(days) if days is not None else None
        candidates: list[tuple[Path, _Part]] = []
        for path in landing_files(self.home, entity, self.contract) if entity.in_landing else []:
            part = _Part("landing", path.relative_to(self.home.landing).as_posix())
            if entity.partition_by_day:
                part.day = file_day(path)
                if part.day is None:
                    opened.log_only.append(SourceResult(part.source_file, "unreadable", error=(
                        f"{part.source_file}: interaction files must be named by day "
                        "(YYYY-MM-DD.csv|jsonl|parquet); rename it.")))
                    continue
                if wanted_days is not None and part.day not in wanted_days:
                    continue
            candidates.append((path, part))

        if entity.partition_by_day:
            candidates.sort(key=lambda c: (c[1].day, c[1].source_file))
            days_sorted = sorted({p.day for _, p in candidates})
            groups = [set(days_sorted[i:i + DAYS_PER_TRANSACTION])
                      for i in range(0, len(days_sorted), DAYS_PER_TRANSACTION)]
            opened.chunks = [[c for c in candidates if c[1].day in g] for g in groups]
        else:
            opened.chunks = [candidates]
        opened.known = self._known_files(con, entity) if entity.in_landing else {}
        return opened

    def _load(self, opened: _Opened, chunks: Iterator[_Chunk]) -> EntityResult:
        """Check and write the chunks of one entity as they arrive; log rows of files without data last."""
        entity, started, store_part = opened.entity, opened.started, opened.store_part
        result = EntityResult(entity.name, self.batch_id)
        pending = list(opened.log_only)  # log rows of files without data (skipped, unreadable): written once
        recheck = self._files_to_recheck(entity)  # parents are committed by now
        by_file = {part.source_file: (path, part) for items in opened.chunks for path, part in items}
        first = True
        for chunk in chunks:
            parts, logs, shared = self._recheck(entity, chunk, recheck, by_file) if recheck else chunk
            if first and store_part is not None:
                parts.insert(0, store_part)
                shared = [f.with_columns(pl.col(SRC) + 1) for f in shared]
            first = False
            if parts:
                result.sources.extend(self._load_chunk(entity, parts, shared, started, logs + pending))
                pending = []
            else:
                pending.extend(logs)
            result.sources.extend(logs)
        if first and store_part is not None:  # no landing chunk at all: the store rows alone
            result.sources.extend(self._load_chunk(entity, [store_part], [], started, pending))
            pending = []
        if pending:
            self._write(entity, [], started, pending, None, None, None)
        result.sources.extend(opened.log_only)
        self._ref_cache.pop(entity.name, None)
        return result

    def _recheck(self, entity: Entity, chunk: _Chunk, recheck: set[str],
                 by_file: dict[str, tuple[Path, _Part]]) -> _Chunk:
        """Read the unchanged files of a chunk that `_files_to_recheck` named after all (for a
        day-partitioned entity every file of their days: a day is replaced as a whole), on this side,
        so their rows are checked against the parents committed in this very batch."""
        parts, logs, shared = chunk
        skipped = [log for log in logs if log.status == "skipped_unchanged" and log.source_file in by_file]
        days = {by_file[log.source_file][1].day for log in skipped if log.source_file in recheck}
        again = [log.source_file for log in skipped if log.source_file in recheck
                 or (entity.partition_by_day and by_file[log.source_file][1].day in days)]
        if not again:
            return chunk
        more_parts, more_logs, more_shared = self._read_chunk(entity, [by_file[f] for f in again], {}, True)
        offset, names = len(parts), set(again)
        return ([*parts, *more_parts], [log for log in logs if log.source_file not in names] + more_logs,
                [*shared, *(f.with_columns(pl.col(SRC) + offset) for f in more_shared)])

    def _read_chunk(self, entity: Entity, chunk: list[tuple[Path, _Part]], known: dict[str, tuple[str, int, int]],
                    force: bool) -> tuple[list[_Part], list[SourceResult], list[pl.DataFrame]]:
        """Hash and parse the files of a chunk; unchanged files are skipped, unreadable ones logged."""
        parts: list[_Part] = []
        logs: list[SourceResult] = []
        jsonl: list[tuple[bytes, _Part, Path]] = []
        contents = []
        for path, part in chunk:
            stat = path.stat()
            part.size, part.mtime_ns = stat.st_size, stat.st_mtime_ns
            seen = known.get(part.source_file)
            if not force and seen and seen[1] == part.size and seen[2] == part.mtime_ns:
                part.sha256 = seen[0]  # same size and mtime: unchanged without reading it
                contents.append((path, part, None))
                continue
            data = path.read_bytes()
            part.sha256, part.size = hashlib.sha256(data).hexdigest(), len(data)
            contents.append((path, part, data))
        # a day is replaced as a whole: if one of its files changed, all of its files are read
        changed_days = {p.day for _, p, _ in contents if known.get(p.source_file, ("",))[0] != p.sha256}
        for path, part, data in contents:
            unchanged = known.get(part.source_file, ("",))[0] == part.sha256
            if not force and unchanged and (part.day is None or part.day not in changed_days):
                logs.append(SourceResult(part.source_file, "skipped_unchanged"))
                continue
            if data is None:
                data = path.read_bytes()
            try:  # a broken mapping section fails the files it concerns, not the other entities
                mapping = mapping_for_file(self.mapping, entity.name, path)
            except MappingError as exc:
                logs.append(SourceResult(part.source_file, "unreadable", error=str(exc)))
                self.log(str(exc))
                continue
            if file_format(path) == "jsonl" and mapping.batchable and sidecar_path(path) is None:
                jsonl.append((data, part, path))
                parts.append(part)
                continue
            try:
                part.rows = read_file(path, entity, mapping, part.source_file, data=data)
                parts.append(part)
            except UnreadableFileError as exc:
                logs.append(SourceResult(part.source_file, "unreadable", error=str(exc)))
                self.log(str(exc))
        shared: list[pl.DataFrame] = []
        if jsonl:
            batch = read_jsonl_many([(d, p.source_file) for d, p, _ in jsonl], entity,
                                    self.mapping.for_entity(entity.name),
                                    paths=[path for _, _, path in jsonl])
            for i, (_, part, _) in enumerate(jsonl):
                if i in batch.errors:
                    logs.append(SourceResult(part.source_file, "unreadable", error=str(batch.errors[i])))
                    self.log(str(batch.errors[i]))
                    parts.remove(part)
                else:
                    part.rows = FileRows(pl.DataFrame(), batch.malformed.get(i, []))
                    part.shared_rows = batch.rows_read.get(i, 0) - len(part.rows.malformed)
            index = {i: parts.index(p) for i, (_, p, _) in enumerate(jsonl) if i not in batch.errors}
            if index and batch.frame.height:
                shared.append(batch.frame.with_columns(
                    pl.col(FILE_INDEX).replace_strict(index, return_dtype=pl.Int64).alias(SRC)))
        return parts, logs, shared

    # --- one transaction ------------------------------------------------------------------------------
    def _load_chunk(self, entity: Entity, parts: list[_Part], shared: list[pl.DataFrame], started: datetime,
                    log_only: list[SourceResult]) -> list[SourceResult]:
        texts, malformed, erased_malformed = [], [], {}
        for frame in shared:
            texts.append(frame.select([*entity.column_names, SRC, pl.col(ROW).cast(pl.Int64).alias(LINE)]))
        for i, part in enumerate(parts):
            rows = part.rows
            if rows.frame.width:
                frame = to_text(rows.frame)
                present = [c for c in entity.column_names if c in frame.columns]
                texts.append(frame.select(
                    [pl.col(c).cast(pl.String) for c in present]
                    + [pl.lit(i, dtype=pl.Int64).alias(SRC), pl.col(ROW).cast(pl.Int64).alias(LINE)]))
            for bad in rows.malformed:  # rows the reader rejected (malformed, or e.g. an unmapped value)
                if malformed_of_erased(self.tombstones, entity.name, bad.record_id, bad.value):
                    erased_malformed[i] = erased_malformed.get(i, 0) + 1
                    continue
                malformed.append({SRC: i, LINE: bad.line, "record_id": bad.record_id, "field": bad.field,
                                  "reason": bad.reason, "value": bad.value,
                                  "message": bad.message or f"line {bad.line} of {part.source_file} has a "
                                             "different number of fields than the header (or is not a JSON "
                                             "object); fix the line's quoting or separators."})
        text = pl.concat(texts, how="diagonal") if texts else pl.DataFrame()
        for column in entity.column_names:
            if column not in text.columns:
                text = text.with_columns(pl.lit(None, dtype=pl.String).alias(column))
        text = text.select([*entity.column_names, SRC, LINE]) if texts else pl.DataFrame(
            schema={**{c: pl.String for c in entity.column_names}, SRC: pl.Int64, LINE: pl.Int64})
        text, erased = drop_erased(self.con, self.tombstones, entity.name, text)
        erased_counts = dict(erased.group_by(SRC).len().iter_rows()) if erased.height else {}
        bad = pl.DataFrame(malformed, schema=QUARANTINE_SCHEMA)
        part_days = {i: p.day for i, p in enumerate(parts)} if entity.partition_by_day else None
        checked = check_batch(entity, text, bad, self.known_ids, part_days,
                              {i: p.source_file for i, p in enumerate(parts)})

        sources = []
        q_counts = dict(checked.quarantine.group_by(SRC).len().iter_rows())
        for i, part in enumerate(parts):
            sources.append(SourceResult(
                part.source_file, "loaded", rows_read=part.rows_read,
                rows_loaded=checked.loaded_counts.get(i, 0), rows_quarantined=q_counts.get(i, 0),
                duplicates_dropped=checked.duplicates.get(i, 0) + (part.rows.collapsed if part.rows else 0),
                rows_erased=erased_counts.get(i, 0) + erased_malformed.get(i, 0)))
        store_part = next((p for p in parts if p.source == "store"), None)
        store_ids = (store_part.rows.frame.get_column(entity.primary_key).drop_nulls().to_list()
                     + store_part.recheck_ids
                     if store_part is not None and entity.primary_key in store_part.rows.frame.columns else [])
        days = sorted({p.day for p in parts}) if entity.partition_by_day else None
        self._write(entity, parts, started, sources + log_only, checked, store_ids, days)
        write_load_warnings(self.con, self.batch_id, entity.name,
                            [(p.source_file, w) for p in parts if p.rows is not None for w in p.rows.warnings])
        return sources

    def _write(self, entity: Entity, parts: list[_Part], started: datetime, sources: list[SourceResult],
               checked, store_ids, days) -> None:
        now = _now()
        files = {i: p.source_file for i, p in enumerate(parts)}
        kinds = {i: p.source for i, p in enumerate(parts)}
        if checked is not None:
            rows = checked.loaded.with_columns(
                pl.col(SRC).replace_strict(kinds, return_dtype=pl.String).alias("_source"),
                pl.col(SRC).replace_strict(files, return_dtype=pl.String).alias("_source_file"),
                pl.col(LINE).alias("_source_line"),
                pl.lit(self.batch_id).alias("_batch_id"),
                pl.lit(now).cast(pl.Datetime("us")).alias("_ingested_at"),
            )
            quarantine = checked.quarantine.with_columns(
                pl.lit(self.batch_id).alias("batch_id"), pl.lit(entity.name).alias("entity"),
                pl.col(SRC).replace_strict(files, return_dtype=pl.String).alias("source_file"),
                pl.col(LINE).alias("source_line"), pl.lit(now).cast(pl.Datetime("us")).alias("quarantined_at"))
        else:
            rows = pl.DataFrame(schema={**{c.name: _POLARS_TYPES[DUCKDB_TYPES[c.type]] for c in entity.columns},
                                        "_source": pl.String, "_source_file": pl.String,
                                        "_source_line": pl.Int64, "_batch_id": pl.String,
                                        "_ingested_at": pl.Datetime("us")})
            quarantine = pl.DataFrame(schema={c: _POLARS_TYPES[t] for c, t in QUARANTINE_COLUMNS.items()})
        log = pl.DataFrame([{
            "batch_id": self.batch_id, "entity": entity.name, "source_file": s.source_file,
            "rows_read": s.rows_read, "rows_loaded": s.rows_loaded, "rows_quarantined": s.rows_quarantined,
            "duplicates_dropped": s.duplicates_dropped, "rows_erased": s.rows_erased, "status": s.status, "error": s.error,
            "started_at": started, "finished_at": now} for s in sources],
            schema={c: _POLARS_TYPES[t] for c, t in LOAD_LOG_COLUMNS.items()})
        landing = pl.DataFrame([{
            "entity": entity.name, "source_file": p.source_file, "sha256": p.sha256, "size_bytes": p.size,
            "mtime_ns": p.mtime_ns, "batch_id": self.batch_id, "loaded_at": now} for p in parts if p.source == "landing"],
            schema={c: _POLARS_TYPES[t] for c, t in LANDING_FILES_COLUMNS.items()})
        write_plan(self.con, LoadPlan(
            entity=entity, rows=rows, quarantine=quarantine.select(list(QUARANTINE_COLUMNS)), load_log=log,
            landing_files=landing, batch_id=self.batch_id, written_at=now,
            replace_quarantine_files=[p.source_file for p in parts if p.source == "landing"],
            replace_quarantine_ids=store_ids or [],
            store_file=f"store:{entity.name}" if entity.in_store else None, days=days,
            store_cursor=next((p.store_cursor for p in parts if p.store_cursor), None)))


def ingest_all(home: CrmHome, batch_id: str | None = None, entities: Iterable[str] | None = None,
               force: bool = False, log: Callable[[str], None] | None = None,
               store_url: str | None = None) -> list[EntityResult]:
    """Load every entity (dependency order) in one process: the path tests and the benchmark use.

    `store_url` overrides the home's operational database URL (e.g. a PostgreSQL server)."""
    from pipelines.lib.warehouse import warehouse_writer

    names = [n for n in entity_order() if entities is None or n in set(entities)]
    with warehouse_writer(home.warehouse) as con:
        ingestor = Ingestor(home, con, batch_id, store_url=store_url, log=log)
        try:
            return ingestor.ingest_many(names, force=force)
        finally:
            ingestor.close()
