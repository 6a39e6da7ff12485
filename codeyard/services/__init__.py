"""Use cases that span storage, workspaces and the executor. Routers call these, nothing else."""
