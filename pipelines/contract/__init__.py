"""The CRM import contract: one machine-readable definition of every entity.

The YAML beside this module is the single source of truth. The generator writes what it says, ingestion
validates against it, the operational store's migrations are checked against it and the import guide
(`crm contract docs`) is rendered from it, so the four can never disagree.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator

CONTRACT_PATH = Path(__file__).with_name("crm_contract.yaml")

ColumnType = Literal["string", "integer", "decimal", "boolean", "date", "timestamp"]
Source = Literal["store", "landing"]

#: DuckDB column type for each contract type (raw layer and staging).
DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "decimal": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}

#: SQL type used by the operational store migrations (valid in SQLite and PostgreSQL).
STORE_SQL_TYPES: dict[str, str] = {
    "string": "TEXT",
    "integer": "BIGINT",
    "decimal": "DOUBLE PRECISION",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


class Column(BaseModel):
    name: str
    type: ColumnType
    required: bool
    #: a required column that may be empty when this other column of the row has a value
    required_unless: str | None = None
    allowed: list[str] | None = None
    #: the installation's vocabulary that sets `allowed` (crm.yaml: stages, currency or a dimension)
    vocabulary: str | None = None
    references: str | None = None
    min: float | None = None
    max: float | None = None
    pii: bool = False
    description: str | None = None

    @property
    def reference(self) -> tuple[str, str] | None:
        """(entity, column) this column points to, if it is a foreign key."""
        if not self.references:
            return None
        entity, column = self.references.split(".", 1)
        return entity, column


class Entity(BaseModel):
    name: str
    description: str
    source: list[Source]
    primary_key: str
    updated_at: str
    partition_by_day: str | None = None
    columns: list[Column]

    @field_validator("source", mode="before")
    @classmethod
    def _listify(cls, value):
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> Entity:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"entity {self.name}: duplicate column names")
        for key in (self.primary_key, self.updated_at, self.partition_by_day):
            if key and key not in names:
                raise ValueError(f"entity {self.name}: {key} is not one of its columns")
        return self

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.pii]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"entity {self.name} has no column {name}")

    @property
    def in_store(self) -> bool:
        return "store" in self.source

    @property
    def in_landing(self) -> bool:
        return "landing" in self.source


class Contract(BaseModel):
    version: int
    entities: dict[str, Entity] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _name_entities(cls, data):
        for name, body in data.get("entities", {}).items():
            body.setdefault("name", name)
        return data

    @model_validator(mode="after")
    def _check_references(self) -> Contract:
        for entity in self.entities.values():
            for column in entity.columns:
                ref = column.reference
                if ref and (ref[0] not in self.entities or ref[1] not in self.entities[ref[0]].column_names):
                    raise ValueError(f"{entity.name}.{column.name} references unknown {column.references}")
        return self

    def entity(self, name: str) -> Entity:
        try:
            return self.entities[name]
        except KeyError:
            known = ", ".join(self.entities)
            raise KeyError(f"unknown entity {name!r}; the contract defines: {known}") from None

    @property
    def store_entities(self) -> list[Entity]:
        return [e for e in self.entities.values() if e.in_store]

    @property
    def landing_entities(self) -> list[Entity]:
        return [e for e in self.entities.values() if e.in_landing]


@lru_cache(maxsize=1)
def load_contract(path: Path = CONTRACT_PATH) -> Contract:
    """Parse and validate the contract YAML (cached: it is read-only at run time)."""
    with open(path, encoding="utf-8") as fh:
        return Contract.model_validate(yaml.safe_load(fh))
