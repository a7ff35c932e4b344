"""Ingest concern: raw assets, their checks, the ingest job, its schedule and the sensors."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.ingest.assets import raw_assets
from pipelines.defs.ingest.schedules import hourly_ingest_schedule, ingest_job
from pipelines.defs.ingest.sensors import landing_files_sensor, run_failure_alert

defs = dg.Definitions(
    assets=raw_assets,
    jobs=[ingest_job],
    schedules=[hourly_ingest_schedule],
    sensors=[landing_files_sensor, run_failure_alert],
)
