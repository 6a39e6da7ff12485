"""What API servers, the workflow and worker hosts agree on: queue names, payloads, timeouts.

Pure data (no I/O, no Codeyard imports), so the workflow sandbox can import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

#: Every worker polls this queue: workflows, and the placement of runs that hold no worktree yet.
SHARED_QUEUE = "codeyard-runs"
WORKFLOW_NAME = "CodeyardRun"
#: Every API server polls this queue: workflow executions (``executions``), and the
#: ``CodeyardOnHost`` workflows that the API servers start for work on a worker host (``on_host``),
#: so such a workflow runs, and answers that the host is gone, even when no worker is up.
EXECUTIONS_QUEUE = "codeyard-executions"
#: How long a worker may stay silent before Temporal declares its drive lost (then failover).
#: The host's heartbeat task beats every ``HEARTBEAT_EVERY`` seconds; the SDK throttles the
#: beats it sends to 0.8 x this timeout, so the failover delay is between 0.2 and 1 x of it.
#: 5 s moved live runs off hosts of a machine loaded 20x its cores (beats arrived late; the
#: fenced old attempt then stopped): 10 s, Temporal's usual choice, bounds failover near 11 s.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
HEARTBEAT_EVERY = 1.0
#: How long a workflow task waits on the sticky queue of the worker that ran the workflow's last
#: task before any worker may take it (SDK default 10 s): after a worker dies, this adds to the
#: heartbeat timeout before the run moves.
STICKY_TIMEOUT = timedelta(seconds=2)
#: A drive scheduled on a host that does not pick it up in this time is moved elsewhere.
HOST_PICKUP_TIMEOUT = timedelta(seconds=30)
#: A run's workflow ends after this long without work (the next submit starts it again).
IDLE_TIMEOUT = timedelta(hours=1)
#: Short control activities (placement, deliveries, kills) on a host.
CONTROL_TIMEOUT = timedelta(seconds=30)
#: A host counts as live when it polled the shared queue this recently (long polls last ~60 s).
LIVE_POLLER_SECONDS = 75.0
#: How many times a run moves to another host after losing one before it is failed.
MAX_FAILOVERS = 3


def host_queue(host: str) -> str:
    """The task queue only ``host`` polls: turns and control of runs whose worktree it holds."""
    return f"codeyard-host-{host}"


def workflow_id(run_id: str) -> str:
    return f"codeyard-run-{run_id}"


@dataclass(slots=True)
class PlaceInput:
    run_id: str
    #: Hosts not to place on (the one just lost: Temporal lists its pollers for a while).
    exclude: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DriveInput:
    """One drive of a run on a host: from ``queued`` until the run rests."""

    run_id: str
    #: Increases by one every time the run is driven (a new attempt fences the older ones).
    attempt: int
    #: The host the run's worktree was on when that host was lost (empty on a normal drive):
    #: the new host restores the worktree from the last pushed checkpoint.
    lost_host: str = ""


@dataclass(slots=True)
class DriveResult:
    run_id: str
    host: str
    status: str


@dataclass(slots=True)
class Delivery:
    """Something an operator sent to a live run, delivered on the run's host."""

    run_id: str
    #: "answer" (the operator's answer to the agent's question), "offer" (a message was queued
    #: mid-turn), "approval" (an approval's answer), "stop" (cancel, pause, interrupt), "model"
    #: (the run's model was switched: the live agent may switch mid-turn).
    kind: str
    approval_id: str = ""
    text: str = ""
    status: str = ""
    reason: str = ""
    answer: dict[str, str | None] = field(default_factory=dict)
