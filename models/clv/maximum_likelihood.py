"""Maximum-likelihood fitting shared by the BG/NBD and Gamma-Gamma models, and the record of one fit.

Both models optimise the mean negative log-likelihood over log-parameters (positive without constraints
that stall the optimiser; the mean makes tolerances independent of the number of customers) with
L-BFGS-B and an analytic gradient. L-BFGS-B sometimes ends with "ABNORMAL" when the line search cannot
improve on round-off near the optimum; a fit therefore counts as converged when the optimiser says so or
the gradient at the end is flat, so the report says what matters: did we reach a maximum.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

LOG_PARAM_BOUNDS = (-20.0, 20.0)
FLAT_GRADIENT = 1e-6


@dataclass(frozen=True)
class FitReport:
    """How an optimisation went: kept with the parameters so a poor fit is visible, not silent."""

    customers: int
    mean_log_likelihood: float
    converged: bool
    iterations: int
    seconds: float
    max_abs_gradient: float = 0.0
    message: str = ""
    method: str = "L-BFGS-B"

    def to_dict(self) -> dict:
        return {
            "customers": self.customers,
            "mean_log_likelihood": self.mean_log_likelihood,
            "converged": self.converged,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "max_abs_gradient": self.max_abs_gradient,
            "message": self.message,
            "method": self.method,
        }


def fit_log_parameters(
    names: Sequence[str],
    mean_log_likelihood: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    start: Sequence[float],
    customers: int,
    *,
    penalizer: float = 0.0,
) -> tuple[dict[str, float], FitReport]:
    """Maximise `mean_log_likelihood(values) -> (per-customer log-likelihood, mean gradient wrt values)`.

    `start` holds starting values (not logs). `penalizer` subtracts penalizer * sum(value^2), which keeps
    parameters finite on data that cannot identify them (e.g. no visible drop-out at all).
    """
    started = time.perf_counter()

    def objective(log_values: np.ndarray) -> tuple[float, np.ndarray]:
        values = np.exp(log_values)
        per_customer, gradient = mean_log_likelihood(values)
        value = -float(per_customer.mean()) + penalizer * float(np.sum(values**2))
        # Chain rule to log-parameters: d/d log v = v * d/dv.
        return value, -gradient * values + 2.0 * penalizer * values**2

    result = minimize(
        objective,
        np.log(np.asarray(start, dtype=np.float64)),
        jac=True,
        method="L-BFGS-B",
        bounds=[LOG_PARAM_BOUNDS] * len(names),
        options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9},
    )
    values = np.exp(result.x)
    per_customer, _ = mean_log_likelihood(values)
    max_abs_gradient = float(np.max(np.abs(result.jac)))
    report = FitReport(
        customers=customers,
        mean_log_likelihood=float(per_customer.mean()),
        converged=bool(result.success) or max_abs_gradient < FLAT_GRADIENT,
        iterations=int(result.nit),
        seconds=time.perf_counter() - started,
        max_abs_gradient=max_abs_gradient,
        message=str(result.message),
    )
    return dict(zip(names, (float(v) for v in values), strict=True)), report
