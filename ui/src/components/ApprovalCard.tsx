import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../api/client";
import type { Approval } from "../api/types";
import { short } from "../lib/format";
import { ErrorNote, Link } from "./ui";

export function ApprovalCard({ approval, showRun = false }: { approval: Approval; showRun?: boolean }) {
  const qc = useQueryClient();
  const run = useQuery({
    queryKey: ["run", approval.run_id],
    queryFn: () => api.get("/api/runs/{run_ref}", { path: { run_ref: approval.run_id } }),
    enabled: showRun,
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
  const command = typeof input?.command === "string" ? input.command : null;
  return (
    <div className={`approval card ${pending ? "pending" : approval.status}`} data-testid="approval-card" data-approval-id={approval.id} data-status={resolve.data?.status ?? approval.status}>
      <div className="approval-head">
        <span className={`badge ${pending ? "warn" : (resolve.data?.status ?? approval.status) === "approved" ? "ok" : "bad"}`}>
          {pending ? "Approval needed" : (resolve.data?.status ?? approval.status)}
        </span>
        <strong>{approval.tool}</strong>
        {showRun && (
          <Link to={`/runs/${run.data?.number ?? approval.run_id}`} className="small ellipsis">
            {run.data ? `#${run.data.number} ${run.data.title}` : (approval.run_title ?? approval.run_id)}
          </Link>
        )}
      </div>
      <div className="approval-title">{command ?? approval.title}</div>
      {!command && input && (
        <details>
          <summary>Input</summary>
          <pre className="code">{short(input)}</pre>
        </details>
      )}
      {approval.rule && <div className="muted small">rule: {approval.rule}</div>}
      {pending && (
        <>
          <div className="approval-options">
            <select aria-label="Remember" value={remember} onChange={(e) => setRemember(e.target.value as typeof remember)}>
              <option value="">Just this once</option>
              <option value="run">Always for this run</option>
              <option value="project">Always for this project</option>
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
