"""Percentile summaries of a bench's samples, computed and named one way for every bench.

bench/RESULTS.md sets numbers of different benches side by side, so they should mean the same:
nearest-rank percentiles (``_common.percentile``), keys ``p<q>_<unit>`` then ``max_<unit>``
(and ``min_<unit>``), rounded to a bench's own number of digits. Several benches had their own
copy of these few lines (``summary``, ``stats``, inline dicts); one copy cannot drift.

Not here: ``_loop_lag`` and ``temporal_throughput``, whose percentile picks index
``int(q * n)`` rather than the nearest rank (their reported numbers would move).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bench._common import percentile

__all__ = ["percentiles", "summary"]


def percentiles(
    values: Iterable[float],
    qs: Sequence[int] = (50, 99),
    digits: int = 1,
    *,
    unit: str = "ms",
    low: bool = False,
) -> dict[str, float]:
    """``p<q>_<unit>`` for each of ``qs``, ``max_<unit>`` and, with ``low``, ``min_<unit>``;
    ``values`` must not be empty."""
    ordered = sorted(values)
    out = {f"p{q}_{unit}": round(percentile(ordered, q), digits) for q in qs}
    out[f"max_{unit}"] = round(ordered[-1], digits)
    if low:
        out[f"min_{unit}"] = round(ordered[0], digits)
    return out


def summary(
    values: Iterable[float],
    qs: Sequence[int] = (50, 99),
    digits: int = 1,
    *,
    unit: str = "ms",
    low: bool = False,
) -> dict[str, float]:
    """``n`` (the number of samples) and :func:`percentiles`; only ``{"n": 0}`` when empty."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {"n": len(ordered), **percentiles(ordered, qs, digits, unit=unit, low=low)}
