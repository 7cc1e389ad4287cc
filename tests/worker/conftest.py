"""Worker tests run on SQLite and, where cheap, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StoreEnv, make_env


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreEnv]:
    env = make_env(request.param, tmp_path, request)
    try:
        yield env
    finally:
        env.close()
