"""Small, pure formatting helpers shared by the transcript and the views."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

STATUS_STYLES: dict[str, str] = {
    "draft": "dim",
    "queued": "cyan",
    "preparing": "cyan",
    "running": "bold blue",
    "waiting": "bold yellow",
    "paused": "yellow",
    "review": "bold green",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "red",
    "interrupted": "magenta",
}


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty dict (wire data is never trusted)."""
    return value if isinstance(value, dict) else {}


def status_style(status: str) -> str:
    return STATUS_STYLES.get(status, "")


def cost(usd: Any) -> str:
    try:
        value = float(usd)
    except (TypeError, ValueError):
        return "—"
    return f"${value:.4f}" if 0 < value < 1 else f"${value:.2f}"


def tokens(count: Any) -> str:
    try:
        return f"{int(count):,}"
    except (TypeError, ValueError):
        return "0"


def duration_ms(ms: Any) -> str:
    try:
        seconds = float(ms) / 1000
    except (TypeError, ValueError):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def short_sha(sha: Any) -> str:
    return str(sha)[:10]


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: Any, now: datetime | None = None) -> str:
    """``42s ago``, ``5m ago``, ``3h ago``, ``2d ago``, else the date; ``—`` when unknown."""
    when = parse_time(value)
    if when is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            if unit == "d" and seconds >= 30 * 86400:
                return when.strftime("%Y-%m-%d")
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def timestamp(value: Any) -> str:
    when = parse_time(value)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else "—"
