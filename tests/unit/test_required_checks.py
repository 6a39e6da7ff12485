"""Which required checks a pull request still waits for (branch protection, issue 21): pure."""

from __future__ import annotations

from codeyard.prs.base import Check, PullRequest


def _pull(checks: list[Check], required: list[str] | None) -> PullRequest:
    return PullRequest(
        url="https://github.com/o/r/pull/1",
        number=1,
        state="open",
        draft=False,
        title="t",
        head="h",
        base="main",
        checks=checks,
        required_checks=required,
    )


def test_each_required_check_is_missing_running_failed_or_passed() -> None:
    checks = [
        Check("tests", "completed", "failure"),
        Check("lint", "queued", None),
        Check("docs", "completed", "skipped"),  # GitHub counts skipped and neutral as passed
        Check("types", "completed", "neutral"),
        Check("optional", "completed", "failure"),  # not required: never waited for
    ]
    pull = _pull(checks, ["tests", "lint", "docs", "types", "build"])
    assert pull.waiting_on() == ["tests: failure", "lint: queued", "build: not reported"]
    assert pull.to_dict()["waiting_on"] == pull.waiting_on()


def test_no_protection_or_unknown_protection_waits_for_nothing() -> None:
    failing = [Check("tests", "completed", "failure")]
    assert _pull(failing, []).waiting_on() == []
    assert _pull(failing, None).waiting_on() == []  # the forge decides when merging
