"""Row checks for one batch of an entity: contract validation, then the cross-row checks.

Order matters and is fixed, so each bad row is filed under exactly one reason:
1. the reader's `malformed_row` (the row could not even be split into fields);
2. `validate_frame` (first fault in contract column order: bad_encoding, missing_required, ...);
3. duplicates among the rows that passed: rows with the same id and the same `updated_at` - the first
   occurrence (store first, then landing files sorted by name, then line) is kept; a later one with
   identical content is an exact duplicate, dropped and counted; one with different content is
   quarantined as `duplicate_id`;
4. references: a foreign key whose id is not loaded (in raw, or for a reference to the entity itself,
   in this batch) is `parent_quarantined` when that id sits in quarantine (the message names the
   parent's file and line), else `unknown_reference`. A child is never loaded without its parent, so the
   marts' relationships hold; it loads with its parent once the parent is fixed (ingestion re-examines
   it, see `pipelines.lib.ingest.run`).
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


#: What is known of a referenced entity's ids: `loaded` (in raw) and `quarantined` (only in quarantine:
#: id, source_file, source_line, reason; one row per id).
PARENT_SCHEMA = {"id": pl.String, "source_file": pl.String, "source_line": pl.Int64, "reason": pl.String}


@dataclass
class KnownIds:
    loaded: pl.Series
    quarantined: pl.DataFrame  # PARENT_SCHEMA


@dataclass
class CheckedBatch:
    loaded: pl.DataFrame        # typed contract columns + SRC + LINE, one row per id (latest version)
    loaded_counts: dict[int, int]
    quarantine: pl.DataFrame    # QUARANTINE_SCHEMA
    duplicates: dict[int, int]  # exact duplicates dropped per part


def check_batch(entity: Entity, text: pl.DataFrame, malformed: pl.DataFrame,
                known_ids: Callable[[str], KnownIds], part_days: dict[int, date] | None = None,
                part_files: dict[int, str] | None = None) -> CheckedBatch:
    """`text`: contract columns as text plus SRC and LINE; `malformed`: QUARANTINE_SCHEMA rows.

    `known_ids(entity)`: the loaded and quarantined ids of a referenced entity. `part_files`: the file of
    each part, to name a parent quarantined in this very batch (a reference to the entity itself).
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
    clean, ref_faults = _check_references(entity, clean, quarantine, known_ids, part_files or {})
    quarantine.extend(ref_faults)

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


def _check_references(entity: Entity, clean: pl.DataFrame, faults: list[pl.DataFrame],
                      known_ids: Callable[[str], KnownIds], part_files: dict[int, str]
                      ) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """(rows whose references all resolve, quarantine rows of the others: one per row, first column wins).

    References to other entities are decided in one pass (those entities are committed before this one
    loads). A reference to the entity itself may point at a row of this batch: a row whose parent in the
    batch is quarantined is quarantined too, and so on down the chain.
    """
    found: list[pl.DataFrame] = []
    others = [c for c in entity.columns if c.reference and c.reference[0] != entity.name]
    for column in others:
        known = known_ids(column.reference[0])
        found.append(_unresolved(entity, column, clean, known.loaded, known.quarantined))
    clean, bad = _drop_found(clean, found)
    own = [c for c in entity.columns if c.reference and c.reference[0] == entity.name]
    if not own:
        return clean, bad
    known = known_ids(entity.name)
    while True:
        in_batch = _batch_parents(entity, [*faults, *bad], part_files)
        quarantined = pl.concat([in_batch, known.quarantined.cast(PARENT_SCHEMA)]).unique(
            "id", keep="first", maintain_order=True)
        loaded = pl.concat([known.loaded.cast(pl.String), clean.get_column(entity.primary_key).cast(pl.String)])
        more = [_unresolved(entity, column, clean, loaded, quarantined) for column in own]
        if not any(f.height for f in more):
            return clean, bad
        clean, new = _drop_found(clean, more)
        bad.extend(new)


def _unresolved(entity: Entity, column, clean: pl.DataFrame, loaded: pl.Series,
                quarantined: pl.DataFrame) -> pl.DataFrame:
    """Rows of `clean` whose `column` names an id that is not loaded: `parent_quarantined` when the id is
    in quarantine (the message says where), else `unknown_reference`. Columns: ROW + QUARANTINE_SCHEMA."""
    name, target = column.name, column.reference[0]
    hits = clean.filter(pl.col(name).is_not_null() & ~pl.col(name).is_in(loaded.implode()))
    if not hits.height:
        return pl.DataFrame(schema={ROW: pl.Int64, **QUARANTINE_SCHEMA})
    hits = hits.join(quarantined.select(pl.col("id").alias(name), pl.col("source_file").alias("__pfile"),
                                        pl.col("source_line").alias("__pline"), pl.col("reason").alias("__preason")),
                     on=name, how="left")
    parent = pl.col("__pfile").is_not_null()
    where = pl.when(pl.col("__pline").is_null()).then(pl.col("__pfile")).otherwise(
        pl.format("line {} of {}", pl.col("__pline"), pl.col("__pfile")))
    return hits.select(
        ROW, SRC, LINE, pl.col(entity.primary_key).alias("record_id"), pl.lit(name).alias("field"),
        pl.when(parent).then(pl.lit("parent_quarantined")).otherwise(pl.lit("unknown_reference")).alias("reason"),
        pl.col(name).alias("value"),
        # a parent held back by its own parent is not the row to fix: the chain's first row is
        pl.when(parent & (pl.col("__preason") == "parent_quarantined")).then(pl.format(
            "{} {} refers to a row of {} that is held back itself ({}, parent_quarantined); fix the row that "
            "one refers to (its message names it) and both load.",
            pl.lit(name), pl.col(name), pl.lit(target), where)).when(parent).then(pl.format(
            "{} {} refers to a row of {} that is quarantined itself ({}, {}); fix that row and this one "
            "loads with it.",
            pl.lit(name), pl.col(name), pl.lit(target), where, pl.col("__preason"))).otherwise(pl.format(
            "{} {} does not exist in {}; load that record first or correct the id.",
            pl.lit(name), pl.col(name), pl.lit(target))).alias("message"))


def _drop_found(clean: pl.DataFrame, found: list[pl.DataFrame]) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    found = [f for f in found if f.height]
    if not found:
        return clean, []
    refs = pl.concat(found).unique(ROW, keep="first", maintain_order=True)
    return clean.filter(~pl.col(ROW).is_in(refs.get_column(ROW).implode())), [refs.drop(ROW)]


def _batch_parents(entity: Entity, faults: list[pl.DataFrame], part_files: dict[int, str]) -> pl.DataFrame:
    """Ids quarantined in this batch, with their file and line (PARENT_SCHEMA)."""
    rows = pl.concat([f.select(SRC, LINE, "record_id", "reason").cast(
        {SRC: pl.Int64, LINE: pl.Int64, "record_id": pl.String, "reason": pl.String}) for f in faults])
    rows = rows.filter(pl.col("record_id").is_not_null())
    return rows.select(
        pl.col("record_id").alias("id"),
        pl.col(SRC).replace_strict(part_files, default=None, return_dtype=pl.String).alias("source_file"),
        pl.col(LINE).alias("source_line"), "reason").cast(PARENT_SCHEMA)


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
