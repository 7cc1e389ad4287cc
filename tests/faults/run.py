"""Run fault scenarios for as long as you like and print (or save) the table.

    python -m tests.faults.run --backend sqlite --duration 300 --scenario all
    python -m tests.faults.run --backend both --scenario each --duration 120 --json out.json
    python -m tests.faults.run --remote-workers 2 --scenario server-restart,cut,all

Scenarios: kill, pause, terminate (PostgreSQL), write-kill (SQLite), restart (PostgreSQL,
opt-in with --pg-restart-cmd), server-restart and cut (with --remote-workers: restart
`agentfleet serve`, cut the remote workers' connections), all (every fault that applies at
once), or ``each`` for every scenario that applies in turn. Several may be given,
separated by commas. With --remote-workers N every run has N remote workers (over HTTP,
through `agentfleet serve` on the same database) beside the --workers direct ones, and the
kill and pause faults hit both kinds.

The exit status is 0 only when every run passed (every anomaly count zero, SQLite's
integrity check ok) and the fault counts asked for with --require-* were reached.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.faults.harness import SCENARIOS, RunConfig, RunResult, applies, run_scenario
from tests.faults.history import ANOMALIES

SHORT = {
    "lost": "lost",
    "lost_writes": "lost wr",
    "duplicated": "dup",
    "stale_commits": "stale",
    "epochs_not_increasing": "epochs",
    "two_live_leases": "2 leases",
    "run_records": "runs",
    "lock_overlaps": "locks",
    "attempts_at_once": "2 attempts",
    "locked_jobs_at_once": "lock procs",
}


def _faults(r: RunResult) -> str:
    f = r.faults
    parts = []
    if f["sigkill"]:
        part = f"{f['sigkill']} SIGKILL"
        if f["sigkill_remote"]:
            part += f" ({f['sigkill_remote']} remote)"
        if f["sigkill_with_write_in_flight"]:
            part += f" ({f['sigkill_with_write_in_flight']} mid-write)"
        parts.append(part)
    if f["sigstop_trials"]:
        part = f"{f['sigstop_replaced']}/{f['sigstop_trials']} SIGSTOP replaced"
        if f["sigstop_replaced_remote"]:
            part += f" ({f['sigstop_replaced_remote']} remote)"
        if f["sigstop_holding_write_lock"]:
            part += f" (+{f['sigstop_holding_write_lock']} held the write lock)"
        parts.append(part)
    if f["pg_terminate_backend"]:
        parts.append(
            f"{f['pg_terminate_backend']} terminate ({f['pg_terminate_backend_active']} active)"
        )
    if f["pg_restart"]:
        parts.append(f"{f['pg_restart']} restart")
    if f["server_restart"]:
        parts.append(
            f"{f['server_restart']} server restart ({f['server_restart_sigkill']} SIGKILL, "
            f"{f['server_restart_sigterm']} SIGTERM)"
        )
    if f["cut"] or f["answer_cut"]:
        parts.append(
            f"{f['cut']} cuts ({f['connections_cut']} connections), "
            f"{f['answer_cut']} answers dropped"
        )
    return ", ".join(parts) or "-"


def table(results: list[RunResult]) -> str:
    head = ["backend", "scenario", "secs", "faults", "jobs", "ops", "unknown ok/fail/?"]
    head += [SHORT[a] for a in ANOMALIES] + ["integrity", "result"]
    rows = []
    for r in results:
        s = r.report.stats
        ops = sum(v for k, v in s.items() if k.startswith("ops."))
        unknown = (
            f"{s.get('unknown', 0)}: {s.get('unknown.resolved_ok', 0)}/"
            f"{s.get('unknown.resolved_fail', 0)}/{s.get('unknown.resolved_undecided', 0)}"
        )
        rows.append(
            [r.backend, r.scenario, f"{r.seconds:.0f}", _faults(r), str(s.get("jobs", 0))]
            + [str(ops), unknown]
            + [str(r.report.counts[a]) for a in ANOMALIES]
            + [r.integrity or "-", "PASS" if r.ok else "FAIL"]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def markdown(results: list[RunResult]) -> str:
    """The table as Markdown, for a README."""
    head = ["backend", "scenario", "seconds", "faults injected", "jobs", "unknown (ok/fail/?)"]
    head += [SHORT[a] for a in ANOMALIES]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in results:
        s = r.report.stats
        unknown = (
            f"{s.get('unknown', 0)} ({s.get('unknown.resolved_ok', 0)}/"
            f"{s.get('unknown.resolved_fail', 0)}/{s.get('unknown.resolved_undecided', 0)})"
        )
        cells = [r.backend, r.scenario, f"{r.seconds:.0f}", _faults(r), str(s.get("jobs", 0))]
        cells += [unknown] + [str(r.report.counts[a]) for a in ANOMALIES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def totals(results: list[RunResult]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = {}
    for r in results:
        total = out.setdefault(r.backend, Counter())
        total.update(r.faults)
        total["jobs"] += r.report.stats.get("jobs", 0)
        total["woken_writes_refused"] += r.report.stats.get("pause.woken_writes_refused", 0)
        total["job_processes"] += r.report.stats.get("processes", 0)
        total["job_processes_killed"] += r.report.stats.get("processes.killed", 0)
        for a in ANOMALIES:
            total[f"anomaly.{a}"] += r.report.counts[a]
    return {backend: dict(sorted(c.items())) for backend, c in out.items()}


def _scenarios(spec: str, backend: str, remote_workers: int = 0) -> list[str]:
    names: list[str] = []
    for name in spec.split(","):
        name = name.strip()
        if name == "each":
            names += [s for s in SCENARIOS if s != "all"] + ["all"]
        elif name in SCENARIOS:
            names.append(name)
        else:
            raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}, each")
    return [n for n in dict.fromkeys(names) if applies(n, backend, remote_workers)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--scenario", default="all", help="a scenario, a comma list, or each")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per scenario")
    parser.add_argument("--workers", type=int, default=4, help="direct workers (on the database)")
    parser.add_argument(
        "--remote-workers",
        type=int,
        default=0,
        help="remote workers (over HTTP through agentfleet serve, which the run starts); "
        "needed by the server-restart and cut scenarios",
    )
    parser.add_argument("--ttl", type=float, default=1.0, help="lease ttl in seconds")
    parser.add_argument("--pausers", type=int, default=2, help="concurrent SIGSTOP trials")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="keep histories and logs here")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table as Markdown")
    parser.add_argument("--pg-url", default=None, help="PostgreSQL admin URL (creates a db)")
    parser.add_argument(
        "--pg-restart-cmd",
        default=None,
        help="opt in to restarting PostgreSQL mid-run with this command",
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL databases")
    parser.add_argument("--require-kills", type=int, default=0, help="per backend")
    parser.add_argument("--require-stops", type=int, default=0, help="replaced, per backend")
    args = parser.parse_args(argv)
    if args.remote_workers == 0:
        wanted = {name.strip() for name in args.scenario.split(",")}
        if wanted & {"server-restart", "cut"}:
            parser.error("the server-restart and cut scenarios need --remote-workers N")

    seed = args.seed if args.seed is not None else int(time.time())
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    out = args.out or Path(tempfile.mkdtemp(prefix="agentfleet-faults-"))
    results: list[RunResult] = []
    print(f"seed {seed}; histories and logs under {out}", flush=True)
    for backend in backends:
        if backend == "postgres":
            from tests import pg

            if args.pg_url:
                pg.ADMIN_URL = args.pg_url
            problem = pg.postgres_problem()
            if problem:
                print(f"postgres: skipped: {problem}")
                continue
        for scenario in _scenarios(args.scenario, backend, args.remote_workers):
            if scenario == "restart" and not args.pg_restart_cmd:
                print(
                    "postgres/restart: skipped: restarting the server is opt-in "
                    "(--pg-restart-cmd); other users of the server would notice"
                )
                continue
            print(f"{backend}/{scenario}: running for {args.duration:.0f}s ...", flush=True)
            config = RunConfig(
                backend=backend,
                scenario=scenario,
                duration=args.duration,
                out=out / f"{backend}-{scenario}",
                workers=args.workers,
                remote_workers=args.remote_workers,
                ttl=args.ttl,
                seed=seed + len(results),
                pausers=args.pausers,
                pg_admin_url=args.pg_url,
                pg_restart_cmd=args.pg_restart_cmd,
                keep=args.keep,
            )
            result = run_scenario(config)
            results.append(result)
            print(result.describe(), flush=True)
    print()
    print(table(results))
    summary = totals(results)
    for backend, total in summary.items():
        print(f"{backend} totals: {json.dumps(total)}")
    failed = [r for r in results if not r.ok]
    for backend, total in summary.items():
        if total.get("sigkill", 0) < args.require_kills:
            print(f"{backend}: only {total.get('sigkill', 0)} SIGKILLs (< {args.require_kills})")
            failed.append(results[0])
        if total.get("sigstop_replaced", 0) < args.require_stops:
            print(
                f"{backend}: only {total.get('sigstop_replaced', 0)} replaced SIGSTOP trials "
                f"(< {args.require_stops})"
            )
            failed.append(results[0])
    if args.markdown:
        args.markdown.write_text(markdown(results) + "\n")
    if args.json:
        document: dict[str, Any] = {
            "command": "python -m tests.faults.run "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "seed": seed,
            "runs": [r.as_dict() for r in results],
            "totals": summary,
            "ok": not failed,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
