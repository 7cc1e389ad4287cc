"""Errors are JSON with a stable code, and never carry a stack trace."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

import agentfleet
from agentfleet import StoreUnavailable
from agentfleet.web.app import create_app
from agentfleet.web.errors import for_exception
from tests.web.conftest import AUTH, TOKEN


class Exploding(agentfleet.Fleet):
    """A fleet whose reads blow up the way a bug or a dead database would."""

    def __init__(self, inner: agentfleet.Fleet, exc: Exception) -> None:
        super().__init__(inner.store)
        self.exc = exc

    def list_jobs(self, **_: Any) -> list[agentfleet.Job]:
        raise self.exc


def test_unexpected_errors_are_500_internal_without_details() -> None:
    with agentfleet.open("memory://") as inner:
        secret_detail = "password=hunter2 at /srv/app/secret.py line 12"
        app = create_app(Exploding(inner, RuntimeError(secret_detail)), token=TOKEN)
        r = TestClient(app, headers=AUTH, raise_server_exceptions=False).get("/api/jobs")
        assert r.status_code == 500
        assert r.json() == {
            "error": {"code": "internal", "message": "internal error; see the server log"}
        }
        assert "hunter2" not in r.text and "Traceback" not in r.text


def test_an_unreachable_database_is_503() -> None:
    with agentfleet.open("memory://") as inner:
        app = create_app(Exploding(inner, StoreUnavailable("connection refused")), token=TOKEN)
        r = TestClient(app, headers=AUTH, raise_server_exceptions=False).get("/api/jobs")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "unavailable"


class NotResumable(agentfleet.AgentFleetError):
    def __init__(self, status: str) -> None:
        super().__init__(f"not resumable: the plan is {status}")
        self.status = status


class PlanNotFound(agentfleet.AgentFleetError, LookupError):
    pass


def test_plan_errors_map_to_their_codes_by_name() -> None:
    assert for_exception(NotResumable("running"))[:2] == (409, "not_resumable")
    assert for_exception(NotResumable("running"))[3] == {"status": "running"}
    assert for_exception(PlanNotFound("plan 3 not found"))[:2] == (404, "not_found")
    assert for_exception(agentfleet.InvalidArgument("x"))[:2] == (422, "invalid")
    assert for_exception(agentfleet.JobNotFound(3))[:2] == (404, "not_found")
