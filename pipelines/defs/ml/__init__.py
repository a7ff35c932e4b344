"""ML concern: model training and scoring assets and the weekly training schedule."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.ml.assets import model_scores, trained_models
from pipelines.defs.ml.schedules import ml_train_job, weekly_training_schedule

defs = dg.Definitions(
    assets=[trained_models, model_scores],
    jobs=[ml_train_job],
    schedules=[weekly_training_schedule],
)
