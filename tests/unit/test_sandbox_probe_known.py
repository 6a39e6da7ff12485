"""A new run's sandbox check answers from the probe's cached answer on the event loop: only the
first probe (bwrap runs) goes to a thread (``services.sandbox.ensure_runnable``, issue 15)."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from codeyard.config import Settings
from codeyard.sandbox import Sandbox, SandboxUnavailable, probe
from codeyard.sandbox.probe import known
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store.db import create_engine

pytestmark = pytest.mark.anyio

#: The module (``codeyard.sandbox.probe`` is the function on the package).
probe_module = importlib.import_module("codeyard.sandbox.probe")


@pytest.fixture
async def svc(sqlite_settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    """What ``ensure_runnable`` reads: the settings (bwrap at a path where there is none) and
    the database (the stored sandbox mode)."""
    settings = sqlite_settings.model_copy(update={"bwrap_path": str(tmp_path / "no/bwrap")})
    engine = create_engine(settings.resolved_database_url)
    try:
        yield SimpleNamespace(settings=settings, engine=engine)  # type: ignore[misc]
    finally:
        await engine.dispose()


class _Trips:
    """``asyncio`` as ``services.sandbox`` sees it, counting its thread trips."""

    def __init__(self) -> None:
        self.count = 0

    async def to_thread(self, fn: Any, /, *args: Any) -> Any:
        self.count += 1
        return await asyncio.to_thread(fn, *args)


def test_known_is_the_answer_once_probed_and_nothing_before(tmp_path: Path) -> None:
    missing = str(tmp_path / "no" / "bwrap")
    assert known(missing) is None and Sandbox(bwrap_path=missing).probed() is None
    found = probe(missing)
    assert known(missing) is found is probe(missing)  # probed once
    assert Sandbox(bwrap_path=missing).probed() is found


async def test_a_known_answer_takes_no_thread_trip(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips = _Trips()
    monkeypatch.setattr(sandbox_service, "asyncio", trips)
    with pytest.raises(SandboxUnavailable, match="not found"):
        await sandbox_service.ensure_runnable(svc)
    assert trips.count == 1  # the first probe runs bwrap (here: looks for it), off the loop
    for _ in range(3):
        with pytest.raises(SandboxUnavailable, match="not found"):
            await sandbox_service.ensure_runnable(svc)
    assert (await sandbox_service.status(svc))["available"] is False
    assert trips.count == 1


def test_a_probe_that_timed_out_is_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy host once made the probe time out: that is no answer to keep for the server's
    life (every run would be refused until a restart), the next run asks again."""
    bwrap = tmp_path / "bwrap"
    bwrap.write_text("#!/bin/sh\nsleep 5\n")
    bwrap.chmod(0o755)
    monkeypatch.setattr(probe_module, "PROBE_SECONDS", 0.3)
    busy = probe(str(bwrap))
    assert not busy.ok and busy.problem is not None and "did not answer" in busy.problem
    assert known(str(bwrap)) is None  # not kept
    bwrap.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "bubblewrap 0.8.0"\nexit 0\n')
    found = probe(str(bwrap))
    assert found.ok and found.version == "0.8.0"
    assert known(str(bwrap)) is found  # a real answer is kept
