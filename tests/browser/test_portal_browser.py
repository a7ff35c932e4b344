"""The portal in a real browser (Playwright driving Debian's chromium) against a portal served on a free port."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.serve import free_port, start_portal, stop_portal, wait_until_up
from pipelines.lib.store import OperationalStore

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
#: page file -> its title in the navigation (a URL jump would start a new, signed-out session)
PAGES = {"overview": "Overview", "funnel": "Funnel", "pipeline_forecast": "Pipeline & forecast",
         "segments": "Segments", "customer_360": "Customer 360", "churn_worklist": "Churn risk",
         "campaigns": "Campaigns", "service": "Service & SLA", "reps": "Reps & workload", "records": "Records",
         "leads": "Lead assignment", "data_quality": "Data quality"}


@pytest.fixture(scope="module")
def portal(portal_home):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium).")
    port = free_port()
    process = start_portal(portal_home, port, log=portal_home.logs / "portal-browser-test.log")
    try:
        wait_until_up(port, process=process)
        yield f"http://127.0.0.1:{port}", portal_home
    finally:
        stop_portal(process)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _sign_in(browser, url: str, username: str, height: int = 1000):
    context = browser.new_context(viewport={"width": 1400, "height": height})
    page = context.new_page()
    page.goto(url)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill("portal-test-pw")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {username}").wait_for(timeout=30_000)
    return context, page


def _open(page, url: str, name: str) -> None:
    page.locator("[data-testid='stSidebarNav']").get_by_text(PAGES[name], exact=True).click()
    page.wait_for_timeout(1500)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=30_000)


def _records(page, url: str, entity_label: str) -> None:
    _open(page, url, "records")
    if entity_label != "Accounts":  # the default record type
        page.locator("[data-testid='stButtonGroup']").get_by_text(entity_label, exact=True).click()
    page.wait_for_timeout(800)


def _search(page, label: str, text: str) -> None:
    box = page.get_by_role("textbox", name=label)
    box.fill(text)
    box.press("Enter")
    page.wait_for_timeout(1200)


def _pick(page, option_text: str) -> None:
    page.locator("[data-testid='stSelectbox']").filter(has_text="Open").click()
    page.get_by_role("option", name=re.compile(re.escape(option_text))).first.click()
    page.wait_for_timeout(1200)


def test_screenshot_every_page_as_admin(portal, browser):
    url, _ = portal
    SHOTS.mkdir(parents=True, exist_ok=True)
    # the page scrolls inside Streamlit's own container, so a tall window is what captures a whole page
    context, page = _sign_in(browser, url, "admin", height=4000)
    for name in PAGES:
        _open(page, url, name)
        errors = page.locator("[data-testid='stException']")
        assert errors.count() == 0, f"{name}: {' | '.join(e.inner_text()[:800] for e in errors.all())}"
        assert page.locator("h1").first.is_visible(), name
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    context.close()


def test_rep_sees_only_own_accounts(portal, browser):
    url, home = portal
    store = OperationalStore(home.operational_db_url)
    with store.engine.connect() as conn:
        rep_id = conn.exec_driver_sql("SELECT user_id FROM portal_users WHERE username = 'rep'").scalar()
        own = conn.exec_driver_sql("SELECT account_id FROM accounts WHERE owner_user_id = ? LIMIT 1", (rep_id,)).scalar()
        other = conn.exec_driver_sql("SELECT account_id FROM accounts WHERE owner_user_id <> ? LIMIT 1",
                                     (rep_id,)).scalar()
    context, page = _sign_in(browser, url, "rep")
    _records(page, url, "Accounts")
    _search(page, "Search accounts", other)
    assert page.get_by_text("0 account(s) found").is_visible()
    _search(page, "Search accounts", own)
    assert page.get_by_text("1 account(s) found").is_visible()
    page.screenshot(path=str(SHOTS / "records_rep.png"), full_page=True)
    context.close()


def test_edit_deal_audit_and_stale_edit_refused(portal, browser):
    url, home = portal
    store = OperationalStore(home.operational_db_url)
    with store.engine.connect() as conn:
        rep_id = conn.exec_driver_sql("SELECT user_id FROM portal_users WHERE username = 'rep'").scalar()
        deal = conn.exec_driver_sql("SELECT opportunity_id FROM opportunities WHERE owner_user_id = ? "
                                    "AND stage NOT IN ('closed_won', 'closed_lost') LIMIT 1", (rep_id,)).scalar()
    first, page_a = _sign_in(browser, url, "rep")
    second, page_b = _sign_in(browser, url, "manager")
    for page in (page_a, page_b):
        _records(page, url, "Deals")
        _search(page, "Search deals", deal)
        _pick(page, deal)
    page_b.get_by_role("textbox", name="Opportunity name *").fill("Saved first by manager")
    page_b.get_by_role("button", name="Save").click()
    page_b.get_by_text("Saved deal").wait_for(timeout=20_000)
    # the audit table renders after the save message: wait for it rather than counting at once
    playwright_api.expect(page_b.locator("[data-testid='stTable']").get_by_text("Saved first by manager").first).to_be_visible(
        timeout=20_000)
    audit = [a for a in store.audit_rows("opportunities", deal) if a["action"] == "update"]
    assert audit and "Saved first by manager" in audit[-1]["after_json"]
    page_a.get_by_role("textbox", name="Opportunity name *").fill("Stale edit by rep")
    page_a.get_by_role("button", name="Save").click()
    page_a.get_by_text("changed by someone else").wait_for(timeout=20_000)
    assert store.get("opportunities", deal)["opportunity_name"] == "Saved first by manager"
    page_a.screenshot(path=str(SHOTS / "stale_edit.png"), full_page=True)
    first.close()
    second.close()


def test_hostile_names_stored_and_shown_as_text(portal, browser):
    url, home = portal
    names = ["'; drop table accounts; --", "<img src=x onerror=alert(1)>"]
    context, page = _sign_in(browser, url, "rep")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for name in names:
        _records(page, url, "Accounts")
        page.get_by_role("textbox", name="Account name *").fill(name)
        page.get_by_role("button", name="Create").click()
        page.get_by_text("created.").wait_for(timeout=20_000)
    store = OperationalStore(home.operational_db_url)
    with store.engine.connect() as conn:
        stored = {r[0] for r in conn.exec_driver_sql("SELECT account_name FROM accounts")}
    assert set(names) <= stored
    _records(page, url, "Accounts")
    _search(page, "Search accounts", "onerror")
    _pick(page, "onerror")
    assert page.get_by_text("account_name: <img src=x onerror=alert(1)>").is_visible()
    assert page.locator("img[src='x']").count() == 0 and not dialogs
    context.close()


def test_analyst_sees_masked_personal_data(portal, browser):
    url, home = portal
    store = OperationalStore(home.operational_db_url)
    with store.engine.connect() as conn:
        account, name = conn.exec_driver_sql("SELECT account_id, account_name FROM accounts "
                                             "WHERE account_name NOT LIKE '%<%' ORDER BY account_id LIMIT 1").one()
    context, page = _sign_in(browser, url, "analyst")
    _records(page, url, "Accounts")
    _search(page, "Search accounts", account)
    _pick(page, account)
    assert page.get_by_text(f"account_name: {name[0]}•••").is_visible()
    assert page.get_by_text(name, exact=True).count() == 0
    page.screenshot(path=str(SHOTS / "analyst_masked.png"), full_page=True)
    context.close()
