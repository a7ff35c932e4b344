"""Products (list price, unit cost, discount floor) and price lists with one price change mid-history."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.generate.common import DAY, Clock, dates, ids, ts
from pipelines.generate.names import PRODUCT_LINE_CODES, PRODUCTS

PRICE_LISTS = {"standard": 1.0, "partner": 0.85, "enterprise": 0.9}
PRICE_INCREASE = 1.05  # every price rises by 5% on the price-change date


@dataclass
class Catalog:
    products: pl.DataFrame
    prices: pl.DataFrame
    line: np.ndarray            # product line name per product
    list_price: np.ndarray
    max_discount: np.ndarray
    sellable: np.ndarray        # indices of active products
    price_change_at: int        # seconds; before it prices are list / PRICE_INCREASE

    def unit_price(self, product: np.ndarray, price_list: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Price of each product in its price list (index into PRICE_LISTS) at time `at`."""
        factors = np.array(list(PRICE_LISTS.values()))
        price = self.list_price[product] * factors[price_list]
        price = np.where(at < self.price_change_at, price / PRICE_INCREASE, price)
        return np.round(price, 2)


def build_catalog(rng: np.random.Generator, clock: Clock) -> Catalog:
    rows = []
    for line, (names, (lo, hi), cost_share, recurring) in PRODUCTS.items():
        for k, name in enumerate(names):
            rows.append((line, name, f"{PRODUCT_LINE_CODES[line]}-{1001 + k}", lo, hi, cost_share, recurring))
    n = len(rows)
    line = np.array([r[0] for r in rows])
    lo = np.array([r[3] for r in rows], dtype=float)
    hi = np.array([r[4] for r in rows], dtype=float)
    list_price = np.round(np.exp(rng.uniform(np.log(lo), np.log(hi))), 0) - 0.01
    unit_cost = np.round(list_price * np.array([r[5] for r in rows]) * rng.uniform(0.85, 1.15, n), 2)
    max_discount = rng.choice([10.0, 15.0, 20.0, 25.0, 30.0], n)
    active = np.ones(n, dtype=bool)
    active[rng.choice(n, 2, replace=False)] = False  # two discontinued products, never sold in the demo
    created = clock.start - 2 * 365 * DAY
    products = pl.DataFrame({
        "product_id": ids("PRD-", n, width=3),
        "sku": [r[2] for r in rows],
        "product_name": [r[1] for r in rows],
        "product_line": line,
        "list_price": list_price,
        "unit_cost": unit_cost,
        "max_discount_pct": max_discount,
        "is_recurring": [r[6] for r in rows],
        "is_active": active,
        "updated_at": ts("updated_at", np.full(n, created)),
    })

    change = clock.start + (clock.end - clock.start) // 2
    change = int(np.datetime64(change, "s").astype("datetime64[M]").astype("datetime64[s]").astype(np.int64))
    prod_idx = np.repeat(np.arange(n), len(PRICE_LISTS) * 2)
    list_idx = np.tile(np.repeat(np.arange(len(PRICE_LISTS)), 2), n)
    window = np.tile([0, 1], n * len(PRICE_LISTS))
    factors = np.array(list(PRICE_LISTS.values()))
    price = list_price[prod_idx] * factors[list_idx] / np.where(window == 0, PRICE_INCREASE, 1.0)
    valid_from = np.where(window == 0, created, change)
    prices = pl.DataFrame({
        "price_id": ids("PRC-", len(prod_idx), width=4),
        "product_id": products["product_id"].gather(prod_idx),
        "price_list": np.array(list(PRICE_LISTS))[list_idx],
        "unit_price": np.round(price, 2),
        "valid_from": dates("valid_from", valid_from),
        "valid_to": dates("valid_to", np.full(len(prod_idx), change), valid=window == 0),
        "updated_at": ts("updated_at", valid_from),
    })
    return Catalog(products=products, prices=prices, line=line, list_price=list_price,
                   max_discount=max_discount, sellable=np.flatnonzero(active), price_change_at=change)
