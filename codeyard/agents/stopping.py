"""One stop sequence for every agent turn, whichever protocol drives the agent.

Claude Code (stream-json control), Codex (app-server JSON-RPC) and every ACP agent stop the same
way, with the same timings and the same log lines, so a stuck agent of one provider is stopped
as surely and as fast as one of another (issue 12):

1. note every process of the turn's group now (descendants that start their own session are
   found only through their parent while it lives): before the interrupt, or, after a clean
   end, by the first scan of the wait in step 3;
2. interrupted: ask the agent through its own protocol (control ``interrupt``,
   ``turn/interrupt``, ``session/cancel``), waiting at most :data:`INTERRUPT_TIMEOUT`;
3. release its input (close stdin / disconnect) while the group gets :data:`STOP_GRACE` (after
   an interrupt) or :data:`EXIT_GRACE` (after a clean turn end, time to save the session) to
   exit, then SIGINT, SIGTERM and SIGKILL, the same grace between each (``ProcessGroup.stop``,
   which logs every escalation and why);
4. SIGKILL whatever outlived that, reap (exit status, pipes) for at most :data:`REAP_TIMEOUT`,
   and drop the group's durable record.

The sequence runs shielded: the caller's cancellation does not cut it short, but a second
cancellation (somebody gave up waiting) kills the group at once. Adapters supply only what is
their own (:class:`TurnStop`): how to interrupt, how to release the input, how to reap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from codeyard.agents.process import ProcessGroup

__all__ = [
    "EXIT_GRACE",
    "INTERRUPT_TIMEOUT",
    "REAP_TIMEOUT",
    "RELEASE_EXTRA",
    "STOP_GRACE",
    "TurnStop",
    "stop_turn",
]

log = logging.getLogger(__name__)

#: Seconds for the agent to take a protocol interrupt (and end its turn) before signals.
INTERRUPT_TIMEOUT = 3.0
#: Seconds for a clean exit after an interrupt, and between the signals that follow.
STOP_GRACE = 2.0
#: Seconds for a clean exit after a turn that ended normally (the agent saves its session).
EXIT_GRACE = 5.0
#: Seconds the input's release may take beyond the whole escalation (``3 * grace``).
RELEASE_EXTRA = 10.0
#: Seconds to reap a killed agent (its exit status, then its pipes to their end).
REAP_TIMEOUT = 3 * STOP_GRACE

Step = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class TurnStop:
    """What one provider's turn contributes to :func:`stop_turn`."""

    run_id: str
    #: The agent's name in log lines ("Claude Code", "Codex", the ACP agent's name).
    agent: str
    #: The turn's process group (None: the agent never started; nothing to signal).
    group: ProcessGroup | None
    #: The protocol's interrupt (asked only when the turn is interrupted); None: it has none
    #: now (e.g. no turn was started yet).
    interrupt: Step | None = None
    #: Close the agent's input so it exits by itself (stdin, SDK disconnect).
    release: Step | None = None
    #: After the group is gone: collect the exit status, drain and close pipes.
    reap: Step | None = None


async def stop_turn(stop: TurnStop, *, interrupted: bool) -> None:
    """Stop the agent and everything it started (see the module); a second cancellation of
    the caller kills the group at once."""
    task = asyncio.ensure_future(_stop_gently(stop, interrupted))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        if stop.group is not None:
            log.warning("run %s: stopping %s was cancelled; killing it", stop.run_id, stop.agent)
            stop.group.kill()
        raise


async def _stop_gently(stop: TurnStop, interrupted: bool) -> None:
    group = stop.group
    if group is not None and interrupted:
        # Before the interrupt (up to INTERRUPT_TIMEOUT); after a clean end the stopper below
        # scans at once, and a scan of /proc costs ms (more with many agents running).
        group.members()
    if interrupted and stop.interrupt is not None:
        try:
            await asyncio.wait_for(stop.interrupt(), INTERRUPT_TIMEOUT)
        except Exception as exc:  # signals follow: say why the protocol did not do
            log.info("run %s: %s did not take the interrupt: %r", stop.run_id, stop.agent, exc)
    grace = STOP_GRACE if interrupted else EXIT_GRACE
    why = "the turn was interrupted" if interrupted else "the turn ended"
    stopper = asyncio.ensure_future(group.stop(grace, why)) if group is not None else None
    gone = False
    try:
        if stop.release is not None:
            try:
                await asyncio.wait_for(stop.release(), 3 * grace + RELEASE_EXTRA)
            except Exception as exc:  # the process is killed below whatever happened here
                log.info("run %s: releasing %s: %r", stop.run_id, stop.agent, exc)
    finally:
        if stopper is not None:
            gone = await stopper
    if group is not None and not gone:
        group.kill()  # anything that outlived the escalation (seen gone: nothing can have)
    if stop.reap is not None:
        try:
            await asyncio.wait_for(stop.reap(), REAP_TIMEOUT)
        except Exception as exc:  # the group is dead; only its bookkeeping is incomplete
            log.warning("run %s: %s was not reaped: %r", stop.run_id, stop.agent, exc)
    if group is not None:
        await group.untrack()
