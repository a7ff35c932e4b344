"""Win probability of open deals, as known at a cut-off, against the stage's historical win rate.

A deal snapshot is a deal as it stood at a weekly cut-off T: open at T (created before, not closed
before), its stage at T from the stage history, its age and time in stage, amount, days to the expected
close, the owner's and the lead source's win rates over deals closed before T (smoothed towards the
overall rate, so a new rep starts at the average) and the customer's interactions in the last 3 months.
The label is whether the deal was won; snapshots of deals still open are unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.features import month_index

CATEGORICAL = ["stage_at_cutoff", "product_line"]
NUMERIC = ["owner_stage_win_rate_logit", "owner_win_rate_logit", "source_win_rate_logit", "amount_log", "age_days_log", "days_in_stage_log",
           "days_to_expected_close", "stage_changes", "customer_interactions_3m_log", "owner_closed_deals_log"]
FEATURES = CATEGORICAL + NUMERIC
#: pseudo-deals at the overall win rate added to each owner's and source's record (smoothing)
PRIOR_DEALS = 10.0


@dataclass(frozen=True)
class WinConfig:
    cutoff_every_days: int = 7
    #: the backtest evaluates the snapshots of this many final months, trained on what was known before
    evaluation_months: int = 12
    regularisation: float = 1.0


def weekly_cutoffs(start: date, end: date, every_days: int) -> list[datetime]:
    cutoffs, current = [], datetime(start.year, start.month, start.day)
    while current.date() <= end:
        cutoffs.append(current)
        current += timedelta(days=every_days)
    return cutoffs


def _rate_history(closed: pl.DataFrame, key: str) -> pl.DataFrame:
    """Running wins and closed deals per key, ordered by close time (for as-of joins)."""
    return (closed.filter(pl.col(key).is_not_null()).sort("closed_at")
            .with_columns(pl.col("is_won").cast(pl.Int64).cum_sum().over(key).alias(f"{key}_wins"),
                          pl.int_range(1, pl.len() + 1).over(key).alias(f"{key}_closed"))
            .select(key, "closed_at", f"{key}_wins", f"{key}_closed"))


def _owner_stage_history(opportunities: pl.DataFrame, open_stages: int) -> pl.DataFrame:
    """Per owner and open stage: running wins and closed deals among the owner's deals that reached it."""
    closed = opportunities.filter(pl.col("is_closed") & pl.col("closed_at").is_not_null())
    reached = (closed.select("owner_user_id", "closed_at", "is_won",
                             pl.int_ranges(1, pl.col("max_stage_order_reached").clip(1, open_stages) + 1)
                             .alias("stage_order"))
               .explode("stage_order").sort("closed_at"))
    return (reached.with_columns(
        pl.col("is_won").cast(pl.Int64).cum_sum().over("owner_user_id", "stage_order").alias("owner_stage_wins"),
        pl.int_range(1, pl.len() + 1).over("owner_user_id", "stage_order").alias("owner_stage_closed"),
        (pl.col("is_won").cast(pl.Int64).cum_sum().over("stage_order")
         / pl.int_range(1, pl.len() + 1).over("stage_order")).alias("stage_rate_so_far"))
        .rename({"closed_at": "cutoff"})
        .select("owner_user_id", pl.col("stage_order").cast(pl.Int64), "cutoff", "owner_stage_wins",
                "owner_stage_closed", "stage_rate_so_far").sort("cutoff"))


def _smoothed_logit(wins: pl.Expr, closed: pl.Expr, prior_rate: float | pl.Expr) -> pl.Expr:
    rate = (wins + PRIOR_DEALS * prior_rate) / (closed + PRIOR_DEALS)
    return (rate / (1 - rate)).log()


def snapshots(opportunities: pl.DataFrame, deal_stages: pl.DataFrame, activity: pl.DataFrame,
              cutoffs: list[datetime]) -> pl.DataFrame:
    """One row per (deal, cut-off) with the deal open at the cut-off; FEATURES plus `is_won` (null if open)."""
    far = datetime(9999, 1, 1)
    opps = opportunities.select(
        "opportunity_id", "customer_key", "owner_user_id", "lead_source", "product_line", "amount",
        "expected_close_date", "created_at", pl.col("closed_at").fill_null(far).alias("closed_at_or_far"),
        pl.col("closed_at"), pl.when(pl.col("is_closed")).then(pl.col("is_won")).alias("is_won"))
    grid = pl.DataFrame({"cutoff": cutoffs}, schema={"cutoff": pl.Datetime("us")})
    open_at = opps.join(grid, how="cross").filter(
        (pl.col("created_at") < pl.col("cutoff")) & (pl.col("closed_at_or_far") >= pl.col("cutoff")))
    if open_at.is_empty():
        return open_at
    # the installation's open stages (crm.yaml) in funnel order, as the stage mart numbers them
    events = (deal_stages.filter(~pl.col("is_closed_stage") & pl.col("stage_order").is_not_null())
              .select("opportunity_id", "stage", "stage_order", "entered_at"))
    first_stage = events.sort("stage_order")["stage"].first() if events.height else None
    open_stages = int(events["stage_order"].max() or 1) if events.height else 1
    stage_at = (open_at.select("opportunity_id", "cutoff")
                .join(events, on="opportunity_id", how="inner")
                .filter(pl.col("entered_at") < pl.col("cutoff"))
                .sort("entered_at")
                .group_by("opportunity_id", "cutoff")
                .agg(pl.col("stage").last().alias("stage_at_cutoff"),
                     pl.col("stage_order").last().alias("stage_order"),
                     pl.col("entered_at").last().alias("stage_entered_at"),
                     (pl.len() - 1).alias("stage_changes")))
    frame = open_at.join(stage_at, on=["opportunity_id", "cutoff"], how="left").with_columns(
        pl.col("stage_at_cutoff").fill_null(first_stage), pl.col("stage_order").fill_null(1).cast(pl.Int64))

    closed = opps.filter(pl.col("closed_at").is_not_null())
    prior = float(closed["is_won"].mean()) if closed.height else 0.3
    prior = min(max(prior, 0.05), 0.95)
    frame = frame.sort("cutoff")
    for key in ("owner_user_id", "lead_source"):
        history = _rate_history(closed, key).rename({"closed_at": "cutoff"}).sort("cutoff")
        frame = frame.join_asof(history, on="cutoff", by=key, strategy="backward", allow_exact_matches=False,
                                check_sortedness=False)
    frame = frame.join_asof(_owner_stage_history(opportunities, open_stages), on="cutoff", by=["owner_user_id", "stage_order"],
                            strategy="backward", allow_exact_matches=False, check_sortedness=False)
    interactions = (activity.select("customer_key", month_index("month_start").alias("_m"), "interactions"))
    frame = frame.with_columns(month_index("cutoff").alias("_c"))
    recent = (frame.select("customer_key", "_c").unique()
              .join(interactions, on="customer_key", how="inner")
              .filter((pl.col("_m") < pl.col("_c")) & (pl.col("_m") >= pl.col("_c") - 3))
              .group_by("customer_key", "_c").agg(pl.col("interactions").sum().alias("customer_interactions_3m")))
    frame = frame.join(recent, on=["customer_key", "_c"], how="left")

    day = 86_400.0
    return frame.with_columns(
        pl.col("product_line").fill_null("(none)"),
        _smoothed_logit(pl.col("owner_stage_wins").fill_null(0), pl.col("owner_stage_closed").fill_null(0),
                        pl.col("stage_rate_so_far").fill_null(prior).clip(0.02, 0.98))
        .alias("owner_stage_win_rate_logit"),
        _smoothed_logit(pl.col("owner_user_id_wins").fill_null(0), pl.col("owner_user_id_closed").fill_null(0), prior)
        .alias("owner_win_rate_logit"),
        _smoothed_logit(pl.col("lead_source_wins").fill_null(0), pl.col("lead_source_closed").fill_null(0), prior)
        .alias("source_win_rate_logit"),
        pl.col("owner_user_id_closed").fill_null(0).cast(pl.Float64).log1p().alias("owner_closed_deals_log"),
        pl.col("amount").clip(lower_bound=0).log1p().alias("amount_log"),
        ((pl.col("cutoff") - pl.col("created_at")).dt.total_seconds() / day).clip(lower_bound=0).log1p()
        .alias("age_days_log"),
        ((pl.col("cutoff") - pl.col("stage_entered_at").fill_null(pl.col("created_at"))).dt.total_seconds() / day)
        .clip(lower_bound=0).log1p().alias("days_in_stage_log"),
        ((pl.col("expected_close_date").cast(pl.Datetime("us")) - pl.col("cutoff")).dt.total_seconds() / day)
        .clip(-365, 365).alias("days_to_expected_close"),
        pl.col("stage_changes").fill_null(0).cast(pl.Float64),
        pl.col("customer_interactions_3m").fill_null(0).cast(pl.Float64).log1p().alias("customer_interactions_3m_log"),
    ).select("opportunity_id", "customer_key", "owner_user_id", "cutoff", "amount", "expected_close_date",
             "closed_at", "is_won", *FEATURES)


def build_pipeline(config: WinConfig) -> Pipeline:
    columns = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ("numeric", StandardScaler(), NUMERIC),
    ])
    # logistic regression: probabilities calibrated by construction (Brier is the target metric)
    return Pipeline([("columns", columns), ("model", LogisticRegression(C=config.regularisation, max_iter=2000))])


def fit(examples: pl.DataFrame, config: WinConfig) -> Pipeline:
    labels = examples["is_won"].cast(pl.Int8).to_numpy()
    if len(labels) < 20 or labels.min() == labels.max():
        raise ValueError(f"win probability needs closed deals of both outcomes to learn from; the training "
                         f"window holds {len(labels)} deal snapshots - load more opportunity history.")
    return build_pipeline(config).fit(examples.select(FEATURES).to_pandas(), labels)


def predict(pipeline: Pipeline, examples: pl.DataFrame) -> np.ndarray:
    return pipeline.predict_proba(examples.select(FEATURES).to_pandas())[:, 1]


def stage_rates(examples: pl.DataFrame) -> dict[str, float]:
    """The baseline: the share of deal snapshots in each stage that ended won."""
    overall = float(examples["is_won"].cast(pl.Float64).mean())
    rates = (examples.filter(pl.col("stage_at_cutoff").is_not_null()).group_by("stage_at_cutoff")
             .agg(pl.col("is_won").cast(pl.Float64).mean()).sort("stage_at_cutoff"))
    return {stage: float(rate) for stage, rate in rates.iter_rows()} | {"_overall": overall}


def stage_rate_baseline(rates: dict[str, float], examples: pl.DataFrame) -> np.ndarray:
    return np.array([rates.get(stage, rates["_overall"]) for stage in examples["stage_at_cutoff"].to_list()])
