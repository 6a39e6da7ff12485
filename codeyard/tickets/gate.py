"""The review gate: with ``require_review_to_merge`` set, landing a run needs an approval.

Imports only the store and settings, so the run services can call it without a cycle.
"""

from __future__ import annotations

from typing import Any

from codeyard.domain.errors import Conflict
from codeyard.services import settings as settings_service
from codeyard.services.context import Services
from codeyard.tickets import store as ts

SETTING = "require_review_to_merge"


def standing_verdict(reviews: list[dict[str, Any]]) -> str | None:
    """The newest deciding verdict (``commented`` decides nothing), or None."""
    for r in reversed(reviews):
        if r["verdict"] in ("approved", "changes_requested"):
            return str(r["verdict"])
    return None


async def check_approved(svc: Services, run: dict[str, Any]) -> None:
    """409 naming the fix when the setting is on and the run's standing verdict is not
    ``approved``."""
    if not (await settings_service.effective(svc.engine, svc.settings)).get(SETTING):
        return
    async with svc.engine.connect() as conn:
        verdict = standing_verdict(await ts.reviews_of(conn, run_id=run["id"]))
    if verdict == "approved":
        return
    why = "changes were requested" if verdict else "nobody has approved it"
    raise Conflict(
        f"Run {run['number']} cannot be landed yet: {why}, and the '{SETTING}' setting needs an "
        f"approving review. Approve it with POST /api/runs/{run['id']}/approve (or a review "
        "with verdict 'approved' on its ticket), or turn the setting off with PUT /api/settings.",
        review_required=True,
        verdict=verdict,
    )
