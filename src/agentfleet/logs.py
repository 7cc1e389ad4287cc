"""Structured JSON logs: one JSON object per line, named ``{domain}.{action}_{state}``.

Workers, the HTTP server and anything else in agentfleet log through this module so every
line can be filtered by event name and by the ids it carries::

    from agentfleet import logs

    logs.configure()                                   # once, at process start
    log = logs.get_logger("agentfleet.worker")
    logs.event(log, "job.claim_completed", job=12, run=40, epoch=3, worker="w1")
    logs.event(log, "lease.renew_rejected", level=logging.WARNING, job=12, epoch=3)

prints::

    {"ts": "2025-01-01T12:00:00.123Z", "level": "info", "event": "job.claim_completed",
     "logger": "agentfleet.worker", "job": 12, "run": 40, "epoch": 3, "worker": "w1"}

Nothing secret reaches the output: values under keys such as ``token``, ``password``,
``secret`` or ``authorization`` are replaced by ``[redacted]``; so are the password in a URL
(``postgresql://u:pw@h/db``), ``Bearer ...`` credentials, ``token=`` query parameters, the
tokens ``agentfleet tokens create`` makes (``aft_...``) and any string registered with
:func:`register_secret` (the server registers its API token).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "configure",
    "event",
    "get_logger",
    "redact",
    "redact_url",
    "register_secret",
]

REDACTED = "[redacted]"
# {domain}.{action}_{state}: lower-case words; the state is the last underscore-separated word.
EVENT_NAME = re.compile(r"^[a-z][a-z0-9]*\.[a-z][a-z0-9]*(?:_[a-z0-9]+)*_[a-z]+$")
# Ids every line may carry, in the order they are printed (after ts, level, event, logger).
ID_FIELDS = ("job", "run", "epoch", "worker", "plan")
_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|authorization|api[_-]?key|cookie|credential)", re.I
)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")
# A credential after its scheme: one with a digit or a symbol in it, or 16 letters or more,
# so that prose ("the bearer token is not valid", "a read token may read") stays as written.
_BEARER = re.compile(
    r"\b(Bearer|Basic|Token)\s+(?:(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]+|[A-Za-z]{16,})",
    re.I,
)
_API_TOKEN = re.compile(r"\baft_[0-9a-f]{12}_[A-Za-z0-9_-]+")  # agentfleet tokens create
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&](?:token|access_token|password|secret|api_key)=)[^&#\s]*", re.I
)
# A libpq connection string: "host=db user=fleet password=secret dbname=fleet".
_DSN_SECRET = re.compile(r"(?P<key>(?<![?&\w])password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.I)
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Never print `value` (an API token, say), wherever it appears in a log line."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact_url(url: str) -> str:
    """Drop the password from a URL and the value of secret-looking query parameters."""
    url = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", url)
    url = _QUERY_SECRET.sub(lambda m: f"{m['key']}{REDACTED}", url)
    return _DSN_SECRET.sub(lambda m: f"{m['key']}{REDACTED}", url)


def _redact_text(text: str) -> str:
    text = redact_url(text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _API_TOKEN.sub(REDACTED, text)
    with _secrets_lock:
        secrets = tuple(_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(value: Any, key: str | None = None) -> Any:
    """A copy of `value` that is safe to log (see the module docstring)."""
    if key is not None and _SECRET_KEY.search(key) and value is not None:
        return REDACTED
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _redact_text(str(value))


class JsonFormatter(logging.Formatter):
    """Formats each record as one line of JSON; extra fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        name = getattr(record, "event", None)
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": name if isinstance(name, str) else "log.message_recorded",
            "logger": record.name,
        }
        fields = {
            k: v
            for k, v in record.__dict__.items()
            if k not in _STANDARD_ATTRS and k != "event" and not k.startswith("_")
        }
        for key in ID_FIELDS:
            if key in fields:
                line[key] = redact(fields.pop(key), key)
        for key, value in fields.items():
            line[key] = redact(value, key)
        message = record.getMessage()
        if message and message != line["event"]:
            line["message"] = _redact_text(message)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["error_type"] = type(exc).__name__
            line["error"] = _redact_text(str(exc))
            line["traceback"] = _redact_text(self.formatException(record.exc_info))
        return json.dumps(line, default=str, ensure_ascii=False)


def get_logger(name: str = "agentfleet") -> logging.Logger:
    return logging.getLogger(name)


def event(
    logger: logging.Logger | str,
    name: str,
    /,
    *,
    level: int = logging.INFO,
    exc_info: bool = False,
    message: str | None = None,
    **fields: Any,
) -> None:
    """Log one named event with its fields (job, run, epoch, worker, and anything else).

    `message` is the line a plain-text handler prints (the JSON line keeps it as
    ``message``); without one, the record's message is the event name."""
    if not EVENT_NAME.match(name):
        raise ValueError(f"log event {name!r} is not named domain.action_state")
    log = logging.getLogger(logger) if isinstance(logger, str) else logger
    if not log.isEnabledFor(level):
        return
    clean = {k: v for k, v in fields.items() if v is not None}
    reserved = _STANDARD_ATTRS & clean.keys()
    for key in reserved:  # `name`, `msg`, ... would clash with LogRecord's own attributes
        clean[f"{key}_"] = clean.pop(key)
    text = name if message is None else message  # no args: never %-formatted
    log.log(level, text, extra={"event": name, **clean}, exc_info=exc_info)


def configure(
    level: int | str = logging.INFO,
    *,
    stream: TextIO | None = None,
    logger: str = "",
) -> logging.Handler:
    """Send `logger` (the root logger by default) to `stream` as JSON lines.

    Idempotent: a handler this function installed before is replaced, not duplicated.
    """
    target = logging.getLogger(logger)
    for handler in list(target.handlers):
        if getattr(handler, "_agentfleet_json", False):
            target.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._agentfleet_json = True  # type: ignore[attr-defined]
    target.addHandler(handler)
    target.setLevel(level)
    return handler
