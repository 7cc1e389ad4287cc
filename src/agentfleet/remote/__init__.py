"""Remote workers: a worker that reaches its fleet through `agentfleet serve` with a token.

:class:`RemoteFleet` has the verbs a :class:`~agentfleet.Worker` calls, spoken over HTTP;
:class:`LeaseClient` is a running job's way to the fleet through its lease token;
:mod:`agentfleet.remote.wire` is the JSON both sides share, :mod:`agentfleet.remote.http`
the transport.
"""

from agentfleet.remote.client import PlanBudget, RemoteFleet
from agentfleet.remote.lease import LeaseClient

__all__ = ["LeaseClient", "PlanBudget", "RemoteFleet"]
