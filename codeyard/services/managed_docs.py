"""A project's managed documents and its changelog (Laravel seed: ``/docs``, ``/changelog``).

Three documents are generated from the code (project map, database schema, architecture
diagrams); regenerating rewrites only their auto-blocks, so a person's edits around the blocks
(``PUT /api/projects/{id}/docs/{slug}``) survive. The changelog gets one entry per landed run:
its title, the agent's final summary and the files it changed (recorded when ``git.merged`` is
seen, by ``follow_landings``, which also keeps the code indexes current).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from codeyard.domain.errors import ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.events.stream import follow_types
from codeyard.managed_docs import markers, render
from codeyard.services import code_index
from codeyard.services import projects as project_service
from codeyard.services.context import Services
from codeyard.store import events, project_docs, runs
from codeyard.store.writer import Tx

log = logging.getLogger(__name__)
MANAGED = {
    "project-map": "Project map",
    "database-schema": "Database schema",
    "architecture-diagrams": "Architecture diagrams",
}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
SUMMARY_CHARS = 2000


def _meta(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in ("slug", "title", "generated_at", "updated_at", "updated_by")}


async def _contents(svc: Services, project_id: str) -> dict[str, str]:
    mapped = await code_index.project_map(svc, project_id)
    tables = await code_index.schema(svc, project_id)
    diagrams = await code_index.diagrams(svc, project_id)
    return {
        "project-map": render.project_map(mapped["repos"]),
        "database-schema": render.database_schema(tables["repos"]),
        # The diagrams page's own title and intro stay outside the block.
        "architecture-diagrams": diagrams.split("\n", 4)[-1],
    }


async def regenerate(svc: Services, project_ref: str) -> dict[str, Any]:
    project = await project_service.get_project(svc, project_ref)
    contents = await _contents(svc, project["id"])
    now = utc_now()
    async with svc.engine.connect() as conn:
        existing = {d["slug"]: d for d in await project_docs.of_project(conn, project["id"])}
    saved = []
    for slug, title in MANAGED.items():
        old = existing.get(slug)
        body = (
            markers.merge(old["body"], contents[slug])
            if old
            else markers.new_document(title, contents[slug])
        )
        saved.append(
            {
                "project_id": project["id"],
                "slug": slug,
                "title": old["title"] if old else title,
                "body": body,
                "generated_at": now,
                "updated_at": now,
                "updated_by": old["updated_by"] if old else None,
            }
        )

    async def job(tx: Tx) -> None:
        for values in saved:
            await project_docs.save(tx, values)

    await svc.writer.run(job)
    return {"project_id": project["id"], "data": [_meta(d) for d in saved]}


async def list_docs(svc: Services, project_ref: str) -> dict[str, Any]:
    project = await project_service.get_project(svc, project_ref)
    async with svc.engine.connect() as conn:
        docs = await project_docs.of_project(conn, project["id"])
    return {"project_id": project["id"], "data": [_meta(d) for d in docs]}


async def get_doc(svc: Services, project_ref: str, slug: str) -> dict[str, Any]:
    project = await project_service.get_project(svc, project_ref)
    async with svc.engine.connect() as conn:
        doc = await project_docs.get(conn, project["id"], slug)
    return {"project_id": project["id"], **_meta(doc), "body": doc["body"]}


async def put_doc(
    svc: Services, project_ref: str, slug: str, body: str, user_id: str | None
) -> dict[str, Any]:
    """A person's edit; a managed document's next regeneration keeps it outside the block."""
    if not _SLUG.match(slug):
        raise ValidationFailed(
            "A document slug is lowercase letters, digits and dashes (at most 100).",
            errors=[{"loc": ["path", "slug"], "msg": "lowercase letters, digits, dashes"}],
        )
    project = await project_service.get_project(svc, project_ref)
    async with svc.engine.connect() as conn:
        old = await project_docs.find(conn, project["id"], slug)
    first = body.lstrip().split("\n", 1)[0]
    title = first[2:].strip() if first.startswith("# ") else (old["title"] if old else slug)
    values = {
        "project_id": project["id"],
        "slug": slug,
        "title": title[:200],
        "body": body,
        "generated_at": old["generated_at"] if old else None,
        "updated_at": utc_now(),
        "updated_by": user_id,
    }
    await svc.writer.run(lambda tx: project_docs.save(tx, values))
    return {"project_id": project["id"], **_meta(values), "body": body}


async def changelog(svc: Services, project_ref: str, limit: int) -> dict[str, Any]:
    project = await project_service.get_project(svc, project_ref)
    async with svc.engine.connect() as conn:
        rows = await project_docs.entries(conn, project["id"], limit)
    return {"project_id": project["id"], "data": rows}


async def record_landing(svc: Services, run_id: str) -> None:
    """The changelog entry of a landed run: title, final summary, files changed."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_id)
        evs = await events.read_all(conn, run_id, frozenset({"agent.message", "file.changed"}))
    messages = [e.data.get("text") for e in evs if e.type == "agent.message"]
    summary = next((m for m in reversed(messages) if isinstance(m, str) and m.strip()), None)
    files = sorted({str(e.data.get("path")) for e in evs if e.type == "file.changed"})
    values = {
        "id": new_id("chg"),
        "project_id": run["project_id"],
        "run_id": run_id,
        "title": run["title"],
        "summary": (summary or run["prompt"])[:SUMMARY_CHARS],
        "files": files,
        "created_at": utc_now(),
    }
    await svc.writer.run(lambda tx: project_docs.add_entry(tx, values))


async def _after_landing(svc: Services, run_id: str) -> None:
    """The changelog entry, then the code indexes that exist."""
    for step in (record_landing, code_index.after_landing):
        try:
            await step(svc, run_id)
        except Exception:  # derived data: a failure must not stop the follower
            log.warning("%s after run %s failed", step.__name__, run_id, exc_info=True)


async def follow_landings(
    svc: Services, on_landing: Callable[[Services, str], Awaitable[None]] | None = None
) -> None:
    """On each ``git.merged``: ``on_landing`` (the changelog entry, then the code indexes,
    unless a test passes its own). Through ``follow_types``: a dropped subscription is made
    good from the log, so no landing goes unrecorded."""
    on_landing = on_landing or _after_landing
    async with contextlib.aclosing(
        follow_types(svc.engine, svc.hub, frozenset({"git.merged"}))
    ) as feed:
        async for batch in feed:
            for event in batch:
                await on_landing(svc, event.run_id)
