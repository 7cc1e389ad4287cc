"""Where the command line's output goes, and how wide it is.

On a terminal, output fits the terminal. Sent to a file or another program it is not
hard-wrapped: a hint stays one line, whole, to copy or to grep. COLUMNS, when set, is the
width either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import rich.console
from rich.console import ConsoleDimensions
from typer import rich_utils

__all__ = ["HELP_WIDTH", "UNWRAPPED_WIDTH", "Console", "help_width", "width_is_set"]

# Text to a file or a pipe is laid out this wide: so wide that no line is ever wrapped.
# Nothing printed there may fill the width (a rule, an expanding table): it would be
# padded out to it.
UNWRAPPED_WIDTH = 10_000

# Help and usage errors are drawn in boxes that fill the width: to a file or a pipe they
# are this wide, wide enough that no flag or example is cut.
HELP_WIDTH = 120


def width_is_set(*names: str) -> bool:
    """Whether the user said how wide output is: COLUMNS (Rich's), or one of `names`."""
    return any(os.environ.get(name, "").isdigit() for name in ("COLUMNS", *names))


class Console(rich.console.Console):
    """A rich console that fits a terminal, and does not wrap what goes anywhere else."""

    def __init__(self, *args: Any, width: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, width=width, **kwargs)
        # Rich reads COLUMNS here, once; the console is made at import, so COLUMNS is read
        # when printing instead (`size`): the width is the one of the command being run.
        self._width = width

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        columns = os.environ.get("COLUMNS", "")
        if self._width is None and columns.isdigit():
            return ConsoleDimensions(int(columns), dimensions.height)
        if self.is_terminal or self._width is not None:
            return dimensions
        return ConsoleDimensions(UNWRAPPED_WIDTH, dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


@contextmanager
def help_width(stream: TextIO) -> Iterator[None]:
    """Typer's help and errors to `stream`: as wide as the terminal, or HELP_WIDTH when it
    is none (Typer draws them at 80 columns then)."""
    saved = rich_utils.MAX_WIDTH
    if not width_is_set("TERMINAL_WIDTH"):  # Typer's own
        rich_utils.MAX_WIDTH = None if _isatty(stream) else HELP_WIDTH
    try:
        yield
    finally:
        rich_utils.MAX_WIDTH = saved


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
