"""Row checks for one batch of an entity: contract validation, then the cross-row checks.

Order matters and is fixed, so each bad row is filed under exactly one reason:
1. the reader's `malformed_row` (the row could not even be split into fields);
2. `validate_frame` (first fault in contract column order: bad_encoding, missing_required, ...);
3. duplicates among the rows that passed: rows with the same id and the same `updated_at` - the first
   occurrence (store first, then landing files sorted by name, then line) is kept; a later one with
   identical content is an exact duplicate, dropped and counted; one with different content is
   quarantined as `duplicate_id`;
4. `unknown_reference`: a foreign key whose id is neither in raw (nor quarantined there, so one bad
   parent does not cascade to its children) nor in this batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import polars as pl

from pipelines.contract import Entity
from pipelines.contract.validate import ROW, describe_fault, parse_column, validate_frame

SRC = "__src"    # index of the part (source file) a row came from
LINE = "__line"  # the row's line in its source (null for the store)

QUARANTINE_SCHEMA = {SRC: pl.Int64, LINE: pl.Int64, "record_id": pl.String, "field": pl.String,
                     "reason": pl.String, "value": pl.String, "message": pl.String}


@dataclass
class CheckedBatch:
    loaded: pl.DataFrame        # typed contract columns + SRC + LINE, one row per id (latest version)
    loaded_counts: dict[int, int]
    quarantine: pl.DataFrame    # QUARANTINE_SCHEMA
    duplicates: dict[int, int]  # exact duplicates dropped per part


def check_batch(entity: Entity, text: pl.DataFrame, malformed: pl.DataFrame,
                reference_ids: Callable[[str], pl.Series], part_days: dict[int, date] | None = None
                ) -> CheckedBatch:
    """`text`: contract columns as text plus SRC and LINE; `malformed`: QUARANTINE_SCHEMA rows.

    `part_days` (day-partitioned entities): the day each part's file holds; a row outside the half-open
    day of its file is quarantined as `out_of_range`, so replacing a day can never miss or duplicate it.
    """
    pk, updated = entity.primary_key, entity.updated_at
    # source order (store, then files by name, then line) decides which duplicate is "first"
    if not _in_source_order(text):
        text = text.sort([SRC, LINE], maintain_order=True)
    text = text.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    meta = text.select(ROW, SRC, LINE)
    typed, first = _validate(entity, text.select([ROW] + entity.column_names))
    quarantine = [malformed.select(list(QUARANTINE_SCHEMA))]
    if first.height:
        quarantine.append(_fault_rows(entity, first, text, meta))

    clean = typed.filter(~pl.col(ROW).is_in(first.get_column(ROW).implode()))
    clean = clean.join(meta, on=ROW, how="left").sort(ROW)
    if part_days is not None and entity.partition_by_day:
        col = entity.partition_by_day
        day = pl.col(SRC).replace_strict(part_days, return_dtype=pl.Date, default=None)
        outside = clean.filter(pl.col(col).dt.date() != day)
        if outside.height:
            quarantine.append(outside.select(
                SRC, LINE, pl.col(entity.primary_key).alias("record_id"), pl.lit(col).alias("field"),
                pl.lit("out_of_range").alias("reason"), pl.col(col).cast(pl.String).alias("value"),
                pl.format("{} {} is not on the day its file is named after; move the row to the file "
                          "of its day.", pl.lit(col), pl.col(col).cast(pl.String)).alias("message")))
            clean = clean.filter(~pl.col(ROW).is_in(outside.get_column(ROW).implode()))

    # 3. duplicates: same id and updated_at (the content hashing is skipped when ids are all distinct)
    exact = clean.head(0)
    repeated_ids = _has_repeats(clean.get_column(pk))
    if repeated_ids:
        content = entity.column_names
        clean = clean.with_columns(pl.struct(content).hash(seed=7).alias("__h"))
        keeper = clean.group_by([pk, updated], maintain_order=True).agg(
            pl.col(ROW).first().alias("__first"), pl.col("__h").first().alias("__fh"))
        clean = clean.join(keeper, on=[pk, updated], how="left", nulls_equal=True)
        later = pl.col(ROW) != pl.col("__first")
        exact = clean.filter(later & (pl.col("__h") == pl.col("__fh")))
        conflicting = clean.filter(later & (pl.col("__h") != pl.col("__fh")))
        clean = clean.filter(~later).drop("__h", "__first", "__fh")
        if conflicting.height:
            quarantine.append(conflicting.select(
                SRC, LINE, pl.col(pk).alias("record_id"), pl.lit(pk).alias("field"),
                pl.lit("duplicate_id").alias("reason"), pl.col(pk).alias("value"),
                pl.format("another row has {} = {} and the same {} with different content; keep one version "
                          "or give the newer one a later {}.", pl.lit(pk), pl.col(pk), pl.lit(updated),
                          pl.lit(updated)).alias("message")))

    # 4. references
    batch_ids = text.get_column(pk).drop_nulls()
    bad_refs = []
    for column in entity.columns:
        ref = column.reference
        if not ref:
            continue
        known = reference_ids(ref[0])
        if ref[0] == entity.name:
            known = pl.concat([known, batch_ids])
        hits = clean.filter(pl.col(column.name).is_not_null() & ~pl.col(column.name).is_in(known.implode()))
        if hits.height:
            bad_refs.append(hits.select(
                ROW, SRC, LINE, pl.col(pk).alias("record_id"), pl.lit(column.name).alias("field"),
                pl.lit("unknown_reference").alias("reason"), pl.col(column.name).alias("value"),
                pl.format("{} {} does not exist in {}; load that record first or correct the id.",
                          pl.lit(column.name), pl.col(column.name), pl.lit(ref[0])).alias("message")))
    if bad_refs:
        refs = pl.concat(bad_refs).unique(ROW, keep="first", maintain_order=True)
        quarantine.append(refs.drop(ROW))
        clean = clean.filter(~pl.col(ROW).is_in(refs.get_column(ROW).implode()))

    loaded_counts = dict(clean.group_by(SRC).len().iter_rows())
    # one row per id: the latest updated_at wins (earlier versions in the batch count as loaded)
    latest = clean
    if repeated_ids:
        latest = clean.sort([pk, updated, ROW]).unique(pk, keep="last", maintain_order=False).sort(ROW)
    return CheckedBatch(
        loaded=latest.drop(ROW),
        loaded_counts=loaded_counts,
        quarantine=pl.concat([q.cast(QUARANTINE_SCHEMA) for q in quarantine], how="vertical"),
        duplicates=dict(exact.group_by(SRC).len().iter_rows()),
    )


def _in_source_order(text: pl.DataFrame) -> bool:
    """Rows already ordered by part, then line (the usual case): the sort can be skipped.

    Store rows have no line (null); within a part the lines are all null or all set, so a null step
    (ignored by `all`) never hides a row out of order."""
    step = pl.col(SRC).diff()
    return bool(text.select(((step > 0) | ((step == 0) & (pl.col(LINE).diff() > 0))).all()).item())


def _has_repeats(ids: pl.Series) -> bool:
    """Whether any id occurs twice: a neighbour comparison when the ids arrive sorted (exports usually
    are), else one hash pass."""
    if ids.is_sorted():
        return bool((ids == ids.shift(1)).any())
    return ids.n_unique() < ids.len()


_CANONICAL_TIMESTAMP = "%Y-%m-%dT%H:%M:%S"


def _validate(entity: Entity, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`validate_frame`, made fast for large clean batches: (typed rows, first fault per row).

    One pass flags every row that could possibly have a fault - the same rules as `validate_frame`,
    except that timestamps are only accepted in the canonical `YYYY-MM-DDTHH:MM:SS` form (one strptime
    instead of five). Only the flagged rows go through `validate_frame`, which decides the fault (or
    finds none, e.g. for a timestamp with an offset) and types them; the rest are typed by the same
    expressions, so the result is identical to validating everything, only cheaper.
    """
    names = entity.column_names
    norm = frame.with_columns([
        pl.when(pl.col(c).str.strip_chars() == "").then(None).otherwise(pl.col(c)).alias(c) for c in names])
    parsed, suspect = [], []
    for column in entity.columns:
        raw = pl.col(column.name)
        if column.type == "timestamp":
            value = pl.when(raw.str.len_bytes() == 19).then(
                raw.str.strptime(pl.Datetime("us"), _CANONICAL_TIMESTAMP, strict=False))
        else:
            value = parse_column(column.name, column.type)
        parsed.append(value.alias(column.name))
        checks = [raw.str.contains("\ufffd", literal=True), raw.is_not_null() & value.is_null()]
        if column.required:
            checks.append(raw.is_null())
        if column.allowed is not None:
            checks.append(raw.is_not_null() & ~raw.is_in(column.allowed))
        if column.min is not None:
            checks.append(value < column.min)
        if column.max is not None:
            checks.append(value > column.max)
        suspect.append(pl.any_horizontal(checks).fill_null(False))
    fast = norm.select([pl.col(ROW), *parsed, pl.any_horizontal(suspect).alias("__suspect")])
    flagged = fast.get_column("__suspect")
    if not flagged.any():
        return fast.drop("__suspect"), _NO_FAULTS.clone()
    careful = validate_frame(entity, frame.filter(flagged))
    typed = pl.concat([fast.filter(~flagged).drop("__suspect"), careful.typed.cast(fast.drop("__suspect").schema)])
    return typed.sort(ROW), careful.first_fault_per_row().select(ROW, "field", "reason", "value")


_NO_FAULTS = pl.DataFrame(schema={ROW: pl.Int64, "field": pl.String, "reason": pl.String, "value": pl.String})


def _fault_rows(entity: Entity, first: pl.DataFrame, text: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    rows = first.join(meta, on=ROW, how="left").join(
        text.select(ROW, pl.col(entity.primary_key).alias("record_id")), on=ROW, how="left")
    messages = [describe_fault(entity, f, r, v) for f, r, v in rows.select("field", "reason", "value").iter_rows()]
    return rows.with_columns(pl.Series("message", messages, dtype=pl.String)).select(list(QUARANTINE_SCHEMA))
