"""Training and scoring through the Dagster ML assets: versions, grades and the scores tables."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import dagster as dg
import duckdb

from models.jobs import MODEL_NAMES, needs_training, score_models
from models.registry import ModelRegistry
from pipelines.defs.ingest.resources import CrmHomeResource
from pipelines.defs.ml.assets import model_scores, trained_models

SCORE_TABLES = {"churn_scores", "sales_forecast", "forecast_history", "forecast_accuracy", "win_probability",
                "weighted_pipeline", "next_best_product", "model_registry"}


def test_assets_train_grade_and_write_scores_with_the_model_version(ml_home_copy):
    home = ml_home_copy
    result = dg.materialize([trained_models, model_scores],
                            resources={"crm_home": CrmHomeResource(root=str(home.root))})
    assert result.success
    registry = ModelRegistry(home)
    versions = {name: registry.current_version(name) for name in MODEL_NAMES}
    assert all(versions.values())
    for name in MODEL_NAMES:
        meta = registry.metadata(name)
        assert meta["grade"]["grade"] in {"A", "B", "C"}
        assert {"training_window", "data_version", "metrics", "baseline_metrics", "package_versions", "seed"} <= set(meta)
        assert meta["seed"] == 42
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        tables = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'scores'").fetchall()}
        assert tables >= SCORE_TABLES
        for table, name in (("churn_scores", "churn"), ("sales_forecast", "sales_forecast"),
                            ("win_probability", "win_probability"), ("next_best_product", "next_best_product")):
            used = con.execute(f"select distinct model_version from scores.{table}").fetchall()  # noqa: S608
            assert used == [(versions[name],)]
        registry_rows = con.execute(
            "select model_name, grade, metrics_json, is_current from scores.model_registry").fetchall()
        assert {r[0] for r in registry_rows} == set(MODEL_NAMES)
        assert all(r[3] for r in registry_rows)
        churn_metrics = json.loads(next(r[2] for r in registry_rows if r[0] == "churn"))
        assert churn_metrics["roc_auc"] > 0.8
        forecasts = con.execute("select count(*), count(distinct slice_type) from scores.sales_forecast").fetchall()
        assert forecasts[0][1] == 4 and forecasts[0][0] >= 4 * 6
        history_before = con.execute("select count(*) from scores.forecast_history").fetchall()[0][0]
        assert history_before == forecasts[0][0]

    # scoring again (the nightly run) keeps the versions and does not duplicate the stored forecast
    with duckdb.connect(str(home.warehouse)) as con:
        report = score_models(home, con)
        assert report.versions == versions
        assert con.execute("select count(*) from scores.forecast_history").fetchall()[0][0] == history_before
        # ingestion creates these empty before the first scoring run: they must have the columns scoring writes
        from pipelines.lib.warehouse import SCORE_PLACEHOLDERS

        for table, columns in SCORE_PLACEHOLDERS.items():
            written = con.execute("select column_name, data_type from information_schema.columns "
                                  "where table_schema = 'scores' and table_name = ? order by ordinal_position",
                                  [table]).fetchall()
            assert written == list(columns.items()), table


def test_models_are_retrained_weekly(tmp_path):
    from pipelines.lib.home import CrmHome

    registry = ModelRegistry(CrmHome(tmp_path).ensure())
    assert needs_training(registry, "churn")  # no version yet
    saved = registry.save("churn", {"weights": [1.0]}, {"seed": 1})
    trained_at = datetime.strptime(saved.version[:15], "%Y%m%dT%H%M%S")
    assert not needs_training(registry, "churn", now=trained_at + timedelta(days=6))
    assert needs_training(registry, "churn", now=trained_at + timedelta(days=7))


def test_past_forecasts_are_scored_against_what_happened(tmp_path):
    from datetime import date

    import polars as pl

    from models.jobs import append_forecast_history, score_past_forecasts
    from models.registry import ModelVersion

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts")
    con.execute("""create table marts.fct_revenue_monthly_by_slice as select * from (values
        ('overall', 'all', date '2026-01-01', true, 100.0),
        ('overall', 'all', date '2026-02-01', true, 130.0),
        ('overall', 'all', date '2026-03-01', false, 10.0)
    ) t(slice_type, slice_value, month_start, is_complete_month, revenue)""")
    made = pl.DataFrame({
        "slice_type": ["overall"] * 3, "slice_value": ["all"] * 3, "origin_month": [date(2025, 12, 1)] * 3,
        "month_start": [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)], "horizon": [1, 2, 3],
        "forecast": [110.0, 110.0, 110.0], "lower_95": [80.0] * 3, "lower_80": [90.0] * 3,
        "upper_80": [120.0] * 3, "upper_95": [140.0] * 3})
    version = ModelVersion("sales_forecast", "20260101T000000-abcdef12", tmp_path, {})
    assert append_forecast_history(con, made, version, datetime(2026, 1, 1)) == 3
    assert append_forecast_history(con, made, version, datetime(2026, 1, 2)) == 3  # same origin: replaced
    assert score_past_forecasts(con) == 2  # March is not complete yet
    rows = con.execute("select month_start, absolute_error, inside_80, inside_95 from scores.forecast_accuracy "
                       "order by month_start").fetchall()
    assert rows == [(date(2026, 1, 1), 10.0, True, True), (date(2026, 2, 1), 20.0, False, True)]

