"""An installation with its own vocabulary, end to end: a small hand-written home (not generated) whose CRM
holds only deals, reported in USD, through stages named by the user. It goes through the real pipeline
(ingest, `dbt build` with every dbt test, publish) and the portal's queries and formatting.

What it pins down: the as-of date comes from the deals themselves (not the machine clock), so no open deal is
older than the data's own span; the funnel follows the configured stages in their configured order; the
reporting currency reaches the portal with its symbol; an order in a currency without a rate is quarantined.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.lib.home import CrmHome
from pipelines.lib.ingest import ingest_all
from pipelines.lib.settings import Settings, render_settings
from pipelines.lib.store import OperationalStore

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
STAGES = ["Discovery", "Demo", "Negotiation", "Won", "Lost"]
SETTINGS = Settings(
    currency={"reporting": "USD", "rates": {"EUR": 1.1}},
    stages=[{"name": "Discovery", "probability": 0.1}, {"name": "Demo", "probability": 0.3},
            {"name": "Negotiation", "probability": 0.6}, {"name": "Won", "won": True, "probability": 1.0},
            {"name": "Lost", "lost": True, "probability": 0.0}],
)
EXPORTED = "2025-07-01T08:00:00"  # when the CRM export was taken: an update, not an event of the data
#: (deal, created, [(stage, changed_at)], closed_at, lost_reason)
DEALS = [
    ("D-1", "2025-01-10", [("Discovery", "2025-01-10"), ("Demo", "2025-02-01"), ("Won", "2025-03-15")], "2025-03-15",
     None),
    ("D-2", "2025-02-01", [("Discovery", "2025-02-01"), ("Lost", "2025-04-01")], "2025-04-01", "budget freeze"),
    ("D-3", "2025-03-01", [("Discovery", "2025-03-01"), ("Demo", "2025-03-20"), ("Negotiation", "2025-06-20")],
     None, None),
    ("D-4", "2025-06-01", [("Discovery", "2025-06-01")], None, None),
]
LATEST_DEAL_EVENT = date(2025, 6, 20)
FIRST_DEAL = date(2025, 1, 10)


def _ts(day: str) -> str:
    return f"{day}T09:00:00"


def write_deals_home(root: Path) -> CrmHome:
    """Teams, users, accounts and deals in the store (as a CRM would hold them), and crm.yaml. No orders,
    interactions or tickets: the only events are the deals'."""
    home = CrmHome(root).ensure()
    home.settings_file.write_text(render_settings(SETTINGS), encoding="utf-8")
    store = OperationalStore(home.operational_db_url)
    store.migrate()
    store.bulk_insert("teams", pl.DataFrame({"team_id": ["T-1"], "team_name": ["Pacific"], "region": ["Pacific"],
                                             "updated_at": [EXPORTED]}))
    store.bulk_insert("users", pl.DataFrame({
        "user_id": ["U-1"], "full_name": ["Ann Rep"], "email": ["ann@example.com"], "role": ["sales_rep"],
        "team_id": ["T-1"], "hired_at": ["2024-01-01"], "is_active": [True], "updated_at": [EXPORTED]}))
    store.bulk_insert("accounts", pl.DataFrame({
        "account_id": ["A-1", "A-2"], "account_name": ["Acme Inc", "Bolt LLC"], "account_type": ["B2B", "B2B"],
        "country": ["US", "US"], "region": ["Pacific", "Mountain"], "owner_user_id": ["U-1", "U-1"],
        "source_system": ["crm", "crm"], "created_at": [_ts("2025-01-02")] * 2, "is_archived": [False, False],
        "updated_at": [EXPORTED] * 2}))
    deals, history = [], []
    for i, (deal, created, stages, closed, reason) in enumerate(DEALS):
        deals.append({"opportunity_id": deal, "account_id": f"A-{i % 2 + 1}", "owner_user_id": "U-1",
                      "opportunity_name": f"Deal {deal}", "stage": stages[-1][0], "amount": 1000.0 * (i + 1),
                      "expected_close_date": "2025-09-30", "lost_reason": reason, "created_at": _ts(created),
                      "closed_at": _ts(closed) if closed else None, "is_archived": False, "updated_at": EXPORTED})
        previous = None
        for k, (stage, changed) in enumerate(stages):
            history.append({"stage_event_id": f"{deal}-E{k + 1}", "opportunity_id": deal, "from_stage": previous,
                            "to_stage": stage, "changed_at": _ts(changed), "changed_by_user_id": "U-1"})
            previous = stage
    store.bulk_insert("opportunities", pl.DataFrame(deals))
    store.bulk_insert("opportunity_stage_history", pl.DataFrame(history))
    store.dispose()
    return home


def dbt(home: CrmHome, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), *args, "--project-dir", str(PROJECT), "--profiles-dir",
         str(PROJECT), "--target-path", str(home.root / "dbt_target"), "--log-path", str(home.logs)],
        env={**os.environ, "CRM_WAREHOUSE": str(home.warehouse)}, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def deals_home(tmp_path_factory) -> CrmHome:
    from pipelines.lib.snapshot import publish

    home = write_deals_home(tmp_path_factory.mktemp("deals_home") / "home")
    results = ingest_all(home)
    assert all(r.reconciled for result in results for r in result.sources)
    build = dbt(home, "build")
    if build.returncode != 0:
        pytest.fail("dbt build failed on the deals-only home:\n" + (build.stdout + build.stderr)[-6000:])
    publish(home)
    return home


def _query(home: CrmHome, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        return con.sql(sql).pl()


def test_a_home_with_only_deals_is_dated_by_its_deals(deals_home):
    as_of = _query(deals_home, "select as_of_date, as_of_mode from intermediate.int_as_of_date")
    assert as_of.rows() == [(LATEST_DEAL_EVENT, "data")]
    span = (LATEST_DEAL_EVENT - FIRST_DEAL).days
    open_deals = _query(deals_home, "select opportunity_id, age_days, days_in_current_stage "
                                    "from marts.fct_opportunities where not is_closed order by 1")
    assert open_deals["opportunity_id"].to_list() == ["D-3", "D-4"]
    assert open_deals["age_days"].to_list() == [(LATEST_DEAL_EVENT - date(2025, 3, 1)).days, 19]
    assert open_deals["age_days"].max() <= span
    assert open_deals["days_in_current_stage"].to_list() == [0, 19]


def test_funnel_follows_the_configured_stages_in_their_order(deals_home):
    stages = _query(deals_home, "select stage, stage_order, is_won, is_lost from marts.dim_pipeline_stages "
                                "order by stage_position")
    assert stages.rows() == [("Discovery", 1, False, False), ("Demo", 2, False, False),
                             ("Negotiation", 3, False, False), ("Won", 4, True, False), ("Lost", None, False, True)]
    funnel = _query(deals_home, "select from_stage, to_stage, sum(deals_entered)::bigint as entered, "
                                "sum(deals_converted)::bigint as converted from marts.fct_funnel_conversion "
                                "where dimension = 'all' group by all order by min(from_stage_order)")
    assert funnel.rows() == [("Discovery", "Demo", 4, 2), ("Demo", "Negotiation", 2, 2), ("Negotiation", "Won", 2, 1)]
    deals = _query(deals_home, "select opportunity_id, stage_order, max_stage_order_reached, is_won, is_lost "
                               "from marts.fct_opportunities order by 1")
    assert deals.rows() == [("D-1", 4, 4, True, False), ("D-2", None, 1, False, True), ("D-3", 3, 3, False, False),
                            ("D-4", 1, 1, False, False)]
    # of the closed deals that reached Discovery one of two was won; the one that reached Negotiation was won
    weighted = _query(deals_home, "select opportunity_id, stage_win_probability from marts.fct_weighted_pipeline "
                                  "order by 1")
    assert weighted.rows() == [("D-3", 1.0), ("D-4", 0.5)]


def test_the_portal_shows_the_reporting_currency_and_the_configured_stages(deals_home, monkeypatch):
    from app import queries, ui
    from app.auth import Viewer

    monkeypatch.setenv("CRM_HOME", str(deals_home.root))
    monkeypatch.delenv("CRM_OPERATIONAL_DB_URL", raising=False)
    assert _query(deals_home, "select * from marts.dim_reporting_currency").rows() == [("USD", "$")]
    assert queries.currency_symbol() == "$"
    assert ui.money(12345.4) == "$12,345"
    assert ui.money(-56.0) == "-$56"
    assert queries.stage_names() == STAGES
    funnel = queries.funnel(Viewer(username="admin", role="admin"))
    assert funnel["stage"].to_list() == ["Discovery", "Demo", "Negotiation", "Won"]
    assert funnel["deals_reached"].to_list() == [4, 2, 2, 1]


def test_orders_are_converted_to_the_reporting_currency_or_quarantined(tmp_path):
    """USD reporting, EUR with a rate: an EUR order counts at 1.1 dollars per euro; a GBP order (no rate)
    is quarantined as unknown_currency with a message naming GBP and the setting to add."""
    home = write_deals_home(tmp_path / "home")
    (home.landing / "orders").mkdir(parents=True)
    (home.landing / "orders" / "orders.csv").write_text(
        "order_id,account_id,order_date,status,sales_channel,currency,updated_at\n"
        f"O-1,A-1,2025-05-02,completed,inside sales,USD,{EXPORTED}\n"
        f"O-2,A-1,2025-05-03,completed,inside sales,EUR,{EXPORTED}\n"
        f"O-3,A-2,2025-05-04,completed,inside sales,GBP,{EXPORTED}\n", encoding="utf-8")
    (home.landing / "products").mkdir()
    (home.landing / "products" / "products.csv").write_text(
        "product_id,sku,product_name,product_line,list_price,unit_cost,max_discount_pct,is_recurring,is_active,"
        f"updated_at\nP-1,S-1,Widget,Gadgets,100,40,20,false,true,{EXPORTED}\n", encoding="utf-8")
    (home.landing / "order_lines").mkdir()
    (home.landing / "order_lines" / "order_lines.csv").write_text(
        "order_line_id,order_id,product_id,quantity,unit_price,discount_pct,updated_at\n"
        f"L-1,O-1,P-1,2,100,0,{EXPORTED}\nL-2,O-2,P-1,1,100,10,{EXPORTED}\n", encoding="utf-8")
    ingest_all(home)
    quarantine = _query(home, "select entity, record_id, field, reason, message from raw._quarantine")
    assert quarantine.select("entity", "record_id", "field", "reason").rows() == [
        ("orders", "O-3", "currency", "unknown_currency")]
    message = quarantine["message"][0]
    assert "'GBP'" in message and "USD" in message and "currency.rates" in message and "crm.yaml" in message
    build = dbt(home, "run", "--select", "+int_order_lines_enriched")
    assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
    lines = _query(home, "select order_line_id, currency, unit_price_in_currency, unit_price "
                         "from staging.stg_crm__order_lines order by 1")
    assert lines.rows() == [("L-1", "USD", 100.0, 100.0), ("L-2", "EUR", 100.0, pytest.approx(110.0))]
    revenue = _query(home, "select order_line_id, revenue from intermediate.int_order_lines_enriched order by 1")
    assert revenue["revenue"].to_list() == [pytest.approx(200.0), pytest.approx(99.0)]
