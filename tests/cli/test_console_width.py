"""The command line's width is the one of the command being run: COLUMNS as it is when
printing, not as it was when the console was made (at import, for the whole process)."""

from __future__ import annotations

import io

import pytest

from agentfleet.cli.console import Console

LONG = "word " * 60  # 300 characters


def _printed(console: Console) -> str:
    console.print(LONG.strip())
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_columns_set_when_the_console_was_made_do_not_stay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    console = Console(file=io.StringIO())
    monkeypatch.delenv("COLUMNS")
    assert _printed(console).count("\n") == 1  # to a file: one line, not wrapped at 40


def test_columns_set_after_the_console_was_made_are_the_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = Console(file=io.StringIO())
    monkeypatch.setenv("COLUMNS", "40")
    lines = _printed(console).splitlines()
    assert len(lines) > 1 and max(len(line) for line in lines) <= 40


def test_a_width_given_in_code_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    lines = _printed(Console(file=io.StringIO(), width=50)).splitlines()
    assert max(len(line) for line in lines) <= 50
