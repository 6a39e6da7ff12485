"""The sandbox as data and as real bubblewrap: spec building, the environment allowlist and its
refusals, the probe when bwrap is missing, and what a contained process can and cannot reach.

Real parts: real git worktrees and the real ``bwrap`` binary (the tests that run it are skipped
where bubblewrap cannot create a sandbox, and fail in CI where it must).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from codeyard.sandbox import (
    Sandbox,
    SandboxSpec,
    SandboxUnavailable,
    build_spec,
    bwrap_options,
    contain,
    priority,
    probe,
)
from codeyard.sandbox import environment as sandbox_env
from tests.conftest import make_repo

_PROBE = probe(None)
needs_bwrap = pytest.mark.skipif(
    not _PROBE.ok and os.environ.get("CI") != "true", reason=f"no sandbox here: {_PROBE.problem}"
)


def worktree_of(repo: Path, dest: Path, branch: str = "codeyard/1-x") -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "worktree", "add", "-q", "-b", branch, str(dest)],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    return dest


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A data directory holding a secret and two runs' worktrees of one repository."""
    data = tmp_path / "data"
    repo = make_repo(tmp_path / "repo", {"README.md": "# r\n", "private.txt": "checkout\n"})
    mine = worktree_of(repo, data / "worktrees" / "p" / "1-mine" / "repo")
    other = worktree_of(repo, data / "worktrees" / "p" / "2-other" / "repo", "codeyard/2-y")
    (data / "admin.token").write_text("cy_secret_admin_token\n")
    (other / "theirs.txt").write_text("other run\n")
    return {"data": data, "repo": repo, "mine": mine, "other": other}


# --- environment -------------------------------------------------------------------------------


def test_environment_is_an_allowlist_not_the_servers() -> None:
    server = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "CODEYARD_ADMIN_TOKEN": "cy_x",
        "CODEYARD_GITHUB_TOKEN": "ghp_x",
        "GITHUB_TOKEN": "ghp_y",
        "GH_TOKEN": "ghp_z",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "DATABASE_URL": "postgres://u:p@h/db",
        "ANTHROPIC_API_KEY": "sk-ant",
        "OPENAI_API_KEY": "sk-oai",
    }
    env = sandbox_env.build("claude-code", {"FOO": "1", "CODEYARD_X": "y"}, server)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "ANTHROPIC_API_KEY": "sk-ant",  # what Claude Code itself reads
        "FOO": "1",
    }
    codex = sandbox_env.build("codex", {}, server)
    assert "OPENAI_API_KEY" in codex and "ANTHROPIC_API_KEY" not in codex
    script = sandbox_env.build("repo-script", {"CODEYARD_RUN_ID": "run_1"}, server)
    assert script["CODEYARD_RUN_ID"] == "run_1"  # informational, set by Codeyard
    assert not any(k.startswith(("CODEYARD_A", "CODEYARD_G", "GITHUB", "GH_")) for k in script)


def test_loader_and_path_overrides_are_refused_from_non_admins() -> None:
    names = ["FOO", "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "NODE_OPTIONS", "GIT_DIR"]
    refused = sandbox_env.refused([*names, "git_config_global", "PATH", "CODEYARD_HOME"])
    assert refused == sorted(
        [
            "CODEYARD_HOME",
            "GIT_DIR",
            "LD_LIBRARY_PATH",
            "LD_PRELOAD",
            "NODE_OPTIONS",
            "PATH",
            "PYTHONPATH",
            "git_config_global",
        ]
    )
    assert sandbox_env.refused(["ANTHROPIC_BASE_URL", "HOME", "GITHUB_TOKEN"]) == []


# --- the spec and its bwrap arguments ------------------------------------------------------------


def test_mount_order_lets_hiding_win_over_state_and_worktrees_win_over_hiding() -> None:
    spec = SandboxSpec(
        writable=(Path("/d/wt/1"),),
        readable=(Path("/repo/.git"),),
        hidden_dirs=(Path("/d"), Path("/root/.ssh")),
        hidden_files=(Path("/root/.netrc"),),
        state=(Path("/root/.claude"),),
        network="none",
        chdir=Path("/d/wt/1"),
    )
    args = bwrap_options(spec)
    joined = " ".join(args)
    for flag in ("--die-with-parent", "--unshare-pid", "--new-session", "--unshare-net"):
        assert flag in args
    assert "--cap-drop ALL" in joined
    assert joined.index("--ro-bind / /") < joined.index("--tmpfs /tmp")
    assert joined.index("--bind /root/.claude") < joined.index("--tmpfs /d ")
    assert joined.index("--tmpfs /root/.ssh") < joined.index("--ro-bind /repo/.git")
    assert joined.index("--ro-bind /repo/.git") < joined.index("--bind /d/wt/1")
    assert "--ro-bind /dev/null /root/.netrc" in joined
    assert "--unshare-net" not in bwrap_options(SandboxSpec(network="full"))
    assert "--new-session" not in bwrap_options(SandboxSpec(new_session=False))


def test_the_session_group_is_lowered_where_the_command_s_session_is_made() -> None:
    """In the caller's own session: before bwrap (the server's privileges) and no new session
    inside; otherwise (a terminal, started in the server's session) inside bwrap's new one."""
    if not (_PROBE.ok and priority.autogroups()):
        pytest.skip("needs bubblewrap and sched_autogroup")
    sandbox = Sandbox(niceness=5)
    own = contain(sandbox, "script", ["/bin/true"], own_session=True).argv
    bwrap = own.index(str(_PROBE.path))
    assert "--new-session" not in own and "/proc/self/autogroup" in " ".join(own[:bwrap])
    assert "autogroup" not in " ".join(own[bwrap:])
    new = contain(sandbox, "script", ["/bin/true"]).argv
    bwrap = new.index(str(_PROBE.path))
    assert "--new-session" in new and "autogroup" not in " ".join(new[:bwrap])
    inside = " ".join(new[new.index("--") :])
    assert "until echo 5 > /proc/self/autogroup" in inside  # unprivileged in there: retried


def test_spec_of_a_run_writes_its_worktree_and_git_metadata_only(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    for entry in (".ssh", ".config/gh", ".codex", ".claude"):
        (home / entry).mkdir(parents=True)
    (home / ".netrc").write_text("machine x password y\n")
    sandbox = Sandbox(private=(layout["data"],)).for_run([layout["mine"]], "full")
    spec = build_spec(sandbox, "codex", {"HOME": str(home)}, real_home=home)
    common = (layout["repo"] / ".git").resolve()
    assert layout["mine"] in spec.writable
    assert common / "worktrees" / "repo" in spec.writable
    assert {common / "objects", common / "refs", common / "logs"} <= set(spec.writable)
    assert common not in spec.writable and common in spec.readable  # config, hooks: read-only
    assert layout["data"].resolve() in spec.hidden_dirs  # other runs, admin.token
    assert layout["repo"] in spec.hidden_dirs  # the user's real checkout
    assert {home / ".ssh", home / ".config/gh", home / ".claude"} <= set(spec.hidden_dirs)
    assert home / ".netrc" in spec.hidden_files
    assert home / ".codex" in spec.state and home / ".codex" not in spec.hidden_dirs


def test_secrets_are_looked_for_at_every_spawn_symlinks_too(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    """The list of secret entries is built once per server; whether each exists (and is a
    directory, a file or a dangling symlink) is looked at every spawn."""
    home = tmp_path / "home"
    home.mkdir()
    sandbox = Sandbox(private=(layout["data"],)).for_run([layout["mine"]], "full")
    first = build_spec(sandbox, "claude-code", {"HOME": str(home)}, real_home=home)
    assert home / ".ssh" not in first.hidden_dirs  # nothing to hide yet
    (home / ".ssh").mkdir()
    (tmp_path / "kube").mkdir()
    (home / ".kube").symlink_to(tmp_path / "kube")
    (home / ".aws").symlink_to(tmp_path / "nowhere")
    (home / ".netrc").write_text("machine x password y\n")
    spec = build_spec(sandbox, "claude-code", {"HOME": str(home)}, real_home=home)
    assert {home / ".ssh", home / ".kube"} <= set(spec.hidden_dirs)
    assert {home / ".aws", home / ".netrc"} <= set(spec.hidden_files)
    assert not set(spec.hidden_dirs) & set(spec.hidden_files)


def test_a_profile_home_inside_the_data_dir_is_never_mounted(layout: dict[str, Path]) -> None:
    sandbox = Sandbox(private=(layout["data"],)).for_run([layout["mine"]], "full")
    env = {"HOME": str(layout["data"]), "CODEX_HOME": str(layout["data"] / "x")}
    spec = build_spec(sandbox, "codex", env, real_home=Path("/nonexistent-home"))
    assert not any(p == layout["data"] or layout["data"] in p.parents for p in spec.state)


def test_missing_bwrap_is_a_problem_naming_the_fix(tmp_path: Path) -> None:
    missing = str(tmp_path / "no" / "bwrap")
    found = probe(missing)
    assert not found.ok and found.path == missing
    assert "not found" in (found.problem or "") and "bubblewrap" in (found.problem or "")
    with pytest.raises(SandboxUnavailable, match="Runs do not start unsandboxed"):
        contain(Sandbox(bwrap_path=missing), "script", ["/bin/true"])
    off = contain(Sandbox(enabled=False, bwrap_path=missing), "script", ["/bin/true"], {"A": "1"})
    assert off.argv[-1] == "/bin/true" and not off.contained and off.env["A"] == "1"
    assert off.argv[:-1] == priority.prefix(priority.DEFAULT_NICENESS) != []  # niced all the same
    plain = Sandbox(enabled=False, niceness=0)
    assert contain(plain, "script", ["/bin/true"]).argv == ["/bin/true"]


# --- real bubblewrap -------------------------------------------------------------------------


def _run(jail_argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(jail_argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


@needs_bwrap
def test_a_contained_shell_sees_its_worktree_and_nothing_private(
    layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEYARD_SERVER_SECRET", "server-secret-value")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_server_token")
    mine, data = layout["mine"], layout["data"]
    sandbox = Sandbox(private=(data,)).for_run([mine], "full")
    script = f"""
        cat {data}/admin.token || echo NO-TOKEN
        cat {layout["other"]}/theirs.txt || echo NO-OTHER
        cat {layout["repo"]}/private.txt || echo NO-CHECKOUT
        env | grep -E 'SECRET|TOKEN' || echo NO-SECRET-ENV
        echo hook > {layout["repo"]}/.git/hooks/post-checkout || echo NO-HOOK
        echo made > made.txt && git add made.txt && git commit -qm made && echo COMMITTED
        echo $$
    """
    jail = contain(sandbox, "script", ["/bin/bash", "-c", script], {}, cwd=mine)
    done = _run(jail.argv, jail.env, mine)
    out = done.stdout
    assert "cy_secret_admin_token" not in out and "NO-TOKEN" in out
    assert "other run" not in out and "NO-OTHER" in out
    assert "checkout" not in out and "NO-CHECKOUT" in out
    assert "server-secret-value" not in out and "ghp_server_token" not in out
    assert "NO-HOOK" in out and not (layout["repo"] / ".git/hooks/post-checkout").exists()
    assert "COMMITTED" in out, done.stderr
    assert out.strip().splitlines()[-1] == "2"  # pid 2: a new pid namespace (bwrap is 1)
    log = subprocess.run(
        ["git", "log", "--format=%s", "-1", "codeyard/1-x"],
        cwd=layout["repo"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert log.stdout.strip() == "made"  # the commit landed in the real repository


@needs_bwrap
def test_network_none_has_no_route_out(layout: dict[str, Path]) -> None:
    sandbox = Sandbox(private=(layout["data"],)).for_run([layout["mine"]], "none")
    jail = contain(sandbox, "script", ["/bin/cat", "/proc/net/dev"], {}, cwd=layout["mine"])
    lines = _run(jail.argv, jail.env, layout["mine"]).stdout.splitlines()[2:]
    assert [line.split(":")[0].strip() for line in lines] == ["lo"]


@needs_bwrap
def test_a_launcher_script_drops_what_an_sdk_merged_in(
    layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CODEYARD_SERVER_SECRET", "server-secret-value")
    sandbox = Sandbox(private=(layout["data"],)).for_run([layout["mine"]], "full")
    jail = contain(sandbox, "claude-code", ["/usr/bin/env"], {"KEY": "it's $value"})
    script = tmp_path / "launch"
    script.write_text(jail.script([*os.environ, "KEY"]))
    script.chmod(0o700)
    merged = {**os.environ, "KEY": "it's $value", "SDK_ADDED": "1"}
    out = _run([str(script)], merged, layout["mine"]).stdout
    assert "KEY=it's $value" in out.splitlines()
    assert "SDK_ADDED=1" in out.splitlines()  # what the SDK adds itself passes
    assert "server-secret-value" not in out


def test_codexs_host_probe_is_hidden_from_codex_only(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    """Every copy on the process's PATH (the lookup goes on past one it cannot run), resolved;
    no other provider loses it."""
    first, second = tmp_path / "bin", tmp_path / "more"
    for folder in (first, second):
        folder.mkdir()
        (folder / "lsb_release").write_text("#!/bin/sh\necho Debian\n")
    (tmp_path / "linked").symlink_to(first)
    env = {"HOME": str(tmp_path), "PATH": f"{tmp_path / 'linked'}:{second}:/nonexistent"}
    sandbox = Sandbox(private=(layout["data"],)).for_run([layout["mine"]], "full")
    spec = build_spec(sandbox, "codex", env, real_home=tmp_path)
    assert {first / "lsb_release", second / "lsb_release"} <= set(spec.hidden_files)
    other = build_spec(sandbox, "claude-code", env, real_home=tmp_path)
    assert not any(p.name == "lsb_release" for p in other.hidden_files)


@needs_bwrap
@pytest.mark.skipif(shutil.which("lsb_release") is None, reason="no lsb_release here")
def test_a_contained_codex_cannot_run_lsb_release_and_reads_os_release(
    layout: dict[str, Path],
) -> None:
    mine = layout["mine"]
    sandbox = Sandbox(private=(layout["data"],)).for_run([mine], "full")
    script = "lsb_release -a >/dev/null 2>&1; echo rc=$?; test -r /etc/os-release && echo READ"
    ran = {}
    for provider in ("codex", "script"):
        jail = contain(sandbox, provider, ["/bin/sh", "-c", script], {}, cwd=mine)
        done = _run(jail.argv, jail.env, mine)
        ran[provider] = done.stdout.split()
    assert ran["script"] == ["rc=0", "READ"]
    assert ran["codex"] in (["rc=126", "READ"], ["rc=127", "READ"])  # cannot run, or not found
