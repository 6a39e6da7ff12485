"""Listening TCP ports as the preview watcher sees them: real sockets, asked of the kernel."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from codeyard.preview import detect
from codeyard.preview.leases import Lease


@pytest.fixture
def sockets() -> Iterator[dict[str, int]]:
    """A listener on IPv4, one on IPv6, and a port only used by a connection (not listening)."""
    v4 = socket.create_server(("127.0.0.1", 0))
    v6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
    client = socket.create_connection(v4.getsockname()[:2])
    accepted, _ = v4.accept()
    try:
        yield {
            "v4": v4.getsockname()[1],
            "v6": v6.getsockname()[1],
            "client": client.getsockname()[1],
        }
    finally:
        for s in (accepted, client, v6, v4):
            s.close()


def test_listeners_on_both_families_are_found_and_a_connection_is_not(
    sockets: dict[str, int],
) -> None:
    found = detect.listening_ports()
    assert {sockets["v4"], sockets["v6"]} <= found
    assert sockets["client"] not in found


def test_netlink_answers_what_the_socket_tables_say(sockets: dict[str, int]) -> None:
    """The kernel's filtered answer (sock_diag) against psutil's full scan of the tables.
    Other processes open and close listeners meanwhile: the two must agree within a few looks."""
    looks = []
    for _ in range(10):
        looks.append((detect._from_sock_diag(), detect._from_psutil()))
        if looks[-1][0] == looks[-1][1]:
            break
    netlink, scanned = looks[-1]
    assert netlink == scanned, looks
    assert {sockets["v4"], sockets["v6"]} <= netlink


def test_a_closed_listener_is_gone_at_the_next_look() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    assert port in detect.listening_ports()
    server.close()
    assert port not in detect.listening_ports()


def test_without_netlink_the_scan_answers(
    sockets: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused() -> set[int]:
        raise OSError("no netlink here")

    monkeypatch.setattr(detect, "_from_sock_diag", refused)
    assert {sockets["v4"], sockets["v6"]} <= detect.listening_ports()


def test_listening_ports_are_matched_to_the_lease_that_holds_them() -> None:
    """Each listening port inside a run's block, with its index in the block; ports before the
    first block, between blocks and after the last are nobody's."""
    held = [Lease("run-c", 4040, 10), Lease("run-a", 4000, 10), Lease("run-b", 4020, 10)]
    listening = {3999, 4000, 4009, 4010, 4025, 4049, 4050, 80}
    assert detect._leased(held, listening) == {
        ("run-a", 4000): 0,
        ("run-a", 4009): 9,
        ("run-b", 4025): 5,
        ("run-c", 4049): 9,
    }
    assert detect._leased([], listening) == {}
