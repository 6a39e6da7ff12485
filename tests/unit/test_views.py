"""Response models stay in step with what the store returns, and undeclared answers only shrink."""

from __future__ import annotations

import typing
import warnings

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from codeyard.api.project_views import SettingsDefaultsView
from codeyard.api.review_views import DiffLineView
from codeyard.api.views import ApprovalView, RunView
from codeyard.app import create_app
from codeyard.config import Settings
from codeyard.services import settings as settings_service
from codeyard.store import approvals, runs

#: Routes whose answer has no ``response_model`` yet (their shape is missing from the OpenAPI
#: schema and so from the UI's generated types). Lower it as routes get models; never raise it.
UNDECLARED_CEILING = 0


def _typed(model: object) -> bool:
    """A pydantic model, or a container of one (``dict[str, Any]`` inferred from a return
    annotation describes nothing)."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        return True
    return any(_typed(arg) for arg in typing.get_args(model))


def test_run_view_has_every_public_field_of_a_run() -> None:
    """A field added to ``PUBLIC_FIELDS`` but not to ``RunView`` would vanish from answers."""
    assert list(RunView.model_fields) == list(runs.PUBLIC_FIELDS)


def test_approval_view_has_every_public_field_of_an_approval() -> None:
    assert list(ApprovalView.model_fields) == list(approvals.PUBLIC_KEYS)


def test_settings_defaults_view_declares_every_stored_setting() -> None:
    """A stored setting added to the service but not to ``SettingsView`` would vanish from
    ``GET /api/settings/defaults``."""
    assert sorted(SettingsDefaultsView.model_fields) == sorted(
        settings_service.defaults(Settings())
    )


def test_a_diff_line_leaves_out_what_git_did_not_say() -> None:
    """The UI tells an added line by its missing ``old_line``: no ``null`` may stand in."""
    line = DiffLineView.model_validate({"type": "add", "text": "x", "new_line": 3})
    assert line.model_dump(mode="json") == {"type": "add", "text": "x", "new_line": 3}


def _walk(routes: list[object], prefix: str = "") -> list[tuple[str, APIRoute]]:
    out: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append((prefix + route.path, route))
        elif (included := getattr(route, "original_router", None)) is not None:
            out.extend(_walk(included.routes, prefix + route.include_context.prefix))
    return out


def _passes_through(route: APIRoute) -> bool:
    """Routes that answer files, logs or a proxied program's bytes have no JSON shape to declare."""
    cls = route.response_class
    return isinstance(cls, type) and not issubclass(cls, JSONResponse)


def test_routes_without_a_response_model_only_get_fewer() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(Settings())
    undeclared = sorted(
        f"{'/'.join(sorted(route.methods))} {path}"
        for path, route in _walk(app.routes)
        if path.startswith("/api")
        and not _typed(route.response_model)
        and route.status_code != 204
        and route.include_in_schema
        and not _passes_through(route)
    )
    assert len(undeclared) <= UNDECLARED_CEILING, (
        f"{len(undeclared)} routes answer without a response_model (ceiling "
        f"{UNDECLARED_CEILING}); declare one on new routes:\n" + "\n".join(undeclared)
    )
