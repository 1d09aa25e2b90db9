"""The hybrid's ``lookup="direct"`` reader: a client that reads the online store itself, no model server.

It speaks the store's protocol (``bench.data.store``, Valkey): generation N's rows are packed values
under ``g<N>:<customer id>``, its format and ``as_of`` in ``g<N>:meta``, and ``current`` points at the
generation to read. Like :class:`bench.data.store.ValkeyStore` (what the lookup server reads through),
the reader re-reads the pointer at most every ``check_s`` — on the lookup that finds the check due,
which pays that round trip, as the server's request does — and once more after a key not found, so a
generation deleted after a switch the reader had not yet seen reads as the new one, never as a missing
customer. A key still not found then is a customer the last batch did not know: "not found".

Each lookup is one GET (two round trips when the pointer check is due, or after a miss) through
:class:`bench.measure.kvclient.RespPool` on the load generator's event loop.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

from bench.core.errors import BenchError
from bench.data import store
from bench.measure import kvclient

#: How often the pointer is re-read: the lookup server's store reader's default (``store.open_store``).
CHECK_S = 0.05
_GET_POINTER = kvclient.encode("GET", store.POINTER)


@dataclass(frozen=True)
class Generation:
    """One published generation as the reader uses it: its key prefix, row format and inputs' time."""

    number: int
    prefix: bytes
    unpack: Callable[[bytes], tuple]
    score_at: int  #: the score's position in a packed row
    as_of: float  #: epoch time the batch read the scores' inputs (staleness counts from here)


def _once(on_send):
    """``on_send`` on the first call only: a lookup is "sent" when its first command is written."""
    if on_send is None:
        return None
    called = False

    def send() -> None:
        nonlocal called
        if not called:
            called = True
            on_send()

    return send


class DirectReader:
    """Looks customers up in the store's current generation over ``pool``, following the pointer."""

    def __init__(self, pool: kvclient.RespPool, check_s: float = CHECK_S) -> None:
        self.pool, self.check_s = pool, check_s
        self.generation: Generation | None = None
        self.switches = 0  #: generations followed after the first (refreshes seen by this reader)
        self._next_check = 0.0

    async def open(self, timeout_s: float) -> None:
        """Read the pointer and the current generation's meta; BenchError if nothing is published."""
        loop = asyncio.get_running_loop()
        await self._follow(loop.time() + timeout_s, None)
        if self.generation is None:
            raise BenchError(f"store {self.pool.endpoint} has no published generation (no {store.POINTER!r} key)")
        self.switches = 0
        self._next_check = loop.time() + self.check_s

    async def _command(self, raw: bytes, deadline: float, on_send):
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError()
        return await self.pool.command(raw, remaining, on_send)

    async def _follow(self, deadline: float, on_send) -> None:
        """Re-read the pointer; if it names another generation than ours, load that one's meta and switch."""
        value = await self._command(_GET_POINTER, deadline, on_send)
        if value is None:  # nothing published (or the store was flushed): keep reading what we have
            return
        number = int(value)
        if self.generation is not None and number == self.generation.number:
            return
        prefix = store.key_prefix(number).encode()
        doc = await self._command(kvclient.encode("GET", prefix + b"meta"), deadline, on_send)
        if doc is None:
            raise BenchError(f"store {self.pool.endpoint}: generation {number} is current but has no meta")
        if self.generation is not None and number == self.generation.number:
            return  # another lookup switched to it while this one read the meta
        d = json.loads(doc)
        moved = self.generation is not None
        self.generation = Generation(
            number, prefix, struct.Struct(d["format"]).unpack, d["columns"].index("score"), float(d["meta"]["as_of"])
        )
        self.switches += moved

    async def lookup(self, customer: int, timeout_s: float, on_send=None) -> tuple[float, float] | None:
        """``(score, as_of)`` of ``customer`` in the current generation, or None if it is not there."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        send = _once(on_send)
        if loop.time() >= self._next_check:
            self._next_check = loop.time() + self.check_s
            await self._follow(deadline, send)
        g = self.generation
        raw = await self._command(_get(g, customer), deadline, send)
        if raw is None:
            await self._follow(deadline, send)
            if self.generation is g:  # the generation we read is still current: not a known customer
                return None
            g = self.generation
            raw = await self._command(_get(g, customer), deadline, send)
            if raw is None:
                return None
        return g.unpack(raw)[g.score_at], g.as_of


def _get(g: Generation, customer: int) -> bytes:
    """``GET g<N>:<customer>`` as RESP, built per lookup (~1 µs: the prefix changes with each generation)."""
    key = g.prefix + b"%d" % customer
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)
