"""The ingest job and its hourly schedule (the nightly full build lives in pipelines/definitions.py,
because it spans every concern's assets)."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.ingest.assets import RAW_GROUP

INGEST_JOB = "ingest_job"

ingest_job = dg.define_asset_job(
    INGEST_JOB, selection=dg.AssetSelection.groups(RAW_GROUP),
    description="Load new and changed records from the operational store and the landing folder into raw.",
)

hourly_ingest_schedule = dg.ScheduleDefinition(
    name="hourly_ingest", job=ingest_job, cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: pick up new store edits and landing files (unchanged files are skipped).",
)
