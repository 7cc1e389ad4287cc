"""Workspace tests run real workers on SQLite (the git side is the same for every store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StoreEnv, make_env


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreEnv]:
    env = make_env("sqlite", tmp_path / "db", request)
    try:
        yield env
    finally:
        env.close()
