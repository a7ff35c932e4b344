"""`crm bench` section for the portal: seconds to render each page for a manager, first and second time,
and the slowest portal query (the floors: pages under 1 s after the first load, no query over 200 ms).

Registered through the bench registry (pipelines/lib/bench.py, BENCH_PLUGINS), after the models step. The
pages are rendered with Streamlit's AppTest in this process, against a snapshot of the bench home: when the
home has no complete marts yet, the whole dbt project is run first (its time reported as `dbt_seconds`),
then a snapshot is published (`publish_seconds`). The first render of a page runs its queries on a cold
query cache; the second is what a user sees when coming back to the page (cached results).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from pipelines.lib.bench import BenchContext, bench_step
from pipelines.lib.home import REPO_ROOT, CrmHome

APP = REPO_ROOT / "app" / "streamlit_app.py"
#: every page a manager can open, in navigation order
PAGES = ("overview", "funnel", "pipeline_forecast", "segments", "customer_360", "churn_worklist", "campaigns",
         "service", "reps", "records", "leads", "data_quality")
BENCH_USER = "bench-manager"


def _has_portal_marts(home: CrmHome) -> bool:
    if not home.warehouse.exists():
        return False
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        found = {r[0] for r in con.execute("select table_name from information_schema.tables "
                                           "where table_schema = 'marts'").fetchall()}
    return {"dim_customer_360", "fct_customer_interactions", "fct_orders", "fct_tickets"} <= found


def _dbt_run(home: CrmHome) -> float:
    project = REPO_ROOT / "dbt_project"
    started = time.perf_counter()
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "run", "--project-dir", str(project), "--profiles-dir",
         str(project), "--target-path", str(home.root / "dbt_target"), "--log-path", str(home.logs)],
        env={**os.environ, "CRM_WAREHOUSE": str(home.warehouse)}, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError("dbt run failed in the bench home (portal step):\n" + result.stdout[-3000:])
    return round(time.perf_counter() - started, 3)


def _manager(home: CrmHome):
    """A manager sign-in for the team with the most accounts (created once in the bench home)."""
    from app.auth import viewer_for
    from pipelines.lib.portal_users import PortalUsers
    from pipelines.lib.store import OperationalStore

    store = OperationalStore(home.operational_db_url)
    store.migrate()
    users = PortalUsers(store)
    if users.get(BENCH_USER) is None:
        with store.engine.connect() as conn:
            team = conn.exec_driver_sql(
                "SELECT u.team_id FROM users u JOIN accounts a ON a.owner_user_id = u.user_id "
                "WHERE u.team_id IS NOT NULL GROUP BY u.team_id ORDER BY count(*) DESC, u.team_id LIMIT 1").scalar()
        users.add(BENCH_USER, os.urandom(12).hex(), "manager", team_id=team)
    viewer = viewer_for(store, users.get(BENCH_USER))
    store.dispose()
    return viewer


def _quiet_streamlit() -> None:
    """AppTest runs pages without a server, and Streamlit warns about that on every run: not news here."""
    import streamlit  # noqa: F401 - creates Streamlit's loggers

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("streamlit"):
            logging.getLogger(name).setLevel(logging.ERROR)


def render_pages(home: CrmHome, viewer, pages: tuple[str, ...] = PAGES) -> dict:
    """Render each page twice with AppTest for `viewer`: seconds per render, exceptions, slowest queries."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app import queries

    previous = os.environ.get("CRM_HOME")
    os.environ["CRM_HOME"] = str(home.root)
    _quiet_streamlit()
    st.cache_data.clear()
    st.cache_resource.clear()
    queries.QUERY_TIMINGS.clear()
    figures: dict = {}
    try:
        for page in pages:
            at = AppTest.from_file(str(APP), default_timeout=600)
            at.session_state["viewer"] = viewer
            at.switch_page(f"app_pages/{page}.py")  # before the first run: the default page stays cold
            seconds = []
            for _ in range(2):
                started = time.perf_counter()
                at.run()
                seconds.append(round(time.perf_counter() - started, 3))
            figures[page] = {"first_seconds": seconds[0], "second_seconds": seconds[1]}
            if not at.title or at.title[0].value == "Sign in":
                figures[page]["error"] = "the page did not render"
            if at.exception:
                figures[page]["exception"] = at.exception[0].value[:300]
    finally:
        if previous is None:
            os.environ.pop("CRM_HOME", None)
        else:
            os.environ["CRM_HOME"] = previous
    slowest = sorted(queries.QUERY_TIMINGS.items(), key=lambda kv: kv[1], reverse=True)
    return {"pages": figures,
            "slowest_first_render": max(figures.items(), key=lambda kv: kv[1]["first_seconds"])[0],
            "max_second_render_seconds": max(f["second_seconds"] for f in figures.values()),
            "slowest_query": {"name": slowest[0][0], "seconds": round(slowest[0][1], 4)} if slowest else None,
            "queries_over_200ms": {k: round(v, 3) for k, v in slowest if v > 0.2}}


@bench_step("portal", after="models")
def _portal(ctx: BenchContext) -> dict:
    from pipelines.lib.snapshot import publish

    figures: dict = {}
    if not _has_portal_marts(ctx.home):
        figures["dbt_seconds"] = _dbt_run(ctx.home)
    started = time.perf_counter()
    publish(ctx.home)
    figures["publish_seconds"] = round(time.perf_counter() - started, 3)
    figures.update(render_pages(ctx.home, _manager(ctx.home)))
    return figures
