"""Values and errors shared by the store and its validation and bulk-upsert modules.

They live apart from `OperationalStore` so that `validation` and `upsert`, which the store imports, need
not import the store back.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from pipelines.contract import Entity

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


class StaleEditError(RuntimeError):
    """Someone saved the record after the editor loaded it; the edit must be redone on fresh data."""


class RecordNotFoundError(LookupError):
    """The record to change does not exist (or was erased)."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _as_text(value: Any) -> str | None:
    """Render a stored value the way landing files carry it, so ingestion validates both alike."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep="T", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _ident(name: str) -> str:
    """Table names come from the contract only; refuse anything else outright."""
    if not _IDENT.match(name):
        raise ValueError(f"not a valid table name: {name!r}")
    return name


def _normalise(row: dict[str, Any], entity: Entity) -> dict[str, Any]:
    """Make values read back from SQLite and PostgreSQL look the same (bool, ISO text timestamps)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in entity.column_names:
            col_type = entity.column(key).type
            if col_type == "boolean" and value is not None:
                value = bool(value) if not isinstance(value, str) else value.lower() in ("1", "true")
            elif col_type in ("timestamp", "date"):
                value = _as_text(value)
                if isinstance(value, str) and col_type == "timestamp":
                    value = value.replace(" ", "T")[:19]
        out[key] = value
    return out
