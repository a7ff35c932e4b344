"""Service and people marts against figures recomputed independently with polars from the generated files.

Definitions: dbt_project/models/marts/service/_docs.md (SLA met, value at risk) and
dbt_project/models/marts/people/_docs.md ("now" = end of the as-of day).
"""

from __future__ import annotations

import datetime as dt

import polars as pl


def _as_of(generated) -> dt.date:
    """The data's today: the latest order date or interaction date in the generated files."""
    latest_order = generated("orders")["order_date"].max()
    latest_interaction = generated("interactions")["occurred_at"].max().date()
    return max(latest_order, latest_interaction)


def test_as_of_date_is_the_latest_order_or_interaction(generated, marts):
    assert marts("select as_of_date from intermediate.int_as_of_date")["as_of_date"][0] == _as_of(generated)


def test_ticket_sla_attainment_equals_polars(generated, marts):
    as_of_end = dt.datetime.combine(_as_of(generated) + dt.timedelta(days=1), dt.time())
    tickets = generated("tickets").with_columns(
        (pl.col("created_at") + pl.duration(microseconds=(pl.col("sla_first_response_hours") * 3.6e9).cast(pl.Int64)))
        .alias("due"))
    met = (pl.when(pl.col("first_response_at").is_not_null()).then(pl.col("first_response_at") <= pl.col("due"))
           .when(pl.lit(as_of_end) > pl.col("due")).then(False))
    expected = (tickets.with_columns(met.alias("met"))
                .group_by("priority")
                .agg(pl.len().cast(pl.Int64).alias("tickets"),
                     pl.col("met").count().cast(pl.Int64).alias("decided"),
                     pl.col("met").sum().cast(pl.Int64).alias("met"))
                .sort("priority"))
    actual = marts("select priority, sum(tickets)::bigint as tickets, sum(first_response_sla_decided)::bigint as "
                   "decided, sum(first_response_sla_met)::bigint as met from marts.fct_service_sla "
                   "group by 1 order by 1")
    assert actual.to_dicts() == expected.to_dicts()
    assert 0 < expected["met"].sum() < expected["decided"].sum(), "the demo data should meet and miss SLAs"


def test_contracts_expiring_and_value_at_risk_equal_polars(generated, marts):
    as_of = _as_of(generated)
    contracts = generated("contracts")
    renewed = (contracts.filter(pl.col("renewal_of_contract_id").is_not_null() & (pl.col("status") != "cancelled"))
               ["renewal_of_contract_id"].unique().to_list())
    expiring = (contracts.filter((pl.col("status") == "active") & (pl.col("end_date") >= as_of)
                                 & (pl.col("end_date") <= as_of + dt.timedelta(days=90)))
                .with_columns((pl.col("end_date") - pl.lit(as_of)).dt.total_days().alias("days"))
                .with_columns(pl.when(pl.col("days") <= 30).then(pl.lit("0-30"))
                              .when(pl.col("days") <= 60).then(pl.lit("31-60")).otherwise(pl.lit("61-90"))
                              .alias("expiry_bucket"),
                              pl.when(pl.col("auto_renew") | pl.col("contract_id").is_in(renewed)).then(0.0)
                              .otherwise(pl.col("annual_value")).alias("risk")))
    expected = (expiring.group_by("expiry_bucket")
                .agg(pl.len().cast(pl.Int64).alias("contracts"), pl.col("risk").sum().round(2).alias("risk"))
                .sort("expiry_bucket"))
    actual = marts("select expiry_bucket, count(*) as contracts, round(sum(value_at_risk), 2) as risk "
                   "from marts.fct_contracts_expiring group by 1 order by 1")
    assert actual.to_dicts() == expected.to_dicts()


def test_rep_activity_and_overdue_tasks_equal_polars(generated, marts):
    as_of = _as_of(generated)
    as_of_end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    interactions = generated("interactions").filter(pl.col("user_id").is_not_null())
    expected_activity = (interactions.group_by("user_id")
                         .agg(pl.len().cast(pl.Int64).alias("total"),
                              (pl.col("channel") == "call").sum().cast(pl.Int64).alias("calls"),
                              (pl.col("channel") == "meeting").sum().cast(pl.Int64).alias("meetings"))
                         .sort("user_id"))
    actual_activity = marts("select user_id, sum(total_interactions)::bigint as total, sum(calls)::bigint as calls, "
                            "sum(meetings)::bigint as meetings from marts.fct_rep_activity_daily "
                            "where total_interactions > 0 group by 1 order by 1")
    assert actual_activity.to_dicts() == expected_activity.to_dicts()
    assert expected_activity["calls"].sum() > 0

    tasks = generated("tasks").filter(~pl.col("is_archived") & (pl.col("status") == "open"))
    expected_overdue = (tasks.group_by(pl.col("owner_user_id").alias("user_id"))
                        .agg((pl.col("due_at") < as_of_end).sum().cast(pl.Int64).alias("overdue_tasks"))
                        .filter(pl.col("overdue_tasks") > 0).sort("user_id"))
    actual_overdue = marts("select user_id, overdue_tasks from marts.fct_rep_performance "
                           "where overdue_tasks > 0 order by 1")
    assert actual_overdue.to_dicts() == expected_overdue.to_dicts()


def test_lead_response_speed_and_workload_balance(generated, marts):
    leads = generated("leads").filter(pl.col("owner_user_id").is_not_null() & pl.col("first_response_at").is_not_null())
    expected = (leads.with_columns(((pl.col("first_response_at") - pl.col("created_at")).dt.total_seconds() / 3600)
                                   .alias("hours"))
                .group_by(pl.col("owner_user_id").alias("user_id")).agg(pl.col("hours").median().round(6))
                .sort("user_id"))
    actual = marts("select user_id, round(median_lead_response_hours, 6) as hours from marts.fct_rep_performance "
                   "where median_lead_response_hours is not null order by 1")
    assert actual.to_dicts() == expected.to_dicts()

    # workload index: the reps of a team average exactly 1.0 when the team has open deals
    balance = marts("select team_id, avg(workload_index) as mean_index from marts.fct_rep_performance "
                    "where team_id is not null and team_mean_open_deals > 0 group by 1")
    assert balance.height > 0
    assert all(abs(v - 1.0) < 1e-9 for v in balance["mean_index"])


B_MARTS = {
    "sales": ["fct_deal_stages", "fct_opportunities", "fct_funnel_conversion", "fct_win_rates", "fct_lost_reasons",
              "fct_pipeline_snapshots_daily", "fct_weighted_pipeline"],
    "marketing": ["fct_campaign_performance", "fct_lead_source_conversion", "fct_attribution"],
    "service": ["fct_tickets", "fct_service_sla", "fct_contracts_expiring"],
    "people": ["fct_rep_activity_daily", "fct_rep_performance"],
}
B_UNIT_TESTS = ["test_deal_stages_transitions", "test_weighted_pipeline_stage_probability",
                "test_attribution_first_and_last_touch", "test_campaign_roi_and_unit_costs", "test_ticket_sla_flags"]


def test_dbt_build_built_and_tested_every_funnel_marketing_service_people_mart(built_home, marts):
    """The fixture's `dbt build` built each mart, and its data tests and unit tests ran and passed."""
    import json

    results = json.loads((built_home.root / "dbt_target" / "run_results.json").read_text())["results"]
    status = {r["unique_id"]: r["status"] for r in results}
    models = [m for names in B_MARTS.values() for m in names]
    assert {m: status.get(f"model.crm.{m}") for m in models} == dict.fromkeys(models, "success")
    for unit in B_UNIT_TESTS:
        assert [s for uid, s in status.items() if uid.startswith("unit_test.") and uid.endswith(f".{unit}")] == ["pass"]
    data_tests = {uid: s for uid, s in status.items() if uid.startswith("test.") and any(f"_{m}_" in uid for m in models)}
    assert len(data_tests) >= 60 and set(data_tests.values()) == {"pass"}
    # every mart holds rows on the demo data
    counts = marts("select table_name, estimated_size from duckdb_tables() where schema_name = 'marts'")
    sizes = dict(zip(counts["table_name"], counts["estimated_size"], strict=True))
    assert {m: sizes.get(m, 0) > 0 for m in models} == dict.fromkeys(models, True)
