"""Ticket search over 100,000 tickets: p50/p99 of ranked full-text queries (issue 19).

Target: p99 < 50 ms. One project holding all 100,000 tickets (the worst case: nothing is
filtered out before ranking). Titles and bodies are drawn from a 5,000-word vocabulary with a
Zipf distribution, so a common word matches tens of thousands of tickets and a rare one a few.
The database is made by the project's migrations (FTS5 table and triggers on SQLite; the GIN
index on PostgreSQL); the timed call is ``codeyard.tickets.store.search`` on an open connection,
the query the route runs (the route adds only HTTP and JSON around it).

    .venv/bin/python bench/tickets_search.py [--tickets 100000] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._common import OUT, fresh_dir, guarded, machine, percentile, write_json
from codeyard.store import schema
from codeyard.store.db import create_engine, migrate
from codeyard.tickets import domain
from codeyard.tickets import store as ts

PROJECT = "prj_bench"
VOCAB = 5_000


def words(rng: random.Random) -> list[str]:
    """A pronounceable synthetic vocabulary (no dictionary needed), most common first."""
    cons, vows = "bcdfghklmnprstvz", "aeiou"
    seen: dict[str, None] = {}
    while len(seen) < VOCAB:
        n = rng.choice((2, 3, 3, 4))
        seen["".join(rng.choice(cons) + rng.choice(vows) for _ in range(n))] = None
    return list(seen)


def zipf_picker(rng: random.Random, vocab: list[str]) -> Any:
    cum, total = [], 0.0
    for i in range(len(vocab)):
        total += 1 / (i + 1)
        cum.append(total)
    return lambda k: rng.choices(vocab, cum_weights=cum, k=k)


def rows(n: int, rng: random.Random, vocab: list[str]) -> list[dict[str, Any]]:
    pick = zipf_picker(rng, vocab)
    out = []
    for i in range(1, n + 1):
        out.append(
            {
                "id": f"tkt_{i:016d}",
                "project_id": PROJECT,
                "number": i,
                "title": " ".join(pick(rng.randint(3, 8))).capitalize(),
                "body": " ".join(pick(rng.randint(20, 80))),
                "kind": "task",
                "priority": "none",
                "status": "backlog",
                "labels": "[]",
                "parent": None,
                "blocked_by": "[]",
                "assignee_user_id": None,
                "assignee_agent_id": None,
                "run_ids": "[]",
                "current_run_id": None,
                "created_by": None,
                "created_at": "2026-12-01T00:00:00.000Z",
                "updated_at": "2026-12-01T00:00:00.000Z",
            }
        )
    return out


def queries(rng: random.Random, vocab: list[str], count: int) -> list[tuple[str, str]]:
    """(kind, text): common words (huge result sets to rank), rare words, two words, prefixes."""
    out = []
    for i in range(count):
        kind = ("common", "rare", "two words", "prefix")[i % 4]
        if kind == "common":
            q = vocab[rng.randint(0, 20)]
        elif kind == "rare":
            q = vocab[rng.randint(1000, VOCAB - 1)]
        elif kind == "two words":
            q = f"{vocab[rng.randint(0, 200)]} {vocab[rng.randint(0, 2000)]}"
        else:
            q = vocab[rng.randint(0, 500)][:3]
        out.append((kind, q))
    return out


async def fill(engine: AsyncEngine, data: list[dict[str, Any]], url: str) -> float:
    started = time.perf_counter()
    if engine.dialect.name == "sqlite":
        path = url.split("///", 1)[1]
        con = sqlite3.connect(path)
        cols = list(data[0])
        con.executemany(
            f"INSERT INTO tickets ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [tuple(r[c] for c in cols) for r in data],
        )
        con.commit()
        con.execute("INSERT INTO tickets_fts(tickets_fts) VALUES ('optimize')")
        con.commit()
        con.close()
    else:
        typed = [
            {**r, **{k: json.loads(r[k]) for k in ("labels", "blocked_by", "run_ids")}}
            for r in data
        ]
        async with engine.begin() as conn:
            for i in range(0, len(typed), 5_000):
                await conn.execute(schema.tickets.insert(), typed[i : i + 5_000])
        async with engine.begin() as conn:  # committed: a rolled-back ANALYZE keeps no stats
            await conn.exec_driver_sql("ANALYZE tickets")
    return time.perf_counter() - started


async def measure(engine: AsyncEngine, qs: list[tuple[str, str]]) -> dict[str, Any]:
    by_kind: dict[str, list[float]] = {}
    hits: dict[str, list[int]] = {}
    async with engine.connect() as conn:
        for _, q in qs[:20]:  # warm the cache and the connection
            await ts.search(conn, PROJECT, domain.search_terms(q), 20)
        for kind, q in qs:
            t0 = time.perf_counter()
            found = await ts.search(conn, PROJECT, domain.search_terms(q), 20)
            by_kind.setdefault(kind, []).append((time.perf_counter() - t0) * 1000)
            hits.setdefault(kind, []).append(len(found))
    every = sorted(v for vs in by_kind.values() for v in vs)
    result = {
        "all": {"n": len(every), "p50": percentile(every, 50), "p99": percentile(every, 99)},
    }
    for kind, vs in by_kind.items():
        vs.sort()
        result[kind] = {
            "n": len(vs),
            "p50": percentile(vs, 50),
            "p99": percentile(vs, 99),
            "max": vs[-1],
            "avg_hits": sum(hits[kind]) / len(hits[kind]),
        }
    return result


async def count_matches(engine: AsyncEngine, q: str) -> int:
    """How many tickets a query matches (to say how big the ranked sets are)."""
    terms = domain.search_terms(q)
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sql = "SELECT count(*) FROM tickets_fts WHERE tickets_fts MATCH :q"
            value = domain.fts5_match(terms)
        else:
            sql = "SELECT count(*) FROM tickets WHERE search @@ to_tsquery('english', :q)"
            value = " & ".join(f"{t}:*" for t in terms)
        return int((await conn.execute(text(sql), {"q": value})).scalar() or 0)


async def prepare(url: str, data: list[dict[str, Any]]) -> float:
    engine = create_engine(url)
    try:
        await migrate(engine)
        return await fill(engine, data, url)
    finally:
        await engine.dispose()


async def matches_of(url: str, q: str) -> int:
    engine = create_engine(url)
    try:
        return await count_matches(engine, q)
    finally:
        await engine.dispose()


def run_db(url: str, data: list[dict[str, Any]], qs: list[tuple[str, str]]) -> dict[str, Any]:
    load_s = asyncio.run(prepare(url, data))
    measured, seen = guarded(lambda: asyncio.run(measure_fresh(url, qs)))
    common = asyncio.run(matches_of(url, qs[0][1]))
    return {"load_s": load_s, "results": measured, "seen": seen, "common_matches": common}


async def measure_fresh(url: str, qs: list[tuple[str, str]]) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        return await measure(engine, qs)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--postgres", action="store_true", help="also on a private PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()
    rng = random.Random(19)
    vocab = words(rng)
    data = rows(args.tickets, rng, vocab)
    qs = queries(rng, vocab, args.queries)
    out: dict[str, Any] = {"machine": machine(), "tickets": args.tickets, "queries": args.queries}
    if not args.no_sqlite:
        work = fresh_dir("tickets_search")
        out["sqlite"] = run_db(f"sqlite+aiosqlite:///{work / 'bench.db'}", data, qs)
    if args.postgres:
        from codeyard.testing.postgres import PostgresCluster

        with PostgresCluster() as pg:
            out["postgresql"] = run_db(pg.url, data, qs)
    name = "tickets_search_pg.json" if args.no_sqlite else "tickets_search.json"
    write_json(OUT / name, out)
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
