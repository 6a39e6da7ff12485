import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api, ApiError } from "../api/client";
import type { ApiToken, EnvSet, Policy, Rule, Settings } from "../api/types";
import { Empty, ErrorNote, Link, Spinner } from "../components/ui";
import { navigate } from "../lib/router";
import { useProviders } from "./NewRun";

const SECTIONS: [string, string][] = [
  ["providers", "Providers"],
  ["account", "Account"],
  ["agents", "Agent profiles"],
  ["policies", "Policies"],
  ["env", "Env sets"],
  ["tokens", "Tokens"],
  ["general", "General"],
];

function NotAvailable({ error }: { error: unknown }) {
  if (error instanceof ApiError && (error.status === 404 || error.status === 405))
    return <Empty>This server does not offer this yet.</Empty>;
  return <ErrorNote error={error} />;
}

function Providers() {
  const q = useProviders();
  if (q.isPending) return <Spinner />;
  return (
    <div className="stack">
      <ErrorNote error={q.error} />
      {(q.data ?? []).map((p) => (
        <div key={p.name} className="card" data-testid="provider">
          <div className="row gap">
            <strong className="grow">{p.name}</strong>
            <span className={`badge ${p.available ? "ok" : "bad"}`}>{p.available ? "ready" : "not ready"}</span>
          </div>
          {p.version && <div className="muted small">version {p.version}</div>}
          {p.problem && <div className="warn-text">{p.problem}</div>}
          {typeof p.fix === "string" && p.fix && (
            <div>
              Fix: <code className="pre-wrap">{p.fix}</code>
            </div>
          )}
          <div className="muted small">
            {Object.entries(p.capabilities ?? {})
              .filter(([, v]) => v)
              .map(([k]) => k)
              .join(" · ")}
          </div>
        </div>
      ))}
    </div>
  );
}

function Agents() {
  const qc = useQueryClient();
  const providers = useProviders();
  const q = useQuery({ queryKey: ["agents"], queryFn: () => api.get("/api/agents", { query: { limit: 500 } }) });
  const create = useMutation({
    mutationFn: (body: Parameters<typeof api.post<"/api/agents">>[1]) => api.post("/api/agents", body),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["agents"] }),
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.delete("/api/agents/{agent_id}", { path: { agent_id: id } }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["agents"] }),
  });
  return (
    <div className="stack">
      <ErrorNote error={q.error ?? remove.error} />
      {(q.data?.data ?? []).map((a) => (
        <div key={a.id} className="card row gap">
          <div className="grow">
            <strong>{a.name}</strong>
            <div className="muted small">
              {a.provider}
              {a.model ? ` · ${a.model}` : ""} · {a.permission_mode} mode
            </div>
          </div>
          <button className="danger small" onClick={() => confirm(`Delete ${a.name}?`) && remove.mutate(a.id)}>
            Delete
          </button>
        </div>
      ))}
      <form
        className="card stack"
        aria-label="New agent profile"
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          const g = (k: string) => String(f.get(k) ?? "").trim();
          create.mutate({
            name: g("name"),
            provider: g("provider"),
            model: g("model") || undefined,
            instructions: g("instructions") || undefined,
            permission_mode: g("permission_mode") as "default",
          });
          e.currentTarget.reset();
        }}
      >
        <h3>New profile</h3>
        <label>
          Name
          <input name="name" required />
        </label>
        <label>
          Provider
          <select name="provider">
            {(providers.data ?? []).map((p) => (
              <option key={p.name}>{p.name}</option>
            ))}
          </select>
        </label>
        <label>
          Model
          <input name="model" placeholder="provider default" />
        </label>
        <label>
          Permission mode
          <select name="permission_mode" defaultValue="default">
            <option value="default">default — ask before edits and commands</option>
            <option value="plan">plan — no edits</option>
            <option value="auto">auto — allow unless a rule says otherwise</option>
          </select>
        </label>
        <label>
          Instructions
          <textarea name="instructions" rows={3} />
        </label>
        <ErrorNote error={create.error} />
        <button className="primary">Create profile</button>
      </form>
    </div>
  );
}

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

function Policies() {
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

function EnvSets() {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ["env-sets"], queryFn: () => api.raw<{ data: EnvSet[] }>("get", "/api/env-sets"), retry: false });
  const [vars, setVars] = useState("");
  const create = useMutation({
    mutationFn: (body: { name: string; variables: Record<string, string> }) => api.raw("post", "/api/env-sets", body),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["env-sets"] }),
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.raw("delete", `/api/env-sets/${encodeURIComponent(id)}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["env-sets"] }),
  });
  if (q.error) return <NotAvailable error={q.error} />;
  return (
    <div className="stack">
      {(q.data?.data ?? []).map((s) => (
        <div key={s.id} className="card row gap">
          <div className="grow">
            <strong>{s.name}</strong>
            <div className="muted small">{Object.keys(s.variables ?? {}).join(", ") || "no variables"}</div>
          </div>
          <button className="small danger" onClick={() => confirm(`Delete ${s.name}?`) && remove.mutate(s.id)}>
            Delete
          </button>
        </div>
      ))}
      <form
        className="card stack"
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          const variables: Record<string, string> = {};
          for (const line of vars.split("\n")) {
            const at = line.indexOf("=");
            if (at > 0) variables[line.slice(0, at).trim()] = line.slice(at + 1);
          }
          create.mutate({ name: String(f.get("name") ?? ""), variables });
          setVars("");
        }}
      >
        <h3>New env set</h3>
        <label>
          Name
          <input name="name" required />
        </label>
        <label>
          Variables (KEY=value per line; stored encrypted, never shown again)
          <textarea rows={4} value={vars} onChange={(e) => setVars(e.target.value)} spellCheck={false} />
        </label>
        <ErrorNote error={create.error ?? remove.error} />
        <button className="primary">Save</button>
      </form>
    </div>
  );
}

const SCOPES = ["runs:read", "runs:write", "runs:control", "approvals:resolve", "git:merge", "git:push", "settings:read", "settings:write", "admin"];

function Tokens() {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ["tokens"], queryFn: () => api.raw<{ data: ApiToken[] }>("get", "/api/tokens"), retry: false });
  const [secret, setSecret] = useState<string | null>(null);
  const create = useMutation({
    mutationFn: (body: { name: string; scopes: string[] }) => api.raw<ApiToken>("post", "/api/tokens", body),
    onSuccess: (t) => {
      setSecret(t.token ?? null);
      void qc.invalidateQueries({ queryKey: ["tokens"] });
    },
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.raw("delete", `/api/tokens/${encodeURIComponent(id)}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["tokens"] }),
  });
  if (q.error) return <NotAvailable error={q.error} />;
  return (
    <div className="stack">
      {secret && (
        <div className="card ok-note">
          Copy this token now; it is not shown again: <code className="break">{secret}</code>
        </div>
      )}
      {(q.data?.data ?? []).map((t) => (
        <div key={t.id} className="card row gap">
          <div className="grow">
            <strong>{t.name}</strong>
            <div className="muted small">{t.scopes.join(" ")}</div>
          </div>
          <button className="small danger" onClick={() => confirm(`Revoke ${t.name}?`) && remove.mutate(t.id)}>
            Revoke
          </button>
        </div>
      ))}
      <form
        className="card stack"
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          create.mutate({ name: String(f.get("name") ?? ""), scopes: f.getAll("scope").map(String) });
        }}
      >
        <h3>New token</h3>
        <label>
          Name
          <input name="name" required />
        </label>
        <div className="scopes">
          {SCOPES.map((s) => (
            <label key={s} className="check">
              <input type="checkbox" name="scope" value={s} defaultChecked={s.endsWith(":read")} /> {s}
            </label>
          ))}
        </div>
        <ErrorNote error={create.error ?? remove.error} />
        <button className="primary">Create token</button>
      </form>
    </div>
  );
}

function General() {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ["settings"], queryFn: () => api.get("/api/settings") });
  const [draft, setDraft] = useState<Settings | null>(null);
  useEffect(() => {
    if (q.data) setDraft(q.data);
  }, [q.data]);
  const save = useMutation({
    mutationFn: (s: Settings) => api.put("/api/settings", s as never),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["settings"] }),
  });
  if (!draft) return q.error ? <ErrorNote error={q.error} /> : <Spinner />;
  const num = (v: string) => (v === "" ? null : Number(v));
  return (
    <form
      className="card stack"
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate(draft);
      }}
    >
      <label>
        Concurrent runs
        <input type="number" min={1} value={draft.max_concurrent_runs} onChange={(e) => setDraft({ ...draft, max_concurrent_runs: Number(e.target.value) })} />
      </label>
      <label>
        Approval timeout (hours)
        <input type="number" min={0} step="0.5" value={draft.approval_timeout_hours} onChange={(e) => setDraft({ ...draft, approval_timeout_hours: Number(e.target.value) })} />
      </label>
      <label>
        Retention (days; empty keeps everything)
        <input type="number" min={0} value={draft.retention_days ?? ""} onChange={(e) => setDraft({ ...draft, retention_days: num(e.target.value) })} />
      </label>
      <label>
        Daily budget (USD)
        <input type="number" min={0} step="0.01" value={draft.budgets?.daily_usd ?? ""} onChange={(e) => setDraft({ ...draft, budgets: { ...draft.budgets, daily_usd: num(e.target.value) } })} />
      </label>
      <label>
        Monthly budget (USD)
        <input type="number" min={0} step="0.01" value={draft.budgets?.monthly_usd ?? ""} onChange={(e) => setDraft({ ...draft, budgets: { ...draft.budgets, monthly_usd: num(e.target.value) } })} />
      </label>
      <label className="check">
        <input type="checkbox" checked={draft.auto_resume} onChange={(e) => setDraft({ ...draft, auto_resume: e.target.checked })} /> Resume interrupted runs at start
      </label>
      <ErrorNote error={save.error} />
      {save.isSuccess && <div className="ok-note">Saved.</div>}
      <button className="primary">Save settings</button>
    </form>
  );
}

interface Me {
  kind: string;
  name: string;
  role: string;
  scopes: string[];
  user: { username: string; mfa_enabled?: boolean; [k: string]: unknown } | null;
}

function Account() {
  const qc = useQueryClient();
  const me = useQuery({ queryKey: ["me"], queryFn: () => api.raw<Me>("get", "/api/auth/me"), retry: false });
  const [enrol, setEnrol] = useState<{ secret: string; otpauth_uri: string } | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const password = useMutation({
    mutationFn: (b: { current_password: string; new_password: string }) => api.raw("post", "/api/auth/password", b),
  });
  const start = useMutation({
    mutationFn: () => api.raw<{ secret: string; otpauth_uri: string }>("post", "/api/auth/mfa/setup"),
    onSuccess: setEnrol,
  });
  const verify = useMutation({
    mutationFn: (code: string) => api.raw<{ recovery_codes: string[] }>("post", "/api/auth/mfa/verify", { code }),
    onSuccess: (r) => {
      setEnrol(null);
      setCodes(r.recovery_codes);
      void qc.invalidateQueries({ queryKey: ["me"] });
    },
  });
  const disable = useMutation({
    mutationFn: (pw: string) => api.raw("post", "/api/auth/mfa/disable", { password: pw }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["me"] }),
  });
  if (me.error) return <NotAvailable error={me.error} />;
  if (!me.data) return <Spinner />;
  const user = me.data.user;
  return (
    <div className="stack">
      <div className="card" data-testid="account">
        Signed in as <strong>{user?.username ?? me.data.name}</strong> ({me.data.role}, {me.data.kind})
        <div className="muted small">{me.data.scopes.join(" ")}</div>
      </div>
      {user && (
        <>
          <form
            className="card stack"
            aria-label="Change password"
            onSubmit={(e) => {
              e.preventDefault();
              const f = new FormData(e.currentTarget);
              password.mutate({
                current_password: String(f.get("current") ?? ""),
                new_password: String(f.get("new") ?? ""),
              });
            }}
          >
            <h3>Password</h3>
            <label>
              Current password
              <input name="current" type="password" autoComplete="current-password" required />
            </label>
            <label>
              New password
              <input name="new" type="password" autoComplete="new-password" required />
            </label>
            <ErrorNote error={password.error} />
            {password.isSuccess && <div className="ok-note">Changed. Your other sessions were signed out.</div>}
            <button className="primary">Change password</button>
          </form>
          <div className="card stack" data-testid="mfa">
            <h3>Two-factor authentication</h3>
            {codes && (
              <div className="ok-note">
                On. Keep these single-use recovery codes somewhere safe:
                <pre className="code" data-testid="recovery-codes">{codes.join("\n")}</pre>
              </div>
            )}
            {user.mfa_enabled ? (
              <form
                className="row gap wrap"
                onSubmit={(e) => {
                  e.preventDefault();
                  disable.mutate(String(new FormData(e.currentTarget).get("pw") ?? ""));
                }}
              >
                <input name="pw" type="password" placeholder="Password" aria-label="Password to turn off" required />
                <button className="danger">Turn off</button>
              </form>
            ) : enrol ? (
              <form
                className="stack"
                onSubmit={(e) => {
                  e.preventDefault();
                  verify.mutate(String(new FormData(e.currentTarget).get("code") ?? ""));
                }}
              >
                <div>
                  Add this key to your authenticator app: <code className="break" data-testid="totp-secret">{enrol.secret}</code>
                </div>
                <a href={enrol.otpauth_uri} className="small">
                  Open in an authenticator app
                </a>
                <label>
                  Code from the app
                  <input name="code" inputMode="numeric" autoComplete="one-time-code" required />
                </label>
                <button className="primary">Turn on</button>
              </form>
            ) : (
              <button onClick={() => start.mutate()}>Set up two-factor</button>
            )}
            <ErrorNote error={start.error ?? verify.error ?? disable.error} />
          </div>
        </>
      )}
    </div>
  );
}

export default function SettingsView({ section }: { section: string }) {
  const body: Record<string, React.ReactNode> = {
    providers: <Providers />,
    account: <Account />,
    agents: <Agents />,
    policies: <Policies />,
    env: <EnvSets />,
    tokens: <Tokens />,
    general: <General />,
  };
  return (
    <div className="page narrow">
      <header className="page-head">
        <h1>Settings</h1>
        <button
          className="small"
          onClick={() => {
            void api.raw("post", "/api/auth/logout").finally(() => navigate("/login"));
          }}
        >
          Sign out
        </button>
      </header>
      <div className="chips scroll-x" role="tablist">
        {SECTIONS.map(([id, label]) => (
          <Link key={id} to={`/settings/${id}`} className={`chip${section === id ? " on" : ""}`}>
            {label}
          </Link>
        ))}
      </div>
      {body[section] ?? <Empty>Unknown section.</Empty>}
    </div>
  );
}
