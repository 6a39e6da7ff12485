"""``EventView`` in the OpenAPI schema is the union of the event models (so the UI's generated
types narrow ``data`` by ``type``), while answers still pass any stored event through."""

from __future__ import annotations

from typing import Any

import pytest

from codeyard.api.views import EventView
from codeyard.app import create_app
from codeyard.config import Settings
from codeyard.domain.events import EVENT_MODELS, EVENT_TYPES


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    found: dict[str, Any] = create_app(Settings()).openapi()["components"]["schemas"]
    return found


def _resolve(schemas: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return schemas[ref.rsplit("/", 1)[-1]] if ref else node


def test_every_event_type_is_one_variant_with_its_payload_model(schemas: dict[str, Any]) -> None:
    variants = [_resolve(schemas, v) for v in schemas["EventView"]["oneOf"]]
    by_type = {v["properties"]["type"]["const"]: v for v in variants}
    assert len(by_type) == len(variants) and set(by_type) == EVENT_TYPES
    for name, variant in by_type.items():
        assert set(variant["required"]) == {"id", "run_id", "seq", "type", "ts", "data"}
        data = _resolve(schemas, variant["properties"]["data"])
        # The payload as the server writes it: aliases (``from``), no ``type`` inside ``data``.
        written = {
            field.serialization_alias or field.alias or key
            for key, field in EVENT_MODELS[name].model_fields.items()
            if not field.exclude
        }
        assert set(data["properties"]) == written, name
        assert "type" not in data["properties"]


def test_a_status_event_names_its_fields_as_stored(schemas: dict[str, Any]) -> None:
    (status,) = [
        _resolve(schemas, v)
        for v in schemas["EventView"]["oneOf"]
        if _resolve(schemas, v)["properties"]["type"]["const"] == "run.status"
    ]
    data = _resolve(schemas, status["properties"]["data"])
    assert {"from", "to"} <= set(data["required"]) and "reason" in data["properties"]


def test_an_answer_still_carries_an_event_of_a_type_this_version_does_not_know() -> None:
    stored = {"id": 1, "run_id": "r", "seq": 1, "type": "from.the.future", "ts": "t"}
    view = EventView.model_validate({**stored, "data": {"anything": [1, 2]}})
    assert view.data == {"anything": [1, 2]} and view.type == "from.the.future"
