"""A minimal HTTP/1.1 client on asyncio protocols over kept-alive connections, for the load generator.

General-purpose Python clients cost more than the server they measure (httpx saw p50 1.7 ms where a
C tool saw 0.9 ms on the same server); this one writes pre-encoded requests and parses only the
status line and Content-Length, so the client's share of a round trip stays small and known.
"""

from __future__ import annotations

import asyncio

from bench.measure.connpool import Connection, ConnectionPool


class HttpError(Exception):
    """A request that did not complete: connection refused or lost, malformed response."""


class _Connection(Connection):
    """One kept-alive connection, one request in flight at a time (no pipelining)."""

    lost_error = HttpError

    def __init__(self) -> None:
        super().__init__()
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buf[:end]).decode("latin-1")
        length = None
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:  # chunked or close-delimited: not what a model server should send
            self.waiter.set_exception(HttpError(f"response without Content-Length: {head.splitlines()[0]!r}"))
            if self.transport is not None:
                self.transport.close()
            return
        if len(self.buf) < end + 4 + length:
            return
        status = int(head.split(" ", 2)[1])
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        self.waiter.set_result((status, body))


class HttpPool(ConnectionPool):
    """Up to ``max_connections`` kept-alive connections to one host:port; a request takes an idle one."""

    def __init__(self, host: str, port: int, max_connections: int = 64) -> None:
        super().__init__(max_connections)
        self.host, self.port = host, port

    def encode(self, method: str, path: str, body: bytes = b"") -> bytes:
        """A complete request, encoded once and reused for every send."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        if body:
            head += "Content-Type: application/json\r\n"
        return head.encode() + b"\r\n" + body

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except OSError as exc:
            raise HttpError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from exc
        return conn

    async def request(self, raw: bytes, timeout_s: float, on_send=None) -> tuple[int, bytes]:
        """Send ``raw`` and return (status, body); a timeout closes the connection (its late answer is
        void). ``on_send`` is called just before the bytes are written."""
        return await self._exchange(raw, timeout_s, on_send)
