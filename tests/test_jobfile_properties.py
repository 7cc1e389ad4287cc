"""The job-file parser on any input: a JobSpec or JobFileErrors, nothing else; and a file
that parses can be enqueued (the parser applies the store's own checks)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import agentfleet
from agentfleet import Fleet, InvalidArgument
from agentfleet.jobfile import FIELDS, JobFileErrors, JobSpec, parse_job_text
from tests.nasty import ints, texts

EXAMPLES = int(os.environ.get("AGENTFLEET_PROPERTY_EXAMPLES", "150"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

RAW_FRONT = [
    "a: &x [*x]",
    "engine: python\nfunc: m:f\nargs: &x [*x]",
    "engine: python\nfunc: m:f\nargs: !!set {a, b}",
    "engine: python\nfunc: m:f\nargs: [!!binary aGVsbG8=]",
    "engine: python\nfunc: m:f\nargs: [2024-01-01, 2024-01-01 10:00:00]",
    "engine: python\nfunc: m:f\nkwargs: {a: .nan, b: .inf}",
    'engine: python\nfunc: m:f\nkwargs: {a: "\\0"}',
    'engine: python\nfunc: m:f\nkwargs: {a: "\\ud800"}',
    'engine: shell\ncmd: "echo \\0"',
    "engine: claude\npriority: 2147483648",
    "engine: claude\nmax_attempts: 99999999999",
    "engine: claude\ntimeout: 1e400",
    'engine: claude\nlock: "\\0"',
    'engine: claude\nqueue: "\'; DROP TABLE jobs; --"',
    "!!python/object/apply:os.system [echo hi]",
    "engine: claude\nengine: codex",
    "? [a, b]\n: 1",
    "[" * 5000 + "]" * 5000,
    "{" * 3000 + "}" * 3000,
    "a: " + "[" * 200 + "]" * 200,
    "engine: claude\nenv: {A: [1], 'B=C': x, 3: y}",
    "engine: claude\nlabels: [a, '', 3]",
    "engine: approval",
    "\t- tab",
    "%YAML 9.9\n---",
]
yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(),
    texts,
    st.dates(),
    st.datetimes(),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(texts, ints), inner, max_size=3)
    ),
    max_leaves=8,
)
keys = st.one_of(st.sampled_from(FIELDS), st.sampled_from(FIELDS), texts)
engines = st.sampled_from(["claude", "codex", "shell", "python", "approval", "nope", ""])


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with agentfleet.open("memory://") as fleet:
        yield fleet


def _judge(text: str, fleet: Fleet) -> None:
    try:
        spec = parse_job_text(text, "job.md")
    except JobFileErrors as exc:
        assert isinstance(exc, InvalidArgument) and exc.problems
        assert all(isinstance(str(p), str) for p in exc.problems) and str(exc)
        return
    assert isinstance(spec, JobSpec)
    # The parser's promise: a file that parses also enqueues.
    job = fleet.enqueue(
        spec.engine,
        spec.payload,
        queue=spec.queue,
        priority=spec.priority,
        lock=spec.lock,
        max_attempts=spec.max_attempts,
        timeout=spec.timeout,
    )
    assert fleet.get_job(job.id).payload == spec.payload


@PROPERTY
@given(
    text=st.one_of(st.text(), st.builds(lambda a, b: f"---\n{a}\n---\n{b}", st.text(), st.text()))
)
def test_any_text_is_a_spec_or_a_list_of_problems(text: str, fleet: Fleet) -> None:
    _judge(text, fleet)


@PROPERTY
@given(
    engine=engines,
    front=st.dictionaries(keys, yaml_values, max_size=5),
    body=st.one_of(st.just(""), texts, st.text()),
)
@example(engine="python", front={"func": "m:f", "args": [date(2024, 1, 1)]}, body="")
@example(engine="claude", front={"priority": 2**40}, body="go")
@example(engine="shell", front={"cmd": "x", "env": {"A": datetime(2024, 1, 1)}}, body="")
def test_any_front_matter_is_a_spec_or_a_list_of_problems(
    engine: str, front: dict[Any, Any], body: str, fleet: Fleet
) -> None:
    document = {"engine": engine, **front}
    try:
        dumped = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        return  # not every Python value has a YAML spelling; the raw cases cover the rest
    _judge(f"---\n{dumped}---\n{body}", fleet)


@pytest.mark.parametrize("front", RAW_FRONT)
def test_hostile_yaml_is_refused_or_enqueues(front: str, fleet: Fleet) -> None:
    _judge(f"---\n{front}\n---\nDo the thing.\n", fleet)
