// Server-sent events over fetch, so the stream can carry Last-Event-ID and the auth header
// (EventSource can do neither on its first connection). Reconnects after any drop — including
// a server restart — with Last-Event-ID set to the last id received, so nothing is lost; the
// consumer deduplicates by event id, so nothing is shown twice.
import { authHeaders, unauthorized } from "../api/client";
import type { RunEvent } from "../api/models";

export interface StreamHandle {
  close(): void;
}

export interface StreamOptions {
  url: string;
  /** Resume after this event id. */
  after: number;
  onEvents(events: RunEvent[]): void;
  onState?(state: "connecting" | "open" | "retrying" | "ended"): void;
  /** Stop when the server ends the stream by itself (until_idle). */
  endOnClose?: boolean;
}

export function openStream(opts: StreamOptions): StreamHandle {
  let last = opts.after;
  let closed = false;
  let controller: AbortController | null = null;
  let delay = 250;

  const run = async (): Promise<void> => {
    while (!closed) {
      controller = new AbortController();
      opts.onState?.("connecting");
      let endedByServer = false;
      try {
        const resp = await fetch(opts.url, {
          headers: { Accept: "text/event-stream", "Last-Event-ID": String(last), ...authHeaders() },
          credentials: "same-origin",
          cache: "no-store",
          signal: controller.signal,
        });
        if (resp.status === 401) {
          closed = true; // retrying cannot help: sign in again
          unauthorized();
          return;
        }
        if (!resp.ok || !resp.body) throw new Error(`stream: HTTP ${resp.status}`);
        opts.onState?.("open");
        delay = 250;
        await readFrames(resp.body, (batch) => {
          const fresh = batch.filter((e) => e.id > last);
          if (fresh.length) {
            last = fresh[fresh.length - 1]!.id;
            opts.onEvents(fresh);
          }
        });
        endedByServer = true;
      } catch {
        if (closed) return;
      }
      if (closed) return;
      if (endedByServer && opts.endOnClose) {
        opts.onState?.("ended");
        return;
      }
      opts.onState?.("retrying");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 4000);
    }
  };
  void run();
  return {
    close() {
      closed = true;
      controller?.abort();
    },
  };
}

/** Parse SSE frames; hand over events in batches (one per network chunk). */
async function readFrames(
  body: ReadableStream<Uint8Array>,
  onBatch: (events: RunEvent[]) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    const batch: RunEvent[] = [];
    let cut: number;
    while ((cut = frameEnd(buffer)) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^(\r?\n){1,2}/, "");
      const event = parseFrame(frame);
      if (event) batch.push(event);
    }
    if (batch.length) onBatch(batch);
  }
}

function frameEnd(buffer: string): number {
  const a = buffer.indexOf("\n\n");
  const b = buffer.indexOf("\r\n\r\n");
  if (a < 0) return b;
  if (b < 0) return a;
  return Math.min(a, b);
}

function parseFrame(frame: string): RunEvent | null {
  const data: string[] = [];
  for (const line of frame.split(/\r?\n/)) {
    if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return null;
  try {
    const event = JSON.parse(data.join("\n")) as RunEvent;
    return typeof event.id === "number" ? event : null;
  } catch {
    return null;
  }
}
