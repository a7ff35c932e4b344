"""Draw customers from known BG/NBD and Gamma-Gamma parameters, for parameter-recovery tests.

The draw is exact and vectorised rather than an event loop: a customer with rate lambda and drop-out
probability p makes K ~ Geometric(p) repeat purchases before dropping out (after the K-th), and
N ~ Poisson(lambda (T + h)) purchase opportunities in (0, T + h]. The opportunities are uniform order
statistics, so the number inside the observation window (0, T] is Binomial(N, T / (T + h)), the number of
observed repeat purchases is x = min(that, K), and the time of the x-th one, given n arrivals in (0, T], is
T * Beta(x, n - x + 1). Purchases in the hold-out (T, T + h] are min(N, K) - x. Spend: nu ~ Gamma(q, gamma)
per customer and the mean of x transactions of Gamma(p, nu) is Gamma(p x, nu x).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl


def simulate_customers(
    purchase_params: Mapping[str, float],
    spend_params: Mapping[str, float] | None,
    customers: int,
    age: float | np.ndarray,
    rng: np.random.Generator,
    *,
    holdout: float = 0.0,
) -> pl.DataFrame:
    """One summary row per simulated customer.

    Columns: `frequency` (x), `recency` (t_x), `T`, `monetary_value` (m_x, 0 for x = 0; only when
    `spend_params` is given), `frequency_holdout` (repeat purchases in (T, T + holdout]), and the hidden
    truth `alive` (still active at T), `purchase_rate` (lambda), `dropout_probability` (p) and
    `mean_spend` (p_spend / nu) that tests compare the model's inferences with.
    """
    r, alpha, a, b = (float(purchase_params[name]) for name in ("r", "alpha", "a", "b"))
    age = np.broadcast_to(np.asarray(age, dtype=np.float64), (customers,)).copy()
    if np.any(age <= 0):
        raise ValueError("Every simulated customer needs a positive age T.")
    rate = rng.gamma(shape=r, scale=1.0 / alpha, size=customers)
    dropout = rng.beta(a, b, size=customers)
    purchases_before_dropout = rng.geometric(dropout)
    opportunities = rng.poisson(rate * (age + holdout))
    in_window = rng.binomial(opportunities, age / (age + holdout))
    frequency = np.minimum(in_window, purchases_before_dropout)
    recency = np.zeros(customers)
    repeat = frequency > 0
    recency[repeat] = age[repeat] * rng.beta(frequency[repeat], in_window[repeat] - frequency[repeat] + 1)
    frequency_holdout = np.minimum(opportunities, purchases_before_dropout) - frequency
    columns = {
        "frequency": frequency.astype(np.int64),
        "recency": recency,
        "T": age,
        "frequency_holdout": frequency_holdout.astype(np.int64),
        "alive": in_window < purchases_before_dropout,
        "purchase_rate": rate,
        "dropout_probability": dropout,
    }
    if spend_params is not None:
        p, q, gamma = (float(spend_params[name]) for name in ("p", "q", "gamma"))
        nu = rng.gamma(shape=q, scale=1.0 / gamma, size=customers)
        monetary = np.zeros(customers)
        x = frequency[repeat].astype(np.float64)
        monetary[repeat] = rng.gamma(shape=p * x, scale=1.0 / (nu[repeat] * x))
        columns["monetary_value"] = monetary
        columns["mean_spend"] = p / nu
    return pl.DataFrame(columns)
