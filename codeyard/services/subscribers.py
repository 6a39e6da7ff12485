"""Event-log subscribers started with the server: analytics rollups and notifications.

Both follow the log from their own durable cursor (``codeyard.store.consumers``), so the
executor and the writer know nothing about them.
"""

from __future__ import annotations

from codeyard.analytics.rollup import Rollup
from codeyard.notifications.service import Notifications
from codeyard.services.context import Services


class Subscribers:
    def __init__(self, services: Services) -> None:
        self.rollup = Rollup(services.engine, services.writer, services.hub)
        self.notifications = Notifications(services)

    async def start(self) -> None:
        self.rollup.start()
        await self.notifications.start()

    async def stop(self) -> None:
        await self.notifications.stop()
        await self.rollup.stop()
