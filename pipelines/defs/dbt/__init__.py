"""dbt concern: the dbt project's models as assets (with tests as checks) and the `dbt` resource."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.dbt.assets import crm_dbt_models
from pipelines.defs.dbt.resources import dbt_cli_resource

defs = dg.Definitions(
    assets=[crm_dbt_models],
    resources={"dbt": dbt_cli_resource()},
)
