import type { ReactNode } from "react";
import { ApiError } from "../api/client";
import type { RunStatus } from "../api/types";
import { linkHandler } from "../lib/router";

export function Link(props: { to: string; className?: string; children: ReactNode; title?: string; testId?: string }) {
  return (
    <a href={props.to} className={props.className} onClick={linkHandler(props.to)} title={props.title} data-testid={props.testId}>
      {props.children}
    </a>
  );
}

export function StatusBadge({ status, reason }: { status: RunStatus | string; reason?: string | null }) {
  return (
    <span className={`badge status-${status}`} data-testid="run-status" data-status={status} title={reason ?? undefined}>
      {status}
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
  const errors = error instanceof ApiError ? error.problem.errors : undefined;
  return (
    <div className="error" role="alert">
      {text}
      {errors?.length ? (
        <ul>
          {errors.map((e, i) => (
            <li key={i}>
              {(e.loc ?? []).join(".")}: {e.msg}
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
