"""Commands that run work: worker, demo."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

import typer
from typer._click.core import ParameterSource

import agentfleet
from agentfleet import logs
from agentfleet.cli.app import (
    JSON_LOGS,
    EnginesOpt,
    ExitCode,
    app,
    console,
    engine_config,
    fail,
    handled,
    open_fleet,
    seconds,
)
from agentfleet.errors import (
    AccessDenied,
    InvalidArgument,
    StoreUnavailable,
)
from agentfleet.fleet import Fleet
from agentfleet.remote import RemoteFleet
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
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="AGENTFLEET_SERVER",
            metavar="URL",
            help="Work for the fleet that `agentfleet serve` serves there, through its worker "
            "API, with --token instead of a database URL (a remote worker). "
            "e.g. --server https://fleet.example.com:8700",
            show_default=False,
        ),
    ] = None,
    worker_token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="AGENTFLEET_TOKEN",
            metavar="TOKEN",
            help="With --server: the token to send, one made with `agentfleet tokens create "
            "--role worker` (the worker then goes by the token's name). "
            "e.g. --token aft_0123456789ab_...",
            show_default=False,
        ),
    ] = None,
    ca: Annotated[
        str | None,
        typer.Option(
            "--ca",
            envvar="AGENTFLEET_CA",
            metavar="FILE",
            help="A PEM file of the CA (or the self-signed certificate) to trust for an "
            "https:// server instead of the system's; its jobs get it as AGENTFLEET_CA. "
            "e.g. --ca fleet-ca.pem",
            show_default=False,
        ),
    ] = None,
    lease_server: Annotated[
        str | None,
        typer.Option(
            "--lease-server",
            envvar="AGENTFLEET_LEASE_SERVER",
            metavar="URL",
            help="For a direct worker: the fleet's `agentfleet serve` address, so that jobs "
            "with db_access get a lease token for it (AGENTFLEET_LEASE_TOKEN) instead of the "
            "database URL. e.g. --lease-server https://fleet.example.com:8700",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run jobs: claim, run (each in its own process group), heartbeat, finish.

    SIGTERM or Ctrl-C: claim nothing more, let running jobs finish within --grace, then stop
    the rest and hand them back to the queue at once. A second signal stops at once.

    With --server and --token it works for a fleet served by `agentfleet serve`, needing no
    database access (a remote worker); it leaves the fleet's housekeeping (plans'
    reconcile, schedules, pruning) to direct workers.

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
            refused: list[AccessDenied] = []
            remote = _remote_fleet(ctx, server, worker_token, ca)
            if remote is not None and lease_server is not None:
                raise InvalidArgument(
                    "--lease-server is for a direct worker: a remote worker's jobs are given "
                    "its --server"
                )
            worker_name = name or default_worker_name()
            if remote is not None:
                worker_name = _remote_name(remote, name, wait=not burst) or worker_name
            opened: Fleet | RemoteFleet = (
                remote
                if remote is not None
                else open_fleet(
                    ctx,
                    create=True,
                    pool_size=WORKER_POOL_SIZE,
                    application_name=f"agentfleet worker {worker_name}",
                )
            )
            with opened as fleet:
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
                    lease_server=lease_server,
                    lease_ca=ca,
                )
                if not json_lines:
                    logging.basicConfig(
                        stream=sys.stderr,
                        level=level,
                        format=f"%(asctime)s {runner.name} %(levelname)s %(message)s",
                        datefmt="%H:%M:%S",
                    )
                if remote is not None:
                    remote.on_denied = _stop_on_refusal(runner, refused)
                runner.run()
            if refused:
                fail(
                    f"{refused[0]}: the worker stopped (its jobs come back to the queue "
                    "after their lease's ttl)",
                    ExitCode.REFUSED,
                )
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


def _remote_fleet(
    ctx: typer.Context, server: str | None, token: str | None, ca: str | None
) -> RemoteFleet | None:
    """The RemoteFleet that --server and --token name, or None for a direct worker."""
    root = ctx.parent
    given_db = root is not None and root.get_parameter_source("db") is ParameterSource.COMMANDLINE
    if server is None or not server.strip():
        if ctx.get_parameter_source("worker_token") is ParameterSource.COMMANDLINE:
            raise InvalidArgument("--token: only for a remote worker; give --server URL too")
        return None
    if given_db:
        raise InvalidArgument(
            "--db and --server cannot both be given: a worker reaches its fleet either "
            "through the database (--db) or through `agentfleet serve` (--server and --token)"
        )
    if token is None or not token.strip():
        raise InvalidArgument(
            "--server needs a token: give --token (or set AGENTFLEET_TOKEN), e.g. one made "
            "with `agentfleet tokens create --role worker --name box-7`"
        )
    return RemoteFleet(server, token, ca_file=ca)


def _remote_name(remote: RemoteFleet, name: str | None, *, wait: bool) -> str | None:
    """A worker token's name is its worker's: --name may only repeat it. Waits (and says
    so) while the server cannot be reached; a burst worker does not wait: it exits 4."""
    pause = 0.5
    while True:
        try:
            hello = remote.hello()
            break
        except StoreUnavailable as exc:
            if not wait:
                fail(
                    f"{exc} (check --server: http:// or https://, host and port)",
                    ExitCode.STORE_UNAVAILABLE,
                )
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
        except AccessDenied as exc:
            fail(str(exc), ExitCode.REFUSED)
    own = hello.get("name")
    if own is None:  # the admin's token: any name
        return name
    if name is not None and name != own:
        raise InvalidArgument(
            f"this is a worker token (named {own!r}): its worker goes by that name; leave "
            f"out --name or give --name {own}"
        )
    return str(own)


def _stop_on_refusal(
    runner: agentfleet.Worker, refused: list[AccessDenied]
) -> Callable[[AccessDenied], None]:
    def stop(exc: AccessDenied) -> None:
        if not refused:
            refused.append(exc)
            logs.event(
                "agentfleet.worker",
                "worker.token_refused",
                level=logging.ERROR,
                message=f"{exc}; stopping now (its jobs come back after their lease's ttl)",
                worker=runner.name,
                status=exc.status,
            )
        runner.stop(now=True, cut_off=True)

    return stop


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
