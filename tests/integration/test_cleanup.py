"""Whatever stops a real ``bench run``, nothing it started keeps running, and nothing it starts listens
off loopback.

Each test starts the command (smoke profile, a main window long enough to be caught mid-run), waits
until the server (or Ray's scoring actors) is up, lists every listening socket of the run's process
tree, SIGTERMs the ``bench`` process — what ``timeout``, a CI cancel or ``kill`` does — and checks,
within a bound, that no process of the run is left and Ray's temp folder is gone. Before the reaper, a
server answered /health a minute later and a micro-batch run left two Ray agents and its temp folder.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

#: Start-up of the run: papermill and the kernel ~5 s, a server ~3 s, a local Ray 12–30 s on a busy VM.
UP_BOUND_S = 120.0
#: From SIGTERM to the command gone: the kernel's finally blocks (server ~1 s, ray.shutdown 1–5 s) plus
#: the final sweep's grace (bench.systems.reaper.KILL_GRACE_S).
STOP_BOUND_S = 45.0
TEMP_DIR = re.compile(r"(/tmp/(?:bench-[^/\s=]+/)?bray-[^/\s=]+)")


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _start(tmp_path: Path, pattern: str, *params: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bench.app.cli", "run", pattern, "--profile", "smoke"]
    for p in params:
        cmd += ["--param", p]
    cmd += ["--results", str(tmp_path / "results")]
    with open(tmp_path / "bench.out", "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _listening(procs: list[psutil.Process]) -> list[tuple[str, int, str, int]]:
    out = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
            name = p.name()
        except psutil.Error:
            continue
        out += [(name, p.pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def _run_until(proc: subprocess.Popen, tmp_path: Path, ready) -> dict[int, psutil.Process]:
    """Every process seen in the run's tree until ``ready(tree)`` holds (bounded)."""
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + UP_BOUND_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "bench.out").read_text()[-3000:]
        tree = _tree(proc.pid)
        seen.update({p.pid: p for p in tree})
        if ready(tree):
            seen.update({p.pid: p for p in _tree(proc.pid)})
            return seen
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"the run was not up within {UP_BOUND_S} s: {(tmp_path / 'bench.out').read_text()[-3000:]}")


def _left(seen: dict[int, psutil.Process]) -> list[str]:
    left = []
    for p in seen.values():
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {' '.join(p.cmdline())[:160]}")
        except psutil.Error:
            continue
    return left


def _sigterm_and_check(proc: subprocess.Popen, tmp_path: Path, seen: dict[int, psutil.Process]) -> list[str]:
    temp_dirs = set()
    for p in seen.values():
        try:
            temp_dirs.update(TEMP_DIR.findall(" ".join(p.cmdline())))
        except psutil.Error:
            continue
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"bench did not end within {STOP_BOUND_S} s of SIGTERM")
    left = _left(seen)
    while left and time.monotonic() - t0 < STOP_BOUND_S:
        time.sleep(0.5)
        left = _left(seen)
    assert not left, f"left running {time.monotonic() - t0:.0f} s after SIGTERM:\n" + "\n".join(left)
    assert proc.returncode == 128 + signal.SIGTERM, (tmp_path / "bench.out").read_text()[-3000:]
    assert "stopped by SIGTERM" in (tmp_path / "bench.out").read_text()
    return sorted(temp_dirs)


def _kill_tree(proc: subprocess.Popen) -> None:
    """After a failed check: leave nothing behind for the next test."""
    tree = _tree(proc.pid)
    for p in tree:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(tree, timeout=10)


def _is_server(p: psutil.Process) -> bool:
    try:
        return "uvicorn" in p.cmdline() and any(c.status == psutil.CONN_LISTEN for c in p.net_connections("inet"))
    except psutil.Error:
        return False


@pytest.mark.notebook
def test_sigterm_ends_the_http_server_and_nothing_listens_off_loopback(tmp_path):
    proc = _start(tmp_path, "request", "backend=http", "capacity=false", "duration_s=30", "floor=false")
    try:
        seen = _run_until(proc, tmp_path, lambda tree: any(_is_server(p) for p in tree))
        listening = _listening(list(seen.values()))
        assert any(name.startswith("python") for name, *_ in listening), listening  # the server, listening
        off = [s for s in listening if not _is_loopback(s[2])]
        assert not off, f"listening off loopback: {off}"
        _sigterm_and_check(proc, tmp_path, seen)
    finally:
        _kill_tree(proc)


def _ray_scoring(tree: list[psutil.Process]) -> bool:
    names = set()
    for p in tree:
        try:
            names.add(p.name())
        except psutil.Error:
            continue
    return "raylet" in names and any(n.startswith("ray::Scorer") for n in names)


@pytest.mark.notebook
def test_sigterm_ends_ray_and_its_agents_and_ray_listens_on_loopback_only(tmp_path):
    proc = _start(tmp_path, "microbatch", "capacity=false", "duration_s=30", "saturation_events=0", "min_events=300")
    try:
        seen = _run_until(proc, tmp_path, _ray_scoring)
        listening = _listening(list(seen.values()))
        assert any(name == "gcs_server" for name, *_ in listening), listening  # Ray's sockets were seen
        off = [s for s in listening if not _is_loopback(s[2])]
        assert not off, f"Ray listening off loopback: {off}"
        temp_dirs = _sigterm_and_check(proc, tmp_path, seen)
        assert temp_dirs, "no Ray temp folder seen in the run's command lines"
        assert not [d for d in temp_dirs if Path(d).exists()], temp_dirs
    finally:
        _kill_tree(proc)


def _refreshing(tree: list[psutil.Process]) -> bool:
    for p in tree:
        try:
            if "bench.systems.refresh_job" in p.cmdline():
                return True
        except psutil.Error:
            continue
    return False


@pytest.mark.notebook
def test_sigterm_during_a_refresh_job_ends_the_job_and_the_server(tmp_path):
    proc = _start(tmp_path, "hybrid", "capacity=false", "duration_s=30", "refresh_interval_s=1", "floor=false")
    try:
        seen = _run_until(proc, tmp_path, lambda tree: _refreshing(tree) and any(_is_server(p) for p in tree))
        off = [s for s in _listening(list(seen.values())) if not _is_loopback(s[2])]
        assert not off, f"listening off loopback: {off}"
        _sigterm_and_check(proc, tmp_path, seen)
    finally:
        _kill_tree(proc)
