"""Deliberate faults in landing rows (`--dirty RATE`), each listed in ground_truth/dirty_rows.csv.

Only rows that no other row references are corrupted (so no dependant is quarantined with them), a
primary key is only touched by `duplicate_id`, and every corrupted row carries exactly one fault.
Value-level faults are applied to the export frame; bad encodings are marked with a sentinel character
the writer turns into a latin-1 byte, malformed CSV rows are marked for the writer to add or drop a
field. Parquet is typed, so it only gets the faults a typed file can carry.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.contract import Entity

SENTINEL = "\ue000"          # becomes the latin-1 byte 0xE9 ("é") in the written file
SENTINEL_BYTES = SENTINEL.encode("utf-8")
LATIN1_BYTE = b"\xe9"
FILE = "__file"
KEY = "__key"
MALFORMED = "__malformed"    # 0 = fine, 1 = one field too many, 2 = one field too few

KINDS = {
    "csv": ["invalid_type", "missing_required", "unknown_reference", "duplicate_id", "bad_encoding",
            "malformed_row", "out_of_range"],
    "jsonl": ["invalid_type", "missing_required", "unknown_reference", "duplicate_id", "bad_encoding",
              "out_of_range"],
    "parquet": ["missing_required", "unknown_reference", "duplicate_id", "out_of_range"],
}
BAD_DATES = ["31.12.2025", "2025-02-30", "n/a", "13/45/2024"]
BAD_TIMESTAMPS = ["2025-13-01T10:00:00", "31.12.2025 14:30", "yesterday", "2025-02-30T08:00:00"]
#: The column a duplicate row differs in (same id and updated_at, different content).
DUPLICATE_CHANGES = {
    "products": "list_price", "product_prices": "unit_price", "campaigns": "cost", "campaign_members": "status",
    "accounts": "account_name", "orders": "status", "order_lines": "quantity", "invoices": "amount",
    "payments": "amount", "tickets": "priority", "contracts": "annual_value", "interactions": "direction",
}


def _fields(entity: Entity, kind: str, frame: pl.DataFrame) -> list[str]:
    pk = entity.primary_key
    out = []
    for c in entity.columns:
        if c.name == pk or c.name not in frame.columns:
            continue
        if kind == "invalid_type" and c.type in ("date", "timestamp") and frame.schema[c.name] == pl.String or kind == "missing_required" and c.required or kind == "unknown_reference" and c.reference or kind == "out_of_range" and c.min is not None and c.type in ("integer", "decimal") or kind == "bad_encoding" and c.type == "string" and not c.reference and frame.schema[c.name] == pl.String:
            out.append(c.name)
    return out


def _eligible(frame: pl.DataFrame, rows: np.ndarray, kind: str, fields: list[str]) -> np.ndarray:
    sub = frame[rows]
    cols = []
    for f in fields:
        ok = sub[f].is_not_null().to_numpy()
        if kind == "out_of_range":
            ok &= (sub[f].fill_null(0) > 0).to_numpy()
        cols.append(ok)
    return np.column_stack(cols) if cols else np.zeros((len(rows), 0), dtype=bool)


def inject(rng: np.random.Generator, entity: Entity, frame: pl.DataFrame, fmt: str, rate: float,
           referenced: set[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Corrupt about `rate` of the unreferenced rows of `frame` (an export frame with a `__file` column).

    Returns the frame in file order (duplicates right after their original) with `__malformed`, and the
    manifest rows (entity, file, line, record_id, field, reason).
    """
    n = frame.height
    frame = frame.with_columns(pl.Series(KEY, np.arange(n, dtype=np.int64) * 2), pl.lit(0).alias(MALFORMED))
    pk = entity.primary_key
    manifest_parts: list[pl.DataFrame] = []
    dup_rows: pl.DataFrame | None = None
    if rate > 0 and n:
        ids = frame[pk]
        free = np.flatnonzero(~ids.is_in(pl.Series(sorted(referenced), dtype=pl.String).implode()).to_numpy())
        k = min(round(rate * n), len(free))
        chosen = np.sort(rng.choice(free, k, replace=False)) if k else free[:0]
        kinds = np.array(KINDS[fmt])[rng.integers(0, len(KINDS[fmt]), k)]
        field = np.full(k, "", dtype=object)
        for kind in KINDS[fmt]:
            sel = np.flatnonzero(kinds == kind)
            if kind in ("duplicate_id", "malformed_row") or not len(sel):
                field[sel] = pk if kind == "duplicate_id" else ""
                continue
            names = _fields(entity, kind, frame)
            elig = _eligible(frame, chosen[sel], kind, names)
            has = elig.any(axis=1) if elig.shape[1] else np.zeros(len(sel), dtype=bool)
            if elig.shape[1]:
                pick = np.argmax(rng.random(elig.shape) * elig, axis=1)
                field[sel[has]] = np.array(names, dtype=object)[pick[has]]
            fallback = sel[~has]
            kinds[fallback] = "missing_required"
            req = _fields(entity, "missing_required", frame)
            field[fallback] = np.array(req, dtype=object)[rng.integers(0, len(req), len(fallback))]
        frame, dup_rows = _apply(rng, entity, frame, chosen, kinds, field)
        manifest_parts.append(pl.DataFrame({
            KEY: np.where(kinds == "duplicate_id", chosen * 2 + 1, chosen * 2),
            "field": field.astype(str), "reason": kinds.astype(str)}))
    if dup_rows is not None and dup_rows.height:
        frame = pl.concat([frame, dup_rows], how="vertical_relaxed")
    frame = frame.sort([FILE, KEY])
    base = 2 if fmt == "csv" else 1
    frame = frame.with_columns((pl.int_range(pl.len()).over(FILE) + base).alias("__line"))
    if manifest_parts:
        manifest = manifest_parts[0].join(frame.select(KEY, FILE, "__line", pk), on=KEY, how="left").select(
            pl.lit(entity.name).alias("entity"), pl.col(FILE).alias("file"), pl.col("__line").alias("line"),
            pl.col(pk).alias("record_id"), "field", "reason")
    else:
        manifest = pl.DataFrame(schema={"entity": pl.String, "file": pl.String, "line": pl.Int64,
                                        "record_id": pl.String, "field": pl.String, "reason": pl.String})
    return frame.drop(KEY, "__line"), manifest


def _apply(rng: np.random.Generator, entity: Entity, frame: pl.DataFrame, chosen: np.ndarray, kinds: np.ndarray,
           field: np.ndarray) -> tuple[pl.DataFrame, pl.DataFrame]:
    n = frame.height
    updates: dict[str, pl.Expr] = {}
    for name in sorted({f for f in field if f}):
        col_type = entity.column(name).type
        expr = pl.col(name)
        for kind in ("invalid_type", "missing_required", "unknown_reference", "out_of_range", "bad_encoding"):
            rows = chosen[(field == name) & (kinds == kind)]
            if not len(rows):
                continue
            mask = np.zeros(n, dtype=bool)
            mask[rows] = True
            hit = pl.Series(mask)
            if kind == "invalid_type":
                bad = BAD_DATES if col_type == "date" else BAD_TIMESTAMPS
                values = np.full(n, None, dtype=object)
                values[rows] = np.array(bad, dtype=object)[rng.integers(0, len(bad), len(rows))]
                expr = pl.when(hit).then(pl.Series(values.tolist(), dtype=pl.String)).otherwise(expr)
            elif kind == "missing_required":
                expr = pl.when(hit).then(None).otherwise(expr)
            elif kind == "unknown_reference":
                expr = pl.when(hit).then(pl.col(name).str.replace(r"-(\d+)$", "-9${1}")).otherwise(expr)
            elif kind == "out_of_range":
                expr = pl.when(hit).then(-pl.col(name)).otherwise(expr)
            elif kind == "bad_encoding":
                expr = pl.when(hit).then(pl.col(name).str.slice(0, 1) + pl.lit(SENTINEL)
                                         + pl.col(name).str.slice(1)).otherwise(expr)
        updates[name] = expr.alias(name)
    malformed = chosen[kinds == "malformed_row"]
    if len(malformed):
        values = np.zeros(n, dtype=np.int32)
        values[malformed] = rng.integers(1, 3, len(malformed))
        updates[MALFORMED] = pl.lit(pl.Series(MALFORMED, values))
    original = frame
    if updates:
        frame = frame.with_columns(list(updates.values()))
    dups = chosen[kinds == "duplicate_id"]
    dup_rows = original[dups]
    if len(dups):
        change = DUPLICATE_CHANGES[entity.name]
        column = entity.column(change)
        if column.allowed:
            mapping = {v: column.allowed[(i + 1) % len(column.allowed)] for i, v in enumerate(column.allowed)}
            new = pl.col(change).replace_strict(mapping, default=pl.col(change))
        elif column.type in ("integer", "decimal"):
            new = pl.col(change) + 1
        else:
            new = pl.col(change) + pl.lit(" (2)")
        dup_rows = dup_rows.with_columns(new.alias(change), (pl.col(KEY) + 1).alias(KEY))
    return frame, dup_rows
