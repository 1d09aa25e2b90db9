"""What every server process the harness starts shares (the model server, MLServer, Valkey): launched
in a session of its own and dying with this process, tracked by the reaper from launch until it is
gone, waited for with a bound (its log tail in the error), stopped by SIGTERM then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bench.core.errors import BenchError
from bench.systems.reaper import REAPER, dying_with_parent


class OwnedProcess:
    """A process this harness started and will stop, whatever stops the harness."""

    #: how messages name it ("model server", "MLServer", "Valkey server (url)")
    what: str = "server"

    def __init__(self, log_path: Path | None) -> None:
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None  #: launch to ready, of the last start
        self._tracked: int | None = None  #: this process's entry in the process's reaper

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError(f"{self.what} is not running")
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])  # type: ignore[union-attr]
        except (OSError, AttributeError):
            return "(no log)"

    def _launch(self, cmd: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> float:
        """Start ``cmd`` (its own session, dying with this process, output to the log) and track it;
        returns the launch time (``perf_counter``)."""
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                dying_with_parent(cmd),
                env=dict(env) if env is not None else None,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if self._tracked is None:
            self._tracked = REAPER.track(f"{self.what} pid {self.proc.pid}", self.stop)
        return t0

    def _wait_ready(self, ready: Callable[[], bool], t0: float, timeout_s: float, until: str, poll_s: float = 0.1):
        """Poll ``ready()`` until it holds (the start's time recorded) or ``timeout_s`` after ``t0``
        passes or the process exits: then stopped, and a BenchError saying ``until`` what and the log
        tail. A signal or an error mid-wait stops it too (the caller has nothing to stop yet)."""
        assert self.proc is not None
        try:
            while time.perf_counter() < t0 + timeout_s:
                if self.proc.poll() is not None:
                    raise BenchError(
                        f"{self.what} exited with code {self.proc.returncode} before {until}; "
                        f"log tail:\n{self.log_tail()}"
                    )
                if ready():
                    self.start_seconds = time.perf_counter() - t0
                    return self
                time.sleep(poll_s)
        except BaseException:
            self.stop()
            raise
        tail = self.log_tail()  # before stop(), which may remove the folder the log is in
        self.stop()
        raise BenchError(f"{self.what} was still not {until} after {timeout_s} s; log tail:\n{tail}")

    def kill(self) -> None:
        """SIGKILL the whole process group (fault injection), not waiting for it; it stays tracked
        until :meth:`stop` reaps it."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it if it has not gone within ``timeout_s``."""
        try:
            if self.proc is None or self.proc.poll() is not None:
                return
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout_s)
            except ProcessLookupError:  # the group has gone already (a kill): reap the process
                self.proc.wait(timeout=timeout_s)
        finally:  # untracked once gone, not before: a stopping process waits for its tracked list to empty
            if self._tracked is not None:
                REAPER.untrack(self._tracked)
                self._tracked = None
