"""Backtest metrics and grading rules on hand-computed examples."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from models.grading import grade_churn, grade_forecast, grade_next_best_product, grade_win_probability
from models.metrics import (
    calibration_table,
    classification_metrics,
    forecast_metrics,
    hit_rate_at_k,
    seasonal_naive_scale,
    smape,
    top_decile_lift,
)


def test_classification_metrics_on_a_perfect_ranking():
    y = [0] * 90 + [1] * 10
    p = [0.1] * 90 + [0.9] * 10
    m = classification_metrics(y, p)
    assert m["roc_auc"] == 1.0
    assert m["pr_auc"] == 1.0
    assert m["top_decile_lift"] == pytest.approx(10.0)  # all 10 positives in the top 10%, base rate 10%
    assert m["brier"] == pytest.approx((90 * 0.01 + 10 * 0.01) / 100)
    assert "brier" not in classification_metrics(y, np.arange(100.0), probabilities=False)


def test_classification_metrics_refuses_one_outcome():
    with pytest.raises(ValueError, match="both outcomes"):
        classification_metrics([0, 0, 0], [0.1, 0.2, 0.3])


def test_top_decile_lift_and_calibration_bins():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    assert top_decile_lift(y, s) == pytest.approx(1.0 / 0.2)  # top 1 of 10 is positive; base rate 0.2
    table = calibration_table(y, s, bins=2)
    assert [row["rows"] for row in table] == [5, 5]
    assert table[0]["mean_predicted"] == pytest.approx(0.2) and table[0]["observed_rate"] == pytest.approx(0.2)
    assert table[1]["mean_predicted"] == pytest.approx(0.7) and table[1]["observed_rate"] == pytest.approx(0.2)


def test_smape_and_seasonal_naive_scale():
    assert smape([100, 0], [110, 0]) == pytest.approx(100 * (2 * 10 / 210) / 2)
    history = np.r_[np.arange(12.0), np.arange(12.0) + 5]  # every month 5 above the same month last year
    assert seasonal_naive_scale(history) == pytest.approx(5.0)
    assert seasonal_naive_scale([3.0, 3.0, 3.0]) == 1.0  # no variation: a unit scale, never a division by 0


def test_forecast_metrics_mase_per_series_and_coverage():
    frame = pl.DataFrame({
        "series": ["a", "a", "b", "b"],
        "actual": [10.0, 20.0, 100.0, 100.0],
        "scale": [5.0, 5.0, 50.0, 50.0],
        "forecast": [15.0, 20.0, 100.0, 200.0],
        "lower_80": [0.0, 0.0, 90.0, 90.0],
        "upper_80": [30.0, 30.0, 110.0, 110.0],
    })
    m = forecast_metrics(frame)
    assert m["mase"] == pytest.approx(((1.0 + 0.0) / 2 + (0.0 + 2.0) / 2) / 2)
    assert m["coverage_80"] == 1.0
    assert m["series"] == 2 and m["points"] == 4


def test_hit_rate_at_three():
    recommended = {"c1": ["p1", "p2", "p3", "p4"], "c2": ["p1", "p2", "p3"], "c3": ["p9"]}
    purchased = {"c1": {"p4"}, "c2": {"p3", "p7"}, "c3": set()}
    # c3 bought nothing and does not count; c1's hit is 4th, so only c2 hits
    assert hit_rate_at_k(recommended, purchased, k=3) == pytest.approx(0.5)


def test_grades_follow_the_acceptance_bars():
    assert grade_churn({"roc_auc": 0.86}, {"roc_auc": 0.80}).grade == "A"
    assert grade_churn({"roc_auc": 0.82}, {"roc_auc": 0.80}).grade == "B"
    assert grade_churn({"roc_auc": 0.79}, {"roc_auc": 0.80}).grade == "C"
    assert grade_forecast({"mase": 0.8, "coverage_80": 0.8}, {"mase": 1.0}).grade == "A"
    assert grade_forecast({"mase": 0.8, "coverage_80": 0.7}, {"mase": 1.0}).grade == "B"
    assert grade_forecast({"mase": 1.1, "coverage_80": 0.8}, {"mase": 1.0}).grade == "C"
    assert grade_win_probability({"brier": 0.19}, {"brier": 0.20}).grade == "A"
    assert grade_win_probability({"brier": 0.199}, {"brier": 0.20}).grade == "B"
    assert grade_next_best_product({"hit_rate_at_3": 0.25}, {"hit_rate_at_3": 0.2}).grade == "A"
    graded = grade_next_best_product({"hit_rate_at_3": 0.2}, {"hit_rate_at_3": 0.2})
    assert graded.grade == "C" and "0.200" in graded.reason
