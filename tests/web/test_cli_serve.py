"""`agentfleet serve`: options reach the server; exposing it without a token is refused."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from agentfleet.cli import app
from agentfleet.engines import BUILTIN_ENGINES
from agentfleet.web import server


def test_options_and_environment_reach_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_serve(db_url: str | None, **kwargs: Any) -> None:
        seen.update(kwargs, db_url=db_url)

    monkeypatch.setattr(server, "serve", fake_serve)
    env = {"AGENTFLEET_TOKEN": "from-the-environment-1234", "AGENTFLEET_DB": "memory://"}
    result = CliRunner().invoke(app, ["serve", "--port", "8123", "--public-read"], env=env)
    assert result.exit_code == 0, result.output
    assert seen == {
        "db_url": "memory://",
        "host": "127.0.0.1",
        "port": 8123,
        "token": "from-the-environment-1234",
        "public_read": True,
        "tls_cert": None,
        "tls_key": None,
        "insecure_http": False,
        "engines": BUILTIN_ENGINES,
    }


def test_binding_beyond_loopback_without_a_token_is_refused(tmp_path: Any) -> None:
    result = CliRunner().invoke(
        app,
        ["serve", "--host", "0.0.0.0", "--db", f"sqlite:///{tmp_path / 'f.db'}"],
        env={"AGENTFLEET_TOKEN": ""},
    )
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without a token" in result.output
    assert not (tmp_path / "f.db").exists()  # refused before opening anything
