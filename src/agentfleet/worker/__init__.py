"""The worker: claims jobs up to its free capacity, runs each one, heartbeats, finishes it."""

from agentfleet.worker.core import Worker, default_worker_name
from agentfleet.worker.state import WorkerStats

__all__ = ["Worker", "WorkerStats", "default_worker_name"]
