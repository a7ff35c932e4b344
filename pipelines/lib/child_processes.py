"""Programs the platform starts end when the process that started them dies, even by SIGKILL.

A `dbt build` that outlived a killed `crm run` kept running and held the warehouse's write lock, so the
next run could not open it. On Linux the kernel sends a chosen signal to a process when its parent dies
(`prctl(PR_SET_PDEATHSIG)`); the child has to ask for it itself, before it runs the program, and the
request survives `execve`. Two ways to ask, one mechanism:

- `parent_bound_executable(path)` is for libraries that start a program themselves and take only its
  path (dagster-dbt's `DbtCliResource` has no preexec hook): it returns a small launcher, written once per
  process, that asks for the signal and then `exec`s the program in place, so the program itself (same
  pid, same arguments) is killed with its parent;
- `parent_bound_command(argv)` is the same for the `subprocess` calls the platform makes itself. (Not a
  `preexec_fn`: Python documents those as unsafe in a process with threads, which Dagster and Streamlit
  processes always have.)

If the parent died before the request was made, the child sees a different parent and exits at once.
The kernel ties the signal to the *thread* that started the child: start long-lived children from a
thread that lives as long as they should (the in-process Dagster executor runs steps, and so dbt, on the
calling thread). Elsewhere than Linux there is no such request; the launcher then just runs the program.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1

#: The launcher `parent_bound_executable` writes (stdlib only, isolated mode: nothing of the platform loads).
_LAUNCHER = '''#!{python} -I
# Written by pipelines.lib.child_processes for process {parent}: runs {target} so that it is killed when
# that process dies, even by SIGKILL (prctl PR_SET_PDEATHSIG survives the exec below).
import ctypes, os, signal, sys
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl({option}, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != {parent}:
        try:
            os.kill({parent}, 0)
        except ProcessLookupError:  # the parent died before the request: do not run on without it
            sys.exit(128 + signal.SIGKILL)
os.execv({target!r}, [{target!r}, *sys.argv[1:]])
'''

_launchers: dict[tuple[int, str], str] = {}


def parent_bound_executable(target: str) -> str:
    """Path of a launcher that runs `target` (an executable's path) tied to this process; see module doc.

    One launcher per process and target, in a private temporary folder removed when the process exits."""
    key = (os.getpid(), target)
    if key not in _launchers:
        folder = Path(tempfile.mkdtemp(prefix="crm-launch-"))  # mode 0700, a fresh name: nobody else's file
        atexit.register(_remove_if_mine, folder, os.getpid())
        launcher = folder / Path(target).name
        launcher.write_text(_LAUNCHER.format(python=sys.executable, parent=os.getpid(), target=target,
                                             option=PR_SET_PDEATHSIG), encoding="utf-8")
        launcher.chmod(0o700)
        _launchers[key] = str(launcher)
    return _launchers[key]


def parent_bound_command(argv: Sequence[str]) -> list[str]:
    """`argv` with its program replaced by a launcher that ties it to this process (see module doc)."""
    program = shutil.which(argv[0])
    if program is None:
        raise FileNotFoundError(f"{argv[0]} was not found on PATH; install it or give its full path.")
    return [parent_bound_executable(os.path.abspath(program)), *argv[1:]]


def _remove_if_mine(folder: Path, creator: int) -> None:
    if os.getpid() == creator:  # a forked child inherits the handler, not the folder
        shutil.rmtree(folder, ignore_errors=True)
