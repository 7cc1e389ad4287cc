"""API tokens on every store: made, listed, looked up and revoked, only their hash kept."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import pytest

from agentfleet import Fleet
from agentfleet.errors import InvalidArgument
from agentfleet.store.tokens import ROLES, Tokens, looks_like_token, split_token
from tests.conftest import StoreEnv


def rows_text(fleet: Fleet) -> str:
    with fleet.store.dialect.session() as tx:
        return repr(tx.q("SELECT * FROM tokens"))


def test_a_token_is_stored_hashed_and_found_by_its_text(env: StoreEnv) -> None:
    fleet = env.fleet
    info, text = fleet.create_token("box-7", "worker")
    assert text.startswith("aft_")
    assert (info.name, info.role, info.live) == ("box-7", "worker", True)
    parts = split_token(text)
    assert parts is not None and parts[0] == info.id
    secret = parts[1]
    assert len(secret) >= 43  # 32 random bytes
    stored = rows_text(fleet)
    assert secret not in stored and text not in stored
    assert hashlib.sha256(secret.encode()).hexdigest() in stored
    if env.backend == "sqlite":
        fleet.close()
        folder = Path(env.url.removeprefix("sqlite:///")).parent
        for path in folder.glob("fleet.db*"):
            assert secret.encode() not in path.read_bytes(), path

    reopened = env.open() if env.backend == "sqlite" else fleet
    found = Tokens(reopened.store.dialect).lookup(text)
    assert found is not None and (found.id, found.role) == (info.id, "worker")
    assert [(t.name, t.role) for t in reopened.tokens()] == [("box-7", "worker")]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_can_be_made(fleet: Fleet, role: str) -> None:
    info, text = fleet.create_token(f"t-{role}", role)
    looked_up = Tokens(fleet.store.dialect).lookup(text)
    assert looked_up is not None and looked_up.role == role == info.role


def test_wrong_texts_find_nothing(fleet: Fleet) -> None:
    info, text = fleet.create_token("ci", "read")
    tokens = Tokens(fleet.store.dialect)
    for wrong in (
        text + "x",
        text[:-1],
        f"aft_{info.id}_",
        f"aft_{'0' * 12}_{text.rsplit('_', 1)[1]}",
        text.replace("aft_", "aft"),
        "",
        "test-token-0123456789abcdef",
    ):
        assert tokens.lookup(wrong) is None, wrong


def test_revoke_by_name_or_id_and_reuse_the_name(fleet: Fleet) -> None:
    tokens = Tokens(fleet.store.dialect)
    first, first_text = fleet.create_token("box-7", "worker")
    with pytest.raises(InvalidArgument, match="'box-7' is already the name of a live token"):
        fleet.create_token("box-7", "read")
    assert fleet.revoke_token("box-7") is True
    assert tokens.lookup(first_text) is None and tokens.live(first.id) is None
    assert fleet.revoke_token("box-7") is False  # nothing live of that name any more
    second, second_text = fleet.create_token("box-7", "operate")  # the name is free again
    assert second.id != first.id
    assert fleet.revoke_token(second.id) is True
    assert tokens.lookup(second_text) is None
    listed = fleet.tokens()
    assert [(t.name, t.live) for t in listed] == [("box-7", False), ("box-7", False)]
    assert all(t.revoked_at is not None for t in listed)
    assert fleet.revoke_token("nobody") is False


@pytest.mark.parametrize("role", ["root", "", "Admin", None])
def test_a_bad_role_or_name_is_refused(fleet: Fleet, role: object) -> None:
    with pytest.raises(InvalidArgument, match="worker, read, operate, admin"):
        fleet.create_token("x", role)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="the token's name must not be empty"):
        fleet.create_token("", "read")
    assert fleet.tokens() == []


def test_last_used_is_stamped_at_most_once_a_minute(env: StoreEnv) -> None:
    tokens = Tokens(env.fleet.store.dialect)
    info, _ = env.fleet.create_token("box-7", "worker")
    assert info.last_used_at is None
    tokens.touch(info.id)
    [first] = env.fleet.tokens()
    assert first.last_used_at is not None
    tokens.touch(info.id)
    [again] = env.fleet.tokens()
    assert again.last_used_at == first.last_used_at


def test_a_live_token_is_found_by_its_id_until_it_is_revoked(fleet: Fleet) -> None:
    tokens = Tokens(fleet.store.dialect)
    info, _ = fleet.create_token("box-7", "worker")
    assert isinstance(info.created_at, datetime)
    assert tokens.live(info.id) == info  # a session's check on each request
    assert tokens.live("0" * 12) is None
    fleet.revoke_token("box-7")
    assert tokens.live(info.id) is None


SECRET = "c2VjcmV0LW9mLTMyLWJ5dGVz"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (f"aft_0123456789ab_{SECRET}", ("0123456789ab", SECRET)),
        (f"aft_0123456789ab_{SECRET}_more", ("0123456789ab", f"{SECRET}_more")),
        ("aft_0123456789ab_", None),  # no secret
        ("aft_0123456789ab", None),  # no separator
        (f"aft_0123456789a_{SECRET}", None),  # an id one character short
        (f"aft_0123456789abc_{SECRET}", None),  # one too long
        (f"aft_0123456789aX_{SECRET}", None),  # not hex
        (f"aft_0123456789AB_{SECRET}", None),  # hex, but not as tokens are made
        (f"AFT_0123456789ab_{SECRET}", None),
        (f"0123456789ab_{SECRET}", None),
    ],
)
def test_the_shape_of_a_token(text: str, parts: tuple[str, str] | None) -> None:
    assert split_token(text) == parts
    assert looks_like_token(text) is (parts is not None)
