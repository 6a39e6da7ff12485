"""The parts crash-proof runs stand on (issue 12): the approval transition table, a tool call's
identity across a restart, the spawn gate that records a group before it runs, the ties that
make every link of a run's process chain die with its server, and the start-up sweep that stops
recorded groups (real processes, real ``/proc``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codeyard.agents import process
from codeyard.agents.process import GroupRecord, boot_id, spawn, stop_leftovers
from codeyard.domain.approvals import check_transition, fingerprint
from codeyard.domain.errors import Conflict
from codeyard.sandbox import Sandbox, contain, lifeline
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio
# (plain ``subprocess.Popen`` below on purpose: the processes stand for what a dead server left)


def test_an_approval_is_answered_or_expires_once() -> None:
    for to in ("approved", "rejected", "expired"):
        check_transition("apr_1", "pending", to)
    for current in ("approved", "rejected", "expired"):
        with pytest.raises(Conflict, match=f"already {current}"):
            check_transition("apr_1", current, "approved")
    with pytest.raises(Conflict):
        check_transition("apr_1", "pending", "pending")


def test_the_same_call_has_the_same_fingerprint_whatever_its_call_id_or_key_order() -> None:
    a = fingerprint("Bash", {"command": "npm test ", "timeout": 5})
    b = fingerprint("Bash", {"timeout": 5, "command": "npm test"})
    assert a == b
    assert a != fingerprint("Bash", {"command": "npm test -- --watch", "timeout": 5})
    assert a != fingerprint("Write", {"command": "npm test", "timeout": 5})


class _SlowRecorder:
    """Records like the executor does, slowly (a busy database)."""

    def __init__(self) -> None:
        self.recorded_at: float | None = None
        self.ends: list[GroupRecord] = []

    async def started(self, record: GroupRecord) -> None:
        await asyncio.sleep(0.3)
        self.recorded_at = time.time()

    async def ended(self, record: GroupRecord) -> None:
        self.ends.append(record)


async def test_a_spawned_command_starts_only_once_its_group_is_on_record(tmp_path: Path) -> None:
    recorder = _SlowRecorder()
    token = process.recorder.set(recorder)
    try:
        out = tmp_path / "started"
        proc, group = await spawn(
            ["/bin/sh", "-c", f'date +%s.%N > {out}; echo "$CODEYARD_GATE_FD"'],
            kind="test",
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await proc.communicate()
        await group.untrack()
    finally:
        process.recorder.reset(token)
    assert recorder.recorded_at is not None
    assert float(out.read_text()) >= recorder.recorded_at  # it waited at the gate
    assert stdout.strip() == b""  # the gate's variable does not leak into the command
    assert group.pid == proc.pid and len(recorder.ends) == 1
    assert recorder.ends[0].pgid == proc.pid and recorder.ends[0].kind == "test"


def _record_of(pid: int, kind: str = "test") -> GroupRecord:
    start = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return GroupRecord(pid, start, boot_id(), kind)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


async def test_the_start_up_sweep_stops_a_recorded_group_and_its_children() -> None:
    # A group whose leader has already exited, leaving a grandchild running (as after kill -9).
    leader = subprocess.Popen(  # noqa: ASYNC220
        ["/bin/sh", "-c", "sleep 30 & echo $!"], stdout=subprocess.PIPE, start_new_session=True
    )
    record = _record_of(leader.pid)
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    leader.stdout.close()
    leader.wait()
    assert _alive(child)
    killed = await stop_leftovers([record])
    assert child in killed and not _alive(child)


async def test_the_sweep_leaves_groups_of_another_boot_and_reused_pids_alone() -> None:
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)  # noqa: ASYNC220
    try:
        record = _record_of(proc.pid)
        other_boot = GroupRecord(record.pgid, record.start_ticks, "another-boot", "test")
        later_pid = GroupRecord(record.pgid, record.start_ticks + 10_000_000, boot_id(), "test")
        # A record older than the process now leading that group id: the id was reused.
        reused = GroupRecord(record.pgid, record.start_ticks - 1, boot_id(), "test")
        assert await stop_leftovers([other_boot, later_pid, reused]) == []
        assert _alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()


async def test_spawned_processes_die_with_the_server() -> None:
    """PR_SET_PDEATHSIG through ``setpriv``: a parent killed with SIGKILL takes its child."""
    code = (
        "import asyncio, sys\n"
        "from codeyard.agents.process import spawn\n"
        "async def main():\n"
        "    proc, _ = await spawn(['sleep', '30'], kind='t')\n"
        "    print(proc.pid, flush=True)\n"
        "    await asyncio.sleep(30)\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.stdout.close()
    # ``setpriv`` arms the death signal, then becomes ``sleep``: only then is the child tied
    # to the parent (killed earlier, it would never be told; the gate of ``spawn`` with a
    # recorder covers that window in the server, see test_durable_runs).
    assert await eventually(lambda: _comm(child) == "sleep", timeout=30), _comm(child)
    parent.kill()
    parent.wait()
    assert await eventually(lambda: not _alive(child), timeout=20)


_IN_THE_WINDOW = (
    "import asyncio\n"
    "from codeyard.agents import process\n"
    "class Recorder:\n"
    "    async def started(self, record): pass\n"
    "    async def ended(self, record): pass\n"
    "async def main():\n"
    "    process.recorder.set(Recorder())\n"
    "    await process.spawn(['/bin/sh', '-c', 'touch ran; exec sleep 30'], kind='t')\n"
    "asyncio.run(main())\n"
)


async def test_a_server_killed_in_the_spawn_window_leaves_no_process(tmp_path: Path) -> None:
    """Issue 12: ``kill -9`` after the child is forked but before its group is recorded, and
    before the child got to ``setpriv`` (the kernel never ties it to a dead parent). The gate
    sees its parent is gone and refuses: the command never runs, nothing is left behind.
    The test hook pauses the parent in that window and holds the child before ``setpriv``."""
    window = tmp_path / "window"
    window.mkdir()
    parent = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-c", _IN_THE_WINDOW],
        cwd=tmp_path,
        env={**os.environ, process.SPAWN_WINDOW_ENV: str(window)},
    )
    child = 0
    try:
        assert await eventually(
            lambda: (window / "window").exists() and bool((window / "window").read_text()), 60
        ), "the spawn never reached its window"
        child = int((window / "window").read_text())
        assert _alive(child)
        parent.kill()
        parent.wait(5)
        (window / "go").touch()  # the child runs on, its server gone
        assert await eventually(lambda: not _alive(child), timeout=20), (
            "the spawned process outlived the server"
        )
        assert not (tmp_path / "ran").exists(), "the command ran after the server died"
    finally:
        parent.kill()
        parent.wait(5)
        if child and _alive(child):
            os.kill(child, 9)


def test_claude_launcher_starts_the_cli_only_under_its_server(tmp_path: Path) -> None:
    """Claude Code's launcher (no spawn gate: the SDK spawns it) runs the turn's contained
    script through ``setpriv``, and that script first checks that its parent is still the
    server named in ``CODEYARD_GATE_PARENT``; one that died before the death signal was set
    never sends it, so the CLI must not start. A parent id that is not ours stands for the
    server being gone (the launcher re-parented)."""
    from codeyard.agents.claude.process import CLI_ENV, PID_FILE_ENV, cli_script, launcher

    if not process.pdeathsig_prefix():
        pytest.skip("util-linux setpriv is missing")
    cli = tmp_path / "fake-claude"
    cli.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/ran"\n')
    cli.chmod(0o700)
    jail = contain(Sandbox(enabled=False), "claude-code", [str(cli)], cwd=tmp_path)
    contained = tmp_path / "contained-claude"
    contained.write_text(cli_script(jail, os.environ))
    contained.chmod(0o700)
    base = {**os.environ, CLI_ENV: str(contained), PID_FILE_ENV: str(tmp_path / "pid")}
    gone = subprocess.run(
        [str(launcher()), "--print"],
        env={**base, process.GATE_PARENT_ENV: "1"},
        timeout=30,
        check=False,
    )
    assert gone.returncode == 125 and not (tmp_path / "ran").exists()
    alive = subprocess.run(
        [str(launcher()), "--print"],
        env={**base, process.GATE_PARENT_ENV: str(os.getpid())},
        timeout=30,
        check=False,
    )
    assert alive.returncode == 0 and (tmp_path / "ran").read_text().strip() == "--print"


def test_a_forked_link_starts_only_under_the_shell_that_forked_it(tmp_path: Path) -> None:
    """A fork clears the death signal: the child sets its own, then checks that its parent is
    still the shell named by ``CODEYARD_TIE_PARENT`` (else that shell died first and the
    signal would never come). A parent id that is not ours stands for that shell being gone."""
    if not process.fork_tie_prefix():
        pytest.skip("util-linux setpriv is missing")
    argv = [*process.fork_tie_prefix(), "/bin/sh", "-c", 'touch "$0"']
    gone = subprocess.run(
        [*argv, str(tmp_path / "orphan")],
        env={**os.environ, process.TIE_PARENT_ENV: "1"},
        check=False,
    )
    assert gone.returncode == 125 and not (tmp_path / "orphan").exists()
    tied = subprocess.run(
        [*argv, str(tmp_path / "tied")],
        env={**os.environ, process.TIE_PARENT_ENV: str(os.getpid())},
        check=False,
    )
    assert tied.returncode == 0 and (tmp_path / "tied").exists()


def _run_on_lifeline(argv: list[str], entry: int) -> int:
    """Run ``argv`` with the lifeline open on ``entry`` (a ``/proc/<pid>`` descriptor) as
    :data:`codeyard.sandbox.lifeline.FD`, the way the spawn gate opens it."""
    opened = ["/bin/bash", "-c", f'exec {lifeline.FD}<&"$0"; exec "$@"', str(entry), *argv]
    env = {**os.environ, lifeline.ENV: str(lifeline.FD)}
    done = subprocess.run(opened, env=env, pass_fds=(entry,), check=False, timeout=30)
    return done.returncode


def test_a_sandboxed_command_starts_only_while_its_server_lives(tmp_path: Path) -> None:
    """bubblewrap sets its sandboxed process's death signal only once the sandbox is built, so
    a server killed meanwhile would not take it: inside, the command first checks the lifeline
    (the server's ``/proc`` entry) and does not start once the server is a zombie or gone. It
    never sees the server's entry itself (the descriptor is closed first)."""
    sandbox = Sandbox(worktrees=(tmp_path,))
    if not sandbox.probe().ok:
        pytest.skip("bubblewrap cannot run here")
    script = 'touch "$0"; ls /proc/self/fd > "$0"'
    jail = contain(sandbox, "script", ["/bin/sh", "-c", script], cwd=tmp_path)
    server = subprocess.Popen(["sleep", "30"])  # stands for the server
    entry = os.open(f"/proc/{server.pid}", os.O_RDONLY | os.O_DIRECTORY)

    def run(name: str) -> int:
        return _run_on_lifeline([*jail.argv, str(tmp_path / name)], entry)

    try:
        assert run("alive") == 0
        assert str(lifeline.FD) not in (tmp_path / "alive").read_text().split()
        server.kill()
        deadline = time.monotonic() + 20
        while _alive(server.pid):  # killed, not yet reaped: a zombie
            assert time.monotonic() < deadline, "the killed server never died"
            time.sleep(0.01)
        assert run("zombie") == 125 and not (tmp_path / "zombie").exists()
        server.wait()
        assert run("gone") == 125 and not (tmp_path / "gone").exists()
    finally:
        server.kill()
        server.wait()
        os.close(entry)
