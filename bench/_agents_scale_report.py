"""What ``bench/agents_scale.py`` reports: each step's numbers from what it measured, the
memory model across steps, and the table.

Apart from the bench's measuring loop (``agents_scale.py``: the server, the runs it drives and
follows, the samplers started and stopped around them) so that what a number means is read in
one place: the loop hands over its raw readings (:class:`Measured`) and :func:`step_result`
turns them into the step's JSON.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import _loop_lag
from bench._fake_claude import TOOL_CALLS
from bench._proctree import TICK, Sampler
from bench._stats import summary


@dataclass
class RunLog:
    """What the bench saw of one run (the measuring loop's driver fills it in)."""

    status: str | None = None
    approvals: int = 0
    tool_results: int = 0
    errors: list[str] = field(default_factory=list)
    #: Per approval: requested ts, seen by the bench, resolve returned, resolved ts, next ts.
    trips: list[dict[str, float]] = field(default_factory=list)
    #: Agent events that arrived between the approval and the approved call's result.
    next_types: dict[str, int] = field(default_factory=dict)
    run: str | None = None
    #: The approved call of each trip (the server's milestones name it).
    calls: list[str] = field(default_factory=list)
    #: Each approval asked, in order (the server's ``resolve received`` milestone names it).
    approval_ids: list[str] = field(default_factory=list)


@dataclass
class Measured:
    """One step's raw readings, as the measuring loop took them."""

    n: int
    logs: list[RunLog]
    #: Processes of the server's tree left before the step, and after its runs ended.
    leftover_before: int
    leftover_after: int
    #: The step's duration (monotonic), and its start and end on the wall clock.
    wall: float
    wall0: float
    wall1: float
    #: The server's own CPU ticks during the step, and its reaped children's (``cutime``).
    own_ticks: int
    reaped_ticks: int
    sampler: Sampler
    #: ``MemAvailable`` (MB) before the step.
    available0: float
    #: The share of the machine's CPU other processes took meanwhile (``Interference``).
    foreign: float
    #: The server's timing file (its milestones); the loop-lag log lies beside it.
    timing: Path


def incomplete(log: RunLog) -> str:
    return f"status {log.status}, {log.approvals} approvals, {log.tool_results} tool results"


def milestones(path: Path) -> dict[tuple[str, str], float]:
    """(run id, milestone) → the first time the server logged it (``codeyard.agents.timing``:
    ``<run id> <milestone> <unix time>`` a line)."""
    out: dict[tuple[str, str], float] = {}
    for line in path.read_text().splitlines():
        run_id, _, rest = line.partition(" ")
        what, _, at = rest.rpartition(" ")
        out.setdefault((run_id, what), float(at))
    return out


def add_milestones(logs: list[RunLog], marks: dict[tuple[str, str], float]) -> None:
    """Each trip's ``received`` (the resolve request reached the approvals service), ``woken``
    (the decision's wait ended) and ``delivered`` (handed to the agent), where the server logged
    them."""
    for lg in logs:
        for trip, call, approval in zip(lg.trips, lg.calls, lg.approval_ids, strict=False):
            for key, what in (("woken", "approval answered"), ("delivered", "decision delivered")):
                at = marks.get((str(lg.run), f"{what} {call}"))
                if at is not None:
                    trip[key] = at
            at = marks.get((approval, "resolve received"))
            if at is not None:
                trip["received"] = at


def gaps(trips: list[dict[str, float]], a: str, b: str) -> dict[str, float]:
    return summary([(t[b] - t[a]) * 1000 for t in trips if a in t and b in t])


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares (intercept, slope); None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, slope


def step_result(m: Measured) -> dict[str, Any]:
    """The step's JSON: errors, the approval round trip and its parts, the CPU and memory
    shares (see ``agents_scale.py``'s docstring for what each means)."""
    n, logs, sampler = m.n, m.logs, m.sampler
    own = m.own_ticks / TICK
    # Reaped children (git, the sandbox launcher) through cutime; the agents below the launcher
    # are reaped by it, not by the server, and are counted from the samples.
    reaped = m.reaped_ticks / TICK
    children = reaped + sampler.deeper_ticks() / TICK
    sampled = {k: round(v / TICK, 2) for k, v in sampler.sampled_ticks().items()}
    by_thread = {
        k: round(v * 1000 / TICK / n, 1) for k, v in sampler.thread_split(m.own_ticks).items()
    }
    add_milestones(logs, milestones(m.timing))
    trips = [t for lg in logs for t in lg.trips]
    errors = [e for lg in logs for e in lg.errors]
    bad = [
        lg
        for lg in logs
        if lg.status != "review" or lg.approvals != 1 or lg.tool_results != TOOL_CALLS
    ]
    rss, pss = sampler.peak_rss, sampler.peak_pss
    return {
        "agents": n,
        "leftover_before": m.leftover_before,
        "leftover_after": m.leftover_after,
        "wall_s": round(m.wall, 1),
        "errors": len(errors) + len(bad),
        "error_examples": errors[:5] + [incomplete(b) for b in bad][:5],
        # The target's two ends, both reported: the decision delivered to the agent, and the
        # agent's next event (its own read, tool and report included).
        "approval_round_trip": gaps(trips, "requested", "next"),
        "approval_round_trip_to_delivery": gaps(trips, "requested", "delivered"),
        "events_between_approval_and_result": dict(
            sum((Counter(lg.next_types) for lg in logs), Counter())
        ),
        "approval_parts": {
            "requested_to_bench": summary([(t["seen"] - t["requested"]) * 1000 for t in trips]),
            "resolve_request": summary([(t["answered"] - t["seen"]) * 1000 for t in trips]),
            # The request's parts: the bench's send, HTTP and authentication; then the write
            # waiting its turn in the writer and running (to the ``approval.resolved`` ts).
            "seen_to_received": gaps(trips, "seen", "received"),
            "received_to_resolved": gaps(trips, "received", "resolved"),
            "resolved_to_agent_event": gaps(trips, "resolved", "next"),
            "resolved_to_woken": gaps(trips, "resolved", "woken"),
            "woken_to_delivered": gaps(trips, "woken", "delivered"),
            "delivered_to_agent_event": gaps(trips, "delivered", "next"),
        },
        "cpu": {
            "server_s": round(own, 2),
            "children_s": round(children, 2),
            "reaped_children_s": round(reaped, 2),
            "share": round(own / max(1e-9, own + children), 4),
            "sampled_by_name_s": sampled,
            "server_per_run_ms": round(own * 1000 / n, 1),
            # The server's CPU per run by thread (ms): the event loop, aiosqlite's thread, the
            # git waiters, the commit thread (bench/_threads.py).
            "server_per_run_ms_by_thread": by_thread,
        },
        "rss": {
            "server_mb": round(rss.get("server", 0.0), 1),
            "tree_mb": round(rss["tree"], 1),
            "share": round(rss.get("server", 0.0) / max(1e-9, rss["tree"]), 4),
            "agents_alive": rss.get("agents", 0),
        },
        "pss": {
            "server_mb": round(pss.get("server", 0.0), 1),
            "tree_mb": round(pss["tree"], 1),
            "share": round(pss.get("server", 0.0) / max(1e-9, pss["tree"]), 4),
            "agents_alive": pss.get("agents", 0),
        },
        "per_agent_mb": {
            "rss": round((rss["tree"] - rss.get("server", 0.0)) / max(1, rss.get("agents", 0)), 1),
            "pss": round((pss["tree"] - pss.get("server", 0.0)) / max(1, pss.get("agents", 0)), 1),
            "mem_available": round((m.available0 - sampler.min_available) / n, 1),
        },
        "most_agents_alive": sampler.most_agents,
        "mem_available_drop_mb": round(m.available0 - sampler.min_available, 1),
        "foreign_cpu": round(m.foreign, 3),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        # The server's event-loop lag and GC pauses while the step's runs went (--loop-lag).
        "loop": _loop_lag.summary(m.timing.parent / "loop.log", since=m.wall0, until=m.wall1),
    }


def memory_model(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Least-squares lines through (N, MB) of the steps run: what the largest N not run would
    need."""
    model: dict[str, Any] = {}
    for key, pick in (
        ("tree_pss_mb", lambda s: s["pss"]["tree_mb"]),
        ("mem_available_drop_mb", lambda s: s["mem_available_drop_mb"]),
        ("server_rss_mb", lambda s: s["rss"]["server_mb"]),
    ):
        line = fit([(s["agents"], pick(s)) for s in steps])
        if line is not None:
            a, b = line
            model[key] = {
                "intercept_mb": round(a, 1),
                "mb_per_agent": round(b, 1),
                "at_60_mb": round(a + b * 60, 1),
            }
    return model


def table(r: dict[str, Any]) -> str:
    head = (
        "| N | errors | wall | approval → agent's next event p50 / p99 | "
        "approval → decision delivered p50 / p99 | server CPU share | "
        "server RSS / tree RSS | PSS share | MemAvailable drop | foreign CPU |"
    )
    rows = [head, "|---:|---:|---:|---|---|---:|---|---:|---:|---:|"]
    for s in r["steps"]:
        trip, handed = s["approval_round_trip"], s["approval_round_trip_to_delivery"]
        rows.append(
            f"| {s['agents']} | {s['errors']} | {s['wall_s']} s | "
            f"{trip.get('p50_ms')} / {trip.get('p99_ms')} ms | "
            f"{handed.get('p50_ms')} / {handed.get('p99_ms')} ms | "
            f"{s['cpu']['share'] * 100:.1f} % ({s['cpu']['server_s']} / "
            f"{s['cpu']['server_s'] + s['cpu']['children_s']:.1f} s) | "
            f"{s['rss']['server_mb']} / {s['rss']['tree_mb']:.0f} MB "
            f"({s['rss']['share'] * 100:.1f} %) | {s['pss']['share'] * 100:.1f} % | "
            f"{s['mem_available_drop_mb']:.0f} MB | {s['foreign_cpu']} |"
        )
    for n, why in r["skipped"].items():
        rows.append(f"| {n} | skipped: {why} | | | | | | | | |")
    lines = ["\n".join(rows), ""]
    for key, m in r["model"].items():
        lines.append(
            f"- {key}: {m['intercept_mb']} MB + {m['mb_per_agent']} MB x N "
            f"→ {m['at_60_mb']} MB at N = 60"
        )
    return "\n".join(lines)
