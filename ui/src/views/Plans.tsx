// Plans on the board page: write a goal, the utility model proposes tickets with their blockers
// (POST …/plans), and "Accept" creates them all at once (POST …/plans/{id}/accept). Editing a
// draft's tickets is the API's PUT …/plans/{id}; here a draft is accepted or deleted as it is.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../api/client";
import type { components } from "../api/schema";
import { ErrorNote } from "../components/ui";

type Plan = components["schemas"]["PlanView"];

export function Plans({ slug }: { slug: string }) {
  const client = useQueryClient();
  const key = ["plans", slug];
  const plans = useQuery({
    queryKey: key,
    queryFn: () => api.get("/api/projects/{project_ref}/plans", { path: { project_ref: slug }, query: { limit: 5 } }),
  });
  const [goal, setGoal] = useState("");
  const refresh = () => {
    void client.invalidateQueries({ queryKey: key });
    void client.invalidateQueries({ queryKey: ["tickets", slug] });
  };
  const propose = useMutation({
    mutationFn: (g: string) => api.post("/api/projects/{project_ref}/plans", { goal: g }, { path: { project_ref: slug } }),
    onSuccess: () => {
      setGoal("");
      refresh();
    },
  });
  const accept = useMutation({
    mutationFn: (id: string) =>
      api.post("/api/projects/{project_ref}/plans/{plan_id}/accept", undefined, { path: { project_ref: slug, plan_id: id } }),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (id: string) =>
      api.delete("/api/projects/{project_ref}/plans/{plan_id}", { path: { project_ref: slug, plan_id: id } }),
    onSuccess: refresh,
  });
  const drafts = (plans.data?.data ?? []).filter((p) => p.status === "draft");
  return (
    <details className="plans pad" data-testid="plans">
      <summary>Plans{drafts.length > 0 ? ` (${drafts.length} to review)` : ""}</summary>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (goal.trim()) propose.mutate(goal.trim());
        }}
      >
        <input
          aria-label="Goal of a new plan"
          placeholder="A goal to split into tickets…"
          value={goal}
          onChange={(e) => setGoal(e.target.value)}
          data-testid="plan-goal"
        />
        <button type="submit" disabled={!goal.trim() || propose.isPending} data-testid="plan-propose">
          {propose.isPending ? "Planning…" : "Propose"}
        </button>
      </form>
      <ErrorNote error={plans.error ?? propose.error ?? accept.error ?? remove.error} />
      {drafts.map((p) => (
        <Draft
          key={p.id}
          plan={p}
          busy={accept.isPending || remove.isPending}
          onAccept={() => accept.mutate(p.id)}
          onDelete={() => remove.mutate(p.id)}
        />
      ))}
    </details>
  );
}

function Draft({ plan, busy, onAccept, onDelete }: { plan: Plan; busy: boolean; onAccept: () => void; onDelete: () => void }) {
  return (
    <article className="plan-draft" data-testid={`plan-${plan.id}`}>
      <h3>{plan.title}</h3>
      {plan.summary && <p className="muted">{plan.summary}</p>}
      <ol>
        {plan.tickets.map((t) => (
          <li key={t.ref}>
            <span className="muted">{t.ref}</span> {t.title} <span className={`badge kind-${t.kind ?? "task"}`}>{t.kind ?? "task"}</span>
            {(t.blocked_by?.length ?? 0) + (t.blocked_by_tickets?.length ?? 0) > 0 && (
              <span className="muted" title="Blocked by">
                {" "}
                ⛓ {[...(t.blocked_by ?? []), ...(t.blocked_by_tickets ?? []).map((n) => `#${n}`)].join(" ")}
              </span>
            )}
          </li>
        ))}
      </ol>
      <div className="row">
        <button type="button" disabled={busy} onClick={onAccept} data-testid="plan-accept">
          Accept: create {plan.tickets.length} tickets
        </button>
        <button type="button" disabled={busy} onClick={onDelete}>
          Delete
        </button>
      </div>
    </article>
  );
}
