// Response shapes. Runs, events, approvals, snapshots and checkpoints are generated schema types;
// the rest are still written by hand until their routes declare response models.
import type { components } from "./schema";

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

type Schemas = components["schemas"];

// The core resources come from the server's OpenAPI schema (generated into schema.d.ts; the
// staleness test keeps it in step): a field the server adds or renames reaches the compiler.
export type RunStatus = Schemas["RunView"]["status"];
export type Usage = Schemas["UsageView"];
export type DiffStats = Schemas["DiffStatsView"];
export type Run = Schemas["RunView"];
export type RunEvent = Schemas["EventView"];
export type Approval = Schemas["ApprovalView"] & { run_title?: string };
export type Snapshot = Schemas["SnapshotView"];

export interface Task {
  content: string;
  status: string;
}

export interface DiffLine {
  type: "context" | "add" | "del";
  text: string;
  old_line?: number;
  new_line?: number;
  no_newline?: boolean;
}
export interface DiffHunk {
  old_start: number;
  old_lines: number;
  new_start: number;
  new_lines: number;
  header: string;
  lines: DiffLine[];
}
export interface DiffFile {
  path: string;
  old_path: string | null;
  status: string;
  additions: number;
  deletions: number;
  binary: boolean;
  hunks: DiffHunk[];
  repo_id?: string;
}

export type Checkpoint = Schemas["CheckpointView"];

export interface Project {
  id: string;
  name: string;
  slug: string;
  repos: { id: string; name: string; path: string; default_branch: string }[];
}

export interface Agent {
  id: string;
  name: string;
  provider: string;
  model: string | null;
  instructions: string | null;
  permission_mode: "default" | "plan" | "auto";
  policy_set_ids: string[];
  env_set_ids: string[];
  provider_config: Record<string, unknown>;
  max_turns: number | null;
}

export interface Provider {
  name: string;
  available: boolean;
  version: string | null;
  path: string | null;
  capabilities: Record<string, boolean>;
  problem?: string | null;
  fix?: string | null;
  [key: string]: unknown;
}

export interface Rule {
  [key: string]: unknown;
  tool?: string;
  command?: string;
  path?: string;
  action: "allow" | "ask" | "deny";
  reason?: string;
}
export interface Policy {
  id: string;
  name: string;
  enabled: boolean;
  priority: number;
  rules: Rule[];
}
export interface PolicySet {
  id: string;
  name: string;
  policy_ids: string[];
}

export interface EnvSet {
  id: string;
  name: string;
  variables: Record<string, string>;
}

export interface ApiToken {
  id: string;
  name: string;
  scopes: string[];
  expires_at: string | null;
  created_at?: string;
  last_used_at?: string | null;
  token?: string;
}

export interface Settings {
  max_concurrent_runs: number;
  worktree_root: string | null;
  retention_days: number | null;
  default_agent_id: string | null;
  approval_timeout_hours: number;
  budgets: { daily_usd: number | null; monthly_usd: number | null };
  auto_resume: boolean;
  sandbox?: "on" | "off";
  sandbox_status?: SandboxStatus;
  [key: string]: unknown;
}

/** Read-only state of the agent sandbox (bubblewrap), from GET /api/settings. */
export interface SandboxStatus {
  mode: "on" | "off";
  available: boolean;
  bwrap: string | null;
  version: string | null;
  problem: string | null;
  warning: string | null;
}

export interface AuthStatus {
  setup_required: boolean;
  mfa_required?: boolean;
  user?: { id: string; username: string; role: string } | null;
}

export interface BrowseEntry {
  name: string;
  path: string;
  is_git_repo?: boolean;
  is_git?: boolean;
  [key: string]: unknown;
}

/** Response types by path, used by api.get / api.post. Keys must be paths in the schema. */
export interface GetResponses {
  "/api/runs": Page<Run>;
  "/api/runs/{run_ref}": Run;
  "/api/runs/{run_ref}/snapshot": Snapshot;
  "/api/runs/{run_ref}/events": Page<RunEvent>;
  "/api/runs/{run_ref}/approvals": Page<Approval>;
  "/api/approvals": Page<Approval>;
  "/api/runs/{run_ref}/diff": Page<DiffFile>;
  "/api/runs/{run_ref}/diff/stats": DiffStats;
  "/api/runs/{run_ref}/checkpoints": Page<Checkpoint>;
  "/api/runs/{run_ref}/effective-policies": { data: (Rule & { policy?: string })[] };
  "/api/projects": Page<Project>;
  "/api/agents": Page<Agent>;
  "/api/providers": { data: Provider[] } | Provider[];
  "/api/policies": Page<Policy>;
  "/api/policy-sets": Page<PolicySet>;
  "/api/settings": Settings;
}
export interface PostResponses {
  "/api/runs": Run;
  "/api/runs/{run_ref}/start": Run;
  "/api/runs/{run_ref}/cancel": Run;
  "/api/runs/{run_ref}/pause": Run;
  "/api/runs/{run_ref}/resume": Run;
  "/api/runs/{run_ref}/messages": unknown;
  "/api/approvals/{approval_id}/resolve": Approval;
  "/api/checkpoints/{checkpoint_id}/restore": unknown;
  "/api/runs/{run_ref}/checkpoints": Checkpoint;
  "/api/runs/{run_ref}/resolve": Run;
  "/api/agents": Agent;
  "/api/policies": Policy;
}
