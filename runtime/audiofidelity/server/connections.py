"""Connection limits uvicorn lacks: a client must finish its request line and headers within a deadline.

uvicorn times out idle keep-alive connections and ``--request-timeout`` covers a stalled body, but a client that
sends half a header and stops holds its connection forever. ``HeaderDeadlineH11`` (uvicorn's h11 protocol)
closes a connection whose next request has not fully arrived ``HEADER_SECONDS`` after the connection opened or
the previous response ended. What still needs a reverse proxy: many slow clients at once (up to
``MAX_CONNECTIONS`` are served, then uvicorn answers 503), TLS, and rate limits per address.
"""
from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0


class HeaderDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline on the request line and headers (see the module docstring)."""

    header_seconds = HEADER_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.header_seconds, self._expire, self.cycle)

    def _expire(self, cycle_when_armed) -> None:
        if self.cycle is cycle_when_armed and not self.transport.is_closing():  # no new request has begun
            self.transport.close()
