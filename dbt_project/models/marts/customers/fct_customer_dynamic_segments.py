"""Dynamic segments: membership of each customer in the analyst-defined segments of
segments/dynamic_segments.yml (one row per customer and matching segment).

A dbt Python model rather than SQL because the rules come from a file an analyst edits: each rule is
checked against a whitelist of fields (the columns of dim_customer_360 minus personal data) and operators
and turned into a polars expression with the value as a literal, so nothing from the file becomes SQL text.
"""

from pathlib import Path

import polars as pl
import pyarrow as pa
import yaml

SEGMENTS_FILE = "segments/dynamic_segments.yml"
PERSONAL_FIELDS = {"customer_name", "email", "phone", "account_ids"}
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def _project_dir() -> Path:
    from dbt.flags import get_flags

    return Path(getattr(get_flags(), "PROJECT_DIR", None) or ".").resolve()


def _fail(path: Path, where: str, problem: str) -> None:
    raise ValueError(f"{path}: {where}: {problem}; fix the file and run the build again.")


def _rule_expression(path: Path, where: str, rule: dict, columns: dict[str, pl.DataType]) -> pl.Expr:
    field, op = rule.get("field"), rule.get("op")
    if field not in columns or field in PERSONAL_FIELDS:
        usable = ", ".join(sorted(set(columns) - PERSONAL_FIELDS))
        _fail(path, where, f"unknown field {field!r} (usable fields: {usable})")
    column = pl.col(field)
    numeric = columns[field].is_numeric()
    value = rule.get("value")

    def scalar(v):
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            _fail(path, where, f"value {v!r} must be a number or text")
        if numeric and not isinstance(v, (int, float)):
            _fail(path, where, f"field {field} is a number but the value {v!r} is not")
        return pl.lit(v)

    if op in ("is_null", "not_null"):
        return column.is_null() if op == "is_null" else column.is_not_null()
    if op in ("eq", "ne"):
        return column == scalar(value) if op == "eq" else column != scalar(value)
    if op in ("gt", "gte", "lt", "lte"):
        if not numeric:
            _fail(path, where, f"{op} needs a numeric field, {field} is text")
        literal = scalar(value)
        return {"gt": column > literal, "gte": column >= literal, "lt": column < literal, "lte": column <= literal}[op]
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            _fail(path, where, f"{op} needs a non-empty list as value")
        for v in value:
            scalar(v)
        members = column.is_in(pl.Series(value).implode())
        return members if op == "in" else column.is_not_null() & ~members
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            _fail(path, where, "between needs a list [low, high] as value")
        return column.is_between(scalar(value[0]), scalar(value[1]), closed="both")
    _fail(path, where, f"unknown op {op!r} (use eq, ne, gt, gte, lt, lte, in, not_in, between, is_null, not_null)")
    return None  # unreachable: _fail raises


def model(dbt, session):
    dbt.config(materialized="table")
    customers = dbt.ref("dim_customer_360").pl()
    path = _project_dir() / SEGMENTS_FILE
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    columns = dict(customers.schema)

    frames, seen = [], set()
    for index, segment in enumerate(spec.get("segments") or [], start=1):
        name = str(segment.get("name", ""))
        where = f"segment {index} ({name or 'no name'})"
        if not name or set(name) - NAME_CHARS or name in seen:
            _fail(path, where, "name must be unique and use only lowercase letters, digits and underscores")
        seen.add(name)
        rules = segment.get("rules") or []
        if not rules:
            _fail(path, where, "a segment needs at least one rule")
        match = segment.get("match", "all")
        if match not in ("all", "any"):
            _fail(path, where, f"match must be all or any, not {match!r}")
        expressions = [
            _rule_expression(path, f"{where}, rule {n}", rule, columns) for n, rule in enumerate(rules, start=1)
        ]
        combined = pl.all_horizontal(expressions) if match == "all" else pl.any_horizontal(expressions)
        frames.append(
            customers.filter(combined.fill_null(False)).select(
                pl.col("customer_key"),
                pl.lit(name).alias("segment_name"),
                pl.lit(str(segment.get("description", ""))).alias("segment_description"),
                pl.col("as_of_date"),
            )
        )

    schema = pa.schema([
        ("customer_key", pa.string()),
        ("segment_name", pa.string()),
        ("segment_description", pa.string()),
        ("as_of_date", pa.date32()),
    ])
    if not frames:
        return schema.empty_table()
    members = pl.concat(frames).sort("segment_name", "customer_key")
    return members.to_arrow().cast(schema)
