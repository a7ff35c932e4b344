"""Marketing marts against figures recomputed independently with polars from the generated files.

Definitions: dbt_project/models/marts/marketing/_docs.md (revenue attributed, ROI, attribution).
"""

from __future__ import annotations

import polars as pl


def _campaign_revenue(generated) -> pl.DataFrame:
    """Won revenue per campaign: won live deals by their own campaign, else their lead's campaign."""
    leads = generated("leads").select("lead_id", pl.col("campaign_id").alias("lead_campaign_id"))
    deals = (generated("opportunities").filter(~pl.col("is_archived"))
             .join(leads, on="lead_id", how="left")
             .with_columns(pl.coalesce("campaign_id", "lead_campaign_id").alias("campaign"))
             .filter(pl.col("campaign").is_not_null()))
    return deals.group_by("campaign").agg(
        pl.len().cast(pl.Int64).alias("opportunities"),
        pl.col("amount").filter(pl.col("stage") == "closed_won").sum().alias("revenue"))


def test_campaign_roi_equals_polars(generated, marts):
    campaigns = generated("campaigns")
    revenue = _campaign_revenue(generated)
    expected = (campaigns.join(revenue, left_on="campaign_id", right_on="campaign", how="left")
                .with_columns(pl.col("revenue").fill_null(0.0), pl.col("opportunities").fill_null(0))
                .with_columns(pl.when(pl.col("cost") > 0)
                              .then((pl.col("revenue") - pl.col("cost")) / pl.col("cost")).alias("roi")))
    # the campaign with the most won revenue, checked field by field
    top = expected.sort("revenue", "campaign_id", descending=[True, False]).row(0, named=True)
    assert top["revenue"] > 0, "the demo data should attribute won revenue to campaigns"
    mart = marts("select * from marts.fct_campaign_performance where campaign_id = ?",
                 [top["campaign_id"]]).row(0, named=True)
    assert mart["cost"] == top["cost"]
    assert round(mart["revenue_attributed"], 6) == round(top["revenue"], 6)
    assert round(mart["roi"], 9) == round(top["roi"], 9)
    assert mart["opportunities"] == top["opportunities"]

    # and every campaign's ROI, to the ninth decimal
    actual = marts("select campaign_id, round(roi, 9) as roi from marts.fct_campaign_performance order by 1")
    assert actual.to_dicts() == (expected.select("campaign_id", pl.col("roi").round(9))
                                 .sort("campaign_id").to_dicts())


def test_campaign_members_leads_and_customers_equal_polars(generated, marts):
    members = generated("campaign_members")
    responded = members.filter(pl.col("responded_at").is_not_null()
                               | pl.col("status").is_in(["responded", "converted"]))
    leads = generated("leads").filter(pl.col("campaign_id").is_not_null())
    expected_members = members.group_by("campaign_id").agg(pl.len().cast(pl.Int64).alias("members"))
    expected_responses = responded.group_by("campaign_id").agg(pl.len().cast(pl.Int64).alias("responses"))
    expected_leads = leads.group_by("campaign_id").agg(
        pl.len().cast(pl.Int64).alias("leads"),
        pl.col("converted_account_id").is_not_null().sum().cast(pl.Int64).alias("converted_leads"))
    expected = (generated("campaigns").select("campaign_id")
                .join(expected_members, on="campaign_id", how="left")
                .join(expected_responses, on="campaign_id", how="left")
                .join(expected_leads, on="campaign_id", how="left")
                .fill_null(0).sort("campaign_id"))
    actual = marts("select campaign_id, members, responses, leads, converted_leads "
                   "from marts.fct_campaign_performance order by 1")
    assert actual.to_dicts() == expected.to_dicts()
    assert expected["members"].sum() > 0 and expected["leads"].sum() > 0


def test_lead_source_conversion_equals_polars(generated, marts):
    leads = generated("leads")
    expected = (leads.group_by("lead_source")
                .agg(pl.len().cast(pl.Int64).alias("leads"),
                     ((pl.col("status") == "converted") | pl.col("converted_account_id").is_not_null())
                     .sum().cast(pl.Int64).alias("converted"))
                .sort("lead_source"))
    actual = marts("select lead_source, sum(leads)::bigint as leads, sum(leads_converted)::bigint as converted "
                   "from marts.fct_lead_source_conversion group by 1 order by 1")
    assert actual.to_dicts() == expected.to_dicts()


def test_attribution_credits_all_won_revenue_once_per_model(generated, marts):
    won = generated("opportunities").filter(~pl.col("is_archived") & (pl.col("stage") == "closed_won"))
    totals = marts("select attribution_model, count(*) as deals, round(sum(attributed_revenue), 2) as revenue, "
                   "count(*) filter (where touch_type <> 'none') as attributed "
                   "from marts.fct_attribution group by 1 order by 1")
    assert totals["attribution_model"].to_list() == ["first_touch", "last_touch"]
    assert totals["deals"].to_list() == [won.height, won.height]
    assert totals["revenue"].to_list() == [round(won["amount"].sum(), 2)] * 2
    # the demo data has campaign and interaction touches, so most won revenue is attributed to a touch
    assert totals["attributed"][0] > 0
    # first touch never comes after last touch
    order = marts("select count(*) as n from marts.fct_attribution f join marts.fct_attribution l "
                  "using (opportunity_id) where f.attribution_model = 'first_touch' "
                  "and l.attribution_model = 'last_touch' and f.touch_at > l.touch_at")
    assert order["n"][0] == 0
