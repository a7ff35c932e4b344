"""`crm bench` section for the models: training and scoring seconds per model at the bench's scale.

One entry per model of models.jobs.MODEL_NAMES (churn, sales_forecast, win_probability, next_best_product,
clv) with its train and score seconds and grade; `scores_rows` counts the rows of each scores table.

Registered through the bench registry (pipelines/lib/bench.py, BENCH_PLUGINS). If the bench home has no
marts yet (no dbt step ran before this one), the ML marts and what they need are built first with
`dbt run` and that time is reported separately, so the model figures stay comparable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from models.jobs import MODEL_NAMES, score_models, train_models
from pipelines.lib.bench import BenchContext, bench_step
from pipelines.lib.home import REPO_ROOT

ML_DBT_SELECTION = "+path:models/marts/ml +fct_opportunities +fct_deal_stages"


def _has_marts(home) -> bool:
    if not home.warehouse.exists():
        return False
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        return bool(con.execute("select count(*) from information_schema.tables where table_schema = 'marts' "
                                "and table_name = 'fct_customer_monthly_activity'").fetchall()[0][0])


def _build_ml_marts(home) -> float:
    project = REPO_ROOT / "dbt_project"
    started = time.perf_counter()
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "run", "--project-dir", str(project), "--profiles-dir",
         str(project), "--target-path", str(home.root / "dbt_target"), "--log-path", str(home.logs),
         "--select", ML_DBT_SELECTION],
        env={**os.environ, "CRM_WAREHOUSE": str(home.warehouse)}, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError("dbt run of the ML marts failed in the bench home:\n" + result.stdout[-3000:])
    return round(time.perf_counter() - started, 3)


@bench_step("models", after="dbt_build")
def _models(ctx: BenchContext) -> dict:
    figures: dict = {}
    if not _has_marts(ctx.home):
        figures["ml_marts_dbt_seconds"] = _build_ml_marts(ctx.home)
    with duckdb.connect(str(ctx.home.warehouse)) as con:
        trained = train_models(ctx.home, con, names=MODEL_NAMES)
        scored = score_models(ctx.home, con)
    for name in MODEL_NAMES:
        figures[name] = {
            "train_seconds": trained.seconds.get(name),
            "score_seconds": scored.seconds.get(name),
            "grade": trained.grades.get(name),
            **({"error": trained.errors[name]} if name in trained.errors else {}),
        }
    figures["scores_rows"] = scored.rows
    return figures
