"""Deadlines on what a client sends, so slow or stalled clients cannot hold connections,
file descriptors and memory for ever: a request's headers must arrive within
WEB_HEADER_TIMEOUT seconds of its first byte (of the connection, for the first request;
slowloris), and its body may not stall for more than WEB_BODY_TIMEOUT seconds between
two reads (a stalled upload answers 408). Idle keep-alive connections are closed by
uvicorn's own `timeout_keep_alive`, and connections beyond WEB_MAX_CONNECTIONS are
closed as they open (uvicorn's `limit_concurrency` still accepts them, then answers 503)."""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not
    complete `header_timeout` seconds after the connection opened or the request's first
    byte came (uvicorn itself waits for headers without a limit)."""

    header_timeout: float = 10.0
    max_connections: int = 1000
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.logger.warning("closing a connection over the %s-connection limit", self.max_connections)
            transport.close()
            return
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers():
            self._arm_header_deadline()  # no-op while armed: trickled bytes do not extend it
        super().data_received(data)
        if not self._awaiting_headers():
            self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self._awaiting_headers() and not self.transport.is_closing():
            self.logger.info("closing a connection whose request headers did not arrive in %s s", self.header_timeout)
            self.transport.close()


def header_deadline_protocol(seconds: float, max_connections: int) -> type[H11Protocol]:
    """The protocol class for uvicorn's `http=` option: a `seconds` header deadline and at
    most `max_connections` open connections."""
    attributes = {"header_timeout": seconds, "max_connections": max_connections}
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), attributes)


class BodyTimeout:
    """Answers 408 when a request body stalls: each read of it may wait at most
    `seconds` (a slow but moving upload goes on; after the body, reads are left alone, so
    a live progress stream can wait for its client's disconnect)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False

        async def bounded() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except asyncio.TimeoutError:
                raise StarletteHTTPException(408, f"request body stalled for {self.seconds:g} s") from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, bounded, send)
