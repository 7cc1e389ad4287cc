"""The merge train of a plan: its settings, and the steps it adds to the plan's DAG.

A plan with `merge:` gets, for each step that works in a worktree, a step `merge:NAME` that
merges that step's commit into the plan's integration branch `agentfleet/plan-ID` (one
merge at a time per plan: they share a named lock), and the step's dependents wait for that
merge, so they branch from code that holds it. Last comes `land`: it opens the pull request
(`pr:`) or moves `into` to the integration branch by compare-and-swap. In supervised mode
an approval gate (`pre_pr` or `pre_merge`) stands before `land`, carrying the combined
diffstat. Merges and landing are jobs like any other: claimed under a lease, fenced,
retried, and their processes follow their worker.

With a remote (`merge.remote`, or the one the steps name) the integration branch and `into`
live on the remote: steps, merges and landing may each run on another machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet import validate
from agentfleet.durations import parse_duration
from agentfleet.errors import InvalidArgument
from agentfleet.models import NewJob
from agentfleet.plans.model import (
    LAND_ENGINE,
    MERGE_ENGINE,
    PRE_MERGE,
    PRE_PR,
    PlanMode,
    PlanSpec,
    StepSpec,
)
from agentfleet.workspaces import remote as remotes
from agentfleet.workspaces.submit import with_remote
from agentfleet.workspaces.worktree import WORKTREE, locate

LAND_STEP = "land"
STRATEGIES = ("squash", "merge", "rebase")
DEFAULT_TEST_TIMEOUT = 20 * 60.0
MERGE_PREFIX = "merge:"


@dataclass(frozen=True)
class MergeSpec:
    into: str
    strategy: str = "squash"
    setup: tuple[str, ...] = ()
    test: str | None = None
    timeout: float = DEFAULT_TEST_TIMEOUT
    remote: str | None = None  # the steps' too, unless they name it themselves


@dataclass(frozen=True)
class PrSpec:
    title: str
    body: str = ""
    base: str | None = None  # default: merge.into
    remote: str | None = None  # default: the plan's remote, else origin


def _strings(value: object, what: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if items is None:
        return ()
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise InvalidArgument(f"{what} must be a command or a list of commands")
    return tuple(items)


def merge_spec(value: object, source: str) -> MergeSpec | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{source}: 'merge' must be a mapping with at least 'into'")
    keys = {"into", "strategy", "setup", "test", "timeout", "remote"}
    unknown = sorted(map(str, set(value) - keys))
    if unknown:
        raise InvalidArgument(f"{source}: 'merge' has unknown field(s) {unknown}")
    if value.get("into") is None:
        raise InvalidArgument(f"{source}: 'merge.into' names the branch to land on (e.g. main)")
    strategy = value.get("strategy", "squash")
    if strategy not in STRATEGIES:
        raise InvalidArgument(f"{source}: 'merge.strategy' must be one of {', '.join(STRATEGIES)}")
    test = value.get("test")
    if test is not None and not (isinstance(test, str) and test.strip()):
        raise InvalidArgument(f"{source}: 'merge.test' must be a command")
    try:
        seconds = parse_duration(value.get("timeout", DEFAULT_TEST_TIMEOUT))
    except (InvalidArgument, TypeError):
        raise InvalidArgument(f"{source}: 'merge.timeout' must be a duration (20m)") from None
    return MergeSpec(
        into=validate.name(value["into"], f"{source}: 'merge.into'"),
        strategy=strategy,
        setup=_strings(value.get("setup"), f"{source}: 'merge.setup'"),
        test=test,
        timeout=validate.positive_seconds(seconds, f"{source}: 'merge.timeout'"),
        remote=None
        if value.get("remote") is None
        else remotes.check_name(value["remote"], f"{source}: 'merge.remote'"),
    )


def pr_spec(value: object, source: str) -> PrSpec | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{source}: 'pr' must be a mapping with at least 'title'")
    unknown = sorted(map(str, set(value) - {"title", "body", "base", "remote"}))
    if unknown:
        raise InvalidArgument(f"{source}: 'pr' has unknown field(s) {unknown}")
    body = value.get("body") or ""
    if not isinstance(body, str):
        raise InvalidArgument(f"{source}: 'pr.body' must be text")
    base = value.get("base")
    return PrSpec(
        title=validate.name(value.get("title"), f"{source}: 'pr.title'"),
        body=validate.text(body, f"{source}: 'pr.body'"),
        base=None if base is None else validate.name(base, f"{source}: 'pr.base'"),
        remote=None
        if value.get("remote") is None
        else remotes.check_name(value["remote"], f"{source}: 'pr.remote'"),
    )


def is_worktree_step(step: StepSpec) -> bool:
    return step.job.payload.get("workspace") == WORKTREE


def locate_steps(spec: PlanSpec, remote: str | None = None, source: str = "<plan>") -> PlanSpec:
    """Record each worktree step's repository and base commit, once per (repository, base):
    every step of the plan branches from the same commit. A step with a remote (its own,
    else `remote`) records the remote's URL, its base commit pushed there once."""
    bases: dict[tuple[str, str | None], str] = {}
    pushed: dict[tuple[str, str, str], dict[str, str]] = {}
    steps = []
    for step in spec.steps:
        payload = dict(step.job.payload)
        if not is_worktree_step(step):
            steps.append(step)
            continue
        if "base_commit" not in payload:
            found = locate(str(payload.get("cwd") or "."), payload.get("base"))
            key = (found["repo"], payload.get("base"))
            found["base_commit"] = bases.setdefault(key, found["base_commit"])
            payload.update(found)
        if payload.get("remote") is None and remote is not None:
            payload["remote"] = remote
        if payload.get("remote") is not None:
            once = (str(payload.get("repo")), str(payload["remote"]), str(payload["base_commit"]))
            if "remote_url" not in payload:
                payload.update(pushed.get(once, {}))
            try:
                with_remote(payload)
            except InvalidArgument as exc:
                raise InvalidArgument(f"{source}: job {step.name!r}: {exc}") from None
            pushed[once] = {k: payload[k] for k in ("remote", "remote_url")}
        if payload != step.job.payload:
            step = dataclasses.replace(step, job=dataclasses.replace(step.job, payload=payload))
        steps.append(step)
    return dataclasses.replace(spec, steps=tuple(steps))


def with_train(spec: PlanSpec, merge: MergeSpec, pr: PrSpec | None) -> PlanSpec:
    """The plan with its merge steps, its landing gate (supervised) and its landing step."""
    workers = [s for s in spec.steps if is_worktree_step(s)]
    if not workers:
        raise InvalidArgument("'merge' needs at least one step with 'workspace: worktree'")
    repos = {s.job.payload["repo"] for s in workers}
    if len(repos) > 1:
        raise InvalidArgument(f"'merge' lands one repository; the steps work in {sorted(repos)}")
    repo, base = next(iter(repos)), workers[0].job.payload["base_commit"]
    pushes = {s.job.payload.get("remote") for s in workers}
    if len(pushes) > 1:
        named = sorted(str(p) if p else "none" for p in pushes)
        raise InvalidArgument(f"'merge' lands through one remote; the steps name {named}")
    remote = next(iter(pushes))
    merged_by = {s.name: f"{MERGE_PREFIX}{s.name}" for s in workers}
    train = {
        "repo": repo,
        "base_commit": base,
        "into": merge.into,
        "strategy": merge.strategy,
        "setup": list(merge.setup),
        "test": merge.test,
        "test_timeout": merge.timeout,
    }
    if remote is not None:
        train.update(remote=remote, remote_url=workers[0].job.payload["remote_url"])
    rewired = [
        dataclasses.replace(step, depends_on=tuple(merged_by.get(d, d) for d in step.depends_on))
        for step in spec.steps
    ]
    merges = [
        StepSpec(
            name=merged_by[s.name],
            job=NewJob(MERGE_ENGINE, {**train, "step": s.name}, max_attempts=3),
            depends_on=(s.name,),
        )
        for s in workers
    ]
    sinks = [s.name for s in rewired if not any(s.name in o.depends_on for o in rewired)]
    before_land = tuple(dict.fromkeys([*merged_by.values(), *sinks]))
    land = {**train, "pr": None if pr is None else _pr_payload(pr, repo, remote)}
    extra: list[StepSpec] = []
    if spec.mode is PlanMode.SUPERVISED:
        gate = PRE_PR if pr is not None else PRE_MERGE
        message = (
            f"Open the pull request {pr.title!r}?" if pr is not None
            else f"Move {merge.into} to the plan's merged work?"
        )  # fmt: skip
        extra.append(
            StepSpec(
                name=gate,
                job=NewJob("approval", {"message": message}),
                depends_on=before_land,
                max_rejections=0,
            )
        )
        before_land = (gate,)
    extra.append(
        StepSpec(LAND_STEP, NewJob(LAND_ENGINE, land, max_attempts=3), depends_on=before_land)
    )
    return dataclasses.replace(spec, steps=(*rewired, *merges, *extra))


def _pr_payload(pr: PrSpec, repo: str, remote: str | None) -> dict[str, Any]:
    """The pull request as the landing job reads it: its remote named (the plan's remote by
    default, else origin), and its URL when it is not the plan's remote."""
    payload = dataclasses.asdict(pr)
    payload["remote"] = pr.remote or remote or "origin"
    if remote is not None and payload["remote"] != remote:
        payload["remote_url"] = remotes.url_of(repo, payload["remote"])
    return payload


def plan_with_workspaces(spec: PlanSpec, data: Mapping[str, Any], source: str) -> PlanSpec:
    """What a plan file's `merge:` and `pr:` add; its worktree steps located."""
    merge = merge_spec(data.get("merge"), source)
    pr = pr_spec(data.get("pr"), source)
    if pr is not None and merge is None:
        raise InvalidArgument(f"{source}: 'pr' needs 'merge' (the work it opens is merged)")
    located = locate_steps(spec, None if merge is None else merge.remote, source)
    if merge is None:
        return located
    try:
        return with_train(located, merge, pr)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{source}: {exc}") from None


def with_merge_train(
    spec: PlanSpec,
    merge: MergeSpec | Mapping[str, Any],
    pr: PrSpec | Mapping[str, Any] | None = None,
) -> PlanSpec:
    """The Python API's `merge:` and `pr:`: the plan with its merge train added.

    `merge` and `pr` take the plan file's fields as a mapping (`{"into": "main", "test":
    "make test"}`) or as MergeSpec / PrSpec. Example::

        spec = with_merge_train(spec, {"into": "main", "test": "make test"},
                                {"title": "Checkout redesign"})
        fleet.submit_plan(spec)
    """
    checked = merge if isinstance(merge, MergeSpec) else merge_spec(merge, "merge_train")
    if checked is None:
        raise InvalidArgument("with_merge_train needs merge settings, at least 'into'")
    proposal = pr if isinstance(pr, PrSpec) or pr is None else pr_spec(pr, "merge_train")
    if any(s.job.engine in (MERGE_ENGINE, LAND_ENGINE) for s in spec.steps):
        raise InvalidArgument(f"plan {spec.name!r} already has a merge train")
    return with_train(locate_steps(spec, checked.remote), checked, proposal)
