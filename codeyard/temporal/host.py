"""A worker host's run machinery, on its own thread and event loop.

Drives, deliveries and checkpoint pushes run here, with the same ``TurnDriver`` the local
executor uses (database writes, git, agent processes). The Temporal activities run on the
worker's main loop and only hand work over (``HostRuntime.call``), so the activity heartbeats
on that loop never wait behind git, disk or database work of a turn.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.agents import process
from codeyard.agents.base import RESUME_NOTICE, SESSION_BEHIND
from codeyard.domain.events import StoredEvent
from codeyard.domain.status import RunStatus
from codeyard.executor.approvals import ApprovalGate
from codeyard.executor.handle import RunHandle
from codeyard.executor.recovery import RunProcessRecorder, forget_finished
from codeyard.executor.turns import TurnDriver
from codeyard.sandbox import Sandbox
from codeyard.store import approvals as approval_door
from codeyard.store import checkpoints, fencing, projects, runs
from codeyard.store.db import create_engine
from codeyard.store.writer import Tx, Writer
from codeyard.temporal import deliveries, failover, placement
from codeyard.temporal.contracts import Delivery, DriveInput, DriveResult
from codeyard.temporal.host_sessions import TravellingSessions
from codeyard.workers.registry import Heartbeat

log = logging.getLogger(__name__)
T = TypeVar("T")
S = RunStatus
_WORKING = frozenset({S.PREPARING, S.RUNNING, S.WAITING})


async def _fail_if_working(tx: Tx, run_id: str, reason: str) -> None:
    """Fail a run that is still queued or working (its pending approvals expire unanswered)."""
    current = await runs.lock(tx, run_id)
    if S(current["status"]) in _WORKING | {S.QUEUED}:
        await approval_door.release_unfinished(tx, run_id)
        await runs.set_status(tx, run_id, S.FAILED, reason)
        await approval_door.recount(tx, run_id)


@dataclass(slots=True)
class HostConfig:
    host: str
    database_url: str
    worktree_root: Path
    logs_root: Path
    secrets_key: Path
    shared_remote: Path
    default_permission_mode: str = "default"
    bash_timeout: float = 600.0
    sandbox: Sandbox | None = None
    #: Runs this host drives at once (its ``workers`` row's slots; placement prefers free ones).
    slots: int = 4


class HostRuntime:
    """Owns the engine, writer and turn driver of one worker host, on a dedicated thread."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.handles: dict[str, RunHandle] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"codeyard-host-{config.host}", daemon=True
        )
        self._engine: AsyncEngine | None = None
        self._writer: Writer | None = None
        self._driver: TurnDriver | None = None
        self._heartbeat: Heartbeat | None = None
        #: Pushes of checkpoints to the shared remote not finished yet, per run.
        self._pushes: dict[str, set[asyncio.Task[None]]] = {}
        #: The attempt this host drives each run on (checkpoint pushes are fenced on it).
        self._attempts: dict[str, int] = {}
        #: Agent sessions that travel with the checkpoints (noted, saved, restored here).
        self.sessions = TravellingSessions()

    # -- life cycle (called from the worker's main loop) --------------------------------------

    async def start(self) -> None:
        self._thread.start()
        await self.call(self._open())

    async def stop(self) -> None:
        try:
            await self.call(self._close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 10)
            if not self._thread.is_alive():
                self._loop.close()

    def call(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Run ``coro`` on the host loop; awaiting the result from another loop, cancellable."""
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return asyncio.wrap_future(fut)

    async def _open(self) -> None:
        from codeyard.crypto import secret_box

        cfg = self.config
        for path in (cfg.worktree_root, cfg.logs_root):
            path.mkdir(parents=True, exist_ok=True)
        await failover.ensure_remote(cfg.shared_remote)
        self._engine = create_engine(cfg.database_url)
        self._writer = Writer(self._engine, self._committed)
        await self._writer.start()
        gate = ApprovalGate(self._engine, self._writer, cfg.default_permission_mode)
        self._driver = TurnDriver(
            self._engine,
            self._writer,
            gate,
            cfg.worktree_root,
            cfg.logs_root,
            cfg.bash_timeout,
            secret_box(cfg.secrets_key),
        )
        if cfg.sandbox is not None:
            self._driver.options.contain_with(cfg.sandbox)
        self._driver.options.hooks.append(self.sessions.at_turn_start)
        # The host's row in ``workers`` (capabilities, free slots, heartbeat): placement only
        # picks hosts that can serve the run, and ``GET /api/workers`` lists them with health.
        self._heartbeat = Heartbeat(
            self._engine,
            self._writer,
            kind="temporal",
            slots=cfg.slots,
            free_slots=lambda: max(0, cfg.slots - len(self.handles)),
            host=cfg.host,
        )
        await self._heartbeat.start()  # registers in the background (probing CLIs takes s)

    async def _close(self) -> None:
        if self._heartbeat is not None:
            await self._heartbeat.stop()
        live = [h.task for h in self.handles.values() if h.task is not None]
        for task in live:
            task.cancel()
        await asyncio.gather(*live, return_exceptions=True)
        if self._writer is not None:
            await self._writer.stop()
        if self._engine is not None:
            await self._engine.dispose()

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "the host runtime is not started"
        return self._engine

    @property
    def writer(self) -> Writer:
        assert self._writer is not None, "the host runtime is not started"
        return self._writer

    # -- placement --------------------------------------------------------------------------------

    async def place(self, run_id: str, live: list[str]) -> str:
        """The host of ``live`` the run goes to (``temporal.placement.place``)."""
        return await placement.place(self.engine, self.writer, run_id, live)

    # -- drives ---------------------------------------------------------------------------------

    async def drive(self, job: DriveInput) -> DriveResult:
        """Drive a run from ``queued`` until it rests; take it over first if its host was lost.

        Every write of the drive is fenced on one attempt of the run: the take-over and the
        take on the attempt the run was found on, the attempt's own on the attempt taken, the
        dropping of finished process records on the last of these. Each such job writes to
        that run only, so while it waits for the job-order lock (PostgreSQL) the writer commits
        other runs' appends (``store.writer``) instead of holding every run's agent output
        behind it; and a run another taker moved meanwhile is left alone."""
        run_id = job.run_id
        async with self.engine.connect() as conn:
            found = fencing.Fence(run_id, int((await runs.get(conn, run_id))["attempt"]))
        token = fencing.current.set(found)
        try:
            if job.lost_host:
                try:
                    await self._take_over(run_id, job.lost_host)
                except fencing.StaleAttempt as exc:  # another taker moved the run meanwhile
                    log.warning("run %s: not taken over: %s", run_id, exc)
                    self.sessions.drop_restore(run_id)
                    return await self._result(run_id)
                except Exception as exc:  # the run must not stay "running" with nobody on it
                    log.exception("run %s: taking it over failed", run_id)
                    await self._fail_take_over(run_id, job.lost_host, exc)
                    self.sessions.drop_restore(run_id)
                    return await self._result(run_id)
            # A new attempt: from now on every write of an older one (the lost host, should it
            # come back) is refused. None: the run was stopped or taken before this drive began.
            take = functools.partial(runs.begin_attempt, run_id=run_id, only_in=S.QUEUED)
            attempt = await self.writer.run(take)
        finally:
            fencing.current.reset(token)
        if attempt is not None:
            await self._drive_attempt(run_id, attempt)
        await self.pushed(run_id)
        self.sessions.forget(run_id)
        token = fencing.current.set(found if attempt is None else fencing.Fence(run_id, attempt))
        try:
            await forget_finished(self.engine, self.writer, run_id)
        except fencing.StaleAttempt:  # the run moved on: its process records are not ours
            log.info("run %s: moved on; its process records are left to its new attempt", run_id)
        except Exception:  # bookkeeping only
            log.exception("run %s: could not drop its finished process records", run_id)
        finally:
            fencing.current.reset(token)
        return await self._result(run_id)

    async def _result(self, run_id: str) -> DriveResult:
        async with self.engine.connect() as conn:
            run = await runs.get(conn, run_id)
        return DriveResult(run_id, self.config.host, str(run["status"]))

    async def _fail_take_over(self, run_id: str, lost_host: str, exc: Exception) -> None:
        reason = f"worker {lost_host} was lost and {self.config.host} could not take over: {exc}"
        await self.writer.run(lambda tx: _fail_if_working(tx, run_id, reason[:2000]))

    async def _drive_attempt(self, run_id: str, attempt: int) -> None:
        assert self._driver is not None
        handle = RunHandle(run_id)
        self.handles[run_id] = handle
        self._attempts[run_id] = attempt
        # Every process group the run starts is recorded on it, and every write it makes
        # carries its attempt (the task copies the context).
        token = process.recorder.set(RunProcessRecorder(self.writer, run_id))
        fence = fencing.current.set(fencing.Fence(run_id, attempt))
        try:
            handle.task = asyncio.create_task(self._driver.drive(handle), name=f"run-{run_id}")
        finally:
            fencing.current.reset(fence)
            process.recorder.reset(token)
        try:
            await asyncio.shield(handle.task)
        except asyncio.CancelledError:
            if not handle.task.done():  # the activity was cancelled: stop the run with it
                handle.task.cancel()
                await asyncio.gather(handle.task, return_exceptions=True)
            raise
        except fencing.StaleAttempt as exc:  # another attempt owns the run now
            log.warning("run %s: attempt %s stopped: %s", run_id, attempt, exc)
        except Exception as exc:  # a crash must not leave the run "running" with nobody on it
            log.exception("run %s crashed on %s", run_id, self.config.host)
            reason = f"The run crashed on worker {self.config.host}: {type(exc).__name__}: {exc}"
            fence = fencing.current.set(fencing.Fence(run_id, attempt))
            try:
                await self.writer.run(lambda tx: _fail_if_working(tx, run_id, reason[:2000]))
            except fencing.StaleAttempt:
                pass
            finally:
                fencing.current.reset(fence)
        finally:
            self.handles.pop(run_id, None)

    async def _take_over(self, run_id: str, lost_host: str) -> None:
        """The run's host was lost mid-drive: restore its worktrees here from the last pushed
        checkpoint and queue it again, marked interrupted first (the resumed turn is told)."""
        async with self.engine.connect() as conn:
            run = await runs.get(conn, run_id)
            repos = {r["id"]: r for r in await projects.repos_of(conn, run["project_id"])}
            done = await checkpoints.of_run(conn, run_id)
            # Newest first; a restored checkpoint before the undo taken when it was restored.
            order, since = await failover.take_over_order(conn, run_id, done)
        worktrees: dict[str, str] = {}
        restored: dict[str, Any] | None = None  # the checkpoint restored, first in order (notice)
        for repo_id, old in (run["worktrees"] or {}).items():
            repo = Path(repos[repo_id]["path"])
            dest = self.config.worktree_root.joinpath(*Path(old).parts[-3:])
            start, tree = run["base_commits"][repo_id], None
            for row in order:
                if repo_id not in row["commits"]:
                    continue
                got = await failover.fetch_checkpoint(
                    self.config.shared_remote, repo, repo_id, run_id, int(row["number"])
                )
                if got is not None:
                    tree, start = got, await failover.parent_of(repo, got)
                    if restored is None or order.index(row) < order.index(restored):
                        restored = row
                    break
            await failover.restore_worktree(repo, dest, run["branch"], start, tree)
            worktrees[repo_id] = str(dest)
        reason = f"worker {lost_host} was lost; continued on {self.config.host}"
        saved = await self.sessions.keep_for_restore(self.engine, run)
        async with self.engine.connect() as conn:
            notice = await failover.cut_off_notice(
                conn, run_id, lost_host, self.config.host, restored, since
            )

        async def job(tx: Tx) -> None:
            current = await runs.lock(tx, run_id)
            dropped = (SESSION_BEHIND, RESUME_NOTICE)
            state = {k: v for k, v in (current["agent_state"] or {}).items() if k not in dropped}
            if saved is not None:  # the restored session lacks the interrupted turn's request
                state[SESSION_BEHIND] = saved.turn < int(current["turns"])
            if S(current["status"]) in _WORKING | {S.INTERRUPTED} and int(current["turns"]):
                # Told before the resumed turn's request (that turn only).
                state[RESUME_NOTICE] = {"turn": int(current["turns"]), "text": notice}
            await runs.update_fields(
                tx,
                run_id,
                worker_host=self.config.host,
                agent_state=state,
                **({"worktrees": worktrees} if worktrees else {}),
            )
            status = S(current["status"])
            if status in _WORKING:
                await approval_door.release_unfinished(tx, run_id)
                await runs.set_status(tx, run_id, S.INTERRUPTED, reason)
                await approval_door.recount(tx, run_id)
                status = S.INTERRUPTED
            if status == S.INTERRUPTED:
                await runs.set_status(tx, run_id, S.QUEUED, reason, resume_at_start=False)

        await self.writer.run(job)
        log.warning("run %s: %s", run_id, reason)

    # -- deliveries -------------------------------------------------------------------------------

    async def deliver(self, item: Delivery) -> bool:
        """Hand an operator's answer, an approval's answer or a stop to the live run here."""
        return await deliveries.deliver(self.handles.get(item.run_id), item)

    # -- checkpoints to the shared remote ---------------------------------------------------------

    def _committed(self, events: list[StoredEvent]) -> None:
        """Writer hook: every committed ``checkpoint.created`` is pushed to the shared remote."""
        for event in events:
            if event.type != "checkpoint.created":
                continue
            chk = event.data["checkpoint"]
            attempt = self._attempts.get(event.run_id)
            fence = None if attempt is None else fencing.Fence(event.run_id, attempt)
            task = asyncio.get_running_loop().create_task(
                self._push(
                    event.run_id,
                    fence,
                    int(chk["number"]),
                    dict(chk["commits"]),
                    int(chk.get("turn") or 0),
                )
            )
            pending = self._pushes.setdefault(event.run_id, set())
            pending.add(task)
            task.add_done_callback(pending.discard)

    async def _push(
        self,
        run_id: str,
        fence: fencing.Fence | None,
        number: int,
        commits: dict[str, str],
        turn: int,
    ) -> None:
        handle = self.handles.get(run_id)
        worktrees = dict(handle.run.worktrees) if handle and handle.run else {}
        if not worktrees:
            async with self.engine.connect() as conn:
                worktrees = dict((await runs.get(conn, run_id))["worktrees"] or {})
        try:
            await failover.push_fenced(
                self.engine, self.config.shared_remote, worktrees, run_id, fence, number, commits
            )
            if handle is not None and handle.exiting is not None:
                # The turn's end was recorded while its agent exits (``TurnEnd.exiting``):
                # Claude Code writes its session file on its way out.
                await asyncio.wait([handle.exiting])
            await self.sessions.save(self.engine, self.writer, run_id, fence, turn)
        except fencing.StaleAttempt as exc:  # this host lost the run: its refs are not ours
            log.warning("run %s: checkpoint %d not pushed: %s", run_id, number, exc)
        except Exception:  # the next turn end pushes again; a failover restores older
            log.exception("run %s: pushing checkpoint %d failed", run_id, number)

    async def pushed(self, run_id: str) -> None:
        """Wait for the run's checkpoint pushes in flight."""
        pending = list(self._pushes.get(run_id, ()))
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
