"""From order rows to the per-customer summary the CLV models read (frequency, recency, T, monetary value).

Conventions of the BG/NBD literature (and of `lifetimes.utils.summary_data_from_transaction_data`):
orders on the same day count as one purchase occasion with their amounts summed; the first occasion is the
acquisition, so `frequency` counts the occasions after it; `recency` is the time from the first to the
last occasion, `T` from the first occasion to the end of observation; `monetary_value` is the mean amount
of the repeat occasions (0 for customers without one), so spend at acquisition does not bias the
Gamma-Gamma model. Orders after `observation_end` are ignored, which makes a back-test cut-off exact.
"""

from __future__ import annotations

import datetime as dt

import polars as pl


def customer_summary(
    orders: pl.DataFrame,
    *,
    observation_end: dt.date | dt.datetime,
    customer_column: str = "account_id",
    date_column: str = "order_date",
    amount_column: str = "amount",
    time_unit_days: float = 1.0,
) -> pl.DataFrame:
    """One row per customer with at least one order on or before `observation_end`.

    Columns: the customer column, `frequency`, `recency`, `T` (in units of `time_unit_days` days),
    `monetary_value` and `first_purchase`.
    """
    missing = [c for c in (customer_column, date_column, amount_column) if c not in orders.columns]
    if missing:
        raise ValueError(f"The orders frame has no column {', '.join(missing)}; pass the right column names.")
    end = observation_end.date() if isinstance(observation_end, dt.datetime) else observation_end
    occasions = (
        orders.select(
            pl.col(customer_column),
            pl.col(date_column).cast(pl.Date).alias("_day"),
            pl.col(amount_column).cast(pl.Float64).alias("_amount"),
        )
        .filter(pl.col("_day") <= end)
        .group_by(customer_column, "_day")
        .agg(pl.col("_amount").sum())
        .sort(customer_column, "_day")
    )
    days = pl.duration(days=1)
    return (
        occasions.group_by(customer_column, maintain_order=True)
        .agg(
            (pl.len() - 1).alias("frequency"),
            pl.col("_day").first().alias("first_purchase"),
            pl.col("_day").last().alias("_last"),
            pl.col("_amount").slice(1).mean().alias("monetary_value"),
        )
        .with_columns(
            pl.col("frequency").cast(pl.Int64),
            ((pl.col("_last") - pl.col("first_purchase")) / days / time_unit_days).alias("recency"),
            ((pl.lit(end) - pl.col("first_purchase")) / days / time_unit_days).alias("T"),
            pl.col("monetary_value").fill_null(0.0),
        )
        .select(customer_column, "frequency", "recency", "T", "monetary_value", "first_purchase")
    )
