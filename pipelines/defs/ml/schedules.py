"""Weekly retraining of every model (scoring runs with each full build, see pipelines/definitions.py)."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.ml.assets import MODEL_SCORES, TRAINED_MODELS

ML_TRAIN_JOB = "ml_train_job"

ml_train_job = dg.define_asset_job(
    ML_TRAIN_JOB, selection=dg.AssetSelection.assets(TRAINED_MODELS, MODEL_SCORES),
    config={"ops": {"ml__trained_models": {"config": {"force": True}}}},
    description="Retrain, backtest and grade every model, then score with the new versions.",
)

weekly_training_schedule = dg.ScheduleDefinition(
    name="ml_weekly_training", job=ml_train_job, cron_schedule="0 4 * * 1",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Mondays 04:00: new model versions from the latest marts (after the nightly build).",
)
