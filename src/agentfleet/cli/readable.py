"""Typer, made to read well: the app and command classes every agentfleet command uses.

- an option of agentfleet itself given after the command (`agentfleet ls --db X`), or a
  negative number that reads as an option, is an error that says what to type instead.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from typing import Any

import typer
from rich.markup import escape
from typer._click import Context
from typer._click.exceptions import NoSuchOption
from typer.core import TyperCommand, TyperGroup, TyperOption

from agentfleet.cli.console import Console

__all__ = ["FleetCommand", "FleetGroup", "FleetTyper"]


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
    """A command that says what to type instead of an option in the wrong place."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        return _parse(super().parse_args, ctx, args)


class FleetGroup(TyperGroup):
    """A group of commands that says what to type instead of an option in the wrong place."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        return _parse(super().parse_args, ctx, args)


class FleetTyper(typer.Typer):
    """A Typer app of FleetGroup and FleetCommand."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", FleetGroup)
        super().__init__(**kwargs)

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[Any], Any]:
        return super().command(name, cls=cls or FleetCommand, **kwargs)
