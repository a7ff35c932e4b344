"""Next best product: hit rate at 3 on each customer's next purchase against the most popular products."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

import models.next_best_product as nbp
from models.next_best_product.model import next_orders


def test_next_order_is_the_first_order_after_the_cutoff():
    purchases = pl.DataFrame({
        "customer_key": ["a", "a", "a", "b"],
        "order_id": ["o1", "o2", "o2", "o3"],
        "order_date": [date(2026, 1, 5), date(2026, 2, 1), date(2026, 2, 1), date(2026, 3, 1)],
        "product_id": ["p1", "p2", "p3", "p1"],
    })
    nxt = dict(next_orders(purchases, date(2026, 1, 10), date(2026, 4, 1)).iter_rows())
    assert sorted(nxt["a"]) == ["p2", "p3"] and nxt["b"] == ["p1"]


@pytest.fixture(scope="module")
def nbp_backtest(ml_marts):
    return nbp.backtest(ml_marts.purchases, ml_marts.activity)


def test_hit_rate_at_three_beats_the_most_popular_products(nbp_backtest):
    model, popular = nbp_backtest["metrics"]["hit_rate_at_3"], nbp_backtest["baseline"]["hit_rate_at_3"]
    print(f"next best product hit rate at 3 {model:.4f} vs most popular {popular:.4f} "
          f"({nbp_backtest['evaluation_customers']} customers)")
    assert model > popular
    assert nbp_backtest["evaluation_customers"] > 1000


def test_scores_three_products_per_buyer(ml_marts):
    trained = nbp.train(ml_marts.purchases, ml_marts.activity)
    scores = nbp.score(trained.artifacts, ml_marts.purchases, ml_marts.activity)
    per_customer = scores.group_by("customer_key").agg(pl.len(), pl.col("product_id").n_unique().alias("distinct"))
    assert (per_customer["len"] == 3).all() and (per_customer["distinct"] == 3).all()
    assert per_customer.height == ml_marts.purchases["customer_key"].n_unique()
    ordered = scores.pivot(on="rank", index="customer_key", values="score")
    assert (ordered["1"] >= ordered["2"]).all() and (ordered["2"] >= ordered["3"]).all()
