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

:class:`StreamConsumer` is plain Python over a Redis-protocol client, so it is tested without Ray;
``pool.RayStreamPool`` runs one in each scoring actor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from bench.patterns.microbatch import wire


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
        self.sizes: list[int] = []
        self.crash_next = False  #: fault injection: the next batch read kills this process before it is scored
        self.last_error = ""

    def _client(self):
        import valkey  # lazy: only a broker run needs the client

        return valkey.Valkey.from_url(self.url, socket_timeout=5.0, socket_connect_timeout=1.0)

    def _score(self, client, stream: str, out: str, entries: list, read_t: float) -> None:
        if not entries:
            return
        ids = [e[0] for e in entries]
        payloads = [e[1].get(wire.FIELD) if e[1] else None for e in entries]
        idx, _, X, bad = wire.decode_events(payloads, self.n_features)
        self.counts["malformed"] += len(bad)
        if self.crash_next:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)  # mid-batch: read, not scored, not acknowledged
        pipe = client.pipeline(transaction=True)
        if len(idx):
            scores = self.predict(X)
            pipe.xadd(out, wire.encode_scores(idx, scores, read_t, time.monotonic()))
        pipe.xack(stream, wire.GROUP, *ids)
        pipe.execute()
        self.counts["batches"] += 1
        self.counts["events"] += len(idx)
        self.sizes.append(len(idx))

    def run(self, stream: str, out: str, stop: threading.Event, deadline: float) -> dict:
        """Consume until ``stop`` is set or ``time.monotonic()`` passes ``deadline``; the counts."""
        import valkey

        client, own = None, True  # own: read this consumer's own pending entries first (after a reconnect)
        next_claim = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                if client is None:
                    client = self._client()
                    client.ping()
                if own:
                    resp = client.xreadgroup(wire.GROUP, self.name, {stream: "0"}, count=self.max_batch)
                    entries = resp[0][1] if resp else []
                    if not entries:
                        own = False
                    self._score(client, stream, out, entries, time.monotonic())
                    continue
                if self.claim_idle_ms and time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + self.claim_idle_ms / 2e3
                    claimed = client.xautoclaim(
                        stream, wire.GROUP, self.name, min_idle_time=int(self.claim_idle_ms), count=self.max_batch
                    )[1]
                    claimed = [e for e in claimed if e is not None and e[1] is not None]
                    self.counts["claimed"] += len(claimed)
                    self._score(client, stream, out, claimed, time.monotonic())
                resp = client.xreadgroup(
                    wire.GROUP, self.name, {stream: ">"}, count=self.max_batch, block=self.block_ms
                )
                if resp:
                    self._score(client, stream, out, resp[0][1], time.monotonic())
            except (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError, OSError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.counts["reconnects"] += 1
                if client is not None:
                    client.close()
                client, own = None, True
                time.sleep(0.02)
            except valkey.exceptions.ResponseError as exc:  # LOADING after a restart, NOGROUP: retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.counts["errors"] += 1
                if "NOGROUP" in str(exc) and client is not None:
                    _ensure_group(client, stream)  # a broker that lost the group: every entry is read again
                own = True
                time.sleep(0.02)
        if client is not None:
            client.close()
        return {**self.counts, "batch_sizes": self.sizes, "last_error": self.last_error}
