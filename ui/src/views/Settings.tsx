import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { Settings } from "../api/models";
import { EnvSetField, ModelField } from "../components/AgentOptionsForm";
import { Empty, ErrorNote, Link, Spinner } from "../components/ui";
import { inline } from "../lib/markdown";
import { navigate } from "../lib/router";
import { useProviders } from "./NewRun";
import Account from "./settings/Account";
import { NotAvailable } from "./settings/NotAvailable";
import Policies from "./settings/Policies";
import Notifications from "./settings/Notifications";
import Users from "./settings/Users";

const SECTIONS: [string, string][] = [
  ["providers", "Providers"],
  ["account", "Account"],
  ["agents", "Agent profiles"],
  ["policies", "Policies"],
  ["env", "Env sets"],
  ["tokens", "Tokens"],
  ["users", "Users"],
  ["notifications", "Notifications"],
  ["general", "General"],
];

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
            {p.name === "acp" ? (
              // Nothing to check until a run names its agent: say so instead of "ready".
              <span className="badge">needs a command per run</span>
            ) : (
              <span className={`badge ${p.available ? "ok" : "bad"}`}>{p.available ? "ready" : "not ready"}</span>
            )}
          </div>
          {p.version && <div className="muted small">version {p.version}</div>}
          {p.name === "acp" && (
            <div className="muted small">
              {inline("Any ACP agent: give its command in the run's or profile's options, e.g. `{\"command\": [\"goose\", \"acp\"]}`.")}
            </div>
          )}
          {p.problem && <div className="warn-text">{p.problem}</div>}
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
  // Controlled so the model suggestions follow the provider; env sets and raw config as fields.
  const [provider, setProvider] = useState("");
  const [model, setModel] = useState("");
  const [envSetIds, setEnvSetIds] = useState<string[]>([]);
  const [configError, setConfigError] = useState<string | null>(null);
  const chosen = provider || (providers.data ?? []).find((p) => p.name !== "acp" && p.name !== "script")?.name || "";
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
          let providerConfig: Record<string, unknown> = {};
          if (g("provider_config")) {
            try {
              providerConfig = JSON.parse(g("provider_config")) as Record<string, unknown>;
            } catch {
              setConfigError("Advanced options must be a JSON object.");
              return;
            }
          }
          setConfigError(null);
          create.mutate({
            name: g("name"),
            provider: chosen,
            model: model.trim() || undefined,
            instructions: g("instructions") || undefined,
            permission_mode: g("permission_mode") as "default",
            env_set_ids: envSetIds,
            provider_config: providerConfig,
          });
          e.currentTarget.reset();
          setModel("");
          setEnvSetIds([]);
        }}
      >
        <h3>New profile</h3>
        <label>
          Name
          <input name="name" required />
        </label>
        <label>
          Provider
          <select name="provider" value={chosen} onChange={(e) => setProvider(e.target.value)}>
            {(providers.data ?? []).map((p) => (
              <option key={p.name}>{p.name}</option>
            ))}
          </select>
        </label>
        <ModelField provider={chosen} value={model} onChange={setModel} name="profile-model" />
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
        <EnvSetField value={envSetIds} onChange={setEnvSetIds} />
        <label>
          Advanced: provider options (JSON)
          <textarea
            name="provider_config"
            rows={2}
            spellCheck={false}
            placeholder='{"command": ["goose", "acp"]}'
          />
        </label>
        {configError && <div className="error">{configError}</div>}
        <ErrorNote error={create.error} />
        <button className="primary">Create profile</button>
      </form>
    </div>
  );
}

function EnvSets() {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ["env-sets"], queryFn: () => api.get("/api/env-sets"), retry: false });
  const [vars, setVars] = useState("");
  const create = useMutation({
    mutationFn: (body: { name: string; variables: Record<string, string> }) => api.post("/api/env-sets", body),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["env-sets"] }),
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.delete("/api/env-sets/{env_set_id}", { path: { env_set_id: id } }),
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
  const q = useQuery({ queryKey: ["tokens"], queryFn: () => api.get("/api/tokens"), retry: false });
  const [secret, setSecret] = useState<string | null>(null);
  const create = useMutation({
    mutationFn: (body: { name: string; scopes: string[] }) => api.post("/api/tokens", body),
    onSuccess: (t) => {
      setSecret(t.token ?? null);
      void qc.invalidateQueries({ queryKey: ["tokens"] });
    },
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.delete("/api/tokens/{token_id}", { path: { token_id: id } }),
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
      <label>
        Agent sandbox
        <select value={draft.sandbox ?? "on"} onChange={(e) => setDraft({ ...draft, sandbox: e.target.value as "on" | "off" })}>
          <option value="on">On: agents and scripts see only their worktree (bubblewrap)</option>
          <option value="off">Off: agents can read the server's secrets (admins only)</option>
        </select>
      </label>
      {draft.sandbox_status?.mode === "off" && <div className="warn-text" role="alert">{draft.sandbox_status.warning}</div>}
      {draft.sandbox_status && !draft.sandbox_status.available && <div className="warn-text">{draft.sandbox_status.problem}</div>}
      <ErrorNote error={save.error} />
      {save.isSuccess && <div className="ok-note">Saved.</div>}
      <button className="primary">Save settings</button>
    </form>
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
    users: <Users />,
    notifications: <Notifications />,
    general: <General />,
  };
  return (
    <div className="page narrow">
      <header className="page-head">
        <h1>Settings</h1>
        <button
          className="small"
          onClick={() => {
            void api.post("/api/auth/logout").finally(() => navigate("/login"));
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
