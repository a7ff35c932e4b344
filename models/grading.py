"""Quality grades shown to users: A, B or C from a model's backtest against its baseline.

A grade is only worth showing if a user can see why it was given, so every grade comes with the rule it
was measured against and the figures that decided it. The A rules are the product's acceptance bars;
B means "better than the simple baseline, but below the bar"; C means "no better than the baseline - use
the baseline instead".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Grade:
    grade: str  # "A" | "B" | "C"
    rule: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def grade_churn(metrics: dict[str, float], baseline: dict[str, float]) -> Grade:
    """ROC-AUC against the recency-rule baseline: A at +0.05 or more, B when above it at all."""
    gain = metrics["roc_auc"] - baseline["roc_auc"]
    rule = "A: ROC-AUC >= recency baseline + 0.05; B: above the baseline; C: otherwise"
    reason = f"ROC-AUC {metrics['roc_auc']:.3f} vs recency baseline {baseline['roc_auc']:.3f} ({gain:+.3f})"
    return Grade("A" if gain >= 0.05 else "B" if gain > 0 else "C", rule, reason)


def grade_forecast(metrics: dict[str, float], baseline: dict[str, float]) -> Grade:
    """MASE against seasonal-naive plus calibrated 80% intervals."""
    ratio = metrics["mase"] / baseline["mase"] if baseline["mase"] > 0 else float("inf")
    coverage = metrics.get("coverage_80", 0.0)
    rule = ("A: MASE <= 0.9 x seasonal-naive and 80% intervals cover 75-85%; "
            "B: MASE below seasonal-naive and coverage 65-92%; C: otherwise")
    reason = (f"MASE {metrics['mase']:.3f} vs seasonal-naive {baseline['mase']:.3f} "
              f"(ratio {ratio:.2f}); 80% interval coverage {coverage:.1%}")
    if ratio <= 0.9 and 0.75 <= coverage <= 0.85:
        return Grade("A", rule, reason)
    if ratio < 1.0 and 0.65 <= coverage <= 0.92:
        return Grade("B", rule, reason)
    return Grade("C", rule, reason)


def grade_win_probability(metrics: dict[str, float], baseline: dict[str, float]) -> Grade:
    """Brier score against the stage's historical win rate: A at 5% lower or better, B when lower at all."""
    ratio = metrics["brier"] / baseline["brier"] if baseline["brier"] > 0 else float("inf")
    rule = "A: Brier <= 0.95 x stage-rate baseline; B: below the baseline; C: otherwise"
    reason = f"Brier {metrics['brier']:.4f} vs stage-rate baseline {baseline['brier']:.4f} (ratio {ratio:.2f})"
    return Grade("A" if ratio <= 0.95 else "B" if ratio < 1.0 else "C", rule, reason)


def grade_next_best_product(metrics: dict[str, float], baseline: dict[str, float]) -> Grade:
    """Hit rate at 3 against the most-popular baseline: A at 10% relative gain or more, B when above it."""
    hit, base = metrics["hit_rate_at_3"], baseline["hit_rate_at_3"]
    rule = "A: hit rate at 3 >= 1.1 x most-popular baseline; B: above the baseline; C: otherwise"
    reason = f"hit rate at 3 {hit:.3f} vs most-popular baseline {base:.3f}"
    return Grade("A" if hit >= 1.1 * base else "B" if hit > base else "C", rule, reason)


def grade_clv(metrics: dict[str, float], baseline: dict[str, float]) -> Grade:
    """Holdout purchases per customer against carrying each customer's past rate forward, plus the total.

    A also asks the total predicted purchases to be within 15% of what happened, since CLV is summed over
    customers (a segment's value) as often as it is read one customer at a time.
    """
    ratio = metrics["purchases_mae"] / baseline["purchases_mae"] if baseline["purchases_mae"] > 0 else float("inf")
    total = metrics["purchases_total_ratio"]
    rule = ("A: holdout purchases MAE <= 0.9 x historical-rate baseline and total predicted purchases within "
            "15% of actual; B: MAE below the baseline; C: otherwise")
    reason = (f"holdout purchases MAE {metrics['purchases_mae']:.3f} vs historical-rate baseline "
              f"{baseline['purchases_mae']:.3f} (ratio {ratio:.2f}); predicted / actual purchases {total:.2f}")
    if ratio <= 0.9 and abs(total - 1.0) <= 0.15:
        return Grade("A", rule, reason)
    return Grade("B" if ratio < 1.0 else "C", rule, reason)
