"""Who may read and who may change things.

* Scripts send ``Authorization: Bearer <token>``; it works for every route.
* A browser signs in once (the login form, or ``?token=...`` on any dashboard address, which
  is then dropped from the address bar) and gets a session cookie: HttpOnly, SameSite=Strict,
  holding an HMAC derived from the token rather than the token itself, so rotating the token
  signs every browser out. Changes made with the cookie also need the ``X-CSRF-Token`` header,
  a second HMAC the dashboard's pages carry, so another site cannot make the browser act.
* Reads need a token too, unless the server was started with ``--public-read``.
* Every comparison is constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from agentfleet.web.errors import ApiError

SESSION_COOKIE = "agentfleet_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE = 7 * 24 * 3600

Principal = Literal["token", "session", "anonymous"]


def _derive(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), f"agentfleet:{purpose}:v1".encode(), hashlib.sha256).hexdigest()


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Auth:
    token: str
    public_read: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or len(self.token) < 8:
            raise ValueError("the API token must be a string of at least 8 characters")

    @property
    def session_value(self) -> str:
        return _derive(self.token, "session")

    @property
    def csrf_token(self) -> str:
        return _derive(self.token, "csrf")

    def token_ok(self, given: str) -> bool:
        return _equal(given, self.token)

    def identify(self, request: Request) -> Principal:
        """Raises 401 for a wrong bearer token; a missing one is anonymous."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not self.token_ok(value.strip()):
                raise unauthorized("the bearer token is not valid")
            return "token"
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is not None and _equal(cookie, self.session_value):
            return "session"
        return "anonymous"

    def require_read(self, request: Request) -> Principal:
        who = self.identify(request)
        if who == "anonymous" and not self.public_read:
            raise unauthorized("this server needs a token to read: send Authorization: Bearer")
        return who

    def require_write(self, request: Request) -> Principal:
        who = self.identify(request)
        if who == "anonymous":
            raise unauthorized("changes need a token: send Authorization: Bearer <token>")
        if who == "session":
            given = request.headers.get(CSRF_HEADER, "")
            if not _equal(given, self.csrf_token):
                raise unauthorized(f"a signed-in browser must send the {CSRF_HEADER} header")
        return who


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def auth_of(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


def read_access(request: Request) -> Principal:
    """Dependency of every read-only API route."""
    return auth_of(request).require_read(request)


def write_access(request: Request) -> Principal:
    """Dependency of every API route that changes something."""
    return auth_of(request).require_write(request)
