"""Churn: as-of features without leakage, labels, and the backtest against the ground truth and recency."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

import models.churn as churn
from models.churn.model import ChurnConfig, churn_examples
from models.features import CHURN_FEATURES, add_months, churn_features

ZERO_COLUMNS = [
    "cancelled_or_returned_orders", "distinct_products", "inbound_interactions", "call_interactions",
    "email_interactions", "meeting_interactions", "chat_interactions", "web_visit_interactions",
    "form_interactions", "social_interactions", "event_interactions", "urgent_tickets_opened",
    "billing_tickets_opened", "satisfaction_sum", "satisfaction_responses", "tickets_unresolved_at_month_end",
    "overdue_invoices_at_month_end", "active_contracts_at_month_end", "contracts_ending_within_90_days",
    "tickets_opened"]


def activity_frame(rows: dict[str, list[int]], start: date = date(2025, 1, 1)) -> pl.DataFrame:
    """A tiny fct_customer_monthly_activity: per customer, interactions per month from `start`."""
    records = []
    for key, counts in rows.items():
        for m, count in enumerate(counts):
            month = add_months(start, m)
            records.append({"customer_key": key, "customer_type": "B2C", "month_start": month,
                            "is_complete_month": True, "as_of_date": date(2026, 12, 31), "orders": int(m % 4 == 0),
                            "revenue": 100.0 * (m % 4 == 0), "interactions": count,
                            "last_activity_on": month if count else None,
                            "overdue_amount_at_month_end": 0.0, "active_contract_value_at_month_end": 0.0,
                            **dict.fromkeys(ZERO_COLUMNS, 0)})
    return pl.DataFrame(records)


def test_features_ignore_everything_from_the_cutoff_on():
    base = activity_frame({"A": [2] * 24, "B": [1] * 24})
    cutoff = date(2025, 10, 1)
    changed = base.with_columns(
        pl.when(pl.col("month_start") >= cutoff).then(99).otherwise(pl.col("interactions")).alias("interactions"),
        pl.when(pl.col("month_start") >= cutoff).then(5).otherwise(pl.col("orders")).alias("orders"))
    assert churn_features(base, cutoff).equals(churn_features(changed, cutoff))
    features = churn_features(base, cutoff).filter(pl.col("customer_key") == "A").row(0, named=True)
    assert features["interactions_3m"] == 6 and features["interactions_12m"] == 18
    assert features["tenure_months"] == 9 and features["months_since_last_activity"] == 1


def test_labels_silent_from_three_months_after_the_cutoff():
    months = 24
    frame = activity_frame({
        "stays": [2] * months,
        "goes": [2] * 16 + [0] * (months - 16),       # last active in the horizon's second month
        "long_gone": [2] * 2 + [0] * (months - 2),    # silent for more than 12 months before the cutoff
    }).with_columns(pl.when(pl.col("customer_key") == "stays").then(pl.col("orders")).otherwise(0).alias("orders"))
    examples = churn_examples(frame, date(2026, 3, 1), ChurnConfig())
    labels = dict(examples.select("customer_key", "churned").iter_rows())
    assert labels == {"stays": 0, "goes": 1}  # long_gone is not an active customer any more


@pytest.fixture(scope="module")
def churn_backtest(ml_marts):
    return churn.backtest(ml_marts.activity)


def ground_truth_probability(home, predictions: pl.DataFrame) -> np.ndarray:
    """P(gone within 3 months of the cut-off) from the generator: 1 if churned before, else 1 - prod(1 - h)."""
    cutoff = predictions["cutoff"][0]
    hazard = pl.read_parquet(home.ground_truth / "churn_hazard.parquet")
    customers = pl.read_parquet(home.ground_truth / "customers.parquet")
    window = [add_months(cutoff, k) for k in range(3)]
    p = (hazard.filter(pl.col("month_start").is_in(window)).group_by("account_id")
         .agg((1 - (1 - pl.col("hazard")).product()).alias("p")))
    joined = (predictions.join(p, left_on="customer_key", right_on="account_id", how="left")
              .join(customers.select("account_id", "churn_date"), left_on="customer_key", right_on="account_id",
                    how="left"))
    return (joined.select(pl.when(pl.col("churn_date") < cutoff).then(1.0).otherwise(pl.col("p").fill_null(0.0)))
            .to_series().to_numpy())


def test_backtest_is_close_to_the_true_probability_and_beats_recency(churn_backtest, ml_home):
    predictions = churn_backtest["predictions"]
    labels = predictions["churned"].to_numpy()
    truth_auc = roc_auc_score(labels, ground_truth_probability(ml_home, predictions))
    model_auc = churn_backtest["metrics"]["roc_auc"]
    recency_auc = churn_backtest["baseline"]["roc_auc"]
    print(f"churn ROC-AUC {model_auc:.4f}, ground truth {truth_auc:.4f}, recency {recency_auc:.4f}, "
          f"customers {len(labels)}")
    assert model_auc >= truth_auc - 0.03
    assert model_auc >= recency_auc + 0.05
    assert churn_backtest["metrics"]["top_decile_lift"] > 2.5
    assert churn_backtest["metrics"]["pr_auc"] > churn_backtest["baseline"]["pr_auc"]


def test_backtest_is_time_based_and_calibrated(churn_backtest):
    evaluation = date.fromisoformat(churn_backtest["evaluation_cutoff"])
    last_training = date.fromisoformat(churn_backtest["training_cutoffs"][1])
    # labels of the last training cut-off were known at the evaluation cut-off
    assert add_months(last_training, ChurnConfig().label_delay_months) <= evaluation
    table = churn_backtest["calibration"]
    assert len(table) == 10
    gaps = [abs(row["mean_predicted"] - row["observed_rate"]) for row in table]
    assert max(gaps) < 0.12
    assert churn_backtest["metrics"]["brier"] < 0.12


def test_scores_every_active_customer_with_band_and_drivers(ml_marts):
    small = ml_marts.activity.filter(pl.col("customer_key") <= "ACC-001500")
    trained = churn.train(small, ChurnConfig(training_cutoffs=6), seed=3)
    scores = churn.score(trained.artifacts, small)
    again = churn.score(churn.train(small, ChurnConfig(training_cutoffs=6), seed=3).artifacts, small)
    assert scores["churn_probability"].to_list() == again["churn_probability"].to_list()  # same seed, same model
    assert scores["customer_key"].n_unique() == scores.height > 500
    assert scores["churn_probability"].min() >= 0 and scores["churn_probability"].max() <= 1
    assert set(scores["risk_band"].unique()) <= {"high", "medium", "low"}
    high = scores.filter(pl.col("risk_band") == "high")
    assert high.height > 0 and high["driver_1"].null_count() == 0
    assert high["driver_1_effect"].min() > 0
    labels = {d.split(" = ")[0] for d in high["driver_1"].to_list()}
    assert labels  # drivers are readable feature labels, e.g. "days since the last order, interaction or ticket"
    assert trained.metadata["training_window"]["rows"] > 1000
    assert len(CHURN_FEATURES) == len(trained.artifacts["reference"])


def test_a_home_where_nobody_churns_gets_one_clear_sentence():
    frame = activity_frame({f"C{i}": [2] * 30 for i in range(5)})
    with pytest.raises(ValueError, match=r"^the churn training window holds \d+ examples of one outcome only; "
                                         r"it needs churned and retained customers - load a longer history"):
        churn.train(frame)
    with pytest.raises(ValueError, match="has no complete month; load more data first"):
        churn.train(frame.head(0))
