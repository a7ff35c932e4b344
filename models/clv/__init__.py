"""Customer lifetime value: BG/NBD repeat purchases, Gamma-Gamma spend and discounted CLV.

Start with `CustomerLifetimeValueModel` (fit on a frame of `frequency`, `recency`, `T`, `monetary_value`);
`customer_summary` builds that frame from order rows; the two parts are usable alone as `BetaGeoModel`
and `GammaGammaModel`, and `simulate_customers` draws data from known parameters for recovery tests.
"""

from models.clv.bgnbd import BetaGeoModel
from models.clv.gamma_gamma import GammaGammaModel
from models.clv.lifetime_value import DAYS_PER_MONTH, CustomerLifetimeValueModel, customer_lifetime_value
from models.clv.maximum_likelihood import FitReport
from models.clv.simulate import simulate_customers
from models.clv.summary import customer_summary

__all__ = [
    "DAYS_PER_MONTH",
    "BetaGeoModel",
    "CustomerLifetimeValueModel",
    "FitReport",
    "GammaGammaModel",
    "customer_lifetime_value",
    "customer_summary",
    "simulate_customers",
]
