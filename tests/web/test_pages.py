"""The dashboard's server-rendered pages (the browser tests drive them for real)."""

from __future__ import annotations

import io
import json
import logging

from agentfleet import RunOutput, logs
from tests.web.conftest import TOKEN, Web


def test_overview_shows_queues_running_jobs_workers_and_failures(web: Web) -> None:
    fleet = web.fleet
    running = fleet.enqueue("claude", {"prompt": "Refactor the billing module\nin detail"}).id
    fleet.enqueue("shell", {"cmd": "make lint"}, queue="ci")
    broken = fleet.enqueue("shell", {"cmd": "exit 3"}, max_attempts=1).id
    fleet.worker_seen("laptop-1", host="laptop", pid=4242, queues=["default"], concurrency=2)
    assert fleet.claim(running, worker="laptop-1") is not None
    lease = fleet.claim(broken, worker="laptop-1")
    assert lease is not None
    fleet.fail(lease, "exit status 3")

    html = web.client.get("/").text
    assert "Refactor the billing module" in html and "in detail" not in html
    assert 'href="/jobs?queue=ci"' in html
    assert "laptop-1" in html and "pid 4242" in html and f'href="/jobs/{running}"' in html
    assert "exit status 3" in html
    assert "data-live" in html and 'src="/static/app.js"' in html


def test_jobs_page_filters_and_pages(web: Web) -> None:
    for i in range(5):
        web.fleet.enqueue("shell", {"cmd": f"echo {i}"}, queue="a" if i < 3 else "b")
    html = web.client.get("/jobs?queue=b").text
    assert "echo 3" in html and "echo 4" in html and "echo 0" not in html
    page = web.client.get("/jobs?limit=2").text
    assert "echo 4" in page and "echo 3" in page and "echo 2" not in page
    assert "offset=2" in page  # a link to the older page
    bad = web.client.get("/jobs?status=sleeping")
    assert bad.status_code == 200 and "unknown status" in bad.text


def test_job_page_shows_front_matter_prompt_runs_logs_and_events(web: Web) -> None:
    fleet = web.fleet
    job = fleet.enqueue(
        "claude",
        {"prompt": "Make the flaky test deterministic.", "cwd": "services/api", "yolo": True},
        lock="services-api",
        timeout=2700,
    ).id
    lease = fleet.claim(job, worker="w1")
    assert lease is not None
    fleet.fail(lease, "agent crashed", output=RunOutput(exit_code=1, stderr="Segfault\n"))
    lease = fleet.claim(job, worker="w2")
    assert lease is not None
    fleet.record_output(lease, RunOutput(stdout="step 1 ok\nstep 2 ok\n"))

    html = web.client.get(f"/jobs/{job}").text
    assert "engine: claude" in html and "lock: services-api" in html and "cwd: services/api" in html
    assert "Make the flaky test deterministic." in html
    assert "step 2 ok" in html and "Segfault" in html
    assert "attempt 2" in html and "attempt 1" in html
    for kind in ("enqueued", "claimed", "retry scheduled"):
        assert kind in html
    assert f'data-action="/api/jobs/{job}/cancel"' in html
    assert web.client.get("/jobs/999").status_code == 404


def test_user_content_is_escaped(web: Web) -> None:
    job = web.fleet.enqueue("claude", {"prompt": "<script>alert(1)</script> & <b>x</b>"}).id
    html = web.client.get(f"/jobs/{job}").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_live_refreshes_get_304_when_nothing_changed(web: Web) -> None:
    job = web.fleet.enqueue("shell", {"cmd": "true"}).id
    first = web.client.get(f"/jobs/{job}", headers={"X-Live": "1"})
    etag = first.headers["etag"]
    same = web.client.get(f"/jobs/{job}", headers={"X-Live": "1", "If-None-Match": etag})
    assert same.status_code == 304
    web.fleet.cancel_job(job)
    changed = web.client.get(f"/jobs/{job}", headers={"X-Live": "1", "If-None-Match": etag})
    assert changed.status_code == 200 and "cancelled" in changed.text


def test_anonymous_public_reader_sees_pages_but_no_working_buttons(public_web: Web) -> None:
    job = public_web.fleet.enqueue("shell", {"cmd": "sleep 1"}).id
    html = public_web.anon.get(f"/jobs/{job}").text
    assert "disabled" in html and "Sign in to act" in html
    assert 'name="csrf-token"' not in html


def test_request_logs_carry_no_token(web: Web) -> None:
    stream = io.StringIO()
    handler = logs.configure(logging.DEBUG, stream=stream, logger="agentfleet.web")
    try:
        web.anon.get(f"/jobs?token={TOKEN}", follow_redirects=False)
        web.client.get("/api/jobs")
        web.anon.post("/api/jobs", json={"engine": "shell"})
        web.client.post("/api/jobs", json={"engine": "shell", "payload": {"cmd": "true"}})
    finally:
        logging.getLogger("agentfleet.web").removeHandler(handler)
    out = stream.getvalue()
    assert TOKEN not in out
    entries = [json.loads(line) for line in out.splitlines()]
    done = [e for e in entries if e["event"] == "http.request_completed"]
    assert {(e["method"], e["route"], e["status"]) for e in done} >= {
        ("GET", "/api/jobs", 200),
        ("POST", "/api/jobs", 401),
        ("POST", "/api/jobs", 201),
    }
    assert any(e["event"] == "auth.token_link_accepted" for e in entries)
    assert any(e["event"] == "job.enqueue_completed" and e.get("job") for e in entries)


def test_a_plan_at_its_gate_shows_what_to_review(web: Web) -> None:
    fleet = web.fleet
    spec = {
        "name": "checkout",
        "jobs": [
            {"name": "backend", "engine": "shell", "cmd": "build"},
            {"name": "review", "engine": "approval", "message": "ok?", "depends_on": ["backend"]},
        ],
    }
    plan = fleet.submit_plan(spec)
    [lease] = fleet.claim_next(worker="w")
    out = "".join(f"compiled module {i}\n" for i in range(30))
    fleet.complete(lease, {"endpoints": 3}, output=RunOutput(exit_code=0, stdout=out))
    html = web.client.get(f"/plans/{plan.id}").text
    assert "What to review: the work before review" in html
    assert "compiled module 29" in html and "compiled module 5\n" not in html  # the tail
    assert "&#34;endpoints&#34;: 3" in html or '"endpoints": 3' in html
    assert f"agentfleet logs {lease.job_id}" in html


def test_a_plan_stopped_on_an_error_shows_the_failing_steps_stderr(web: Web) -> None:
    fleet = web.fleet
    spec = {
        "name": "ci",
        "mode": "supervised",
        "jobs": [{"name": "lint", "engine": "shell", "cmd": "lint", "max_attempts": 1}],
    }
    plan = fleet.submit_plan(spec)
    [lease] = fleet.claim_next(worker="w")
    fleet.fail(lease, "exit code 1", output=RunOutput(1, "", "E501 line too long\n"))
    html = web.client.get(f"/plans/{plan.id}").text
    assert "How lint ended" in html and "E501 line too long" in html
