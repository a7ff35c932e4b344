"""Validation of one record before it is written to the operational store.

It runs the same contract validation ingestion uses (`pipelines.contract.validate`) on a one-row
frame, so a value the portal accepts is a value the pipeline accepts, then checks references to other
store records. The store passes the entity of its own contract (`OperationalStore.contract`), which
carries the installation's allowed values from crm.yaml, so the vocabulary is checked here for every write
and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from pipelines.contract import Entity
from pipelines.contract.validate import ROW, describe_fault, validate_frame
from pipelines.lib.store.values import _as_text


class RecordValidationError(ValueError):
    """A record failed validation; `errors` maps each field to a message that says what to fix."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


def _text(value: Any) -> str | None:
    return _as_text(value)


def validate_record(entity: Entity, record: Mapping[str, Any],
                    lookup: Callable[[str, str], bool | None] | None = None) -> dict[str, Any]:
    """Return the record with contract columns only, values typed for the database, or raise."""
    unknown = [k for k in record if k not in entity.column_names and k != "version"]
    if unknown:
        raise RecordValidationError({k: f"{entity.name} has no field {k}" for k in unknown})
    frame = pl.DataFrame([{c: _text(record.get(c)) for c in entity.column_names}],
                         schema={c: pl.String for c in entity.column_names})
    result = validate_frame(entity, frame.with_row_index(ROW, offset=1))
    errors: dict[str, str] = {}
    for row in result.faults.iter_rows(named=True):
        errors.setdefault(row["field"], describe_fault(entity, row["field"], row["reason"], row["value"]))
    typed = result.typed.row(0, named=True)
    if lookup is not None:
        for column in entity.columns:
            ref = column.reference
            value = typed.get(column.name)
            if ref and value is not None and column.name not in errors and lookup(ref[0], value) is False:
                errors[column.name] = f"{column.name} {value!r} does not exist in {ref[0]}; pick an existing one."
    if errors:
        raise RecordValidationError(errors)
    clean: dict[str, Any] = {}
    for column in entity.columns:
        value = typed[column.name]
        if value is not None and column.type == "timestamp":
            value = value.strftime("%Y-%m-%dT%H:%M:%S")
        elif value is not None and column.type == "date":
            value = value.isoformat()
        clean[column.name] = value
    return clean
