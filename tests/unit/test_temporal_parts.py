"""The Temporal executor's parts that need no cluster: placement's filter, the wire form of
signals, and checkpoints travelling through a shared bare repository (real git)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from codeyard.executor.interface import ApprovalAnswer, Cancel, Interrupt, Message, Pause
from codeyard.temporal import failover
from codeyard.temporal.executor import delivery_of
from codeyard.temporal.placement import able_hosts
from codeyard.workspace.checkpoints import create_checkpoint
from tests.conftest import make_repo

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _row(host: str, *, seconds_ago: float = 1, script: bool = True) -> dict[str, object]:
    beat = (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")
    providers = {"script": {"available": script, "version": "1"}}
    return {"host": host, "heartbeat_at": beat, "capabilities": {"providers": providers}}


def test_placement_keeps_live_hosts_whose_fresh_row_offers_the_provider() -> None:
    rows = [_row("a"), _row("b", script=False), _row("c", seconds_ago=120), _row("d")]
    assert able_hosts(rows, ["a", "b", "c"], "script", NOW) == ["a"]  # d is not live
    assert able_hosts(rows, ["b"], "script", NOW) == []
    assert able_hosts(rows, ["a", "d"], "codex", NOW) == []


def test_placement_does_not_stall_while_no_host_has_registered_yet() -> None:
    assert able_hosts([], ["a", "b"], "script", NOW) == ["a", "b"]
    assert able_hosts([_row("z")], ["a"], "script", NOW) == ["a"]


def test_signals_travel_as_deliveries() -> None:
    assert delivery_of("r", Message(text="yes", answer=True)).kind == "answer"
    offer = delivery_of("r", Message(text="later"))
    assert (offer.kind, offer.text) == ("offer", "later")
    answer = {"decision": "approved", "reason": None, "decided_by": "ana"}
    approval = delivery_of("r", ApprovalAnswer(approval_id="apr_1", answer=answer))
    assert (approval.kind, approval.approval_id, approval.answer) == ("approval", "apr_1", answer)
    for signal, status in (
        (Cancel(), "cancelled"),
        (Pause(), "paused"),
        (Interrupt(), "interrupted"),
    ):
        stop = delivery_of("r", signal)
        assert (stop.kind, stop.status, stop.reason) == ("stop", status, signal.reason)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip("\n")


@pytest.mark.anyio
async def test_a_pushed_checkpoint_restores_on_another_clone_with_its_uncommitted_state(
    tmp_path: Path,
) -> None:
    """Host A's worktree has a commit on the run branch plus uncommitted edits and a deletion;
    its checkpoint goes to the shared remote; host B (its own clone) restores exactly that."""
    origin = make_repo(tmp_path / "origin", {"keep.txt": "k\n", "gone.txt": "g\n"})
    host_a = tmp_path / "a"
    _git(tmp_path, "clone", "-q", str(origin), str(host_a))
    wt_a = tmp_path / "wt-a"
    _git(host_a, "worktree", "add", "-q", "-b", "codeyard/1-x", str(wt_a))
    (wt_a / "committed.txt").write_text("c\n")
    _git(wt_a, "add", "committed.txt")
    _git(wt_a, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "work")
    (wt_a / "keep.txt").write_text("edited\n")
    (wt_a / "new.txt").write_text("untracked\n")
    (wt_a / "gone.txt").unlink()
    sha = await create_checkpoint(wt_a, "refs/codeyard/run_1/1", "checkpoint")

    shared = tmp_path / "shared.git"
    await failover.ensure_remote(shared)
    await failover.ensure_remote(shared)  # idempotent
    await failover.push_checkpoint(shared, wt_a, "repo_1", "run_1", 1, sha)

    host_b = tmp_path / "b"
    _git(tmp_path, "clone", "-q", str(origin), str(host_b))
    assert await failover.fetch_checkpoint(shared, host_b, "repo_1", "run_1", 2) is None
    got = await failover.fetch_checkpoint(shared, host_b, "repo_1", "run_1", 1)
    assert got == sha
    start = await failover.parent_of(host_b, got)
    wt_b = tmp_path / "wt-b"
    await failover.restore_worktree(host_b, wt_b, "codeyard/1-x", start, got)

    assert _git(wt_b, "rev-parse", "--abbrev-ref", "HEAD") == "codeyard/1-x"
    assert _git(wt_b, "log", "-1", "--format=%s") == "work"
    assert (wt_b / "committed.txt").read_text() == "c\n"
    assert (wt_b / "keep.txt").read_text() == "edited\n"
    assert (wt_b / "new.txt").read_text() == "untracked\n"
    assert not (wt_b / "gone.txt").exists()
    # The restored changes are uncommitted again, as they were on host A.
    status = sorted(_git(wt_b, "status", "--porcelain").splitlines())
    assert status == [" D gone.txt", " M keep.txt", "?? new.txt"]


@pytest.mark.anyio
async def test_restoring_beside_a_stale_worktree_of_the_same_branch(tmp_path: Path) -> None:
    """Shared storage: the lost host's worktree is still registered on the run branch."""
    repo = make_repo(tmp_path / "repo")
    stale = tmp_path / "stale"
    _git(repo, "worktree", "add", "-q", "-b", "codeyard/2-y", str(stale))
    head = _git(repo, "rev-parse", "HEAD")
    fresh = tmp_path / "fresh"
    await failover.restore_worktree(repo, fresh, "codeyard/2-y", head, None)
    assert _git(fresh, "rev-parse", "--abbrev-ref", "HEAD") == "codeyard/2-y"


def test_the_temporal_executor_refuses_sqlite(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from codeyard.config import Settings

    with pytest.raises(ValidationError, match="needs PostgreSQL"):
        Settings(data_dir=tmp_path, executor="temporal")
    url = "postgresql+asyncpg://codeyard@db/codeyard"
    assert Settings(data_dir=tmp_path, executor="temporal", database_url=url).executor == "temporal"
