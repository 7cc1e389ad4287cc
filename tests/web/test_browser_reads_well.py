"""In a real browser, what the dashboard says follows what is true: a message after an
action goes when the plan's status moves on, and losing the server is said in words.

Each test runs its own `agentfleet serve` process: the outage test stops and restarts it.
"""

from __future__ import annotations

import re
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
TOKEN = "browser-reads-well-token-0123456789"
TIMEOUT = 15_000  # ms: generous on a busy 2-core machine


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    if browser_problem() is not None:
        pytest.skip("no browser")
    return tmp_path


@pytest.fixture
def server(workdir: Path) -> Iterator[ServeProcess]:
    with serve_subprocess(f"sqlite:///{workdir / 'fleet.db'}", TOKEN, workdir) as proc:
        yield proc


def open_page(chromium: Any, url: str) -> Any:
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{url}?token={TOKEN}")  # signs in
    return page


def test_a_message_after_approving_goes_when_the_plan_pauses_again(
    chromium: Any, server: ServeProcess
) -> None:
    spec = {
        "name": "two-gates",
        "mode": "supervised",
        "jobs": [
            {"name": "build", "engine": "shell", "cmd": "build it"},
            {"name": "design", "engine": "approval", "message": "ok?", "depends_on": ["build"]},
            {"name": "polish", "engine": "shell", "cmd": "polish it", "depends_on": ["design"]},
            {"name": "ship", "engine": "approval", "message": "ship?", "depends_on": ["polish"]},
        ],
    }
    with (
        TestWorker(server.db_url) as worker,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api,
    ):
        r = api.post("/api/plans", json=spec)
        assert r.status_code == 201, r.text
        plan = r.json()["id"]
        page = open_page(chromium, server.url)
        try:
            page.goto(f"{server.url}plans/{plan}")
            page.wait_for_selector("#plan-actions:has-text('Waiting for approval at design')")
            page.click("#plan-actions button:has-text('Approve')")
            page.wait_for_selector(f"#flash:has-text('Plan {plan} is running')")
            # the worker finishes polish within a second or two: the plan waits at ship
            page.wait_for_selector("#plan-actions:has-text('Waiting for approval at ship')")
            page.wait_for_selector("#plan-head .badge.s-paused")
            shown = page.inner_text("main")
            assert "is running" not in shown, shown
            assert "paused" in page.inner_text("#plan-head")
        finally:
            page.context.close()
    assert not worker.errors, worker.errors


def test_losing_the_server_is_said_in_words_and_unsaid_when_it_answers_again(
    chromium: Any, workdir: Path
) -> None:
    db_url = f"sqlite:///{workdir / 'fleet.db'}"
    (workdir / "first").mkdir()
    (workdir / "second").mkdir()
    with serve_subprocess(db_url, TOKEN, workdir / "first") as first:
        page = open_page(chromium, first.url)
        try:
            page.wait_for_selector("#live-dot:not([hidden])")  # live updates have answered
            banner = page.locator("#outage")
            assert banner.is_hidden()

            first.proc.terminate()  # only the server this test started
            first.proc.wait(timeout=10)
            page.wait_for_selector("#outage:has-text('Lost contact with the server')")
            said = banner.inner_text()
            assert re.search(r"Lost contact with the server at \d\d:\d\d:\d\d; retrying", said)
            assert banner.get_attribute("role") == "status"
            assert banner.get_attribute("aria-live") == "polite"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "outage.png"))

            port = int(first.url.rstrip("/").rsplit(":", 1)[1])
            with serve_subprocess(db_url, TOKEN, workdir / "second", port=port):
                page.wait_for_selector("#outage", state="hidden")
                assert "Lost contact" not in page.inner_text("body")
        finally:
            page.context.close()
