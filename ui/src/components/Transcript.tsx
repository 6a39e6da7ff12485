import { useVirtualizer } from "@tanstack/react-virtual";
import { memo, useEffect, useLayoutEffect, useRef, useState } from "react";
import { type Item } from "../lib/fold";
import { duration, short } from "../lib/format";
import { Markdown } from "../lib/markdown";
import { ApprovalCard } from "./ApprovalCard";

function ToolItem({ item }: { item: Extract<Item, { kind: "tool" }> }) {
  const input = item.input as Record<string, unknown> | null;
  const command = typeof input?.command === "string" ? input.command : null;
  const r = item.result;
  const failed = r && (!r.ok || (r.exit_code !== undefined && r.exit_code !== null && r.exit_code !== 0));
  return (
    <details className={`tool${failed ? " failed" : ""}`}>
      <summary>
        <span className="tool-name">{item.tool}</span>
        <span className="tool-title">{command ? <code>$ {command}</code> : item.title}</span>
        {item.answer && (
          <span
            className={`badge ${item.answer.status === "approved" ? "ok" : "bad"}`}
            data-testid="tool-answer"
            title={item.answer.reason ?? undefined}
          >
            {item.answer.status}
            {item.answer.by ? ` by ${item.answer.by}` : ""}
          </span>
        )}
        {r === undefined ? (
          <span className="badge">{item.decision === "ask" ? "waiting" : "running"}</span>
        ) : r.exit_code !== undefined && r.exit_code !== null ? (
          <span className={`badge ${r.exit_code === 0 ? "ok" : "bad"}`} data-testid="exit-code">
            exit {r.exit_code}
          </span>
        ) : (
          <span className={`badge ${r.ok ? "ok" : "bad"}`}>{r.ok ? "ok" : "failed"}</span>
        )}
      </summary>
      <div className="tool-body">
        {!command && input !== null && input !== undefined && (
          <>
            <div className="label">Input</div>
            <pre className="code">{short(input)}</pre>
          </>
        )}
        {r && (
          <>
            <div className="label">
              Output{r.duration_ms !== undefined ? ` · ${duration(r.duration_ms)}` : ""}
            </div>
            <pre className="code">{short(r.error || r.output || "(no output)")}</pre>
          </>
        )}
      </div>
    </details>
  );
}

const Row = memo(function Row({ item }: { item: Item }) {
  switch (item.kind) {
    case "prompt":
      return (
        <div className="msg prompt">
          <div className="label">
            {item.source === "create" || !item.source
              ? "Task"
              : item.source === "resume"
                ? `Turn ${item.turn} · resumed`
                : `Turn ${item.turn}`}
          </div>
          {item.text && <div className="pre-wrap">{item.text}</div>}
        </div>
      );
    case "assistant":
      return (
        <div className={`msg assistant${item.streaming ? " streaming" : ""}`}>
          <Markdown text={item.text} />
        </div>
      );
    case "thinking":
      return (
        <details className="thinking">
          <summary>Thinking</summary>
          <div className="pre-wrap muted">{item.text}</div>
        </details>
      );
    case "user":
      return (
        <div className="msg user">
          <div className="label">{item.author || "You"}</div>
          <div className="pre-wrap">{item.text}</div>
        </div>
      );
    case "tool":
      return <ToolItem item={item} />;
    case "approval":
      return <ApprovalCard approval={item.approval} />;
    case "tasks":
      return (
        <ul className="tasks inline">
          {item.tasks.map((t, i) => (
            <li key={i} className={`task ${t.status}`}>
              {t.status === "completed" ? "☑" : t.status === "in_progress" ? "◐" : "☐"} {t.content}
            </li>
          ))}
        </ul>
      );
    case "status":
      return (
        <div className="note status-line">
          {item.from} → <strong>{item.to}</strong>
          {item.reason ? ` (${item.reason})` : ""}
        </div>
      );
    case "turn":
      return (
        <div className="note turn-end">
          Turn {item.turn} ended{item.stop ? ` · ${item.stop}` : ""}
          {item.cost !== null ? ` · $${item.cost.toFixed(4)}` : ""}
          {item.duration !== null ? ` · ${duration(item.duration)}` : ""}
        </div>
      );
    case "note":
      return item.text ? <div className={`note ${item.tone}`}>{item.text}</div> : null;
  }
});

export function Transcript(props: { items: Item[]; lastId: number; count: number; complete: boolean }) {
  const { items, lastId, count, complete } = props;
  const parent = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  const virtualizer = useVirtualizer({
    count: items.length,
    getScrollElement: () => parent.current,
    estimateSize: () => 56,
    overscan: 8,
    getItemKey: (i) => items[i]!.key,
  });

  useLayoutEffect(() => {
    if (follow && items.length) virtualizer.scrollToIndex(items.length - 1, { align: "end" });
  }, [items.length, follow, virtualizer, items]);

  useEffect(() => {
    const el = parent.current;
    if (!el) return;
    const onScroll = () => setFollow(el.scrollHeight - el.scrollTop - el.clientHeight < 80);
    el.addEventListener("scroll", onScroll, { passive: true });
    return () => el.removeEventListener("scroll", onScroll);
  }, []);

  return (
    <div className="transcript-wrap">
      <div
        ref={parent}
        className="transcript"
        data-testid="transcript"
        data-event-count={count}
        data-last-event-id={lastId}
        data-item-count={items.length}
        data-complete={complete}
        role="log"
        aria-live="polite"
      >
        <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {virtualizer.getVirtualItems().map((v) => (
            <div
              key={v.key}
              data-index={v.index}
              data-item-key={items[v.index]!.key}
              ref={virtualizer.measureElement}
              className="row-wrap"
              style={{ position: "absolute", top: 0, left: 0, right: 0, transform: `translateY(${v.start}px)` }}
            >
              <Row item={items[v.index]!} />
            </div>
          ))}
        </div>
      </div>
      {!follow && (
        <button className="jump" onClick={() => setFollow(true)} aria-label="Jump to latest">
          ↓ Latest
        </button>
      )}
    </div>
  );
}
