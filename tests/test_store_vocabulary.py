"""Every write to the operational store is checked against the installation's vocabulary (crm.yaml) by the
store itself: portal edits (`create`, `update`, `archive` through app/edits.py), `crm import`
(`upsert_many`) and a store opened by URL alone (the default installation), with one message per field.

Before, only the importer and the portal swapped a settings contract into their store; any other store
accepted a stage or region the installation does not allow, and the next `crm run` quarantined it.
"""

from __future__ import annotations

import polars as pl
import pytest

from app.auth import Viewer
from pipelines.contract.validate import ROW
from pipelines.lib.home import CrmHome
from pipelines.lib.store import OperationalStore, RecordValidationError

CRM_YAML = """\
stages:
  - {name: lead, probability: 0.1}
  - {name: pitch, probability: 0.5}
  - {name: won, won: true, probability: 1.0}
  - {name: lost, lost: true, probability: 0.0}
dimensions:
  region: [North, South]
  lead_source: open
"""
STAGE_MESSAGE = ("stage must be one of lead, pitch, won, lost (got {!r}); correct the value or add it to "
                 "stages in crm.yaml.")
REGION_MESSAGE = ("region must be one of North, South (got 'West'); correct the value or add it to "
                  "dimensions.region in crm.yaml.")
ACCOUNT = {"account_name": "Acme GmbH", "account_type": "B2B", "country": "DE", "region": "North",
           "owner_user_id": "U1", "source_system": "crm", "email": "info@acme.test"}
ADMIN = Viewer(username="vocab-admin", role="admin")


def _seed(store: OperationalStore) -> None:
    store.migrate()
    store.bulk_insert("teams", pl.DataFrame({"team_id": ["T1"], "team_name": ["North 1"], "region": ["North"],
                                             "updated_at": ["2026-01-01T00:00:00"]}))
    store.bulk_insert("users", pl.DataFrame({
        "user_id": ["U1"], "full_name": ["Ann Rep"], "email": ["ann@x.test"], "role": ["sales_rep"],
        "team_id": ["T1"], "hired_at": ["2020-01-01"], "is_active": [True],
        "updated_at": ["2026-01-01T00:00:00"]}))


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = CrmHome(tmp_path / "home").ensure()
    home.settings_file.write_text(CRM_YAML, encoding="utf-8")
    monkeypatch.setenv("CRM_HOME", str(home.root))
    monkeypatch.delenv("CRM_OPERATIONAL_DB_URL", raising=False)
    return home


@pytest.fixture
def portal_store(home):
    """The store exactly as the portal opens it (app.queries.operational_store)."""
    from app import queries

    store = queries.operational_store()
    _seed(store)
    yield store
    queries._store.clear()
    store.dispose()


def _deal(account_id: str, stage: str, **more) -> dict:
    return {"account_id": account_id, "owner_user_id": "U1", "opportunity_name": "Acme renewal", "stage": stage,
            "amount": 12000, "expected_close_date": "2026-12-31", **more}


def test_portal_create_and_update_refuse_a_stage_crm_yaml_does_not_list(portal_store):
    from app import edits

    account = edits.create_record(ADMIN, portal_store, "accounts", ACCOUNT)
    with pytest.raises(RecordValidationError) as refused:
        edits.create_record(ADMIN, portal_store, "opportunities", _deal(account["account_id"], "prospecting"))
    assert refused.value.errors == {"stage": STAGE_MESSAGE.format("prospecting")}

    deal = edits.create_record(ADMIN, portal_store, "opportunities", _deal(account["account_id"], "pitch"))
    with pytest.raises(RecordValidationError) as refused:
        edits.update_record(ADMIN, portal_store, "opportunities", deal["opportunity_id"],
                            {"stage": "negotiation"}, deal["version"])
    assert refused.value.errors == {"stage": STAGE_MESSAGE.format("negotiation")}
    kept = portal_store.get("opportunities", deal["opportunity_id"])
    assert (kept["stage"], kept["version"]) == ("pitch", 1)
    with portal_store.engine.connect() as conn:
        deals = conn.exec_driver_sql("SELECT count(*) FROM opportunities").scalar()
    assert deals == 1


def test_a_closed_dimension_refuses_other_values_on_create_update_and_archive(home):
    store = OperationalStore.for_home(home)
    _seed(store)
    with pytest.raises(RecordValidationError) as refused:
        store.create("accounts", {**ACCOUNT, "region": "West"}, actor="U1")
    assert refused.value.errors == {"region": REGION_MESSAGE}
    account = store.create("accounts", ACCOUNT, actor="U1")
    with pytest.raises(RecordValidationError) as refused:
        store.update("accounts", account["account_id"], {"region": "West"}, 1, actor="U1")
    assert refused.value.errors == {"region": REGION_MESSAGE}
    # a record that holds a value crm.yaml no longer lists cannot be archived until it is corrected
    with store.transaction() as conn:
        conn.exec_driver_sql("UPDATE accounts SET region = 'West' WHERE account_id = ?", (account["account_id"],))
    with pytest.raises(RecordValidationError) as refused:
        store.archive("accounts", account["account_id"], 1, actor="U1")
    assert refused.value.errors == {"region": REGION_MESSAGE}
    assert store.get("accounts", account["account_id"])["is_archived"] is False
    store.dispose()


def test_upsert_many_refuses_the_same_row_with_the_same_reason(home):
    store = OperationalStore.for_home(home)
    _seed(store)
    account = store.create("accounts", ACCOUNT, actor="U1")
    with pytest.raises(RecordValidationError) as refused:
        store.create("opportunities", _deal(account["account_id"], "prospecting"), actor="U1")
    frame = pl.DataFrame([
        {**_deal(account["account_id"], "prospecting", opportunity_id="OPP-1"), ROW: 2},
        {**_deal(account["account_id"], "won", opportunity_id="OPP-2", closed_at="2026-11-30T10:00:00"), ROW: 3},
    ]).with_columns(pl.col("amount").cast(pl.String), pl.col(ROW).cast(pl.Int64))
    result = store.upsert_many("opportunities", frame, "import:deals.csv", "deals.csv")
    assert result.inserted == ["OPP-2"]
    faults = result.faults.select("line", "record_id", "field", "reason", "message").to_dicts()
    assert faults == [{"line": 2, "record_id": "OPP-1", "field": "stage", "reason": "not_allowed_value",
                       "message": refused.value.errors["stage"]}]
    assert store.get("opportunities", "OPP-1") is None
    store.dispose()


def test_crm_import_refuses_it_through_the_store(home, tmp_path):
    from pipelines.lib.importer.run import import_file

    store = OperationalStore.for_home(home)
    _seed(store)
    account = store.create("accounts", ACCOUNT, actor="U1")
    store.dispose()
    deals = tmp_path / "deals.csv"
    pl.DataFrame([_deal(account["account_id"], stage, opportunity_id=f"OPP-{stage}",
                        created_at="2026-01-05T09:00:00", updated_at="2026-01-05T09:00:00", is_archived="false")
                  for stage in ("prospecting", "lead")]).write_csv(deals)
    report = import_file(home, ["opportunities"], deals)
    [entity] = report.entities
    assert entity.inserted == 1
    assert [(f.line, f.field, f.reason, f.message) for f in entity.faults] == [
        (2, "stage", "not_allowed_value", STAGE_MESSAGE.format("prospecting"))]


def test_an_open_dimension_accepts_any_value(home):
    store = OperationalStore.for_home(home)
    _seed(store)
    account = store.create("accounts", ACCOUNT, actor="U1")
    deal = store.create("opportunities", _deal(account["account_id"], "lead", lead_source="Carrier pigeon"),
                        actor="U1")
    assert deal["lead_source"] == "Carrier pigeon"
    frame = pl.DataFrame([{**_deal(account["account_id"], "pitch", opportunity_id="OPP-9",
                                   lead_source="Smoke signal"), ROW: 2}]).with_columns(
        pl.col("amount").cast(pl.String), pl.col(ROW).cast(pl.Int64))
    result = store.upsert_many("opportunities", frame, "import:deals.csv", "deals.csv")
    assert (result.inserted, result.quarantined) == (["OPP-9"], 0)
    assert store.get("opportunities", "OPP-9")["lead_source"] == "Smoke signal"
    store.dispose()


def test_the_store_follows_an_edited_crm_yaml(home):
    store = OperationalStore.for_home(home)
    _seed(store)
    account = store.create("accounts", ACCOUNT, actor="U1")
    with pytest.raises(RecordValidationError):
        store.create("accounts", {**ACCOUNT, "region": "West"}, actor="U1")
    home.settings_file.write_text(CRM_YAML.replace("[North, South]", "[North, South, West]"), encoding="utf-8")
    moved = store.update("accounts", account["account_id"], {"region": "West"}, 1, actor="U1")
    assert (moved["region"], moved["version"]) == ("West", 2)
    store.dispose()


def test_a_store_opened_by_url_alone_checks_the_default_vocabulary(tmp_path):
    """No crm.yaml means the default installation: its six stages and the reporting currency EUR."""
    store = OperationalStore(f"sqlite:///{tmp_path / 'operational.db'}")
    _seed(store)
    account = store.create("accounts", ACCOUNT, actor="U1")
    with pytest.raises(RecordValidationError) as refused:
        store.create("opportunities", _deal(account["account_id"], "pitch"), actor="U1")
    assert refused.value.errors["stage"] == (
        "stage must be one of prospecting, qualification, proposal, negotiation, closed_won, closed_lost "
        "(got 'pitch'); correct the value or add it to stages in crm.yaml.")
    assert store.create("opportunities", _deal(account["account_id"], "proposal"), actor="U1")["version"] == 1
    store.dispose()
