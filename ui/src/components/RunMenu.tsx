// The run page's one action menu (issue 14). On the phone the header keeps only the title, the
// status and this menu (plus one line of live figures, the task chip and the one primary control),
// so the transcript gets the screen: the tabs, landing (merge, pull request, discard → the Changes
// tab with that action chosen), share, terminal, the run controls and the status timeline all
// live here. On a wide screen the header is unchanged and the menu holds only
// what has no place there (share, timeline).
import { useMutation } from "@tanstack/react-query";
import { useEffect, useRef, useState, type ReactNode } from "react";
import { api } from "../api/client";
import type { Run } from "../api/models";
import type { StatusStep } from "../lib/fold";
import { duration } from "../lib/format";
import { navigate } from "../lib/router";
import { ErrorNote } from "./ui";

const LANDABLE = new Set(["review"]);

/** "waiting" with its reason reads as what it is: waiting for an approval. */
function label(step: StatusStep): string {
  if (step.to === "waiting") return "waiting approval";
  return step.to;
}

/** created → preparing → running → waiting approval → … with the time each step began and how
 * long the run stayed in it (the last step: until now). */
export function StatusTimeline({ steps }: { steps: StatusStep[] }) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, []);
  if (!steps.length) return <div className="muted small">No status changes yet.</div>;
  return (
    <ol className="status-timeline" data-testid="status-timeline" aria-label="Status timeline">
      {steps.map((s, i) => {
        const next = steps[i + 1];
        const start = new Date(s.ts).getTime();
        const end = next ? new Date(next.ts).getTime() : now;
        return (
          <li key={`${s.ts}-${i}`} className={`st st-${s.to}`}>
            <span className="st-dot" aria-hidden="true" />
            <span className="st-name">{label(s)}</span>
            <time className="muted small" dateTime={s.ts} title={s.ts}>
              {new Date(s.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })}
            </time>
            <span className="muted small st-for">{next ? duration(end - start) : ""}</span>
            {s.reason && <span className="muted small st-why">{s.reason}</span>}
          </li>
        );
      })}
    </ol>
  );
}

function Item({ children, onClick, phone, testId }: { children: ReactNode; onClick: () => void; phone?: boolean; testId?: string }) {
  return (
    <button type="button" role="menuitem" className={`menu-item${phone ? " phone-only" : ""}`} onClick={onClick} data-testid={testId}>
      {children}
    </button>
  );
}

export function RunMenu({
  run,
  tab,
  statuses,
  controls,
}: {
  run: Run;
  tab: "transcript" | "review";
  statuses: StatusStep[];
  /** the run controls (pause, resume, cancel, trust), shown in the menu on the phone */
  controls: ReactNode;
}) {
  const [open, setOpen] = useState(false);
  const [timeline, setTimeline] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  const share = useMutation({
    mutationFn: () => api.post("/api/runs/{run_ref}/share", {}, { path: { run_ref: run.id } }),
  });
  useEffect(() => {
    if (!open) return;
    const close = (e: MouseEvent | KeyboardEvent) => {
      if (e instanceof KeyboardEvent ? e.key === "Escape" : !box.current?.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", close);
    document.addEventListener("keydown", close);
    return () => {
      document.removeEventListener("mousedown", close);
      document.removeEventListener("keydown", close);
    };
  }, [open]);
  const go = (to: string) => {
    setOpen(false);
    navigate(to);
  };
  const base = `/runs/${run.number}`;
  const files = run.diff_stats.files;
  return (
    <div className="run-menu" ref={box}>
      <button
        type="button"
        className="menu-button"
        aria-haspopup="menu"
        aria-expanded={open}
        aria-label="Run actions"
        data-testid="run-menu"
        onClick={() => setOpen((v) => !v)}
      >
        ⋯
      </button>
      {open && (
        <div className="menu" role="menu" aria-label="Run actions">
          <div className="menu-meta muted small phone-only">
            {run.provider}
            {run.model ? ` · ${run.model}` : ""}
            {run.branch && (
              <>
                {" · "}
                <code className="break">{run.branch}</code>
              </>
            )}
          </div>
          {tab === "review" ? (
            <Item phone onClick={() => go(base)}>
              Transcript
            </Item>
          ) : (
            <Item phone onClick={() => go(`${base}/review`)} testId="menu-diff">
              Changes — diff{files ? ` (${files} file${files === 1 ? "" : "s"})` : ""}
            </Item>
          )}
          {LANDABLE.has(run.status) && (
            <>
              <Item phone onClick={() => go(`${base}/review?action=merge`)} testId="menu-merge">
                Merge…
              </Item>
              <Item phone onClick={() => go(`${base}/review?action=create_pr`)} testId="menu-pr">
                Open a pull request…
              </Item>
              <Item phone onClick={() => go(`${base}/review?action=discard`)} testId="menu-discard">
                Discard…
              </Item>
            </>
          )}
          <Item phone onClick={() => go(`${base}/terminal`)}>
            Terminal
          </Item>
          <Item onClick={() => share.mutate()} testId="menu-share">
            Share a read-only link
          </Item>
          {share.data && (
            <div className="menu-share small" data-testid="share-link">
              <input readOnly value={share.data.url} aria-label="Share link" onFocus={(e) => e.currentTarget.select()} />
              <span className="muted">Expires {new Date(share.data.expires_at).toLocaleString()}</span>
            </div>
          )}
          <ErrorNote error={share.error} />
          <Item
            onClick={() => {
              setOpen(false);
              setTimeline((v) => !v);
            }}
            testId="menu-timeline"
          >
            {timeline ? "Hide" : "Show"} the status timeline
          </Item>
          <div className="phone-only menu-row">{controls}</div>
        </div>
      )}
      {timeline && (
        <div className="menu timeline-panel" role="region" aria-label="Status timeline">
          <div className="row gap">
            <strong className="grow">Status timeline</strong>
            <button type="button" className="small" onClick={() => setTimeline(false)} aria-label="Close the timeline">
              ✕
            </button>
          </div>
          <StatusTimeline steps={statuses} />
        </div>
      )}
    </div>
  );
}
