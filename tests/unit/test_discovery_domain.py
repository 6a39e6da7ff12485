"""Reading a discovery answer's proposed actions without I/O: the last fenced block counts,
and a missing or malformed block proposes nothing and says why."""

from __future__ import annotations

import json

from codeyard.discovery.domain import CreateTicket, StartRun, read_actions


def fenced(payload: object, lang: str = "json") -> str:
    return f"```{lang}\n{json.dumps(payload)}\n```"


def test_the_last_block_is_read() -> None:
    first = fenced({"actions": []})
    last = fenced(
        {
            "actions": [
                {"type": "create_ticket", "title": "T", "kind": "bug"},
                {"type": "start_run", "prompt": "Do it"},
            ]
        },
        lang="",
    )
    actions, error = read_actions(f"Draft:\n{first}\nFinal answer.\n{last}\n")
    assert error is None
    assert actions == [
        CreateTicket(type="create_ticket", title="T", kind="bug"),
        StartRun(type="start_run", prompt="Do it"),
    ]
    assert actions[0].priority == "none" and actions[1].title == ""


def test_missing_or_malformed_blocks_propose_nothing_with_the_reason() -> None:
    assert read_actions(None) == ([], "The agent's answer has no fenced JSON block of actions.")
    assert read_actions("no block here")[0] == []
    actions, error = read_actions("```json\n{not json}\n```")
    assert actions == [] and error is not None and "not JSON" in error
    wrong = fenced({"actions": [{"type": "delete_repo"}, {"type": "start_run"}]})
    actions, error = read_actions(wrong)
    assert actions == [] and error is not None
    assert "actions.0" in error and "more" in error
    too_many = fenced({"actions": [{"type": "start_run", "prompt": "p"}] * 9})
    assert "at most 8" in str(read_actions(too_many)[1])
