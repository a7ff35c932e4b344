"""Train and score every model against an open warehouse connection: what `crm train` and the Dagster
ML assets call (plain functions, so tests call them without Dagster).

Training backtests each model, grades it, saves a new version in the registry (CrmHome.model_artifacts)
and records it in `scores.model_registry`. Scoring loads each model's current version, scores the latest
data and writes `scores.*` with the model version; every sales forecast is also appended to
`scores.forecast_history` and past forecasts are scored against what happened in `scores.forecast_accuracy`.
Models read marts only (architecture rule 7 in docs).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import polars as pl

from models import churn, forecast, next_best_product, win_probability
from models.clv import job as clv_job
from models.common import TrainedModel
from models.features import read_mart
from models.registry import ModelRegistry, ModelVersion
from pipelines.lib.home import CrmHome

MODEL_NAMES = (churn.NAME, forecast.NAME, win_probability.NAME, next_best_product.NAME, clv_job.NAME)
INPUT_MARTS = ("fct_customer_monthly_activity", "fct_revenue_monthly_by_slice", "fct_customer_product_purchases",
               "fct_opportunities", "fct_deal_stages")
SCHEMA = "scores"
#: a model version younger than this is kept by the nightly run (the weekly schedule forces a retrain)
RETRAIN_AFTER_DAYS = 7


@dataclass
class MartInputs:
    activity: pl.DataFrame
    revenue: pl.DataFrame
    purchases: pl.DataFrame
    opportunities: pl.DataFrame
    deal_stages: pl.DataFrame
    data_version: str

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection) -> MartInputs:
        missing = [m for m in INPUT_MARTS if not _table_exists(con, "marts", m)]
        if missing:
            raise RuntimeError(f"the warehouse has no marts.{', marts.'.join(missing)}; run the pipeline "
                               "(`crm run`) so dbt builds the marts before training or scoring models.")
        frames = {name: read_mart(con, name) for name in INPUT_MARTS}
        return cls(frames["fct_customer_monthly_activity"], frames["fct_revenue_monthly_by_slice"],
                   frames["fct_customer_product_purchases"], frames["fct_opportunities"],
                   frames["fct_deal_stages"], data_version(con, frames))


@dataclass
class JobReport:
    """What a train or score job did: per model, seconds, version, grade or rows written, and failures."""

    seconds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    grades: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? and "
                            "table_name = ?", [schema, table]).fetchall()[0][0])


def data_version(con: duckdb.DuckDBPyConnection, frames: dict[str, pl.DataFrame]) -> str:
    """A fingerprint of the training data: the as-of date, each input mart's rows and the last load batch."""
    as_of = frames["fct_customer_monthly_activity"]["as_of_date"].max()
    parts = [f"as_of={as_of}"] + [f"{name}={frame.height}" for name, frame in sorted(frames.items())]
    if _table_exists(con, "raw", "_load_log"):
        batch = con.execute("select max(batch_id) from raw._load_log").fetchall()[0][0]
        parts.append(f"batch={batch}")
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]
    return f"{as_of}-{digest}"


def _trainers(inputs: MartInputs, seed: int) -> dict[str, Callable[[], TrainedModel]]:
    return {
        churn.NAME: lambda: churn.train(inputs.activity, seed=seed),
        forecast.NAME: lambda: forecast.train(inputs.revenue, seed=seed),
        win_probability.NAME: lambda: win_probability.train(inputs.opportunities, inputs.deal_stages,
                                                            inputs.activity, seed=seed),
        next_best_product.NAME: lambda: next_best_product.train(inputs.purchases, inputs.activity, seed=seed),
        clv_job.NAME: lambda: clv_job.train(inputs.purchases, inputs.activity, seed=seed),
    }


def needs_training(registry: ModelRegistry, name: str, now: datetime | None = None) -> bool:
    """True when the model has no version or its current version is older than RETRAIN_AFTER_DAYS."""
    version = registry.current_version(name)
    if version is None:
        return True
    trained = datetime.strptime(version[:15], "%Y%m%dT%H%M%S")
    now = now or datetime.now(UTC).replace(tzinfo=None)
    return (now - trained).days >= RETRAIN_AFTER_DAYS


def train_models(home: CrmHome, con: duckdb.DuckDBPyConnection, seed: int = 42, names: tuple[str, ...] = MODEL_NAMES,
                 only_stale: bool = False, progress: Callable[[str], None] | None = None) -> JobReport:
    """Backtest, grade and register a new version of each model; a model that cannot train is reported."""
    registry = ModelRegistry(home)
    inputs = MartInputs.read(con)
    trainers = _trainers(inputs, seed)
    report = JobReport()
    for name in names:
        if only_stale and not needs_training(registry, name):
            report.versions[name] = registry.current_version(name) or ""
            continue
        if progress:
            progress(f"training {name}")
        start = time.perf_counter()
        try:
            trained = trainers[name]()
        except ValueError as exc:  # too little data for this model: the others still train
            report.errors[name] = str(exc)
            continue
        trained.metadata["data_version"] = inputs.data_version
        trained.metadata["train_seconds"] = round(time.perf_counter() - start, 3)
        saved = registry.save(name, trained.artifacts, trained.metadata)
        report.seconds[name] = trained.metadata["train_seconds"]
        report.versions[name] = saved.version
        report.grades[name] = trained.grade
    write_registry_table(con, registry)
    return report


def write_registry_table(con: duckdb.DuckDBPyConnection, registry: ModelRegistry) -> int:
    """`scores.model_registry`: every stored version with its grade, metrics, window and versions."""
    rows = []
    for name in MODEL_NAMES:
        current = registry.current_version(name)
        for version in registry.versions(name):
            meta = registry.metadata(name, version)
            rows.append({
                "model_name": name,
                "model_version": version,
                "trained_at": datetime.fromisoformat(meta["trained_at"]),
                "is_current": version == current,
                "grade": meta["grade"]["grade"],
                "grade_reason": meta["grade"]["reason"],
                "grade_rule": meta["grade"]["rule"],
                "target": meta.get("target"),
                "metrics_json": json.dumps(meta["metrics"], default=str),
                "baseline_metrics_json": json.dumps(meta["baseline_metrics"], default=str),
                "training_window_json": json.dumps(meta["training_window"], default=str),
                "data_version": meta.get("data_version"),
                "package_versions_json": json.dumps(meta["package_versions"]),
                "seed": int(meta["seed"]),
                "train_seconds": float(meta.get("train_seconds", 0.0)),
            })
    schema = {"model_name": pl.String, "model_version": pl.String, "trained_at": pl.Datetime("us"),
              "is_current": pl.Boolean, "grade": pl.String, "grade_reason": pl.String, "grade_rule": pl.String,
              "target": pl.String, "metrics_json": pl.String, "baseline_metrics_json": pl.String,
              "training_window_json": pl.String, "data_version": pl.String, "package_versions_json": pl.String,
              "seed": pl.Int64, "train_seconds": pl.Float64}
    return _replace_table(con, "model_registry", pl.DataFrame(rows, schema=schema))


def _replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    con.execute(f"create schema if not exists {SCHEMA}")
    con.register("_ml_frame", frame)
    try:
        con.execute(f'create or replace table {SCHEMA}."{table}" as select * from _ml_frame')
    finally:
        con.unregister("_ml_frame")
    return frame.height


def _with_version(frame: pl.DataFrame, model: ModelVersion, scored_at: datetime) -> pl.DataFrame:
    return frame.with_columns(pl.lit(model.version).alias("model_version"), pl.lit(scored_at).alias("scored_at"))


def score_models(home: CrmHome, con: duckdb.DuckDBPyConnection, seed: int = 42,
                 progress: Callable[[str], None] | None = None) -> JobReport:
    """Score with each model's current version (training first any model that has none yet)."""
    registry = ModelRegistry(home)
    missing = tuple(name for name in MODEL_NAMES if registry.current_version(name) is None)
    report = JobReport()
    if missing:
        trained = train_models(home, con, seed, missing, progress=progress)
        report.errors.update(trained.errors)
    inputs = MartInputs.read(con)
    scored_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    scorers: dict[str, Callable[[dict, ModelVersion], dict[str, pl.DataFrame]]] = {
        churn.NAME: lambda art, mv: {"churn_scores": churn.score(art, inputs.activity)},
        forecast.NAME: lambda art, mv: {"sales_forecast": forecast.score(art, inputs.revenue, mv.metadata["series"])},
        win_probability.NAME: lambda art, mv: _win_tables(art, mv, inputs),
        next_best_product.NAME: lambda art, mv: {
            "next_best_product": next_best_product.score(art, inputs.purchases, inputs.activity)},
        clv_job.NAME: lambda art, mv: {"clv_scores": clv_job.score(art, inputs.purchases, inputs.activity)},
    }
    for name in MODEL_NAMES:
        if registry.current_version(name) is None:
            continue
        if progress:
            progress(f"scoring {name}")
        start = time.perf_counter()
        artifacts, version = registry.load(name)
        tables = scorers[name](artifacts, version)
        for table, frame in tables.items():
            report.rows[table] = _replace_table(con, table, _with_version(frame, version, scored_at))
        if name == forecast.NAME:
            report.rows["forecast_history"] = append_forecast_history(con, tables["sales_forecast"], version,
                                                                      scored_at)
            report.rows["forecast_accuracy"] = score_past_forecasts(con)
        report.seconds[name] = round(time.perf_counter() - start, 3)
        report.versions[name] = version.version
        report.grades[name] = version.metadata["grade"]["grade"]
    write_registry_table(con, registry)
    return report


def _win_tables(artifacts: dict, version: ModelVersion, inputs: MartInputs) -> dict[str, pl.DataFrame]:
    scores = win_probability.score(artifacts, version.metadata["stage_rates"], inputs.opportunities,
                                   inputs.deal_stages, inputs.activity)
    return {"win_probability": scores, "weighted_pipeline": win_probability.weighted_pipeline(scores)}


def append_forecast_history(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, version: ModelVersion,
                            made_at: datetime) -> int:
    """Keep every forecast as made; re-scoring the same origin with the same version replaces it (idempotent)."""
    con.execute(f"create schema if not exists {SCHEMA}")
    history = frame.with_columns(pl.lit(version.version).alias("model_version"),
                                 pl.lit(made_at).alias("forecast_made_at"))
    con.register("_ml_frame", history)
    try:
        con.execute(f"create table if not exists {SCHEMA}.forecast_history as select * from _ml_frame limit 0")
        origin = frame["origin_month"].max()
        con.execute(f"delete from {SCHEMA}.forecast_history where model_version = ? and origin_month = ?",
                    [version.version, origin])
        con.execute(f"insert into {SCHEMA}.forecast_history by name select * from _ml_frame")
    finally:
        con.unregister("_ml_frame")
    return con.execute(f"select count(*) from {SCHEMA}.forecast_history").fetchall()[0][0]


def score_past_forecasts(con: duckdb.DuckDBPyConnection) -> int:
    """`scores.forecast_accuracy`: each stored forecast of a month that is now complete, against the actual."""
    con.execute(f"""
        create or replace table {SCHEMA}.forecast_accuracy as
        with actuals as (
            select slice_type, slice_value, month_start, revenue as actual
            from marts.fct_revenue_monthly_by_slice
            where is_complete_month
        )
        select
            history.model_version,
            history.forecast_made_at,
            history.origin_month,
            history.slice_type,
            history.slice_value,
            history.month_start,
            history.horizon,
            history.forecast,
            actuals.actual,
            history.forecast - actuals.actual as error,
            abs(history.forecast - actuals.actual) as absolute_error,
            case when actuals.actual <> 0 then abs(history.forecast - actuals.actual) / abs(actuals.actual) end
                as absolute_percentage_error,
            actuals.actual between history.lower_80 and history.upper_80 as inside_80,
            actuals.actual between history.lower_95 and history.upper_95 as inside_95,
        from {SCHEMA}.forecast_history as history
        inner join actuals
            using (slice_type, slice_value, month_start)
    """)
    return con.execute(f"select count(*) from {SCHEMA}.forecast_accuracy").fetchall()[0][0]
