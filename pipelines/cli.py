"""`crm`: the one command-line entry point. Each capability adds its sub-command here.

Commands stay thin: they parse arguments, show progress with rich and call plain functions that tests
call directly.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from pipelines.lib.home import CrmHome

app = typer.Typer(
    help="Analytical CRM data platform: ingest, marts, models and portal on one laptop.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


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


store_app = typer.Typer(help="The operational database (system of record).")
app.add_typer(store_app, name="store")


@store_app.command("migrate")
def store_migrate(home: Path = HomeOption) -> None:
    """Create or upgrade the operational database schema."""
    from pipelines.lib.store import OperationalStore

    h = _home(home).ensure()
    store = OperationalStore(h.operational_db_url)
    applied = store.migrate()
    console.print(f"Operational store at [bold]{store.display_url}[/bold]: "
                  f"{len(applied)} migration(s) applied ({', '.join(applied) or 'up to date'}).")


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
) -> None:
    """Restore a backup into a fresh, empty home."""
    from pipelines.lib.backup import BackupError, restore

    target = _home(home)
    try:
        files = restore(folder, target)
    except BackupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Restored {len(files)} files into [bold]{target.root}[/bold].")


if __name__ == "__main__":
    app()
