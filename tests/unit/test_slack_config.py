"""Which Slack channel configurations are accepted, and what each one stores."""

from __future__ import annotations

from typing import Any

import pytest

from codeyard.notifications.channels.chat import slack_config

BOT = "xoxb-1111-2222-abcdefgh"
APP = "xapp-1-A0APP-3333-abcdefgh"
SECRET = "0123456789abcdef0123456789abcdef"
HOOK = "https://hooks.slack.com/services/T/B/x"


@pytest.mark.parametrize(
    ("config", "stored"),
    [
        ({"url": HOOK}, {"url": HOOK}),
        (
            {"url": HOOK, "signing_secret": SECRET, "approvers": ["U0B", "U0A", "U0B"]},
            {
                "url": HOOK,
                "signing_secret": SECRET,
                "approvers": ["U0A", "U0B"],
                "interactive": True,
            },
        ),
        ({"bot_token": BOT, "channel": "C0TEAM"}, {"bot_token": BOT, "channel": "C0TEAM"}),
        (
            {"bot_token": BOT, "channel": "C0TEAM", "app_token": APP, "approvers": ["U0A"]},
            {
                "bot_token": BOT,
                "channel": "C0TEAM",
                "app_token": APP,
                "approvers": ["U0A"],
                "interactive": True,
            },
        ),
    ],
)
def test_accepted_configs(config: dict[str, Any], stored: dict[str, Any]) -> None:
    assert slack_config(config) == stored


@pytest.mark.parametrize(
    ("config", "hint"),
    [
        ({}, "'url'"),
        ({"url": HOOK, "approvers": ["U0A"]}, "signing_secret"),
        ({"bot_token": BOT, "channel": "general"}, "'channel'"),
        ({"bot_token": "xoxp-1111-2222-abcdefgh", "channel": "C0TEAM"}, "xoxb"),
        ({"url": HOOK, "app_token": APP, "approvers": ["U0A"]}, "bot_token"),
        ({"bot_token": BOT, "channel": "C0TEAM", "app_token": APP}, "approvers"),
        ({"bot_token": BOT, "channel": "C0TEAM", "app_token": "xoxb-1-2-3-4-5-6-7"}, "xapp"),
    ],
)
def test_refused_configs_say_what_to_fix(config: dict[str, Any], hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        slack_config(config)
