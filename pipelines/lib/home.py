"""One home folder holds all state of an installation (architecture rule 8 in docs).

Everything the platform writes lives below `CRM_HOME`, so tests, backups, erasure and the benchmark
each work on a folder of their own. URLs come from environment variables with embedded defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOME = REPO_ROOT / ".crm_home"


@dataclass(frozen=True)
class CrmHome:
    """Paths of one installation. Construct with `CrmHome.from_env()` or `CrmHome(Path(...))`."""

    root: Path

    @classmethod
    def from_env(cls) -> CrmHome:
        return cls(Path(os.environ.get("CRM_HOME", DEFAULT_HOME)).expanduser().resolve())

    # --- inputs -------------------------------------------------------------------------------
    @property
    def landing(self) -> Path:
        """Files dropped by other systems: landing/<entity>/*.csv|jsonl|parquet."""
        return self.root / "landing"

    @property
    def column_mapping(self) -> Path:
        """Optional header mapping for exports whose column names differ from the contract."""
        return self.landing / "column_mapping.yaml"

    @property
    def settings_file(self) -> Path:
        """The installation's vocabulary and as-of date (pipelines.lib.settings, docs/settings.md)."""
        return self.root / "crm.yaml"

    @property
    def operational_db(self) -> Path:
        """The embedded system of record (SQLite) used when CRM_OPERATIONAL_DB_URL is unset."""
        return self.root / "operational.db"

    @property
    def operational_db_url(self) -> str:
        return os.environ.get("CRM_OPERATIONAL_DB_URL") or f"sqlite:///{self.operational_db}"

    @property
    def ground_truth(self) -> Path:
        """Written by the demo generator for tests; the pipeline never reads it."""
        return self.root / "ground_truth"

    # --- outputs ------------------------------------------------------------------------------
    @property
    def warehouse_dir(self) -> Path:
        return self.root / "warehouse"

    @property
    def warehouse(self) -> Path:
        """The DuckDB file only pipeline runs write (architecture rule 1 in docs)."""
        return self.warehouse_dir / "warehouse.duckdb"

    @property
    def snapshots(self) -> Path:
        """Published read-only snapshots plus the `CURRENT` pointer readers follow."""
        return self.root / "snapshots"

    @property
    def model_artifacts(self) -> Path:
        return self.root / "model_artifacts"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> CrmHome:
        for path in (self.root, self.landing, self.warehouse_dir, self.snapshots, self.model_artifacts,
                     self.dagster_home, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        return self
