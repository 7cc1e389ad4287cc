"""The job page shows each run's stdout as the agent's transcript (escaped, errors marked,
tool results folded), or as recorded with ?raw=true; a shell job's output is one block."""

from __future__ import annotations

import json
from typing import Any

from agentfleet import RunOutput
from agentfleet.web.pages import LOG_TAIL, log_entries
from tests.web.conftest import Web


def line(event: dict[str, Any]) -> str:
    return json.dumps(event) + "\n"


def claude_run(*tool_output: str, text: str = "I will run the tests.") -> str:
    call = {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "pytest -q"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "\n".join(tool_output)}
    return "".join(
        [
            line({"type": "system", "subtype": "init", "session_id": "s", "model": "sonnet"}),
            line({"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}}),
            line({"type": "assistant", "message": {"content": [call]}}),
            line({"type": "user", "message": {"content": [result]}}),
            line(
                {
                    "type": "result",
                    "subtype": "error_during_execution",
                    "is_error": True,
                    "errors": ["the API went away <again>"],
                    "total_cost_usd": 0.25,
                    "usage": {"input_tokens": 2000, "output_tokens": 30},
                }
            ),
        ]
    )


def job_with_output(web: Web, stdout: str, engine: str = "claude") -> int:
    job = web.fleet.enqueue(engine, {"prompt": "fix it"} if engine == "claude" else {}).id
    lease = web.fleet.claim(job, worker="w1")
    assert lease is not None
    web.fleet.record_output(lease, RunOutput(stdout=stdout))
    return job


def test_the_job_page_shows_the_transcript(web: Web) -> None:
    stream = claude_run("....F", "1 failed, 4 passed", "FAILED tests/test_x.py::test_y")
    job = job_with_output(web, stream)
    html = web.client.get(f"/jobs/{job}").text
    assert '<div class="t-system">session started · sonnet</div>' in html
    assert '<div class="t-assistant">I will run the tests.</div>' in html
    assert '<span class="t-name">▸ Bash</span> <code>pytest -q</code>' in html
    assert '<details class="t-result" data-key="t-' in html  # folded
    assert '<span class="t-head">....F\n1 failed, 4 passed</span>' in html
    assert '<span class="t-more">+1 line</span>' in html
    assert "FAILED tests/test_x.py::test_y</pre></details>" in html  # inside the fold
    assert '<div class="t-error">the API went away &lt;again&gt;</div>' in html
    assert '<div class="t-usage">· $0.2500 · 2,000 in / 30 out tokens</div>' in html
    assert '"type": "assistant"' not in html  # no raw events
    assert f'href="/jobs/{job}?raw=true">raw</a>' in html


def test_raw_shows_the_stream_as_recorded(web: Web) -> None:
    job = job_with_output(web, claude_run("ok"))
    html = web.client.get(f"/jobs/{job}?raw=true").text
    assert "&#34;type&#34;: &#34;assistant&#34;" in html  # the events, escaped
    assert "t-assistant" not in html
    assert f'href="/jobs/{job}">transcript</a>' in html


def test_everything_in_the_transcript_is_escaped(web: Web) -> None:
    evil = "<script>alert(1)</script>"
    stream = claude_run(evil, "<img src=x onerror=alert(2)>", "more", text=f"hi {evil}")
    job = job_with_output(web, stream + f"{evil} plain\n")
    html = web.client.get(f"/jobs/{job}").text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "hi &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<pre class="t-text">&lt;script&gt;alert(1)&lt;/script&gt; plain</pre>' in html


def test_a_shell_jobs_output_is_one_block_as_printed(web: Web) -> None:
    job = job_with_output(web, "step 1\n\n  step 2 {json}\n", engine="shell")
    html = web.client.get(f"/jobs/{job}").text
    assert '<pre class="t-text">step 1\n\n  step 2 {json}</pre>' in html


def test_a_cut_tail_leaves_out_its_partial_first_line() -> None:
    text = "x" * 10 + "\n" + "kept\n"
    assert [e.text for e in log_entries(text, cut=True)] == ["kept"]
    assert [e.text for e in log_entries(text, cut=False)] == ["x" * 10 + "\nkept"]


def test_a_long_stream_shows_its_kept_tail_as_a_transcript(web: Web) -> None:
    says = [
        line({"type": "assistant", "message": {"content": [{"type": "text", "text": f"m{n}"}]}})
        for n in range(2000)
    ]
    job = job_with_output(web, "".join(says))
    html = web.client.get(f"/jobs/{job}").text
    assert "last 64 KiB" in html
    assert '<div class="t-assistant">m1999</div>' in html
    assert '<div class="t-assistant">m0</div>' not in html
    assert "&#34;" not in html.split('class="log transcript"')[1]  # no piece of an event
    assert len("".join(says)) > LOG_TAIL


def test_the_job_and_plan_pages_show_what_runs_cost(web: Web) -> None:
    fleet = web.fleet
    spec = {
        "name": "spend",
        "budget_usd": 5,
        "jobs": [{"name": "only", "engine": "claude", "prompt": "fix it", "budget_usd": 2}],
    }
    plan = fleet.submit_plan(spec)
    job = plan.step("only").job_id
    [lease] = fleet.claim_next(worker="w1", limit=1)
    agent = {"engine": "claude", "session_id": "s1", "cost_usd": 0.25, "input_tokens": 2000,
             "output_tokens": 30, "resumed_session": "s0"}  # fmt: skip
    fleet.complete(lease, result={}, output=RunOutput(exit_code=0, agent=agent))
    html = web.client.get(f"/jobs/{job}").text
    spent = "$0.2500 · 2,000 in / 30 out tokens"
    assert f'<span class="run-spent">{spent}</span>' in html
    assert f'<dt>spent</dt><dd>{spent} <span class="muted">of a $2 budget</span>' in html
    assert "resumed session s0" in html
    page = web.client.get(f"/plans/{plan.id}").text
    assert f'<dt>spent</dt><dd>{spent} <span class="muted">of a $5 budget</span>' in page
    assert f"only: {spent}" in page
