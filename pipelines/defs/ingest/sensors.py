"""Sensors: start an ingest run when landing files appear or change; alert when any run fails.

The landing sensor's cursor remembers size, mtime and sha256 per file, so a file is hashed only when
its size or mtime moved and a run is requested only when its content changed. A new or changed
interaction day file requests that day's partition only (cost independent of the history); other files
request one ingest run of the other raw assets. Run keys are derived from the files' names and hashes,
so the same file never triggers two runs.
"""


import hashlib
import json
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from pipelines.defs.ingest.assets import interaction_days, raw_assets, raw_key
from pipelines.defs.ingest.resources import CrmHomeResource
from pipelines.defs.ingest.schedules import ingest_job
from pipelines.lib.home import CrmHome
from pipelines.lib.ingest.readers import file_format
from pipelines.lib.ingest.run import file_day

ALERT_WEBHOOK_ENV = "CRM_ALERT_WEBHOOK_URL"


def ingest_asset_keys() -> list[dg.AssetKey]:
    return [key for a in raw_assets for key in a.keys]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan_landing(home: CrmHome, cursor: dict[str, list]) -> tuple[list[tuple[str, str]], dict[str, list]]:
    """(changed files as (relative path, sha256), new cursor). Cursor: path -> [size, mtime_ns, sha256]."""
    changed, state = [], {}
    if not home.landing.is_dir():
        return changed, state
    for path in sorted(home.landing.rglob("*")):
        if not path.is_file() or not file_format(path) or path.name.startswith("."):
            continue
        rel = path.relative_to(home.landing).as_posix()
        try:
            stat = path.stat()
            previous = cursor.get(rel)
            if previous and previous[0] == stat.st_size and previous[1] == stat.st_mtime_ns:
                state[rel] = previous
                continue
            sha = _sha256(path)
        except OSError:  # vanished or still being written: look again next tick
            continue
        state[rel] = [stat.st_size, stat.st_mtime_ns, sha]
        if not previous or previous[2] != sha:
            changed.append((rel, sha))
    return changed, state


def _day_partition(rel: str) -> str | None:
    """The interaction partition a landing file belongs to, if it is a day file inside the partition range."""
    if not rel.startswith("interactions/"):
        return None
    day = file_day(Path(rel))
    if day is None:
        return None
    first = interaction_days.start.date()
    last = datetime.now(UTC).date() + timedelta(days=1)
    return day.isoformat() if first <= day <= last else None


@dg.sensor(name="landing_files_sensor", job=ingest_job, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Requests ingest runs when files in the landing folder are new or changed: one run "
                       "per interaction day (that day's partition only), one run for everything else.")
def landing_files_sensor(context: dg.SensorEvaluationContext, crm_home: CrmHomeResource):
    cursor = json.loads(context.cursor) if context.cursor else {}
    changed, state = scan_landing(crm_home.home, cursor)
    context.update_cursor(json.dumps(state, sort_keys=True))
    if not changed:
        return dg.SkipReason("no new or changed landing files")
    requests, others = [], []
    for rel, sha in changed:
        day = _day_partition(rel)
        if day is None:
            others.append((rel, sha))
            continue
        # a new day costs one partition run, independent of how much history there is
        requests.append(dg.RunRequest(
            run_key=_run_key([(rel, sha)]), partition_key=day, asset_selection=[raw_key("interactions")],
            tags={"crm/trigger": "landing_files", "crm/changed_files": rel}))
    if others:
        shown = ", ".join(r for r, _ in others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        # interaction files that are not a valid day (misnamed, out of range) go to a catch-up run that
        # reports them; otherwise interactions are left to their partition runs
        touches_interactions = any(r.startswith("interactions/") for r, _ in others)
        selection = None if touches_interactions else [k for k in ingest_asset_keys() if k != raw_key("interactions")]
        requests.append(dg.RunRequest(
            run_key=_run_key(others), asset_selection=selection,
            tags={"crm/trigger": "landing_files", "crm/changed_files": shown[:200]}))
    return dg.SensorResult(run_requests=requests)


def _run_key(files: list[tuple[str, str]]) -> str:
    return hashlib.sha256("\n".join(f"{rel}:{sha}" for rel, sha in files).encode()).hexdigest()[:32]


def write_alert(home: CrmHome, alert: dict, webhook_url: str | None) -> str | None:
    """Append the alert to logs/alerts.jsonl and POST it to the webhook; returns a webhook error, if any."""
    home.logs.mkdir(parents=True, exist_ok=True)
    with open(home.logs / "alerts.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(alert, sort_keys=True) + "\n")
    if not webhook_url:
        return None
    request = urllib.request.Request(webhook_url, data=json.dumps(alert).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - operator-set URL
            response.read()
    except OSError as exc:
        return f"could not POST the alert to {webhook_url}: {exc}"
    return None


@dg.run_failure_sensor(name="run_failure_alert", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Writes an alert to logs/alerts.jsonl (and the webhook in "
                                   f"{ALERT_WEBHOOK_ENV}) when a pipeline run fails.")
def run_failure_alert(context: dg.RunFailureSensorContext, crm_home: CrmHomeResource):
    run = context.dagster_run
    failed_steps = [e.step_key for e in context.get_step_failure_events()]
    alert = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": "run_failure",
        "job": run.job_name,
        "run_id": run.run_id,
        "failed_steps": failed_steps,
        "message": context.failure_event.message,
    }
    problem = write_alert(crm_home.home, alert, os.environ.get(ALERT_WEBHOOK_ENV))
    if problem:
        context.log.warning(problem)
