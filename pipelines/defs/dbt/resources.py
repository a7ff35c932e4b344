"""The dbt project as Dagster sees it: where it lives, its manifest, and the warehouse it builds.

The manifest is produced by `dbt parse` on demand (`ensure_manifest`), so definitions load in tests,
`crm run` and `dagster dev` alike without a separate build step; it is re-parsed when any project file
is newer than it. The warehouse path is not part of the project: `profiles.yml` reads `CRM_WAREHOUSE`,
which `warehouse_env` points at the run's CRM home (architecture rule 8 in docs).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from pipelines.lib.child_processes import parent_bound_executable
from pipelines.lib.home import REPO_ROOT, CrmHome

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
WAREHOUSE_ENV = "CRM_WAREHOUSE"
_PROJECT_FILE_SUFFIXES = {".sql", ".yml", ".yaml", ".md", ".py", ".csv"}
_SKIPPED_DIRS = {"target", "logs", "dbt_packages"}


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@contextmanager
def warehouse_env(home: CrmHome) -> Iterator[Path]:
    """Point dbt (profiles.yml reads CRM_WAREHOUSE) at `home`'s warehouse for the duration of a block."""
    home.warehouse_dir.mkdir(parents=True, exist_ok=True)
    with _environment(WAREHOUSE_ENV, str(home.warehouse)):
        yield home.warehouse


def _newest_project_file(project_dir: Path) -> float:
    newest = 0.0
    for path in project_dir.rglob("*"):
        if path.suffix in _PROJECT_FILE_SUFFIXES and not _SKIPPED_DIRS.intersection(path.relative_to(project_dir).parts):
            newest = max(newest, path.stat().st_mtime)
    return newest


def manifest_is_stale(project: DbtProject) -> bool:
    """True when there is no manifest or a model, macro or YAML file changed after it was written."""
    manifest = project.manifest_path
    return not manifest.exists() or manifest.stat().st_mtime < _newest_project_file(Path(project.project_dir))


def dbt_executable() -> str:
    """The dbt beside this interpreter (the venv's, so it works without an activated venv), started through
    a launcher that ties it to this process: a dbt that outlived a killed `crm run` kept the warehouse
    locked. dagster-dbt starts dbt itself and takes only a path (pipelines.lib.child_processes)."""
    candidate = Path(sys.executable).with_name("dbt")
    found = str(candidate) if candidate.exists() else shutil.which("dbt")
    return parent_bound_executable(found) if found else "dbt"


def ensure_manifest(project: DbtProject) -> Path:
    """Run `dbt parse` when the manifest is missing or stale; returns the manifest path.

    A file lock keeps concurrent processes (test workers, the webserver and a run) from parsing at once.
    """
    if not manifest_is_stale(project):
        return project.manifest_path
    target = Path(project.project_dir) / project.target_path
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if manifest_is_stale(project):
                # parsing renders profiles.yml but never opens the warehouse: any path will do
                placeholder = os.environ.get(WAREHOUSE_ENV) or str(CrmHome.from_env().warehouse)
                with _environment(WAREHOUSE_ENV, placeholder):
                    DbtCliResource(project_dir=project, dbt_executable=dbt_executable()).cli(
                        ["parse", "--quiet"], target_path=project.target_path
                    ).wait()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return project.manifest_path


@lru_cache(maxsize=1)
def crm_dbt_project() -> DbtProject:
    """The `crm` dbt project with its manifest ready."""
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    ensure_manifest(project)
    return project


def dbt_cli_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=crm_dbt_project(), profiles_dir=str(DBT_PROJECT_DIR),
                          dbt_executable=dbt_executable())
