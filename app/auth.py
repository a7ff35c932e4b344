"""Sign-in and roles: who is looking, and which records they may see and change.

A `Viewer` is built once at sign-in from the portal sign-in (pipelines/lib/portal_users.py) and the CRM
users table. Its `owner_ids` is the scope every read (app/queries.py) and every write (app/edits.py) is
filtered by, so hiding a widget is never the only thing that stands between a rep and another rep's
accounts:

- admin: everything (`owner_ids` None);
- manager: records owned by the users of their team;
- sales_rep: records they own;
- analyst: everything, read-only, with personal data (the contract's pii columns and free text) masked.

The rules that use the scope live in app/access.py. This module answers who is signed in: sign-in under
the lockout policy of pipelines/lib/portal_users.py plus a short per-process rate limit, and a session
that is checked against the store on every page run (`recheck`): a sign-in that was disabled, changed
(role, team, CRM user, password) or removed ends its open sessions at their next click, and a session
ends after SESSION_MAX_SECONDS or SESSION_IDLE_SECONDS without a page run.

The check runs once per run: the entry script (app/streamlit_app.py, which Streamlit runs before every
page) calls `current_viewer`, which rechecks and hands the checked viewer to the page of the same run
(`page_run_viewer`); a manager's check costs two store queries (the sign-in and the team's users), so
checking again in the page would double them without checking anything newer.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

from sqlalchemy import text

from pipelines.lib.portal_users import PortalUser, PortalUsers, SignInLocked
from pipelines.lib.store import OperationalStore

SESSION_KEY = "viewer"
LAST_SEEN_KEY = "viewer_last_seen"
NOTICE_KEY = "sign_in_notice"
#: The viewer `current_viewer` checked at the start of this run, taken (once) by the page of the run.
CHECKED_KEY = "viewer_checked_this_run"
#: A session lasts at most this long after sign-in, and ends after this long without a page run.
SESSION_MAX_SECONDS = 12 * 3600
SESSION_IDLE_SECONDS = 60 * 60
#: Per-process rate limit on sign-in attempts (before any password is checked): per name and overall.
RATE_PER_NAME = (5, 10.0)
RATE_OVERALL = (60, 10.0)


class SignInRefused(PermissionError):
    """The attempt was not checked (locked name, too many attempts); the message says when to retry."""


@dataclass(frozen=True)
class Viewer:
    username: str
    role: str
    user_id: str | None = None
    team_id: str | None = None
    #: CRM user ids whose records this viewer may see; None means no restriction.
    owner_ids: tuple[str, ...] | None = None
    #: The sign-in's version when the session began: any change to the sign-in ends the session.
    version: int | None = None
    signed_in_at: float = field(default_factory=time.time)

    @property
    def masked(self) -> bool:
        """Analysts see aggregates and behaviour, not who the people are."""
        return self.role == "analyst"

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "manager", "sales_rep")

    @property
    def can_assign(self) -> bool:
        """Handing records to other people (lead distribution, owner changes) is for managers and admins."""
        return self.role in ("admin", "manager")

    @property
    def actor(self) -> str:
        """Who the audit log names: the CRM user when there is one, else the portal sign-in."""
        return self.user_id or f"portal:{self.username}"

    @property
    def restricted(self) -> bool:
        return self.owner_ids is not None

    def owns(self, owner_user_id: str | None) -> bool:
        return self.owner_ids is None or (owner_user_id is not None and owner_user_id in self.owner_ids)

    @property
    def scope_label(self) -> str:
        if self.role == "sales_rep":
            return f"your accounts ({self.user_id})"
        if self.role == "manager":
            return f"team {self.team_id}"
        if self.role == "analyst":
            return "all records, personal data masked"
        return "all records"


def viewer_for(store: OperationalStore, user: PortalUser) -> Viewer:
    """The scope of a sign-in, resolved against the CRM users table now."""
    if user.role in ("admin", "analyst"):
        return Viewer(user.username, user.role, user.user_id, user.team_id, None, user.version)
    if user.role == "sales_rep":
        return Viewer(user.username, user.role, user.user_id, user.team_id,
                      (user.user_id,) if user.user_id else (), user.version)
    with store.engine.connect() as conn:
        members = [r[0] for r in conn.execute(text("SELECT user_id FROM users WHERE team_id = :t ORDER BY user_id"),
                                               {"t": user.team_id})]
    if user.user_id and user.user_id not in members:
        members.append(user.user_id)
    return Viewer(user.username, user.role, user.user_id, user.team_id, tuple(members), user.version)


class _RateLimit:
    """At most `limit` attempts per `seconds` for one key in this process (a sliding window)."""

    def __init__(self, limit: int, seconds: float):
        self.limit, self.seconds = limit, seconds
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, key: str, now: float) -> float:
        """0 and the attempt counted when it may go ahead, else the seconds until it may."""
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.seconds:
                hits.popleft()
            if len(hits) >= self.limit:
                return hits[0] + self.seconds - now
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle names: the window is seconds long
                for name in [k for k, v in self._hits.items() if not v]:
                    del self._hits[name]
            return 0.0


_PER_NAME = _RateLimit(*RATE_PER_NAME)
_OVERALL = _RateLimit(*RATE_OVERALL)
#: One attempt per name at a time in this process, so parallel guesses cannot outrun the failure count.
_NAME_LOCKS = [threading.Lock() for _ in range(64)]


def sign_in(store: OperationalStore, username: str, password: str) -> Viewer | None:
    """The viewer for a right password of an active sign-in, None for a wrong one.

    Raises SignInRefused when the name is locked (pipelines/lib/portal_users.py: MAX_FAILURES failures within
    FAILURE_WINDOW) or this process saw too many attempts just now.
    """
    username = username.strip()
    now = time.monotonic()
    wait = max(_OVERALL.wait("*", now), _PER_NAME.wait(username.lower(), now))
    if wait > 0:
        locked_until = PortalUsers(store).locked_until(username)
        if locked_until is not None:  # the lock is the message that matters
            raise SignInRefused(str(SignInLocked(username, locked_until)))
        raise SignInRefused(f"Too many sign-in attempts just now: wait {max(1, round(wait))} seconds and try again.")
    stripe = int(hashlib.sha256(username.encode("utf-8")).hexdigest()[:8], 16) % len(_NAME_LOCKS)
    with _NAME_LOCKS[stripe]:
        try:
            user = PortalUsers(store).sign_in(username, password)
        except SignInLocked as exc:
            raise SignInRefused(str(exc)) from exc
    return viewer_for(store, user) if user else None


def recheck(store: OperationalStore, viewer: Viewer, last_seen: float | None = None,
            now: float | None = None) -> tuple[Viewer | None, str | None]:
    """The session's viewer as the store has it now, or (None, why the session ended).

    Ends the session when the sign-in is gone, disabled or changed since sign-in (role, team, CRM user or
    password all bump its version), or when the session is too old or was idle too long. A manager's team
    membership is re-read, so a rep who joins or leaves the team is in or out of scope at once.
    """
    now = time.time() if now is None else now
    if now - viewer.signed_in_at > SESSION_MAX_SECONDS:
        return None, f"Your session ended after {SESSION_MAX_SECONDS // 3600} hours; please sign in again."
    if last_seen is not None and now - last_seen > SESSION_IDLE_SECONDS:
        return None, (f"Your session ended after {SESSION_IDLE_SECONDS // 60} minutes without activity; "
                      "please sign in again.")
    user = PortalUsers(store).get(viewer.username)
    if user is None or not user.is_active:
        return None, "Your sign-in was disabled or removed; ask an admin if you still need access."
    if user.version != viewer.version or (user.role, user.team_id, user.user_id) != (
            viewer.role, viewer.team_id, viewer.user_id):
        return None, "Your sign-in was changed (role, team or password); please sign in again."
    fresh = viewer_for(store, user)
    if fresh.owner_ids != viewer.owner_ids:
        return replace(viewer, owner_ids=fresh.owner_ids), None
    return viewer, None


# --- Streamlit glue (the only part of this module that touches the UI) ----------------------------------
def current_viewer() -> Viewer | None:
    """The signed-in viewer, rechecked against the store (None: not signed in or the session ended).

    The entry script calls this at the start of every run; the checked viewer is kept for the page of
    the same run (`page_run_viewer`), so the store is asked once per run."""
    import streamlit as st

    from app.queries import operational_store

    st.session_state.pop(CHECKED_KEY, None)
    viewer = st.session_state.get(SESSION_KEY)
    if viewer is None:
        return None
    checked, reason = recheck(operational_store(), viewer, st.session_state.get(LAST_SEEN_KEY))
    if checked is None:
        for key in list(st.session_state.keys()):
            del st.session_state[key]
        st.session_state[NOTICE_KEY] = reason
        return None
    if checked is not viewer:
        st.session_state[SESSION_KEY] = checked
    st.session_state[LAST_SEEN_KEY] = time.time()
    st.session_state[CHECKED_KEY] = checked
    return checked


def page_run_viewer() -> Viewer | None:
    """The viewer checked by the entry script at the start of this run (taken once, so it never reaches
    a later run); a page run that was not preceded by that check checks the session itself."""
    import streamlit as st

    checked = st.session_state.pop(CHECKED_KEY, None)
    if checked is not None and checked == st.session_state.get(SESSION_KEY):
        return checked
    return current_viewer()


def sign_in_page() -> None:
    """The page shown to anyone not signed in."""
    import streamlit as st

    from app.queries import operational_store

    st.title("CRM portal")
    st.caption("Sign in with the account your administrator created (`crm user add`).")
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.info(notice, icon=":material/logout:")
    with st.form("sign_in"):
        username = st.text_input("Username", key="sign_in_username")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            viewer = sign_in(operational_store(), username, password)
        except SignInRefused as exc:
            from app.plain_text import plain

            st.error(plain(str(exc)), icon=":material/lock:")
            return
        if viewer is None:
            st.error("Wrong username or password, or the sign-in is disabled. Ask an admin to check "
                     "`crm user list`.")
        else:
            st.session_state[SESSION_KEY] = viewer
            st.session_state[LAST_SEEN_KEY] = time.time()
            st.rerun()


def sign_out() -> None:
    import streamlit as st

    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.rerun()
