"""A backup taken while the portal writes restores into a fresh home with every table equal."""

from __future__ import annotations

import json
import threading

import duckdb
import polars as pl
import pytest

from pipelines.lib.backup import BackupError, backup, restore
from pipelines.lib.home import CrmHome
from pipelines.lib.snapshot import connect_snapshot, publish
from pipelines.lib.store import OperationalStore

ACCOUNT = {"account_type": "B2C", "country": "DE", "region": "North", "source_system": "crm"}


def _small_home(root) -> CrmHome:
    home = CrmHome(root).ensure()
    store = OperationalStore(home.operational_db_url)
    store.migrate()
    for i in range(20):
        store.create("accounts", {**ACCOUNT, "account_id": f"ACC-{i:03d}", "account_name": f"Customer {i}"}, "U0")
    store.dispose()
    con = duckdb.connect(str(home.warehouse))
    con.execute("create schema marts; create table marts.fct_x as select range as id, range * 2.5 as v from range(500)")
    con.close()
    publish(home)
    (home.model_artifacts / "churn" / "v1").mkdir(parents=True)
    (home.model_artifacts / "churn" / "v1" / "metadata.json").write_text('{"grade": "A"}')
    return home


def _tables(con, sql) -> dict[str, list]:
    return {name: con.execute(f'select * from {name} order by all').fetchall() for (name,) in con.execute(sql).fetchall()}


def test_backup_while_writing_then_restore_equal(tmp_path):
    home = _small_home(tmp_path / "home")
    store = OperationalStore(home.operational_db_url)
    stop = threading.Event()

    def portal_user() -> None:
        i = 100
        while not stop.is_set():
            store.create("accounts", {**ACCOUNT, "account_id": f"ACC-{i:03d}", "account_name": f"Live {i}"}, "U1")
            i += 1

    writer = threading.Thread(target=portal_user)
    writer.start()
    try:
        result = backup(home, tmp_path / "backup")
    finally:
        stop.set()
        writer.join()
    assert "operational.db" in result.files and "warehouse/warehouse.duckdb" in result.files

    fresh = CrmHome(tmp_path / "restored")
    restore(tmp_path / "backup", fresh)

    import sqlite3
    backed = sqlite3.connect(tmp_path / "backup" / "operational.db")
    restored = sqlite3.connect(fresh.operational_db)
    q = "select name from sqlite_master where type = 'table' order by name"
    tables = [r[0] for r in restored.execute(q)]
    assert tables == [r[0] for r in backed.execute(q)] and "accounts" in tables and "audit_log" in tables
    for table in tables:
        assert restored.execute(f"select * from {table} order by 1").fetchall() == \
            backed.execute(f"select * from {table} order by 1").fetchall(), table
    # the copy is consistent: every account has exactly its create audit row
    n_accounts = restored.execute("select count(*) from accounts").fetchone()[0]
    assert n_accounts >= 20
    assert restored.execute("select count(*) from audit_log where action = 'create'").fetchone()[0] == n_accounts

    src = duckdb.connect(str(home.warehouse), read_only=True)
    dst = duckdb.connect(str(fresh.warehouse), read_only=True)
    q = "select table_schema || '.' || table_name from information_schema.tables order by 1"
    assert _tables(src, q) == _tables(dst, q)
    src.close()
    dst.close()
    a, b = connect_snapshot(home), connect_snapshot(fresh)
    q = "select table_schema || '.' || table_name from information_schema.tables where table_schema <> 'main' order by 1"
    assert _tables(a, q) == _tables(b, q)
    assert (fresh.model_artifacts / "churn" / "v1" / "metadata.json").read_text() == '{"grade": "A"}'


def test_restore_refuses_damaged_backup_and_busy_home(tmp_path):
    home = _small_home(tmp_path / "home")
    backup(home, tmp_path / "b")
    with pytest.raises(BackupError, match="already holds data"):
        restore(tmp_path / "b", home)
    (tmp_path / "b" / "operational.db").write_bytes(b"garbage")
    with pytest.raises(BackupError, match="damaged"):
        restore(tmp_path / "b", CrmHome(tmp_path / "new"))
    with pytest.raises(BackupError, match="not empty"):
        backup(home, tmp_path / "b")


def test_postgres_store_round_trip(tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv("CRM_OPERATIONAL_DB_URL", postgres_url)
    home = CrmHome(tmp_path / "pg").ensure()
    store = OperationalStore(home.operational_db_url)
    store.migrate()
    created = store.create("accounts", {**ACCOUNT, "account_name": "Zoë Müller"}, "U1")
    store.update("accounts", created["account_id"], {"city": "Köln"}, 1, "U1")
    before = store.read_frame("accounts")
    audit_before = len(store.audit_rows())
    backup(home, tmp_path / "b")
    with store.transaction() as conn:
        from sqlalchemy import text
        conn.execute(text("delete from accounts"))
        conn.execute(text("delete from audit_log"))
    restore(tmp_path / "b", CrmHome(tmp_path / "pg2"))
    assert store.read_frame("accounts").equals(before)
    assert len(store.audit_rows()) == audit_before
    assert pl.read_parquet(tmp_path / "b" / "operational" / "accounts.parquet").height == 1


def _account_ids(store: OperationalStore) -> list[str]:
    return sorted(store.read_frame("accounts")["account_id"].to_list())


@pytest.mark.postgres
def test_restore_silently_overwrites_a_populated_postgresql_store(tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv("CRM_OPERATIONAL_DB_URL", postgres_url)
    home = CrmHome(tmp_path / "pg").ensure()
    store = OperationalStore(home.operational_db_url)
    store.migrate()
    store.create("accounts", {**ACCOUNT, "account_id": "ACC-001", "account_name": "In the backup"}, "U1")
    backup(home, tmp_path / "b")
    store.create("accounts", {**ACCOUNT, "account_id": "ACC-002", "account_name": "Written after it"}, "U1")
    audit_rows = len(store.audit_rows())

    with pytest.raises(BackupError, match=r"postgresql operational store .* already holds data .*--force"):
        restore(tmp_path / "b", CrmHome(tmp_path / "pg2"))
    assert _account_ids(store) == ["ACC-001", "ACC-002"] and len(store.audit_rows()) == audit_rows

    restore(tmp_path / "b", CrmHome(tmp_path / "pg2"), force=True)
    assert _account_ids(store) == ["ACC-001"] and len(store.audit_rows()) == 1
    store.create("accounts", {**ACCOUNT, "account_id": "ACC-003", "account_name": "After the restore"}, "U1")
    store.dispose()


def test_restore_refuses_a_populated_sqlite_store_unless_forced(tmp_path, cli_output):
    from typer.testing import CliRunner

    from pipelines.cli import app

    home = _small_home(tmp_path / "home")
    backup(home, tmp_path / "b")
    store = OperationalStore(home.operational_db_url)
    store.create("accounts", {**ACCOUNT, "account_id": "ACC-900", "account_name": "Written after it"}, "U1")
    store.dispose()
    # a home with only the store (no warehouse yet) is refused for the store alone
    bare = CrmHome(tmp_path / "bare").ensure()
    (bare.operational_db).write_bytes(home.operational_db.read_bytes())
    with pytest.raises(BackupError, match=r"sqlite operational store .*operational.db already holds data"):
        restore(tmp_path / "b", bare)

    refused = CliRunner().invoke(app, ["restore", str(tmp_path / "b"), "--home", str(home.root)])
    said = cli_output()
    assert refused.exit_code == 1 and "already holds data" in said and "pass --force" in said
    store = OperationalStore(home.operational_db_url)
    assert len(_account_ids(store)) == 21
    store.dispose()

    forced = CliRunner().invoke(app, ["restore", str(tmp_path / "b"), "--home", str(home.root), "--force"])
    assert forced.exit_code == 0, forced.output
    store = OperationalStore(home.operational_db_url)
    assert _account_ids(store) == [f"ACC-{i:03d}" for i in range(20)]
    store.dispose()
    assert [p.name for p in home.snapshots.glob("snapshot-*.duckdb")] == [
        json.loads((tmp_path / "b" / "backup.json").read_text())["current_snapshot"]]
