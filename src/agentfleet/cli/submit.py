"""Commands that set up and add work: init, submit (job files), enqueue (quick jobs)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape

from agentfleet.cli.app import (
    EnginesOpt,
    ExitCode,
    JsonOpt,
    app,
    console,
    engine_config,
    err,
    handled,
    open_fleet,
    print_json,
    seconds,
)
from agentfleet.cli.views import waits_until
from agentfleet.errors import (
    InvalidArgument,
)
from agentfleet.jobfile import JobFileErrors, JobSpec, load_job_files
from agentfleet.serialize import job_dict

# -- set-up and submitting ------------------------------------------------------------


@app.command()
def init(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Create the database (or upgrade its schema) and print where it is.

    Example: agentfleet --db sqlite:///fleet.db init
    """
    with handled(), open_fleet(ctx, create=True) as fleet:
        version = fleet.store.schema_version()
        if as_json:
            print_json({"url": fleet.url, "schema_version": version})
        else:
            console.print(f"database ready: {escape(fleet.url)} (schema version {version})")


def _spec_payload(spec: JobSpec) -> dict[str, Any]:
    payload = dict(spec.payload)
    if spec.labels:
        payload["labels"] = list(spec.labels)
    return payload


@app.command()
def submit(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...",
            help="Job files (Markdown with YAML front matter) or directories of *.md files. "
            "e.g. jobs/ fix-flaky-test.md",
            show_default=False,
        ),
    ],
    engines: EnginesOpt = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Only check the files; enqueue nothing. e.g. --check"),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check every job file, then enqueue them all in one transaction (or none).

    Every problem in every file is reported with its path, line, field and reason; if there
    is any, nothing is enqueued and the exit code is 2.

    Example: agentfleet submit jobs/
    """
    with handled():
        config = engine_config(engines)
        try:
            specs = load_job_files(paths, config.engine_names())
        except JobFileErrors as exc:
            _report_job_file_errors(exc, as_json)
        if check:
            if as_json:
                print_json({"ok": True, "jobs": len(specs), "enqueued": []})
            else:
                console.print(f"{len(specs)} job file(s) are valid; nothing enqueued (--check)")
            return
        with open_fleet(ctx, create=True) as fleet:
            new = [
                fleet.new_job(
                    spec.engine,
                    _spec_payload(spec),
                    queue=spec.queue,
                    priority=spec.priority,
                    lock=spec.lock,
                    max_attempts=spec.max_attempts,
                    timeout=spec.timeout,
                )
                for spec in specs
            ]
            jobs = fleet.enqueue_many(new)
    if as_json:
        print_json(
            {
                "ok": True,
                "jobs": len(jobs),
                "enqueued": [
                    {**job_dict(job), "source": spec.source}
                    for job, spec in zip(jobs, specs, strict=True)
                ],
            }
        )
        return
    for job, spec in zip(jobs, specs, strict=True):
        waits = waits_until(job, job.created_at)
        console.print(
            f"enqueued job {job.id} ({job.engine}, queue {escape(job.queue)}) "
            f"from {escape(spec.source or '-')}"
            + ("" if waits is None else f", to run at {waits}"),
            highlight=False,
        )


def _report_job_file_errors(exc: JobFileErrors, as_json: bool) -> NoReturn:
    files = len({p.path for p in exc.problems})
    if as_json:
        print_json(
            {
                "ok": False,
                "problems": [
                    {"path": p.path, "line": p.line, "field": p.field, "reason": p.reason}
                    for p in exc.problems
                ],
            }
        )
    else:
        err.print(
            f"[red]error:[/] {len(exc.problems)} problem(s) in {files} job file(s); "
            "nothing was enqueued:",
            highlight=False,
        )
        for problem in exc.problems:
            err.print(f"  {escape(str(problem))}", highlight=False)
    raise typer.Exit(int(ExitCode.BAD_INPUT))


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--env takes NAME=VALUE, not {pair!r}")
        env[key] = value
    return env


def _json_option(text: str | None, what: str, kind: type) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise InvalidArgument(f"{what} must be a JSON {kind.__name__}")
    return value


def _quick_payload(
    command: list[str] | None,
    python: str | None,
    args: str | None,
    kwargs: str | None,
    cwd: str | None,
    env: list[str],
) -> tuple[str, dict[str, Any]]:
    if python is not None:
        if command:
            raise InvalidArgument("give either a command after -- or --python, not both")
        if cwd is not None or env:
            raise InvalidArgument("--cwd and --env apply to shell commands, not --python")
        payload: dict[str, Any] = {"func": python}
        payload["args"] = _json_option(args, "--args", list) or []
        payload["kwargs"] = _json_option(kwargs, "--kwargs", dict) or {}
        return "python", payload
    if not command:
        raise InvalidArgument("nothing to run: give a command after -- or --python MODULE:FUNC")
    if args is not None or kwargs is not None:
        raise InvalidArgument("--args and --kwargs apply to --python jobs")
    payload = {"cmd": command[0] if len(command) == 1 else list(command)}
    if cwd is not None:
        payload["cwd"] = cwd
    if env:
        payload["env"] = _env_pairs(env)
    return "shell", payload


@app.command(context_settings={"allow_interspersed_args": False})
def enqueue(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="COMMAND...",
            help="The command, after --. One argument runs through /bin/sh -c (pipes, "
            "redirects); several are run directly as argv. e.g. -- 'make test | tail'",
            show_default=False,
        ),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            metavar="MODULE:FUNC",
            help="Run a Python function instead: package.module:function (or a name "
            "registered with @fleet.task). e.g. --python reports.build:nightly",
            show_default=False,
        ),
    ] = None,
    args: Annotated[
        str | None,
        typer.Option(
            "--args",
            metavar="JSON",
            help="Positional arguments for --python, as a JSON list. e.g. --args '[1, 2]'",
            show_default=False,
        ),
    ] = None,
    kwargs: Annotated[
        str | None,
        typer.Option(
            "--kwargs",
            metavar="JSON",
            help="Keyword arguments for --python, as a JSON object. e.g. --kwargs '{\"n\": 1}'",
            show_default=False,
        ),
    ] = None,
    queue: Annotated[
        str,
        typer.Option(
            "--queue", "-q", metavar="QUEUE", help="Queue to put it on. e.g. --queue builds"
        ),
    ] = "default",
    priority: Annotated[
        int,
        typer.Option("--priority", "-p", metavar="N", help="Higher runs first. e.g. --priority 10"),
    ] = 0,
    lock: Annotated[
        str | None,
        typer.Option(
            "--lock",
            metavar="NAME",
            help="Named lock: jobs sharing it never run at once. e.g. --lock repo-api",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            metavar="DURATION",
            help="Stop an attempt after this long (SIGTERM, then "
            "SIGKILL); it fails with 'timeout'. e.g. --timeout 45m",
            show_default=False,
        ),
    ] = None,
    max_attempts: Annotated[
        int,
        typer.Option(
            "--max-attempts",
            metavar="N",
            help="Attempts before it fails for good. e.g. --max-attempts 5",
            min=1,
        ),
    ] = 3,
    delay: Annotated[
        str | None,
        typer.Option(
            "--delay",
            metavar="DURATION",
            help="Do not start before this long from now. e.g. --delay 10m",
            show_default=False,
        ),
    ] = None,
    dedupe_key: Annotated[
        str | None,
        typer.Option(
            "--dedupe-key",
            metavar="KEY",
            help="While a job with this key is queued or running, "
            "return it instead of adding another. e.g. --dedupe-key nightly",
            show_default=False,
        ),
    ] = None,
    cwd: Annotated[
        str | None,
        typer.Option(
            "--cwd",
            metavar="DIR",
            help="Working directory of the command. e.g. --cwd services/api",
            show_default=False,
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            metavar="NAME=VALUE",
            help="Environment variable for the command (repeatable). e.g. --env LOG_LEVEL=debug",
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            metavar="LABEL",
            help="Label to filter by in `ls` (repeatable). e.g. --label nightly",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Enqueue a quick shell command or Python function call.

    Examples:

      agentfleet enqueue -- echo hi

      agentfleet enqueue --timeout 10m --lock repo -- 'pytest -x | tail -n 20'

      agentfleet enqueue --python reports.build:nightly --kwargs '{"day": "mon"}'
    """
    with handled():
        engine, payload = _quick_payload(command, python, args, kwargs, cwd, env or [])
        if label:
            payload["labels"] = list(label)
        run_delay = seconds(delay, "--delay")
        with open_fleet(ctx, create=True) as fleet:
            # Fleet.enqueue returns the live job holding the dedupe key, if one does, without
            # saying so: a job created before this call (by the store's clock) was not new.
            before = fleet.now() if dedupe_key is not None else None
            job = fleet.enqueue(
                engine,
                payload,
                queue=queue,
                priority=priority,
                lock=lock,
                max_attempts=max_attempts,
                timeout=seconds(timeout, "--timeout"),
                run_at=None if run_delay is None else timedelta(seconds=run_delay),
                dedupe_key=dedupe_key,
            )
    repeat = before is not None and job.created_at < before
    if repeat:
        note = (
            f"job #{job.id} already holds dedupe key {dedupe_key} (status {job.status.value}): "
            "not enqueued again"
        )
        # With --json, stdout is the job as ever and the note goes to stderr.
        (err if as_json else console).print(escape(note), highlight=False, soft_wrap=True)
    if as_json:
        print_json(job_dict(job))
    elif not repeat:
        waits = waits_until(job, job.created_at)
        console.print(
            f"enqueued job {job.id} ({engine}) on queue {escape(job.queue)}"
            + ("" if waits is None else f", to run at {waits}"),
            highlight=False,
        )
