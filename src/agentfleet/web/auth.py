"""Who may read and who may change things.

* Scripts send ``Authorization: Bearer <token>``: the server's own token (``--token``, the
  admin's) or a token made with ``agentfleet tokens create``, which has a role.
* A role allows (ROLE_CAN says it in words): ``worker`` the worker API only (/api/worker:
  claim, renew, complete and write output for the leases it holds, see api_worker.py);
  ``read`` every read; ``operate`` reads and
  the routes that act on jobs and plans (enqueue, cancel, retry, submit, approve, reject,
  resume, cancel or abandon a plan); ``admin`` everything. A refused role gets 403.
* A stored token is looked up on every request (nothing is cached), so a revoked one gets
  401 at its next request.
* A browser signs in once (the login form, or ``?token=...`` on any dashboard address, which
  is then dropped from the address bar) and gets a session cookie: HttpOnly, SameSite=Strict,
  holding an HMAC rather than the token. For the server's token it is derived from that
  token, so rotating it signs every browser out; for a stored token it is the token's id
  and an HMAC of it keyed by the server's token, and the token must still be live on each
  request, so a revoke signs its browsers out too. Changes made with the cookie also need
  the ``X-CSRF-Token`` header, a second HMAC the dashboard's pages carry, so another site
  cannot make the browser act.
* Reads need a token too, unless the server was started with ``--public-read``.
* Every comparison is constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from fastapi import Request

from agentfleet.store.lease_tokens import looks_like_lease_token
from agentfleet.store.tokens import ROLE_RANK, USED_EVERY, TokenInfo, Tokens, looks_like_token
from agentfleet.web.errors import ApiError

log = logging.getLogger("agentfleet.web")

SESSION_COOKIE = "agentfleet_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE = 7 * 24 * 3600
ADMIN = "admin"

Via = Literal["token", "session", "anonymous"]

# What each role may do, as the 403 of a refused request says it.
LEASE_TOKEN_REACHES = (
    "a lease token reaches only /api/lease: its own job, its plan's inputs, follow-up jobs "
    "and its plan's fields"
)
ROLE_CAN = {
    "worker": "a worker token may only claim, renew and complete its own jobs through the "
    "worker API (/api/worker/...)",
    "read": "a read token may read (the API, the dashboard, /metrics) but change nothing",
    "operate": "an operate token may read, enqueue, cancel and retry jobs, submit plans, and "
    "approve, reject, resume, cancel or abandon them",
    "admin": "an admin token may do everything",
}


@dataclass(frozen=True)
class Principal:
    """Who sent a request: how (`via`), with which role (None when anonymous), and the
    stored token's id (None for the server's own token)."""

    via: Via
    role: str | None = None
    token_id: str | None = None
    name: str = ""

    def at_least(self, role: str) -> bool:
        return self.role is not None and ROLE_RANK[self.role] >= ROLE_RANK[role]


ANONYMOUS = Principal("anonymous")


def _derive(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), f"agentfleet:{purpose}:v1".encode(), hashlib.sha256).hexdigest()


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Auth:
    token: str
    public_read: bool = False
    tokens: Tokens | None = field(default=None, compare=False)  # the stored tokens

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or len(self.token) < 8:
            raise ValueError("the API token must be a string of at least 8 characters")

    @property
    def session_value(self) -> str:
        return _derive(self.token, "session")

    @property
    def csrf_token(self) -> str:
        return _derive(self.token, "csrf")

    def session_of(self, who: Principal) -> str:
        """The session cookie's value for a signed-in principal."""
        if who.token_id is None:
            return self.session_value
        return f"{who.token_id}.{_derive(self.token, f'session:{who.token_id}')}"

    def csrf_of(self, who: Principal) -> str:
        if who.token_id is None:
            return self.csrf_token
        return _derive(self.token, f"csrf:{who.token_id}")

    def token_ok(self, given: str) -> bool:
        """Whether `given` is the server's own token."""
        return _equal(given, self.token)

    def principal_of(self, given: str, via: Via = "token") -> Principal | None:
        """Who this token is (the server's, or a live stored one); None when it is neither."""
        if self.tokens is not None and looks_like_token(given):
            info = self.tokens.lookup(given)
            if info is not None:
                self._used(info)
                return Principal(via, info.role, info.id, info.name)
        if self.token_ok(given):
            return Principal(via, ADMIN)
        return None

    def _used(self, info: TokenInfo) -> None:
        """Stamp last_used_at, at most once a minute: the local clock only decides when to
        ask (so most requests write nothing), the store's clock stamps. A store that refuses
        the write (read-only) does not refuse the request."""
        assert self.tokens is not None
        last = info.last_used_at
        if last is not None and (datetime.now(UTC) - last).total_seconds() < USED_EVERY:
            return
        try:
            self.tokens.touch(info.id)
        except Exception as exc:  # a stamp never decides a request
            log.debug("could not stamp token %s as used: %s", info.id, exc)

    def _session(self, cookie: str) -> Principal | None:
        token_id, dot, _ = cookie.partition(".")
        if not dot:
            return Principal("session", ADMIN) if _equal(cookie, self.session_value) else None
        expected = self.session_of(Principal("session", None, token_id))
        if self.tokens is None or not _equal(cookie, expected):
            return None
        info = self.tokens.live(token_id)  # a revoked token's cookie stops here
        if info is None:
            return None
        self._used(info)
        return Principal("session", info.role, info.id, info.name)

    def identify(self, request: Request) -> Principal:
        """Raises 401 for a wrong, unknown or revoked bearer token; a missing one (or a
        cookie that is not, or no longer, valid) is anonymous."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if looks_like_lease_token(value.strip()):
                raise ApiError(403, "forbidden", LEASE_TOKEN_REACHES)
            who = self.principal_of(value.strip()) if scheme.lower() == "bearer" else None
            if who is None:
                raise unauthorized("the bearer token is not valid (wrong, unknown or revoked)")
            return who
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is not None:
            return self._session(cookie) or ANONYMOUS
        return ANONYMOUS

    def require_read(self, request: Request) -> Principal:
        who = self.identify(request)
        if who.via == "anonymous":
            if not self.public_read:
                raise unauthorized("this server needs a token to read: send Authorization: Bearer")
            return who
        if not who.at_least("read"):
            raise forbidden(who, "read")
        return who

    def require_role(self, request: Request, role: str) -> Principal:
        """A change: the principal's role must be `role` or above; a browser sends CSRF."""
        who = self.identify(request)
        if who.via == "anonymous":
            raise unauthorized("changes need a token: send Authorization: Bearer <token>")
        if not who.at_least(role):
            raise forbidden(who, "make this change")
        if who.via == "session":
            given = request.headers.get(CSRF_HEADER, "")
            if not _equal(given, self.csrf_of(who)):
                raise unauthorized(f"a signed-in browser must send the {CSRF_HEADER} header")
        return who

    def require_write(self, request: Request) -> Principal:
        return self.require_role(request, "operate")


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def forbidden(who: Principal, action: str) -> ApiError:
    role = who.role or "anonymous"
    return ApiError(
        403, "forbidden", f"the role {role} may not {action} here: {ROLE_CAN.get(role, '')}"
    )


def auth_of(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


def read_access(request: Request) -> Principal:
    """Dependency of every read-only API route: read, operate or admin (or anyone, when
    reads are public)."""
    return auth_of(request).require_read(request)


def write_access(request: Request) -> Principal:
    """Dependency of every API route that acts on jobs and plans: operate or admin."""
    return auth_of(request).require_role(request, "operate")


def admin_access(request: Request) -> Principal:
    """Dependency of a route that changes the fleet's own settings: admin only."""
    return auth_of(request).require_role(request, ADMIN)
