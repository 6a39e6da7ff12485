"""Fake external receivers over real loopback HTTP: a web push service and webhook endpoints.

The push service is what a browser vendor runs: it checks the VAPID JWT (ES256, signed with the
key in the ``k=`` parameter) and decrypts the aes128gcm payload with the subscription's private
key and auth secret (``http_ece``) — exactly what a browser does on receipt. Nothing is mocked:
Codeyard's worker talks HTTP to these servers.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    #: Decrypted web push payload (JSON), when the path is a push endpoint.
    message: dict[str, Any] | None = None
    vapid_claims: dict[str, Any] | None = None
    #: Wall-clock receipt time (benchmarks compare it with event timestamps).
    wall: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receivers:
    """One loopback server; ``responses[path]`` is a list of statuses to answer in turn."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    responses: dict[str, list[int]] = field(default_factory=dict)
    #: Seconds to stall before answering a path (to be cut off by a restart).
    stall: dict[str, float] = field(default_factory=dict)
    browsers: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = field(default_factory=dict)
    on_receive: Callable[[Received], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def browser_subscription(self, name: str) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives a page: endpoint and the browser's keys."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self.browsers[f"/push/{name}"] = (key, auth)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.base}/push/{name}",
            "keys": {"p256dh": b64url(public), "auth": b64url(auth)},
        }

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    async def wait_for(self, path: str, count: int = 1, timeout: float = 30.0) -> list[Received]:
        """Wait (without blocking the event loop the server under test runs on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if len(got) >= count:
                return got
            await anyio.sleep(0.005)
        raise AssertionError(f"{path}: got {len(self.at(path))} requests, wanted {count}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def verify_vapid(authorization: str) -> dict[str, Any]:
    """Check ``vapid t=<jwt>, k=<key>`` (RFC 8292); returns the JWT claims or raises."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid", authorization
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    header_b64, claims_b64, sig_b64 = parts["t"].split(".")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(parts["k"]))
    sig = unb64url(sig_b64)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    claims: dict[str, Any] = json.loads(unb64url(claims_b64))
    assert claims["exp"] > time.time()
    return claims


def start_receivers() -> Receivers:
    holder: dict[str, Receivers] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            recv = holder["r"]
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            item = Received(
                self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
            )
            status = 201 if self.path.startswith("/push/") else 200
            if self.path in recv.browsers:
                key, auth = recv.browsers[self.path]
                item.vapid_claims = verify_vapid(self.headers["authorization"])
                plain = http_ece.decrypt(
                    body, private_key=key, auth_secret=auth, version="aes128gcm"
                )
                item.message = json.loads(plain)
            with recv.lock:
                queue = recv.responses.get(self.path)
                if queue:
                    status = queue.pop(0)
                stall = recv.stall.pop(self.path, 0.0)
                recv.received.append(item)
            if recv.on_receive is not None:
                recv.on_receive(item)
            if stall:
                time.sleep(stall)
            self.send_response(status)
            if status == 429 or status >= 500:
                self.send_header("retry-after", "0")
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    recv = Receivers(server)
    holder["r"] = recv
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return recv
