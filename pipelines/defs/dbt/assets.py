"""dbt models as Dagster assets (dagster-dbt): one asset per model, dbt tests as asset checks.

Asset keys: dbt sources of the `raw` schema map to `["raw", <entity>]`, the keys of the ingest assets, so
every staging model hangs off the asset that loads its table; models are keyed `[<schema>, <model>]`
(e.g. `["marts", "dim_customer_360"]`, `["intermediate", "int_customers_resolved"]`) and grouped by their
folder (`dbt_marts_customers`, `dbt_staging_crm`, ...). The dbt step joins the warehouse pool: it writes
the same DuckDB file as ingestion (one writer, architecture rule 1 in docs).
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pipelines.defs.dbt.resources import crm_dbt_project, warehouse_env
from pipelines.defs.ingest.resources import WAREHOUSE_POOL, CrmHomeResource


class CrmDbtTranslator(DagsterDbtTranslator):
    """Keys and groups that follow the warehouse layout (schema, then table)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        # sources live in schema `raw` (-> ["raw", <entity>], the ingest asset); models in their +schema
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        folders = dbt_resource_props["fqn"][1:-1]  # fqn: [project, folder..., model]
        return "dbt_" + "_".join(folders) if folders else "dbt"


translator = CrmDbtTranslator(
    settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_source_metadata=False)
)


@dbt_assets(
    manifest=crm_dbt_project().manifest_path,
    project=crm_dbt_project(),
    dagster_dbt_translator=translator,
    pool=WAREHOUSE_POOL,
    name="crm_dbt_models",
)
def crm_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, crm_home: CrmHomeResource):
    """`dbt build` of the selected models (tests included) against the run's warehouse."""
    with warehouse_env(crm_home.home) as warehouse:
        context.log.info(f"dbt build against {warehouse}")
        yield from dbt.cli(["build"], context=context).stream()
