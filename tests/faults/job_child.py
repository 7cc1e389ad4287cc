"""A fault run's job: a real child process that records when it runs.

It appends ``JOB EPOCH start TIME``, then a ``tick`` line every TICK seconds while it
works, then ``end``, to the spans file (one ``write`` per line on a file opened for
appending, so concurrent jobs and a kill leave whole lines only). Standard library only:
it is run as ``python -I -S job_child.py SPANS JOB EPOCH SECONDS``.
"""

from __future__ import annotations

import os
import sys
import time

TICK = 0.01


def main(argv: list[str]) -> int:
    path, job, epoch, seconds = argv[1], argv[2], argv[3], float(argv[4])
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(kind: str) -> None:
        os.write(fd, f"{job} {epoch} {kind} {time.time():.6f}\n".encode())

    line("start")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(TICK, left))
        line("tick")
    line("end")
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
