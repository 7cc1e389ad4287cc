"""Drop the PostgreSQL test databases that mutants stopped at their timeout left behind.

Only databases of the mutation run (prefix agentfleet_mutation_) whose creating process is
gone are dropped; a running test session keeps its database.
"""

from __future__ import annotations

import os

from tests import pg

PREFIX = "agentfleet_mutation_"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> None:
    if pg.postgres_problem() is not None:
        return
    import psycopg

    with psycopg.connect(pg.ADMIN_URL, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",)
            ).fetchall()
        ]
    dropped = 0
    for name in names:
        pid = name[len(PREFIX) :].split("_", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            pg.drop_database(pg.with_database(pg.ADMIN_URL, name))
            dropped += 1
    if dropped:
        print(f"dropped {dropped} test database(s) left by stopped mutants")


if __name__ == "__main__":
    main()
