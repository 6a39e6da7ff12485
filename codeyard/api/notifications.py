"""``/api/notifications/*``, ``/api/devices``: push subscriptions, channels, preferences."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["notifications"])
#: Routes a notification's action token authorizes by itself (no session: a phone's tap).
public = APIRouter(tags=["notifications"])
