"""`agentfleet diff`: a worktree job's change, as a person reads it or as a patch."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.syntax import Syntax

from agentfleet.cli.app import JobArg, JsonOpt, app, console, handled, open_fleet, print_json


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
