"""The dashboard: server-rendered pages that refresh their live regions in place."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

import yaml
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agentfleet.agents.transcript import Entry, transcript_of
from agentfleet.agents.usage import Usage
from agentfleet.durations import format_duration
from agentfleet.errors import InvalidArgument
from agentfleet.fleet import Fleet
from agentfleet.models import Job, JobStatus
from agentfleet.plans.model import Plan, PlanNotFound, PlanStatus
from agentfleet.plans.review import what_to_review
from agentfleet.serialize import queue_dicts, shown_payload, worker_view
from agentfleet.web.auth import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    Principal,
    auth_of,
)
from agentfleet.web.dag import layout
from agentfleet.web.errors import ApiError
from agentfleet.web.templating import TEMPLATES, pretty_json, seconds_text
from agentfleet.workspaces.review import workspace_result

LOG_TAIL = 64 * 1024
PAGE_SIZE = 50


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def page_reader(request: Request) -> Principal:
    """Dependency of every page: readers only, others are sent to the login form (a
    signed-in role that may not read, a worker's, gets the 403 page saying so)."""
    auth = auth_of(request)
    try:
        return auth.require_read(request)
    except ApiError as exc:
        if request.headers.get("x-live") or exc.status == 403:
            raise  # a live refresh gets a 401 and tells the user, not a login page
        raise LoginRequired(safe_next(request.url.path)) from None


Reader = Annotated[Principal, Depends(page_reader)]


def safe_next(path: str | None) -> str:
    """Only local paths: never redirect to another site after signing in."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def fleet_of(request: Request) -> Fleet:
    fleet: Fleet = request.app.state.fleet
    return fleet


router = APIRouter(include_in_schema=False)


def front_matter(job: Job) -> str:
    """The job as its job file's front matter would state it, durations as written there
    (``timeout: 3h``, never ``10800.0``)."""
    fields: dict[str, Any] = {"engine": job.engine, "queue": job.queue}
    if job.priority:
        fields["priority"] = job.priority
    if job.lock:
        fields["lock"] = job.lock
    if job.timeout is not None:
        fields["timeout"] = format_duration(job.timeout)
    fields["max_attempts"] = job.max_attempts
    fields.update({k: v for k, v in shown_payload(job.payload).items() if k != "prompt"})
    idle = fields.get("idle_timeout")
    if isinstance(idle, int | float) and not isinstance(idle, bool) and idle >= 0:
        fields["idle_timeout"] = "off" if idle == 0 else format_duration(idle)
    return yaml.safe_dump(fields, sort_keys=False, allow_unicode=True).rstrip()


def diff_lines(patch: str) -> list[tuple[str, str]]:
    """A file's patch as (class, line) pairs, so the page colours additions and removals."""
    out = []
    for line in patch.splitlines():
        if line.startswith(("+++", "---", "diff --git", "index ")):
            kind = "meta"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


def tail(text: str | None) -> tuple[str, bool]:
    if not text:
        return "", False
    if len(text) <= LOG_TAIL:
        return text, False
    return text[-LOG_TAIL:], True


def log_entries(text: str, cut: bool) -> list[Entry]:
    """A run's stdout as its transcript, each run of plain lines as one block of text."""
    blocks: list[Entry] = []
    plain: list[str] = []
    for entry in transcript_of(text, cut=cut):
        if entry.kind == "text":
            plain.append(entry.text)
            continue
        if plain:
            blocks.append(Entry("text", "\n".join(plain)))
            plain = []
        blocks.append(entry)
    if plain:
        blocks.append(Entry("text", "\n".join(plain)))
    return blocks


def render(request: Request, name: str, who: Principal, **context: Any) -> Response:
    auth = auth_of(request)
    fleet = fleet_of(request)
    base = {
        "who": who,
        "role": who.role or "",
        "signed_in": who.via != "anonymous",
        # the buttons of jobs and plans: shown to operate and admin; to an anonymous reader
        # (public reads) disabled, with a link to sign in; to other roles not at all
        "can_write": who.at_least("operate"),
        "show_actions": who.at_least("operate") or who.via == "anonymous",
        "csrf": auth.csrf_of(who) if who.via == "session" else "",
        "public_read": auth.public_read,
        "poll_ms": int(request.app.state.poll_interval * 1000),
        "now": context.pop("now", None) or fleet.now(),
        "path": request.url.path,
        "statuses": [s.value for s in JobStatus],
    }
    response = TEMPLATES.TemplateResponse(request, name, {**base, **context})
    response.headers["Cache-Control"] = "no-store"
    body = bytes(response.body)
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-store"})
    response.headers["ETag"] = etag
    return response


# -- pages --------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, who: Reader) -> Response:
    fleet = fleet_of(request)
    now = fleet.now()
    window: float = request.app.state.worker_window
    workers = [worker_view(w, now, window) for w in fleet.list_workers()]
    workers.sort(key=lambda v: ({"alive": 0, "stale": 1, "stopped": 2}[v.state], v.info.name))
    running = fleet.list_jobs(status=JobStatus.RUNNING, limit=50)
    failed = fleet.list_jobs(status=JobStatus.FAILED, limit=5)
    return render(
        request,
        "overview.html",
        who,
        now=now,
        queues=queue_dicts(fleet.queue_counts()),
        running=running,
        failed=failed,
        plan_names=plan_names(fleet, running + failed),
        workers=workers,
        plans_attention=attention(fleet),
    )


def plan_names(fleet: Fleet, jobs: Iterable[Job]) -> dict[int, str]:
    """The names of the plans these jobs are steps of, by id (a pruned plan is left out)."""
    names: dict[int, str] = {}
    for plan_id in sorted({job.plan_id for job in jobs if job.plan_id is not None}):
        with contextlib.suppress(PlanNotFound):
            names[plan_id] = fleet.get_plan(plan_id).name
    return names


def attention(fleet: Fleet) -> list[Plan]:
    """Plans a person has to act on: paused at a checkpoint, or failed."""
    plans = fleet.list_plans(status=PlanStatus.PAUSED, limit=20)
    plans += fleet.list_plans(status=PlanStatus.FAILED, limit=20)
    return sorted(plans, key=lambda p: p.updated_at, reverse=True)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    who: Reader,
    status: Annotated[str | None, Query()] = None,
    queue: Annotated[str | None, Query()] = None,
    engine: Annotated[str | None, Query()] = None,
    label: Annotated[str | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
) -> Response:
    fleet = fleet_of(request)
    filters = {"status": status, "queue": queue, "engine": engine, "label": label}
    filters = {k: v.strip() for k, v in filters.items() if v and v.strip()}
    problem = None
    try:
        jobs = fleet.list_jobs(
            status=filters.get("status"),
            queue=filters.get("queue"),
            engine=filters.get("engine"),
            label=filters.get("label"),
            limit=limit,
            offset=offset,
        )
    except InvalidArgument as exc:
        jobs, problem = [], str(exc)

    def page_link(new_offset: int) -> str:
        return "/jobs?" + urlencode({**filters, "offset": new_offset, "limit": limit})

    return render(
        request,
        "jobs.html",
        who,
        jobs=jobs,
        plan_names=plan_names(fleet, jobs),
        filters=filters,
        problem=problem,
        offset=offset,
        limit=limit,
        prev_link=page_link(max(0, offset - limit)) if offset > 0 else None,
        next_link=page_link(offset + limit) if len(jobs) == limit else None,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    request: Request, job_id: int, who: Reader, raw: Annotated[bool, Query()] = False
) -> Response:
    fleet = fleet_of(request)
    job = fleet.get_job(job_id)
    runs = list(reversed(fleet.runs(job_id)))
    logs = {r.id: (tail(r.stdout), tail(r.stderr)) for r in runs}
    transcripts = {} if raw else {r.id: log_entries(*logs[r.id][0]) for r in runs}
    events = fleet.events(job_id, limit=1000)
    prompt = job.payload.get("prompt")
    change, change_problem = None, None
    if workspace_result(job) is not None:
        try:
            change = fleet.job_change(job_id)
        except InvalidArgument as exc:
            change_problem = str(exc)
    return render(
        request,
        "job.html",
        who,
        job=job,
        plan_name=plan_names(fleet, [job]).get(job.plan_id or 0),
        change=change,
        change_problem=change_problem,
        diff_lines=diff_lines,
        runs=runs,
        spent=Usage.of_runs(runs),
        logs=logs,
        raw=raw,
        transcripts=transcripts,
        events=events,
        prompt=prompt if isinstance(prompt, str) else None,
        front_matter=front_matter(job),
        result_json=None if job.result is None else pretty_json(job.result),
    )


@router.get("/plans", response_class=HTMLResponse)
def plans_page(
    request: Request,
    who: Reader,
    status: Annotated[str | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
) -> Response:
    fleet = fleet_of(request)
    status = status.strip() if status and status.strip() else None
    problem = None
    try:
        plans = fleet.list_plans(status=status, limit=limit, offset=offset)
    except InvalidArgument as exc:
        plans, problem = [], str(exc)

    def page_link(new_offset: int) -> str:
        query = {"status": status} if status else {}
        return "/plans?" + urlencode({**query, "offset": new_offset, "limit": limit})

    return render(
        request,
        "plans.html",
        who,
        plans=plans,
        status=status,
        problem=problem,
        plan_statuses=[s.value for s in PlanStatus],
        prev_link=page_link(max(0, offset - limit)) if offset > 0 else None,
        next_link=page_link(offset + limit) if len(plans) == limit else None,
    )


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request, who: Reader) -> Response:
    return render(request, "schedules.html", who, schedules=fleet_of(request).schedules.all())


@router.get("/plans/{plan_id}", response_class=HTMLResponse)
def plan_page(request: Request, plan_id: int, who: Reader) -> Response:
    fleet = fleet_of(request)
    plan = fleet.get_plan(plan_id)
    done = sum(1 for s in plan.jobs if s.status is JobStatus.SUCCEEDED)
    review = what_to_review(fleet, plan)
    usage = fleet.plan_usage(plan_id)
    spent = sum(usage.values(), Usage())
    return render(
        request,
        "plan.html",
        who,
        plan=plan,
        dag=layout(plan),
        done=done,
        review=review,
        usage=usage,
        spent=spent,
        stale_window=seconds_text(fleet.plans.stale_window),
    )


# -- signing in ---------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/", error: str | None = None) -> Response:
    return TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {
            "next": safe_next(next),
            "error": error,
            "signed_in": False,
            "can_write": False,
            "csrf": "",
            "poll_ms": 0,
            "path": "/login",
        },
        status_code=401 if error else 200,
    )


async def _form(request: Request) -> dict[str, str]:
    raw = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    target = safe_next(form.get("next"))
    auth = auth_of(request)
    who = auth.principal_of(form.get("token", "").strip(), "session")
    if who is None:
        query = urlencode({"next": target, "error": "That token is not right."})
        return RedirectResponse(f"/login?{query}", status_code=303)
    response = RedirectResponse(target, status_code=303)
    set_session(response, request, who)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def set_session(response: Response, request: Request, who: Principal) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        auth_of(request).session_of(who),
        max_age=SESSION_MAX_AGE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
