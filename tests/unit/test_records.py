"""The typed records of the store's read paths stay in step with the tables and the API."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codeyard.store import approvals, runs, schema
from codeyard.store.records import ApprovalRecord, RunRecord


def test_every_record_field_is_a_column() -> None:
    assert set(RunRecord.model_fields) <= set(schema.runs.c.keys())
    assert set(ApprovalRecord.model_fields) == set(schema.approvals.c.keys())


def test_a_run_record_holds_what_the_api_shows() -> None:
    assert list(RunRecord.model_fields) == list(runs.PUBLIC_FIELDS)


def _approval_row() -> dict[str, object]:
    return {
        "id": "apr_1",
        "run_id": "run_1",
        "call_id": "c1",
        "tool": "Bash",
        "kind": "bash",
        "input": {"command": "ls"},
        "title": "ls",
        "rule": None,
        "status": "pending",
        "decided_by": None,
        "reason": None,
        "remember": None,
        "created_at": "2026-01-01T00:00:00.000Z",
        "resolved_at": None,
        "expires_at": "2026-01-02T00:00:00.000Z",
        "fingerprint": "f" * 64,
        "used_at": None,
        "used_by": None,
    }


def test_an_approval_record_shows_the_public_keys_only() -> None:
    record = ApprovalRecord.of(_approval_row())
    assert tuple(record.public()) == approvals.PUBLIC_KEYS
    assert record.public() == approvals.public(_approval_row())


def test_a_column_added_later_does_not_break_reading_but_a_bad_value_does() -> None:
    row = _approval_row() | {"added_by_a_later_migration": 1}
    assert ApprovalRecord.of(row).fingerprint == "f" * 64
    with pytest.raises(ValidationError):
        ApprovalRecord.of(_approval_row() | {"input": "not an object"})
    with pytest.raises(ValidationError):
        RunRecord.of({"id": "run_1"})
