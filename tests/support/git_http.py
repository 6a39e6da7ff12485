"""Git remotes over real loopback HTTP for clone tests.

``GitHttpServer`` serves bare repositories with git's "dumb" HTTP protocol (static files after
``git update-server-info``) from a standard-library HTTP server on 127.0.0.1. ``hanging_server``
accepts connections and never answers: a remote that stalls a clone until its timeout.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class GitHttpServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = partial(_Quiet, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def publish(self, work_tree: Path, name: str) -> str:
        """A bare copy of ``work_tree`` served as ``<base>/<name>.git``; returns its URL."""
        bare = self.root / f"{name}.git"
        subprocess.run(["git", "clone", "--quiet", "--bare", str(work_tree), str(bare)], check=True)
        subprocess.run(["git", "-C", str(bare), "update-server-info"], check=True)
        return f"{self.base}/{name}.git"


@contextmanager
def git_http_server(root: Path) -> Iterator[GitHttpServer]:
    server = GitHttpServer(root)
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


class HangingRemote:
    """A remote that accepts connections, reads, never answers; ``accepted`` counts callers."""

    def __init__(self, url: str, held: list[socket.socket]) -> None:
        self.url = url
        self._held = held

    @property
    def accepted(self) -> int:
        return len(self._held)


@contextmanager
def hanging_server() -> Iterator[HangingRemote]:
    """``http://127.0.0.1:<port>``: accepts connections, reads, never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield HangingRemote(f"http://127.0.0.1:{listener.getsockname()[1]}", held)
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()
