import { useQuery } from "@tanstack/react-query";
import { useEffect, useMemo, useRef, useState } from "react";
import { api } from "../api/client";
import type { Project, Run } from "../api/models";
import { Empty, ErrorNote, Link, Spinner, StatusBadge } from "../components/ui";
import { ago, money } from "../lib/format";
import { useLocation } from "../lib/router";

const FILTERS: { label: string; status?: string }[] = [
  { label: "All" },
  { label: "Active", status: "queued,preparing,running,waiting" },
  { label: "Needs you", status: "waiting,review,interrupted,failed" },
  { label: "Review", status: "review" },
  { label: "Done", status: "completed,cancelled" },
  { label: "Draft", status: "draft" },
];

export function useProjects() {
  return useQuery({
    queryKey: ["projects"],
    queryFn: () => api.get("/api/projects", { query: { limit: 500 } }),
    staleTime: 30_000,
  });
}

export function RunsList() {
  const { search: params } = useLocation();
  const [filter, setFilter] = useState(0);
  const [provider, setProvider] = useState("");
  const [archived, setArchived] = useState(false);
  const [text, setText] = useState("");
  const [q, setQ] = useState("");
  const searchRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    const t = setTimeout(() => setQ(text.trim()), 250);
    return () => clearTimeout(t);
  }, [text]);
  useEffect(() => {
    if (params.get("focus") === "search") searchRef.current?.focus();
  }, [params]);

  const status = FILTERS[filter]?.status;
  const runs = useQuery({
    queryKey: ["runs", { status, provider, archived, q }],
    queryFn: () =>
      api.get("/api/runs", {
        query: { status, provider: provider || undefined, archived, q: q || undefined, limit: 100 },
      }),
    refetchInterval: 2500,
  });
  const projects = useProjects();
  const known = projects.data?.data;
  const refetchProjects = projects.refetch;
  useEffect(() => {
    // A run made with `repo_path` registers a project this page may not have seen yet.
    const ids = new Set(known?.map((p) => p.id));
    if (known && runs.data?.data.some((r) => !ids.has(r.project_id))) void refetchProjects();
  }, [known, runs.data, refetchProjects]);
  const projectName = useMemo(() => {
    const m = new Map<string, Project>();
    projects.data?.data.forEach((p) => m.set(p.id, p));
    return (run: Run) => {
      const p = m.get(run.project_id);
      return p?.repos.length === 1 ? p.repos[0]!.name : (p?.name ?? "");
    };
  }, [projects.data]);

  return (
    <div className="page">
      <header className="page-head">
        <h1>Runs</h1>
        <Link to="/runs/new" className="button primary desktop-only">
          New run
        </Link>
      </header>
      <div className="filters">
        <input
          ref={searchRef}
          type="search"
          placeholder="Search titles and prompts"
          aria-label="Search runs"
          data-shortcut-search
          value={text}
          onChange={(e) => setText(e.target.value)}
        />
        <div className="chips" role="tablist" aria-label="Status filter">
          {FILTERS.map((f, i) => (
            <button
              key={f.label}
              role="tab"
              aria-selected={filter === i}
              className={`chip${filter === i ? " on" : ""}`}
              onClick={() => setFilter(i)}
            >
              {f.label}
            </button>
          ))}
        </div>
        <div className="row gap">
          <select aria-label="Provider" value={provider} onChange={(e) => setProvider(e.target.value)}>
            <option value="">Any agent</option>
            {["claude-code", "codex", "gemini", "copilot", "opencode", "acp", "script"].map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
          <label className="check">
            <input type="checkbox" checked={archived} onChange={(e) => setArchived(e.target.checked)} /> Archived
          </label>
        </div>
      </div>
      <ErrorNote error={runs.error} />
      {runs.isPending ? (
        <Spinner />
      ) : runs.data?.data.length ? (
        <ul className="runs" data-testid="runs-list">
          {runs.data.data.map((run) => (
            <li key={run.id}>
              <Link to={`/runs/${run.number}`} className="run-row" testId={`run-row-${run.number}`}>
                <div className="run-main">
                  <span className="run-title">
                    <span className="muted">#{run.number}</span> {run.title || run.prompt.slice(0, 80)}
                  </span>
                  <span className="run-meta muted">
                    {run.provider}
                    {run.model ? ` · ${run.model}` : ""} · {projectName(run)} · {ago(run.created_at)}
                  </span>
                </div>
                <div className="run-side">
                  <StatusBadge status={run.status} reason={run.status_reason} resolution={run.resolution} />
                  <span className="run-numbers">
                    {run.pending_approvals > 0 && (
                      <span className="count warn" title="Pending approvals">
                        {run.pending_approvals}
                      </span>
                    )}
                    {run.diff_stats.files > 0 && (
                      <span className="diffstat">
                        <span className="add">+{run.diff_stats.insertions}</span>{" "}
                        <span className="del">−{run.diff_stats.deletions}</span>
                      </span>
                    )}
                    <span className="cost">{money(run.usage.cost_usd)}</span>
                  </span>
                </div>
              </Link>
            </li>
          ))}
        </ul>
      ) : (
        <Empty>
          No runs here yet. <Link to="/runs/new">Start one</Link>.
        </Empty>
      )}
    </div>
  );
}
