"""BG/NBD repeat-purchase model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

While active, a customer buys as a Poisson process with rate lambda; after each repeat purchase they drop
out for good with probability p. Across customers lambda ~ Gamma(r, alpha) (rate alpha) and
p ~ Beta(a, b). From a customer's frequency x, recency t_x and age T the model gives the likelihood, the
probability that the customer is still alive and the number of purchases to expect in the next t.

Why a small scipy implementation: the maintained library (`lifetimes`) is archived and pins old pandas;
the four formulas below are short, and every one of them is checked in tests against numeric integration
of the model's definition. All computations are in log space (gammaln, logaddexp, expit) so customers with
hundreds of purchases do not overflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.special import expit, gammaln, hyp2f1, psi

from models.clv.inputs import rfm_arrays
from models.clv.maximum_likelihood import FitReport, fit_log_parameters

PARAM_NAMES = ("r", "alpha", "a", "b")


def _unpack(params: Mapping[str, float]) -> tuple[float, float, float, float]:
    return tuple(float(params[name]) for name in PARAM_NAMES)  # type: ignore[return-value]


def _log_terms(r, alpha, a, b, x, t_x, age):
    """The two alternatives of the individual likelihood: alive at T (A3) or dead after the last purchase (A4)."""
    log_a3 = -(r + x) * np.log(alpha + age)
    repeat = x > 0
    log_a4 = np.full_like(x, -np.inf)
    xr = x[repeat]
    log_a4[repeat] = np.log(a) - np.log(b + xr - 1.0) - (r + xr) * np.log(alpha + t_x[repeat])
    return log_a3, log_a4


def log_likelihood(
    params: Mapping[str, float], frequency: np.ndarray, recency: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """Log-likelihood of each customer's (x, t_x, T) under BG/NBD (FHL 2005, equation 6)."""
    r, alpha, a, b = _unpack(params)
    x, t_x, age = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, age))
    log_a3, log_a4 = _log_terms(r, alpha, a, b, x, t_x, age)
    return (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + gammaln(a + b)
        + gammaln(b + x)
        - gammaln(b)
        - gammaln(a + b + x)
        + np.logaddexp(log_a3, log_a4)
    )


def _log_likelihood_gradient(r, alpha, a, b, x, t_x, age) -> np.ndarray:
    """d log-likelihood / d (r, alpha, a, b) per customer, shape (customers, 4)."""
    log_a3, log_a4 = _log_terms(r, alpha, a, b, x, t_x, age)
    total = np.logaddexp(log_a3, log_a4)
    w3 = np.exp(log_a3 - total)
    w4 = np.exp(log_a4 - total)
    repeat = x > 0
    log_alpha_tx = np.log(alpha + t_x)
    inv_b_x_1 = np.zeros_like(x)
    inv_b_x_1[repeat] = 1.0 / (b + x[repeat] - 1.0)
    d_r = psi(r + x) - psi(r) + np.log(alpha) - w3 * np.log(alpha + age) - w4 * log_alpha_tx
    d_alpha = r / alpha - w3 * (r + x) / (alpha + age) - w4 * (r + x) / (alpha + t_x)
    d_a = psi(a + b) - psi(a + b + x) + w4 / a
    d_b = psi(a + b) + psi(b + x) - psi(b) - psi(a + b + x) - w4 * inv_b_x_1
    return np.column_stack([d_r, d_alpha, d_a, d_b])


def probability_alive(
    params: Mapping[str, float], frequency: np.ndarray, recency: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """P(still active at T | x, t_x, T) (FHL 2005, equation 11); exactly 1 for customers with x = 0.

    Written as expit(-log odds of having dropped out) so a long silence after many purchases gives a
    small probability instead of an overflow.
    """
    r, alpha, a, b = _unpack(params)
    x, t_x, age = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, age))
    result = np.ones_like(x)
    repeat = x > 0
    xr = x[repeat]
    log_odds_dead = (
        np.log(a)
        - np.log(b + xr - 1.0)
        + (r + xr) * (np.log(alpha + age[repeat]) - np.log(alpha + t_x[repeat]))
    )
    result[repeat] = expit(-log_odds_dead)
    return result


def _one_minus_discounted_hyp2f1(r, alpha, a, b, x, age, t):
    """1 - ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z), z = t/(alpha+T+t).

    Euler's transformation turns it into 1 - (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z): no huge powers,
    and the series converges at z -> 1 because c - a' - b' = x + r - a + 1 > 0 for x >= a - r - 1.
    """
    z = t / (alpha + age + t)
    return -np.expm1((a - 1.0) * np.log1p(-z)) - np.exp((a - 1.0) * np.log1p(-z)) * (
        hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z) - 1.0
    )


def _expected_alive_purchases(r, alpha, a, b, x, age, t):
    """E[purchases in (T, T+t] | alive at T]: (a+b+x-1)/(a-1) times the bracket of FHL 2005 equation 10.

    At a = 1 numerator and denominator both vanish; the limit is smooth in a, so near it the value is
    the average of the two neighbours a = 1 -/+ 1e-5 (error of order 1e-10).
    """
    if abs(a - 1.0) < 1e-6:
        return 0.5 * (
            _expected_alive_purchases(r, alpha, 1.0 - 1e-5, b, x, age, t)
            + _expected_alive_purchases(r, alpha, 1.0 + 1e-5, b, x, age, t)
        )
    return (a + b + x - 1.0) / (a - 1.0) * _one_minus_discounted_hyp2f1(r, alpha, a, b, x, age, t)


def conditional_expected_purchases(
    params: Mapping[str, float],
    t: float | np.ndarray,
    frequency: np.ndarray,
    recency: np.ndarray,
    age: np.ndarray,
) -> np.ndarray:
    """Expected number of purchases in (T, T+t] for each customer given their history (FHL 2005, eq. 10)."""
    r, alpha, a, b = _unpack(params)
    x, t_x, age = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, age))
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), x.shape)
    alive = probability_alive(params, x, t_x, age)
    return alive * _expected_alive_purchases(r, alpha, a, b, x, age, t)


def expected_purchases(params: Mapping[str, float], t: float | np.ndarray) -> np.ndarray:
    """E[X(t)]: repeat purchases a new customer makes in their first t (FHL 2005, equation 9)."""
    r, alpha, a, b = _unpack(params)
    t = np.asarray(t, dtype=np.float64)
    zeros = np.zeros_like(t)
    # Equation 9 is equation 10 for a customer with x = 0, T = 0 (who is alive with certainty).
    return _expected_alive_purchases(r, alpha, a, b, zeros, zeros, t)


def _start(x: np.ndarray, age: np.ndarray) -> list[float]:
    """A scale-aware starting point: r = 1 and alpha so that r/alpha matches the mean purchase rate."""
    rate = float(np.mean(x / np.maximum(age, 1e-12)))
    return [1.0, 1.0 / max(rate, 1e-6), 1.0, 1.0]


def fit(
    frequency: np.ndarray,
    recency: np.ndarray,
    age: np.ndarray,
    *,
    penalizer: float = 0.0,
) -> tuple[dict[str, float], FitReport]:
    """Maximum-likelihood estimates of (r, alpha, a, b); see `maximum_likelihood` for how and why."""
    x, t_x, age = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, age))
    if x.size == 0:
        raise ValueError("Cannot fit BG/NBD on zero customers; the summary frame is empty.")

    def mean_log_likelihood(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_customer = log_likelihood(dict(zip(PARAM_NAMES, values, strict=True)), x, t_x, age)
        return per_customer, _log_likelihood_gradient(*values, x, t_x, age).mean(axis=0)

    return fit_log_parameters(
        PARAM_NAMES, mean_log_likelihood, _start(x, age), int(x.size), penalizer=penalizer
    )


@dataclass
class BetaGeoModel:
    """BG/NBD fitted on a customer summary (`frequency`, `recency`, `T`), sklearn-style.

    `fit` accepts a polars frame with those columns or an array with them in that order. After fitting,
    `params_` holds r, alpha, a, b and `report_` how the optimisation went; `to_dict`/`from_dict` store
    both as plain JSON-ready values (no pickles).
    """

    penalizer: float = 0.0
    params_: dict[str, float] = field(default_factory=dict)
    report_: FitReport | None = None

    def fit(self, data: pl.DataFrame | np.ndarray) -> BetaGeoModel:
        frequency, recency, age = rfm_arrays(data)
        self.params_, self.report_ = fit(frequency, recency, age, penalizer=self.penalizer)
        return self

    def _require_fit(self) -> dict[str, float]:
        if not self.params_:
            raise RuntimeError("The BG/NBD model is not fitted yet; call fit() or load it with from_dict().")
        return self.params_

    def predict(self, data: pl.DataFrame | np.ndarray, t: float) -> np.ndarray:
        """Expected purchases of each customer in the next `t` time units."""
        return conditional_expected_purchases(self._require_fit(), t, *rfm_arrays(data))

    def probability_alive(self, data: pl.DataFrame | np.ndarray) -> np.ndarray:
        return probability_alive(self._require_fit(), *rfm_arrays(data))

    def log_likelihood(self, data: pl.DataFrame | np.ndarray) -> np.ndarray:
        return log_likelihood(self._require_fit(), *rfm_arrays(data))

    def to_dict(self) -> dict:
        return {
            "model": "bgnbd",
            "penalizer": self.penalizer,
            "params": dict(self._require_fit()),
            "report": self.report_.to_dict() if self.report_ else None,
        }

    @classmethod
    def from_dict(cls, payload: Mapping) -> BetaGeoModel:
        if payload.get("model") != "bgnbd":
            raise ValueError(f"Not a BG/NBD model description (model={payload.get('model')!r}).")
        report = payload.get("report")
        return cls(
            penalizer=float(payload.get("penalizer", 0.0)),
            params_={name: float(payload["params"][name]) for name in PARAM_NAMES},
            report_=FitReport(**report) if report else None,
        )
