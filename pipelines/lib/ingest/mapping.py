"""The column-mapping file: how the headers of someone else's export map onto the import contract.

Format (YAML, `$CRM_HOME/landing/column_mapping.yaml`, optional; entities not listed use the contract
names as they are)::

    accounts:                      # contract entity name
      columns:                     # "their header": contract column
        "Customer No": account_id
        "Company": account_name
        "Last Modified": updated_at
      defaults:                    # contract column: value used when the column is absent or empty
        source_system: erp
        is_archived: "false"

Headers that are neither contract columns nor mapped are ignored.

Each entity's section is checked on its own (pydantic models, then the contract): a section of the wrong
shape, a key the format does not know, a column the contract does not have, or two headers mapped to one
column is a `MappingError` for that entity only, one sentence naming the file, the entity and the key.
`load_column_mapping` collects them (`ColumnMapping.errors`) and `for_entity` raises the one of the
entity asked for, so ingestion reports that entity's files as unreadable and loads every other entity.
Only a file that is not YAML or not a mapping of entity names at all stops everything.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pipelines.contract import Entity, load_contract


class MappingError(ValueError):
    """The column-mapping file is not usable; the message names the file, the entity and the fix."""


Scalar = str | int | float | bool


class Section(BaseModel):
    """One entity's section as written in the file (shape only; names are checked against the contract)."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = {}
    defaults: dict[str, Scalar | None] = {}


#: What each key must hold, for error sentences.
KEY_SHAPES: dict[str, str] = {
    "columns": 'a mapping of "header in your file": contract column',
    "defaults": "a mapping of contract column: value",
}


@dataclass(frozen=True)
class FileOptions:
    """How a delimited file is written (CSV: comma, header line)."""

    delimiter: str = ","
    header: bool = True
    names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class EntityMapping:
    columns: dict[str, str] = field(default_factory=dict)   # their header -> contract column
    defaults: dict[str, str] = field(default_factory=dict)  # contract column -> text value
    file: FileOptions | None = None

    @property
    def file_options(self) -> FileOptions:
        return self.file or FileOptions()

    @property
    def batchable(self) -> bool:
        """Only renames and defaults: JSON Lines files may be parsed together in one batch."""
        return self.file is None

    def source_name(self, contract_column: str) -> str:
        """The header to look for in a file for a contract column (mapped name, else the column itself)."""
        for theirs, ours in self.columns.items():
            if ours == contract_column:
                return theirs
        return contract_column

    def apply(self, entity: Entity, frame: pl.DataFrame, keep: tuple[str, ...] = ()) -> pl.DataFrame:
        """Rename mapped headers, drop unknown ones, fill defaults; columns stay text."""
        renamed: dict[str, str] = {}
        for name in frame.columns:
            target = self.columns.get(name.strip(), name.strip())
            if target in entity.column_names and target not in renamed.values():
                renamed[name] = target
        out = frame.select([pl.col(k).alias(v) for k, v in renamed.items()] + [pl.col(k) for k in keep])
        for column, value in self.defaults.items():
            if column in out.columns:
                out = out.with_columns(
                    pl.when(pl.col(column).is_null() | (pl.col(column).cast(pl.String).str.strip_chars() == ""))
                    .then(pl.lit(value)).otherwise(pl.col(column).cast(pl.String)).alias(column))
            else:
                out = out.with_columns(pl.lit(value, dtype=pl.String).alias(column))
        return out


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
    columns = {str(k).strip(): v for k, v in section.columns.items()}
    defaults = {k: _text(v) for k, v in section.defaults.items() if v is not None}
    names = entity.column_names

    def check_column(key: str, column: str) -> None:
        if column not in names:
            raise MappingError(f"{where}, key `{key}`: {entity.name} has no column {column!r}; "
                               f"use one of {', '.join(names)}.")

    for header, target in columns.items():
        check_column(f"columns.{header}", target)
    for column in defaults:
        check_column(f"defaults.{column}", column)
    targets = list(columns.values())
    doubled = sorted({t for t in targets if targets.count(t) > 1})
    if doubled:
        raise MappingError(f"{where}, key `columns`: several headers map to {', '.join(doubled)}; "
                           "keep one header per contract column.")
    return EntityMapping(columns=columns, defaults=defaults)


def _shape_error(where: str, exc: ValidationError) -> str:
    """One sentence for the first problem pydantic found: the key, what it must be, what it is."""
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"]]
    key = loc[0] if loc else ""
    path = ".".join(loc)
    if error["type"] == "extra_forbidden":
        return (f"{where}, key `{path}`: is not a mapping key; use one of {', '.join(KEY_SHAPES)}.")
    shape = KEY_SHAPES.get(key, "as the import guide shows")
    if len(loc) > 1:
        return (f"{where}, key `{path}`: must be {shape} ({error['msg'].lower()}, got {_kind(error['input'])}); "
                "fix the file.")
    return f"{where}, key `{path}`: must be {shape}, not {_kind(error['input'])}; fix the file."


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
    if isinstance(body, dict) and list(body) == [entity_name]:
        body = body[entity_name]
    return entity_mapping(body, load_contract().entity(entity_name), str(sidecar))
