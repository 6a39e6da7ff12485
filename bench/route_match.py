"""CPU of choosing a request's route: the linear scan against the route index (issue 15).

The real app (``create_app``, every lazy router loaded) and a few typical paths; for each,
``--n`` choices of the route by Starlette's rule (the first full match, else the first
partial one) over every route in order (what FastAPI's router does), then over the index's
candidates (``codeyard.api.route_index``, its freshness check included). Prints µs of the
thread's CPU per choice, the minimum of ``--reps`` alternating rounds, and how many entries of
the app's route list (an included router is one) each way tries.

    .venv/bin/python bench/route_match.py [--n 2000] [--reps 5]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match

from codeyard.api import lazy, route_index
from codeyard.app import create_app
from codeyard.config import Settings

PATHS: tuple[tuple[str, str], ...] = (
    ("POST", "/api/runs"),
    ("GET", "/api/runs/0f9e8d7c6b5a/events"),
    ("POST", "/api/approvals/ap-123/resolve"),
    ("GET", "/api/projects"),
    ("GET", "/api/health"),
    ("GET", "/runs/0f9e8d7c6b5a"),  # a UI page: no route, the UI's fallback
)


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def _choose(routes: Sequence[BaseRoute], scope: dict[str, Any]) -> tuple[int, BaseRoute | None]:
    partial = None
    for tried, route in enumerate(routes, 1):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return tried, route
        if match == Match.PARTIAL and partial is None:
            partial = route
    return len(routes), partial


def _cpu_us(work: Callable[[], object], n: int) -> float:
    start = time.thread_time()
    for _ in range(n):
        work()
    return (time.thread_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(Settings())
    lazy.load_all(app)
    dispatch = app.router.middleware_stack
    assert isinstance(dispatch, route_index.IndexedDispatch)
    index = dispatch.index
    routes = app.router.routes
    print(f"{len(routes)} entries in the app's route list")
    print(f"{'request':<44} {'linear µs':>10} {'index µs':>9} {'entries tried':>14}")
    for method, path in PATHS:
        linear_tried, linear_route = _choose(routes, _scope(method, path))
        index_tried, index_route = _choose(index.candidates(path), _scope(method, path))
        assert linear_route is index_route, path
        linear: list[float] = []
        indexed: list[float] = []
        for _ in range(args.reps):
            linear.append(_cpu_us(lambda m=method, p=path: _choose(routes, _scope(m, p)), args.n))
            indexed.append(
                _cpu_us(lambda m=method, p=path: _choose(index.candidates(p), _scope(m, p)), args.n)
            )
        tried = f"{linear_tried} -> {index_tried}"
        print(f"{method + ' ' + path:<44} {min(linear):>10.1f} {min(indexed):>9.1f} {tried:>14}")
    print("(a path no route matches then runs the router's own scan too: the UI's pages)")


if __name__ == "__main__":
    main()
