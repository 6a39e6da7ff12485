"""Fail a turn whose agent cannot reach its model, instead of letting it retry for ever.

An agent CLI that loses its model API retries on its own: Codex says "Reconnecting... 1/5" and
then "Reconnecting... waiting for network" without end, and the run would stay ``running``. The
adapter marks such notices as :class:`~codeyard.agents.base.ModelRetrying`; when they go on for
``limit`` seconds with no sign of progress (any other event), the turn fails with the CLI's own
last message. A slow but working model, or a long tool call, never trips it: only a retry notice
starts the clock.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from codeyard.agents.base import AdapterItem, ModelRetrying
from codeyard.domain.events import ErrorEvent, NewEvent


class ModelUnreachable(Exception):
    """The model stayed unreachable for the whole limit; ``str()`` is the run's reason."""


class ModelWatchdog:
    """``async with`` around a turn's item loop; :meth:`observe` every item."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.message: str | None = None
        self._timeout = asyncio.timeout(None)
        self._expired = False

    async def __aenter__(self) -> ModelWatchdog:
        await self._timeout.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._timeout.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            if self._timeout.expired() and self.message is not None:
                raise ModelUnreachable(
                    f"The model could not be reached for {self.limit:g} s; the agent said: "
                    f"{self.message}. Check the provider's address and key in the run's agent "
                    "options (see `codeyard fake-llm` for working examples), then resume."
                ) from None
            raise

    def observe(self, item: AdapterItem) -> None:
        """A retry notice starts the clock (once); any other event stops it."""
        loop = asyncio.get_running_loop()
        if isinstance(item, ModelRetrying):
            if self.message is None:
                self._timeout.reschedule(loop.time() + self.limit)
            self.message = item.message
        elif self.message is not None and _progress(item):
            self._timeout.reschedule(None)
            self.message = None


def _progress(item: AdapterItem) -> bool:
    """Any event but an error: the agent heard from its model (or ran a tool)."""
    return isinstance(item, NewEvent) and not isinstance(item, ErrorEvent)
