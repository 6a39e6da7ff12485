"""A throw-away PostgreSQL cluster for tests, started from the local server binaries.

The cluster lives in a fresh temporary directory, listens on a free loopback port with trust
auth and durability switched off (nothing in it must survive), and is removed on ``stop()``.
PostgreSQL refuses to run as root, so under root the server binaries run as an unprivileged
user (``postgres`` if present, else ``nobody``) that owns the temporary directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from codeyard.locator import pid_alive

__all__ = [
    "PostgresCluster",
    "PostgresClusterError",
    "PostgresUnavailable",
    "find_pg_bin",
    "free_port",
    "require_postgres",
    "why_unavailable",
]

#: Programs a usable bin directory must hold (``postgres`` is found by initdb/pg_ctl next to them).
REQUIRED_PROGRAMS = ("initdb", "pg_ctl", "postgres", "psql")
#: Overrides the search in ``find_pg_bin``.
BIN_ENV = "CODEYARD_PG_BIN"
#: Overrides which unprivileged user runs the server when we are root.
OS_USER_ENV = "CODEYARD_PG_OS_USER"
#: Temporary directories are named with this prefix, so stale ones can be recognised and reaped.
DIR_PREFIX = "codeyard-pg-"
HOST = "127.0.0.1"
# Durability buys nothing in a cluster that is deleted after the run; these make it fast.
SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
}
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,62}")
_OWNER_FILE = "owner.pid"


class PostgresClusterError(RuntimeError):
    """The cluster could not be started, stopped or queried."""


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is required (``CI`` is set) but cannot be run on this machine."""


def _has_programs(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in REQUIRED_PROGRAMS)


def _version_key(directory: Path) -> tuple[int, ...]:
    digits = re.findall(r"\d+", directory.parent.name)
    return tuple(int(d) for d in digits)


def find_pg_bin() -> Path | None:
    """The directory holding initdb, pg_ctl, postgres and psql, or None.

    Order: ``$CODEYARD_PG_BIN``; ``initdb`` on PATH (symlinks resolved, because Debian keeps
    the real binaries in ``/usr/lib/postgresql/N/bin``); then the newest versioned install
    directory (Debian, PGDG RPM layouts, source builds).
    """
    override = os.environ.get(BIN_ENV)
    if override:
        path = Path(override).expanduser()
        return path if _has_programs(path) else None
    on_path = shutil.which("initdb")
    if on_path:
        directory = Path(on_path).resolve().parent
        if _has_programs(directory):
            return directory
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"):
        candidates = sorted((Path(p) for p in glob.glob(pattern)), key=_version_key, reverse=True)
        for directory in candidates:
            if _has_programs(directory):
                return directory
    for fixed in ("/usr/local/pgsql/bin",):
        if _has_programs(Path(fixed)):
            return Path(fixed)
    return None


@dataclass(frozen=True)
class _RunAs:
    """An unprivileged account for the server processes (only used when we are root)."""

    name: str
    uid: int
    gid: int


def _server_account() -> _RunAs | None:
    """None when we may run the server ourselves; raises if root and no account is usable."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get(OS_USER_ENV)
    for name in [wanted] if wanted else ["postgres", "nobody"]:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return _RunAs(name, entry.pw_uid, entry.pw_gid)
    raise PostgresClusterError(
        f"running as root and no unprivileged user to run PostgreSQL as "
        f"(tried {wanted or 'postgres, nobody'}); create one or set {OS_USER_ENV}"
    )


def why_unavailable() -> str | None:
    """A human reason why no cluster can be started here, or None if it should work."""
    if find_pg_bin() is None:
        return (
            "PostgreSQL binaries (initdb, pg_ctl, postgres, psql) not found: "
            f"apt-get install postgresql, run scripts/ensure-postgres.sh, or set {BIN_ENV}"
        )
    try:
        _server_account()
    except PostgresClusterError as exc:
        return str(exc)
    return None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is missing, but fail it when ``CI`` is set.

    Skipping raises ``unittest.SkipTest``, which pytest reports as a skip with the reason;
    that keeps this module free of a pytest import. In CI a silent skip would hide that the
    PostgreSQL half of the suite never ran, so it raises ``PostgresUnavailable`` instead.
    """
    reason = why_unavailable()
    if reason is None:
        return
    if _in_ci():
        raise PostgresUnavailable(f"{reason} (CI is set, so PostgreSQL tests must not be skipped)")
    raise unittest.SkipTest(reason)


def free_port(host: str = HOST) -> int:
    """A port the kernel just handed out on ``host``; free unless someone races us for it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _check_name(kind: str, name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid {kind} name {name!r}: use letters, digits, _ and -")
    return name


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _clean_env(home: Path) -> dict[str, str]:
    """Our environment without ``PG*`` variables, which would redirect the binaries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C", HOME=str(home))
    return env


def _run(
    cmd: list[str], *, run_as: _RunAs | None, cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a server binary, as ``run_as`` when given; never raises on a non-zero exit."""
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=_clean_env(cwd),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        # Dropping to the server account: setgroups([]), setgid, setuid in the child.
        user=None if run_as is None else run_as.uid,
        group=None if run_as is None else run_as.gid,
        extra_groups=None if run_as is None else [],
    )


def _read_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        return int(first)
    except (OSError, IndexError, ValueError):
        return None

    return True


def _serves(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is the postmaster of ``data_dir`` (it runs there), not a stranger holding
    a recycled pid: a stale ``postmaster.pid`` (a cluster whose server died with its test
    process) names a number that may now belong to anything, a pytest worker included, and
    ``pg_ctl stop`` would send it SIGQUIT."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == data_dir.resolve()
    except PermissionError:
        return True  # not ours to look at: trust the file, as pg_ctl does
    except OSError:
        return False  # no such process


def _teardown(pg_ctl: Path, base_dir: Path, run_as: _RunAs | None) -> None:
    """Stop the server immediately and delete everything; safe to call on a half-built cluster.

    A module-level function (not a method) so ``weakref.finalize`` can run it at interpreter
    exit without keeping the cluster object alive.
    """
    data_dir = base_dir / "data"
    pid = _read_pid(data_dir)
    if pid is not None and _serves(pid, data_dir):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            cmd = [str(pg_ctl), "stop", "-D", str(data_dir), "-m", "immediate", "-w", "-t", "30"]
            _run(cmd, run_as=run_as, cwd=base_dir, timeout=60)
        if pid_alive(pid) and _serves(pid, data_dir):
            # pg_ctl failed; SIGQUIT is what "immediate" sends, SIGKILL if that is ignored.
            for sig, wait in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
                deadline = time.monotonic() + wait
                while pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not pid_alive(pid):
                    break
    shutil.rmtree(base_dir, ignore_errors=True)


def reap_stale_clusters(parent: Path, pg_ctl: Path, run_as: _RunAs | None) -> None:
    """Stop and delete clusters whose creating process died without cleaning up.

    A test run killed by SIGKILL or a CI timeout skips every finaliser; its postmaster (which
    pg_ctl detaches into its own session) would otherwise live on with its data directory.
    """
    for base_dir in parent.glob(DIR_PREFIX + "*"):
        try:
            owner = int((base_dir / _OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue
        if owner != os.getpid() and not pid_alive(owner):
            _teardown(pg_ctl, base_dir, run_as)


def _temp_parent(run_as: _RunAs | None) -> Path:
    """The system temp dir, unless the server account could not reach into it."""
    default = Path(tempfile.gettempdir())
    if run_as is None:
        return default
    for candidate in (default, Path("/tmp"), Path("/var/tmp")):
        chain = [candidate, *candidate.parents]
        if candidate.is_dir() and all(p.stat().st_mode & 0o001 for p in chain):
            return candidate
    raise PostgresClusterError(f"no temp directory that user {run_as.name} can enter")


class PostgresCluster:
    """A private PostgreSQL server in a temp dir; ``with PostgresCluster() as pg: pg.url``.

    ``create_database()`` gives each test its own empty database in milliseconds, which is
    much cheaper than a cluster per test.
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        superuser: str = "postgres",
        dbname: str = "codeyard",
        parent_dir: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.superuser = _check_name("user", superuser)
        self.dbname = _check_name("database", dbname)
        self.host = HOST
        self.port = 0
        self.timeout = timeout
        self._bin_dir = bin_dir
        self._parent_dir = parent_dir
        self._base_dir: Path | None = None
        self._run_as: _RunAs | None = None
        self._finalizer: weakref.finalize[[Path, Path, _RunAs | None], PostgresCluster] | None = (
            None
        )

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> PostgresCluster:
        """initdb, start the server and create ``dbname``; raises ``PostgresClusterError``."""
        if self.running:
            return self
        bin_dir = self._bin_dir or find_pg_bin()
        if bin_dir is None:
            raise PostgresClusterError(why_unavailable() or "PostgreSQL binaries not found")
        self._bin_dir = bin_dir
        self._run_as = run_as = _server_account()
        parent = self._parent_dir or _temp_parent(run_as)
        reap_stale_clusters(parent, bin_dir / "pg_ctl", run_as)

        base_dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=parent))
        self._base_dir = base_dir
        self._finalizer = weakref.finalize(self, _teardown, bin_dir / "pg_ctl", base_dir, run_as)
        try:
            (base_dir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
            if run_as is not None:
                os.chown(base_dir, run_as.uid, run_as.gid)
            self._initdb()
            self._start_server()
            self.psql(f"CREATE DATABASE {_quote_ident(self.dbname)} TEMPLATE template0")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (immediate mode: nothing to save) and delete the temp dir."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._finalizer is not None and self._finalizer.alive

    # -- locations --------------------------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        """The temp dir holding ``data/``, the server log and the Unix socket."""
        if self._base_dir is None:
            raise PostgresClusterError("cluster not started")
        return self._base_dir

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default database, ``postgresql+asyncpg://…``."""
        return self.url_for(self.dbname)

    def url_for(self, dbname: str, driver: str = "asyncpg") -> str:
        if not self.running:
            raise PostgresClusterError("cluster not running")
        user, db = quote(self.superuser, safe=""), quote(dbname, safe="")
        return f"postgresql+{driver}://{user}@{self.host}:{self.port}/{db}"

    # -- databases --------------------------------------------------------------------------

    def create_database(self, name: str | None = None, template: str = "template0") -> str:
        """Create a database (a generated name if None) as a copy of ``template`` (an empty one
        by default; no session may be connected to it) and return its URL."""
        name = _check_name("database", name or f"t_{uuid.uuid4().hex[:16]}")
        template = _check_name("database", template)
        self.psql(f"CREATE DATABASE {_quote_ident(name)} TEMPLATE {_quote_ident(template)}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting any sessions still using it."""
        name = _check_name("database", name)
        self.psql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL through the psql binary (no Python driver needed); returns unaligned rows."""
        if not self.running or self._bin_dir is None:
            raise PostgresClusterError("cluster not running")
        cmd = [
            str(self._bin_dir / "psql"),
            "-X",  # ignore ~/.psqlrc
            "-qAt",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.superuser,
            "-d",
            dbname,
            "-c",
            sql,
        ]
        # psql is a client: it may run as root, and it connects over TCP like the app does.
        proc = _run(cmd, run_as=None, cwd=self.base_dir, timeout=self.timeout)
        if proc.returncode != 0:
            raise PostgresClusterError(f"psql failed ({sql!r}): {proc.stderr.strip()}")
        return proc.stdout.strip()

    # -- internals --------------------------------------------------------------------------

    def _tool(self, name: str) -> str:
        assert self._bin_dir is not None
        return str(self._bin_dir / name)

    def _initdb(self) -> None:
        cmd = [
            self._tool("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.superuser,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
        proc = _run(cmd, run_as=self._run_as, cwd=self.base_dir, timeout=self.timeout)
        if proc.returncode != 0:
            raise PostgresClusterError(f"initdb failed: {(proc.stderr or proc.stdout).strip()}")

    def _start_server(self, attempts: int = 3) -> None:
        """pg_ctl start on a free port; retries with a new port if another process took it."""
        settings = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())
        for attempt in range(attempts):
            self.port = free_port(self.host)
            # pg_ctl hands -o to /bin/sh, so the socket path must be shell-quoted.
            options = f"-p {self.port} -k {shlex.quote(str(self.base_dir))} {settings}"
            cmd = [
                self._tool("pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(int(self.timeout)),
                "-o",
                options,
            ]
            proc = _run(cmd, run_as=self._run_as, cwd=self.base_dir, timeout=self.timeout + 10)
            if proc.returncode == 0:
                return
            log = self._log_tail()
            if "already in use" not in log or attempt == attempts - 1:
                raise PostgresClusterError(
                    f"pg_ctl start failed: {(proc.stderr or proc.stdout).strip()}\n{log}"
                )
            with contextlib.suppress(OSError):
                self.log_file.unlink()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
