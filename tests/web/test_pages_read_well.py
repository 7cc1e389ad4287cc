"""The dashboard reads in words: durations as `3h`, plans with their ids beside their names."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from agentfleet.web.templating import ago, duration
from tests.web.conftest import Web


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def text_of(html: str) -> str:
    """The words a reader sees, whitespace collapsed."""
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def title_of(html: str) -> str:
    found = re.search(r"<title>(.*?)</title>", html, re.S)
    assert found is not None
    return " ".join(found.group(1).split())


def test_a_jobs_durations_read_in_words_while_the_api_keeps_numbers(web: Web) -> None:
    fleet = web.fleet
    job = fleet.enqueue(
        "claude", {"prompt": "Fix the flaky test.", "idle_timeout": 5400.0}, timeout=10800
    ).id
    lease = fleet.claim(job, worker="w1")
    assert lease is not None
    fleet.fail(lease, "agent crashed", retry=True)  # a retry_scheduled event, with its delay

    text = text_of(web.client.get(f"/jobs/{job}").text)
    assert "timeout: 3h" in text
    assert "idle_timeout: 1h30m" in text
    assert "10800" not in text and "5400" not in text
    assert re.search(r"retry_in=\d+(\.\d)?s\b", text), text

    body = web.client.get(f"/api/jobs/{job}").json()
    assert body["timeout"] == 10800
    assert body["payload"]["idle_timeout"] == 5400


def test_a_delayed_job_says_when_it_runs(web: Web) -> None:
    later = web.fleet.enqueue("shell", {"cmd": "echo later"}, run_at=timedelta(hours=2)).id
    now = web.fleet.enqueue("shell", {"cmd": "echo now"}).id
    assert re.search(r"runs at in (2h|1h) ?; no worker takes it before",
                     text_of(web.client.get(f"/jobs/{later}").text))  # fmt: skip
    assert "runs at" not in text_of(web.client.get(f"/jobs/{now}").text)


def test_an_idle_timeout_turned_off_reads_off(web: Web) -> None:
    job = web.fleet.enqueue("claude", {"prompt": "Long quiet build.", "idle_timeout": 0.0}).id
    text = text_of(web.client.get(f"/jobs/{job}").text)
    assert "idle_timeout: 'off'" in text  # the job file's own word; quoted, YAML reads it back


def test_a_running_plan_names_its_stale_window(web: Web) -> None:
    spec = {"name": "soak", "jobs": [{"name": "soak", "engine": "shell", "cmd": "soak"}]}
    plan = web.fleet.submit_plan(spec)
    text = text_of(web.client.get(f"/plans/{plan.id}").text)
    assert "no activity for 15m" in text, text


def test_run_durations_and_ages_follow_the_one_duration_rule() -> None:
    start = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert duration(start, start + timedelta(seconds=5400), start) == "1h30m"
    assert duration(start, start + timedelta(seconds=90), start) == "1m30s"
    assert duration(start, start + timedelta(seconds=3.25), start) == "3.2s"
    assert duration(start, None, start + timedelta(hours=3)) == "3h"
    assert ago(start, start + timedelta(seconds=90)) == "1m ago"
    assert ago(start, start + timedelta(hours=3, minutes=5)) == "3h ago"
    assert ago(start + timedelta(seconds=45), start) == "in 45s"


REVIEW_AND_FIX = {
    "name": "review-and-fix",
    "mode": "supervised",
    "jobs": [
        {"name": "fix", "engine": "shell", "cmd": "fix the bug"},
        {"name": "review", "engine": "approval", "message": "ok?", "depends_on": ["fix"]},
    ],
}


def test_same_named_plans_are_told_apart_by_their_ids(web: Web) -> None:
    fleet = web.fleet
    first = fleet.submit_plan(REVIEW_AND_FIX)
    second = fleet.submit_plan(REVIEW_AND_FIX)
    names = [f"review-and-fix #{first.id}", f"review-and-fix #{second.id}"]

    listed = text_of(web.client.get("/plans").text)
    assert all(name in listed for name in names), listed
    queued = text_of(web.client.get("/jobs").text)  # each step's row names its plan
    assert all(name in queued for name in names), queued

    for lease in fleet.claim_next(worker="w", limit=2):
        fleet.complete(lease, {"fixed": True})
    overview = text_of(web.client.get("/").text)  # both wait at their gates
    assert "Plans needing attention" in overview
    assert all(name in overview for name in names), overview

    step = fleet.get_plan(second.id).jobs[0].job_id
    job_page = web.client.get(f"/jobs/{step}").text
    assert f"plan review-and-fix #{second.id}" in text_of(job_page)
    assert f'href="/plans/{second.id}"' in job_page
    plan_page = web.client.get(f"/plans/{second.id}").text
    assert title_of(plan_page).startswith(f"Plan review-and-fix #{second.id}")
