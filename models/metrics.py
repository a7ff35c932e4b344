"""Backtest metrics shared by every model, written once so each model and its baseline are scored alike.

Classification (churn, win probability): ROC-AUC, PR-AUC, top-decile lift, Brier score and a calibration
table. Forecasts: MASE (scaled by the in-sample seasonal-naive error, Hyndman & Koehler 2006), sMAPE and
interval coverage. Recommendations: hit rate at k.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def classification_metrics(y_true: Sequence[int], y_prob: Sequence[float],
                           probabilities: bool = True) -> dict[str, float]:
    """ROC-AUC, PR-AUC, top-decile lift, Brier score and the base rate of one set of predictions.

    A ranking score that is not a probability (e.g. months of recency) gets no Brier score.
    """
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(y_prob, dtype=float)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError(f"a backtest needs both outcomes; got {len(y)} rows with {int(y.sum())} positives")
    result = {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "top_decile_lift": top_decile_lift(y, p),
        "base_rate": float(y.mean()),
        "rows": int(len(y)),
    }
    if probabilities:
        result["brier"] = float(brier_score_loss(y, p))
    return result


def top_decile_lift(y_true: Sequence[int], y_score: Sequence[float]) -> float:
    """Positive rate among the 10% highest scores divided by the overall positive rate."""
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(y_score, dtype=float)
    n_top = max(1, int(np.ceil(len(y) * 0.1)))
    # stable sort on the negated score keeps ties in input order, so the figure is reproducible
    top = np.argsort(-s, kind="stable")[:n_top]
    return float(y[top].mean() / y.mean())


def calibration_table(y_true: Sequence[int], y_prob: Sequence[float], bins: int = 10) -> list[dict[str, float]]:
    """Predicted vs observed rate in equal-count bins of the prediction (rows of a reliability diagram)."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    order = np.argsort(p, kind="stable")
    rows = []
    for index, chunk in enumerate(np.array_split(order, min(bins, len(p)))):
        if len(chunk) == 0:
            continue
        rows.append({
            "bin": index + 1,
            "rows": int(len(chunk)),
            "mean_predicted": round(float(p[chunk].mean()), 4),
            "observed_rate": round(float(y[chunk].mean()), 4),
        })
    return rows


def smape(actual: Sequence[float], forecast: Sequence[float]) -> float:
    """Symmetric MAPE in percent; a pair of zeros counts as a perfect forecast."""
    a = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    denominator = np.abs(a) + np.abs(f)
    ratio = np.divide(2 * np.abs(f - a), denominator, out=np.zeros_like(a), where=denominator > 0)
    return float(100 * ratio.mean())


def seasonal_naive_scale(history: Sequence[float], season: int = 12) -> float:
    """Mean absolute error of the in-sample seasonal-naive forecast: the MASE denominator of one series.

    Falls back to the one-step naive error when the history is shorter than two seasons.
    """
    h = np.asarray(history, dtype=float)
    lag = season if len(h) > season + 1 else 1
    diffs = np.abs(h[lag:] - h[:-lag])
    scale = float(diffs.mean()) if len(diffs) else 0.0
    return scale if scale > 0 else 1.0


def forecast_metrics(frame: pl.DataFrame, forecast_column: str = "forecast") -> dict[str, float]:
    """MASE, sMAPE and interval coverage over a backtest frame.

    `frame` has one row per (series, origin, target month) with `series`, `actual`, `scale` (the series'
    seasonal-naive scale at the origin), the forecast column and optionally `lower_80`/`upper_80`/
    `lower_95`/`upper_95`. MASE is averaged per series first so a large series does not dominate.
    """
    scaled = frame.with_columns(
        ((pl.col(forecast_column) - pl.col("actual")).abs() / pl.col("scale")).alias("_scaled_error"))
    per_series = scaled.group_by("series").agg(pl.col("_scaled_error").mean())
    result = {
        "mase": float(per_series["_scaled_error"].mean()),
        "smape": smape(frame["actual"].to_numpy(), frame[forecast_column].to_numpy()),
        "points": int(frame.height),
        "series": int(per_series.height),
    }
    for level in (80, 95):
        low, high = f"lower_{level}", f"upper_{level}"
        if low in frame.columns and high in frame.columns:
            inside = (frame["actual"] >= frame[low]) & (frame["actual"] <= frame[high])
            result[f"coverage_{level}"] = float(inside.mean())
    return result


def hit_rate_at_k(recommended: dict[str, Sequence[str]], purchased: dict[str, set[str]], k: int = 3) -> float:
    """Share of customers whose next purchase contains at least one of their top-k recommendations."""
    customers = [c for c in purchased if purchased[c]]
    if not customers:
        raise ValueError("no customer made a purchase in the evaluation window")
    hits = sum(1 for c in customers if set(list(recommended.get(c, ()))[:k]) & purchased[c])
    return hits / len(customers)
