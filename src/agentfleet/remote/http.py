"""One server of the fleet, spoken to over HTTP with a bearer token: the transport that
the remote worker (`RemoteFleet`, /api/worker) and a job's lease client (`LeaseClient`,
/api/lease) share.

Standard library only (``http.client``, JSON bodies). Each thread keeps one keep-alive
connection. A call that could not reach the server is tried again (a new connection, short
backoff); one that still fails raises StoreUnavailable. Answers that are errors come back
as the exceptions a direct Fleet raises (LeaseLost, JobCancelled, JobNotFound,
InvalidArgument, InvalidTransition); a refused token is the subclass's `_denied`.
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from agentfleet.errors import (
    AccessDenied,
    AgentFleetError,
    InvalidArgument,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    StoreUnavailable,
)
from agentfleet.remote.wire import lost_from_wire

log = logging.getLogger("agentfleet.remote")

TIMEOUT = 15.0  # seconds a request may take before the connection is given up
RETRY_PAUSES = (0.05, 0.25)  # before the second and third tries of a call that got no answer


def tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    """The TLS trust for an https:// server: the system's CAs, or only `ca_file` (a PEM
    bundle, e.g. the server's self-signed certificate) when given."""
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(
            f"cannot read the CA file {ca_file}: {getattr(exc, 'strerror', None) or exc}"
        ) from None


class ServerClient:
    """A client of one API (`api`, e.g. /api/worker) of the fleet's server."""

    api: ClassVar[str]
    needs: ClassVar[str] = "a token"  # what a missing token's refusal says

    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: float = TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
    ) -> None:
        parts = urlsplit(server.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgument(
                f"the server must be an http:// or https:// address, not {server!r}"
            )
        if parts.username or parts.password or parts.query:
            raise InvalidArgument("the server address takes no user, password or query")
        if not isinstance(token, str) or not token.strip():
            raise InvalidArgument(self.needs)
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._url = f"{parts.scheme}://{parts.netloc}{self._prefix}"
        self._token = token.strip()
        self._timeout = timeout
        self.ca_file = ca_file  # trusted alone for https://, when given (tls_context)
        self._ssl = ssl_context or tls_context(ca_file)
        self._local = threading.local()
        self._away_since: float | None = None
        self._closed = False
        self.on_denied: Callable[[AccessDenied], None] | None = None

    @property
    def url(self) -> str:
        """The server's address (never the token)."""
        return self._url

    def close(self) -> None:
        self._closed = True
        self._drop()

    def untrusted(self, exc: ssl.SSLCertVerificationError) -> InvalidArgument:
        """A certificate this client cannot trust is a setting to fix, not a server away:
        never retried."""
        return InvalidArgument(
            f"the fleet's server at {self._url} has a certificate this machine does not "
            f"trust ({exc.verify_message or exc}): give --ca FILE (AGENTFLEET_CA), a PEM "
            "file of its CA or of the certificate itself"
        )

    def not_tls(self, exc: ssl.SSLError) -> InvalidArgument:
        """A TLS handshake that failed on its first bytes: most often an https:// address
        for a server that speaks plain HTTP. A setting to fix: never retried."""
        return InvalidArgument(
            f"the fleet's server at {self._url} did not speak TLS ({exc.reason or exc}): if "
            "it serves plain HTTP, give its http:// address; else check the host and port"
        )

    def _denied(self, status: int, message: str) -> Exception:
        """A refused token (401, 403): AccessDenied, told to `on_denied` first."""
        denied = AccessDenied(status, f"the fleet's server refused the token: {message}")
        if self.on_denied is not None:
            self.on_denied(denied)
        return denied

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._scheme == "https":
            context = self._ssl or ssl.create_default_context()
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connection(self._timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        job_id: int | None = None,
        landed: Callable[[LeaseLost], bool] | None = None,
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers()
        tries = len(RETRY_PAUSES) + 1
        for attempt in range(tries):
            conn = self._conn()
            try:
                if conn.sock is None:
                    conn.connect()
                conn.request(method, self._prefix + self.api + path, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except ssl.SSLCertVerificationError as exc:
                self._drop()
                raise self.untrusted(exc) from None
            except ssl.SSLError as exc:
                self._drop()
                raise self.not_tls(exc) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                # A connection refused, reset or closed by the server is tried again; a
                # request that got no answer in time is not (it may still be at work).
                if attempt + 1 < tries and not self._closed and not isinstance(exc, TimeoutError):
                    time.sleep(RETRY_PAUSES[attempt])
                    continue
                self._unreachable(exc)
                raise StoreUnavailable(f"the fleet's server at {self._url} cannot be reached: "
                                       f"{why_unreachable(exc)}") from None  # fmt: skip
            self._reachable()
            if response.will_close:
                self._drop()
            return self._answer(
                response.status, raw, retried=attempt > 0, job_id=job_id, landed=landed
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(
        self,
        status: int,
        raw: bytes,
        *,
        retried: bool,
        job_id: int | None = None,
        landed: Callable[[LeaseLost], bool] | None = None,
    ) -> dict[str, Any]:
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if 200 <= status < 300 and isinstance(data, dict):
            return data
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        code = str(error.get("code") or "")
        message = str(error.get("message") or f"the server answered {status}")
        if code in ("lease_lost", "job_cancelled", "not_your_lease"):
            lost = lost_from_wire(code, error)
            if retried and landed is not None and landed(lost):
                return {}
            raise lost
        if status in (401, 403):
            raise self._denied(status, message)
        if status == 404 and job_id is not None:
            raise JobNotFound(job_id)
        if status in (400, 413, 422):
            raise InvalidArgument(message)
        if status == 409:
            current, wanted = error.get("current"), error.get("wanted")
            if isinstance(current, str) and isinstance(wanted, str):
                raise InvalidTransition("job", current, wanted, message)
            raise AgentFleetError(message)
        if status in (502, 503, 504):
            raise StoreUnavailable(f"the fleet's server at {self._url}: {message}")
        raise AgentFleetError(f"the fleet's server at {self._url} answered {status}: {message}")

    def _unreachable(self, exc: BaseException) -> None:
        if self._away_since is None:
            self._away_since = time.monotonic()
            log.warning("the fleet's server at %s cannot be reached (%s); trying again (if "
                        "this lasts, check the address: http:// or https://, host and port)",
                        self._url, why_unreachable(exc))  # fmt: skip

    def _reachable(self) -> None:
        if self._away_since is not None:
            away = time.monotonic() - self._away_since
            self._away_since = None
            log.info("the fleet's server at %s answers again (after %.1fs)", self._url, away)


def why_unreachable(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


__all__ = ["RETRY_PAUSES", "TIMEOUT", "ServerClient", "tls_context", "why_unreachable"]
