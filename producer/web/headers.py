"""Security headers on every response: a Content-Security-Policy (scripts and styles from
this service only; no framing), X-Content-Type-Options, X-Frame-Options, a Referrer-Policy,
and a Cache-Control where the route set none: `no-store` (pages, reports and photos hold
people's faces and file names), `no-cache` for the static files."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Inline style attributes draw the bars and colour dots; every script is /static/app.js.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc pages start their viewers with an inline script.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


def photo_cache_control(seconds: int) -> str:
    """Cache-Control of photos and face crops: kept nowhere unless WEB_CACHE_PHOTOS opts in."""
    return f"private, max-age={seconds}" if seconds > 0 else "no-store"


class SecurityHeaders:
    """Adds the headers above to every HTTP response (the route's own Cache-Control wins)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        policy = DOCS_POLICY if path.startswith(DOCS_PATHS) else PAGE_POLICY
        cache = "no-cache" if path.startswith("/static/") else "no-store"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", policy)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("Cache-Control", cache)
            await send(message)

        await self.app(scope, receive, with_headers)
