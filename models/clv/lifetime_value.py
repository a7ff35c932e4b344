"""Customer lifetime value: BG/NBD purchases times Gamma-Gamma spend, discounted month by month.

CLV over H months = sum over m = 1..H of
    (E[purchases by the end of month m] - E[purchases by the end of month m-1]) * E[spend] * margin
    / (1 + monthly discount rate)^m,
the formulation of `lifetimes.GammaGammaFitter.customer_lifetime_value`. The summary times are in a unit
the caller names (`time_unit_days`: 1 for days, 7 for weeks) so a month is always 365.25 / 12 days.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from models.clv import bgnbd, gamma_gamma
from models.clv.bgnbd import BetaGeoModel
from models.clv.gamma_gamma import GammaGammaModel
from models.clv.inputs import RFM_COLUMNS, as_columns, rfm_arrays, spend_arrays

DAYS_PER_MONTH = 365.25 / 12


def customer_lifetime_value(
    purchase_params: Mapping[str, float],
    spend_params: Mapping[str, float],
    frequency: np.ndarray,
    recency: np.ndarray,
    age: np.ndarray,
    monetary_value: np.ndarray,
    *,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    time_unit_days: float = 1.0,
    margin: float = 1.0,
) -> np.ndarray:
    """Discounted expected value of each customer's purchases over the next `horizon_months`."""
    if horizon_months < 1:
        raise ValueError(f"The CLV horizon must be at least one month, got {horizon_months}.")
    if monthly_discount_rate <= -1.0:
        raise ValueError(f"A monthly discount rate of {monthly_discount_rate} is not a rate; use e.g. 0.01.")
    month = DAYS_PER_MONTH / time_unit_days
    spend = gamma_gamma.conditional_expected_average_spend(spend_params, frequency, monetary_value)
    value = np.zeros_like(spend)
    previous = np.zeros_like(spend)
    for m in range(1, horizon_months + 1):
        cumulative = bgnbd.conditional_expected_purchases(purchase_params, m * month, frequency, recency, age)
        value += (cumulative - previous) * spend * margin / (1.0 + monthly_discount_rate) ** m
        previous = cumulative
    return value


@dataclass
class CustomerLifetimeValueModel:
    """BG/NBD + Gamma-Gamma on one customer summary frame; `predict` gives CLV, `score` everything.

    The frame holds `frequency`, `recency`, `T` (in units of `time_unit_days` days) and `monetary_value`.
    `to_dict`/`from_dict` round-trip the fitted model through JSON-ready values.
    """

    time_unit_days: float = 1.0
    penalizer: float = 0.0
    purchases: BetaGeoModel = field(default_factory=BetaGeoModel)
    spend: GammaGammaModel = field(default_factory=GammaGammaModel)

    def fit(self, data: pl.DataFrame | np.ndarray) -> CustomerLifetimeValueModel:
        frequency, recency, age, monetary = _summary(data)
        self.purchases = BetaGeoModel(penalizer=self.penalizer).fit(
            np.column_stack([frequency, recency, age])
        )
        self.spend = GammaGammaModel(penalizer=self.penalizer).fit(np.column_stack([frequency, monetary]))
        return self

    @property
    def params_(self) -> dict[str, dict[str, float]]:
        return {"bgnbd": dict(self.purchases.params_), "gamma_gamma": dict(self.spend.params_)}

    def predict(
        self,
        data: pl.DataFrame | np.ndarray,
        *,
        horizon_months: int = 12,
        monthly_discount_rate: float = 0.01,
        margin: float = 1.0,
    ) -> np.ndarray:
        """Discounted CLV of each customer over `horizon_months`."""
        frequency, recency, age, monetary = _summary(data)
        return customer_lifetime_value(
            self.purchases._require_fit(),
            self.spend._require_fit(),
            frequency,
            recency,
            age,
            monetary,
            horizon_months=horizon_months,
            monthly_discount_rate=monthly_discount_rate,
            time_unit_days=self.time_unit_days,
            margin=margin,
        )

    def score(
        self,
        data: pl.DataFrame | np.ndarray,
        *,
        horizon_months: int = 12,
        monthly_discount_rate: float = 0.01,
        margin: float = 1.0,
    ) -> pl.DataFrame:
        """One row per customer: probability alive, expected purchases and spend over the horizon, and CLV."""
        frequency, recency, age, monetary = _summary(data)
        horizon = horizon_months * DAYS_PER_MONTH / self.time_unit_days
        purchase_params = self.purchases._require_fit()
        return pl.DataFrame(
            {
                "probability_alive": bgnbd.probability_alive(purchase_params, frequency, recency, age),
                "expected_purchases": bgnbd.conditional_expected_purchases(
                    purchase_params, horizon, frequency, recency, age
                ),
                "expected_average_spend": gamma_gamma.conditional_expected_average_spend(
                    self.spend._require_fit(), frequency, monetary
                ),
                "clv": self.predict(
                    data,
                    horizon_months=horizon_months,
                    monthly_discount_rate=monthly_discount_rate,
                    margin=margin,
                ),
            }
        )

    def to_dict(self) -> dict:
        return {
            "model": "clv_bgnbd_gamma_gamma",
            "time_unit_days": self.time_unit_days,
            "penalizer": self.penalizer,
            "bgnbd": self.purchases.to_dict(),
            "gamma_gamma": self.spend.to_dict(),
        }

    @classmethod
    def from_dict(cls, payload: Mapping) -> CustomerLifetimeValueModel:
        if payload.get("model") != "clv_bgnbd_gamma_gamma":
            raise ValueError(f"Not a CLV model description (model={payload.get('model')!r}).")
        return cls(
            time_unit_days=float(payload["time_unit_days"]),
            penalizer=float(payload.get("penalizer", 0.0)),
            purchases=BetaGeoModel.from_dict(payload["bgnbd"]),
            spend=GammaGammaModel.from_dict(payload["gamma_gamma"]),
        )


def _summary(data: pl.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frequency, recency, T and monetary value, each checked by the model that uses it."""
    names = (*RFM_COLUMNS, "monetary_value")
    columns = as_columns(data, names)
    stacked = np.column_stack(columns)
    frequency, recency, age = rfm_arrays(stacked[:, :3])
    _, monetary = spend_arrays(stacked[:, [0, 3]])
    return frequency, recency, age, monetary
