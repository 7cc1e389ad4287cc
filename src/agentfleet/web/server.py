"""`agentfleet serve`: run the HTTP API and dashboard with uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import sys
from collections.abc import Collection, Iterable
from typing import TextIO

from starlette.types import ASGIApp, Receive, Scope, Send

import agentfleet
from agentfleet import logs
from agentfleet.errors import InvalidArgument
from agentfleet.web import errors

log = logging.getLogger("agentfleet.web")

LOOPBACK_HOSTNAMES = ("localhost", "127.0.0.1", "::1")
MIN_TOKEN_LENGTH = 16


class ServeRefused(InvalidArgument):
    """The server will not start with these settings (for example exposed without a token)."""


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(token: str | None, host: str) -> tuple[str, bool]:
    """The token to require and whether it was generated just now.

    A token is generated only for a loopback address; anything else must be given one.
    """
    if token is not None and token.strip():
        token = token.strip()
        if len(token) < MIN_TOKEN_LENGTH:
            raise ServeRefused(f"the token must be at least {MIN_TOKEN_LENGTH} characters long")
        return token, False
    if not is_loopback(host):
        raise ServeRefused(
            f"refusing to listen on {host} without a token: set AGENTFLEET_TOKEN or pass "
            "--token (a token is generated only for loopback addresses)"
        )
    return secrets.token_urlsafe(32), True


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


class HostCheck:
    """Answer only to the loopback names when bound to loopback (stops DNS rebinding)."""

    def __init__(self, app: ASGIApp, names: Iterable[str]) -> None:
        self.app = app
        self.names = frozenset(n.lower() for n in names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = ""
            for key, value in scope.get("headers", ()):
                if key == b"host":
                    host = value.decode("latin-1").lower()
                    break
            name = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
            if name not in self.names:
                response = errors.error_response(400, "invalid", "unexpected Host header")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve(
    db_url: str | None,
    host: str = "127.0.0.1",
    port: int = 8700,
    token: str | None = None,
    public_read: bool = False,
    *,
    engines: Collection[str] = (),
    out: TextIO | None = None,
) -> None:
    """Open the database and serve until interrupted (Ctrl-C or SIGTERM)."""
    import uvicorn

    from agentfleet.web.app import create_app

    out = out or sys.stdout
    token = token if token is not None else os.environ.get("AGENTFLEET_TOKEN")
    token, generated = resolve_token(token, host)
    logs.register_secret(token)
    logs.configure(os.environ.get("AGENTFLEET_LOG_LEVEL", "INFO").upper())
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    fleet = agentfleet.open(db_url)
    closed = False

    def close() -> None:
        nonlocal closed
        if not closed:
            closed = True
            fleet.close()
            logs.event(log, "server.stop_completed", host=host, port=port)

    try:
        app: ASGIApp = create_app(
            fleet, token=token, public_read=public_read, on_shutdown=close, engines=engines
        )
        if is_loopback(host):
            app = HostCheck(app, LOOPBACK_HOSTNAMES)
        url = base_url(host, port)
        print(f"agentfleet is serving {logs.redact_url(fleet.url)} at {url}", file=out)
        if generated:
            print(f"Open {url}?token={token} to sign in.", file=out)
            print(f"API token (generated now, shown once): {token}", file=out)
        else:
            print("Sign in with the token you set (AGENTFLEET_TOKEN or --token).", file=out)
        print("Tokens made with `agentfleet tokens create` sign in too, by their role.", file=out)
        if public_read:
            print("Reads are public (--public-read); changes still need the token.", file=out)
        out.flush()
        logs.event(
            log,
            "server.start_completed",
            host=host,
            port=port,
            public_read=public_read,
            database=fleet.url,
            auth="generated token" if generated else "given token",
        )
        uvicorn.run(
            app,
            host=host.strip("[]"),
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    finally:  # uvicorn re-raises SIGTERM/SIGINT after shutdown; the lifespan closed it then
        close()
