"""A remote worker against an HTTPS server with a self-signed certificate: without --ca it
stops at once, saying to give one (a certificate it cannot trust is no server away); with
--ca it runs a job, and the job's lease client trusts the same file (AGENTFLEET_CA)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import agentfleet
from tests.remote.helpers import worker_token
from tests.web.test_serve_tls import make_pair, serve, trusting
from tests.worker.helpers import cli

WRITE = f"{shlex.quote(sys.executable)} -m agentfleet.cli lease write seen-over tls"


def test_a_remote_worker_trusts_a_self_signed_server_only_with_ca(tmp_path: Path) -> None:
    pair = make_pair(tmp_path, "fleet")
    db = f"sqlite:///{tmp_path / 'f.db'}"
    tls = ("--tls-cert", str(pair.cert), "--tls-key", str(pair.key))
    with serve(tmp_path, *tls, ready=trusting(pair.cert)) as running:
        url = f"https://127.0.0.1:{running.port}"
        token = worker_token(db, "box-tls")
        burst = ("worker", "--server", url, "--token", token, "--burst", "--ttl", "5s")

        untrusted = cli(*burst, timeout=60)
        assert untrusted.returncode == 2, untrusted
        assert "does not trust" in untrusted.stderr and "--ca FILE" in untrusted.stderr

        with agentfleet.open(db) as fleet:
            job = fleet.enqueue("shell", {"cmd": WRITE, "db_access": True})
            trusted = cli(*burst, "--ca", str(pair.cert), timeout=120)
            assert trusted.returncode == 0, trusted.stderr
            done = fleet.get_job(job.id)
            assert done.status.value == "succeeded", fleet.runs(job.id)
            [entry] = fleet.ledger(job.id)
            assert (entry.key, entry.value, entry.epoch) == ("seen-over", "tls", 1)
