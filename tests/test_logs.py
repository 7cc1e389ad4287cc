"""Structured JSON logs: event names, ids, and nothing secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from agentfleet import logs

Capture = tuple[logging.Logger, io.StringIO]


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger("agentfleet.test-logs")
    handler = logs.configure(logging.DEBUG, stream=stream, logger=logger.name)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_ids_first(capture: Capture) -> None:
    logger, stream = capture
    logs.event(logger, "job.claim_completed", job=12, run=40, epoch=3, worker="w1", queue="q")
    logs.event(logger, "lease.renew_rejected", level=logging.WARNING, job=12, epoch=2)
    first, second = lines(stream)
    assert list(first)[:8] == ["ts", "level", "event", "logger", "job", "run", "epoch", "worker"]
    assert first["event"] == "job.claim_completed" and first["queue"] == "q"
    assert str(first["ts"]).endswith("Z")
    assert second["level"] == "warning" and second["event"] == "lease.renew_rejected"
    assert "run" not in second  # None and absent fields are left out


@pytest.mark.parametrize(
    "name", ["claim", "job.claim", "Job.claim_done", "job.claim-done", "job._x"]
)
def test_event_names_must_be_domain_action_state(name: str) -> None:
    with pytest.raises(ValueError, match=r"domain\.action_state"):
        logs.event("agentfleet", name)


def test_secrets_never_reach_the_output(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logs.register_secret("s3cr3t-token-value")
    logs.event(
        logger,
        "store.open_completed",
        database="postgresql://fleet:hunter2@db:5432/fleet",
        headers={"Authorization": "Bearer abc.def", "Accept": "text/html"},
        token="t0k3n",
        password="pw",
        url="http://h/?token=abc&x=1",
        note="sent Bearer xyz123 with s3cr3t-token-value",
        name="clashes with LogRecord.name",
    )
    logger.info("raw message with postgresql://u:pw2@h/db")
    out = stream.getvalue()
    for secret in ("hunter2", "abc.def", "t0k3n", '"pw"', "token=abc", "xyz123", "s3cr3t", "pw2"):
        assert secret not in out, secret
    first, second = lines(stream)
    assert first["database"] == "postgresql://fleet:[redacted]@db:5432/fleet"
    assert first["headers"] == {"Authorization": "[redacted]", "Accept": "text/html"}
    assert first["url"] == "http://h/?token=[redacted]&x=1"
    assert first["name_"] == "clashes with LogRecord.name"
    assert second["event"] == "log.message_recorded"


def test_exceptions_are_described(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    try:
        raise RuntimeError("bad thing at postgresql://u:secretpw@h/db")
    except RuntimeError:
        logs.event(logger, "worker.loop_failed", level=logging.ERROR, exc_info=True, worker="w1")
    (line,) = lines(stream)
    assert line["error_type"] == "RuntimeError"
    assert "secretpw" not in json.dumps(line)
    assert "Traceback" in str(line["traceback"])


def test_configure_is_idempotent() -> None:
    logger = logging.getLogger("agentfleet.test-idem")
    stream = io.StringIO()
    logs.configure(stream=stream, logger=logger.name)
    logs.configure(stream=stream, logger=logger.name)
    assert len(logger.handlers) == 1
    logger.handlers.clear()


def test_a_made_api_token_is_redacted_wherever_it_appears() -> None:
    text = "aft_0123456789ab_Zm9vYmFyLWJhei1xdXV4_LTEyMzQ1Njc4OTAxMjM0NTY3"
    said = logs.redact(f"sent {text} to the server")
    assert text not in said and said == f"sent {logs.REDACTED} to the server"


def test_prose_about_tokens_is_not_taken_for_a_credential() -> None:
    """A refusal's words stay readable; the credentials beside them do not."""
    redact = logs.redact
    assert redact("the bearer token is not valid (wrong, unknown or revoked)") == (
        "the bearer token is not valid (wrong, unknown or revoked)"
    )
    assert redact("a read token may read but change nothing") == (
        "a read token may read but change nothing"
    )
    assert redact("sent Bearer xyz123, then Token abcdefghijklmnopqrst") == (
        "sent Bearer [redacted], then Token [redacted]"
    )
