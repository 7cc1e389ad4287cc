"""Lease tokens: a running job's key to the fleet, good only while its lease is current.

A job that needs the fleet (to read its plan's inputs, enqueue a follow-up, or make a
fenced write about its plan) gets ``AGENTFLEET_LEASE_TOKEN`` instead of any database URL.
The token reads ``afl_<job id>_<epoch>_<mac>``: the mac is an HMAC-SHA256 of the job and
epoch under a key of the fleet's, made once and kept in the database (the settings row
`LEASE_KEY`, never listed), so every server of the fleet checks it alike and nothing else
is stored per token. It is valid while the job is running under that epoch and its lease
has not expired, judged on each request by the store's clock: a takeover, an expiry or
the attempt's end turns it down at once, with no revoke to remember.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from agentfleet.errors import LeaseLost
from agentfleet.store.dialect import Dialect

PREFIX = "afl_"
LEASE_KEY = "secret.lease_token_key"  # a settings row: `agentfleet config` never shows it
_SHAPE = re.compile(r"afl_(\d{1,19})_(\d{1,19})_([A-Za-z0-9_-]{43})")

_CREATE_KEY = """
    INSERT INTO settings (name, value, updated_at) VALUES (:name, :value, {now})
    ON CONFLICT (name) DO NOTHING"""
_CURRENT = """
    SELECT id FROM jobs WHERE id = :id AND lease_epoch = :epoch AND status = 'running'
      AND lease_expires_at >= {now}"""


@dataclass(frozen=True)
class LeaseHolder:
    """Whom a lease token speaks for: one attempt of one job."""

    job_id: int
    epoch: int


def looks_like_lease_token(text: str) -> bool:
    return text.startswith(PREFIX)


class LeaseTokens:
    """Mint and check lease tokens over one store's database."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._key: bytes | None = None

    def mint(self, job_id: int, epoch: int) -> str:
        """The token of this attempt; LeaseLost if it is not the job's current lease."""
        if self.holder(job_id, epoch) is None:
            raise LeaseLost(job_id, epoch)
        return f"{PREFIX}{job_id}_{epoch}_{self._mac(job_id, epoch)}"

    def verify(self, token: str) -> LeaseHolder | None:
        """The attempt a token speaks for, while its lease is current; None otherwise (a
        malformed or forged token, a lease taken over, expired or ended)."""
        match = _SHAPE.fullmatch(token)
        if match is None:
            return None
        job_id, epoch, mac = int(match[1]), int(match[2]), match[3]
        if not hmac.compare_digest(mac.encode(), self._mac(job_id, epoch).encode()):
            return None
        return self.holder(job_id, epoch)

    def holder(self, job_id: int, epoch: int) -> LeaseHolder | None:
        with self.dialect.session() as tx:
            current = tx.one(_CURRENT, {"id": job_id, "epoch": epoch})
        return None if current is None else LeaseHolder(job_id, epoch)

    def _mac(self, job_id: int, epoch: int) -> str:
        digest = hmac.new(self._fleet_key(), f"lease:{job_id}:{epoch}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")

    def _fleet_key(self) -> bytes:
        """The fleet's key, made by whoever needs it first (one row; a racing maker's
        insert does nothing and both read the winner's)."""
        if self._key is None:
            with self.dialect.tx() as tx:
                tx.q(_CREATE_KEY, {"name": LEASE_KEY, "value": secrets.token_urlsafe(32)})
                row = tx.one("SELECT value FROM settings WHERE name = :name", {"name": LEASE_KEY})
            assert row is not None
            self._key = str(row["value"]).encode()
        return self._key


__all__ = ["LEASE_KEY", "PREFIX", "LeaseHolder", "LeaseTokens", "looks_like_lease_token"]
