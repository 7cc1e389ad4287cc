"""`agentfleet plan ...` and `agentfleet reconcile`: plans from the command line."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from textwrap import indent
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agentfleet.agents.usage import Usage, format_usage, over_budget
from agentfleet.cli.app import (
    EnginesOpt,
    ExitCode,
    JsonOpt,
    app,
    console,
    engine_config,
    err,
    fail,
    handled,
    open_fleet,
    print_json,
)
from agentfleet.cli.readable import FleetTyper
from agentfleet.fleet import Fleet
from agentfleet.plans.loops import loop_note
from agentfleet.plans.model import (
    CheckpointConflict,
    NotResumable,
    Plan,
    PlanConflict,
    PlanNotFound,
    PlanStatus,
)
from agentfleet.plans.review import ReviewItem, what_to_review
from agentfleet.serialize import plan_dict
from agentfleet.styles import PLAN_STYLE, status_text

plan_app = FleetTyper(
    help="Plans: DAGs of jobs with checkpoints and approval gates.\n\n"
    "Example: agentfleet plan submit plan.yaml && agentfleet plan show 1",
    no_args_is_help=True,
)
app.add_typer(plan_app, name="plan")

PlanArg = Annotated[
    int, typer.Argument(metavar="PLAN", help="The plan id, as `plan ls` shows it. e.g. 3", min=1)
]


@contextmanager
def plan_errors() -> Iterator[None]:
    """Plan errors on top of the shared mapping: not found 3, refused 1."""
    with handled():
        try:
            yield
        except PlanNotFound as exc:
            fail(str(exc), ExitCode.NOT_FOUND)
        except (NotResumable, PlanConflict, CheckpointConflict) as exc:
            fail(str(exc), ExitCode.REFUSED)


def _layers(plan: Plan) -> dict[str, int]:
    """Each step's depth: 1 for steps with no dependencies, else 1 + the deepest one."""
    needs = {s.name: s.depends_on for s in plan.jobs}
    depth: dict[str, int] = {}

    def of(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max((of(d) for d in needs[name]), default=0)
        return depth[name]

    for step in plan.jobs:
        of(step.name)
    return depth


def _headline(plan: Plan) -> Text:
    line = Text(f"plan {plan.id} ", style="bold")
    line.append(plan.name, style="bold")
    line.append("  ")
    line.append_text(status_text(plan.status.value, PLAN_STYLE))
    line.append(f"  ({plan.mode.value}, max_parallel {plan.max_parallel})")
    return line


def draw_dag(plan: Plan) -> Table:
    """The DAG as layers: each row a step, indented by depth, with what it waits for."""
    depth = _layers(plan)
    gate = plan.checkpoint if plan.status is PlanStatus.PAUSED else None
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold dim")
    for column in ("", "step", "status", "needs", "job", "tries"):
        table.add_column(column)
    for step in sorted(plan.jobs, key=lambda s: (depth[s.name], s.job_id)):
        level = depth[step.name]
        shape = "◆" if step.engine == "approval" else "●"
        branch = Text(("  " * (level - 1)) + ("└▶ " if level > 1 else "") + shape)
        name = Text(step.name, style="bold" if step.name == gate else "")
        status = status_text(step.status.value)
        if step.name == gate:
            status.append("  ⏸ waiting for approval", style="bold magenta")
        needs = ", ".join(step.depends_on) or "-"
        if step.trigger_rule != "all_success":
            needs += f" ({step.trigger_rule})"
        if step.when:
            needs += f" if {step.when}"
        if step.status.value == "skipped" and step.error:
            status.append(f"  {step.error}", style="dim")
        if step.loop is not None and step.loop.get("name") == step.name:
            status.append(f"  ⟳ {loop_note(step.loop)}", style="cyan")
        if step.limit:
            needs += f" · limit {step.limit}"
        table.add_row(
            branch,
            name,
            status,
            needs,
            f"#{step.job_id}",
            str(step.attempts),
        )
    return table


def _checkpoint(plan: Plan) -> str | None:
    """What a paused plan waits for, and the command that answers it; nothing otherwise."""
    if plan.status is not PlanStatus.PAUSED or plan.checkpoint is None:
        return None
    context = plan.checkpoint_context or {}
    kind = context.get("kind")
    if kind == "approval":
        return (
            f"waiting at approval gate {plan.pending}: {context.get('message') or ''}\n"
            f"  agentfleet plan approve {plan.id} --at {plan.pending} [--response TEXT]   or   "
            f"agentfleet plan reject {plan.id} --at {plan.pending} --feedback TEXT"
        )
    if plan.checkpoint == "on_error" and context.get("message"):  # the merge train stopped
        shown = [f"stopped: {context['message']}"]
        if context.get("output"):
            shown.append(indent(str(context["output"]).rstrip()[-1500:], "    "))
        if kind == "merge_conflict":
            shown.append(f"  resume reruns {context.get('job')} from the integration branch's "
                         f"newest head, with the conflict in its feedback:")  # fmt: skip
        shown.append(f"  agentfleet plan resume {plan.id}")
        return "\n".join(shown)
    if plan.checkpoint == "on_error":
        return (
            f"stopped on an error: job {context.get('job')!r} {context.get('kind')}: "
            f"{context.get('error')}\n  fix it, then: agentfleet plan resume {plan.id}"
        )
    if plan.checkpoint == "pre_pr":
        return (
            "every job is done; approve to complete: "
            f"agentfleet plan approve {plan.id} --at {plan.pending}"
        )
    return f"checkpoint {plan.checkpoint!r}: {context}"


def show_review(items: list[ReviewItem]) -> None:
    """What the steps a decision rests on produced: results, and the tails of their output."""
    for item in items:
        head = f"{item.step} (#{item.job_id}) {item.status}"
        if item.result is not None:
            head += f": {json.dumps(item.result, ensure_ascii=False)[:300]}"
        console.print(escape(head), style="bold", highlight=False)
        if item.error:
            console.print(escape(f"  error: {item.error}"), style="red", highlight=False)
        for label, text, style in (
            ("output", item.stdout_tail, ""),
            ("stderr", item.stderr_tail, "red"),
        ):
            if text:
                console.print(f"  {label} (last lines):", style="dim")
                console.print(escape(indent(text, "    ")), style=style, highlight=False)
        console.print(f"  all of it: {item.logs_command}", style="dim")


def show_plan(
    plan: Plan, review: list[ReviewItem] | None = None, usage: Mapping[int, Usage] | None = None
) -> None:
    console.print(_headline(plan))
    note = _checkpoint(plan)
    if note:
        console.print(escape(note), style="magenta", highlight=False)
    if plan.status is PlanStatus.FAILED and plan.checkpoint_context:
        console.print(escape(_failure(plan.checkpoint_context)), style="red", highlight=False)
    if plan.pr_url:
        console.print(f"pull request: {plan.pr_url}", highlight=False)
    if review:
        show_review(review)
    console.print(draw_dag(plan))
    if usage is not None and (usage or plan.budget_usd is not None):
        console.print(escape(_spent(plan, usage)), highlight=False)


def _failure(context: Mapping[str, Any]) -> str:
    """``failed: job build failed: exit code 2``; the budget's reason as it is."""
    error = context.get("error")
    if context.get("kind") == "budget" and error:
        return f"failed: {error}"
    if context.get("job"):
        return f"failed: job {context['job']} {context.get('kind', 'failed')}: {error or '-'}"
    return f"failed: {dict(context)}"


def _spent(plan: Plan, usage: Mapping[int, Usage]) -> str:
    """``spent: $0.0074 · 2,500 in / 46 out tokens of a $5 budget (build $0.0037, ...)``."""
    total = sum(usage.values(), Usage())
    line = f"spent: {format_usage(total)}{over_budget(total, plan.budget_usd)}"
    steps = [f"{s.name} {format_usage(usage[s.job_id])}" for s in plan.jobs if s.job_id in usage]
    return line + (f" ({'; '.join(steps)})" if steps else "")


@plan_app.command("submit")
def submit_plan(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A plan YAML file. e.g. plan.yaml")],
    engines: EnginesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a plan and all its jobs in one transaction, and start it.

    Example: agentfleet plan submit plan.yaml
    """
    with plan_errors(), open_fleet(ctx, create=True) as fleet:
        plan = fleet.submit_plan(file, engines=engine_config(engines).engine_names())
    if as_json:
        print_json(plan_dict(plan))
    else:
        show_plan(plan)


@plan_app.command("ls")
def list_plans(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            "-s",
            metavar="STATUS",
            help=f"Only plans in this status: {', '.join(s.value for s in PlanStatus)}. "
            "e.g. --status paused",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", help="At most this many. e.g. -n 20", min=1)
    ] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List plans, newest first.

    Example: agentfleet plan ls --status paused
    """
    with plan_errors(), open_fleet(ctx) as fleet:
        plans = fleet.list_plans(status=status, limit=limit)
    if as_json:
        print_json([plan_dict(p) for p in plans])
        return
    table = Table(show_lines=False)
    for column in ("plan", "name", "status", "mode", "checkpoint", "jobs done"):
        table.add_column(column)
    for p in plans:
        done = sum(1 for s in p.jobs if s.status.value == "succeeded")
        table.add_row(
            f"#{p.id}",
            p.name,
            status_text(p.status.value, PLAN_STYLE),
            p.mode.value,
            p.checkpoint or "-",
            f"{done}/{len(p.jobs)}",
        )
    console.print(table)


@plan_app.command("show")
def show(ctx: typer.Context, plan_id: PlanArg, as_json: JsonOpt = False) -> None:
    """Show a plan: its status, the checkpoint it waits at, and its DAG with each job's status.

    Example: agentfleet plan show 3
    """
    with plan_errors(), open_fleet(ctx) as fleet:
        plan = fleet.get_plan(plan_id)
        review = what_to_review(fleet, plan)
        usage = fleet.plan_usage(plan_id)
    if as_json:
        print_json(plan_dict(plan, usage))
    else:
        show_plan(plan, review, usage)


AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at",
        metavar="CHECKPOINT",
        help="The checkpoint you answer, as `plan show` prints it (e.g. review#2, or review): "
        "if the plan waits elsewhere by now, nothing changes. Default: where it waits now.",
    ),
]


def _answering(fleet: Fleet, plan_id: int, at: str | None) -> str | None:
    """The pause this command answers; says so when it was not given."""
    if at is None:
        at = fleet.get_plan(plan_id).pending
        if at is not None:
            err.print(
                f"answering {at} (the checkpoint plan {plan_id} waits at)",
                highlight=False,
                soft_wrap=True,
            )
    return at


@plan_app.command("approve")
def approve(
    ctx: typer.Context,
    plan_id: PlanArg,
    response: Annotated[
        str | None,
        typer.Option(
            "--response",
            "-r",
            metavar="TEXT",
            help="A reply kept for the gate's dependents. e.g. -r 'ship it'",
        ),
    ] = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pass the checkpoint the plan waits at (an approval gate, or pre_pr to complete it).

    Example: agentfleet plan approve 3 --at review#1 --response "looks good"
    """
    with plan_errors(), open_fleet(ctx) as fleet:
        plan = fleet.approve(plan_id, response, checkpoint=_answering(fleet, plan_id, at))
    _done(plan, as_json, "approved")


@plan_app.command("reject")
def reject(
    ctx: typer.Context,
    plan_id: PlanArg,
    feedback: Annotated[
        str | None,
        typer.Option(
            "--feedback",
            "-f",
            metavar="TEXT",
            help="Send the gate's job back with this feedback; without it the plan is "
            "cancelled. e.g. -f 'add tests'",
        ),
    ] = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject the approval gate the plan waits at.

    Example: agentfleet plan reject 3 --at review#1 --feedback "handle the empty cart"
    """
    with plan_errors(), open_fleet(ctx) as fleet:
        plan = fleet.reject(plan_id, feedback, checkpoint=_answering(fleet, plan_id, at))
    _done(plan, as_json, "rejected")


@plan_app.command("resume")
def resume(ctx: typer.Context, plan_id: PlanArg, as_json: JsonOpt = False) -> None:
    """Resume a failed, paused or stale plan: clears the checkpoint, re-queues failed jobs.

    Exit code 1 (with the plan's status) when it is not resumable, for example because
    someone else resumed it first.

    Example: agentfleet plan resume 3
    """
    with plan_errors(), open_fleet(ctx) as fleet:
        plan = fleet.resume(plan_id)
    _done(plan, as_json, "resumed")


@plan_app.command("budget")
def budget(
    ctx: typer.Context,
    plan_id: PlanArg,
    usd: Annotated[
        str,
        typer.Argument(
            metavar="USD",
            help="The most all of the plan's runs may cost, in US dollars (e.g. 10 or 2.50); "
            "'none' lifts the budget.",
            show_default=False,
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Set a plan's budget. A plan stopped by its budget resumes once it is raised.

    Example: agentfleet plan budget 3 10 && agentfleet plan resume 3
    """
    amount: float | None = None
    if usd.strip().lower() != "none":
        try:
            amount = float(usd)
        except ValueError:
            fail(
                f"budget must be a number of US dollars or 'none', not {usd!r}", ExitCode.BAD_INPUT
            )
    with plan_errors(), open_fleet(ctx) as fleet:
        plan = fleet.get_plan(plan_id)
        plan = fleet.update_plan_fields(plan_id, expected={"rev": plan.rev}, budget_usd=amount)
        usage = fleet.plan_usage(plan_id)
    if as_json:
        print_json(plan_dict(plan, usage))
        return
    console.print(escape(_spent(plan, usage)), highlight=False)


@plan_app.command("cancel")
def cancel(ctx: typer.Context, plan_id: PlanArg, as_json: JsonOpt = False) -> None:
    """Cancel a plan: waiting jobs are cancelled, running ones asked to stop.

    Idempotent; exit code 1 when there was nothing to cancel.

    Example: agentfleet plan cancel 3
    """
    with plan_errors(), open_fleet(ctx) as fleet:
        changed = fleet.cancel_plan(plan_id)
        plan = fleet.get_plan(plan_id)
    if as_json:
        print_json({"plan": plan_id, "cancelled": changed, "status": plan.status.value})
    elif changed:
        console.print(f"plan {plan_id} cancelled")
    else:
        err.print(f"nothing to cancel: plan {plan_id} has already ended ({plan.status.value})",
                  highlight=False)  # fmt: skip
    if not changed:
        raise typer.Exit(int(ExitCode.REFUSED))


@plan_app.command("abandon")
def abandon(ctx: typer.Context, plan_id: PlanArg, as_json: JsonOpt = False) -> None:
    """Give up a failed or paused plan for good: it can never be resumed, and its jobs that
    have not run are ended. A running plan is refused (cancel it instead).

    Idempotent; exit code 1 when the plan had already ended or is running.

    Example: agentfleet plan abandon 3
    """
    with plan_errors(), open_fleet(ctx) as fleet:
        changed = fleet.abandon_plan(plan_id)
        plan = fleet.get_plan(plan_id)
    if as_json:
        print_json({"plan": plan_id, "abandoned": changed, "status": plan.status.value})
    elif changed:
        console.print(f"plan {plan_id} abandoned: it will not be resumed")
    else:
        err.print(f"nothing to abandon: plan {plan_id} is {plan.status.value}", highlight=False)
    if not changed:
        raise typer.Exit(int(ExitCode.REFUSED))


@plan_app.command("inputs")
def inputs(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(metavar="JOB", help="A plan job's id. e.g. 12", min=1)],
) -> None:
    """Print (as JSON) what a plan job's dependencies produced: status, result, output.

    A job reads its own inputs with `agentfleet plan inputs $AGENTFLEET_JOB_ID`.

    Example: agentfleet plan inputs 12
    """
    with plan_errors(), open_fleet(ctx) as fleet:
        print_json(fleet.plan_inputs(job_id))


def _done(plan: Plan, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(plan_dict(plan))
        return
    console.print(f"plan {plan.id} {verb}")
    show_plan(plan)


@app.command("reconcile")
def reconcile(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Run one repair pass: expired leases, plans that missed an event, orphaned plans.

    Only one pass runs at a time across every process and machine; if another one holds the
    lock this one does nothing (exit code 0, and says so). Workers run it periodically.

    Example: agentfleet reconcile
    """
    with plan_errors(), open_fleet(ctx) as fleet:
        repairs = fleet.reconcile()
    if as_json:
        print_json(None if repairs is None else [dataclasses.asdict(r) for r in repairs])
        return
    if repairs is None:
        console.print("another reconcile pass is running; nothing done")
    elif not repairs:
        console.print("nothing to repair")
    for r in repairs or []:
        target = f"plan {r.plan_id}" if r.plan_id else f"job {r.job_id}"
        console.print(f"repaired {target}: {r.kind} ({r.reason})")
