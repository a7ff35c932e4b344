"""The session check runs once per page run: the entry script (app/streamlit_app.py) rechecks the sign-in and
the page of the same run takes that viewer (app.ui.page_viewer), instead of asking the store again.

A manager's check is two store queries (the sign-in row and the team's users); before, every page run made
both twice. Counted here with the real portal on a copy of the portal home's store, for several pages, and
the check still ends a disabled sign-in's session on the very next run of any page.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import portal_store_copy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from app.auth import viewer_for
from pipelines.lib.portal_users import PortalUsers

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
PAGES = ["app_pages/overview.py", "app_pages/funnel.py", "app_pages/records.py", "app_pages/leads.py",
         "app_pages/data_quality.py"]
#: The statements of one session check (PortalUsers.get and, for a manager, viewer_for's team query).
SIGN_IN_QUERY = "FROM portal_users WHERE username"
TEAM_QUERY = "SELECT user_id FROM users WHERE team_id"


@pytest.fixture(scope="module")
def env(portal_home, tmp_path_factory):
    yield from portal_store_copy(portal_home, tmp_path_factory.mktemp("session_once_store"))


@pytest.fixture
def counted(monkeypatch):
    """Counts of recheck calls and of the session check's store statements, reset by the test."""
    from app import auth

    counts = {"recheck": 0, "sign_in": 0, "team": 0}
    real = auth.recheck

    def recheck(*args, **kwargs):
        counts["recheck"] += 1
        return real(*args, **kwargs)

    def statement(conn, cursor, sql, parameters, context, executemany):
        counts["sign_in"] += SIGN_IN_QUERY in sql
        counts["team"] += TEAM_QUERY in sql

    monkeypatch.setattr(auth, "recheck", recheck)
    event.listen(Engine, "before_cursor_execute", statement)
    yield counts
    event.remove(Engine, "before_cursor_execute", statement)


def _signed_in(store, username) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["viewer"] = viewer_for(store, PortalUsers(store).get(username))
    at.run()
    assert not at.exception and "viewer" in at.session_state
    return at


def test_a_managers_page_run_checks_the_session_once(env, counted):
    at = _signed_in(env, "manager")
    for page in PAGES:
        at.switch_page(page)
        counted.update(recheck=0, sign_in=0, team=0)
        at.run()
        assert not at.exception, page
        assert "viewer" in at.session_state, page
        assert counted == {"recheck": 1, "sign_in": 1, "team": 1}, page


def test_a_disabled_sign_in_ends_the_session_on_the_next_run_of_any_page(env, counted):
    manager = PortalUsers(env).get("manager")
    users = PortalUsers(env)
    for page in PAGES:
        name = f"once-{Path(page).stem}"
        users.add(name, "session-once-pw", "manager", team_id=manager.team_id)
        at = _signed_in(env, name)
        at.switch_page(page)
        at.run()
        assert not at.exception and "viewer" in at.session_state, page
        users.disable(name)
        counted.update(recheck=0)
        at.run()
        assert counted["recheck"] == 1, page
        assert "viewer" not in at.session_state, page
        assert at.title[0].value == "CRM portal", page
        assert any("disabled" in i.value for i in at.info), page
