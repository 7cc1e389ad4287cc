"""Remote workers: a worker that reaches its fleet through `agentfleet serve` with a token.

:class:`RemoteFleet` has the verbs a :class:`~agentfleet.Worker` calls, spoken over HTTP;
:mod:`agentfleet.remote.wire` is the JSON both sides share.
"""

from agentfleet.remote.client import PlanBudget, RemoteFleet

__all__ = ["PlanBudget", "RemoteFleet"]
