"""`agentfleet diff`, `merge` and `pr`: a worktree job's change, read, merged or proposed;
`agentfleet workspaces`: the worktrees on this host."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.syntax import Syntax

from agentfleet.cli.app import (
    ExitCode,
    JobArg,
    JsonOpt,
    app,
    console,
    fail,
    handled,
    open_fleet,
    print_json,
)
from agentfleet.cli.readable import FleetTyper
from agentfleet.workspaces import single
from agentfleet.workspaces.git import GitError
from agentfleet.workspaces.housekeeping import Leftover


@app.command()
def diff(
    ctx: typer.Context,
    job_id: JobArg,
    stat: Annotated[
        bool, typer.Option("--stat", help="Only the files and their line counts. e.g. --stat")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print a worktree job's change against the commit it branched from.

    The patch goes to stdout as git prints it (coloured on a terminal), so it pipes into
    `git apply` or a pager. Example: agentfleet diff 42 | less -R
    """
    with handled(), open_fleet(ctx) as fleet:
        change = fleet.job_change(job_id)
    if as_json:
        print_json(
            {
                "job": change.job_id,
                "branch": change.branch,
                "base_commit": change.base_commit,
                "head_commit": change.head_commit,
                "insertions": change.insertions,
                "deletions": change.deletions,
                "truncated": change.truncated,
                "files": [
                    {"path": f.path, "insertions": f.insertions, "deletions": f.deletions}
                    | ({} if stat else {"patch": f.patch})
                    for f in change.files
                ],
            }
        )
        return
    if stat:
        for f in change.files:
            console.print(f"{f.path}  +{f.insertions} -{f.deletions}", highlight=False)
        console.print(
            f"{len(change.files)} files, +{change.insertions} -{change.deletions} "
            f"({change.branch}: {change.base_commit[:10]}..{change.head_commit[:10]})",
            highlight=False,
        )
        return
    if not change.files:
        console.print(f"job {job_id} changed nothing ({change.branch})")
        return
    if console.is_terminal:
        console.print(Syntax(change.patch, "diff", theme="ansi_dark", word_wrap=False))
    else:
        typer.echo(change.patch, nl=False)
    if change.truncated:
        console.print("(the diff was cut short; see the branch for all of it)", style="dim")


@app.command("merge")
def merge_job(
    ctx: typer.Context,
    job_id: JobArg,
    into: Annotated[
        str,
        typer.Option("--into", metavar="BRANCH", help="The branch to merge into. e.g. --into main"),
    ],
    test: Annotated[
        str | None,
        typer.Option(
            "--test",
            metavar="COMMAND",
            help="A command that must pass after the merge. e.g. --test 'make test'",
        ),
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            metavar="squash|merge|rebase",
            help="squash, merge or rebase (default squash). e.g. --strategy merge",
        ),
    ] = "squash",
    as_json: JsonOpt = False,
) -> None:
    """Merge a finished worktree job's branch into a branch, behind a test gate.

    The merge and the test run in a scratch worktree; BRANCH then moves by compare-and-swap
    (a checked-out BRANCH is fast-forwarded only when its checkout is clean). A conflict or
    a failing test leaves BRANCH where it was and exits 1, naming the files or the output.
    Example: agentfleet merge 42 --into main --test 'make test'
    """
    with handled(), open_fleet(ctx) as fleet:
        job = fleet.get_job(job_id)
        try:
            landed = single.merge(job, into, test=test, strategy=strategy)
        except single.Stop as stop:
            if as_json:
                print_json({"job": job_id, "merged": False, **stop.report, "reason": stop.message})
            tail = stop.report.get("output")
            fail(stop.message + (f"\n{tail}" if tail else ""), ExitCode.REFUSED)
        except GitError as exc:
            fail(str(exc), ExitCode.REFUSED)
    if as_json:
        print_json({**landed, "merged": True})
        return
    if landed["already"]:
        console.print(f"job {job_id} is already in {into} ({landed['landed'][:10]})")
        return
    console.print(
        f"merged job {job_id} into {into}: {len(landed['files_changed'])} files, "
        f"+{landed['insertions']} -{landed['deletions']} (now {landed['landed'][:10]})",
        highlight=False,
    )


@app.command("pr")
def pull_request(
    ctx: typer.Context,
    job_id: JobArg,
    base: Annotated[
        str,
        typer.Option(
            "--base", metavar="BRANCH", help="The branch the pull request targets. e.g. --base main"
        ),
    ] = "main",
    title: Annotated[
        str | None,
        typer.Option(
            "--title",
            metavar="TEXT",
            help="Default: the job's first line. e.g. --title 'Fix the cart'",
        ),
    ] = None,
    body: Annotated[
        str | None,
        typer.Option("--body", metavar="TEXT", help="The description. e.g. --body 'Closes #12'"),
    ] = None,
    remote: Annotated[
        str,
        typer.Option(
            "--remote", metavar="REMOTE", help="Where to push the branch. e.g. --remote origin"
        ),
    ] = "origin",
    as_json: JsonOpt = False,
) -> None:
    """Push a finished worktree job's branch and open its pull request with `gh`.

    Needs `gh` logged in (gh auth login) and a remote GitHub knows. Prints the URL.
    Example: agentfleet pr 42 --base main --title 'Fix the checkout'
    """
    with handled(), open_fleet(ctx) as fleet:
        job = fleet.get_job(job_id)
        try:
            url = single.pull_request(job, title=title, body=body, base=base, remote=remote)
        except (GitError, RuntimeError) as exc:
            fail(str(exc), ExitCode.REFUSED)
        except FileNotFoundError:
            fail("gh is not installed: see https://cli.github.com", ExitCode.REFUSED)
    if as_json:
        print_json({"job": job_id, "pr_url": url})
        return
    typer.echo(url)


workspaces_app = FleetTyper(
    help="The worktrees of this repository on this host: list them, clean finished ones.\n\n"
    "Example: agentfleet workspaces ls && agentfleet workspaces clean",
    no_args_is_help=True,
)
app.add_typer(workspaces_app, name="workspaces")

RepoOpt = Annotated[
    Path,
    typer.Option(
        "--repo",
        metavar="DIR",
        help="A folder of the repository (default: here). e.g. --repo ~/shop",
    ),
]


@workspaces_app.command("ls")
def list_workspaces(
    ctx: typer.Context, repo: RepoOpt = Path("."), as_json: JsonOpt = False
) -> None:
    """List this host's worktrees of the repository, with their jobs' status.

    Example: agentfleet workspaces ls --repo ~/shop
    """
    with handled(), open_fleet(ctx) as fleet:
        found = fleet.workspaces(repo)
    if as_json:
        print_json([_leftover(item) for item in found])
        return
    if not found:
        console.print("no agentfleet worktrees here")
    for item in found:
        note = "running" if item.live else item.status
        if item.kept_for_inspection:
            note += " (kept to inspect; `clean --failed` removes it)"
        console.print(f"job {item.job_id} attempt epoch {item.epoch}: {note}  {item.path}",
                      highlight=False, soft_wrap=True)  # fmt: skip


@workspaces_app.command("clean")
def clean_workspaces(
    ctx: typer.Context,
    repo: RepoOpt = Path("."),
    failed: Annotated[
        bool, typer.Option("--failed", help="Remove failed jobs' worktrees too. e.g. --failed")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove this host's worktrees of attempts that are over (never a running one).

    Example: agentfleet workspaces clean --failed
    """
    with handled(), open_fleet(ctx) as fleet:
        removed = fleet.clean_workspaces(repo, failed_too=failed)
    if as_json:
        print_json([_leftover(item) for item in removed])
        return
    console.print(f"removed {len(removed)} worktree(s)")


def _leftover(item: Leftover) -> dict[str, object]:
    return {
        "job": item.job_id,
        "epoch": item.epoch,
        "status": item.status,
        "running": item.live,
        "path": str(item.path),
    }
