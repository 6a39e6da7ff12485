"""Approval → push received, after the grace delay (issue 17; target: p99 < 1 s).

The app runs in-process on SQLite with a loopback fake push service (``tests/support/
fake_receivers.py``: it verifies VAPID and decrypts every payload, as a browser's push service
and the browser would). One browser subscription; one ``script`` run of N ``write`` steps in
permission mode ``default``, so each step stops for an approval. For each approval: latency =
the push service's receipt (wall clock) minus (the ``approval.requested`` event's ``ts`` + the
grace delay). The path measured is the whole chain: event committed → notifier (log consumer)
→ outbox row → worker waits out the grace → approval still pending? → encrypt + VAPID-sign →
HTTP POST. The approval is then answered through the API so the run goes on.

    .venv/bin/python bench/notify_latency.py [--approvals 50] [--grace 0.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._common import fresh_dir, machine, make_repo, percentile
from bench._common import write_json as save_json
from bench._stats import percentiles
from codeyard.app import create_app
from codeyard.config import Settings
from tests.support.fake_receivers import start_receivers

TOKEN = "cy_bench_token"
TARGET_MS = 1000.0


def ts_seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def next_alert(recv: Any, index: int) -> Any:
    """The ``index``-th approval alert the push service received (resolutions skipped)."""
    for _ in range(6000):
        alerts = [
            p for p in recv.at("/push/bench") if p.message and p.message["kind"] == "approval"
        ]
        if len(alerts) > index:
            return alerts[index]
        await asyncio.sleep(0.005)
    raise AssertionError(f"approval alert {index} never arrived")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    root = fresh_dir("notify_latency")
    repo = make_repo(root / "repo")
    recv = start_receivers()
    settings = Settings(data_dir=root / "data", admin_token=TOKEN, notify_grace_seconds=args.grace)
    app = create_app(settings)
    latencies: list[float] = []
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1", headers=headers
            ) as api:
                sub = recv.browser_subscription("bench")
                assert (await api.post("/api/notifications/subscribe", json=sub)).status_code == 201
                steps = [
                    {"write": {"path": f"f{i}.txt", "content": "x"}} for i in range(args.approvals)
                ]
                body = {
                    "prompt": "bench",
                    "repo_path": str(repo),
                    "provider": "script",
                    "agent_options": {"scenario": {"steps": steps}, "permission_mode": "default"},
                }
                resp = await api.post("/api/runs", json=body)
                assert resp.status_code == 201, resp.text
                run_id = resp.json()["id"]
                for i in range(args.approvals):
                    push = await next_alert(recv, i)
                    approval_id = push.message["approval_id"]  # type: ignore[index]
                    events = (
                        await api.get(
                            f"/api/runs/{run_id}/events?types=approval.requested&limit=500"
                        )
                    ).json()["data"]
                    (ev,) = [e for e in events if e["data"]["approval"]["id"] == approval_id]
                    due = ts_seconds(ev["ts"]) + args.grace
                    latencies.append((push.wall - due) * 1000)
                    r = await api.post(
                        f"/api/approvals/{approval_id}/resolve", json={"decision": "approved"}
                    )
                    assert r.status_code == 200, r.text
    finally:
        recv.close()
    s = sorted(latencies)
    return {
        "machine": machine(),
        "approvals": len(s),
        "grace_s": args.grace,
        **percentiles(s, (50, 90, 99), 2, low=True),
        "met": percentile(s, 99) < TARGET_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--approvals", type=int, default=50)
    parser.add_argument("--grace", type=float, default=0.5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = asyncio.run(main_async(args))
    print(json.dumps(out, indent=2))
    if args.json:
        save_json(args.json, out)


if __name__ == "__main__":
    main()
