"""`crm`: the one command-line entry point. Each capability adds its sub-command here.

Commands stay thin: they parse arguments, show progress with rich and call plain functions that tests
call directly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from pipelines.lib.home import CrmHome

app = typer.Typer(
    help="Analytical CRM data platform: ingest, marts, models and portal on one laptop.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(file=sys.stdout)  # bound now: `crm run` redirects sys.stdout to its log


def _home(home: Path | None) -> CrmHome:
    return CrmHome(home.expanduser().resolve()) if home else CrmHome.from_env()


HomeOption = typer.Option(None, "--home", help="Installation folder (default: $CRM_HOME or ./.crm_home).")


@app.command()
def generate(
    out: Path = typer.Option(None, "--out", help="Folder to write the demo home into (default: the CRM home)."),
    customers: int = typer.Option(2_000, "--customers", min=10, help="Number of customers (accounts)."),
    seed: int = typer.Option(42, "--seed", help="Random seed; the same arguments give byte-identical files."),
    dirty: float = typer.Option(0.0, "--dirty", min=0.0, max=0.5, help="Share of rows to corrupt on purpose."),
    years: float = typer.Option(3.0, "--years", min=1.0, max=10.0, help="Years of history."),
) -> None:
    """Write a complete demo source: landing files, operational database and ground truth."""
    from pipelines.generate.run import generate_home

    target = _home(out)
    generate_home(target, customers=customers, seed=seed, dirty=dirty, years=years, console=console)


contract_app = typer.Typer(help="The import contract: what files and columns the platform accepts.")
app.add_typer(contract_app, name="contract")


@contract_app.command("docs")
def contract_docs(
    out: Path = typer.Option(Path("docs/IMPORT_FORMAT.md"), "--out", help="Where to write the import guide."),
) -> None:
    """Render the import guide (docs/IMPORT_FORMAT.md) from the contract."""
    from pipelines.contract.docs import write_import_guide

    path = write_import_guide(out)
    console.print(f"Import guide written to [bold]{path}[/bold]")


@contract_app.command("dbt")
def contract_dbt(
    out: Path = typer.Option(None, "--out", help="Folder to write into (default: dbt_project/models/staging/crm)."),
) -> None:
    """Render the dbt sources, staging models and their tests from the contract (and dbt_overrides.yaml)."""
    from pipelines.contract.dbt_render import STAGING_DIR, write_staging_files

    paths = write_staging_files(out or STAGING_DIR)
    console.print(f"{len(paths)} dbt staging files written to [bold]{paths[0].parent}[/bold]")


store_app = typer.Typer(help="The operational database (system of record).")
app.add_typer(store_app, name="store")


@store_app.command("migrate")
def store_migrate(home: Path = HomeOption) -> None:
    """Create or upgrade the operational database schema; write the commented default crm.yaml if absent."""
    from pipelines.lib.settings import write_default_settings
    from pipelines.lib.store import OperationalStore

    h = _home(home).ensure()
    store = OperationalStore.for_home(h)
    applied = store.migrate()
    console.print(f"Operational store at [bold]{store.display_url}[/bold]: "
                  f"{len(applied)} migration(s) applied ({', '.join(applied) or 'up to date'}).")
    if write_default_settings(h.settings_file):
        console.print(f"Settings written to [bold]{h.settings_file}[/bold] with the defaults: set your currency, "
                      "stages and dimension values there (docs/settings.md).")
    else:
        console.print(f"Settings kept: [bold]{h.settings_file}[/bold] exists.")


@app.command("backup")
def backup_cmd(
    folder: Path = typer.Argument(..., help="New, empty folder to write the backup into."),
    home: Path = HomeOption,
) -> None:
    """Take a consistent backup (operational store, warehouse, snapshot, model artifacts); safe while the portal runs."""
    from pipelines.lib.backup import BackupError, backup

    try:
        result = backup(_home(home), folder)
    except BackupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Backup of {len(result.files)} files written to [bold]{result.folder}[/bold] "
                  f"in {result.seconds:.1f}s.")


@app.command("restore")
def restore_cmd(
    folder: Path = typer.Argument(..., help="A folder written by `crm backup`."),
    home: Path = HomeOption,
    force: bool = typer.Option(False, "--force", help="Replace a home or operational store that already "
                                                      "holds data (its rows are deleted first)."),
) -> None:
    """Restore a backup into a fresh, empty home (or, with --force, over one that holds data)."""
    from pipelines.lib.backup import BackupError, restore

    target = _home(home)
    try:
        files = restore(folder, target, force=force)
    except BackupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Restored {len(files)} files into [bold]{target.root}[/bold].")


# --- ingest / pipeline runs -----------------------------------------------------------------
@app.command("run")
def run_cmd(
    home: Path = HomeOption,
    job: str = typer.Option("full_build_job", "--job", help="Job to run: full_build_job or ingest_job."),
) -> None:
    """Run the whole pipeline in-process on the home's Dagster instance (visible in `crm ui`)."""
    from pipelines.lib.run_cli import run_pipeline_command

    raise typer.Exit(run_pipeline_command(_home(home), job, console))


@app.command("ui")
def ui_cmd(
    home: Path = HomeOption,
    port: int = typer.Option(3000, "--port", help="Port of the Dagster webserver."),
) -> None:
    """Start the Dagster UI with its daemon (schedules, sensors, run queue) on the home's instance."""
    from pipelines.lib.run_cli import start_dagster_ui

    raise typer.Exit(start_dagster_ui(_home(home), port, console))


@app.command("bench")
def bench_cmd(
    customers: int = typer.Option(10_000, "--customers", min=10, help="Scale: number of customers."),
    out: Path = typer.Option(None, "--out", help="Folder for the benchmark home (default: a temporary one)."),
    seed: int = typer.Option(7, "--seed", help="Random seed of the generated data."),
    steps: str = typer.Option("", "--steps", help="Comma-separated step names to run (default: all)."),
) -> None:
    """Generate data at a scale, run the pipeline and print JSON figures (seconds, rows/s, memory)."""
    import json

    from pipelines.lib.bench import run_bench

    figures = run_bench(customers=customers, out=out, seed=seed,
                        steps=[s.strip() for s in steps.split(",") if s.strip()] or None,
                        console=Console(stderr=True))  # progress on stderr, so stdout is pure JSON
    print(json.dumps(figures, indent=2))


@app.command("import")
def import_cmd(
    entities: str = typer.Argument(..., help="Contract entity, or several separated by commas (one file "
                                             "feeding several entities needs a mapping section for each)."),
    file: Path = typer.Argument(..., help="The export to import: CSV/TSV/TXT, JSON Lines, Parquet or .xlsx."),
    mapping: str = typer.Option(None, "--mapping", help="Mapping file, or a preset name such as "
                                                        "salesforce-opportunity (docs/import.md)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Read and check everything, write nothing."),
    report: Path = typer.Option(None, "--report", help="Also write the report as JSON to this file."),
    home: Path = HomeOption,
) -> None:
    """Import an export file: store entities are upserted (audited), landing entities placed for `crm run`."""
    from pipelines.lib.importer import ImportFailed, import_file, render, write_report

    try:
        result = import_file(_home(home), entities.split(","), file, mapping=mapping, dry_run=dry_run,
                             console=console)
    except ImportFailed as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from exc
    render(result, console)
    if report is not None:
        console.print(f"Report written to [bold]{write_report(result, report)}[/bold]")


# --- portal ---------------------------------------------------------------------------------------
user_app = typer.Typer(help="Portal sign-ins: who may use the portal and with which role.")
app.add_typer(user_app, name="user")


def _portal_users(home: Path | None):
    from pipelines.lib.portal_users import PortalUsers
    from pipelines.lib.store import OperationalStore

    store = OperationalStore.for_home(_home(home).ensure())
    store.migrate()
    return PortalUsers(store)


def _portal_user_call(fn, *args, **kwargs):
    from pipelines.lib.portal_users import PortalUserError

    try:
        return fn(*args, **kwargs)
    except PortalUserError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


@user_app.command("add")
def user_add(
    username: str = typer.Argument(..., help="Sign-in name."),
    role: str = typer.Option(..., "--role", help="admin, manager, sales_rep or analyst."),
    user_id: str = typer.Option(None, "--user-id", help="CRM user (required for sales_rep)."),
    team_id: str = typer.Option(None, "--team-id", help="Team (managers; taken from --user-id if omitted)."),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True, confirmation_prompt=True),
    home: Path = HomeOption,
) -> None:
    """Create a portal sign-in (the password is stored as a bcrypt hash only)."""
    user = _portal_user_call(_portal_users(home).add, username, password, role, user_id=user_id, team_id=team_id)
    console.print(f"Sign-in [bold]{user.username}[/bold] created: {user.role}, user {user.user_id or '-'}, "
                  f"team {user.team_id or '-'}.")


@user_app.command("list")
def user_list(home: Path = HomeOption) -> None:
    """List portal sign-ins."""
    from rich.table import Table

    table = Table("username", "role", "user_id", "team_id", "active", "updated_at")
    for u in _portal_users(home).list():
        table.add_row(u.username, u.role, u.user_id or "", u.team_id or "", "yes" if u.is_active else "no",
                      u.updated_at)
    console.print(table)


@user_app.command("set-password")
def user_set_password(
    username: str = typer.Argument(...),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True, confirmation_prompt=True),
    home: Path = HomeOption,
) -> None:
    """Change a sign-in's password."""
    _portal_user_call(_portal_users(home).set_password, username, password)
    console.print(f"Password of [bold]{username}[/bold] changed.")


@user_app.command("disable")
def user_disable(username: str = typer.Argument(...), home: Path = HomeOption) -> None:
    """Disable a sign-in (it stays for the audit trail; it can no longer sign in)."""
    _portal_user_call(_portal_users(home).disable, username)
    console.print(f"Sign-in [bold]{username}[/bold] disabled.")


@user_app.command("unlock")
def user_unlock(username: str = typer.Argument(...), home: Path = HomeOption) -> None:
    """Lift a sign-in's lockout after failed sign-ins; the password stays as it is."""
    until = _portal_user_call(_portal_users(home).unlock, username)
    if until is None:
        console.print(f"Sign-in [bold]{username}[/bold] was not locked; its count of failed sign-ins starts again.")
    else:
        console.print(f"Sign-in [bold]{username}[/bold] unlocked (it was locked until {until:%H:%M} UTC).")


def _serve_portal(target: CrmHome, port: int, address: str) -> None:
    import subprocess

    from app.serve import portal_command, portal_env
    from pipelines.lib.child_processes import parent_bound_command

    console.print(f"Portal for [bold]{target.root}[/bold] at [bold]http://{address}:{port}[/bold] "
                  "(Ctrl+C stops it).")
    try:
        subprocess.run(parent_bound_command(portal_command(port, address)), env=portal_env(target), check=False)
    except KeyboardInterrupt:
        console.print("Portal stopped.")


@app.command("portal")
def portal_cmd(
    home: Path = HomeOption,
    port: int = typer.Option(8501, "--port", help="Port to serve the portal on."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to listen on."),
) -> None:
    """Serve the Streamlit portal on the home's published snapshot and operational store."""
    target = _home(home).ensure()
    _portal_users(home)  # make sure the sign-in table exists
    _serve_portal(target, port, address)


@app.command("up")
def up_cmd(
    home: Path = HomeOption,
    port: int = typer.Option(8501, "--port", help="Port to serve the portal on."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to listen on."),
    skip_run: bool = typer.Option(False, "--skip-run", help="Serve the current snapshot without a new run."),
    customers: int = typer.Option(5_000, "--customers", min=10,
                                  help="Size of the demo CRM generated when the home has no data yet."),
) -> None:
    """The main command: demo data if the home is empty, the pipeline end to end, then the portal."""
    from rich.table import Table

    from pipelines.lib.portal_users import seed_demo_users
    from pipelines.lib.runner import has_input_data

    target = _home(home).ensure()
    if not skip_run and not has_input_data(target):
        from pipelines.generate.run import generate_home

        console.print(f"{target.root} has no CRM data yet: generating a demo CRM with {customers:,} customers.")
        generate_home(target, customers=customers, seed=42, dirty=0.01, years=3.0, console=console)
    if not skip_run:
        from pipelines.lib.run_cli import run_pipeline_command

        code = run_pipeline_command(target, "full_build_job", console)
        if code:
            console.print("[red]The pipeline run failed; the portal was not started. See the messages above.[/red]")
            raise typer.Exit(code)
    users = _portal_users(home)
    demo = seed_demo_users(users.store)
    table = Table("username", "password", "role", "sees", title="Demo sign-ins")
    for row in demo:
        table.add_row(row["username"], row["password"], row["role"], row["scope"])
    console.print(table)
    _serve_portal(target, port, address)


# --- models -------------------------------------------------------------------------------------
@app.command("train")
def train_cmd(
    home: Path = HomeOption,
    seed: int = typer.Option(42, "--seed", help="Random seed: the same data and seed give the same models."),
    model: list[str] = typer.Option(None, "--model", help="Train only this model (repeatable); default all."),
) -> None:
    """Retrain, backtest and grade the models on the marts, score with the new versions and publish."""
    from models.train_cli import train_command

    raise typer.Exit(train_command(_home(home), seed, model, console))


@app.command("erase")
def erase_cmd(
    customer: str = typer.Option(..., "--customer", help="Account id of the customer to erase."),
    actor: str = typer.Option("cli", "--actor", help="Who requested the erasure (kept in the audit log)."),
    home: Path = HomeOption,
) -> None:
    """Erase a customer and their contacts everywhere (right to erasure); they stay out of later ingests.

    An interrupted erasure is finished by running the same command again."""
    from pipelines.lib.erasure import ErasureError, erase_customer

    target = _home(home)
    try:
        report = erase_customer(target, customer, actor=actor)
    except ErasureError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if report.already_erased:
        when = f" on {report.finished_at}" if report.finished_at else ""
        console.print(f"Customer {customer} was already erased{when}; nothing of them is left to remove.")
        return
    counts = ", ".join(f"{n} {entity}" for entity, n in report.records.items())
    verb = "Finished the interrupted erasure of" if report.resumed else "Erased"
    console.print(f"{verb} customer {customer}: {counts}.")
    console.print(f"Removed {report.warehouse_rows} warehouse rows and {report.landing_rows} landing rows "
                  f"({len(report.landing_files)} files rewritten); published clean snapshot {report.snapshot}.")
    console.print(f"Audit entry recorded as {report.customer_hash[:16]}... (no personal data).")


if __name__ == "__main__":
    app()
