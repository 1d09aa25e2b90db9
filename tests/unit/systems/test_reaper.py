"""One place ends what the harness started: a SIGTERM unwinds like Ctrl-C, a server dies with its parent
even on SIGKILL, the ``bench`` command adopts and ends orphans; joining a cluster is bounded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from bench.core.errors import BenchError
from bench.systems import reaper
from bench.systems.process import ServerProcess, free_port
from bench.systems.raysession import RaySession, probe_address
from bench.systems.server_config import ServerConfig

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")


def _python(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True, **kw)


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_stop_all_stops_newest_first_and_a_failing_stop_does_not_keep_the_rest():
    r = reaper.Reaper()
    order = []

    def boom():
        order.append("b")
        raise RuntimeError("stop failed")

    r.track("a", lambda: order.append("a"))
    token = r.track("b", boom)
    r.track("c", lambda: order.append("c"))
    assert r.tracked() == ["a", "b", "c"]
    r.untrack(token)
    r.track("b", boom)
    r.stop_all()
    assert order == ["b", "c", "a"] and r.tracked() == []


def test_sigterm_unwinds_like_ctrl_c_so_finally_blocks_stop_what_was_started(tmp_path):
    marker = tmp_path / "stopped"
    proc = _python(
        f"""
        import time
        from bench.systems.reaper import REAPER
        token = None
        def stop():
            open({str(marker)!r}, "a").write("stop\\n")
            REAPER.untrack(token)
        token = REAPER.track("thing", stop)
        print("ready", flush=True)
        try:
            time.sleep(60)
        finally:
            stop()
        """
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.terminate()
    assert proc.wait(timeout=30) != 0  # Stopped reached the top: a stopped process, not a success
    assert marker.read_text() == "stop\n"  # the finally block ran (the default SIGTERM skips it)


def test_sigterm_with_nothing_tracked_ends_the_process_as_the_default_would():
    proc = _python(
        """
        import time
        from bench.systems.reaper import REAPER
        REAPER.untrack(REAPER.track("x", lambda: None))
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.terminate()
    assert proc.wait(timeout=30) == 128 + 15


@linux_only
def test_a_process_started_dying_with_its_parent_dies_on_the_parents_sigkill():
    # The parent starts `sleep` in its own session (as the model server is), then is SIGKILLed: no
    # handler, no atexit runs; only the kernel's death signal can end the child.
    proc = _python(
        """
        import subprocess, time
        from bench.systems.reaper import dying_with_parent
        child = subprocess.Popen(dying_with_parent(["/bin/sleep", "60"]), start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    child = int(proc.stdout.readline())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and psutil.Process(child).name() != "sleep":
        time.sleep(0.05)  # the shim has exec'd: same pid, now the real command
    assert psutil.Process(child).name() == "sleep"
    proc.kill()
    proc.wait(timeout=10)
    assert _gone(child, within_s=10)


def test_dying_with_parent_is_only_applied_from_the_main_thread():
    # The kernel signals when the parent *thread* ends: a server a fault restarts from a timer thread
    # must not die when that thread does.
    out = []
    t = threading.Thread(target=lambda: out.append(reaper.dying_with_parent(["/bin/true"])))
    t.start()
    t.join()
    assert out == [["/bin/true"]]


@linux_only
def test_the_bench_command_adopts_orphans_and_ends_every_descendant_on_the_way_out():
    # `sh` starts `sleep` in the background and exits: the orphan is re-parented to the subreaper,
    # which ends it when supervise() exits (before, it would run on under init).
    proc = _python(
        """
        import subprocess
        from bench.systems import reaper
        with reaper.supervise() as scratch:
            out = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
            print(out.stdout.strip(), scratch, flush=True)
        """
    )
    pid, scratch = proc.stdout.readline().split()
    assert proc.wait(timeout=30) == 0
    assert _gone(int(pid), within_s=5)
    assert not os.path.exists(scratch)


def test_a_server_that_fails_to_start_is_stopped_and_untracked(tmp_path):
    srv = ServerProcess(ServerConfig(str(tmp_path / "no-such-model.txt")), tmp_path / "server.log")
    with pytest.raises(BenchError, match="before answering /health"):
        srv.start(timeout_s=60)
    assert not [name for name in reaper.REAPER.tracked() if name.startswith("model server")]


def test_an_unreachable_ray_address_fails_within_a_bound_naming_the_address():
    # Before: Ray retried the GCS forever, with no message. Run in a thread so a hang fails the test.
    address = f"127.0.0.1:{free_port()}"
    errors: list[BaseException] = []

    def start():
        try:
            RaySession(address=address).start()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    t = threading.Thread(target=start, daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "joining an unreachable ray_address did not return within 60 s"
    assert len(errors) == 1 and isinstance(errors[0], BenchError)
    assert address in str(errors[0]) and "within 10 s" in str(errors[0])
    assert "ray" not in reaper.REAPER.tracked()


def test_the_probe_refuses_a_port_that_accepts_tcp_but_is_no_ray_gcs():
    # Before: ray.init retried a silent listener for minutes. The handshake runs in a child process.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(BenchError, match=rf"'{address}' accepts TCP but its Ray GCS did not answer within 3 s"):
            probe_address(address, timeout_s=0.5, handshake_timeout_s=3.0)
        assert time.monotonic() - t0 < 30


def test_the_probe_refuses_an_address_where_nothing_listens_and_passes_one_that_does():
    with socket.socket() as bound:  # bound, not listening: a connect is refused
        bound.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{bound.getsockname()[1]}"
        with pytest.raises(BenchError, match=rf"'{address}' did not accept a TCP connection within 0\.5 s"):
            probe_address(address, timeout_s=0.5)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        probe_address(f"ray://127.0.0.1:{server.getsockname()[1]}", timeout_s=0.5)
    probe_address("auto")  # nothing to probe: Ray looks for a local instance itself


def test_the_sigterm_handler_is_taken_back_after_a_library_replaced_it():
    # ray.init installs a handler calling sys.exit: a kernel that caught that SystemExit sat idle.
    proc = _python(
        """
        import signal, sys
        from bench.systems.reaper import REAPER
        REAPER.track("ray", lambda: None)
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(s))  # what ray.init does
        REAPER.reclaim_sigterm()
        print(signal.getsignal(signal.SIGTERM) == REAPER._on_sigterm, flush=True)
        """
    )
    assert proc.stdout.readline().strip() == "True"
    assert proc.wait(timeout=30) == 0
