"""Nothing is silently ignored: every landing file ingestion does not read is named, with why and what to
do, in the load log, the `crm run` summary and the portal's data-quality query; data files still load."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
from rich.console import Console
from test_ingest import EXPECTED_QUARANTINE, build_small_home, quarantine_set

from pipelines.lib.home import CrmHome
from pipelines.lib.ingest import ingest_all, new_batch_id, reconcile
from pipelines.lib.run_cli import _print_summary

#: file under landing/ -> (folder it is filed under, reason, words the message must hold)
NOT_READ = {
    "orders/orders.xls": ("orders", "unknown_suffix", "'.xls' files are not read"),
    "opportunities/deals.csv": ("opportunities", "store_entity",
                                "`crm import opportunities landing/opportunities/deals.csv`"),
    "deals/deals.csv": ("deals", "unknown_entity", "'deals' is not an entity of the import contract"),
    "order/o.csv": ("order", "unknown_entity", "did you mean landing/orders/?"),
    "payments/empty.csv": ("payments", "empty_file", "is empty (0 bytes)"),
    "orders/2024/old.csv": ("orders", "subfolder", "move it up into landing/orders/"),
    "stray.csv": ("(landing)", "top_level", "move it into the folder of its entity"),
    "orders/.~lock.orders.jsonl#": ("orders", "hidden", "names starting with '.' are not read"),
    ".cache/": ("(landing)", "hidden", "folders whose name starts with '.' are not read"),
}
ROW = "O-9,ACC-1,2026-01-02,completed,direct,EUR,2026-01-02T10:00:00\n"


def _with_files_not_read(home: CrmHome) -> CrmHome:
    land = home.landing
    for rel in NOT_READ:
        path = land / rel
        if rel.endswith("/"):
            path.mkdir(parents=True)
            (path / "x.csv").write_text("a\n1\n")  # inside a hidden folder: reported once, as the folder
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("" if rel.endswith("empty.csv") else "order_id,account_id\n" + ROW)
    # settings, not data: neither read nor reported
    (land / "column_mapping.yaml").write_text("accounts:\n  defaults:\n    source_system: erp\n")
    (land / "orders" / "old_export.csv.mapping.yaml").write_text("columns: {}\n")
    return home


@pytest.fixture
def home(tmp_path: Path) -> CrmHome:
    return _with_files_not_read(build_small_home(tmp_path / "home"))


def _ignored(home: CrmHome, batch_id: str) -> dict[str, tuple[str, str]]:
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        rows = con.execute("SELECT source_file, entity, error FROM raw._load_log WHERE batch_id = ? "
                           "AND status = 'ignored'", [batch_id]).fetchall()
    return {f: (e, m) for f, e, m in rows}


def test_each_file_not_read_is_named_with_why_in_the_load_log_and_the_summary(home: CrmHome):
    batch = new_batch_id()
    ingest_all(home, batch_id=batch)
    logged = _ignored(home, batch)
    assert set(logged) == set(NOT_READ)
    for rel, (folder, _reason, words) in NOT_READ.items():
        entity, message = logged[rel]
        assert entity == folder
        assert message.startswith(f"landing/{rel}: ") and words in message, message
    # the data files load exactly as without the stray files
    assert quarantine_set(home.warehouse) == EXPECTED_QUARANTINE
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        assert reconcile(con) == []
        assert con.execute("SELECT count(*) FROM raw.orders WHERE order_id = 'O-9'").fetchone() == (0,)

    console = Console(record=True, width=250)
    _print_summary(home, batch, console)
    out = console.export_text()
    assert f"{len(NOT_READ)} landing files not read" in out
    for _, message in logged.values():
        assert message in out
    orders_row = next(line for line in out.splitlines() if line.startswith("│ orders "))
    assert "3 not read" in orders_row

    # every batch names them again, so the latest run always says what is true now
    (home.landing / "stray.csv").unlink()
    second = new_batch_id()
    ingest_all(home, batch_id=second)
    assert set(_ignored(home, second)) == set(NOT_READ) - {"stray.csv"}


def test_a_dagster_run_logs_each_file_once_and_the_portal_lists_them(home: CrmHome, monkeypatch):
    from pipelines.definitions import defs
    from pipelines.lib.snapshot import publish

    monkeypatch.setenv("CRM_HOME", str(home.root))
    result = defs.resolve_job_def("ingest_job").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        per_file = con.execute("SELECT source_file, count(*) FROM raw._load_log WHERE batch_id = ? "
                               "AND status = 'ignored' GROUP BY 1", [result.run_id]).fetchall()
    assert dict(per_file) == dict.fromkeys(NOT_READ, 1)  # 19 raw steps, one row per file
    metadata = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    opportunities = metadata["opportunities"]["files_not_read"].value
    assert [f["file"] for f in opportunities] == ["opportunities/deals.csv"]

    publish(home)
    from app import queries
    from app.auth import Viewer

    frame = queries.ignored_files(Viewer("admin", "admin"))
    assert frame.get_column("file").to_list() == sorted(NOT_READ)
    what = dict(zip(frame.get_column("file").to_list(), frame.get_column("what_to_do").to_list(), strict=True))
    assert "crm import opportunities" in what["opportunities/deals.csv"]
