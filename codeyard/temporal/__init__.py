"""Scale-out on Temporal (issue 16): each run a workflow, each drive of it an activity on the
task queue of the host that holds its worktree.

``contracts`` (names and payloads, no I/O) is shared by both sides; ``workflow`` is the durable
run; ``activities``/``host``/``failover`` run on a worker host (``codeyard worker``);
``executor`` is what a stateless API server (``codeyard serve --executor temporal``) uses.
"""
