"""Registers the built-in channels through the public registry, as an outside package would."""

from __future__ import annotations

from py_vapid import Vapid02

from codeyard.notifications import channels
from codeyard.notifications.channels.apprise_channel import AppriseChannel
from codeyard.notifications.channels.chat import SLACK_API, DiscordChannel, SlackChannel
from codeyard.notifications.channels.devices import DeviceChannel, DeviceSender
from codeyard.notifications.channels.webhook import WebhookChannel
from codeyard.notifications.channels.webpush import WebPushChannel


def register_builtins(
    vapid: Vapid02, subject: str, device_sender: DeviceSender, slack_api_url: str = SLACK_API
) -> None:
    channels.register(WebPushChannel(vapid, subject))
    channels.register(WebhookChannel())
    channels.register(SlackChannel(slack_api_url))
    channels.register(DiscordChannel())
    channels.register(AppriseChannel())
    channels.register(DeviceChannel(device_sender))
