"""Plan routes: submit, read, approve, reject, resume and cancel through the API."""

from __future__ import annotations

import threading
from typing import Any

import httpx2 as httpx
import pytest

from agentfleet import Fleet, PlanStatus
from tests.conftest import StoreEnv
from tests.plans.helpers import drain, gate, plan, shell
from tests.plans.test_plan_input import BAD_PLANS
from tests.plans.test_plan_input import IDS as BAD_PLAN_IDS
from tests.web.conftest import AUTH, Web, make_web
from tests.web.live import uvicorn_thread


def submit(web: Web, spec: dict[str, Any]) -> dict[str, Any]:
    r = web.client.post("/api/plans", json=spec)
    assert r.status_code == 201, r.text
    return r.json()


def code(r: Any, status: int, expected: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text
    err = r.json()["error"]
    assert err["code"] == expected
    return err


def gated(web: Web) -> int:
    """A plan paused at its approval gate `review`, with `build` done."""
    spec = plan(shell("build"), gate("review", "build", on_reject="build"), shell("ship", "review"))
    plan_id = submit(web, spec)["id"]
    drain(web.fleet)
    assert web.fleet.get_plan(plan_id).checkpoint == "review"
    return plan_id


def failed_plan(fleet: Fleet, web: Web) -> int:
    plan_id = submit(web, plan(shell("only", max_attempts=1)))["id"]
    drain(fleet, fail={"only"})
    assert fleet.get_plan(plan_id).status is PlanStatus.FAILED
    return plan_id


def test_submit_as_json_or_yaml_and_read_back(web: Web) -> None:
    body = submit(web, plan(shell("a"), shell("b", "a"), mode="supervised", max_parallel=1))
    assert body["status"] == "running" and body["mode"] == "supervised"
    assert [(j["name"], j["status"], j["depends_on"]) for j in body["jobs"]] == [
        ("a", "queued", []),
        ("b", "waiting", ["a"]),
    ]
    shown = web.client.get(f"/api/plans/{body['id']}").json()
    assert shown["id"] == body["id"] and shown["max_parallel"] == 1
    job = web.client.get(f"/api/jobs/{body['jobs'][1]['job_id']}").json()
    assert (job["plan_id"], job["step"], job["status"]) == (body["id"], "b", "waiting")

    yaml_plan = "name: from-yaml\njobs:\n  - name: one\n    engine: shell\n    cmd: echo one\n"
    r = web.client.post(
        "/api/plans", content=yaml_plan, headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 201 and r.json()["name"] == "from-yaml"

    listed = web.client.get("/api/plans").json()
    assert [p["name"] for p in listed["plans"]] == ["from-yaml", "test-plan"]
    page = web.client.get("/api/plans", params={"limit": 1}).json()
    assert page["next_offset"] == 1 and len(page["plans"]) == 1
    running = web.client.get("/api/plans", params={"status": "running"}).json()["plans"]
    assert len(running) == 2
    code(web.client.get("/api/plans?status=dreaming"), 422, "invalid")


@pytest.mark.parametrize(
    ("content", "content_type", "status", "needle"),
    [
        (b"{nope", "application/json", 422, "not valid"),
        (b"name: [", "application/yaml", 422, "not valid"),
        (b"name: x", "text/plain", 400, "application/json or application/yaml"),
        (b"[1, 2]", "application/json", 422, "mapping"),
        (b'{"name": "x"}', "application/json", 422, "jobs"),
        (b'{"name": "x", "jobs": [{"name": "a", "engine": "nope"}]}', "application/json", 422, ""),
        (
            b'{"name": "x", "jobs": [{"name": "a", "engine": "shell", "cmd": "x",'
            b' "depends_on": ["a"]}]}',
            "application/json",
            422,
            "itself",
        ),
        (
            b'{"name": "x", "jobs": [{"name": "a", "file": "/etc/hostname"}]}',
            "application/json",
            422,
            "inline",
        ),
    ],
)
def test_bad_plans_are_refused_and_nothing_is_written(
    web: Web, content: bytes, content_type: str, status: int, needle: str
) -> None:
    r = web.client.post("/api/plans", content=content, headers={"Content-Type": content_type})
    err = code(r, status, "invalid")
    assert needle in err["message"]
    assert web.fleet.list_plans() == [] and web.fleet.list_jobs() == []


def test_plan_writes_need_the_token(web: Web) -> None:
    plan_id = gated(web)
    before = web.fleet.get_plan(plan_id)
    for verb in ("approve", "reject", "resume", "cancel"):
        code(web.anon.post(f"/api/plans/{plan_id}/{verb}", json={}), 401, "unauthorized")
    code(web.anon.post("/api/plans", json=plan(shell("x"))), 401, "unauthorized")
    code(web.anon.get(f"/api/plans/{plan_id}"), 401, "unauthorized")
    after = web.fleet.get_plan(plan_id)
    assert (after.status, after.rev, len(web.fleet.list_plans())) == (before.status, before.rev, 1)


def test_unknown_plans_are_404(web: Web) -> None:
    code(web.client.get("/api/plans/77"), 404, "not_found")
    for verb in ("approve", "reject", "resume", "cancel"):
        code(web.client.post(f"/api/plans/77/{verb}"), 404, "not_found")


def test_approve_the_gate_and_the_plan_continues(web: Web) -> None:
    plan_id = gated(web)
    r = web.client.post(f"/api/plans/{plan_id}/approve", json={"response": {"ok": "ship it"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["plan"]["status"] == "running" and "Approved" in body["message"]
    steps = {j["name"]: j for j in body["plan"]["jobs"]}
    assert steps["review"]["status"] == "succeeded"
    assert steps["review"]["result"]["response"] == {"ok": "ship it"}
    assert steps["ship"]["status"] == "queued"
    drain(web.fleet)
    assert web.client.get(f"/api/plans/{plan_id}").json()["status"] == "completed"
    err = code(web.client.post(f"/api/plans/{plan_id}/approve"), 409, "conflict")
    assert "not waiting for approval" in err["message"]


def test_supervised_plans_stop_before_finishing_and_on_errors(web: Web) -> None:
    done = submit(web, plan(shell("a"), mode="supervised"))["id"]
    drain(web.fleet)
    assert web.client.get(f"/api/plans/{done}").json()["checkpoint"] == "pre_pr"
    r = web.client.post(f"/api/plans/{done}/approve")
    assert r.json()["plan"]["status"] == "completed"

    broken = submit(web, plan(shell("b", max_attempts=1), mode="supervised"))["id"]
    drain(web.fleet, fail={"b"})
    err = code(web.client.post(f"/api/plans/{broken}/approve"), 409, "conflict")
    assert "stopped on an error" in err["message"]
    r = web.client.post(f"/api/plans/{broken}/resume")
    assert r.status_code == 200 and r.json()["plan"]["status"] == "running"


def test_reject_with_feedback_sends_the_work_back(web: Web) -> None:
    plan_id = gated(web)
    r = web.client.post(f"/api/plans/{plan_id}/reject", json={"feedback": "add tests"})
    body = r.json()
    assert r.status_code == 200 and "feedback" in body["message"]
    build = next(j for j in body["plan"]["jobs"] if j["name"] == "build")
    assert build["status"] == "queued"
    assert web.fleet.get_job(build["job_id"]).payload["feedback"] == ["add tests"]
    code(web.client.post(f"/api/plans/{plan_id}/reject", json={"feedback": 5}), 422, "invalid")
    code(web.client.post(f"/api/plans/{plan_id}/reject"), 409, "conflict")  # not at a gate now


def test_reject_without_feedback_cancels(web: Web) -> None:
    plan_id = gated(web)
    body = web.client.post(f"/api/plans/{plan_id}/reject").json()
    assert body["plan"]["status"] == "cancelled" and "cancelled" in body["message"]


def test_resume_and_cancel_answers(web: Web, mem_env: StoreEnv) -> None:
    plan_id = failed_plan(web.fleet, web)
    body = web.client.post(f"/api/plans/{plan_id}/resume").json()
    assert body["plan"]["status"] == "running" and body["message"].startswith("Resumed")
    err = code(web.client.post(f"/api/plans/{plan_id}/resume"), 409, "not_resumable")
    assert err["status"] == "running" and "already being resumed" in err["message"]

    first = web.client.post(f"/api/plans/{plan_id}/cancel").json()
    assert first["cancelled"] is True
    second = web.client.post(f"/api/plans/{plan_id}/cancel").json()
    assert second["cancelled"] is False and second["message"].startswith("Nothing to cancel")
    err = code(web.client.post(f"/api/plans/{plan_id}/resume"), 409, "not_resumable")
    assert err["status"] == "cancelled" and "cannot be resumed" in err["message"]


def test_many_concurrent_resumes_through_http_give_one_success(env: StoreEnv) -> None:
    """Real HTTP requests, released together, against one failed plan: exactly one resumes."""
    web = make_web(env)
    plan_id = failed_plan(env.fleet, web)
    n = 12
    barrier = threading.Barrier(n)
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()
    with uvicorn_thread(web.app) as url:

        def resume() -> None:
            with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
                barrier.wait()
                r = client.post(f"/api/plans/{plan_id}/resume")
            with lock:
                answers.append((r.status_code, r.json()))

        threads = [threading.Thread(target=resume) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert len(answers) == n
    wins = [body for status, body in answers if status == 200]
    losses = [body["error"] for status, body in answers if status == 409]
    assert len(wins) == 1, answers
    assert len(losses) == n - 1, answers
    assert {(e["code"], e["status"]) for e in losses} == {("not_resumable", "running")}
    assert env.fleet.get_plan(plan_id).status is PlanStatus.RUNNING


def test_plan_pages(web: Web) -> None:
    plan_id = gated(web)
    other = submit(web, plan(shell("x")))["id"]
    html = web.client.get(f"/plans/{plan_id}").text
    assert "Waiting for approval at" in html and "approve review?" in html
    assert 'class="node n-waiting gate here"' in html and 'data-step="review"' in html
    assert html.count('class="edge') == 2
    assert f'data-action="/api/plans/{plan_id}/approve"' in html
    assert f'data-action="/api/plans/{plan_id}/reject"' in html
    listing = web.client.get("/plans").text
    assert f'href="/plans/{plan_id}"' in listing and f'href="/plans/{other}"' in listing
    assert f'href="/plans/{other}"' not in web.client.get("/plans?status=paused").text
    overview = web.client.get("/").text
    assert "Plans needing attention" in overview and "waiting for approval at review" in overview
    assert web.client.get("/plans/999", headers={"Accept": "text/html"}).status_code == 404
    assert "unknown plan status" in web.client.get("/plans?status=nope").text


def test_metrics_count_plan_moves(web: Web) -> None:
    plan_id = gated(web)
    web.client.post(f"/api/plans/{plan_id}/approve")
    text = web.client.get("/metrics").text
    assert 'agentfleet_plan_events_total{kind="plan_paused"} 1.0' in text
    assert 'agentfleet_plan_events_total{kind="approved"} 1.0' in text


def test_a_second_approval_of_one_pause_is_refused_naming_where_the_plan_waits(web: Web) -> None:
    spec = plan(shell("build"), gate("review", "build"), shell("ship", "review"), mode="supervised")
    plan_id = submit(web, spec)["id"]
    drain(web.fleet)
    shown = web.client.get(f"/api/plans/{plan_id}").json()
    assert (shown["pending"], shown["pauses"]) == ("review#1", 1)
    first = web.client.post(f"/api/plans/{plan_id}/approve", json={"checkpoint": "review#1"})
    assert first.status_code == 200, first.text
    drain(web.fleet)  # ship runs: the plan now waits at pre_pr
    second = web.client.post(f"/api/plans/{plan_id}/approve", json={"checkpoint": "review#1"})
    err = code(second, 409, "checkpoint_conflict")
    assert err["pending"] == "pre_pr#2" and "pre_pr#2" in err["message"]
    refused = web.client.post(
        f"/api/plans/{plan_id}/reject", json={"checkpoint": "review#1", "feedback": "late"}
    )
    code(refused, 409, "checkpoint_conflict")
    assert web.fleet.get_plan(plan_id).pending == "pre_pr#2"


def test_abandon_a_failed_plan_then_nothing_to_abandon(web: Web) -> None:
    plan_id = failed_plan(web.fleet, web)
    first = web.client.post(f"/api/plans/{plan_id}/abandon")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "plan_id": plan_id,
        "abandoned": True,
        "message": f"Abandoned plan {plan_id}: it will not be resumed.",
    }
    assert web.client.get(f"/api/plans/{plan_id}").json()["status"] == "abandoned"
    again = web.client.post(f"/api/plans/{plan_id}/abandon").json()
    assert again["abandoned"] is False and "already ended (abandoned)" in again["message"]
    code(web.client.post(f"/api/plans/{plan_id}/resume"), 409, "not_resumable")


def test_abandon_of_a_running_plan_is_refused_pointing_to_cancel(web: Web) -> None:
    plan_id = submit(web, plan(shell("a")))["id"]
    err = code(web.client.post(f"/api/plans/{plan_id}/abandon"), 409, "conflict")
    assert "cancel it" in err["message"]
    assert web.fleet.get_plan(plan_id).status is PlanStatus.RUNNING


@pytest.mark.parametrize(("case", "content", "problem"), BAD_PLANS, ids=BAD_PLAN_IDS)
def test_a_bad_plan_over_http_is_a_422_and_nothing_written(
    web: Web, case: str, content: bytes | str, problem: str
) -> None:
    body = content if isinstance(content, bytes) else content.encode()
    r = web.client.post("/api/plans", content=body, headers={"Content-Type": "application/yaml"})
    err = code(r, 422, "invalid")
    assert problem.split("'")[0] in err["message"] or "UTF-8" in err["message"], (case, err)
    assert web.fleet.list_plans() == []


def test_parsing_a_large_plan_does_not_hold_up_other_requests(mem_env: StoreEnv) -> None:
    app = make_web(mem_env).app
    big = "name: big\nmetadata:\n  notes: [" + ", ".join(["n"] * 120_000) + "]\njobs: [1]\n"
    finished: list[str] = []
    with (
        uvicorn_thread(app) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=120) as client,
    ):

        def post() -> None:
            client.post("/api/plans", content=big, headers={"Content-Type": "application/yaml"})
            finished.append("plan")

        poster = threading.Thread(target=post)
        poster.start()
        threading.Event().wait(0.3)  # the plan is being read or parsed by now
        assert client.get("/healthz").status_code == 200
        finished.append("healthz")
        poster.join(timeout=120)
    assert finished == ["healthz", "plan"]
