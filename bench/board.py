"""Board with 2,000 tickets: time until it is interactive in headless Chromium (issue 19).

Target: < 1 s. Starts the real app under Uvicorn, makes a project and ``--tickets`` tickets
through the API (statuses spread over the six columns), signs a headless Debian Chromium in
with the login URL, then opens ``/projects/bench/board`` ``--repeat`` times in fresh pages and
measures, from navigation start: the first card on screen (``first_card_ms``) and the moment a
click on that card's link is handled (``interactive_ms``: Playwright clicks as soon as the card
is visible and stable; the click runs only when the main thread is free, so a long render shows
up here). Needs ``/usr/bin/chromium`` and ``make ui``. Writes ``bench/out/board.json``.

    .venv/bin/python bench/board.py [--tickets 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._common import (
    HOST,
    OUT,
    PY,
    ROOT,
    TOKEN,
    free_port,
    machine,
    make_repo,
    stop,
    wait_healthy,
)

WEB = ROOT / "codeyard" / "web"
CHROMIUM = "/usr/bin/chromium"
STATUSES = ("inbox", "backlog", "in_progress", "in_review", "done", "cancelled")
#: Records when the first click reaches the page (capture phase, before React handles it).
CLICK_PROBE = (
    "document.addEventListener('click', () => {"
    " if (window.__clickedAt === undefined) window.__clickedAt = performance.now(); }, true);"
)


def serve(port: int, data_dir: Path) -> None:
    import uvicorn

    from codeyard.app import create_app
    from codeyard.config import Settings

    app = create_app(Settings(host=HOST, port=port, data_dir=data_dir, admin_token=TOKEN))
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


def fill(c: httpx.Client, repo: Path, count: int) -> float:
    """One project with ``count`` tickets; most in the backlog and done, like a real board."""
    started = time.perf_counter()
    body = {"name": "Bench", "slug": "bench", "repos": [{"path": str(repo)}]}
    c.post("/api/projects", json=body).raise_for_status()
    weights = (2, 6, 1, 1, 8, 2)  # inbox, backlog, in progress, in review, done, cancelled
    cycle = [s for s, w in zip(STATUSES, weights, strict=True) for _ in range(w)]
    for i in range(count):
        ticket = {
            "title": f"Ticket {i}: make the checkout step {i % 37} faster on slow phones",
            "body": "Steps to reproduce, expected and actual behaviour. " * 4,
            "status": cycle[i % len(cycle)],
            "priority": ("none", "low", "medium", "high")[i % 4],
            "labels": ["ui"] if i % 3 == 0 else [],
        }
        c.post("/api/projects/bench/tickets", json=ticket).raise_for_status()
    return time.perf_counter() - started


def list_all(c: httpx.Client) -> float:
    """Milliseconds to read every ticket through the list API, the board's request pattern."""
    started, cursor = time.perf_counter(), None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = c.get("/api/projects/bench/tickets", params=params).json()
        cursor = page["next_cursor"]
        if not cursor:
            return (time.perf_counter() - started) * 1000


async def measure(url: str, repeat: int) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright

    runs: list[dict[str, Any]] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            await context.add_init_script(CLICK_PROBE)
            page = await context.new_page()
            await page.goto(f"{url}/login#token={TOKEN}")
            await page.wait_for_url(f"{url}/")
            for _ in range(repeat + 1):  # the first pass warms the HTTP cache and the database
                page = await context.new_page()
                await page.goto(f"{url}/projects/bench/board", wait_until="commit")
                card = page.locator("[data-testid=column-backlog] .ticket-title").first
                await card.wait_for(timeout=30_000)
                first = await page.evaluate("() => performance.now()")
                await card.click(timeout=30_000)
                await page.wait_for_url("**/tickets/*", timeout=30_000)
                clicked = await page.evaluate("() => window.__clickedAt")
                runs.append({"first_card_ms": first, "interactive_ms": clicked})
                await page.close()
            page = await context.new_page()
            await page.goto(f"{url}/projects/bench/board")
            await page.locator("[data-testid=column-done] .ticket-title").first.wait_for()
            shown = await page.evaluate(
                "() => [...document.querySelectorAll('[data-testid^=column-]')].map((c) =>"
                " [c.dataset.testid, c.querySelectorAll('article').length,"
                " c.querySelector('h2')?.textContent])"
            )
            runs[-1]["columns"] = shown
        finally:
            await browser.close()
    return runs[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=2_000)
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
        repo = make_repo(Path(tmp) / "repo")
        cmd = [PY, __file__, "--serve", "--port", str(port), "--data-dir", str(Path(tmp) / "d")]
        server = subprocess.Popen(cmd, cwd=ROOT)
        try:
            wait_healthy(port, server, 30)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
                load_s = fill(c, repo, args.tickets)
                api_ms = [list_all(c) for _ in range(5)]
            samples = asyncio.run(measure(url, args.repeat))
        finally:
            stop(server)
    keys = ("first_card_ms", "interactive_ms")
    result = {
        "machine": machine(),
        "tickets": args.tickets,
        "load_s": load_s,
        "list_api_ms": sorted(api_ms),
        "samples": samples,
        "median": {k: statistics.median(s[k] for s in samples) for k in keys},
        "max": {k: max(s[k] for s in samples) for k in keys},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "board.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("median", "max", "load_s", "list_api_ms")}, indent=1))
    print(json.dumps(samples[-1].get("columns")))


if __name__ == "__main__":
    main()
