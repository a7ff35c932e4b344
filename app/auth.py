"""Sign-in and roles: who is looking, and which records they may see and change.

A `Viewer` is built once at sign-in from the portal sign-in (pipelines/lib/portal_users.py) and the CRM
users table. Its `owner_ids` is the scope every read (app/queries.py) and every write (app/edits.py) is
filtered by, so hiding a widget is never the only thing that stands between a rep and another rep's
accounts:

- admin: everything (`owner_ids` None);
- manager: records owned by the users of their team;
- sales_rep: records they own;
- analyst: everything, read-only, with personal data (the contract's pii columns) masked.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from pipelines.lib.portal_users import PortalUser, PortalUsers
from pipelines.lib.store import OperationalStore

SESSION_KEY = "viewer"


@dataclass(frozen=True)
class Viewer:
    username: str
    role: str
    user_id: str | None = None
    team_id: str | None = None
    #: CRM user ids whose records this viewer may see; None means no restriction.
    owner_ids: tuple[str, ...] | None = None

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
    """The scope of a sign-in, resolved against the CRM users table at sign-in time."""
    if user.role in ("admin", "analyst"):
        return Viewer(user.username, user.role, user.user_id, user.team_id, None)
    if user.role == "sales_rep":
        return Viewer(user.username, user.role, user.user_id, user.team_id, (user.user_id,) if user.user_id else ())
    with store.engine.connect() as conn:
        members = [r[0] for r in conn.execute(text("SELECT user_id FROM users WHERE team_id = :t ORDER BY user_id"),
                                               {"t": user.team_id})]
    if user.user_id and user.user_id not in members:
        members.append(user.user_id)
    return Viewer(user.username, user.role, user.user_id, user.team_id, tuple(members))


def sign_in(store: OperationalStore, username: str, password: str) -> Viewer | None:
    """The viewer for a correct username and password of an active sign-in, else None."""
    user = PortalUsers(store).authenticate(username.strip(), password)
    return viewer_for(store, user) if user else None


# --- Streamlit glue (the only part of this module that touches the UI) ----------------------------------
def current_viewer() -> Viewer | None:
    import streamlit as st

    return st.session_state.get(SESSION_KEY)


def sign_in_page() -> None:
    """The page shown to anyone not signed in."""
    import streamlit as st

    from app.queries import operational_store

    st.title("CRM portal")
    st.caption("Sign in with the account your administrator created (`crm user add`).")
    with st.form("sign_in"):
        username = st.text_input("Username", key="sign_in_username")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        viewer = sign_in(operational_store(), username, password)
        if viewer is None:
            st.error("Wrong username or password, or the sign-in is disabled. Ask an admin to check "
                     "`crm user list`.")
        else:
            st.session_state[SESSION_KEY] = viewer
            st.rerun()


def sign_out() -> None:
    import streamlit as st

    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.rerun()
