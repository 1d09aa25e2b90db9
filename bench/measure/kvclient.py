"""A minimal Redis-protocol (RESP2) client on asyncio protocols over kept-alive connections: the load
generator's side of a lookup read straight from an online store (the hybrid pattern's ``lookup="direct"``).

Why not ``valkey.asyncio``: as with HTTP (``bench.measure.httpclient``), a general-purpose client
costs more than the server it measures. Open loop at 1,000 GETs/s of a packed 8-byte value on the
2-core VM (nothing pinned), 10,111 lookups each, the service time (written to answered) was p50
93 µs / p99 0.50 ms through ``valkey.asyncio`` 6.2 + hiredis (1.8 CPU-s in the generator) and p50
25 µs / p99 0.22 ms with this client (0.9 CPU-s), the server's own CPU the same (~0.2 CPU-s). It
writes each command as one RESP array built in place and lets hiredis's C reader parse the reply, so
what is timed is the store's round trip, not a client library's Python.

One command in flight per connection (no pipelining), as the HTTP pool; a command that times out
closes its connection (a late reply is void); a lost connection fails its command with
:class:`ConnectionError` (an ``OSError``: the load generator counts it as a connection failure), an
error reply with :class:`RespError`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from bench.core.errors import BenchError
from bench.measure.connpool import Connection, ConnectionPool

#: URL schemes this client speaks (no TLS: the servers a run starts listen on loopback)
SCHEMES = ("valkey", "redis", "unix")


class RespError(Exception):
    """The server answered a command with an error reply (``-ERR ...``)."""


def encode(*args: bytes | str | int) -> bytes:
    """One command as a RESP array of bulk strings, ready to write."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens and what a new connection must send before its first command."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str = ""  #: a unix socket's path (then host and port are unused)
    username: str = ""
    password: str = ""
    db: int = 0

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        """``valkey://[user:password@]host:port[/db]``, ``redis://...`` or ``unix:///path[?db=N]``."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise BenchError(f"store URL {url!r} must start with one of {', '.join(s + '://' for s in SCHEMES)}")
        try:
            if parts.scheme == "unix":
                query = dict(q.split("=", 1) for q in parts.query.split("&") if "=" in q)
                db = int(query.get("db", 0))
                return cls(path=unquote(parts.path), password=unquote(query.get("password", "")), db=db)
            db = int(parts.path.strip("/") or 0)
            port = parts.port or 6379
        except ValueError as exc:
            raise BenchError(f"store URL {url!r} is not a valid server URL: {exc}") from exc
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            db=db,
        )

    def handshake(self) -> list[bytes]:
        """The commands a new connection sends first: AUTH with a password, SELECT for a db other than 0."""
        out = []
        if self.password:
            out.append(encode("AUTH", *([self.username] if self.username else []), self.password))
        if self.db:
            out.append(encode("SELECT", self.db))
        return out

    def __str__(self) -> str:
        return self.path or f"{self.host}:{self.port}"


class _Connection(Connection):
    """One kept-alive connection, one command in flight at a time."""

    lost_error = ConnectionError

    def __init__(self) -> None:
        import hiredis  # lazy: only a direct lookup needs the C reply parser

        super().__init__()
        self.reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            waiter, self.waiter = self.waiter, None
            if waiter is None or waiter.done():  # nothing asked for it: the stream is out of step
                self.close()
                return
            if isinstance(reply, Exception):
                waiter.set_exception(RespError(str(reply)))
            else:
                waiter.set_result(reply)


class RespPool(ConnectionPool):
    """Up to ``max_connections`` kept-alive connections to one server; a command takes an idle one."""

    def __init__(self, endpoint: Endpoint, max_connections: int = 64, connect_timeout_s: float = 2.0) -> None:
        super().__init__(max_connections)
        self.endpoint, self.connect_timeout_s = endpoint, connect_timeout_s

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        e = self.endpoint
        try:
            if e.path:
                _, conn = await asyncio.wait_for(
                    loop.create_unix_connection(_Connection, e.path), self.connect_timeout_s
                )
            else:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(_Connection, e.host, e.port), self.connect_timeout_s
                )
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to {e}: {getattr(exc, 'strerror', None) or exc!r}") from exc
        for raw in e.handshake():
            try:
                await asyncio.wait_for(conn.send(raw), self.connect_timeout_s)
            except BaseException:
                conn.close()
                raise
        return conn

    async def command(self, raw: bytes, timeout_s: float, on_send=None):
        """Send one encoded command (:func:`encode`) and return its reply (bytes, int, list or None);
        ``on_send`` is called just before the bytes are written."""
        return await self._exchange(raw, timeout_s, on_send)
