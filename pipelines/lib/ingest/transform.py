"""Apply an entity's mapping (`pipelines.lib.ingest.mapping`) to the rows of one file.

The reader hands over the file's own columns as text with each row's line (`__row`); what comes out is
named and written as the contract expects, still as text (validation types it). Steps, in this order:
headers renamed (one header may feed several columns), `derive` (templates over the file's headers,
contract names and `line`), `values` (translation tables; a value without a translation takes its row
to quarantine as `unmapped_value`), `formats` (dates, `decimal_comma`, `fraction`; derived values too),
`defaults`, then `collapse` (repeated ids of the file fold into the first line's record; attributes that
differ between repeats become load warnings with counts and examples, never quarantined row by row).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import polars as pl

from pipelines.contract import Entity
from pipelines.contract.validate import ROW
from pipelines.lib.ingest.mapping import EntityMapping, fill_defaults
from pipelines.lib.ingest.rows import LoadWarning, Malformed, UnreadableFileError

_EXAMPLES = 3
_DECIMAL_COMMA = r"^[+-]?[0-9.\s\u00a0\u202f']*(,[0-9]*)?$"


@dataclass
class Mapped:
    frame: pl.DataFrame                                        # contract columns (text) + `__row`
    faults: list[Malformed] = field(default_factory=list)      # rows taken out (unmapped values)
    collapsed: int = 0                                         # repeated lines folded away
    warnings: list[LoadWarning] = field(default_factory=list)


def apply_mapping(entity: Entity, mapping: EntityMapping, frame: pl.DataFrame, display: str) -> Mapped:
    """`frame`: the file's columns as text plus `__row`; see the module docstring for the steps."""
    headers = [c for c in frame.columns if c != ROW]
    picks = mapping.sources(entity, headers)
    exprs = [_text(pl.col(src)).alias(col) for col, src in picks.items() if col not in mapping.derive]
    for column, template in mapping.derive.items():
        exprs.append(_derive(template, picks, headers, display, column).alias(column))
    out = frame.select([*exprs, pl.col(ROW)])
    faults: list[Malformed] = []
    if mapping.values:
        out, faults = _translate(entity, mapping, out, display)
    for column, spec in mapping.formats.items():
        if column in out.columns:
            out = out.with_columns(_formatted(pl.col(column), spec, entity.column(column).type).alias(column))
    out = fill_defaults(out, mapping.defaults)
    mapped = Mapped(out, faults)
    if mapping.collapse and entity.primary_key in out.columns:
        _collapse(entity, mapped, display)
    return mapped


def _text(expr: pl.Expr) -> pl.Expr:
    """Text with empty values as null (an empty CSV field and a missing one mean the same)."""
    value = expr.cast(pl.String)
    return pl.when(value.str.strip_chars() == "").then(None).otherwise(value)


def _derive(template: str, picks: dict[str, str], headers: list[str], display: str, column: str) -> pl.Expr:
    """`"{order_no}-{line}"`: names are the file's headers, contract columns (as mapped) or `line`."""
    plain = {h.strip(): h for h in headers}
    parts: list[pl.Expr] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(pl.lit(literal))
        if name is None:
            continue
        if name == "line":
            parts.append(pl.col(ROW).cast(pl.String))
        elif name in plain:
            parts.append(_text(pl.col(plain[name])))
        elif name in picks:
            parts.append(_text(pl.col(picks[name])))
        else:
            raise UnreadableFileError(f"{display}: the mapping derives {column} from {{{name}}}, which is neither "
                                      "a header of the file nor `line`; correct the template or the export.")
    return pl.concat_str(parts, ignore_nulls=False)


def _translate(entity: Entity, mapping: EntityMapping, out: pl.DataFrame, display: str
               ) -> tuple[pl.DataFrame, list[Malformed]]:
    """Apply the `values` tables; rows with a value neither in a table nor one of its translations go."""
    flags = []
    order = [c for c in entity.column_names if c in mapping.values and c in out.columns]
    for column in order:
        table = mapping.values[column]
        text = pl.col(column).str.strip_chars()
        flag = f"__unmapped_{column}"
        flags.append((column, flag))
        out = out.with_columns(
            pl.when(text.is_in(list(table))).then(text.replace_strict(table, default=None, return_dtype=pl.String))
            .otherwise(pl.col(column)).alias(column),
            (text.is_not_null() & ~text.is_in(list(table)) & ~text.is_in(sorted(set(table.values())))).alias(flag))
    if not flags:
        return out, []
    any_flag = pl.any_horizontal([pl.col(f) for _, f in flags])
    bad = out.filter(any_flag)
    faults = []
    pk = entity.primary_key
    for row in bad.iter_rows(named=True):
        column = next(c for c, f in flags if row[f])
        value = row[column]
        faults.append(Malformed(
            int(row[ROW]), row.get(pk), str(value)[:500], reason="unmapped_value", field=column,
            message=f"line {row[ROW]} of {display}: {column} {value!r} has no translation in the mapping's "
                    f"values.{column}; add it there (their value: contract value) or correct the export."))
    return out.filter(~any_flag).drop([f for _, f in flags]), faults


def _formatted(value: pl.Expr, spec: str, kind: str) -> pl.Expr:
    """A value in the contract's notation, or the value as it was when it does not fit the format (so
    validation names it as `invalid_type`)."""
    text = value.str.strip_chars()
    if spec == "decimal_comma":  # 1.234,56 -> 1234.56 (points, spaces, apostrophes group thousands)
        cleaned = text.str.replace_all(r"[.\s\u00a0\u202f']", "").str.replace(",", ".", literal=True)
        return pl.when(text.str.contains(_DECIMAL_COMMA) & text.str.contains("[0-9]")).then(cleaned).otherwise(value)
    if spec == "fraction":  # 0.15 -> 15 (percent)
        number = text.cast(pl.Float64, strict=False)
        return pl.when(number.is_not_null()).then((number * 100).round(10).cast(pl.String)).otherwise(value)
    if kind == "date":
        parsed = text.str.strptime(pl.Date, spec, strict=False).dt.strftime("%Y-%m-%d")
    else:
        parsed = text.str.strptime(pl.Datetime("us"), spec, strict=False).dt.strftime("%Y-%m-%dT%H:%M:%S")
    return pl.coalesce(parsed, value)


def _collapse(entity: Entity, mapped: Mapped, display: str) -> None:
    """Fold repeated ids into the record of their first line; report attributes that disagree."""
    pk = entity.primary_key
    out = mapped.frame.sort(ROW)
    keyed = out.filter(pl.col(pk).is_not_null())
    first = keyed.unique(pk, keep="first", maintain_order=True)
    mapped.collapsed = keyed.height - first.height
    if not mapped.collapsed:
        return
    columns = [c for c in entity.column_names if c in out.columns and c != pk]
    later = keyed.join(first.select(pk, *[pl.col(c).alias(f"{c}__first") for c in [*columns, ROW]]), on=pk)
    later = later.filter(pl.col(ROW) != pl.col(f"{ROW}__first"))
    label = entity.name.replace("_", " ")
    mapped.warnings.append(LoadWarning(
        "collapsed", pk, first.filter(pl.col(pk).is_in(later.get_column(pk).implode())).height,
        "", f"{display}: {mapped.collapsed} repeated lines of {first.height} {label} were folded into the record "
            f"of their first line ({pk} repeated in one file, `collapse: true`)."))
    for column in columns:
        differ = later.filter(pl.col(column).ne_missing(pl.col(f"{column}__first")))
        if not differ.height:
            continue
        ids = differ.get_column(pk).unique(maintain_order=True)
        shown = not entity.column(column).pii  # personal data stays out of the warnings: lines only
        examples = "; ".join(
            f"{r[pk]}: {r[f'{column}__first']!r} (line {r[f'{ROW}__first']}) and {r[column]!r} (line {r[ROW]})"
            if shown else f"{r[pk]}: lines {r[f'{ROW}__first']} and {r[ROW]}"
            for r in differ.unique(pk, keep="first", maintain_order=True).head(_EXAMPLES).iter_rows(named=True))
        mapped.warnings.append(LoadWarning(
            "collapse_conflict", column, ids.len(), examples,
            f"{display}: {ids.len()} {label} repeat with a different {column} on {differ.height} lines "
            f"(e.g. {examples}); the first line's value is kept: check the export if that is wrong."))
    mapped.frame = pl.concat([first, out.filter(pl.col(pk).is_null())]).sort(ROW)
