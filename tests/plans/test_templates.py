"""Outputs into inputs: a step's prompt, command and env name upstream results, rendered in
Jinja2's sandbox when the step is queued (again after a rework); bad references are refused
at submit, and in a shell command every value is quoted."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from agentfleet import Fleet, InvalidArgument, Lease
from tests.plans.helpers import claim_all, gate, plan, shell


def _agent(name: str, prompt: str, *deps: str) -> dict[str, Any]:
    return {"name": name, "engine": "claude", "prompt": prompt, "depends_on": list(deps)}


def _claim(fleet: Fleet, step: str) -> Lease:
    leases = claim_all(fleet)
    by_step = {lease.job.step: lease for lease in leases if lease.job}
    assert step in by_step, f"{step} was not queued; queued: {sorted(by_step)}"
    return by_step[step]


def test_a_prompt_sees_the_upstream_text_and_result_fields(fleet: Fleet) -> None:
    prompt = (
        "Fix what {{ steps.review.status }} review found: {{ steps.review.text }} "
        "(verdict {{ steps.review.result.verdict }}, {{ steps.review.result.nope }}"
        "{{ steps.review.result.nope | default('none') }})"
    )
    fleet.submit_plan(plan(shell("review"), _agent("fix", prompt, "review")))
    review = _claim(fleet, "review")
    fleet.complete(review, result={"verdict": "hold", "agent": {"text": "two typos"}})
    fix = _claim(fleet, "fix")
    assert fix.job is not None
    assert fix.job.payload["prompt"] == (
        "Fix what succeeded review found: two typos (verdict hold, none)"
    )
    assert fix.job.payload["templates"] == {"prompt": prompt}  # kept for a rerun


@pytest.mark.parametrize(
    ("result", "text"),
    [({"exit_code": 0}, ""), ([1, 2], ""), (None, ""), (7, ""), ("said it all", "said it all")],
)
def test_a_steps_text_is_its_words_only(fleet: Fleet, result: Any, text: str) -> None:
    """`text` is what the step said (its agent's text, its own `text`, or a result that is
    just words), never a result of another shape printed."""
    fleet.submit_plan(plan(shell("make"), _agent("tell", "[{{ steps.make.text }}]", "make")))
    fleet.complete(_claim(fleet, "make"), result=result)
    told = _claim(fleet, "tell").job
    assert told is not None and told.payload["prompt"] == f"[{text}]"


def test_a_shell_command_gets_each_value_quoted_and_argv_items_as_they_are(
    fleet: Fleet,
) -> None:
    nasty = "it's $(touch pwned) `id` done; exit 3"
    fleet.submit_plan(
        plan(
            shell("make"),
            shell("say", "make", cmd="printf '%s' {{ steps.make.text }}"),
            shell(
                "argv", "make",
                cmd=["printf", "%s", "{{ steps.make.text }}"],
                env={"NOTE": "from {{ steps.make.result.who }}", "PLAIN": "x"},
            ),
        )
    )  # fmt: skip
    fleet.complete(_claim(fleet, "make"), result={"text": nasty, "who": "make"})
    leases = {lease.job.step: lease.job for lease in claim_all(fleet) if lease.job}
    say = leases["say"]
    done = subprocess.run(["/bin/sh", "-c", say.payload["cmd"]], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == nasty  # text, never shell syntax
    argv = leases["argv"]
    assert argv.payload["cmd"] == ["printf", "%s", nasty]
    assert argv.payload["env"] == {"NOTE": "from make", "PLAIN": "x"}


@pytest.mark.parametrize(
    ("prompt", "said"),
    [
        ("{{ steps.nope.text }}", "there is no step named 'nope'"),
        ("{{ steps.later.text }}", "refers to steps.later, which it does not depend on"),
        ("{{ steps.first.text ", "bad template (line 1)"),
        ("{{ secrets.key }}", "unknown name(s) ['secrets']"),
        ("{% set n = 'first' %}{{ steps[n] }}", "name the step"),
    ],
)
def test_a_bad_reference_is_refused_at_submit_and_nothing_is_written(
    fleet: Fleet, prompt: str, said: str
) -> None:
    spec = plan(shell("first"), _agent("mid", prompt, "first"), shell("later", "mid"))
    with pytest.raises(InvalidArgument, match="step 'mid', prompt: ") as caught:
        fleet.submit_plan(spec)
    assert said in str(caught.value)
    assert fleet.list_plans() == [] and fleet.list_jobs() == []


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ({"cmd": "echo {{ steps.nope.text }}"}, "cmd"),
        ({"cmd": ["echo", "ok", "{{ steps.nope.text }}"]}, "cmd[2]"),
        ({"env": {"PLAIN": "x", "NOTE": "{{ steps.nope.text }}"}}, "env.NOTE"),
    ],
)
def test_a_bad_reference_in_a_command_or_env_is_refused_at_submit_naming_where(
    fleet: Fleet, field: dict[str, Any], where: str
) -> None:
    spec = plan(shell("first"), shell("mid", "first", **field))
    with pytest.raises(InvalidArgument) as caught:
        fleet.submit_plan(spec)
    assert str(caught.value).endswith(f"step 'mid', {where}: there is no step named 'nope'")
    assert fleet.list_plans() == [] and fleet.list_jobs() == []


@pytest.mark.parametrize(
    ("prompt", "first", "shown_first", "second", "shown_second"),
    [
        ("count is {{ steps.count.result.n }}", {"n": 1}, "count is 1", {"n": 2}, "count is 2"),
        # a prompt that rendered to nothing renders afresh too
        ("{{ steps.count.result.note }}", {}, "", {"note": "two"}, "two"),
    ],
)
def test_a_rework_renders_the_step_again_against_the_new_upstream_result(
    fleet: Fleet,
    prompt: str,
    first: dict[str, Any],
    shown_first: str,
    second: dict[str, Any],
    shown_second: str,
) -> None:
    p = fleet.submit_plan(
        plan(
            shell("count"),
            _agent("report", prompt, "count"),
            gate("review", "report", on_reject="count"),
            mode="supervised",
        )
    )
    fleet.complete(_claim(fleet, "count"), result=first)
    report = _claim(fleet, "report")
    assert report.job is not None and report.job.payload["prompt"] == shown_first
    fleet.complete(report, result={})
    fleet.reject(p.id, "count again", checkpoint="review")
    fleet.complete(_claim(fleet, "count"), result=second)
    again = _claim(fleet, "report")
    assert again.job is not None and again.job.payload["prompt"] == shown_second


def test_feedback_appended_to_a_rendered_prompt_is_kept_when_it_is_rendered_again(
    fleet: Fleet,
) -> None:
    p = fleet.submit_plan(
        plan(
            shell("count"),
            _agent("report", "count is {{ steps.count.result.n }}", "count"),
            gate("review", "report", on_reject="report"),
            mode="supervised",
        )
    )
    fleet.complete(_claim(fleet, "count"), result={"n": 7})
    fleet.complete(_claim(fleet, "report"), result={})
    fleet.reject(p.id, "say it in words", checkpoint="review")
    again = _claim(fleet, "report")
    assert again.job is not None
    prompt = again.job.payload["prompt"]
    assert prompt.startswith("count is 7") and "say it in words" in prompt


def test_missing_and_empty_values_render_as_nothing_and_text_as_it_is(fleet: Fleet) -> None:
    prompt = (
        "exit={{ steps.make.exit_code }}|{{ steps.make.result.nope }}|"
        "{{ steps.make.result.nope.deeper }}|{{ steps.make.text }}|{{ steps['make'].text }}"
    )
    fleet.submit_plan(
        plan(
            shell("make"),
            _agent("read", prompt, "make"),
            shell("say", "make",
                  cmd="printf '[%s][%s][%s]' {{ steps.make.exit_code }} "
                      "{{ steps.make.result.nope }} {{ steps.make.text }}",
                  env={"NOTE": "{{ steps.make.text }}\n"}),
        )
    )  # fmt: skip
    text = 'a < b & "c"'  # neither HTML-escaped nor shell syntax
    fleet.complete(_claim(fleet, "make"), result={"text": text})
    leases = {lease.job.step: lease.job for lease in claim_all(fleet) if lease.job}
    assert leases["read"].payload["prompt"] == f"exit=|||{text}|{text}"
    assert leases["say"].payload["env"] == {"NOTE": f"{text}\n"}  # its newline kept
    said = subprocess.run(
        ["/bin/sh", "-c", leases["say"].payload["cmd"]], capture_output=True, text=True
    )
    assert said.returncode == 0 and said.stdout == f"[][][{text}]"


def test_a_template_sees_every_field_of_an_upstream_step(fleet: Fleet) -> None:
    fields = (
        "{{ steps.%s.status }}|{{ steps.%s.ok }}|{{ steps.%s.exit_code }}|{{ steps.%s.branch }}"
        "|{{ steps.%s.head_commit }}|{{ steps.%s.error }}|{{ steps.%s.text }}"
    )
    fleet.submit_plan(
        plan(
            shell("made"),
            shell("said"),
            shell("broke"),
            _agent("read", " / ".join(fields % ((s,) * 7) for s in ("made", "said", "broke")),
                   "made", "said", "broke") | {"trigger_rule": "all_done"},
        )
    )  # fmt: skip
    leases = {lease.job.step: lease for lease in claim_all(fleet) if lease.job}
    fleet.complete(
        leases["made"],
        result={"exit_code": 0, "branch": "af/made", "head_commit": "abc123", "text": "done"},
    )
    fleet.complete(leases["said"], result="a plain answer")  # a result that is only text
    fleet.fail(leases["broke"], "it broke", retry=False)
    read = _claim(fleet, "read")
    assert read.job is not None
    assert read.job.payload["prompt"].split(" / ") == [
        "succeeded|True|0|af/made|abc123||done",
        "succeeded|True|||||a plain answer",
        "failed|False||||it broke|",
    ]
