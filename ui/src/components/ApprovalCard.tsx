import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../api/client";
import type { Approval } from "../api/models";
import { short } from "../lib/format";
import { ErrorNote, Link } from "./ui";

export function ApprovalCard({ approval, showRun = false }: { approval: Approval; showRun?: boolean }) {
  const qc = useQueryClient();
  const run = useQuery({
    queryKey: ["run", approval.run_id],
    queryFn: () => api.get("/api/runs/{run_ref}", { path: { run_ref: approval.run_id } }),
    staleTime: 30_000,
  });
  const [remember, setRemember] = useState<"" | "run" | "project">("");
  const [reason, setReason] = useState("");
  const resolve = useMutation({
    mutationFn: (decision: "approved" | "rejected") =>
      api.post(
        "/api/approvals/{approval_id}/resolve",
        { decision, reason: reason || undefined, remember: decision === "approved" && remember ? remember : undefined },
        { path: { approval_id: approval.id } },
      ),
    onSettled: () => {
      void qc.invalidateQueries({ queryKey: ["approvals"] });
      void qc.invalidateQueries({ queryKey: ["run"] });
    },
  });
  const pending = approval.status === "pending" && !resolve.isSuccess;
  const input = approval.input as Record<string, unknown> | null;
  const command = commandOf(input);
  const worktrees = Object.values((run.data as { worktrees?: Record<string, string> } | undefined)?.worktrees ?? {});
  const rel = (path: string) => relative(path, worktrees);
  const change = changeOf(input);
  const path = pathOf(input);
  return (
    <div className={`approval card ${pending ? "pending" : approval.status}`} data-testid="approval-card" data-approval-id={approval.id} data-status={resolve.data?.status ?? approval.status}>
      <div className="approval-head">
        <span className={`badge ${pending ? "warn" : (resolve.data?.status ?? approval.status) === "approved" ? "ok" : "bad"}`}>
          {pending ? "Approval needed" : (resolve.data?.status ?? approval.status)}
        </span>
        <strong>{approval.tool}</strong>
        {showRun && (
          <Link to={`/runs/${run.data?.number ?? approval.run_id}`} className="small ellipsis">
            {run.data ? `#${run.data.number} ${run.data.title}` : approval.run_id}
          </Link>
        )}
      </div>
      {command ? (
        <pre className="code approval-command" data-testid="approval-command">
          $ {command}
        </pre>
      ) : (
        <div className="approval-title">{path ? `${approval.tool} ${rel(path)}` : approval.title}</div>
      )}
      {change && (
        <pre className="code approval-diff" data-testid="approval-diff">
          {change.map((line, i) => (
            <span key={i} className={line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : ""}>
              {line}
              {"\n"}
            </span>
          ))}
        </pre>
      )}
      {!command && !change && input && (
        <details>
          <summary>Input</summary>
          <pre className="code">{short(input)}</pre>
        </details>
      )}
      {approval.rule && (
        <div className="muted small" data-testid="approval-rule" title={approval.rule}>
          Why: {ruleInWords(approval.rule)}
        </div>
      )}
      {pending && (
        <>
          <div className="approval-options">
            <select aria-label="Remember" value={remember} onChange={(e) => setRemember(e.target.value as typeof remember)}>
              <option value="">Just this once</option>
              <option value="run">Always in this run: {covers(approval.tool, command, path && rel(path))}</option>
              <option value="project">Always in this project: {covers(approval.tool, command, path && rel(path))}</option>
            </select>
            <input placeholder="Reason (optional)" aria-label="Reason" value={reason} onChange={(e) => setReason(e.target.value)} />
          </div>
          <div className="approval-actions">
            <button className="danger" disabled={resolve.isPending} onClick={() => resolve.mutate("rejected")}>
              Reject
            </button>
            <button className="primary" disabled={resolve.isPending} onClick={() => resolve.mutate("approved")} data-approve>
              Approve
            </button>
          </div>
        </>
      )}
      <ErrorNote error={resolve.error} />
    </div>
  );
}

function commandOf(input: Record<string, unknown> | null): string | null {
  const value = input?.command ?? input?.cmd;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(String).join(" ");
  return null;
}

function pathOf(input: Record<string, unknown> | null): string | null {
  const value = input?.file_path ?? input?.path;
  return typeof value === "string" ? value : null;
}

/** The change a Write or Edit call would make, as diff lines (content, or old → new). */
function changeOf(input: Record<string, unknown> | null): string[] | null {
  if (!input) return null;
  const lines = (text: unknown, mark: string) =>
    String(text)
      .replace(/\n$/, "")
      .split("\n")
      .map((l) => mark + l);
  if (typeof input.old_string === "string" && typeof input.new_string === "string")
    return [...lines(input.old_string, "-"), ...lines(input.new_string, "+")];
  if (typeof input.content === "string") return lines(input.content, "+");
  for (const key of ["diff", "patch", "unified_diff"]) if (typeof input[key] === "string") return String(input[key]).split("\n");
  return null;
}

/** ``path`` relative to the run's worktree when it is inside it. */
function relative(path: string, worktrees: string[]): string {
  for (const root of worktrees) if (path.startsWith(`${root}/`)) return path.slice(root.length + 1);
  return path;
}

/** What "always" allows from now on: the server remembers this exact command, else this tool
 * on this path, else the tool (``executor.approvals.remembered_rule``). */
function covers(tool: string, command: string | null, path: string | null): string {
  if (command) return `exactly \`${command.length > 40 ? `${command.slice(0, 40)}…` : command}\``;
  if (path) return `${tool} on ${path}`;
  return `every ${tool} call`;
}

const MODES: Record<string, string> = {
  default: "asks before writes and commands — default mode",
  plan: "no writes allowed — plan mode",
  auto: "allowed — auto mode",
};

/** ``mode:default`` → "asks before writes and commands — default mode", and so on. */
export function ruleInWords(rule: string): string {
  const [kind, rest = ""] = rule.split(":", 2) as [string, string?];
  if (kind === "mode") return MODES[rest] ?? `${rest} mode`;
  if (kind === "gate") return `a hard gate (${rest.replace(/_/g, " ")}): always asks`;
  if (kind === "policy") return `a policy rule (${rest})`;
  if (kind === "budget") return "the budget is reached";
  return rule;
}
