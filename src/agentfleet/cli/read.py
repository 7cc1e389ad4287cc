"""Commands that read: ls, show, logs, workers, engines."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from agentfleet.agents.transcript import Entry, Transcript
from agentfleet.agents.usage import Usage, format_usage, over_budget
from agentfleet.cli import views
from agentfleet.cli.app import (
    EnginesOpt,
    ExitCode,
    JobArg,
    JsonOpt,
    RunNotFound,
    app,
    console,
    engine_config,
    err,
    fail,
    handled,
    open_fleet,
    print_json,
)
from agentfleet.fleet import Fleet
from agentfleet.models import JobStatus, Run
from agentfleet.serialize import event_dict, job_dict, run_dict, worker_dict, worker_view

# -- reading --------------------------------------------------------------------------


@app.command("ls")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            "-s",
            metavar="STATUS",
            help="Only jobs in this status: "
            f"{', '.join(s.value for s in JobStatus)}. e.g. --status running",
            show_default=False,
        ),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="QUEUE",
            help="Only this queue. e.g. --queue builds",
            show_default=False,
        ),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            "-e",
            metavar="ENGINE",
            help="Only this engine. e.g. --engine claude",
            show_default=False,
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            "-l",
            metavar="LABEL",
            help="Only jobs with this label. e.g. --label nightly",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", metavar="N", help="At most this many, newest first. e.g. -n 20", min=1
        ),
    ] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first.

    Example: agentfleet ls --status running --label nightly
    """
    with handled(), open_fleet(ctx) as fleet:
        jobs = fleet.list_jobs(status=status, queue=queue, engine=engine, label=label, limit=limit)
        now = fleet.now()
    if as_json:
        print_json([job_dict(job) for job in jobs])
    elif not jobs:
        console.print("no jobs")
    else:
        console.print(views.jobs_table(jobs, now, fit=console.is_terminal))


@app.command()
def show(ctx: typer.Context, job_id: JobArg, as_json: JsonOpt = False) -> None:
    """Show one job: its fields, its runs (attempts) and its events.

    Example: agentfleet show 42
    """
    with handled(), open_fleet(ctx) as fleet:
        job = fleet.get_job(job_id)
        runs = fleet.runs(job_id)
        events = fleet.events(job_id)
        now = fleet.now()
    if as_json:
        print_json(
            {
                "job": job_dict(job),
                "runs": [run_dict(run, n) for n, run in enumerate(runs, start=1)],
                "usage": Usage.of_runs(runs).as_dict(),
                "events": [event_dict(event) for event in events],
            }
        )
        return
    console.print(views.job_fields(job, now))
    console.print()
    console.print(views.runs_table(runs, now) if runs else "runs: none yet")
    spent = Usage.of_runs(runs)
    if spent.runs:
        budget = job.payload.get("budget_usd")
        of = over_budget(spent, float(budget) if isinstance(budget, int | float) else None)
        console.print(f"spent: {format_usage(spent)}{of}", highlight=False)
    console.print()
    console.print(views.events_table(events))


def _pick_run(runs: list[Run], number: int | None, job_id: int) -> tuple[int, Run] | None:
    if number is None:
        return (len(runs), runs[-1]) if runs else None
    if not 1 <= number <= len(runs):
        raise RunNotFound(f"job {job_id} has no run {number} (it has {len(runs)})")
    return number, runs[number - 1]


class _Tail:
    """Writes only what a growing (and possibly tail-truncated) text added since last time."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.shown = ""

    def update(self, text: str | None) -> None:
        text = text or ""
        if text.startswith(self.shown):
            new = text[len(self.shown) :]
        else:  # the kept tail moved on: print from where the old tail ends
            anchor = self.shown[-2048:]
            at = text.find(anchor) if anchor else -1
            new = text[at + len(anchor) :] if at >= 0 else text
        if new:
            self.stream.write(new)
            self.stream.flush()
        self.shown = text


class _Raw:
    """A run's stdout exactly as it was recorded."""

    def write(self, text: str) -> None:
        sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def end(self) -> None:
        """The run ended: nothing was held back."""


class _Transcribed(_Raw):
    """A run's stdout as its transcript: each line once it is complete (a line still being
    printed waits for its newline), the last one, newline or not, when the run ends."""

    def __init__(self) -> None:
        self.transcript = Transcript()
        self.partial = ""

    def write(self, text: str) -> None:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self._show(self.transcript.feed(line))

    def end(self) -> None:
        partial, self.partial = self.partial, ""
        if partial:
            self._show(self.transcript.feed(partial), newline=False)
        self._show(self.transcript.finish())
        self.flush()

    def _show(self, entries: list[Entry], *, newline: bool = True) -> None:
        for entry in entries:
            if entry.kind == "text":  # a line that is no agent's event: as it was printed
                sys.stdout.write(entry.text + ("\n" if newline else ""))
            else:
                console.print(views.transcript_entry(entry), soft_wrap=True)


@app.command()
def logs(
    ctx: typer.Context,
    job_id: JobArg,
    run: Annotated[
        int | None,
        typer.Option(
            "--run",
            "-r",
            metavar="N",
            help="Which run (1 = the first, as numbered by `show`); "
            "default: the latest. e.g. --run 2",
            min=1,
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep printing output as it arrives until "
            "the job ends (the latest run, across retries). e.g. -f",
        ),
    ] = False,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="Print stdout exactly as it was recorded (an agent's raw event stream) "
            "instead of its transcript. e.g. --raw",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print a run's output: its stdout to stdout and its stderr to stderr.

    An agent's event stream (Claude Code, Codex, Gemini CLI, opencode) reads as a
    transcript: its messages, each tool call with its command, the tool's result folded to
    its first lines, errors, and the cost and tokens so far. Any other line (a shell job's
    output, aider's text) is printed as it is; --raw prints the stream as recorded.

    Output is recorded while the job runs (about every second), so --follow shows progress.

    Example: agentfleet logs 42 --follow
    """
    if as_json and follow:
        fail("--json and --follow cannot be combined", ExitCode.BAD_INPUT)
    with handled(), open_fleet(ctx) as fleet:
        runs = fleet.runs(job_id)
        if not runs:
            fleet.get_job(job_id)  # raises JobNotFound for an unknown job
        picked = _pick_run(runs, run, job_id)
        if as_json:
            shown = None if picked is None else run_dict(picked[1], picked[0], output=True)
            print_json({"job": job_id, "run": shown})
            return
        if not follow:
            if picked is None:
                err.print(f"job {job_id} has not run yet", highlight=False)
                return
            stdout = _Raw() if raw else _Transcribed()
            stdout.write(picked[1].stdout or "")
            stdout.end()
            stdout.flush()
            sys.stderr.write(picked[1].stderr or "")
            return
        try:
            _follow(fleet, job_id, run, raw)
        except KeyboardInterrupt:
            return


def _follow(fleet: Fleet, job_id: int, number: int | None, raw: bool) -> None:
    current: int | None = None
    shown = _Raw()  # each run gets its own, from the first on
    out, errs = _Tail(shown), _Tail(sys.stderr)
    while True:
        runs = fleet.runs(job_id)
        picked = _pick_run(runs, number, job_id) if runs or number else None
        if picked is not None:
            index, chosen = picked
            if index != current:
                shown.end()
                if current is not None:
                    err.print(
                        f"--- run {index} (attempt {chosen.attempt}, "
                        f"worker {escape(chosen.worker)}) ---",
                        highlight=False,
                    )
                current = index
                shown = _Raw() if raw else _Transcribed()
                out, errs = _Tail(shown), _Tail(sys.stderr)
            out.update(chosen.stdout)
            errs.update(chosen.stderr)
            if chosen.status.value != "running":
                shown.end()  # its last line, even without a newline
                if number is not None:
                    return
                job = fleet.get_job(job_id)
                if job.is_terminal and len(fleet.runs(job_id)) == index:
                    return
        elif fleet.get_job(job_id).is_terminal:
            return
        time.sleep(0.5)


@app.command()
def workers(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List workers that have run against this database, and what each is running.

    Example: agentfleet workers
    """
    with handled(), open_fleet(ctx) as fleet:
        found = fleet.list_workers()
        now = fleet.now()
    if as_json:
        print_json([worker_dict(worker_view(w, now)) for w in found])
    elif not found:
        console.print("no workers yet")
    else:
        console.print(views.workers_table(found, now))


@app.command("engines")
def show_engines(engines: EnginesOpt = None, as_json: JsonOpt = False) -> None:
    """Show the exact command each agent engine runs, without and with yolo.

    Example: agentfleet engines --engines engines.toml
    """
    from agentfleet.engines import engine_table

    with handled():
        config = engine_config(engines)
    if as_json:
        print_json(
            [
                {"engine": r.name, "argv": r.argv, "argv_yolo": r.argv_yolo, "env_yolo": r.env_yolo}
                for r in engine_table(config)
            ]
        )
    else:
        console.print(views.engines_table(config))
