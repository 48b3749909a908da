"""The web service: one FastAPI app serving the JSON API (`/api`, docs at `/docs`) and the
pages, on the same settings, database and Redis as the CLI, through the same functions
(submit, resume, retry, the report, the HTML report)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.session import database_problem
from emotion_batch.config import Settings
from emotion_batch.errors import (
    BrokerUnavailableError,
    DatabaseUnavailableError,
    EmotionBatchError,
    JobNotFoundError,
    PathNotFoundError,
    RequestRefusedError,
)
from producer.web import api_jobs, api_results, live, pages
from producer.web.deps import WebState
from producer.web.headers import SecurityHeaders
from producer.web.security import COOKIE, host_allowed, request_token, same_origin, token_matches
from producer.web.timeouts import BodyTimeout

HERE = Path(__file__).parent
OPEN_PATHS = ("/healthz", "/login", "/static/")
DOCS_ASSETS = "/docs-assets"
RETRY_AFTER_S = 5  # what a 503 for a busy database or broker suggests
log = logging.getLogger(__name__)


def error(status: int, message: str) -> JSONResponse:
    """The one shape of every refusal: {"error": "...", "status": N}; a 503 says when to retry."""
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


class BodyLimit:
    """Refuses request bodies over `limit` bytes: at once from Content-Length, else while
    the body streams in (an HTTPException, which FastAPI passes through body parsing)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await self._too_large()(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise StarletteHTTPException(413)
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> JSONResponse:
        return error(413, f"request body over the {self.limit}-byte limit (MAX_UPLOAD_BYTES)")


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def create_app(settings: Settings) -> FastAPI:
    """The app for `settings` (migrates the database first, like every CLI command)."""
    # The API docs (/docs) load Swagger UI's scripts and styles from the fastapi-offline
    # wheel, served under DOCS_ASSETS: no CDN, so they work with no network. No /redoc:
    # ReDoc's bundle fetches its logo from its CDN whatever its options.
    app = FastAPIOffline(
        title="emotion-batch",
        description="Batch emotion analysis: jobs, progress, reports, faces.",
        version="1",
        static_url=DOCS_ASSETS,
        redoc_url=None,
        swagger_ui_parameters={"validatorUrl": None},  # Swagger UI would ask validator.swagger.io
    )
    app.state.web = WebState(settings)
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for routes in (api_jobs, api_results, live, pages):
        app.include_router(routes.router)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)  # inside the token check
    app.add_middleware(BodyTimeout, seconds=settings.web_body_timeout)
    app.middleware("http")(_token_check(settings))
    app.add_middleware(SecurityHeaders)  # outermost: refusals and redirects get the headers too
    _handle_errors(app, settings)
    return app


def _token_check(settings: Settings):  # noqa: ANN202 (an HTTP middleware function)
    """The middleware that refuses other hosts, cross-site writes and a missing token."""

    async def require_token(request: Request, call_next):  # noqa: ANN202
        token = settings.web_token.get_secret_value() if settings.web_token else None
        if not token and not host_allowed(request.headers.get("host"), settings.web_allowed_hosts):
            # DNS rebinding: without a token only this machine's own names are served.
            return error(403, "host name not allowed without WEB_TOKEN: use 127.0.0.1 or localhost (WEB_ALLOWED_HOSTS)")
        if request.method not in ("GET", "HEAD", "OPTIONS") and not same_origin(
            request.headers.get("origin"), request.headers.get("host")
        ):
            # Another site's page posting here (a form needs no CORS preflight): refused,
            # even on loopback without a token.
            return error(403, "cross-site request refused: Origin does not match Host")
        path = request.url.path
        if not token or any(path == p or (p.endswith("/") and path.startswith(p)) for p in OPEN_PATHS):
            return await call_next(request)
        given = request_token(request.headers.get("authorization"), request.cookies.get(COOKIE))
        if token_matches(token, given):
            return await call_next(request)
        if _wants_html(request):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return error(401, "missing or wrong token: send `Authorization: Bearer TOKEN`")

    return require_token


def _handle_errors(app: FastAPI, settings: Settings) -> None:
    """Every error as the one JSON shape (`error`), with its status."""

    @app.exception_handler(RequestRefusedError)
    async def refused(_request: Request, exc: RequestRefusedError) -> JSONResponse:
        return error(exc.status, str(exc))

    @app.exception_handler(JobNotFoundError)  # before EmotionBatchError in their MRO
    @app.exception_handler(PathNotFoundError)
    @app.exception_handler(LookupError)
    async def not_found(_request: Request, exc: LookupError) -> JSONResponse:
        return error(404, str(exc).strip("'\""))

    @app.exception_handler(BrokerUnavailableError)
    async def broker_down(_request: Request, exc: BrokerUnavailableError) -> JSONResponse:
        return error(503, str(exc))

    @app.exception_handler(DatabaseUnavailableError)
    async def database_down(_request: Request, exc: DatabaseUnavailableError) -> JSONResponse:
        return error(503, str(exc))

    @app.exception_handler(OperationalError)
    async def database_busy(_request: Request, exc: OperationalError) -> JSONResponse:
        # locked past the busy timeout, a server restarting, a full disk: the database's
        # state, not the request's fault; nothing of the request was committed
        log.warning("database refused a request: %s", exc.orig)
        return error(503, f"{database_problem(exc)}; retry in a few seconds")

    @app.exception_handler(EmotionBatchError)
    async def other_error(_request: Request, exc: EmotionBatchError) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413:  # the body limit
            return error(413, f"request body over the {settings.max_upload_bytes}-byte limit (MAX_UPLOAD_BYTES)")
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"error": problems, "status": 422}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")  # to the server's log, never to the client
        return error(500, f"internal error ({type(exc).__name__}); see the server log")
