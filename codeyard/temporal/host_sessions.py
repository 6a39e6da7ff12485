"""Agent sessions that travel with a run's checkpoints between worker hosts.

A run's CLI keeps its session in files of its own (under the turn's environment and working
directory). Each checkpoint pushed to the shared remote saves them with it; a host taking over
a run whose host was lost unpacks them at the run's next turn start, so the agent resumes its
session instead of starting a new one.
"""

from __future__ import annotations

import asyncio
import logging
import tarfile
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.store import fencing, runs
from codeyard.store.writer import Writer
from codeyard.temporal import sessions

log = logging.getLogger(__name__)


class TravellingSessions:
    """One host's notes on its runs' sessions: where each run's CLI keeps them, and the
    sessions brought from a lost host, waiting for their run's next turn here."""

    def __init__(self) -> None:
        #: Each run's agent environment and working directory at its latest turn start here:
        #: where its CLI keeps the session files saved with each checkpoint.
        self._agent_env: dict[str, tuple[dict[str, str], Path]] = {}
        #: Session archives of runs taken over here, unpacked when their next turn starts.
        self._restores: dict[str, sessions.Saved] = {}

    async def keep_for_restore(
        self, engine: AsyncEngine, run: dict[str, Any]
    ) -> sessions.Saved | None:
        """The run's saved session, kept to unpack at its next turn start here; None when
        there is none for the run's current provider and session (then the agent starts a new
        session, told what happened)."""
        async with engine.connect() as conn:
            saved = await sessions.load(conn, str(run["id"]))
        if saved is None or (saved.provider, saved.session_id) != (
            run["provider"],
            run["session_id"],
        ):
            return None
        self._restores[str(run["id"])] = saved
        return saved

    def drop_restore(self, run_id: str) -> None:
        """The take-over did not happen: nothing to unpack for the run."""
        self._restores.pop(run_id, None)

    def forget(self, run_id: str) -> None:
        """The run's drive on this host ended."""
        self._agent_env.pop(run_id, None)
        self._restores.pop(run_id, None)

    def at_turn_start(self, run: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """Option hook: note where this turn's CLI keeps its session, and unpack a session
        brought from a lost host there first (the CLI's directory depends on the turn's
        environment, known only now)."""
        run_id = str(run["id"])
        env = {str(k): str(v) for k, v in (options.get("env") or {}).items()}
        cwd = Path(next(iter((run["worktrees"] or {}).values()), "."))
        self._agent_env[run_id] = (env, cwd)
        saved = self._restores.pop(run_id, None)
        if saved is not None:
            try:  # a few small files, on the host loop (never the heartbeat's)
                written = sessions.restore(saved.provider, saved.archive, env, cwd)
                log.info(
                    "run %s: session %s restored (%d files)", run_id, saved.session_id, len(written)
                )
            except (OSError, ValueError, tarfile.TarError) as exc:  # the CLI then says so
                log.warning(
                    "run %s: could not restore session %s: %s", run_id, saved.session_id, exc
                )
        return options

    async def save(
        self,
        engine: AsyncEngine,
        writer: Writer,
        run_id: str,
        fence: fencing.Fence | None,
        turn: int,
    ) -> None:
        """Save the run's session files with the checkpoint of ``turn`` just pushed (fenced
        like it). Taken after the turn's CLI exited, so the files hold that whole turn."""
        noted = self._agent_env.get(run_id)
        if noted is None:
            return
        async with engine.connect() as conn:
            run = await runs.get(conn, run_id)
        provider, session_id = str(run["provider"]), run["session_id"]
        if provider not in sessions.PROVIDERS or not session_id:
            return
        env, cwd = noted
        files = await asyncio.to_thread(sessions.collect, provider, session_id, env, cwd)
        if not files:
            return
        archive = await asyncio.to_thread(sessions.pack, files)
        if len(archive) > sessions.MAX_ARCHIVE:
            log.warning("run %s: session archive of %d bytes not saved", run_id, len(archive))
            return
        saved = sessions.Saved(provider, str(session_id), turn, archive)
        token = fencing.current.set(fence)
        try:
            await writer.run(lambda tx: sessions.save(tx, run_id, saved))
        finally:
            fencing.current.reset(token)
