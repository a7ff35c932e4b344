"""The operational store behaves the same on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import json

import polars as pl
import pytest

from pipelines.contract import load_contract
from pipelines.lib.store import OperationalStore, RecordNotFoundError, RecordValidationError, StaleEditError


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = OperationalStore(f"sqlite:///{tmp_path / 'operational.db'}")
    else:
        s = OperationalStore(request.getfixturevalue("postgres_url"))
    s.migrate()
    s.bulk_insert("teams", pl.DataFrame({"team_id": ["T1"], "team_name": ["North 1"], "region": ["North"],
                                         "updated_at": ["2026-01-01T00:00:00"]}))
    s.bulk_insert("users", pl.DataFrame({
        "user_id": ["U1", "U2"], "full_name": ["Ann Rep", "Bob Rep"], "email": ["ann@x.test", "bob@x.test"],
        "role": ["sales_rep", "sales_rep"], "team_id": ["T1", "T1"], "hired_at": ["2020-01-01", "2021-02-01"],
        "is_active": [True, True], "updated_at": ["2026-01-01T00:00:00"] * 2}))
    yield s
    s.dispose()


ACCOUNT = {"account_name": "Acme GmbH", "account_type": "B2B", "country": "DE", "region": "North",
           "owner_user_id": "U1", "source_system": "crm", "email": "info@acme.test"}


def test_schema_matches_contract(store):
    for entity in load_contract().store_entities:
        assert store.table_columns(entity.name) == entity.column_names + ["version"], entity.name


def test_migrate_is_idempotent(store):
    assert store.migrate() == []


def test_sqlite_uses_wal(tmp_path):
    s = OperationalStore(f"sqlite:///{tmp_path / 'op.db'}")
    s.migrate()
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_create_update_archive_with_audit(store):
    created = store.create("accounts", ACCOUNT, actor="U1")
    assert created["version"] == 1 and created["is_archived"] is False
    updated = store.update("accounts", created["account_id"], {"account_name": "Acme AG"}, 1, actor="U2")
    assert updated["version"] == 2 and updated["account_name"] == "Acme AG"
    archived = store.archive("accounts", created["account_id"], 2, actor="U1")
    assert archived["is_archived"] is True and archived["version"] == 3

    audit = store.audit_rows("accounts", created["account_id"])
    assert [a["action"] for a in audit] == ["create", "update", "archive"]
    assert [a["actor"] for a in audit] == ["U1", "U2", "U1"]
    assert audit[0]["before_json"] is None
    assert json.loads(audit[1]["before_json"])["account_name"] == "Acme GmbH"
    assert json.loads(audit[1]["after_json"])["account_name"] == "Acme AG"


def test_stale_edit_is_refused_and_nothing_changes(store):
    created = store.create("accounts", ACCOUNT, actor="U1")
    store.update("accounts", created["account_id"], {"city": "Berlin"}, 1, actor="U1")
    with pytest.raises(StaleEditError, match="changed by someone else"):
        store.update("accounts", created["account_id"], {"city": "Hamburg"}, 1, actor="U2")
    current = store.get("accounts", created["account_id"])
    assert current["city"] == "Berlin" and current["version"] == 2
    assert len(store.audit_rows("accounts", created["account_id"])) == 2


def test_validation_names_each_field(store):
    bad = {**ACCOUNT, "account_name": "", "account_type": "B2X", "owner_user_id": "U404", "employees": "-3"}
    with pytest.raises(RecordValidationError) as info:
        store.create("accounts", bad, actor="U1")
    errors = info.value.errors
    assert set(errors) == {"account_name", "account_type", "owner_user_id", "employees"}
    assert "one of B2B, B2C" in errors["account_type"]
    assert "does not exist in users" in errors["owner_user_id"]
    assert store.audit_rows() == []


def test_hostile_text_is_stored_verbatim(store):
    name = "'; drop table accounts; --"
    created = store.create("accounts", {**ACCOUNT, "account_name": name}, actor="U1")
    assert store.get("accounts", created["account_id"])["account_name"] == name
    assert store.read_frame("accounts").height == 1


def test_stage_change_records_stage_event(store):
    account = store.create("accounts", ACCOUNT, actor="U1")
    deal = store.create("opportunities", {
        "account_id": account["account_id"], "owner_user_id": "U1", "opportunity_name": "Acme renewal",
        "stage": "prospecting", "amount": 12000, "expected_close_date": "2026-12-31"}, actor="U1")
    store.update("opportunities", deal["opportunity_id"], {"stage": "proposal"}, 1, actor="U1")
    store.update("opportunities", deal["opportunity_id"], {"amount": 15000}, 2, actor="U1")
    events = store.read_frame("opportunity_stage_history").sort(["changed_at", "from_stage"], nulls_last=False)
    assert events.select("from_stage", "to_stage").rows() == [(None, "prospecting"), ("prospecting", "proposal")]


def test_missing_record(store):
    with pytest.raises(RecordNotFoundError):
        store.update("accounts", "ACC-missing", {"city": "x"}, 1, actor="U1")


def test_read_frame_is_text_like_landing_files(store):
    store.create("accounts", ACCOUNT, actor="U1")
    frame = store.read_frame("accounts")
    assert all(dtype == pl.String for dtype in frame.schema.values())
    row = frame.row(0, named=True)
    assert row["is_archived"] == "false" and len(row["created_at"]) == 19 and row["created_at"][10] == "T"
