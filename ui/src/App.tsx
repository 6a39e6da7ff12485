import { useQuery } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, useState } from "react";
import { api } from "./api/client";
import { SandboxBanner } from "./components/SandboxBanner";
import { Link, Spinner } from "./components/ui";
import { match, navigate, useLocation } from "./lib/router";
import { ApprovalsView } from "./views/Approvals";
import { Login } from "./views/Login";
import { NewRun } from "./views/NewRun";
import { RunDetail } from "./views/RunDetail";
import { RunsList } from "./views/RunsList";

const SettingsView = lazy(() => import("./views/Settings"));
const TerminalView = lazy(() => import("./views/Terminal"));
const AnalyticsView = lazy(() => import("./views/Analytics"));
const WorkflowsView = lazy(() => import("./views/Workflows"));
const BoardView = lazy(() => import("./views/Board").then((m) => ({ default: m.Board })));
const ProjectPickerView = lazy(() => import("./views/Board").then((m) => ({ default: m.ProjectPicker })));
const TicketPage = lazy(() => import("./views/Ticket").then((m) => ({ default: m.TicketView })));

export function usePendingCount(enabled: boolean): number {
  const q = useQuery({
    queryKey: ["approvals", "pending"],
    queryFn: () => api.get("/api/approvals", { query: { status: "pending", limit: 500 } }),
    refetchInterval: 3000,
    enabled,
  });
  return q.data?.data.length ?? 0;
}

function Nav({ path, pending }: { path: string; pending: number }) {
  const tab = (to: string, label: string, icon: string, active: boolean, extra?: React.ReactNode) => (
    <Link to={to} className={`tab${active ? " active" : ""}`} testId={`nav-${label.toLowerCase()}`}>
      <span className="tab-icon" aria-hidden="true">
        {icon}
      </span>
      <span className="tab-label">{label}</span>
      {extra}
    </Link>
  );
  return (
    <nav className="nav" aria-label="Main">
      <span className="brand">Codeyard</span>
      {tab("/", "Runs", "☰", path === "/" || (path.startsWith("/runs/") && path !== "/runs/new"))}
      {tab("/runs/new", "New", "+", path === "/runs/new")}
      {tab(
        "/approvals",
        "Approvals",
        "✓",
        path === "/approvals",
        pending > 0 ? (
          <span className="count" data-testid="pending-count" aria-label={`${pending} pending`}>
            {pending}
          </span>
        ) : null,
      )}
      {tab("/board", "Board", "▦", path === "/board" || path.startsWith("/projects/"))}
      {tab("/workflows", "Workflows", "⇶", path.startsWith("/workflows"))}
      {tab("/analytics", "Analytics", "$", path === "/analytics")}
      {tab("/settings", "Settings", "⚙", path.startsWith("/settings"))}
    </nav>
  );
}

const SHORTCUTS: [string, string][] = [
  ["n", "New run"],
  ["g r", "Runs"],
  ["g a", "Approvals"],
  ["g s", "Settings"],
  ["/", "Search runs"],
  ["?", "This help"],
  ["Esc", "Close / leave a field"],
];

function useShortcuts(setHelp: (fn: (v: boolean) => boolean) => void) {
  useEffect(() => {
    let prefix = "";
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement | null;
      if (e.key === "Escape") {
        setHelp(() => false);
        if (target && /INPUT|TEXTAREA|SELECT/.test(target.tagName)) target.blur();
        return;
      }
      if (e.metaKey || e.ctrlKey || e.altKey) return;
      if (target && (/INPUT|TEXTAREA|SELECT/.test(target.tagName) || target.isContentEditable)) return;
      const key = prefix ? `${prefix} ${e.key}` : e.key;
      prefix = "";
      clearTimeout(timer);
      const go: Record<string, string> = { n: "/runs/new", "g r": "/", "g a": "/approvals", "g s": "/settings" };
      if (go[key]) {
        e.preventDefault();
        navigate(go[key]);
      } else if (key === "g") {
        prefix = "g";
        timer = setTimeout(() => (prefix = ""), 1200);
      } else if (key === "?") {
        setHelp((v) => !v);
      } else if (key === "/") {
        const search = document.querySelector<HTMLInputElement>("[data-shortcut-search]");
        if (search) {
          e.preventDefault();
          search.focus();
        } else {
          navigate("/?focus=search");
        }
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [setHelp]);
}

export function App() {
  const { path } = useLocation();
  const [help, setHelp] = useState(false);
  useShortcuts(setHelp);
  const signedOut = path === "/login";
  // One public check before any page asks for data: signed out, go to the sign-in page at once
  // (instead of three 401s from the pages' first requests, each redirecting).
  const session = useQuery({
    queryKey: ["auth-status"],
    queryFn: () => api.get("/api/auth/status"),
    enabled: !signedOut,
    retry: false,
    staleTime: 60_000,
  });
  const signedIn = !signedOut && session.data?.authenticated !== false && !session.isPending;
  const pending = usePendingCount(signedIn);
  useEffect(() => {
    if (!signedOut && session.data?.authenticated === false) {
      navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
    }
  }, [signedOut, session.data]);

  if (signedOut) return <Login />;
  if (!signedIn) return <Spinner />;

  let page: React.ReactNode;
  let params: Record<string, string> | null;
  if (path === "/") page = <RunsList />;
  else if (path === "/runs/new") page = <NewRun />;
  else if ((params = match("/runs/:ref", path))) page = <RunDetail key={params.ref} runRef={params.ref!} tab="transcript" />;
  else if ((params = match("/runs/:ref/review", path))) page = <RunDetail key={params.ref} runRef={params.ref!} tab="review" />;
  else if ((params = match("/runs/:ref/terminal", path)))
    page = (
      <Suspense fallback={<Spinner />}>
        <TerminalView key={params.ref} runRef={params.ref!} />
      </Suspense>
    );
  else if (path === "/approvals") page = <ApprovalsView />;
  else if (path === "/board")
    page = (
      <Suspense fallback={<Spinner />}>
        <ProjectPickerView />
      </Suspense>
    );
  else if ((params = match("/projects/:slug/board", path)))
    page = (
      <Suspense fallback={<Spinner />}>
        <BoardView key={params.slug} slug={params.slug!} />
      </Suspense>
    );
  else if ((params = match("/projects/:slug/tickets/:number", path)))
    page = (
      <Suspense fallback={<Spinner />}>
        <TicketPage key={`${params.slug}/${params.number}`} slug={params.slug!} number={Number(params.number)} />
      </Suspense>
    );
  else if (path === "/workflows" || (params = match("/workflows/:id", path)) || (params = match("/workflows/executions/:execution", path)))
    page = (
      <Suspense fallback={<Spinner />}>
        <WorkflowsView key={path} id={params?.id} executionId={params?.execution} />
      </Suspense>
    );
  else if (path === "/analytics")
    page = (
      <Suspense fallback={<Spinner />}>
        <AnalyticsView />
      </Suspense>
    );
  else if (path === "/settings" || (params = match("/settings/:section", path)))
    page = (
      <Suspense fallback={<Spinner />}>
        <SettingsView section={params?.section ?? "providers"} />
      </Suspense>
    );
  else
    page = (
      <div className="pad">
        <h1>Not found</h1>
        <Link to="/">Back to runs</Link>
      </div>
    );

  return (
    <div className="app">
      <Nav path={path} pending={pending} />
      <main className="main">
        {session.data?.setup_required && <SetupBanner />}
        <SandboxBanner />
        {page}
      </main>
      {help && (
        <div className="overlay" role="dialog" aria-label="Keyboard shortcuts" onClick={() => setHelp(false)}>
          <div className="sheet" onClick={(e) => e.stopPropagation()}>
            <h2>Keyboard shortcuts</h2>
            <table className="shortcuts">
              <tbody>
                {SHORTCUTS.map(([k, v]) => (
                  <tr key={k}>
                    <td>
                      <kbd>{k}</kbd>
                    </td>
                    <td>{v}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <p className="muted">On a run: a approve the first pending request, m write a message.</p>
          </div>
        </div>
      )}
    </div>
  );
}

/** Signed in with the login URL (the admin token) while no user exists: say what is missing. */
function SetupBanner() {
  const [hidden, setHidden] = useState(() => sessionStorage.getItem("setup-banner") === "hidden");
  if (hidden) return null;
  return (
    <div className="banner" role="status" data-testid="setup-banner">
      <span className="grow">
        Signed in with the admin token. No user account exists yet: create the first admin to sign in with a
        password.
      </span>
      <Link to="/login?setup=1">Create admin</Link>
      <button
        type="button"
        className="link"
        aria-label="Hide"
        onClick={() => {
          sessionStorage.setItem("setup-banner", "hidden");
          setHidden(true);
        }}
      >
        ✕
      </button>
    </div>
  );
}
