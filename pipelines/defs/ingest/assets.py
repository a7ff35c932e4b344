"""One asset per contract entity: `raw/<entity>` (op name `raw_<entity>`), loaded by the plain ingest
functions in `pipelines.lib.ingest`.

Asset keys are `["raw", <entity>]`, the keys dagster-dbt gives the dbt sources of the raw schema, so
staging models hang off these assets without extra wiring. Interactions are daily partitions; a run
without a partition loads every new or changed day file, a partition (or range: one run, see the
backfill policy) re-reads exactly those days and replaces them.

Transient faults (warehouse lock held, file vanished or unreadable mid-read, store connection lost)
raise `RetryRequested` with exponential backoff; data problems never raise, they are quarantined.
Each asset carries a blocking check: rows read = loaded + quarantined + exact duplicates dropped.
Landing files that are not read (see `pipelines.lib.ingest.landing`) are logged as warnings and listed in
the metadata (`files_not_read`) of the raw assets of the run, with what to do about each.
"""


import os
from datetime import date

import dagster as dg
import sqlalchemy.exc

from pipelines.contract import Entity, load_contract
from pipelines.defs.ingest.checks import RAW_FRESHNESS, RECONCILED_CHECK, reconciled_check_spec
from pipelines.defs.ingest.resources import WAREHOUSE_POOL, CrmHomeResource
from pipelines.lib.ingest import EntityResult, Ingestor, entity_order, reconcile
from pipelines.lib.ingest.landing import IgnoredFile
from pipelines.lib.warehouse import WarehouseLockedError

RAW_GROUP = "raw"
MAX_TRANSIENT_RETRIES = 4

#: First day interaction partitions exist for (the demo history reaches back at most ten years).
INTERACTIONS_START = os.environ.get("CRM_INTERACTIONS_START", "2016-01-01")
interaction_days = dg.DailyPartitionsDefinition(start_date=INTERACTIONS_START, end_offset=1)

TRANSIENT_ERRORS = (WarehouseLockedError, OSError, sqlalchemy.exc.OperationalError)


class IngestConfig(dg.Config):
    force: bool = False  # re-read landing files even when their sha256 is unchanged


def raw_key(entity_name: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", entity_name])


def _deps(entity: Entity) -> list[dg.AssetKey]:
    refs = {c.reference[0] for c in entity.columns if c.reference and c.reference[0] != entity.name}
    return [raw_key(r) for r in sorted(refs)]


def _run_ingest(context: dg.AssetExecutionContext, crm_home: CrmHomeResource, entity: Entity,
                force: bool, days: list[date] | None) -> tuple[EntityResult, list[dict], list[IgnoredFile]]:
    try:
        with crm_home.warehouse_writer() as con:
            ingestor = Ingestor(crm_home.home, con, batch_id=context.run_id)
            try:
                result = ingestor.ingest(entity.name, force=force, days=days)
            finally:
                ingestor.close()
            # files of this entity's folder, and those of no entity folder in the run's first step
            entities = load_contract().entities
            ignored = [f for f in ingestor.ignored if f.entity == entity.name
                       or (f.entity not in entities and f in ingestor.ignored_logged)]
            problems = reconcile(con, context.run_id, entity.name)
    except TRANSIENT_ERRORS as exc:
        wait = 2 ** (context.retry_number + 1)
        context.log.warning(f"Transient fault loading {entity.name} ({exc}); retrying in {wait}s.")
        raise dg.RetryRequested(max_retries=MAX_TRANSIENT_RETRIES, seconds_to_wait=wait) from exc
    return result, problems, ignored


def _outcome(entity: Entity, result: EntityResult, problems: list[dict],
             ignored: list[IgnoredFile]) -> dg.MaterializeResult:
    for bad in result.unreadable:
        dg.get_dagster_logger().error(bad.error)
    for skipped in ignored:
        dg.get_dagster_logger().warning(skipped.message)
    loaded = [s for s in result.sources if s.status == "loaded"]
    metadata = {
        "rows_read": result.total("rows_read"),
        "rows_loaded": result.total("rows_loaded"),
        "rows_quarantined": result.total("rows_quarantined"),
        "duplicates_dropped": result.total("duplicates_dropped"),
        "rows_erased": result.total("rows_erased"),
        "sources_loaded": len(loaded),
        "sources_skipped_unchanged": sum(s.status == "skipped_unchanged" for s in result.sources),
        "unreadable_files": dg.MetadataValue.json([{"file": s.source_file, "error": s.error}
                                                   for s in result.unreadable]),
        "files_not_read": dg.MetadataValue.json([{"file": f.source_file, "reason": f.reason, "message": f.message}
                                                 for f in ignored]),
        "table": f"raw.{entity.name}",
    }
    check = dg.AssetCheckResult(
        check_name=RECONCILED_CHECK, passed=not problems,
        metadata={"sources_checked": len(loaded),
                  "mismatches": dg.MetadataValue.json([{k: str(v) for k, v in p.items()} for p in problems])},
        description=None if not problems else "rows read differ from loaded + quarantined + duplicates",
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


def _check_spec(entity: Entity) -> dg.AssetCheckSpec:
    return reconciled_check_spec(entity, raw_key(entity.name))


def _entity_asset(entity: Entity) -> dg.AssetsDefinition:
    sources = " and ".join(entity.source)

    @dg.asset(
        key=raw_key(entity.name), group_name=RAW_GROUP, deps=_deps(entity),
        pool=WAREHOUSE_POOL, check_specs=[_check_spec(entity)], kinds={"duckdb", "python"},
        freshness_policy=RAW_FRESHNESS,
        description=f"raw.{entity.name}: {entity.description} Loaded from {sources}; bad rows quarantined.",
    )
    def _asset(context: dg.AssetExecutionContext, crm_home: CrmHomeResource,
               config: IngestConfig) -> dg.MaterializeResult:
        return _outcome(entity, *_run_ingest(context, crm_home, entity, config.force, None))

    return _asset


def _interactions_asset(entity: Entity) -> dg.AssetsDefinition:
    @dg.asset(
        key=raw_key(entity.name), group_name=RAW_GROUP, deps=_deps(entity),
        pool=WAREHOUSE_POOL, check_specs=[_check_spec(entity)], kinds={"duckdb", "python"},
        partitions_def=interaction_days, backfill_policy=dg.BackfillPolicy.single_run(),
        description=f"raw.{entity.name}: {entity.description}",
    )
    def _asset(context: dg.AssetExecutionContext, crm_home: CrmHomeResource,
               config: IngestConfig) -> dg.MaterializeResult:
        if context.has_partition_key or context.has_partition_key_range:
            days = [date.fromisoformat(k) for k in context.partition_keys]
            return _outcome(entity, *_run_ingest(context, crm_home, entity, True, days))
        # catch-up: every new or changed day file
        return _outcome(entity, *_run_ingest(context, crm_home, entity, config.force, None))

    return _asset


def build_raw_assets() -> list[dg.AssetsDefinition]:
    contract = load_contract()
    return [(_interactions_asset if contract.entity(n).partition_by_day else _entity_asset)(contract.entity(n))
            for n in entity_order()]


raw_assets = build_raw_assets()
