"""The asyncio API's tests on PostgreSQL: an emptied database, and the test's own
synchronous handle on it (it plays the workers and reads what was written)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agentfleet
from agentfleet import Fleet
from tests import pg


@pytest.fixture
def url(pg_url: str) -> str:
    pg.truncate_all(pg_url)
    return pg_url


@pytest.fixture
def sync_fleet(url: str) -> Iterator[Fleet]:
    with agentfleet.open(url) as fleet:
        yield fleet
