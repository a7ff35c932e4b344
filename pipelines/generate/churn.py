"""Month-by-month life of every customer, vectorised across customers with numpy.

Each month a customer's engagement drifts (and for a subset declines steadily); it places orders
(trend x seasonality x holidays x engagement), some of which are paid late, and raises tickets, some
of which stay unresolved. The monthly churn hazard is a logistic function of the engagement drop,
low engagement, last month's unresolved tickets and currently overdue invoices. After churning a
customer orders nothing and is almost never heard from again. Three months past the as-of date are
simulated too (never written as events) so the true 90-day churn probability exists at every cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.generate.common import Clock

NEVER = np.iinfo(np.int64).max

#: Planted hazard model: logit(h) = intercept[type] + sum(coef * feature).
HAZARD = {
    "intercept_b2c": -5.6,
    "intercept_b2b": -6.1,
    "engagement_drop_3m": 3.0,      # per unit fall of log-engagement over the last 3 months
    "low_engagement": 2.0,          # per unit of log-engagement below 0
    "unresolved_ticket_last_month": 1.1,
    "overdue_invoice": 0.9,
}
#: Planted demand: orders per customer-month before multipliers.
ORDER_RATE = {"B2C": 0.22, "B2B": 0.45}
TICKET_RATE = {"B2C": 0.04, "B2B": 0.12}
TREND_PER_YEAR = 0.15
#: Yearly seasonality (month of year -> multiplier, peaks in autumn) and holiday uplift on top.
SEASONALITY = {m: round(1 + 0.10 * float(np.cos(2 * np.pi * (m - 10) / 12)), 4) for m in range(1, 13)}
HOLIDAY_UPLIFT = {11: 1.3, 12: 1.5}
DECLINER_SHARE = 0.3
DECLINE_PER_MONTH = 0.25  # fall of log-engagement per month of a decline episode
LATE_PAYER_SHARE = 0.12
UNRESOLVED_SHARE = 0.3


@dataclass
class Life:
    month_starts: np.ndarray  # boundaries, len = months + 1 (history + 3 future months)
    log_engagement: np.ndarray  # (n, months)
    orders: np.ndarray          # (n, months) order counts
    late: np.ndarray            # (n, months) invoices of that month paid late
    tickets: np.ndarray         # (n, months)
    unresolved: np.ndarray      # (n, months) first ticket of the month stays unresolved for weeks
    hazard: np.ndarray          # (n, months), 0 where not at risk
    at_risk: np.ndarray         # (n, months) alive and existing at the month start
    churn_ts: np.ndarray        # seconds, NEVER if the customer never churns (within history + 3 months)
    decliner: np.ndarray
    late_payer: np.ndarray
    base_engagement: np.ndarray

    def alive_window(self, created: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        lo = np.maximum(self.month_starts[m], created)
        hi = np.minimum(self.month_starts[m + 1], self.churn_ts)
        return lo, hi


def month_multiplier(clock: Clock) -> np.ndarray:
    """Trend x seasonality x holiday uplift for every simulated month."""
    moy = clock.month_of_year[:-1]
    years = np.arange(len(moy)) / 12.0
    season = np.array([SEASONALITY[m] * HOLIDAY_UPLIFT.get(m, 1.0) for m in moy])
    return season * (1 + TREND_PER_YEAR) ** years


def simulate_life(rng: np.random.Generator, clock: Clock, created: np.ndarray, is_b2b: np.ndarray) -> Life:
    n = len(created)
    ms = clock.month_starts
    months = len(ms) - 1
    mult = month_multiplier(clock)
    base = rng.normal(0.0, 0.35, n)
    decliner = rng.random(n) < DECLINER_SHARE
    dec_start = rng.integers(0, months, n)
    dec_len = rng.integers(4, 11, n)
    late_payer = rng.random(n) < LATE_PAYER_SHARE
    p_late = np.where(late_payer, 0.55, 0.03)
    intercept = np.where(is_b2b, HAZARD["intercept_b2b"], HAZARD["intercept_b2c"])
    lam_o = np.where(is_b2b, ORDER_RATE["B2B"], ORDER_RATE["B2C"])
    lam_t = np.where(is_b2b, TICKET_RATE["B2B"], TICKET_RATE["B2C"])

    shape = (n, months)
    log_e = np.zeros(shape, dtype=np.float64)
    orders = np.zeros(shape, dtype=np.int32)
    late = np.zeros(shape, dtype=bool)
    tickets = np.zeros(shape, dtype=np.int32)
    unresolved = np.zeros(shape, dtype=bool)
    hazard = np.zeros(shape, dtype=np.float64)
    at_risk = np.zeros(shape, dtype=bool)
    churn_ts = np.full(n, NEVER, dtype=np.int64)
    noise = np.zeros(n)
    decline = np.zeros(n)
    for m in range(months):
        lo, hi = ms[m], ms[m + 1]
        noise = 0.8 * noise + rng.normal(0.0, 0.12, n)
        in_episode = decliner & (m >= dec_start) & (m < dec_start + dec_len)
        decline = decline - DECLINE_PER_MONTH * in_episode
        log_e[:, m] = base + decline + noise
        drop = np.maximum(0.0, log_e[:, max(m - 3, 0)] - log_e[:, m])
        unres_prev = unresolved[:, m - 1] if m >= 1 else np.zeros(n, dtype=bool)
        overdue = (late[:, m - 1] if m >= 1 else False) | (late[:, m - 2] if m >= 2 else False)
        logit = (intercept + HAZARD["engagement_drop_3m"] * drop
                 + HAZARD["low_engagement"] * np.maximum(0.0, -log_e[:, m])
                 + HAZARD["unresolved_ticket_last_month"] * unres_prev
                 + HAZARD["overdue_invoice"] * overdue)
        risk = (created < lo) & (churn_ts == NEVER)
        at_risk[:, m] = risk
        h = np.where(risk, 1.0 / (1.0 + np.exp(-logit)), 0.0)
        hazard[:, m] = h
        churn_now = risk & (rng.random(n) < h)
        churn_ts[churn_now] = lo + (rng.random(int(churn_now.sum())) * (hi - lo)).astype(np.int64)

        a_lo = np.maximum(lo, created)
        a_hi = np.minimum(hi, churn_ts)
        frac = np.clip((a_hi - a_lo) / (hi - lo), 0.0, 1.0)
        orders[:, m] = rng.poisson(lam_o * mult[m] * np.exp(0.5 * log_e[:, m]) * frac)
        late[:, m] = (orders[:, m] > 0) & (rng.random(n) < p_late)
        tickets[:, m] = rng.poisson(lam_t * frac)
        unresolved[:, m] = (tickets[:, m] > 0) & (rng.random(n) < UNRESOLVED_SHARE)
    return Life(month_starts=ms, log_engagement=log_e, orders=orders, late=late, tickets=tickets,
                unresolved=unresolved, hazard=hazard, at_risk=at_risk, churn_ts=churn_ts, decliner=decliner,
                late_payer=late_payer, base_engagement=base)
