// Workflows (issue 20): the list, a YAML editor whose problems are shown inline as you type
// (the server's dry run), and an execution view (the step graph in waves, each step's state,
// live, run steps linked).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api, ApiError, type Resp } from "../api/client";
import { Empty, ErrorNote, Link, Spinner } from "../components/ui";
import { navigate } from "../lib/router";

type Execution = Resp<"/api/workflows/executions/{execution_id}", "get">;
type Problem = { loc?: (string | number)[]; msg: string; line?: number | null };

const STARTER = `name: my-workflow
inputs:
  task: {type: string, required: true}
steps:
  - id: impl
    type: run
    provider: script
    prompt: "\${inputs.task}"
  - id: check
    type: shell
    in: impl
    command: git status --short
`;

export default function WorkflowsView({ id, executionId }: { id?: string; executionId?: string }) {
  if (executionId) return <ExecutionPage executionId={executionId} />;
  if (id) return <WorkflowEditor id={id === "new" ? undefined : id} />;
  return <WorkflowList />;
}

function WorkflowList() {
  const q = useQuery({ queryKey: ["workflows"], queryFn: () => api.get("/api/workflows") });
  const items = q.data?.data ?? [];
  return (
    <div className="page narrow">
      <header className="page-head">
        <h1>Workflows</h1>
        <Link to="/workflows/new" className="button primary" testId="workflow-new">
          New workflow
        </Link>
      </header>
      <ErrorNote error={q.error} />
      {q.isPending ? (
        <Spinner />
      ) : items.length ? (
        <div className="stack" data-testid="workflow-list">
          {items.map((w) => (
            <Link key={w.id} to={`/workflows/${w.id}`} className="card">
              <strong>{w.name}</strong> <span className="badge">v{w.version}</span>
              {w.description ? <div className="muted">{w.description}</div> : null}
              {w.origin ? <div className="muted">from {w.origin}</div> : null}
            </Link>
          ))}
        </div>
      ) : (
        <Empty>No workflows yet. Write one, or load a repository's .codeyard/workflows/*.yaml.</Empty>
      )}
    </div>
  );
}

function problemsOf(error: unknown): Problem[] {
  if (error instanceof ApiError) return (error.problem.errors as Problem[] | undefined) ?? [{ msg: error.message }];
  return error ? [{ msg: String(error) }] : [];
}

function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

function WorkflowEditor({ id }: { id?: string }) {
  const qc = useQueryClient();
  const wf = useQuery({
    queryKey: ["workflow", id],
    queryFn: () => api.get("/api/workflows/{workflow_id}", { path: { workflow_id: id! } }),
    enabled: !!id,
  });
  const [source, setSource] = useState<string | null>(null);
  const text = source ?? wf.data?.source ?? (id ? "" : STARTER);
  const draft = useDebounced(text, 400);
  const check = useQuery({
    queryKey: ["workflow-validate", draft],
    queryFn: () => api.post("/api/workflows/validate", { source: draft }),
    enabled: draft.trim().length > 0,
    retry: false,
  });
  const problems: Problem[] = check.error ? problemsOf(check.error) : ((check.data?.problems as Problem[]) ?? []);
  const save = useMutation({
    mutationFn: () =>
      id
        ? api.put("/api/workflows/{workflow_id}", { source: text }, { path: { workflow_id: id } })
        : api.post("/api/workflows", { source: text }),
    onSuccess: (saved) => {
      void qc.invalidateQueries({ queryKey: ["workflows"] });
      void qc.invalidateQueries({ queryKey: ["workflow", saved.id] });
      setSource(null);
      if (!id) navigate(`/workflows/${saved.id}`);
    },
  });
  const [repo, setRepo] = useState("");
  const [vars, setVars] = useState("{}");
  const run = useMutation({
    mutationFn: () =>
      api.post(
        "/api/workflows/{workflow_id}/execute",
        { repo_path: repo, variables: JSON.parse(vars || "{}") as Record<string, unknown> },
        { path: { workflow_id: id! } },
      ),
    // 202 Accepted: the typed client only types 200/201 answers.
    onSuccess: (started) => navigate(`/workflows/executions/${(started as { execution_id: string }).execution_id}`),
  });
  const executions = useQuery({
    queryKey: ["workflow-executions", id],
    queryFn: () => api.get("/api/workflows/{workflow_id}/executions", { path: { workflow_id: id! }, query: { limit: 20 } }),
    enabled: !!id,
    refetchInterval: 3000,
  });
  if (id && wf.isPending) return <Spinner />;
  return (
    <div className="page">
      <header className="page-head">
        <h1>{id ? wf.data?.name : "New workflow"}</h1>
        {wf.data ? <span className="badge">v{wf.data.version}</span> : null}
      </header>
      <ErrorNote error={wf.error} />
      <textarea
        className="code-editor"
        aria-label="Workflow definition (YAML)"
        data-testid="workflow-source"
        spellCheck={false}
        rows={22}
        style={{ width: "100%", fontFamily: "monospace" }}
        value={text}
        onChange={(e) => setSource(e.target.value)}
      />
      <div data-testid="workflow-problems" aria-live="polite">
        {problems.length ? (
          <ul className="error">
            {problems.map((p, i) => (
              <li key={i}>
                {p.line ? `line ${p.line}: ` : ""}
                {(p.loc ?? []).filter((part) => part !== "definition").join(".")}
                {p.loc?.length ? ": " : ""}
                {p.msg}
              </li>
            ))}
          </ul>
        ) : check.data ? (
          <p className="muted" data-testid="workflow-valid">
            Valid · {check.data.graph.waves ? (check.data.graph.waves as string[][]).map((w) => w.join(" + ")).join(" → ") : ""}
            {check.data.estimate.usd ? ` · about $${Number(check.data.estimate.usd).toFixed(2)}` : ""}
          </p>
        ) : null}
      </div>
      <div className="row gap">
        <button className="primary" onClick={() => save.mutate()} disabled={save.isPending || problems.length > 0} data-testid="workflow-save">
          Save
        </button>
      </div>
      <ErrorNote error={save.error} />
      {id ? (
        <section className="stack" style={{ marginTop: "1rem" }}>
          <h2>Run it</h2>
          <input aria-label="Repository path" placeholder="/path/to/repo" value={repo} onChange={(e) => setRepo(e.target.value)} />
          <input aria-label="Variables (JSON)" value={vars} onChange={(e) => setVars(e.target.value)} />
          <button onClick={() => run.mutate()} disabled={run.isPending || !repo} data-testid="workflow-execute">
            Execute
          </button>
          <ErrorNote error={run.error} />
          <h2>Executions</h2>
          {(executions.data?.data ?? []).map((x) => (
            <Link key={x.id} to={`/workflows/executions/${x.id}`} className="card">
              <span className={`badge status-${x.status}`}>{x.status}</span> {x.id} · v{x.workflow_version} · {x.created_at}
            </Link>
          ))}
        </section>
      ) : null}
    </div>
  );
}

function ExecutionPage({ executionId }: { executionId: string }) {
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: ["workflow-execution", executionId],
    queryFn: () => api.get("/api/workflows/executions/{execution_id}", { path: { execution_id: executionId } }),
  });
  // Live: each workflow.* event refreshes the view. The server ends the stream with the
  // execution; an ended one opens none (EventSource would reconnect to it again and again).
  const ended = ["completed", "failed", "cancelled", "interrupted"].includes(q.data?.status ?? "");
  useEffect(() => {
    if (ended) return;
    const source = new EventSource(`/api/workflows/executions/${encodeURIComponent(executionId)}/events/stream`);
    const refresh = () => void qc.invalidateQueries({ queryKey: ["workflow-execution", executionId] });
    source.onmessage = refresh;
    const types = ["started", "run", "completed", "failed", "skipped", "retry", "waiting"].map((t) => `workflow.step.${t}`);
    types.push("workflow.loop.capped");
    types.push("workflow.approval.requested", "workflow.approval.decided", "workflow.step.reworked");
    types.push(...["completed", "failed", "cancelled", "interrupted", "resumed"].map((t) => `workflow.execution.${t}`));
    types.forEach((t) => source.addEventListener(t, refresh));
    return () => source.close();
  }, [executionId, qc, ended]);
  const act = useMutation({
    mutationFn: async (what: { kind: "cancel" | "resume" } | { kind: "decide"; key: string; approve: boolean; reason?: string }) => {
      const path = { execution_id: executionId };
      if (what.kind === "decide")
        return api.post(
          "/api/workflows/executions/{execution_id}/steps/{key}/decide",
          { decision: what.approve ? "approve" : "reject", reason: what.reason ?? null },
          { path: { ...path, key: what.key } },
        );
      if (what.kind === "cancel") return api.post("/api/workflows/executions/{execution_id}/cancel", undefined, { path });
      return api.post("/api/workflows/executions/{execution_id}/resume", undefined, { path });
    },
    onSuccess: (x: Execution) => qc.setQueryData(["workflow-execution", executionId], x),
  });
  if (q.isPending) return <Spinner />;
  const x = q.data;
  if (!x) return <ErrorNote error={q.error} />;
  const steps = x.steps ?? [];
  return (
    <div className="page">
      <header className="page-head">
        <h1>
          Execution <span className={`badge status-${x.status}`} data-testid="execution-status">{x.status}</span>
        </h1>
        <Link to={`/workflows/${x.workflow_id}`}>Workflow (v{x.workflow_version})</Link>
      </header>
      {x.status_reason ? <p className="muted">{x.status_reason}</p> : null}
      <ErrorNote error={act.error} />
      <div className="row gap">
        {x.status === "running" ? <button onClick={() => act.mutate({ kind: "cancel" })}>Cancel</button> : null}
        {x.status === "interrupted" ? <button onClick={() => act.mutate({ kind: "resume" })}>Resume</button> : null}
        <span className="muted">spent ${x.spent_usd.toFixed(2)}{x.budget_usd ? ` of $${x.budget_usd.toFixed(2)}` : ""}</span>
      </div>
      {(x.pending_approvals ?? []).map((p) => (
        <ApprovalBox key={`${p.key}#${p.attempt}`} stepKey={p.key} attempt={p.attempt} onDecide={(approve, reason) => act.mutate({ kind: "decide", key: p.key, approve, reason })} />
      ))}
      <ExecutionGraph graph={x.graph} steps={steps} />
      <TypedValues title="Inputs" testId="execution-inputs" values={x.inputs} specs={(x.definition as Definition).inputs} />
      <TypedValues title="Outputs" testId="execution-outputs" values={x.outputs} specs={(x.definition as Definition).outputs} />
      <table className="table" data-testid="execution-steps">
        <thead>
          <tr>
            <th>step</th>
            <th>status</th>
            <th>run</th>
            <th>detail</th>
          </tr>
        </thead>
        <tbody>
          {steps.map((s) => (
            <tr key={s.key} data-step={s.key}>
              <td>{s.key}</td>
              <td>
                <span className={`badge status-${s.status}`}>{s.status}</span>
                {(s.attempts ?? 1) > 1 ? <span className="muted"> attempt {s.attempts}</span> : null}
              </td>
              <td>{s.run_id ? <Link to={`/runs/${s.run_id}`}>{String((s.output as { number?: number } | null)?.number ?? s.run_id)}</Link> : null}</td>
              <td className="muted">{s.error ?? summary(s.output)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

type Spec = string | { type?: string; value?: string; description?: string };
type Definition = { inputs?: Record<string, Spec>; outputs?: Record<string, Spec> };

/** An execution's inputs or outputs with their declared types (a string spec is an untyped
 * output template). Outputs are empty until the execution completes and they check out. */
function TypedValues({ title, testId, values, specs }: { title: string; testId: string; values: Record<string, unknown>; specs?: Record<string, Spec> }) {
  const names = Object.keys(values ?? {});
  if (!names.length) return null;
  const typeOf = (n: string) => {
    const spec = specs?.[n];
    return typeof spec === "object" && spec ? (spec.type ?? (title === "Inputs" ? "string" : "any")) : "any";
  };
  return (
    <table className="table" data-testid={testId}>
      <thead>
        <tr>
          <th>{title.toLowerCase().slice(0, -1)}</th>
          <th>type</th>
          <th>value</th>
        </tr>
      </thead>
      <tbody>
        {names.map((n) => (
          <tr key={n} data-name={n}>
            <td>{n}</td>
            <td className="muted">{typeOf(n)}</td>
            <td>
              <code>{JSON.stringify(values[n])}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

type StepState = NonNullable<Execution["steps"]>[number];
type GraphNode = { id: string; type: string; parent: string | null };
type Graph = { nodes: GraphNode[]; edges: { from: string; to: string }[]; waves: string[][] };

/** The execution's resolved graph (GET …/executions/{id} `graph`): top-level steps in waves
 * that may run together, each with what it waits for, its state (pending until its first
 * event) and the states of the steps inside it (parallel, foreach and loop instances). */
function ExecutionGraph({ graph, steps }: { graph: Execution["graph"]; steps: StepState[] }) {
  const g = graph as Graph | null | undefined;
  if (!g?.waves?.length) return null;
  const byKey = new Map(steps.map((s) => [s.key, s]));
  const types = new Map(g.nodes.map((n) => [n.id, n.type]));
  const after = (id: string) => g.edges.filter((e) => e.to === id).map((e) => e.from);
  const inner = (id: string) => steps.filter((s) => s.key.startsWith(`${id}/`) || s.key.startsWith(`${id}#`));
  const children = (id: string) => g.nodes.filter((n) => n.parent === id).map((n) => n.id);
  return (
    <div className="wf-graph" data-testid="execution-graph" aria-label="Step graph">
      {g.waves.map((wave, i) => (
        <div className="wf-wave" key={i}>
          {wave.map((id) => {
            const s = byKey.get(id);
            const status = s?.status ?? "pending";
            const deps = after(id);
            const nested = inner(id);
            return (
              <div className="card wf-node" key={id} data-node={id} data-status={status}>
                <div className="row gap">
                  <strong>{id}</strong>
                  <span className="muted">{types.get(id)}</span>
                </div>
                <span className={`badge status-${status}`}>{status}</span>
                {s?.run_id ? (
                  <Link to={`/runs/${s.run_id}`}>run {String((s.output as { number?: number } | null)?.number ?? s.run_id)}</Link>
                ) : null}
                {deps.length ? <span className="muted">after {deps.join(", ")}</span> : null}
                {nested.length ? (
                  <ul className="wf-inner">
                    {nested.map((c) => (
                      <li key={c.key} data-node={c.key} data-status={c.status}>
                        {c.key.slice(id.length + 1)} <span className={`badge status-${c.status}`}>{c.status}</span>{" "}
                        {c.run_id ? <Link to={`/runs/${c.run_id}`}>run</Link> : null}
                      </li>
                    ))}
                  </ul>
                ) : children(id).length ? (
                  <span className="muted">inside: {children(id).join(", ")}</span>
                ) : null}
              </div>
            );
          })}
        </div>
      ))}
    </div>
  );
}

function summary(output: Record<string, unknown> | null | undefined): string {
  if (!output) return "";
  if (output.skipped) return `skipped: ${String(output.reason ?? "")}`;
  if ("exit_code" in output) return `exit ${String(output.exit_code)}`;
  if ("winner" in output) return `winner ${String(output.winner)}`;
  if ("value" in output) return `= ${JSON.stringify(output.value)}`;
  if ("iterations" in output) return `${String(output.iterations)} iterations`;
  if ("status" in output) return String(output.status);
  return "";
}

function ApprovalBox({ stepKey, attempt, onDecide }: { stepKey: string; attempt: number; onDecide: (approve: boolean, reason?: string) => void }) {
  const [reason, setReason] = useState("");
  return (
    <div className="card stack" data-testid="workflow-approval">
      <strong>
        {stepKey} waits for a decision{attempt ? ` (attempt ${attempt + 1})` : ""}
      </strong>
      <input aria-label="Reason" placeholder="Reason (sent back to the run when rejecting)" value={reason} onChange={(e) => setReason(e.target.value)} />
      <div className="row gap">
        <button className="primary" onClick={() => onDecide(true, reason || undefined)}>
          Approve
        </button>
        <button onClick={() => onDecide(false, reason || undefined)}>Reject</button>
      </div>
    </div>
  );
}
