"""Workspaces: each agent job in a git worktree and branch of its own, fenced like its lease."""
