"""Row validation against the import contract: one implementation for files, the store and the portal.

`validate_frame` takes text columns (the way CSV, JSON Lines and the store deliver them; typed Parquet
columns are rendered to text first), parses each contract column to its type and returns the typed
frame plus one fault row per problem. Ingestion quarantines rows with faults; the portal turns the
faults of a single record into messages that say what to fix. Cross-row checks (duplicate ids, unknown
references) need the other rows and live in ingestion.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.contract import Column, Entity

#: Quarantine reasons. The generator's fault manifest and ingestion both use exactly these codes.
REASONS: dict[str, str] = {
    "bad_encoding": "the value is not valid UTF-8 text",
    "malformed_row": "the row has more or fewer fields than the header",
    "missing_required": "a required value is empty",
    "unmapped_value": "the value has no translation in the column mapping's `values` table for its column",
    "invalid_type": "the value cannot be read as the column's type",
    "not_allowed_value": "the value is not one of the allowed values",
    "unknown_currency": "the currency is neither the reporting currency nor one with a rate in crm.yaml",
    "out_of_range": "the value is outside the allowed range",
    "duplicate_id": "another row has the same id and updated_at but different content",
    "unknown_reference": "the id it refers to does not exist",
    "parent_quarantined": "the row it refers to is quarantined itself; it loads once that row is fixed",
}

ROW = "__row"  # column carrying each row's position in its source, passed through untouched

_TRUE = ["true", "1", "yes", "y", "t"]
_FALSE = ["false", "0", "no", "n", "f"]
_TIMESTAMP_FORMATS = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
_TIMESTAMP_TZ_FORMATS = ["%Y-%m-%dT%H:%M:%S%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"]


@dataclass
class Validated:
    """Typed rows (all rows, faulty ones included) and the faults found, one row per fault."""

    typed: pl.DataFrame
    faults: pl.DataFrame  # columns: __row, field, reason, value

    def first_fault_per_row(self) -> pl.DataFrame:
        """The fault a quarantined row is filed under: the first one in contract column order."""
        return self.faults.group_by(ROW, maintain_order=True).first()

    def clean(self) -> pl.DataFrame:
        bad = self.faults.get_column(ROW).unique()
        return self.typed.filter(~pl.col(ROW).is_in(bad.implode()))


def parse_column(name: str, col_type: str) -> pl.Expr:
    """Expression parsing a text column to the contract type; unparseable values become null."""
    text = pl.col(name).str.strip_chars()
    if col_type == "string":
        return pl.col(name)
    if col_type == "integer":
        return text.cast(pl.Int64, strict=False)
    if col_type == "decimal":
        return text.cast(pl.Float64, strict=False)
    if col_type == "boolean":
        lowered = text.str.to_lowercase()
        return (pl.when(lowered.is_in(_TRUE)).then(True)
                .when(lowered.is_in(_FALSE)).then(False)
                .otherwise(None).cast(pl.Boolean))
    if col_type == "date":
        return pl.when(text.str.len_chars() == 10).then(text.str.strptime(pl.Date, "%Y-%m-%d", strict=False))
    if col_type == "timestamp":
        norm = text.str.replace(" ", "T").str.replace(r"Z$", "+00:00")
        naive = [norm.str.strptime(pl.Datetime("us"), f, strict=False) for f in _TIMESTAMP_FORMATS]
        aware = [norm.str.strptime(pl.Datetime("us", "UTC"), f, strict=False).dt.replace_time_zone(None)
                 for f in _TIMESTAMP_TZ_FORMATS]
        return pl.coalesce(*naive, *aware)
    raise ValueError(f"unknown contract type {col_type!r}")


def to_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Render typed columns (Parquet) as the text the validator reads; text columns pass through."""
    exprs = []
    for name, dtype in frame.schema.items():
        if name == ROW or dtype == pl.String:
            exprs.append(pl.col(name))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(name).dt.strftime("%Y-%m-%dT%H:%M:%S%.f").alias(name))
        elif dtype == pl.Date:
            exprs.append(pl.col(name).dt.strftime("%Y-%m-%d").alias(name))
        elif dtype.is_nested():  # lists, arrays, structs: their JSON text (a cast to text would fail)
            encoded = pl.struct(pl.col(name).alias("v")).struct.json_encode()
            exprs.append(pl.when(pl.col(name).is_not_null())
                         .then(encoded.str.slice(5, encoded.str.len_chars() - 6)).alias(name))
        elif dtype == pl.Binary:
            exprs.append(pl.col(name).cast(pl.String, strict=False).alias(name))
        else:
            exprs.append(pl.col(name).cast(pl.String).alias(name))
    return frame.select(exprs)


def validate_frame(entity: Entity, frame: pl.DataFrame) -> Validated:
    """Check every row of `frame` (text columns + `__row`) against the entity's contract.

    Missing optional columns are added as nulls; missing required columns show up as
    `missing_required` on every row (the file lacks them entirely).
    """
    if ROW not in frame.columns:
        frame = frame.with_row_index(ROW, offset=1)
    frame = to_text(frame)
    for column in entity.columns:
        if column.name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(column.name))
    # empty strings mean "no value" in CSV exports
    frame = frame.with_columns([
        pl.when(pl.col(c.name).str.strip_chars() == "").then(None).otherwise(pl.col(c.name)).alias(c.name)
        for c in entity.columns
    ])
    typed = frame.select([pl.col(ROW)] + [parse_column(c.name, c.type).alias(c.name) for c in entity.columns])

    both = frame.with_columns([typed.get_column(c.name).alias(f"{c.name}__p") for c in entity.columns])
    checks: list[pl.DataFrame] = []

    def fault(condition: pl.Expr, field: str, reason: str) -> None:
        hits = both.filter(condition.fill_null(False)).select(
            ROW, pl.lit(field).alias("field"), pl.lit(reason).alias("reason"), pl.col(field).alias("value"))
        if hits.height:
            checks.append(hits)

    for column in entity.columns:
        raw, parsed = pl.col(column.name), pl.col(f"{column.name}__p")
        fault(raw.str.contains("\ufffd", literal=True), column.name, "bad_encoding")
        if column.required:
            empty = raw.is_null()
            if column.required_unless:  # e.g. unit_price may be empty on a line that carries line_amount
                empty = empty & pl.col(column.required_unless).is_null()
            fault(empty, column.name, "missing_required")
        fault(raw.is_not_null() & parsed.is_null(), column.name, "invalid_type")
        if column.allowed is not None:
            fault(raw.is_not_null() & ~raw.is_in(column.allowed), column.name, _not_allowed_reason(column))
        if column.min is not None:
            fault(parsed < column.min, column.name, "out_of_range")
        if column.max is not None:
            fault(parsed > column.max, column.name, "out_of_range")

    order_of = {c.name: i for i, c in enumerate(entity.columns)}
    reason_rank = {r: i for i, r in enumerate(REASONS)}
    if checks:
        faults = pl.concat(checks).with_columns(
            pl.col("field").replace_strict(order_of, return_dtype=pl.Int32).alias("__c"),
            pl.col("reason").replace_strict(reason_rank, return_dtype=pl.Int32).alias("__r"),
        ).sort([ROW, "__r", "__c"]).drop("__c", "__r")
        # one fault per row and field (a bad-encoding value is not also an invalid type); order is kept
        faults = faults.unique([ROW, "field"], keep="first", maintain_order=True)
    else:
        faults = pl.DataFrame(schema={ROW: frame.schema[ROW], "field": pl.String, "reason": pl.String,
                                      "value": pl.String})
    return Validated(typed=typed, faults=faults)


def _not_allowed_reason(column: Column) -> str:
    """A value outside the allowed list: an unconvertible currency has its own reason, all else is
    `not_allowed_value`. The lists of vocabulary columns come from crm.yaml (`Settings.contract()`)."""
    return "unknown_currency" if column.vocabulary == "currency" else "not_allowed_value"


def describe_fault(entity: Entity, field: str, reason: str, value: str | None) -> str:
    """A sentence that says what is wrong and what to do, for the portal and quarantine reports."""
    column = entity.column(field) if field in entity.column_names else None
    if reason == "missing_required":
        if column is not None and column.required_unless:
            return f"{field} is required unless {column.required_unless} is given; enter one of them."
        return f"{field} is required; enter a value."
    if reason == "invalid_type" and column is not None:
        hint = {"date": "a date like 2026-01-31", "timestamp": "a date and time like 2026-01-31T14:30:00",
                "integer": "a whole number", "decimal": "a number like 1234.50",
                "boolean": "true or false"}.get(column.type, column.type)
        return f"{field} must be {hint} (got {value!r})."
    if reason == "unknown_currency" and column is not None and column.allowed:
        reporting = column.allowed[0]
        return (f"{field} {value!r} is not the reporting currency {reporting} and has no rate; add it to "
                f"currency.rates in crm.yaml (how many {reporting} one {value} is worth) or correct the value.")
    if reason == "not_allowed_value" and column is not None and column.allowed:
        sentence = f"{field} must be one of {', '.join(column.allowed)} (got {value!r})"
        if column.vocabulary:
            key = column.vocabulary if column.vocabulary == "stages" else f"dimensions.{column.vocabulary}"
            return f"{sentence}; correct the value or add it to {key} in crm.yaml."
        return sentence + "."
    if reason == "out_of_range" and column is not None:
        bounds = []
        if column.min is not None:
            bounds.append(f"at least {column.min:g}")
        if column.max is not None:
            bounds.append(f"at most {column.max:g}")
        return f"{field} must be {' and '.join(bounds)} (got {value!r})."
    return f"{field}: {REASONS.get(reason, reason)}."
