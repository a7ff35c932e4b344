"""Resources of the ingest assets: which CRM home a run works on, and the warehouse writer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.lib.home import CrmHome
from pipelines.lib.warehouse import warehouse_writer


class CrmHomeResource(dg.ConfigurableResource):
    """The installation folder (architecture rule 8 in docs); empty means $CRM_HOME or the default home.

    Shared by every concern (ingest, dbt, ML, publish) under the resource key `crm_home`.
    """

    root: str = ""
    lock_wait_seconds: float = 10.0

    @property
    def home(self) -> CrmHome:
        return CrmHome(Path(self.root).expanduser().resolve()) if self.root else CrmHome.from_env()

    @contextmanager
    def warehouse_writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The one way assets open the warehouse for writing (raises WarehouseLockedError if held)."""
        self.home.ensure()
        with warehouse_writer(self.home.warehouse, self.lock_wait_seconds) as con:
            yield con


#: Dagster concurrency pool every warehouse-writing asset joins; dagster.yaml limits pools to 1 slot.
WAREHOUSE_POOL = "warehouse"
