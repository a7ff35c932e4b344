"""`crm import ENTITY[,ENTITY...] FILE`: one export file into the platform, with a report of every row.

Store entities (deals, contacts, leads, users, teams, tasks, stage history; accounts, which arrive from
both) are upserted into the operational store through `OperationalStore.upsert_many`: validated as the
portal validates, audited with the actor `import:<file name>`, version + 1 only where values changed.
Landing entities (orders, products, tickets, ...) are checked with the same readers and row checks
`crm run` uses, so the report shows now what the next run will quarantine, and then the file is placed
in `landing/<entity>/` (one file feeding several entities is hard-linked into each folder), with its
mapping section beside it as `<file>.mapping.yaml`, which `crm run` applies to that file. Interactions
are partitioned by day: their rows are written as `landing/interactions/<day>_<file stem>.csv` in the
contract's columns instead.

The file is read a piece at a time (`chunks.read_pieces`), so memory does not grow with its size.
`dry_run` reads and checks everything and writes nothing at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from pipelines.contract import Contract, Entity
from pipelines.contract.validate import ROW, to_text
from pipelines.lib.erasure import drop_erased, load_tombstones
from pipelines.lib.home import CrmHome
from pipelines.lib.importer.chunks import CHUNK_BYTES, Piece, read_pieces
from pipelines.lib.importer.placing import DayFiles, place_file
from pipelines.lib.importer.references import References
from pipelines.lib.importer.report import SAMPLE_ROWS, EntityReport, Fault, ImportReport
from pipelines.lib.ingest.checks import LINE, QUARANTINE_SCHEMA, SRC, check_batch
from pipelines.lib.ingest.mapping import ColumnMapping, MappingError, load_column_mapping
from pipelines.lib.ingest.readers import FileRows, UnreadableFileError
from pipelines.lib.ingest.run import entity_order
from pipelines.lib.store import OperationalStore, StaleEditError, store_location
from pipelines.presets import resolve_mapping


class ImportFailed(ValueError):
    """The import cannot start or go on (unknown entity, missing file, unusable mapping, no store);
    the message is one sentence saying what to do. Nothing was written."""


def import_file(home: CrmHome, entities: list[str], path: Path, mapping: str | None = None,
                dry_run: bool = False, console: Console | None = None,
                chunk_bytes: int = CHUNK_BYTES) -> ImportReport:
    """Import `path` as `entities` (contract names) with `mapping` (a mapping file or a preset name)."""
    started = time.perf_counter()
    contract = _contract(home)
    names = _entity_names(contract, entities)
    path = Path(path)
    if not path.is_file():
        raise ImportFailed(f"{path} does not exist or is not a file; give the path of the export to import.")
    mapping_path, mapping_label, explicit = _mapping_source(home, mapping)
    try:
        column_mapping = load_column_mapping(mapping_path) if mapping_path else ColumnMapping()
    except MappingError as exc:
        raise ImportFailed(str(exc)) from exc
    try:
        entity_mappings = {n: column_mapping.for_entity(n) for n in names}
    except MappingError as exc:
        raise ImportFailed(str(exc)) from exc
    if explicit:
        missing = [n for n in names if n not in column_mapping.entities]
        if missing:
            raise ImportFailed(f"{mapping_label} has no section for {', '.join(missing)}; import only the "
                               f"entities it maps ({', '.join(column_mapping.entities) or 'none'}) or add a "
                               "section for each.")
    report = ImportReport(file=path.name, mapping=mapping_label, dry_run=dry_run,
                          started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    needs_store = any(contract.entity(n).in_store for n in names)
    # the home's store validates against crm.yaml itself, as for portal edits (OperationalStore.for_home)
    store = _open_store(home, dry_run) if needs_store else None
    placed: Path | None = None  # the first landing copy of the file (others are hard-linked to it)
    try:
        refs = References(home, contract, store)
        wanted = _referenced_later(contract, names)
        with _progress(console) as advance:
            for name in names:
                entity = contract.entity(name)
                entity_mapping = entity_mappings[name]
                pieces = _tracked(read_pieces(path, entity, entity_mapping, path.name, chunk_bytes),
                                  advance, name, path.stat().st_size)
                if entity.in_store:
                    result = _import_store(store, entity, pieces, path, dry_run, refs, name in wanted)
                else:
                    result = _import_landing(home, entity, pieces, path, refs, name in wanted, dry_run)
                    if not dry_run:
                        placed = place_file(home, entity, path, placed, mapping_path if explicit else None,
                                            result)
                report.entities.append(result)
    except (UnreadableFileError, StaleEditError) as exc:
        raise ImportFailed(str(exc)) from exc
    finally:
        if store is not None:
            store.dispose()
    report.seconds = time.perf_counter() - started
    return report


def write_report(report: ImportReport, target: Path) -> Path:
    """The machine-readable report (`--report FILE.json`)."""
    import json

    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    return target


# --- setup ---------------------------------------------------------------------------------------------
def _contract(home: CrmHome) -> Contract:
    """The contract with the installation's allowed values (crm.yaml), as `crm run` validates."""
    from pipelines.lib.settings import SettingsError, load_settings

    try:
        return load_settings(home.settings_file).contract()
    except SettingsError as exc:
        raise ImportFailed(str(exc)) from exc


def _entity_names(contract: Contract, entities: list[str]) -> list[str]:
    names = [n.strip() for n in entities if n.strip()]
    if not names:
        raise ImportFailed("name the entity to import, e.g. `crm import opportunities deals.csv`.")
    unknown = [n for n in names if n not in contract.entities]
    if unknown:
        raise ImportFailed(f"{', '.join(unknown)} is not an entity of the import contract; use one of "
                           f"{', '.join(contract.entities)}.")
    order = entity_order()
    return sorted(dict.fromkeys(names), key=order.index)  # referenced entities first


def _mapping_source(home: CrmHome, mapping: str | None) -> tuple[Path | None, str | None, bool]:
    """(file, label for messages, given explicitly). Without --mapping, the home's column_mapping.yaml
    applies (as in `crm run`), if there is one."""
    if mapping:
        try:
            found = resolve_mapping(mapping)
        except LookupError as exc:
            raise ImportFailed(str(exc)) from exc
        return found, mapping, True
    if home.column_mapping.exists():
        return home.column_mapping, "landing/column_mapping.yaml", False
    return None, None, False


def _open_store(home: CrmHome, dry_run: bool) -> OperationalStore:
    url = home.operational_db_url
    if url.startswith("sqlite:///") and not Path(url.split(":///", 1)[1]).exists():
        if dry_run:
            raise ImportFailed(f"the operational store {url} does not exist yet; run `crm store migrate` "
                               "first (a dry run creates nothing).")
        home.ensure()
    store = OperationalStore.for_home(home)
    if dry_run:
        if "schema_migrations" not in _tables(store):
            store.dispose()
            raise ImportFailed(f"the operational store {store.display_url} has no tables yet; run "
                               "`crm store migrate` first (a dry run creates nothing).")
    else:
        store.migrate()
    return store


def _tables(store: OperationalStore) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(store.engine).get_table_names())


def _referenced_later(contract: Contract, names: list[str]) -> set[str]:
    """Entities of this import that a later one refers to (their ids are remembered for its checks)."""
    out = set()
    for i, name in enumerate(names):
        for later in names[i + 1:]:
            if any(c.reference and c.reference[0] == name for c in contract.entity(later).columns):
                out.add(name)
    return out


# --- reading --------------------------------------------------------------------------------------------
@contextmanager
def _progress(console: Console | None) -> Iterator[Callable[[str, int, int], None]]:
    if console is None:
        yield lambda *_: None
        return
    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        def advance(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(f"reading {name}", total=total)
            progress.update(tasks[name], completed=done)

        yield advance


def _tracked(pieces: Iterator[Piece], advance: Callable[[str, int, int], None], name: str,
             total: int) -> Iterator[FileRows]:
    for piece in pieces:
        yield piece.rows
        advance(name, piece.bytes_done, total)


def _malformed_faults(rows: FileRows, entity: Entity, file: str) -> list[Fault]:
    return [Fault(file, bad.line, entity.name, bad.record_id, getattr(bad, "field", None),
                  getattr(bad, "reason", "malformed_row"), bad.value, getattr(bad, "message", None) or
                  f"line {bad.line} of {file} has a different number of fields than the header (or is not "
                  "a JSON object); fix the line's quoting or separators.") for bad in rows.malformed]


def _take_reader_notes(report: EntityReport, rows: FileRows) -> None:
    """What the reader says besides the rows: lines folded by `collapse` (counted as duplicates) and its
    warnings (e.g. repeats that disagreed), as `crm run` will log them."""
    report.duplicates += getattr(rows, "collapsed", 0)
    for warning in getattr(rows, "warnings", []):
        report.warn(warning.message)


def _sample(report: EntityReport, entity: Entity, frame: pl.DataFrame) -> None:
    if report.sample or not frame.height:
        return
    head = to_text(frame.head(SAMPLE_ROWS))
    columns = [c for c in entity.column_names if c in head.columns]
    report.sample = [{"line": row.get(ROW), **{c: row.get(c) for c in columns}}
                     for row in head.select([ROW, *columns] if ROW in head.columns else columns).to_dicts()]


def _add_faults(report: EntityReport, faults: pl.DataFrame, file: str, line_column: str) -> None:
    for row in faults.iter_rows(named=True):
        report.add_fault(Fault(file, row[line_column], report.entity, row["record_id"], row["field"],
                               row["reason"], row["value"], row["message"]))


# --- store entities ---------------------------------------------------------------------------------------
def _import_store(store: OperationalStore, entity: Entity, pieces: Iterator[FileRows], path: Path,
                  dry_run: bool, refs: References, remember: bool) -> EntityReport:
    report = EntityReport(entity.name, "store")
    actor = f"import:{path.name}"
    landed = refs.from_landing(entity)
    for rows in pieces:
        report.rows_read += rows.rows_read
        _take_reader_notes(report, rows)
        for fault in _malformed_faults(rows, entity, path.name):
            report.add_fault(fault)
        frame = rows.frame
        _sample(report, entity, frame)
        if not frame.height:
            continue
        result = store.upsert_many(entity.name, frame, actor, path.name, dry_run=dry_run,
                                   pending_ids={**landed, **refs.pending} if landed else refs.pending)
        report.inserted += len(result.inserted)
        report.updated += len(result.updated)
        report.unchanged += result.unchanged
        report.kept_newer += len(result.kept_newer)
        report.duplicates += result.duplicates
        report.superseded += result.superseded
        report.erased += result.erased
        _add_faults(report, result.faults, path.name, "line")
        for column in result.filled:
            report.warn(f"{path.name} has no {column} column: set to "
                        + ("false" if column == "is_archived" else "the time of the import")
                        + " (map a column of the file to it to keep the source's value).")
        if result.kept_newer:
            line, record_id = result.kept_newer[0]
            report.warn(f"{len(result.kept_newer):,} row(s) are older than the store's record and were left as "
                        f"they are (first: line {line}, {record_id}); the store's record was changed later.")
        if dry_run and remember:  # once written, the store itself knows them
            refs.remember(entity.name, result.inserted)
    where = f"operational store {store_location(store.url)}"
    report.outputs.append(f"{where}: audit rows by import:{path.name}" if not dry_run else f"{where} (unchanged)")
    return report


# --- landing entities -------------------------------------------------------------------------------------
def _import_landing(home: CrmHome, entity: Entity, pieces: Iterator[FileRows], path: Path,
                    refs: References, remember: bool, dry_run: bool) -> EntityReport:
    """Check the file as `crm run` will (same readers, same row checks) and count what it will load."""
    report = EntityReport(entity.name, "landing")
    tombstones = load_tombstones(refs.store) if refs.store is not None else _landing_tombstones(home)
    days = DayFiles(home, entity, path) if entity.partition_by_day and not dry_run else None
    for rows in pieces:
        report.rows_read += rows.rows_read
        _take_reader_notes(report, rows)
        frame = to_text(rows.frame)
        _sample(report, entity, frame)
        text = frame.select(
            [(pl.col(c) if c in frame.columns else pl.lit(None, dtype=pl.String)).alias(c)
             for c in entity.column_names]
            + [pl.lit(0, dtype=pl.Int64).alias(SRC), pl.col(ROW).cast(pl.Int64).alias(LINE)])
        if tombstones:
            with duckdb.connect() as con:
                text, erased = drop_erased(con, tombstones, entity.name, text)
            report.erased += erased.height
        malformed = pl.DataFrame(
            [{SRC: 0, LINE: f.line, "record_id": f.record_id, "field": f.field, "reason": f.reason,
              "value": f.value, "message": f.message} for f in _malformed_faults(rows, entity, path.name)],
            schema=QUARANTINE_SCHEMA)
        checked = check_batch(entity, text, malformed, lambda name, t=text: refs.ids(name, entity, t))
        loaded = sum(checked.loaded_counts.values())
        report.inserted += loaded
        report.duplicates += sum(checked.duplicates.values())
        _add_faults(report, checked.quarantine, path.name, LINE)
        if remember:
            refs.remember(entity.name, checked.loaded.get_column(entity.primary_key).to_list())
        if days is not None:
            days.write(text)
    unchecked = refs.unchecked.pop(entity.name, [])
    if unchecked:
        names = ", ".join(unchecked)
        report.warn(f"references to {names} were not checked: none are loaded yet (import them or run "
                    "`crm run` first); `crm run` checks them.")
    if days is not None:
        report.outputs.extend(days.written())
    return report


def _landing_tombstones(home: CrmHome) -> set[str]:
    url = home.operational_db_url
    if url.startswith("sqlite:///") and not Path(url.split(":///", 1)[1]).exists():
        return set()
    store = OperationalStore(url)
    try:
        return load_tombstones(store)
    finally:
        store.dispose()
