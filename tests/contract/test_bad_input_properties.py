"""Bad input, property-based: every public Fleet argument, on every store.

Whatever is passed, a call either gives a correct result or raises an agentfleet error
(InvalidArgument, JobNotFound, LeaseLost, ...): never another exception, never a partial
write, never a change to a row it should not touch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentfleet import (
    AgentFleetError,
    Fleet,
    InvalidArgument,
    Job,
    JobStatus,
    Lease,
    LeaseLost,
    NewJob,
    RunOutput,
)
from agentfleet.validate import text as stored_text
from tests.conftest import StoreEnv
from tests.nasty import (
    anything,
    floats,
    ints,
    json_equal,
    json_normal,
    json_values,
    run_ats,
    texts,
    valid_or,
)

EXAMPLES = int(os.environ.get("AGENTFLEET_PROPERTY_EXAMPLES", "30"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
names = valid_or(st.sampled_from(["default", "w1", "repo-a", "é-ü 🙂"]), texts)
ttls = valid_or(st.sampled_from([1, 30.0, 3600]), st.one_of(floats, ints, anything))
limits = valid_or(st.integers(1, 5), st.one_of(ints, anything))


def call(fn: Callable[[], Any]) -> tuple[bool, Any]:
    """(True, result) or (False, the agentfleet error); anything else fails the test."""
    try:
        return True, fn()
    except AgentFleetError as exc:
        str(exc)  # the message itself must render
        return False, exc


def snapshot(fleet: Fleet) -> tuple[dict[int, Job], int]:
    return {j.id: j for j in fleet.list_jobs(limit=10_000)}, len(fleet.events(limit=10_000))


def assert_untouched(before: dict[int, Job], after: dict[int, Job], *, but: set[int]) -> None:
    for job_id, job in before.items():
        if job_id not in but:
            assert after.get(job_id) == job, f"job {job_id} changed but should not have"


def _ids(fleet: Fleet) -> list[int]:
    ids = [j.id for j in fleet.list_jobs(limit=50)]
    if len(ids) < 3:
        ids += [fleet.enqueue("shell", {"n": i}).id for i in range(3)]
    return ids


# -- enqueue -----------------------------------------------------------------------------


@PROPERTY
@given(data=st.data())
def test_enqueue_any_arguments(env: StoreEnv, data: st.DataObject) -> None:
    fleet = env.fleet
    engine = data.draw(names, "engine")
    payload = data.draw(
        st.one_of(st.dictionaries(texts, json_values, max_size=3), anything), "payload"
    )
    options = {
        "queue": names,
        "priority": valid_or(st.integers(-5, 5), st.one_of(ints, anything)),
        "lock": st.one_of(st.none(), names),
        "max_attempts": valid_or(st.integers(1, 5), st.one_of(ints, anything)),
        "timeout": st.one_of(st.none(), floats, ints, anything),
        "run_at": st.one_of(st.none(), run_ats, anything),
        "dedupe_key": st.one_of(st.none(), names),
    }
    kwargs = {k: data.draw(s, k) for k, s in options.items() if data.draw(st.booleans())}
    before, events = snapshot(fleet)
    called_at = fleet.now()
    ok, result = call(lambda: fleet.enqueue(engine, payload, **kwargs))
    returned_at = fleet.now()
    after, events_after = snapshot(fleet)
    if not ok:
        assert isinstance(result, InvalidArgument), result
        assert (after, events_after) == (before, events), "a refused enqueue wrote something"
        return
    assert_untouched(before, after, but=set())
    if result.id in before:  # a live job with that dedupe key was returned, unchanged
        assert kwargs.get("dedupe_key") == before[result.id].dedupe_key
        return
    assert set(after) - set(before) == {result.id}
    stored = after[result.id]
    assert stored == result
    assert json_equal(stored.payload, json_normal({} if payload is None else payload))
    assert (stored.engine, stored.queue, stored.priority, stored.lock) == (
        engine,
        kwargs.get("queue", "default"),
        kwargs.get("priority", 0),
        kwargs.get("lock"),
    )
    assert stored.max_attempts == kwargs.get("max_attempts", 3)
    assert stored.dedupe_key == kwargs.get("dedupe_key")
    timeout = kwargs.get("timeout")
    assert stored.timeout == (None if timeout is None else float(timeout))
    run_at = kwargs.get("run_at")
    if isinstance(run_at, datetime):
        assert abs(stored.run_at.timestamp() - run_at.timestamp()) < 1e-3
    elif isinstance(run_at, timedelta) and abs(run_at.days) < 36500:
        # run_at is the store's now during the call, plus the delay
        tick = timedelta(milliseconds=1)  # timestamps round-trip through floats on SQLite
        assert called_at + run_at - tick <= stored.run_at <= returned_at + run_at + tick
    # What one store accepted, it can run.
    lease = fleet.claim(stored.id, worker="w", ttl=30)
    if lease is not None:
        fleet.complete(lease, result={"ok": True})


@PROPERTY
@given(data=st.data())
def test_enqueue_many_is_checked_and_all_or_nothing(env: StoreEnv, data: st.DataObject) -> None:
    fleet = env.fleet
    batch = [
        NewJob(
            engine=data.draw(names),
            payload=data.draw(st.one_of(st.dictionaries(texts, json_values, max_size=2), anything)),
            queue=data.draw(names),
            priority=data.draw(valid_or(st.integers(0, 3), ints)),
            lock=data.draw(st.one_of(st.none(), names)),
            max_attempts=data.draw(valid_or(st.integers(1, 3), ints)),
            run_at=data.draw(st.one_of(st.none(), run_ats)),
        )
        for _ in range(data.draw(st.integers(1, 3)))
    ]
    before, events = snapshot(fleet)
    ok, result = call(lambda: fleet.enqueue_many(batch))
    after, events_after = snapshot(fleet)
    if not ok:
        assert isinstance(result, InvalidArgument)
        assert (after, events_after) == (before, events), "a refused batch wrote something"
    else:
        assert_untouched(before, after, but=set())
        assert len(result) == len(batch)
        for job, new in zip(result, batch, strict=True):
            assert after[job.id].queue == new.queue and after[job.id].engine == new.engine


# -- claims, reads, lifecycle ------------------------------------------------------------


def _just(job_id: Any) -> set[int]:
    return {job_id} if isinstance(job_id, int) else set()


def _other_verbs(fleet: Fleet, data: st.DataObject, ids: list[int]) -> tuple[str, Any, set[int]]:
    """Draw one verb with odd arguments: (name, the call, jobs it may change)."""
    job_ids = valid_or(st.sampled_from([*ids, 999_999]), st.one_of(ints, anything))
    verb = data.draw(
        st.sampled_from(
            [
                "claim",
                "claim_next",
                "get_job",
                "list_jobs",
                "runs",
                "events",
                "ledger",
                "cancel_job",
                "retry_job",
                "update_if_match",
                "worker_seen",
                "worker_stopped",
                "wait_for_jobs",
            ]
        ),
        "verb",
    )
    if verb == "claim":
        job_id, worker, ttl = data.draw(job_ids), data.draw(names), data.draw(ttls)
        return verb, lambda: fleet.claim(job_id, worker=worker, ttl=ttl), _just(job_id)
    if verb == "claim_next":
        queues = data.draw(st.one_of(st.none(), st.lists(names, max_size=3), anything))
        worker, limit, ttl = data.draw(names), data.draw(limits), data.draw(ttls)
        return (
            verb,
            lambda: fleet.claim_next(worker=worker, queues=queues, limit=limit, ttl=ttl),
            set(ids),  # judged from the leases below
        )
    if verb in ("get_job", "runs", "ledger"):
        job_id = data.draw(job_ids)
        return verb, lambda: getattr(fleet, verb)(job_id), set()
    if verb == "events":
        job_id = data.draw(st.one_of(st.none(), job_ids))
        after_id, limit = data.draw(valid_or(st.just(0), ints)), data.draw(limits)
        return verb, lambda: fleet.events(job_id, after_id=after_id, limit=limit), set()
    if verb == "list_jobs":
        kwargs = {
            "status": data.draw(st.one_of(st.none(), st.sampled_from(list(JobStatus)), texts)),
            "queue": data.draw(st.one_of(st.none(), names)),
            "engine": data.draw(st.one_of(st.none(), names)),
            "label": data.draw(st.one_of(st.none(), names)),
            "limit": data.draw(limits),
            "offset": data.draw(valid_or(st.just(0), ints)),
        }
        return verb, lambda: fleet.list_jobs(**kwargs), set()
    if verb in ("cancel_job", "retry_job"):
        job_id = data.draw(job_ids)
        return verb, lambda: getattr(fleet, verb)(job_id), _just(job_id)
    if verb == "update_if_match":
        job_id = data.draw(job_ids)
        rev = data.draw(valid_or(st.integers(0, 5), ints))
        fields = st.sampled_from(["priority", "queue", "payload", "run_at", "lock", "status"])
        patch = data.draw(
            st.one_of(
                st.dictionaries(st.one_of(fields, texts, st.integers()), anything, max_size=2),
                anything,
            )
        )
        collection = data.draw(valid_or(st.just("jobs"), texts))
        return (
            verb,
            lambda: fleet.update_if_match(collection, job_id, rev, patch),
            _just(job_id),
        )
    if verb == "worker_seen":
        args = (data.draw(names), data.draw(names), data.draw(valid_or(st.just(42), ints)))
        queues = data.draw(st.one_of(st.lists(names, max_size=2), anything))
        concurrency = data.draw(valid_or(st.just(2), ints))
        return (
            verb,
            lambda: fleet.worker_seen(
                args[0], host=args[1], pid=args[2], queues=queues, concurrency=concurrency
            ),
            set(),
        )
    if verb == "worker_stopped":
        name = data.draw(names)
        return verb, lambda: fleet.worker_stopped(name), set()
    timeout = data.draw(st.sampled_from([0, 0.001, -1, math.nan, math.inf, "1", None, 10**30]))
    return verb, lambda: fleet.wait_for_jobs(timeout), set()


@PROPERTY
@given(data=st.data())
def test_claims_reads_and_lifecycle_any_arguments(env: StoreEnv, data: st.DataObject) -> None:
    fleet = env.fleet
    ids = _ids(fleet)
    verb, fn, may_change = _other_verbs(fleet, data, ids)
    before, events = snapshot(fleet)
    ok, result = call(fn)
    after, events_after = snapshot(fleet)
    if not ok:
        if verb in ("claim", "claim_next", "update_if_match", "retry_job", "cancel_job"):
            assert (after, events_after) == (before, events), f"refused {verb} wrote something"
        return
    if verb == "claim_next":
        may_change = {lease.job_id for lease in result}
    assert_untouched(before, after, but=may_change)
    if verb in ("claim", "claim_next"):
        for lease in [result] if isinstance(result, Lease) else result or []:
            fleet.complete(lease)


# -- lease writes ------------------------------------------------------------------------


def _forged(lease: Lease, data: st.DataObject) -> Lease:
    field = data.draw(st.sampled_from(["job_id", "epoch", "worker", "ttl"]))
    value = data.draw({"worker": names, "ttl": ttls}.get(field, valid_or(st.integers(-1, 3), ints)))
    return replace(lease, **{field: value})


@PROPERTY
@given(data=st.data())
def test_lease_writes_any_arguments(env: StoreEnv, data: st.DataObject) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {"n": 1})
    lease = fleet.claim(job.id, worker="w", ttl=60)
    assert lease is not None
    used = _forged(lease, data) if data.draw(st.booleans()) else lease
    outputs = st.one_of(
        st.none(),
        st.builds(
            RunOutput,
            exit_code=st.one_of(st.none(), ints, anything),
            stdout=st.one_of(st.none(), texts, anything),
            stderr=st.one_of(st.none(), texts),
        ),
        anything,
    )
    verb = data.draw(
        st.sampled_from(["renew", "complete", "fail", "release", "fenced_write", "record_output"])
    )
    result: Any = None
    output: Any = None
    error: Any = None
    key: Any = None
    value: Any = None
    if verb == "renew":
        ttl = data.draw(st.one_of(st.none(), ttls))
        fn: Any = lambda: fleet.renew(used, ttl=ttl)  # noqa: E731
    elif verb == "complete":
        result, output = data.draw(json_values), data.draw(outputs)
        fn = lambda: fleet.complete(used, result=result, output=output)  # noqa: E731
    elif verb == "fail":
        error, retry = data.draw(valid_or(texts)), data.draw(valid_or(st.booleans()))
        delay, output = data.draw(st.one_of(st.none(), floats, ints, anything)), data.draw(outputs)
        fn = lambda: fleet.fail(used, error, retry=retry, delay=delay, output=output)  # noqa: E731
    elif verb == "release":
        reason = data.draw(valid_or(texts))
        fn = lambda: fleet.release(used, reason=reason)  # noqa: E731
    elif verb == "fenced_write":
        key, value = data.draw(names), data.draw(json_values)
        fn = lambda: fleet.fenced_write(used, key, value)  # noqa: E731
    else:
        output = data.draw(outputs)
        fn = lambda: fleet.record_output(used, output)  # noqa: E731
    before, events = snapshot(fleet)
    runs, ledger = fleet.runs(job.id), fleet.ledger(job.id)
    ok, got = call(fn)
    after, events_after = snapshot(fleet)
    if not ok:
        assert isinstance(got, InvalidArgument | LeaseLost), got
        assert (after, events_after) == (before, events), f"a refused {verb} wrote something"
        assert (fleet.runs(job.id), fleet.ledger(job.id)) == (runs, ledger)
        return
    # A lease is its (job, epoch): whatever else a forged one says, only a pair that holds
    # a running job may write, and only to that job.
    held = before.get(used.job_id)
    assert held is not None and held.status is JobStatus.RUNNING, f"{verb} took {used}"
    assert held.lease_epoch == used.epoch, f"{verb} accepted a stale or future epoch: {used}"
    assert_untouched(before, after, but={used.job_id})
    if used.job_id != job.id:
        return
    stored = after[job.id]
    if verb == "complete":
        assert stored.status is JobStatus.SUCCEEDED
        assert json_equal(stored.result, json_normal(result))
    elif verb == "fail":
        assert stored.error == stored_text(error, "error")
    elif verb == "fenced_write":
        [entry] = fleet.ledger(job.id)
        assert (entry.key, entry.epoch) == (key, lease.epoch)
        assert json_equal(entry.value, json_normal(value))
    if isinstance(output, RunOutput):
        run = fleet.runs(job.id)[-1]
        assert run.stdout == (None if output.stdout is None else stored_text(output.stdout, "o"))
        assert run.exit_code == (output.exit_code if verb != "record_output" else None)
