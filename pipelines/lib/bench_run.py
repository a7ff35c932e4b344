"""`crm bench` figures of the whole run: `crm run` end to end, then again after one new day.

The step copies the generated sources (landing files and operational store) into a fresh home, so the
first run starts from an empty warehouse exactly as `crm run` does on a new installation, then drops one
more day of interaction logs and runs again: the incremental run. Per-step seconds (ingest, dbt build,
training and scoring, publish) come from the Dagster run's own step statistics.
"""

from __future__ import annotations

import shutil
import time
from datetime import timedelta

from pipelines.lib.bench import BenchContext, _last_day, _shift_day_file, bench_step, peak_memory_mb
from pipelines.lib.home import CrmHome


def _run(home: CrmHome) -> dict:
    import dagster as dg

    from pipelines.lib.runner import prepare_dagster_home, run_job

    started = time.perf_counter()
    outcome = run_job(home)
    seconds = round(time.perf_counter() - started, 3)
    if not outcome.success:
        raise RuntimeError(f"crm run failed in the bench home ({outcome.failed_steps}): {outcome.error}")
    prepare_dagster_home(home)
    with dg.DagsterInstance.get() as instance:
        stats = instance.get_run_step_stats(outcome.run_id)
    steps: dict[str, float] = {}
    for stat in stats:
        if stat.start_time and stat.end_time:
            group = ("ingest" if stat.step_key.startswith("raw__") else
                     "dbt_build" if stat.step_key.startswith("crm_dbt_models") else stat.step_key)
            steps[group] = round(steps.get(group, 0.0) + stat.end_time - stat.start_time, 3)
    return {"seconds": seconds, "step_seconds": steps}


@bench_step("crm_run", after="floor")
def _crm_run(ctx: BenchContext) -> dict:
    run_home = CrmHome((ctx.scratch or ctx.home.root.parent) / "run_home").ensure()
    shutil.copytree(ctx.home.landing, run_home.landing, dirs_exist_ok=True)
    shutil.copy2(ctx.home.operational_db, run_home.operational_db)
    full = _run(run_home)
    last, last_path = _last_day(run_home)
    _shift_day_file(last_path, run_home.landing / "interactions" / f"{last + timedelta(days=1)}{last_path.suffix}",
                    1, "BR-")
    incremental = _run(run_home)
    shutil.rmtree(run_home.root, ignore_errors=True)
    return {"full": full, "after_one_new_day": incremental,
            "incremental_to_full_ratio": round(incremental["seconds"] / full["seconds"], 3),
            "peak_memory_mb": peak_memory_mb()}
