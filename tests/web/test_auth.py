"""Who may read and change: bearer tokens, the browser session, --public-read, the bind rule."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from agentfleet.web.auth import CSRF_HEADER, SESSION_COOKIE
from agentfleet.web.server import HostCheck, ServeRefused, base_url, is_loopback, resolve_token
from tests.web.conftest import TOKEN, Web

WRITES = [
    ("/api/jobs", {"engine": "shell", "payload": {"cmd": "true"}}),
    ("/api/jobs/{id}/cancel", None),
    ("/api/jobs/{id}/retry", None),
]
READS = [
    "/api/jobs",
    "/api/jobs/{id}",
    "/api/jobs/{id}/runs",
    "/api/jobs/{id}/logs",
    "/api/jobs/{id}/events",
    "/api/events",
    "/api/workers",
    "/api/queues",
    "/metrics",
]


def snapshot(web: Web) -> list[tuple[int, str, int]]:
    return [(j.id, j.status.value, j.rev) for j in web.fleet.list_jobs()]


def failed_job(web: Web) -> int:
    job = web.fleet.enqueue("shell", {"cmd": "false"}, max_attempts=1)
    lease = web.fleet.claim(job.id, worker="w")
    assert lease is not None
    web.fleet.fail(lease, "boom")
    return job.id


@pytest.mark.parametrize("public", [False, True])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
    ],
)
def test_every_write_needs_the_token_and_changes_nothing(
    web: Web, public_web: Web, public: bool, headers: dict[str, str]
) -> None:
    target = public_web if public else web
    job = failed_job(target)
    queued = target.fleet.enqueue("shell", {"cmd": "true"}).id
    before = snapshot(target)
    for path, body in WRITES:
        for id_ in (job, queued):
            r = target.anon.post(path.format(id=id_), json=body, headers=headers)
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
    assert snapshot(target) == before


def test_reads_need_the_token_unless_public(web: Web, public_web: Web) -> None:
    for target, public in ((web, False), (public_web, True)):
        job = target.fleet.enqueue("shell", {"cmd": "true"}).id
        for path in READS:
            r = target.anon.get(path.format(id=job))
            assert r.status_code == (200 if public else 401), (path, r.text)
            assert target.client.get(path.format(id=job)).status_code == 200, path
            # a wrong token is refused even where reads are public
            wrong = target.anon.get(path.format(id=job), headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401, path


def test_pages_send_anonymous_readers_to_sign_in(web: Web, public_web: Web) -> None:
    for path in ("/", "/jobs", "/jobs/1"):
        r = web.anon.get(path, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == f"/login?next={path.replace('/', '%2F')}"
    assert public_web.anon.get("/").status_code == 200
    live = web.anon.get("/", headers={"X-Live": "1"}, follow_redirects=False)
    assert live.status_code == 401


def sign_in(web: Web) -> TestClient:
    browser = TestClient(web.app, raise_server_exceptions=False)
    r = browser.post(
        "/login",
        content=f"token={TOKEN}&next=%2Fjobs",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/jobs"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert TOKEN not in cookie  # the cookie holds a derived value, never the token
    return browser


def test_session_cookie_reads_but_writes_only_with_the_csrf_header(web: Web) -> None:
    browser = sign_in(web)
    assert browser.get("/api/jobs").status_code == 200
    page = browser.get("/")
    assert page.status_code == 200
    csrf = page.text.split('name="csrf-token" content="')[1].split('"')[0]
    r = browser.post("/api/jobs", json={"engine": "shell"})
    assert r.status_code == 401 and CSRF_HEADER in r.json()["error"]["message"]
    r = browser.post("/api/jobs", json={"engine": "shell"}, headers={CSRF_HEADER: "x" * 64})
    assert r.status_code == 401
    assert web.fleet.list_jobs() == []
    r = browser.post("/api/jobs", json={"engine": "shell"}, headers={CSRF_HEADER: csrf})
    assert r.status_code == 201


def test_a_forged_cookie_is_anonymous(web: Web) -> None:
    browser = TestClient(web.app, raise_server_exceptions=False)
    browser.cookies.set(SESSION_COOKIE, TOKEN)
    assert browser.get("/api/jobs").status_code == 401
    assert browser.get("/", follow_redirects=False).status_code == 303


def test_wrong_login_and_logout(web: Web) -> None:
    browser = TestClient(web.app, raise_server_exceptions=False)
    r = browser.post(
        "/login",
        content="token=nope&next=%2F",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/login?")
    assert "set-cookie" not in r.headers
    assert browser.get(r.headers["location"]).status_code == 401  # the form, saying why
    browser = sign_in(web)
    r = browser.post("/logout", follow_redirects=False)
    assert r.status_code == 303
    assert browser.get("/api/jobs").status_code == 401


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil", ""])
def test_sign_in_never_redirects_off_site(web: Web, target: str) -> None:
    browser = TestClient(web.app, raise_server_exceptions=False)
    r = browser.post(
        "/login",
        data={"token": TOKEN, "next": target},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


def test_token_link_signs_in_and_drops_the_token_from_the_address(web: Web) -> None:
    browser = TestClient(web.app, raise_server_exceptions=False)
    r = browser.get(f"/jobs?status=queued&token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/jobs?status=queued"
    assert SESSION_COOKIE in r.headers["set-cookie"]
    assert browser.get("/jobs?status=queued").status_code == 200
    bad = TestClient(web.app).get("/?token=wrong", follow_redirects=False)
    assert bad.status_code == 303 and bad.headers["location"].startswith("/login?")
    assert "set-cookie" not in bad.headers
    # the API never takes a token from the address
    assert TestClient(web.app).get(f"/api/jobs?token={TOKEN}").status_code == 401


def test_security_headers_on_every_response(web: Web) -> None:
    for r in (web.client.get("/"), web.client.get("/api/jobs"), web.anon.get("/api/jobs")):
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_token_rules_for_binding() -> None:
    assert resolve_token("a-long-enough-token-123", "0.0.0.0") == ("a-long-enough-token-123", False)
    token, generated = resolve_token(None, "127.0.0.1")
    assert generated and len(token) >= 32
    assert resolve_token("", "::1")[1] is True
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.com"):
        with pytest.raises(ServeRefused, match="without a token"):
            resolve_token(None, host)
    with pytest.raises(ServeRefused, match="at least"):
        resolve_token("short", "127.0.0.1")
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0")
    assert base_url("::1", 8700) == "http://[::1]:8700/"


def test_host_check_refuses_other_names(web: Web) -> None:
    checked = TestClient(HostCheck(web.app, ["127.0.0.1", "localhost", "::1"]), headers={})
    ok = checked.get("/healthz", headers={"Host": "127.0.0.1:8700"})
    assert ok.status_code == 200
    assert checked.get("/healthz", headers={"Host": "[::1]:8700"}).status_code == 200
    rebound = checked.get("/healthz", headers={"Host": "attacker.example:8700"})
    assert rebound.status_code == 400 and rebound.json()["error"]["code"] == "invalid"
