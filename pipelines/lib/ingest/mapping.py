"""The column-mapping file: how someone else's export maps onto the import contract.

Format (YAML, `$CRM_HOME/landing/column_mapping.yaml`, optional; entities not listed use the contract
names as they are; every key is optional; docs/IMPORT_FORMAT.md has a worked example of each)::

    order_lines:                   # contract entity name
      file:                        # how the file is written
        delimiter: ";"             # one character, "tab" or "whitespace" (runs of spaces and tabs)
        header: false              # no header line: `names` are the columns, in order
        names: [order, sku, qty, total, date]
        encoding: latin-1          # any Python codec; default utf-8
        format: csv                # csv | jsonl | parquet | xlsx: read a file of any suffix as this
        sheet: Orders              # .xlsx: the sheet (default the first)
      columns:                     # "their header": contract column, or a list of contract columns
        order: order_id
        sku: [product_id]
      values:                      # per column: their value -> contract value
        status: {Done: completed, Storno: cancelled}
      formats:                     # per column: a date/time format, decimal_comma or fraction
        updated_at: "%d.%m.%Y"
        line_amount: decimal_comma
      derive:                      # a column built from others and the line number
        order_line_id: "{order}-{line}"
      defaults:                    # contract column: value used when the column is absent or empty
        discount_pct: 0
      collapse: true               # repeated ids in one file fold into the first line's record

Headers that are neither contract columns nor mapped are ignored. Order of work on each row: headers are
renamed, `derive` builds its columns (from the file's headers, contract names and `line`), `values`
translates, `formats` normalises (derived values too), `defaults` fill what is still empty, `collapse`
folds repeats. A value with no translation in `values` quarantines the row (`unmapped_value`, naming the
column and the value); `collapse` counts folded lines as duplicates and reports attributes that differ
between the repeats as load warnings (`raw._load_warnings`), with counts and examples.

A data file may carry its own section in a sidecar `landing/<entity>/<file>.mapping.yaml` (`mapping_for_file`),
which replaces the home file's section for that file; a sidecar is settings, never data.

Each entity's section is checked on its own (pydantic models, then the contract): a section of the wrong
shape, a key the format does not know, a column the contract does not have, or two headers mapped to one
column is a `MappingError` for that entity only, one sentence naming the file, the entity and the key.
`load_column_mapping` collects them (`ColumnMapping.errors`) and `for_entity` raises the one of the
entity asked for, so ingestion reports that entity's files as unreadable and loads every other entity.
Only a file that is not YAML or not a mapping of entity names at all stops everything.
"""

from __future__ import annotations

import codecs
import difflib
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from pipelines.contract import Entity, load_contract


class MappingError(ValueError):
    """The column-mapping file is not usable; the message names the file, the entity and the fix."""


Scalar = str | int | float | bool


class FileSection(BaseModel):
    """`file:` of a section: how the export is written."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "jsonl", "parquet", "xlsx"] | None = None
    delimiter: str | None = None
    header: bool = True
    names: list[str] | None = None
    encoding: str = "utf-8"
    sheet: str | None = None


class Section(BaseModel):
    """One entity's section as written in the file (shape only; names are checked against the contract)."""

    model_config = ConfigDict(extra="forbid")

    file: FileSection | None = None
    columns: dict[str, str | list[str]] = {}
    values: dict[str, dict[str, Scalar]] = {}
    formats: dict[str, str] = {}
    derive: dict[str, str] = {}
    defaults: dict[str, Scalar | None] = {}
    collapse: bool = False

    @model_validator(mode="before")
    @classmethod
    def _text_keys(cls, data: Any) -> Any:
        """YAML keys may be numbers or booleans (`1: closed_won`); they name text in the file."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key in ("columns", "values", "formats", "derive", "defaults"):
            if isinstance(out.get(key), dict):
                out[key] = {_text(k): v for k, v in out[key].items()}
        if isinstance(out.get("values"), dict):
            out["values"] = {k: {_text(a): b for a, b in v.items()} if isinstance(v, dict) else v
                             for k, v in out["values"].items()}
        return out


#: What each key must hold, for error sentences.
KEY_SHAPES: dict[str, str] = {
    "file": "a mapping of file options (format, delimiter, header, names, encoding, sheet)",
    "columns": 'a mapping of "header in your file": contract column (or a list of contract columns)',
    "values": "a mapping of contract column: {their value: contract value}",
    "formats": 'a mapping of contract column: a format ("%d.%m.%Y", decimal_comma or fraction)',
    "derive": 'a mapping of contract column: a template like "{order_no}-{line}"',
    "defaults": "a mapping of contract column: value",
    "collapse": "true or false",
}

#: `formats` keywords, and the contract types each applies to.
NUMBER_FORMATS = {"decimal_comma": ("decimal", "integer"), "fraction": ("decimal",)}
DELIMITER_WORDS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "whitespace": "whitespace"}


@dataclass(frozen=True)
class FileOptions:
    """How a file is written (defaults: by its suffix; delimited text is comma-separated with a header)."""

    delimiter: str | None = None       # one character or "whitespace"; None: by suffix (.tsv: tab, else ",")
    header: bool = True
    names: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    format: str | None = None          # csv | jsonl | parquet | xlsx; None: by suffix
    sheet: str | None = None


@dataclass(frozen=True)
class EntityMapping:
    columns: dict[str, str | tuple[str, ...]] = field(default_factory=dict)  # their header -> contract column(s)
    defaults: dict[str, str] = field(default_factory=dict)  # contract column -> text value
    file: FileOptions | None = None
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> their value -> contract value
    formats: dict[str, str] = field(default_factory=dict)  # column -> strftime format | decimal_comma | fraction
    derive: dict[str, str] = field(default_factory=dict)   # column -> template with {header} and {line}
    collapse: bool = False

    @property
    def file_options(self) -> FileOptions:
        return self.file or FileOptions()

    @property
    def batchable(self) -> bool:
        """Only renames and defaults: JSON Lines files may be parsed together in one batch."""
        return self.file is None and not (self.values or self.formats or self.derive or self.collapse)

    def targets(self, header: str) -> tuple[str, ...]:
        """The contract columns a header of the file feeds (none if it is not mapped)."""
        target = self.columns.get(header.strip())
        if target is None:
            return ()
        return (target,) if isinstance(target, str) else tuple(target)

    def source_name(self, contract_column: str) -> str:
        """The header to look for in a file for a contract column (mapped name, else the column itself)."""
        for theirs in self.columns:
            if contract_column in self.targets(theirs):
                return theirs
        return contract_column

    def sources(self, entity: Entity, headers: list[str]) -> dict[str, str]:
        """Contract column -> the header of the file it is read from (mapped headers first, then headers
        named like a contract column that no mapped header feeds)."""
        picks: dict[str, str] = {}
        for name in headers:
            for target in self.targets(name):
                if target in entity.column_names and target not in picks:
                    picks[target] = name
        for name in headers:
            plain = name.strip()
            if plain in entity.column_names and plain not in picks and not self.targets(name):
                picks[plain] = name
        return picks

    def apply(self, entity: Entity, frame: pl.DataFrame, keep: tuple[str, ...] = ()) -> pl.DataFrame:
        """Rename mapped headers, drop unknown ones, fill defaults; columns stay text."""
        picks = self.sources(entity, frame.columns)
        out = frame.select([pl.col(src).alias(col) for col, src in picks.items()] + [pl.col(k) for k in keep])
        return fill_defaults(out, self.defaults)


def fill_defaults(frame: pl.DataFrame, defaults: dict[str, str]) -> pl.DataFrame:
    """The mapping's default values for absent or empty columns (columns stay text)."""
    for column, value in defaults.items():
        if column in frame.columns:
            frame = frame.with_columns(
                pl.when(pl.col(column).is_null() | (pl.col(column).cast(pl.String).str.strip_chars() == ""))
                .then(pl.lit(value)).otherwise(pl.col(column).cast(pl.String)).alias(column))
        else:
            frame = frame.with_columns(pl.lit(value, dtype=pl.String).alias(column))
    return frame


@dataclass(frozen=True)
class ColumnMapping:
    entities: dict[str, EntityMapping] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # entity -> the sentence saying what to fix

    def for_entity(self, name: str) -> EntityMapping:
        """The entity's mapping; `MappingError` if its section is broken (only that entity's files fail)."""
        if name in self.errors:
            raise MappingError(self.errors[name])
        return self.entities.get(name, EntityMapping())


def load_column_mapping(path: Path) -> ColumnMapping:
    """Read and check the mapping file; a missing file means "headers already match the contract"."""
    if not path.exists():
        return ColumnMapping()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MappingError(f"{path} is not UTF-8 text ({exc}); save it as UTF-8.") from exc
    return load_column_mapping_text(text, str(path))


def load_column_mapping_text(text: str, source: str) -> ColumnMapping:
    """`load_column_mapping` for YAML text (`source` names it in messages)."""
    try:
        body = yaml.load(text, Loader=_Loader) or {}  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise MappingError(f"{source} is not valid YAML ({' '.join(str(exc).split())}); "
                           "fix the file or remove it.") from exc
    except ValueError as exc:  # a date YAML reads as one but the calendar has not (2026-13-45)
        raise MappingError(f"{source} holds a date that does not exist ({exc}); correct it, or quote it to "
                           "keep it as text.") from exc
    return load_column_mapping_dict(body, source)


def load_column_mapping_dict(body: Any, source: str) -> ColumnMapping:
    """`load_column_mapping` for an already parsed document: entity name -> section."""
    if not isinstance(body, dict):
        raise MappingError(f"{source} must map entity names to their sections ({{columns: ..., defaults: ...}}), "
                           f"not {_kind(body)}; fix the file.")
    contract = load_contract()
    entities: dict[str, EntityMapping] = {}
    errors: dict[str, str] = {}
    for name, spec in body.items():
        name = str(name)
        if name not in contract.entities:
            close = difflib.get_close_matches(name, list(contract.entities), n=1)
            hint = f"did you mean {close[0]}?" if close else f"use one of {', '.join(contract.entities)}."
            # a misspelt entity concerns the entity it was meant for: its files must not load unmapped
            errors[close[0] if close and close[0] not in body else name] = (
                f"{source}: {name!r} is not an entity of the import contract; {hint}")
            continue
        try:
            entities[name] = entity_mapping(spec, contract.entity(name), source)
        except MappingError as exc:
            errors[name] = str(exc)
    return ColumnMapping(entities, errors)


def entity_mapping(spec: Any, entity: Entity, source: str) -> EntityMapping:
    """One entity's section, checked: shape by the pydantic models, names against the contract."""
    where = f"{source}: entity {entity.name}"
    if spec is None:
        return EntityMapping()
    if not isinstance(spec, dict):
        raise MappingError(f"{where} must be a mapping of keys ({', '.join(KEY_SHAPES)}), not {_kind(spec)}; "
                           "fix the file.")
    try:
        section = Section.model_validate(spec)
    except ValidationError as exc:
        raise MappingError(_shape_error(where, exc)) from None
    names = entity.column_names

    def fail(key: str, problem: str) -> MappingError:
        return MappingError(f"{where}, key `{key}`: {problem}")

    def check_column(key: str, column: str) -> None:
        if column not in names:
            raise fail(key, f"{entity.name} has no column {column!r}; use one of {', '.join(names)}.")

    columns: dict[str, str | tuple[str, ...]] = {}
    for header, target in section.columns.items():
        targets = [target] if isinstance(target, str) else target
        if not targets:
            raise fail(f"columns.{header}", "lists no contract column; name at least one.")
        for t in targets:
            check_column(f"columns.{header}", t)
        columns[header.strip()] = target if isinstance(target, str) else tuple(targets)
    fed = [t for target in columns.values() for t in ((target,) if isinstance(target, str) else target)]
    doubled = sorted({t for t in fed if fed.count(t) > 1})
    if doubled:
        raise fail("columns", f"several headers map to {', '.join(doubled)}; keep one header per contract column.")
    defaults = {k: _text(v) for k, v in section.defaults.items() if v is not None}
    for column in defaults:
        check_column(f"defaults.{column}", column)
    values = {}
    for column, table in section.values.items():
        check_column(f"values.{column}", column)
        values[column] = {key.strip(): _text(value) for key, value in table.items()}
    formats = {}
    for column, spec_format in section.formats.items():
        check_column(f"formats.{column}", column)
        kind = entity.column(column).type
        if spec_format in NUMBER_FORMATS:
            if kind not in NUMBER_FORMATS[spec_format]:
                raise fail(f"formats.{column}", f"{spec_format} is for {' or '.join(NUMBER_FORMATS[spec_format])} "
                                                f"columns, and {column} is a {kind}; remove it.")
        elif "%" in spec_format:
            if kind not in ("date", "timestamp"):
                raise fail(f"formats.{column}", f"a date format is for date and timestamp columns, and {column} "
                                                f"is a {kind}; remove it.")
        else:
            raise fail(f"formats.{column}", f"{spec_format!r} is not a format; write a date format like "
                                            "\"%d.%m.%Y\" or one of decimal_comma, fraction.")
        formats[column] = spec_format
    derive = {}
    for column, template in section.derive.items():
        check_column(f"derive.{column}", column)
        if column in fed:
            raise fail(f"derive.{column}", f"{column} is also mapped from a header in `columns`; keep one of them.")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            raise fail(f"derive.{column}", f"{template!r} is not a template ({exc}); write it like "
                                           "\"{order_no}-{line}\".") from None
        if not fields or any(not f or any(c in f for c in "!:[].") for f in fields):
            raise fail(f"derive.{column}", f"{template!r} must name at least one column in braces, like "
                                           "\"{order_no}-{line}\".")
        derive[column] = template
    return EntityMapping(columns=columns, defaults=defaults, file=_file_options(section.file, fail),
                         values=values, formats=formats, derive=derive, collapse=section.collapse)


def _file_options(spec: FileSection | None, fail) -> FileOptions | None:
    """`file:` checked: a delimiter is one character (or a word for one), names go with `header: false`."""
    if spec is None:
        return None
    delimiter = spec.delimiter
    if delimiter is not None:
        delimiter = DELIMITER_WORDS.get(delimiter.lower(), delimiter) if len(delimiter) > 1 else delimiter
        if delimiter != "whitespace" and (len(delimiter) != 1 or delimiter in "\"\r\n"):
            raise fail("file.delimiter", f"{spec.delimiter!r} is not a delimiter; use one character (\",\", \";\", "
                                         "\"|\"), tab or whitespace.")
    if spec.header and spec.names is not None:
        raise fail("file.names", "names are for files without a header line; add `header: false` or remove them.")
    if not spec.header and not spec.names:
        raise fail("file.header", "a file without a header line needs `names: [...]`, its columns in order.")
    if spec.names is not None and len(set(spec.names)) != len(spec.names):
        raise fail("file.names", "a name occurs twice; give every column its own name.")
    try:
        codecs.lookup(spec.encoding)
    except LookupError:
        raise fail("file.encoding", f"{spec.encoding!r} is not an encoding Python knows; use e.g. utf-8, "
                                    "latin-1, cp1252 or utf-16.") from None
    return FileOptions(delimiter=delimiter, header=spec.header,
                       names=tuple(spec.names) if spec.names is not None else None,
                       encoding=spec.encoding, format=spec.format, sheet=spec.sheet)


def _shape_error(where: str, exc: ValidationError) -> str:
    """One sentence for the first problem pydantic found: the key, what it must be, what it is."""
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"] if not _TYPE_TAG.match(str(p))]
    key = loc[0] if loc else ""
    path = ".".join(loc)
    if error["type"] == "extra_forbidden":
        known = list(FileSection.model_fields) if key == "file" and len(loc) > 1 else list(KEY_SHAPES)
        return f"{where}, key `{path}`: is not a mapping key; use one of {', '.join(known)}."
    shape = KEY_SHAPES.get(key, "as the import guide shows")
    if len(loc) > 1:
        return (f"{where}, key `{path}`: must be {shape} ({error['msg'].lower()}, got {_kind(error['input'])}); "
                "fix the file.")
    return f"{where}, key `{path}`: must be {shape}, not {_kind(error['input'])}; fix the file."


_TYPE_TAG = re.compile(r"^(?:str|int|float|bool|none|list\[.*\]|dict\[.*\]|function-.*)$")


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    return f"the {type(value).__name__} {value!r}"


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Loader(yaml.SafeLoader):
    """YAML with the 1.2 booleans only: `yes`, `no`, `on`, `off` stay text (they are values in exports)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                              re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


#: A data file's own mapping lies next to it: `landing/<entity>/<file>.mapping.yaml` (or `.yml`).
SIDECAR_SUFFIXES = (".mapping.yaml", ".mapping.yml")


def sidecar_path(path: Path) -> Path | None:
    """The sidecar mapping of a data file, if there is one."""
    for suffix in SIDECAR_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def is_sidecar(path: Path) -> bool:
    """A sidecar mapping file (settings for a data file, never data itself)."""
    return path.name.lower().endswith(SIDECAR_SUFFIXES)


def mapping_for_file(home_mapping: ColumnMapping, entity_name: str, path: Path) -> EntityMapping:
    """The mapping a landing file is read with: its sidecar's section if it has one (it replaces the
    home's section for that file), else the home mapping's section for the entity.

    A sidecar holds one entity section (`columns:`, `defaults:`, ...), optionally under the entity's name.
    Raises `MappingError` (one sentence naming the sidecar or the home file) when that section is broken."""
    sidecar = sidecar_path(path)
    if sidecar is None:
        return home_mapping.for_entity(entity_name)
    try:
        body = yaml.load(sidecar.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MappingError(f"{sidecar} is not valid UTF-8 YAML ({' '.join(str(exc).split())}); fix the file or "
                           "remove it.") from exc
    except ValueError as exc:
        raise MappingError(f"{sidecar} holds a date that does not exist ({exc}); correct it, or quote it to "
                           "keep it as text.") from exc
    contract = load_contract()
    if isinstance(body, dict) and list(body) == [entity_name]:
        body = body[entity_name]
    elif isinstance(body, dict) and len(body) == 1 and next(iter(body)) in contract.entities:
        other = next(iter(body))
        raise MappingError(f"{sidecar} describes {other} but lies in landing/{entity_name}/; move it and "
                           f"{path.name} to landing/{other}/, or name the section {entity_name}.")
    return entity_mapping(body, contract.entity(entity_name), str(sidecar))
