"""The web service's guards: the token, loopback addresses and the allowed roots."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from emotion_batch.errors import ConfigurationError, ForbiddenPathError, RequestRefusedError

COOKIE = "emotion_batch_token"


def is_loopback(host: str) -> bool:
    """True when `host` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_can_listen(host: str, has_token: bool) -> None:
    """Refuse to start beyond loopback without a token."""
    if not has_token and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to listen on {host} without a token: set WEB_TOKEN (e.g. `openssl rand -hex 24`), "
            "or listen on 127.0.0.1"
        )


def host_name(host: str | None) -> str | None:
    """The name in a Host header (`[::1]:8000` -> `::1`), lower case; None when absent."""
    if not host:
        return None
    try:
        return urlsplit(f"//{host}").hostname
    except ValueError:  # not a host at all (an unclosed bracket)
        return None


def host_allowed(host: str | None, extra: Sequence[str]) -> bool:
    """True when the request's Host header names this machine (loopback) or one of the
    `extra` names. Without a token this is what stops DNS rebinding: a page of another
    site whose name has been pointed at 127.0.0.1 still sends its own name as Host."""
    name = host_name(host)
    if name is None:
        return False
    return is_loopback(name) or name in {e.lower().strip("[]") for e in extra}


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the request's token with the setting."""
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())


def request_token(authorization: str | None, cookie: str | None) -> str | None:
    """The token a request carries: `Authorization: Bearer TOKEN`, else the login cookie."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return cookie


def same_origin(origin: str | None, host: str | None) -> bool:
    """True when a request has no Origin (not from a browser page) or comes from a page
    of this very service (same host and port)."""
    if not origin:
        return True
    return urlsplit(origin).netloc.lower() == (host or "").lower()


def allowed_source(source: str, allowed: Sequence[str]) -> str:
    """`source` when the service may open it: a local camera (`0`, `/dev/video0`), or a
    source LIVE_SOURCES lists (exactly, or under a prefix ending in `*`); ForbiddenPathError
    otherwise, so the service can never be made to reach an arbitrary URL."""
    from emotion_batch.live import is_camera, shown

    source = source.strip()
    if is_camera(source):
        return source
    for rule in allowed:
        if source == rule or (rule.endswith("*") and source.startswith(rule[:-1])):
            return source
    why = "not an allowed live source (local cameras only unless LIVE_SOURCES lists it)"
    raise ForbiddenPathError(f"{shown(source)}: {why}")


def allowed_path(raw: str, roots: Sequence[Path]) -> Path:
    """`raw` as an absolute real path (links resolved) when it lies under one of `roots`;
    ForbiddenPathError otherwise, before the filesystem is asked whether it exists."""
    if not roots:
        raise ForbiddenPathError("server paths are refused: no allowed roots are configured (ALLOWED_ROOTS)")
    if "\x00" in raw or not raw.strip():
        raise RequestRefusedError(f"not a path: {raw!r}")
    path = Path(raw)
    if not path.is_absolute():
        raise ForbiddenPathError(f"{raw}: give an absolute path under the allowed roots")
    real = Path(os.path.realpath(path))
    for root in roots:
        if real.is_relative_to(os.path.realpath(root)):
            return real
    raise ForbiddenPathError(f"{raw}: outside the allowed roots {', '.join(map(str, roots))} (ALLOWED_ROOTS sets them)")
