"""`touch: [globs]`: the files a worktree job may change, checked when the agent is done.

A glob names paths from the repository's top level: `*` and `?` stay inside one folder,
`**` spans folders (`src/**` is everything under `src/`, `**/*.md` every Markdown file),
`[abc]` is a set of characters, and a glob ending in `/` means everything under that folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from agentfleet.errors import InvalidArgument


def parse(value: object) -> tuple[str, ...]:
    """The globs a job gave, checked: a list of relative paths, each one non-empty."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise InvalidArgument("touch must be a list of globs, e.g. [src/**, tests/*.py]")
    globs = []
    for glob in value:
        if not isinstance(glob, str) or not glob.strip():
            raise InvalidArgument(f"touch: each glob must be non-empty text, not {glob!r}")
        if glob.startswith("/") or ".." in glob.split("/"):
            raise InvalidArgument(
                f"touch: {glob!r} must name paths inside the repository, from its top level"
            )
        globs.append(glob.strip())
    return tuple(globs)


@lru_cache(maxsize=256)
def _pattern(glob: str) -> re.Pattern[str]:
    if glob.endswith("/"):
        glob += "**"
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")  # no folder, or any number of them
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and "]" in glob[i + 2 :]:
            end = glob.index("]", i + 2)
            body = glob[i + 1 : end]
            negate = body.startswith("!")
            chars = body.removeprefix("!").replace("\\", "\\\\")
            if chars.startswith("^"):
                chars = "\\" + chars
            out.append("[" + ("^" if negate else "") + chars + "]")
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out))


def allowed(glob: str, path: str) -> bool:
    return _pattern(glob).fullmatch(path) is not None


def outside(globs: Sequence[str], files: Iterable[str]) -> list[str]:
    """The changed files no glob allows (none when there are no globs)."""
    if not globs:
        return []
    return [path for path in files if not any(allowed(glob, path) for glob in globs)]


def violation(globs: Sequence[str], files: Iterable[str]) -> str | None:
    """Why the change breaks its `touch` rule, naming the files; None when it keeps it."""
    stray = outside(globs, files)
    if not stray:
        return None
    shown = ", ".join(stray[:20]) + (f" and {len(stray) - 20} more" if len(stray) > 20 else "")
    return f"changed files outside touch [{', '.join(globs)}]: {shown}"
