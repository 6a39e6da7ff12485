"""What every analytics read filters by: the period (a range or a number of days in the
viewer's time zone, turned into UTC bounds) and the dimensions, as SQL conditions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from codeyard.domain.errors import BadRequest
from codeyard.store import schema

R = schema.runs
RANGES = {"today": None, "7d": 7, "30d": 30, "all": 0}
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class Filters:
    """The dimensions every analytics route filters by, and the period (UTC bounds)."""

    since: datetime | None = None
    tz: ZoneInfo = _UTC
    project: str | None = None
    repo: str | None = None
    provider: str | None = None
    model: str | None = None
    agent: str | None = None
    user: str | None = None

    @property
    def since_hour(self) -> str | None:
        return None if self.since is None else self.since.astimezone(UTC).strftime("%Y-%m-%dT%H")

    @property
    def since_ts(self) -> str | None:
        if self.since is None:
            return None
        return self.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def make_filters(
    range_: str | None,
    period: int | None,
    tz: str,
    now: datetime | None = None,
    **dims: str | None,
) -> Filters:
    """``range`` (today|7d|30d|all) or ``period`` (days) in time zone ``tz`` → :class:`Filters`."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadRequest(
            f"Unknown time zone {tz!r}: use an IANA name such as Europe/Paris."
        ) from exc
    local_now = (now or datetime.now(UTC)).astimezone(zone)
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    since: datetime | None
    if period is not None:
        since = midnight - timedelta(days=period - 1) if period > 0 else None
    elif range_ in (None, "today"):
        since = midnight
    elif range_ == "all":
        since = None
    else:
        since = midnight - timedelta(days=RANGES[range_] - 1)  # type: ignore[operator]
    return Filters(since=since, tz=zone, **dims)


def usage_where(flt: Filters, table: Any) -> list[Any]:
    conds = []
    if flt.since_hour is not None:
        conds.append(table.c.hour >= flt.since_hour)
    for dim, value in (
        ("project_id", flt.project),
        ("repo_id", flt.repo),
        ("provider", flt.provider),
        ("model", flt.model),
        ("agent_id", flt.agent),
        ("user_id", flt.user),
    ):
        if value is not None:
            conds.append(table.c[dim] == value)
    return conds


def run_where(flt: Filters, *, by_created: bool = True) -> list[Any]:
    conds = []
    if by_created and flt.since_ts is not None:
        conds.append(R.c.created_at >= flt.since_ts)
    for col, value in (
        (R.c.project_id, flt.project),
        (R.c.provider, flt.provider),
        (R.c.model, flt.model),
        (R.c.agent_id, flt.agent),
        (R.c.created_by, flt.user),
    ):
        if value is not None:
            conds.append(col == value)
    return conds


def in_repo(row: Any, repo: str | None) -> bool:
    return repo is None or repo in (row.repo_ids or [])
