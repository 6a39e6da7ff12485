"""``codeyard serve`` freezes what start-up made out of the garbage collector's full collections
once its routers and background features are loaded (issue 15); an app built any other way
(tests, embedders) never freezes anything, so a process that builds many apps keeps none.

A full collection walks every object the process holds, on the event loop: 150-190 ms each
while 1,000 runs started, the loop's longest stall. The app here is the real one with its
lifespan; the process's frozen generation is emptied again after each test.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from codeyard import gc_freeze
from codeyard.api import lazy
from codeyard.app import create_app
from codeyard.config import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()  # the test process collects everything again, as often as before
        gc.set_threshold(*thresholds)


async def test_start_up_is_frozen_only_once_routers_and_background_are_loaded() -> None:
    loop = asyncio.get_running_loop()
    loading: asyncio.Future[None] = loop.create_future()
    started = asyncio.Event()
    freeze = asyncio.create_task(gc_freeze.freeze_after(loading, started))
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() == 0  # nothing loaded yet
    loading.set_result(None)
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() == 0  # the background features still import their modules
    started.set()
    await asyncio.wait_for(freeze, 10)
    assert gc.get_freeze_count() > 0
    # Full collections (what the live runs hold) come ten times more rarely from then on.
    assert gc.get_threshold()[2] == gc_freeze.FULL_EVERY == 100


async def test_the_served_app_freezes_after_start_up_and_others_never(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lazy, "WARM_AFTER_SECONDS", 0.0)
    full_every = gc.get_threshold()[2]
    for freeze_start_up in (False, True):
        app = create_app(sqlite_settings, background_after=0.0, freeze_start_up=freeze_start_up)
        async with app.router.lifespan_context(app):
            await asyncio.wait_for(app.state.background.started.wait(), 30)
            for _ in range(600):  # the routers' warm-up, then (served) the freeze
                loaded = not lazy.placeholders(app)
                if loaded and (gc.get_freeze_count() > 0 or not freeze_start_up):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)  # room for a freeze that should not come
            frozen = gc.get_freeze_count()
        assert (frozen > 0) is freeze_start_up, (freeze_start_up, frozen)
        assert (gc.get_threshold()[2] == gc_freeze.FULL_EVERY) is freeze_start_up
        assert full_every != gc_freeze.FULL_EVERY  # the process's default before
