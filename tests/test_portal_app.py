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
    assert metrics["Open pipeline"] == f"€{open_pipeline:,.0f}"


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


# --- the scores-backed pages against the snapshot -----------------------------------------------------------
def test_churn_worklist_puts_the_reps_riskiest_customer_first(env):
    home, store = env
    rep = _viewer(store, "rep")
    with _snapshot(home) as con:
        rows = con.execute("""
            select s.customer_key, c.customer_name, s.churn_probability, s.driver_1
            from scores.churn_scores s join marts.dim_customer_360 c using (customer_key)
            where c.owner_user_id = ? and not c.is_archived and s.risk_band = 'high'
            order by s.churn_probability desc""", [rep.user_id]).fetchall()
    assert rows, "the demo rep should have high-risk customers"
    at = _app(store, "rep", "churn_worklist")
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m for m in at.metric}
    assert metrics["Customers on the list"].value == f"{len(rows):,}"
    assert metrics["Call first"].value == rows[0][1]
    assert metrics["Call first"].delta == f"{rows[0][2]:.0%} churn risk"
    listed = at.dataframe[0].value
    assert listed["customer_key"].iloc[0] == rows[0][0]
    assert list(listed["churn_probability"]) == sorted(listed["churn_probability"], reverse=True)
    assert set(listed["owner_user_id"]) == {rep.user_id}
    if rows[0][3]:
        assert listed["top_drivers"].iloc[0].startswith(rows[0][3])


def test_churn_worklist_by_value_at_risk(env):
    from app import queries

    home, store = env
    manager = _viewer(store, "manager")
    with _snapshot(home) as con:
        top = con.execute("""
            select s.customer_key, s.churn_probability * coalesce(c.revenue_12m, 0)
            from scores.churn_scores s join marts.dim_customer_360 c using (customer_key)
            where c.owner_user_id in (select unnest(?::varchar[])) and not c.is_archived
            order by 2 desc, s.churn_probability desc limit 1""", [list(manager.owner_ids)]).fetchone()
    work = queries.churn_worklist(manager, None, None, "value_at_risk")
    assert work["customer_key"][0] == top[0]
    assert work["value_at_risk"][0] == pytest.approx(top[1])


def test_forecast_page_shows_next_month_with_intervals_and_accuracy(env):
    from app.ui import compact

    home, store = env
    with _snapshot(home) as con:
        month, point, lo80, hi80, lo95, hi95 = con.execute("""
            select month_start, forecast, lower_80, upper_80, lower_95, upper_95 from scores.sales_forecast
            where slice_type = 'overall' order by month_start limit 1""").fetchone()
        scored = con.execute("select count(distinct (origin_month, month_start)) from scores.forecast_accuracy "
                             "where slice_type = 'overall'").fetchone()[0]
        weighted = con.execute("""
            select sum(w.amount * coalesce(p.win_probability, w.stage_win_probability)), sum(w.weighted_amount)
            from marts.fct_weighted_pipeline w left join scores.win_probability p using (opportunity_id)""").fetchone()
    at = _app(store, "admin", "pipeline_forecast")
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"Forecast {month:%b %Y}"] == f"€{round(point):,.0f}"
    assert metrics["80% interval"] == f"{compact(lo80)} – {compact(hi80)}"
    assert metrics["95% interval"] == f"{compact(lo95)} – {compact(hi95)}"
    assert lo95 <= lo80 <= point <= hi80 <= hi95
    assert metrics["Model-weighted"] == f"€{weighted[0]:,.0f}"
    assert metrics["Stage-rate weighted"] == f"€{weighted[1]:,.0f}"
    assert scored > 0, "the fixture stores a forecast made earlier, so accuracy has history"
    accuracy = at.dataframe[-2].value  # forecast accuracy rows, before the open deals
    assert len(accuracy) == scored and {"actual", "forecast", "inside_80"} <= set(accuracy.columns)


def test_customer_360_shows_scores_orders_and_interactions_in_scope(env):
    from app import queries

    home, store = env
    rep = _viewer(store, "rep")
    with _snapshot(home) as con:
        key, probability, band, clv = con.execute("""
            select s.customer_key, s.churn_probability, s.risk_band, v.predicted_clv
            from scores.churn_scores s join marts.dim_customer_360 c using (customer_key)
            join scores.clv_scores v using (customer_key)
            where c.owner_user_id = ? and not c.is_archived order by s.churn_probability desc limit 1""",
                                                  [rep.user_id]).fetchone()
        orders, revenue = con.execute("select count(*), sum(revenue) from marts.fct_orders where customer_key = ?",
                                      [key]).fetchone()
        interactions = con.execute("select count(*) from marts.fct_customer_interactions where customer_key = ?",
                                   [key]).fetchone()[0]
        products = con.execute("select product_id from scores.next_best_product where customer_key = ? order by rank",
                               [key]).fetchall()
        outsider = con.execute("select customer_key from marts.fct_customer_interactions i join "
                               "marts.dim_customer_360 c using (customer_key) where c.owner_user_id <> ? limit 1",
                               [rep.user_id]).fetchone()[0]
    at = _app(store, "rep", "customer_360")
    at.text_input(key="c360_search").input(key).run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m for m in at.metric}
    assert metrics["Churn risk"].value == f"{probability:.1%}" and metrics["Churn risk"].delta == f"{band} risk"
    assert metrics["Predicted CLV"].value == f"€{clv:,.0f}"
    assert queries.customer_orders(rep, key).height == orders
    assert queries.customer_orders(rep, key)["revenue"].sum() == pytest.approx(revenue)
    assert queries.customer_interactions(rep, key).height == min(interactions, 500)
    assert queries.next_best_products(rep, key)["product_id"].to_list() == [p[0] for p in products]
    assert orders and interactions, "the riskiest customer of the demo rep has orders and interactions"
    assert {"order", "interaction"} <= set(queries.customer_timeline(rep, key)["kind"])
    # scope is in the SQL: another owner's customer returns nothing, whatever the page asks for
    assert queries.customer_interactions(rep, outsider).is_empty()
    assert queries.customer_orders(rep, outsider).is_empty()
    assert queries.customer_interactions(_viewer(store, "admin"), outsider).height > 0


def test_data_quality_shows_each_models_grade_from_the_registry(env):
    home, store = env
    with _snapshot(home) as con:
        grades = dict(con.execute("select model_name, grade from scores.model_registry where is_current").fetchall())
    at = _app(store, "analyst", "data_quality")
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    for model, grade in grades.items():
        assert metrics[model.replace("_", " ")] == f"Grade {grade}"
