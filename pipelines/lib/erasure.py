"""Erasing a customer on request (right to erasure).

`erase_customer` removes a customer, every account identity resolution joined to it, every row that
carries their email, phone or name-with-city (a webshop row of theirs that was quarantined, so identity
resolution never linked it), their contacts and every record that refers to them (deals and their stage
history, tasks, leads that became the customer, orders and lines, invoices and payments, tickets,
contracts, interactions, campaign memberships) from:
- the operational store, including the audit rows that held their data (SQLite: secure_delete, VACUUM;
  PostgreSQL: VACUUM FULL of the tables touched, so no dead row versions keep the values);
- every table of the warehouse (raw, intermediate, marts, scores, quarantine by id, by landing line and by
  quarantined value), then rewrites the DuckDB file so deleted values do not linger in free blocks;
- the landing files (rewritten without their rows);
- the published snapshots (a clean one published, every older one deleted).
It records one audit entry without personal data (the hash of the customer id), and writes tombstones
(`erased_subjects`: hashes of "<entity>:<id>") that ingestion checks, so an old export delivered again
does not bring them back (`drop_erased`).

An erasure is journaled and resumable (`pipelines.lib.erasure_journal`): the plan (ids to remove, the
person's identifiers as hashes) is written to `$CRM_HOME/erasure/<customer hash>.json` before anything is
removed, then the steps run in order, tombstones first so no ingest brings the person back mid-way, each
recorded in the journal when done. Every step is idempotent, so an erasure killed at any point is
finished by running `crm erase --customer ID` again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
from sqlalchemy import text

from pipelines.contract import Contract, Entity, load_contract
from pipelines.lib.erasure_journal import STEPS, ErasureBusyError, Journal, PersonKeys, erasure_lock
from pipelines.lib.home import CrmHome
from pipelines.lib.snapshot import current_snapshot_path, publish
from pipelines.lib.store import CHANGES_TABLE, OperationalStore
from pipelines.lib.warehouse import WarehouseLockedError, connect_writer, quote_ident

#: Entities a customer's records refer to that are not the customer's own (reps, catalogue, campaigns).
NOT_THEIRS = frozenset({"users", "teams", "products", "product_prices", "campaigns"})
#: Mart columns that hold an account id under another name.
EXTRA_ACCOUNT_COLUMNS = ("customer_key", "matched_account_id", "converted_account_id")
#: How long a step waits for a running pipeline to let go of the warehouse.
WAREHOUSE_WAIT_SECONDS = 120.0
#: Rounds of "identifiers -> more rows -> their identifiers"; one or two suffice in practice.
IDENTITY_ROUNDS = 3
TEXT_SUFFIXES = (".csv", ".jsonl", ".json", ".ndjson")

StepHook = Callable[[str], None]


class ErasureError(RuntimeError):
    """The erasure could not be done; the message says what to do."""


@dataclass
class ErasureReport:
    customer_hash: str
    records: dict[str, int] = field(default_factory=dict)  # entity -> ids erased
    warehouse_rows: int = 0
    landing_rows: int = 0
    landing_files: list[str] = field(default_factory=list)
    snapshot: str | None = None
    resumed: bool = False               # an interrupted erasure was finished
    already_erased: bool = False        # nothing was left to do
    finished_at: str | None = None


def subject_hash(entity: str, record_id: str) -> str:
    return hashlib.sha256(f"{entity}:{record_id}".encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _children(contract: Contract) -> list[tuple[str, str, str]]:
    """(child entity, fk column, parent entity) for every reference except to users/teams/catalogue."""
    return [(e.name, c.name, c.reference[0]) for e in contract.entities.values() for c in e.columns
            if c.reference and c.reference[0] not in NOT_THEIRS]


def _personal_entities(contract: Contract) -> list[Entity]:
    """Entities whose rows name a customer or contact (personal columns), reps and catalogue aside."""
    return [e for e in contract.entities.values() if e.pii_columns and e.name not in NOT_THEIRS]


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _store_rows(store: OperationalStore, entity: str, column: str, values: set[str]) -> list[dict]:
    rows: list[dict] = []
    with store.engine.connect() as conn:
        for chunk in _chunks(sorted(values)):
            marks = ", ".join(f":p{j}" for j in range(len(chunk)))
            result = conn.execute(text(f"SELECT * FROM {entity} WHERE {column} IN ({marks})"),
                                  {f"p{j}": v for j, v in enumerate(chunk)})
            rows += [dict(r._mapping) for r in result]
    return rows


def _raw_rows(con: duckdb.DuckDBPyConnection | None, entity: str, column: str, values: set[str],
              select: str = "*") -> list[dict]:
    if con is None or not values or not _has_table(con, "raw", entity):
        return []
    cur = con.execute(f"select {select} from raw.{quote_ident(entity)} "
                      f"where {quote_ident(column)} in (select unnest(?::varchar[]))", [sorted(values)])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _ids_in(con: duckdb.DuckDBPyConnection | None, store: OperationalStore, entity: str, column: str,
            values: set[str], contract: Contract) -> set[str]:
    """Primary keys of `entity` rows whose `column` is one of `values`, in the warehouse and the store."""
    if not values:
        return set()
    ent = contract.entity(entity)
    pk = ent.primary_key
    found = {r[pk] for r in _raw_rows(con, entity, column, values, quote_ident(pk))}
    if ent.in_store:
        found |= {r[pk] for r in _store_rows(store, entity, column, values)}
    return found


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? "
                            "and table_name = ? and table_catalog = current_database()",
                            [schema, table]).fetchall()[0][0])


def _expand(con: duckdb.DuckDBPyConnection | None, store: OperationalStore, ids: dict[str, set[str]],
            contract: Contract) -> None:
    """Add, in place, every record that refers (directly or through others) to one already in `ids`."""
    edges = _children(contract)
    changed = True
    while changed:
        changed = False
        for child, column, parent in edges:
            new = _ids_in(con, store, child, column, ids[parent], contract) - ids[child]
            if new:
                ids[child] |= new
                changed = True


def _identity_group(con: duckdb.DuckDBPyConnection | None, accounts: set[str]) -> set[str]:
    """The accounts identity resolution joined to any of `accounts`."""
    if con is None or not _has_table(con, "intermediate", "int_customers_resolved"):
        return set(accounts)
    rows = con.execute(
        "select account_id from intermediate.int_customers_resolved where customer_key in "
        "(select customer_key from intermediate.int_customers_resolved "
        " where account_id in (select unnest(?::varchar[])))", [sorted(accounts)]).fetchall()
    return set(accounts) | {r[0] for r in rows}


def related_records(con: duckdb.DuckDBPyConnection | None, store: OperationalStore, account_id: str,
                    contract: Contract | None = None) -> dict[str, set[str]]:
    """Every record that belongs to the customer: its identity group, then everything referring to it."""
    contract = contract or load_contract()
    ids: dict[str, set[str]] = {name: set() for name in contract.entities}
    ids["accounts"] = _identity_group(con, {account_id})
    _expand(con, store, ids, contract)
    return {k: v for k, v in ids.items() if v}


# --- rows in files ----------------------------------------------------------------------------------------

def _landing_files(home: CrmHome, entity: str) -> list[Path]:
    folder = home.landing / entity
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _text_rows(path: Path, only: set[int] | None = None) -> Iterator[tuple[int, dict | None, str, bool]]:
    """(line number as ingestion counts it, record or None, the line, whether the line parsed cleanly);
    with `only`, just those lines are parsed (a CSV header always is)."""
    suffix = path.suffix.lower()
    header: list[str] | None = None
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if only is not None and number not in only and not (suffix == ".csv" and header is None):
            continue
        line = raw.decode("utf-8", errors="replace")
        if suffix == ".csv":
            fields = next(csv.reader(io.StringIO(line)), [])
            if header is None:
                header = fields
                continue
            yield number, dict(zip(header, fields, strict=False)), line, len(fields) == len(header)
        else:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            yield number, record if isinstance(record, dict) else None, line, isinstance(record, dict)


def _checks_for(ent: Entity, ids: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(column, entity of the ids it holds) of the entity's primary key and references to erased records."""
    checks = [(c.name, c.reference[0] if c.reference else ent.name) for c in ent.columns
              if c.name == ent.primary_key or (c.reference and c.reference[0] in ids)]
    return [(col, target) for col, target in checks if ids.get(target)]


def _file_hits(path: Path, checks: list[tuple[str, str]], ids: dict[str, set[str]],
               keys: PersonKeys | None, only: set[int] | None = None) -> list[int]:
    """Line numbers (as ingestion counts them) of the rows in a landing file that are the person's: they
    carry an erased id in their key or a reference, or (`keys`) the person's email, phone or name-with-city.
    With `only`, just those lines are looked at.
    """
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pl.read_parquet(path)
        mask = pl.lit(False)
        for col, target in checks:
            if col in frame.columns:
                mask = mask | pl.col(col).cast(pl.String).is_in(sorted(ids[target]))
        hits = set(frame.with_row_index("__i").filter(mask.fill_null(False))["__i"].to_list())
        if only is not None:
            hits &= {line - 1 for line in only}
        if keys:
            personal = [c for c in ("account_name", "first_name", "last_name", "email", "phone", "city")
                        if c in frame.columns]
            for i, record in enumerate(frame.select(personal).iter_rows(named=True)):
                if (only is None or i + 1 in only) and keys.matches_record(record):
                    hits.add(i)
        return sorted(i + 1 for i in hits)
    if suffix not in TEXT_SUFFIXES:
        return []
    every_id = None
    hits = []
    for number, record, line, clean in _text_rows(path, only):
        record = record or {}
        by_id = any(record.get(col) is not None and str(record[col]) in ids[target] for col, target in checks)
        if by_id or (keys and (keys.matches_record(record) or keys.matches_text(line))):
            hits.append(number)
        elif not clean:  # a line we cannot split is still dropped when it names one of the ids
            every_id = every_id if every_id is not None else [v for vals in ids.values() for v in vals]
            if any(v in line for v in every_id):
                hits.append(number)
    return hits


def _drop_rows(path: Path, lines: list[int]) -> None:
    """Rewrite a landing file without the given rows; every other line stays byte for byte."""
    doomed = set(lines)
    tmp = path.with_name(f".{path.name}.erasing")  # a dot file: ingestion never reads it
    if path.suffix.lower() == ".parquet":
        frame = pl.read_parquet(path)
        frame.with_row_index("__i", offset=1).filter(~pl.col("__i").is_in(sorted(doomed))).drop("__i") \
            .write_parquet(tmp)
    else:
        kept = [raw for number, raw in enumerate(path.read_bytes().splitlines(keepends=True), start=1)
                if number not in doomed]
        tmp.write_bytes(b"".join(kept))
    os.replace(tmp, path)


# --- planning ---------------------------------------------------------------------------------------------

def _person_keys(con: duckdb.DuckDBPyConnection | None, store: OperationalStore, home: CrmHome,
                 ids: dict[str, set[str]], contract: Contract) -> PersonKeys:
    """The emails, phones and names-with-city of the person's own records (store, raw and landing rows)."""
    keys = PersonKeys()
    for ent in _personal_entities(contract):
        mine = ids.get(ent.name, set())
        if not mine:
            continue
        for record in _raw_rows(con, ent.name, ent.primary_key, mine):
            keys.add_record(record)
        if ent.in_store:
            for record in _store_rows(store, ent.name, ent.primary_key, mine):
                keys.add_record(record)
        if ent.in_landing:
            for path in _landing_files(home, ent.name):
                if path.suffix.lower() in TEXT_SUFFIXES:
                    for _, record, _, _ in _text_rows(path):
                        if record and record.get(ent.primary_key) in mine:
                            keys.add_record(record)
                elif path.suffix.lower() == ".parquet":
                    for record in pl.read_parquet(path).filter(
                            pl.col(ent.primary_key).cast(pl.String).is_in(sorted(mine))).iter_rows(named=True):
                        keys.add_record(record)
    return keys


def _ids_by_identifiers(con: duckdb.DuckDBPyConnection | None, home: CrmHome, keys: PersonKeys,
                        contract: Contract, store: OperationalStore | None = None) -> dict[str, set[str]]:
    """Ids of store, landing and quarantined rows that carry the person's identifiers, whatever their id.

    The store is searched too, by email and phone only: a lead that was never converted, or a contact
    entered again under another account, names the same person without referring to any of their records.
    A name, even with its city, is not enough to delete a record of the system of record: namesakes are
    common there, while in landing files and the quarantine it only finds copies of rows already matched."""
    found: dict[str, set[str]] = {}
    if not keys:
        return found
    for ent in _personal_entities(contract):
        if store is not None and ent.in_store:
            columns = [ent.primary_key, *[c for c in ("email", "phone") if c in ent.column_names]]
            with store.engine.connect() as conn:
                rows = conn.exec_driver_sql(f"SELECT {', '.join(columns)} FROM {ent.name}")  # noqa: S608
                for row in rows:
                    record = dict(zip(columns, row, strict=True))
                    if record[ent.primary_key] and keys.matches_record(record):
                        found.setdefault(ent.name, set()).add(str(record[ent.primary_key]))
        if not ent.in_landing:
            continue
        for path in _landing_files(home, ent.name):
            if path.suffix.lower() in TEXT_SUFFIXES:
                for _, record, _, _ in _text_rows(path):
                    if record and record.get(ent.primary_key) and keys.matches_record(record):
                        found.setdefault(ent.name, set()).add(str(record[ent.primary_key]))
            elif path.suffix.lower() == ".parquet":
                for record in pl.read_parquet(path).iter_rows(named=True):
                    if record.get(ent.primary_key) and keys.matches_record(record):
                        found.setdefault(ent.name, set()).add(str(record[ent.primary_key]))
    if con is not None and _has_table(con, "raw", "_quarantine"):
        names = [e.name for e in _personal_entities(contract)]
        for entity, record_id, value in con.execute(
                "select entity, record_id, value from raw._quarantine where record_id is not null "
                "and list_contains(?, entity)", [names]).fetchall():
            if keys.matches_text(value):
                found.setdefault(entity, set()).add(record_id)
    return found


def _plan(home: CrmHome, account_id: str, customer_hash: str, actor: str, contract: Contract,
          erased_before: bool = False) -> Journal | None:
    """Work out everything of the person and write the journal; None if they were erased before and
    nothing of them is back (a restore of an older backup brings them back: then they are erased again)."""
    store = OperationalStore(home.operational_db_url)
    store.migrate()
    con = connect_writer(home.warehouse, WAREHOUSE_WAIT_SECONDS) if home.warehouse.exists() else None
    try:
        in_store = store.get("accounts", account_id) is not None
        in_raw = bool(_raw_rows(con, "accounts", "account_id", {account_id}, "account_id"))
        if not (in_store or in_raw):
            if erased_before or customer_hash in load_tombstones(store):
                return None
            raise ErasureError(f"No customer with account id {account_id!r}; check the id on the portal's "
                               "customer page.")
        ids = {name: set() for name in contract.entities}
        ids["accounts"] = {account_id}
        keys = PersonKeys()
        for _ in range(IDENTITY_ROUNDS):
            ids["accounts"] = _identity_group(con, ids["accounts"])
            _expand(con, store, ids, contract)
            keys = _person_keys(con, store, home, ids, contract)
            more = {e: v - ids[e] for e, v in _ids_by_identifiers(con, home, keys, contract, store).items()}
            if not any(more.values()):
                break
            for entity, values in more.items():
                ids[entity] |= values
    finally:
        if con is not None:
            con.close()
        store.dispose()
    return Journal.start(home, customer_hash, actor, ids, keys)


# --- the steps --------------------------------------------------------------------------------------------

def _step_tombstones(home: CrmHome, journal: Journal, contract: Contract) -> dict:
    store = OperationalStore(home.operational_db_url)
    store.migrate()
    now = _now()
    try:
        with store.engine.begin() as conn:
            for entity, values in sorted(journal.ids.items()):
                for value in sorted(values):
                    conn.execute(text("INSERT INTO erased_subjects (subject_hash, entity, erased_at) "
                                      "SELECT :h, :e, :t WHERE NOT EXISTS "
                                      "(SELECT 1 FROM erased_subjects WHERE subject_hash = :h)"),
                                 {"h": subject_hash(entity, value), "e": entity, "t": now})
    finally:
        store.dispose()
    return {}


def _step_store(home: CrmHome, journal: Journal, contract: Contract) -> dict:
    ids, customer_hash = journal.ids, journal.data["customer_hash"]
    store = OperationalStore(home.operational_db_url)
    touched = {"audit_log", CHANGES_TABLE}
    try:
        with store.engine.begin() as conn:
            if store.dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA secure_delete = ON")
            for entity, values in ids.items():
                ent = contract.entity(entity)
                for chunk in _chunks(sorted(values)):
                    marks = ", ".join(f":p{j}" for j in range(len(chunk)))
                    params = {f"p{j}": v for j, v in enumerate(chunk)}
                    conn.execute(text(f"DELETE FROM audit_log WHERE entity = :e AND record_id IN ({marks})"),
                                 {"e": entity, **params})
                    conn.execute(text(f"DELETE FROM {CHANGES_TABLE} WHERE entity = :e AND record_id IN ({marks})"),
                                 {"e": entity, **params})  # the change log names them too
                    if ent.in_store:
                        conn.execute(text(f"DELETE FROM {entity} WHERE {ent.primary_key} IN ({marks})"), params)
                        touched.add(entity)
            already = conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'erase' "
                                        "AND record_id = :h"), {"h": customer_hash}).scalar()
            if not already:
                conn.execute(text(
                    "INSERT INTO audit_log (audit_id, occurred_at, actor, action, entity, record_id, "
                    "before_json, after_json) VALUES (:id, :t, :actor, 'erase', 'accounts', :rid, NULL, :after)"),
                    {"id": uuid.uuid4().hex, "t": _now(), "actor": journal.data["actor"], "rid": customer_hash,
                     "after": json.dumps({"records_erased": journal.data["records"]})})
        _compact_store(store, sorted(touched))
    finally:
        store.dispose()
    return {}


def _compact_store(store: OperationalStore, tables: list[str]) -> None:
    """Rewrite the store's files so the deleted values are gone from disk, not just unreachable."""
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:  # names from the contract and the store's own schema
            conn.exec_driver_sql(f"VACUUM FULL {table}")


def _step_warehouse(home: CrmHome, journal: Journal, contract: Contract) -> dict:
    if not home.warehouse.exists():
        return {"warehouse_rows": 0}
    con = connect_writer(home.warehouse, WAREHOUSE_WAIT_SECONDS)
    try:
        con.execute("begin")
        removed = _erase_quarantine(con, home, journal.ids, journal.keys, contract)
        removed += _erase_in_warehouse(con, journal.ids, contract)
        con.execute("commit")
    finally:
        con.close()
    _rewrite_warehouse(home.warehouse)
    return {"warehouse_rows": journal.data["results"].get("warehouse_rows", 0) + removed}


def _column_entities(contract: Contract) -> dict[str, set[str]]:
    """Column name -> the entities whose ids it can hold (primary keys and references)."""
    out: dict[str, set[str]] = {}
    for ent in contract.entities.values():
        out.setdefault(ent.primary_key, set()).add(ent.name)
        for c in ent.columns:
            if c.reference and c.reference[0] not in NOT_THEIRS:
                out.setdefault(c.name, set()).add(c.reference[0])
    for name in EXTRA_ACCOUNT_COLUMNS:
        out.setdefault(name, set()).add("accounts")
    out["record_id"] = set(contract.entities)
    return out


def _erase_quarantine(con: duckdb.DuckDBPyConnection, home: CrmHome, ids: dict[str, set[str]],
                      keys: PersonKeys, contract: Contract) -> int:
    """Quarantined rows of the person that carry no erased id: found by their landing line (a row that
    refers to an erased record or carries the person's identifiers) or by the quarantined value itself.
    Runs before the landing files are rewritten, so the lines still match."""
    if not _has_table(con, "raw", "_quarantine"):
        return 0
    personal = {e.name for e in _personal_entities(contract)}
    places: list[tuple[str, int]] = []
    for entity, source_file, quarantined in con.execute(
            "select entity, source_file, list(distinct source_line) from raw._quarantine "
            "where source_file is not null and source_line is not null and source_file not like 'store:%' "
            "group by all order by 1, 2").fetchall():
        path = home.landing / source_file
        if entity not in contract.entities or not path.is_file():
            continue
        ent = contract.entity(entity)
        lines = _file_hits(path, _checks_for(ent, ids), ids, keys if entity in personal else None,
                           only=set(quarantined))
        places += [(source_file, line) for line in lines]
    rowids = [r for r, value in con.execute(
        "select rowid, value from raw._quarantine where value is not null").fetchall() if keys.matches_text(value)]
    con.register("__erase_places", pa.table({"f": pa.array([p[0] for p in places], pa.string()),
                                             "l": pa.array([p[1] for p in places], pa.int64())}))
    con.register("__erase_rowids", pa.table({"r": pa.array(rowids, pa.int64())}))
    try:
        count = con.execute(
            "delete from raw._quarantine where rowid in (select r from __erase_rowids) "
            "or (source_file, source_line) in (select (f, l) from __erase_places)").fetchall()
    finally:
        con.unregister("__erase_places")
        con.unregister("__erase_rowids")
    return int(count[0][0]) if count else 0


def _erase_in_warehouse(con: duckdb.DuckDBPyConnection, ids: dict[str, set[str]], contract: Contract) -> int:
    """Delete every row of every table whose key or reference columns hold an erased id (in the caller's
    transaction)."""
    by_column = _column_entities(contract)
    tables = con.execute("select table_schema, table_name from information_schema.tables "
                         "where table_type = 'BASE TABLE' and table_catalog = current_database()").fetchall()
    removed = 0
    for schema, table in tables:
        columns = [r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
            "and table_catalog = current_database()", [schema, table]).fetchall()]
        for column in columns:
            values = set().union(*(ids.get(e, set()) for e in by_column.get(column, ())))
            if not values:
                continue
            count = con.execute(
                f"delete from {quote_ident(schema)}.{quote_ident(table)} "
                f"where {quote_ident(column)}::varchar in (select unnest(?::varchar[]))", [sorted(values)]).fetchall()
            removed += int(count[0][0]) if count else 0
    return removed


def _rewrite_warehouse(path: Path) -> None:
    """Copy the live data into a fresh file: DuckDB keeps deleted values in free blocks until overwritten.

    A copy left by a killed rewrite is thrown away first; the swap is one rename, so the warehouse is
    always either the old file or the complete new one."""
    fresh = path.with_name(path.stem + ".erasing.duckdb")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = connect_writer(path, WAREHOUSE_WAIT_SECONDS)
    try:
        con.execute("checkpoint")
        source = con.execute("select current_database()").fetchall()[0][0]
        con.execute(f"attach '{fresh}' as erasing")
        con.execute(f"copy from database {quote_ident(source)} to erasing")
        con.execute("detach erasing")
    finally:
        con.close()
    os.replace(fresh, path)
    Path(str(path) + ".wal").unlink(missing_ok=True)


def _step_landing(home: CrmHome, journal: Journal, contract: Contract) -> dict:
    """Rewrite landing files without the person's rows (CSV and JSON Lines keep every other line as is)."""
    ids, keys = journal.ids, journal.keys
    personal = {e.name for e in _personal_entities(contract)}
    for leftover in home.landing.rglob(".*.erasing"):  # a rewrite killed before its rename
        leftover.unlink(missing_ok=True)
    removed, files = 0, []
    for ent in contract.landing_entities:
        checks = _checks_for(ent, ids)
        use_keys = keys if ent.name in personal else None
        if not checks and not use_keys:
            continue
        for path in _landing_files(home, ent.name):
            lines = _file_hits(path, checks, ids, use_keys)
            if lines:
                _drop_rows(path, lines)
                removed += len(lines)
                files.append(path.relative_to(home.landing).as_posix())
    results = journal.data["results"]
    return {"landing_rows": results.get("landing_rows", 0) + removed,
            "landing_files": sorted(set(results.get("landing_files", [])) | set(files))}


def _step_snapshots(home: CrmHome, journal: Journal, contract: Contract) -> dict:
    """Publish a clean snapshot, then delete every other one (and temp files older than the warehouse step,
    which may hold the person; a publish started after it cannot)."""
    cutoff = datetime.fromisoformat(journal.data["steps"]["warehouse"]).timestamp() + 1
    for stale in home.snapshots.glob("*.duckdb.tmp"):
        if stale.stat().st_mtime < cutoff:
            stale.unlink(missing_ok=True)
    snapshot_id = publish(home).snapshot_id if home.warehouse.exists() else None
    current = current_snapshot_path(home) if snapshot_id else None
    for path in home.snapshots.glob("snapshot-*.duckdb*"):
        if current is None or not path.name.startswith(current.name):
            path.unlink(missing_ok=True)
    if current is None:
        (home.snapshots / "CURRENT").unlink(missing_ok=True)
    return {"snapshot": snapshot_id}


_RUN_STEP = {"tombstones": _step_tombstones, "store": _step_store, "warehouse": _step_warehouse,
             "landing": _step_landing, "snapshots": _step_snapshots}


def _report(journal: Journal, resumed: bool, already: bool = False) -> ErasureReport:
    results = journal.data.get("results", {})
    return ErasureReport(journal.data["customer_hash"], dict(journal.data.get("records", {})),
                         results.get("warehouse_rows", 0), results.get("landing_rows", 0),
                         list(results.get("landing_files", [])), results.get("snapshot"), resumed, already,
                         journal.data.get("finished_at"))


def erase_customer(home: CrmHome, account_id: str, actor: str = "cli",
                   after_step: StepHook | None = None) -> ErasureReport:
    """Remove the customer everywhere, or finish an erasure of theirs that was interrupted.

    `after_step(name)` is called after the plan and after each step has been recorded in the journal
    (tests use it to stop an erasure between two steps)."""
    if not home.root.is_dir():
        raise ErasureError(f"There is no CRM home at {home.root}; pass --home or set CRM_HOME to the home "
                           "that holds the customer.")
    contract = load_contract()
    customer_hash = subject_hash("accounts", account_id)
    try:
        with erasure_lock(home):
            journal = Journal.load(home, customer_hash)
            resumed = journal is not None and not journal.done
            if not resumed:
                done = journal
                journal = _plan(home, account_id, customer_hash, actor, contract, erased_before=done is not None)
                if journal is None:
                    return _report(done, False, True) if done else ErasureReport(customer_hash, already_erased=True)
                if after_step:
                    after_step("plan")
            for step in STEPS:
                if journal.step_done(step):
                    continue
                journal.mark(step, **_RUN_STEP[step](home, journal, contract))
                if after_step:
                    after_step(step)
            journal.finish()
            return _report(journal, resumed)
    except ErasureBusyError as exc:
        raise ErasureError(str(exc)) from exc
    except WarehouseLockedError as exc:
        raise ErasureError(f"The warehouse is busy with a pipeline run, so the erasure of {account_id!r} "
                           f"could not go on (what it did is kept in its journal); run `crm erase --customer "
                           f"{account_id}` again when the run has finished.") from exc


def drop_erased(con: duckdb.DuckDBPyConnection, tombstones: set[str], entity_name: str,
                frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split incoming rows into (kept, erased): erased rows carry an erased id or refer to one.

    Hashing runs inside DuckDB (vectorised sha256) and only when tombstones exist, so ingestion of a home
    without erasures pays nothing.
    """
    if not tombstones or frame.height == 0:
        return frame, frame.clear()
    contract = load_contract()
    ent = contract.entity(entity_name)
    columns = [(ent.primary_key, ent.name)] + [
        (c.name, c.reference[0]) for c in ent.columns if c.reference and c.name in frame.columns]
    hashes = pl.DataFrame({"h": sorted(tombstones)})
    con.register("__erase_frame", frame.select([c for c, _ in columns if c in frame.columns])
                 .with_row_index("__i"))
    con.register("__erase_hashes", hashes)
    try:
        tests = " or ".join(
            f"sha256('{target}:' || {quote_ident(col)}) in (select h from __erase_hashes)"
            for col, target in columns if col in frame.columns)
        hit = pl.Series("__i", [r[0] for r in con.execute(f"select __i from __erase_frame where {tests}").fetchall()],
                        dtype=pl.UInt32)
    finally:
        con.unregister("__erase_frame")
        con.unregister("__erase_hashes")
    indexed = frame.with_row_index("__i")
    erased = pl.col("__i").is_in(hit.implode())
    return indexed.filter(~erased).drop("__i"), indexed.filter(erased).drop("__i")


_TOKEN_SPLIT = re.compile(r"[\s,;|\t\"'{}\[\]:]+")


def malformed_of_erased(tombstones: set[str], entity_name: str, record_id: str | None, value: str | None) -> bool:
    """Whether a row the reader could not parse belongs to an erased record.

    Such a row never reaches `drop_erased` (it has no columns), yet its raw text can hold the person's
    name, email and phone, and it would go to the quarantine with them. Its parsed id, and every token of
    its text, is tested against the tombstones of the entity and of every entity it can refer to (ids are
    single tokens; a tombstone is a hash, so this is the only way to look for them in free text)."""
    if not tombstones:
        return False
    entity = load_contract().entity(entity_name)
    targets = {entity.name} | {c.reference[0] for c in entity.columns if c.reference}
    tokens = {record_id} if record_id else set()
    tokens.update(t for t in _TOKEN_SPLIT.split(value or "") if t)
    return any(subject_hash(target, token) in tombstones for target in targets for token in tokens)


def load_tombstones(store: OperationalStore) -> set[str]:
    try:
        with store.engine.connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT subject_hash FROM erased_subjects"))}
    except Exception:  # noqa: BLE001 - a store migrated before 0003 simply has no erasures
        return set()
