"""Errors never print a password, whatever form the database URL takes."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Invoke


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://fleet:hunter2@127.0.0.1:1/fleet",
        "postgresql://fleet@127.0.0.1:1/fleet?password=hunter2",
        "postgresql://127.0.0.1:1/fleet?sslmode=disable&password=hunter2",
    ],
)
def test_a_failed_connection_does_not_echo_the_password(run: Invoke, url: str) -> None:
    refused = run("ls", db_url=url)
    assert refused.code == 4, refused.err
    assert "hunter2" not in refused.err + refused.out
    assert "[redacted]" in refused.err or "127.0.0.1" in refused.err


def test_a_libpq_connection_string_is_redacted_too() -> None:
    from agentfleet.logs import redact_url

    dsn = "host=db.example user=fleet password='hunter 2' dbname=fleet"
    assert "hunter" not in redact_url(dsn) and "dbname=fleet" in redact_url(dsn)
