"""The pure rules of local checks and fix loops (codeyard.checks.spec)."""

from __future__ import annotations

from codeyard.checks import CheckResult, ci_prompt, local_failure_key, local_prompt, trim_log
from codeyard.checks.spec import review_prompt
from codeyard.notifications.messages import TYPES, from_event


def test_trim_log_drops_colour_timestamps_and_groups_and_keeps_the_end() -> None:
    raw = (
        "2024-05-01T10:00:00.1234567Z ##[group]Run pytest\n"
        "2024-05-01T10:00:01.0000000Z \x1b[31mFAILED\x1b[0m tests/test_a.py::test_x\n"
        "2024-05-01T10:00:02.0000000Z ##[endgroup]\n"
    )
    assert trim_log(raw) == "FAILED tests/test_a.py::test_x"
    long = "\n".join(f"line {i}" for i in range(2000))
    trimmed = trim_log(long, limit=100)
    assert trimmed.endswith("line 1999") and len(trimmed) <= 100
    assert trimmed.startswith("line ")  # cut at a line start, not mid-line


def test_the_same_state_failing_the_same_checks_is_the_same_failure() -> None:
    a = local_failure_key("run_1", {"r1": "t1"}, ["r1:tests"])
    assert a == local_failure_key("run_1", {"r1": "t1"}, ["r1:tests"])
    assert a != local_failure_key("run_1", {"r1": "t2"}, ["r1:tests"])
    assert a != local_failure_key("run_1", {"r1": "t1"}, ["r1:tests", "r1:lint"])
    assert a != local_failure_key("run_2", {"r1": "t1"}, ["r1:tests"])


def test_prompts_carry_the_log_the_attempt_and_the_anchors() -> None:
    failure = CheckResult("r1", "tests", "pytest -q", False, 1, False, 10, "E  assert 1 == 2\n")
    text = local_prompt([failure], attempt=2)
    assert "`pytest -q`" in text and "assert 1 == 2" in text and "Attempt 2 of 3" in text
    ci = ci_prompt(
        name="build",
        number=7,
        sha="abcdef1234567890",
        url="https://ci/run/1",
        log="boom\n",
        annotations=[{"path": "src/a.py", "start_line": 3, "message": "undefined name"}],
        attempt=1,
    )
    assert "#7" in ci and "abcdef123456" in ci and "src/a.py:3" in ci and "boom" in ci
    review = review_prompt(
        reviewer="alice",
        number=7,
        summary="Please rename",
        comments=[{"path": "src/a.py", "line": 10, "body": "call it total"}],
    )
    assert "alice" in review and "src/a.py:10: call it total" in review


def test_an_exhausted_fix_loop_notifies_that_the_run_needs_attention() -> None:
    assert "feedback.exhausted" in TYPES
    data = {"source": "checks", "attempts": 3, "reason": "local checks still fail"}
    note = from_event("feedback.exhausted", data, {"id": "run_1", "number": 4, "title": "Fix"})
    assert note is not None and note.kind == "run.attention" and note.urgent
    assert note.title == "Run #4 needs your attention" and "still fail" in note.body
