"""The producer of ``source=broker``: its own process, publishing a window's events to the broker on
the open-loop schedule, whatever the consumers do.

Each event is one pre-encoded ``XADD`` (``wire.encode_xadd``), pipelined over one connection: events
whose intended time has come are written at once (at most ``CHUNK`` per write), replies are read as
they come, in order. An event is *accepted* when its reply arrives: the broker has it (and, with
``appendfsync always``, has fsynced it). An error reply (the broker still loading its append-only
file after a restart, say) or a lost connection sends the unaccepted events again after reconnecting
(every ``RECONNECT_S``, until the deadline): an event the broker had taken before the connection broke
is then in the stream twice, and the sink counts the duplicate. Nothing is dropped on purpose.

Run as ``python -m bench.patterns.microbatch.producer SPEC.json``; it writes ``ready.json`` (its
start time ``t0`` on ``time.monotonic``) once encoded, then ``out.npz`` with per-event times.
:class:`Producer` is the driver's handle: an owned process (reaped, bounded waits, log tail).
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import time
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.patterns.microbatch import wire
from bench.systems.owned import OwnedProcess

CHUNK = 1_000  #: events per socket write at most (a burst is written in pieces, replies read between)
RECONNECT_S = 0.02
EXIT_WAIT_S = 120.0  #: how long a finished producer waits for the driver's word to exit


class _Replies:
    """In-order RESP replies of pipelined XADDs: a bulk string (the entry id) is an acceptance, an
    error line a refusal."""

    def __init__(self) -> None:
        self.buf = b""
        self.first_error = ""

    def feed(self, data: bytes) -> list[bool]:
        buf, out, pos = self.buf + data, [], 0
        while True:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            kind = buf[pos : pos + 1]
            if kind == b"$":
                n = int(buf[pos + 1 : end])
                if len(buf) < end + 2 + n + 2:
                    break
                out.append(True)
                pos = end + 2 + n + 2
            else:  # "-ERR ..." (or anything else: not an acceptance)
                self.first_error = self.first_error or buf[pos:end].decode(errors="replace")
                out.append(False)
                pos = end + 2
        self.buf = buf[pos:]
        return out


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=1.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def produce(spec: dict) -> None:
    """One window: encode, say ready, publish on schedule until every event is accepted or the deadline."""
    X = np.load(spec["rows_path"], mmap_mode="r")
    schedule = np.load(spec["schedule_path"])
    out_dir = Path(spec["out_dir"])
    cmds, width = wire.encode_xadd(spec["stream"], np.asarray(X), schedule)
    flat = cmds.reshape(-1)
    n = schedule.size
    issued = np.full(n, np.nan)
    accepted = np.full(n, np.nan)
    counts = {"resent_events": 0, "error_replies": 0, "reconnects": 0}
    sock = _connect(spec["host"], spec["port"])
    t0 = time.monotonic() + float(spec.get("lead_s", 0.3))  # the driver opens its meter meanwhile
    (out_dir / "ready.json.tmp").write_text(json.dumps({"t0": t0, "pid": os.getpid()}))
    os.replace(out_dir / "ready.json.tmp", out_dir / "ready.json")
    deadline = t0 + float(spec["deadline_s"])
    pending: list[int] = []  # sent, reply not read yet, in order
    queue = list(range(n))[::-1]  # to send, the next one last (resent events go back on top)
    replies = _Replies()
    first_error = ""
    view = memoryview(flat)
    while time.monotonic() < deadline and (queue or pending):
        now = time.monotonic() - t0
        try:
            if sock is None:
                time.sleep(RECONNECT_S)
                sock = _connect(spec["host"], spec["port"])
                counts["reconnects"] += 1
                first_error = first_error or replies.first_error
                replies = _Replies()
                continue
            batch = []
            while queue and schedule[queue[-1]] <= now and len(batch) < CHUNK:
                batch.append(queue.pop())
            if batch:
                first = [k for k in batch if np.isnan(issued[k])]
                issued[first] = now
                if len(first) < len(batch):
                    counts["resent_events"] += len(batch) - len(first)
                lo, hi = batch[0], batch[-1] + 1
                if hi - lo == len(batch):  # consecutive: one slice of the window's commands
                    data = view[lo * width : hi * width]
                else:
                    data = b"".join(view[k * width : (k + 1) * width] for k in batch)
                sock.setblocking(True)
                sock.settimeout(1.0)
                sock.sendall(data)
                sock.setblocking(False)
                pending.extend(batch)
            # until the next event is due (now, if a burst is still being written), at most 1 ms
            wait = min(max(float(schedule[queue[-1]]) - now, 0.0), 0.001) if queue else 0.001
            readable, _, _ = select.select([sock], [], [], wait)
            if readable:
                data = sock.recv(1 << 20)
                if not data:
                    raise ConnectionError("the broker closed the connection")
                got = replies.feed(data)
                t = time.monotonic() - t0
                for ok, k in zip(got, pending[: len(got)], strict=True):
                    if ok:
                        accepted[k] = t
                    else:
                        counts["error_replies"] += 1
                        queue.append(k)
                del pending[: len(got)]
        except OSError:  # refused, reset, timed out: resend what has no reply, after reconnecting
            if sock is not None:
                sock.close()
            sock = None
            queue.extend(reversed(pending))
            pending.clear()
    if sock is not None:
        sock.close()
    first_error = first_error or replies.first_error
    np.savez(out_dir / "out.tmp.npz", issued=issued, accepted=accepted, t0=t0, first_error=first_error, **counts)
    os.replace(out_dir / "out.tmp.npz", out_dir / "out.npz")
    # Alive until the driver has metered the window (a process gone before the meter's last sample
    # would take its CPU with it), bounded.
    until = time.monotonic() + EXIT_WAIT_S
    while not (out_dir / "exit").exists() and time.monotonic() < until:
        time.sleep(0.01)


class Producer(OwnedProcess):
    """The driver's handle on one window's producer process."""

    what = "stream producer"

    def __init__(self, out_dir: Path, spec: dict) -> None:
        super().__init__(out_dir / "producer.log")
        self.out_dir, self.spec = out_dir, spec

    def start(self, timeout_s: float = 60.0) -> float:
        """Launch it and wait (bounded) until its commands are encoded; returns its ``t0``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("ready.json", "out.npz", "exit"):
            (self.out_dir / name).unlink(missing_ok=True)
        spec_path = self.out_dir / "producer.json"
        spec_path.write_text(json.dumps({**self.spec, "out_dir": str(self.out_dir)}))
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        t0 = self._launch([sys.executable, "-m", "bench.patterns.microbatch.producer", str(spec_path)], env=env)
        ready = self.out_dir / "ready.json"
        self._wait_ready(ready.exists, t0, timeout_s, "ready to publish", poll_s=0.01)
        return float(json.loads(ready.read_text())["t0"])

    def done(self) -> bool:
        """Whether it has finished publishing (or died)."""
        return (self.out_dir / "out.npz").exists() or (self.proc is not None and self.proc.poll() is not None)

    def result(self, timeout_s: float) -> dict:
        """Its per-event times and counts, once written (waiting at most ``timeout_s``)."""
        assert self.proc is not None
        path = self.out_dir / "out.npz"
        until = time.monotonic() + timeout_s
        while not path.exists() and self.proc.poll() is None and time.monotonic() < until:
            time.sleep(0.01)
        if not path.exists():
            tail = self.log_tail()
            self.stop()
            raise BenchError(
                f"the stream producer wrote no result within {timeout_s:.0f} s (exit {self.proc.returncode}); "
                f"log tail:\n{tail}"
            )
        with np.load(path) as z:
            return {k: z[k] if z[k].ndim else z[k].item() for k in z.files}

    def finish(self, timeout_s: float = 10.0) -> None:
        """Tell it to exit (the window is metered) and reap it, bounded."""
        (self.out_dir / "exit").touch()
        try:
            if self.proc is not None:
                self.proc.wait(timeout=timeout_s)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: stop() ends it
            pass
        finally:
            self.stop()


if __name__ == "__main__":
    produce(json.loads(Path(sys.argv[1]).read_text()))
