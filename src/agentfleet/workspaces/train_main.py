"""`python -m agentfleet.workspaces.train_main merge|land`: the merge train's process.

A module of its own that nothing imports, so that `-m` runs it without the package having
imported it first (the code lives in :mod:`agentfleet.workspaces.merge_job`).
"""

import sys

from agentfleet.workspaces.merge_job import main

if __name__ == "__main__":
    sys.exit(main())
