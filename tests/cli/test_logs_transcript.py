"""`agentfleet logs` shows an agent's event stream as a transcript, `--raw` as recorded, and
`--follow` renders each line once it is complete, as the run's output grows."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from rich.console import Console

import agentfleet
from agentfleet import Fleet, RunOutput
from agentfleet.agents.transcript import Entry
from agentfleet.cli import views
from agentfleet.cli.read import _Tail, _Transcribed
from agentfleet.output import truncation_marker
from tests.cli.conftest import Invoke


def line(event: dict[str, Any]) -> str:
    return json.dumps(event) + "\n"


def assistant(*content: dict[str, Any]) -> str:
    return line({"type": "assistant", "session_id": "s1", "message": {"content": list(content)}})


INIT = line({"type": "system", "subtype": "init", "session_id": "s1", "model": "claude-sonnet-4-5"})
SAYS = assistant({"type": "text", "text": "Looking at the tests."})
CALL = assistant(
    {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "pytest -q"}}
)
RESULT = line(
    {
        "type": "user",
        "session_id": "s1",
        "message": {
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": "....F\n1 failed, 4 passed\nFAILED test_x\n<b>[red]x[/red]</b>",
                }
            ]
        },
    }
)
DONE = line(
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "session_id": "s1",
        "result": "Fixed it.",
        "total_cost_usd": 0.0123,
        "usage": {"input_tokens": 1000, "cache_read_input_tokens": 234, "output_tokens": 456},
    }
)
FAILED = line(
    {
        "type": "result",
        "subtype": "error_max_turns",
        "is_error": True,
        "session_id": "s1",
        "total_cost_usd": 0.0123,
        "usage": {"input_tokens": 1234, "output_tokens": 456},
    }
)
SHOWN = {
    INIT: "· session started · claude-sonnet-4-5\n",
    SAYS: "Looking at the tests.\n",
    CALL: "▸ Bash: pytest -q\n",
    RESULT: "  ⎿ ....F\n    1 failed, 4 passed  (+2 lines)\n",
    DONE: "· $0.0123 · 1,234 in / 456 out tokens\n",
    FAILED: "✗ error_max_turns\n· $0.0123 · 1,234 in / 456 out tokens\n",
}


def finished_job(db: str, stdout: str, stderr: str = "", engine: str = "claude") -> int:
    with agentfleet.open(db) as fleet:
        job = fleet.enqueue(engine, {"prompt": "fix the test"} if engine == "claude" else {})
        lease = fleet.claim(job.id, worker="w1")
        assert lease is not None
        fleet.complete(lease, {}, output=RunOutput(exit_code=0, stdout=stdout, stderr=stderr))
        return job.id


def test_logs_shows_the_transcript_and_raw_shows_the_stream(run: Invoke, db: str) -> None:
    stream = INIT + SAYS + CALL + RESULT + DONE
    job = finished_job(db, stream, stderr="claude: a warning\n")
    shown = run("logs", str(job))
    assert shown.code == 0
    assert shown.out == "".join(SHOWN[part] for part in (INIT, SAYS, CALL, RESULT, DONE))
    assert "[red]" not in shown.out and "<b>" not in shown.out  # folded away, never markup
    assert shown.err == "claude: a warning\n"
    raw = run("logs", str(job), "--raw")
    assert (raw.code, raw.out, raw.err) == (0, stream, "claude: a warning\n")
    followed = run("logs", str(job), "--follow")
    assert (followed.code, followed.out) == (0, shown.out)
    assert run("logs", str(job), "--follow", "--raw").out == stream
    assert run("logs", str(job), "--json").json()["run"]["stdout"] == stream


def test_an_error_is_shown_and_a_result_with_markup_is_printed_literally(
    run: Invoke, db: str
) -> None:
    job = finished_job(db, INIT + FAILED)
    assert run("logs", str(job)).out == SHOWN[INIT] + SHOWN[FAILED]
    markup = assistant({"type": "text", "text": "[bold]not bold[/bold] :smile: <i>"})
    job = finished_job(db, markup)
    assert run("logs", str(job)).out == "[bold]not bold[/bold] :smile: <i>\n"


def test_a_shell_jobs_output_looks_as_it_always_did(run: Invoke, db: str) -> None:
    plain = 'building\n{"event": "job.done", "n": 1}\n\n  [not markup] \\x\nno newline at the end'
    job = finished_job(db, plain, engine="shell")
    shown = run("logs", str(job))
    raw = run("logs", str(job), "--raw")
    assert shown.out == raw.out == plain
    assert run("logs", str(job), "--follow").out == plain


def test_the_entries_are_styled_for_the_terminal() -> None:
    def ansi(entry: Entry) -> str:
        console = Console(force_terminal=True, color_system="standard", width=200)
        with console.capture() as captured:
            console.print(views.transcript_entry(entry))
        return captured.get()

    assert ansi(Entry("tool", "Bash", "pytest -q")) == "\x1b[36m▸ Bash: pytest -q\x1b[0m\n"
    assert ansi(Entry("error", "boom")) == "\x1b[1;31m✗ boom\x1b[0m\n"
    assert ansi(Entry("usage", "$0.0100")) == "\x1b[2m· $0.0100\x1b[0m\n"
    assert ansi(Entry("tool_result", "ok", "ok\nmore", 1)).startswith("\x1b[2m  ⎿ ok")
    assert ansi(Entry("tool_error", "no")).startswith("\x1b[31m  ⎿ no")
    assert ansi(Entry("assistant", "Hello")) == "Hello\n"
    assert views.transcript_entry(Entry("tool", "Read")).plain == "▸ Read"


def test_written_in_any_pieces_the_transcript_is_the_same(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = INIT + SAYS + "plain line\n" + CALL + RESULT + DONE.rstrip("\n")

    def shown_in(size: int) -> list[str]:
        stdout, seen = _Transcribed(), []
        for start in range(0, len(stream), size):
            stdout.write(stream[start : start + size])
            seen.append(capsys.readouterr().out)
        stdout.end()
        stdout.end()  # what was held back is shown once
        return [*seen, capsys.readouterr().out]

    whole = "".join(shown_in(len(stream)))
    assert whole == "".join(
        [SHOWN[INIT], SHOWN[SAYS], "plain line\n", SHOWN[CALL], SHOWN[RESULT], SHOWN[DONE]]
    )
    for size in (1, 7, 100):
        seen = shown_in(size)
        assert "".join(seen) == whole
        assert all(s == "" or s.endswith("\n") for s in seen)  # whole lines only
        assert not any("{" in s for s in seen)  # never a piece of an event


def test_when_the_kept_tail_moves_on_each_line_is_shown_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = [assistant({"type": "text", "text": f"message {n:03} " + "x" * 80}) for n in range(60)]
    tail = _Tail(_Transcribed())
    first = "".join(lines[:40])
    tail.update(first)
    later = "".join(lines)
    dropped = len(first) - 3001  # the kept tail starts inside an event already shown
    kept = truncation_marker(dropped, len(later) - dropped) + later[dropped:]
    tail.update(kept)
    tail.stream.end()
    out = capsys.readouterr().out.splitlines()
    assert [text[:11] for text in out] == [f"message {n:03}" for n in range(60)]


class GrowingRun:
    """A claude job whose run prints its stream in pieces (lines cut in two among them),
    then ends on a line without a newline."""

    pieces = [INIT + SAYS[:20], SAYS[20:] + CALL, RESULT[:-30], RESULT[-30:], ""]
    last = DONE.rstrip("\n")

    def __init__(self, db: str) -> None:
        self.fleet: Fleet = agentfleet.open(db)
        self.job = self.fleet.enqueue("claude", {"prompt": "fix it"}).id
        lease = self.fleet.claim(self.job, worker="w1", ttl=30)
        assert lease is not None
        self.lease = lease
        self.thread = threading.Thread(target=self._print, daemon=True)
        self.error: BaseException | None = None

    def _print(self) -> None:
        try:
            out = ""
            for piece in self.pieces:
                out += piece
                self.fleet.record_output(self.lease, RunOutput(stdout=out))
                time.sleep(0.7)  # longer than a --follow poll: it sees each state
            self.fleet.complete(
                self.lease, {}, output=RunOutput(exit_code=0, stdout=out + self.last)
            )
        except BaseException as exc:
            self.error = exc


def test_follow_renders_each_line_once_it_is_whole_as_the_output_grows(
    run: Invoke, db: str
) -> None:
    growing = GrowingRun(db)
    try:
        growing.thread.start()
        followed = run("logs", str(growing.job), "--follow")
        growing.thread.join(30)
        assert growing.error is None
    finally:
        growing.fleet.close()
    assert followed.code == 0
    assert followed.out == "".join(SHOWN[part] for part in (INIT, SAYS, CALL, RESULT, DONE))
    raw = run("logs", str(growing.job), "--raw")
    assert raw.out == INIT + SAYS + CALL + RESULT + DONE.rstrip("\n")
