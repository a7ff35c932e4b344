"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Colombo & Jiang 1999).

Each transaction value of a customer is Gamma(p, nu) (rate nu); across customers nu ~ Gamma(q, gamma)
(rate gamma). The mean m_x of a customer's x repeat purchases is then Gamma(p x, nu x), which integrates
to the closed-form marginal likelihood below. The model only uses customers with x >= 1 and assumes
spend is independent of purchase frequency (check the correlation before trusting it on new data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.special import gammaln, psi

from models.clv.inputs import spend_arrays
from models.clv.maximum_likelihood import FitReport, fit_log_parameters

PARAM_NAMES = ("p", "q", "gamma")


def _unpack(params: Mapping[str, float]) -> tuple[float, float, float]:
    return tuple(float(params[name]) for name in PARAM_NAMES)  # type: ignore[return-value]


def log_likelihood(
    params: Mapping[str, float], frequency: np.ndarray, monetary_value: np.ndarray
) -> np.ndarray:
    """Log density of each customer's mean spend m_x given x (x >= 1 only), FHL 2005 "RFM and CLV" eq. 3."""
    p, q, gamma = _unpack(params)
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary_value, dtype=np.float64)
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + m * x)
    )


def _log_likelihood_gradient(p, q, gamma, x, m) -> np.ndarray:
    """d log-likelihood / d (p, q, gamma) per customer, shape (customers, 3)."""
    px = p * x
    log_total = np.log(gamma + m * x)
    d_p = x * (psi(px + q) - psi(px) + np.log(m) + np.log(x) - log_total)
    d_q = psi(px + q) - psi(q) + np.log(gamma) - log_total
    d_gamma = q / gamma - (px + q) / (gamma + m * x)
    return np.column_stack([d_p, d_q, d_gamma])


def conditional_expected_average_spend(
    params: Mapping[str, float], frequency: np.ndarray, monetary_value: np.ndarray
) -> np.ndarray:
    """E[transaction value | x, m_x]: a weighted mean of the population mean and the customer's own mean.

    E = (gamma + m_x x) p / (p x + q - 1); for x = 0 this is the population mean p gamma / (q - 1).
    Needs q > 1 (otherwise the population mean spend is infinite).
    """
    p, q, gamma = _unpack(params)
    if q <= 1.0:
        raise ValueError(
            f"Gamma-Gamma q = {q:.4g} <= 1 means infinite mean spend; refit with more customers."
        )
    x = np.asarray(frequency, dtype=np.float64)
    m = np.where(x > 0, np.asarray(monetary_value, dtype=np.float64), 0.0)
    return (gamma + m * x) * p / (p * x + q - 1.0)


def fit(
    frequency: np.ndarray, monetary_value: np.ndarray, *, penalizer: float = 0.0
) -> tuple[dict[str, float], FitReport]:
    """Maximum-likelihood (p, q, gamma) over the customers with at least one repeat purchase.

    How and why: see `maximum_likelihood`.
    """
    x_all = np.asarray(frequency, dtype=np.float64)
    repeat = x_all > 0
    x = x_all[repeat]
    m = np.asarray(monetary_value, dtype=np.float64)[repeat]
    if x.size < 3:
        raise ValueError(
            f"Gamma-Gamma needs customers with repeat purchases to fit; only {x.size} have frequency >= 1."
        )

    def mean_log_likelihood(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_customer = log_likelihood(dict(zip(PARAM_NAMES, values, strict=True)), x, m)
        return per_customer, _log_likelihood_gradient(*values, x, m).mean(axis=0)

    # Start at p = 1, q = 2 with gamma matching the mean spend p * gamma / (q - 1).
    start = [1.0, 2.0, max(float(np.mean(m)), 1e-9)]
    return fit_log_parameters(PARAM_NAMES, mean_log_likelihood, start, int(x.size), penalizer=penalizer)


@dataclass
class GammaGammaModel:
    """Gamma-Gamma fitted on (`frequency`, `monetary_value`), sklearn-style; customers with x = 0 are skipped."""

    penalizer: float = 0.0
    params_: dict[str, float] = field(default_factory=dict)
    report_: FitReport | None = None

    def fit(self, data: pl.DataFrame | np.ndarray) -> GammaGammaModel:
        frequency, monetary = spend_arrays(data)
        self.params_, self.report_ = fit(frequency, monetary, penalizer=self.penalizer)
        return self

    def _require_fit(self) -> dict[str, float]:
        if not self.params_:
            raise RuntimeError(
                "The Gamma-Gamma model is not fitted yet; call fit() or load it with from_dict()."
            )
        return self.params_

    def predict(self, data: pl.DataFrame | np.ndarray) -> np.ndarray:
        """Expected value of each customer's future transactions."""
        return conditional_expected_average_spend(self._require_fit(), *spend_arrays(data))

    def to_dict(self) -> dict:
        return {
            "model": "gamma_gamma",
            "penalizer": self.penalizer,
            "params": dict(self._require_fit()),
            "report": self.report_.to_dict() if self.report_ else None,
        }

    @classmethod
    def from_dict(cls, payload: Mapping) -> GammaGammaModel:
        if payload.get("model") != "gamma_gamma":
            raise ValueError(f"Not a Gamma-Gamma model description (model={payload.get('model')!r}).")
        report = payload.get("report")
        return cls(
            penalizer=float(payload.get("penalizer", 0.0)),
            params_={name: float(payload["params"][name]) for name in PARAM_NAMES},
            report_=FitReport(**report) if report else None,
        )
