"""Sales forecast: a clean seasonal series is recovered; rolling-origin backtest beats seasonal-naive."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

import models.forecast as forecast
from models.features import add_months
from models.forecast.model import ForecastConfig


def revenue_frame(series: dict[str, np.ndarray], start: date = date(2023, 1, 1)) -> pl.DataFrame:
    rows = []
    for name, values in series.items():
        slice_type, slice_value = name.split("|")
        for m, value in enumerate(values):
            rows.append((slice_type, slice_value, add_months(start, m), True, float(value)))
    return pl.DataFrame(rows, schema=["slice_type", "slice_value", "month_start", "is_complete_month", "revenue"],
                        orient="row")


def test_trend_and_seasonality_are_recovered_from_a_noise_free_series():
    months = np.arange(36)
    season = 1 + 0.2 * np.cos(2 * np.pi * months / 12)
    series = {"overall|all": 1000 * season * 1.01 ** months, "region|North": 400 * season * 1.01 ** months}
    frame = revenue_frame(series)
    trained = forecast.train(frame, ForecastConfig(trend_damping=1.0))
    out = forecast.score(trained.artifacts, frame, trained.metadata["series"], ForecastConfig(trend_damping=1.0))
    overall = out.filter(pl.col("slice_type") == "overall").sort("month_start")
    future = np.arange(36, 42)
    expected = 1000 * (1 + 0.2 * np.cos(2 * np.pi * future / 12)) * 1.01 ** future
    # within 5% (the ridge penalty shrinks the seasonal swing slightly); a flat forecast misses by up to 20%
    np.testing.assert_allclose(overall["forecast"].to_numpy(), expected, rtol=0.05)
    assert overall["month_start"].to_list()[0] == date(2026, 1, 1)
    assert (overall["lower_95"] <= overall["lower_80"]).all() and (overall["lower_80"] <= overall["forecast"]).all()
    assert (overall["forecast"] <= overall["upper_80"]).all() and (overall["upper_80"] <= overall["upper_95"]).all()


@pytest.fixture(scope="module")
def forecast_backtest(ml_marts):
    return forecast.backtest(ml_marts.revenue)


def test_backtest_beats_seasonal_naive_by_ten_percent(forecast_backtest):
    model, naive = forecast_backtest["metrics"], forecast_backtest["baseline"]
    print(f"forecast MASE {model['mase']:.3f} vs seasonal-naive {naive['mase']:.3f}; sMAPE {model['smape']:.1f} "
          f"vs {naive['smape']:.1f}; coverage 80% {model['coverage_80']:.3f}, 95% {model['coverage_95']:.3f}")
    assert model["mase"] <= 0.9 * naive["mase"]
    assert model["smape"] < naive["smape"]
    # every slice type: overall, segment, region and product line
    assert set(forecast_backtest["by_slice_type"]) == {"overall", "segment", "region", "product_line"}


def test_eighty_percent_intervals_cover_75_to_85_percent(forecast_backtest):
    model = forecast_backtest["metrics"]
    assert 0.75 <= model["coverage_80"] <= 0.85
    assert model["coverage_95"] > model["coverage_80"]


def test_backtest_is_rolling_origin_over_the_last_year(forecast_backtest):
    predictions = forecast_backtest["predictions"]
    assert predictions["origin"].n_unique() == 12
    assert predictions["horizon"].max() == 6
    # a forecast is never scored against a month at or before its origin
    assert (predictions["horizon"] >= 1).all()
