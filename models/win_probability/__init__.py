"""Win probability: time-based backtest, training, scoring of open deals and the pipeline-weighted view.

Backtest: split at S = as-of date - `evaluation_months`. The model and the stage-rate baseline learn
from weekly snapshots before S of deals that had closed before S (what was known at S); both are scored
on the weekly snapshots from S on of deals whose outcome is known now.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from models.common import TrainedModel
from models.features import add_months
from models.grading import grade_win_probability
from models.metrics import calibration_table, classification_metrics
from models.win_probability import model as wm
from models.win_probability.model import WinConfig

NAME = "win_probability"


def as_of_date(activity: pl.DataFrame) -> date:
    """The data's "today" (int_as_of_date), carried by the monthly activity mart."""
    if activity.is_empty():
        raise ValueError("marts.fct_customer_monthly_activity is empty; load data and run the pipeline first.")
    return activity["as_of_date"].max()


def _all_snapshots(opportunities: pl.DataFrame, deal_stages: pl.DataFrame, activity: pl.DataFrame,
                   config: WinConfig) -> pl.DataFrame:
    if opportunities.is_empty():
        raise ValueError("marts.fct_opportunities is empty; win probability needs deal history.")
    start = opportunities["created_at"].min().date()
    return wm.snapshots(opportunities, deal_stages, activity,
                        wm.weekly_cutoffs(start, as_of_date(activity), config.cutoff_every_days))


def backtest(opportunities: pl.DataFrame, deal_stages: pl.DataFrame, activity: pl.DataFrame,
             config: WinConfig | None = None) -> dict:
    config = config or WinConfig()
    as_of = as_of_date(activity)
    split = datetime.combine(add_months(as_of.replace(day=1), -config.evaluation_months), datetime.min.time())
    snaps = _all_snapshots(opportunities, deal_stages, activity, config)
    train = snaps.filter((pl.col("cutoff") < split) & (pl.col("closed_at") < split))
    test = snaps.filter((pl.col("cutoff") >= split) & pl.col("is_won").is_not_null())
    pipeline = wm.fit(train, config)
    probability = wm.predict(pipeline, test)
    rates = wm.stage_rates(train)
    baseline = wm.stage_rate_baseline(rates, test)
    labels = test["is_won"].cast(pl.Int8).to_numpy()
    return {
        "split": split.date().isoformat(),
        "training_snapshots": train.height,
        "evaluation_snapshots": test.height,
        "evaluation_deals": test["opportunity_id"].n_unique(),
        "metrics": classification_metrics(labels, probability),
        "baseline": classification_metrics(labels, baseline),
        "calibration": calibration_table(labels, probability, bins=5),
        "stage_rates": rates,
        "predictions": test.select("opportunity_id", "cutoff", "stage_at_cutoff", "is_won")
        .with_columns(pl.Series("win_probability", probability), pl.Series("stage_rate", baseline)),
    }


def train(opportunities: pl.DataFrame, deal_stages: pl.DataFrame, activity: pl.DataFrame,
          config: WinConfig | None = None, seed: int = 42) -> TrainedModel:
    config = config or WinConfig()
    result = backtest(opportunities, deal_stages, activity, config)
    snaps = _all_snapshots(opportunities, deal_stages, activity, config)
    labelled = snaps.filter(pl.col("is_won").is_not_null())
    pipeline = wm.fit(labelled, config)
    rates = wm.stage_rates(labelled)
    grade = grade_win_probability(result["metrics"], result["baseline"])
    metadata = {
        "seed": seed,  # logistic regression with lbfgs is deterministic
        "target": "P(an open deal ends closed_won)",
        "training_window": {"first_cutoff": labelled["cutoff"].min().isoformat(),
                            "last_cutoff": labelled["cutoff"].max().isoformat(),
                            "snapshots": labelled.height, "deals": labelled["opportunity_id"].n_unique()},
        "config": config.__dict__,
        "backtest": {k: v for k, v in result.items() if k != "predictions"},
        "metrics": result["metrics"],
        "baseline_metrics": result["baseline"],
        "grade": grade.as_dict(),
        "stage_rates": rates,
    }
    return TrainedModel(NAME, {"pipeline": pipeline}, metadata)


def score(artifacts: dict, stage_rates: dict[str, float], opportunities: pl.DataFrame,
          deal_stages: pl.DataFrame, activity: pl.DataFrame) -> pl.DataFrame:
    """Every deal open at the end of the as-of date with its win probability and its stage's rate."""
    cutoff = datetime.combine(as_of_date(activity) + timedelta(days=1), datetime.min.time())
    snaps = wm.snapshots(opportunities, deal_stages, activity, [cutoff])
    if snaps.is_empty():
        return pl.DataFrame(schema={"opportunity_id": pl.String, "stage": pl.String, "amount": pl.Float64,
                                    "expected_close_date": pl.Date, "win_probability": pl.Float64,
                                    "stage_win_rate": pl.Float64, "as_of_date": pl.Date})
    probability = wm.predict(artifacts["pipeline"], snaps)
    return snaps.select(
        "opportunity_id", pl.col("stage_at_cutoff").alias("stage"), "amount", "expected_close_date",
    ).with_columns(pl.Series("win_probability", probability),
                   pl.Series("stage_win_rate", wm.stage_rate_baseline(stage_rates, snaps)),
                   pl.lit(as_of_date(activity)).alias("as_of_date"))


def weighted_pipeline(scores: pl.DataFrame) -> pl.DataFrame:
    """Open deals x win probability by expected close month; a deal whose expected close date has passed
    counts in the current month (it is still expected to close, just late)."""
    if scores.is_empty():
        return pl.DataFrame(schema={"expected_close_month": pl.Date, "open_deals": pl.Int64,
                                    "pipeline_amount": pl.Float64, "weighted_amount": pl.Float64,
                                    "stage_rate_weighted_amount": pl.Float64})
    as_of_month = pl.col("as_of_date").dt.truncate("1mo")
    return (scores.with_columns(pl.max_horizontal(pl.col("expected_close_date").dt.truncate("1mo"), as_of_month)
                                .alias("expected_close_month"))
            .group_by("expected_close_month")
            .agg(pl.len().cast(pl.Int64).alias("open_deals"),
                 pl.col("amount").sum().alias("pipeline_amount"),
                 (pl.col("amount") * pl.col("win_probability")).sum().alias("weighted_amount"),
                 (pl.col("amount") * pl.col("stage_win_rate")).sum().alias("stage_rate_weighted_amount"))
            .sort("expected_close_month"))
