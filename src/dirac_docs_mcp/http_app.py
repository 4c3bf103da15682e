"""Streamable HTTP transport: the SDK's app behind a small guard.

The SDK serves both protocol generations on one endpoint (``/mcp``): the 2025-11-25
``initialize`` handshake and the 2026-07-28 per-request protocol. Around it this module adds
what a network listener needs and the SDK leaves to the host:

* loopback by default; any other address only with a bearer token (``check_bind``);
* ``Authorization: Bearer <token>`` on every request when a token is configured
  (constant-time compare; 401 with ``WWW-Authenticate`` otherwise);
* DNS-rebinding protection on every route: a request whose ``Origin`` is present and not
  allowed gets 403, and on a loopback bind a ``Host`` that is not a loopback name gets 421;
* a bound on the request body (413), enforced by the SDK's ``max_request_body_size``;
* ``GET /healthz`` answering ``ok`` without a token (it reveals nothing).

Logs go to stderr only (uvicorn's access log included).
"""

from __future__ import annotations

import copy
import hmac
import ipaddress
import logging
from collections.abc import Iterable

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_BODY_BYTES = 1_000_000
MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
REALM = "dirac-docs-mcp"


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (with or without brackets)."""
    name = host.strip().lower().strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, bearer_token: str | None) -> None:
    """Refuse to listen beyond loopback without a bearer token."""
    if not is_loopback(host) and not bearer_token:
        raise ConfigError(
            f"refusing to serve HTTP on {host!r} without a bearer token: anyone who can reach "
            "that address could use the server. Bind a loopback address (127.0.0.1, ::1, "
            "localhost) or set a token (DIRAC_MCP_HTTP_BEARER_TOKEN)."
        )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def default_origins(port: int) -> list[str]:
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"]


def _normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def _host_name(host_header: str) -> str:
    """The name part of a Host header: ``[::1]:8000`` → ``::1``, ``a.b:80`` → ``a.b``."""
    value = host_header.strip()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HTTPGuard:
    """ASGI middleware in front of every route: Host/Origin checks, then the bearer token."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_origins: Iterable[str],
        check_host: bool,
        bearer_token: str | None,
        open_paths: Iterable[str] = (HEALTH_PATH,),
    ) -> None:
        self.app = app
        self.allowed_origins = frozenset(_normalize_origin(o) for o in allowed_origins)
        self.check_host = check_host
        self.token = bearer_token.encode() if bearer_token else None
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan; no route accepts a websocket
            await self.app(scope, receive, send)
            return
        response = self._reject(scope)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _reject(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        if self.check_host and not is_loopback(_host_name(headers.get("host", ""))):
            log.warning("rejected request with Host %r", headers.get("host"))
            return PlainTextResponse("Invalid Host header", status_code=421)
        origin = headers.get("origin")
        if origin is not None and _normalize_origin(origin) not in self.allowed_origins:
            log.warning("rejected request from Origin %r", origin)
            return PlainTextResponse("Origin not allowed", status_code=403)
        if self.token is None or scope.get("path") in self.open_paths:
            return None
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), self.token
        ):
            return None
        challenge = f'Bearer realm="{REALM}"'
        if presented:
            challenge += ', error="invalid_token"'
        return PlainTextResponse(
            "Unauthorized", status_code=401, headers={"WWW-Authenticate": challenge}
        )


async def _healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


def build_http_app(
    server: MCPServer,
    *,
    host: str = DEFAULT_HOST,
    port: int,
    bearer_token: str | None = None,
    allowed_origins: list[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """The ASGI app for ``server`` on ``host:port``: MCP at ``/mcp``, ``GET /healthz``."""
    check_bind(host, bearer_token)
    if max_body_bytes <= 0:
        raise ConfigError("http_max_body_bytes must be a positive number of bytes")
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        max_request_body_size=max_body_bytes,
        # Host/Origin are checked by HTTPGuard for every route and every bind address;
        # the SDK still checks Content-Type.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host=host,
    )
    app.add_route(HEALTH_PATH, _healthz, methods=["GET"])
    app.add_middleware(
        HTTPGuard,
        allowed_origins=[*default_origins(port), *(allowed_origins or [])],
        check_host=is_loopback(host),
        bearer_token=bearer_token or None,
    )
    return app


def _log_config(level: str) -> dict:
    import uvicorn.config

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout is not ours to use
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"][name]["level"] = level.upper()
    return config


def run_http(
    server: MCPServer,
    host: str = DEFAULT_HOST,
    port: int = 8000,
    bearer_token: str | None = None,
    allowed_origins: list[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Serve until interrupted (SIGINT/SIGTERM shut down cleanly)."""
    import uvicorn

    app = build_http_app(
        server,
        host=host,
        port=port,
        bearer_token=bearer_token,
        allowed_origins=allowed_origins,
        max_body_bytes=max_body_bytes,
    )
    level = server.settings.log_level
    config = uvicorn.Config(
        app,
        host=host.strip("[]"),
        port=port,
        log_level=level.lower(),
        log_config=_log_config(level),
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    log.info(
        "MCP streamable HTTP on http://%s:%d%s (%s)",
        _url_host(host),
        port,
        MCP_PATH,
        "bearer token required" if bearer_token else "no token, loopback only",
    )
    uvicorn.Server(config).run()
