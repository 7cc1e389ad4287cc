"""`agentfleet lease show|inputs|write|enqueue|plan`: a running job's own way to the fleet.

Run inside a job that has ``AGENTFLEET_SERVER`` and ``AGENTFLEET_LEASE_TOKEN`` (a
`db_access: true` job of a remote worker, or of a direct worker with --lease-server): each
command is one call of the lease API, allowed only while the job's attempt holds its lease.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from agentfleet.cli.app import EnginesOpt, ExitCode, app, engine_config, fail, handled, print_json
from agentfleet.cli.readable import FleetTyper
from agentfleet.errors import AccessDenied, LeaseLost, StoreUnavailable
from agentfleet.jobfile import load_job_file
from agentfleet.remote.lease import LeaseClient

lease_app = FleetTyper(
    help="Inside a running job: reach the fleet through the job's lease token "
    "(AGENTFLEET_SERVER and AGENTFLEET_LEASE_TOKEN, given to a job with db_access: true by "
    "a worker that knows the fleet's server). Every command works only while the job's "
    "attempt holds its lease: once it is taken over or has ended, it exits 1 and writes "
    "nothing.\n\n"
    "Example: agentfleet lease write pr_url https://example.com/pr/7",
    no_args_is_help=True,
)
app.add_typer(lease_app, name="lease")


def _client() -> LeaseClient:
    return LeaseClient.from_env()


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """One lease call, its refusals as the CLI's exit codes."""
    with handled():
        try:
            return fn(*args, **kwargs)
        except LeaseLost as exc:
            fail(f"{exc}: this attempt no longer holds the job's lease", ExitCode.REFUSED)
        except AccessDenied as exc:
            fail(str(exc), ExitCode.REFUSED)
        except StoreUnavailable as exc:
            fail(str(exc), ExitCode.STORE_UNAVAILABLE)


def _value(text: str) -> Any:
    """A JSON value when the text is one (7, true, {"a": 1}), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@lease_app.command("show")
def show() -> None:
    """Print the job this lease belongs to (JSON).

    Example: agentfleet lease show
    """
    print_json(_call(lambda: _client().job()))


@lease_app.command("inputs")
def inputs() -> None:
    """Print what a plan step's dependencies produced: status, result, last output (JSON).

    Example: agentfleet lease inputs
    """
    print_json(_call(lambda: _client().inputs()))


@lease_app.command("write")
def write(
    key: Annotated[
        str, typer.Argument(metavar="KEY", help="The ledger key. e.g. pr_url", show_default=False)
    ],
    value: Annotated[
        str,
        typer.Argument(
            metavar="VALUE",
            help="A JSON value, or else taken as text. e.g. https://example.com/pr/7",
            show_default=False,
        ),
    ],
) -> None:
    """Write VALUE under KEY in the job's ledger, fenced by its lease.

    Example: agentfleet lease write pr_url https://example.com/pr/7
    """
    entry = _call(lambda: _client().write(key, _value(value)))
    print_json(entry)


@lease_app.command("enqueue")
def enqueue(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="JOB_FILE",
            help="A job file (Markdown with YAML front matter). e.g. deploy.md",
            show_default=False,
        ),
    ],
    engines: EnginesOpt = None,
) -> None:
    """Enqueue a follow-up job from a job file; print it (JSON).

    Example: agentfleet lease enqueue deploy.md
    """
    with handled():
        spec = load_job_file(path, engine_config(engines).engine_names())
    payload = dict(spec.payload)
    if spec.labels:
        payload["labels"] = list(spec.labels)
    options: dict[str, Any] = {
        "queue": spec.queue,
        "priority": spec.priority,
        "lock": spec.lock,
        "max_attempts": spec.max_attempts,
        "timeout": spec.timeout,
    }
    print_json(_call(lambda: _client().enqueue(spec.engine, payload, **options)))


@lease_app.command("plan")
def plan(
    fields: Annotated[
        list[str],
        typer.Argument(
            metavar="FIELD=VALUE...",
            help="Plan-level fields to write, each VALUE JSON or text. "
            'e.g. metadata=\'{"pr_url": "https://example.com/pr/7"}\'',
            show_default=False,
        ),
    ],
) -> None:
    """Write plan-level fields of the job's own plan, fenced by its lease; print the plan.

    Example: agentfleet lease plan 'metadata={"pr": 7}'
    """
    parsed: dict[str, Any] = {}
    for item in fields:
        name, sep, text = item.partition("=")
        if not sep or not name:
            fail(f"{item!r}: give FIELD=VALUE, e.g. metadata='{{\"pr\": 7}}'", ExitCode.BAD_INPUT)
        parsed[name] = _value(text)
    print_json(_call(lambda: _client().update_plan(parsed)))
