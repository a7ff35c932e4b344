"""THE Dagster entry point (`dagster dev -m pipelines.definitions`, `crm run`, `crm ui`).

Each concern contributes one `Definitions` object from `pipelines/defs/<concern>/__init__.py`; to add
yours, import it and append it to `CONCERNS` - nothing else here needs to change. This module owns what
is platform-wide: the shared `crm_home` resource, the in-process executor (DuckDB steps must run in one
process: one writer, architecture rule 1 in docs), the full-build job over every asset and its nightly
schedule.
"""

from __future__ import annotations

import dagster as dg

from pipelines.defs import dbt, ingest, ml, publish
from pipelines.defs.ingest.resources import CrmHomeResource

# Modules, not their Definitions objects: Dagster's loader refuses a module with more than one
# Definitions object at module scope, so only `defs` below may be one.
CONCERNS = [ingest, dbt, ml, publish]

FULL_BUILD_JOB = "full_build_job"

full_build_job = dg.define_asset_job(
    FULL_BUILD_JOB, selection=dg.AssetSelection.all(),
    description="Everything: ingest, dbt marts, models, publish (every asset of every concern).",
)

nightly_full_build_schedule = dg.ScheduleDefinition(
    name="nightly_full_build", job=full_build_job, cron_schedule="0 2 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 02:00: the whole pipeline, so marts, scores and the snapshot are fresh.",
)

defs = dg.Definitions.merge(
    *(concern.defs for concern in CONCERNS),
    dg.Definitions(
        jobs=[full_build_job],
        schedules=[nightly_full_build_schedule],
        resources={"crm_home": CrmHomeResource()},
        executor=dg.in_process_executor,
    ),
)
