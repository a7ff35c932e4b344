"""Body of `crm train`: retrain, backtest and grade the models, score with the new versions, publish.

Runs the same plain functions as the Dagster ML assets (models/jobs.py) in this process, holding the
warehouse writer lock the way pipeline runs do, then publishes a new snapshot so the portal shows the
new scores and grades.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from models.jobs import MODEL_NAMES, score_models, train_models
from models.registry import ModelRegistry
from pipelines.lib.home import CrmHome

#: the metric each model is graded on (models/grading.py)
HEADLINE = {"churn": "roc_auc", "sales_forecast": "mase", "win_probability": "brier",
            "next_best_product": "hit_rate_at_3", "clv": "purchases_mae"}


def _headline(name: str, metrics: dict, baseline: dict) -> str:
    key = HEADLINE[name]
    return f"{key} {metrics[key]:.3f} (baseline {baseline[key]:.3f})"


def train_command(home: CrmHome, seed: int, names: list[str] | None, console: Console) -> int:
    from pipelines.lib.snapshot import publish
    from pipelines.lib.warehouse import WarehouseLockedError, warehouse_writer

    unknown = sorted(set(names or ()) - set(MODEL_NAMES))
    if unknown:
        console.print(f"[red]Unknown model {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}.[/red]")
        return 2
    if not home.warehouse.exists():
        console.print(f"[yellow]{home.warehouse} does not exist yet: run `crm run --home {home.root}` first.[/yellow]")
        return 1
    selected = tuple(names) if names else MODEL_NAMES
    try:
        with warehouse_writer(home.warehouse) as con, console.status("training...") as status:
            trained = train_models(home, con, seed=seed, names=selected, progress=status.update)
            scored = score_models(home, con, seed=seed, progress=status.update)
            status.update("publishing a snapshot...")
            snapshot = publish(home, con)
    except WarehouseLockedError as exc:
        console.print(f"[red]{exc}[/red] Wait for the running pipeline to finish and run `crm train` again.")
        return 1
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    registry = ModelRegistry(home)
    table = Table("model", "version", "grade", "backtest", "train s", "score s", title="Models")
    for name in selected:
        if name in trained.errors:
            table.add_row(name, "-", "-", f"[red]not trained: {trained.errors[name]}[/red]", "-", "-")
            continue
        meta = registry.metadata(name)
        table.add_row(name, trained.versions[name], meta["grade"]["grade"],
                      _headline(name, meta["metrics"], meta["baseline_metrics"]),
                      f"{trained.seconds.get(name, 0):.1f}", f"{scored.seconds.get(name, 0):.1f}")
    console.print(table)
    console.print(f"Artifacts: [bold]{home.model_artifacts}[/bold]   Scores: [bold]{home.warehouse}[/bold] "
                  f"(schema scores: {', '.join(sorted(scored.rows))})   Snapshot: [bold]{snapshot.path}[/bold]")
    return 1 if trained.errors else 0
