"""``codeyard serve``: run the app under Uvicorn and tell the CLI where it is."""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import resource
import socket
from typing import Any

import uvicorn

from codeyard import background, locator
from codeyard.app import create_app
from codeyard.config import KEEP_ALIVE_SECONDS, Settings

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to bind) only accepts local connections."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tls_files(settings: Settings) -> tuple[str, str] | None:
    """(certificate, key) when HTTPS is configured; a clear error when only one is given."""
    if settings.tls_cert is None and settings.tls_key is None:
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise SystemExit("Give both --tls-cert and --tls-key (CODEYARD_TLS_CERT/_KEY), or neither.")
    for path in (settings.tls_cert, settings.tls_key):
        if not path.is_file():
            raise SystemExit(f"TLS file {path} does not exist or is not a file.")
    return str(settings.tls_cert), str(settings.tls_key)


def exposure_warning(settings: Settings, tls: bool) -> str | None:
    """The warning for a public bind without TLS in this process or a proxy in front."""
    if is_loopback(settings.host) or tls or settings.behind_tls_proxy:
        return None
    return (
        f"Codeyard is listening on {settings.host}, reachable from other machines, over plain "
        "HTTP: tokens and session cookies travel unencrypted. Serve HTTPS with --tls-cert and "
        "--tls-key, or put a TLS-terminating proxy in front and pass --behind-tls-proxy "
        "(CODEYARD_BEHIND_TLS_PROXY=1) to silence this warning."
    )


def _bindable(host: str, port: int) -> OSError | None:
    """Bind (host, port) the way Uvicorn will, then let go; the error when that fails."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return exc
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            return exc
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on (host, port), with the command that would work.

    Checked before anything is printed or started, so a busy port never shows a banner and a
    setup code for a server that is not there. Under ``make`` (``MAKELEVEL`` is set) the hint
    is the ``make serve PORT=…`` form.
    """
    error = _bindable(host, port)
    if error is None:
        return None
    if error.errno != errno.EADDRINUSE:
        return f"Cannot listen on {host}:{port}: {error.strerror or error}."
    free = next((p for p in range(port + 1, min(port + 50, 65536)) if not _bindable(host, p)), None)
    if free is None:
        return f"Port {port} on {host} is in use, and so are the next 49: pass another --port."
    hint = f"make serve PORT={free}" if os.environ.get("MAKELEVEL") else f"--port {free}"
    return f"Port {port} on {host} is in use (another Codeyard?) — try `{hint}`."


def host_allowlist_notice(settings: Settings) -> str | None:
    """A bind on every address accepts only loopback names until told the others: say so,
    rather than let the first visitor from the network meet a 421."""
    if settings.host.strip("[]") not in ("0.0.0.0", "::"):
        return None
    if settings.allowed_hosts.strip() or settings.public_url:
        return None
    return (
        f"Listening on {settings.host}, but only loopback host names are accepted (DNS-rebinding "
        "defence): set CODEYARD_ALLOWED_HOSTS to the names or addresses people use to reach "
        "this server (or CODEYARD_PUBLIC_URL), or '*' to accept any."
    )


def proxy_options(settings: Settings) -> dict[str, Any]:
    """Uvicorn's proxy-header options. Uvicorn trusts X-Forwarded-For from 127.0.0.1 by
    default, so any local process could pick its client address (and dodge the sign-in
    limit); Codeyard trusts the headers only when told a proxy is in front."""
    if settings.forwarded_allow_ips.strip():
        return {"proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}
    if settings.behind_tls_proxy:
        return {"proxy_headers": True, "forwarded_allow_ips": "127.0.0.1,::1"}
    return {"proxy_headers": False}


#: The soft limit of open files a server asks for: each live run holds a few descriptors (its
#: agent's pipes, git children while it prepares or checkpoints), each open stream a socket.
WANT_OPEN_FILES = 65536
#: Descriptors budgeted per concurrent run, plus a base for the database, streams and sockets.
FILES_PER_RUN, FILES_BASE = 16, 1024


def raise_open_files_limit(max_concurrent_runs: int, want: int = WANT_OPEN_FILES) -> str | None:
    """Lift the soft ``RLIMIT_NOFILE`` towards the hard limit (at most ``want``).

    Distributions default the soft limit to 1,024 for ``select()``-era programs; a server with
    hundreds of live runs needs more, and the hard limit (often 524,288) allows it without
    privileges. Returns a warning when even the hard limit is short for ``max_concurrent_runs``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(hard, want)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # a container may forbid it: keep going, say so
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
    need = FILES_BASE + FILES_PER_RUN * max_concurrent_runs
    if soft != resource.RLIM_INFINITY and soft < need:
        return (
            f"The open-files limit is {soft}; {max_concurrent_runs} concurrent runs may need "
            f"~{need}. Raise it (`ulimit -n {need}` or LimitNOFILE= in the service unit) or "
            "lower max_concurrent_runs."
        )
    return None


def _asyncio_only() -> None:
    """Tell sniffio, where it is installed (the Claude Agent SDK needs it), that the loop about
    to start runs asyncio, as ``anyio.run`` does: the loop's tasks inherit it, and anyio (the
    SDK's streams, Starlette, SSE) then need not detect the library at each call, which sniffio
    does by looking for the running task every time (an anyio memory stream's item, as the SDK
    passes each of Claude Code's messages, 5.6 -> 3.9 µs of CPU; a checkpoint 2.5 -> 1.8 µs)."""
    try:
        import sniffio  # not ours to require: anyio without it asks asyncio directly
    except ImportError:
        return
    sniffio.current_async_library_cvar.set("asyncio")


def run_server(settings: Settings) -> None:
    """Serve until interrupted. Writes ``server.json`` so the CLI finds this server."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    tls = tls_files(settings)
    if problem := port_problem(settings.host, settings.port):
        raise SystemExit(problem)
    settings.prepare_data_dir()
    settings.ensure_admin_token()
    if files_warning := raise_open_files_limit(settings.max_concurrent_runs):
        log.warning(files_warning)
    app = create_app(
        settings,
        announce=lambda notice: print(notice, flush=True),
        # Workflows, followers, notifications... start after the first answer (issue 15).
        background_after=background.SERVE_AFTER_SECONDS,
        freeze_start_up=True,  # then what start-up made leaves the full collections
    )
    if warning := exposure_warning(settings, tls is not None):
        log.warning(warning)
    if notice := host_allowlist_notice(settings):
        log.warning(notice)
    scheme = "https" if tls else "http"
    url = f"{scheme}://{settings.host}:{settings.port}"
    settings.write_server_file(url)
    locator.register(url, settings.data_dir)  # a CLI without this data dir still finds us
    print(f"Codeyard is serving {url}  (data: {settings.data_dir})", flush=True)
    where = "CODEYARD_ADMIN_TOKEN" if settings.admin_token else settings.data_dir / "admin.token"
    print(f"API docs: {url}/api/docs · admin token: {where}", flush=True)
    # The admin token is in the fragment: browsers never send it to a server or a proxy log.
    print(f"Sign in: {url}/login#token={settings.ensure_admin_token()}", flush=True)
    _asyncio_only()
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
            **proxy_options(settings),
        )
    finally:
        locator.unregister()
