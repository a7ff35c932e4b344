"""Customer lifetime value as a registered model: backtest, train and score from the purchases mart.

Input: `marts.fct_customer_product_purchases` (rows per customer, order and product), summed to orders;
orders of one customer on one day are one purchase occasion (models/clv/summary.py), so the BG/NBD model
counts days with a purchase and the Gamma-Gamma model their value. Times are in weeks.

Backtest (calibration / holdout): fit both models on the orders up to cut-off C = as-of date - 365 days,
then for every customer who had bought by C predict the purchase occasions and revenue of (C, as-of date]
and compare with what happened. The baseline carries each customer's history forward unchanged: their
repeat-purchase rate so far (repeat occasions / weeks since their first purchase) and their average
spend per occasion. A model that cannot beat this has learnt nothing about drop-out or regression to the
mean, so it is graded C (models/grading.py).

Training refits on all orders up to the as-of date; the artifact is the model's `to_dict()` (plain
numbers and strings, no pickle). Scoring gives every customer with a purchase their probability of being
alive, expected purchases and average spend over the next 12 months and the CLV of those months, each
month discounted by 1%.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from models.clv.lifetime_value import CustomerLifetimeValueModel
from models.clv.summary import customer_summary
from models.common import TrainedModel
from models.grading import grade_clv

NAME = "clv"
#: the horizon and discount of `scores.clv_scores` (its column names say 12m)
HORIZON_MONTHS = 12
MONTHLY_DISCOUNT_RATE = 0.01


@dataclass(frozen=True)
class ClvConfig:
    #: the backtest's holdout: the last this-many days before the as-of date
    holdout_days: int = 365
    #: the calibration period before the holdout must be at least this long
    min_calibration_days: int = 180
    #: the models are not worth fitting on fewer customers with a repeat purchase
    min_repeat_customers: int = 30
    time_unit_days: float = 7.0
    penalizer: float = 0.0


def as_of_date(activity: pl.DataFrame) -> date:
    """The data's "today" (int_as_of_date), carried by the monthly activity mart."""
    if activity.is_empty():
        raise ValueError("marts.fct_customer_monthly_activity is empty; load data and run the pipeline first.")
    return activity["as_of_date"].max()


def orders_from_purchases(purchases: pl.DataFrame) -> pl.DataFrame:
    """One row per customer and completed order with positive revenue (a free order is no spend)."""
    return (purchases.group_by("customer_key", "order_id", "order_date")
            .agg(pl.col("revenue").sum().alias("revenue"))
            .filter(pl.col("revenue") > 0)
            .sort("customer_key", "order_date", "order_id"))


def summarise(orders: pl.DataFrame, observation_end: date, config: ClvConfig) -> pl.DataFrame:
    """The per-customer summary (frequency, recency, T in weeks, monetary_value) as of `observation_end`."""
    return customer_summary(orders, observation_end=observation_end, customer_column="customer_key",
                            date_column="order_date", amount_column="revenue",
                            time_unit_days=config.time_unit_days).sort("customer_key")


def fit(summary: pl.DataFrame, config: ClvConfig, what: str) -> CustomerLifetimeValueModel:
    """Fit BG/NBD + Gamma-Gamma; too little data or a fit that did not converge is a ValueError."""
    repeaters = int((summary["frequency"] > 0).sum())
    if repeaters < config.min_repeat_customers:
        raise ValueError(f"clv: only {repeaters} customers bought more than once in the {what}; the models need "
                         f"at least {config.min_repeat_customers} - load a longer order history.")
    model = CustomerLifetimeValueModel(time_unit_days=config.time_unit_days, penalizer=config.penalizer)
    model.fit(summary)
    for part, report in (("BG/NBD", model.purchases.report_), ("Gamma-Gamma", model.spend.report_)):
        if report is None or not report.converged:
            message = report.message if report else "no report"
            raise ValueError(f"clv: the {part} fit on the {what} did not converge ({message}); "
                             f"retrain with a penalizer (ClvConfig.penalizer=0.001).")
    return model


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def holdout_metrics(predicted_purchases: np.ndarray, predicted_spend: np.ndarray, actual_purchases: np.ndarray,
                    actual_revenue: np.ndarray) -> dict[str, float]:
    """Per-customer errors and totals of holdout purchases and revenue; spend on customers who bought."""
    predicted_revenue = predicted_purchases * predicted_spend
    bought = actual_purchases > 0
    actual_spend = np.divide(actual_revenue, actual_purchases, out=np.zeros_like(actual_revenue), where=bought)
    actual_total = float(actual_purchases.sum())
    return {
        "purchases_mae": float(np.abs(predicted_purchases - actual_purchases).mean()),
        "purchases_rmse": float(np.sqrt(((predicted_purchases - actual_purchases) ** 2).mean())),
        "purchases_correlation": _correlation(predicted_purchases, actual_purchases),
        "predicted_purchases_total": float(predicted_purchases.sum()),
        "actual_purchases_total": actual_total,
        "purchases_total_ratio": float(predicted_purchases.sum() / actual_total) if actual_total else 0.0,
        "revenue_mae": float(np.abs(predicted_revenue - actual_revenue).mean()),
        "revenue_correlation": _correlation(predicted_revenue, actual_revenue),
        "predicted_revenue_total": float(predicted_revenue.sum()),
        "actual_revenue_total": float(actual_revenue.sum()),
        "spend_mae": float(np.abs(predicted_spend[bought] - actual_spend[bought]).mean()) if bought.any() else 0.0,
        "customers": int(len(actual_purchases)),
        "customers_buying_in_holdout": int(bought.sum()),
    }


def backtest(purchases: pl.DataFrame, activity: pl.DataFrame, config: ClvConfig | None = None) -> dict:
    """Fit on the orders up to the cut-off, predict the holdout; the same figures for the baseline."""
    config = config or ClvConfig()
    orders = orders_from_purchases(purchases)
    if orders.is_empty():
        raise ValueError("clv: marts.fct_customer_product_purchases has no completed order with revenue; "
                         "load orders and run the pipeline first.")
    as_of = as_of_date(activity)
    cutoff = as_of - timedelta(days=config.holdout_days)
    first = orders["order_date"].min()
    if (cutoff - first).days < config.min_calibration_days:
        raise ValueError(f"clv: orders start on {first}, so the backtest (holdout of {config.holdout_days} days "
                         f"before {as_of}) leaves less than {config.min_calibration_days} days to fit on - "
                         "load a longer order history.")
    calibration = summarise(orders, cutoff, config)
    model = fit(calibration, config, f"calibration period up to {cutoff}")
    holdout = (orders.filter((pl.col("order_date") > cutoff) & (pl.col("order_date") <= as_of))
               .group_by("customer_key")
               .agg(pl.col("order_date").n_unique().alias("holdout_purchases"),
                    pl.col("revenue").sum().alias("holdout_revenue")))
    average_spend = (orders.filter(pl.col("order_date") <= cutoff)
                     .group_by("customer_key", "order_date").agg(pl.col("revenue").sum())
                     .group_by("customer_key").agg(pl.col("revenue").mean().alias("historical_spend")))
    frame = (calibration.join(holdout, on="customer_key", how="left")
             .join(average_spend, on="customer_key", how="left")
             .with_columns(pl.col("holdout_purchases").fill_null(0).cast(pl.Float64),
                           pl.col("holdout_revenue").fill_null(0.0)))
    weeks = (as_of - cutoff).days / config.time_unit_days
    scored = model.score(frame, horizon_months=HORIZON_MONTHS, monthly_discount_rate=MONTHLY_DISCOUNT_RATE)
    predicted = model.purchases.predict(frame, weeks)
    actual = frame["holdout_purchases"].to_numpy()
    revenue = frame["holdout_revenue"].to_numpy()
    frequency, age = frame["frequency"].to_numpy().astype(float), frame["T"].to_numpy()
    # a customer first seen on the cut-off day has no history to carry forward: rate 0
    rate = np.divide(frequency, age, out=np.zeros_like(age), where=age > 0)
    return {
        "calibration_window": {"first_order": first.isoformat(), "cutoff": cutoff.isoformat()},
        "holdout_window": {"after": cutoff.isoformat(), "until": as_of.isoformat(), "weeks": round(weeks, 2)},
        "calibration_params": model.params_,
        "metrics": holdout_metrics(predicted, scored["expected_average_spend"].to_numpy(), actual, revenue),
        "baseline": holdout_metrics(rate * weeks, frame["historical_spend"].to_numpy(), actual, revenue),
    }


def train(purchases: pl.DataFrame, activity: pl.DataFrame, config: ClvConfig | None = None,
          seed: int = 42) -> TrainedModel:
    """Backtest, then refit on every order up to the as-of date. Maximum likelihood needs no seed; it is
    recorded like every model's."""
    config = config or ClvConfig()
    result = backtest(purchases, activity, config)
    orders = orders_from_purchases(purchases)
    as_of = as_of_date(activity)
    summary = summarise(orders, as_of, config)
    model = fit(summary, config, f"order history up to {as_of}")
    grade = grade_clv(result["metrics"], result["baseline"])
    spend_check = summary.filter(pl.col("frequency") > 0)
    metadata = {
        "seed": seed,
        "target": (f"discounted revenue of the next {HORIZON_MONTHS} months (BG/NBD purchases x Gamma-Gamma "
                   f"spend, {MONTHLY_DISCOUNT_RATE:.0%} monthly discount)"),
        "training_window": {"first_order": orders["order_date"].min().isoformat(), "observation_end": as_of.isoformat(),
                            "customers": summary.height, "repeat_customers": spend_check.height,
                            "orders": orders.height},
        "config": asdict(config),
        "params": model.params_,
        "fit": {"bgnbd": model.purchases.report_.to_dict(), "gamma_gamma": model.spend.report_.to_dict()},
        # Gamma-Gamma assumes spend does not depend on frequency; a strong correlation here weakens the CLV
        "frequency_spend_correlation": _correlation(spend_check["frequency"].to_numpy().astype(float),
                                                    spend_check["monetary_value"].to_numpy()),
        "backtest": result,
        "metrics": result["metrics"],
        "baseline_metrics": result["baseline"],
        "grade": grade.as_dict(),
    }
    return TrainedModel(NAME, {"model": model.to_dict()}, metadata)


def score(artifacts: dict, purchases: pl.DataFrame, activity: pl.DataFrame) -> pl.DataFrame:
    """One row per customer with a purchase up to the as-of date: the next 12 months' outlook and CLV."""
    model = CustomerLifetimeValueModel.from_dict(artifacts["model"])
    config = ClvConfig(time_unit_days=model.time_unit_days)
    summary = summarise(orders_from_purchases(purchases), as_of_date(activity), config)
    scored = model.score(summary, horizon_months=HORIZON_MONTHS, monthly_discount_rate=MONTHLY_DISCOUNT_RATE)
    return summary.select("customer_key").with_columns(
        scored["expected_purchases"].alias("expected_purchases_12m"),
        scored["probability_alive"],
        scored["expected_average_spend"],
        scored["clv"].alias("predicted_clv"),
    )
