// Folds a run's events (ascending, unique ids) into transcript items. Pure and incremental:
// `apply` takes the state and new events with ids above every id already folded.
import type { Approval, RunEvent, Task } from "../api/models";

export type Item =
  | { key: string; kind: "prompt"; text: string; turn: number; source: string }
  | { key: string; kind: "assistant"; text: string; streaming: boolean }
  | { key: string; kind: "thinking"; text: string }
  | { key: string; kind: "user"; text: string; author: string }
  | {
      key: string;
      kind: "tool";
      callId: string;
      tool: string;
      toolKind: string;
      title: string;
      input: unknown;
      result?: { ok: boolean; output: unknown; error: unknown; exit_code?: number | null; duration_ms?: number };
      decision?: string;
      approvalId?: string;
      /** The operator's answer, once its approval card has folded into this tool card. */
      answer?: { status: string; by: string; reason: string | null };
    }
  | { key: string; kind: "approval"; approval: Approval }
  | { key: string; kind: "tasks"; tasks: Task[] }
  | { key: string; kind: "status"; from: string; to: string; reason: string | null }
  | { key: string; kind: "turn"; turn: number; cost: number | null; duration: number | null; stop: string | null }
  | { key: string; kind: "note"; text: string; tone: "info" | "error" | "git" };

/** One step of the run's status timeline: the status entered, when, and why. */
export interface StatusStep {
  to: string;
  ts: string;
  reason: string | null;
}

/** Tokens and dollars summed from the `usage` events (increments) as they stream in. */
export interface LiveUsage {
  input: number;
  output: number;
  cost: number | null;
}

export interface FoldState {
  items: Item[];
  /** index into items by message id / call id / approval id */
  index: Map<string, number>;
  tasks: Task[];
  lastId: number;
  count: number;
  /** created → preparing → running → … with times (from `run.created` and `run.status`) */
  statuses: StatusStep[];
  usage: LiveUsage;
}

export function emptyFold(): FoldState {
  return {
    items: [],
    index: new Map(),
    tasks: [],
    lastId: 0,
    count: 0,
    statuses: [],
    usage: { input: 0, output: 0, cost: null },
  };
}

function str(v: unknown): string {
  return typeof v === "string" ? v : v === undefined || v === null ? "" : JSON.stringify(v);
}

/** Apply events in order. Mutates and returns `state` (callers copy `items` for React). */
export function apply(state: FoldState, events: RunEvent[]): FoldState {
  const { items, index } = state;
  const replace = (at: number, item: Item) => {
    items[at] = item;
  };
  for (const e of events) {
    if (e.id <= state.lastId) continue;
    state.lastId = e.id;
    state.count++;
    // Destructured together, `type` narrows `d` to that event type's payload (generated from
    // the server's event models).
    const { type, data: d } = e;
    const key = `e${e.id}`;
    switch (type) {
      case "turn.started":
        items.push({
          key,
          kind: "prompt",
          text: str(d.prompt),
          turn: Number(d.turn ?? 0),
          source: str(d.source),
        });
        break;
      case "agent.delta":
      case "agent.message": {
        const mid = `m:${str(d.message_id) || key}`;
        const at = index.get(mid);
        const prev = at === undefined ? undefined : items[at];
        if (prev && prev.kind === "assistant") {
          replace(at!, {
            ...prev,
            text: type === "agent.message" ? str(d.text) : prev.text + str(d.text),
            streaming: type === "agent.delta",
          });
        } else {
          index.set(mid, items.length);
          items.push({ key, kind: "assistant", text: str(d.text), streaming: type === "agent.delta" });
        }
        break;
      }
      case "agent.thinking":
        items.push({ key, kind: "thinking", text: str(d.text) });
        break;
      case "user.message":
        items.push({ key, kind: "user", text: str(d.text), author: str(d.author) });
        break;
      case "tool.call": {
        const callId = str(d.call_id) || key;
        index.set(`c:${callId}`, items.length);
        items.push({
          key,
          kind: "tool",
          callId,
          tool: str(d.tool),
          toolKind: str(d.kind),
          title: str(d.title),
          input: d.input,
        });
        break;
      }
      case "tool.result": {
        const at = index.get(`c:${str(d.call_id)}`);
        const prev = at === undefined ? undefined : items[at];
        const result = {
          ok: Boolean(d.ok),
          output: d.output,
          error: d.error,
          exit_code: d.exit_code,
          duration_ms: d.duration_ms,
        };
        if (prev && prev.kind === "tool") replace(at!, { ...prev, result });
        else
          items.push({ key, kind: "tool", callId: str(d.call_id), tool: "?", toolKind: "other", title: "", input: null, result });
        break;
      }
      case "policy.decision": {
        const at = index.get(`c:${str(d.call_id)}`);
        const prev = at === undefined ? undefined : items[at];
        if (prev && prev.kind === "tool") replace(at!, { ...prev, decision: str(d.decision) });
        break;
      }
      case "approval.requested": {
        const approval = d.approval as Approval;
        index.set(`a:${approval.id}`, items.length);
        items.push({ key, kind: "approval", approval });
        break;
      }
      case "approval.resolved": {
        const at = index.get(`a:${str(d.approval_id)}`);
        const prev = at === undefined ? undefined : items[at];
        if (prev && prev.kind === "approval") {
          const decision = str(d.decision);
          const status = (
            decision === "approved" || decision === "rejected" ? decision : decision || "expired"
          ) as Approval["status"];
          const answered = { ...prev.approval, status, decided_by: str(d.decided_by), reason: str(d.reason) || null };
          const toolAt = index.get(`c:${str(prev.approval.call_id)}`);
          const tool = toolAt === undefined ? undefined : items[toolAt];
          if (tool && tool.kind === "tool") {
            // Answered: the card folds into its tool card (a badge there), leaving no row behind.
            replace(toolAt!, { ...tool, answer: { status, by: answered.decided_by ?? "", reason: answered.reason ?? null } });
            replace(at!, { key: prev.key, kind: "note", text: "", tone: "info" });
          } else {
            replace(at!, { ...prev, approval: answered });
          }
        }
        break;
      }
      case "task.updated":
        state.tasks = d.tasks ?? [];
        items.push({ key, kind: "tasks", tasks: state.tasks });
        break;
      case "run.status":
        items.push({ key, kind: "status", from: d.from, to: d.to, reason: d.reason ?? null });
        state.statuses = [...state.statuses, { to: d.to, ts: e.ts, reason: d.reason ?? null }];
        break;
      case "run.created":
        state.statuses = [{ to: "created", ts: e.ts, reason: null }, ...state.statuses];
        break;
      case "usage": {
        const u = state.usage;
        const cost = d.cost_usd ?? null;
        state.usage = {
          input: u.input + (d.input_tokens ?? 0),
          output: u.output + (d.output_tokens ?? 0),
          cost: cost === null ? u.cost : (u.cost ?? 0) + cost,
        };
        break;
      }
      case "turn.completed":
        items.push({
          key,
          kind: "turn",
          turn: d.turn ?? 0,
          cost: d.cost_usd ?? null,
          duration: d.duration_ms ?? null,
          stop: d.stop_reason ?? null,
        });
        break;
      case "file.changed":
        items.push({ key, kind: "note", tone: "info", text: `${str(d.change)} ${str(d.path)}` });
        break;
      case "checkpoint.created": {
        const c = d.checkpoint as { number?: number; description?: string } | undefined;
        items.push({ key, kind: "note", tone: "git", text: `Checkpoint ${c?.number ?? ""} ${c?.description ?? ""}`.trim() });
        break;
      }
      case "git.committed":
        items.push({ key, kind: "note", tone: "git", text: `Committed ${str(d.sha).slice(0, 8)}` });
        break;
      case "git.merged":
        items.push({ key, kind: "note", tone: "git", text: `Merged into ${str(d.target)} (${str(d.strategy)}) ${str(d.sha).slice(0, 8)}` });
        break;
      case "git.pushed":
        items.push({ key, kind: "note", tone: "git", text: `Pushed ${str(d.branch)} to ${str(d.remote)}` });
        break;
      case "pr.created":
        items.push({ key, kind: "note", tone: "git", text: `Pull request #${str(d.number)} ${str(d.url)}` });
        break;
      case "pr.review_comment": {
        // A reviewer's comment synced from GitHub, at its file and line when it has one.
        const where = d.path ? ` on ${str(d.path)}${d.line ? `:${str(d.line)}` : ""}` : "";
        items.push({ key, kind: "note", tone: "info", text: `Review comment by ${str(d.user)}${where}: ${str(d.body)}` });
        break;
      }
      case "feedback.sent": {
        const what = d.source === "ci" ? "CI failure" : d.source === "review" ? "Requested changes" : "Failing checks";
        const of = Number(d.limit) > 0 ? ` (attempt ${str(d.attempt)} of ${str(d.limit)})` : "";
        items.push({ key, kind: "note", tone: "info", text: `${what} handed to the agent${of}` });
        break;
      }
      case "error":
        items.push({ key, kind: "note", tone: "error", text: `${str(d.message)}${d.detail ? `: ${str(d.detail)}` : ""}` });
        break;
      default:
        break; // agent.session and the rest: shown elsewhere
    }
  }
  return state;
}
