"""Only the store writes the jobs table: the plans layer, the surfaces and everything else
go through store operations, so each job rule and each rev bump is written once."""

from __future__ import annotations

import re
from pathlib import Path

import agentfleet

PACKAGE = Path(agentfleet.__file__).parent
JOB_WRITE = re.compile(r"\b(UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+jobs\b", re.IGNORECASE)


def test_no_module_outside_the_store_writes_the_jobs_table() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "store" not in path.relative_to(PACKAGE).parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if JOB_WRITE.search(line)
    ]
    assert offenders == [], "\n".join(offenders)


def test_the_check_finds_a_job_write() -> None:
    assert JOB_WRITE.search("tx.q(\"UPDATE jobs SET status = 'queued'\")")
    assert JOB_WRITE.search("insert into jobs (queue) values (:q)")
    assert not JOB_WRITE.search("SELECT id FROM jobs WHERE plan_id = :id")
