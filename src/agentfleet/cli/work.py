"""Commands that run work: worker, demo."""

from __future__ import annotations

import logging
import os
import sys
from enum import StrEnum
from typing import Annotated

import typer

import agentfleet
from agentfleet import logs
from agentfleet.cli.app import (
    JSON_LOGS,
    EnginesOpt,
    app,
    console,
    engine_config,
    handled,
    open_fleet,
    seconds,
)
from agentfleet.errors import (
    InvalidArgument,
)
from agentfleet.worker import default_worker_name

# The worker's own queries take one connection, which also LISTENs: a fleet of workers
# costs PostgreSQL one connection each (`?pool_size=N` in the URL overrides it).
WORKER_POOL_SIZE = 1


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


# -- the worker -----------------------------------------------------------------------


@app.command()
def worker(
    ctx: typer.Context,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            metavar="QUEUES",
            help="Comma-separated queues to take jobs from; default: "
            "every queue. e.g. --queues default,builds",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", "-c", metavar="N", help="Jobs run at once. e.g. --concurrency 4", min=1
        ),
    ] = 1,
    ttl: Annotated[
        str,
        typer.Option(
            "--ttl",
            metavar="DURATION",
            help="Lease length; renewed every ttl/3. A job whose worker "
            "vanished comes back after this. e.g. --ttl 30s",
        ),
    ] = "30s",
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            metavar="DURATION",
            help="On SIGTERM/SIGINT, time running jobs get to finish "
            "before they are stopped and handed back. e.g. --grace 2m",
        ),
    ] = "30s",
    kill_grace: Annotated[
        str,
        typer.Option(
            "--kill-grace",
            metavar="DURATION",
            help="Time between SIGTERM and SIGKILL when a job is "
            "stopped (timeout, cancel, shutdown). e.g. --kill-grace 5s",
        ),
    ] = "10s",
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="Worker name shown in `ls`, `show` and `workers`; default "
            "HOST-PID. e.g. --name gpu-box-1",
            show_default=False,
        ),
    ] = None,
    engines: EnginesOpt = None,
    imports: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            metavar="MODULE",
            help="Import a module first, so its @fleet.task functions "
            "are registered (repeatable). e.g. --import myproject.tasks",
        ),
    ] = None,
    burst: Annotated[
        bool,
        typer.Option("--burst", help="Exit once no job is ready and none is running. e.g. --burst"),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Log only warnings and errors. e.g. --quiet")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Also log debug lines: each python task's claim and success (by default "
            "one line per batch of them). e.g. --verbose",
        ),
    ] = False,
    clones: Annotated[
        str | None,
        typer.Option(
            "--clones",
            envvar="AGENTFLEET_CLONES",
            metavar="DIR",
            help="Folder for this worker's clones of remotes (jobs with remote:); default "
            "~/.cache/agentfleet/clones. e.g. --clones /srv/agentfleet/clones",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            metavar="text|json",
            help="text: one line per event for people; json: one JSON object per line, "
            "named like the server's (job.claim_completed, ...). e.g. --log-format json",
        ),
    ] = LogFormat.TEXT,
) -> None:
    """Run jobs: claim, run (each in its own process group), heartbeat, finish.

    SIGTERM or Ctrl-C: claim nothing more, let running jobs finish within --grace, then stop
    the rest and hand them back to the queue at once. A second signal stops at once.

    Example: agentfleet worker --queues default --concurrency 2 --ttl 30s --name w1
    """
    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose cannot both be given")
    level = logging.WARNING if quiet else logging.INFO
    if verbose:
        logging.getLogger("agentfleet").setLevel(logging.DEBUG)  # ours only, not the drivers'
    json_lines = log_format is LogFormat.JSON
    if json_lines:
        logs.configure(level)  # first: whatever goes wrong from here on is a JSON line
    token = JSON_LOGS.set(json_lines)
    try:
        with handled():
            queue_list = None
            if queues is not None:
                queue_list = [q.strip() for q in queues.split(",") if q.strip()]
                if not queue_list:
                    raise InvalidArgument("--queues names no queue")
            config = engine_config(engines)
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())  # so module:function tasks resolve from here
            for module in imports or []:
                try:
                    __import__(module)
                except Exception as exc:
                    raise InvalidArgument(
                        f"--import {module}: {type(exc).__name__}: {exc}"
                    ) from None
            ttl_s, grace_s, kill_s = (
                seconds(ttl, "--ttl"),
                seconds(grace, "--grace"),
                seconds(kill_grace, "--kill-grace"),
            )
            assert ttl_s is not None and grace_s is not None and kill_s is not None
            worker_name = name or default_worker_name()
            with open_fleet(
                ctx,
                create=True,
                pool_size=WORKER_POOL_SIZE,
                application_name=f"agentfleet worker {worker_name}",
            ) as fleet:
                runner = agentfleet.Worker(
                    fleet,
                    name=worker_name,
                    queues=queue_list,
                    concurrency=concurrency,
                    ttl=ttl_s,
                    grace=grace_s,
                    kill_grace=kill_s,
                    engines=config,
                    burst=burst,
                    clones=clones,
                )
                if not json_lines:
                    logging.basicConfig(
                        stream=sys.stderr,
                        level=level,
                        format=f"%(asctime)s {runner.name} %(levelname)s %(message)s",
                        datefmt="%H:%M:%S",
                    )
                runner.run()
    except typer.Exit:
        raise
    except Exception as exc:
        if not json_lines:
            raise
        logs.event(
            "agentfleet.worker",
            "worker.run_failed",
            level=logging.ERROR,
            exc_info=True,
            message=f"the worker crashed: {type(exc).__name__}: {exc}",
        )
        raise typer.Exit(1) from None
    finally:
        JSON_LOGS.reset(token)


@app.command()
def demo(
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            metavar="N",
            help="Worker processes to start, 2 to 8. e.g. --workers 3",
            min=2,
            max=8,
        ),
    ] = 3,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Keep the throwaway directory (database, git "
            "repositories, logs) and print where it is. e.g. --keep",
        ),
    ] = False,
    act: Annotated[
        list[str] | None,
        typer.Option(
            "--act",
            metavar="fleet|train",
            help="Only this act (repeatable). e.g. --act train",
        ),
    ] = None,
) -> None:
    """Watch a fleet of workers run fake agent jobs, then a plan's merge train.

    Runs on throwaway SQLite databases and git repositories, with stand-ins for `claude`
    and `gh`: no network, no API key. Act 1 (fleet): a worker is killed mid-job; its job
    comes back to another worker after the lease ttl, and its late write is refused. Act 2
    (train): three agents work on one repository at once, each in its own worktree; two
    merge cleanly, one conflicts and is rerun from the newest code, and the plan ends with
    the final diff and a (fake) pull request.

    Example: agentfleet demo --act train
    """
    from agentfleet.demo import ACTS, run_demo

    chosen = tuple(act or ACTS)
    unknown = sorted(set(chosen) - set(ACTS))
    if unknown:
        raise typer.BadParameter(f"unknown act(s) {unknown}; the acts are {', '.join(ACTS)}")
    run_demo(console, workers=workers, keep=keep, acts=chosen)
