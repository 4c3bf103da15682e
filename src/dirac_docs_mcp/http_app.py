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
* a read timeout (408): request headers must arrive within ``read_timeout_s`` of the
  connection (or of the previous response), and a body may not pause longer than that;
* idle sessions closed after ``session_idle_s`` (each holds tens of KB);
* ``GET /healthz`` answering ``ok`` without a token (it reveals nothing).

Logs go to stderr only (uvicorn's access log included).
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import ipaddress
import logging
import socket
from collections.abc import Iterable

import anyio
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
DEFAULT_READ_TIMEOUT_S = 30.0
DEFAULT_SESSION_IDLE_S = 1800.0
MIN_TOKEN_CHARS = 16
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
    """Refuse to listen beyond loopback without a bearer token, and refuse weak tokens."""
    if bearer_token is not None and len(bearer_token.strip()) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"the HTTP bearer token (DIRAC_MCP_HTTP_BEARER_TOKEN) must be at least "
            f"{MIN_TOKEN_CHARS} characters, not counting surrounding spaces; generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
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
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.allowed_origins = frozenset(_normalize_origin(o) for o in allowed_origins)
        self.check_host = check_host
        self.token = bearer_token.strip().encode() if bearer_token else None
        self.open_paths = frozenset(open_paths)
        self.read_timeout_s = read_timeout_s
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan; no route accepts a websocket
            await self.app(scope, receive, send)
            return
        response = self._reject(scope)
        if response is not None:
            await response(scope, receive, send)
            return
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            receive = await self._read_body(scope, receive, send)
            if receive is None:
                return
        await self.app(scope, receive, send)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Read the body with a timeout between chunks (a stalled client gets 408), then
        replay it to the app. Reading stops past the size bound, which the SDK answers 413."""
        messages = []
        size = 0
        while True:
            with anyio.move_on_after(self.read_timeout_s) as scope_timer:
                message = await receive()
            if scope_timer.cancelled_caught:
                log.warning("request body stalled for %.0f s; 408", self.read_timeout_s)
                await PlainTextResponse(
                    "Request body timed out", status_code=408, headers={"Connection": "close"}
                )(scope, receive, send)
                return None
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False) or size > self.max_body_bytes:
                break

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        return replay

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
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    session_idle_s: float = DEFAULT_SESSION_IDLE_S,
) -> Starlette:
    """The ASGI app for ``server`` on ``host:port``: MCP at ``/mcp``, ``GET /healthz``."""
    check_bind(host, bearer_token)
    if max_body_bytes <= 0:
        raise ConfigError("http_max_body_bytes must be a positive number of bytes")
    if read_timeout_s <= 0 or session_idle_s <= 0:
        raise ConfigError("http_read_timeout_s and http_session_idle_s must be positive")
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        max_request_body_size=max_body_bytes,
        session_idle_timeout=session_idle_s,
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
        read_timeout_s=read_timeout_s,
        max_body_bytes=max_body_bytes,
    )
    return app


def _header_timeout_protocol(read_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline on request headers: a connection that has not
    sent a complete request head within ``read_timeout_s`` (slowloris) gets 408 and is
    closed. uvicorn has no such timeout of its own (only keep-alive idleness)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:
                self._arm_header_timer()  # waiting for (the rest of) a request head
            else:
                self._cancel_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(read_timeout_s, self._header_timeout)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.conn.our_state is not h11.IDLE:  # a response in flight: not ours to cut
                return
            log.warning("request head not received within %.0f s; 408", read_timeout_s)
            body = b"Request head timed out"
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            self.transport.close()

    return HeaderTimeoutH11Protocol


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use or out of range is a one-line
    ConfigError (exit 2) instead of uvicorn's log line and exit 1."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be between 0 and 65535, not {port}")
    name = host.strip("[]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


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
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    session_idle_s: float = DEFAULT_SESSION_IDLE_S,
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
        read_timeout_s=read_timeout_s,
        session_idle_s=session_idle_s,
    )
    sock = _bind(host, port)
    level = server.settings.log_level
    config = uvicorn.Config(
        app,
        host=host.strip("[]"),
        port=port,
        log_level=level.lower(),
        log_config=_log_config(level),
        timeout_graceful_shutdown=5,
        server_header=False,
        http=_header_timeout_protocol(read_timeout_s),
    )
    log.info(
        "MCP streamable HTTP on http://%s:%d%s (%s)",
        _url_host(host),
        port,
        MCP_PATH,
        "bearer token required" if bearer_token else "no token, loopback only",
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
