"""The operational store: the system of record for editable CRM entities (architecture rule 3 in docs).

SQLite (WAL mode) by default, PostgreSQL by URL; the same migrations create the same schema in both
(a migration named `NNNN_name.sqlite.sql` / `NNNN_name.postgresql.sql` is the one dialect's version of
`NNNN_name`). Every row carries `version` (optimistic lock) and `updated_at`; every change made through
`create`, `update` or `archive` writes its audit row in the same transaction, and an update whose expected
version is no longer current is refused with `StaleEditError` instead of overwriting someone's save.

Every write also notes the changed record in the change log `store_changes`, in the same transaction
(`record_changes`); ingestion reads the store by that log, not by `updated_at`, because `updated_at` is
stamped before commit and commit order is what decides what a reader has seen (docs/store-changes.md).

Every write path (`create`, `update`, `archive`, `upsert_many`) validates against `self.contract`, which
carries the installation's vocabulary: the stages, currencies and closed dimension lists of crm.yaml
(`Settings.contract()`). A store opened for a home (`OperationalStore.for_home`) reads that home's crm.yaml
and follows it when the file changes; a store opened by URL alone validates against the default
installation (`Settings()`, what a missing crm.yaml means) unless it is given a contract. So a value the
store accepts is one the next `crm run` accepts, whichever way it was written.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine

from pipelines.contract import Contract, Entity
from pipelines.lib.settings import Settings, load_settings
from pipelines.lib.store.validation import RecordValidationError, validate_record
from pipelines.lib.store.values import (  # noqa: F401 - part of the store's interface
    RecordNotFoundError,
    StaleEditError,
    _as_text,
    _ident,
    _jsonable,
    _normalise,
    _now,
)

if TYPE_CHECKING:
    from pipelines.lib.home import CrmHome

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: The change log every write path appends to (see `OperationalStore.record_changes`).
CHANGES_TABLE = "store_changes"
#: SQLite: the id the next change-log entry gets. AUTOINCREMENT keeps the largest id ever handed out in
#: sqlite_sequence (in the writing transaction), so deleting entries (erasure) never moves it back.
_SQLITE_NEXT_CHANGE = f"SELECT coalesce(max(seq), 0) + 1 FROM sqlite_sequence WHERE name = '{CHANGES_TABLE}'"
#: The migration whose `schema_migrations` row holds the store's identity (`OperationalStore.identity`).
IDENTITY_MIGRATION = "0006_store_identity"

__all__ = ["OperationalStore", "StaleEditError", "RecordValidationError", "RecordNotFoundError",
           "mask_password", "store_location"]


def _sqlalchemy_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def mask_password(url: str) -> str:
    """The URL with any password replaced by `***` (in the user part and in a `password=` parameter)."""
    masked = re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", masked)


def store_location(url: str) -> str:
    """Where a store URL writes, for people: the SQLite file's path, or the URL with the password masked."""
    if url.startswith("sqlite:///"):
        return url.split(":///", 1)[1]
    return mask_password(url)


class OperationalStore:
    """Access to the operational database named by a URL (`sqlite:///path` or `postgresql://...`)."""

    def __init__(self, url: str, contract: Contract | None = None):
        """`contract`: what writes are validated against; by default the default installation's
        (`Settings().contract()`). Use `for_home` for the store of a home with its own crm.yaml."""
        self.url = url
        self.dialect = "postgresql" if url.startswith(("postgresql", "postgres")) else "sqlite"
        if self.dialect == "sqlite":
            path = Path(url.split(":///", 1)[1])
            path.parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(_sqlalchemy_url(url), future=True, pool_pre_ping=True)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._contract = contract if contract is not None else Settings().contract()
        self._settings_file: Path | None = None  # set by `for_home`: the crm.yaml `contract` follows
        self._settings_stamp: tuple[int, int] | None = None
        self._has_change_log = False  # known once seen (a store never loses its change log or identity)

    @classmethod
    def for_home(cls, home: CrmHome) -> OperationalStore:
        """The home's operational store, validating every write against the home's crm.yaml.

        The file is read at the first use of `contract` (so `crm store migrate` works before crm.yaml is
        right) and again whenever it changes, so a portal left running follows an edited crm.yaml.
        A crm.yaml that cannot be used raises `SettingsError` there, naming the file and the key."""
        store = cls(home.operational_db_url)
        store._settings_file = home.settings_file
        return store

    @property
    def contract(self) -> Contract:
        """The import contract with the installation's allowed values, which every write is validated by."""
        if self._settings_file is not None:
            try:
                stat = self._settings_file.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                stamp = (0, 0)
            if stamp != self._settings_stamp:
                self._contract = load_settings(self._settings_file).contract()
                self._settings_stamp = stamp
        return self._contract

    @property
    def display_url(self) -> str:
        """The URL without a password, for messages."""
        return mask_password(self.url)

    def dispose(self) -> None:
        self.engine.dispose()

    # --- schema -----------------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied, each in its own transaction. Returns their names."""
        applied: list[str] = []
        with self.engine.begin() as conn:
            conn.execute(text(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"
            ))
            done = {row[0] for row in conn.execute(text("SELECT name FROM schema_migrations"))}
        for name, path in _migrations(self.dialect):
            if name in done:
                continue
            with self.engine.begin() as conn:
                for statement in _split_sql(path.read_text(encoding="utf-8")):
                    conn.execute(text(statement))
                conn.execute(text("INSERT INTO schema_migrations (name, applied_at) VALUES (:n, :t)"),
                             {"n": name, "t": _now()})
                if name == IDENTITY_MIGRATION:  # a new identity for every store the migration runs in
                    self.set_identity(conn, str(uuid.uuid4()))
            applied.append(name)
        return applied

    def set_identity(self, conn: Connection, identity: str) -> None:
        """Give the store its identity, in the caller's transaction: a random one when it is first migrated;
        the demo generator's one derived from its parameters (nothing else should call this)."""
        conn.execute(text("UPDATE schema_migrations SET store_identity = :i WHERE name = :n"),
                     {"i": identity, "n": IDENTITY_MIGRATION})

    @property
    def identity(self) -> str | None:
        """The random UUID this store got when it was first migrated; None before that migration.

        A store deleted and created again under the same URL gets a new one, while its change ids start
        again at 1: ingestion keys its cursor by URL and identity, so a position kept for the old store
        never counts for the new one (docs/store-changes.md). The demo generator sets it from its
        parameters, so the same parameters still give a byte-identical file."""
        if "store_identity" not in self.table_columns("schema_migrations"):
            return None
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT store_identity FROM schema_migrations WHERE name = :n"),
                                {"n": IDENTITY_MIGRATION}).scalar_one_or_none()

    @property
    def cursor_key(self) -> str | None:
        """What ingestion keys its change-log cursor by: the URL without password and the store's identity
        (None while the store has no identity: it is then read whole, with no cursor kept)."""
        identity = self.identity
        return None if identity is None else f"{self.display_url} ({identity})"

    def table_columns(self, table: str) -> list[str]:
        """Column names of a store table, in order (used to check the schema against the contract)."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                return [row[1] for row in conn.execute(text(f"PRAGMA table_info({_ident(table)})"))]
            rows = conn.execute(text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = :t AND table_schema = current_schema() ORDER BY ordinal_position"
            ), {"t": table})
            return [row[0] for row in rows]

    # --- bulk paths (generator, restore) ------------------------------------------------------------
    def bulk_insert(self, entity_name: str, frame: pl.DataFrame) -> int:
        """Insert many rows at once (version 1, no audit): for loading an initial data set only.

        The change log gets one whole-table entry (`record_changes(..., None)`), stamped with the newest
        `updated_at` of the rows, so the same data set gives the same store file."""
        entity = self.contract.entity(entity_name)
        columns = [c for c in entity.column_names if c in frame.columns]
        rows = _python_rows(frame.select(columns), entity)
        placeholders = ", ".join(["?" if self.dialect == "sqlite" else "%s"] * len(columns))
        sql = f"INSERT INTO {_ident(entity.name)} ({', '.join(columns)}) VALUES ({placeholders})"
        newest = (frame.get_column(entity.updated_at).max()
                  if entity.updated_at in frame.columns and frame.height else None)
        with self.engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            if self.dialect == "postgresql":
                with cur.copy(f"COPY {_ident(entity.name)} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cur.executemany(sql, rows)
            self.record_changes(conn, entity.name, None, changed_at=_jsonable(newest) if newest else None)
        return frame.height

    def upsert_many(self, entity_name: str, frame: pl.DataFrame, actor: str, source: str, *,
                    dry_run: bool = False, pending_ids: Mapping[str, Iterable[str]] | None = None):
        """Insert new and update changed records of a whole file (`crm import`), validated and audited.

        `frame`: contract columns as text and `__row` (each row's line in `source`). Rows that break the
        contract are not written and come back as faults with line, field and value; see
        `pipelines.lib.store.upsert` for the rules. Returns an `UpsertResult`; `dry_run` writes nothing.
        """
        from pipelines.lib.store.upsert import upsert_frame

        return upsert_frame(self, self.contract.entity(entity_name), frame, actor, source,
                            dry_run=dry_run, pending_ids=pending_ids)

    def read_frame(self, entity_name: str, since: int | None = None) -> pl.DataFrame:
        """Rows of an entity as text columns, the shape landing files have, for ingestion.

        With `since` (a change position from `change_position`), only the rows changed at or after it;
        see `select_changed`."""
        entity = self.contract.entity(entity_name)
        columns = entity.column_names
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            self.select_changed(cur, entity, since)
            booleans = [entity.column(c).type == "boolean" for c in columns]
            data = [[_as_text(bool(v) if flag and v is not None else v) for v, flag in zip(row, booleans, strict=True)]
                    for row in cur.fetchall()]
        finally:
            raw.close()
        return pl.DataFrame(data, schema={c: pl.String for c in columns}, orient="row")

    # --- change log ---------------------------------------------------------------------------------
    def record_changes(self, conn: Connection, entity_name: str, record_ids: Iterable[str] | None,
                       changed_at: Any = None) -> None:
        """Note in the change log that records of `entity_name` changed; part of the caller's transaction.

        EVERY write to the table of a contract entity calls this on the connection of the write, inside
        the same transaction, once the rows are written: `create`, `update`, `archive`, the stage event of
        `_after_change`, `bulk_insert`, and any new bulk path (an upsert of many records passes the ids it
        inserted or updated). Ingestion reads the store by this log alone: a write that does not call it
        reaches the warehouse only with the next full read.

        `record_ids=None` writes one entry meaning "any row of the table may have changed"; the next
        ingest then reads the whole table (what a first load costs) instead of the log growing by one row
        per record of a bulk load. `changed_at` defaults to now; it is for people reading the log, the
        order that matters is the log's position (docs/store-changes.md).
        """
        stamp = changed_at if changed_at is not None else _now()
        ids = [None] if record_ids is None else list(dict.fromkeys(record_ids))
        if not ids:
            return
        conn.execute(text(f"INSERT INTO {CHANGES_TABLE} (entity, record_id, changed_at) VALUES (:e, :r, :t)"),
                     [{"e": entity_name, "r": record_id, "t": stamp} for record_id in ids])

    def change_position(self) -> int | None:
        """The change-log position below which every change is committed: ingestion's next cursor.

        None when the store has no change log or no identity yet (not migrated since it came): read it whole
        each time, keeping no cursor.

        Take it BEFORE reading the rows it stands for; whatever commits meanwhile is read again next time.
        SQLite serialises writers, so its autoincrement `change_id`s are handed out in commit order and the
        position is the last one handed out plus one. PostgreSQL hands out ids (and transaction ids) before
        commit, so a later id can be visible while an earlier one is still open: there the position is the
        oldest transaction id still running (`pg_snapshot_xmin`), and entries are compared by their `txid`.
        """
        if not self._has_change_log:
            self._has_change_log = bool(self.table_columns(CHANGES_TABLE)) and self.identity is not None
            if not self._has_change_log:
                return None
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                sql = _SQLITE_NEXT_CHANGE
            else:
                sql = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
            return int(conn.exec_driver_sql(sql).scalar_one())

    def select_changed(self, cursor: Any, entity: Entity, since: int | None) -> None:
        """Run, on a DB-API `cursor`, the SELECT of an entity's rows that ingestion reads (ordered by id).

        `since=None`: every row. Otherwise the rows with a change-log entry at or after position `since`;
        every row when the log holds a whole-table entry there, or when `since` lies beyond anything this
        store has handed out (a cursor kept for another or a rebuilt database: reading everything is safe,
        the warehouse upsert leaves identical rows alone).
        """
        table, pk = _ident(entity.name), entity.primary_key
        select = f"SELECT {', '.join(entity.column_names)} FROM {table}"
        order = f" ORDER BY {pk}"
        if since is None:
            cursor.execute(select + order)
            return
        if self.dialect == "sqlite":
            position, mark = "change_id", "?"
            horizon = f"({_SQLITE_NEXT_CHANGE})"
        else:
            position, mark = "txid", "%s"
            horizon = "pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
        changed = f"FROM {CHANGES_TABLE} WHERE entity = {mark} AND {position} >= {mark}"
        cursor.execute(f"SELECT {mark} > {horizon}, EXISTS (SELECT 1 {changed} AND record_id IS NULL)",
                       (since, entity.name, since))
        beyond, whole_table = cursor.fetchone()
        if beyond or whole_table:
            cursor.execute(select + order)
        else:
            cursor.execute(f"{select} WHERE {pk} IN (SELECT record_id {changed}){order}", (entity.name, since))

    # --- record editing -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def get(self, entity_name: str, record_id: str, conn: Connection | None = None) -> dict[str, Any] | None:
        entity = self.contract.entity(entity_name)
        sql = text(f"SELECT * FROM {_ident(entity.name)} WHERE {entity.primary_key} = :id")
        if conn is None:
            with self.engine.connect() as c:
                row = c.execute(sql, {"id": record_id}).mappings().first()
        else:
            row = conn.execute(sql, {"id": record_id}).mappings().first()
        return _normalise(dict(row), entity) if row else None

    def create(self, entity_name: str, values: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """Insert a new record after validation; returns it as stored (version 1)."""
        entity = self.contract.entity(entity_name)
        record = dict(values)
        now = _now()
        record.setdefault(entity.primary_key, f"{entity.name[:3].upper()}-{uuid.uuid4().hex[:12]}")
        for column in ("created_at", entity.updated_at):
            if column in entity.column_names and not record.get(column):
                record[column] = now
        if "is_archived" in entity.column_names:
            record.setdefault("is_archived", False)
        clean = validate_record(entity, record, lookup=self._exists)
        with self.engine.begin() as conn:
            if self.get(entity.name, clean[entity.primary_key], conn) is not None:
                raise RecordValidationError({entity.primary_key: "a record with this id already exists"})
            cols = list(clean)
            conn.execute(text(f"INSERT INTO {_ident(entity.name)} ({', '.join(cols)}, version) "
                              f"VALUES ({', '.join(':' + c for c in cols)}, 1)"), clean)
            after = self.get(entity.name, clean[entity.primary_key], conn)
            self._audit(conn, actor, "create", entity, clean[entity.primary_key], None, after)
            self.record_changes(conn, entity.name, [clean[entity.primary_key]])
            self._after_change(conn, entity, None, after, actor)
        return after

    def update(self, entity_name: str, record_id: str, changes: Mapping[str, Any], expected_version: int,
               actor: str, action: str = "update") -> dict[str, Any]:
        """Apply `changes` if the record is still at `expected_version`; otherwise raise StaleEditError."""
        entity = self.contract.entity(entity_name)
        if entity.primary_key in changes and changes[entity.primary_key] != record_id:
            raise RecordValidationError({entity.primary_key: "the id of a record cannot be changed"})
        with self.engine.begin() as conn:
            before = self.get(entity.name, record_id, conn)
            if before is None:
                raise RecordNotFoundError(f"{entity.name} {record_id} does not exist")
            merged = {k: v for k, v in before.items() if k != "version"}
            merged.update(changes)
            merged[entity.updated_at] = _now()
            clean = validate_record(entity, merged, lookup=self._exists)
            sets = ", ".join(f"{c} = :{c}" for c in clean if c != entity.primary_key)
            result = conn.execute(
                text(f"UPDATE {_ident(entity.name)} SET {sets}, version = version + 1 "
                     f"WHERE {entity.primary_key} = :__id AND version = :__version"),
                {**clean, "__id": record_id, "__version": int(expected_version)},
            )
            if result.rowcount != 1:
                raise StaleEditError(
                    f"{entity.name} {record_id} was changed by someone else since you opened it "
                    f"(you had version {expected_version}, it is now {before['version']}); "
                    "reload it and apply your change again."
                )
            after = self.get(entity.name, record_id, conn)
            self._audit(conn, actor, action, entity, record_id, before, after)
            self.record_changes(conn, entity.name, [record_id])
            self._after_change(conn, entity, before, after, actor)
        return after

    def archive(self, entity_name: str, record_id: str, expected_version: int, actor: str) -> dict[str, Any]:
        """Soft-delete: the record stays for history and audit but is flagged `is_archived`."""
        entity = self.contract.entity(entity_name)
        if "is_archived" not in entity.column_names:
            raise RecordValidationError({"is_archived": f"{entity.name} records cannot be archived"})
        return self.update(entity_name, record_id, {"is_archived": True}, expected_version, actor, action="archive")

    def audit_rows(self, entity_name: str | None = None, record_id: str | None = None) -> list[dict[str, Any]]:
        clauses, params = [], {}
        if entity_name:
            clauses.append("entity = :e")
            params["e"] = entity_name
        if record_id:
            clauses.append("record_id = :r")
            params["r"] = record_id
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT * FROM audit_log {where} ORDER BY occurred_at, audit_id"), params)
            return [dict(r) for r in rows.mappings()]

    # --- internals ------------------------------------------------------------------------------------
    def _exists(self, entity_name: str, record_id: str) -> bool | None:
        """Foreign-key lookup for validation; None when the target lives only in landing files."""
        entity = self.contract.entity(entity_name)
        if not entity.in_store:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(text(f"SELECT 1 FROM {_ident(entity.name)} WHERE {entity.primary_key} = :id"),
                               {"id": record_id}).first()
        return row is not None

    def _audit(self, conn: Connection, actor: str, action: str, entity: Entity, record_id: str,
               before: dict | None, after: dict | None) -> None:
        conn.execute(text(
            "INSERT INTO audit_log (audit_id, occurred_at, actor, action, entity, record_id, before_json, after_json) "
            "VALUES (:id, :t, :actor, :action, :entity, :rid, :before, :after)"
        ), {
            "id": uuid.uuid4().hex, "t": datetime.now(UTC).replace(tzinfo=None), "actor": actor,
            "action": action, "entity": entity.name, "rid": record_id,
            "before": json.dumps({k: _jsonable(v) for k, v in before.items()}, sort_keys=True) if before else None,
            "after": json.dumps({k: _jsonable(v) for k, v in after.items()}, sort_keys=True) if after else None,
        })

    def _after_change(self, conn: Connection, entity: Entity, before: dict | None, after: dict, actor: str) -> None:
        """A deal whose stage changes records a stage event (and its change-log entry), so funnel history
        stays complete."""
        if entity.name != "opportunities":
            return
        from_stage = before["stage"] if before else None
        if from_stage == after["stage"]:
            return
        event_id = f"SE-{uuid.uuid4().hex[:16]}"
        conn.execute(text(
            "INSERT INTO opportunity_stage_history "
            "(stage_event_id, opportunity_id, from_stage, to_stage, changed_at, changed_by_user_id, version) "
            "VALUES (:id, :opp, :f, :t, :at, :by, 1)"
        ), {"id": event_id, "opp": after["opportunity_id"], "f": from_stage,
            "t": after["stage"], "at": after["updated_at"], "by": actor if actor.startswith("U") else None})
        self.record_changes(conn, "opportunity_stage_history", [event_id])


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()




def _migrations(dialect: str) -> list[tuple[str, Path]]:
    """(name, file) of the migrations for a dialect, in order: `NNNN_name.sql` for both dialects,
    `NNNN_name.<dialect>.sql` for one (both dialects' files of a name are one migration)."""
    out = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        name, _, only = path.name.removesuffix(".sql").partition(".")
        if not only or only == dialect:
            out.append((name, path))
    return out


def _split_sql(script: str) -> list[str]:
    body = "\n".join(line for line in script.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def _python_rows(frame: pl.DataFrame, entity: Entity) -> Iterable[tuple]:
    """Rows ready for the DB driver: timestamps and dates as ISO text, booleans as 0/1 or bool."""
    casts = []
    for name in frame.columns:
        dtype = frame.schema[name]
        if dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
            casts.append(pl.col(name).dt.strftime("%Y-%m-%dT%H:%M:%S"))
        elif dtype == pl.Date:
            casts.append(pl.col(name).dt.strftime("%Y-%m-%d"))
        else:
            casts.append(pl.col(name))
    return frame.select(casts).iter_rows()
