"""Deliberately broken copies of agentfleet, to show the safety net catches each bug."""
