"""Start the portal: the streamlit command line for a home, a free port, and waiting until it answers.

Used by `crm portal`, `crm up` and the browser tests, so all three serve the app the same way.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipelines.lib.child_processes import parent_bound_command
from pipelines.lib.home import CrmHome

APP = Path(__file__).with_name("streamlit_app.py")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def portal_command(port: int, address: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
            "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal"]


def portal_env(home: CrmHome) -> dict[str, str]:
    env = dict(os.environ)
    env["CRM_HOME"] = str(home.root)
    return env


def start_portal(home: CrmHome, port: int, address: str = "127.0.0.1", log: Path | None = None) -> subprocess.Popen:
    """Start the portal in the background; the caller stops it (`stop_portal`), and it ends with the caller
    even when that is killed (pipelines.lib.child_processes)."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child process
    return subprocess.Popen(parent_bound_command(portal_command(port, address)), env=portal_env(home), stdout=out,
                            stderr=subprocess.STDOUT, cwd=str(APP.parent.parent), start_new_session=True)


def wait_until_up(port: int, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/_stcore/health"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"The portal exited with code {process.returncode} before it answered on port {port}.")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own local URL
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"The portal did not answer on {url} within {timeout:.0f} s.")


def stop_portal(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
