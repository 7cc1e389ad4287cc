"""End to end in a real browser: Debian's chromium, driven by Playwright, against a real
`agentfleet serve` process and a worker claiming and completing through the Fleet API.

Screenshots of the main pages land in test-artifacts/ (desktop and phone sizes).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.web.browser import browser_problem
from tests.web.live import ServeProcess, serve_subprocess
from tests.web.worker_loop import TestWorker

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN = "browser-test-token-0123456789"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 860}
TIMEOUT = 15_000  # ms: generous on a busy 2-core machine; a pass is usually far quicker


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    if browser_problem() is not None:
        pytest.skip("no browser")
    work = tmp_path_factory.mktemp("serve")
    db_url = f"sqlite:///{work / 'fleet.db'}"
    with serve_subprocess(db_url, TOKEN, work) as proc:
        yield proc
    assert TOKEN not in proc.log(), "the token leaked into the server's output"


@pytest.fixture(scope="module")
def worker(server: ServeProcess) -> Iterator[TestWorker]:
    with TestWorker(server.db_url) as w:
        yield w
    assert not w.errors, w.errors


@pytest.fixture(scope="module")
def api(server: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture
def page(chromium: Any, server: ServeProcess) -> Iterator[Any]:
    context = chromium.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.on("dialog", lambda dialog: dialog.accept())
    # sign in once through the address, as the printed link does
    page.goto(f"{server.url}?token={TOKEN}")
    assert "token" not in page.url
    try:
        yield page
    finally:
        context.close()


def shot(page: Any, name: str, *, full: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=full)


def wait_for(predicate: Any, what: str, timeout: float = 15.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def enqueue(api: httpx.Client, **payload: Any) -> int:
    r = api.post("/api/jobs", json={"engine": "shell", "payload": payload})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_sign_in_form(chromium: Any, server: ServeProcess) -> None:
    context = chromium.new_context(viewport=LAPTOP)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(f"{server.url}jobs")
        assert "/login" in page.url
        shot(page, "login.png", full=False)
        page.fill("input[name=token]", "not-the-token")
        page.click("button[type=submit]")
        page.wait_for_selector("text=That token is not right.")
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/jobs$"))
        assert page.locator("form.filters").is_visible()
    finally:
        context.close()


def test_watch_a_job_finish_live(
    page: Any, server: ServeProcess, api: httpx.Client, worker: TestWorker
) -> None:
    page.goto(server.url)
    page.evaluate("window.__notReloaded = true")
    for n in range(3):
        enqueue(api, cmd=f"pytest shard {n}", lines=2, interval=0.05)
    job = enqueue(api, cmd="make release", lines=10, interval=0.4)
    page.wait_for_selector(f"#running tr[data-job='{job}']")  # the overview updates itself
    page.wait_for_selector("#workers:has-text('e2e-worker')")
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "overview.png")

    page.goto(f"{server.url}jobs/{job}")
    page.evaluate("window.__notReloaded = true")
    page.wait_for_selector("#job-head .badge.s-running")
    page.wait_for_selector("#job-runs .log:has-text('step 2/10')")
    shot(page, "job-running.png")
    page.wait_for_selector("#job-head .badge.s-succeeded")
    page.wait_for_selector("#job-runs .log:has-text('step 10/10')")
    page.wait_for_selector("#job-events .ev-succeeded")
    assert page.evaluate("window.__notReloaded") is True  # updated in place, never reloaded
    shot(page, "job-succeeded.png")

    page.goto(f"{server.url}jobs")
    page.wait_for_selector(f"tr[data-job='{job}'] .badge.s-succeeded")
    shot(page, "jobs.png")


def test_cancel_a_running_job_and_see_it_stop(
    page: Any, server: ServeProcess, api: httpx.Client, worker: TestWorker
) -> None:
    job = enqueue(api, cmd="long agent session", lines=1, interval=0.05, hold=True)
    wait_for(lambda: api.get(f"/api/jobs/{job}").json()["status"] == "running", "running")
    page.goto(f"{server.url}jobs/{job}")
    page.evaluate("window.__notReloaded = true")
    page.wait_for_selector("#job-head .badge.s-running")
    page.click("#job-head button:has-text('Cancel')")
    page.wait_for_selector("#flash:has-text('cancelled')")
    page.wait_for_selector("#job-head .badge.s-cancelled")
    page.wait_for_selector("#job-runs .log:has-text('stopped: the job was cancelled')")
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "job-cancelled.png")
    body = api.get(f"/api/jobs/{job}").json()
    assert body["status"] == "cancelled"
    runs = api.get(f"/api/jobs/{job}/runs").json()["runs"]
    assert [r["status"] for r in runs] == ["cancelled"]


def test_approve_a_plan_gate_and_see_the_plan_continue(
    page: Any, server: ServeProcess, api: httpx.Client, worker: TestWorker
) -> None:
    spec = {
        "name": "checkout-redesign",
        "mode": "supervised",
        "max_parallel": 2,
        "jobs": [
            {"name": "api-schema", "engine": "shell", "cmd": "design the schema"},
            {
                "name": "backend",
                "engine": "shell",
                "cmd": "build /checkout",
                "depends_on": ["api-schema"],
            },
            {"name": "fixtures", "engine": "shell", "cmd": "seed test data"},
            {
                "name": "review",
                "engine": "approval",
                "message": "Check the API before the frontend starts.",
                "on_reject": "backend",
                "depends_on": ["backend", "fixtures"],
            },
            {
                "name": "frontend",
                "engine": "shell",
                "cmd": "build the page",
                "depends_on": ["review"],
            },
            {"name": "docs", "engine": "shell", "cmd": "write the docs", "depends_on": ["review"]},
        ],
    }
    r = api.post("/api/plans", json=spec)
    assert r.status_code == 201, r.text
    plan = r.json()["id"]
    page.goto(f"{server.url}plans/{plan}")
    page.evaluate("window.__notReloaded = true")
    page.wait_for_selector("#plan-actions:has-text('Waiting for approval at review')")
    page.wait_for_selector("#plan-dag .node.here[data-step='review']")
    page.wait_for_selector("#plan-dag .node.n-succeeded[data-step='backend']")
    shot(page, "plan-waiting.png")

    page.goto(server.url)
    page.wait_for_selector("#attention:has-text('checkout-redesign')")
    shot(page, "overview-attention.png")
    page.set_viewport_size(PHONE)
    shot(page, "overview-phone.png")
    page.goto(f"{server.url}plans/{plan}")
    page.wait_for_selector("#plan-actions:has-text('Waiting for approval')")
    shot(page, "plan-phone.png")
    page.set_viewport_size(LAPTOP)

    page.evaluate("window.__notReloaded = true")
    page.fill("#approve-response", "API looks right")
    page.click("#plan-actions button:has-text('Approve')")
    page.wait_for_selector("#flash:has-text('Approved')")
    page.wait_for_selector("#plan-dag .node.n-succeeded[data-step='frontend']")
    page.wait_for_selector("#plan-dag .node.n-succeeded[data-step='docs']")
    page.wait_for_selector("#plan-actions:has-text('All jobs are done')")
    page.click("#plan-actions button:has-text('Approve')")
    page.wait_for_selector("#plan-head .badge.s-completed")
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "plan-completed.png")
    body = api.get(f"/api/plans/{plan}").json()
    assert body["status"] == "completed"
    review = next(j for j in body["jobs"] if j["name"] == "review")
    assert review["result"]["response"] == "API looks right"

    # the Cancel button on a finished plan is gone; the API says there is nothing to cancel
    assert page.locator("#plan-actions button:has-text('Cancel plan')").count() == 0
    assert "Nothing to cancel" in api.post(f"/api/plans/{plan}/cancel").json()["message"]


def test_resume_says_when_a_plan_is_already_running(
    page: Any, server: ServeProcess, api: httpx.Client, worker: TestWorker
) -> None:
    spec = {
        "name": "long-plan",
        "jobs": [{"name": "soak", "engine": "shell", "cmd": "soak test --hold"}],
    }
    r = api.post("/api/plans", json=spec)
    assert r.status_code == 201, r.text
    plan = r.json()["id"]
    page.goto(f"{server.url}plans/{plan}")
    page.wait_for_selector("#plan-dag .node.n-running[data-step='soak']")
    page.click("#plan-actions button:has-text('Resume if stuck')")
    page.wait_for_selector("#flash:has-text('already being resumed')")
    page.click("#plan-actions button:has-text('Cancel plan')")
    page.wait_for_selector("#flash:has-text('Cancelled plan')")
    page.wait_for_selector("#plan-head .badge.s-cancelled")
    page.wait_for_selector("#plan-dag .node.n-cancelled[data-step='soak']")
    shot(page, "plan-cancelled.png")


def test_the_page_reads_without_javascript_errors(page: Any, server: ServeProcess) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    for path in ("", "jobs", "plans"):
        page.goto(f"{server.url}{path}")
        page.wait_for_timeout(1200)  # a couple of live refreshes
    assert errors == []


def test_two_people_at_one_gate_the_second_is_told_where_the_plan_waits(
    chromium: Any, page: Any, server: ServeProcess, api: httpx.Client, worker: TestWorker
) -> None:
    spec = {
        "name": "two-reviewers",
        "mode": "supervised",
        "jobs": [
            {"name": "build", "engine": "shell", "cmd": "build it"},
            {"name": "review", "engine": "approval", "message": "ok?", "depends_on": ["build"]},
            {"name": "ship", "engine": "shell", "cmd": "ship it", "depends_on": ["review"]},
        ],
    }
    r = api.post("/api/plans", json=spec)
    assert r.status_code == 201, r.text
    plan = r.json()["id"]
    page.goto(f"{server.url}plans/{plan}")
    page.wait_for_selector("#plan-actions:has-text('Waiting for approval at review')")

    # A second reviewer whose page saw the same gate and has not refreshed since.
    context = chromium.new_context(viewport=LAPTOP)
    stale = context.new_page()
    stale.set_default_timeout(TIMEOUT)
    stale.goto(f"{server.url}?token={TOKEN}")
    stale.goto(f"{server.url}plans/{plan}")
    stale.wait_for_selector("#plan-actions:has-text('Waiting for approval at review')")
    stale.route("**/*", lambda route: route.abort() if route.request.headers.get("x-live")
                else route.continue_())  # fmt: skip

    page.click("#plan-actions button:has-text('Approve')")
    page.wait_for_selector("#plan-actions:has-text('All jobs are done')")
    stale.click("#plan-actions button:has-text('Approve')")
    stale.wait_for_selector("#flash:has-text('no longer waits at review#1')")
    assert "pre_pr#2" in stale.inner_text("#flash")
    context.close()
    assert api.get(f"/api/plans/{plan}").json()["pending"] == "pre_pr#2"  # not completed


def test_abandon_a_failed_plan_from_its_page(
    page: Any, server: ServeProcess, api: httpx.Client, worker: TestWorker
) -> None:
    spec = {
        "name": "doomed",
        "jobs": [{"name": "break", "engine": "shell", "cmd": "break --fail"}],
    }
    r = api.post("/api/plans", json=spec)
    assert r.status_code == 201, r.text
    plan = r.json()["id"]
    page.goto(f"{server.url}plans/{plan}")
    page.wait_for_selector("#plan-actions:has-text('The plan failed')")
    page.click("#plan-actions button:has-text('Abandon plan')")  # the dialog is accepted
    page.wait_for_selector("#flash:has-text('Abandoned plan')")
    page.wait_for_selector("#plan-head .badge.s-abandoned")
    page.wait_for_selector("#plan-actions:has-text('given up for good')")
    assert page.locator("#plan-actions button").count() == 0
    shot(page, "plan-abandoned.png")
    assert api.get(f"/api/plans/{plan}").json()["status"] == "abandoned"


def test_a_worktree_jobs_diff_reads_on_a_laptop_and_a_phone(
    page: Any, server: ServeProcess, tmp_path: Path
) -> None:
    import agentfleet
    from tests.worker.helpers import run_burst, wait_until
    from tests.workspaces.repos import make_repo

    repo = make_repo(tmp_path / "repo")
    cmd = 'printf \'print("checkout v2")\\nprint("total")\\n\' > src/app.py; echo docs > DOCS.md'
    with agentfleet.open(server.db_url) as fleet:
        job = fleet.enqueue(
            "shell", {"cmd": cmd, "cwd": str(repo), "workspace": "worktree"}, queue="worktrees"
        )
        run_burst(fleet, queues=["worktrees"])
        # Another test's worker on this server may have taken the job first: wait for
        # whichever runs it.
        wait_until(lambda: fleet.get_job(job.id).is_terminal, "the worktree job to end")
        assert fleet.get_job(job.id).status.value == "succeeded"
    page.goto(f"{server.url}jobs/{job.id}")
    page.wait_for_selector("#job-change .file-diff")
    assert page.locator("#job-change .d-add").count() >= 3
    shot(page, "job-diff.png")
    page.set_viewport_size(PHONE)
    shot(page, "job-diff-phone.png")
    page.set_viewport_size(LAPTOP)
