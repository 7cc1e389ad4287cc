"""`agentfleet serve`: run the HTTP API and dashboard with uvicorn."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import secrets
import socket
import ssl
import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TextIO

from starlette.types import ASGIApp, Receive, Scope, Send

import agentfleet
from agentfleet import logs
from agentfleet.errors import InvalidArgument
from agentfleet.web import errors

log = logging.getLogger("agentfleet.web")

LOOPBACK_HOSTNAMES = ("localhost", "127.0.0.1", "::1")
MIN_TOKEN_LENGTH = 16
STARTUP_FAILURE = 3  # uvicorn's exit code when the server did not start


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


@dataclass(frozen=True)
class TLSFiles:
    """A certificate (PEM, the chain after it if any) and its unencrypted private key (PEM)."""

    certfile: str
    keyfile: str


class _KeyIsEncrypted(Exception):
    pass


def _no_password() -> str:
    raise _KeyIsEncrypted  # never prompt on the terminal for a passphrase


_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----")


def _read_pem(what: str, option: str, path: str) -> str:
    where = f"the {what} file {path} ({option})"
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except FileNotFoundError:
        raise ServeRefused(f"{where} does not exist") from None
    except IsADirectoryError:
        raise ServeRefused(f"{where} is a directory, not a file") from None
    except PermissionError:
        raise ServeRefused(f"{where} cannot be read: permission denied") from None
    except OSError as exc:
        raise ServeRefused(f"{where} cannot be read: {exc.strerror or exc}") from None


def _reason(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None)
    if not reason or reason == "PEM_LIB":
        return "its PEM is damaged or of another kind"
    return str(reason).lower().replace("_", " ")


def check_tls(cert: str | None, key: str | None) -> TLSFiles | None:
    """The certificate and key to serve HTTPS with, checked now (before anything binds).

    Neither given means plain HTTP. Each problem is refused with the file and what is wrong:
    one without the other, a missing or unreadable file, a file without a PEM certificate or
    key, a key encrypted with a passphrase, or a key that is not the certificate's.
    """
    cert = cert.strip() if cert and cert.strip() else None
    key = key.strip() if key and key.strip() else None
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = ("--tls-cert", "--tls-key") if cert else ("--tls-key", "--tls-cert")
        raise ServeRefused(
            f"{given} needs {missing} too: HTTPS takes a certificate and its private key "
            "(--tls-cert and --tls-key, or AGENTFLEET_TLS_CERT and AGENTFLEET_TLS_KEY)"
        )
    cert_where = f"the certificate file {cert} (--tls-cert)"
    key_where = f"the private key file {key} (--tls-key)"
    cert_text = _read_pem("certificate", "--tls-cert", cert)
    key_text = _read_pem("private key", "--tls-key", key)
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        hint = (
            "; it holds a private key (are the two files swapped?)"
            if _PRIVATE_KEY_BEGIN.search(cert_text)
            else ""
        )
        raise ServeRefused(
            f"{cert_where} holds no PEM certificate (a '-----BEGIN CERTIFICATE-----' block){hint}"
        )
    encrypted = ("ENCRYPTED PRIVATE KEY" in key_text) or ("Proc-Type: 4,ENCRYPTED" in key_text)
    if not encrypted and not _PRIVATE_KEY_BEGIN.search(key_text):
        hint = (
            "; it holds a certificate (are the two files swapped?)"
            if "-----BEGIN CERTIFICATE-----" in key_text
            else ""
        )
        raise ServeRefused(
            f"{key_where} holds no PEM private key (a '-----BEGIN PRIVATE KEY-----' block){hint}"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=cert)
    except ssl.SSLError as exc:
        raise ServeRefused(
            f"{cert_where} is not a valid PEM certificate ({_reason(exc)})"
        ) from None
    try:
        if encrypted:
            raise _KeyIsEncrypted
        context.load_cert_chain(cert, key, password=_no_password)
    except _KeyIsEncrypted:
        raise ServeRefused(
            f"{key_where} is encrypted with a passphrase; give the key unencrypted "
            f"(e.g. openssl pkey -in {key} -out plain-key.pem), readable by this user only"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ServeRefused(
                f"{key_where} is not the private key of {cert_where}: they do not match"
            ) from None
        raise ServeRefused(f"{key_where} is not a valid PEM private key ({_reason(exc)})") from None
    except OSError as exc:  # the files changed since they were read
        raise ServeRefused(f"{cert_where} or {key_where} cannot be read: {exc}") from None
    return TLSFiles(cert, key)


def check_exposure(host: str, tls: TLSFiles | None, insecure_http: bool) -> None:
    """Beyond loopback the server speaks HTTPS, or plain HTTP only when told so explicitly."""
    if tls is not None and insecure_http:
        raise ServeRefused(
            "--insecure-http contradicts --tls-cert/--tls-key (AGENTFLEET_TLS_CERT/KEY): "
            "give the certificate and key to serve HTTPS, or --insecure-http alone"
        )
    if tls is None and not insecure_http and not is_loopback(host):
        raise ServeRefused(
            f"refusing to listen on {host} over plain HTTP: give --tls-cert and --tls-key "
            "to serve HTTPS, or pass --insecure-http when a reverse proxy in front of the "
            "server terminates TLS"
        )


def base_url(host: str, port: int, tls: bool = False) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{'https' if tls else 'http'}://{shown}:{port}/"


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
    tls_cert: str | None = None,
    tls_key: str | None = None,
    insecure_http: bool = False,
    engines: Collection[str] = (),
    out: TextIO | None = None,
) -> None:
    """Open the database and serve until interrupted (Ctrl-C or SIGTERM).

    With `tls_cert` and `tls_key` it serves HTTPS. Beyond loopback it needs a token, and TLS
    or `insecure_http` (a TLS-terminating proxy in front); every refusal comes before anything
    opens or binds.
    """
    import uvicorn

    from agentfleet.web.app import create_app

    out = out or sys.stdout
    tls = check_tls(tls_cert, tls_key)
    token = token if token is not None else os.environ.get("AGENTFLEET_TOKEN")
    token, generated = resolve_token(token, host)
    check_exposure(host, tls, insecure_http)
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
        url = base_url(host, port, tls=tls is not None)
        plain_beyond_loopback = tls is None and not is_loopback(host)

        def announce() -> None:  # once the port is bound, so what it says is so
            if plain_beyond_loopback:
                print(
                    f"warning: serving plain HTTP on {host} (--insecure-http): tokens and "
                    "cookies cross the network in the clear unless a TLS-terminating proxy "
                    "is the only way in",
                    file=sys.stderr,
                    flush=True,
                )
            print(f"agentfleet is serving {logs.redact_url(fleet.url)} at {url}", file=out)
            if plain_beyond_loopback:
                print("Behind the reverse proxy, open the proxy's https:// address.", file=out)
            if generated:
                print(f"Open {url}?token={token} to sign in.", file=out)
                print(f"API token (generated now, shown once): {token}", file=out)
            else:
                print("Sign in with the token you set (AGENTFLEET_TOKEN or --token).", file=out)
            print(
                "Tokens made with `agentfleet tokens create` sign in too, by their role.", file=out
            )
            if public_read:
                print("Reads are public (--public-read); changes still need the token.", file=out)
            out.flush()
            logs.event(
                log,
                "server.start_completed",
                host=host,
                port=port,
                public_read=public_read,
                tls=tls is not None,
                database=fleet.url,
                auth="generated token" if generated else "given token",
            )

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)  # exits with 3 when it cannot bind
                if self.started:
                    announce()

        config = uvicorn.Config(
            app,
            host=host.strip("[]"),
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
            ssl_certfile=tls.certfile if tls else None,
            ssl_keyfile=tls.keyfile if tls else None,
        )
        running = Server(config)
        with contextlib.suppress(KeyboardInterrupt):
            running.run()
        if not running.started:  # as uvicorn.run: the lifespan refused to start
            sys.exit(STARTUP_FAILURE)
    finally:  # uvicorn re-raises SIGTERM/SIGINT after shutdown; the lifespan closed it then
        close()
