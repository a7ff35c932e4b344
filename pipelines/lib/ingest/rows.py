"""What a reader hands to ingestion: a file's rows as text, the rows it had to reject, and the count of
rows the file holds (taken from the file itself, so the reconciliation does not trust the parser)."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


class UnreadableFileError(ValueError):
    """The file cannot be read at all (corrupt, binary, empty header); nothing of it is loaded."""


@dataclass
class Malformed:
    """A row rejected before validation, filed in quarantine under `reason` at its line."""

    line: int
    record_id: str | None
    value: str
    reason: str = "malformed_row"
    field: str | None = None
    message: str | None = None


@dataclass
class LoadWarning:
    """Something about a file that loaded but deserves a look (e.g. repeats that disagreed when collapsed)."""

    kind: str            # collapsed | collapse_conflict
    field: str | None    # the contract column concerned
    count: int           # records concerned
    examples: str        # a few of them, for the reader of the report
    message: str         # one sentence naming the file


@dataclass
class FileRows:
    """Text columns named as in the contract plus `__row` (the line), and the rows that could not be split.

    `physical_rows`: rows the file holds by the independent count (`pipelines.lib.ingest.reconcile`);
    when set it is what the load log reports as read. `collapsed` lines are counted as duplicates dropped."""

    frame: pl.DataFrame
    malformed: list[Malformed] = field(default_factory=list)
    physical_rows: int | None = None
    collapsed: int = 0  # repeated lines folded into the first line's record (`collapse: true`)
    warnings: list[LoadWarning] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        if self.physical_rows is not None:
            return self.physical_rows
        return self.frame.height + len(self.malformed) + self.collapsed
