"""Fixtures for the HTTP API and dashboard: an app over a fresh store, and clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install '.[web]'")

from fastapi import FastAPI
from fastapi.testclient import TestClient

from agentfleet import Fleet
from agentfleet.web.app import create_app
from tests.conftest import StoreEnv, make_env
from tests.web.browser import chromium  # noqa: F401  (the browser fixture of every browser test)

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Web:
    env: StoreEnv
    app: FastAPI
    client: TestClient  # sends the token
    anon: TestClient  # sends nothing

    @property
    def fleet(self) -> Fleet:
        return self.env.fleet


def make_web(env: StoreEnv, *, public_read: bool = False, **options: object) -> Web:
    app = create_app(env.fleet, token=TOKEN, public_read=public_read, **options)
    client = TestClient(app, headers=AUTH, raise_server_exceptions=False)
    anon = TestClient(app, raise_server_exceptions=False)
    return Web(env, app, client, anon)


@pytest.fixture
def mem_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreEnv]:
    env = make_env("memory", tmp_path, request)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def web(mem_env: StoreEnv) -> Web:
    return make_web(mem_env)


@pytest.fixture
def public_web(mem_env: StoreEnv) -> Web:
    return make_web(mem_env, public_read=True)
