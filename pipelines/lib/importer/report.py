"""What an import did (or, dry, would do): counts per entity, every rejected row, warnings, outputs.

The same `ImportReport` is printed as one screen (`render`) and written as JSON (`--report FILE.json`,
`to_dict`), so what a person reads and what a script checks cannot disagree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

#: Rejected rows kept per entity with all their details (all are counted; the JSON says when it was cut).
MAX_FAULTS = 10_000
#: Rows of each entity shown as mapped (dry run) and examples shown per reason.
SAMPLE_ROWS = 3
EXAMPLES_PER_REASON = 3


@dataclass
class Fault:
    """One row that is not loaded: where it is in the file and what is wrong with which value."""

    file: str
    line: int | None
    entity: str
    record_id: str | None
    field: str | None
    reason: str
    value: str | None
    message: str


@dataclass
class EntityReport:
    entity: str
    target: str                    # "store" (upserted) or "landing" (placed for crm run)
    rows_read: int = 0
    inserted: int = 0              # store: new records; landing: rows crm run will load
    updated: int = 0
    unchanged: int = 0
    kept_newer: int = 0            # store records newer than the file's row (left as they are)
    duplicates: int = 0            # exact repeats of an earlier row
    superseded: int = 0            # earlier versions of an id that appears again later in the file
    erased: int = 0                # rows of customers erased on request
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    faults: list[Fault] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add_fault(self, fault: Fault) -> None:
        self.quarantined += 1
        self.reasons[fault.reason] += 1
        if len(self.faults) < MAX_FAULTS:
            self.faults.append(fault)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def accounted(self) -> int:
        """Rows with an outcome; equals `rows_read` (every row is loaded, kept out or rejected)."""
        return (self.inserted + self.updated + self.unchanged + self.kept_newer + self.duplicates
                + self.superseded + self.erased + self.quarantined)


@dataclass
class ImportReport:
    file: str
    mapping: str | None
    dry_run: bool
    started_at: str
    seconds: float = 0.0
    entities: list[EntityReport] = field(default_factory=list)

    @property
    def quarantined(self) -> int:
        return sum(e.quarantined for e in self.entities)

    def to_dict(self) -> dict[str, Any]:
        entities = []
        for e in self.entities:
            body = asdict(e)
            body["reasons"] = dict(e.reasons.most_common())
            body["faults_truncated"] = e.quarantined > len(e.faults)
            entities.append(body)
        return {"file": self.file, "mapping": self.mapping, "dry_run": self.dry_run,
                "started_at": self.started_at, "seconds": round(self.seconds, 3), "entities": entities}


def render(report: ImportReport, console: Console) -> None:
    """One screen: counts per entity, reasons with examples (file:line field=value), warnings, outputs."""
    verb = "would be" if report.dry_run else "were"
    title = (f"crm import {report.file}" + (f" with {report.mapping}" if report.mapping else "")
             + (" (dry run: nothing written)" if report.dry_run else "") + f" - {report.seconds:.1f}s")
    counts = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("entity", "into", "read", "new", "updated", "unchanged", "skipped", "quarantined"):
        counts.add_column(name, justify="left" if name in ("entity", "into") else "right")
    for e in report.entities:
        skipped = e.kept_newer + e.duplicates + e.superseded + e.erased
        counts.add_row(e.entity, e.target, f"{e.rows_read:,}", f"{e.inserted:,}", f"{e.updated:,}",
                       f"{e.unchanged:,}", f"{skipped:,}",
                       f"[red]{e.quarantined:,}[/red]" if e.quarantined else "0")
    parts: list[Any] = [counts]
    if report.dry_run:
        for e in report.entities:
            if e.sample:
                parts.append(_sample_lines(e))
    if report.quarantined:
        reasons = Table(title=f"Rows that {verb} quarantined (not loaded)", title_justify="left",
                        box=box.SIMPLE_HEAD)
        for name in ("entity", "reason", "rows", "examples (file:line field = value)"):
            reasons.add_column(name, justify="right" if name == "rows" else "left")
        for e in report.entities:
            for reason, n in e.reasons.most_common():
                examples = [f for f in e.faults if f.reason == reason][:EXAMPLES_PER_REASON]
                reasons.add_row(e.entity, reason, f"{n:,}", "\n".join(
                    f"{f.file}:{f.line} {f.field or '(row)'} = {_short(f.value)}" for f in examples))
        parts.append(reasons)
    notes = [f"[yellow]![/yellow] {e.entity}: {w}" for e in report.entities for w in e.warnings]
    notes += [f"[yellow]![/yellow] {e.entity}: {_skipped(e)}" for e in report.entities if _skipped(e)]
    notes += [f"-> {e.entity}: {o}" for e in report.entities for o in e.outputs]
    console.print(Group(*parts))
    for line in notes:
        console.print(line, highlight=False)
    if report.dry_run:
        console.print("Dry run: nothing was written. Run the same command without --dry-run to import.")


def _sample_lines(e: EntityReport) -> Text:
    """The first rows as mapped, one `line N: column=value, ...` each (empty values left out)."""
    out = Text(f"{e.entity}: first {len(e.sample)} rows as mapped\n", style="bold")
    for row in e.sample:
        values = ", ".join(f"{k}={_short(v, 30)}" for k, v in row.items() if k != "line" and v not in (None, ""))
        out.append(f"  line {row.get('line')}: ", style="dim")
        out.append(values + "\n")
    return out


def _skipped(e: EntityReport) -> str:
    parts = [(e.kept_newer, "older than the store's record"),
             (e.duplicates, "repeats of an earlier row (identical, or folded by collapse)"),
             (e.superseded, "earlier versions of an id repeated later in the file"),
             (e.erased, "of customers erased on request")]
    said = [f"{n:,} {what}" for n, what in parts if n]
    return ("skipped " + "; ".join(said) + ".") if said else ""


def _short(value: Any, width: int = 40) -> str:
    text = "(empty)" if value is None or value == "" else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
