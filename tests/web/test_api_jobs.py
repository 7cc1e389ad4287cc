"""The JSON API's job routes: each a thin call of one Fleet operation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentfleet import JobStatus, RunOutput
from tests.conftest import StoreEnv
from tests.web.conftest import Web, make_web


def enqueue(web: Web, **body: Any) -> dict[str, Any]:
    body.setdefault("engine", "shell")
    body.setdefault("payload", {"cmd": "echo hi"})
    r = web.client.post("/api/jobs", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert "Traceback" not in r.text
    return body["error"]


def test_flow_on_every_store(env: StoreEnv) -> None:
    """Enqueue, claim, output, complete, read back: the same answers on every backend."""
    web = make_web(env)
    job = enqueue(web, payload={"prompt": "Fix it", "labels": ["api"]}, engine="claude")
    assert job["status"] == "queued" and job["labels"] == ["api"]
    lease = env.fleet.claim(job["id"], worker="w1")
    assert lease is not None
    env.fleet.complete(lease, {"ok": True}, output=RunOutput(exit_code=0, stdout="done\n"))

    shown = web.client.get(f"/api/jobs/{job['id']}").json()
    assert shown["status"] == "succeeded" and shown["result"] == {"ok": True}
    runs = web.client.get(f"/api/jobs/{job['id']}/runs").json()["runs"]
    assert [(r["attempt"], r["status"], r["worker"]) for r in runs] == [(1, "succeeded", "w1")]
    assert "stdout" not in runs[0]
    logs = web.client.get(f"/api/jobs/{job['id']}/logs").json()["logs"]
    assert logs[0]["stdout"] == "done\n" and logs[0]["exit_code"] == 0
    kinds = [e["kind"] for e in web.client.get(f"/api/jobs/{job['id']}/events").json()["events"]]
    assert kinds == ["enqueued", "claimed", "succeeded"]
    listed = web.client.get("/api/jobs", params={"label": "api"}).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    queues = web.client.get("/api/queues").json()["queues"]
    assert queues == [
        {
            "queue": "default",
            "counts": {
                "waiting": 0,
                "queued": 0,
                "running": 0,
                "succeeded": 1,
                "failed": 0,
                "cancelled": 0,
                "skipped": 0,
            },
            "total": 1,
        }
    ]


def test_enqueue_takes_every_option(web: Web) -> None:
    job = enqueue(
        web,
        engine="shell",
        payload={"cmd": "make test"},
        queue="ci",
        priority=5,
        lock="repo-a",
        max_attempts=2,
        timeout=90,
        delay=3600,
        dedupe_key="build-1",
    )
    assert (job["queue"], job["priority"], job["lock"], job["max_attempts"]) == (
        "ci",
        5,
        "repo-a",
        2,
    )
    assert job["timeout"] == 90.0 and job["dedupe_key"] == "build-1"
    assert job["run_at"] > job["created_at"]
    again = enqueue(web, payload={"cmd": "make test"}, queue="ci", dedupe_key="build-1")
    assert again["id"] == job["id"]

    at = enqueue(web, run_at="2030-01-02T03:04:05Z")
    assert at["run_at"].startswith("2030-01-02T03:04:05")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payload": {}}, "engine"),
        ({"engine": 5}, "engine"),
        ({"engine": ""}, "engine"),
        ({"engine": "shell", "payload": []}, "payload"),
        ({"engine": "shell", "priority": "high"}, "priority"),
        ({"engine": "shell", "priority": 1.5}, "priority"),
        ({"engine": "shell", "max_attempts": 0}, "max_attempts"),
        ({"engine": "shell", "timeout": -1}, "timeout"),
        ({"engine": "shell", "timeout": True}, "timeout"),
        ({"engine": "shell", "run_at": "tomorrow"}, "run_at"),
        ({"engine": "shell", "queue": "x" * 201}, "queue"),
        ({"engine": "shell", "surprise": 1}, "surprise"),
    ],
)
def test_enqueue_rejects_bad_bodies_with_422(web: Web, body: dict[str, Any], field: str) -> None:
    err = error(web.client.post("/api/jobs", json=body), 422, "invalid")
    assert any(field in d["field"] for d in err["details"]), err
    assert web.fleet.list_jobs() == []


def test_enqueue_errors_from_the_fleet_are_422(web: Web) -> None:
    err = error(
        web.client.post("/api/jobs", json={"engine": "shell", "run_at": "2030-01-01T00:00:00"}),
        422,
        "invalid",
    )
    assert "timezone" in err["message"]
    err = error(
        web.client.post(
            "/api/jobs", json={"engine": "shell", "delay": 5, "run_at": "2030-01-01T00:00:00Z"}
        ),
        422,
        "invalid",
    )
    assert "not both" in err["message"]
    error(web.client.post("/api/jobs", json={"engine": "a\nb"}), 422, "invalid")
    assert web.fleet.list_jobs() == []


def test_bodies_that_are_not_json_or_too_large(web: Web) -> None:
    headers = {"Content-Type": "application/json"}
    error(web.client.post("/api/jobs", content=b"{not json", headers=headers), 400, "invalid")
    big = b'{"engine": "shell", "payload": {"cmd": "' + b"x" * (1024 * 1024) + b'"}}'
    error(web.client.post("/api/jobs", content=big, headers=headers), 413, "too_large")

    def chunks() -> Any:  # no Content-Length: counted as it streams in
        for _ in range(40):
            yield b" " * 32768

    error(web.client.post("/api/jobs", content=chunks(), headers=headers), 413, "too_large")
    assert web.fleet.list_jobs() == []


def test_list_filters_and_pagination(web: Web) -> None:
    ids = [enqueue(web, queue="a" if i % 2 else "b")["id"] for i in range(7)]
    enqueue(web, engine="codex", payload={"prompt": "p", "labels": ["red"]})
    first = web.client.get("/api/jobs", params={"limit": 3}).json()
    assert first["limit"] == 3 and first["offset"] == 0 and first["next_offset"] == 3
    everything: list[int] = []
    offset: int | None = 0
    while offset is not None:
        page = web.client.get("/api/jobs", params={"limit": 3, "offset": offset}).json()
        everything += [j["id"] for j in page["jobs"]]
        offset = page["next_offset"]
    assert everything == sorted(everything, reverse=True) and len(everything) == 8
    a = web.client.get("/api/jobs", params={"queue": "a"}).json()["jobs"]
    assert sorted(j["id"] for j in a) == [i for n, i in enumerate(ids) if n % 2]
    assert [j["engine"] for j in web.client.get("/api/jobs?engine=codex").json()["jobs"]] == [
        "codex"
    ]
    assert len(web.client.get("/api/jobs?label=red").json()["jobs"]) == 1
    web.fleet.claim(ids[0], worker="w")
    running = web.client.get("/api/jobs?status=running").json()["jobs"]
    assert [j["id"] for j in running] == [ids[0]]
    for bad in ("status=sleeping", "limit=0", "limit=1001", "offset=-1", "limit=x", "queue="):
        error(web.client.get(f"/api/jobs?{bad}"), 422, "invalid")


def test_job_routes_answer_404_for_a_missing_job(web: Web) -> None:
    for path in ("", "/runs", "/logs", "/events"):
        err = error(web.client.get(f"/api/jobs/4242{path}"), 404, "not_found")
        assert "4242" in err["message"]
    for verb in ("cancel", "retry"):
        error(web.client.post(f"/api/jobs/4242/{verb}"), 404, "not_found")
    error(web.client.get("/api/jobs/abc"), 422, "invalid")
    error(web.client.get("/api/jobs/99999999999999999999999"), 422, "invalid")
    error(web.client.get("/api/nothing-here"), 404, "not_found")
    error(web.client.delete("/api/jobs/1"), 405, "not_allowed")


def test_cancel_queued_running_and_finished(web: Web, mem_env: StoreEnv) -> None:
    queued = enqueue(web)["id"]
    body = web.client.post(f"/api/jobs/{queued}/cancel").json()
    assert body["cancelled"] is True and "cancelled" in body["message"]
    assert web.fleet.get_job(queued).status is JobStatus.CANCELLED

    running = enqueue(web)["id"]
    lease = web.fleet.claim(running, worker="w1")
    assert lease is not None
    assert web.client.post(f"/api/jobs/{running}/cancel").json()["cancelled"] is True
    assert web.fleet.get_job(running).cancel_requested
    again = web.client.post(f"/api/jobs/{running}/cancel").json()
    assert again["cancelled"] is False and again["message"].startswith("Nothing to cancel")
    finished = web.client.post(f"/api/jobs/{queued}/cancel").json()
    assert finished["cancelled"] is False


def test_retry_and_its_conflict(web: Web) -> None:
    job = enqueue(web, max_attempts=1)["id"]
    err = error(web.client.post(f"/api/jobs/{job}/retry"), 409, "conflict")
    assert err["current"] == "queued"
    lease = web.fleet.claim(job, worker="w1")
    assert lease is not None
    web.fleet.fail(lease, "boom")
    assert web.fleet.get_job(job).status is JobStatus.FAILED
    body = web.client.post(f"/api/jobs/{job}/retry").json()
    assert body["job"]["status"] == "queued" and body["job"]["attempts"] == 0
    assert "queued again" in body["message"]


def test_events_feed_pages_by_id(web: Web) -> None:
    for _ in range(3):
        enqueue(web)
    first = web.client.get("/api/events", params={"limit": 2}).json()
    assert [e["kind"] for e in first["events"]] == ["enqueued", "enqueued"]
    rest = web.client.get("/api/events", params={"after_id": first["next_after_id"]}).json()
    assert len(rest["events"]) == 1
    empty = web.client.get("/api/events", params={"after_id": rest["next_after_id"]}).json()
    assert empty == {"events": [], "next_after_id": rest["next_after_id"]}
    job = first["events"][0]["job_id"]
    lease = web.fleet.claim(job, worker="w9")
    assert lease is not None
    tail = web.client.get(f"/api/jobs/{job}/events", params={"after_id": 1}).json()["events"]
    assert [(e["kind"], e["worker"], e["epoch"]) for e in tail] == [("claimed", "w9", 1)]


def test_workers_alive_stale_and_stopped_on_the_store_clock(
    mem_env: StoreEnv, tmp_path: Path
) -> None:
    web = make_web(mem_env, worker_window=30.0)
    fleet = web.fleet
    fleet.worker_seen("old", host="h1", pid=10, queues=["default"], concurrency=1)
    assert mem_env.clock is not None
    mem_env.clock.advance(45)  # the store's clock moves; the test machine's does not
    fleet.worker_seen("busy", host="h2", pid=20, queues=["a", "b"], concurrency=4)
    fleet.worker_seen("gone", host="h3", pid=30, queues=[], concurrency=1)
    fleet.worker_stopped("gone")
    job = enqueue(web)["id"]
    assert fleet.claim(job, worker="busy") is not None

    body = web.client.get("/api/workers").json()
    assert body["window"] == 30.0
    by_name = {w["name"]: w for w in body["workers"]}
    assert by_name["busy"]["state"] == "alive" and by_name["busy"]["alive"] is True
    assert by_name["busy"]["running"] == [job] and by_name["busy"]["queues"] == ["a", "b"]
    assert by_name["old"]["state"] == "stale" and by_name["old"]["alive"] is False
    assert by_name["old"]["seconds_since_seen"] >= 45
    assert by_name["gone"]["state"] == "stopped"


def test_openapi_schema_lists_every_route(web: Web) -> None:
    schema = web.anon.get("/api/openapi.json").json()
    paths = schema["paths"]
    expected = {
        "/api/jobs": {"get", "post"},
        "/api/jobs/{job_id}": {"get"},
        "/api/jobs/{job_id}/runs": {"get"},
        "/api/jobs/{job_id}/logs": {"get"},
        "/api/jobs/{job_id}/events": {"get"},
        "/api/jobs/{job_id}/cancel": {"post"},
        "/api/jobs/{job_id}/retry": {"post"},
        "/api/events": {"get"},
        "/api/workers": {"get"},
        "/api/queues": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    assert "EnqueueRequest" in schema["components"]["schemas"]
    assert not any(p in paths for p in ("/", "/jobs", "/login"))


def test_healthz_is_open_and_reports_the_store_clock(web: Web) -> None:
    body = web.anon.get("/healthz").json()
    assert body["ok"] is True and body["now"]


def test_a_job_of_an_engine_no_worker_knows_is_refused(web: Web) -> None:
    r = web.client.post("/api/jobs", json={"engine": "someone-elses-agent", "payload": {}})
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "unknown engine 'someone-elses-agent'" in message and "serve --engines" in message
    assert web.fleet.list_jobs() == []
    approval = web.client.post("/api/jobs", json={"engine": "approval", "payload": {}})
    assert approval.status_code == 422 and "inside a plan" in approval.json()["error"]["message"]


def test_custom_engines_given_to_the_server_are_accepted(mem_env: StoreEnv) -> None:
    web = make_web(mem_env, engines={"mytool"})
    r = web.client.post("/api/jobs", json={"engine": "mytool", "payload": {"prompt": "x"}})
    assert r.status_code == 201, r.text


def test_job_env_values_are_never_shown(web: Web) -> None:
    job = web.fleet.enqueue("shell", {"cmd": "deploy", "env": {"API_TOKEN": "s3cr3t-value"}})
    shown = web.client.get(f"/api/jobs/{job.id}").json()
    assert shown["payload"]["env"] == {"API_TOKEN": "***"}
    listed = web.client.get("/api/jobs").text
    page = web.client.get(f"/jobs/{job.id}").text
    assert "API_TOKEN" in page
    for text in (listed, page):
        assert "s3cr3t-value" not in text
    assert web.fleet.get_job(job.id).payload["env"] == {"API_TOKEN": "s3cr3t-value"}  # kept


def test_anonymous_readers_never_see_env_values(public_web: Web) -> None:
    job = public_web.fleet.enqueue("shell", {"cmd": "x", "env": {"PASSWORD": "hunter2"}})
    assert "hunter2" not in public_web.anon.get(f"/api/jobs/{job.id}").text
    assert "hunter2" not in public_web.anon.get(f"/jobs/{job.id}").text


@pytest.mark.parametrize("field", ["delay", "timeout"])
@pytest.mark.parametrize("value", [1e300, 10**30])
def test_an_absurd_duration_is_a_422_not_a_500(web: Web, field: str, value: float) -> None:
    r = web.client.post("/api/jobs", json={"engine": "shell", "payload": {}, field: value})
    assert r.status_code == 422, r.text
    assert web.fleet.list_jobs() == []
