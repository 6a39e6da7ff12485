import type { ReactNode } from "react";
import { ApiError } from "../api/client";
import type { RunStatus } from "../api/models";
import { linkHandler } from "../lib/router";

export function Link(props: { to: string; className?: string; children: ReactNode; title?: string; testId?: string }) {
  return (
    <a href={props.to} className={props.className} onClick={linkHandler(props.to)} title={props.title} data-testid={props.testId}>
      {props.children}
    </a>
  );
}

export function StatusBadge({
  status,
  reason,
  resolution,
}: {
  status: RunStatus | string;
  reason?: string | null;
  resolution?: string | null;
}) {
  // A discarded run is "completed" to the state machine; to a person it is discarded.
  const shown = status === "completed" && resolution === "discarded" ? "discarded" : status;
  return (
    <span
      className={`badge status-${shown === "discarded" ? "cancelled" : status}`}
      data-testid="run-status"
      data-status={status}
      title={reason ?? undefined}
    >
      {shown}
      {reason && status === "waiting" ? ` · ${reason}` : ""}
    </span>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const text =
    error instanceof ApiError
      ? error.message
      : error instanceof Error
        ? error.message
        : String(error);
  // Items the message already says are not listed again (a one-field problem said it twice).
  const errors = (error instanceof ApiError ? error.problem.errors : undefined)?.filter((e) => !text.includes(e.msg));
  return (
    <div className="error" role="alert">
      {text}
      {errors?.length ? (
        <ul>
          {errors.map((e, i) => (
            <li key={i}>
              {(e.loc ?? []).filter((part, n) => !(n === 0 && (part === "body" || part === "query"))).join(".")}: {e.msg}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export function Spinner({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="muted pad" role="status">
      {label}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}
