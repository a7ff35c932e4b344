"""Sales forecast: rolling-origin backtest against seasonal-naive, training and scoring.

Backtest: for each of the last `backtest_origins` months, fit the model and its intervals on the months up
to that origin only, forecast 1..H months ahead and compare with what happened - and with the
seasonal-naive forecast (same month last year). MASE uses each series' in-sample seasonal-naive error
at the origin as its scale.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from models.common import TrainedModel
from models.forecast import model as fm
from models.forecast.model import ForecastConfig
from models.grading import grade_forecast
from models.metrics import forecast_metrics, seasonal_naive_scale

NAME = "sales_forecast"


def _month(index: int) -> date:
    return date(int(index) // 12, int(index) % 12 + 1, 1)


def backtest(revenue: pl.DataFrame, config: ForecastConfig | None = None) -> dict:
    config = config or ForecastConfig()
    series, months, matrix = fm.series_matrix(revenue)
    last = matrix.shape[1] - 1
    origins = [o for o in range(last - config.backtest_origins, last) if o >= config.min_train_months + 2]
    if not origins:
        raise ValueError(f"a forecast backtest needs more than {config.min_train_months + 3} complete months of "
                         f"revenue; the marts hold {matrix.shape[1]} - load a longer history.")
    parts = []
    for origin in origins:
        model = fm.fit_point_model(matrix, months, origin, config)
        calibration = fm.calibrate(matrix, months, origin, config)
        predicted = fm.predict(model, calibration, matrix, months, origin, config)
        keep = origin + predicted["horizon"] <= last
        s, h = predicted["series"][keep], predicted["horizon"][keep]
        scales = np.array([seasonal_naive_scale(matrix[k, :origin + 1], config.season) for k in range(len(series))])
        parts.append(pl.DataFrame({
            "series": [series[k] for k in s],
            "origin": [_month(months[0] + origin)] * int(keep.sum()),
            "horizon": h,
            "actual": matrix[s, origin + h],
            "scale": scales[s],
            "seasonal_naive": fm.seasonal_naive(matrix, origin, h, s, config.season),
            **{k: predicted[k][keep] for k in ("forecast", *fm.BOUNDS)},
        }))
    frame = pl.concat(parts)
    metrics = forecast_metrics(frame, "forecast")
    baseline = forecast_metrics(frame.select("series", "actual", "scale", "seasonal_naive"), "seasonal_naive")
    by_type = {}
    for slice_type in ("overall", "segment", "region", "product_line"):
        part = frame.filter(pl.col("series").str.starts_with(slice_type + "|"))
        if part.height:
            by_type[slice_type] = {
                "mase": forecast_metrics(part, "forecast")["mase"],
                "seasonal_naive_mase": forecast_metrics(part, "seasonal_naive")["mase"],
            }
    return {
        "origins": [_month(months[0] + origins[0]).isoformat(), _month(months[0] + origins[-1]).isoformat()],
        "metrics": metrics,
        "baseline": baseline,
        "by_slice_type": by_type,
        "predictions": frame,
    }


def train(revenue: pl.DataFrame, config: ForecastConfig | None = None, seed: int = 42) -> TrainedModel:
    """Backtest, then fit the point model and the interval calibration on every complete month."""
    config = config or ForecastConfig()
    result = backtest(revenue, config)
    series, months, matrix = fm.series_matrix(revenue)
    last = matrix.shape[1] - 1
    model = fm.fit_point_model(matrix, months, last, config)
    calibration = fm.calibrate(matrix, months, last, config)
    grade = grade_forecast(result["metrics"], result["baseline"])
    metadata = {
        "seed": seed,  # Ridge is deterministic; kept so every model's metadata has the same fields
        "target": "monthly completed-order revenue, overall and by segment, region and product line",
        "training_window": {"first_month": _month(months[0]).isoformat(), "last_month": _month(months[-1]).isoformat(),
                            "series": len(series)},
        "config": config.__dict__,
        "backtest": {k: v for k, v in result.items() if k != "predictions"},
        "metrics": result["metrics"],
        "baseline_metrics": result["baseline"],
        "grade": grade.as_dict(),
    }
    artifacts = {"pipeline": model, "scale": calibration["scale"], "quantiles": calibration["quantiles"]}
    return TrainedModel(NAME, artifacts, metadata | {"series": series})


def score(artifacts: dict, revenue: pl.DataFrame, series_names: list[str],
          config: ForecastConfig | None = None) -> pl.DataFrame:
    """Forecast the next H months after the last complete month for every series the model knows."""
    config = config or ForecastConfig()
    series, months, matrix = fm.series_matrix(revenue)
    # align the current data to the series the model was calibrated on (new series get the pooled scale)
    known = {name: i for i, name in enumerate(series_names)}
    scale_known = np.asarray(artifacts["scale"])
    pooled = float(np.sqrt(np.mean(scale_known ** 2)))
    scale = np.array([scale_known[known[name]] if name in known else pooled for name in series])
    calibration = {"scale": scale, "quantiles": artifacts["quantiles"]}
    last = matrix.shape[1] - 1
    predicted = fm.predict(artifacts["pipeline"], calibration, matrix, months, last, config)
    names = [series[k] for k in predicted["series"]]
    return pl.DataFrame({
        "slice_type": [n.split("|", 1)[0] for n in names],
        "slice_value": [n.split("|", 1)[1] for n in names],
        "origin_month": [_month(months[0] + last)] * len(names),
        "month_start": [_month(months[0] + last + int(h)) for h in predicted["horizon"]],
        "horizon": predicted["horizon"].astype(np.int64),
        "forecast": predicted["forecast"],
        **{k: predicted[k] for k in fm.BOUNDS},
    }).sort("slice_type", "slice_value", "month_start")
