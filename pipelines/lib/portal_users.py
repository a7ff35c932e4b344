"""Portal sign-ins: who may use the portal, with which role, seeing whose records.

A sign-in is not a CRM entity: it lives in the operational store's `portal_users` table (migration 0002),
is never ingested, and holds only a bcrypt hash of the password. Managers and sales reps are tied to the
CRM user (and team) whose records they may see and change; the portal's query and write layers enforce
that scope (app/queries.py, app/edits.py). Every change to a sign-in writes an audit row without the hash.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import bcrypt
from sqlalchemy import text

from pipelines.lib.store import OperationalStore

ROLES = ("admin", "manager", "sales_rep", "analyst")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
MIN_PASSWORD = 8
MAX_PASSWORD_BYTES = 72  # bcrypt ignores (bcrypt 5: refuses) anything longer

#: Demo sign-ins seeded by `crm up` (username, password, role); reps and managers get a CRM user attached.
DEMO_PASSWORD = "crm-demo-2026"


class PortalUserError(ValueError):
    """A sign-in cannot be created or changed; the message says what to fix."""


@dataclass(frozen=True)
class PortalUser:
    username: str
    role: str
    user_id: str | None
    team_id: str | None
    is_active: bool
    created_at: str
    updated_at: str
    version: int


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _hash(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise PortalUserError(f"The password is too short: use at least {MIN_PASSWORD} characters.")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise PortalUserError(f"The password is too long: bcrypt accepts at most {MAX_PASSWORD_BYTES} bytes.")
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=12)).decode("ascii")


# A hash of a random password: checking an unknown username costs the same as a known one.
_DUMMY_HASH = bcrypt.hashpw(uuid.uuid4().hex.encode(), bcrypt.gensalt(rounds=12))


class PortalUsers:
    """Create, list, change and check portal sign-ins in one operational store."""

    def __init__(self, store: OperationalStore):
        self.store = store

    # --- reads ------------------------------------------------------------------------------------
    def get(self, username: str) -> PortalUser | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT username, role, user_id, team_id, is_active, created_at, updated_at, version "
                "FROM portal_users WHERE username = :u"), {"u": username}).mappings().first()
        return _user(row) if row else None

    def list(self) -> list[PortalUser]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT username, role, user_id, team_id, is_active, created_at, updated_at, version "
                "FROM portal_users ORDER BY username")).mappings().all()
        return [_user(r) for r in rows]

    def authenticate(self, username: str, password: str) -> PortalUser | None:
        """The active sign-in whose password matches, else None (same cost whether or not it exists)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(text("SELECT password_hash FROM portal_users WHERE username = :u AND is_active = :a"),
                               {"u": username, "a": True}).first()
        secret = password.encode("utf-8")[:MAX_PASSWORD_BYTES]
        if row is None:
            bcrypt.checkpw(secret, _DUMMY_HASH)
            return None
        if not bcrypt.checkpw(secret, row[0].encode("ascii")):
            return None
        return self.get(username)

    # --- writes -----------------------------------------------------------------------------------
    def add(self, username: str, password: str, role: str, user_id: str | None = None,
            team_id: str | None = None, actor: str = "cli") -> PortalUser:
        """Create a sign-in. Reps need a CRM user; managers a team (taken from their CRM user if omitted)."""
        if not _USERNAME.match(username or ""):
            raise PortalUserError(f"Username {username!r} is not valid: use 2-64 letters, digits or . _ @ -.")
        if role not in ROLES:
            raise PortalUserError(f"Role {role!r} is not known: use one of {', '.join(ROLES)}.")
        user_id = user_id or None
        team_id = team_id or None
        if user_id is not None:
            crm_user = self.store.get("users", user_id)
            if crm_user is None:
                raise PortalUserError(f"CRM user {user_id!r} does not exist in the users table; pick an existing "
                                      "user_id (see the users of the operational store).")
            team_id = team_id or crm_user.get("team_id")
        if team_id is not None and self.store.get("teams", team_id) is None:
            raise PortalUserError(f"Team {team_id!r} does not exist in the teams table; pick an existing team_id.")
        if role == "sales_rep" and user_id is None:
            raise PortalUserError("A sales_rep sign-in needs --user-id: the CRM user whose accounts the rep owns.")
        if role == "manager" and team_id is None:
            raise PortalUserError("A manager sign-in needs --team-id (or a --user-id that belongs to a team).")
        password_hash = _hash(password)
        now = _now()
        with self.store.transaction() as conn:
            if conn.execute(text("SELECT 1 FROM portal_users WHERE username = :u"), {"u": username}).first():
                raise PortalUserError(f"Sign-in {username!r} already exists; use `crm user set-password` to "
                                      "change its password.")
            conn.execute(text(
                "INSERT INTO portal_users (username, password_hash, role, user_id, team_id, is_active, created_at, "
                "updated_at, version) VALUES (:u, :h, :r, :uid, :tid, :a, :c, :c, 1)"),
                {"u": username, "h": password_hash, "r": role, "uid": user_id, "tid": team_id, "a": True, "c": now})
            after = _fetch(conn, username)
            _audit(conn, actor, "create", username, None, after)
        return _user(after)

    def set_password(self, username: str, password: str, actor: str = "cli") -> PortalUser:
        return self._change(username, {"password_hash": _hash(password)}, actor, "set_password")

    def disable(self, username: str, actor: str = "cli") -> PortalUser:
        return self._change(username, {"is_active": False}, actor, "disable")

    def _change(self, username: str, changes: dict, actor: str, action: str) -> PortalUser:
        with self.store.transaction() as conn:
            before = _fetch(conn, username)
            if before is None:
                raise PortalUserError(f"Sign-in {username!r} does not exist; `crm user list` shows the sign-ins.")
            params = {**changes, "__u": username, "__t": _now()}
            sets = ", ".join(f"{c} = :{c}" for c in changes)  # column names are ours, never user input
            conn.execute(text(f"UPDATE portal_users SET {sets}, updated_at = :__t, version = version + 1 "  # noqa: S608
                              "WHERE username = :__u"), params)
            after = _fetch(conn, username)
            _audit(conn, actor, action, username, before, after)
        return _user(after)


def _fetch(conn, username: str) -> dict | None:
    row = conn.execute(text(
        "SELECT username, role, user_id, team_id, is_active, created_at, updated_at, version "
        "FROM portal_users WHERE username = :u"), {"u": username}).mappings().first()
    return dict(row) if row else None


def _user(row) -> PortalUser:
    row = dict(row)
    for key in ("created_at", "updated_at"):
        value = row[key]
        row[key] = value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)[:19]
    row["is_active"] = bool(row["is_active"]) if not isinstance(row["is_active"], str) \
        else row["is_active"].lower() in ("1", "true")
    return PortalUser(**row)


def _audit(conn, actor: str, action: str, username: str, before: dict | None, after: dict | None) -> None:
    """The same audit log as record edits; the password hash never goes into it."""
    def clean(row: dict | None) -> str | None:
        return json.dumps(asdict(_user(row)), sort_keys=True) if row else None

    conn.execute(text(
        "INSERT INTO audit_log (audit_id, occurred_at, actor, action, entity, record_id, before_json, after_json) "
        "VALUES (:id, :t, :actor, :action, 'portal_users', :rid, :b, :a)"),
        {"id": uuid.uuid4().hex, "t": datetime.now(UTC).replace(tzinfo=None), "actor": actor, "action": action,
         "rid": username, "b": clean(before), "a": clean(after)})


def seed_demo_users(store: OperationalStore) -> list[dict[str, str]]:
    """Demo sign-ins for `crm up`: an admin, an analyst, the manager of the largest team and its busiest rep.

    Idempotent: existing sign-ins are left as they are. Returns what to print (username, password, role, scope).
    """
    users = PortalUsers(store)
    with store.engine.connect() as conn:
        rep = conn.execute(text(
            "SELECT u.user_id, u.team_id, u.full_name, count(a.account_id) AS n FROM users u "
            "LEFT JOIN accounts a ON a.owner_user_id = u.user_id AND a.is_archived = :f "
            "WHERE u.role = 'sales_rep' AND u.is_active = :t AND u.team_id IS NOT NULL "
            "GROUP BY u.user_id, u.team_id, u.full_name ORDER BY n DESC, u.user_id LIMIT 1"),
            {"f": False, "t": True}).mappings().first()
        manager = None
        if rep is not None:
            manager = conn.execute(text(
                "SELECT user_id FROM users WHERE role = 'manager' AND team_id = :t ORDER BY user_id LIMIT 1"),
                {"t": rep["team_id"]}).first()
    plan: list[tuple[str, str, str | None, str | None, str]] = [
        ("admin", "admin", None, None, "everything"),
        ("analyst", "analyst", None, None, "everything, personal data masked"),
    ]
    if rep is not None:
        plan.append(("manager", "manager", manager[0] if manager else None, rep["team_id"],
                     f"team {rep['team_id']}"))
        plan.append(("rep", "sales_rep", rep["user_id"], rep["team_id"],
                     f"accounts of {rep['user_id']} ({rep['full_name']})"))
    out = []
    for username, role, user_id, team_id, scope in plan:
        if users.get(username) is None:
            users.add(username, DEMO_PASSWORD, role, user_id=user_id, team_id=team_id, actor="crm up")
            password = DEMO_PASSWORD
        else:
            password = DEMO_PASSWORD if users.authenticate(username, DEMO_PASSWORD) else "(changed since seeding)"
        out.append({"username": username, "password": password, "role": role, "scope": scope})
    return out
