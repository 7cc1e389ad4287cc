"""Which survivors tests/mutation/equivalent.md explains, read from its backquoted ids.

A line names a mutant in full (`xǁSqlStoreǁfail__mutmut_22`, with or without its module), or
by number after one of the same function (`_25`), or a run of numbers (`_2` to `_9`); a `*`
stands for any part of a name. A survivor is explained when a named pattern ends its id.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from pathlib import Path

EQUIVALENT = Path(__file__).with_name("equivalent.md")
_TOKEN = re.compile(r"`([^`]+)`")
_FULL = re.compile(r"^(?P<function>[\w.ǁ*]+)__mutmut_(?P<number>\d+|\*)$")
_NUMBER = re.compile(r"^_(\d+)$")


def patterns(text: str) -> list[str]:
    """Every mutant-id pattern the text names, runs spelled out."""
    found: list[str] = []
    for line in text.splitlines():
        function: str | None = None
        last = 0
        cursor = 0
        for match in _TOKEN.finditer(line):
            token = match.group(1)
            between = line[cursor : match.start()]
            cursor = match.end()
            full = _FULL.match(token)
            if full:
                function = full.group("function")
                found.append(token)
                last = int(full.group("number")) if full.group("number").isdigit() else 0
                continue
            if token.endswith(".*") and "ǁ" not in token and "__mutmut_" not in token:
                found.append(token)  # a whole module, e.g. `store.sqlite_watch.*`
                continue
            number = _NUMBER.match(token)
            if number is None or function is None:
                continue
            end = int(number.group(1))
            start = last + 1 if between.strip() == "to" and last else end
            found.extend(f"{function}__mutmut_{n}" for n in range(start, end + 1))
            last = end
    return found


def unexplained(survivors: list[str], text: str | None = None) -> list[str]:
    """The survivors no pattern of equivalent.md ends."""
    named = patterns(EQUIVALENT.read_text() if text is None else text)
    return [s for s in survivors if not any(fnmatchcase(s, "*" + p) for p in named)]
