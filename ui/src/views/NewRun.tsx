import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api, type BodyOf } from "../api/client";
import { AgentOptionsForm, buildOptions, emptyOptions, type AgentOptionsValue } from "../components/AgentOptionsForm";
import { ErrorNote } from "../components/ui";
import { navigate } from "../lib/router";
import { useProjects } from "./RunsList";

export function useProviders() {
  return useQuery({
    queryKey: ["providers"],
    queryFn: async () => {
      return (await api.get("/api/providers")).data;
    },
    staleTime: 60_000,
  });
}

function Browser({ start, onPick }: { start: string; onPick: (path: string) => void }) {
  const [path, setPath] = useState(start);
  const q = useQuery({
    queryKey: ["browse", path],
    queryFn: () => api.get("/api/settings/browse", { query: { path: path || undefined } }),
    retry: false,
  });
  const entries = q.data?.entries ?? [];
  const here = q.data?.path ?? path;
  return (
    <div className="browser" data-testid="repo-browser">
      <div className="row gap">
        <code className="grow ellipsis">{here || "/"}</code>
        {q.data?.parent != null && (
          <button type="button" onClick={() => setPath(q.data!.parent!)}>
            Up
          </button>
        )}
        <button type="button" className="primary" onClick={() => onPick(here)}>
          Use this folder
        </button>
      </div>
      <ErrorNote error={q.error} />
      <ul className="browse-list">
        {entries.map((e) => (
          <li key={e.path}>
            <button type="button" className="link" onClick={() => setPath(e.path)}>
              📁 {e.name}
            </button>
            {e.is_git_repo && (
              <button type="button" className="small" onClick={() => onPick(e.path)}>
                git repo · pick
              </button>
            )}
          </li>
        ))}
      </ul>
    </div>
  );
}

const PREFERRED = ["claude-code", "codex", "gemini", "copilot", "opencode"];

export function NewRun() {
  const qc = useQueryClient();
  const projects = useProjects();
  const providers = useProviders();
  const agents = useQuery({
    queryKey: ["agents"],
    queryFn: () => api.get("/api/agents", { query: { limit: 500 } }),
  });
  const [repo, setRepo] = useState("");
  const [browsing, setBrowsing] = useState(false);
  const [agent, setAgent] = useState("");
  const [options, setOptions] = useState<AgentOptionsValue>(emptyOptions);
  const [optionsError, setOptionsError] = useState<string | null>(null);
  // The default pick is a real agent: the first installed one in this order. Not `acp` (it needs
  // a command) nor the `script` demo (it needs a scenario).
  useEffect(() => {
    if (agent || !providers.data) return;
    const installed = new Set(providers.data.filter((p) => p.available).map((p) => p.name));
    const real = PREFERRED.find((name) => installed.has(name));
    setAgent(`provider:${real ?? "script"}`);
  }, [agent, providers.data]);
  const providerName = agent.startsWith("provider:")
    ? agent.slice(9)
    : ((agents.data?.data ?? []).find((a) => `agent:${a.id}` === agent)?.provider ?? null);

  const create = useMutation({
    mutationFn: (body: BodyOf<"/api/runs", "post">) => api.post("/api/runs", body),
    onSuccess: (run) => {
      void qc.invalidateQueries({ queryKey: ["projects"] });
      void qc.invalidateQueries({ queryKey: ["runs"] });
      navigate(`/runs/${run.number}`);
    },
  });

  const submit = (e: React.FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const get = (k: string) => String(form.get(k) ?? "").trim();
    const built = buildOptions(providerName, options);
    if (typeof built === "string") {
      setOptionsError(built);
      return;
    }
    setOptionsError(null);
    const body: BodyOf<"/api/runs", "post"> = { prompt: get("prompt"), draft: form.get("draft") === "on" };
    if (repo.startsWith("project:")) body.project_id = repo.slice(8);
    else body.repo_path = repo;
    if (agent.startsWith("agent:")) body.agent_id = agent.slice(6);
    else body.provider = agent.slice(9);
    if (get("title")) body.title = get("title");
    if (built.model) body.model = built.model;
    if (built.budget_usd != null) body.budget_usd = built.budget_usd;
    if (built.env_set_ids) body.env_set_ids = built.env_set_ids;
    if (Object.keys(built.agent_options).length) body.agent_options = built.agent_options;
    create.mutate(body);
  };

  const projectList = projects.data?.data ?? [];
  return (
    <div className="page narrow">
      <header className="page-head">
        <h1>New run</h1>
      </header>
      <form className="card stack" onSubmit={submit} aria-label="New run">
        <label>
          Repository
          <select
            value={repo.startsWith("project:") ? repo : repo ? "path" : ""}
            onChange={(e) => setRepo(e.target.value === "path" ? " " : e.target.value)}
            aria-label="Registered project"
          >
            <option value="">Choose…</option>
            {projectList.map((p) => (
              <option key={p.id} value={`project:${p.id}`}>
                {p.name}
                {p.repos.length === 1 ? ` (${p.repos[0]!.path})` : ` (${p.repos.length} repos)`}
              </option>
            ))}
            <option value="path">Another folder…</option>
          </select>
        </label>
        {!repo.startsWith("project:") && (
          <div className="row gap">
            <input
              className="grow"
              name="repo_path"
              placeholder="/path/to/a/git/repository"
              aria-label="Repository path"
              value={repo.trim()}
              onChange={(e) => setRepo(e.target.value)}
              required
            />
            <button type="button" onClick={() => setBrowsing((v) => !v)}>
              Browse
            </button>
          </div>
        )}
        {browsing && (
          <Browser
            start={repo.trim()}
            onPick={(p) => {
              setRepo(p);
              setBrowsing(false);
            }}
          />
        )}
        <label>
          Agent
          <select value={agent} onChange={(e) => setAgent(e.target.value)} aria-label="Agent">
            {(agents.data?.data ?? []).length > 0 && (
              <optgroup label="Profiles">
                {agents.data!.data.map((a) => (
                  <option key={a.id} value={`agent:${a.id}`}>
                    {a.name} ({a.provider})
                  </option>
                ))}
              </optgroup>
            )}
            {!agent && <option value="">Loading…</option>}
            <optgroup label="Agents">
              {(providers.data ?? [])
                .filter((p) => p.name !== "script")
                .map((p) => (
                  <option key={p.name} value={`provider:${p.name}`} disabled={!p.available}>
                    {p.name}
                    {p.available ? "" : " (not installed)"}
                  </option>
                ))}
            </optgroup>
            <optgroup label="Demo">
              <option value="provider:script">script (scripted steps, no model)</option>
            </optgroup>
          </select>
        </label>
        <label>
          Prompt
          <textarea name="prompt" rows={6} required placeholder="What should the agent do?" />
        </label>
        <details>
          <summary>
            More options{" "}
            <span className="muted small">
              {providerName === "script" ? "(the scenario, permissions…)" : "(model, permissions, env sets, budget…)"}
            </span>
          </summary>
          <div className="stack">
            <label>
              Title
              <input name="title" maxLength={300} />
            </label>
            <AgentOptionsForm provider={providerName} value={options} onChange={setOptions} />
            <label className="check">
              <input type="checkbox" name="draft" /> Save as draft (start later)
            </label>
          </div>
        </details>
        {optionsError && <div className="error">{optionsError}</div>}
        <ErrorNote error={create.error} />
        <button className="primary big" type="submit" disabled={create.isPending}>
          {create.isPending ? "Starting…" : "Start run"}
        </button>
      </form>
    </div>
  );
}
