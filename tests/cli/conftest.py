"""CLI tests: in-process through typer's runner, and through real subprocesses."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import agentfleet
from agentfleet.cli import app


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Invoke = Callable[..., Result]


@pytest.fixture
def db(tmp_path: Path) -> str:
    """An empty fleet's database, made as `agentfleet init` makes it (a read of a file that
    does not exist is refused as a mistyped --db)."""
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    agentfleet.open(url).close()
    return url


@pytest.fixture
def run(db: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run `agentfleet --db DB ARGS...` in-process and return (exit code, stdout, stderr)."""
    monkeypatch.delenv("AGENTFLEET_DB", raising=False)
    monkeypatch.delenv("AGENTFLEET_ENGINES", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str, db_url: str | None = db) -> Result:
        prefix = ["--db", db_url] if db_url else []
        done = CliRunner().invoke(app, [*prefix, *args], catch_exceptions=False)
        return Result(done.exit_code, done.stdout, done.stderr)

    return invoke
