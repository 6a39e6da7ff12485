"""Every request body answers an explicit ``null`` in any field with a validation error (a 422)
or accepts it, never with another exception (a 500).

``X | SkipJsonSchema[None] = Field(min_length=…)`` makes pydantic raise ``TypeError`` on null;
schemathesis found three such routes in one session, each a 500. ``NonNull[…]`` in
``codeyard.api.schemas`` is the right spelling. This walks the body of every route (and the
models nested in them), so the wrong one is caught without a server or luck."""

from __future__ import annotations

import contextlib
import typing
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from codeyard.api.lazy import load_all
from codeyard.app import create_app
from codeyard.config import Settings


def _models_in(annotation: Any, found: set[type[BaseModel]]) -> None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in found:
            return
        found.add(annotation)
        for field in annotation.model_fields.values():
            _models_in(field.annotation, found)
        return
    for arg in typing.get_args(annotation):
        _models_in(arg, found)


def _route_bodies() -> list[type[BaseModel]]:
    app = create_app(Settings())
    load_all(app)
    found: set[type[BaseModel]] = set()
    seen: set[int] = set()

    def walk(node: Any) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, APIRoute):
            if node.body_field is not None:
                _models_in(node.body_field.field_info.annotation, found)
            return
        for attr in ("routes", "original_router", "router"):
            sub = getattr(node, attr, None)
            for child in sub if isinstance(sub, list) else [sub] if sub is not None else []:
                walk(child)

    walk(app.router)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


BODIES = _route_bodies()


def test_the_walk_finds_every_kind_of_body() -> None:
    names = {c.__name__ for c in BODIES}
    # A plain body, a change body, an optional body and a model nested in a body.
    assert {"RunCreate", "TicketUpdate", "PushBody", "RepoSpec"} <= names, names
    assert len(BODIES) > 80


@pytest.mark.parametrize("body", BODIES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_null_in_each_field_is_accepted_or_a_validation_error(body: type[BaseModel]) -> None:
    for field in body.model_fields:
        # A ValidationError is answered as a 422 problem naming the field; anything else is a 500.
        with contextlib.suppress(ValidationError):
            body.model_validate({field: None})


def test_settings_refuse_null_wherever_get_never_answers_null() -> None:
    """``PUT /api/settings {"gates": null}`` was stored, and every later GET was a 500."""
    from codeyard.api.settings import SettingsUpdate, SettingsView

    for name, field in SettingsView.model_fields.items():
        if name not in SettingsUpdate.model_fields or name in ("worktree_root", "sandbox_status"):
            continue  # read-only: sent back as GET answered them, then ignored
        nullable = type(None) in typing.get_args(field.annotation)
        if nullable:
            SettingsUpdate.model_validate({name: None})
        else:
            with pytest.raises(ValidationError, match="may not be null"):
                SettingsUpdate.model_validate({name: None})
