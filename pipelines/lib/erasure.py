"""Erasing a customer on request (right to erasure, CAPABILITIES.md C6).

`erase_customer` removes a customer, every account identity resolution joined to it, their contacts and
every record that refers to them (deals and their stage history, tasks, leads that became the customer,
orders and lines, invoices and payments, tickets, contracts, interactions, campaign memberships) from:
- the operational store, including the audit rows that held their data (SQLite: secure_delete, VACUUM);
- every table of the warehouse (raw, intermediate, marts, scores, quarantine), then rewrites the DuckDB
  file so deleted values do not linger in free blocks;
- the landing files (rewritten without their rows);
- the published snapshots (all deleted, a clean one published).
It records one audit entry without personal data (the hash of the customer id), and writes tombstones
(`erased_subjects`: hashes of "<entity>:<id>") that ingestion checks, so an old export delivered again
does not bring them back (`drop_erased`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
from sqlalchemy import text

from pipelines.contract import Contract, load_contract
from pipelines.lib.home import CrmHome
from pipelines.lib.snapshot import publish
from pipelines.lib.store import OperationalStore
from pipelines.lib.warehouse import connect_writer, quote_ident

#: Entities a customer's records refer to that are not the customer's own (reps, catalogue, campaigns).
NOT_THEIRS = frozenset({"users", "teams", "products", "product_prices", "campaigns"})
#: Mart columns that hold an account id under another name.
EXTRA_ACCOUNT_COLUMNS = ("customer_key", "matched_account_id", "converted_account_id")


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


def subject_hash(entity: str, record_id: str) -> str:
    return hashlib.sha256(f"{entity}:{record_id}".encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _children(contract: Contract) -> list[tuple[str, str, str]]:
    """(child entity, fk column, parent entity) for every reference except to users/teams/catalogue."""
    return [(e.name, c.name, c.reference[0]) for e in contract.entities.values() for c in e.columns
            if c.reference and c.reference[0] not in NOT_THEIRS]


def _ids_in(con: duckdb.DuckDBPyConnection | None, store: OperationalStore, entity: str, column: str,
            values: set[str], contract: Contract) -> set[str]:
    """Primary keys of `entity` rows whose `column` is one of `values`, in the warehouse and the store."""
    if not values:
        return set()
    ent = contract.entity(entity)
    pk = ent.primary_key
    found: set[str] = set()
    params = sorted(values)
    if con is not None and _has_table(con, "raw", entity):
        rows = con.execute(f"select {quote_ident(pk)} from raw.{quote_ident(entity)} "
                           f"where {quote_ident(column)} in (select unnest(?::varchar[]))", [params]).fetchall()
        found |= {r[0] for r in rows}
    if ent.in_store:
        with store.engine.connect() as conn:
            for i in range(0, len(params), 500):
                chunk = params[i:i + 500]
                marks = ", ".join(f":p{j}" for j in range(len(chunk)))
                rows = conn.execute(text(f"SELECT {pk} FROM {entity} WHERE {column} IN ({marks})"),
                                    {f"p{j}": v for j, v in enumerate(chunk)}).fetchall()
                found |= {r[0] for r in rows}
    return found


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? "
                            "and table_name = ?", [schema, table]).fetchone()[0])


def related_records(con: duckdb.DuckDBPyConnection | None, store: OperationalStore, account_id: str,
                    contract: Contract | None = None) -> dict[str, set[str]]:
    """Every record that belongs to the customer: its identity group, then everything referring to it."""
    contract = contract or load_contract()
    accounts = {account_id}
    if con is not None and _has_table(con, "intermediate", "int_customers_resolved"):
        rows = con.execute(
            "select account_id from intermediate.int_customers_resolved where customer_key = "
            "(select customer_key from intermediate.int_customers_resolved where account_id = ?)",
            [account_id]).fetchall()
        accounts |= {r[0] for r in rows}
    ids: dict[str, set[str]] = {name: set() for name in contract.entities}
    ids["accounts"] = accounts
    edges = _children(contract)
    changed = True
    while changed:
        changed = False
        for child, column, parent in edges:
            new = _ids_in(con, store, child, column, ids[parent], contract) - ids[child]
            if new:
                ids[child] |= new
                changed = True
    return {k: v for k, v in ids.items() if v}


def erase_customer(home: CrmHome, account_id: str, actor: str = "cli") -> ErasureReport:
    """Remove the customer everywhere; see the module docstring for what that covers."""
    contract = load_contract()
    store = OperationalStore(home.operational_db_url)
    store.migrate()
    con = connect_writer(home.warehouse) if home.warehouse.exists() else None
    try:
        ids = related_records(con, store, account_id, contract)
        in_store = store.get("accounts", account_id) is not None
        in_raw = con is not None and _has_table(con, "raw", "accounts") and con.execute(
            "select count(*) from raw.accounts where account_id = ?", [account_id]).fetchone()[0] > 0
        if not (in_store or in_raw):
            raise ErasureError(f"No customer with account id {account_id!r}; check the id on the portal's "
                               "customer page.")
        report = ErasureReport(subject_hash("accounts", account_id),
                               {k: len(v) for k, v in sorted(ids.items())})
        _erase_in_store(store, ids, report.customer_hash, actor, contract)
        if con is not None:
            report.warehouse_rows = _erase_in_warehouse(con, ids, contract)
    finally:
        if con is not None:
            con.close()
        store.dispose()
    if home.warehouse.exists():
        _rewrite_warehouse(home.warehouse)
    report.landing_rows, report.landing_files = _erase_in_landing(home, ids, contract)
    for path in home.snapshots.glob("snapshot-*.duckdb"):
        path.unlink()
    (home.snapshots / "CURRENT").unlink(missing_ok=True)
    if home.warehouse.exists():
        report.snapshot = publish(home).snapshot_id
    return report


def _erase_in_store(store: OperationalStore, ids: dict[str, set[str]], customer_hash: str, actor: str,
                    contract: Contract) -> None:
    now = _now()
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete = ON")
        for entity, values in ids.items():
            ent = contract.entity(entity)
            for value in sorted(values):
                conn.execute(text("INSERT INTO erased_subjects (subject_hash, entity, erased_at) "
                                  "SELECT :h, :e, :t WHERE NOT EXISTS "
                                  "(SELECT 1 FROM erased_subjects WHERE subject_hash = :h)"),
                             {"h": subject_hash(entity, value), "e": entity, "t": now})
                conn.execute(text("DELETE FROM audit_log WHERE entity = :e AND record_id = :r"),
                             {"e": entity, "r": value})
                if ent.in_store:
                    conn.execute(text(f"DELETE FROM {entity} WHERE {ent.primary_key} = :r"), {"r": value})
        conn.execute(text(
            "INSERT INTO audit_log (audit_id, occurred_at, actor, action, entity, record_id, before_json, after_json) "
            "VALUES (:id, :t, :actor, 'erase', 'accounts', :rid, NULL, :after)"),
            {"id": uuid.uuid4().hex, "t": now, "actor": actor, "rid": customer_hash,
             "after": json.dumps({"records_erased": {k: len(v) for k, v in sorted(ids.items())}})})
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


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


def _erase_in_warehouse(con: duckdb.DuckDBPyConnection, ids: dict[str, set[str]], contract: Contract) -> int:
    by_column = _column_entities(contract)
    tables = con.execute("select table_schema, table_name from information_schema.tables "
                         "where table_type = 'BASE TABLE' and table_catalog = current_database()").fetchall()
    removed = 0
    con.execute("begin")
    for schema, table in tables:
        columns = [r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [schema, table]).fetchall()]
        for column in columns:
            values = set().union(*(ids.get(e, set()) for e in by_column.get(column, ())))
            if not values:
                continue
            count = con.execute(
                f"delete from {quote_ident(schema)}.{quote_ident(table)} "
                f"where {quote_ident(column)}::varchar in (select unnest(?::varchar[]))", [sorted(values)]).fetchall()
            removed += int(count[0][0]) if count else 0
    con.execute("commit")
    return removed


def _rewrite_warehouse(path: Path) -> None:
    """Copy the live data into a fresh file: DuckDB keeps deleted values in free blocks until overwritten."""
    fresh = path.with_name(path.stem + ".erasing.duckdb")
    fresh.unlink(missing_ok=True)
    con = connect_writer(path)
    try:
        con.execute("checkpoint")
        source = con.execute("select current_database()").fetchone()[0]
        con.execute(f"attach '{fresh}' as erasing")
        con.execute(f"copy from database {quote_ident(source)} to erasing")
        con.execute("detach erasing")
    finally:
        con.close()
    os.replace(fresh, path)
    Path(str(path) + ".wal").unlink(missing_ok=True)


def _erase_in_landing(home: CrmHome, ids: dict[str, set[str]], contract: Contract) -> tuple[int, list[str]]:
    """Rewrite landing files without the customer's rows (CSV and JSON Lines keep every other line as is)."""
    removed, files = 0, []
    for ent in contract.landing_entities:
        checks = [(c.name, c.reference[0] if c.reference else ent.name) for c in ent.columns
                  if c.name == ent.primary_key or (c.reference and c.reference[0] in ids)]
        checks = [(col, target) for col, target in checks if ids.get(target)]
        folder = home.landing / ent.name
        if not checks or not folder.exists():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            n = _rewrite_file(path, checks, ids)
            if n:
                removed += n
                files.append(path.relative_to(home.landing).as_posix())
    return removed, files


def _rewrite_file(path: Path, checks: list[tuple[str, str]], ids: dict[str, set[str]]) -> int:
    def hit(record: dict) -> bool:
        return any(str(record.get(col)) in ids[target] for col, target in checks if record.get(col) is not None)

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pl.read_parquet(path)
        mask = pl.lit(False)
        for col, target in checks:
            if col in frame.columns:
                mask = mask | pl.col(col).cast(pl.String).is_in(sorted(ids[target]))
        keep = frame.filter(~mask.fill_null(False))
        if keep.height == frame.height:
            return 0
        tmp = path.with_suffix(".erasing")
        keep.write_parquet(tmp)
        os.replace(tmp, path)
        return frame.height - keep.height
    if suffix not in (".csv", ".jsonl", ".json", ".ndjson"):
        return 0
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    kept, dropped = [], 0
    header = None
    for number, raw in enumerate(lines):
        line = raw.decode("utf-8", errors="replace")
        if suffix == ".csv":
            if number == 0:
                header = next(csv.reader(io.StringIO(line)), [])
                kept.append(raw)
                continue
            fields = next(csv.reader(io.StringIO(line)), [])
            record = dict(zip(header or [], fields, strict=False))
        else:
            try:
                record = json.loads(line)
            except ValueError:
                record = {}
            if not isinstance(record, dict):
                record = {}
        # a line we cannot parse is still dropped when it names one of the ids
        if hit(record) or (not record and any(v in line for vals in ids.values() for v in vals)):
            dropped += 1
        else:
            kept.append(raw)
    if dropped:
        tmp = path.with_suffix(path.suffix + ".erasing")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)
    return dropped


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


def load_tombstones(store: OperationalStore) -> set[str]:
    try:
        with store.engine.connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT subject_hash FROM erased_subjects"))}
    except Exception:  # noqa: BLE001 - a store migrated before 0003 simply has no erasures
        return set()
