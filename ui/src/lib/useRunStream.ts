// A run's live transcript: replays the whole event log over SSE from the start, then follows it.
// Events are deduplicated by id (the stream resumes with Last-Event-ID after any drop) and folded
// incrementally; React sees at most one update per animation frame. Until the replay has caught
// up, the page shows the snapshot's tail (the newest 200 events), so a long run opens at once.
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { api } from "../api/client";
import type { RunEvent } from "../api/models";
import { apply, emptyFold, type FoldState, type Item, type LiveUsage, type StatusStep } from "./fold";
import { openStream } from "./sse";

export type Connection = "connecting" | "open" | "retrying" | "ended";

const REFRESH_TYPES = new Set([
  "run.status",
  "turn.completed",
  "usage",
  "approval.requested",
  "approval.resolved",
  "checkpoint.created",
  "file.changed",
  "git.committed",
  "git.merged",
  "git.pushed",
  "pr.created",
]);

export interface RunStream {
  items: Item[];
  tasks: FoldState["tasks"];
  count: number;
  lastId: number;
  connection: Connection;
  /** false while the snapshot's tail stands in for a replay still under way */
  complete: boolean;
  /** the status timeline, from the event log (complete once the replay has caught up) */
  statuses: StatusStep[];
  /** tokens and cost summed from `usage` events as they arrive (during a turn, too) */
  usage: LiveUsage;
}

/** `runRef`: the run's id or number (the stream and snapshot routes take either). */
export function useRunStream(runRef: string): RunStream {
  const runId = runRef;
  const qc = useQueryClient();
  const fold = useRef<FoldState>(emptyFold());
  const [view, setView] = useState<RunStream>({
    items: [],
    tasks: [],
    count: 0,
    lastId: 0,
    connection: "connecting",
    complete: false,
    statuses: [],
    usage: emptyFold().usage,
  });

  useEffect(() => {
    if (!runId) return;
    fold.current = emptyFold();
    let preview: FoldState | null = null;
    let previewUntil = 0;
    let frame = 0;
    let marked = false;
    let refreshTimer: ReturnType<typeof setTimeout> | undefined;
    let connection: Connection = "connecting";
    const publish = () => {
      frame = 0;
      const caughtUp = fold.current.lastId >= previewUntil;
      const f = preview && !caughtUp ? preview : fold.current;
      if (caughtUp) preview = null;
      if (caughtUp && !marked) {
        marked = true; // for bench/bench_ui.py: when the whole log was on screen
        performance.mark("codeyard:transcript-complete");
      }
      setView({
        items: f.items.slice(),
        tasks: f.tasks,
        count: f.count,
        lastId: f.lastId,
        connection,
        complete: f === fold.current,
        statuses: fold.current.statuses,
        usage: fold.current.usage,
      });
    };
    const schedule = () => {
      if (!frame) frame = requestAnimationFrame(publish);
    };
    const refresh = () => {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => {
        void qc.invalidateQueries({ queryKey: ["run"] });
        void qc.invalidateQueries({ queryKey: ["approvals"] });
        void qc.invalidateQueries({ queryKey: ["review"] });
        void qc.invalidateQueries({ queryKey: ["runs"] });
      }, 150);
    };
    const snapshot = new AbortController();
    api
      .get("/api/runs/{run_ref}/snapshot", { path: { run_ref: runId }, signal: snapshot.signal })
      .then((snap) => {
        if (fold.current.lastId >= snap.last_event_id) return;
        preview = apply(emptyFold(), snap.events);
        previewUntil = snap.last_event_id;
        schedule();
      })
      .catch(() => {
        /* the stream alone is enough */
      });
    const handle = openStream({
      url: `/api/runs/${encodeURIComponent(runId)}/events/stream`,
      after: 0,
      onEvents(events: RunEvent[]) {
        if (!fold.current.count) performance.mark("codeyard:first-events");
        apply(fold.current, events);
        if (events.some((e) => REFRESH_TYPES.has(e.type))) refresh();
        schedule();
      },
      onState(state) {
        if (state === "open") performance.mark("codeyard:stream-open");
        connection = state;
        if (state === "open") refresh(); // catch up on anything that changed while away
        schedule();
      },
    });
    return () => {
      snapshot.abort();
      handle.close();
      if (frame) cancelAnimationFrame(frame);
      clearTimeout(refreshTimer);
    };
  }, [runId, qc]);

  return view;
}
