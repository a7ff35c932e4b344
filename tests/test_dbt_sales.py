"""Sales (funnel) marts against figures recomputed independently with polars from the generated files.

The generator's operational store holds the deals and their stage history; these tests read it back with
sqlite3 + polars (tests/conftest.py `generated`) and apply the documented definitions
(dbt_project/models/marts/sales/_docs.md) to get the same numbers the marts must show.
"""

from __future__ import annotations

import polars as pl

STAGE_ORDER = {"prospecting": 1, "qualification": 2, "proposal": 3, "negotiation": 4, "closed_won": 5}
FUNNEL_STEPS = ["prospecting", "qualification", "proposal", "negotiation"]


def _live_deals(generated) -> pl.DataFrame:
    """Deals that are not archived (archived deals are out of every sales mart)."""
    return generated("opportunities").filter(~pl.col("is_archived"))


def _deals_with_furthest_stage(generated) -> pl.DataFrame:
    """Each live deal with the furthest funnel stage it reached (history or current stage, at least 1)."""
    order = pl.col("stage_name").replace_strict(STAGE_ORDER, default=None, return_dtype=pl.Int64)
    history = (generated("opportunity_stage_history")
               .select("opportunity_id", pl.col("to_stage").alias("stage_name"))
               .with_columns(order.alias("order"))
               .group_by("opportunity_id").agg(pl.col("order").max().alias("history_max")))
    deals = _live_deals(generated).with_columns(
        pl.col("stage").alias("stage_name")).with_columns(order.alias("current_order"))
    return (deals.join(history, on="opportunity_id", how="left")
            .with_columns(pl.max_horizontal(pl.lit(1), pl.col("history_max").fill_null(0),
                                            pl.col("current_order").fill_null(0)).alias("reached"),
                          pl.col("created_at").dt.truncate("1mo").dt.date().alias("created_month")))


def test_win_rate_per_rep_equals_polars(generated, marts):
    deals = _live_deals(generated).filter(pl.col("stage").is_in(["closed_won", "closed_lost"]))
    expected = (deals.group_by("owner_user_id")
                .agg((pl.col("stage") == "closed_won").sum().cast(pl.Int64).alias("won"),
                     (pl.col("stage") == "closed_lost").sum().cast(pl.Int64).alias("lost"))
                .with_columns((pl.col("won") / (pl.col("won") + pl.col("lost"))).alias("win_rate"))
                .sort("owner_user_id"))
    assert expected.height >= 5, "the demo data should have several reps with closed deals"

    performance = marts("select user_id as owner_user_id, deals_won as won, deals_lost as lost, win_rate "
                        "from marts.fct_rep_performance where deals_won + deals_lost > 0 order by 1")
    assert performance.to_dicts() == expected.to_dicts()

    # the monthly long-format mart adds up to the same per-rep figures
    by_month = marts("select dimension_value as owner_user_id, sum(deals_won)::bigint as won, "
                     "sum(deals_lost)::bigint as lost from marts.fct_win_rates where dimension = 'owner' "
                     "group by 1 order by 1")
    assert by_month.to_dicts() == expected.select("owner_user_id", "won", "lost").to_dicts()


def test_overall_win_rate_per_close_month_equals_polars(generated, marts):
    deals = (_live_deals(generated).filter(pl.col("stage").is_in(["closed_won", "closed_lost"]))
             .with_columns(pl.coalesce("closed_at", "updated_at").dt.truncate("1mo").dt.date().alias("closed_month")))
    expected = (deals.group_by("closed_month")
                .agg(pl.len().cast(pl.Int64).alias("deals_closed"),
                     (pl.col("stage") == "closed_won").sum().cast(pl.Int64).alias("deals_won"))
                .sort("closed_month"))
    actual = marts("select closed_month, deals_closed, deals_won from marts.fct_win_rates "
                   "where dimension = 'all' order by closed_month")
    assert actual.to_dicts() == expected.to_dicts()


def test_stage_conversion_counts_equal_polars(generated, marts):
    deals = _deals_with_furthest_stage(generated)
    rows = []
    for step, stage in enumerate(FUNNEL_STEPS, start=1):
        rows.append(deals.group_by("created_month").agg(
            pl.lit(stage).alias("from_stage"),
            (pl.col("reached") >= step).sum().cast(pl.Int64).alias("deals_entered"),
            (pl.col("reached") >= step + 1).sum().cast(pl.Int64).alias("deals_converted")))
    expected = pl.concat(rows).sort("created_month", "from_stage")
    actual = marts("select created_month, from_stage, deals_entered, deals_converted "
                   "from marts.fct_funnel_conversion where dimension = 'all' order by created_month, from_stage")
    assert actual.to_dicts() == expected.to_dicts()
    totals = expected.group_by("from_stage").agg(pl.col("deals_entered").sum()).sort("from_stage")
    # every deal enters the funnel; counts never increase further down the funnel
    entered = {r["from_stage"]: r["deals_entered"] for r in totals.to_dicts()}
    assert entered["prospecting"] == deals.height
    assert entered["prospecting"] >= entered["qualification"] >= entered["proposal"] >= entered["negotiation"]

    # per rep, summed over months, the long format agrees too
    per_rep = (deals.group_by("owner_user_id")
               .agg((pl.col("reached") >= 3).sum().cast(pl.Int64).alias("entered"),
                    (pl.col("reached") >= 4).sum().cast(pl.Int64).alias("converted"))
               .sort("owner_user_id"))
    actual_rep = marts("select dimension_value as owner_user_id, sum(deals_entered)::bigint as entered, "
                       "sum(deals_converted)::bigint as converted from marts.fct_funnel_conversion "
                       "where dimension = 'owner' and from_stage = 'proposal' group by 1 order by 1")
    assert actual_rep.to_dicts() == per_rep.to_dicts()


def test_deal_stages_one_row_per_stage_change(generated, marts):
    live = _live_deals(generated).select("opportunity_id")
    history = generated("opportunity_stage_history").join(live, on="opportunity_id", how="semi")
    stages = marts("select count(*) as n, count(*) filter (where is_current_stage) as current, "
                   "count(*) filter (where next_stage is null) as no_next from marts.fct_deal_stages")
    assert stages["n"][0] == history.height
    assert stages["current"][0] == history["opportunity_id"].n_unique() == stages["no_next"][0]

    # the time a deal spent in its first stage is the gap to its second stage change
    first_two = (history.sort("opportunity_id", "changed_at", "stage_event_id")
                 .group_by("opportunity_id", maintain_order=True).head(2)
                 .group_by("opportunity_id").agg(pl.col("stage_event_id").first(),
                                                 (pl.col("changed_at").last() - pl.col("changed_at").first())
                                                 .dt.total_seconds().alias("seconds"), pl.len().alias("k"))
                 .filter(pl.col("k") == 2).sort("stage_event_id").head(50))
    actual = marts("select stage_event_id, days_in_stage from marts.fct_deal_stages "
                   "where list_contains(?, stage_event_id) order by 1", [first_two["stage_event_id"].to_list()])
    expected = [round(s / 86400, 4) for s in first_two["seconds"]]
    assert actual["days_in_stage"].to_list() == expected


def test_pipeline_snapshot_of_the_last_day_matches_the_open_deals(generated, marts):
    """At the end of the as-of day each deal sits in its latest stage, so the snapshot equals today's pipeline."""
    as_of = marts("select as_of_date from intermediate.int_as_of_date")["as_of_date"][0]
    live = _live_deals(generated).select("opportunity_id", "amount")
    latest = (generated("opportunity_stage_history").sort("opportunity_id", "changed_at", "stage_event_id")
              .group_by("opportunity_id").last()
              .filter(pl.col("to_stage").is_in(FUNNEL_STEPS))
              .join(live, on="opportunity_id"))
    expected = (latest.group_by(pl.col("to_stage").alias("stage"))
                .agg(pl.len().cast(pl.Int64).alias("open_deals"), pl.col("amount").sum().round(2).alias("open_amount"))
                .sort("stage"))
    actual = marts("select stage, sum(open_deals)::bigint as open_deals, round(sum(open_amount), 2) as open_amount "
                   "from marts.fct_pipeline_snapshots_daily where snapshot_date = ? group by stage order by stage",
                   [as_of])
    assert actual.to_dicts() == expected.to_dicts()
    assert expected["open_deals"].sum() > 0


def test_weighted_pipeline_uses_historical_stage_win_rates(generated, marts):
    deals = _deals_with_furthest_stage(generated)
    closed = deals.filter(pl.col("stage").is_in(["closed_won", "closed_lost"]))
    for step, stage in enumerate(FUNNEL_STEPS, start=1):
        reached = closed.filter(pl.col("reached") >= step)
        if reached.height == 0:
            continue
        probability = (reached["stage"] == "closed_won").sum() / reached.height
        actual = marts("select distinct stage_win_probability from marts.fct_weighted_pipeline where stage = ?",
                       [stage])
        if actual.height:
            assert actual["stage_win_probability"].to_list() == [probability]
    open_count = deals.filter(~pl.col("stage").is_in(["closed_won", "closed_lost"])).height
    assert marts("select count(*) as n from marts.fct_weighted_pipeline")["n"][0] == open_count


def test_incremental_marts_rebuild_dropped_days_exactly(built_home, tmp_path):
    """The incremental marts rebuild recent days to the same rows a full build gave: drop the last days from a
    copy of the warehouse (as if they had not arrived yet), run dbt incrementally, compare with the original."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import duckdb

    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built_home.warehouse, warehouse)
    tables = {"fct_pipeline_snapshots_daily": "snapshot_date", "fct_rep_activity_daily": "activity_date"}
    with duckdb.connect(str(warehouse)) as con:
        before = {t: con.sql(f"select * from marts.{t} order by all").pl() for t in tables}  # noqa: S608
        for table, day in tables.items():
            con.execute(f"delete from marts.{table} where {day} > (select max({day}) - 10 from marts.{table})")  # noqa: S608
    project = Path(__file__).resolve().parents[1] / "dbt_project"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "run", "--project-dir", str(project), "--profiles-dir",
         str(project), "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--select", *tables],
        env={**os.environ, "CRM_WAREHOUSE": str(warehouse)},
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "incremental model marts.fct_pipeline_snapshots_daily" in result.stdout
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table in tables:
            after = con.sql(f"select * from marts.{table} order by all").pl()  # noqa: S608
            assert after.height == before[table].height > 0
            assert after.equals(before[table]), f"{table} differs after the incremental rebuild"
