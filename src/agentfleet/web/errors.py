"""JSON errors with a stable code, and never a stack trace.

Every error response has the shape ``{"error": {"code": ..., "message": ..., ...}}``:

============== ====== ==================================================================
code           status when
============== ====== ==================================================================
not_found      404    no such job, plan or route
not_resumable  409    resume lost the race or the plan is not resumable (``status``)
conflict       409    the state machine does not allow it (``current``, ``wanted``)
lease_lost     409    a fenced write whose lease is no longer held (``job_id``, ``epoch``)
job_cancelled  409    a renew of a job asked to stop (``job_id``, ``epoch``)
invalid        422    a bad argument, body or query parameter (``details``)
invalid        400    a body that is not JSON at all
unauthorized   401    no token, or a wrong one
forbidden      403    the token's role may not do this, or the lease is another worker's
too_large      413    the body is over the size limit
not_allowed    405    the route exists but not for this method
unavailable    503    the database cannot be reached
internal       500    anything else (logged on the server, not described to the client)
============== ====== ==================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentfleet import logs
from agentfleet.errors import (
    AgentFleetError,
    InvalidArgument,
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    LeaseLost,
    StoreUnavailable,
)
from agentfleet.web.templating import TEMPLATES

log = logging.getLogger("agentfleet.web")


class ApiError(Exception):
    """An error a route raises on purpose, with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str, /, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_body(code: str, message: str, /, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    /,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)


def for_exception(exc: Exception) -> tuple[int, str, str, dict[str, Any]]:
    """(status, code, message, extra fields) for an exception a Fleet operation raised."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.message, exc.extra
    # Plans raise NotResumable/PlanNotFound; matched by name so this module works before
    # and after plans exist, and whichever module defines them.
    kind = type(exc).__name__
    if kind == "CheckpointConflict":
        pending = getattr(exc, "pending", None)
        return 409, "checkpoint_conflict", str(exc), {"pending": pending}
    if kind == "NotResumable":
        status = getattr(exc, "status", None)
        return 409, "not_resumable", str(exc), {"status": None if status is None else str(status)}
    if isinstance(exc, JobNotFound) or kind.endswith("NotFound"):
        return 404, "not_found", str(exc), {}
    if isinstance(exc, InvalidTransition):
        return 409, "conflict", str(exc), {"current": exc.current, "wanted": exc.wanted}
    if isinstance(exc, LeaseLost):  # a fenced write refused (the worker API)
        code = "job_cancelled" if isinstance(exc, JobCancelled) else "lease_lost"
        fence = {"job_id": exc.job_id, "epoch": exc.epoch}
        return 409, code, str(exc), {**fence, "current_epoch": exc.current_epoch,
                                     "status": exc.status}  # fmt: skip
    if isinstance(exc, InvalidArgument):
        return 422, "invalid", str(exc), {}
    if isinstance(exc, StoreUnavailable):
        return 503, "unavailable", "the database is unavailable", {}
    if isinstance(exc, AgentFleetError):
        return 409, "conflict", str(exc), {}
    return 500, "internal", "internal error; see the server log", {}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        details.append({"field": ".".join(loc), "problem": str(err.get("msg", "invalid"))})
    return details


def wants_page(request: Request) -> bool:
    """A person's browser asking for a dashboard page, rather than an API client."""
    path = request.url.path
    return (
        request.method == "GET"
        and not path.startswith(("/api/", "/static/", "/metrics", "/healthz"))
        and "text/html" in request.headers.get("accept", "")
        and not request.headers.get("x-live")
    )


def error_page(request: Request, status: int, message: str) -> Response:
    context = {"status": status, "message": message, "can_write": False, "csrf": ""}
    context.update({"poll_ms": 0, "path": request.url.path, "signed_in": False})
    return TEMPLATES.TemplateResponse(request, "error.html", context, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        if any(
            err.get("type") == "json_invalid" for err in exc.errors()
        ):  # not JSON at all: a 400, not a validation failure
            return error_response(400, "invalid", "the request body is not valid JSON")
        summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details) or "invalid request"
        return error_response(422, "invalid", summary, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and wants_page(request):
            return error_page(request, 404, "There is nothing at this address.")
        code = {401: "unauthorized", 404: "not_found", 405: "not_allowed", 413: "too_large"}.get(
            exc.status_code, "invalid" if exc.status_code < 500 else "internal"
        )
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, exc.headers)

    async def _known(request: Request, exc: Exception) -> Response:
        status, code, message, extra = for_exception(exc)
        if wants_page(request):
            return error_page(request, status, message)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return error_response(status, code, message, headers, **extra)

    app.add_exception_handler(ApiError, _known)
    app.add_exception_handler(AgentFleetError, _known)

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> JSONResponse:
        status, code, message, extra = for_exception(exc)
        if status >= 500:
            logs.event(
                log,
                "http.request_failed",
                level=logging.ERROR,
                method=request.method,
                path=request.url.path,
                error_type=type(exc).__name__,
                error=str(exc),
            )
        return error_response(status, code, message, **extra)
