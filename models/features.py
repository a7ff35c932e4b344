"""Features computed from the marts as of a cut-off month, so training and backtests never see the future.

Models read marts only (architecture rule 7 in docs). A cut-off is the first day of a month: features use the
complete months before it, labels the months from it on. Everything is plain polars so the same code
serves training at many past cut-offs, backtests and scoring at the latest month.
"""

from __future__ import annotations

import re
from datetime import date

import duckdb
import polars as pl

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

#: Numeric churn features, in the order the model sees them (names shown to users as drivers).
CHURN_FEATURES = [
    "is_b2b",
    "months_since_last_activity",
    "days_since_last_activity",
    "months_since_last_order",
    "months_since_last_interaction",
    "tenure_months",
    "orders_3m",
    "orders_12m",
    "order_trend",
    "revenue_12m_log",
    "interactions_1m",
    "interactions_2m_ago",
    "interactions_3m_ago",
    "interactions_3m",
    "interactions_12m",
    "engagement_ratio",
    "interaction_trend",
    "inbound_interactions_3m",
    "meetings_and_calls_3m",
    "web_visits_3m",
    "tickets_opened_3m",
    "urgent_tickets_6m",
    "tickets_unresolved",
    "satisfaction_6m",
    "overdue_amount_log",
    "overdue_invoices",
    "overdue_months_12m",
    "active_contracts",
    "contracts_ending_90d",
]

#: What each churn feature means, for the drivers shown next to a customer's score.
CHURN_FEATURE_LABELS = {
    "is_b2b": "business customer (B2B)",
    "months_since_last_activity": "months since the last order, interaction or ticket",
    "days_since_last_activity": "days since the last order, interaction or ticket",
    "months_since_last_order": "months since the last order",
    "months_since_last_interaction": "months since the last interaction",
    "tenure_months": "months as a customer",
    "orders_3m": "orders in the last 3 months",
    "orders_12m": "orders in the last 12 months",
    "order_trend": "orders in the last 6 months vs the 6 before",
    "revenue_12m_log": "revenue in the last 12 months",
    "interactions_1m": "interactions last month",
    "interactions_2m_ago": "interactions two months ago",
    "interactions_3m_ago": "interactions three months ago",
    "engagement_ratio": "interactions and orders in the last 3 months vs the customer's usual",
    "interactions_3m": "interactions in the last 3 months",
    "interactions_12m": "interactions in the last 12 months",
    "interaction_trend": "interactions in the last 3 months vs the 3 before",
    "inbound_interactions_3m": "inbound interactions in the last 3 months",
    "meetings_and_calls_3m": "meetings and calls in the last 3 months",
    "web_visits_3m": "web visits in the last 3 months",
    "tickets_opened_3m": "support tickets in the last 3 months",
    "urgent_tickets_6m": "high/urgent tickets in the last 6 months",
    "tickets_unresolved": "unresolved tickets",
    "satisfaction_6m": "ticket satisfaction in the last 6 months",
    "overdue_amount_log": "overdue invoice amount",
    "overdue_invoices": "overdue invoices",
    "overdue_months_12m": "months with overdue invoices in the last 12",
    "active_contracts": "service contracts in force",
    "contracts_ending_90d": "contracts ending within 90 days",
}


#: A month with a sign of life: an order, a logged interaction (calls, emails, meetings, chats, visits:
#: two-way contact the CRM records) or a ticket. A churned customer is no longer heard from.
ACTIVE_MONTH = (pl.col("orders") > 0) | (pl.col("interactions") > 0) | (pl.col("tickets_opened") > 0)


def read_mart(con: duckdb.DuckDBPyConnection, name: str, schema: str = "marts") -> pl.DataFrame:
    """A whole mart as a polars frame; the name is checked because identifiers cannot be parameters."""
    if not (_IDENTIFIER.match(name) and _IDENTIFIER.match(schema)):
        raise ValueError(f"not a mart name: {schema}.{name}")
    return con.sql(f'select * from "{schema}"."{name}"').pl()  # noqa: S608 - identifier checked above


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_index(column: str) -> pl.Expr:
    """Months since year 0 of a date column: month arithmetic as integer subtraction."""
    return (pl.col(column).dt.year().cast(pl.Int64) * 12 + pl.col(column).dt.month().cast(pl.Int64) - 1)


def with_month_index(activity: pl.DataFrame) -> pl.DataFrame:
    return activity.with_columns(month_index("month_start").alias("_m"))


def churn_features(activity: pl.DataFrame, cutoff: date) -> pl.DataFrame:
    """One row per customer known before `cutoff` with the CHURN_FEATURES as of that cut-off.

    `activity` is marts.fct_customer_monthly_activity (optionally pre-indexed by `with_month_index`).
    """
    frame = activity if "_m" in activity.columns else with_month_index(activity)
    c = cutoff.year * 12 + cutoff.month - 1
    past = frame.filter(pl.col("_m") < c)
    age = c - pl.col("_m")  # 1 = the month just before the cut-off

    def window(column: str, first: int, last: int) -> pl.Expr:
        return pl.col(column).filter((age >= first) & (age <= last)).sum()

    never = 120
    features = past.with_columns(ACTIVE_MONTH.alias("_active")).group_by("customer_key").agg(
        (pl.col("customer_type").last() == "B2B").cast(pl.Float64).alias("is_b2b"),
        (c - pl.col("_m").filter(pl.col("_active")).max()).fill_null(never).alias("months_since_last_activity"),
        (pl.lit(cutoff) - pl.col("last_activity_on").max()).dt.total_days().fill_null(never * 30)
        .alias("days_since_last_activity"),
        (c - pl.col("_m").filter(pl.col("orders") > 0).max()).fill_null(never).alias("months_since_last_order"),
        (c - pl.col("_m").filter(pl.col("interactions") > 0).max()).fill_null(never)
        .alias("months_since_last_interaction"),
        (c - pl.col("_m").min()).alias("tenure_months"),
        window("orders", 1, 3).alias("orders_3m"),
        window("orders", 1, 12).alias("orders_12m"),
        window("orders", 1, 6).alias("_orders_recent"),
        window("orders", 7, 12).alias("_orders_before"),
        window("revenue", 1, 12).alias("_revenue_12m"),
        window("interactions", 1, 1).alias("interactions_1m"),
        window("interactions", 2, 2).alias("interactions_2m_ago"),
        window("interactions", 3, 3).alias("interactions_3m_ago"),
        window("interactions", 4, 12).alias("_interactions_4_12"),
        window("orders", 4, 12).alias("_orders_4_12"),
        window("interactions", 1, 3).alias("interactions_3m"),
        window("interactions", 1, 12).alias("interactions_12m"),
        window("interactions", 4, 6).alias("_interactions_before"),
        window("inbound_interactions", 1, 3).alias("inbound_interactions_3m"),
        (window("meeting_interactions", 1, 3) + window("call_interactions", 1, 3)).alias("meetings_and_calls_3m"),
        window("web_visit_interactions", 1, 3).alias("web_visits_3m"),
        window("tickets_opened", 1, 3).alias("tickets_opened_3m"),
        window("urgent_tickets_opened", 1, 6).alias("urgent_tickets_6m"),
        window("satisfaction_sum", 1, 6).alias("_satisfaction_sum"),
        window("satisfaction_responses", 1, 6).alias("_satisfaction_n"),
        window("tickets_unresolved_at_month_end", 1, 1).alias("tickets_unresolved"),
        window("overdue_amount_at_month_end", 1, 1).alias("_overdue_amount"),
        window("overdue_invoices_at_month_end", 1, 1).alias("overdue_invoices"),
        (pl.col("overdue_invoices_at_month_end") > 0).filter((age >= 1) & (age <= 12)).sum().alias("overdue_months_12m"),
        window("active_contracts_at_month_end", 1, 1).alias("active_contracts"),
        window("contracts_ending_within_90_days", 1, 1).alias("contracts_ending_90d"),
    )
    features = features.with_columns(
        (pl.col("_orders_recent").log1p() - pl.col("_orders_before").log1p()).alias("order_trend"),
        pl.col("_revenue_12m").clip(lower_bound=0).log1p().alias("revenue_12m_log"),
        (pl.col("interactions_3m").log1p() - pl.col("_interactions_before").log1p()).alias("interaction_trend"),
        # last 3 months against the 9 before, per month, orders weighted like interactions
        (((pl.col("interactions_3m") + 3 * pl.col("orders_3m")) / 3 + 0.5)
         / ((pl.col("_interactions_4_12") + 3 * pl.col("_orders_4_12")) / 9 + 0.5)).log().alias("engagement_ratio"),
        # no rated ticket means no complaint: the neutral-to-good score 4 instead of a missing value
        pl.when(pl.col("_satisfaction_n") > 0)
        .then(pl.col("_satisfaction_sum") / pl.col("_satisfaction_n")).otherwise(4.0).alias("satisfaction_6m"),
        pl.col("_overdue_amount").clip(lower_bound=0).log1p().alias("overdue_amount_log"),
    )
    return features.select("customer_key", *[pl.col(f).cast(pl.Float64) for f in CHURN_FEATURES]).sort("customer_key")
