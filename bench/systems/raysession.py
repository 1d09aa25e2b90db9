"""One Ray instance for one run: started locally (or joined), measured, and always shut down.

A local instance is loopback-only (every Ray process binds 127.0.0.1), asks for Ray's token
authentication with a token held in this process's environment (never written to ``~/.ray`` or to
disk), has no dashboard (it doubles Ray's memory), and a per-run temp dir under /tmp (Ray's unix
socket paths must fit in 107 bytes).
Its start-up time and memory are recorded as fixed costs of the pattern that needed it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil

from bench.core.errors import BenchError
from bench.systems.reaper import REAPER, scratch_dir

#: A local instance on a small, busy machine: the GCS marks a raylet dead after missed health checks
#: (default 5 × 3 s), and a dead raylet takes the driver down with it. Suspected (not confirmed) cause
#: of two test processes that exited with code 1 and no traceback under make test on 2 cores; a run
#: now tolerates two minutes of starvation.
LOCAL_SYSTEM_CONFIG = {
    "health_check_failure_threshold": 40,
    "health_check_period_ms": 3_000,
    "health_check_timeout_ms": 10_000,
}


#: Ray waits a fixed 30 s for its raylet to register and then raises; on 2 cores busy with another
#: job (load average 10–13 seen while tests ran beside two CPU-bound loops) that wait ran out, so a
#: local start is tried this many times before the run fails with a message saying why.
START_ATTEMPTS = 2

#: Joining a cluster: Ray retries an unreachable GCS without end and without a message, so the address
#: is first probed with a TCP connect bounded by this many seconds (a reachable GCS answers in ms).
JOIN_PROBE_TIMEOUT_S = 10.0

#: Ray on Linux resolves ``_node_ip_address="127.0.0.1"`` to the host's own address unless this is
#: "0" (its macOS/Windows local-only mode); then the GCS, raylet, workers and agents all bind loopback.
#: Measured with psutil during a local start: 12 listening sockets off loopback (``::``, 0.0.0.0, the
#: host's address) by default, none with it.
_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

#: Ray's token authentication (checked with Ray 2.60: a driver with no token or a wrong one is refused
#: by the GCS, the right one joins). The token lives in this process's environment, inherited by the
#: Ray processes it starts, one per bench process and kept until it exits: a token file removed at
#: shutdown aborted a Ray thread that outlives ``ray.shutdown()``. A user who set ``RAY_AUTH_MODE``
#: (e.g. ``disabled``) keeps their choice.
_AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")
_PROCESS_TOKEN = secrets.token_hex(32)


def _reload_auth() -> None:
    """Ray reads its auth mode and token once per process (at import); make it read them again."""
    from ray._raylet import AuthenticationTokenLoader, Config

    # In this order, as Ray's own test helper does: config first, then the cached token.
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _local_auth_mode() -> str:
    """Turn token authentication on for a local start unless the user chose a mode; the mode in force."""
    if "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = _PROCESS_TOKEN
    _reload_auth()
    return os.environ["RAY_AUTH_MODE"]


def _join_auth_mode() -> str:
    """Joining a cluster: its own auth settings apply, not the token of an earlier local start."""
    if os.environ.get("RAY_AUTH_TOKEN") == _PROCESS_TOKEN:
        for var in _AUTH_ENV:
            os.environ.pop(var, None)
    _reload_auth()
    return os.environ.get("RAY_AUTH_MODE", "disabled")


def _gcs_host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` of a GCS address (``ray://`` client addresses too); None for "auto"/"local"."""
    rest = address.split("://", 1)[-1].strip().rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


#: ... and then asked for the cluster's id over gRPC in a child process bounded by this many seconds:
#: a port that accepts TCP but is not a GCS (or a GCS that hangs) made ``ray.init`` retry GcsClient
#: creation (~40 s each) many times over; a live GCS answers in well under a second (plus ~2 s to
#: import Ray in the child).
JOIN_HANDSHAKE_TIMEOUT_S = 30.0

_HANDSHAKE = "import sys; from ray._raylet import GcsClient; GcsClient(address=sys.argv[1]).cluster_id"


def probe_address(address: str, timeout_s: float = JOIN_PROBE_TIMEOUT_S,
                  handshake_timeout_s: float = JOIN_HANDSHAKE_TIMEOUT_S) -> None:
    """Raise a BenchError naming ``address`` and the bound unless a TCP connect to it succeeds in time
    and (for a GCS address, not ``ray://``) its GCS answers a gRPC call in time."""
    target = _gcs_host_port(address)
    if target is None:
        return  # "auto" / "local": Ray finds a local instance itself, nothing to probe
    try:
        with socket.create_connection(target, timeout=timeout_s):
            pass
    except OSError as exc:
        raise BenchError(
            f"ray_address {address!r} did not accept a TCP connection within {timeout_s:g} s ({exc}); "
            "check the address and that the cluster's GCS port is reachable from this machine"
        ) from exc
    if address.startswith("ray://"):
        return  # Ray Client's server, not a GCS: Ray Client bounds its own connection
    try:
        done = subprocess.run([sys.executable, "-c", _HANDSHAKE, f"{target[0]}:{target[1]}"],
                              capture_output=True, text=True, timeout=handshake_timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(
            f"ray_address {address!r} accepts TCP but its Ray GCS did not answer within "
            f"{handshake_timeout_s:g} s; is it the head's GCS port (6379 by default) and is the head alive?"
        ) from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"ray_address {address!r}: the Ray GCS refused the connection: {last[:300]}")


@contextlib.contextmanager
def _loopback_only(ray) -> Iterator[None]:
    """During a local start: Ray's own processes inherit the env var, this driver reads the constant
    it was computed from at import (Ray may have been imported before this run), both restored after
    so that a later join in the same process reports the host's address."""
    from ray._private import ray_constants

    before_env, before_const = os.environ.get(_LOCAL_ONLY_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_LOCAL_ONLY_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before_const
        if before_env is None:
            os.environ.pop(_LOCAL_ONLY_ENV, None)
        else:
            os.environ[_LOCAL_ONLY_ENV] = before_env


@dataclass
class RaySession:
    """What a pattern needs to know about the Ray it ran on."""

    address: str = ""  #: "" = a local instance started for the run
    num_cpus: int | None = None
    system_config: dict = field(default_factory=dict)  #: Ray's ``_system_config`` of a local instance
    start_s: float = 0.0
    temp_dir: str = ""
    info: dict = field(default_factory=dict)
    _tracked: int | None = field(default=None, init=False, repr=False)  #: entry in the process's reaper

    def start(self) -> RaySession:
        # Lazy: Ray takes ~1.7 s to import on this VM, and this module is imported wherever a pattern
        # may use Ray (the registry loads them all); only a run that starts Ray pays for it.
        import ray

        if ray.is_initialized():
            raise BenchError("Ray is already initialised in this process; a run starts (and stops) its own")
        # No implicit ray.init() in this process: a thread a run leaves behind (Ray Data's iterator
        # after a timeout) would otherwise start a stray default instance after the run stopped Ray.
        from ray._private import auto_init_hook

        auto_init_hook.enable_auto_connect = False
        # Tracked from here: a signal or an error mid-start leaves no Ray behind (bench.systems.reaper).
        self._tracked = REAPER.track("ray", self.stop)
        try:
            self._start(ray)
        except BaseException:
            self.stop()
            raise
        finally:
            REAPER.reclaim_sigterm()
        return self

    def _start(self, ray) -> None:
        t0 = time.perf_counter()
        attempts = 1
        if self.address:
            auth = _join_auth_mode()  # first: the probe's child process sees the user's auth settings
            probe_address(self.address)
            t0 = time.perf_counter()  # the fixed cost is Ray's join, not the probe
            ray.init(address=self.address, log_to_driver=False)
        else:
            auth = _local_auth_mode()
            while True:
                try:
                    self._init_local(ray)
                    break
                except Exception as exc:  # Ray raises a bare Exception when its raylet misses 30 s
                    if "timed out during startup" not in str(exc):
                        raise
                    self._shutdown()
                    if attempts >= START_ATTEMPTS:
                        raise BenchError(
                            f"a local Ray did not start in {attempts} attempts of Ray's fixed 30 s each: "
                            "the machine is too busy to start it (see the load average), try again"
                        ) from exc
                    attempts += 1
                    t0 = time.perf_counter()  # the fixed cost is the start that worked
        self.start_s = time.perf_counter() - t0
        self.info = {
            "start_s": self.start_s,
            "start_attempts": attempts,
            "local": not self.address,
            "auth": auth,
            "nodes": len(ray.nodes()),
            "cluster_cpus": ray.cluster_resources().get("CPU", 0.0),
            "rss_bytes_after_start": self.rss_bytes(),
        }

    def _init_local(self, ray) -> None:
        # In the bench command's scratch folder when there is one, so that its final sweep removes it
        # even if this process is killed; the path stays short enough for Ray's sockets.
        self.temp_dir = tempfile.mkdtemp(prefix="bray-", dir=scratch_dir())
        with _loopback_only(ray):
            ray.init(
                include_dashboard=False,
                num_cpus=self.num_cpus or os.cpu_count(),
                _temp_dir=self.temp_dir,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                _system_config=LOCAL_SYSTEM_CONFIG | self.system_config,
            )

    def roots(self) -> dict[str, int]:
        """Ray's processes started by this driver (raylet, GCS, workers...) as CPU-meter roots."""
        roots = {}
        for child in psutil.Process().children(recursive=False):
            try:
                roots[f"ray:{child.name()}:{child.pid}"] = child.pid
            except psutil.Error:
                continue
        return roots

    def rss_bytes(self) -> int:
        """Resident memory of the local Ray process tree (0 when joined to a remote cluster)."""
        total = 0
        for child in psutil.Process().children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _shutdown(self) -> None:
        import ray  # lazy, as in start()

        ray.shutdown()
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def stop(self) -> None:
        try:
            self._shutdown()
        finally:  # untracked once stopped, not before (a stopping process waits for its list to empty)
            if self._tracked is not None:
                REAPER.untrack(self._tracked)
                self._tracked = None
