"""Analysis behind the analyst notebooks (notebooks/*.ipynb), kept here so no logic lives only in a notebook.

Every function reads the published snapshot (`pipelines.lib.snapshot.snapshot`) and returns a polars frame
(or a pandas one where plotly wants a matrix). Model results come from the snapshot's `scores` schema and
the model registry; when a model has not been trained or scored yet, `churn_review` / `forecast_review` fit
it on the snapshot's marts in memory (nothing is saved) and say so in `ModelReview.note`, so a notebook on a
fresh home still shows the diagnostics instead of stopping.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import pandas as pd
import polars as pl

from pipelines.lib.home import CrmHome

_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


# --- reading the snapshot --------------------------------------------------------------------------------
def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """`schema.table` of every table in the snapshot."""
    rows = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
    return {f"{schema}.{name}" for schema, name in rows}


def read_table(con: duckdb.DuckDBPyConnection, name: str, *required: str) -> pl.DataFrame | None:
    """A whole snapshot table, or None when it is missing or lacks one of the `required` columns."""
    if not _NAME.match(name) or name not in table_names(con):
        return None
    schema, table = name.split(".")
    frame = con.sql(f'select * from "{schema}"."{table}"').pl()  # noqa: S608 - identifier checked above
    return frame if all(column in frame.columns for column in required) else None


def read_scores(con: duckdb.DuckDBPyConnection, name: str, *required: str) -> pl.DataFrame | None:
    """Model scores, or None when they are missing or still empty (ingestion creates some score tables
    empty before the first scoring run, so an empty table means "not computed yet")."""
    frame = read_table(con, name, *required)
    return None if frame is None or frame.is_empty() else frame


def as_of_date(con: duckdb.DuckDBPyConnection) -> date | None:
    """The date the marts were built as of (the last day of loaded data)."""
    frame = read_table(con, "marts.dim_customer_360", "as_of_date")
    return None if frame is None or frame.is_empty() else frame["as_of_date"].max()


def _mart(con: duckdb.DuckDBPyConnection, name: str) -> pl.DataFrame:
    frame = read_table(con, f"marts.{name}")
    if frame is None:
        raise LookupError(f"The snapshot has no table marts.{name}; run `crm run` to build and publish the marts.")
    return frame


def _rate(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


# --- funnel ------------------------------------------------------------------------------------------------
def stage_conversion(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Deals that reached each stage, the step conversion to the next one and the share of all deals created."""
    funnel = _mart(con, "fct_funnel_conversion").filter(pl.col("dimension") == "all")
    steps = (funnel.group_by("from_stage_order", "from_stage", "to_stage")
             .agg(pl.col("deals_entered").sum(), pl.col("deals_converted").sum(),
                  pl.col("deals_lost_at_stage").sum(), pl.col("deals_open_at_stage").sum())
             .sort("from_stage_order"))
    created = steps["deals_entered"].max() if steps.height else 0
    return steps.with_columns(
        _rate(pl.col("deals_converted"), pl.col("deals_entered")).alias("step_conversion"),
        _rate(pl.col("deals_entered"), pl.lit(created)).alias("share_of_created"),
    )


def time_in_stage(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Days deals spent in each open stage they left: median, quartiles, mean; stays still running excluded."""
    stages = _mart(con, "fct_deal_stages").filter(
        ~pl.col("is_closed_stage") & pl.col("exited_at").is_not_null() & pl.col("days_in_stage").is_not_null())
    return (stages.group_by("stage_order", "stage")
            .agg(pl.len().alias("stays"),
                 pl.col("days_in_stage").quantile(0.25).alias("p25_days"),
                 pl.col("days_in_stage").median().alias("median_days"),
                 pl.col("days_in_stage").quantile(0.75).alias("p75_days"),
                 pl.col("days_in_stage").mean().alias("mean_days"))
            .sort("stage_order"))


def stage_durations(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per completed stay in an open stage (for box plots of the spread)."""
    return (_mart(con, "fct_deal_stages")
            .filter(~pl.col("is_closed_stage") & pl.col("exited_at").is_not_null())
            .select("opportunity_id", "stage_order", "stage", "days_in_stage", "next_stage")
            .sort("stage_order"))


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: honest for the small counts of one rep or source."""
    if trials <= 0:
        return (math.nan, math.nan)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def win_rate_by(con: duckdb.DuckDBPyConnection, dimension: str) -> pl.DataFrame:
    """Closed deals, win rate with its 95% interval, won amount and cycle length per value of `dimension`
    (owner, team, region, lead_source, product_line or all), over every closed month."""
    rates = _mart(con, "fct_win_rates").filter(pl.col("dimension") == dimension)
    if rates.is_empty():
        known = sorted(_mart(con, "fct_win_rates")["dimension"].unique().to_list())
        raise ValueError(f"marts.fct_win_rates has no dimension {dimension!r}; use one of {', '.join(known)}.")
    summary = (rates.group_by("dimension_value")
               .agg(pl.col("deals_closed").sum(), pl.col("deals_won").sum(), pl.col("won_amount").sum(),
                    ((pl.col("avg_sales_cycle_days") * pl.col("deals_closed")).sum()
                     / pl.col("deals_closed").sum()).alias("avg_sales_cycle_days"))
               .with_columns(_rate(pl.col("deals_won"), pl.col("deals_closed")).alias("win_rate")))
    bounds = [wilson_interval(won, closed) for won, closed in summary.select("deals_won", "deals_closed").iter_rows()]
    names = _owner_names(con) if dimension == "owner" else {}
    return (summary.with_columns(pl.Series("win_rate_low", [b[0] for b in bounds]),
                                 pl.Series("win_rate_high", [b[1] for b in bounds]),
                                 pl.col("dimension_value").replace(names).alias("label"))
            .sort("win_rate", descending=True, nulls_last=True))


def _owner_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    reps = read_table(con, "marts.fct_rep_performance", "user_id", "full_name")
    return {} if reps is None else dict(reps.select("user_id", "full_name").iter_rows())


def lost_reasons(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Lost deals and lost amount per reason, with each reason's share of all lost deals."""
    lost = (_mart(con, "fct_lost_reasons").filter(pl.col("dimension") == "all")
            .group_by(pl.col("lost_reason").fill_null("(not given)"))
            .agg(pl.col("deals_lost").sum(), pl.col("lost_amount").sum()))
    return (lost.with_columns((pl.col("deals_lost") / pl.col("deals_lost").sum()).alias("share_of_lost_deals"))
            .sort("deals_lost", descending=True))


def weighted_pipeline(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Open amount and stage-rate weighted amount by expected close month and stage; where the win-probability
    model has scored the open deals, also the model-weighted amount."""
    pipeline = _mart(con, "fct_weighted_pipeline")
    model = read_scores(con, "scores.win_probability", "opportunity_id", "win_probability")
    if model is not None:
        pipeline = pipeline.join(model.select("opportunity_id", "win_probability"), on="opportunity_id", how="left")
    else:
        pipeline = pipeline.with_columns(pl.lit(None, dtype=pl.Float64).alias("win_probability"))
    return (pipeline.group_by("expected_close_month", "stage_order", "stage")
            .agg(pl.len().alias("open_deals"), pl.col("amount").sum().alias("open_amount"),
                 pl.col("weighted_amount").sum().alias("stage_rate_weighted_amount"),
                 (pl.col("amount") * pl.col("win_probability")).sum().alias("model_weighted_amount"),
                 pl.col("win_probability").is_not_null().any().alias("has_model_probability"))
            .sort("expected_close_month", "stage_order"))


def weighted_pipeline_monthly(pipeline: pl.DataFrame) -> pl.DataFrame:
    """`weighted_pipeline` summed over stages: one row per expected close month."""
    return (pipeline.group_by("expected_close_month")
            .agg(pl.col("open_deals").sum(), pl.col("open_amount").sum(), pl.col("stage_rate_weighted_amount").sum(),
                 pl.col("model_weighted_amount").sum(), pl.col("has_model_probability").any())
            .sort("expected_close_month"))


# --- model reviews -----------------------------------------------------------------------------------------
@dataclass
class ModelReview:
    """What a notebook shows about one model: its metadata (metrics, baseline, grade, backtest), its scores,
    where they came from, and one sentence saying so."""

    name: str
    source: str  # "published" | "fitted now" | "unavailable"
    note: str
    metadata: dict[str, Any]
    scores: pl.DataFrame | None


def registry_metadata(home: CrmHome, name: str) -> dict[str, Any] | None:
    """The current version's metadata.json from the model registry, or None before the first training."""
    from models.registry import ModelRegistry, RegistryError

    registry = ModelRegistry(home)
    if registry.current_version(name) is None:
        return None
    try:
        return registry.metadata(name)
    except (RegistryError, OSError, ValueError):
        return None


def churn_review(con: duckdb.DuckDBPyConnection, home: CrmHome) -> ModelReview:
    """Churn metadata from the registry and scores from `scores.churn_scores`; fitted now where missing."""
    import models.churn as churn

    metadata = registry_metadata(home, churn.NAME)
    scores = read_scores(con, "scores.churn_scores", "customer_key", "churn_probability")
    if metadata is not None and scores is not None:
        return ModelReview(churn.NAME, "published", f"Churn model version {metadata.get('version')} from the "
                           "registry and its published scores.", metadata, scores)
    try:
        activity = _mart(con, "fct_customer_monthly_activity")
        trained = churn.train(activity)
        fitted_scores = churn.score(trained.artifacts, activity)
    except (LookupError, ValueError) as exc:
        return ModelReview(churn.NAME, "unavailable", f"The churn model could not be evaluated: {exc}",
                           metadata or {}, scores)
    return ModelReview(churn.NAME, "fitted now", "No published churn model or scores in this home yet, so the "
                       "model was trained on the snapshot's marts just now (in memory, not saved).",
                       metadata or trained.metadata, scores if scores is not None else fitted_scores)


def metrics_vs_baseline(metadata: dict[str, Any], metrics: tuple[str, ...],
                        baseline_key: str = "baseline_metrics") -> pl.DataFrame:
    """One row per metric: the model's backtest figure, the baseline's and the difference."""
    model = metadata.get("metrics", {})
    baseline = metadata.get(baseline_key, {})
    rows = [{"metric": m, "model": model.get(m), "baseline": baseline.get(m)} for m in metrics if m in model]
    frame = pl.DataFrame(rows, schema={"metric": pl.String, "model": pl.Float64, "baseline": pl.Float64})
    return frame.with_columns((pl.col("model") - pl.col("baseline")).alias("difference"))


def calibration_frame(metadata: dict[str, Any]) -> pl.DataFrame:
    """The backtest's reliability table: mean predicted vs observed churn rate per equal-count bin."""
    rows = metadata.get("backtest", {}).get("calibration", [])
    return pl.DataFrame(rows, schema={"bin": pl.Int64, "rows": pl.Int64, "mean_predicted": pl.Float64,
                                      "observed_rate": pl.Float64})


def risk_band_summary(con: duckdb.DuckDBPyConnection, scores: pl.DataFrame) -> pl.DataFrame:
    """Customers, mean probability, expected churners and 12-month revenue at risk per risk band."""
    from models.churn.model import RISK_BANDS, risk_band

    if "risk_band" not in scores.columns:
        scores = scores.with_columns(pl.Series("risk_band", risk_band(scores["churn_probability"].to_numpy())))
    customers = read_table(con, "marts.dim_customer_360", "customer_key", "revenue_12m")
    revenue = (customers.select("customer_key", "revenue_12m") if customers is not None
               else pl.DataFrame(schema={"customer_key": pl.String, "revenue_12m": pl.Float64}))
    order = {name: i for i, (name, _) in enumerate(RISK_BANDS)}
    return (scores.join(revenue, on="customer_key", how="left")
            .group_by("risk_band")
            .agg(pl.len().alias("customers"), pl.col("churn_probability").mean().alias("mean_probability"),
                 pl.col("churn_probability").sum().alias("expected_churners"),
                 pl.col("revenue_12m").fill_null(0).sum().alias("revenue_12m"),
                 (pl.col("churn_probability") * pl.col("revenue_12m").fill_null(0)).sum().alias("revenue_at_risk"))
            .with_columns(pl.col("risk_band").replace_strict(order, default=len(order)).alias("_order"))
            .sort("_order").drop("_order"))


def driver_summary(scores: pl.DataFrame) -> pl.DataFrame:
    """How often each feature is among a customer's top three churn drivers, and its mean effect."""
    names = [c for c in ("driver_1", "driver_2", "driver_3") if c in scores.columns]
    if not names:
        return pl.DataFrame(schema={"driver": pl.String, "customers": pl.UInt32, "mean_effect": pl.Float64})
    parts = [scores.select(pl.col(c).alias("driver"),
                           (pl.col(f"{c}_effect") if f"{c}_effect" in scores.columns
                            else pl.lit(None, dtype=pl.Float64)).alias("effect")) for c in names]
    return (pl.concat(parts).drop_nulls("driver")
            .with_columns(pl.col("driver").str.split(" = ").list.first())
            .group_by("driver").agg(pl.len().alias("customers"), pl.col("effect").mean().alias("mean_effect"))
            .sort("customers", descending=True))


def forecast_review(con: duckdb.DuckDBPyConnection, home: CrmHome) -> ModelReview:
    """Forecast metadata from the registry and `scores.sales_forecast`; fitted now where missing."""
    import models.forecast as forecast

    metadata = registry_metadata(home, forecast.NAME)
    scores = read_scores(con, "scores.sales_forecast", "slice_type", "slice_value", "month_start", "forecast")
    if metadata is not None and scores is not None:
        return ModelReview(forecast.NAME, "published", f"Forecast model version {metadata.get('version')} from "
                           "the registry and its published forecast.", metadata, scores)
    try:
        revenue = _mart(con, "fct_revenue_monthly_by_slice")
        trained = forecast.train(revenue)
        fitted_scores = forecast.score(trained.artifacts, revenue, trained.metadata["series"])
    except (LookupError, ValueError) as exc:
        return ModelReview(forecast.NAME, "unavailable", f"The forecast could not be evaluated: {exc}",
                           metadata or {}, scores)
    return ModelReview(forecast.NAME, "fitted now", "No published forecast model or forecast in this home yet, "
                       "so the model was fitted on the snapshot's marts just now (in memory, not saved).",
                       metadata or trained.metadata, scores if scores is not None else fitted_scores)


def monthly_revenue(con: duckdb.DuckDBPyConnection, slice_type: str = "overall",
                    slice_value: str = "all") -> pl.DataFrame:
    """Actual revenue per month of one series (the last month may be incomplete: see is_complete_month)."""
    return (_mart(con, "fct_revenue_monthly_by_slice")
            .filter((pl.col("slice_type") == slice_type) & (pl.col("slice_value") == slice_value))
            .select("month_start", "is_complete_month", pl.col("revenue").alias("actual"))
            .sort("month_start"))


def forecast_with_actuals(con: duckdb.DuckDBPyConnection, forecast: pl.DataFrame, slice_type: str = "overall",
                          slice_value: str = "all") -> pl.DataFrame:
    """Actuals (complete months) next to the forecast and its intervals for one series, one row per month."""
    actuals = monthly_revenue(con, slice_type, slice_value).filter(pl.col("is_complete_month")).drop(
        "is_complete_month")
    bands = [c for c in ("lower_95", "lower_80", "upper_80", "upper_95") if c in forecast.columns]
    ahead = (forecast.filter((pl.col("slice_type") == slice_type) & (pl.col("slice_value") == slice_value))
             .select(pl.col("month_start").cast(pl.Date), "forecast", *bands))
    return actuals.join(ahead, on="month_start", how="full", coalesce=True).sort("month_start")


def backtest_by_horizon(predictions: pl.DataFrame) -> pl.DataFrame:
    """Rolling-origin backtest per horizon: MASE of the model and of seasonal-naive, 80% coverage."""
    from models.metrics import forecast_metrics

    rows = []
    for horizon in sorted(predictions["horizon"].unique().to_list()):
        part = predictions.filter(pl.col("horizon") == horizon)
        model = forecast_metrics(part, "forecast")
        naive = forecast_metrics(part.select("series", "actual", "scale", "seasonal_naive"), "seasonal_naive")
        rows.append({"horizon": int(horizon), "mase": model["mase"], "seasonal_naive_mase": naive["mase"],
                     "smape": model["smape"], "coverage_80": model.get("coverage_80")})
    return pl.DataFrame(rows)


def forecast_history_accuracy(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Stored past forecasts of the overall series whose month is complete, scored against the actual:
    absolute percentage error and whether the 80% interval held it, per origin month and horizon."""
    history = read_scores(con, "scores.forecast_history", "slice_type", "slice_value", "month_start", "forecast")
    if history is None:
        return pl.DataFrame()
    actuals = (_mart(con, "fct_revenue_monthly_by_slice").filter(pl.col("is_complete_month"))
               .select("slice_type", "slice_value", "month_start", pl.col("revenue").alias("actual")))
    keys = [c for c in ("model_version", "origin_month", "horizon") if c in history.columns]
    matured = (history.filter(pl.col("slice_type") == "overall")
               .with_columns(pl.col("month_start").cast(pl.Date))
               .join(actuals, on=["slice_type", "slice_value", "month_start"], how="inner"))
    inside = ((pl.col("actual") >= pl.col("lower_80")) & (pl.col("actual") <= pl.col("upper_80"))
              if {"lower_80", "upper_80"} <= set(history.columns) else pl.lit(None, dtype=pl.Boolean))
    return (matured.select(*keys, "month_start", "actual", "forecast",
                           _rate((pl.col("forecast") - pl.col("actual")).abs(), pl.col("actual").abs())
                           .alias("abs_pct_error"), inside.alias("inside_80"))
            .sort(*keys, "month_start"))


# --- customer value ----------------------------------------------------------------------------------------
def rfm_segment_summary(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per named RFM segment: customers, median recency, mean frequency and monetary, 12-month revenue share."""
    customers = _mart(con, "dim_customer_360").filter(~pl.col("is_archived").fill_null(False))
    return (customers.with_columns(pl.col("rfm_segment").fill_null("Not scored (no orders)"))
            .group_by("rfm_segment")
            .agg(pl.len().alias("customers"), pl.col("recency_days").median().alias("median_recency_days"),
                 pl.col("frequency").mean().alias("mean_orders_12m"), pl.col("monetary").mean().alias("mean_monetary"),
                 pl.col("revenue_12m").fill_null(0).sum().alias("revenue_12m"))
            .with_columns((pl.col("revenue_12m") / pl.col("revenue_12m").sum()).alias("share_of_revenue"))
            .sort("revenue_12m", descending=True))


def value_tier_summary(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per value tier: customers, 12-month revenue and margin, their shares, and revenue per customer."""
    customers = _mart(con, "dim_customer_360").filter(~pl.col("is_archived").fill_null(False))
    order = {"platinum": 0, "gold": 1, "silver": 2, "bronze": 3, "none": 4}
    return (customers.group_by(pl.col("value_tier").fill_null("none"))
            .agg(pl.len().alias("customers"), pl.col("revenue_12m").fill_null(0).sum().alias("revenue_12m"),
                 pl.col("margin_12m").fill_null(0).sum().alias("margin_12m"))
            .with_columns((pl.col("customers") / pl.col("customers").sum()).alias("share_of_customers"),
                          (pl.col("revenue_12m") / pl.col("revenue_12m").sum()).alias("share_of_revenue"),
                          (pl.col("revenue_12m") / pl.col("customers")).alias("revenue_per_customer"),
                          pl.col("value_tier").replace_strict(order, default=len(order)).alias("_order"))
            .sort("_order").drop("_order"))


def cohort_retention_matrix(con: duckdb.DuckDBPyConnection, max_months: int = 24) -> pd.DataFrame:
    """Retention rate with cohorts (first-order month) as rows and months since the first order as columns."""
    cohorts = (_mart(con, "fct_cohort_retention")
               .filter(pl.col("months_since_first_order") <= max_months)
               .with_columns(pl.col("cohort_month").dt.strftime("%Y-%m").alias("cohort")))
    matrix = cohorts.pivot("months_since_first_order", index="cohort", values="retention_rate",
                           sort_columns=True).sort("cohort")
    frame = matrix.to_pandas().set_index("cohort")
    frame.columns = [int(column) for column in frame.columns]  # pivot names columns as text
    frame.columns.name = "months_since_first_order"
    return frame


@dataclass
class ClvResult:
    """Per-customer CLV, where it came from, one sentence saying so, and the fitted parameters if fitted."""

    source: str  # "published" | "fitted now" | "unavailable"
    note: str
    customers: pl.DataFrame
    params: dict[str, dict[str, float]] | None = None


def clv_review(con: duckdb.DuckDBPyConnection, horizon_months: int = 12) -> ClvResult:
    """Published predicted CLV from the customer 360 if the model has scored; otherwise BG/NBD + Gamma-Gamma
    fitted now on the purchase mart (weekly time unit, observation end = the marts' as-of date)."""
    from models.clv import CustomerLifetimeValueModel, customer_summary

    customers = _mart(con, "dim_customer_360")
    if "predicted_clv" in customers.columns and customers["predicted_clv"].is_not_null().any():
        published = customers.filter(pl.col("predicted_clv").is_not_null()).select(
            "customer_key", pl.col("predicted_clv").alias("clv"), "historical_clv", "value_tier")
        return ClvResult("published", "Predicted CLV as published in marts.dim_customer_360.", published)
    end = as_of_date(con)
    purchases = read_table(con, "marts.fct_customer_product_purchases", "customer_key", "order_date", "revenue")
    if purchases is None or end is None:
        return ClvResult("unavailable", "No CLV scores and no purchase mart in this snapshot; run `crm run`.",
                         pl.DataFrame())
    summary = customer_summary(purchases, observation_end=end, customer_column="customer_key",
                               date_column="order_date", amount_column="revenue", time_unit_days=7.0)
    summary = summary.filter(pl.col("T") > 0)
    try:
        model = CustomerLifetimeValueModel(time_unit_days=7.0).fit(summary)
    except (ValueError, ArithmeticError) as exc:
        return ClvResult("unavailable", f"The CLV model could not be fitted: {exc}", pl.DataFrame())
    scored = pl.concat([summary, model.score(summary, horizon_months=horizon_months)], how="horizontal")
    scored = scored.join(customers.select("customer_key", "historical_clv", "value_tier"), on="customer_key",
                         how="left")
    return ClvResult("fitted now", "No CLV scores in this snapshot yet, so BG/NBD + Gamma-Gamma were fitted on "
                     f"marts.fct_customer_product_purchases just now ({horizon_months}-month horizon, in memory).",
                     scored, model.params_)
