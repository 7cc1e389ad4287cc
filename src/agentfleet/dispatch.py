"""Turn a claimed job into the execution that runs it, by engine.

* ``python``: a function (see :mod:`agentfleet.tasks`), called in a thread;
* ``shell``: ``payload["cmd"]`` as a string runs through ``/bin/sh -c``; as a list it is the
  argv itself; ``cwd`` and ``env`` apply;
* any agent engine (built-in or from an engine config): the argv from
  :func:`agentfleet.engines.build_agent_command`, run as an
  :class:`~agentfleet.agents.run.AgentRun` that reads the CLI's output and tells a failure
  no retry fixes (not logged in, a refused flag) from one that a retry may.

Problems that no retry can fix (unknown engine, missing executable, bad payload, missing
working directory) raise :class:`~agentfleet.errors.InvalidArgument`; the worker fails the
attempt with that message and ``retry=False``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agentfleet.agents.resume import Resume
from agentfleet.agents.run import AgentRun
from agentfleet.connect import sqlite_path
from agentfleet.engines import (
    EngineConfig,
    build_agent_command,
    default_timeout,
    resolve_executable,
)
from agentfleet.errors import InvalidArgument
from agentfleet.execution import Execution
from agentfleet.models import Job, Lease
from agentfleet.output import OUTPUT_LIMIT
from agentfleet.runner import ProcessRun
from agentfleet.tasks import REGISTRY, TaskRegistry, TaskRun, call_arguments
from agentfleet.workspaces.execution import WorkspaceRun
from agentfleet.workspaces.remote import CLONES_ENV, clones_root
from agentfleet.workspaces.setup import WorktreeSetup
from agentfleet.workspaces.train_run import TRAIN_ENGINES, TrainRun
from agentfleet.workspaces.worktree import WorkspaceSpec

__all__ = [
    "FLEET_SECRETS",
    "NOT_RUN_BY_WORKERS",
    "RunContext",
    "absolute_db_url",
    "build_execution",
    "job_env",
    "job_timeout",
    "runnable_engines",
]

# Plan gates: resolved by people, never claimed and run as a process.
NOT_RUN_BY_WORKERS = frozenset({"approval"})
SHELL = "/bin/sh"


@dataclass(frozen=True)
class RunContext:
    """What every execution of one worker shares."""

    db_url: str | None  # None for a remote worker: its jobs never get a database URL
    worker: str
    engines: EngineConfig = field(default_factory=EngineConfig)
    tasks: TaskRegistry = REGISTRY
    output_limit: int = OUTPUT_LIMIT
    clones: Path | None = None  # where jobs with a remote get clones (None: AGENTFLEET_CLONES)
    server: str | None = None  # the fleet's server, for jobs that need the fleet
    # Mints a job's lease token (store/lease_tokens.py): a remote worker asks its server, a
    # direct worker with --lease-server mints it itself. With it, a `db_access` job gets
    # the token and the server, never a database URL.
    lease_token: Callable[[Lease], str] | None = None
    ca_file: str | None = None  # the CA a job's lease client trusts the server's TLS with


def runnable_engines(engines: EngineConfig) -> list[str]:
    """The engines a worker with this config claims: python, shell, the merge train's
    merge and land, and every agent."""
    return ["python", "shell", *TRAIN_ENGINES, *engines.agent_engines()]


def absolute_db_url(url: str) -> str:
    """A relative SQLite URL made absolute, so a job with another cwd reaches the same file."""
    if url.lower().startswith("sqlite:"):
        path = sqlite_path(url)
        if not path.is_absolute():
            return f"sqlite:///{path.resolve()}"
    return url


# What a job's process never inherits from its worker: the keys to the fleet's database
# and API. An agent following an injected prompt could otherwise rewrite other jobs.
FLEET_SECRETS = frozenset(
    {"AGENTFLEET_DB", "AGENTFLEET_TOKEN", "PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE"}
)


def db_access(payload: Mapping[str, Any]) -> bool:
    """Whether the job opted in to the fleet's database (`db_access: true`)."""
    return payload.get("db_access") is True


def inherited_env(payload: Mapping[str, Any], ctx: RunContext) -> dict[str, str]:
    """The worker's environment as a job inherits it: without the fleet's secrets, unless
    the job opted in to them on a direct worker (a remote worker's token is its own, never
    its jobs')."""
    if db_access(payload) and ctx.server is None and ctx.lease_token is None:
        return dict(os.environ)
    return {k: v for k, v in os.environ.items() if k not in FLEET_SECRETS}


def job_env(lease: Lease, ctx: RunContext, inputs: str | None = None) -> dict[str, str]:
    """The variables every job's process gets (they win over the job's own env): its own
    identity, and nothing that reaches the fleet unless it opted in (`db_access: true`):
    then its lease token and the fleet's server when the worker knows one, else (a direct
    worker) the database URL."""
    env = {
        "AGENTFLEET_JOB_ID": str(lease.job_id),
        "AGENTFLEET_LEASE_EPOCH": str(lease.epoch),
        "AGENTFLEET_ATTEMPT": str(lease.attempt),
        "AGENTFLEET_WORKER": ctx.worker,
    }
    job = lease.job
    if job is not None and db_access(job.payload):
        if ctx.lease_token is not None and ctx.server is not None:
            env["AGENTFLEET_LEASE_TOKEN"] = ctx.lease_token(lease)  # instead of any URL
            if ctx.ca_file is not None:
                env["AGENTFLEET_CA"] = ctx.ca_file
        elif ctx.db_url is not None:
            env["AGENTFLEET_DB"] = ctx.db_url
        if ctx.server is not None:
            env["AGENTFLEET_SERVER"] = ctx.server
    if job is not None and job.plan_id is not None:
        env["AGENTFLEET_PLAN_ID"] = str(job.plan_id)
        env["AGENTFLEET_STEP"] = job.step or ""
    if inputs is not None:
        # A plan step reads its dependencies' results from this file (JSON).
        env["AGENTFLEET_INPUTS"] = inputs
    return env


def _env(payload: Mapping[str, Any]) -> dict[str, str]:
    env = payload.get("env") or {}
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise InvalidArgument("payload 'env' must map names to string values")
    return dict(env)


def _cwd(payload: Mapping[str, Any]) -> str | None:
    cwd = payload.get("cwd")
    if cwd is None:
        return None
    if not isinstance(cwd, str) or not cwd:
        raise InvalidArgument("payload 'cwd' must be a non-empty string")
    if not Path(cwd).is_dir():
        raise InvalidArgument(f"working directory {cwd!r} does not exist on this worker")
    return cwd


def job_timeout(job: Job, engines: EngineConfig) -> float | None:
    """The job's timeout in seconds: its own, else its engine's default (agents have one)."""
    return job.timeout if job.timeout is not None else default_timeout(job.engine, engines)


def _executable(
    argv: list[str], env: Mapping[str, str], cwd: str | None, engine: str | None
) -> str:
    program = argv[0]
    if cwd is not None and os.sep in program and not os.path.isabs(program):
        # A relative program path means relative to the job's working directory.
        resolve_executable([os.path.join(cwd, program)], env, engine=engine)
        return os.path.abspath(os.path.join(cwd, program))
    return os.path.abspath(resolve_executable(argv, env, engine=engine))


def _process(
    argv: list[str],
    env: Mapping[str, str],
    cwd: str | None,
    ctx: RunContext,
    on_exit: Callable[[], None],
    engine: str | None,
) -> ProcessRun:
    executable = _executable(argv, env, cwd, engine)
    return ProcessRun(
        argv, executable=executable, cwd=cwd, env=env, limit=ctx.output_limit, on_exit=on_exit
    )


def _shell(
    job: Job, lease: Lease, ctx: RunContext, on_exit: Callable[[], None], inputs: str | None
) -> ProcessRun:
    payload = job.payload
    cmd = payload.get("cmd")
    if isinstance(cmd, str) and cmd.strip():
        argv = [SHELL, "-c", cmd]
    elif isinstance(cmd, list) and cmd and all(isinstance(p, str) for p in cmd) and cmd[0]:
        argv = list(cmd)
    else:
        raise InvalidArgument(
            "engine 'shell' needs payload 'cmd': a command string or a non-empty argv list"
        )
    env = {**inherited_env(payload, ctx), **_env(payload), **job_env(lease, ctx, inputs)}
    return _process(argv, env, _cwd(payload), ctx, on_exit, None)


def _agent(
    job: Job,
    lease: Lease,
    ctx: RunContext,
    on_exit: Callable[[], None],
    inputs: str | None,
    resume: Resume | None = None,
) -> ProcessRun:
    session = None if resume is None else resume.session_id
    prompt = None if resume is None else resume.prompt
    command = build_agent_command(
        job.engine, job.payload, ctx.engines, session=session, resume_prompt=prompt
    )
    env = command.full_env(inherited_env(job.payload, ctx))
    env.update(job_env(lease, ctx, inputs))
    cwd = _cwd({"cwd": command.cwd}) if command.cwd is not None else None
    return AgentRun(
        command.argv,
        engine=job.engine,
        output=command.output,
        executable=_executable(command.argv, env, cwd, job.engine),
        cwd=cwd,
        env=env,
        limit=ctx.output_limit,
        on_exit=on_exit,
        resume=resume,
    )


def _python(job: Job, ctx: RunContext, on_exit: Callable[[], None]) -> TaskRun:
    func = job.payload.get("func")
    if not isinstance(func, str) or not func.strip():
        raise InvalidArgument("engine 'python' needs payload 'func': 'package.module:function'")
    fn = ctx.tasks.resolve(func)
    args, kwargs = call_arguments(job.payload)
    return TaskRun(fn, args, kwargs, on_exit=on_exit)


def build_execution(
    job: Job,
    lease: Lease,
    ctx: RunContext,
    on_exit: Callable[[], None],
    inputs: str | None = None,
    resume: Resume | None = None,
) -> Execution:
    """The execution for one claimed job (not started); InvalidArgument when it cannot run.
    `inputs` is the path of the file holding a plan step's inputs; `resume` says whether a
    retried agent continues its earlier session (see agents/resume.py)."""
    if job.engine in NOT_RUN_BY_WORKERS:
        raise InvalidArgument(f"engine {job.engine!r} is resolved by people, not by workers")
    if job.engine == "python":
        return _python(job, ctx, on_exit)
    if job.engine in TRAIN_ENGINES:
        return _train(job, lease, ctx, on_exit)
    spec = WorkspaceSpec.of(job.payload, ctx.clones)
    if spec is not None:
        return _in_worktree(spec, job, lease, ctx, on_exit, inputs, resume)
    if job.engine == "shell":
        return _shell(job, lease, ctx, on_exit, inputs)
    return _agent(job, lease, ctx, on_exit, inputs, resume)


def _train(job: Job, lease: Lease, ctx: RunContext, on_exit: Callable[[], None]) -> TrainRun:
    env = {**inherited_env(job.payload, ctx), **job_env(lease, ctx)}
    repo = job.payload.get("repo")
    if job.payload.get("remote"):  # it works in this worker's clone of the remote
        clones = clones_root(ctx.clones)
        clones.mkdir(parents=True, exist_ok=True)
        env[CLONES_ENV] = str(clones)
        repo = str(clones)
    elif not isinstance(repo, str) or not Path(repo).is_dir():
        raise InvalidArgument(f"the plan's repository {repo!r} is not on this worker")
    return TrainRun(
        job.engine, job.payload, cwd=str(repo), env=env, limit=ctx.output_limit, on_exit=on_exit
    )


def _in_worktree(
    spec: WorkspaceSpec,
    job: Job,
    lease: Lease,
    ctx: RunContext,
    on_exit: Callable[[], None],
    inputs: str | None,
    resume: Resume | None,
) -> Execution:
    """The job's own execution, started in a worktree of its own once that is ready."""
    setup = WorktreeSetup.of(job.payload.get("worktree_setup"))

    def build(cwd: str, done: Callable[[], None]) -> Execution:
        moved = replace(job, payload={**job.payload, "cwd": cwd})
        if job.engine == "shell":
            return _shell(moved, lease, ctx, done, inputs)
        return _agent(moved, lease, ctx, done, inputs, resume)

    env = {**inherited_env(job.payload, ctx), **_env(job.payload), **job_env(lease, ctx, inputs)}
    return WorkspaceRun(
        spec,
        setup,
        job_id=job.id,
        epoch=lease.epoch,
        attempt=lease.attempt,
        build=build,
        env=env,
        on_exit=on_exit,
    )
