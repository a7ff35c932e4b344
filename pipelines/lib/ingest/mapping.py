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

Headers that are neither contract columns nor mapped are ignored. Mapping two headers to the same
contract column, or naming a column the contract does not have, is an error reported with the file
name and the entity, before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import yaml

from pipelines.contract import Entity, load_contract


class MappingError(ValueError):
    """The column-mapping file is not usable; the message names the file, the entity and the fix."""


@dataclass(frozen=True)
class EntityMapping:
    columns: dict[str, str] = field(default_factory=dict)   # their header -> contract column
    defaults: dict[str, str] = field(default_factory=dict)  # contract column -> text value

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

    def for_entity(self, name: str) -> EntityMapping:
        return self.entities.get(name, EntityMapping())


def load_column_mapping(path: Path) -> ColumnMapping:
    """Read and check the mapping file; a missing file means "headers already match the contract"."""
    if not path.exists():
        return ColumnMapping()
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path} is not valid YAML ({exc}); fix the file or remove it.") from exc
    if not isinstance(body, dict):
        raise MappingError(f"{path} must map entity names to {{columns: ..., defaults: ...}}; fix the file.")
    contract = load_contract()
    entities: dict[str, EntityMapping] = {}
    for name, spec in body.items():
        if name not in contract.entities:
            raise MappingError(f"{path}: {name!r} is not an entity of the import contract; "
                               f"use one of {', '.join(contract.entities)}.")
        entity = contract.entity(name)
        spec = spec or {}
        columns = {str(k).strip(): str(v) for k, v in (spec.get("columns") or {}).items()}
        defaults = {str(k): _text(v) for k, v in (spec.get("defaults") or {}).items()}
        for target in list(columns.values()) + list(defaults):
            if target not in entity.column_names:
                raise MappingError(f"{path}: entity {name} has no column {target!r}; "
                                   f"map to one of {', '.join(entity.column_names)}.")
        targets = list(columns.values())
        doubled = sorted({t for t in targets if targets.count(t) > 1})
        if doubled:
            raise MappingError(f"{path}: entity {name} maps several headers to {', '.join(doubled)}; "
                               "keep one header per contract column.")
        entities[name] = EntityMapping(columns=columns, defaults=defaults)
    return ColumnMapping(entities)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
