"""Typer, made to read well: the app and command classes every agentfleet command uses.

- `-h` works as `--help` does, on the app and on every command;
- help text reads as prose: the line breaks of a docstring are not kept, its paragraphs are;
- placeholders are words (`N`, `PATH`, `DURATION`), never Python types (`<int range>`,
  `<bool>`, `{paths}`), and no Python-looking range (`x>=1`) is appended;
- help and usage errors sent to a file or a pipe are wide enough that nothing is cut;
- an option of agentfleet itself given after the command (`agentfleet ls --db X`), or a
  negative number that reads as an option, is an error that says what to type instead.

Typer has no hook for the placeholders of its parameters: each parameter it made is
given a subclass of its own class that only changes how it is shown (`_readable`). Typer
is pinned; tests/cli/test_reads_well.py holds it to all of the above.
"""

from __future__ import annotations

import inspect
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer
from rich.markup import escape
from typer._click import Context, HelpFormatter
from typer._click.exceptions import NoSuchOption
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from agentfleet.cli.console import Console, help_width

__all__ = [
    "HELP_OPTION_NAMES",
    "FleetCommand",
    "FleetGroup",
    "FleetTyper",
    "prose",
]

HELP_OPTION_NAMES = ["--help", "-h"]


def prose(text: str | None) -> str | None:
    """A docstring as paragraphs of prose: the lines of each paragraph joined. A paragraph
    starting with ``\\b`` (Typer's mark for a preformatted one) is kept as it is."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
        for p in paragraphs
    )


class _ReadableOption(TyperOption):
    """An option shown by its metavar alone: no type, no range."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return self.metavar or None

    def _get_number_range_help_str(self) -> str | None:
        return None


class _ReadableArgument(TyperArgument):
    """An argument shown by its metavar: ``JOB``, ``[COMMAND]...``; no type, no range."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        shown = name if self.required else f"[{name}]"
        return shown + ("..." if self.nargs != 1 and not name.endswith("...") else "")

    def _get_number_range_help_str(self) -> str | None:
        return None


def _readable(command: TyperCommand | TyperGroup) -> None:
    """Make a command's help prose and its parameters' placeholders words."""
    command.help = prose(command.help)
    command.epilog = prose(command.epilog)
    for param in command.params:
        _readable_param(param)


def _readable_param(param: Any) -> None:
    if isinstance(param, TyperOption):
        param.__class__ = _ReadableOption
        if getattr(param, "is_flag", False):
            param.metavar = ""  # a flag takes no value: nothing to show
        elif param.metavar is None:
            param.metavar = (param.name or "value").upper()
    elif isinstance(param, TyperArgument):
        param.__class__ = _ReadableArgument
        if param.metavar is None:
            param.metavar = (param.name or "value").upper()


def _help_option(option: Any) -> Any:
    if option is not None:
        _readable_param(option)
    return option


def _root_options(ctx: Context) -> dict[str, TyperOption]:
    root = ctx.find_root()
    found: dict[str, TyperOption] = {}
    for param in root.command.params:
        if isinstance(param, TyperOption):
            for name in (*param.opts, *param.secondary_opts):
                found[name] = param
    return found


def _misplaced(ctx: Context, args: Sequence[str], exc: NoSuchOption) -> str | None:
    """`agentfleet ls --db X`: where --db goes (agentfleet --db X ls); None for an option
    that is no option of agentfleet itself."""
    option = _root_options(ctx).get(exc.option_name)
    if ctx.parent is None or option is None:
        return None
    given: list[str] = [exc.option_name]
    rest = list(args)
    for at, arg in enumerate(rest):
        if arg == exc.option_name:
            takes_value = not getattr(option, "is_flag", False)
            given = rest[at : at + 2] if takes_value else [arg]
            if takes_value and len(given) == 1:
                given.append(option.metavar or "VALUE")
            del rest[at : at + len(given)]
            break
        if arg.startswith(exc.option_name + "="):
            given = [arg]
            del rest[at]
            break
    fixed = shlex.join(["agentfleet", *given, *_command(ctx), *rest])
    return (
        f"{exc.option_name} is an option of agentfleet itself: put it before the command: {fixed}"
    )


def _negative(ctx: Context, args: Sequence[str], exc: NoSuchOption) -> str | None:
    """`agentfleet limits set api -1`: a negative number reads as an option; after --
    (and the options) it is a value."""
    if not _NUMBER.fullmatch(exc.option_name) or exc.option_name not in args:
        return None
    rest = list(args)
    rest.remove(exc.option_name)
    fixed = shlex.join(["agentfleet", *_command(ctx), *rest, "--", exc.option_name])
    return (
        f"{exc.option_name} reads as an option: put -- before a negative number, after the "
        f"options: {fixed}"
    )


_NUMBER = re.compile(r"-\d+(\.\d*)?")


def _command(ctx: Context) -> list[str]:
    """The command's words after the program's name: ``plan show``."""
    return ctx.command_path.split()[1:]


def _parse(
    parse: Callable[[Context, list[str]], list[str]], ctx: Context, args: list[str]
) -> list[str]:
    given = list(args)
    try:
        return parse(ctx, args)
    except NoSuchOption as exc:
        hint = _misplaced(ctx, given, exc) or _negative(ctx, given, exc)
        if hint is None:
            raise
    Console(stderr=True).print(f"[red]error:[/] {escape(hint)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)  # bad input, as for any unknown option


class FleetCommand(TyperCommand):
    """A command whose help reads well (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _readable(self)

    def get_help_option(self, ctx: Context) -> Any:
        return _help_option(super().get_help_option(ctx))

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        return _parse(super().parse_args, ctx, args)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        with help_width(sys.stdout):
            super().format_help(ctx, formatter)


class FleetGroup(TyperGroup):
    """A group of commands whose help reads well, listed in `order` (then the rest, as
    they were added)."""

    order: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _readable(self)

    def list_commands(self, ctx: Context) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: at for at, name in enumerate(self.order)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))

    def get_help_option(self, ctx: Context) -> Any:
        return _help_option(super().get_help_option(ctx))

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        return _parse(super().parse_args, ctx, args)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        with help_width(sys.stdout):
            super().format_help(ctx, formatter)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        with help_width(sys.stderr):  # usage errors
            return super().main(*args, **kwargs)


class FleetTyper(typer.Typer):
    """A Typer app of FleetGroup and FleetCommand, with `-h` for `--help`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", FleetGroup)
        kwargs.setdefault("context_settings", {"help_option_names": HELP_OPTION_NAMES})
        super().__init__(**kwargs)

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[Any], Any]:
        return super().command(name, cls=cls or FleetCommand, **kwargs)
