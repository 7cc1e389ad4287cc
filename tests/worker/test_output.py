"""Capped output: the tail of each stream is kept, with a marker when anything was cut."""

from __future__ import annotations

import pytest

from agentfleet.output import OUTPUT_LIMIT, TailBuffer, truncation_marker


def test_small_output_is_kept_whole() -> None:
    buffer = TailBuffer(limit=16)
    buffer.write(b"hello ")
    buffer.write(b"world\n")
    assert buffer.text() == "hello world\n"
    assert buffer.version == 2


def test_only_the_tail_is_kept_with_a_marker() -> None:
    buffer = TailBuffer(limit=10)
    for n in range(100):
        buffer.write(f"{n:03d}\n".encode())
    text = buffer.text()
    assert text == truncation_marker(390, 10) + "7\n098\n099\n"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    buffer = TailBuffer(limit=100)
    buffer.write(b"ok \xff\xfe done")
    assert buffer.text() == "ok \ufffd\ufffd done"


def test_documented_default_is_one_mebibyte() -> None:
    assert OUTPUT_LIMIT == 1024 * 1024
    with pytest.raises(ValueError):
        TailBuffer(limit=0)
