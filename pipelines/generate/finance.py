"""Invoices for fulfilled orders and the payments against them.

Punctual customers pay before the due date; invoices from months the simulation marked late are paid
45-150 days after the due date (they are what drives the overdue part of the churn hazard), and some
are still open at the as-of date. A few invoices are paid in two parts. Returned orders are voided.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.generate.churn import Life
from pipelines.generate.common import DAY, HOUR, Clock, choice, dates, ids, ts
from pipelines.generate.customers import Customers
from pipelines.generate.orders import Orders

METHODS = ["bank_transfer", "card", "direct_debit", "cash"]


@dataclass
class Finance:
    invoices: pl.DataFrame
    payments: pl.DataFrame


def build_finance(rng: np.random.Generator, clock: Clock, cust: Customers, life: Life, orders: Orders) -> Finance:
    o = np.flatnonzero(orders.status != "cancelled")
    n = len(o)
    c = orders.customer[o]
    b2b = cust.is_b2b[c]
    issued = orders.placed[o] - orders.placed[o] % DAY + rng.integers(0, 3, n) * DAY
    issued = np.minimum(issued, clock.end - DAY)
    due = issued + np.where(b2b, 30, 14) * DAY
    amount = orders.total[o]
    void = orders.status[o] == "returned"
    late = orders.late[o]
    pay_at = np.where(late, due + rng.integers(45, 150, n) * DAY,
                      np.where(rng.random(n) < 0.9, issued + (rng.random(n) * (due - issued)).astype(np.int64),
                               due + rng.integers(1, 12, n) * DAY))
    pay_at = pay_at - pay_at % DAY + rng.integers(8 * HOUR, 18 * HOUR, n)
    churned_first = late & (life.churn_ts[c] < pay_at)
    pay_at = np.where(churned_first & (rng.random(n) < 0.7), np.iinfo(np.int64).max // 2, pay_at)  # never paid
    split = (rng.random(n) < 0.04) & ~void
    second_at = pay_at + rng.integers(10, 60, n) * DAY
    first_paid = (pay_at < clock.end) & ~void
    second_paid = split & first_paid & (second_at < clock.end)
    status = np.where(void, "void", np.where(~first_paid, "open",
                                             np.where(split & ~second_paid, "partially_paid", "paid")))
    updated = np.where(second_paid, second_at, np.where(first_paid, pay_at, issued))
    updated = np.where(void, issued + 5 * DAY, updated)
    invoice_ids = ids("INV-", n, width=7)
    invoices = pl.DataFrame({
        "invoice_id": invoice_ids,
        "account_id": orders.orders["account_id"].gather(o),
        "order_id": orders.orders["order_id"].gather(o),
        "invoice_date": dates("invoice_date", issued),
        "due_date": dates("due_date", due),
        "amount": amount,
        "status": status,
        "updated_at": ts("updated_at", np.minimum(updated, clock.end - 1)),
    })

    first_amount = np.where(split, np.round(amount * 0.5, 2), amount)
    inv = np.concatenate([np.flatnonzero(first_paid), np.flatnonzero(second_paid)])
    when = np.concatenate([pay_at[first_paid], second_at[second_paid]])
    paid = np.concatenate([first_amount[first_paid], np.round(amount - first_amount, 2)[second_paid]])
    order = np.lexsort((inv, when))
    inv, when, paid = inv[order], when[order], paid[order]
    m = len(inv)
    method = np.where(b2b[inv], choice(rng, m, [0.8, 0.02, 0.18, 0.0]), choice(rng, m, [0.15, 0.6, 0.22, 0.03]))
    payments = pl.DataFrame({
        "payment_id": ids("PAY-", m, width=7),
        "invoice_id": invoice_ids.gather(inv),
        "payment_date": dates("payment_date", when),
        "amount": paid,
        "method": np.array(METHODS)[method],
        "updated_at": ts("updated_at", when),
    })
    return Finance(invoices=invoices, payments=payments)
