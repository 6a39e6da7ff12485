import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../../api/client";
import type { Policy, Rule } from "../../api/models";
import { ErrorNote } from "../../components/ui";

function effectiveOrder(policies: Policy[]): (Rule & { policy: string })[] {
  return policies
    .map((p, i) => ({ p, i }))
    .filter(({ p }) => p.enabled)
    .sort((a, b) => b.p.priority - a.p.priority || a.i - b.i)
    .flatMap(({ p }) => p.rules.map((r) => ({ ...r, policy: p.name })));
}

function PolicyEditor({ policy, onDone }: { policy: Policy | null; onDone: () => void }) {
  const qc = useQueryClient();
  const [name, setName] = useState(policy?.name ?? "");
  const [priority, setPriority] = useState(policy?.priority ?? 0);
  const [enabled, setEnabled] = useState(policy?.enabled ?? true);
  const [rules, setRules] = useState<Rule[]>(policy?.rules ?? [{ tool: "Bash", command: "", action: "ask" }]);
  const save = useMutation({
    mutationFn: async () => {
      const clean = rules.map((r) =>
        Object.fromEntries(Object.entries(r).filter(([, v]) => v !== "" && v !== undefined)),
      ) as Rule[];
      const body = { name, priority, enabled, rules: clean };
      if (policy) return api.put("/api/policies/{policy_id}", body, { path: { policy_id: policy.id } });
      return api.post("/api/policies", body);
    },
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["policies"] });
      onDone();
    },
  });
  const set = (i: number, patch: Partial<Rule>) => setRules(rules.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  const move = (i: number, d: number) => {
    const next = [...rules];
    const [r] = next.splice(i, 1);
    next.splice(i + d, 0, r!);
    setRules(next);
  };
  return (
    <form
      className="card stack"
      aria-label="Policy editor"
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <div className="row gap wrap">
        <label className="grow">
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <label>
          Priority
          <input type="number" value={priority} onChange={(e) => setPriority(Number(e.target.value))} style={{ width: "6em" }} />
        </label>
        <label className="check">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> Enabled
        </label>
      </div>
      <div className="muted small">Rules are tried top to bottom; the first match decides.</div>
      {rules.map((r, i) => (
        <div key={i} className="rule">
          <span className="muted">{i + 1}.</span>
          <input placeholder="tool (glob)" aria-label="Tool" value={r.tool ?? ""} onChange={(e) => set(i, { tool: e.target.value })} />
          <input placeholder="command (regex)" aria-label="Command" value={r.command ?? ""} onChange={(e) => set(i, { command: e.target.value })} />
          <input placeholder="path (glob)" aria-label="Path" value={r.path ?? ""} onChange={(e) => set(i, { path: e.target.value })} />
          <select aria-label="Action" value={r.action} onChange={(e) => set(i, { action: e.target.value as Rule["action"] })}>
            <option>allow</option>
            <option>ask</option>
            <option>deny</option>
          </select>
          <span className="rule-buttons">
            <button type="button" className="small" disabled={i === 0} onClick={() => move(i, -1)} aria-label="Move up">
              ↑
            </button>
            <button type="button" className="small" disabled={i === rules.length - 1} onClick={() => move(i, 1)} aria-label="Move down">
              ↓
            </button>
            <button type="button" className="small danger" onClick={() => setRules(rules.filter((_, j) => j !== i))} aria-label="Remove rule">
              ×
            </button>
          </span>
        </div>
      ))}
      <div className="row gap">
        <button type="button" onClick={() => setRules([...rules, { action: "ask" }])}>
          Add rule
        </button>
        <span className="grow" />
        <button type="button" onClick={onDone}>
          Cancel
        </button>
        <button className="primary" disabled={save.isPending}>
          Save
        </button>
      </div>
      <ErrorNote error={save.error} />
    </form>
  );
}

export default function Policies() {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ["policies"], queryFn: () => api.get("/api/policies") });
  const [editing, setEditing] = useState<Policy | "new" | null>(null);
  const remove = useMutation({
    mutationFn: (id: string) => api.delete("/api/policies/{policy_id}", { path: { policy_id: id } }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["policies"] }),
  });
  const policies = q.data?.data ?? [];
  const order = effectiveOrder(policies);
  return (
    <div className="stack">
      <ErrorNote error={q.error ?? remove.error} />
      {editing ? (
        <PolicyEditor policy={editing === "new" ? null : editing} onDone={() => setEditing(null)} />
      ) : (
        <button className="primary" onClick={() => setEditing("new")}>
          New policy
        </button>
      )}
      {policies.map((p) => (
        <div key={p.id} className="card row gap">
          <div className="grow">
            <strong>{p.name}</strong> <span className="muted small">priority {p.priority}</span>
            {!p.enabled && <span className="badge">disabled</span>}
            <div className="muted small">{p.rules.length} rules</div>
          </div>
          <button className="small" onClick={() => setEditing(p)}>
            Edit
          </button>
          <button className="small danger" onClick={() => confirm(`Delete ${p.name}?`) && remove.mutate(p.id)}>
            Delete
          </button>
        </div>
      ))}
      <div className="card">
        <h3>Effective order</h3>
        <p className="muted small">
          Hard gates first, then a run's trust, then these rules (higher priority first), then the agent's permission
          mode. Assigned policy sets narrow this per agent, project or run.
        </p>
        {order.length ? (
          <table className="table" data-testid="effective-order">
            <thead>
              <tr>
                <th>#</th>
                <th>policy</th>
                <th>tool</th>
                <th>command</th>
                <th>path</th>
                <th>action</th>
              </tr>
            </thead>
            <tbody>
              {order.map((r, i) => (
                <tr key={i}>
                  <td>{i + 1}</td>
                  <td>{r.policy}</td>
                  <td>{r.tool ?? "*"}</td>
                  <td>
                    <code>{r.command ?? ""}</code>
                  </td>
                  <td>
                    <code>{r.path ?? ""}</code>
                  </td>
                  <td>
                    <span className={`badge act-${r.action}`}>{r.action}</span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <div className="muted">No enabled rules.</div>
        )}
      </div>
    </div>
  );
}

