"""A running job talks to the fleet through its lease: `AGENTFLEET_LEASE_TOKEN` reaches
/api/lease only, for as long as its attempt holds the lease. The path a step takes: read
its job and its plan's inputs, write its plan's fields, enqueue a follow-up; then it is
taken over, and its token (and so any late write of the stale attempt) is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfleet import Fleet, JobStatus, Lease, LeaseLost
from agentfleet.store.lease_tokens import LEASE_KEY
from tests.conftest import StoreEnv, make_env
from tests.plans.helpers import plan, shell
from tests.web.conftest import Web, make_web


@pytest.fixture(params=["sqlite", "postgres"])
def lease_web(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Web]:
    env = make_env(request.param, tmp_path, request)
    try:
        yield make_web(env)
    finally:
        env.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _claim_step(fleet: Fleet, env: StoreEnv) -> tuple[int, str, Lease]:
    """A plan's second step claimed with a lease long enough for a slow machine's requests
    (a test that wants it taken over renews it short first)."""
    made = fleet.submit_plan(plan(shell("build"), shell("test", "build")))
    [build] = fleet.claim_next(worker="box-1", limit=1)
    fleet.complete(build, result={"artifact": "app.tar"})
    [step] = fleet.claim_next(worker="box-1", limit=1, ttl=60.0)
    assert step.job is not None and step.job.step == "test"
    return made.id, fleet.lease_token(step), step


def test_a_step_reads_writes_and_enqueues_then_its_token_dies_with_its_lease(
    lease_web: Web,
) -> None:
    web, fleet, env = lease_web, lease_web.fleet, lease_web.env
    plan_id, token, step = _claim_step(fleet, env)
    anon = web.anon

    own = anon.get("/api/lease", headers=bearer(token))
    assert own.status_code == 200 and own.json()["step"] == "test"
    inputs = anon.get("/api/lease/inputs", headers=bearer(token)).json()["inputs"]
    assert inputs["build"]["result"] == {"artifact": "app.tar"}
    wrote = anon.patch(
        "/api/lease/plan", headers=bearer(token), json={"fields": {"metadata": {"pr": 7}}}
    )
    assert wrote.status_code == 200, wrote.text
    assert fleet.get_plan(plan_id).metadata == {"pr": 7}
    noted = anon.post("/api/lease/ledger", headers=bearer(token), json={"key": "pr", "value": 7})
    assert noted.status_code == 200 and noted.json()["epoch"] == int(token.split("_")[2])
    follow = anon.post(
        "/api/lease/jobs", headers=bearer(token), json={"engine": "shell", "payload": {"cmd": "x"}}
    )
    assert follow.status_code == 201 and fleet.get_job(follow.json()["id"]).payload == {"cmd": "x"}

    # Outside /api/lease the token opens nothing.
    for path in ("/api/jobs", f"/api/plans/{plan_id}"):
        refused = anon.get(path, headers=bearer(token))
        assert refused.status_code == 403 and "only /api/lease" in refused.text

    # Taken over: the stale attempt's token is refused, and so is its late write.
    fleet.renew(step, ttl=env.short_ttl)
    env.expire()
    fleet.reap_expired()
    [again] = fleet.claim_next(worker="box-2", limit=1)
    assert again.job is not None and again.job.step == "test"
    late = anon.patch(
        "/api/lease/plan", headers=bearer(token), json={"fields": {"metadata": {"pr": 8}}}
    )
    assert late.status_code == 401 and "taken over" in late.text
    assert fleet.get_plan(plan_id).metadata == {"pr": 7}
    stale = anon.post("/api/lease/ledger", headers=bearer(token), json={"key": "pr", "value": 8})
    assert stale.status_code == 401
    assert [(e.key, e.value) for e in fleet.ledger(again.job_id)] == [("pr", 7)]
    assert anon.get("/api/lease", headers=bearer(token)).status_code == 401

    # The new attempt's token works until the attempt ends.
    fresh = fleet.lease_token(again)
    assert fresh != token
    assert anon.get("/api/lease", headers=bearer(fresh)).status_code == 200
    fleet.complete(again)
    assert anon.get("/api/lease", headers=bearer(fresh)).status_code == 401
    with pytest.raises(LeaseLost):
        fleet.lease_token(again)  # no token is minted for an attempt that has ended


def test_a_forged_or_malformed_lease_token_is_refused(lease_web: Web) -> None:
    fleet, env = lease_web.fleet, lease_web.env
    _, token, _ = _claim_step(fleet, env)
    prefix, job_id, epoch, mac = token.split("_", 3)
    forged = [
        f"{prefix}_{job_id}_{int(epoch) + 1}_{mac}",  # another epoch under this mac
        f"{prefix}_{int(job_id) - 1}_{epoch}_{mac}",  # another job
        f"{prefix}_{job_id}_{epoch}_{'A' * len(mac)}",
        f"{prefix}_{job_id}_{epoch}",
        "afl_",
    ]
    for bad in forged:
        answer = lease_web.anon.get("/api/lease", headers=bearer(bad))
        assert answer.status_code == 401, bad
    assert lease_web.anon.get("/api/lease").status_code == 401
    assert lease_web.anon.get("/api/lease", headers=bearer("not-a-lease")).status_code == 401


def test_every_handle_on_the_fleet_checks_a_token_alike_and_the_key_stays_unlisted(
    lease_web: Web,
) -> None:
    """Two servers of one fleet share the key in the database: either checks a token the
    other's fleet minted. `agentfleet config` never lists the key."""
    fleet, env = lease_web.fleet, lease_web.env
    fleet.enqueue("shell", {"cmd": "true"})
    [lease] = fleet.claim_next(worker="w", limit=1)
    token = fleet.lease_token(lease)
    other = env.open()
    if other is not fleet:
        other_web = make_web(env)
        other_web.app.state.fleet = other
        assert other_web.anon.get("/api/lease", headers=bearer(token)).status_code == 200
    assert other.lease_of_token(token) is not None
    alone = lease_web.anon.get("/api/lease/inputs", headers=bearer(token))
    assert alone.status_code == 200 and alone.json() == {"inputs": {}}  # no plan, no inputs
    assert LEASE_KEY not in fleet.config()
    assert fleet.get_job(lease.job_id).status is JobStatus.RUNNING
