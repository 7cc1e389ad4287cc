"""Stored tokens and their roles over HTTP: what each role may do, and revokes that bite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import httpx2 as httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from agentfleet.web.auth import CSRF_HEADER, SESSION_COOKIE, Auth, Principal, admin_access
from tests.web.conftest import TOKEN, Web
from tests.web.live import serve_subprocess
from tests.worker.helpers import cli

ROLES = ("worker", "read", "operate", "admin")
READS = ["/api/jobs", "/api/jobs/{id}", "/api/plans", "/api/queues", "/metrics"]
# What each role gets from a read and from an operate route.
EXPECTED = {
    "worker": (403, 403),
    "read": (200, 403),
    "operate": (200, 201),
    "admin": (200, 201),
}


def bearer(text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {text}"}


def approval_plan(web: Web) -> int:
    spec = {
        "name": "release",
        "jobs": [{"name": "review", "engine": "approval", "message": "Ship it?"}],
    }
    return web.fleet.submit_plan(spec).id


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reads_and_acts_as_far_as_it_may(web: Web, role: str) -> None:
    _, text = web.fleet.create_token(f"t-{role}", role)
    job = web.fleet.enqueue("shell", {"cmd": "true"}).id
    want_read, want_write = EXPECTED[role]
    for path in READS:
        r = web.anon.get(path.format(id=job), headers=bearer(text))
        assert r.status_code == want_read, (path, r.text)
    r = web.anon.post(
        "/api/jobs", json={"engine": "shell", "payload": {"cmd": "true"}}, headers=bearer(text)
    )
    assert r.status_code == want_write, r.text
    cancel = web.anon.post(f"/api/jobs/{job}/cancel", headers=bearer(text))
    assert cancel.status_code == (200 if want_write == 201 else 403), cancel.text
    plan = approval_plan(web)
    approve = web.anon.post(f"/api/plans/{plan}/approve", json={}, headers=bearer(text))
    assert approve.status_code == (200 if want_write == 201 else 403), approve.text
    if want_write == 403:
        assert len(web.fleet.list_jobs()) == 2  # the job and the gate: nothing was added
        assert web.fleet.get_job(job).status.value == "queued"


def test_a_refusal_names_the_role_and_what_it_may_do(web: Web) -> None:
    _, worker = web.fleet.create_token("box-7", "worker")
    _, read = web.fleet.create_token("dash", "read")
    r = web.anon.get("/api/jobs", headers=bearer(worker))
    body = r.json()["error"]
    assert (r.status_code, body["code"]) == (403, "forbidden")
    assert body["message"].startswith("the role worker may not read here: a worker token may")
    assert "worker API" in body["message"]
    r = web.anon.post("/api/jobs", json={"engine": "shell"}, headers=bearer(read))
    body = r.json()["error"]
    assert (r.status_code, body["code"]) == (403, "forbidden")
    assert body["message"].startswith("the role read may not make this change here:")
    assert "change nothing" in body["message"]


def test_a_worker_token_is_refused_even_where_reads_are_public(public_web: Web) -> None:
    _, worker = public_web.fleet.create_token("box-7", "worker")
    assert public_web.anon.get("/api/jobs").status_code == 200
    assert public_web.anon.get("/api/jobs", headers=bearer(worker)).status_code == 403


def test_the_servers_own_token_is_admin_and_keeps_working(web: Web) -> None:
    web.fleet.create_token("dash", "read")
    assert web.client.get("/api/jobs").status_code == 200
    r = web.client.post("/api/jobs", json={"engine": "shell", "payload": {"cmd": "true"}})
    assert r.status_code == 201


def test_a_revoked_token_is_refused_at_its_next_request(web: Web) -> None:
    info, text = web.fleet.create_token("ops", "operate")
    assert web.anon.get("/api/jobs", headers=bearer(text)).status_code == 200
    assert web.fleet.revoke_token("ops")
    r = web.anon.get("/api/jobs", headers=bearer(text))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    r = web.anon.post("/api/jobs", json={"engine": "shell"}, headers=bearer(text))
    assert r.status_code == 401
    assert web.fleet.list_jobs() == []
    for wrong in (text + "x", f"aft_{info.id}_nope", "aft_nothing"):
        assert web.anon.get("/api/jobs", headers=bearer(wrong)).status_code == 401


def sign_in_with(web: Web, text: str) -> TestClient:
    browser = TestClient(web.app, raise_server_exceptions=False)
    r = browser.post(
        "/login",
        data={"token": text, "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    cookie = r.headers["set-cookie"]
    secret = text.split("_", 2)[2]  # after aft_ and the id (the secret may hold _ too)
    assert SESSION_COOKIE in cookie and text not in cookie and secret not in cookie
    return browser


def csrf_of(page: str) -> str:
    return page.split('name="csrf-token" content="')[1].split('"')[0]


def test_a_session_of_a_stored_token_acts_by_its_role_until_revoked(web: Web) -> None:
    _, text = web.fleet.create_token("ops", "operate")
    browser = sign_in_with(web, text)
    page = browser.get("/")
    assert page.status_code == 200 and ">operate<" in page.text
    csrf = csrf_of(page.text)
    assert csrf != Auth(TOKEN).csrf_token  # its own, not the server token's
    made = browser.post(
        "/api/jobs",
        json={"engine": "shell", "payload": {"cmd": "true"}},
        headers={CSRF_HEADER: csrf},
    )
    assert made.status_code == 201
    forged = browser.post("/api/jobs", json={"engine": "shell"}, headers={CSRF_HEADER: "x" * 64})
    assert forged.status_code == 401

    assert web.fleet.revoke_token("ops")
    assert browser.get("/api/jobs").status_code == 401
    assert browser.get("/", follow_redirects=False).status_code == 303  # to the sign-in form
    late = browser.post("/api/jobs", json={"engine": "shell"}, headers={CSRF_HEADER: csrf})
    assert late.status_code == 401
    assert len(web.fleet.list_jobs()) == 1


def test_a_cookie_for_another_token_id_is_anonymous(web: Web) -> None:
    info, text = web.fleet.create_token("dash", "read")
    other, _ = web.fleet.create_token("ops", "operate")
    browser = sign_in_with(web, text)
    value = browser.cookies[SESSION_COOKIE]
    assert value.startswith(f"{info.id}.")
    assert browser.get("/api/jobs").status_code == 200
    forged = TestClient(web.app, raise_server_exceptions=False)
    forged.cookies.set(SESSION_COOKIE, other.id + value[len(info.id) :])
    assert forged.get("/api/jobs").status_code == 401
    forged.cookies.set(SESSION_COOKIE, value)  # the real one still works
    assert forged.get("/api/jobs").status_code == 200


def test_the_token_link_takes_a_stored_token(web: Web) -> None:
    _, text = web.fleet.create_token("dash", "read")
    browser = TestClient(web.app, raise_server_exceptions=False)
    r = browser.get(f"/jobs?token={text}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/jobs"
    assert browser.get("/jobs").status_code == 200


def test_the_dashboard_shows_only_the_actions_of_the_role(web: Web) -> None:
    job = web.fleet.enqueue("shell", {"cmd": "sleep 60"}).id
    plan = approval_plan(web)
    _, read = web.fleet.create_token("dash", "read")
    _, operate = web.fleet.create_token("ops", "operate")
    reader, operator = sign_in_with(web, read), sign_in_with(web, operate)

    for page in (reader.get(f"/jobs/{job}").text, reader.get(f"/plans/{plan}").text):
        assert "data-action" not in page
        assert ">Cancel<" not in page and ">Approve<" not in page and ">Cancel plan<" not in page
        assert "read only: a read token" in page and "Sign in to act" not in page
    assert "Ship it?" in reader.get(f"/plans/{plan}").text  # what to decide is still shown

    job_page = operator.get(f"/jobs/{job}").text
    assert f'data-action="/api/jobs/{job}/cancel"' in job_page and ">Cancel<" in job_page
    plan_page = operator.get(f"/plans/{plan}").text
    assert f'data-action="/api/plans/{plan}/approve"' in plan_page and ">Approve<" in plan_page
    assert ">Reject<" in plan_page and ">Cancel plan<" in plan_page
    assert "disabled" not in job_page.split('id="job-head"')[1].split("</section>")[0]


def test_admin_access_takes_only_admin_tokens(web: Web) -> None:
    app = FastAPI()
    app.state.auth = web.app.state.auth

    @app.post("/settings")
    def change(who: Annotated[Principal, Depends(admin_access)]) -> dict[str, str]:
        return {"role": str(who.role)}

    from agentfleet.web import errors

    errors.install(app)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/settings", headers=bearer(TOKEN)).json() == {"role": "admin"}
    for role in ROLES:
        _, text = web.fleet.create_token(f"t-{role}", role)
        r = client.post("/settings", headers=bearer(text))
        assert r.status_code == (200 if role == "admin" else 403), (role, r.text)


def test_a_worker_signed_in_at_the_dashboard_is_told_what_its_role_may_do(web: Web) -> None:
    _, worker = web.fleet.create_token("box-7", "worker")
    browser = sign_in_with(web, worker)
    page = browser.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 403
    assert "the role worker may not read here" in page.text


def test_a_request_stamps_when_the_token_was_last_used(web: Web) -> None:
    _, text = web.fleet.create_token("dash", "read")
    [before] = web.fleet.tokens()
    assert before.last_used_at is None
    assert web.anon.get("/api/jobs", headers=bearer(text)).status_code == 200
    [after] = web.fleet.tokens()
    assert after.last_used_at is not None
    assert web.anon.get("/api/jobs", headers=bearer(text)).status_code == 200
    assert web.fleet.tokens()[0].last_used_at == after.last_used_at  # once a minute at most


def test_tokens_made_and_revoked_by_the_cli_bite_on_a_running_server(tmp_path: Path) -> None:
    """Across processes: `agentfleet tokens` on one side, `agentfleet serve` on the other."""
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    made = cli("--db", db, "tokens", "create", "--role", "operate", "--name", "ops", "--json")
    assert made.returncode == 0, made.stderr
    text = json.loads(made.stdout)["token"]
    with serve_subprocess(db, TOKEN, tmp_path) as server:
        r = httpx.post(
            f"{server.url}api/jobs",
            json={"engine": "shell", "payload": {"cmd": "true"}},
            headers=bearer(text),
        )
        assert r.status_code == 201, r.text
        revoked = cli("--db", db, "tokens", "revoke", "ops")
        assert revoked.returncode == 0, revoked.stderr
        r = httpx.get(f"{server.url}api/jobs", headers=bearer(text))
        assert r.status_code == 401
        assert text not in server.log()
