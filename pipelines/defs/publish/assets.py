"""Publishing: the last step of a full build (architecture rule 2 in docs).

After every dbt model and the model scores are materialised, the marts, scores and data-quality tables are
copied into a new read-only snapshot and readers are switched to it atomically (`pipelines.lib.snapshot`).
The asset depends on every dbt model and on the scores, so Dagster runs it only when they all succeeded;
a failed build leaves the previous snapshot in place.
"""


import dagster as dg

from pipelines.defs.dbt.assets import crm_dbt_models
from pipelines.defs.ingest.resources import WAREHOUSE_POOL, CrmHomeResource
from pipelines.defs.ml.assets import MODEL_SCORES

SNAPSHOT = dg.AssetKey(["published", "snapshot"])


@dg.asset(
    key=SNAPSHOT,
    deps=[*sorted(crm_dbt_models.keys, key=lambda k: k.to_user_string()), MODEL_SCORES],
    group_name="publish",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="Read-only snapshot of marts, scores and data quality that the portal and notebooks read.",
)
def published_snapshot(context: dg.AssetExecutionContext, crm_home: CrmHomeResource) -> dg.MaterializeResult:
    from pipelines.lib.snapshot import publish

    with crm_home.warehouse_writer() as con:
        result = publish(crm_home.home, warehouse=con)
    context.log.info(f"Published snapshot {result.snapshot_id} ({len(result.tables)} tables) to {result.path}")
    return dg.MaterializeResult(metadata={
        "snapshot_id": result.snapshot_id,
        "path": dg.MetadataValue.path(str(result.path)),
        "tables": len(result.tables),
        "rows": sum(result.tables.values()),
        "publish_seconds": round(result.seconds, 2),
    })
