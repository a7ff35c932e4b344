"""Every write the portal makes, with the role rules enforced here (not only by hiding widgets).

Writes go to the operational store (architecture rule 3 in docs), which validates against the contract, checks
the version the editor loaded (a stale edit raises `StaleEditError`), records a stage event when a deal's
stage changes and writes the audit row in the same transaction. This module adds who may do what:

- analysts cannot write;
- a sales rep may create and change only records in their scope (accounts, deals, tasks they own; contacts,
  deals and tasks of accounts they own) and cannot hand a record to someone else;
- a manager may do the same for the records of their team's users, including reassigning within the team;
- an admin may do anything.

The scope rules themselves live in app/access.py (shared with the reads): every reference a written record
carries (account, owner, deal, lead ...) must be in the writer's scope, so a rep can neither create a deal on
another rep's account nor move a task there.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, text

from app.access import PermissionDenied, check_write, require_writer
from app.auth import Viewer
from pipelines.lib.home import CrmHome
from pipelines.lib.settings import load_settings
from pipelines.lib.store import OperationalStore, RecordNotFoundError, RecordValidationError, StaleEditError

__all__ = ["EDITABLE", "PermissionDenied", "create_record", "update_record", "archive_record", "assign_owner",
           "distribute_leads", "StaleEditError", "RecordValidationError", "RecordNotFoundError"]

#: Entities the portal edits, with the label people use for them.
EDITABLE = {"accounts": "Account", "contacts": "Contact", "opportunities": "Deal", "tasks": "Task"}
_OWNER_COLUMN = {"accounts": "owner_user_id", "opportunities": "owner_user_id", "tasks": "owner_user_id",
                 "leads": "owner_user_id"}
_OPEN_LEAD_STATUSES = ("new", "working", "qualified")


def _now_text() -> str:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0).isoformat(timespec="seconds")


def _closed_and_lost_stages() -> tuple[set[str], set[str]]:
    """The installation's closed (won or lost) and lost stage names (crm.yaml `stages`)."""
    stages = load_settings(CrmHome.from_env().settings_file).stages
    return {s.name for s in stages if s.is_closed}, {s.name for s in stages if s.lost}


def _business_rules(entity: str, before: Mapping[str, Any] | None, record: dict[str, Any]) -> dict[str, Any]:
    """Fill in what a change implies (close dates) and refuse what makes no sense, field by field."""
    if entity == "opportunities":
        stage = record.get("stage")
        closed, lost = _closed_and_lost_stages()
        if stage in closed and not record.get("closed_at"):
            record["closed_at"] = _now_text()
        if stage in lost and not record.get("lost_reason"):
            raise RecordValidationError({"lost_reason": "Say why the deal was lost: pick a lost reason."})
        if stage not in closed and before and before.get("stage") in closed:
            record["closed_at"] = None  # a reopened deal is open again
            record["lost_reason"] = None
    if entity == "tasks" and record.get("status") == "done" and not record.get("completed_at"):
        record["completed_at"] = _now_text()
    return record


def create_record(viewer: Viewer, store: OperationalStore, entity: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Create an account, contact, deal or task owned within the viewer's scope."""
    require_writer(viewer)
    if entity not in EDITABLE:
        raise PermissionDenied(f"{entity} records cannot be created in the portal.")
    record = {k: v for k, v in values.items() if v not in ("", None)}
    owner_column = _OWNER_COLUMN.get(entity)
    if owner_column and not record.get(owner_column) and viewer.user_id:
        record[owner_column] = viewer.user_id
    record = _business_rules(entity, None, record)
    check_write(viewer, store, entity, record)
    return store.create(entity, record, actor=viewer.actor)


def update_record(viewer: Viewer, store: OperationalStore, entity: str, record_id: str,
                  changes: Mapping[str, Any], expected_version: int) -> dict[str, Any]:
    """Change a record the viewer may change; refused with StaleEditError if someone saved it first."""
    require_writer(viewer)
    if entity not in EDITABLE and entity != "leads":
        raise PermissionDenied(f"{entity} records cannot be changed in the portal.")
    before = store.get(entity, record_id)
    if before is None:
        raise RecordNotFoundError(f"{entity} {record_id} does not exist (it may have been erased).")
    changes = {k: (None if v == "" else v) for k, v in changes.items() if k not in ("version",)}
    owner_column = _OWNER_COLUMN.get(entity)
    if owner_column in changes and changes[owner_column] != before.get(owner_column) and not viewer.can_assign:
        raise PermissionDenied("Only a manager or admin can hand a record to someone else.")
    merged = _business_rules(entity, before, {**before, **changes})
    check_write(viewer, store, entity, merged, before)
    changed = {k: merged[k] for k in merged if k != "version" and merged[k] != before.get(k)}
    if not changed:
        return before
    return store.update(entity, record_id, changed, expected_version, actor=viewer.actor)


def archive_record(viewer: Viewer, store: OperationalStore, entity: str, record_id: str,
                   expected_version: int) -> dict[str, Any]:
    """Archive (soft-delete) a record the viewer may change; the row and its audit history stay."""
    require_writer(viewer)
    before = store.get(entity, record_id)
    if before is None:
        raise RecordNotFoundError(f"{entity} {record_id} does not exist (it may have been erased).")
    check_write(viewer, store, entity, {**before, "is_archived": True}, before)
    return store.archive(entity, record_id, expected_version, actor=viewer.actor)


def assign_owner(viewer: Viewer, store: OperationalStore, entity: str, record_id: str, owner_user_id: str,
                 expected_version: int) -> dict[str, Any]:
    """Hand an account, deal, task or lead to another user in the viewer's scope."""
    if not viewer.can_assign:
        raise PermissionDenied("Only a manager or admin can assign owners.")
    if not viewer.owns(owner_user_id):
        raise PermissionDenied(f"{owner_user_id} is outside {viewer.scope_label}; pick a user of your team.")
    return update_record(viewer, store, entity, record_id, {_OWNER_COLUMN[entity]: owner_user_id}, expected_version)


def assignable_reps(viewer: Viewer, store: OperationalStore) -> list[str]:
    """Active sales reps the viewer may hand work to."""
    with store.engine.connect() as conn:
        reps = [r[0] for r in conn.execute(text(
            "SELECT user_id FROM users WHERE role = 'sales_rep' AND is_active = :t ORDER BY user_id"), {"t": True})]
    return [r for r in reps if viewer.owns(r)]


def open_lead_load(store: OperationalStore, owner_ids: Iterable[str]) -> dict[str, int]:
    """Open leads (new, working, qualified) each user holds now: the load `least_loaded` balances."""
    owner_ids = list(owner_ids)
    load = dict.fromkeys(owner_ids, 0)
    if not owner_ids:
        return load
    sql = text("SELECT owner_user_id, count(*) FROM leads WHERE owner_user_id IN :ids AND status IN :st "
               "GROUP BY owner_user_id").bindparams(bindparam("ids", expanding=True), bindparam("st", expanding=True))
    with store.engine.connect() as conn:
        for owner, n in conn.execute(sql, {"ids": owner_ids, "st": list(_OPEN_LEAD_STATUSES)}):
            load[owner] = int(n)
    return load


def distribute_leads(viewer: Viewer, store: OperationalStore, lead_ids: Iterable[str], owner_ids: Iterable[str],
                     rule: str = "round_robin") -> dict[str, str]:
    """Give unassigned leads to reps: `round_robin` in turn, or `least_loaded` (fewest open leads first).

    Each assignment is an ordinary versioned update with its audit row; a lead someone assigned meanwhile
    is skipped. Returns {lead_id: owner_user_id} of the leads actually assigned.
    """
    if not viewer.can_assign:
        raise PermissionDenied("Only a manager or admin can distribute leads.")
    owners = sorted(set(owner_ids))
    if not owners:
        raise RecordValidationError({"owner_user_id": "Pick at least one rep to distribute the leads to."})
    outside = [o for o in owners if not viewer.owns(o)]
    if outside:
        raise PermissionDenied(f"{', '.join(outside)} is outside {viewer.scope_label}.")
    if rule not in ("round_robin", "least_loaded"):
        raise RecordValidationError({"rule": "Use round_robin or least_loaded."})
    load = open_lead_load(store, owners)
    turn = itertools.cycle(owners)
    assigned: dict[str, str] = {}
    for lead_id in lead_ids:
        lead = store.get("leads", lead_id)
        if lead is None or lead.get("owner_user_id"):
            continue
        owner = min(owners, key=lambda o: (load[o], o)) if rule == "least_loaded" else next(turn)
        try:
            store.update("leads", lead_id, {"owner_user_id": owner}, lead["version"], actor=viewer.actor,
                         action="assign")
        except StaleEditError:
            continue
        load[owner] += 1
        assigned[lead_id] = owner
    return assigned
