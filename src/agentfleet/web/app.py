"""The ASGI application: JSON API, dashboard, /metrics and /healthz in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import agentfleet
from agentfleet import logs
from agentfleet.engines import BUILTIN_ENGINES
from agentfleet.fleet import Fleet
from agentfleet.serialize import WORKER_WINDOW
from agentfleet.store.tokens import Tokens
from agentfleet.web import api, api_lease, api_plans, api_worker, errors, pages, reaper
from agentfleet.web.auth import Auth, Principal, read_access
from agentfleet.web.metrics import FleetMetrics
from agentfleet.web.schemas import Health

log = logging.getLogger("agentfleet.web")

MAX_BODY_BYTES = 1024 * 1024
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
# Requests the dashboard repeats many times a second: logged at debug level only.
QUIET_PATHS = frozenset({"/healthz", "/metrics"})
WORKER_API = "/api/worker/"  # remote workers' claims and heartbeats: many, all routine


def create_app(
    fleet: Fleet,
    *,
    token: str,
    public_read: bool = False,
    allowed_hosts: Sequence[str] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    worker_window: float = WORKER_WINDOW,
    poll_interval: float = 0.8,
    metrics: FleetMetrics | None = None,
    on_shutdown: Callable[[], None] | None = None,
    engines: Collection[str] = BUILTIN_ENGINES,
) -> FastAPI:
    """Build the app over an open Fleet.

    `token` (the admin's) guards every change (and every read unless `public_read`), and so
    does any live token of the store (`agentfleet tokens create`), as far as its role allows;
    `allowed_hosts`
    limits the Host header (the server passes its loopback names, which stops DNS rebinding).
    `on_shutdown` runs when the server stops gracefully (it closes the fleet). `engines`
    are those a job or plan sent here may name: no worker takes a job of another engine.
    """
    auth = Auth(token, public_read, Tokens(fleet.store.dialect))
    logs.register_secret(token)
    app = FastAPI(
        title="agentfleet",
        version=agentfleet.__version__,
        description=(
            "HTTP API of an agentfleet job queue. Send `Authorization: Bearer <token>`; "
            'errors are `{"error": {"code", "message"}}` with a stable code.'
        ),
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(on_shutdown),
    )
    app.state.fleet = fleet
    app.state.auth = auth
    app.state.worker_window = worker_window
    app.state.poll_interval = poll_interval
    app.state.engines = frozenset(engines) | BUILTIN_ENGINES
    app.state.metrics = metrics or FleetMetrics(fleet, worker_window=worker_window)
    errors.install(app)

    @app.exception_handler(pages.LoginRequired)
    async def _login(request: Request, exc: pages.LoginRequired) -> Response:
        return RedirectResponse("/login?" + urlencode({"next": exc.next_path}), status_code=303)

    app.include_router(api.router)
    app.include_router(api_plans.router)
    app.include_router(api_lease.router)
    app.include_router(api_worker.router)
    app.include_router(pages.router)
    app.mount(
        "/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static"
    )

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Liveness and DB check")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "now": fleet.now().isoformat()}

    @app.get(
        "/metrics",
        tags=["metrics"],
        summary="Prometheus metrics (text format)",
        response_class=Response,
    )
    def metrics_route(request: Request, _: Annotated[Principal, Depends(read_access)]) -> Response:
        body = request.app.state.metrics.scrape_text()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(TokenLink, auth=auth)
    app.add_middleware(Observe, app_state=app.state)
    return app


def _lifespan(on_shutdown: Callable[[], None] | None) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reaping = asyncio.create_task(reaper.reap_forever(app.state.fleet))
        try:
            yield
        finally:
            reaping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaping
        if on_shutdown is not None:
            on_shutdown()

    return lifespan


class Observe:
    """Security headers on every response; a log line and metrics for every request."""

    def __init__(self, app: ASGIApp, app_state: Any) -> None:
        self.app = app
        self.state = app_state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    if key not in headers:
                        headers[key] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.state.metrics.observe_http(method, template, status, seconds)
            path = scope.get("path", "")
            quiet = (
                path in QUIET_PATHS
                or path.startswith(WORKER_API)
                or _header(scope, b"x-live") is not None
            )
            query = scope.get("query_string", b"").decode("latin-1")
            logs.event(
                log,
                "http.request_completed" if status < 500 else "http.request_failed",
                level=logging.DEBUG if quiet and status < 400 else logging.INFO,
                method=method,
                path=path,
                query=logs.redact_url("?" + query)[1:] if query else None,
                route=template,
                status=status,
                duration_ms=round(seconds * 1000, 2),
                client=(scope.get("client") or ("?",))[0],
            )


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, whether declared or streamed.

    The body is read (at most `max_bytes`) before the route runs, so a route never sees a
    truncated body and nothing is written when a body is refused.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = errors.error_response(
            413, "too_large", f"the request body is over {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


class TokenLink:
    """``?token=...`` on a dashboard address signs the browser in and drops the token from
    the address (so it does not stay in the history or leak to later requests)."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope.get("method") != "GET"
            or path.startswith(("/api/", "/static/", "/metrics", "/healthz"))
            or b"token=" not in scope.get("query_string", b"")
        ):
            await self.app(scope, receive, send)
            return
        pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        given = next((v for k, v in pairs if k == "token"), None)
        if given is None:
            await self.app(scope, receive, send)
            return
        rest = urlencode([(k, v) for k, v in pairs if k != "token"])
        target = pages.safe_next(path) + (f"?{rest}" if rest else "")
        response: Response
        who = self.auth.principal_of(given, "session")
        if who is not None:
            response = RedirectResponse(target, status_code=303)
            request = Request(scope)
            pages.set_session(response, request, who)
            logs.event(log, "auth.token_link_accepted", path=path)
        else:
            query = urlencode({"next": target, "error": "That token is not right."})
            response = RedirectResponse(f"/login?{query}", status_code=303)
            logs.event(log, "auth.token_link_rejected", level=logging.WARNING, path=path)
        await response(scope, receive, send)
