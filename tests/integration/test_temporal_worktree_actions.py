"""A run's git actions and its file browser on the Temporal executor (issue 16), done on the
worker host that holds the run's worktree: commit, rebase (a conflict answered as locally),
taking and restoring checkpoints, the file browser, and an agent merge.

Real processes: one PostgreSQL (the suite's cluster), the Temporal dev server, one API server
with ``--executor temporal`` and two ``codeyard worker`` hosts, whose data directories the API
server cannot see (its own mount namespace has an empty directory there, checked through
``/proc/<pid>/root``). This test process sees the worktree and checks it with git. Each test
fails when the API server does the work in the path it cannot see (dispatch forced local).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from codeyard.testing.postgres import PostgresCluster
from tests.conftest import make_repo
from tests.support.server import event_log, wait_for_event, wait_status
from tests.support.temporal import Cluster, blind_cluster

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster(
    pg_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("actions")
    with blind_cluster(
        root, pg_cluster.create_database(), hosts=("h1", "h2"), api_servers=1
    ) as made:
        yield made


def git(where: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def reviewed_run(
    client: httpx.AsyncClient,
    cluster: Cluster,
    repo: Path,
    *steps: dict[str, Any],
    on_message: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], Path]:
    """A script run that went through its turn on the worker; its worktree, which the API
    server cannot see."""
    options: dict[str, Any] = {"scenario": {"steps": list(steps)}, "permission_mode": "auto"}
    if on_message is not None:
        options["on_message"] = on_message
    resp = await client.post(
        "/api/runs",
        json={
            "prompt": "Work on the worker",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": options,
        },
    )
    assert resp.status_code == 201, resp.text
    run = await wait_status(client, resp.json()["id"], "review", timeout=120)
    worktree = Path(next(iter(run["worktrees"].values())))
    cluster.host_of(run)  # on a worker host's disk
    assert worktree.is_dir()
    [api] = cluster.api
    assert not Path(f"/proc/{api.pid}/root{worktree}").exists()
    return run, worktree


def _write(step_path: str, content: str) -> dict[str, Any]:
    return {"write": {"path": step_path, "content": content}}


async def test_commit_and_rebase_on_the_worker_host(cluster: Cluster) -> None:
    """The commit takes the agent's file and one written after the turn; the rebase moves the
    run branch onto the moved main; a rebase that conflicts answers 409 with the conflicting
    path, and the branch stays where it was."""
    repo = make_repo(cluster.repo.parent / "committed")
    async with cluster.api[0].client(timeout=90) as client:
        with anyio.fail_after(240):
            run, worktree = await reviewed_run(client, cluster, repo, _write("made.txt", "x\n"))
            (worktree / "live.txt").write_text("after the turn\n")
            committed = await client.post(
                f"/api/runs/{run['id']}/commit", json={"message": "By hand"}
            )
            nothing = await client.post(f"/api/runs/{run['id']}/commit")
            (repo / "upstream.txt").write_text("upstream\n")
            git(repo, "add", "upstream.txt")
            git(repo, "commit", "-qm", "upstream moved")
            rebased = await client.post(f"/api/runs/{run['id']}/rebase")
            head = git(worktree, "rev-parse", "HEAD")
            (repo / "live.txt").write_text("upstream too\n")
            git(repo, "add", "live.txt")
            git(repo, "commit", "-qm", "upstream clashes")
            clash = await client.post(f"/api/runs/{run['id']}/rebase")
            events = await event_log(client, run["id"])
    assert committed.status_code == 200, committed.text
    [sha] = committed.json()["commits"].values()
    assert git(worktree, "log", "-1", "--format=%H%n%s", sha) == f"{sha}\nBy hand"
    assert git(worktree, "show", "--name-only", "--format=", sha).split() == [
        "live.txt",
        "made.txt",
    ]
    assert git(worktree, "status", "--porcelain") == ""
    assert nothing.status_code == 409 and "no outstanding changes" in nothing.json()["detail"]
    assert rebased.status_code == 200, rebased.text
    assert list(rebased.json()["heads"].values()) == [head]
    assert (worktree / "upstream.txt").read_text() == "upstream\n"
    assert git(worktree, "log", "-1", "--format=%s", head) == "By hand"
    assert clash.status_code == 409, clash.text
    assert clash.json()["conflicts"] == ["live.txt"]
    assert git(worktree, "rev-parse", "HEAD") == head  # changed nothing
    assert [e["type"] for e in events if e["type"].startswith("git.")] == [
        "git.committed",
        "git.rebased",
    ]


async def test_checkpoints_are_taken_and_restored_on_the_worker_host(cluster: Cluster) -> None:
    """A manual checkpoint holds a file written after the turn; restoring the turn's checkpoint
    puts the worktree back (the later file gone, the agent's content back) after an undo
    checkpoint, and restoring the undo brings the later state back. Every one of them reaches
    the shared remote (the host's process took them)."""
    async with cluster.api[0].client(timeout=90) as client:
        with anyio.fail_after(240):
            run, worktree = await reviewed_run(
                client, cluster, cluster.repo, _write("a.txt", "1\n")
            )
            url = f"/api/runs/{run['id']}/checkpoints"
            [turn] = (await client.get(url)).json()["data"]
            (worktree / "a.txt").write_text("2\n")
            (worktree / "b.txt").write_text("later\n")
            manual = await client.post(url, json={"description": "by hand"})
            restored = await client.post(f"/api/checkpoints/{turn['id']}/restore")
            assert restored.status_code == 200, restored.text
            files = {p.name: p.read_text() for p in worktree.glob("*.txt")}
            undo = restored.json()["undo_checkpoint"]
            redone = await client.post(f"/api/checkpoints/{undo['id']}/restore")
            listed = (await client.get(url)).json()["data"]
            # Taken by the host's process, they reach the shared remote as turn-end ones do.
            wanted = {f"/{run['id']}/{n}" for n in (1, 2, 3, 4)}
            while not all(any(r.endswith(w) for r in pushed(cluster)) for w in wanted):
                await anyio.sleep(0.2)
    assert manual.status_code == 201, manual.text
    assert manual.json()["number"] == 2 and manual.json()["kind"] == "manual"
    [commit] = manual.json()["commits"].values()
    assert git(worktree, "show", f"{commit}:b.txt") == "later"
    assert files == {"a.txt": "1\n"}
    assert (undo["number"], undo["kind"]) == (3, "pre_restore")
    assert restored.json()["diff_stats"] == {"files": 1, "insertions": 1, "deletions": 0}
    assert redone.status_code == 200, redone.text
    assert (worktree / "a.txt").read_text() == "2\n"
    assert (worktree / "b.txt").read_text() == "later\n"
    assert [c["kind"] for c in listed] == ["turn", "manual", "pre_restore", "pre_restore"]


def pushed(cluster: Cluster) -> list[str]:
    return git(cluster.shared, "for-each-ref", "--format=%(refname)").split()


async def test_the_file_browser_reads_the_worktree_on_the_worker_host(cluster: Cluster) -> None:
    """Listing and reading show the agent's files and one written after the turn; a path that
    leaves the worktree is refused (400) and a missing one is 404, as locally."""
    async with cluster.api[0].client(timeout=90) as client:
        with anyio.fail_after(240):
            run, worktree = await reviewed_run(
                client, cluster, cluster.repo, _write("docs/x.txt", "agent\n")
            )
            (worktree / "live.txt").write_text("after the turn\n")
            base = f"/api/runs/{run['id']}/workspace"
            listing = await client.get(base, params={"depth": 2})
            read = await client.get(f"{base}/file", params={"path": "live.txt"})
            nested = await client.get(f"{base}/file", params={"path": "docs/x.txt"})
            outside = await client.get(f"{base}/file", params={"path": "../../secret.key"})
            missing = await client.get(f"{base}/file", params={"path": "nope.txt"})
    assert listing.status_code == 200, listing.text
    paths = {e["path"] for e in listing.json()["entries"]}
    assert {"docs", "docs/x.txt", "live.txt", "README.md"} <= paths, paths
    assert read.status_code == 200, read.text
    assert (read.json()["content"], read.json()["binary"]) == ("after the turn\n", False)
    assert nested.json()["content"] == "agent\n"
    assert outside.status_code == 400, outside.text
    assert missing.status_code == 404, missing.text


async def test_an_agent_merge_merges_on_the_worker_host_and_a_second_is_refused(
    cluster: Cluster,
) -> None:
    """The target is merged into the run branch in the worktree on the host (the conflict
    markers stay for the agent, whose turn is told the file); with the merge left unfinished a
    second agent merge answers 409 naming the file, as locally."""
    repo = make_repo(cluster.repo.parent / "merged")
    async with cluster.api[0].client(timeout=90) as client:
        with anyio.fail_after(240):
            run, worktree = await reviewed_run(client, cluster, repo, _write("README.md", "a\n"))
            (repo / "README.md").write_text("user\n")
            git(repo, "commit", "-qam", "user change")
            queued = await client.post(
                f"/api/runs/{run['id']}/resolve", json={"action": "agent_merge"}
            )
            assert queued.status_code == 200, queued.text
            done = queued.json()
            while (done["status"], done["turns"]) != ("review", 2):
                await anyio.sleep(0.2)
                done = (await client.get(f"/api/runs/{run['id']}")).json()
            again = await client.post(
                f"/api/runs/{run['id']}/resolve", json={"action": "agent_merge"}
            )
            events = await event_log(client, run["id"])
    asked = [e["data"] for e in events if e["type"] == "user.message"]
    assert "conflict markers: README.md" in asked[-1]["text"], asked
    assert "<<<<<<<" in (worktree / "README.md").read_text()
    assert again.status_code == 409, again.text
    assert again.json()["unfinished_merge"] is True
    assert again.json()["conflicts"] == ["README.md"]


async def test_a_run_moved_off_a_killed_worker_after_a_restore_has_the_restored_files(
    cluster: Cluster,
) -> None:
    """A file written after turn 1, then checkpoint 1 restored (the undo checkpoint, pushed,
    holds the file); the worker is killed in the next turn. The host that takes the run over
    starts from the restored checkpoint, not from the undo: the file stays gone."""
    turn2 = [{"say": "step a"}, {"sleep": 8}, {"say": "step b"}]
    victim = ""
    try:
        async with cluster.api[0].client(timeout=90) as client:
            with anyio.fail_after(240):
                run, worktree = await reviewed_run(
                    client, cluster, cluster.repo, _write("kept.txt", "1\n"), on_message=turn2
                )
                victim = cluster.host_of(run)
                (worktree / "undone.txt").write_text("undone by the restore\n")
                [turn] = (await client.get(f"/api/runs/{run['id']}/checkpoints")).json()["data"]
                restored = await client.post(f"/api/checkpoints/{turn['id']}/restore")
                assert restored.status_code == 200, restored.text
                while not any(r.endswith(f"/{run['id']}/2") for r in pushed(cluster)):
                    await anyio.sleep(0.2)
                resp = await client.post(f"/api/runs/{run['id']}/messages", json={"text": "go on"})
                assert resp.status_code in (200, 201, 202), resp.text
                await wait_for_event(client, run["id"], _said("step a"), timeout=60)
                cluster.workers[victim].kill()
                await wait_for_event(client, run["id"], _moved, timeout=60)
                done = await wait_status(client, run["id"], "review", "failed", timeout=90)
    finally:  # placement would try the dead host first (live until its row goes stale)
        if victim and cluster.workers[victim].proc is None:
            cluster.workers[victim].spawn()
            cluster.workers[victim].wait_ready(timeout=240)
    assert done["status"] == "review", done
    assert cluster.host_of(done) != victim
    moved = Path(next(iter(done["worktrees"].values())))
    assert (moved / "kept.txt").read_text() == "1\n"
    assert not (moved / "undone.txt").exists()


def _said(text: str) -> Any:
    return lambda e: e["type"] == "agent.message" and e["data"].get("text") == text


def _moved(event: dict[str, Any]) -> bool:
    return event["type"] == "run.status" and "was lost" in (event["data"].get("reason") or "")


async def test_with_the_worker_host_gone_the_actions_answer_409_naming_it(
    cluster: Cluster,
) -> None:
    """Last in the module: it kills every worker. The commit and the file browser answer
    409 naming the host and how to bring it back, after the pickup timeout (the on-host
    workflow runs on the API server's queue: no worker is needed to say the host is gone);
    nothing runs in the API server's own (empty) view of the worktree path."""
    async with cluster.api[0].client(timeout=90) as client:
        with anyio.fail_after(240):
            run, _ = await reviewed_run(client, cluster, cluster.repo, _write("c.txt", "c\n"))
            host = cluster.host_of(run)
            for worker in cluster.workers.values():
                worker.kill()
            answers: dict[str, httpx.Response] = {}

            async def ask(name: str, method: str, url: str) -> None:
                answers[name] = await client.request(method, url)

            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, "commit", "POST", f"/api/runs/{run['id']}/commit")
                tg.start_soon(ask, "browse", "GET", f"/api/runs/{run['id']}/workspace")
    for name, then in (("commit", "commit again"), ("browse", "ask again")):
        resp = answers[name]
        assert resp.status_code == 409, resp.text
        body = resp.json()
        assert body["worker_host"] == host, body
        assert f"codeyard worker --name {host}" in body["detail"], body
        assert body["detail"].endswith(f"then {then}."), body
