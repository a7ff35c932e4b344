"""The warehouse reads the operational store by its change log, in commit order (docs/store-changes.md).

The fault these tests pin down: with an `updated_at` watermark, an edit stamped before a later one but
committed after that later one had been ingested stayed below the watermark and never reached the
warehouse. The tests make that interleaving happen for real with two threads, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from sqlalchemy import text
from test_ingest import _store_rows

import pipelines.lib.store as store_module
from pipelines.lib.home import CrmHome
from pipelines.lib.ingest import ingest_all
from pipelines.lib.store import OperationalStore

STORE_ENTITIES = ["teams", "users", "accounts", "contacts"]
T1_STAMP, T2_STAMP = datetime(2026, 3, 1, 10, 0, 0), datetime(2026, 3, 1, 10, 0, 30)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'operational.db'}"
    return request.getfixturevalue("postgres_url")


def _raw(home: CrmHome, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _store_rows_read(results, entity: str) -> int:
    result = next(r for r in results if r.entity == entity)
    return next(s.rows_read for s in result.sources if s.source_file == f"store:{entity}")


class _PausedEdit:
    """Runs `store.update` in a thread that stops at a chosen point until `finish()` is called.

    `where="stamped"`: after `updated_at` was stamped, before anything is written (the row still unlocked).
    `where="written"`: after every write of the transaction, just before its commit.
    The paused edit is stamped T1_STAMP, any other edit T2_STAMP (a later second), as if the paused one
    had simply been slower to commit.
    """

    def __init__(self, monkeypatch, store: OperationalStore, where: str):
        self.store, self.paused, self.release, self.error = store, threading.Event(), threading.Event(), None
        self.thread = threading.Thread(target=self._run, name="slow-edit")
        monkeypatch.setattr(store_module, "_now", lambda: T1_STAMP if self._mine() else T2_STAMP)
        if where == "stamped":
            original = store_module.validate_record

            def validate(*args, **kwargs):
                clean = original(*args, **kwargs)
                self._pause()
                return clean
            monkeypatch.setattr(store_module, "validate_record", validate)
        else:
            original_after = OperationalStore._after_change

            def after_change(this, *args, **kwargs):
                original_after(this, *args, **kwargs)
                self._pause()
            monkeypatch.setattr(OperationalStore, "_after_change", after_change)

    def _mine(self) -> bool:
        return threading.current_thread() is self.thread

    def _pause(self) -> None:
        if self._mine():
            self.paused.set()
            assert self.release.wait(60), "the paused edit was never released"

    def _run(self) -> None:
        try:
            row = self.store.get("accounts", "ACC-1")
            self.store.update("accounts", "ACC-1", {"account_name": "Acme slow edit"}, row["version"], actor="U-1")
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread by finish()
            self.error = exc

    def start(self) -> None:
        self.thread.start()
        assert self.paused.wait(30), "the slow edit did not reach its pause point"

    def finish(self) -> None:
        self.release.set()
        self.thread.join(30)
        if self.error is not None:
            raise self.error


def _race(tmp_path: Path, monkeypatch, url: str, where: str) -> None:
    home = CrmHome(tmp_path / "home").ensure()
    store = OperationalStore(url)
    try:
        _store_rows(store)
        ingest_all(home, entities=STORE_ENTITIES, store_url=url)
        slow = _PausedEdit(monkeypatch, store, where)
        slow.start()
        try:
            # a later-stamped edit commits and is ingested while the earlier-stamped one is still open
            row = store.get("accounts", "ACC-2")
            store.update("accounts", "ACC-2", {"account_name": "Beta fast edit"}, row["version"], actor="U-2")
            ingest_all(home, entities=STORE_ENTITIES, store_url=url)
            assert _raw(home, "SELECT account_name FROM raw.accounts WHERE account_id = 'ACC-2'") == [
                ("Beta fast edit",)]
        finally:
            slow.finish()
        assert store.get("accounts", "ACC-1")["updated_at"] == T1_STAMP.isoformat()
        ingest_all(home, entities=STORE_ENTITIES, store_url=url)
        assert _raw(home, "SELECT account_id, account_name FROM raw.accounts WHERE _source = 'store' "
                          "ORDER BY 1") == [("ACC-1", "Acme slow edit"), ("ACC-2", "Beta fast edit"),
                                            ("ACC-3", "Gamma")]
    finally:
        store.dispose()


def test_edit_committed_after_a_later_stamped_one_was_ingested_reaches_the_warehouse(
        tmp_path, monkeypatch, store_url):
    """The edit stamped first is held between stamping and writing (both dialects)."""
    _race(tmp_path, monkeypatch, store_url, "stamped")


@pytest.mark.postgres
def test_edit_whose_change_row_is_written_but_uncommitted_during_an_ingest_reaches_the_warehouse(
        tmp_path, monkeypatch, postgres_url):
    """PostgreSQL only: the slow edit has written its row and its change-log row (so its sequence value
    and transaction id are taken) and is held just before commit while another edit commits and is ingested.
    (On SQLite the open write transaction holds the database's write lock, so the second edit cannot
    commit first: SQLite serialises writers, which is why its change ids are commit-ordered.)"""
    _race(tmp_path, monkeypatch, postgres_url, "written")


# --- every write path writes the log, in its own transaction --------------------------------------------------

ACCOUNT = {"account_name": "Acme GmbH", "account_type": "B2B", "country": "DE", "region": "North",
           "owner_user_id": "U-1", "source_system": "crm"}


def _changes(store: OperationalStore) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT entity, record_id FROM store_changes ORDER BY change_id")).fetchall()]


def test_every_write_path_notes_its_change_in_the_change_log(store_url):
    store = OperationalStore(store_url)
    try:
        _store_rows(store)  # bulk_insert: one whole-table entry per call
        assert _changes(store) == [("teams", None), ("users", None), ("accounts", None), ("contacts", None)]
        start = len(_changes(store))
        account = store.create("accounts", ACCOUNT, actor="U-1")
        aid = account["account_id"]
        store.update("accounts", aid, {"account_name": "Acme AG"}, 1, actor="U-1")
        store.archive("accounts", aid, 2, actor="U-1")
        deal = store.create("opportunities", {
            "account_id": aid, "owner_user_id": "U-1", "opportunity_name": "Acme renewal", "stage": "prospecting",
            "amount": 12000, "expected_close_date": "2026-12-31"}, actor="U-1")
        store.update("opportunities", deal["opportunity_id"], {"stage": "proposal"}, 1, actor="U-1")
        with pytest.raises(store_module.StaleEditError):  # a refused write leaves no entry
            store.update("accounts", aid, {"account_name": "Stale"}, 1, actor="U-2")
        with pytest.raises(store_module.RecordValidationError):
            store.create("accounts", {**ACCOUNT, "country": None}, actor="U-1")
        with store.engine.connect() as conn:
            events = [r[0] for r in conn.execute(text("SELECT stage_event_id FROM opportunity_stage_history"))]
        assert len(events) == 2
        logged = _changes(store)[start:]
        assert logged[:3] == [("accounts", aid)] * 3
        assert sorted(logged[3:]) == sorted([("opportunities", deal["opportunity_id"])] * 2
                                            + [("opportunity_stage_history", e) for e in events])
        assert len(logged) == 7
    finally:
        store.dispose()


def test_a_change_log_entry_commits_or_rolls_back_with_its_write(store_url, monkeypatch):
    store = OperationalStore(store_url)
    try:
        _store_rows(store)
        before = _changes(store)

        def stage_event_fails(*_args, **_kwargs):
            raise RuntimeError("disk full")
        monkeypatch.setattr(OperationalStore, "_after_change", stage_event_fails)  # after the log entry is written
        with pytest.raises(RuntimeError, match="disk full"):
            store.create("accounts", ACCOUNT, actor="U-1")
        assert _changes(store) == before
        assert store.read_frame("accounts").height == 3
    finally:
        store.dispose()


# --- reading by the log --------------------------------------------------------------------------------------

def test_incremental_ingest_reads_only_the_changed_rows(tmp_path):
    """SQLite: nothing else writes, so the counts are exact (on PostgreSQL the position stops at the oldest
    transaction still open anywhere on the server, and what changed after it began is read again)."""
    home = CrmHome(tmp_path / "home").ensure()
    url = home.operational_db_url
    store = OperationalStore(url)
    try:
        _store_rows(store)
        first = ingest_all(home, entities=STORE_ENTITIES)
        assert _store_rows_read(first, "accounts") == 3 and _store_rows_read(first, "contacts") == 2
        assert _store_rows_read(ingest_all(home, entities=STORE_ENTITIES), "accounts") == 0
        row = store.get("contacts", "C-2")
        store.update("contacts", "C-2", {"job_title": "Buyer"}, row["version"], actor="U-1")
        store.update("contacts", "C-2", {"job_title": "Head buyer"}, row["version"] + 1, actor="U-1")
        third = ingest_all(home, entities=STORE_ENTITIES)
        assert [_store_rows_read(third, e) for e in STORE_ENTITIES] == [0, 0, 0, 1]
        assert _raw(home, "SELECT job_title FROM raw.contacts WHERE contact_id = 'C-2'") == [("Head buyer",)]
        # a bulk load marks the whole table: the next ingest reads all of it
        store.bulk_insert("accounts", pl.DataFrame({
            "account_id": ["ACC-4"], "account_name": ["Delta"], "account_type": ["B2B"], "country": ["DE"],
            "region": ["North"], "owner_user_id": ["U-1"], "source_system": ["crm"],
            "created_at": ["2026-01-05T10:00:00"], "is_archived": [False], "updated_at": ["2026-01-05T10:00:00"]}))
        assert _store_rows_read(ingest_all(home, entities=STORE_ENTITIES), "accounts") == 4
        assert _raw(home, "SELECT count(*) FROM raw.accounts WHERE _source = 'store'") == [(4,)]
        assert _raw(home, "SELECT entity, position FROM raw._store_cursor ORDER BY 1") == [
            (e, store.change_position()) for e in sorted(STORE_ENTITIES)]
    finally:
        store.dispose()


def test_cursor_kept_for_another_store_is_not_used(tmp_path, postgres_url):
    """Pointing the home at another database reads that one whole, whatever position the first reached."""
    home = CrmHome(tmp_path / "home").ensure()
    sqlite_store, pg_store = OperationalStore(home.operational_db_url), OperationalStore(postgres_url)
    try:
        _store_rows(sqlite_store)
        for _ in range(3):  # move the SQLite position on
            row = sqlite_store.get("accounts", "ACC-1")
            sqlite_store.update("accounts", "ACC-1", {"city": f"Town {_}"}, row["version"], actor="U-1")
        ingest_all(home, entities=STORE_ENTITIES)
        _store_rows(pg_store)
        with pg_store.engine.begin() as conn:
            conn.execute(text("UPDATE accounts SET account_name = 'Gamma on the server' WHERE account_id = 'ACC-3'"))
        assert _store_rows_read(ingest_all(home, entities=STORE_ENTITIES, store_url=postgres_url), "accounts") == 3
        assert _raw(home, "SELECT account_name FROM raw.accounts WHERE account_id = 'ACC-3'") == [
            ("Gamma on the server",)]
    finally:
        sqlite_store.dispose()
        pg_store.dispose()


def test_position_beyond_what_the_store_handed_out_reads_everything(store_url):
    """A cursor from a database since rebuilt (restored elsewhere, recreated) is not trusted."""
    store = OperationalStore(store_url)
    try:
        _store_rows(store)
        accounts = store.contract.entity("accounts")
        ahead = store.change_position() + 10_000_000
        assert store.read_frame("accounts", since=ahead).height == 3
        with store.engine.connect() as conn:
            top = conn.execute(text(
                "SELECT max(change_id) FROM store_changes" if store.dialect == "sqlite"
                else "SELECT max(txid) FROM store_changes")).scalar_one()
        assert store.read_frame("accounts", since=top + 1).height == 0  # nothing written after the bulk load
        row = store.get("accounts", "ACC-2")
        store.update("accounts", "ACC-2", {"city": "Bremen"}, row["version"], actor="U-1")
        assert store.read_frame(accounts.name, since=top + 1).get_column("account_id").to_list() == ["ACC-2"]
    finally:
        store.dispose()


# --- a store rebuilt under the same URL -----------------------------------------------------------------------

NEW_ACCOUNT = {"account_id": ["ACC-4"], "account_name": ["Delta"], "account_type": ["B2B"], "country": ["DE"],
               "region": ["North"], "owner_user_id": ["U-1"], "source_system": ["crm"],
               "created_at": ["2026-01-05T10:00:00"], "is_archived": [False], "updated_at": ["2026-01-05T10:00:00"]}


def _edit_contact(store: OperationalStore, times: int, contact_id: str = "C-2") -> None:
    """Move the store's change-log position on by `times` single-record edits."""
    for n in range(times):
        row = store.get("contacts", contact_id)
        store.update("contacts", contact_id, {"job_title": f"Title {n}"}, row["version"], actor="U-1")


def _rebuild(store: OperationalStore) -> None:
    """What a user does after deleting the store: migrate, load, add a record, edit on (the position passes
    the one the warehouse kept for the old store)."""
    _store_rows(store)
    store.bulk_insert("accounts", pl.DataFrame(NEW_ACCOUNT))
    _edit_contact(store, 8)


def test_sqlite_store_rebuilt_at_the_same_path_reaches_the_warehouse_whole(tmp_path):
    """The rebuilt store's change ids start again at 1: a cursor kept for the old file, which the new one
    has since passed, must not count, or every row changed below it (here all accounts) is never read."""
    home = CrmHome(tmp_path / "home").ensure()
    old = OperationalStore(home.operational_db_url)
    _store_rows(old)
    _edit_contact(old, 6)
    ingest_all(home, entities=STORE_ENTITIES)
    kept, old_identity = old.change_position(), old.identity
    old.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(str(home.operational_db) + suffix).unlink(missing_ok=True)

    store = OperationalStore(home.operational_db_url)
    try:
        _rebuild(store)
        assert store.change_position() > kept and store.identity not in (None, old_identity)
        rebuilt = ingest_all(home, entities=STORE_ENTITIES)
        assert [_store_rows_read(rebuilt, e) for e in STORE_ENTITIES] == [1, 2, 4, 2]
        assert _raw(home, "SELECT account_id FROM raw.accounts WHERE _source = 'store' ORDER BY 1") == [
            ("ACC-1",), ("ACC-2",), ("ACC-3",), ("ACC-4",)]
        assert _raw(home, "SELECT DISTINCT store, position FROM raw._store_cursor") == [
            (store.cursor_key, store.change_position())]
        # the same store again: incremental, only the changed row
        _edit_contact(store, 1, "C-1")
        after = ingest_all(home, entities=STORE_ENTITIES)
        assert [_store_rows_read(after, e) for e in STORE_ENTITIES] == [0, 0, 0, 1]
        assert _raw(home, "SELECT contact_id, job_title FROM raw.contacts ORDER BY 1") == [
            ("C-1", "Title 0"), ("C-2", "Title 7")]
    finally:
        store.dispose()


@pytest.mark.postgres
def test_postgresql_database_dropped_and_created_again_under_the_same_url_reaches_the_warehouse_whole(
        tmp_path, postgres_server_url):
    """A database of the same name created again is another store: its rows are read whole."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"crm_test_{uuid.uuid4().hex[:10]}"
    url = urlunsplit(urlsplit(postgres_server_url)._replace(path=f"/{name}"))
    home = CrmHome(tmp_path / "home").ensure()

    def create_database() -> OperationalStore:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return OperationalStore(url)

    try:
        old = create_database()
        _store_rows(old)
        _edit_contact(old, 6)
        ingest_all(home, entities=STORE_ENTITIES, store_url=url)
        old_identity = old.identity
        old.dispose()
        store = create_database()
        try:
            _rebuild(store)
            assert store.identity not in (None, old_identity)
            rebuilt = ingest_all(home, entities=STORE_ENTITIES, store_url=url)
            assert [_store_rows_read(rebuilt, e) for e in STORE_ENTITIES] == [1, 2, 4, 2]
            assert _raw(home, "SELECT count(*) FROM raw.accounts WHERE _source = 'store'") == [(4,)]
            assert _raw(home, "SELECT DISTINCT store FROM raw._store_cursor") == [(store.cursor_key,)]
        finally:
            store.dispose()
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_restored_sqlite_store_and_warehouse_keep_one_cursor(tmp_path):
    """A restore brings back the store file (its identity with it) and the warehouse of the same backup:
    over the same home the cursor still fits and only what changed since is read; into another home the
    URL differs and everything is read."""
    from pipelines.lib.backup import backup, restore

    home = CrmHome(tmp_path / "home").ensure()
    store = OperationalStore(home.operational_db_url)
    _store_rows(store)
    ingest_all(home, entities=STORE_ENTITIES)
    identity = store.identity
    store.dispose()
    backup(home, tmp_path / "backup")
    store = OperationalStore(home.operational_db_url)
    try:
        _edit_contact(store, 2)  # written after the backup, read, then lost by the restore
        ingest_all(home, entities=STORE_ENTITIES)
    finally:
        store.dispose()
    restore(tmp_path / "backup", home, force=True)
    store = OperationalStore(home.operational_db_url)
    try:
        assert store.identity == identity
        assert _raw(home, "SELECT job_title FROM raw.contacts WHERE contact_id = 'C-2'") == [(None,)]
        _edit_contact(store, 1, "C-1")
        after = ingest_all(home, entities=STORE_ENTITIES)
        assert [_store_rows_read(after, e) for e in STORE_ENTITIES] == [0, 0, 0, 1]
    finally:
        store.dispose()
    elsewhere = CrmHome(tmp_path / "elsewhere")
    restore(tmp_path / "backup", elsewhere)
    moved = ingest_all(elsewhere, entities=STORE_ENTITIES)
    assert [_store_rows_read(moved, e) for e in STORE_ENTITIES] == [1, 2, 3, 2]


def test_every_migrated_store_gets_its_own_identity(tmp_path):
    """Two stores never share an identity, and migrating again keeps it."""
    first, second = (OperationalStore(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    try:
        assert first.identity is None and first.change_position() is None  # not migrated: read whole
        first.migrate()
        second.migrate()
        identity = first.identity
        assert len({identity, second.identity}) == 2 and len(identity) == 36
        assert first.migrate() == [] and first.identity == identity
    finally:
        first.dispose()
        second.dispose()


# --- existing stores and backups ----------------------------------------------------------------------------

def test_store_made_before_the_change_log_migrates_and_is_then_read_by_it(tmp_path, monkeypatch):
    old_migrations = tmp_path / "old_migrations"
    old_migrations.mkdir()
    for path in sorted(store_module.MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0005":
            (old_migrations / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    home = CrmHome(tmp_path / "home").ensure()
    store = OperationalStore(home.operational_db_url)
    try:
        monkeypatch.setattr(store_module, "MIGRATIONS_DIR", old_migrations)
        assert "0005_store_changes" not in store.migrate()
        with store.engine.begin() as conn:  # rows written by the code of that time (no change log)
            conn.execute(text("INSERT INTO teams (team_id, team_name, region, updated_at) "
                              "VALUES ('T-1', 'North', 'North', '2026-01-01T10:00:00')"))
            conn.execute(text("INSERT INTO users (user_id, full_name, email, role, team_id, hired_at, is_active, "
                              "updated_at) VALUES ('U-1', 'Ann Rep', 'a@x.io', 'sales_rep', 'T-1', '2020-01-01', "
                              "1, '2026-01-01T10:00:00')"))
            conn.execute(text("INSERT INTO accounts (account_id, account_name, account_type, country, region, "
                              "source_system, created_at, is_archived, updated_at) VALUES ('ACC-1', 'Acme', 'B2B', "
                              "'DE', 'North', 'crm', '2026-01-01T10:00:00', 0, '2026-01-02T10:00:00')"))
        # not migrated yet: read whole every time, no position kept
        assert _store_rows_read(ingest_all(home, entities=STORE_ENTITIES), "accounts") == 1
        assert _store_rows_read(ingest_all(home, entities=STORE_ENTITIES), "accounts") == 1
        assert _raw(home, "SELECT count(*) FROM raw._store_cursor") == [(0,)]
        monkeypatch.undo()
        fresh = OperationalStore(home.operational_db_url)
        assert fresh.migrate() == ["0005_store_changes", "0006_store_identity"]
        assert _store_rows_read(ingest_all(home, entities=STORE_ENTITIES), "accounts") == 1  # no position yet
        assert _store_rows_read(ingest_all(home, entities=STORE_ENTITIES), "accounts") == 0
        fresh.update("accounts", "ACC-1", {"account_name": "Acme AG"}, 1, actor="U-1")
        assert _store_rows_read(ingest_all(home, entities=STORE_ENTITIES), "accounts") == 1
        assert _raw(home, "SELECT account_name FROM raw.accounts") == [("Acme AG",)]
        fresh.dispose()
    finally:
        store.dispose()


@pytest.mark.postgres
def test_restored_postgresql_store_takes_new_writes_into_its_change_log(tmp_path, monkeypatch, postgres_url,
                                                                        postgres_server_url):
    """The restore copies change-log rows with their ids; the id sequence must move past them."""
    import uuid
    from urllib.parse import quote

    import psycopg

    from pipelines.lib.backup import backup, restore

    monkeypatch.setenv("CRM_OPERATIONAL_DB_URL", postgres_url)
    home = CrmHome(tmp_path / "pg").ensure()
    store = OperationalStore(postgres_url)
    _store_rows(store)
    for city in ("Kiel", "Bonn"):
        row = store.get("accounts", "ACC-1")
        store.update("accounts", "ACC-1", {"city": city}, row["version"], actor="U-1")
    logged = len(_changes(store))
    store.dispose()
    backup(home, tmp_path / "backup")
    schema = f"crm_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in postgres_server_url else "?"
        target_url = f"{postgres_server_url}{sep}options={quote(f'-csearch_path={schema}')}"
        monkeypatch.setenv("CRM_OPERATIONAL_DB_URL", target_url)
        restore(tmp_path / "backup", CrmHome(tmp_path / "restored"))
        restored = OperationalStore(target_url)
        assert len(_changes(restored)) == logged
        row = restored.get("accounts", "ACC-2")
        restored.update("accounts", "ACC-2", {"city": "Ulm"}, row["version"], actor="U-1")
        assert _changes(restored)[-1] == ("accounts", "ACC-2") and len(_changes(restored)) == logged + 1
        restored.dispose()
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_erasure_removes_the_erased_records_from_the_change_log(tmp_path):
    from pipelines.lib.erasure import erase_customer

    home = CrmHome(tmp_path / "home").ensure()
    store = OperationalStore(home.operational_db_url)
    try:
        _store_rows(store)
        for name in ("Acme 2", "Acme 3"):
            row = store.get("accounts", "ACC-1")
            store.update("accounts", "ACC-1", {"account_name": name}, row["version"], actor="U-1")
        row = store.get("contacts", "C-1")
        store.update("contacts", "C-1", {"job_title": "CEO"}, row["version"], actor="U-1")
        row = store.get("accounts", "ACC-2")
        store.update("accounts", "ACC-2", {"city": "Kiel"}, row["version"], actor="U-1")
        row = store.get("contacts", "C-1")
        store.update("contacts", "C-1", {"job_title": "Founder"}, row["version"], actor="U-1")  # the newest entry
        assert ("accounts", "ACC-1") in _changes(store) and _changes(store)[-1] == ("contacts", "C-1")
        position = store.change_position()
        erase_customer(home, "ACC-1", actor="dpo")
        left = _changes(store)
        assert not [c for c in left if c[1] in ("ACC-1", "C-1")]
        assert ("accounts", "ACC-2") in left and ("accounts", None) in left
        assert store.change_position() == position  # ids are never handed out again
    finally:
        store.dispose()
