"""Run Dagster jobs of `pipelines.definitions` in-process against the home's persistent instance.

`crm run` uses this: DAGSTER_HOME is `$CRM_HOME/dagster` (with the repo's dagster.yaml copied there), so
runs started from the command line appear in the Dagster UI (`crm ui`) next to scheduled ones.

A run killed outright (SIGKILL) leaves nothing running behind it: the dbt it starts is tied to the process
(`pipelines.lib.child_processes`), so the warehouse lock goes with it, and the next run fails the abandoned
Dagster run and frees its pool slot (`release_abandoned_runs`).
"""

from __future__ import annotations

import contextlib
import filecmp
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.lib.home import REPO_ROOT, CrmHome

DAGSTER_YAML = REPO_ROOT / "dagster.yaml"


def prepare_dagster_home(home: CrmHome) -> Path:
    """Create the home, copy dagster.yaml into its Dagster folder and point the environment at both."""
    home.ensure()
    target = home.dagster_home / "dagster.yaml"
    if not target.exists() or not filecmp.cmp(DAGSTER_YAML, target, shallow=False):
        shutil.copyfile(DAGSTER_YAML, target)
    os.environ["DAGSTER_HOME"] = str(home.dagster_home)
    os.environ["CRM_HOME"] = str(home.root)
    return home.dagster_home


def has_input_data(home: CrmHome) -> bool:
    """True when there is something to ingest: a landing file or the embedded operational database."""
    landing = home.landing.is_dir() and any(p.is_file() and p.name != "column_mapping.yaml"
                                            for p in home.landing.rglob("*"))
    store_url = home.operational_db_url
    store = home.operational_db.exists() if store_url.startswith("sqlite") else True
    return landing or store


@dataclass
class JobOutcome:
    run_id: str
    success: bool
    failed_steps: list[str]
    error: str | None


def run_job(home: CrmHome, job_name: str = "full_build_job",
            on_step: Callable[[str, str, int], None] | None = None, log_level: str = "WARNING") -> JobOutcome:
    """Execute a job in-process; `on_step(step_key, status, total_steps)` is called as steps finish."""
    prepare_dagster_home(home)
    import warnings

    import dagster as dg
    from dagster._core.utils import make_new_run_id

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)

    from pipelines.definitions import defs

    job = defs.resolve_job_def(job_name)
    total = len(job.graph.node_dict)
    run_id = make_new_run_id()
    with dg.DagsterInstance.get() as instance:
        release_abandoned_runs(instance)
        stop = threading.Event()
        watcher = None
        if on_step is not None:
            watcher = threading.Thread(target=_watch, args=(instance, run_id, total, on_step, stop), daemon=True)
            watcher.start()
        home.logs.mkdir(parents=True, exist_ok=True)
        try:
            # dbt echoes hundreds of lines to stdout: keep them in the run log, not on the user's screen
            with open(home.logs / "pipeline.log", "a", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
                result = job.execute_in_process(
                    instance=instance, run_id=run_id, raise_on_error=False,
                    tags={LAUNCHER_TAG: "crm run", PID_TAG: str(os.getpid())},
                    run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
        finally:
            stop.set()
            if watcher is not None:
                watcher.join(timeout=5)
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        error = None
        if not result.success:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            if failure is not None and failure.step_failure_data and failure.step_failure_data.error:
                error = failure.step_failure_data.error.message.strip().splitlines()[-1]
        return JobOutcome(run_id, result.success, failed, error)


LAUNCHER_TAG, PID_TAG = "crm/launcher", "crm/pid"


def release_abandoned_runs(instance) -> list[str]:
    """Fail `crm run` runs whose process is gone (killed mid-run) and free their pool slots.

    An in-process run holds the `warehouse` pool slot in the instance; a process killed by SIGKILL
    never gives it back and, with no daemon watching, the next run would wait for it forever. The
    warehouse itself needs no repair: every load is one DuckDB transaction.
    """
    from dagster import DagsterRunStatus, RunsFilter

    released = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING],
                                            tags={LAUNCHER_TAG: "crm run"})):
        pid = int(run.tags.get(PID_TAG, "0") or 0)
        if pid and _alive(pid):
            continue
        instance.report_run_failed(run, message=f"The `crm run` process ({pid}) ended without finishing the run.")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
    return released


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(instance, run_id: str, total: int, on_step, stop: threading.Event) -> None:
    from dagster import DagsterEventType

    seen: set[str] = set()
    while not stop.wait(0.5):
        try:
            records = instance.get_records_for_run(run_id, of_type={
                DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE, DagsterEventType.STEP_SKIPPED,
            }).records
        except Exception:  # noqa: BLE001 - progress display only; the run itself reports errors
            continue
        for record in records:
            event = record.event_log_entry.dagster_event
            if event and event.step_key and event.step_key not in seen:
                seen.add(event.step_key)
                on_step(event.step_key, event.event_type_value, total)
