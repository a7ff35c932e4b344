"""ML assets: train the models (a new version at most weekly) and score them on every full run.

`trained_models` backtests, grades and registers a new version of each model whose current version is
older than a week (or missing); the weekly `ml_training` schedule forces a retrain of all. `model_scores`
scores the latest marts with the current versions and writes the `scores` schema (churn_scores,
sales_forecast, forecast_history, forecast_accuracy, win_probability, weighted_pipeline,
next_best_product, model_registry), which the publish step copies into the readers' snapshot.
Both write the warehouse, so both join the warehouse pool (one writer, architecture rule 1 in docs); the
bodies are the plain functions of models/jobs.py that tests call without Dagster.
"""

# no `from __future__ import annotations`: Dagster resolves the config class from the real annotation
import dagster as dg

from pipelines.defs.ingest.resources import WAREHOUSE_POOL, CrmHomeResource

ML_GROUP = "ml"
TRAINED_MODELS = dg.AssetKey(["ml", "trained_models"])
MODEL_SCORES = dg.AssetKey(["scores", "model_scores"])
#: the marts the models read (dbt asset keys are [schema, model])
INPUT_MARTS = [dg.AssetKey(["marts", name]) for name in (
    "fct_customer_monthly_activity", "fct_revenue_monthly_by_slice", "fct_customer_product_purchases",
    "fct_opportunities", "fct_deal_stages")]


class TrainConfig(dg.Config):
    force: bool = False
    seed: int = 42


@dg.asset(
    key=TRAINED_MODELS, group_name=ML_GROUP, deps=INPUT_MARTS, pool=WAREHOUSE_POOL, kinds={"scikit-learn", "duckdb"},
    description="Backtested, graded model versions in CrmHome.model_artifacts (retrained when a week old).",
)
def trained_models(context: dg.AssetExecutionContext, config: TrainConfig,
                   crm_home: CrmHomeResource) -> dg.MaterializeResult:
    from models.jobs import train_models

    with crm_home.warehouse_writer() as con:
        report = train_models(crm_home.home, con, seed=config.seed, only_stale=not config.force,
                              progress=context.log.info)
    for name, error in report.errors.items():
        context.log.warning(f"model {name} was not trained: {error}")
    return dg.MaterializeResult(metadata={
        "versions": dg.MetadataValue.json(report.versions),
        "grades": dg.MetadataValue.json(report.grades),
        "train_seconds": dg.MetadataValue.json(report.seconds),
        "not_trained": dg.MetadataValue.json(report.errors),
        "artifacts": dg.MetadataValue.path(str(crm_home.home.model_artifacts)),
    })


@dg.asset(
    key=MODEL_SCORES, group_name=ML_GROUP, deps=[TRAINED_MODELS, *INPUT_MARTS], pool=WAREHOUSE_POOL,
    kinds={"scikit-learn", "duckdb"},
    description="scores.* tables: churn, sales forecast (+history, accuracy), win probability, next best product.",
)
def model_scores(context: dg.AssetExecutionContext, crm_home: CrmHomeResource) -> dg.MaterializeResult:
    from models.jobs import score_models

    with crm_home.warehouse_writer() as con:
        report = score_models(crm_home.home, con, progress=context.log.info)
    for name, error in report.errors.items():
        context.log.warning(f"model {name} has no version to score with: {error}")
    return dg.MaterializeResult(metadata={
        "rows": dg.MetadataValue.json(report.rows),
        "versions": dg.MetadataValue.json(report.versions),
        "grades": dg.MetadataValue.json(report.grades),
        "score_seconds": dg.MetadataValue.json(report.seconds),
    })
