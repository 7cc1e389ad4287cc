"""In a real browser: an agent job's page reads as its transcript, with the error
highlighted, and its log opens at the newest line and follows it while the job runs
(until the reader scrolls up; back at the bottom, it follows again).

Its own server, with no worker on it: the job here is run by hand, through the Fleet API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import agentfleet
from agentfleet import Fleet, Lease, RunOutput
from tests.web.browser import browser_problem
from tests.web.live import ServeProcess, serve_subprocess
from tests.web.test_browser import (
    LAPTOP,
    TIMEOUT,
    TOKEN,
    shot,
)

pytestmark = pytest.mark.browser

LOG = "#job-runs .log.transcript"
BAD = "rgb(185, 28, 28)"  # --bad in the light scheme


def line(event: dict[str, Any]) -> str:
    return json.dumps(event) + "\n"


def says(text: str) -> str:
    return line({"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}})


def opening() -> str:
    """A session long enough to scroll: messages, a command, its long result, an error."""
    call = {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "pytest -q"}}
    output = "\n".join(["....F", "1 failed, 4 passed", *(f"trace line {n}" for n in range(30))])
    result = {"type": "tool_result", "tool_use_id": "t1", "content": output, "is_error": True}
    failed = {
        "type": "result",
        "subtype": "error_during_execution",
        "is_error": True,
        "errors": ["the model API went away"],
        "total_cost_usd": 0.0123,
        "usage": {"input_tokens": 1234, "output_tokens": 456},
    }
    return "".join(
        [
            line({"type": "system", "subtype": "init", "session_id": "s1", "model": "sonnet"}),
            *(says(f"Reading module {n}.") for n in range(30)),
            line({"type": "assistant", "message": {"content": [call]}}),
            line({"type": "user", "message": {"content": [result]}}),
            says("<b>Retrying</b> the request."),
            line(failed),
        ]
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    if browser_problem() is not None:
        pytest.skip("no browser")
    work = tmp_path_factory.mktemp("serve-transcript")
    with serve_subprocess(f"sqlite:///{work / 'fleet.db'}", TOKEN, work) as proc:
        yield proc


@pytest.fixture
def page(chromium: Any, server: ServeProcess) -> Iterator[Any]:
    context = chromium.new_context(viewport=LAPTOP, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{server.url}?token={TOKEN}")
    try:
        yield page
    finally:
        context.close()


class AgentRun:
    """A running claude job whose stdout the test writes."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.job = fleet.enqueue("claude", {"prompt": "Make the flaky test pass."}).id
        lease = fleet.claim(self.job, worker="agent-host", ttl=120)
        assert lease is not None
        self.lease: Lease = lease
        self.stdout = ""

    def prints(self, text: str) -> None:
        self.stdout += text
        self.fleet.record_output(self.lease, RunOutput(stdout=self.stdout))


def at_bottom(page: Any) -> bool:
    return bool(
        page.eval_on_selector(
            LOG, "el => el.scrollHeight > el.clientHeight + 100 && "
            "el.scrollTop + el.clientHeight >= el.scrollHeight - 4",
        )
    )  # fmt: skip


def test_the_job_page_reads_as_a_transcript_and_follows_its_newest_line(
    page: Any, server: ServeProcess
) -> None:
    with agentfleet.open(server.db_url) as fleet:
        run = AgentRun(fleet)
        run.prints(opening())
        page.goto(f"{server.url}jobs/{run.job}")
        page.evaluate("window.__notReloaded = true")

        error = page.wait_for_selector(f"{LOG} .t-error:has-text('the model API went away')")
        assert error.evaluate("el => getComputedStyle(el).color") == BAD  # highlighted
        assert page.locator(f"{LOG} .t-tool").inner_text() == "▸ Bash pytest -q"
        fold = page.locator(f"{LOG} details.t-result.t-failed")
        assert fold.locator("summary").inner_text().startswith("....F\n1 failed, 4 passed")
        assert not fold.locator("text=trace line 29").is_visible()  # folded away
        assert page.locator(f"{LOG} .t-assistant", has_text="<b>Retrying</b>").count() == 1
        usage = page.locator(f"{LOG} .t-usage").inner_text()
        assert usage == "· $0.0123 · 1,234 in / 456 out tokens"
        assert '"type"' not in page.inner_text(LOG)  # no raw events
        assert at_bottom(page)  # it opens at the newest line
        shot(page, "job-transcript.png")

        run.prints(says("Found it: a race in the fixture."))
        page.wait_for_selector(f"{LOG} .t-assistant:has-text('a race in the fixture')")
        assert at_bottom(page)  # and follows it

        page.eval_on_selector(LOG, "el => { el.scrollTop = 0; }")  # the reader scrolls up
        run.prints(says("Writing the fix."))
        page.wait_for_selector(f"{LOG} .t-assistant:has-text('Writing the fix.')")
        assert page.eval_on_selector(LOG, "el => el.scrollTop") == 0  # it stays there

        fold.locator("summary").click()  # a result opened stays open across refreshes
        page.eval_on_selector(LOG, "el => { el.scrollTop = el.scrollHeight; }")  # back down
        run.prints(says("Tests pass now."))
        page.wait_for_selector(f"{LOG} .t-assistant:has-text('Tests pass now.')")
        assert at_bottom(page)  # following again
        assert page.locator(f"{LOG} details.t-result").get_attribute("open") is not None
        assert page.evaluate("window.__notReloaded") is True  # all of it in place

        page.click("#job-runs a.log-view:has-text('raw')")
        page.wait_for_selector('#job-runs pre.log:has-text(\'"subtype": "init"\')')
        fleet.complete(run.lease, {}, output=RunOutput(exit_code=0, stdout=run.stdout))
