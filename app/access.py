"""Who may see and change which records, and what is masked for whom: the portal's access rules in one place.

Reads (app/queries.py) and writes (app/edits.py) both ask this module, so the rule that lets a rep read a
record is the same rule that lets them point a new record at it. Nothing here imports Streamlit.

Scope. A restricted viewer (manager, sales rep) carries `owner_ids`, the CRM users whose records they may
see. Each entity's scope is declared once in `SCOPE_ANCHORS` as the reference columns that tie a record to
an owner: an account is in scope when its owner is, a contact when its account is, a deal or task when its
owner or its account is. The SQL filter of the record lists (`scope_sql`) and the per-record check
(`visible`) are both generated from that declaration.

Writes. Every reference a written record carries (the contract's `references:` columns that point at a
scoped entity: account_id, owner_user_id, opportunity_id, contact_id, lead_id, ...) must point at a record
the writer may see. A create checks all of them; an update checks those it sets or changes (a reference the
edit leaves as it was is not the editor's choice) and the record as it was must be visible. So a rep cannot
create a deal or task on another rep's account, nor move one there.

Masking. Roles that see masked data (analysts) get the contract's pii columns, the mart columns that carry
a name under another name, and the free-text columns that people fill with names ("Email Felix Koch", deal
names built from the customer's name) masked before anything is returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import bindparam, text

from pipelines.contract import load_contract

if TYPE_CHECKING:
    from app.auth import Viewer
    from pipelines.lib.store import OperationalStore


class PermissionDenied(PermissionError):
    """The signed-in user may not make this change; the message says why."""


# --- scope --------------------------------------------------------------------------------------------------
#: Per scoped entity, the columns that tie a record to an owner: the record is in scope when ANY of them
#: points at something in scope. `None` names the record's own key (a CRM user is in scope when it is one
#: of the viewer's owner ids).
SCOPE_ANCHORS: dict[str, tuple[str | None, ...]] = {
    "users": (None,),
    "accounts": ("owner_user_id",),
    "contacts": ("account_id",),
    "opportunities": ("owner_user_id", "account_id"),
    "tasks": ("owner_user_id", "account_id"),
    "leads": ("owner_user_id",),
}


def _reference(entity: str, column: str) -> tuple[str, str] | None:
    return load_contract().entity(entity).column(column).reference


def _primary_key(entity: str) -> str:
    return load_contract().entity(entity).primary_key


@cache
def scope_sql(entity: str) -> str:
    """The WHERE clause (bound parameter `:ids`, expanding) that keeps the rows of `entity` a restricted
    viewer may see; built from SCOPE_ANCHORS, so it states the same rule as `visible`."""
    parts = []
    for column in SCOPE_ANCHORS[entity]:
        if column is None:
            parts.append(f"{_primary_key(entity)} IN :ids")
            continue
        target, target_key = _reference(entity, column)
        if target == "users":
            parts.append(f"{column} IN :ids")
        else:  # entity, column and target come from the contract and the map above, never from input
            parts.append(f"{column} IN (SELECT {target_key} FROM {target} WHERE {scope_sql(target)})")
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def scope_ids(viewer: Viewer) -> list[str]:
    """The `:ids` parameter of `scope_sql` (a placeholder when the viewer owns nobody: IN () is not SQL)."""
    return list(viewer.owner_ids or ("",))


def visible(viewer: Viewer, store: OperationalStore, entity: str, record_id: str | None) -> bool:
    """True when the stored record `entity` `record_id` is in the viewer's scope."""
    if not viewer.restricted:
        return True
    if record_id is None or entity not in SCOPE_ANCHORS:
        return False
    # entity is a key of SCOPE_ANCHORS and its key column comes from the contract
    sql = text(f"SELECT 1 FROM {entity} WHERE {_primary_key(entity)} = :rid AND {scope_sql(entity)}"  # noqa: S608
               ).bindparams(bindparam("ids", expanding=True))
    with store.engine.connect() as conn:
        return conn.execute(sql, {"rid": record_id, "ids": scope_ids(viewer)}).first() is not None


def anchored(viewer: Viewer, store: OperationalStore, entity: str, record: Mapping[str, Any]) -> bool:
    """True when a record (stored or about to be) is in scope through one of its anchor columns."""
    if not viewer.restricted:
        return True
    for column in SCOPE_ANCHORS.get(entity, ()):
        if column is None:
            if record.get(_primary_key(entity)) in (viewer.owner_ids or ()):
                return True
            continue
        target = _reference(entity, column)[0]
        value = record.get(column)
        if value and (viewer.owns(value) if target == "users" else visible(viewer, store, target, value)):
            return True
    return False


def may_see(viewer: Viewer, store: OperationalStore, entity: str, record: Mapping[str, Any]) -> bool:
    """A stored record is readable when it is in scope (the same rule as the record lists' SQL)."""
    if not viewer.restricted:
        return True
    if entity not in SCOPE_ANCHORS:
        return False
    return visible(viewer, store, entity, record.get(_primary_key(entity)))


def scoped_references(entity: str) -> list[tuple[str, str]]:
    """(column, target entity) of every reference of `entity` that points at a scoped entity."""
    out = []
    for column in load_contract().entity(entity).columns:
        ref = column.reference
        if ref and ref[0] in SCOPE_ANCHORS:
            out.append((column.name, ref[0]))
    return out


def require_writer(viewer: Viewer) -> None:
    if not viewer.can_write:
        raise PermissionDenied(f"{viewer.username} has the {viewer.role} role, which can read but not change "
                               "records; ask a manager or admin to make the change.")


def check_write(viewer: Viewer, store: OperationalStore, entity: str, record: Mapping[str, Any],
                before: Mapping[str, Any] | None = None) -> None:
    """Refuse a create (`before` None) or change whose record or references leave the viewer's scope.

    `record` is the record as it will be stored. Raises PermissionDenied naming the field and value.
    """
    require_writer(viewer)
    if not viewer.restricted:
        return
    label = f"{entity} {record.get(_primary_key(entity)) or '(new)'}"
    if before is not None and not may_see(viewer, store, entity, before):
        raise PermissionDenied(f"{label} is outside what {viewer.username} may change ({viewer.scope_label}).")
    for column, target in scoped_references(entity):
        value = record.get(column)
        if value in (None, "") or (before is not None and value == before.get(column)):
            continue
        in_scope = viewer.owns(value) if target == "users" else visible(viewer, store, target, value)
        if not in_scope and store.get(target, value) is not None:  # a missing one is the store's to refuse
            raise PermissionDenied(f"{column} {value} of {label} is outside what {viewer.username} may use "
                                   f"({viewer.scope_label}); pick one of your own.")
    if not anchored(viewer, store, entity, record):
        raise PermissionDenied(f"{label} would be outside what {viewer.username} may change "
                               f"({viewer.scope_label}).")


# --- masking ------------------------------------------------------------------------------------------------
def _pii_names() -> set[str]:
    names: set[str] = set()
    for entity in load_contract().entities.values():
        names.update(entity.pii_columns)
    return names


PII_COLUMNS = _pii_names()
#: Mart columns that carry a person's or customer's name under another name.
PII_ALIASES = {"owner_name", "rep_name", "customer_name", "contact_name", "assigned_user_name", "user_name",
               "owner_full_name", "primary_contact_name", "primary_contact_email", "primary_contact_phone"}
#: Free text people type names into: deal names (built from the customer's name), task subjects ("Email
#: Felix Koch"), a lead's company (for a B2C lead often a person). Masked like pii for masked roles.
FREE_TEXT_COLUMNS = {"opportunity_name", "subject", "company", "deal_name", "task_subject"}


def is_pii(column: str) -> bool:
    """True for columns masked for roles that see masked data."""
    return (column in PII_COLUMNS or column in PII_ALIASES or column in FREE_TEXT_COLUMNS
            or any(column.endswith("_" + p) for p in PII_COLUMNS if p != "account_name"))


def mask_value(column: str, value: Any) -> Any:
    """Keep enough to tell values apart in a table, not enough to identify anyone."""
    if value is None:
        return None
    text_value = str(value)
    if "email" in column and "@" in text_value:
        return "•••@" + text_value.split("@", 1)[1]
    if "phone" in column:
        return "•••" + text_value[-2:] if len(text_value) > 4 else "•••"
    return (text_value[:1] + "•••") if text_value else text_value


def mask(frame: pl.DataFrame, viewer: Viewer) -> pl.DataFrame:
    """Masked roles see pii and free-text columns masked; everyone else sees the frame as it is."""
    if not viewer.masked or frame.is_empty():
        return frame
    exprs = [pl.col(c).map_elements(lambda v, c=c: mask_value(c, v), return_dtype=pl.String).alias(c)
             for c in frame.columns if is_pii(c)]
    return frame.with_columns(exprs) if exprs else frame


def mask_record(record: dict[str, Any], viewer: Viewer) -> dict[str, Any]:
    if not viewer.masked:
        return record
    return {k: (mask_value(k, v) if is_pii(k) else v) for k, v in record.items()}
