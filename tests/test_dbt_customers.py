"""Customer marts (dbt_project/models/marts/customers) against figures recomputed with polars.

The truth is the generated files (landing files and the SQLite store, read by tests/conftest.py
`generated`) plus the generator's identity ground truth; the definitions are the ones documented in
dbt_project/models/docs.md. Every comparison is exact (money to a billionth of its size).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
WINDOW_DAYS = 365


# --- the independent recomputation ---------------------------------------------------------------------------

def _customer_of_account(home) -> pl.DataFrame:
    """account_id -> customer_key by the documented rule over the TRUE groups: the CRM account of the person,
    else the smallest account id."""
    truth = pl.read_csv(home.ground_truth / "identity.csv", infer_schema=False)
    keys = (truth.sort("account_id")
            .group_by("person_key")
            .agg(pl.col("account_id").filter(pl.col("source_system") == "crm").first().alias("crm_id"),
                 pl.col("account_id").first().alias("smallest_id"))
            .select("person_key", pl.coalesce("crm_id", "smallest_id").alias("customer_key")))
    return truth.join(keys, on="person_key").select("account_id", "customer_key")


def _as_of(generated) -> date:
    latest_order = generated("orders").get_column("order_date").max()
    latest_interaction = generated("interactions").get_column("occurred_at").max().date()
    return max(latest_order, latest_interaction)


def _completed_orders(generated, built_home) -> pl.DataFrame:
    as_of = _as_of(generated)
    return (generated("orders")
            .filter((pl.col("status") == "completed") & (pl.col("order_date") <= as_of))
            .join(_customer_of_account(built_home), on="account_id", how="left"))


def _line_revenue(generated) -> pl.DataFrame:
    lines = generated("order_lines").with_columns(
        (pl.col("quantity") * pl.col("unit_price") * (1 - pl.col("discount_pct") / 100)).alias("revenue"))
    return lines.group_by("order_id").agg(pl.col("revenue").sum())


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


# --- tests ------------------------------------------------------------------------------------------------------

def test_as_of_date_is_the_latest_order_or_interaction(built_home, generated, marts):
    expected = _as_of(generated)
    assert marts("select as_of_date from intermediate.int_as_of_date")["as_of_date"].to_list() == [expected]
    signals = json.loads((built_home.ground_truth / "signals.json").read_text())
    assert expected == date.fromisoformat(signals["as_of"])


def test_rfm_recency_frequency_monetary_equal_polars(built_home, generated, marts):
    as_of = _as_of(generated)
    orders = _completed_orders(generated, built_home).join(_line_revenue(generated), on="order_id", how="left")
    in_window = pl.col("order_date") > as_of - timedelta(days=WINDOW_DAYS)
    expected = (orders.group_by("customer_key")
                .agg(pl.col("order_date").max().alias("last_order_date"),
                     pl.col("order_id").filter(in_window).n_unique().cast(pl.Int64).alias("frequency"),
                     pl.col("revenue").filter(in_window).sum().alias("monetary"))
                .with_columns((pl.lit(as_of) - pl.col("last_order_date")).dt.total_days().alias("recency_days"))
                .sort("customer_key"))
    assert expected.height >= 300, "the demo data should have hundreds of buying customers"

    mart = marts("select customer_key, last_order_date, recency_days, frequency, monetary "
                 "from marts.fct_customer_rfm where last_order_date is not null order by customer_key")
    assert mart["customer_key"].to_list() == expected["customer_key"].to_list()
    for column in ("last_order_date", "recency_days", "frequency"):
        assert mart[column].to_list() == expected[column].to_list(), column
    assert all(_close(a, b) for a, b in zip(mart["monetary"], expected["monetary"], strict=True))

    sample = expected.gather_every(50)
    print("\nRFM sample (customer_key, recency_days, frequency):",
          list(zip(sample["customer_key"], sample["recency_days"], sample["frequency"], strict=True)))
    # customers without a completed order are not scored
    unscored = marts("select count(*) as n from marts.fct_customer_rfm where last_order_date is null "
                     "and (r_score is not null or lifecycle_stage <> 'prospect')")
    assert unscored["n"][0] == 0


def test_rfm_scores_are_quintiles_and_segments_follow_the_map(marts):
    scores = marts("select r_score, f_score, count(*) as n from marts.fct_customer_rfm "
                   "where r_score is not null group by all")
    per_r = scores.group_by("r_score").agg(pl.col("n").sum()).sort("r_score")["n"].to_list()
    assert len(per_r) == 5 and max(per_r) - min(per_r) <= 1, "ntile(5) gives five groups of equal size"
    cells = marts("select distinct r_score, f_score, rfm_segment from marts.fct_customer_rfm where r_score is not null")
    expected = {
        (r, f): ("Champions" if r == 5 and f >= 4 else "Loyal Customers" if r in (3, 4) and f >= 4
                 else "Potential Loyalists" if r >= 4 and f in (2, 3) else "New Customers" if (r, f) == (5, 1)
                 else "Promising" if (r, f) == (4, 1) else "Need Attention" if (r, f) == (3, 3)
                 else "About To Sleep" if r == 3 else "Cannot Lose Them" if f == 5
                 else "At Risk" if f in (3, 4) else "Lost" if (r, f) == (1, 1) else "Hibernating")
        for r in range(1, 6) for f in range(1, 6)
    }
    for row in cells.iter_rows(named=True):
        assert row["rfm_segment"] == expected[(row["r_score"], row["f_score"])]


def test_lifecycle_stage_equals_polars(built_home, generated, marts):
    as_of = _as_of(generated)
    days = (_completed_orders(generated, built_home).select("customer_key", "order_date").unique()
            .sort("customer_key", "order_date")
            .with_columns(pl.col("order_date").shift(1).over("customer_key").alias("previous")))
    per_customer = (days.group_by("customer_key").agg(
        pl.col("order_date").min().alias("first"), pl.col("order_date").max().alias("last"),
        pl.col("order_date").filter((pl.col("order_date") - pl.col("previous")).dt.total_days() > 365)
        .max().alias("returned")))
    stages = {}
    for row in per_customer.iter_rows(named=True):
        since_last = (as_of - row["last"]).days
        if since_last > 365:
            stage = "churned"
        elif since_last > 180:
            stage = "at_risk"
        elif (as_of - row["first"]).days < 90:
            stage = "new"
        elif row["returned"] is not None and (as_of - row["returned"]).days < 180:
            stage = "reactivated"
        else:
            stage = "active"
        stages[row["customer_key"]] = stage
    mart = marts("select customer_key, lifecycle_stage from marts.fct_customer_rfm")
    actual = dict(mart.iter_rows())
    assert {k: v for k, v in actual.items() if v != "prospect"} == stages
    counts = mart.group_by("lifecycle_stage").len().sort("lifecycle_stage")
    print("\nlifecycle stages:", dict(counts.iter_rows()))
    assert {"active", "churned", "at_risk"} <= set(stages.values())


def test_cohort_month_3_retention_equals_polars(built_home, generated, marts):
    as_of = _as_of(generated)
    months = (_completed_orders(generated, built_home)
              .select("customer_key", pl.col("order_date").dt.truncate("1mo").alias("month")).unique())
    cohorts = months.group_by("customer_key").agg(pl.col("month").min().alias("cohort_month"))
    month_3 = (cohorts.with_columns(pl.col("cohort_month").dt.offset_by("3mo").alias("month"))
               .filter(pl.col("month") <= pl.lit(as_of).dt.truncate("1mo")))
    active = month_3.join(months, on=["customer_key", "month"], how="inner")
    expected = (month_3.group_by("cohort_month").agg(pl.len().cast(pl.Int64).alias("cohort_size"))
                .join(active.group_by("cohort_month").agg(pl.len().cast(pl.Int64).alias("active_customers")),
                      on="cohort_month", how="left")
                .with_columns(pl.col("active_customers").fill_null(0))
                .with_columns((pl.col("active_customers") / pl.col("cohort_size")).alias("retention_rate"))
                .sort("cohort_month"))
    mart = marts("select cohort_month, cohort_size, active_customers, retention_rate from marts.fct_cohort_retention "
                 "where months_since_first_order = 3 order by cohort_month")
    assert mart.to_dicts() == expected.to_dicts()
    biggest = expected.sort("cohort_size", descending=True).row(0, named=True)
    print(f"\ncohort {biggest['cohort_month']}: {biggest['active_customers']} of {biggest['cohort_size']} active in "
          f"month 3 = {biggest['retention_rate']:.4f}")
    assert 0 < biggest["active_customers"] < biggest["cohort_size"]


def test_receivables_and_overdue_equal_polars(built_home, generated, marts):
    as_of = _as_of(generated)
    paid = (generated("payments").filter(pl.col("payment_date") <= as_of)
            .group_by("invoice_id").agg(pl.col("amount").sum().alias("paid")))
    invoices = (generated("invoices").filter(pl.col("invoice_date") <= as_of)
                .join(paid, on="invoice_id", how="left")
                .join(_customer_of_account(built_home), on="account_id", how="left")
                .with_columns(pl.when(pl.col("status") == "void").then(0.0)
                              .otherwise((pl.col("amount") - pl.col("paid").fill_null(0)).clip(lower_bound=0))
                              .alias("open")))
    expected = (invoices.group_by("customer_key")
                .agg(pl.col("open").sum().alias("open_amount"),
                     pl.col("open").filter(pl.col("due_date") < as_of).sum().alias("overdue_amount"))
                .sort("customer_key"))
    mart = marts("select customer_key, open_amount, overdue_amount from marts.fct_receivables order by customer_key")
    assert mart["customer_key"].to_list() == expected["customer_key"].to_list()
    for column in ("open_amount", "overdue_amount"):
        assert all(_close(a, b) for a, b in zip(mart[column], expected[column], strict=True)), column
    assert expected["overdue_amount"].sum() > 0, "the demo data has overdue invoices"


def test_discount_violations_are_the_lines_below_the_floor(built_home, generated, marts):
    lines = (generated("order_lines").join(generated("products").select("product_id", "max_discount_pct"),
                                           on="product_id")
             .filter(pl.col("discount_pct") > pl.col("max_discount_pct"))
             .join(generated("orders").select("order_id", "owner_user_id"), on="order_id"))
    mart = marts("select order_line_id, owner_user_id from marts.fct_discount_violations order by 1")
    assert mart["order_line_id"].to_list() == sorted(lines["order_line_id"].to_list())
    signals = json.loads((built_home.ground_truth / "signals.json").read_text())
    assert set(mart["owner_user_id"].drop_nulls()) == set(signals["below_floor_reps"])


def test_dynamic_segments_follow_the_yaml_rules(marts):
    spec = yaml.safe_load((PROJECT / "segments" / "dynamic_segments.yml").read_text())
    by_name = {s["name"]: s for s in spec["segments"]}
    assert by_name["overdue_debtors"]["match"] == "any"
    customers = marts("select * from marts.dim_customer_360")
    expected = {
        "overdue_debtors": customers.filter((pl.col("overdue_amount") > 1000) | (pl.col("max_days_overdue") > 60)),
        "high_value_at_risk": customers.filter(pl.col("value_tier").is_in(["platinum", "gold"])
                                               & (pl.col("lifecycle_stage") == "at_risk")),
        "quiet_recent_buyers": customers.filter(pl.col("recency_days").is_between(0, 90)
                                                & (pl.col("days_since_last_interaction") >= 60)),
    }
    members = marts("select segment_name, customer_key from marts.fct_customer_dynamic_segments")
    for name, frame in expected.items():
        actual = sorted(members.filter(pl.col("segment_name") == name)["customer_key"].to_list())
        assert actual == sorted(frame["customer_key"].to_list()), name
    assert members.filter(pl.col("segment_name") == "overdue_debtors").height > 0


def test_dynamic_segment_rules_are_checked_against_a_whitelist():
    path = PROJECT / "models" / "marts" / "customers" / "fct_customer_dynamic_segments.py"
    spec = importlib.util.spec_from_file_location("dynamic_segments_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    columns = {"value_tier": pl.String(), "overdue_amount": pl.Float64(), "email": pl.String()}
    frame = pl.DataFrame({"value_tier": ["gold", "bronze", None], "overdue_amount": [5.0, 2000.0, None]})
    ok = module._rule_expression(Path("x.yml"), "segment 1", {"field": "overdue_amount", "op": "gt", "value": 1000},
                                 columns)
    assert frame.filter(ok.fill_null(False)).height == 1
    not_in = module._rule_expression(Path("x.yml"), "s", {"field": "value_tier", "op": "not_in", "value": ["gold"]},
                                     columns)
    assert frame.filter(not_in.fill_null(False))["value_tier"].to_list() == ["bronze"]
    bad_rules = [
        ({"field": "drop table", "op": "eq", "value": 1}, "unknown field"),
        ({"field": "email", "op": "eq", "value": "a@b.c"}, "unknown field"),  # personal data is not offered
        ({"field": "value_tier", "op": "like", "value": "g%"}, "unknown op"),
        ({"field": "overdue_amount", "op": "gt", "value": "1; select 1"}, "is a number"),
        ({"field": "value_tier", "op": "between", "value": [1]}, "between needs"),
    ]
    for rule, message in bad_rules:
        with pytest.raises(ValueError, match=message) as error:
            module._rule_expression(Path("segments.yml"), "segment 2 (x), rule 1", rule, columns)
        assert "segments.yml: segment 2 (x), rule 1" in str(error.value)


def test_customer_360_has_one_row_per_customer_and_consistent_figures(marts):
    counts = marts("select (select count(*) from marts.dim_customer_360) as c360, "
                   "(select count(distinct customer_key) from intermediate.int_customers_resolved) as resolved, "
                   "(select count(*) from marts.dim_customers) as dim")
    assert counts["c360"][0] == counts["resolved"][0] == counts["dim"][0]
    mismatched = marts("""
        select count(*) as n
        from marts.dim_customer_360 as c
        join marts.fct_customer_value as v using (customer_key)
        join marts.fct_customer_rfm as r using (customer_key)
        where c.lifetime_revenue <> v.lifetime_revenue or c.rfm_segment is distinct from r.rfm_segment
           or c.overdue_amount <> v.overdue_amount""")
    assert mismatched["n"][0] == 0
    # scores are absent in a fresh warehouse: the columns exist and are empty
    assert marts("select count(churn_probability) as n from marts.dim_customer_360")["n"][0] == 0


# --- incremental history, Dagster wiring, dirty data --------------------------------------------------------

def _daily_activity_truth(home) -> pl.DataFrame:
    from conftest import read_generated_entity

    contacts = read_generated_entity(home, "contacts").select("contact_id", pl.col("account_id").alias("contact_account"))
    interactions = (read_generated_entity(home, "interactions").join(contacts, on="contact_id", how="left")
                    .with_columns(pl.coalesce("account_id", "contact_account").alias("account_id"))
                    .filter(pl.col("account_id").is_not_null())
                    .group_by("account_id", pl.col("occurred_at").dt.date().alias("activity_date"))
                    .agg(pl.len().cast(pl.Int64).alias("interactions")))
    orders = (read_generated_entity(home, "orders")
              .group_by("account_id", pl.col("order_date").alias("activity_date"))
              .agg(pl.len().cast(pl.Int64).alias("orders")))
    return (interactions.join(orders, on=["account_id", "activity_date"], how="full", coalesce=True)
            .with_columns(pl.col("interactions", "orders").fill_null(0))
            .sort("account_id", "activity_date"))


def _dbt(home, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), *args, "--project-dir", str(PROJECT), "--profiles-dir",
         str(PROJECT), "--target-path", str(home.root / "dbt_target"), "--log-path", str(home.logs)],
        env={**os.environ, "CRM_WAREHOUSE": str(home.warehouse)}, capture_output=True, text=True, check=False)


@pytest.mark.slow
def test_incremental_daily_activity_adds_a_new_day_exactly(built_home, tmp_path):
    """A new day of interaction logs: the incremental model touches only that day and equals a full recompute."""
    from pipelines.lib.home import CrmHome
    from pipelines.lib.ingest import ingest_all

    home = CrmHome(tmp_path / "home")
    shutil.copytree(built_home.root, home.root)
    folder = home.landing / "interactions"
    last = sorted(folder.glob("*.jsonl"))[-1]
    new_day = date.fromisoformat(last.stem) + timedelta(days=1)
    day = (pl.read_ndjson(last, infer_schema_length=None)
           .with_columns((pl.col("interaction_id") + "-NEXT").alias("interaction_id"),
                         pl.col("occurred_at").str.replace(last.stem, new_day.isoformat())))
    day.write_ndjson(folder / f"{new_day.isoformat()}.jsonl")
    before = _sql(home, "select count(*) from intermediate.int_account_daily_activity")
    ingest_all(home)
    result = _dbt(home, "build", "--select", "int_account_daily_activity")
    assert result.returncode == 0, result.stdout[-4000:]

    actual = pl.DataFrame(_sql_rows(home, "select account_id, activity_date, interactions, orders "
                                          "from intermediate.int_account_daily_activity order by 1, 2"),
                          schema=["account_id", "activity_date", "interactions", "orders"], orient="row")
    expected = _daily_activity_truth(home).select("account_id", "activity_date", "interactions", "orders")
    assert actual.to_dicts() == expected.to_dicts()
    added = actual.filter(pl.col("activity_date") == new_day).height
    assert added > 0 and actual.height == before + added
    assert "incremental" in result.stdout.lower()


def _sql_rows(home, sql: str) -> list[tuple]:
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def _sql(home, sql: str):
    return _sql_rows(home, sql)[0][0]


@pytest.mark.slow
def test_dagster_dbt_definitions_load_and_materialise(built_home):
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.defs.dbt.assets import crm_dbt_models
    from pipelines.defs.dbt.resources import dbt_cli_resource
    from pipelines.defs.ingest.resources import CrmHomeResource

    graph = defs.resolve_asset_graph()
    customer_360 = dg.AssetKey(["marts", "dim_customer_360"])
    assert customer_360 in graph.get_all_asset_keys()
    staging = defs.resolve_assets_def(dg.AssetKey(["staging", "stg_crm__accounts"]))
    assert staging.asset_deps[dg.AssetKey(["staging", "stg_crm__accounts"])] == {dg.AssetKey(["raw", "accounts"])}
    checks = {check.key.name for check in crm_dbt_models.check_specs if check.asset_key == customer_360}
    assert "unique_dim_customer_360_customer_key" in checks

    customer_marts = dg.AssetSelection.groups("dbt_marts_customers").upstream() - dg.AssetSelection.key_prefixes("raw")
    result = dg.materialize(
        [crm_dbt_models], selection=customer_marts,
        resources={"dbt": dbt_cli_resource(), "crm_home": CrmHomeResource(root=str(built_home.root))},
    )
    assert result.success
    materialised = {event.asset_key for event in result.get_asset_materialization_events()}
    assert customer_360 in materialised and dg.AssetKey(["intermediate", "int_customers_resolved"]) in materialised
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)


@pytest.mark.slow
def test_dbt_build_passes_on_dirty_data(tmp_path):
    from conftest import build_home

    home, code, log = build_home(tmp_path / "dirty", customers=400, seed=5, dirty=0.03)
    assert code == 0, log[-6000:]
    quarantined = _sql(home, "select count(*) from raw._quarantine")
    print(f"\ndirty build: {quarantined} rows quarantined, dbt build passed")
    assert quarantined > 0
