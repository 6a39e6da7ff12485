// A project's tickets as a board: one column per status. A card moves by dragging it to another
// column (the mouse drags the card, a finger its ⠿ handle: lib/touchDrag.ts), or with its
// "Move to" menu (keyboard, screen readers): all send PATCH …/tickets/{n}/status, and the board
// shows the server's answer (a refused move says why).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import { api } from "../api/client";
import type { Ticket, TicketStatus } from "../api/models";
import { Empty, ErrorNote, Link, Spinner } from "../components/ui";
import { useTouchDrag } from "../lib/touchDrag";
import { Plans } from "./Plans";
import { useProjects } from "./RunsList";

export const COLUMNS: { status: TicketStatus; label: string }[] = [
  { status: "inbox", label: "Inbox" },
  { status: "backlog", label: "Backlog" },
  { status: "in_progress", label: "In progress" },
  { status: "in_review", label: "In review" },
  { status: "done", label: "Done" },
  { status: "cancelled", label: "Cancelled" },
];

/** Cards a column draws before "Show more" (a board of 2,000 tickets opens in well under 1 s). */
export const CARDS_PER_COLUMN = 50;

/** Every ticket of the project, page by page (the API returns at most 500 per page), so column
 * counts and drag targets are right however many tickets there are. (One request per column at
 * once measured slower: the server's work is the same and the requests compete for it.) */
async function allTickets(slug: string): Promise<{ data: Ticket[] }> {
  const out: Ticket[] = [];
  let cursor: string | null | undefined;
  do {
    const page = await api.get("/api/projects/{project_ref}/tickets", {
      path: { project_ref: slug },
      query: { limit: 500, ...(cursor ? { cursor } : {}) },
    });
    out.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return { data: out };
}

/** `/board`: pick a project. */
export function ProjectPicker() {
  const projects = useProjects();
  if (projects.isPending) return <Spinner />;
  if (projects.error) return <ErrorNote error={projects.error} />;
  const list = projects.data?.data ?? [];
  return (
    <div className="pad">
      <h1>Boards</h1>
      {list.length === 0 ? (
        <Empty>No projects yet: register a repository in Settings, or start a run.</Empty>
      ) : (
        <ul className="plain-list">
          {list.map((p) => (
            <li key={p.id}>
              <Link to={`/projects/${encodeURIComponent(p.slug)}/board`} testId="board-project">
                {p.name} <span className="muted">{p.slug}</span>
              </Link>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Board({ slug }: { slug: string }) {
  const client = useQueryClient();
  const key = ["tickets", slug];
  const tickets = useQuery({
    queryKey: key,
    queryFn: () => allTickets(slug),
    refetchInterval: 4000,
  });
  const [title, setTitle] = useState("");
  const [dragging, setDragging] = useState<number | null>(null);
  // How many cards each column draws: thousands of cards made the board take seconds to open.
  const [shown, setShown] = useState<Record<string, number>>({});
  const create = useMutation({
    mutationFn: (t: string) => api.post("/api/projects/{project_ref}/tickets", { title: t }, { path: { project_ref: slug } }),
    onSuccess: () => {
      setTitle("");
      void client.invalidateQueries({ queryKey: key });
    },
  });
  const move = useMutation({
    mutationFn: ({ number, status }: { number: number; status: TicketStatus }) =>
      api.patch("/api/projects/{project_ref}/tickets/{number}/status", { status }, { path: { project_ref: slug, number } }),
    onSuccess: (moved) => {
      client.setQueryData(key, (old: typeof tickets.data) =>
        old ? { ...old, data: old.data.map((t) => (t.number === moved.number ? moved : t)) } : old,
      );
    },
  });

  const boardRef = useRef<HTMLDivElement>(null);
  const touch = useTouchDrag(boardRef, (number, target) => {
    const card = (tickets.data?.data ?? []).find((t) => t.number === number);
    const status = COLUMNS.find((c) => c.status === target)?.status;
    if (card && status && card.status !== status) move.mutate({ number, status });
  });

  if (tickets.isPending) return <Spinner />;
  if (tickets.error) return <ErrorNote error={tickets.error} />;
  const all = tickets.data?.data ?? [];
  return (
    <div className="board-page">
      <div className="board-head pad">
        <h1>
          <Link to="/board">Boards</Link> / {slug}
        </h1>
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            if (title.trim()) create.mutate(title.trim());
          }}
        >
          <input
            aria-label="New ticket title"
            placeholder="New ticket…"
            value={title}
            onChange={(e) => setTitle(e.target.value)}
            data-testid="new-ticket-title"
          />
          <button type="submit" disabled={!title.trim() || create.isPending} data-testid="new-ticket-add">
            Add
          </button>
        </form>
        <ErrorNote error={create.error ?? move.error} />
      </div>
      <Plans slug={slug} />
      <div className="board" data-testid="board" ref={boardRef}>
        {COLUMNS.map((col) => {
          const cards = all.filter((t) => t.status === col.status).sort((a, b) => a.number - b.number);
          const limit = shown[col.status] ?? CARDS_PER_COLUMN;
          return (
            <section
              key={col.status}
              className={`board-col${dragging !== null || touch.drag ? " droppable" : ""}${
                touch.drag?.over === col.status ? " drop-target" : ""
              }`}
              aria-label={col.label}
              data-testid={`column-${col.status}`}
              data-drop={col.status}
              onDragOver={(e) => e.preventDefault()}
              onDrop={(e) => {
                e.preventDefault();
                const number = Number(e.dataTransfer.getData("text/plain"));
                setDragging(null);
                const card = all.find((t) => t.number === number);
                if (card && card.status !== col.status) move.mutate({ number, status: col.status });
              }}
            >
              <h2>
                {col.label} <span className="count-muted">{cards.length}</span>
              </h2>
              {cards.slice(0, limit).map((t) => (
                <Card
                  key={t.id}
                  slug={slug}
                  ticket={t}
                  onMove={(status) => move.mutate({ number: t.number, status })}
                  onDrag={setDragging}
                  handle={touch.handleProps(t.number, `#${t.number} ${t.title}`)}
                  lifted={touch.drag?.id === t.number}
                />
              ))}
              {cards.length > limit && (
                <button
                  type="button"
                  className="board-more"
                  onClick={() => setShown({ ...shown, [col.status]: limit + CARDS_PER_COLUMN })}
                  data-testid={`more-${col.status}`}
                >
                  Show {Math.min(CARDS_PER_COLUMN, cards.length - limit)} more of {cards.length - limit}
                </button>
              )}
            </section>
          );
        })}
      </div>
      {touch.drag && (
        <div className="drag-ghost" style={{ left: touch.drag.x, top: touch.drag.y }} aria-hidden="true" data-testid="drag-ghost">
          {touch.drag.label}
        </div>
      )}
    </div>
  );
}

function Card({
  slug,
  ticket,
  onMove,
  onDrag,
  handle,
  lifted,
}: {
  slug: string;
  ticket: Ticket;
  onMove: (s: TicketStatus) => void;
  onDrag: (n: number | null) => void;
  handle: ReturnType<ReturnType<typeof useTouchDrag>["handleProps"]>;
  lifted: boolean;
}) {
  return (
    <article
      className={`ticket-card${lifted ? " lifted" : ""}`}
      draggable
      data-testid={`ticket-${ticket.number}`}
      onDragStart={(e) => {
        e.dataTransfer.setData("text/plain", String(ticket.number));
        onDrag(ticket.number);
      }}
      onDragEnd={() => onDrag(null)}
    >
      <div className="ticket-top">
        <Link to={`/projects/${encodeURIComponent(slug)}/tickets/${ticket.number}`} className="ticket-title">
          <span className="muted">#{ticket.number}</span> {ticket.title}
        </Link>
        <span className="drag-handle" aria-hidden="true" title="Drag to another column" data-testid={`drag-${ticket.number}`} {...handle}>
          ⠿
        </span>
      </div>
      <div className="ticket-meta">
        <span className={`badge kind-${ticket.kind}`}>{ticket.kind}</span>
        {ticket.priority !== "none" && <span className={`badge prio-${ticket.priority}`}>{ticket.priority}</span>}
        {ticket.blocked_by.length > 0 && (
          <span className="muted" title="Blocked by">
            ⛓ {ticket.blocked_by.map((n) => `#${n}`).join(" ")}
          </span>
        )}
      </div>
      <label className="move">
        <span className="sr-only">Move #{ticket.number} to</span>
        <select
          value={ticket.status}
          onChange={(e) => onMove(e.target.value as TicketStatus)}
          data-testid={`move-${ticket.number}`}
          aria-label={`Move #${ticket.number} to`}
        >
          {COLUMNS.map((c) => (
            <option key={c.status} value={c.status}>
              {c.label}
            </option>
          ))}
        </select>
      </label>
    </article>
  );
}
