"""Stores: one module per backend behind the Store protocol."""

from agentfleet.store.base import Store

__all__ = ["Store"]
