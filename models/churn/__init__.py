"""Churn model: backtest, train and score (definitions in models/churn/model.py).

Backtest: train on the cut-offs whose labels were known at the evaluation cut-off T, score the customers
active at T, compare with what happened in the following horizon - and do the same with the recency rule.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from models.churn import model as churn_model
from models.churn.model import ChurnConfig
from models.common import TrainedModel
from models.features import add_months, with_month_index
from models.grading import grade_churn
from models.metrics import calibration_table, classification_metrics

NAME = "churn"


def _training_cutoffs(first: date, last_known: date, config: ChurnConfig) -> list[date]:
    """The latest `training_cutoffs` month starts <= last_known that have min_history_months before them."""
    earliest = add_months(first, config.min_history_months)
    cutoffs = []
    current = last_known
    while current >= earliest and len(cutoffs) < config.training_cutoffs:
        cutoffs.append(current)
        current = add_months(current, -1)
    if not cutoffs:
        raise ValueError(
            f"churn needs {config.min_history_months + 2 * config.label_delay_months + 1} months of history for a "
            f"backtest; the marts hold data from {first:%Y-%m} only - load a longer history.")
    return sorted(cutoffs)


def backtest(activity: pl.DataFrame, config: ChurnConfig | None = None, seed: int = 42) -> dict:
    """Time-based backtest at T = scoring cut-off - label delay; returns metrics, baseline and predictions."""
    config = config or ChurnConfig()
    frame = with_month_index(activity)
    first, scoring_cutoff = churn_model.first_and_last_month(frame)
    evaluation_cutoff = add_months(scoring_cutoff, -config.label_delay_months)
    cutoffs = _training_cutoffs(first, add_months(evaluation_cutoff, -config.label_delay_months), config)
    train = churn_model.training_frame(frame, cutoffs, config)
    pipeline = churn_model.fit(train, seed, config.max_training_rows)
    test = churn_model.churn_examples(frame, evaluation_cutoff, config)
    probability = churn_model.predict(pipeline, test)
    baseline_score = churn_model.recency_baseline(test)
    labels = test["churned"].to_numpy()
    if len(labels) == 0 or labels.min() == labels.max():
        raise ValueError(f"the churn backtest at {evaluation_cutoff:%Y-%m} has {len(labels)} customers and needs both "
                         "churned and retained ones to measure the model - load a longer history or more customers.")
    metrics = classification_metrics(labels, probability)
    # the recency rule is a ranking, not a probability: it gets no Brier score
    baseline = classification_metrics(labels, baseline_score, probabilities=False)
    activity_rule = classification_metrics(labels, churn_model.activity_recency_baseline(test), probabilities=False)
    return {
        "evaluation_cutoff": evaluation_cutoff.isoformat(),
        "training_cutoffs": [cutoffs[0].isoformat(), cutoffs[-1].isoformat()],
        "training_rows": train.height,
        "metrics": metrics,
        "baseline": baseline,
        "activity_recency_baseline": activity_rule,
        "calibration": calibration_table(labels, probability),
        "predictions": test.select("customer_key", "cutoff", "churned").with_columns(
            pl.Series("churn_probability", probability), pl.Series("recency_score", baseline_score)),
    }


def train(activity: pl.DataFrame, config: ChurnConfig | None = None, seed: int = 42) -> TrainedModel:
    """Backtest, then refit on the latest cut-offs whose labels are known now."""
    config = config or ChurnConfig()
    result = backtest(activity, config, seed)
    frame = with_month_index(activity)
    first, scoring_cutoff = churn_model.first_and_last_month(frame)
    cutoffs = _training_cutoffs(first, add_months(scoring_cutoff, -config.label_delay_months), config)
    examples = churn_model.training_frame(frame, cutoffs, config)
    pipeline = churn_model.fit(examples, seed, config.max_training_rows)
    grade = grade_churn(result["metrics"], result["baseline"])
    metadata = {
        "seed": seed,
        "target": f"P(no order, interaction or ticket from {config.horizon_months} months after the cut-off on)",
        "training_window": {"first_cutoff": cutoffs[0].isoformat(), "last_cutoff": cutoffs[-1].isoformat(),
                            "rows": examples.height, "positive_rate": float(examples["churned"].mean())},
        "config": config.__dict__,
        "backtest": {k: v for k, v in result.items() if k != "predictions"},
        "metrics": result["metrics"],
        "baseline_metrics": result["baseline"],
        "grade": grade.as_dict(),
    }
    artifacts = {"pipeline": pipeline, "reference": churn_model.reference_values(examples)}
    return TrainedModel(NAME, artifacts, metadata)


def score(artifacts: dict, activity: pl.DataFrame, config: ChurnConfig | None = None) -> pl.DataFrame:
    """Score every customer active at the scoring cut-off (the month after the last complete month)."""
    config = config or ChurnConfig()
    frame = with_month_index(activity)
    _, scoring_cutoff = churn_model.first_and_last_month(frame)
    examples = churn_model.churn_examples(frame, scoring_cutoff, config, with_labels=False)
    scored = churn_model.score_frame(artifacts["pipeline"], examples, np.asarray(artifacts["reference"]))
    return scored.with_columns(pl.lit(scoring_cutoff).alias("as_of_cutoff"))
