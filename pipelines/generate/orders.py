"""Orders and order lines: monthly demand from the customer simulation plus one order per won deal.

Webshop orders of customers who also have a webshop account reference the webshop id half of the time,
so identity resolution has real work. Cancelled orders were cancelled before fulfilment and have no
lines and no invoice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.generate.catalog import Catalog
from pipelines.generate.churn import Life
from pipelines.generate.common import DAY, HOUR, Clock, choice, dates, group_offsets, ids, ts
from pipelines.generate.customers import Customers
from pipelines.generate.deals import Deals
from pipelines.generate.identity import Webshop
from pipelines.generate.org import Org
from pipelines.generate.pricing import discounts

CHANNELS = ["direct", "webshop", "partner"]
B2C_LINES = {"Hardware": 0.45, "Training": 0.2, "Software": 0.15, "Support": 0.15, "Services": 0.05}
B2B_LINES = {"Software": 0.3, "Services": 0.2, "Hardware": 0.2, "Support": 0.2, "Training": 0.1}


@dataclass
class Orders:
    orders: pl.DataFrame
    lines: pl.DataFrame
    customer: np.ndarray      # CRM customer index of each order (also for webshop-id orders)
    placed: np.ndarray        # seconds
    status: np.ndarray
    total: np.ndarray         # line revenue per order
    late: np.ndarray          # the order's invoice is paid late (planted per customer-month)


def build_orders(rng: np.random.Generator, clock: Clock, cust: Customers, life: Life, deals: Deals,
                 webshop: Webshop, catalog: Catalog, org: Org) -> Orders:
    hist = clock.months
    c_idx, m_idx = np.nonzero(life.orders[:, :hist])
    counts = life.orders[c_idx, m_idx]
    cust_of = np.repeat(c_idx, counts)
    month_of = np.repeat(m_idx, counts)
    lo = np.maximum(life.month_starts[month_of], cust.created[cust_of])
    hi = np.minimum(np.minimum(life.month_starts[month_of + 1], life.churn_ts[cust_of]), clock.end)
    placed = lo + (rng.random(len(cust_of)) * np.maximum(hi - lo, 1)).astype(np.int64)
    late = life.late[cust_of, month_of]
    b2b = cust.is_b2b[cust_of]
    channel = np.where(b2b, choice(rng, len(cust_of), [0.7, 0.1, 0.2]),
                       choice(rng, len(cust_of), [0.15, 0.85, 0.0]))
    deal_order = deals.won & (deals.close < np.minimum(clock.end, life.churn_ts[deals.account]))
    d = np.flatnonzero(deal_order)
    cust_of = np.concatenate([cust_of, deals.account[d]])
    placed = np.concatenate([placed, deals.close[d] + 2 * HOUR])
    placed = np.minimum(placed, clock.end - 1)
    late = np.concatenate([late, life.late[deals.account[d], clock.month_index(deals.close[d])]])
    channel = np.concatenate([channel, np.zeros(len(d), dtype=np.int64)])
    deal_of = np.concatenate([np.full(len(placed) - len(d), -1), d])

    order = np.lexsort((cust_of, placed))
    cust_of, placed, late, channel, deal_of = (a[order] for a in (cust_of, placed, late, channel, deal_of))
    n = len(placed)
    status = np.where(deal_of >= 0, "completed",
                      np.array(["completed", "cancelled", "returned"])[choice(rng, n, [0.94, 0.03, 0.03])])
    owner = np.where(channel == 1, -1, cust.owner_rep[cust_of])
    owner = np.where((channel != 1) & (owner < 0), org.random_rep(rng, cust.region[cust_of]), owner)
    owner = np.where(deal_of >= 0, deals.owner_rep[np.maximum(deal_of, 0)], owner)

    # webshop orders of duplicated customers reference the webshop id half of the time
    ws_of = np.full(cust.n, -1)
    ws_of[webshop.customer] = np.arange(len(webshop.customer))
    use_ws = (channel == 1) & (ws_of[cust_of] >= 0) & (rng.random(n) < 0.5)
    ws_created = webshop.accounts["created_at"].dt.epoch("s").to_numpy()
    use_ws &= placed >= ws_created[np.maximum(ws_of[cust_of], 0)]
    account_id = pl.select(pl.when(pl.Series(use_ws)).then(webshop.ids.gather(np.maximum(ws_of[cust_of], 0)))
                           .otherwise(cust.ids.gather(cust_of))).to_series()

    # lines
    n_lines = np.where(b2b_of := cust.is_b2b[cust_of], choice(rng, n, [0.35, 0.25, 0.2, 0.12, 0.08]) + 1,
                       choice(rng, n, [0.6, 0.3, 0.1]) + 1)
    n_lines = np.where(deal_of >= 0, 1, n_lines)
    n_lines = np.where(status == "cancelled", 0, n_lines)
    parent, _ = group_offsets(n_lines)
    k = len(parent)
    lines_b2b = b2b_of[parent]
    product = _products(rng, catalog, lines_b2b)
    qty = np.where(lines_b2b, np.minimum(rng.geometric(0.3, k), 50), np.minimum(rng.geometric(0.7, k), 5))
    price_list = np.where(channel[parent] == 2, 1, np.where(lines_b2b & (cust.employees[cust_of[parent]] > 250), 2, 0))
    unit_price = catalog.unit_price(product, price_list, placed[parent])
    below = np.isin(org.rep_ids[np.maximum(owner[parent], 0)], org.below_floor_reps) & (owner[parent] >= 0)
    discount = discounts(rng, catalog.max_discount[product], below)
    from_deal = deal_of[parent] >= 0
    dd = deal_of[parent][from_deal]
    product[from_deal], qty[from_deal] = deals.product[dd], deals.quantity[dd]
    unit_price[from_deal], discount[from_deal] = deals.unit_price[dd], deals.discount[dd]
    revenue = qty * unit_price * (1 - discount / 100)
    total = np.round(np.bincount(parent, weights=revenue, minlength=n), 2)

    order_ids = ids("ORD-", n, width=7)
    opp_ids = deals.opportunities["opportunity_id"]
    orders = pl.DataFrame({
        "order_id": order_ids,
        "account_id": account_id,
        "opportunity_id": pl.select(pl.when(pl.Series(deal_of >= 0)).then(opp_ids.gather(np.maximum(deal_of, 0))))
        .to_series().alias("opportunity_id"),
        "owner_user_id": pl.select(pl.when(pl.Series(owner >= 0)).then(
            pl.Series(org.rep_ids[np.maximum(owner, 0)]))).to_series().alias("owner_user_id"),
        "order_date": dates("order_date", placed),
        "status": status,
        "sales_channel": np.array(CHANNELS)[channel],
        "currency": "EUR",
        "updated_at": ts("updated_at", np.minimum(placed + np.where(status == "completed", 0, 5 * DAY),
                                                  clock.end - 1)),
    })
    lines = pl.DataFrame({
        "order_line_id": ids("OL-", k, width=8),
        "order_id": order_ids.gather(parent),
        "product_id": catalog.products["product_id"].gather(product),
        "quantity": qty.astype(np.int64),
        "unit_price": unit_price,
        "discount_pct": discount,
        "updated_at": orders["updated_at"].gather(parent),
    })
    return Orders(orders=orders, lines=lines, customer=cust_of, placed=placed, status=status, total=total,
                  late=late)


def _products(rng: np.random.Generator, catalog: Catalog, b2b: np.ndarray) -> np.ndarray:
    out = np.empty(len(b2b), dtype=np.int64)
    for flag, weights in ((True, B2B_LINES), (False, B2C_LINES)):
        rows = np.flatnonzero(b2b == flag)
        line = np.array(list(weights))[choice(rng, len(rows), weights)]
        for name in weights:
            pool = np.intersect1d(np.flatnonzero(catalog.line == name), catalog.sellable)
            hit = rows[line == name]
            out[hit] = pool[rng.integers(0, len(pool), len(hit))]
    return out
