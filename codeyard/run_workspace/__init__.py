"""A run's workspace on disk: preparing and removing its worktrees, and its checkpoints.

Below both the services (delete, land, resolve, retention) and the executors (each turn
prepares worktrees and takes a turn-end checkpoint), so neither reaches into the other.
"""
