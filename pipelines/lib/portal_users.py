"""Portal sign-ins: who may use the portal, with which role, seeing whose records.

A sign-in is not a CRM entity: it lives in the operational store's `portal_users` table (migration 0002),
is never ingested, and holds only a bcrypt hash of the password. Managers and sales reps are tied to the
CRM user (and team) whose records they may see and change; the portal's query and write layers enforce
that scope (app/access.py). Every change to a sign-in writes an audit row without the hash.

Sign-in attempts go through `sign_in`, which keeps the sign-in log (`sign_in_attempts`, migration 0004) and
applies the lockout policy: MAX_FAILURES wrong passwords for one name within FAILURE_WINDOW lock that name
for LOCKOUT, whatever password comes next. The count lives in the store, so it holds across portal
processes and restarts; names that are not sign-ins are counted (and locked) the same way, under a hash,
so the answers do not tell which names exist. An admin lifts a lock with `unlock` (`crm user unlock`);
setting a new password lifts it too.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import bcrypt
from sqlalchemy import bindparam, text

from pipelines.lib.store import OperationalStore

ROLES = ("admin", "manager", "sales_rep", "analyst")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
MIN_PASSWORD = 8
MAX_PASSWORD_BYTES = 72  # bcrypt ignores (bcrypt 5: refuses) anything longer

#: Demo sign-ins seeded by `crm up` (username, password, role); reps and managers get a CRM user attached.
DEMO_PASSWORD = "crm-demo-2026"


#: Lockout policy: this many failed sign-ins within the window lock the name for LOCKOUT.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
_FAILURES = ("wrong_password", "unknown_user", "disabled")


class PortalUserError(ValueError):
    """A sign-in cannot be created or changed; the message says what to fix."""


class SignInLocked(PermissionError):
    """Too many failed sign-ins for one name: refused until `locked_until` (UTC) whatever the password."""

    def __init__(self, username: str, locked_until: datetime):
        self.username = username
        self.locked_until = locked_until
        minutes = int(LOCKOUT.total_seconds() // 60)
        super().__init__(
            f"Sign-in {username!r} is locked after {MAX_FAILURES} failed attempts: try again after "
            f"{locked_until:%H:%M} UTC ({minutes} minutes), or ask an admin to lift the lock with "
            "`crm user unlock` (setting a new password with `crm user set-password` lifts it too).")


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

    def sign_in(self, username: str, password: str, now: datetime | None = None) -> PortalUser | None:
        """Check a sign-in attempt under the lockout policy and record it in the sign-in log.

        Returns the active sign-in for a right password, None for a wrong one (or an unknown or disabled
        name); raises SignInLocked while the name is locked, and on the failure that locks it.
        """
        now = now or datetime.now(UTC).replace(tzinfo=None)  # microseconds: attempts keep their order
        key = self._log_key(username)
        with self.store.transaction() as conn:
            locked_until = _locked_until(conn, key, now)
            if locked_until is not None:
                _log(conn, key, now, "refused_locked")
        if locked_until is not None:
            raise SignInLocked(username, locked_until)
        user = self.authenticate(username, password)
        if user is not None:
            with self.store.transaction() as conn:
                _log(conn, key, now, "success")
            return user
        with self.store.transaction() as conn:
            _log(conn, key, now, self._failure_kind(username))
            if _recent_failures(conn, key, now) < MAX_FAILURES:
                return None
            until = now + LOCKOUT
            _log(conn, key, now, "locked", until)
            conn.execute(text(
                "INSERT INTO audit_log (audit_id, occurred_at, actor, action, entity, record_id, before_json, "
                "after_json) VALUES (:id, :t, 'portal', 'lockout', 'portal_users', :rid, NULL, :a)"),
                {"id": uuid.uuid4().hex, "t": now, "rid": key,
                 "a": json.dumps({"failures": MAX_FAILURES, "locked_until": until.isoformat()})})
        raise SignInLocked(username, until)

    def locked_until(self, username: str, now: datetime | None = None) -> datetime | None:
        """When the lock on a name ends (UTC), or None when it is not locked."""
        with self.store.engine.connect() as conn:
            return _locked_until(conn, self._log_key(username), now or datetime.now(UTC).replace(tzinfo=None))

    def sign_in_log(self, username: str) -> list[dict]:
        """The sign-in log of one name, oldest first: attempted_at, outcome, locked_until."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT attempted_at, outcome, locked_until FROM sign_in_attempts WHERE username = :u "
                "ORDER BY attempted_at, CASE WHEN outcome = 'locked' THEN 1 ELSE 0 END"), {"u": self._log_key(username)}).mappings().all()
        return [dict(r) for r in rows]

    def _log_key(self, username: str) -> str:
        """The name the log keeps: a sign-in's own name, or a hash of anything else that was typed."""
        if self.get(username) is not None:
            return username
        return "unknown:" + hashlib.sha256(username.encode("utf-8")).hexdigest()[:24]

    def _failure_kind(self, username: str) -> str:
        user = self.get(username)
        return "unknown_user" if user is None else ("wrong_password" if user.is_active else "disabled")

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
        """A new password; it also lifts a lockout (whoever sets it has checked who is asking)."""
        user = self._change(username, {"password_hash": _hash(password)}, actor, "set_password")
        with self.store.transaction() as conn:
            _log(conn, username, datetime.now(UTC).replace(tzinfo=None), "unlocked")
        return user

    def unlock(self, username: str, actor: str = "cli", now: datetime | None = None) -> datetime | None:
        """Lift a sign-in's lockout and start its failure count again, keeping its password.

        The sign-in itself is not changed (its version stays, so open sessions go on). Returns when the
        lock would have ended, or None when the name was not locked (the count starts again all the same).
        """
        if self.get(username) is None:
            raise PortalUserError(f"Sign-in {username!r} does not exist; `crm user list` shows the sign-ins.")
        now = now or datetime.now(UTC).replace(tzinfo=None)
        with self.store.transaction() as conn:
            until = _locked_until(conn, username, now)
            _log(conn, username, now, "unlocked")
            conn.execute(text(
                "INSERT INTO audit_log (audit_id, occurred_at, actor, action, entity, record_id, before_json, "
                "after_json) VALUES (:id, :t, :actor, 'unlock', 'portal_users', :rid, :b, NULL)"),
                {"id": uuid.uuid4().hex, "t": now, "actor": actor, "rid": username,
                 "b": json.dumps({"locked_until": until.isoformat()}) if until else None})
        return until

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


def _log(conn, key: str, at: datetime, outcome: str, locked_until: datetime | None = None) -> None:
    conn.execute(text(
        "INSERT INTO sign_in_attempts (attempt_id, username, attempted_at, outcome, locked_until) "
        "VALUES (:id, :u, :t, :o, :l)"), {"id": uuid.uuid4().hex, "u": key, "t": at, "o": outcome, "l": locked_until})


def _as_datetime(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _latest(conn, key: str, outcomes: tuple[str, ...]) -> tuple[datetime | None, datetime | None]:
    """(attempted_at, locked_until) of the latest log row of `key` with one of `outcomes`."""
    sql = text("SELECT attempted_at, locked_until FROM sign_in_attempts WHERE username = :u AND outcome IN :o "
               "ORDER BY attempted_at DESC LIMIT 1").bindparams(bindparam("o", expanding=True))
    row = conn.execute(sql, {"u": key, "o": list(outcomes)}).first()
    return (_as_datetime(row[0]), _as_datetime(row[1])) if row else (None, None)


def _locked_until(conn, key: str, now: datetime) -> datetime | None:
    locked_at, until = _latest(conn, key, ("locked",))
    if locked_at is None or until is None or until <= now:
        return None
    unlocked_at, _ = _latest(conn, key, ("unlocked",))
    return None if unlocked_at is not None and unlocked_at >= locked_at else until


def _recent_failures(conn, key: str, now: datetime) -> int:
    """Failures within the window that came after the last success, lockout or unlock of this name."""
    since = now - FAILURE_WINDOW
    reset, _ = _latest(conn, key, ("success", "locked", "unlocked"))
    if reset is not None and reset > since:
        since = reset
    sql = text("SELECT count(*) FROM sign_in_attempts WHERE username = :u AND outcome IN :o "
               "AND attempted_at >= :since").bindparams(bindparam("o", expanding=True))
    # a reset row shares its second with the failure that caused it: count strictly after a reset
    if reset is not None and since == reset:
        sql = text("SELECT count(*) FROM sign_in_attempts WHERE username = :u AND outcome IN :o "
                   "AND attempted_at > :since").bindparams(bindparam("o", expanding=True))
    return int(conn.execute(sql, {"u": key, "o": list(_FAILURES), "since": since}).scalar())


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
