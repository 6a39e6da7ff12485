// One ticket: its text, status, the agent working it (start, stop, land), comments and reviews.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../api/client";
import type { TicketStatus } from "../api/models";
import { Empty, ErrorNote, Link, Spinner, StatusBadge } from "../components/ui";
import { ago } from "../lib/format";
import { Markdown } from "../lib/markdown";
import { COLUMNS } from "./Board";

export function TicketView({ slug, number }: { slug: string; number: number }) {
  const client = useQueryClient();
  const path = { project_ref: slug, number };
  const ticket = useQuery({
    queryKey: ["ticket", slug, number],
    queryFn: () => api.get("/api/projects/{project_ref}/tickets/{number}", { path }),
    refetchInterval: 3000,
  });
  const agent = useQuery({
    queryKey: ["ticket-agent", slug, number],
    queryFn: () => api.get("/api/projects/{project_ref}/tickets/{number}/agent/status", { path }),
    refetchInterval: 3000,
  });
  const comments = useQuery({
    queryKey: ["ticket-comments", slug, number],
    queryFn: () => api.get("/api/projects/{project_ref}/tickets/{number}/comments", { path }),
  });
  const reviews = useQuery({
    queryKey: ["ticket-reviews", slug, number],
    queryFn: () => api.get("/api/projects/{project_ref}/tickets/{number}/reviews", { path }),
  });
  const refresh = () => void client.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith("ticket") });
  const move = useMutation({
    mutationFn: (status: TicketStatus) => api.patch("/api/projects/{project_ref}/tickets/{number}/status", { status }, { path }),
    onSuccess: refresh,
  });
  const start = useMutation({
    mutationFn: () => api.post("/api/projects/{project_ref}/tickets/{number}/agent/start", {}, { path }),
    onSuccess: refresh,
  });
  const stop = useMutation({
    mutationFn: () => api.post("/api/projects/{project_ref}/tickets/{number}/agent/stop", undefined, { path }),
    onSuccess: refresh,
  });
  const merge = useMutation({
    mutationFn: () => api.post("/api/projects/{project_ref}/tickets/{number}/worktree/merge", {}, { path }),
    onSuccess: refresh,
  });
  const [comment, setComment] = useState("");
  const addComment = useMutation({
    mutationFn: () => api.post("/api/projects/{project_ref}/tickets/{number}/comments", { body: comment }, { path }),
    onSuccess: () => {
      setComment("");
      refresh();
    },
  });
  const [verdict, setVerdict] = useState<"approved" | "changes_requested" | "commented">("approved");
  const [reviewText, setReviewText] = useState("");
  const review = useMutation({
    mutationFn: () => api.post("/api/projects/{project_ref}/tickets/{number}/reviews", { verdict, body: reviewText }, { path }),
    onSuccess: () => {
      setReviewText("");
      refresh();
    },
  });

  if (ticket.isPending) return <Spinner />;
  if (ticket.error) return <ErrorNote error={ticket.error} />;
  const t = ticket.data!;
  const run = agent.data?.run;
  return (
    <div className="pad ticket-page" data-testid="ticket-page">
      <p className="muted">
        <Link to={`/projects/${encodeURIComponent(slug)}/board`}>← {slug} board</Link>
      </p>
      <h1>
        <span className="muted">#{t.number}</span> {t.title}
      </h1>
      <div className="row wrap-gap">
        <span className={`badge kind-${t.kind}`}>{t.kind}</span>
        {t.priority !== "none" && <span className={`badge prio-${t.priority}`}>{t.priority}</span>}
        {t.labels.map((l) => (
          <span key={l} className="badge">
            {l}
          </span>
        ))}
        <label>
          Status{" "}
          <select value={t.status} onChange={(e) => move.mutate(e.target.value as TicketStatus)} data-testid="ticket-status">
            {COLUMNS.map((c) => (
              <option key={c.status} value={c.status}>
                {c.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      {t.blocked_by.length > 0 && <p className="muted">Blocked by {t.blocked_by.map((n) => `#${n}`).join(", ")}</p>}
      <ErrorNote error={move.error} />
      <section className="card-block">{t.body ? <Markdown text={t.body} /> : <p className="muted">No description.</p>}</section>

      <section className="card-block" aria-label="Agent">
        <h2>Agent</h2>
        {run ? (
          <p>
            <Link to={`/runs/${run.id}`}>
              Run {run.number}: {run.title}
            </Link>{" "}
            <StatusBadge status={run.status} reason={run.status_reason} resolution={run.resolution} />
          </p>
        ) : (
          <p className="muted">No agent has worked this ticket yet.</p>
        )}
        <div className="row wrap-gap">
          {!agent.data?.working && (
            <button onClick={() => start.mutate()} disabled={start.isPending} data-testid="agent-start">
              Start agent
            </button>
          )}
          {agent.data?.working && (
            <button onClick={() => stop.mutate()} disabled={stop.isPending}>
              Stop
            </button>
          )}
          {run?.status === "review" && (
            <>
              <Link to={`/runs/${run.id}/review`} className="button">
                Diff
              </Link>
              <button onClick={() => merge.mutate()} disabled={merge.isPending}>
                Merge
              </button>
            </>
          )}
        </div>
        <ErrorNote error={start.error ?? stop.error ?? merge.error} />
        {(t.run_ids.length > 1 || (t.run_ids.length === 1 && !run)) && (
          <p className="muted">
            Earlier runs:{" "}
            {t.run_ids
              .filter((id) => id !== run?.id)
              .map((id) => (
                <Link key={id} to={`/runs/${id}`}>
                  {id}{" "}
                </Link>
              ))}
          </p>
        )}
      </section>

      <section className="card-block" aria-label="Reviews">
        <h2>Reviews</h2>
        {(reviews.data?.data ?? []).map((r) => (
          <div key={r.id} className="comment">
            <span className={`badge verdict-${r.verdict}`}>{r.verdict.replace("_", " ")}</span> <span className="muted">{ago(r.created_at)}</span>
            {r.body && <Markdown text={r.body} />}
            {r.comments.map((c, i) => (
              <p key={i} className="muted">
                <code>
                  {c.path}
                  {c.line ? `:${c.line}` : ""}
                </code>{" "}
                {c.body}
              </p>
            ))}
          </div>
        ))}
        {run && (
          <form
            className="stack"
            onSubmit={(e) => {
              e.preventDefault();
              review.mutate();
            }}
          >
            <select value={verdict} onChange={(e) => setVerdict(e.target.value as typeof verdict)} aria-label="Verdict">
              <option value="approved">Approve</option>
              <option value="changes_requested">Request changes (sent to the agent)</option>
              <option value="commented">Comment</option>
            </select>
            <textarea value={reviewText} onChange={(e) => setReviewText(e.target.value)} placeholder="Review notes" aria-label="Review notes" />
            <button type="submit" disabled={review.isPending}>
              Submit review
            </button>
            <ErrorNote error={review.error} />
          </form>
        )}
      </section>

      <section className="card-block" aria-label="Comments">
        <h2>Comments</h2>
        {(comments.data?.data ?? []).length === 0 && <Empty>No comments yet.</Empty>}
        {(comments.data?.data ?? []).map((c) => (
          <div key={c.id} className="comment" data-testid="ticket-comment">
            <span className="muted">{ago(c.created_at)}</span>
            <Markdown text={c.body} />
          </div>
        ))}
        <form
          className="stack"
          onSubmit={(e) => {
            e.preventDefault();
            if (comment.trim()) addComment.mutate();
          }}
        >
          <textarea value={comment} onChange={(e) => setComment(e.target.value)} placeholder="Comment (Markdown, @mentions)" aria-label="Comment" data-testid="comment-body" />
          <button type="submit" disabled={!comment.trim() || addComment.isPending} data-testid="comment-add">
            Comment
          </button>
          <ErrorNote error={addComment.error} />
        </form>
      </section>
    </div>
  );
}
