"""Operation histories of a fault run, and the checker that judges them (Jepsen style).

Every process appends one JSON line per event to its own file: an ``invoke`` before it
calls the coordinator, then ``ok``, ``fail`` (a clean refusal such as LeaseLost) or
``unknown`` (the outcome is ambiguous: the connection was cut during the commit). An
invocation without a completion (the process was killed) is ``unknown`` too. Each line is
written with one ``write`` call on a file opened for appending, so a killed process leaves
whole lines only.

The checker merges the histories with the final database state (jobs, runs, ledger),
resolves unknown outcomes against that state, and counts anomalies. A run passes only when
every count is zero:

``lost``
    a job that was enqueued but never reached a terminal state, or vanished.
``lost_writes``
    a write acknowledged ok (complete, fail, fenced write) that the database does not hold.
``duplicated``
    a job completed twice (two acknowledged completes, two succeeded runs, or a complete
    acknowledged for an epoch that is not the one the job succeeded with), or one ledger key
    accepted from two epochs at once (the older epoch's write landed after the newer's).
``stale_commits``
    a write from an epoch accepted after a newer epoch of the job was claimed (in real time
    from the history, or on the store's clock from the runs and the ledger), after its own
    run had ended, or after the worker woke from a pause in which it was replaced.
``epochs_not_increasing``
    two claims of one job with the same epoch, or a claim acknowledged before another was
    invoked that got a higher epoch; runs whose epochs do not grow with their start.
``two_live_leases``
    a run started while the previous epoch's lease was still live (its run open, or its
    granted expiry not yet passed).
``run_records``
    not exactly one run record per claim: a claim without its run, a run no claim explains,
    or epochs without a run.
``lock_overlaps``
    two jobs naming the same lock whose runs overlap, or a write accepted for one while the
    other's run held the lock.
``attempts_at_once``
    two attempts of one job whose processes ran at the same moment. Each job's process
    appends ``start``, ``tick`` (every few milliseconds) and ``end`` lines with the time to
    a spans file; an attempt ran from its start to its last line (a killed one leaves no
    end, and its last tick is when it was last seen running).
``locked_jobs_at_once``
    the processes of two jobs naming the same lock ran at the same moment.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ANOMALIES = (
    "lost",
    "lost_writes",
    "duplicated",
    "stale_commits",
    "epochs_not_increasing",
    "two_live_leases",
    "run_records",
    "lock_overlaps",
    "attempts_at_once",
    "locked_jobs_at_once",
)
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
CLAIMS = frozenset({"claim", "claim_next"})
LEASE_WRITES = frozenset({"renew", "complete", "fail", "release", "fenced_write"})
ENDINGS = frozenset({"complete", "fail", "release"})
EPS = 1e-6  # store timestamps are floats (SQLite) or microseconds (PostgreSQL)


# -- recording ---------------------------------------------------------------------------


class HistoryWriter:
    """Appends one process's history; safe to share between its threads."""

    def __init__(self, path: str | os.PathLike[str], process: str) -> None:
        self.process = process
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        os.write(self._fd, line.encode())  # one write: a kill leaves whole lines only

    def invoke(
        self,
        f: str,
        job: int | None = None,
        epoch: int | None = None,
        *,
        at: float | None = None,
        **value: Any,
    ) -> int:
        """Record an invocation (`at`: when it was made, if not now) and return its index."""
        with self._lock:
            index = next(self._ids)
        self._write(
            {
                "p": self.process,
                "i": index,
                "type": "invoke",
                "f": f,
                "t": time.time() if at is None else at,
                "job": job,
                "epoch": epoch,
                "value": value or None,
            }
        )
        return index

    def complete(self, index: int, type_: str, value: Any = None, error: str | None = None) -> None:
        assert type_ in ("ok", "fail", "unknown")
        self._write(
            {
                "p": self.process,
                "i": index,
                "type": type_,
                "t": time.time(),
                "value": value,
                "error": error,
            }
        )

    def note(self, f: str, **value: Any) -> None:
        """A fact that is not a coordinator call (a fault injected, a pause trial)."""
        index = self.invoke(f, **value)
        self.complete(index, "ok")

    def close(self) -> None:
        os.close(self._fd)


# -- merged operations -------------------------------------------------------------------


@dataclass
class Op:
    """One invocation and its completion."""

    process: str
    index: int
    f: str
    invoke_t: float
    job: int | None = None
    epoch: int | None = None
    args: dict[str, Any] = field(default_factory=dict)
    type: str = "unknown"  # ok | fail | unknown
    done_t: float | None = None  # None: never completed (the process died)
    value: Any = None
    error: str | None = None
    resolved: str | None = None  # for unknowns: "ok", "fail" or None (cannot tell)

    @property
    def succeeded(self) -> bool:
        """Acknowledged ok, or an unknown outcome the final state shows took effect."""
        return self.type == "ok" or self.resolved == "ok"

    @property
    def end_t(self) -> float:
        return float("inf") if self.done_t is None else self.done_t

    def leases(self) -> list[tuple[int, int]]:
        """(job, epoch) pairs a claim returned."""
        if self.f not in CLAIMS or self.type != "ok":
            return []
        return [(int(g["job"]), int(g["epoch"])) for g in self.value or []]


def merge(records: Iterable[dict[str, Any]]) -> list[Op]:
    """Pair invocations with completions; an invocation left open is an unknown."""
    ops: dict[tuple[str, int], Op] = {}
    for rec in records:
        key = (rec["p"], rec["i"])
        if rec["type"] == "invoke":
            ops[key] = Op(
                process=rec["p"],
                index=rec["i"],
                f=rec["f"],
                invoke_t=rec["t"],
                job=rec.get("job"),
                epoch=rec.get("epoch"),
                args=rec.get("value") or {},
            )
        elif key in ops:
            op = ops[key]
            op.type, op.done_t = rec["type"], rec["t"]
            op.value, op.error = rec.get("value"), rec.get("error")
    return sorted(ops.values(), key=lambda o: (o.invoke_t, o.process, o.index))


def read_records(directory: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    for path in sorted(Path(directory).glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.endswith("\n"):
                    yield json.loads(line)


def load_history(directory: str | os.PathLike[str]) -> list[Op]:
    return merge(read_records(directory))


# -- the final database state ------------------------------------------------------------


@dataclass(frozen=True)
class JobRow:
    id: int
    status: str
    lease_epoch: int
    lock: str | None
    result: Any = None


@dataclass(frozen=True)
class RunRow:
    job: int
    epoch: int
    worker: str
    status: str
    started: float
    finished: float | None


@dataclass(frozen=True)
class LedgerRow:
    job: int
    key: str
    epoch: int
    value: Any
    worker: str
    written: float


@dataclass
class Span:
    """When one attempt's process was seen running (its start to its last line)."""

    job: int
    epoch: int
    start: float
    last: float
    ended: bool = False  # it wrote its end line (it was not killed)


def load_spans(path: str | os.PathLike[str]) -> dict[tuple[int, int], Span]:
    """The spans file's ``JOB EPOCH start|tick|end TIME`` lines, one Span per attempt."""
    spans: dict[tuple[int, int], Span] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return spans
    for line in text.splitlines(keepends=True):
        parts = line.split()
        if not line.endswith("\n") or len(parts) != 4:
            continue  # a torn last line
        job, epoch, kind, at = int(parts[0]), int(parts[1]), parts[2], float(parts[3])
        span = spans.get((job, epoch))
        if span is None:
            span = spans[(job, epoch)] = Span(job, epoch, at, at)
        span.start, span.last = min(span.start, at), max(span.last, at)
        span.ended = span.ended or kind == "end"
    return spans


@dataclass
class FinalState:
    jobs: dict[int, JobRow]
    runs: list[RunRow]
    ledger: list[LedgerRow]
    spans: dict[tuple[int, int], Span] = field(default_factory=dict)

    @classmethod
    def from_fleet(cls, fleet: Any) -> FinalState:
        jobs: dict[int, JobRow] = {}
        offset = 0
        while batch := fleet.list_jobs(limit=10_000, offset=offset):
            for j in batch:
                jobs[j.id] = JobRow(j.id, str(j.status), j.lease_epoch, j.lock, j.result)
            offset += len(batch)
        runs: list[RunRow] = []
        ledger: list[LedgerRow] = []
        for job_id in sorted(jobs):
            for r in fleet.runs(job_id):
                runs.append(
                    RunRow(
                        job_id,
                        r.epoch,
                        r.worker,
                        str(r.status),
                        _seconds(r.started_at),
                        None if r.finished_at is None else _seconds(r.finished_at),
                    )
                )
            for e in fleet.ledger(job_id):
                ledger.append(
                    LedgerRow(job_id, e.key, e.epoch, e.value, e.worker, _seconds(e.written_at))
                )
        return cls(jobs, runs, ledger)


def _seconds(when: datetime) -> float:
    return when.timestamp()


# -- the checker -------------------------------------------------------------------------


@dataclass
class Report:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ANOMALIES, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    stats: dict[str, int] = field(default_factory=Counter)

    def add(self, anomaly: str, detail: str) -> None:
        self.counts[anomaly] += 1
        if len(self.examples[anomaly]) < 5:
            self.examples[anomaly].append(detail)

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "anomalies": dict(self.counts),
            "examples": {k: v for k, v in self.examples.items() if v},
            "stats": dict(sorted(self.stats.items())),
        }

    def describe(self) -> str:
        lines = [f"{name}: {count}" for name, count in self.counts.items()]
        for name, details in self.examples.items():
            lines.extend(f"  {name}: {d}" for d in details)
        return "\n".join(lines)


def check(ops: Sequence[Op], state: FinalState) -> Report:
    """Judge a history against the final state; see the module docstring for each count."""
    report = Report()
    runs_by_job: dict[int, list[RunRow]] = defaultdict(list)
    for run in state.runs:
        runs_by_job[run.job].append(run)
    for runs in runs_by_job.values():
        runs.sort(key=lambda r: r.epoch)
    run_at = {(r.job, r.epoch): r for r in state.runs}
    ledger_at = {(e.job, e.key, e.epoch): e for e in state.ledger}

    _resolve_unknowns(ops, state, run_at, ledger_at, report)
    claims = _claims(ops)  # (job, epoch, worker, op)
    _check_lost(ops, state, report)
    _check_lost_writes(ops, state, run_at, ledger_at, report)
    _check_duplicates(ops, state, runs_by_job, report)
    _check_epochs(claims, runs_by_job, report)
    _check_stale(ops, claims, state, runs_by_job, run_at, report)
    _check_live_leases(ops, runs_by_job, report)
    _check_run_records(ops, claims, state, runs_by_job, report)
    _check_locks(ops, state, runs_by_job, report)
    _check_processes(state, report)
    for op in ops:
        report.stats[f"ops.{op.f}.{op.type}"] += 1
    report.stats["jobs"] = len(state.jobs)
    report.stats["runs"] = len(state.runs)
    report.stats["ledger_entries"] = len(state.ledger)
    for job in state.jobs.values():
        report.stats[f"jobs.{job.status}"] += 1
    return report


def _claims(ops: Sequence[Op]) -> list[tuple[int, int, str, Op]]:
    out = []
    for op in ops:
        for job, epoch in op.leases():
            out.append((job, epoch, op.process, op))
    return out


def _resolve_unknowns(
    ops: Sequence[Op],
    state: FinalState,
    run_at: dict[tuple[int, int], RunRow],
    ledger_at: dict[tuple[int, str, int], LedgerRow],
    report: Report,
) -> None:
    """Decide each ambiguous outcome from what the database holds, and count them."""
    # An ending write (complete, fail, release) takes effect at most once per epoch: when a
    # retry of it was acknowledged, the ambiguous attempt before it did not take effect.
    # Likewise, of several ambiguous attempts at one ending, at most one took effect.
    taken = {(op.f, op.job, op.epoch) for op in ops if op.type == "ok" and op.f in ENDINGS}
    for op in ops:
        if op.type != "unknown" or op.f in ("pause", "fault", "note"):
            continue
        run = run_at.get((op.job, op.epoch)) if op.job is not None else None
        if (op.f, op.job, op.epoch) in taken:
            op.resolved = "fail"
        elif op.f == "complete":
            op.resolved = "ok" if run is not None and run.status == "succeeded" else "fail"
        elif op.f == "fail":
            op.resolved = (
                "ok" if run is not None and run.status in ("failed", "cancelled") else "fail"
            )
        elif op.f == "release":
            op.resolved = (
                "ok" if run is not None and run.status in ("released", "cancelled") else "fail"
            )
        elif op.f == "fenced_write":
            entry = ledger_at.get((op.job, op.args.get("key"), op.epoch))  # type: ignore[arg-type]
            op.resolved = (
                "ok" if entry is not None and entry.value == op.args.get("value") else "fail"
            )
        elif op.f == "cancel":
            job = state.jobs.get(op.job) if op.job is not None else None
            op.resolved = "ok" if job is not None and job.status == "cancelled" else None
        elif op.f in CLAIMS:
            continue  # judged by the runs they left, in _check_run_records
        # RESUME HOOK: when workers record "resume", resolve an unknown one here from the
        # state it leaves (the run or plan it moved), as cancel is resolved above.
        else:  # renew, enqueue, retry: no durable trace of their own to judge by
            op.resolved = None
        if op.resolved == "ok" and op.f in ENDINGS:
            taken.add((op.f, op.job, op.epoch))
        report.stats["unknown"] += 1
        report.stats[f"unknown.resolved_{op.resolved or 'undecided'}"] += 1


def _check_lost(ops: Sequence[Op], state: FinalState, report: Report) -> None:
    acknowledged: set[int] = set()
    for op in ops:
        if op.f == "enqueue" and op.type == "ok":
            acknowledged.update(int(j) for j in op.value or [])
    for op in ops:
        if op.job is not None and op.f in CLAIMS | LEASE_WRITES:
            acknowledged.add(op.job)
    for job_id in sorted(acknowledged):
        if job_id not in state.jobs:
            report.add("lost", f"job {job_id} vanished")
    for job in state.jobs.values():
        if job.status not in TERMINAL:
            report.add("lost", f"job {job.id} ended {job.status} at epoch {job.lease_epoch}")


def _check_lost_writes(
    ops: Sequence[Op],
    state: FinalState,
    run_at: dict[tuple[int, int], RunRow],
    ledger_at: dict[tuple[int, str, int], LedgerRow],
    report: Report,
) -> None:
    for op in ops:
        if op.type != "ok" or op.job is None:
            continue
        run = run_at.get((op.job, op.epoch)) if op.epoch is not None else None
        where = f"job {op.job} epoch {op.epoch} by {op.process}"
        if op.f == "complete":
            job = state.jobs.get(op.job)
            if run is None or run.status != "succeeded" or job is None or job.status != "succeeded":
                report.add("lost_writes", f"acknowledged complete of {where} is not stored")
        elif op.f == "fail" and (run is None or run.status not in ("failed", "cancelled")):
            report.add("lost_writes", f"acknowledged fail of {where} is not stored")
        elif op.f == "fenced_write":
            entry = ledger_at.get((op.job, op.args.get("key"), op.epoch))  # type: ignore[arg-type]
            if entry is None:
                report.add("lost_writes", f"acknowledged ledger write of {where} is not stored")


def _check_duplicates(
    ops: Sequence[Op], state: FinalState, runs_by_job: dict[int, list[RunRow]], report: Report
) -> None:
    completes: dict[int, list[Op]] = defaultdict(list)
    for op in ops:
        if op.f == "complete" and op.succeeded and op.job is not None:
            completes[op.job].append(op)
    for job_id, done in completes.items():
        if len(done) > 1:
            report.add(
                "duplicated",
                f"job {job_id} completed {len(done)} times (epochs {[o.epoch for o in done]})",
            )
        succeeded = [r.epoch for r in runs_by_job.get(job_id, []) if r.status == "succeeded"]
        for op in done:
            if succeeded and op.epoch not in succeeded:
                report.add(
                    "duplicated",
                    f"job {job_id}: complete acknowledged for epoch {op.epoch} but epoch "
                    f"{succeeded} succeeded",
                )
    for job_id, runs in runs_by_job.items():
        won = [r.epoch for r in runs if r.status == "succeeded"]
        if len(won) > 1:
            report.add("duplicated", f"job {job_id} has {len(won)} succeeded runs {won}")
    by_key: dict[tuple[int, str], list[LedgerRow]] = defaultdict(list)
    for entry in state.ledger:
        by_key[(entry.job, entry.key)].append(entry)
    for (job_id, key), entries in by_key.items():
        entries.sort(key=lambda e: e.epoch)
        for older, newer in itertools.combinations(entries, 2):
            if older.written > newer.written + EPS:
                report.add(
                    "duplicated",
                    f"job {job_id} ledger {key!r}: epoch {older.epoch} wrote after epoch "
                    f"{newer.epoch} had written",
                )


def _check_epochs(
    claims: list[tuple[int, int, str, Op]],
    runs_by_job: dict[int, list[RunRow]],
    report: Report,
) -> None:
    by_job: dict[int, list[tuple[int, str, Op]]] = defaultdict(list)
    for job, epoch, worker, op in claims:
        by_job[job].append((epoch, worker, op))
    for job, got in by_job.items():
        seen = Counter(epoch for epoch, _, _ in got)
        for epoch, n in seen.items():
            if n > 1:
                report.add("epochs_not_increasing", f"job {job}: epoch {epoch} claimed {n} times")
        for (e1, w1, a), (e2, w2, b) in itertools.permutations(got, 2):
            if a.end_t < b.invoke_t and e1 >= e2:
                report.add(
                    "epochs_not_increasing",
                    f"job {job}: claim by {w2} got epoch {e2} after {w1}'s claim got {e1}",
                )
    for job, runs in runs_by_job.items():
        by_start = sorted(runs, key=lambda r: r.started)
        for a, b in itertools.pairwise(by_start):
            if b.epoch <= a.epoch:
                report.add(
                    "epochs_not_increasing",
                    f"job {job}: run of epoch {b.epoch} started after the run of epoch {a.epoch}",
                )


def _check_stale(
    ops: Sequence[Op],
    claims: list[tuple[int, int, str, Op]],
    state: FinalState,
    runs_by_job: dict[int, list[RunRow]],
    run_at: dict[tuple[int, int], RunRow],
    report: Report,
) -> None:
    # Real time: a write invoked after a newer epoch's claim was acknowledged.
    first_ack: dict[tuple[int, int], float] = {}
    for job, epoch, _, op in claims:
        first_ack[(job, epoch)] = min(first_ack.get((job, epoch), op.end_t), op.end_t)
    newer_acks: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for (job, epoch), t in first_ack.items():
        newer_acks[job].append((epoch, t))
    for op in ops:
        if op.f not in LEASE_WRITES or not op.succeeded or op.job is None or op.epoch is None:
            continue
        for epoch, t in newer_acks.get(op.job, []):
            if epoch > op.epoch and t < op.invoke_t:
                report.add(
                    "stale_commits",
                    f"{op.f} of job {op.job} epoch {op.epoch} by {op.process} accepted after "
                    f"epoch {epoch} was claimed",
                )
                break
    # Store clock: ledger entries written after their run ended or a newer run began.
    for entry in state.ledger:
        own = run_at.get((entry.job, entry.epoch))
        if own is None:
            report.add(
                "stale_commits", f"job {entry.job} ledger entry from epoch {entry.epoch} has no run"
            )
            continue
        if own.finished is not None and entry.written > own.finished + EPS:
            report.add(
                "stale_commits",
                f"job {entry.job} ledger {entry.key!r} epoch {entry.epoch} written after its run "
                f"ended ({own.status})",
            )
            continue
        for run in runs_by_job.get(entry.job, []):
            if run.epoch > entry.epoch and entry.written > run.started + EPS:
                report.add(
                    "stale_commits",
                    f"job {entry.job} ledger {entry.key!r} epoch {entry.epoch} written after "
                    f"epoch {run.epoch} started",
                )
                break
    # Store clock: a renewal whose granted expiry says it committed after a newer run began.
    for op in ops:
        if op.f != "renew" or op.type != "ok" or op.job is None or op.epoch is None:
            continue
        expires, ttl = (op.value or {}).get("expires"), op.args.get("ttl")
        if expires is None or ttl is None:
            continue
        for run in runs_by_job.get(op.job, []):
            if run.epoch > op.epoch and expires - ttl > run.started + EPS:
                report.add(
                    "stale_commits",
                    f"renew of job {op.job} epoch {op.epoch} by {op.process} committed after "
                    f"epoch {run.epoch} started",
                )
                break
    # Pause trials: after waking, the replaced worker's writes must all be refused.
    for trial in ops:
        if trial.f != "pause" or not trial.args.get("replaced"):
            continue
        target, job, epoch = trial.args["target"], trial.job, trial.epoch
        woke = trial.args["cont_t"]
        report.stats["pause.trials_replaced"] += 1
        attempted = 0
        for op in ops:
            if (
                op.process == target
                and op.job == job
                and op.epoch == epoch
                and op.f in LEASE_WRITES
                and op.invoke_t >= woke
            ):
                attempted += 1
                if op.succeeded:
                    report.add(
                        "stale_commits",
                        f"{op.f} of job {job} epoch {epoch} by {target} accepted after it woke "
                        "from a pause in which it was replaced",
                    )
                elif op.type == "fail":
                    report.stats["pause.woken_writes_refused"] += 1
        report.stats["pause.woken_writes_attempted"] += attempted
        if attempted:
            report.stats["pause.trials_with_woken_writes"] += 1


def _lease_ends(ops: Sequence[Op]) -> dict[tuple[int, int], float]:
    """The latest expiry the store granted each (job, epoch), from claim and renew acks."""
    granted: dict[tuple[int, int], float] = {}
    for op in ops:
        if op.type != "ok":
            continue
        if op.f in CLAIMS:
            for g in op.value or []:
                key = (int(g["job"]), int(g["epoch"]))
                granted[key] = max(granted.get(key, 0.0), float(g["expires"]))
        elif op.f == "renew" and op.job is not None and op.epoch is not None:
            expires = (op.value or {}).get("expires")
            if expires is not None:
                key = (op.job, op.epoch)
                granted[key] = max(granted.get(key, 0.0), float(expires))
    return granted


def _check_live_leases(
    ops: Sequence[Op], runs_by_job: dict[int, list[RunRow]], report: Report
) -> None:
    granted = _lease_ends(ops)
    for job, runs in runs_by_job.items():
        for prev, nxt in itertools.pairwise(runs):
            # An expired run is closed by the claim that takes over (in the same statement),
            # so for it the lease's granted expiry is what the next start must follow.
            if prev.finished is None or (
                prev.status != "expired" and nxt.started < prev.finished - EPS
            ):
                report.add(
                    "two_live_leases",
                    f"job {job}: epoch {nxt.epoch} started while the run of epoch {prev.epoch} "
                    "was open",
                )
            elif prev.status == "expired":
                expiry = granted.get((job, prev.epoch))
                if expiry is not None and nxt.started < expiry - EPS:
                    report.add(
                        "two_live_leases",
                        f"job {job}: epoch {nxt.epoch} started {expiry - nxt.started:.3f}s "
                        f"before epoch {prev.epoch}'s lease expired",
                    )


def _check_run_records(
    ops: Sequence[Op],
    claims: list[tuple[int, int, str, Op]],
    state: FinalState,
    runs_by_job: dict[int, list[RunRow]],
    report: Report,
) -> None:
    runs = {(r.job, r.epoch): r for r in state.runs}
    explained: set[tuple[int, int]] = set()
    for job, epoch, worker, _ in claims:
        run = runs.get((job, epoch))
        if run is None or run.worker != worker:
            report.add("run_records", f"claim of job {job} epoch {epoch} by {worker} has no run")
        explained.add((job, epoch))
    # Runs no acknowledged claim explains must belong to a claim whose reply was lost.
    unknown_claims: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.f in CLAIMS and op.type == "unknown":
            unknown_claims[op.process].append(op)
    for run in sorted(state.runs, key=lambda r: r.started):
        if (run.job, run.epoch) in explained:
            continue
        candidates = unknown_claims.get(run.worker, [])
        if not candidates:
            report.add(
                "run_records",
                f"run of job {run.job} epoch {run.epoch} by {run.worker} matches no claim",
            )
            continue
        min(candidates, key=lambda o: abs(o.invoke_t - run.started)).resolved = "ok"
    # A claim whose reply was lost took effect exactly when it left a run.
    for pending in unknown_claims.values():
        for op in pending:
            op.resolved = op.resolved or "fail"
            report.stats["unknown"] += 1
            report.stats[f"unknown.resolved_{op.resolved}"] += 1
    for job in state.jobs.values():
        epochs = [r.epoch for r in runs_by_job.get(job.id, [])]
        if epochs != list(range(1, job.lease_epoch + 1)):
            report.add(
                "run_records",
                f"job {job.id} at epoch {job.lease_epoch} has runs for epochs {epochs}",
            )


def _check_locks(
    ops: Sequence[Op], state: FinalState, runs_by_job: dict[int, list[RunRow]], report: Report
) -> None:
    by_lock: dict[str, list[RunRow]] = defaultdict(list)
    for job in state.jobs.values():
        if job.lock is not None:
            by_lock[job.lock].extend(runs_by_job.get(job.id, []))
    windows: dict[str, list[tuple[float, float, int]]] = {}
    for lock, runs in by_lock.items():
        spans = sorted(
            (r.started, float("inf") if r.finished is None else r.finished, r.job) for r in runs
        )
        windows[lock] = spans
        for (s1, e1, j1), (s2, e2, j2) in itertools.combinations(spans, 2):
            if j1 != j2 and s2 < e1 - EPS and s1 < e2 - EPS:
                report.add("lock_overlaps", f"lock {lock!r}: runs of jobs {j1} and {j2} overlap")
    # A write accepted for one job entirely inside another's run of the same lock.
    for op in ops:
        if op.f not in LEASE_WRITES or op.type != "ok" or op.job is None or op.done_t is None:
            continue
        job = state.jobs.get(op.job)
        if job is None or job.lock is None:
            continue
        for start, end, other in windows.get(job.lock, []):
            if other != op.job and start + EPS < op.invoke_t and op.done_t < end - EPS:
                report.add(
                    "lock_overlaps",
                    f"lock {job.lock!r}: {op.f} of job {op.job} accepted while job {other} "
                    "held the lock",
                )
                break


def _at_once(a: Span, b: Span) -> bool:
    return a.start < b.last - EPS and b.start < a.last - EPS


def _check_processes(state: FinalState, report: Report) -> None:
    """No two attempts of one job, and no two jobs of one lock, ran at the same moment."""
    by_job: dict[int, list[Span]] = defaultdict(list)
    for span in state.spans.values():
        by_job[span.job].append(span)
    by_lock: dict[str, list[Span]] = defaultdict(list)
    for job, spans in by_job.items():
        for a, b in itertools.combinations(sorted(spans, key=lambda x: x.start), 2):
            if _at_once(a, b):
                report.add(
                    "attempts_at_once",
                    f"job {job}: epoch {a.epoch} ran until {a.last:.3f}, "
                    f"epoch {b.epoch} started at {b.start:.3f}",
                )
        row = state.jobs.get(job)
        if row is not None and row.lock is not None:
            by_lock[row.lock].extend(spans)
    for lock, spans in by_lock.items():
        spans.sort(key=lambda x: x.start)
        for i, a in enumerate(spans):
            for b in spans[i + 1 :]:
                if b.start >= a.last - EPS:
                    break  # sorted by start: no later span can overlap a
                if a.job != b.job and _at_once(a, b):
                    report.add(
                        "locked_jobs_at_once",
                        f"lock {lock!r}: job {a.job} (epoch {a.epoch}) and job {b.job} "
                        f"(epoch {b.epoch}) ran at once",
                    )
    report.stats["processes"] = len(state.spans)
    report.stats["processes.killed"] = sum(not span.ended for span in state.spans.values())
