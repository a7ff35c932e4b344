"""Erasure finds the person's quarantined rows and survives being killed: a rerun finishes it and then not
one byte of their name, email or phone is left anywhere under the home.

One generated home (300 customers, the full pipeline once) in which the webshop row of a customer known
under two ids is malformed, so it is quarantined and identity resolution never links it to them. Each test
erases that customer on a copy.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

import pipelines.lib.erasure as erasure
from pipelines.lib.erasure import erase_customer, subject_hash
from pipelines.lib.home import CrmHome
from pipelines.lib.runner import run_job

CUSTOMERS = 300
SEED = 7
KILLS = 10
KILL_SEED = 20261201
CRM = str(Path(sys.executable).with_name("crm"))


def _referenced_elsewhere(home: CrmHome, record_id: str) -> bool:
    """Whether any landing file other than the accounts export names the id (the faults generator only
    corrupts rows nothing refers to, so a quarantined account leaves no orders dangling)."""
    for path in home.landing.rglob("*"):
        if path.is_file() and path.parent.name != "accounts":
            data = path.read_bytes() if path.suffix != ".parquet" else pl.read_parquet(path).write_csv().encode()
            if record_id.encode() in data:
                return True
    return False


@pytest.fixture(scope="module")
def source_home(tmp_path_factory):
    """(home, CRM account id, webshop id, needles): the pipeline has run once; the webshop row is quarantined."""
    from pipelines.generate.run import generate_home

    home = CrmHome(tmp_path_factory.mktemp("erasure_faults") / "home").ensure()
    generate_home(home, customers=CUSTOMERS, seed=SEED, dirty=0.0, years=3.0, console=None)
    truth = pl.read_parquet(home.ground_truth / "customers.parquet").filter(
        pl.col("webshop_account_id").is_not_null())
    twin = next(r for r in truth.iter_rows(named=True) if not _referenced_elsewhere(home, r["webshop_account_id"]))
    account_id, webshop_id = twin["account_id"], twin["webshop_account_id"]
    export = home.landing / "accounts" / "webshop_accounts.csv"
    lines = export.read_text(encoding="utf-8").splitlines(keepends=True)
    mine = [i for i, line in enumerate(lines) if line.startswith(f"{webshop_id},")]
    assert len(mine) == 1
    webshop_row = lines[mine[0]].rstrip("\n").split(",")
    lines[mine[0]] = lines[mine[0]].rstrip("\n") + ",one field too many\n"  # malformed: quarantined whole
    export.write_text("".join(lines), encoding="utf-8")
    shutil.rmtree(home.ground_truth)  # the generator's answer key is no part of an installation

    outcome = run_job(home)
    assert outcome.success, outcome
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        quarantined = con.execute("select reason from raw._quarantine where record_id = ?", [webshop_id]).fetchall()
        linked = con.execute("select count(*) from intermediate.int_customers_resolved where account_id = ?",
                             [webshop_id]).fetchall()[0][0]
    finally:
        con.close()
    assert quarantined == [("malformed_row",)] and linked == 0

    store = sqlite3.connect(home.operational_db)
    rows = store.execute("select account_name, email, phone from accounts where account_id = ?",
                         [account_id]).fetchall()
    rows += store.execute("select first_name || ' ' || last_name, email, phone from contacts where account_id = ?",
                          [account_id]).fetchall()
    store.close()
    rows.append((webshop_row[1], webshop_row[5], webshop_row[6]))  # name, email, phone as the webshop spells them
    needles = sorted({v for row in rows for v in row if v and len(v) >= 6})
    assert len(needles) >= 3 and _leftovers(home, needles), "the person must be in the home before erasure"
    return home, account_id, webshop_id, needles


def _copy(source_home, target: Path) -> CrmHome:
    shutil.copytree(source_home[0].root, target)
    return CrmHome(target)


def _byte_forms(needle: str) -> set[bytes]:
    """The needle as bytes in UTF-8, UTF-16 (both byte orders) and Latin-1, in any letter case: ASCII-lowered,
    so that searching the ASCII-lowered file finds every case variant (non-ASCII letters in both cases)."""
    forms = set()
    for text in {needle, needle.lower(), needle.upper(), needle.title()}:
        for encoding in ("utf-8", "utf-16-le", "utf-16-be", "latin-1"):
            with contextlib.suppress(UnicodeEncodeError):
                forms.add(text.encode(encoding).lower())
    return forms


def _leftovers(home: CrmHome, needles: list[str]) -> list[str]:
    """Every file under the home (databases, their WALs, landing files, snapshots, logs, the journal) that
    still holds a needle as bytes, plus DuckDB files whose live rows hold one (DuckDB may store strings
    compressed, so their bytes alone prove nothing)."""
    forms = {n: _byte_forms(n) for n in needles}
    hits = []
    for path in sorted(home.root.rglob("*")):
        if not path.is_file():
            continue
        lowered = path.read_bytes().lower()
        hits += [f"{path.relative_to(home.root)} (bytes): {n}" for n, fs in forms.items()
                 if any(f in lowered for f in fs)]
        if path.suffix == ".duckdb":
            hits += [f"{path.relative_to(home.root)} {where}" for where in _duckdb_hits(path, needles)]
    return hits


def _duckdb_hits(path: Path, needles: list[str]) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns: dict[tuple[str, str], list[str]] = {}
        for schema, table, column in con.execute(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where data_type = 'VARCHAR' and table_catalog = current_database()").fetchall():
            columns.setdefault((schema, table), []).append(column)
        hits = []
        lowered = [n.lower() for n in needles]
        for (schema, table), names in columns.items():
            row = " || chr(31) || ".join(f'coalesce(lower("{c}"), \'\')' for c in names)
            tests = ", ".join(f"count(*) filter (where contains({row}, ?))" for _ in lowered)
            counts = con.execute(f'select {tests} from "{schema}"."{table}"', lowered).fetchall()[0]
            hits += [f"{schema}.{table}: {n}" for n, k in zip(needles, counts, strict=True) if k]
        return hits
    finally:
        con.close()


def _journal(home: CrmHome, account_id: str) -> Path:
    return home.root / "erasure" / f"{subject_hash('accounts', account_id)}.json"


def test_erasure_misses_a_quarantined_duplicate(source_home, tmp_path):
    _, account_id, webshop_id, needles = source_home
    home = _copy(source_home, tmp_path / "home")

    report = erase_customer(home, account_id)

    assert report.records["accounts"] == 2  # the CRM account and the quarantined webshop row, by email
    assert _leftovers(home, needles) == []
    export = (home.landing / "accounts" / "webshop_accounts.csv").read_text(encoding="utf-8")
    assert webshop_id not in export and export.count("\n") >= 2  # the other webshop rows stay
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert con.execute("select count(*) from raw._quarantine where record_id = ?", [webshop_id]).fetchall() \
            == [(0,)]
    finally:
        con.close()
    # the id is tombstoned too: the webshop sending the row again (now well-formed) does not bring it back
    store = sqlite3.connect(home.operational_db)
    assert store.execute("select count(*) from erased_subjects where subject_hash = ?",
                         [subject_hash("accounts", webshop_id)]).fetchall() == [(1,)]
    store.close()


def test_an_interrupted_erasure_cannot_be_completed(source_home, tmp_path, monkeypatch):
    _, account_id, _, needles = source_home
    home = _copy(source_home, tmp_path / "home")

    def killed(_path):
        raise KeyboardInterrupt("killed while rewriting the warehouse")

    with monkeypatch.context() as patch:
        patch.setattr(erasure, "_rewrite_warehouse", killed)
        with pytest.raises(KeyboardInterrupt):
            erase_customer(home, account_id)
    assert _leftovers(home, needles), "the interrupted erasure left the person behind"

    report = erase_customer(home, account_id)  # the rerun finishes it instead of answering "No customer"

    assert report.resumed and report.snapshot
    assert _leftovers(home, needles) == []
    done = json.loads(_journal(home, account_id).read_text(encoding="utf-8"))
    assert done["status"] == "done" and "ids" not in done and "identifier_hashes" not in done
    again = erase_customer(home, account_id)
    assert again.already_erased and again.records == report.records


def test_erasure_stopped_after_each_step_is_finished_by_reruns(source_home, tmp_path):
    _, account_id, _, needles = source_home
    home = _copy(source_home, tmp_path / "home")
    stops = ["plan", *erasure.STEPS[:-1]]
    seen = []

    for stop in stops:
        def hook(step, stop=stop):
            seen.append(step)
            if step == stop:
                raise KeyboardInterrupt(f"stopped after {step}")

        with pytest.raises(KeyboardInterrupt):
            erase_customer(home, account_id, actor="dpo@example.test", after_step=hook)
        journal = json.loads(_journal(home, account_id).read_text(encoding="utf-8"))
        assert journal["status"] == "in_progress" and len(journal["steps"]) == stops.index(stop)
    report = erase_customer(home, account_id)

    assert seen == stops  # each rerun carried on with the step after the one it was stopped at
    assert report.resumed and _leftovers(home, needles) == []
    con = sqlite3.connect(home.operational_db)
    erase_rows = con.execute("select actor from audit_log where action = 'erase'").fetchall()
    con.close()
    assert erase_rows == [("dpo@example.test",)]  # one audit entry however often it was resumed


def _erase_cli(home: CrmHome, account_id: str) -> subprocess.Popen:
    return subprocess.Popen([CRM, "erase", "--customer", account_id, "--home", str(home.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_erase_killed_at_ten_random_points_then_rerun_leaves_no_byte_of_the_person(source_home, tmp_path):
    _, account_id, _, needles = source_home
    baseline = _copy(source_home, tmp_path / "baseline")
    started = time.monotonic()
    proc = _erase_cli(baseline, account_id)
    while not _journal(baseline, account_id).exists() and proc.poll() is None:
        time.sleep(0.005)
    planned = time.monotonic()
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    total, work = time.monotonic() - started, time.monotonic() - planned

    rng = random.Random(KILL_SEED)
    mid_way = 0
    for attempt in range(KILLS):
        anywhere = attempt % 5 == 0  # from start-up on, planning included; the others once the plan is written
        delay = rng.uniform(0.0, total if anywhere else work)
        for _ in range(4):  # a kill that came after the end is tried again, sooner, on a fresh copy
            home = _copy(source_home, tmp_path / f"kill{attempt}")
            proc = _erase_cli(home, account_id)
            if not anywhere:
                while not _journal(home, account_id).exists() and proc.poll() is None:
                    time.sleep(0.002)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
            journal = _journal(home, account_id)
            stopped = proc.returncode == -signal.SIGKILL and journal.exists() and \
                json.loads(journal.read_text(encoding="utf-8"))["status"] == "in_progress"
            if stopped or anywhere:
                break
            shutil.rmtree(home.root)
            delay /= 2
        mid_way += stopped

        rerun = _erase_cli(home, account_id)
        out = rerun.communicate(timeout=300)[0]
        assert rerun.returncode == 0, f"attempt {attempt}: {out}"
        assert "No customer" not in out
        assert _leftovers(home, needles) == [], f"attempt {attempt}"
        shutil.rmtree(home.root)
    assert mid_way >= KILLS - 2, f"only {mid_way} of {KILLS} kills landed mid-erasure"

    again = _erase_cli(baseline, account_id)
    out = again.communicate(timeout=120)[0]
    assert again.returncode == 0 and "already erased" in out, out


def test_erasure_after_restoring_an_older_backup_erases_again(source_home, tmp_path):
    from pipelines.lib.backup import backup, restore

    _, account_id, _, needles = source_home
    home = _copy(source_home, tmp_path / "home")
    backup(home, tmp_path / "backup")  # taken before the erasure: it still holds the person
    erase_customer(home, account_id)
    restore(tmp_path / "backup", home, force=True)
    assert _leftovers(home, needles), "the restore brought the person back"

    report = erase_customer(home, account_id)  # not "already erased": they are back, so they go again

    assert not report.already_erased and report.records["accounts"] >= 1
    assert _leftovers(home, needles) == []
    assert erase_customer(home, account_id).already_erased


def test_erasure_meeting_a_running_pipeline_stops_clearly_and_a_rerun_finishes(source_home, tmp_path, monkeypatch):
    from pipelines.lib.erasure import ErasureError

    _, account_id, _, needles = source_home
    home = _copy(source_home, tmp_path / "home")
    monkeypatch.setattr(erasure, "WAREHOUSE_WAIT_SECONDS", 0.5)
    holder: list[subprocess.Popen] = []

    def pipeline_starts(step):  # another process takes the warehouse, as a pipeline run does
        if step == "store":
            holder.append(subprocess.Popen(
                [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                 "print('holding', flush=True); time.sleep(120)", str(home.warehouse)],
                stdout=subprocess.PIPE, text=True))
            assert holder[0].stdout.readline().strip() == "holding"

    try:
        with pytest.raises(ErasureError, match=r"warehouse is busy .* run `crm erase --customer"):
            erase_customer(home, account_id, after_step=pipeline_starts)
    finally:
        for proc in holder:
            proc.kill()
            proc.wait()
    steps = json.loads(_journal(home, account_id).read_text(encoding="utf-8"))["steps"]
    assert sorted(steps) == ["store", "tombstones"]

    report = erase_customer(home, account_id)

    assert report.resumed and _leftovers(home, needles) == []
