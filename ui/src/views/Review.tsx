import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { api, ApiError, type BodyOf } from "../api/client";
import type { Checkpoint, Run } from "../api/models";
import { DiffView } from "../components/DiffView";
import { Empty, ErrorNote, Spinner } from "../components/ui";
import { ago } from "../lib/format";
import { useLocation } from "../lib/router";

function useWide(): boolean {
  const query = "(min-width: 1000px)";
  const [wide, setWide] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const m = window.matchMedia(query);
    const on = () => setWide(m.matches);
    m.addEventListener("change", on);
    return () => m.removeEventListener("change", on);
  }, []);
  return wide;
}

const RESOLVED_OK = new Set(["completed"]);
const ACTIONS = new Set(["merge", "squash", "rebase", "create_pr", "discard", "agent_merge"]);

/** Where the run landed: the commit on its target branch (from the run's git.merged events). */
function Landed({ run }: { run: Run }) {
  const merged = useQuery({
    queryKey: ["review", run.id, "landed"],
    queryFn: () => api.get("/api/runs/{run_ref}/events", { path: { run_ref: run.id }, query: { types: "git.merged" } }),
    enabled: run.resolution === "merged",
  });
  return (
    <>
      {(merged.data?.data ?? []).map((e) =>
        e.type === "git.merged" ? (
          <div key={e.data.sha} className="small" data-testid="landed-commit">
            <code>{e.data.sha.slice(0, 10)}</code> on <code>{e.data.target}</code>{" "}
            <span className="muted">({e.data.strategy})</span>
          </div>
        ) : null,
      )}
    </>
  );
}

function Resolve({ run }: { run: Run }) {
  const qc = useQueryClient();
  type Action = BodyOf<"/api/runs/{run_ref}/resolve", "post">["action"];
  // `?action=` from the run menu (the phone's merge / pull request / discard): chosen, in view.
  const wanted = useLocation().search.get("action");
  const [action, setAction] = useState<Action>(() => (wanted && ACTIONS.has(wanted) ? (wanted as Action) : "merge"));
  const form = useRef<HTMLFormElement>(null);
  useEffect(() => {
    if (wanted) form.current?.scrollIntoView({ block: "start" });
  }, [wanted]);
  const [target, setTarget] = useState("");
  const [message, setMessage] = useState("");
  // The server's question before landing into a branch checked out in the user's own worktree
  // (GET land-check); the landing waits for a second, explicit click.
  const [ask, setAsk] = useState<string | null>(null);
  const [checking, setChecking] = useState(false);
  const [checkError, setCheckError] = useState<unknown>(null);
  const resolve = useMutation({
    mutationFn: () =>
      api.post(
        "/api/runs/{run_ref}/resolve",
        {
          action,
          target_branch: target.trim() || undefined,
          message: message.trim() || undefined,
          title: action === "create_pr" ? message.trim() || undefined : undefined,
        },
        { path: { run_ref: run.id } },
      ),
    onSettled: () => {
      void qc.invalidateQueries({ queryKey: ["run"] });
      void qc.invalidateQueries({ queryKey: ["review"] });
    },
  });
  // A merge-tree conflict changed nothing; a worktree left mid-merge is said by the server's
  // own message (ErrorNote), never as "nothing was changed".
  const conflicts =
    resolve.error instanceof ApiError && resolve.error.status === 409 && !resolve.error.problem.unfinished_merge
      ? (resolve.error.problem.conflicts ?? [])
      : [];
  const outcome = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (resolve.error || resolve.isSuccess) outcome.current?.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }, [resolve.error, resolve.isSuccess]);
  if (RESOLVED_OK.has(run.status))
    return (
      <div className="card" data-testid="resolved">
        Resolved: <strong>{run.resolution}</strong>
        <Landed run={run} />
        {run.pull_request && (
          <>
            {" "}
            · <a href={run.pull_request.url}>PR #{run.pull_request.number}</a>
          </>
        )}
      </div>
    );
  const labels: Record<string, string> = {
    merge: "Merge",
    squash: "Squash and merge",
    rebase: "Rebase and merge",
    create_pr: "Open a pull request",
    discard: "Discard the changes",
    agent_merge: "Let the agent resolve conflicts",
  };
  return (
    <form
      ref={form}
      className="card stack resolve"
      aria-label="Resolve"
      onSubmit={(e) => {
        e.preventDefault();
        if (action === "discard" && !confirm("Discard this run's changes and branch?")) return;
        if (action !== "merge" && action !== "squash" && action !== "rebase") return resolve.mutate();
        setChecking(true);
        setCheckError(null);
        api
          .get("/api/runs/{run_ref}/land-check", {
            path: { run_ref: run.id },
            query: { target_branch: target.trim() || undefined },
          })
          // Conflicts first: the server's 409 lists them and changes nothing; no question then.
          .then((check) => (check.confirm && !check.conflicts ? setAsk(check.confirm) : resolve.mutate()))
          .catch(setCheckError)
          .finally(() => setChecking(false));
      }}
    >
      <h3>Land the changes</h3>
      <div className="segmented" role="radiogroup" aria-label="Action">
        {Object.keys(labels).map((a) => (
          <label key={a} className={action === a ? "on" : ""}>
            <input
              type="radio"
              name="action"
              value={a}
              checked={action === a}
              onChange={() => {
                setAction(a as typeof action);
                setAsk(null);
              }}
            />
            {labels[a]}
          </label>
        ))}
      </div>
      {action !== "discard" && (
        <label>
          Target branch
          <input
            value={target}
            onChange={(e) => {
              setTarget(e.target.value);
              setAsk(null);
            }}
            placeholder="the repository's default branch"
          />
        </label>
      )}
      {action !== "discard" && action !== "rebase" && action !== "agent_merge" && (
        <label>
          {action === "create_pr" ? "Title" : "Commit message"}
          <input value={message} onChange={(e) => setMessage(e.target.value)} placeholder="generated from the run" />
        </label>
      )}
      {conflicts.length > 0 && (
        <div className="error" data-testid="conflicts">
          Conflicts — nothing was changed:
          <ul>
            {conflicts.map((c) => (
              <li key={c}>
                <code>{c}</code>
              </li>
            ))}
          </ul>
          Rebase the branch, or choose "Let the agent resolve conflicts".
        </div>
      )}
      {!conflicts.length && <ErrorNote error={resolve.error ?? checkError} />}
      {ask && (
        <div className="warn-note stack" role="alertdialog" aria-label="Confirm landing" data-testid="confirm-land">
          <span>{ask}</span>
          <div className="row">
            <button
              type="button"
              className="primary"
              onClick={() => {
                setAsk(null);
                resolve.mutate();
              }}
            >
              Yes, {(labels[action] ?? action).toLowerCase()}
            </button>
            <button type="button" onClick={() => setAsk(null)}>
              Cancel
            </button>
          </div>
        </div>
      )}
      {resolve.isSuccess && <div className="ok-note">Done: {resolve.data.resolution ?? resolve.data.status}</div>}
      <div ref={outcome} />
      <button
        className={action === "discard" ? "danger big" : "primary big"}
        type="submit"
        disabled={resolve.isPending || checking || ask !== null}
      >
        {labels[action]}
      </button>
    </form>
  );
}

function Checkpoints({ run }: { run: Run }) {
  const qc = useQueryClient();
  const list = useQuery({
    queryKey: ["review", run.id, "checkpoints"],
    queryFn: () => api.get("/api/runs/{run_ref}/checkpoints", { path: { run_ref: run.id } }),
  });
  const restore = useMutation({
    mutationFn: (c: Checkpoint) =>
      api.post("/api/checkpoints/{checkpoint_id}/restore", undefined, { path: { checkpoint_id: c.id } }),
    onSettled: () => qc.invalidateQueries({ queryKey: ["review"] }),
  });
  const create = useMutation({
    mutationFn: () => api.post("/api/runs/{run_ref}/checkpoints", {}, { path: { run_ref: run.id } }),
    onSettled: () => qc.invalidateQueries({ queryKey: ["review"] }),
  });
  const items = list.data?.data ?? [];
  const done = run.status === "completed";
  return (
    <div className="card stack" data-testid="checkpoints">
      <div className="row">
        <h3 className="grow">Checkpoints</h3>
        {!done && (
          <button type="button" onClick={() => create.mutate()} disabled={create.isPending}>
            Save checkpoint
          </button>
        )}
      </div>
      <ErrorNote error={restore.error ?? create.error} />
      {restore.isSuccess && <div className="ok-note">Restored. The state before was saved as a checkpoint.</div>}
      {items.length === 0 ? (
        <div className="muted">None yet: one is taken at the end of every turn.</div>
      ) : (
        <ul className="checkpoints">
          {[...items].reverse().map((c) => (
            <li key={c.id} data-testid="checkpoint" data-number={c.number}>
              <div className="grow">
                <strong>#{c.number}</strong> {checkpointLabel(c)}
                <div className="muted small">
                  {c.diff_stats.files} file{c.diff_stats.files === 1 ? "" : "s"} · +{c.diff_stats.insertions} −
                  {c.diff_stats.deletions} · {ago(c.created_at)}
                </div>
              </div>
              <button
                type="button"
                hidden={done}
                disabled={restore.isPending}
                onClick={() => {
                  if (confirm(`Put the worktree back to checkpoint #${c.number}?`)) restore.mutate(c);
                }}
              >
                Restore
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export default function Review({ run }: { run: Run }) {
  const wide = useWide();
  const [split, setSplit] = useState<boolean | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  // Discarded: the worktree and branch are gone, so there is nothing to ask the server for.
  const discarded = run.resolution === "discarded";
  const diff = useQuery({
    queryKey: ["review", run.id, "diff"],
    queryFn: () => api.get("/api/runs/{run_ref}/diff", { path: { run_ref: run.id }, query: { format: "json" } }),
    retry: false,
    enabled: !discarded,
  });
  const files = diff.data?.data ?? [];
  const shown = selected ? files.filter((f) => f.path === selected) : files;
  const isSplit = split ?? wide;
  if (discarded)
    return (
      <div className="review pad">
        <div className="card" data-testid="discarded">
          <strong>Discarded.</strong> The worktree and the branch were removed; there are no changes or checkpoints
          left to review. {run.status_reason ? <span className="muted">({run.status_reason})</span> : null}
        </div>
      </div>
    );
  // On a phone the diff comes first, then checkpoints, then the landing form.
  const landing = (
    <>
      <Checkpoints run={run} />
      <Resolve run={run} />
    </>
  );
  return (
    <div className="review">
      <div className="review-files">
        {Object.values((run as Run & { worktrees?: Record<string, string> }).worktrees ?? {}).map((path) => (
          <div key={path} className="muted small ellipsis" data-testid="worktree-path" title={path}>
            Worktree: <code>{path}</code>
          </div>
        ))}
        <div className="row">
          <h3 className="grow">
            {files.length} changed file{files.length === 1 ? "" : "s"}
          </h3>
          <button type="button" className="small" onClick={() => setSplit(!isSplit)} aria-pressed={isSplit}>
            {isSplit ? "Unified" : "Split"}
          </button>
        </div>
        <ul className="file-list" data-testid="file-list">
          {files.length > 1 && (
            <li>
              <button type="button" className={`link${selected === null ? " on" : ""}`} onClick={() => setSelected(null)}>
                All files
              </button>
            </li>
          )}
          {files.map((f) => (
            <li key={`${f.repo_id ?? ""}${f.path}`}>
              <button type="button" className={`link${selected === f.path ? " on" : ""}`} onClick={() => setSelected(f.path)}>
                <span className={`fstatus ${f.status}`}>{f.status[0]?.toUpperCase()}</span> {f.path}
              </button>
              <span className="diffstat">
                <span className="add">+{f.additions}</span> <span className="del">−{f.deletions}</span>
              </span>
            </li>
          ))}
        </ul>
        {wide && landing}
      </div>
      <div className="review-diff">
        <ErrorNote error={diff.error} />
        {diff.isPending ? (
          <Spinner />
        ) : shown.length === 0 ? (
          <Empty>No changes.</Empty>
        ) : (
          shown.map((f) => (
            <section key={f.path} className="file-diff">
              <h4 className="file-head">
                {f.old_path && f.old_path !== f.path ? `${f.old_path} → ` : ""}
                {f.path}
              </h4>
              <DiffView file={f} split={isSplit} />
            </section>
          ))
        )}
      </div>
      {!wide && <div className="review-files">{landing}</div>}
    </div>
  );
}

/** "End of turn 2", "Before restoring checkpoint 1", or a manual description (never "turn · turn 1"). */
function checkpointLabel(c: { kind: string; turn?: number | null; description?: string | null }): string {
  if (c.description) return c.turn ? `${c.description} (turn ${c.turn})` : c.description;
  if (c.kind === "turn") return c.turn ? `End of turn ${c.turn}` : "End of a turn";
  return c.kind === "manual" ? "Saved by hand" : c.kind.replace(/_/g, " ");
}
