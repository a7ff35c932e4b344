"""Bodies of `crm run` and `crm ui`: rich progress, a summary of what was loaded, where things went."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import duckdb
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.lib.child_processes import parent_bound_command
from pipelines.lib.home import REPO_ROOT, CrmHome
from pipelines.lib.runner import has_input_data, prepare_dagster_home, run_job


def run_pipeline_command(home: CrmHome, job: str, console: Console) -> int:
    if not has_input_data(home):
        console.print(f"[yellow]{home.root} has no data yet: run `crm generate --out {home.root}` first or drop "
                      f"files in {home.landing}/<entity>/ (CSV, JSON Lines or Parquet).[/yellow]")
        return 1
    from pipelines.lib.ingest import MappingError, load_column_mapping

    try:  # a broken mapping file would fail every landing entity; say it once, before starting
        load_column_mapping(home.column_mapping)
    except MappingError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    from pipelines.lib.settings import SettingsError, load_settings

    try:  # the same for crm.yaml, which every entity is validated with
        load_settings(home.settings_file)
    except SettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task(f"{job}", total=None)

        def on_step(step: str, status: str, total: int) -> None:
            progress.update(task, total=total, advance=1,
                            description=f"{job}: {step} {'ok' if status == 'STEP_SUCCESS' else status.lower()}")

        outcome = run_job(home, job, on_step)
        done = progress.tasks[0].total or 0
        progress.update(task, completed=done if outcome.success else progress.tasks[0].completed,
                        description=f"{job}: {'done' if outcome.success else 'FAILED'}")
    _print_summary(home, outcome.run_id, console)
    console.print(f"Warehouse: [bold]{home.warehouse}[/bold]   Dagster runs: [bold]{home.dagster_home}[/bold] "
                  "(open them with `crm ui`)   Run log: "
                  f"[bold]{home.logs / 'pipeline.log'}[/bold]")
    from pipelines.lib.snapshot import current_snapshot_path

    snapshot = current_snapshot_path(home)
    if outcome.success and snapshot is not None:
        console.print(f"Published snapshot for the portal and notebooks: [bold]{snapshot}[/bold]")
    if not outcome.success:
        console.print(f"[red]Run {outcome.run_id} failed in {', '.join(outcome.failed_steps) or 'setup'}: "
                      f"{outcome.error}[/red] Details: `crm ui`, run {outcome.run_id[:8]}.")
        return 1
    return 0


def _print_summary(home: CrmHome, run_id: str, console: Console) -> None:
    from pipelines.lib.ingest import batch_summary
    from pipelines.lib.ingest.load_warnings import batch_warnings

    if not home.warehouse.exists():
        return
    try:
        con = duckdb.connect(str(home.warehouse), read_only=True)
    except duckdb.Error as exc:
        console.print(f"[yellow]Summary unavailable: {exc}[/yellow]")
        return
    try:
        rows = batch_summary(con, run_id)
        reasons, resolved = _quarantine_state(con, run_id) if rows else ({}, 0)
        warnings = batch_warnings(con, run_id)  # e.g. repeats that disagreed when a mapping collapsed them
    except duckdb.CatalogException:
        rows, reasons, resolved, warnings = [], {}, 0, []
    finally:
        con.close()
    if not rows:
        return
    table = Table(title="Ingest", show_lines=False)
    for name in ("entity", "files", "read", "loaded", "quarantined", "duplicates"):
        table.add_column(name, justify="left" if name == "entity" else "right", no_wrap=name == "entity")
    for r in rows:
        files = f"{r['sources_loaded']} new" + (f", {r['sources_skipped']} unchanged" if r["sources_skipped"] else "")
        if r["sources_unreadable"]:
            files += f", [red]{r['sources_unreadable']} unreadable[/red]"
        if r["sources_ignored"]:
            files += f", [yellow]{r['sources_ignored']} not read[/yellow]"
        table.add_row(r["entity"], files, f"{r['rows_read']:,}", f"{r['rows_loaded']:,}",
                      f"{r['rows_quarantined']:,}", f"{r['duplicates_dropped']:,}")
    console.print(table)
    for r in rows:
        if r["errors"]:
            console.print(f"[red]{r['entity']}: {r['errors']}[/red]")
    ignored = [message for r in rows for message in (r["ignored"] or [])]
    if ignored:
        console.print(f"[yellow]{len(ignored)} landing file{'s' if len(ignored) > 1 else ''} not read "
                      "(also on the portal's data-quality page):[/yellow]")
        for message in ignored:
            console.print(f"  {escape(message)}", highlight=False, soft_wrap=True)
    for w in warnings:
        console.print(f"[yellow]{escape(w['message'])}[/yellow]", highlight=False, soft_wrap=True)
    quarantined = sum(r["rows_quarantined"] for r in rows)
    if quarantined:
        console.print(f"{quarantined:,} rows quarantined: see raw._quarantine in the warehouse (reason, file, line).")
    if reasons:
        held = ", ".join(f"{n:,} {reason}" for reason, n in reasons.items())
        waiting = (f" The {reasons['parent_quarantined']:,} parent_quarantined rows load once the rows they "
                   "refer to are fixed." if "parent_quarantined" in reasons else "")
        console.print(f"In quarantine now: {held} (checked again on every run).{waiting}")
    if resolved:
        console.print(f"{resolved:,} previously quarantined rows loaded in this run (raw._quarantine_log).")


def _quarantine_state(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[dict[str, int], int]:
    """(rows in quarantine by reason, rows that left the quarantine by loading in this run)."""
    reasons = dict(con.execute("SELECT reason, count(*) FROM raw._quarantine GROUP BY reason "
                               "ORDER BY count(*) DESC, reason").fetchall())
    resolved = con.execute("SELECT count(*) FROM raw._quarantine_log WHERE resolved_by_batch = ? "
                           "AND resolution = 'loaded'", [run_id]).fetchall()[0][0]
    return reasons, resolved


def start_dagster_ui(home: CrmHome, port: int, console: Console) -> int:
    prepare_dagster_home(home)
    dagster = shutil.which("dagster", path=os.path.dirname(sys.executable)) or shutil.which("dagster")
    if dagster is None:
        console.print("[red]The `dagster` command is not installed in this environment; "
                      "run `pip install -e '.[dev]'` and try again.[/red]")
        return 1
    console.print(f"Dagster UI: [bold]http://127.0.0.1:{port}[/bold]  (instance {home.dagster_home}; "
                  "the daemon runs schedules and sensors; Ctrl+C stops both)")
    cmd = [dagster, "dev", "-m", "pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)]
    try:
        return subprocess.call(parent_bound_command(cmd), cwd=REPO_ROOT, env=os.environ.copy())
    except KeyboardInterrupt:
        return 0
