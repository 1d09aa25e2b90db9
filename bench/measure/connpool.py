"""What the load generator's two clients share (HTTP, ``httpclient``; Redis protocol, ``kvclient``): a
pool of kept-alive connections, one request in flight on each, a request taking an idle connection,
a new one while under ``max_connections``, or waiting for one in arrival order."""

from __future__ import annotations

import asyncio
import socket
from collections import deque

from bench.core.errors import BenchError


class Connection(asyncio.Protocol):
    """One kept-alive connection, one request in flight at a time: ``send`` writes it, its future gets
    the answer (set by the protocol's ``data_received``) or the failure. ``lost_error`` is the
    exception type a lost connection fails the request with."""

    lost_error: type[Exception] = ConnectionError

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost_error(f"connection lost: {exc or 'closed by server'}"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def send(self, raw: bytes, on_send=None) -> asyncio.Future:
        """Write one request now; the returned future gets its answer or the failure."""
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        if on_send is not None:
            on_send()
        self.transport.write(raw)
        return self.waiter


def expire(conn: Connection, waiter: asyncio.Future) -> None:
    """A request's time is up: fail it with TimeoutError and close its connection (a late answer is void)."""
    conn.close()
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class ConnectionPool:
    """Up to ``max_connections`` connections (``_connect`` opens one); ``_exchange`` sends a request."""

    def __init__(self, max_connections: int) -> None:
        if max_connections <= 0:
            raise BenchError(f"max_connections must be > 0, got {max_connections}")
        self.max_connections = max_connections
        self.idle: deque[Connection] = deque()
        self.open = 0
        self._waiting: deque[asyncio.Future] = deque()  #: requests waiting for a connection, oldest first

    async def _connect(self) -> Connection:
        raise NotImplementedError

    async def warm(self, n: int) -> None:
        """Open ``n`` connections now, so connection set-up is not inside any measured request."""
        conns = await asyncio.gather(*(self._connect() for _ in range(min(n, self.max_connections))))
        self.open += len(conns)
        self.idle.extend(conns)

    def _put_back(self, conn: Connection) -> None:
        """Return ``conn`` to the pool (or count it gone) and wake the oldest request waiting for one."""
        if conn.closed:
            self.open -= 1
        else:
            self.idle.append(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiting:
            freed = self._waiting.popleft()
            if not freed.done():  # (a waiter cancelled at the deadline is skipped)
                freed.set_result(None)
                return

    async def _take(self) -> Connection:
        """An idle connection, a new one while under ``max_connections``, else wait for one (FIFO)."""
        while True:
            while self.idle:
                conn = self.idle.popleft()
                if not conn.closed:
                    return conn
                self.open -= 1
            if self.open < self.max_connections:
                self.open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self.open -= 1
                    raise
            freed = asyncio.get_running_loop().create_future()
            self._waiting.append(freed)
            try:
                await freed
            except asyncio.CancelledError:
                if freed.done() and not freed.cancelled():  # woken, then cancelled: pass the wake-up on
                    self._wake_one()
                raise

    async def _exchange(self, raw: bytes, timeout_s: float, on_send=None):
        """Send ``raw`` on a connection and return its answer; a timeout closes the connection.

        ``on_send`` is called just before the bytes are written (after waiting for a free connection).
        A request is one future and one timer on the loop, no task of its own: ``asyncio.wait_for``
        (Python 3.11) wraps the awaited coroutine in a task, one more loop pass to send and one more
        to hand the answer back.
        """
        conn = await self._take()
        try:
            waiter = conn.send(raw, on_send)
        except BaseException:
            self._put_back(conn)
            raise
        timer = waiter.get_loop().call_later(max(timeout_s, 0.0), expire, conn, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:  # the window ended first: the connection's answer is void
            expire(conn, waiter)
            raise
        finally:
            timer.cancel()
            self._put_back(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
