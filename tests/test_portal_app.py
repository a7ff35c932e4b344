"""The portal renders every page for every role (streamlit.testing) and its numbers match the marts."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.auth import viewer_for
from pipelines.lib.portal_users import PortalUsers
from pipelines.lib.snapshot import connect_snapshot
from pipelines.lib.store import OperationalStore

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
PAGES = ["overview", "funnel", "pipeline_forecast", "segments", "customer_360", "churn_worklist", "campaigns",
         "service", "reps", "data_quality", "records", "leads"]
ROLES = ["admin", "manager", "rep", "analyst"]


@pytest.fixture(scope="module")
def env(portal_home):
    mp = pytest.MonkeyPatch()
    mp.setenv("CRM_HOME", str(portal_home.root))
    mp.delenv("CRM_OPERATIONAL_DB_URL", raising=False)
    store = OperationalStore(portal_home.operational_db_url)
    yield portal_home, store
    store.dispose()
    mp.undo()


def _viewer(store, username):
    return viewer_for(store, PortalUsers(store).get(username))


def _app(store, username, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["viewer"] = _viewer(store, username)
    at.run()
    if page:
        at.switch_page(f"app_pages/{page}.py")
        at.run()
    return at


def _snapshot(home):
    return connect_snapshot(home)  # same configuration as the portal's own connection in this process


def test_sign_in_form_rejects_wrong_password_and_accepts_right_one(env):
    home, store = env
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="sign_in_username").input("rep")
    at.text_input(key="sign_in_password").input("wrong-password")
    at.button[0].click().run()
    assert "Wrong username or password" in at.error[0].value
    at.text_input(key="sign_in_password").input("portal-test-pw")
    at.button[0].click().run()
    assert at.session_state["viewer"].role == "sales_rep"


@pytest.mark.parametrize("role", ROLES)
def test_every_page_renders_for_every_role(env, role):
    home, store = env
    for page in PAGES:
        if page == "leads" and role in ("rep", "analyst"):
            continue  # not in their navigation (and edits.distribute_leads refuses them)
        at = _app(store, role, page)
        assert not at.exception, f"{page} as {role}: {[e.value for e in at.exception]}"
        assert at.title, f"{page} as {role} rendered no title"


def test_overview_kpis_match_the_marts(env):
    home, store = env
    at = _app(store, "admin", "overview")
    metrics = {m.label: m.value for m in at.metric}
    with _snapshot(home) as con:
        open_pipeline = con.execute("select sum(amount) from marts.fct_opportunities where not is_closed").fetchone()[0]
    assert metrics["Open pipeline"] == f"{open_pipeline:,.0f}"


def test_funnel_matches_funnel_mart_and_rep_sees_only_own_deals(env):
    from app import queries

    home, store = env
    admin, rep = _viewer(store, "admin"), _viewer(store, "rep")
    with _snapshot(home) as con:
        entered = con.execute("select sum(deals_entered) from marts.fct_funnel_conversion "
                              "where dimension = 'all' and from_stage = 'prospecting'").fetchone()[0]
        rep_deals = con.execute("select count(*) from marts.fct_opportunities where owner_user_id = ?",
                                [rep.user_id]).fetchone()[0]
        won = con.execute("select count(*) from marts.fct_opportunities where is_won").fetchone()[0]
    funnel = queries.funnel(admin).to_dicts()
    assert funnel[0]["deals_reached"] == entered
    assert funnel[-1]["deals_reached"] == won
    assert queries.funnel(rep)["deals_reached"][0] == rep_deals
    assert set(queries.deals(rep, limit=10_000)["owner_user_id"].unique()) == {rep.user_id}


def test_customers_scoped_by_role_and_masked_for_analysts(env):
    from app import queries

    home, store = env
    rep, manager, analyst = (_viewer(store, u) for u in ("rep", "manager", "analyst"))
    with _snapshot(home) as con:
        owned = con.execute("select count(*) from marts.dim_customer_360 where owner_user_id = ? and not is_archived",
                            [rep.user_id]).fetchone()[0]
        total = con.execute("select count(*) from marts.dim_customer_360 where not is_archived").fetchone()[0]
        first = con.execute("select customer_key, customer_name from marts.dim_customer_360 "
                            "order by lifetime_revenue desc nulls last limit 1").fetchone()
    rep_customers = queries.customers(rep, limit=100_000)
    assert rep_customers.height == owned and owned < total
    assert set(rep_customers["owner_user_id"]) == {rep.user_id}
    assert set(queries.customers(manager, limit=100_000)["owner_user_id"]) <= set(manager.owner_ids)
    masked = queries.customers(analyst, limit=100_000)
    assert masked.height == total
    row = masked.filter(masked["customer_key"] == first[0]).row(0, named=True)
    assert row["customer_name"] == first[1][0] + "•••" and row["customer_name"] != first[1]
    # a rep cannot open another owner's customer even by key
    outsider = masked.filter(masked["owner_user_id"] != rep.user_id)["customer_key"][0]
    assert queries.customer_360(rep, outsider) is None


def test_records_page_edit_shows_audit_and_refuses_stale_edit(env):
    from app import edits

    home, store = env
    rep = _viewer(store, "rep")
    with store.engine.connect() as conn:
        deal_id = conn.exec_driver_sql("SELECT opportunity_id FROM opportunities WHERE owner_user_id = ? "
                                       "AND stage NOT IN ('closed_won', 'closed_lost') ORDER BY opportunity_id LIMIT 1",
                                       (rep.user_id,)).scalar()
    assert deal_id is not None, "the demo rep should own at least one open deal"
    at = _app(store, "rep", "records")
    at.segmented_control(key="records_entity").set_value("opportunities").run()
    at.text_input(key="records_search_opportunities").input(deal_id).run()
    at.selectbox(key="records_pick_opportunities").set_value(deal_id).run()
    at.text_input(key=f"f_opportunities_{deal_id}_opportunity_name").input("Renamed by test")
    # someone else saves first
    current = store.get("opportunities", deal_id)
    edits.update_record(_viewer(store, "admin"), store, "opportunities", deal_id, {"amount": 1234.0},
                        current["version"])
    next(b for b in at.button if b.label == "Save").click().run()
    assert any("changed by someone else" in e.value for e in at.error)
    assert store.get("opportunities", deal_id)["opportunity_name"] != "Renamed by test"
    next(b for b in at.button if b.label == "Reload").click().run()
    at.text_input(key=f"f_opportunities_{deal_id}_opportunity_name").input("Renamed by test")
    next(b for b in at.button if b.label == "Save").click().run()  # form values travel with the submit
    assert not at.error, [e.value for e in at.error]
    assert store.get("opportunities", deal_id)["opportunity_name"] == "Renamed by test"
    audit = at.table[-1].value
    assert "Renamed by test" in audit.to_string()


def test_validation_message_is_shown_next_to_the_field(env):
    home, store = env
    at = _app(store, "rep", "records")
    at.selectbox(key="records_pick_accounts").set_value("__new__").run()
    at.text_input(key="f_accounts___new___account_name").input("")
    next(b for b in at.button if b.label == "Create").click().run()
    assert any("account_name" in e.value or "required" in e.value.lower() for e in at.error)
