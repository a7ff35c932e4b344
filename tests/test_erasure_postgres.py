"""Erasure with the operational store in PostgreSQL: rows, audit rows and dead row versions go, the journal
finishes, and an interrupted erasure is finished by a rerun."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from pipelines.lib.erasure import ErasureError, erase_customer, subject_hash
from pipelines.lib.home import CrmHome
from pipelines.lib.store import OperationalStore

pytestmark = pytest.mark.postgres

ACCOUNT = {"account_type": "B2C", "country": "DE", "region": "North", "source_system": "crm"}
NAME, EMAIL, PHONE = "Zoë Brandtner", "zoe.brandtner@mail.example", "+49 30 5550199"


def _store_home(tmp_path, postgres_url, monkeypatch) -> tuple[CrmHome, OperationalStore]:
    monkeypatch.setenv("CRM_OPERATIONAL_DB_URL", postgres_url)
    home = CrmHome(tmp_path / "home").ensure()
    store = OperationalStore(home.operational_db_url)
    store.migrate()
    store.create("accounts", {**ACCOUNT, "account_id": "ACC-001", "account_name": NAME, "email": EMAIL,
                              "phone": PHONE}, "U1")
    store.create("contacts", {"contact_id": "CON-001", "account_id": "ACC-001", "first_name": "Zoë",
                              "last_name": "Brandtner", "email": EMAIL, "phone": PHONE, "is_primary": True}, "U1")
    store.create("accounts", {**ACCOUNT, "account_id": "ACC-002", "account_name": "Somebody Else"}, "U1")
    return home, store


def _personal_rows(store: OperationalStore) -> int:
    with store.engine.connect() as conn:
        found = conn.execute(text("SELECT count(*) FROM accounts WHERE account_id = 'ACC-001'")).scalar()
        found += conn.execute(text("SELECT count(*) FROM contacts WHERE account_id = 'ACC-001'")).scalar()
        found += conn.execute(text("SELECT count(*) FROM audit_log WHERE coalesce(after_json, '') LIKE :e "
                                   "OR coalesce(before_json, '') LIKE :e"), {"e": f"%{EMAIL}%"}).scalar()
    return int(found)


def test_erasure_in_a_postgresql_store(tmp_path, postgres_url, monkeypatch):
    home, store = _store_home(tmp_path, postgres_url, monkeypatch)
    assert _personal_rows(store) >= 3

    report = erase_customer(home, "ACC-001", actor="dpo@example.test")

    assert report.records == {"accounts": 1, "contacts": 1}
    assert _personal_rows(store) == 0
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM accounts")).scalar() == 1  # the other customer stays
        tombstones = {r[0] for r in conn.execute(text("SELECT subject_hash FROM erased_subjects"))}
        erase_rows = conn.execute(text("SELECT actor, record_id FROM audit_log WHERE action = 'erase'")).all()
    assert {subject_hash("accounts", "ACC-001"), subject_hash("contacts", "CON-001")} <= tombstones
    assert erase_rows == [("dpo@example.test", subject_hash("accounts", "ACC-001"))]
    journal = json.loads((home.root / "erasure" / f"{report.customer_hash}.json").read_text(encoding="utf-8"))
    assert journal["status"] == "done" and EMAIL not in json.dumps(journal) and "ACC-001" not in json.dumps(journal)
    assert erase_customer(home, "ACC-001").already_erased
    with pytest.raises(ErasureError, match="No customer"):
        erase_customer(home, "ACC-404")
    store.dispose()


def test_interrupted_erasure_in_a_postgresql_store_is_finished_by_a_rerun(tmp_path, postgres_url, monkeypatch):
    home, store = _store_home(tmp_path, postgres_url, monkeypatch)

    def stop(step):
        if step == "tombstones":
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        erase_customer(home, "ACC-001", after_step=stop)
    assert _personal_rows(store) >= 3  # stopped before the store step: all still there, but tombstoned

    report = erase_customer(home, "ACC-001")

    assert report.resumed and _personal_rows(store) == 0
    store.dispose()
