"""A scorer reading the input stream through the consumer group (``source=broker``): read, score, write,
acknowledge — and claim what a dead peer left pending.

Each turn reads up to ``max_batch`` new entries, blocking at most ``max_wait_ms`` for the first (the
broker's micro-batch: what has arrived, never waiting to fill), scores them in one predict call, and
writes the batch's scores to the output stream and acknowledges its entries in one ``MULTI``/``EXEC``:
an entry is acknowledged only with its scores written, and both or neither survive a broker crash.
Every ``claim_idle_ms / 2`` it also claims (``XAUTOCLAIM``) entries another consumer has held
unacknowledged for longer than ``claim_idle_ms`` — a consumer killed mid-batch — and scores them.
After a lost connection it reconnects (bounded by the window's deadline) and first re-reads its own
pending entries. A malformed entry is counted, acknowledged and skipped.

Reading runs in a thread of its own, one batch ahead of scoring (predict releases the GIL): at
saturation, on 2 cores, a consumer that read and scored in turn spent 31% of its time reading, 55%
scoring and 10% writing, and the pipeline peaked at 0.58× bulk predict.

:class:`StreamConsumer` is plain Python over a Redis-protocol client, so it is tested without Ray;
``streampool.RayStreamPool`` runs one in each scoring actor.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import numpy as np

from bench.patterns.microbatch import wire


def _raw(response, **_):
    return response


def _payload(fields) -> bytes | None:
    """The ``e`` field of a raw entry's ``[field, value, ...]`` list (None if it has none)."""
    if not fields:
        return None
    if fields[0] == wire.FIELD and len(fields) >= 2:
        return fields[1]
    pairs = dict(zip(fields[::2], fields[1::2], strict=False))
    return pairs.get(wire.FIELD)


def _ensure_group(client, stream: str) -> None:
    """Create the consumer group at the stream's start (and the stream), unless it exists."""
    import valkey

    try:
        client.xgroup_create(stream, wire.GROUP, id="0", mkstream=True)
    except valkey.exceptions.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class StreamConsumer:
    """One consumer of one window's stream (``name`` in the group); ``run`` until stopped."""

    def __init__(
        self,
        url: str,
        predict: Callable[[np.ndarray], np.ndarray],
        n_features: int,
        *,
        name: str,
        max_batch: int,
        max_wait_ms: float,
        claim_idle_ms: float,
    ) -> None:
        self.url, self.predict, self.n_features, self.name = url, predict, n_features, name
        self.max_batch, self.block_ms, self.claim_idle_ms = max_batch, max(1, round(max_wait_ms)), claim_idle_ms
        self.counts = {"batches": 0, "events": 0, "claimed": 0, "malformed": 0, "reconnects": 0, "errors": 0}
        #: where the consumer's time went: reading (its own thread, overlapping the rest), waiting for a
        #: batch to score, scoring, writing + acknowledging
        self.seconds = {"read": 0.0, "wait": 0.0, "score": 0.0, "write": 0.0}
        self.sizes: list[int] = []
        self.crash_next = False  #: fault injection: the next batch read kills this process before it is scored
        self.last_error = ""

    def _client(self):
        import valkey  # lazy: only a broker run needs the client

        client = valkey.Valkey.from_url(self.url, socket_timeout=5.0, socket_connect_timeout=1.0)
        for command in ("XREADGROUP", "XAUTOCLAIM"):  # the server's nested lists as they are: ~1 µs an entry less
            client.response_callbacks[command] = _raw
        return client

    def _score(self, client, stream: str, out: str, entries: list, read_t: float) -> None:
        """Score, write and acknowledge ``entries`` (raw: ``[id, [field, value, ...]]``), read from ``read_t``."""
        if not entries:
            return
        ids = [e[0] for e in entries]
        payloads = [_payload(e[1]) for e in entries]
        idx, _, X, bad = wire.decode_events(payloads, self.n_features)
        self.counts["malformed"] += len(bad)
        if self.crash_next:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)  # mid-batch: read, not scored, not acknowledged
        t1 = time.monotonic()
        pipe = client.pipeline(transaction=True)
        if len(idx):
            scores = self.predict(X)
            t2 = time.monotonic()
            self.seconds["score"] += t2 - t1
            pipe.xadd(out, wire.encode_scores(idx, scores, t1, t2))
        pipe.xack(stream, wire.GROUP, *ids)
        pipe.execute()
        self.seconds["write"] += time.monotonic() - t1 - (t2 - t1 if len(idx) else 0.0)
        self.counts["batches"] += 1
        self.counts["events"] += len(idx)
        self.sizes.append(len(idx))

    def _read(self, client, stream: str, start: str, block: bool = False) -> list:
        """Up to ``max_batch`` entries from ``start`` ("0": this consumer's own pending ones; ">": new
        ones, blocking at most ``max_wait_ms``), as the server sent them (no per-entry dict)."""
        args = ["XREADGROUP", "GROUP", wire.GROUP, self.name, "COUNT", self.max_batch]
        if block:
            args += ["BLOCK", self.block_ms]
        resp = client.execute_command(*args, "STREAMS", stream, start)
        return resp[0][1] if resp else []

    def _reader(self, stream: str, batches: queue.Queue, stop: threading.Event, deadline: float) -> None:
        """The read side, in its own thread and connection: this consumer's own pending entries first
        (after every reconnect), claims every ``claim_idle_ms / 2``, then new entries — each batch
        handed to the scoring side, at most one waiting, so reading overlaps scoring."""
        import valkey

        client, own = None, True
        next_claim = time.monotonic()

        def hand_over(entries: list, t0: float) -> None:
            self.seconds["read"] += time.monotonic() - t0
            while entries and not stop.is_set() and time.monotonic() < deadline:
                try:
                    batches.put((entries, time.monotonic()), timeout=0.05)
                    return
                except queue.Full:
                    continue

        while not stop.is_set() and time.monotonic() < deadline:
            try:
                if client is None:
                    client = self._client()
                    client.ping()
                t0 = time.monotonic()
                if own:
                    entries = self._read(client, stream, "0")
                    own = bool(entries)
                    hand_over(entries, t0)
                    continue
                if self.claim_idle_ms and t0 >= next_claim:
                    next_claim = t0 + self.claim_idle_ms / 2e3
                    claimed = client.execute_command(
                        "XAUTOCLAIM", stream, wire.GROUP, self.name, int(self.claim_idle_ms), "0-0",
                        "COUNT", self.max_batch,
                    )[1]  # fmt: skip
                    claimed = [e for e in claimed if e is not None and e[1] is not None]
                    self.counts["claimed"] += len(claimed)
                    hand_over(claimed, t0)
                    t0 = time.monotonic()
                hand_over(self._read(client, stream, ">", block=True), t0)
            except (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError, OSError) as exc:
                client, own = self._failed(client, exc), True
            except valkey.exceptions.ResponseError as exc:  # LOADING after a restart, NOGROUP: retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.counts["errors"] += 1
                if "NOGROUP" in str(exc) and client is not None:
                    _ensure_group(client, stream)  # a broker that lost the group: every entry is read again
                own = True
                time.sleep(0.02)
        if client is not None:
            client.close()

    def _failed(self, client, exc: Exception) -> None:
        """A lost connection: recorded, closed, retried after a pause (the caller reconnects)."""
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.counts["reconnects"] += 1
        if client is not None:
            client.close()
        time.sleep(0.02)
        return None

    def run(self, stream: str, out: str, stop: threading.Event, deadline: float) -> dict:
        """Consume until ``stop`` is set or ``time.monotonic()`` passes ``deadline``; the counts.

        The scoring side (this thread) scores, writes and acknowledges each batch the reader thread
        hands over; a write that fails on a lost connection is tried again after reconnecting (its
        entries stay pending meanwhile, so a peer may claim them)."""
        import valkey

        batches: queue.Queue = queue.Queue(maxsize=1)
        reader = threading.Thread(target=self._reader, args=(stream, batches, stop, deadline), daemon=True)
        reader.start()
        client = None
        while True:
            t_wait = time.monotonic()
            try:
                entries, t_read = batches.get(timeout=0.05)
            except queue.Empty:
                if not reader.is_alive():
                    break
                continue
            finally:
                self.seconds["wait"] += time.monotonic() - t_wait
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    if client is None:
                        client = self._client()
                    self._score(client, stream, out, entries, t_read)
                    break
                except (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError, OSError) as exc:
                    client = self._failed(client, exc)
                except valkey.exceptions.ResponseError as exc:  # LOADING after a restart
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    self.counts["errors"] += 1
                    time.sleep(0.02)
        reader.join(timeout=10.0)
        if client is not None:
            client.close()
        return {**self.counts, "seconds": self.seconds, "batch_sizes": self.sizes, "last_error": self.last_error}
