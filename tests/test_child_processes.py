"""Programs the platform starts die with it: a killed `crm run` leaves no dbt holding the warehouse."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.lib.home import REPO_ROOT

CRM = Path(sys.executable).with_name("crm")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")


def _process(pid: int) -> tuple[int, str, list[str]] | None:
    """(parent pid, state, argv) of a live process; None when it is gone (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    if state in ("Z", "X"):
        return None
    return int(ppid), state, [a.decode(errors="replace") for a in argv if a]


def _children(pid: int) -> dict[int, list[str]]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _process(int(entry.name))) and info[0] == pid:
            out[int(entry.name)] = info[2]
    return out


def _wait_gone(pids, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _process(p) is not None]
    return alive


def _kill(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_dbt_build_ends_when_crm_run_is_killed_and_the_warehouse_opens_for_writing(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "CRM_OPERATIONAL_DB_URL"}
    env["CRM_HOME"] = str(home)
    subprocess.run([str(CRM), "generate", "--customers", "200", "--out", str(home)], cwd=REPO_ROOT, env=env,
                   check=True, capture_output=True, timeout=300)
    run = subprocess.Popen([str(CRM), "run", "--home", str(home)], cwd=REPO_ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dbt: dict[int, list[str]] = {}
    try:
        deadline = time.monotonic() + 600
        while not dbt and time.monotonic() < deadline:
            assert run.poll() is None, "crm run ended before it started dbt build"
            dbt = {pid: argv for pid, argv in _children(run.pid).items()
                   if "build" in argv and any(Path(a).name == "dbt" for a in argv)}
            time.sleep(0.2)
        assert dbt, "crm run did not start dbt build within 10 minutes"
        time.sleep(2.0)  # dbt is under way (it has opened the warehouse)
        assert all(_process(pid) is not None for pid in dbt), "dbt ended before crm run could be killed"
        run.kill()
        run.wait(10)
        left = _wait_gone(dbt, 5.0)
        assert left == [], f"dbt kept running after crm run was killed: {[dbt[p] for p in left]}"
        import duckdb

        con = duckdb.connect(str(home / "warehouse" / "warehouse.duckdb"))  # for writing: nobody holds it
        try:
            con.execute("CREATE TABLE main.after_kill AS SELECT 1 AS x")
            assert con.execute("SELECT count(*) FROM raw.accounts").fetchall()[0][0] > 0
        finally:
            con.close()
    finally:
        if run.poll() is None:
            run.kill()
        _kill(dbt)


def test_launcher_runs_the_program_in_place_and_ties_it_to_its_parent(tmp_path):
    """The launcher execs the program itself (same pid, same arguments); killing the process that started
    it kills the program within moments, for a program that would otherwise sleep a minute."""
    program = tmp_path / "sleeper"
    program.write_text("#!/bin/sh\necho \"$$ $*\"\nexec sleep 60\n", encoding="utf-8")
    program.chmod(0o755)
    starter = (
        "import subprocess, sys\n"
        "from pipelines.lib.child_processes import parent_bound_executable\n"
        f"child = subprocess.Popen([parent_bound_executable({str(program)!r}), 'one', 'two words'],"
        " stdout=subprocess.PIPE, text=True)\n"
        "print(child.pid, child.stdout.readline().strip(), flush=True)\n"
        "import time; time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", starter], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    child_pid = None
    try:
        line = parent.stdout.readline().split(" ", 2)
        child_pid = int(line[0])
        assert int(line[1]) == child_pid and line[2].strip() == "one two words"
        deadline = time.monotonic() + 5  # the shell replaces itself with sleep right after its echo
        while _process(child_pid)[2][:2] != ["sleep", "60"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _process(child_pid)[2][:2] == ["sleep", "60"]
        parent.kill()
        parent.wait(10)
        assert _wait_gone([child_pid], 5.0) == []
    finally:
        if parent.poll() is None:
            parent.kill()
        if child_pid:
            _kill([child_pid])


def test_command_of_our_own_subprocess_call_is_tied_to_its_parent():
    starter = ("import subprocess, time\n"
               "from pipelines.lib.child_processes import parent_bound_command\n"
               "child = subprocess.Popen(parent_bound_command(['sleep', '60']))\n"
               "print(child.pid, flush=True)\n"
               "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", starter], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    child_pid = None
    try:
        child_pid = int(parent.stdout.readline())
        assert _process(child_pid) is not None
        parent.kill()
        parent.wait(10)
        assert _wait_gone([child_pid], 5.0) == []
    finally:
        if parent.poll() is None:
            parent.kill()
        if child_pid:
            _kill([child_pid])


def test_a_child_whose_parent_died_before_it_was_tied_exits_at_once(tmp_path):
    """A launcher written for a process that is gone (it died between starting the child and the child's
    request for the signal) does not run the program."""
    from pipelines.lib import child_processes

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    script = tmp_path / "echo"
    script.write_text(child_processes._LAUNCHER.format(
        python=sys.executable, parent=int(gone.stdout), target="/bin/echo",
        option=child_processes.PR_SET_PDEATHSIG), encoding="utf-8")
    script.chmod(0o700)
    done = subprocess.run([str(script), "should not print"], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (137, "")


def _launched_program(argv: list[str]) -> str | None:
    """The program a parent-bound launcher at argv[0] execs, or None when argv[0] is no such launcher."""
    from pipelines.lib import child_processes

    if argv[0] not in child_processes._launchers.values():
        return None
    source = Path(argv[0]).read_text(encoding="utf-8")
    assert f"prctl({child_processes.PR_SET_PDEATHSIG}, signal.SIGKILL" in source
    return source.rsplit("os.execv(", 1)[1].split(",", 1)[0].strip("'\"")


def test_crm_ui_and_crm_portal_start_their_foreground_program_tied_to_the_cli(tmp_path, monkeypatch):
    """`crm ui` (dagster dev) and `crm portal` (streamlit) run in the foreground; a SIGKILLed crm must not
    leave them serving, so both start through the launcher, with their arguments unchanged."""
    from rich.console import Console

    from pipelines import cli
    from pipelines.lib import run_cli
    from pipelines.lib.home import CrmHome

    monkeypatch.setenv("CRM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    started: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda argv, **kw: started.append(list(argv)) or 0)
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: started.append(list(argv)))
    home = CrmHome(tmp_path / "home")

    assert run_cli.start_dagster_ui(home, 3999, Console(file=open(os.devnull, "w"))) == 0  # noqa: SIM115
    cli._serve_portal(home, 8599, "127.0.0.1")

    dagster, portal = started
    assert Path(_launched_program(dagster)).name == "dagster"
    assert dagster[1:] == ["dev", "-m", "pipelines.definitions", "-h", "127.0.0.1", "-p", "3999"]
    assert _launched_program(portal) == os.path.abspath(sys.executable)
    assert portal[1:4] == ["-m", "streamlit", "run"] and portal[portal.index("--server.port") + 1] == "8599"
