"""Next best product: which products a customer is likeliest to buy in their next order.

Pairs (customer, product) at a cut-off T carry what was known at T: the customer's type, how often and
how recently they bought the product and its product line, how many orders they placed, and how popular
the product was over the last 12 months overall and among customers of the same type. The label is
whether the product is in the customer's first order after T. A gradient-boosted classifier scores every
pair; the three highest-scoring products are the recommendation (cross-sell when the customer never
bought them, up-sell/repeat when they did). The baseline recommends the 3 most popular products.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

CATEGORICAL = ["customer_type", "product_line"]
NUMERIC = ["bought_product_log", "bought_line_log", "days_since_product", "days_since_line", "orders_12m_log",
           "product_share_12m", "product_share_type_12m"]
FEATURES = CATEGORICAL + NUMERIC


@dataclass(frozen=True)
class NextProductConfig:
    k: int = 3
    #: a customer's "next purchase" is their first order within this many days after the cut-off
    next_order_days: int = 180
    training_cutoffs: int = 3
    cutoff_step_days: int = 91
    #: customers sampled per training cut-off (pairs grow with customers x products)
    max_training_customers: int = 1000


def product_catalogue(purchases: pl.DataFrame) -> pl.DataFrame:
    return purchases.group_by("product_id").agg(pl.col("product_line").first()).sort("product_id")


def next_orders(purchases: pl.DataFrame, cutoff: date, until: date) -> pl.DataFrame:
    """Per customer, the set of products in their first order dated in [cutoff, until)."""
    window = purchases.filter((pl.col("order_date") >= cutoff) & (pl.col("order_date") < until))
    first = window.group_by("customer_key").agg(pl.col("order_date").min().alias("first_date"))
    return (window.join(first, on="customer_key").filter(pl.col("order_date") == pl.col("first_date"))
            .group_by("customer_key").agg(pl.col("product_id").unique().alias("next_products")))


def pairs(purchases: pl.DataFrame, customers: pl.DataFrame, catalogue: pl.DataFrame, cutoff: date) -> pl.DataFrame:
    """Feature rows for every (customer in `customers`, product in `catalogue`) as of `cutoff`."""
    past = purchases.filter(pl.col("order_date") < cutoff)
    year = past.filter(pl.col("order_date") >= cutoff - timedelta(days=365))
    days = (pl.lit(cutoff) - pl.col("last_date")).dt.total_days().cast(pl.Float64)
    by_product = past.group_by("customer_key", "product_id").agg(
        pl.len().alias("bought_product"), pl.col("order_date").max().alias("last_date"))
    by_line = past.group_by("customer_key", "product_line").agg(
        pl.len().alias("bought_line"), pl.col("order_date").max().alias("last_date"))
    orders = year.group_by("customer_key").agg(pl.col("order_id").n_unique().alias("orders_12m"))
    total = max(year["order_id"].n_unique(), 1)
    share = year.group_by("product_id").agg((pl.col("order_id").n_unique() / total).alias("product_share_12m"))
    typed = year.join(customers.select("customer_key", "customer_type"), on="customer_key", how="inner")
    type_totals = typed.group_by("customer_type").agg(pl.col("order_id").n_unique().alias("_type_orders"))
    type_share = (typed.group_by("customer_type", "product_id").agg(pl.col("order_id").n_unique().alias("_n"))
                  .join(type_totals, on="customer_type")
                  .select("customer_type", "product_id", (pl.col("_n") / pl.col("_type_orders"))
                          .alias("product_share_type_12m")))
    never = 3650.0
    return (customers.select("customer_key", "customer_type").join(catalogue, how="cross")
            .join(by_product.with_columns(days.alias("days_since_product")).drop("last_date"),
                  on=["customer_key", "product_id"], how="left")
            .join(by_line.with_columns(days.alias("days_since_line")).drop("last_date"),
                  on=["customer_key", "product_line"], how="left")
            .join(orders, on="customer_key", how="left")
            .join(share, on="product_id", how="left")
            .join(type_share, on=["customer_type", "product_id"], how="left")
            .with_columns(
                pl.col("bought_product").fill_null(0).cast(pl.Float64).log1p().alias("bought_product_log"),
                pl.col("bought_line").fill_null(0).cast(pl.Float64).log1p().alias("bought_line_log"),
                pl.col("days_since_product").fill_null(never),
                pl.col("days_since_line").fill_null(never),
                pl.col("orders_12m").fill_null(0).cast(pl.Float64).log1p().alias("orders_12m_log"),
                pl.col("product_share_12m").fill_null(0.0),
                pl.col("product_share_type_12m").fill_null(0.0),
            ).select("customer_key", "product_id", *[f for f in FEATURES if f != "product_id"]))


def labelled_pairs(purchases: pl.DataFrame, customers: pl.DataFrame, catalogue: pl.DataFrame, cutoff: date,
                   until: date) -> pl.DataFrame:
    """Pairs of the customers who ordered in [cutoff, until), labelled by their next order's products."""
    nxt = next_orders(purchases, cutoff, until)
    who = customers.join(nxt.select("customer_key"), on="customer_key", how="inner")
    frame = pairs(purchases, who, catalogue, cutoff)
    exploded = nxt.explode("next_products").rename({"next_products": "product_id"}).with_columns(
        pl.lit(1, dtype=pl.Int8).alias("bought_next"))
    return (frame.join(exploded, on=["customer_key", "product_id"], how="left")
            .with_columns(pl.col("bought_next").fill_null(0)))


def build_pipeline(seed: int) -> Pipeline:
    # one-hot rather than the booster's native categories: a native-categorical model stores a
    # functools.partial, which the registry's no-pickle loader (skops) rightly refuses to trust
    columns = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
        ("numeric", "passthrough", NUMERIC),
    ])
    estimator = HistGradientBoostingClassifier(
        max_iter=120, learning_rate=0.08, max_depth=4, min_samples_leaf=100, early_stopping=False,
        random_state=seed)
    return Pipeline([("columns", columns), ("model", estimator)])


def fit(examples: pl.DataFrame, seed: int) -> Pipeline:
    labels = examples["bought_next"].to_numpy()
    if labels.sum() == 0:
        raise ValueError("next best product: no customer ordered again in the training window; load more orders.")
    return build_pipeline(seed).fit(examples.select(FEATURES).to_pandas(), labels)


def top_k(pipeline: Pipeline, frame: pl.DataFrame, k: int) -> pl.DataFrame:
    """customer_key, rank, product_id, score for each customer's k best products."""
    score = pipeline.predict_proba(frame.select(FEATURES).to_pandas())[:, 1]
    return (frame.select("customer_key", "product_id", "product_line", "bought_product_log")
            .with_columns(pl.Series("score", score))
            .sort(["customer_key", "score", "product_id"], descending=[False, True, False])
            .with_columns(pl.int_range(1, pl.len() + 1).over("customer_key").alias("rank"))
            .filter(pl.col("rank") <= k))


def most_popular(purchases: pl.DataFrame, cutoff: date, k: int) -> list[str]:
    """The baseline: the k products in the most orders over the 12 months before the cut-off."""
    year = purchases.filter((pl.col("order_date") < cutoff) & (pl.col("order_date") >= cutoff - timedelta(days=365)))
    return (year.group_by("product_id").agg(pl.col("order_id").n_unique().alias("n"))
            .sort(["n", "product_id"], descending=[True, False]).head(k)["product_id"].to_list())


def sample_customers(customers: pl.DataFrame, limit: int, seed: int) -> pl.DataFrame:
    if customers.height <= limit:
        return customers
    rng = np.random.default_rng(seed)
    return customers[np.sort(rng.choice(customers.height, limit, replace=False))]
