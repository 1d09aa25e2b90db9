"""uvicorn's httptools protocol with a bound on request headers: the one wait uvicorn leaves open.

uvicorn 0.54 arms no timer while a request's headers arrive: ``timeout_keep_alive`` starts only after
a response and is cancelled by the next request's first byte, so a client that connects and sends
nothing, or sends half a request line and stalls, holds a connection (and its file descriptor) for
ever. Here a timer runs from the connection's start, and from each request's first byte, until its
headers are complete; when it fires the client gets a 408 and the connection is closed. The body
has its own bound in the app (``ServerConfig.body_timeout_s``, :func:`bench.systems.http_app.read_body`).
The server is started with ``--http bench.systems.http_protocol:BoundedHeadersProtocol``.
"""

from __future__ import annotations

import asyncio
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bench.systems.server_config import ServerConfig

_RESPONSE_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s"
)


def _header_timeout_s() -> float:
    """The bound the server was configured with (read once per worker process)."""
    return ServerConfig.from_env(os.environ).header_timeout_s


class BoundedHeadersProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose request headers must arrive within ``ServerConfig.header_timeout_s``."""

    header_timeout_s: float | None = None  #: set on first use, from the server's configuration

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if BoundedHeadersProtocol.header_timeout_s is None:
            BoundedHeadersProtocol.header_timeout_s = _header_timeout_s()
        self._headers_timer: asyncio.TimerHandle | None = None
        self._arm_headers_timer()

    def _arm_headers_timer(self) -> None:
        self._cancel_headers_timer()
        self._headers_timer = self.loop.call_later(self.header_timeout_s, self._headers_timed_out)

    def _cancel_headers_timer(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _headers_timed_out(self) -> None:
        self._headers_timer = None
        if self.transport.is_closing():
            return
        msg = f"request headers did not arrive within {self.header_timeout_s:g} s".encode()
        self.transport.write(_RESPONSE_408 % (len(msg), msg))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_headers_timer()

    def on_headers_complete(self) -> None:
        self._cancel_headers_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_headers_timer()
        super().connection_lost(exc)
