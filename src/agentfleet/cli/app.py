"""The Typer app, global options, and the plumbing every command shares: opening the
store, JSON output and the documented exit codes."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import IntEnum
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape

import agentfleet
from agentfleet import logs
from agentfleet.cli.console import Console
from agentfleet.cli.readable import FleetGroup, FleetTyper
from agentfleet.connect import DEFAULT_PATH, DEFAULT_URL, find_database, sqlite_path
from agentfleet.durations import parse_duration
from agentfleet.engines import EngineConfig, load_engine_config
from agentfleet.errors import (
    AgentFleetError,
    InvalidArgument,
    InvalidTransition,
    JobNotFound,
    SchemaTooNew,
    StoreUnavailable,
)
from agentfleet.fleet import Fleet
from agentfleet.serialize import jsonable


class ExitCode(IntEnum):
    OK = 0
    REFUSED = 1
    BAD_INPUT = 2
    NOT_FOUND = 3
    STORE_UNAVAILABLE = 4


class RunNotFound(AgentFleetError, LookupError):
    """A job exists but has no run with the asked number."""


EXIT_CODES = (
    "Exit codes: 0 ok; 1 refused (e.g. nothing to cancel, a running job cannot be retried); "
    "2 bad input (bad option, value or job file; nothing was written); "
    "3 not found (no such job or run); 4 store unavailable (cannot open or reach the database)."
)


class AgentfleetGroup(FleetGroup):
    """`agentfleet`: its commands listed in the order of a user's workflow."""

    order = (
        "init",
        "submit",
        "enqueue",
        "ls",
        "show",
        "logs",
        "cancel",
        "retry",
        "worker",
        "workers",
        "engines",
        "plan",
        "schedule",
        "limits",
        "diff",
        "merge",
        "pr",
        "workspaces",
        "reap",
        "reconcile",
        "serve",
        "tokens",
        "lease",
        "config",
        "prune",
        "demo",
    )


app = FleetTyper(
    cls=AgentfleetGroup,
    help=(
        "agentfleet: a durable job queue and workflow coordinator for fleets of AI coding "
        "agents.\n\nExample: agentfleet submit jobs/ && agentfleet worker --concurrency 2"
    ),
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

ENGINES_ENV = "AGENTFLEET_ENGINES"
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON instead of a table, for scripts. e.g. --json")
]
JobArg = Annotated[
    int, typer.Argument(metavar="JOB", help="The job id, as `ls` shows it. e.g. 42", min=1)
]
EnginesOpt = Annotated[
    Path | None,
    typer.Option(
        "--engines",
        envvar=ENGINES_ENV,
        metavar="FILE",
        help="TOML file with custom \\[engines.NAME] tables (or set AGENTFLEET_ENGINES). "
        "e.g. --engines engines.toml",
        show_default=False,
    ),
]


# -- plumbing -------------------------------------------------------------------------


# Set while a command logs JSON lines (`worker --log-format json`): then what it says on
# stderr (an error, a new database) is a JSON log event too.
JSON_LOGS: ContextVar[bool] = ContextVar("agentfleet_json_logs", default=False)


def json_logs() -> bool:
    return JSON_LOGS.get()


def fail(message: str, code: ExitCode) -> NoReturn:
    """Say what went wrong, never with a password in it, and exit with `code`."""
    if json_logs():
        logs.event(
            "agentfleet.cli",
            "cli.command_failed",
            level=logging.ERROR,
            message=f"error: {message}",
            error=message,
            exit_code=int(code),
        )
        raise typer.Exit(int(code))
    err.print(f"[red]error:[/] {escape(logs.redact(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(int(code))


def _is_database_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error | StoreUnavailable | SchemaTooNew):
        return True
    return type(exc).__module__.split(".")[0] in ("psycopg", "psycopg_pool")


@contextmanager
def handled() -> Iterator[None]:
    """Map agentfleet's errors to messages and documented exit codes."""
    try:
        yield
    except (JobNotFound, RunNotFound) as exc:
        fail(str(exc), ExitCode.NOT_FOUND)
    except InvalidTransition as exc:
        fail(str(exc), ExitCode.REFUSED)
    except InvalidArgument as exc:
        fail(str(exc), ExitCode.BAD_INPUT)
    except Exception as exc:
        if _is_database_error(exc):
            fail(f"store unavailable: {exc}", ExitCode.STORE_UNAVAILABLE)
        raise


def db_url(ctx: typer.Context) -> str | None:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    url: str | None = obj.get("db")
    return url


def open_fleet(ctx: typer.Context, *, create: bool = False, **options: Any) -> Fleet:
    """The fleet --db (or AGENTFLEET_DB) names, else the nearest .agentfleet/fleet.db here
    or above. Only a command that adds work (`create`) makes a new one, and says where.
    `options` go to agentfleet.open."""
    url = db_url(ctx)
    if url is None:
        found = find_database()
        if found is not None:
            url = f"sqlite:///{found}"
        elif not create:
            raise StoreUnavailable(
                f"no agentfleet database in {Path.cwd()} or any folder above it (looked for "
                f"{DEFAULT_PATH}): run `agentfleet init` where your project is, or give --db "
                "(or AGENTFLEET_DB)"
            )
        else:
            url = DEFAULT_URL
            created = Path.cwd() / DEFAULT_PATH
            if json_logs():
                logs.event(
                    "agentfleet.cli",
                    "store.create_completed",
                    message=f"created a new database: {created}",
                    path=str(created),
                )
            else:
                err.print(f"created a new database: {created}", highlight=False, soft_wrap=True)
    elif not create and url.startswith("sqlite://") and not sqlite_path(url).exists():
        raise StoreUnavailable(  # a mistyped --db must not read as an empty fleet
            f"no database at {sqlite_path(url)} ({url}): check --db (or AGENTFLEET_DB), or "
            f"create it with `agentfleet --db {url} init`"
        )
    try:
        return agentfleet.open(url, **options)
    except OSError as exc:
        raise StoreUnavailable(f"cannot open {url}: {exc}") from exc


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def seconds(value: str | None, what: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc}") from None


def engine_config(path: Path | None) -> EngineConfig:
    return EngineConfig() if path is None else load_engine_config(path)


def package_version() -> str:
    """The installed package's version (its metadata), else the source's."""
    try:
        return metadata.version("agentfleet")
    except metadata.PackageNotFoundError:
        return agentfleet.__version__


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentfleet {package_version()}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="AGENTFLEET_DB",
            metavar="URL",
            help="Database URL (or set AGENTFLEET_DB). Default: the embedded SQLite file "
            f"{DEFAULT_URL}. e.g. --db postgresql://user@host/fleet",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_version,
            is_eager=True,
            help="Print the version and exit. e.g. --version",
        ),
    ] = False,
) -> None:
    """agentfleet: a durable job queue and workflow coordinator for fleets of AI coding agents.

    Example: agentfleet submit jobs/ && agentfleet worker --concurrency 2
    """
    ctx.ensure_object(dict)["db"] = db
