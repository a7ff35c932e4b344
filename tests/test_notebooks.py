"""The analyst notebooks: committed without outputs, and each runs top to bottom on a small published home.

The kernel is `python3`; jupyter_client starts it with the interpreter running the tests (a kernelspec
whose argv starts with `python` is launched with `sys.executable`), so it sees the same packages offline.
`CRM_TEST_NOTEBOOK_HOME=<a built and published home>` skips the build while iterating.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import date
from pathlib import Path

import nbformat
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {"01_funnel_deep_dive.ipynb", "02_churn_model_diagnostics.ipynb", "03_customer_value_and_clv.ipynb",
            "04_forecast_review.ipynb"}


@pytest.fixture(scope="session")
def notebook_home(request, tmp_path_factory):
    """A copy of `built_home`'s warehouse (and model artifacts, if any) with a published snapshot."""
    from pipelines.lib.home import CrmHome
    from pipelines.lib.snapshot import current_snapshot_path, publish

    source = os.environ.get("CRM_TEST_NOTEBOOK_HOME")
    if source:
        return CrmHome(Path(source))
    built = request.getfixturevalue("built_home")
    home = CrmHome(tmp_path_factory.mktemp("notebook_home") / "home").ensure()
    shutil.copytree(built.warehouse_dir, home.warehouse_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.wal"))
    if built.model_artifacts.is_dir():
        shutil.copytree(built.model_artifacts, home.model_artifacts, dirs_exist_ok=True)
    publish(home)
    assert current_snapshot_path(home) is not None
    return home


def test_the_four_notebooks_are_there():
    assert {p.name for p in NOTEBOOKS} == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    for index, cell in enumerate(code):
        assert cell.get("outputs") == [], f"{path.name}: code cell {index} carries outputs; clear them before committing"
        assert cell.get("execution_count") is None, f"{path.name}: code cell {index} has an execution count"
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_notebooks_hold_no_logic():
    """Analysis lives in the packages: notebooks define no functions or classes and read no raw files."""
    for path in NOTEBOOKS:
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert "def " not in source and "class " not in source, f"{path.name} defines logic; move it to a package"
        assert "duckdb.connect" not in source and "warehouse" not in source.replace("never the warehouse", "")
        assert "connect_snapshot(home)" in source, f"{path.name} must read the published snapshot"


def _run(path: Path, home) -> tuple[nbformat.NotebookNode, float]:
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute(
        env={**os.environ, "CRM_HOME": str(home.root)})
    return notebook, time.perf_counter() - start


def _text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _figures(notebook) -> int:
    return sum(1 for cell in notebook.cells for output in cell.get("outputs", [])
               if "application/vnd.plotly.v1+json" in output.get("data", {}))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, notebook_home):
    notebook, seconds = _run(path, notebook_home)
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    text = _text(notebook)
    assert f"home: {notebook_home.root}" in text
    assert seconds < 60, f"{path.name} took {seconds:.0f}s"
    minimum_figures = {"01": 5, "02": 4, "03": 5, "04": 4}[path.name[:2]]
    assert _figures(notebook) >= minimum_figures, f"{path.name} showed {_figures(notebook)} plotly figures"
    if path.name.startswith("01"):
        assert "Weakest step:" in text and "open deals worth" in text
    if path.name.startswith("02"):
        assert "grade:" in text and "largest gap between predicted and observed rate" in text
    if path.name.startswith("03"):
        assert "the top 10% hold" in text
    if path.name.startswith("04"):
        assert "grade:" in text


# --- the analysis functions behind the notebooks, checked against the marts with numbers ------------------


@pytest.fixture(scope="module")
def snapshot_con(notebook_home):
    from pipelines.lib.snapshot import connect_snapshot

    con = connect_snapshot(notebook_home)
    yield con
    con.close()


def test_stage_conversion_matches_the_deals(snapshot_con):
    from pipelines.lib import analysis

    conversion = analysis.stage_conversion(snapshot_con)
    deals = snapshot_con.sql("select max_stage_order_reached from marts.fct_opportunities").pl()
    assert conversion["from_stage"].to_list() == ["prospecting", "qualification", "proposal", "negotiation"]
    assert conversion["deals_entered"][0] == deals.height
    for row in conversion.iter_rows(named=True):
        reached_next = deals.filter(pl.col("max_stage_order_reached") >= row["from_stage_order"] + 1).height
        assert row["deals_converted"] == reached_next
        assert row["step_conversion"] == pytest.approx(row["deals_converted"] / row["deals_entered"])


def test_win_rates_and_wilson_interval(snapshot_con):
    from pipelines.lib import analysis

    low, high = analysis.wilson_interval(8, 20)
    assert (round(low, 4), round(high, 4)) == (0.2188, 0.6134)
    assert analysis.wilson_interval(0, 5)[0] == 0.0
    by_rep = analysis.win_rate_by(snapshot_con, "owner")
    closed = snapshot_con.execute("select count(*) filter (is_won), count(*) from marts.fct_opportunities "
                              "where is_closed").fetchone()
    assert by_rep["deals_won"].sum() == closed[0] and by_rep["deals_closed"].sum() == closed[1]
    assert (by_rep["win_rate_low"] <= by_rep["win_rate"]).all() and (by_rep["win_rate"] <= by_rep["win_rate_high"]).all()
    with pytest.raises(ValueError, match="no dimension 'planet'"):
        analysis.win_rate_by(snapshot_con, "planet")


def test_value_tiers_and_cohorts_add_up(snapshot_con):
    from pipelines.lib import analysis

    tiers = analysis.value_tier_summary(snapshot_con)
    active = snapshot_con.execute("select count(*) from marts.dim_customer_360 where not is_archived").fetchone()[0]
    assert tiers["customers"].sum() == active
    assert tiers["share_of_revenue"].sum() == pytest.approx(1.0)
    retention = analysis.cohort_retention_matrix(snapshot_con, max_months=12)
    assert list(retention.columns) == list(range(13))
    assert (retention[0].dropna() == 1.0).all()  # everyone is active in their first month


def test_clv_is_fitted_when_not_published(snapshot_con):
    from pipelines.lib import analysis

    clv = analysis.clv_review(snapshot_con, horizon_months=12)
    assert clv.source in {"published", "fitted now"}
    if clv.source == "fitted now":
        buyers = snapshot_con.execute("select count(distinct customer_key) from marts.fct_customer_product_purchases "
                                  "where order_date < (select max(as_of_date) from marts.dim_customer_360)").fetchone()[0]
        assert clv.customers.height == buyers
        assert set(clv.params) == {"bgnbd", "gamma_gamma"}
        assert (clv.customers["clv"] >= 0).all() and clv.customers["clv"].sum() > 0
        alive = clv.customers["probability_alive"]
        assert ((alive >= 0) & (alive <= 1)).all()


# --- the published-model paths, on a small hand-made snapshot ---------------------------------------------


@pytest.fixture
def small_snapshot():
    import duckdb

    con = duckdb.connect()
    con.execute("create schema marts; create schema scores")
    con.execute("""create table marts.dim_customer_360 as select * from (values
        ('C1', 1000.0::double, date '2026-10-31'), ('C2', 500.0::double, date '2026-10-31'), ('C3', 0.0::double, date '2026-10-31'))
        t(customer_key, revenue_12m, as_of_date)""")
    con.execute("""create table scores.churn_scores as select * from (values
        ('C1', 0.5::double, 'recency = 4', 0.2::double), ('C2', 0.2::double, 'recency = 2', 0.1::double), ('C3', 0.05::double, null, null))
        t(customer_key, churn_probability, driver_1, driver_1_effect)""")
    con.execute("""create table marts.fct_revenue_monthly_by_slice as select * from (values
        ('overall', 'all', date '2026-08-01', true, 100.0::double), ('overall', 'all', date '2026-09-01', true, 200.0::double),
        ('overall', 'all', date '2026-10-01', false, 50.0::double)) t(slice_type, slice_value, month_start,
        is_complete_month, revenue)""")
    con.execute("""create table scores.forecast_history as select * from (values
        (date '2026-07-01', 1, 'overall', 'all', date '2026-08-01', 110.0::double, 90.0::double, 120.0::double),
        (date '2026-07-01', 2, 'overall', 'all', date '2026-09-01', 150.0::double, 120.0::double, 180.0::double),
        (date '2026-07-01', 3, 'overall', 'all', date '2026-10-01', 150.0::double, 120.0::double, 180.0::double),
        (date '2026-07-01', 1, 'region', 'North', date '2026-08-01', 10.0::double, 5.0::double, 15.0::double))
        t(origin_month, horizon, slice_type, slice_value, month_start, forecast, lower_80, upper_80)""")
    yield con
    con.close()


def test_churn_review_uses_the_published_model(small_snapshot, tmp_path):
    import numpy as np

    from models.registry import ModelRegistry
    from pipelines.lib import analysis
    from pipelines.lib.home import CrmHome

    home = CrmHome(tmp_path / "home").ensure()
    metrics = {"roc_auc": 0.9, "pr_auc": 0.7, "top_decile_lift": 3.0, "brier": 0.1}
    version = ModelRegistry(home).save("churn", {"reference": np.array([1.0, 2.0])}, {
        "metrics": metrics, "baseline_metrics": {"roc_auc": 0.8, "pr_auc": 0.5, "top_decile_lift": 1.5},
        "backtest": {"calibration": [{"bin": 1, "rows": 10, "mean_predicted": 0.1, "observed_rate": 0.2}]}})
    review = analysis.churn_review(small_snapshot, home)
    assert review.source == "published" and version.version in review.note
    table = analysis.metrics_vs_baseline(review.metadata, ("roc_auc", "brier"))
    assert table.row(0) == ("roc_auc", 0.9, 0.8, pytest.approx(0.1))
    assert table.row(1)[2] is None  # the recency rule has no Brier score
    assert analysis.calibration_frame(review.metadata)["observed_rate"].to_list() == [0.2]
    bands = analysis.risk_band_summary(small_snapshot, review.scores)
    assert bands["risk_band"].to_list() == ["high", "medium", "low"]
    assert bands["revenue_at_risk"].to_list() == pytest.approx([500.0, 100.0, 0.0])
    assert bands["expected_churners"].sum() == pytest.approx(0.75)
    drivers = analysis.driver_summary(review.scores)
    assert drivers.row(0) == ("recency", 2, pytest.approx(0.15))


def test_forecast_history_is_scored_on_complete_months_only(small_snapshot):
    from pipelines.lib import analysis

    history = analysis.forecast_history_accuracy(small_snapshot)
    assert history["month_start"].to_list() == [date(2026, 8, 1), date(2026, 9, 1)]  # October is not complete
    assert history["abs_pct_error"].to_list() == pytest.approx([0.1, 0.25])
    assert history["inside_80"].to_list() == [True, False]
    assert history["horizon"].to_list() == [1, 2]
