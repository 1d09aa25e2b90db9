"""One window of ``source=broker``: a producer process publishes events to the broker's stream on the
open-loop schedule, scoring actors consume it through a consumer group, the driver reads the output
stream as the sink — the driver is off the data path.

An event's latency runs from its intended time to the moment the sink reads its score from the output
stream; its hops are the producer's lag (sent − intended), the broker's acceptance (the XADD's reply),
the time in the stream until a consumer read it, the scoring, and the output stream to the sink.
Every ``SAMPLE_S`` the sink records the group's lag (entries not yet read) and pending entries (read,
not acknowledged). The window ends when the producer has finished, the group has nothing unread or
pending and the sink has read everything — or at its deadline. An event the broker accepted and the
sink never saw is *lost*; one the producer could not get accepted by the deadline is *unpublished*.

Faults: ``actor_at_s`` arms a crash in actor 0 (it dies holding a batch it read; its peer claims the
entries once idle); ``broker_at_s`` SIGKILLs the broker and restarts it on the same port and data, so
what its append-only file kept is what survives.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.measure import load, metrics
from bench.patterns.microbatch import wire
from bench.patterns.microbatch.producer import Producer
from bench.patterns.microbatch.streampool import RayStreamPool
from bench.systems.valkey import ValkeyServer

SAMPLE_S = 0.1
#: how long a consumer may run past the window's deadline before it is stopped regardless
CONSUMER_GRACE_S = 5.0


@dataclass(frozen=True)
class BrokerPolicy:
    max_batch: int
    max_wait_ms: float
    claim_idle_ms: float
    drain_timeout_s: float
    warmup_s: float


class BrokerWindow:
    """Producer → broker → consumer group → output stream → sink, for one schedule."""

    def __init__(
        self,
        broker: ValkeyServer,
        pool: RayStreamPool,
        rows_path: Path,
        expected: np.ndarray,
        n_features: int,
        work_dir: Path,
        policy: BrokerPolicy,
        meter: metrics.CpuMeter | None = None,
    ) -> None:
        self.broker, self.pool, self.rows_path, self.expected = broker, pool, rows_path, expected
        self.n_features, self.work_dir, self.policy, self.meter = n_features, work_dir, policy, meter
        self._restarting: dict[int, tuple[threading.Thread, dict]] = {}

    # -- set-up -------------------------------------------------------------------------------

    def _client(self):
        import valkey  # lazy: only a broker run needs the client

        return valkey.Valkey.from_url(self.broker.url, socket_timeout=2.0, socket_connect_timeout=1.0)

    def producer(self, name: str, schedule: np.ndarray) -> tuple[Producer, str, str]:
        """The window's streams (created empty, with the group) and its producer, not yet started."""
        stream, out = wire.stream_names(name)
        client = self._client()
        try:
            client.delete(stream, out)
            client.xgroup_create(stream, wire.GROUP, id="0", mkstream=True)
        finally:
            client.close()
        d = self.work_dir / name
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / "schedule.npy", schedule)
        spec = {
            "host": self.broker.host,
            "port": self.broker.port,
            "stream": stream,
            "rows_path": str(self.rows_path),
            "schedule_path": str(d / "schedule.npy"),
            "deadline_s": float(schedule[-1]) + self.policy.drain_timeout_s if schedule.size else 1.0,
        }
        return Producer(d, spec), stream, out

    # -- the window ---------------------------------------------------------------------------

    def run(
        self,
        producer: Producer,
        stream: str,
        out: str,
        schedule: np.ndarray,
        t0: float,
        *,
        actor_at_s: float | None = None,
        broker_at_s: float | None = None,
    ) -> tuple[load.Observations, dict]:
        """Consume and sink one window whose producer has started (its clock origin ``t0``)."""
        import valkey

        p, n = self.policy, schedule.size
        self._t0 = t0
        deadline = float(schedule[-1]) + p.drain_timeout_s if n else 1.0
        spec = {
            "url": self.broker.url,
            "stream": stream,
            "out": out,
            "n_features": self.n_features,
            "max_batch": p.max_batch,
            "max_wait_ms": p.max_wait_ms,
            "claim_idle_ms": p.claim_idle_ms,
            "deadline": t0 + deadline + CONSUMER_GRACE_S,
        }
        refs = {i: self.pool.consume(i, spec) for i in range(len(self.pool.actors))}
        done = np.full(n, np.nan)
        scores = np.full(n, np.nan)
        delivered = np.zeros(n, np.int32)
        read_t = np.full(n, np.nan)
        write_t = np.full(n, np.nan)
        counts = {"duplicates_removed": 0, "mismatches": 0, "sink_reconnects": 0}
        lag_t, lag, pending = [], [], []
        faults: list[dict] = []
        consumer_results: dict[int, list[dict]] = {i: [] for i in refs}
        client, last_id, next_sample = None, "0-0", 0.0
        produced: dict | None = None
        quiet = False  # the group had nothing unread or pending at the last sample
        drained = False  # the window ended with the group drained (else: by its deadline)
        actor_due, broker_due = actor_at_s, broker_at_s
        while True:
            now = time.monotonic() - t0
            if now > deadline:
                break
            if actor_due is not None and now >= actor_due:
                actor_due = None
                faults.append(self._arm_actor_crash(now))
            if broker_due is not None and now >= broker_due:
                broker_due = None
                faults.append(self._kill_broker(now, t0))
                client = None
            if produced is None and producer.done():
                produced = producer.result(timeout_s=10.0)
            self._watch_actors(refs, consumer_results, spec, t0 + deadline, faults, now)
            try:
                if client is None:
                    client = self._client()
                if now >= next_sample:
                    next_sample = now + SAMPLE_S
                    info = next((g for g in client.xinfo_groups(stream) if g["name"] == wire.GROUP.encode()), None)
                    if info is not None:
                        lag_t.append(round(now, 3))
                        lag.append(int(info.get("lag") or 0))
                        pending.append(int(info.get("pending") or 0))
                        quiet = lag[-1] == 0 and pending[-1] == 0
                resp = client.xread({out: last_id}, count=100, block=5)
            except (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError, OSError):
                counts["sink_reconnects"] += 1
                client = None
                time.sleep(0.02)
                continue
            except valkey.exceptions.ResponseError:  # the broker still loading after a restart
                time.sleep(0.02)
                continue
            got_any = False
            t = time.monotonic() - t0
            for entry_id, fields in resp[0][1] if resp else []:
                last_id, got_any = entry_id, True
                idx, sc, r, w = wire.decode_scores(fields)
                valid = (idx >= 0) & (idx < n)
                idx, sc = idx[valid], sc[valid]
                first = delivered[idx] == 0
                counts["duplicates_removed"] += int((~first).sum())
                delivered[idx] += 1
                new = idx[first]
                done[new], scores[new] = t, sc[first]
                read_t[new], write_t[new] = r - t0, w - t0
                counts["mismatches"] += int(np.count_nonzero(sc[first] != self.expected[new % len(self.expected)]))
            if produced is not None and quiet and not got_any:
                accepted = ~np.isnan(produced["accepted"])
                if (delivered[accepted] > 0).all() or now > float(np.nanmax(produced["accepted"], initial=0)) + 1.0:
                    drained = True
                    break
        duration = time.monotonic() - t0
        self.pool.stop_consuming()
        finals = self._collect(refs, consumer_results)
        if produced is None:
            produced = producer.result(timeout_s=10.0)
        if client is not None:
            try:
                client.delete(stream, out)
            finally:
                client.close()
        return self._observations(schedule, produced, done, scores, delivered, duration), self._record(
            schedule, produced, delivered, read_t, write_t, done, counts, finals, faults, (lag_t, lag, pending), drained
        )

    # -- faults and actors --------------------------------------------------------------------

    def _arm_actor_crash(self, now: float) -> dict:
        if self.meter is not None:
            self.meter.sample()  # the actor about to die: its CPU up to now still counts
        armed = self.pool.arm_crash(0)
        return {"kind": "actor_crash_armed", "actor": 0, "pid": self.pool.pids[0], "at_s": now, "armed": armed}

    def _kill_broker(self, now: float, t0: float) -> dict:
        if self.meter is not None:
            self.meter.sample()
        old = self.broker.pid
        self.broker.kill()
        killed = time.monotonic() - t0
        self.broker.restart()
        up = time.monotonic() - t0
        if self.meter is not None:
            self.meter.add_root("broker:restarted", self.broker.pid)
        return {
            "kind": "broker_killed",
            "pid": old,
            "new_pid": self.broker.pid,
            "at_s": killed,
            "down_s": up - killed,
            "appendfsync": self.broker.appendfsync,
        }

    def _watch_actors(self, refs, results, spec, deadline_mono, faults, now) -> None:
        """An actor whose consumer ended early (its process died): a thread waits for Ray's restart
        (the sink keeps reading meanwhile); once it answers, its consumer starts again under the same
        name (it re-reads what it still holds)."""
        ray = self.pool._ray
        for i, (thread, event) in list(self._restarting.items()):
            if thread.is_alive():
                continue
            del self._restarting[i]
            if event.get("new_pid") is not None:
                if self.meter is not None:
                    self.meter.add_root(f"actor{i}:restarted", event["new_pid"])
                refs[i] = self.pool.consume(i, spec)
        live = [r for r in refs.values() if r is not None]
        ready, _ = ray.wait(live, num_returns=len(live), timeout=0) if live else ([], [])
        for i, ref in list(refs.items()):
            if ref is None or ref not in ready:
                continue
            try:
                results[i].append(ray.get(ref, timeout=1.0))
                del refs[i]  # ended by itself before the window did: its deadline passed
                continue
            except ray.exceptions.RayError as exc:
                refs[i] = None
                event = {"kind": "actor_died", "actor": i, "pid": self.pool.pids[i], "at_s": now,
                         "error": type(exc).__name__, "restarted": False, "new_pid": None}  # fmt: skip
                faults.append(event)

                def wait(i=i, event=event, seen=now) -> None:
                    pid = self.pool.wait_restarted(i, event["pid"], deadline_mono)
                    event.update(restarted=pid is not None, new_pid=pid, restart_s=time.monotonic() - self._t0 - seen)

                thread = threading.Thread(target=wait, name=f"actor{i}-restart", daemon=True)
                self._restarting[i] = (thread, event)
                thread.start()

    def _collect(self, refs, results) -> dict:
        ray = self.pool._ray
        for thread, _ in self._restarting.values():
            thread.join(timeout=10.0)
        self._restarting.clear()
        for i, ref in refs.items():
            if ref is None:  # died, not back by the window's end
                continue
            try:
                results[i].append(ray.get(ref, timeout=CONSUMER_GRACE_S + 10.0))
            except ray.exceptions.RayError as exc:
                results[i].append({"error": f"{type(exc).__name__}: {exc}"})
        total = {"batches": 0, "events": 0, "claimed": 0, "malformed": 0, "reconnects": 0, "errors": 0}
        sizes: list[int] = []
        seconds = {"read": 0.0, "wait": 0.0, "score": 0.0, "write": 0.0}
        for rs in results.values():
            for r in rs:
                for k in total:
                    total[k] += int(r.get(k, 0))
                for k, v in r.get("seconds", {}).items():
                    seconds[k] += v
                sizes += r.get("batch_sizes", [])
        return {**total, "seconds": seconds, "batch_sizes": sizes}

    # -- the record ---------------------------------------------------------------------------

    @staticmethod
    def _observations(schedule, produced, done, scores, delivered, duration) -> load.Observations:
        n = schedule.size
        status = np.full(n, load.TIMEOUT, np.int32)
        accepted = produced["accepted"]
        status[~np.isnan(accepted)] = load.CONN_ERROR  # accepted, not delivered: lost
        status[delivered > 0] = 200
        # "sent" is the write to the broker, as for a request: the acceptance (the XADD's reply) can reach
        # the producer after the sink has the score, so it is a hop, not the start of the service time
        return load.Observations(schedule, produced["issued"], produced["issued"], done, status, scores, duration)

    def _record(
        self, schedule, produced, delivered, read_t, write_t, done, counts, finals, faults, series, drained
    ) -> dict:
        """The window's record. An accepted event the sink never saw is *lost* only if the group had
        drained (nothing unread or pending): at the deadline it is still queued (an overloaded window)."""
        n = schedule.size
        accepted = ~np.isnan(produced["accepted"])
        missing = int((accepted & (delivered == 0)).sum())
        sizes = np.asarray(finals.pop("batch_sizes"), np.float64)
        lag_t, lag, pending = series
        ok = (delivered > 0) & (schedule >= self.policy.warmup_s) & accepted
        hops = None
        if ok.any():
            iss, acc = produced["issued"], produced["accepted"]
            parts = {
                "source_lag_s": iss - schedule,
                "to_broker_s": acc - iss,
                "in_stream_s": read_t - acc,
                "scoring_s": write_t - read_t,
                "to_sink_s": done - write_t,
                "latency_s": done - schedule,
            }
            hops = {k: metrics.latency_summary(np.clip(v[ok], 0, None)) for k, v in parts.items()}
        return {
            "offered_events": int(n),
            "accepted_events": int(accepted.sum()),
            "unpublished_events": int((~accepted).sum()),
            "delivered_events": int((delivered > 0).sum()),
            "lost_events": missing if drained else 0,
            "unfinished_at_deadline": 0 if drained else missing,
            "duplicates_removed": counts["duplicates_removed"],
            "mismatches": counts["mismatches"],
            "claimed_entries": finals["claimed"],
            "malformed_skipped": finals["malformed"],
            "consumer_reconnects": finals["reconnects"],
            "sink_reconnects": counts["sink_reconnects"],
            "producer": {
                **{k: int(produced[k]) for k in ("resent_events", "error_replies", "reconnects")},
                "first_error": str(produced.get("first_error", "")),
            },
            "consumer_errors": finals["errors"],
            # summed over the consumers: reading (its own thread), waiting for a batch, scoring, writing + acking
            "consumer_seconds": finals["seconds"],
            "batches": finals["batches"],
            "batch_size": metrics.latency_summary(sizes) if sizes.size else None,
            "batches_closed_by": {},
            "hops": hops,
            "faults": faults,
            "consumer_lag": {"t_s": lag_t, "lag_entries": lag, "pending_entries": pending},
            "backlog": {
                "t_s": lag_t,
                "queued_events": [a + b for a, b in zip(lag, pending, strict=True)],
                "inflight_events": pending,
                "max_queued_events": max((a + b for a, b in zip(lag, pending, strict=True)), default=0),
            },
        }
