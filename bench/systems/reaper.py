"""Every process the harness starts is ended in one place, whatever stops the harness.

A run stopped by Ctrl-C cleaned up; one stopped by SIGTERM (``timeout``, a CI cancel, ``kill``) left
the uvicorn server answering /health a minute later (it runs in its own session), or two Ray agents
and Ray's temp folder: Python's default SIGTERM ends a process without running a ``finally:``. No one
mechanism covers every way a run stops, so there are three, each for what the others miss:

* **In the process that starts things** (the papermill kernel running a pattern, or a test): what it
  starts is :meth:`Reaper.track`-ed until stopped. The first ``track`` installs a SIGTERM handler that
  raises :class:`Stopped` (a ``KeyboardInterrupt``, the path Ctrl-C already takes) so the pattern's
  ``finally:`` blocks stop the server and Ray, then ends the process once nothing is tracked (bounded);
  ``atexit`` stops whatever an exception left tracked.
* **A server dies with its parent**, even on SIGKILL: on Linux it is launched through a one-line
  ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` shim that then execs it (same pid). Only from the main thread:
  the kernel sends that signal when the parent *thread* ends, and a fault restarts a server from a
  timer thread that ends a moment later.
* **The ``bench`` command** (:func:`supervise`) turns SIGTERM/SIGHUP into :class:`Stopped`, is a child
  subreaper (an orphan — a server whose kernel was killed, Ray's agents after their raylet died — is
  re-parented to it, not to init), and before it exits asks its children to stop, then ends every
  descendant left and removes the scratch folder it exported (Ray's temp dirs are made inside it).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import psutil

#: Linux prctl options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

#: The ``bench`` command's scratch folder, inherited by the kernels it starts; Ray's temp dirs go in it.
SCRATCH_ENV = "BENCH_SCRATCH_DIR"

#: How long a stopped process waits for its ``finally:`` blocks to stop what it started: a server stops
#: in ~1 s, ``ray.shutdown`` in 1–5 s on the 2-core VM; beyond this the process ends anyway.
STOP_BOUND_S = 20.0

#: How long a SIGTERMed descendant gets before SIGKILL in the final sweep of ``bench``.
KILL_GRACE_S = 5.0

# Run in the child before the server's interpreter: set the death signal, refuse to start if the
# parent has already gone (the signal would never come), then exec the real command (same pid).
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class Stopped(KeyboardInterrupt):
    """The harness was asked to stop by a signal; unwinds like Ctrl-C so every ``finally:`` runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _prctl(option: int, arg: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def dying_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` wrapped so that the process gets SIGTERM when this one dies (Linux, main thread only)."""
    if not sys.platform.startswith("linux") or not _on_main_thread():
        return cmd
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd]


def scratch_dir() -> str:
    """Where a run makes its temp folders: the ``bench`` command's scratch folder, else /tmp."""
    path = os.environ.get(SCRATCH_ENV, "")
    return path if path and os.path.isdir(path) else "/tmp"


class Reaper:
    """What this process has started and not yet stopped, each with the callable that stops it.

    One per process (:data:`REAPER`): signal handlers and ``atexit`` are per process, so is this list.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stops: dict[int, tuple[str, Callable[[], None]]] = {}
        self._next = 0
        self._installed = False
        self._handles_sigterm = False
        self._stopping = False

    def track(self, name: str, stop: Callable[[], None]) -> int:
        """Remember ``stop`` (idempotent, safe to call on a half-started thing) until :meth:`untrack`."""
        with self._lock:
            self._next += 1
            self._stops[self._next] = (name, stop)
            token = self._next
        self._install()
        return token

    def untrack(self, token: int) -> None:
        with self._lock:
            self._stops.pop(token, None)

    def tracked(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self._stops.values()]

    def stop_all(self) -> None:
        """Stop everything still tracked, newest first; a failing stop does not keep the rest running."""
        while True:
            with self._lock:
                if not self._stops:
                    return
                token = max(self._stops)
                _, stop = self._stops.pop(token)
            with contextlib.suppress(Exception):
                stop()

    def _install(self) -> None:
        if not self._installed:
            self._installed = True
            atexit.register(self.stop_all)
        # Only from the main thread (Python's rule), and only where nothing else handles SIGTERM (the
        # ``bench`` command has its own, see supervise()).
        if not self._handles_sigterm and _on_main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, self._on_sigterm)
            self._handles_sigterm = True

    def reclaim_sigterm(self) -> None:
        """Put this handler back after a library replaced it: ``ray.init`` installs one that calls
        ``sys.exit`` and leaves a kernel that caught the SystemExit idle instead of ending it."""
        if self._handles_sigterm and _on_main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame) -> None:
        if not self.tracked():
            os._exit(128 + signum)  # nothing to stop: what the default action would do
        if self._stopping:
            return  # a second signal must not interrupt the stops the first one started
        self._stopping = True
        threading.Thread(target=self._exit_when_stopped, args=(signum,), daemon=True, name="reaper").start()
        if sys.exc_info()[1] is None:  # not already unwinding (after Ctrl-C, an error): start to
            raise Stopped(signum)

    def _exit_when_stopped(self, signum: int) -> None:
        # A kernel that caught Stopped in a cell would keep running (idle, with nothing to stop): end it
        # once the finally: blocks have stopped what was tracked, or the bound has passed.
        deadline = time.monotonic() + STOP_BOUND_S
        while self.tracked() and time.monotonic() < deadline:
            time.sleep(0.05)
        os._exit(128 + signum)


#: The process's one registry (see :class:`Reaper`).
REAPER = Reaper()


def end_descendants(grace_s: float = STOP_BOUND_S) -> list[int]:
    """SIGTERM this process's children and wait (bounded) for them to stop what they started, then
    SIGTERM, and after :data:`KILL_GRACE_S` SIGKILL, every descendant left. Returns the pids ended."""
    me = psutil.Process()
    ended: list[int] = []
    children = me.children(recursive=False)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    psutil.wait_procs(children, timeout=grace_s)
    rest = me.children(recursive=True)
    for proc in rest:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
            ended.append(proc.pid)
    _, alive = psutil.wait_procs(rest, timeout=KILL_GRACE_S)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=KILL_GRACE_S)
    # Orphans re-parented to this subreaper are its children now: reap the zombies.
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    return ended


def _raise_stopped(signum: int, frame) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def supervise() -> Iterator[str]:
    """For the ``bench`` command's whole life: SIGTERM/SIGHUP stop it like Ctrl-C; it adopts orphans
    (subreaper); on the way out every descendant is ended and the scratch folder removed. Yields
    the scratch folder (exported as :data:`SCRATCH_ENV`)."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    scratch = tempfile.mkdtemp(prefix="bench-", dir="/tmp")
    previous_env = os.environ.get(SCRATCH_ENV)
    os.environ[SCRATCH_ENV] = scratch
    signums = (signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, _raise_stopped) for s in signums}
    try:
        yield scratch
    finally:
        for s in signums:  # a second signal must not cut the sweep short
            signal.signal(s, signal.SIG_IGN)
        try:
            end_descendants()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if previous_env is None:
                os.environ.pop(SCRATCH_ENV, None)
            else:
                os.environ[SCRATCH_ENV] = previous_env
            for s, handler in previous.items():
                signal.signal(s, handler)
