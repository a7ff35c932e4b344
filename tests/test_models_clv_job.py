"""CLV as a registered model: holdout backtest against the historical-rate baseline, grade, registry,
`scores.clv_scores` and its way into `marts.dim_customer_360` after a dbt rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from models.clv import CustomerLifetimeValueModel
from models.clv import job as clv_job
from models.jobs import score_models
from models.registry import ModelRegistry

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"


@pytest.fixture(scope="module")
def trained(ml_marts):
    return clv_job.train(ml_marts.purchases, ml_marts.activity, seed=42)


def test_backtest_beats_the_historical_rate_baseline_and_is_graded(trained):
    meta = trained.metadata
    metrics, baseline = meta["metrics"], meta["baseline_metrics"]
    # 4,000 generated customers, 3 years: about 2,800 had bought by the cut-off a year before the as-of date
    assert metrics["customers"] > 2000 and metrics["customers_buying_in_holdout"] > 1000
    assert metrics["purchases_mae"] < 0.95 * baseline["purchases_mae"]
    assert metrics["purchases_rmse"] < baseline["purchases_rmse"]
    assert metrics["purchases_correlation"] > baseline["purchases_correlation"] + 0.05
    assert 0.85 <= metrics["purchases_total_ratio"] <= 1.15
    assert metrics["revenue_mae"] < baseline["revenue_mae"]
    assert trained.grade == "A"
    assert "holdout purchases MAE" in meta["grade"]["reason"]
    window = meta["backtest"]["holdout_window"]
    assert window["until"] == meta["training_window"]["observation_end"]
    assert window["weeks"] == pytest.approx(365 / 7, abs=0.01)
    assert meta["fit"]["bgnbd"]["converged"] and meta["fit"]["gamma_gamma"]["converged"]
    # spend has a finite mean (q > 1) and every parameter is positive
    assert meta["params"]["gamma_gamma"]["q"] > 1
    assert all(v > 0 for part in meta["params"].values() for v in part.values())


def test_backtest_never_sees_the_holdout(ml_marts, trained):
    as_of = ml_marts.activity["as_of_date"].max()
    cutoff = as_of - timedelta(days=365)
    # without any order after the cut-off the calibration fit must be exactly the same
    early = ml_marts.purchases.filter(pl.col("order_date") <= cutoff)
    result = clv_job.backtest(early, ml_marts.activity)
    for part, params in trained.metadata["backtest"]["calibration_params"].items():
        for name, value in params.items():
            assert result["calibration_params"][part][name] == pytest.approx(value, rel=1e-9)
    assert result["metrics"]["actual_purchases_total"] == 0


def test_artifact_is_plain_json_and_round_trips(ml_marts, trained):
    payload = json.loads(json.dumps(trained.artifacts["model"]))
    scores = clv_job.score({"model": payload}, ml_marts.purchases, ml_marts.activity)
    direct = CustomerLifetimeValueModel.from_dict(trained.artifacts["model"])
    assert direct.params_ == trained.metadata["params"]
    orders = ml_marts.purchases.group_by("customer_key", "order_id").agg(pl.col("revenue").sum())
    assert scores.height == orders.filter(pl.col("revenue") > 0)["customer_key"].n_unique() > 3000
    assert np.allclose(scores["predicted_clv"].to_numpy(),
                       direct.predict(clv_job.summarise(clv_job.orders_from_purchases(ml_marts.purchases),
                                                        ml_marts.activity["as_of_date"].max(), clv_job.ClvConfig())))


def test_too_short_a_history_is_refused_with_a_clear_message(ml_marts):
    as_of = ml_marts.activity["as_of_date"].max()
    recent = ml_marts.purchases.filter(pl.col("order_date") > as_of - timedelta(days=400))
    with pytest.raises(ValueError, match="longer order history"):
        clv_job.train(recent, ml_marts.activity)


def _dbt_run(home) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "run", "--project-dir", str(PROJECT), "--profiles-dir",
         str(PROJECT), "--target-path", str(home.root / "dbt_target"), "--log-path", str(home.logs)],
        env={**os.environ, "CRM_WAREHOUSE": str(home.warehouse)}, capture_output=True, text=True, check=False)


def test_scores_reach_the_registry_and_customer_360(ml_home_copy):
    home = ml_home_copy
    with duckdb.connect(str(home.warehouse)) as con:
        report = score_models(home, con)
    assert "clv" not in report.errors
    version = ModelRegistry(home).current_version("clv")
    assert report.versions["clv"] == version and report.grades["clv"] in {"A", "B"}
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        buyers = {r[0] for r in con.execute("select distinct customer_key from marts.fct_customer_product_purchases "
                                            "group by customer_key, order_id having sum(revenue) > 0").fetchall()}
        scores = con.sql("select * from scores.clv_scores").pl()
        last_year = con.execute("""
            select count(*) from (
                select distinct customer_key, order_date from marts.fct_customer_product_purchases
                where revenue > 0
                    and order_date > (select max(as_of_date) from marts.fct_customer_monthly_activity) - 365
            )
        """).fetchall()[0][0]
        registry_row = con.execute("select grade, is_current, metrics_json from scores.model_registry "
                                   "where model_name = 'clv'").fetchall()
    assert report.rows["clv_scores"] == scores.height == len(buyers) > 3000
    assert set(scores["customer_key"]) == buyers
    assert set(scores["model_version"]) == {version}
    assert scores["probability_alive"].min() >= 0 and scores["probability_alive"].max() <= 1
    assert scores["predicted_clv"].min() >= 0 and scores["expected_purchases_12m"].min() >= 0
    # 12 months at 1% a month: the discounted CLV lies between 1/1.01^12 and 1 times purchases x spend
    undiscounted = (scores["expected_purchases_12m"] * scores["expected_average_spend"]).to_numpy()
    ratio = scores["predicted_clv"].to_numpy() / undiscounted
    assert np.all(ratio <= 1 + 1e-9) and np.all(ratio >= 1.01 ** -12 - 1e-9)
    # the next 12 months look like the last 12: the expected purchase occasions are within 30% of them
    assert 0.8 <= scores["expected_purchases_12m"].sum() / last_year <= 1.3
    assert len(registry_row) == 1 and registry_row[0][1]
    assert json.loads(registry_row[0][2])["purchases_mae"] > 0

    result = _dbt_run(home)
    assert result.returncode == 0, result.stdout[-4000:]
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        c360 = con.sql("select customer_key, predicted_clv, clv_model_version from marts.dim_customer_360").pl()
    joined = c360.join(scores.select("customer_key", pl.col("predicted_clv").alias("scored")), on="customer_key",
                       how="left")
    bought = joined.filter(pl.col("customer_key").is_in(list(buyers)))
    assert bought.height == len(buyers)
    assert bought["predicted_clv"].null_count() == 0
    assert np.allclose(bought["predicted_clv"].to_numpy(), bought["scored"].to_numpy())
    assert set(bought["clv_model_version"]) == {version}
    assert joined.filter(~pl.col("customer_key").is_in(list(buyers)))["predicted_clv"].null_count() == \
        c360.height - len(buyers)
