"""The Dagster entry point: loads, materialises on a temporary home, schedules, sensors, retries, alerts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from test_ingest import EXPECTED_QUARANTINE, build_small_home, quarantine_set, table_fingerprints

from pipelines.definitions import defs
from pipelines.defs.ingest.assets import raw_assets, raw_key
from pipelines.defs.ingest.resources import CrmHomeResource
from pipelines.defs.ingest.sensors import landing_files_sensor, run_failure_alert
from pipelines.lib.home import CrmHome


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> CrmHome:
    h = build_small_home(tmp_path / "home")
    monkeypatch.setenv("CRM_HOME", str(h.root))
    return h


def test_definitions_load_with_jobs_schedules_sensors_and_checks():
    assert {"ingest_job", "full_build_job"} <= {j.name for j in defs.jobs}
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["hourly_ingest"].cron_schedule == "0 * * * *"
    assert schedules["hourly_ingest"].job_name == "ingest_job"
    assert schedules["nightly_full_build"].cron_schedule == "0 2 * * *"
    assert schedules["nightly_full_build"].job_name == "full_build_job"
    assert {s.name for s in defs.sensors} == {"landing_files_sensor", "run_failure_alert"}
    graph = defs.resolve_asset_graph()
    keys = {k for k in graph.get_all_asset_keys() if k.path[0] == "raw"}
    assert len(keys) == 19
    assert raw_key("accounts") in graph.get(raw_key("contacts")).parent_keys
    interactions = graph.get(raw_key("interactions"))
    assert isinstance(interactions.partitions_def, dg.DailyPartitionsDefinition)
    assert interactions.backfill_policy == dg.BackfillPolicy.single_run()
    raw_checks = [k for k in graph.asset_check_keys if k.asset_key.path[0] == "raw"]
    assert {k.name for k in raw_checks} == {"rows_reconciled"} and len(raw_checks) == 19
    assert all(graph.get_check_spec(k).blocking for k in raw_checks)
    full = defs.resolve_job_def("full_build_job")
    assert keys <= set(full.asset_layer.executable_asset_keys)  # every asset, later concerns' too
    assert all(a.op.pool == "warehouse" for a in raw_assets)


def test_ingest_job_in_process_on_a_temporary_home(home: CrmHome):
    result = defs.resolve_job_def("ingest_job").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 19 and all(e.passed for e in evaluations)
    assert quarantine_set(home.warehouse) == EXPECTED_QUARANTINE
    materialized = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert materialized[raw_key("orders")]["rows_quarantined"].value == 4
    assert materialized[raw_key("orders")]["duplicates_dropped"].value == 1


def test_materialize_a_day_partition_replaces_only_that_day(home: CrmHome):
    resources = {"crm_home": CrmHomeResource(root=str(home.root))}
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(raw_assets, resources=resources, instance=instance,
                          selection=[k for a in raw_assets for k in a.keys if k != raw_key("interactions")]).success
    assert dg.materialize(raw_assets, resources=resources, instance=instance,
                          selection=[raw_key("interactions")], partition_key="2026-01-02").success
    con = duckdb.connect(str(home.warehouse), read_only=True)
    assert con.execute("SELECT DISTINCT occurred_at::DATE::VARCHAR FROM raw.interactions").fetchall() == [("2026-01-02",)]
    con.close()
    before = table_fingerprints(home.warehouse)
    again = dg.materialize(raw_assets, resources=resources, instance=instance,
                           selection=[raw_key("interactions")], partition_key="2026-01-02")
    assert again.success and table_fingerprints(home.warehouse) == before


def test_hourly_schedule_requests_an_ingest_run():
    schedule = next(s for s in defs.schedules if s.name == "hourly_ingest")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 1, 5, 10, tzinfo=UTC))
    requests = schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1 and requests[0].partition_key is None


def test_landing_sensor_fires_once_per_new_or_changed_file(home: CrmHome):
    resources = {"crm_home": CrmHomeResource(root=str(home.root))}
    first_ctx = dg.build_sensor_context(resources=resources)
    first = landing_files_sensor(first_ctx).run_requests
    # one partition run per interaction day, one run for the other files (store entities come along)
    assert sorted(r.partition_key for r in first if r.partition_key) == ["2026-01-01", "2026-01-02", "2026-01-03"]
    general = [r for r in first if r.partition_key is None]
    assert len(general) == 1 and raw_key("interactions") not in general[0].asset_selection
    assert "orders/orders.jsonl" in general[0].tags["crm/changed_files"]
    cursor = first_ctx.cursor
    assert len(json.loads(cursor)) == 6  # all landing files seen
    # the requests resolve against the real definitions (partition keys exist, assets are in the job)
    resolved = landing_files_sensor.evaluate_tick(dg.build_sensor_context(
        definitions=defs, instance=dg.DagsterInstance.ephemeral(), resources=resources))
    assert sorted(r.run_key for r in resolved.run_requests) == sorted(r.run_key for r in first)

    ctx = dg.build_sensor_context(cursor=cursor, resources=resources)
    assert isinstance(landing_files_sensor(ctx), dg.SkipReason)  # nothing new: no second run

    new = home.landing / "interactions" / "2026-01-04.jsonl"
    new.write_text('{"interaction_id": "I-x", "occurred_at": "2026-01-04T09:00:00", "channel": "call", '
                   '"direction": "inbound", "outcome": "completed"}\n')
    ctx = dg.build_sensor_context(cursor=cursor, resources=resources)
    second = landing_files_sensor(ctx).run_requests
    assert [(r.partition_key, r.asset_selection) for r in second] == [("2026-01-04", [raw_key("interactions")])]
    assert second[0].run_key not in {r.run_key for r in first}
    cursor = ctx.cursor

    os.utime(new, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))  # touched, same content
    ctx = dg.build_sensor_context(cursor=cursor, resources=resources)
    assert isinstance(landing_files_sensor(ctx), dg.SkipReason)
    # the same file evaluated again from the old cursor gives the same run key (Dagster dedups it)
    replay = landing_files_sensor(dg.build_sensor_context(cursor=first_ctx.cursor, resources=resources))
    assert [r.run_key for r in replay.run_requests] == [second[0].run_key]


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_run_failure_sensor_writes_alert_and_posts_webhook(home: CrmHome, monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("CRM_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/alert")

    @dg.asset
    def always_fails() -> None:
        raise RuntimeError("boom: the marts are on fire")

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([always_fails], instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_event=failure, dagster_instance=instance,
        dagster_run=result.dagster_run, resources={"crm_home": CrmHomeResource(root=str(home.root))},
    ).for_run_failure()
    try:
        run_failure_alert(context)
    finally:
        server.shutdown()
    alerts = [json.loads(line) for line in (home.logs / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) == 1
    assert alerts[0]["run_id"] == result.run_id and alerts[0]["failed_steps"] == ["always_fails"]
    assert _Hook.received and _Hook.received[-1]["run_id"] == result.run_id


_HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("LOCKED", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_locked_warehouse_is_retried_with_backoff_then_loads(home: CrmHome):
    home.warehouse.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(home.warehouse), "2.5"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        resources = {"crm_home": CrmHomeResource(root=str(home.root), lock_wait_seconds=0.2)}
        teams = next(a for a in raw_assets if raw_key("teams") in a.keys)
        started = time.monotonic()
        result = dg.materialize([teams], resources=resources, instance=dg.DagsterInstance.ephemeral())
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.success
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert 1 <= len(retries) <= 2 and elapsed >= 2.0  # waited 2 s (then 4 s) instead of failing


def test_crm_run_frees_the_writer_slot_of_a_killed_run(tmp_path: Path):
    from dagster import DagsterRunStatus

    from pipelines.lib.runner import LAUNCHER_TAG, PID_TAG, release_abandoned_runs

    instance = dg.DagsterInstance.ephemeral()
    instance.event_log_storage.set_concurrency_slots("warehouse", 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job = defs.resolve_job_def("ingest_job")
    run = instance.create_run_for_job(job, tags={LAUNCHER_TAG: "crm run", PID_TAG: str(dead.pid)})
    instance.handle_run_event(run.run_id, dg.DagsterEvent(
        event_type_value="PIPELINE_START", job_name=run.job_name))
    instance.event_log_storage.claim_concurrency_slot("warehouse", run.run_id, "raw__teams")
    assert instance.event_log_storage.get_concurrency_info("warehouse").active_slot_count == 1
    alive = instance.create_run_for_job(job, tags={LAUNCHER_TAG: "crm run", PID_TAG: str(os.getpid())})
    instance.handle_run_event(alive.run_id, dg.DagsterEvent(
        event_type_value="PIPELINE_START", job_name=alive.job_name))

    assert release_abandoned_runs(instance) == [run.run_id]
    assert instance.event_log_storage.get_concurrency_info("warehouse").active_slot_count == 0
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED


def test_code_location_loads_like_the_ui_loads_it(tmp_path):
    """`crm ui` (dagster dev -m pipelines.definitions) loads the module as a code location: validate it so."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run([str(dagster), "definitions", "validate", "-m", "pipelines.definitions"],
                            env={**os.environ, "DAGSTER_HOME": str(tmp_path)}, capture_output=True, text=True,
                            timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "All code locations passed validation" in output
