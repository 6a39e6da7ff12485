// A tiny History-API router: the server falls back to index.html for every non-/api path.
import { useSyncExternalStore } from "react";

const listeners = new Set<() => void>();
function notify(): void {
  listeners.forEach((fn) => fn());
}
window.addEventListener("popstate", notify);

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (to === location.pathname + location.search + location.hash) return;
  if (opts.replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  notify();
  window.scrollTo(0, 0);
}

function subscribe(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function useLocation(): { path: string; search: URLSearchParams } {
  const href = useSyncExternalStore(subscribe, () => location.pathname + location.search);
  const url = new URL(href, location.origin);
  return { path: url.pathname, search: url.searchParams };
}

/** `/runs/:ref/review` against `/runs/7/review` → `{ref: "7"}`, or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split("/").filter(Boolean);
  const got = path.split("/").filter(Boolean);
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith(":")) params[w.slice(1)] = decodeURIComponent(g);
    else if (w !== g) return null;
  }
  return params;
}

/** An anchor that navigates without a reload (and still opens in a new tab on ctrl/cmd). */
export function linkHandler(to: string) {
  return (e: { preventDefault(): void; metaKey: boolean; ctrlKey: boolean; button?: number }) => {
    if (e.metaKey || e.ctrlKey || (e.button ?? 0) !== 0) return;
    e.preventDefault();
    navigate(to);
  };
}
