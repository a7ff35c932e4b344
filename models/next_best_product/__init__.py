"""Next best product: backtest (hit rate at 3 on each customer's next purchase), training and scoring.

Backtest: evaluation cut-off T = as-of date - `next_order_days`. Training pairs come from earlier cut-offs
whose next orders fell before T (what was known at T). Every customer who ordered after T counts: a hit
when one of their top-3 recommended products is in their first order after T. The most-popular baseline
recommends the same 3 products (most orders in the 12 months before T) to everyone.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from models.common import TrainedModel
from models.grading import grade_next_best_product
from models.metrics import hit_rate_at_k
from models.next_best_product import model as nm
from models.next_best_product.model import NextProductConfig

NAME = "next_best_product"


def customers_of(activity: pl.DataFrame) -> pl.DataFrame:
    return activity.group_by("customer_key").agg(pl.col("customer_type").last()).sort("customer_key")


def _training_examples(purchases: pl.DataFrame, customers: pl.DataFrame, catalogue: pl.DataFrame, known_until: date,
                       config: NextProductConfig, seed: int) -> pl.DataFrame:
    parts = []
    for step in range(1, config.training_cutoffs + 1):
        cutoff = known_until - timedelta(days=config.next_order_days + (step - 1) * config.cutoff_step_days)
        until = min(cutoff + timedelta(days=config.next_order_days), known_until)
        sample = nm.sample_customers(customers, config.max_training_customers, seed + step)
        parts.append(nm.labelled_pairs(purchases, sample, catalogue, cutoff, until))
    return pl.concat(parts)


def backtest(purchases: pl.DataFrame, activity: pl.DataFrame, config: NextProductConfig | None = None,
             seed: int = 42) -> dict:
    config = config or NextProductConfig()
    as_of = activity["as_of_date"].max()
    cutoff = as_of - timedelta(days=config.next_order_days - 1)
    customers = customers_of(activity)
    catalogue = nm.product_catalogue(purchases.filter(pl.col("order_date") < cutoff))
    train = _training_examples(purchases, customers, catalogue, cutoff, config, seed)
    pipeline = nm.fit(train, seed)
    test = nm.labelled_pairs(purchases, customers, catalogue, cutoff, as_of + timedelta(days=1))
    recommended = nm.top_k(pipeline, test, config.k)
    rec = dict(recommended.group_by("customer_key").agg(pl.col("product_id")).iter_rows())
    truth = {c: set(p) for c, p in nm.next_orders(purchases, cutoff, as_of + timedelta(days=1)).iter_rows()}
    popular = nm.most_popular(purchases, cutoff, config.k)
    model_hit = hit_rate_at_k(rec, truth, config.k)
    baseline_hit = hit_rate_at_k({c: popular for c in truth}, truth, config.k)
    return {
        "evaluation_cutoff": cutoff.isoformat(),
        "training_pairs": train.height,
        "evaluation_customers": len(truth),
        "metrics": {"hit_rate_at_3": model_hit, "customers": len(truth)},
        "baseline": {"hit_rate_at_3": baseline_hit, "products": popular},
    }


def train(purchases: pl.DataFrame, activity: pl.DataFrame, config: NextProductConfig | None = None,
          seed: int = 42) -> TrainedModel:
    config = config or NextProductConfig()
    result = backtest(purchases, activity, config, seed)
    as_of = activity["as_of_date"].max()
    known_until = as_of + timedelta(days=1)
    customers = customers_of(activity)
    catalogue = nm.product_catalogue(purchases)
    examples = _training_examples(purchases, customers, catalogue, known_until, config, seed)
    pipeline = nm.fit(examples, seed)
    grade = grade_next_best_product(result["metrics"], result["baseline"])
    metadata = {
        "seed": seed,
        "target": "P(product in the customer's next order)",
        "training_window": {"last_cutoff": (known_until - timedelta(days=config.next_order_days)).isoformat(),
                            "pairs": examples.height},
        "config": config.__dict__,
        "backtest": result,
        "metrics": result["metrics"],
        "baseline_metrics": result["baseline"],
        "grade": grade.as_dict(),
    }
    return TrainedModel(NAME, {"pipeline": pipeline}, metadata)


def score(artifacts: dict, purchases: pl.DataFrame, activity: pl.DataFrame,
          config: NextProductConfig | None = None) -> pl.DataFrame:
    """Top-k products for every customer who ever ordered, as of the day after the as-of date."""
    config = config or NextProductConfig()
    cutoff = activity["as_of_date"].max() + timedelta(days=1)
    buyers = purchases.select("customer_key").unique()
    customers = customers_of(activity).join(buyers, on="customer_key", how="inner")
    frame = nm.pairs(purchases, customers, nm.product_catalogue(purchases), cutoff)
    return (nm.top_k(artifacts["pipeline"], frame, config.k)
            .with_columns((pl.col("bought_product_log") > 0).alias("already_bought"))
            .select("customer_key", "rank", "product_id", "product_line", "score", "already_bought"))
