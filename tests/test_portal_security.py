"""The portal's security faults, each reproduced against a generated home: write scope on every reference,
no names in free text for analysts, sign-in lockout, sessions that end when their sign-in changes, export
formula neutralisation and record values that reach Markdown only as plain text.

Writes go to a private copy of the portal home's store (CRM_OPERATIONAL_DB_URL), so the other portal tests
see the store as the fixture made it.
"""

from __future__ import annotations

import csv
import html
import inspect
import io
import re
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from conftest import portal_store_copy
from streamlit.testing.v1 import AppTest

from app.auth import viewer_for
from pipelines.contract import load_contract
from pipelines.lib.portal_users import PortalUsers
from pipelines.lib.store import OperationalStore

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
PASSWORD = "security-test-pw"


@pytest.fixture(scope="module")
def env(portal_home, tmp_path_factory):
    for store in portal_store_copy(portal_home, tmp_path_factory.mktemp("security_store")):
        yield portal_home, store


def _viewer(store, username):
    return viewer_for(store, PortalUsers(store).get(username))


def _rows(store, sql, params=()):
    with store.engine.connect() as conn:
        return conn.exec_driver_sql(sql, tuple(params)).fetchall()


def _ids_sql(ids) -> str:
    return ", ".join("'" + i.replace("'", "''") + "'" for i in ids)


# --- fault 5: every reference a write carries is checked against the writer's scope ------------------------
#: Rows a viewer whose users are {ids} may NOT see, per scoped entity (written out here, independently of
#: the portal's own rules).
OUTSIDE = {
    "users": "SELECT user_id FROM users WHERE user_id NOT IN ({ids})",
    "accounts": "SELECT account_id FROM accounts WHERE owner_user_id NOT IN ({ids})",
    "contacts": "SELECT contact_id FROM contacts WHERE account_id IN "
                "(SELECT account_id FROM accounts WHERE owner_user_id NOT IN ({ids}))",
    "opportunities": "SELECT opportunity_id FROM opportunities WHERE owner_user_id NOT IN ({ids}) AND account_id IN "
                     "(SELECT account_id FROM accounts WHERE owner_user_id NOT IN ({ids}))",
    "tasks": "SELECT task_id FROM tasks WHERE owner_user_id NOT IN ({ids}) AND account_id IN "
             "(SELECT account_id FROM accounts WHERE owner_user_id NOT IN ({ids}))",
    "leads": "SELECT lead_id FROM leads WHERE owner_user_id NOT IN ({ids})",
}
#: Rows wholly inside the scope (own owner and own account), per editable entity.
INSIDE = {
    "accounts": "SELECT account_id FROM accounts WHERE owner_user_id IN ({ids}) AND is_archived = 0",
    "contacts": "SELECT contact_id FROM contacts WHERE is_archived = 0 AND account_id IN "
                "(SELECT account_id FROM accounts WHERE owner_user_id IN ({ids}))",
    "opportunities": "SELECT opportunity_id FROM opportunities WHERE is_archived = 0 AND owner_user_id IN ({ids}) "
                     "AND account_id IN (SELECT account_id FROM accounts WHERE owner_user_id IN ({ids}))",
    "tasks": "SELECT task_id FROM tasks WHERE is_archived = 0 AND owner_user_id IN ({ids}) AND account_id IN "
             "(SELECT account_id FROM accounts WHERE owner_user_id IN ({ids}))",
    "leads": "SELECT lead_id FROM leads WHERE owner_user_id IN ({ids})",
}


def _first(store, sql, ids):
    row = _rows(store, sql.format(ids=_ids_sql(ids)) + " ORDER BY 1 LIMIT 1")
    return row[0][0] if row else None


def test_rep_cannot_create_a_deal_task_or_contact_on_another_reps_account(env):
    from app import edits

    home, store = env
    rep = _viewer(store, "rep")
    other = _first(store, OUTSIDE["accounts"], rep.owner_ids)
    own = _first(store, INSIDE["accounts"], rep.owner_ids)
    assert other and own
    new = {
        "opportunities": {"opportunity_name": "Scope test deal", "stage": "prospecting", "amount": 1000.0,
                          "expected_close_date": "2027-03-31"},
        "tasks": {"subject": "Scope test task", "task_type": "call", "status": "open", "due_at": "2027-01-05T10:00:00"},
        "contacts": {"first_name": "Scope", "last_name": "Test", "is_primary": False},
    }
    counts = {e: _rows(store, f"SELECT count(*) FROM {e}")[0][0] for e in new}  # noqa: S608 - fixed names
    refused = 0
    for entity, values in new.items():
        with pytest.raises(edits.PermissionDenied, match="account_id"):
            edits.create_record(rep, store, entity, {**values, "account_id": other})
        refused += 1
        # the rep still creates the same record on an account of their own
        created = edits.create_record(rep, store, entity, {**values, "account_id": own})
        assert created["account_id"] == own
    assert refused == 3
    for entity in new:  # one record each, on the rep's own account; none on the other rep's
        assert _rows(store, f"SELECT count(*) FROM {entity}")[0][0] == counts[entity] + 1  # noqa: S608
    assert _rows(store, "SELECT count(*) FROM opportunities WHERE account_id = ? AND opportunity_name = ?",
                 [other, "Scope test deal"])[0][0] == 0
    assert _rows(store, "SELECT count(*) FROM tasks WHERE account_id = ? AND subject = ?",
                 [other, "Scope test task"])[0][0] == 0


def test_rep_cannot_move_a_deal_or_task_onto_another_reps_account(env):
    from app import edits

    home, store = env
    rep = _viewer(store, "rep")
    other_account = _first(store, OUTSIDE["accounts"], rep.owner_ids)
    other_deal = _first(store, OUTSIDE["opportunities"], rep.owner_ids)
    deal_id = _first(store, INSIDE["opportunities"], rep.owner_ids)
    task_id = _first(store, INSIDE["tasks"], rep.owner_ids)
    deal, task = store.get("opportunities", deal_id), store.get("tasks", task_id)
    with pytest.raises(edits.PermissionDenied, match="account_id"):
        edits.update_record(rep, store, "opportunities", deal_id, {"account_id": other_account}, deal["version"])
    with pytest.raises(edits.PermissionDenied, match="account_id"):
        edits.update_record(rep, store, "tasks", task_id, {"account_id": other_account}, task["version"])
    with pytest.raises(edits.PermissionDenied, match="opportunity_id"):
        edits.update_record(rep, store, "tasks", task_id, {"opportunity_id": other_deal}, task["version"])
    assert store.get("opportunities", deal_id)["account_id"] == deal["account_id"]
    assert store.get("tasks", task_id)["version"] == task["version"]
    # an edit that leaves the references alone still goes through
    saved = edits.update_record(rep, store, "tasks", task_id, {"subject": "Follow up"}, task["version"])
    assert saved["subject"] == "Follow up" and saved["account_id"] == task["account_id"]


def test_every_reference_a_write_carries_is_checked_against_scope(env):
    """For every editable entity and every reference column pointing at a scoped entity, a manager who points a
    record of their team at something outside the team is refused, and the store keeps the old value."""
    from app import edits

    home, store = env
    manager = _viewer(store, "manager")
    contract = load_contract()
    checked = []
    for entity in (*edits.EDITABLE, "leads"):
        record_id = _first(store, INSIDE[entity], manager.owner_ids)
        assert record_id, f"the manager's team has no {entity}"
        for column in contract.entity(entity).columns:
            target = column.reference[0] if column.reference else None
            if target not in OUTSIDE:
                continue
            outside = _first(store, OUTSIDE[target], manager.owner_ids)
            assert outside, f"no {target} outside the manager's team"
            before = store.get(entity, record_id)
            with pytest.raises(edits.PermissionDenied):
                edits.update_record(manager, store, entity, record_id, {column.name: outside}, before["version"])
            assert store.get(entity, record_id)[column.name] == before[column.name]
            checked.append(f"{entity}.{column.name}")
    assert {"opportunities.account_id", "opportunities.owner_user_id", "tasks.account_id", "tasks.opportunity_id",
            "tasks.owner_user_id", "contacts.account_id", "accounts.owner_user_id", "opportunities.lead_id",
            "leads.owner_user_id"} <= set(checked), checked


# --- fault 6: analysts see no names, in free text or anywhere else -----------------------------------------
_WORD = re.compile(r"\w+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _known_names(home, store) -> tuple[set[str], set[str]]:
    """Every person's and customer's name (as word sequences of two or more words) and every e-mail address."""
    from pipelines.lib.snapshot import connect_snapshot

    names: list[str] = []
    emails: list[str] = []
    for sql in ("SELECT full_name, email FROM users", "SELECT account_name, email FROM accounts",
                "SELECT first_name || ' ' || last_name, email FROM contacts",
                "SELECT first_name || ' ' || last_name, email FROM leads", "SELECT company, NULL FROM leads"):
        for name, email in _rows(store, sql):
            names.append(name)
            emails.append(email)
    with connect_snapshot(home) as con:
        names += [r[0] for r in con.execute("select customer_name from marts.dim_customer_360").fetchall()]
    words = {" ".join(_WORD.findall(n)) for n in names if n and len(_WORD.findall(n)) >= 2}
    return words, {e.lower() for e in emails if e}


def _leaks(value, names: set[str], emails: set[str], longest: int) -> set[str]:
    found = {m.lower() for m in _EMAIL.findall(value) if m.lower() in emails}
    words = _WORD.findall(value)
    for n in range(2, longest + 1):
        for i in range(len(words) - n + 1):
            phrase = " ".join(words[i:i + n])
            if phrase in names:
                found.add(phrase)
    return found


def _strings(result):
    """Every text a query result holds (frames, rows, nested values)."""
    if isinstance(result, pl.DataFrame):
        for column in result.columns:
            if result[column].dtype.is_numeric() or result[column].dtype == pl.Boolean:
                continue
            for value in result[column].to_list():
                yield from _strings(value)
    elif isinstance(result, dict):
        for key, value in result.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(result, list | tuple):
        for value in result:
            yield from _strings(value)
    elif isinstance(result, str):
        yield result
    elif result is not None:
        yield str(result)


def _calls(admin, store):
    """(function name, kwargs) for every query the portal has, with real arguments for those that need them."""
    from app import queries
    from pipelines.lib.snapshot import connect_snapshot

    customer_keys = queries.customers(admin, limit=20)["customer_key"].to_list()
    with connect_snapshot(queries.home()) as con:  # customers with deals and tickets: their names are in them
        customer_keys += [r[0] for r in con.execute(
            "select customer_key from marts.fct_opportunities where customer_key is not null group by 1 "
            "order by count(*) desc limit 15").fetchall()]
    segments = queries.dynamic_segments(admin)
    entities = list(queries.RECORD_LIST)
    records = [(e, i) for e in entities for i in queries.list_records(admin, e, limit=15)[queries.RECORD_LIST[e][0]]]
    audited = [(r[0], r[1]) for r in _rows(store, "SELECT DISTINCT entity, record_id FROM audit_log "
                                                  "WHERE entity IN ('accounts', 'contacts', 'opportunities', 'tasks', "
                                                  "'leads') ORDER BY 1, 2 LIMIT 60")]
    arguments = {
        "customer_key": [{"customer_key": k} for k in dict.fromkeys(customer_keys)],
        "entity": [{"entity": e, "include_archived": True} for e in entities],
        "record_id": [{"entity": e, "record_id": i} for e, i in records + audited],
        "segment_name": [{"segment_name": s} for s in (segments["segment_name"].to_list() if segments.height else [])],
    }
    dimensions = {"win_rate_by": ["region", "lead_source", "product_line", "owner", "team"],
                  "segment_summary": list(queries.SEGMENT_DIMENSIONS)}
    for name, fn in inspect.getmembers(queries, inspect.isfunction):
        params = list(inspect.signature(fn).parameters.values())
        if fn.__module__ != "app.queries" or name.startswith("_") or not params or params[0].name != "viewer":
            continue
        required = [p.name for p in params[1:] if p.default is inspect.Parameter.empty]
        if not required:
            yield name, {}
        elif required == ["dimension"]:
            yield from ((name, {"dimension": d}) for d in dimensions[name])
        elif required == ["entity", "record_id"]:
            yield from ((name, kw) for kw in arguments["record_id"])
        elif required == ["entity"]:
            yield from ((name, kw) for kw in arguments["entity"])
        elif required[0] in arguments and len(required) == 1:
            yield from ((name, kw) for kw in arguments[required[0]])
        else:
            pytest.fail(f"queries.{name} needs {required}: teach this scan how to call it")


def test_analyst_sees_no_known_name_or_email_in_any_query_result(env):
    """Every query the portal has, called as an analyst with real arguments: no result holds a name or e-mail
    address of a person or customer the home knows, including free text (deal names, task subjects)."""
    from app import edits, queries

    home, store = env
    admin, analyst = _viewer(store, "admin"), _viewer(store, "analyst")
    # free text that names a person, as people type it; and an audit trail that carries it
    contact = _rows(store, "SELECT first_name, last_name, account_id FROM contacts ORDER BY contact_id LIMIT 1")[0]
    task_id = _rows(store, "SELECT task_id FROM tasks WHERE account_id = ? ORDER BY task_id LIMIT 1", [contact[2]])
    task_id = task_id[0][0] if task_id else _rows(store, "SELECT task_id FROM tasks ORDER BY task_id LIMIT 1")[0][0]
    task = store.get("tasks", task_id)
    edits.update_record(admin, store, "tasks", task_id, {"subject": f"Email {contact[0]} {contact[1]}"},
                        task["version"])
    names, emails = _known_names(home, store)
    longest = max(len(n.split()) for n in names)
    subjects = [r[0] for r in _rows(store, "SELECT subject FROM tasks")]
    named_subjects = sum(1 for s in subjects if _leaks(s, names, emails, longest))
    assert named_subjects > 0, "the demo data should have task subjects that name someone"
    calls = leaks = 0
    found: dict[str, set[str]] = {}
    for name, kwargs in _calls(admin, store):
        result = getattr(queries, name)(analyst, **kwargs)
        calls += 1
        for value in _strings(result):
            hit = _leaks(value, names, emails, longest)
            if hit:
                leaks += 1
                found.setdefault(name, set()).update(hit)
    assert calls > 150
    assert not found, f"{leaks} values name someone: " + "; ".join(f"{k}: {sorted(v)[:3]}" for k, v in found.items())
    # admins see the same records unmasked (the scan can find names where they are allowed)
    assert _leaks(queries.get_record(admin, "tasks", task_id)["subject"], names, emails, longest)


def test_analyst_pages_show_no_known_name(env):
    """Every page rendered for an analyst: no element (header, caption, metric, table, option) names anyone."""
    home, store = env
    names, emails = _known_names(home, store)
    longest = max(len(n.split()) for n in names)
    found = {}
    pages = ["overview", "funnel", "pipeline_forecast", "segments", "customer_360", "churn_worklist", "campaigns",
             "service", "reps", "data_quality", "records"]
    for page in pages:
        at = AppTest.from_file(APP, default_timeout=60)
        at.session_state["viewer"] = _viewer(store, "analyst")
        at.run()
        at.switch_page(f"app_pages/{page}.py")
        at.run()
        if page == "records":
            for entity in ("opportunities", "tasks"):
                at.segmented_control(key="records_entity").set_value(entity).run()
        assert not at.exception, [e.value for e in at.exception]
        texts = []
        for kind in ("title", "header", "subheader", "caption", "markdown", "text", "info", "warning", "error",
                     "success", "json"):
            texts += [str(e.value) for e in getattr(at, kind)]
        texts += [f"{m.label} {m.value}" for m in at.metric]
        texts += [str(o) for s in at.selectbox for o in s.options]
        for frame in [d.value for d in at.dataframe] + [t.value for t in at.table]:
            texts += [str(v) for v in frame.astype(str).to_numpy().ravel()]
        for text in texts:
            hit = _leaks(text, names, emails, longest)
            if hit:
                found.setdefault(page, set()).update(hit)
    assert not found, found


# --- fault 7: sign-in lockout and rate limit ---------------------------------------------------------------
def test_twenty_wrong_passwords_then_the_right_one_is_refused(env):
    from app import auth

    home, store = env
    users = PortalUsers(store)
    users.add("burst", PASSWORD, "analyst")
    refused = 0
    for _ in range(20):
        try:
            assert auth.sign_in(store, "burst", "not-the-password") is None
        except PermissionError:
            refused += 1
    with pytest.raises(PermissionError):
        auth.sign_in(store, "burst", PASSWORD)
    assert refused >= 15
    log = users.sign_in_log("burst")
    # only five passwords were ever checked: the fifth failure locked the name
    assert sum(r["outcome"] == "wrong_password" for r in log) == 5
    assert [r["outcome"] for r in log].count("locked") == 1
    lockouts = _rows(store, "SELECT count(*) FROM audit_log WHERE action = 'lockout' AND record_id = 'burst'")
    assert lockouts[0][0] == 1


def test_sign_in_locks_for_fifteen_minutes_after_five_failures_within_fifteen(env):
    from pipelines.lib.portal_users import SignInLocked

    home, store = env
    users = PortalUsers(store)
    users.add("lockme", PASSWORD, "analyst")
    t0 = datetime(2026, 12, 1, 9, 0, 0)
    # four failures spread over 20 minutes: the first one has left the 15-minute window by the fifth
    for minute in (0, 8, 12, 17):
        assert users.sign_in("lockme", "wrong-password", now=t0 + timedelta(minutes=minute)) is None
    assert users.sign_in("lockme", "wrong-password", now=t0 + timedelta(minutes=20)) is None
    with pytest.raises(SignInLocked) as locked:
        users.sign_in("lockme", "wrong-password", now=t0 + timedelta(minutes=21))
    assert locked.value.locked_until == t0 + timedelta(minutes=36)
    assert "locked after 5 failed attempts" in str(locked.value) and "09:36 UTC" in str(locked.value)
    with pytest.raises(SignInLocked):  # the right password does not open a locked sign-in
        users.sign_in("lockme", PASSWORD, now=t0 + timedelta(minutes=35))
    assert users.sign_in("lockme", PASSWORD, now=t0 + timedelta(minutes=36, seconds=1)).username == "lockme"
    outcomes = [r["outcome"] for r in users.sign_in_log("lockme")]
    assert outcomes == ["wrong_password"] * 6 + ["locked", "refused_locked", "success"]
    # a new password set by an admin lifts a lock at once (this part on the real clock)
    for _ in range(4):
        assert users.sign_in("lockme", "wrong-password") is None
    with pytest.raises(SignInLocked):
        users.sign_in("lockme", "wrong-password")
    assert users.locked_until("lockme") is not None
    users.set_password("lockme", "another-password-1")
    assert users.locked_until("lockme") is None
    assert users.sign_in("lockme", "another-password-1").username == "lockme"


def test_unknown_names_lock_the_same_way_and_are_logged_only_as_a_hash(env):
    from pipelines.lib.portal_users import SignInLocked

    home, store = env
    users = PortalUsers(store)
    t0 = datetime(2026, 12, 1, 10, 0, 0)
    typed = "my-secret-password-typed-as-a-name"
    for second in range(4):
        assert users.sign_in(typed, "x", now=t0 + timedelta(seconds=second)) is None
    with pytest.raises(SignInLocked, match="locked after 5 failed attempts"):
        users.sign_in(typed, "x", now=t0 + timedelta(seconds=4))
    stored = _rows(store, "SELECT username, outcome FROM sign_in_attempts WHERE username LIKE 'unknown:%'")
    assert len(stored) >= 6 and all(typed not in r[0] for r in stored)
    assert _rows(store, "SELECT count(*) FROM sign_in_attempts WHERE username LIKE ?", [f"%{typed}%"])[0][0] == 0


def test_per_process_rate_limit_counts_a_sliding_window():
    from app.auth import _RateLimit

    limit = _RateLimit(3, 10.0)
    assert [limit.wait("a", t) for t in (0.0, 1.0, 2.0)] == [0.0, 0.0, 0.0]
    assert limit.wait("a", 3.0) == pytest.approx(7.0)
    assert limit.wait("b", 3.0) == 0.0  # another name has its own window
    assert limit.wait("a", 10.5) == 0.0  # the attempt at 0.0 has left the window


def test_sign_in_form_says_the_sign_in_is_locked(env):
    home, store = env
    PortalUsers(store).add("formlock", PASSWORD, "analyst")
    at = AppTest.from_file(APP, default_timeout=60).run()
    messages = []
    for _ in range(6):
        at.text_input(key="sign_in_username").input("formlock")
        at.text_input(key="sign_in_password").input("wrong-password")
        at.button[0].click().run()
        messages.append(at.error[0].value)
    at.text_input(key="sign_in_password").input(PASSWORD)
    at.button[0].click().run()
    assert "viewer" not in at.session_state
    assert "locked" in at.error[0].value
    assert sum("Wrong username or password" in m for m in messages) == 4 and "locked" in messages[4]


# --- fault 8: a session ends when its sign-in is disabled or changed ---------------------------------------
def _signed_in_app(store, username) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["viewer"] = _viewer(store, username)
    at.run()
    at.switch_page("app_pages/records.py")
    at.run()
    assert not at.exception and at.title[0].value == "Records"
    return at


def test_disabling_a_sign_in_ends_its_open_session(env):
    home, store = env
    rep_user = _viewer(store, "rep").user_id
    users = PortalUsers(store)
    users.add("session-rep", PASSWORD, "sales_rep", user_id=rep_user)
    at = _signed_in_app(store, "session-rep")
    users.disable("session-rep")
    at.run()
    assert "viewer" not in at.session_state
    assert at.title[0].value == "CRM portal"
    assert any("disabled" in i.value for i in at.info)


def test_changing_role_or_team_ends_the_open_session(env):
    home, store = env
    users = PortalUsers(store)
    manager = _viewer(store, "manager")
    other_team = _rows(store, "SELECT team_id FROM teams WHERE team_id <> ? ORDER BY team_id LIMIT 1",
                       [manager.team_id])[0][0]
    users.add("session-manager", PASSWORD, "manager", team_id=manager.team_id)
    users.add("session-analyst", PASSWORD, "analyst")
    moved = _signed_in_app(store, "session-manager")
    promoted = _signed_in_app(store, "session-analyst")
    with store.transaction() as conn:  # changed straight in the store, as a script or another tool would
        conn.exec_driver_sql("UPDATE portal_users SET team_id = ? WHERE username = 'session-manager'", (other_team,))
        conn.exec_driver_sql("UPDATE portal_users SET role = 'admin' WHERE username = 'session-analyst'")
    for at in (moved, promoted):
        at.run()
        assert "viewer" not in at.session_state and at.title[0].value == "CRM portal"
    users.add("session-pw", PASSWORD, "analyst")
    at = _signed_in_app(store, "session-pw")
    users.set_password("session-pw", "a-new-password-2")
    at.run()
    assert "viewer" not in at.session_state


def test_session_ends_after_its_lifetime_or_when_idle(env):
    from app import auth

    home, store = env
    PortalUsers(store).add("session-clock", PASSWORD, "analyst")
    viewer = _viewer(store, "session-clock")
    start = viewer.signed_in_at
    assert auth.recheck(store, viewer, last_seen=start, now=start + 60) == (viewer, None)
    idle = auth.recheck(store, viewer, last_seen=start, now=start + auth.SESSION_IDLE_SECONDS + 1)
    assert idle[0] is None and "without activity" in idle[1]
    old = auth.recheck(store, viewer, last_seen=start + auth.SESSION_MAX_SECONDS,
                       now=start + auth.SESSION_MAX_SECONDS + 1)
    assert old[0] is None and "12 hours" in old[1]


def test_team_membership_change_updates_a_managers_scope_at_once(env):
    from app import auth

    home, store = env
    manager = _viewer(store, "manager")
    newcomer = _rows(store, "SELECT user_id FROM users WHERE team_id <> ? AND role = 'sales_rep' ORDER BY user_id "
                            "LIMIT 1", [manager.team_id])[0][0]
    assert newcomer not in manager.owner_ids
    original_team = _rows(store, "SELECT team_id FROM users WHERE user_id = ?", [newcomer])[0][0]
    with store.transaction() as conn:
        conn.exec_driver_sql("UPDATE users SET team_id = ? WHERE user_id = ?", (manager.team_id, newcomer))
    try:
        checked, reason = auth.recheck(store, manager)
        assert reason is None and newcomer in checked.owner_ids
        assert len(checked.owner_ids) == len(manager.owner_ids) + 1
    finally:
        with store.transaction() as conn:
            conn.exec_driver_sql("UPDATE users SET team_id = ? WHERE user_id = ?", (original_team, newcomer))


# --- fault 9: exports neutralise formulas ------------------------------------------------------------------
PAYLOADS = ['=HYPERLINK("https://evil.example","click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1"]


def test_csv_export_neutralises_formulas_like_the_excel_export():
    from openpyxl import load_workbook

    from app.export import to_csv_bytes, to_excel_bytes

    frame = pl.DataFrame({"name": [*PAYLOADS, "-12.5", "Nordwind GmbH"],
                          "amount": [-5.0, 1.5, -2.0, 0.0, 3.0, 4.0, -12.5, 7.0]})
    data = to_csv_bytes(frame)
    first_line = next(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert first_line == ["name", "amount"]
    back = pl.read_csv(data, schema_overrides={"name": pl.String})
    names = back["name"].to_list()
    names[PAYLOADS.index("\r=1+1")] = "'\r=1+1" if b"\"'\r=1+1\"" in data else None  # readers turn CR into LF
    assert names[:len(PAYLOADS)] == ["'" + p for p in PAYLOADS]
    assert names[len(PAYLOADS):] == ["-12.5", "Nordwind GmbH"]  # a number as text and plain text stay as they are
    assert back["amount"].dtype == pl.Float64 and back["amount"].to_list() == frame["amount"].to_list()
    assert b"\n-5.0\n" not in data and b",-5.0\n" in data  # negative numbers stay numbers, unquoted
    sheet = load_workbook(io.BytesIO(to_excel_bytes(frame))).active
    cells = list(sheet.iter_rows(min_row=2))
    assert all(c[0].data_type == "s" for c in cells)
    # one rule for both formats (a workbook, like a CSV reader, hands a CR back as LF)
    assert [c[0].value.replace("\r", "\n") for c in cells] == [n.replace("\r", "\n") for n in names]
    assert [c[1].value for c in cells] == frame["amount"].to_list()
    assert all(c[1].data_type == "n" for c in cells)


# --- also seen: record values reach Markdown as plain text -------------------------------------------------
MARKDOWN_PAYLOAD = ("![x](https://evil.example/p.png) [pay](javascript:alert(1)) <https://evil.example/a> "
                    "www.evil.example :red[alarm]")


def _rendered(markdown_source: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").render(markdown_source)


def _assert_plain(markdown_source: str, expected_text: str) -> None:
    rendered = _rendered(markdown_source)
    assert "<img" not in rendered and "<a " not in rendered, rendered
    # GFM's autolinks need "://" or "www." in the source: escaped, a typed URL stays text
    assert "https://" not in markdown_source and "www." not in markdown_source and ":red[" not in markdown_source
    assert html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip() == expected_text


def test_customer_name_reaches_the_header_as_plain_text(env, monkeypatch):
    from app import queries

    home, store = env
    admin = _viewer(store, "admin")
    key = queries.customers(admin, limit=1)["customer_key"][0]
    real = queries.customer_360

    def hostile(viewer, customer_key):
        profile = real(viewer, customer_key)
        return None if profile is None else {**profile, "customer_name": MARKDOWN_PAYLOAD,
                                             "city": "https://evil.example/city"}

    monkeypatch.setattr(queries, "customer_360", hostile)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["viewer"] = admin
    at.run()
    at.switch_page("app_pages/customer_360.py")
    at.run()
    at.text_input(key="c360_search").input(key).run()
    assert not at.exception, [e.value for e in at.exception]
    _assert_plain(at.header[0].value, MARKDOWN_PAYLOAD)
    caption = at.caption[0].value
    assert "https://" not in caption and "evil\\.example" in caption


def test_audit_trail_shows_a_typed_url_as_text(env):
    from app import edits

    home, store = env
    rep = _viewer(store, "rep")
    account_id = _first(store, INSIDE["accounts"], rep.owner_ids)
    account = store.get("accounts", account_id)
    edits.update_record(rep, store, "accounts", account_id, {"city": "https://evil.example/login"},
                        account["version"])
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["viewer"] = rep
    at.run()
    at.switch_page("app_pages/records.py")
    at.run()
    at.text_input(key="records_search_accounts").input(account_id).run()
    at.selectbox(key="records_pick_accounts").set_value(account_id).run()
    assert not at.exception, [e.value for e in at.exception]
    audit = at.table[-1].value
    cells = [str(v) for v in audit.astype(str).to_numpy().ravel()]
    after = next(c for c in cells if "evil" in c and "city" in c)
    assert "https://" not in after
    rendered = _rendered(after)
    assert "<a " not in rendered and "city=https://evil.example/login" in html.unescape(rendered)


def test_plain_escapes_every_markdown_payload():
    from app.ui import plain

    for payload in (MARKDOWN_PAYLOAD, "# heading", "- item", "1. item", "**bold** _it_", "`code`", "$x^2$",
                    "<b>html</b>", "a\n\n# b", "x@evil.example", "Berger GmbH & Co. KG"):
        source = plain(payload)
        rendered = _rendered(source)
        assert re.sub(r"</?p>", "", rendered).strip().count("<") == 0, (payload, rendered)
        assert html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip() == " ".join(payload.split())


def test_lockout_holds_on_postgresql(postgres_url):
    """The sign-in log and the lockout work the same on a PostgreSQL store (timestamps come back typed)."""
    from pipelines.lib.portal_users import SignInLocked

    store = OperationalStore(postgres_url)
    try:
        store.migrate()
        users = PortalUsers(store)
        users.add("pg-lock", PASSWORD, "analyst")
        for _ in range(4):
            assert users.sign_in("pg-lock", "wrong-password") is None
        with pytest.raises(SignInLocked):
            users.sign_in("pg-lock", "wrong-password")
        with pytest.raises(SignInLocked):
            users.sign_in("pg-lock", PASSWORD)
        assert users.locked_until("pg-lock") is not None
        users.set_password("pg-lock", "another-password-1")
        assert users.sign_in("pg-lock", "another-password-1").username == "pg-lock"
        assert [r["outcome"] for r in users.sign_in_log("pg-lock")] == (
            ["wrong_password"] * 5 + ["locked", "refused_locked", "unlocked", "success"])
    finally:
        store.dispose()


def test_crm_user_unlock_lifts_a_lockout_and_keeps_the_password(env, cli_output):
    """An admin lifts a lockout with `crm user unlock` without resetting the password: the old password
    signs in again, the failure count starts again, open sessions go on (the sign-in's version stays)."""
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.lib.portal_users import MAX_FAILURES, SignInLocked

    home, store = env
    users = PortalUsers(store)
    users.add("unlockme", PASSWORD, "analyst")
    version = users.get("unlockme").version
    for _ in range(MAX_FAILURES - 1):
        assert users.sign_in("unlockme", "wrong-password") is None
    with pytest.raises(SignInLocked):
        users.sign_in("unlockme", "wrong-password")
    with pytest.raises(SignInLocked):
        users.sign_in("unlockme", PASSWORD)

    def unlock(name: str) -> tuple[int, str]:
        code = CliRunner().invoke(app, ["user", "unlock", name, "--home", str(home.root)]).exit_code
        return code, cli_output()

    code, out = unlock("unlockme")
    assert code == 0 and "unlockme unlocked (it was locked until" in out, out
    assert users.locked_until("unlockme") is None
    assert users.get("unlockme").version == version
    # the count starts again: four more failures do not lock, the old password still works
    for _ in range(MAX_FAILURES - 1):
        assert users.sign_in("unlockme", "wrong-password") is None
    assert users.sign_in("unlockme", PASSWORD).username == "unlockme"
    assert [r["outcome"] for r in users.sign_in_log("unlockme")][-3:] == ["wrong_password", "wrong_password",
                                                                         "success"]
    assert _rows(store, "SELECT count(*) FROM audit_log WHERE action = 'unlock' AND record_id = 'unlockme'"
                 )[0][0] == 1

    code, out = unlock("unlockme")
    assert code == 0 and "unlockme was not locked" in out, out
    code, out = unlock("nobody-here")
    assert code == 1 and "'nobody-here' does not exist" in out, out


def test_tables_have_no_export_that_bypasses_neutralise(env):
    """st.dataframe has its own CSV download and clipboard copy, which hand cells to a spreadsheet as they
    are: the portal turns them off, so the neutralising CSV and Excel buttons are the only way out."""
    from streamlit import config

    config.set_option("client.disableDataExport", False)  # what a plain `streamlit run` starts with
    AppTest.from_file(APP, default_timeout=60).run()
    assert config.get_option("client.disableDataExport") is True


def test_excel_export_holds_record_values_with_control_characters():
    """A bell or vertical tab pasted into a record is not something a workbook can hold; the export used to
    fail as a whole (and with it every page showing the table). Such characters become U+FFFD, formulas
    are still neutralised, tabs stay."""
    from openpyxl import load_workbook

    from app.export import to_excel_bytes

    frame = pl.DataFrame({"name\x07": ["bell\x07here", "=HYPERLINK(\"https://evil.example\")\x0b", "a\tb"],
                          "amount": [1.5, -2.0, 3.0]})
    sheet = load_workbook(io.BytesIO(to_excel_bytes(frame))).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows == [["name\ufffd", "amount"], ["bell\ufffdhere", 1.5],
                    ["'=HYPERLINK(\"https://evil.example\")\ufffd", -2.0], ["a\tb", 3.0]]


def test_a_page_run_builds_no_export_file_until_its_button_is_clicked(env, monkeypatch):
    """CSV and Excel files are made when a download button is clicked, not on every page run (a 500-row
    workbook takes about 0.2 s, and a page shows several tables)."""
    from app import export

    home, store = env
    built: list[str] = []
    for name in ("to_csv_bytes", "to_excel_bytes"):
        real = getattr(export, name)
        monkeypatch.setattr(export, name, lambda *a, _real=real, _name=name, **k: built.append(_name) or _real(*a, **k))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["viewer"] = _viewer(store, "admin")
    at.run()
    at.switch_page("app_pages/pipeline_forecast.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.dataframe) >= 2
    assert built == []
