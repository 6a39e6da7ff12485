import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, useRef, useState } from "react";
import { api } from "../api/client";
import type { Run } from "../api/models";
import { Transcript } from "../components/Transcript";
import { ErrorNote, Link, Spinner, StatusBadge } from "../components/ui";
import { ACTIVE, duration, money, tokens } from "../lib/format";
import { useRunStream } from "../lib/useRunStream";
import { MicButton } from "../components/MicButton";
import { RunMenu } from "../components/RunMenu";

const Review = lazy(() => import("./Review"));

function Controls({ run }: { run: Run }) {
  const qc = useQueryClient();
  const act = useMutation({
    mutationFn: (action: "start" | "pause" | "resume" | "cancel") =>
      api.post(`/api/runs/{run_ref}/${action}` as "/api/runs/{run_ref}/pause", undefined, { path: { run_ref: run.id } }),
    onSettled: () => qc.invalidateQueries({ queryKey: ["run"] }),
  });
  const trust = useMutation({
    mutationFn: () => api.post("/api/runs/{run_ref}/trust", undefined, { path: { run_ref: run.id } }),
    onSettled: () => {
      void qc.invalidateQueries({ queryKey: ["run"] });
      void qc.invalidateQueries({ queryKey: ["approvals"] });
    },
  });
  const s = run.status;
  return (
    <div className="controls">
      {s === "draft" && (
        <button className="primary" onClick={() => act.mutate("start")}>
          Start
        </button>
      )}
      {(s === "running" || s === "waiting") && <button onClick={() => act.mutate("pause")}>Pause</button>}
      {run.pending_approvals > 0 && (
        <button
          title="Approve this run's pending and future asks (hard gates still ask)"
          onClick={() => {
            if (confirm("Trust this run? Its asks are approved automatically; hard gates still ask.")) trust.mutate();
          }}
        >
          Trust run
        </button>
      )}
      {(s === "paused" || s === "interrupted" || s === "failed") && (
        <button className="primary" onClick={() => act.mutate("resume")}>
          Resume
        </button>
      )}
      {(ACTIVE.has(s) || s === "paused") && (
        <button
          className="danger"
          onClick={() => {
            if (confirm(`Cancel run #${run.number}?`)) act.mutate("cancel");
          }}
        >
          Cancel
        </button>
      )}
      <ErrorNote error={act.error ?? trust.error} />
    </div>
  );
}

function Composer({ run }: { run: Run }) {
  const qc = useQueryClient();
  const [text, setText] = useState("");
  const [images, setImages] = useState<string[]>([]);
  const ref = useRef<HTMLTextAreaElement>(null);
  const send = useMutation({
    mutationFn: (message: string) =>
      api.post(
        "/api/runs/{run_ref}/messages",
        { text: message, ...(images.length ? { images } : {}) },
        { path: { run_ref: run.id } },
      ),
    onSuccess: () => {
      setText("");
      setImages([]);
      void qc.invalidateQueries({ queryKey: ["run"] });
    },
  });
  // Pasted or dropped images ride along with the next message (providers that take them).
  const addFiles = (files: Iterable<File>) => {
    for (const file of files) {
      if (!file.type.startsWith("image/")) continue;
      const reader = new FileReader();
      reader.onload = () => setImages((list) => [...list, String(reader.result)].slice(0, 5));
      reader.readAsDataURL(file);
    }
  };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.key === "m" && !/INPUT|TEXTAREA|SELECT/.test(t.tagName) && !e.metaKey && !e.ctrlKey) {
        e.preventDefault();
        ref.current?.focus();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
  // A completed run whose pull request is open still takes turns (issue 21): pushed to the PR.
  const pr = run.pull_request as { state?: string; others?: ({ state?: string } | null)[] } | null;
  const prOpen = !!pr && [pr, ...(pr.others ?? [])].some((p) => p?.state === "open");
  const disabled = (run.status === "completed" && !prOpen) || run.status === "draft";
  // Short enough for one line of the composer at 390 px (a wrapped placeholder is cut off);
  // the longer explanation is the field's title.
  const [hint, explained] =
    run.status === "running" || run.status === "waiting"
      ? ["Steer the agent…", "Sent to the agent while it works"]
      : run.status === "review"
        ? ["Ask for changes (new turn)…", "Starts a new turn in the same session and worktree"]
        : run.status === "completed"
          ? ["Changes for the PR…", "Starts a new turn; its commit is pushed to the pull request"]
          : ["Message the agent…", "Starts a new turn in the same session and worktree"];
  return (
    <form
      className="composer"
      onSubmit={(e) => {
        e.preventDefault();
        if (text.trim()) send.mutate(text.trim());
      }}
    >
      <ErrorNote error={send.error} />
      {images.length > 0 && (
        <div className="attached" data-testid="attached-images">
          {images.map((src, i) => (
            <button type="button" key={i} title="Remove" onClick={() => setImages((l) => l.filter((_, j) => j !== i))}>
              <img src={src} alt={`attached image ${i + 1}`} height={40} />
            </button>
          ))}
        </div>
      )}
      <div className="composer-row">
        <textarea
          ref={ref}
          rows={1}
          value={text}
          disabled={disabled}
          placeholder={disabled ? "This run is finished." : hint}
          title={disabled ? undefined : explained}
          aria-label="Message"
          onChange={(e) => setText(e.target.value)}
          onPaste={(e) => addFiles(Array.from(e.clipboardData.files))}
          onDrop={(e) => {
            if (e.dataTransfer.files.length) {
              e.preventDefault();
              addFiles(Array.from(e.dataTransfer.files));
            }
          }}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey && window.matchMedia("(hover: hover)").matches) {
              e.preventDefault();
              if (text.trim()) send.mutate(text.trim());
            }
          }}
        />
        {!disabled && <MicButton runId={run.id} onText={(t) => setText((v) => (v ? `${v} ${t}` : t))} />}
        <button className="primary" type="submit" disabled={disabled || send.isPending || !text.trim()}>
          Send
        </button>
      </div>
    </form>
  );
}

export function RunDetail({ runRef, tab }: { runRef: string; tab: "transcript" | "review" }) {
  const run = useQuery({
    queryKey: ["run", runRef],
    queryFn: () => api.get("/api/runs/{run_ref}", { path: { run_ref: runRef } }),
    refetchInterval: (q) => (q.state.data && ACTIVE.has(q.state.data.status) ? 5000 : false),
  });
  const r = run.data;
  const stream = useRunStream(runRef);
  const approvals = useQuery({
    queryKey: ["approvals", "run", r?.id],
    queryFn: () => api.get("/api/approvals", { query: { status: "pending", run_id: r!.id } }),
    enabled: !!r,
    refetchInterval: 5000,
  });
  const pending = approvals.data?.data ?? [];
  const [showTasks, setShowTasks] = useState(false);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.key !== "a" || /INPUT|TEXTAREA|SELECT/.test(t.tagName) || e.metaKey || e.ctrlKey) return;
      const button = document.querySelector<HTMLButtonElement>(".approval.pending [data-approve]");
      if (button) {
        e.preventDefault();
        button.click();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  if (run.error) return <ErrorNote error={run.error} />;
  if (!r) return <Spinner />;
  const files = r.diff_stats.files;
  // Live: summed from the usage events as they stream in (mid-turn too), once the replay has
  // caught up; until then the run's own totals.
  const live = stream.complete && stream.count > 0;
  const used = {
    input: live ? stream.usage.input : r.usage.input_tokens,
    output: live ? stream.usage.output : r.usage.output_tokens,
    cost: live && stream.usage.cost !== null ? stream.usage.cost : r.usage.cost_usd,
  };
  const tasksToggle =
    stream.tasks.length > 0 ? (
      // A toggle for the task panel, not a tab: it looks like a chip and says it expands.
      <button
        type="button"
        className={`chip tasks-chip${showTasks ? " on" : ""}`}
        aria-expanded={showTasks}
        data-testid="tasks-toggle"
        onClick={() => setShowTasks((v) => !v)}
      >
        {stream.tasks.filter((t) => t.status === "completed").length}/{stream.tasks.length} tasks {showTasks ? "▴" : "▾"}
      </button>
    ) : null;
  return (
    <div className="run-page">
      <header className="run-head">
        <div className="run-head-top">
          <Link to="/" className="back" title="All runs">
            ‹
          </Link>
          <h1 className="grow ellipsis" title={r.title}>
            <span className="muted">#{r.number}</span> {r.title}
          </h1>
          <StatusBadge status={r.status} reason={r.status_reason} resolution={r.resolution} />
          <RunMenu
            run={r}
            tab={tab}
            statuses={stream.statuses}
            controls={<Controls run={r} />}
          />
        </div>
        <div className="run-head-meta muted small">
          <span className="wide-only">
            {r.provider}
            {r.model ? ` · ${r.model}` : ""}
          </span>
          {r.branch && <code className="ellipsis wide-only">{r.branch}</code>}
          <span data-testid="run-cost" title={`${used.input} in / ${used.output} out`} aria-live="polite">
            {money(used.cost)}
            {r.budget_usd !== null ? ` of ${money(r.budget_usd)}` : ""} · {tokens(used.input)} in · {tokens(used.output)} out
          </span>
          {(r.status === "running" || r.status === "preparing") && <Working count={stream.count} />}
          <span className={`conn ${stream.connection}`} data-testid="connection">
            {stream.connection === "open" ? "live" : stream.connection === "ended" ? "" : "reconnecting…"}
          </span>
        </div>
        <div className="run-head-bar">
          <div className="tabs" role="tablist">
            <Link to={`/runs/${r.number}`} className={`tabbtn${tab === "transcript" ? " on" : ""}`}>
              Transcript
            </Link>
            <Link to={`/runs/${r.number}/review`} className={`tabbtn${tab === "review" ? " on" : ""}`} testId="tab-review">
              Changes{files ? ` (${files})` : ""}
            </Link>
            <Link to={`/runs/${r.number}/terminal`} className="tabbtn" testId="tab-terminal">
              Terminal
            </Link>
            {tasksToggle}
          </div>
          <Controls run={r} />
        </div>
        {showTasks && (
          <ul className="tasks panel">
            {stream.tasks.map((t, i) => (
              <li key={i} className={`task ${t.status}`}>
                {t.status === "completed" ? "☑" : t.status === "in_progress" ? "◐" : "☐"} {t.content}
              </li>
            ))}
          </ul>
        )}
      </header>
      {tab === "transcript" ? (
        <>
          <Transcript items={stream.items} lastId={stream.lastId} count={stream.count} complete={stream.complete} />
          {pending.length > 0 && (
            <div className="pending-note small" data-testid="pending-note">
              {pending.length} approval{pending.length > 1 ? "s" : ""} waiting
            </div>
          )}
          <Composer run={r} />
        </>
      ) : (
        <Suspense fallback={<Spinner />}>
          <Review run={r} />
        </Suspense>
      )}
    </div>
  );
}

/** While the agent works: a pulse and the time since its last event (a long step shows). */
function Working({ count }: { count: number }) {
  const [since, setSince] = useState(() => Date.now());
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => setSince(Date.now()), [count]);
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, []);
  const quiet = Math.max(0, now - since);
  return (
    <span className="working" data-testid="working" role="status">
      <span className="pulse" aria-hidden="true" /> working
      {quiet >= 5000 ? ` · ${duration(quiet)} since the last step` : ""}
    </span>
  );
}
