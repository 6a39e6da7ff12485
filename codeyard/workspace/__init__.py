"""Git workspaces for runs: the git CLI runner and run worktrees."""
