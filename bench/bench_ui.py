"""Web UI: a run page with 10,000 events in Chromium, and the JS bundle's first-load size.

    .venv/bin/python bench/bench_ui.py [--events 10000] [--repeat 5]

Starts the real app under Uvicorn (plus one bench-only route that appends a realistic mix of
events straight through the writer), signs a headless Debian Chromium in with the login URL,
then opens ``/runs/1`` ``--repeat`` times in fresh pages and measures, from navigation start:
the first transcript row on screen, every event folded and the transcript drawn, and the delay
of a keystroke into the message box right after. Needs ``/usr/bin/chromium`` and ``make ui``.
Writes ``bench/out/ui.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from fastapi import FastAPI, Request

from bench._common import HOST, OUT, PY, ROOT, TOKEN, free_port, machine
from codeyard.domain.events import NewEvent

WEB = ROOT / "codeyard" / "web"
CHROMIUM = "/usr/bin/chromium"


def mixed_events(n: int) -> list[NewEvent]:
    """What a long agent session looks like: messages, thinking, tool calls with results."""
    out: list[NewEvent] = []
    i = 0
    while len(out) < n:
        k = len(out)
        kind = k % 5
        if kind == 0:
            text = (
                f"Step {i}: I looked at `src/module_{i}.py` and **changed** the parser.\n\n- a\n- b"
            )
            out.append(NewEvent("agent.message", {"message_id": f"m{i}", "text": text}))
        elif kind == 1:
            out.append(NewEvent("agent.thinking", {"text": f"Consider case {i} " * 8}))
        elif kind == 2:
            command = f"pytest tests/test_{i}.py -q"
            data = {"call_id": f"c{i}", "tool": "Bash", "kind": "bash", "title": command}
            out.append(NewEvent("tool.call", {**data, "input": {"command": command}}))
        elif kind == 3:
            result = {"call_id": f"c{i}", "ok": True, "output": "1 passed\n" * 5, "error": None}
            out.append(NewEvent("tool.result", {**result, "exit_code": 0, "duration_ms": 800}))
        else:
            out.append(
                NewEvent("file.changed", {"path": f"src/module_{i}.py", "change": "modified"})
            )
            i += 1
    return out


def install(app: FastAPI) -> None:
    @app.post("/bench/fill-mixed")
    async def fill(request: Request) -> dict[str, Any]:
        body = await request.json()
        events = mixed_events(int(body["count"]))
        writer = app.state.services.writer
        for at in range(0, len(events), 1000):
            await writer.append(body["run_id"], events[at : at + 1000])
        return {"appended": len(events)}


def serve(port: int, data_dir: Path) -> None:
    import uvicorn

    from codeyard.app import create_app
    from codeyard.config import Settings

    app = create_app(Settings(host=HOST, port=port, data_dir=data_dir, admin_token=TOKEN))
    install(app)
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


def bundle() -> dict[str, Any]:
    """Bytes (raw and gzip -9) of what index.html loads up front: scripts, preloads, styles."""
    html = (WEB / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="/(assets/[^"]+\.(?:js|css))"', html)
    files = {ref: (WEB / ref).read_bytes() for ref in refs}
    lazy = [p for p in (WEB / "assets").glob("*.js") if f"assets/{p.name}" not in files]
    return {
        "first_load_files": sorted(files),
        "first_load_raw": sum(len(b) for b in files.values()),
        "first_load_gzip": sum(len(gzip.compress(b, 9)) for b in files.values()),
        "js_first_load_gzip": sum(
            len(gzip.compress(b, 9)) for r, b in files.items() if r.endswith(".js")
        ),
        "lazy_chunks_gzip": {
            p.name.split("-")[0]: len(gzip.compress(p.read_bytes(), 9)) for p in sorted(lazy)
        },
    }


READY = """() => {
  const t = document.querySelector('[data-testid=transcript]');
  if (!t || t.dataset.complete !== 'true' || t.dataset.eventCount !== '%d') return false;
  if (!t.querySelector('[data-item-key]')) return false;
  return performance.now();
}"""
FIRST_ROW = "() => document.querySelector('[data-item-key]') ? performance.now() : false"
KEY_DELAY = """async () => {
  const box = document.querySelector('textarea[aria-label=Message]');
  box.focus();
  const t0 = performance.now();
  box.value = 'x';
  box.dispatchEvent(new InputEvent('input', { bubbles: true }));
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - t0;
}"""


async def measure(url: str, events: int, repeat: int) -> list[dict[str, float]]:
    from playwright.async_api import async_playwright

    runs: list[dict[str, float]] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        await page.goto(f"{url}/login#token={TOKEN}")
        await page.wait_for_url(f"{url}/")
        for _ in range(repeat + 1):  # the first pass warms the HTTP cache and the database
            page = await context.new_page()
            await page.goto(f"{url}/runs/1")
            first = await (await page.wait_for_function(FIRST_ROW, polling="raf")).json_value()
            ready = await (
                await page.wait_for_function(READY % events, polling="raf", timeout=60_000)
            ).json_value()
            key = await page.evaluate(KEY_DELAY)
            nav = await page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " return n ? n.domContentLoadedEventEnd : 0; }"
            )
            marks = await page.evaluate(
                "() => Object.fromEntries(performance.getEntriesByType('mark')"
                ".map((m) => [m.name.split(':')[1], m.startTime]))"
            )
            runs.append(
                {
                    "dom_ready_ms": nav,
                    "first_row_ms": first,
                    "stream_open_ms": marks.get("stream-open", 0.0),
                    "first_events_ms": marks.get("first-events", 0.0),
                    "ready_ms": ready,
                    "key_ms": key,
                }
            )
            await page.close()
        await browser.close()
    return runs[1:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.port, args.data_dir)
        return
    if not (WEB / "index.html").exists():
        sys.exit("the UI is not built: run `make ui`")
    port = free_port()
    url = f"http://{HOST}:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()

        def git(*a: str) -> None:
            subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)

        git("init", "-q", "-b", "main")
        (repo / "README.md").write_text("# bench\n")
        git("add", "-A")
        git("-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "init")
        cmd = [PY, __file__, "--serve", "--port", str(port), "--data-dir", str(Path(tmp) / "d")]
        server = subprocess.Popen(cmd, cwd=ROOT)
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
                for _ in range(300):
                    try:
                        if c.get("/api/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.1)
                run = c.post(
                    "/api/runs",
                    json={
                        "prompt": "bench",
                        "repo_path": str(repo),
                        "provider": "script",
                        "agent_options": {"scenario": {"steps": [{"say": "hi"}]}},
                    },
                ).json()
                for _ in range(200):
                    if c.get(f"/api/runs/{run['id']}").json()["status"] == "review":
                        break
                    time.sleep(0.1)
                before = len(c.get(f"/api/runs/{run['id']}/events?limit=500").json()["data"])
                c.post(
                    "/bench/fill-mixed", json={"run_id": run["id"], "count": args.events - before}
                )
            samples = asyncio.run(measure(url, args.events, args.repeat))
        finally:
            server.terminate()
            server.wait(10)
    result = {
        "machine": machine(),
        "events": args.events,
        "samples": samples,
        "median": {k: statistics.median(s[k] for s in samples) for k in samples[0]},
        "bundle": bundle(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ui.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({"median": result["median"], "bundle": result["bundle"]}, indent=1))


if __name__ == "__main__":
    main()
