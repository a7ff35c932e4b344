"""Asset checks and freshness of the raw layer.

- `rows_reconciled` (blocking, one per raw asset, evaluated inside the asset right after its
  transaction commits): for every source file of the batch, rows read = rows loaded + rows quarantined
  + exact duplicates dropped, recomputed from `raw._load_log`. A failing check stops downstream assets.
- freshness: every raw asset carries `RAW_FRESHNESS` (warn after a day without an update, fail after
  two), which the UI shows next to the asset; the hourly ingest keeps it green.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from pipelines.contract import Entity

RECONCILED_CHECK = "rows_reconciled"
RAW_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=48), warn_window=timedelta(hours=26))


def reconciled_check_spec(entity: Entity, key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        RECONCILED_CHECK, asset=key, blocking=True,
        description=f"Per source of {entity.name}: rows read = rows loaded + rows quarantined + exact "
                    "duplicates dropped.")
