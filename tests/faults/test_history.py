"""The history checker on small hand-made histories: clean ones pass, and each anomaly is
caught (a checker that cannot fail proves nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.faults.history import (
    ANOMALIES,
    FinalState,
    HistoryWriter,
    JobRow,
    LedgerRow,
    Op,
    RunRow,
    Span,
    check,
    load_history,
    load_spans,
)

_index = iter(range(1, 1_000_000))


def op(
    process: str,
    f: str,
    t0: float,
    t1: float | None,
    type_: str = "ok",
    *,
    job: int | None = None,
    epoch: int | None = None,
    value: Any = None,
    **args: Any,
) -> Op:
    return Op(
        process=process,
        index=next(_index),
        f=f,
        invoke_t=t0,
        job=job,
        epoch=epoch,
        args=args,
        type=type_ if t1 is not None else "unknown",
        done_t=t1,
        value=value,
    )


def claim(process: str, job: int, epoch: int, t0: float, t1: float, expires: float) -> Op:
    grant = [{"job": job, "epoch": epoch, "attempt": epoch, "expires": expires}]
    return op(process, "claim_next", t0, t1, value=grant)


def write(process: str, job: int, epoch: int, t0: float, t1: float | None, type_: str = "ok") -> Op:
    return op(
        process, "fenced_write", t0, t1, type_, job=job, epoch=epoch, key="effect", value=epoch
    )


def complete(
    process: str, job: int, epoch: int, t0: float, t1: float | None, type_: str = "ok"
) -> Op:
    return op(process, "complete", t0, t1, type_, job=job, epoch=epoch)


def state(
    jobs: list[JobRow], runs: list[RunRow], ledger: list[LedgerRow] | None = None
) -> FinalState:
    return FinalState({j.id: j for j in jobs}, runs, ledger or [])


def only(report_counts: dict[str, int], anomaly: str) -> None:
    assert report_counts[anomaly] >= 1, report_counts
    others = {k: v for k, v in report_counts.items() if k != anomaly and v}
    assert others == {}, others


# -- clean histories pass ----------------------------------------------------------------


def _clean() -> tuple[list[Op], FinalState]:
    ops = [
        claim("w1", 1, 1, 0.0, 0.1, expires=10.0),
        write("w1", 1, 1, 1.0, 1.1),
        complete("w1", 1, 1, 2.0, 2.1),
        # job 2: w1 writes, dies before its complete returns; w2 takes over after expiry
        claim("w1", 2, 1, 0.0, 0.1, expires=1.0),
        write("w1", 2, 1, 0.2, 0.3),
        complete("w1", 2, 1, 0.4, None),
        claim("w2", 2, 2, 1.5, 1.6, expires=11.0),
        write("w2", 2, 2, 2.0, 2.1),
        complete("w2", 2, 2, 3.0, 3.1),
    ]
    final = state(
        [JobRow(1, "succeeded", 1, None), JobRow(2, "succeeded", 2, None)],
        [
            RunRow(1, 1, "w1", "succeeded", 0.05, 2.05),
            RunRow(2, 1, "w1", "expired", 0.05, 1.55),
            RunRow(2, 2, "w2", "succeeded", 1.55, 3.05),
        ],
        [
            LedgerRow(1, "effect", 1, 1, "w1", 1.05),
            LedgerRow(2, "effect", 1, 1, "w1", 0.25),
            LedgerRow(2, "effect", 2, 2, "w2", 2.05),
        ],
    )
    return ops, final


def test_a_clean_history_passes_and_unknowns_are_resolved() -> None:
    ops, final = _clean()
    report = check(ops, final)
    assert report.ok, report.describe()
    assert report.counts == dict.fromkeys(ANOMALIES, 0)
    assert report.stats["unknown"] == 1 and report.stats["unknown.resolved_fail"] == 1


def test_an_unknown_complete_that_took_effect_resolves_ok() -> None:
    ops = [claim("w1", 1, 1, 0.0, 0.1, expires=10.0), complete("w1", 1, 1, 1.0, 1.1, "unknown")]
    final = state([JobRow(1, "succeeded", 1, None)], [RunRow(1, 1, "w1", "succeeded", 0.05, 1.05)])
    report = check(ops, final)
    assert report.ok, report.describe()
    assert report.stats["unknown.resolved_ok"] == 1


def test_an_unknown_complete_retried_with_success_did_not_take_effect() -> None:
    ops = [
        claim("w1", 1, 1, 0.0, 0.1, expires=10.0),
        complete("w1", 1, 1, 1.0, 1.1, "unknown"),  # the connection was cut
        complete("w1", 1, 1, 1.2, 1.3),  # the retry was accepted: the first never landed
    ]
    final = state([JobRow(1, "succeeded", 1, None)], [RunRow(1, 1, "w1", "succeeded", 0.05, 1.25)])
    report = check(ops, final)
    assert report.ok, report.describe()
    assert report.stats["unknown.resolved_fail"] == 1


def test_of_two_unknown_completes_at_most_one_took_effect() -> None:
    ops = [
        claim("w1", 1, 1, 0.0, 0.1, expires=10.0),
        complete("w1", 1, 1, 1.0, 1.1, "unknown"),  # the connection was cut
        complete("w1", 1, 1, 1.2, None),  # the retry: the worker was killed before the reply
    ]
    final = state([JobRow(1, "succeeded", 1, None)], [RunRow(1, 1, "w1", "succeeded", 0.05, 1.05)])
    report = check(ops, final)
    assert report.ok, report.describe()
    assert (report.stats["unknown.resolved_ok"], report.stats["unknown.resolved_fail"]) == (1, 1)


def test_a_claim_whose_reply_was_lost_is_explained_by_its_run() -> None:
    ops = [
        op("w1", "claim_next", 0.0, None),  # killed: the claim committed, no reply recorded
        claim("w2", 1, 2, 2.0, 2.1, expires=12.0),
        complete("w2", 1, 2, 3.0, 3.1),
    ]
    final = state(
        [JobRow(1, "succeeded", 2, None)],
        [
            RunRow(1, 1, "w1", "expired", 0.05, 2.05),
            RunRow(1, 2, "w2", "succeeded", 2.05, 3.05),
        ],
    )
    report = check(ops, final)
    assert report.ok, report.describe()
    assert report.stats["unknown.resolved_ok"] == 1


# -- each anomaly is caught --------------------------------------------------------------


def test_lost_job_that_never_finished() -> None:
    ops, final = _clean()
    final.jobs[3] = JobRow(3, "queued", 0, None)
    only(check(ops, final).counts, "lost")


def test_lost_job_that_vanished() -> None:
    ops, final = _clean()
    ops.append(op("ctl", "enqueue", 0.0, 0.01, value=[1, 2, 99]))
    only(check(ops, final).counts, "lost")


def test_lost_write_acknowledged_but_not_stored() -> None:
    ops, final = _clean()
    ops.append(op("w2", "fenced_write", 2.2, 2.3, job=2, epoch=2, key="other", value=0))
    only(check(ops, final).counts, "lost_writes")


def test_duplicated_job_completed_twice() -> None:
    ops = [
        claim("w1", 1, 1, 0.0, 0.1, expires=1.0),
        claim("w2", 1, 2, 1.5, 1.6, expires=11.0),
        complete("w2", 1, 2, 2.0, 2.1),
        complete("w1", 1, 1, 1.2, 2.5),  # invoked before the takeover, yet also accepted
    ]
    final = state(
        [JobRow(1, "succeeded", 2, None)],
        [
            RunRow(1, 1, "w1", "expired", 0.05, 1.55),
            RunRow(1, 2, "w2", "succeeded", 1.55, 2.05),
        ],
    )
    counts = check(ops, final).counts
    assert counts["duplicated"] >= 1
    assert counts["lost_writes"] >= 1  # w1's acknowledged complete is not what was stored


def test_duplicated_ledger_key_from_two_live_epochs() -> None:
    ops, final = _clean()
    final.ledger[1] = LedgerRow(2, "effect", 1, 1, "w1", 2.08)  # lands after epoch 2 wrote
    report = check(ops, final)
    assert report.counts["duplicated"] >= 1
    assert report.counts["stale_commits"] >= 1  # also after its own run ended


def test_stale_commit_accepted_after_a_newer_claim() -> None:
    ops, final = _clean()
    ops.append(op("w1", "renew", 2.5, 2.6, job=2, epoch=1, value={"expires": 3.6}, ttl=1.0))
    counts = check(ops, final).counts
    assert counts["stale_commits"] >= 1
    assert counts["two_live_leases"] >= 1  # the renewal granted epoch 1 time epoch 2 held


def test_stale_ledger_write_after_the_newer_run_started() -> None:
    ops = [
        claim("w1", 1, 1, 0.0, 0.1, expires=1.0),
        claim("w2", 1, 2, 1.5, 1.6, expires=11.0),
        write("w1", 1, 1, 1.0, 1.7),  # invoked before the takeover, committed after it
        complete("w2", 1, 2, 3.0, 3.1),
    ]
    final = state(
        [JobRow(1, "succeeded", 2, None)],
        [
            RunRow(1, 1, "w1", "expired", 0.05, 1.55),
            RunRow(1, 2, "w2", "succeeded", 1.55, 3.05),
        ],
        [LedgerRow(1, "effect", 1, 1, "w1", 1.58)],
    )
    only(check(ops, final).counts, "stale_commits")


def test_stale_write_of_a_worker_woken_from_a_pause() -> None:
    ops, final = _clean()
    ops.append(op("ctl", "pause", 0.3, 1.9, target="w1", job=2, epoch=1, replaced=True, cont_t=1.8))
    ops.append(op("w1", "release", 1.85, 1.9, job=2, epoch=1))
    report = check(ops, final)
    only(report.counts, "stale_commits")
    assert report.stats["pause.trials_replaced"] == 1


def test_refused_writes_of_a_woken_worker_are_fine() -> None:
    ops, final = _clean()
    ops.append(op("ctl", "pause", 0.3, 1.9, target="w1", job=2, epoch=1, replaced=True, cont_t=1.8))
    ops.append(op("w1", "renew", 1.85, 1.9, "fail", job=2, epoch=1, ttl=1.0))
    report = check(ops, final)
    assert report.ok, report.describe()
    assert report.stats["pause.woken_writes_refused"] == 1


def test_epoch_claimed_twice() -> None:
    ops = [
        claim("w1", 1, 1, 0.0, 0.1, expires=10.0),
        claim("w2", 1, 1, 0.0, 0.1, expires=10.0),
        complete("w1", 1, 1, 1.0, 1.1),
    ]
    final = state([JobRow(1, "succeeded", 1, None)], [RunRow(1, 1, "w1", "succeeded", 0.05, 1.05)])
    counts = check(ops, final).counts
    assert counts["epochs_not_increasing"] >= 1
    assert counts["run_records"] >= 1  # w2's claim has no run of its own


def test_epochs_going_backwards_in_real_time() -> None:
    ops, final = _clean()
    ops.append(claim("w3", 2, 1, 5.0, 5.1, expires=15.0))  # after epoch 2 was acknowledged
    counts = check(ops, final).counts
    assert counts["epochs_not_increasing"] >= 1


def test_runs_whose_epochs_do_not_grow_with_their_start() -> None:
    ops, final = _clean()
    final.runs[1] = RunRow(2, 1, "w1", "expired", 1.7, 1.9)  # started after epoch 2's run
    counts = check(ops, final).counts
    assert counts["epochs_not_increasing"] >= 1


def test_two_live_leases_when_taken_before_expiry() -> None:
    ops, final = _clean()
    ops[3] = claim("w1", 2, 1, 0.0, 0.1, expires=5.0)  # epoch 2 started at 1.55, before 5.0
    only(check(ops, final).counts, "two_live_leases")


def test_two_live_leases_when_the_old_run_is_still_open() -> None:
    ops, final = _clean()
    final.runs[1] = RunRow(2, 1, "w1", "failed", 0.05, 2.0)  # closed after epoch 2 began
    only(check(ops, final).counts, "two_live_leases")


def test_run_records_a_run_without_a_claim() -> None:
    ops, final = _clean()
    final.runs.append(RunRow(2, 3, "w9", "expired", 4.0, 5.0))
    counts = check(ops, final).counts
    assert counts["run_records"] >= 1


def test_run_records_an_epoch_without_a_run() -> None:
    ops, final = _clean()
    final.jobs[1] = JobRow(1, "succeeded", 2, None)
    only(check(ops, final).counts, "run_records")


def test_lock_overlap_between_two_jobs() -> None:
    ops = [
        claim("w1", 1, 1, 0.0, 0.1, expires=10.0),
        claim("w2", 2, 1, 0.5, 0.6, expires=10.0),
        complete("w1", 1, 1, 1.0, 1.1),
        complete("w2", 2, 1, 2.0, 2.1),
    ]
    final = state(
        [JobRow(1, "succeeded", 1, "repo"), JobRow(2, "succeeded", 1, "repo")],
        [
            RunRow(1, 1, "w1", "succeeded", 0.05, 1.05),
            RunRow(2, 1, "w2", "succeeded", 0.55, 2.05),
        ],
    )
    only(check(ops, final).counts, "lock_overlaps")


def test_distinct_locks_may_overlap() -> None:
    ops = [
        claim("w1", 1, 1, 0.0, 0.1, expires=10.0),
        claim("w2", 2, 1, 0.5, 0.6, expires=10.0),
        complete("w1", 1, 1, 1.0, 1.1),
        complete("w2", 2, 1, 2.0, 2.1),
    ]
    final = state(
        [JobRow(1, "succeeded", 1, "repo-a"), JobRow(2, "succeeded", 1, "repo-b")],
        [
            RunRow(1, 1, "w1", "succeeded", 0.05, 1.05),
            RunRow(2, 1, "w2", "succeeded", 0.55, 2.05),
        ],
    )
    assert check(ops, final).ok


# -- processes: no two attempts of a job, no two jobs of a lock, at one moment ---------------


def test_processes_one_after_another_pass() -> None:
    ops, final = _clean()
    final.spans = {
        (1, 1): Span(1, 1, 0.1, 1.9, ended=True),
        (2, 1): Span(2, 1, 0.1, 0.35),  # killed with its worker
        (2, 2): Span(2, 2, 1.6, 2.9, ended=True),
    }
    report = check(ops, final)
    assert report.ok, report.describe()
    assert (report.stats["processes"], report.stats["processes.killed"]) == (3, 1)


def test_attempts_at_once_when_a_dead_workers_process_ran_on() -> None:
    ops, final = _clean()
    final.spans = {
        (2, 1): Span(2, 1, 0.1, 1.7),  # still ticking after the takeover at 1.6
        (2, 2): Span(2, 2, 1.6, 2.9, ended=True),
    }
    only(check(ops, final).counts, "attempts_at_once")


def test_locked_jobs_at_once_although_their_runs_did_not_overlap() -> None:
    ops = [
        claim("w1", 1, 1, 0.0, 0.1, expires=1.0),
        claim("w2", 2, 1, 1.2, 1.3, expires=10.0),
        complete("w2", 2, 1, 2.0, 2.1),
    ]
    final = state(
        [JobRow(1, "failed", 1, "repo"), JobRow(2, "succeeded", 1, "repo")],
        [
            RunRow(1, 1, "w1", "expired", 0.05, 1.25),
            RunRow(2, 1, "w2", "succeeded", 1.25, 2.05),
        ],
    )
    final.spans = {
        (1, 1): Span(1, 1, 0.1, 1.5),  # job 1's process outlived its lease
        (2, 1): Span(2, 1, 1.3, 1.9, ended=True),
    }
    only(check(ops, final).counts, "locked_jobs_at_once")


def test_spans_are_read_from_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "spans.log"
    path.write_text(
        "1 1 start 10.0\n1 1 tick 10.5\n2 1 start 11.0\n1 1 end 10.75\n2 1 tick 11.5\n2 1 ti"
    )
    spans = load_spans(path)
    assert spans == {
        (1, 1): Span(1, 1, 10.0, 10.75, ended=True),
        (2, 1): Span(2, 1, 11.0, 11.5, ended=False),
    }
    assert load_spans(tmp_path / "none.log") == {}


# -- recording ---------------------------------------------------------------------------


def test_writer_and_merge_survive_a_killed_process(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "w1.jsonl", "w1")
    done = writer.invoke("claim_next", limit=1)
    writer.complete(done, "ok", [{"job": 1, "epoch": 1, "attempt": 1, "expires": 9.0}])
    writer.invoke("complete", job=1, epoch=1)  # killed before the reply
    writer.close()
    with (tmp_path / "w1.jsonl").open("a") as f:
        f.write('{"p":"w1","i":3,"type":"inv')  # a torn last line is ignored
    ops = load_history(tmp_path)
    assert [(o.f, o.type, o.done_t is None) for o in ops] == [
        ("claim_next", "ok", False),
        ("complete", "unknown", True),
    ]
    assert ops[0].leases() == [(1, 1)]


@pytest.mark.parametrize("anomaly", ANOMALIES)
def test_every_anomaly_has_a_failing_example_above(anomaly: str) -> None:
    names = {n for n in globals() if n.startswith("test_")}
    key = anomaly.split("_")[0] if anomaly not in ("two_live_leases",) else "two_live"
    assert any(key in n for n in names), f"no hand-made history exercises {anomaly}"
