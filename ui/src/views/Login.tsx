import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api/client";
import { ErrorNote } from "../components/ui";
import { navigate, useLocation } from "../lib/router";
import { EmailCodeLogin } from "./EmailCodeLogin";

function nextPath(search: URLSearchParams): string {
  const next = search.get("next");
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

/** Trade a token (the login URL's, or one pasted) for a session cookie. */
async function tokenLogin(token: string): Promise<void> {
  await api.post("/api/auth/token-login", { token });
}

export function Login() {
  const { search } = useLocation();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [needCode, setNeedCode] = useState(false);
  const tried = useRef(false);
  const qc = useQueryClient();
  // Signed in with the admin token while no user exists (the app's banner links here).
  const tokenOnly = search.get("setup") === "1";
  const status = useQuery({
    queryKey: ["auth-status"],
    queryFn: () => api.get("/api/auth/status"),
    retry: false,
  });

  const done = () => {
    qc.removeQueries({ queryKey: ["auth-status"] }); // the app re-checks the new session
    navigate(nextPath(search), { replace: true });
  };

  useEffect(() => {
    if (tried.current) return;
    tried.current = true;
    const hash = new URLSearchParams(location.hash.slice(1));
    const token = hash.get("token");
    if (!token) return;
    // Never leave the token in the address bar or the history.
    history.replaceState(null, "", location.pathname + location.search);
    setBusy(true);
    tokenLogin(token)
      .then(done)
      .catch((e: unknown) => setError(e))
      .finally(() => setBusy(false));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const submit = async (e: React.FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const get = (k: string) => String(form.get(k) ?? "").trim();
    setBusy(true);
    setError(null);
    try {
      if (status.data?.setup_required) {
        await api.post("/api/auth/setup", {
          setup_code: get("setup_code"),
          username: get("username"),
          password: String(form.get("password") ?? ""),
        });
      }
      if (tokenOnly) {
        done();
        return;
      }
      if (get("token")) await tokenLogin(get("token"));
      else
        await api.post("/api/auth/login", {
          username: get("username"),
          password: String(form.get("password") ?? ""),
          totp_code: get("totp_code") || undefined,
        });
      done();
    } catch (err) {
      if (err instanceof ApiError && err.problem.mfa_required) {
        setNeedCode(true);
        setError(new Error("Enter the code from your authenticator app (or a recovery code)."));
      } else {
        setError(err);
      }
    } finally {
      setBusy(false);
    }
  };

  const setup = status.data?.setup_required ?? false;
  if (tokenOnly)
    return (
      <div className="login">
        <form className="card login-card" onSubmit={submit} aria-label="Create the first admin">
          <h1>Codeyard</h1>
          <p className="ok-note" role="status">You are signed in with the admin token.</p>
          <p>
            No user account exists yet. Create the first admin so that you (and the people you invite) can sign in
            with a password and two-factor codes instead of the token.
          </p>
          <ErrorNote error={error} />
          <label>
            <span>
              Setup code <span className="muted">(printed by <code>codeyard serve</code>)</span>
            </span>
            <input name="setup_code" autoComplete="one-time-code" required />
          </label>
          <label>
            Username
            <input name="username" autoComplete="username" autoCapitalize="none" required />
          </label>
          <label>
            <span>
              Password <span className="muted">(at least 8 characters)</span>
            </span>
            <input name="password" type="password" autoComplete="new-password" minLength={8} required />
          </label>
          <button
            className="primary"
            type="submit"
            disabled={busy}
            onClick={(e) => {
              e.preventDefault();
              const form = e.currentTarget.form!;
              if (!form.reportValidity()) return;
              const data = new FormData(form);
              setBusy(true);
              setError(null);
              api
                .post("/api/auth/setup", {
                  setup_code: String(data.get("setup_code") ?? "").trim(),
                  username: String(data.get("username") ?? "").trim(),
                  password: String(data.get("password") ?? ""),
                })
                .then(done)
                .catch((err: unknown) => setError(err))
                .finally(() => setBusy(false));
            }}
          >
            Create admin account
          </button>
          <button type="submit" className="link">
            Skip for now: keep using the token
          </button>
        </form>
      </div>
    );
  return (
    <div className="login">
      <form className="card login-card" onSubmit={submit} aria-label="Sign in">
        <h1>Codeyard</h1>
        <p className="muted">{setup ? "Create the first account." : "Sign in to watch and steer your agents."}</p>
        {busy && <p role="status">Signing in…</p>}
        <ErrorNote error={error} />
        {setup && (
          <label>
            {/* One span: the label is a flex column, so loose text and <code> became three lines. */}
            <span>
              Setup code <span className="muted">(printed by <code>codeyard serve</code>)</span>
            </span>
            <input name="setup_code" autoComplete="one-time-code" required />
          </label>
        )}
        <label>
          Username
          <input name="username" autoComplete="username" autoCapitalize="none" />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete={setup ? "new-password" : "current-password"}
            minLength={setup ? 8 : undefined}
            placeholder={setup ? "At least 8 characters" : undefined}
          />
        </label>
        {!setup && (
          <label>
            Authenticator code {!needCode && <span className="muted">(if two-factor is on)</span>}
            <input
              name="totp_code"
              autoComplete="one-time-code"
              autoCapitalize="none"
              maxLength={40}
              required={needCode}
              autoFocus={needCode}
            />
          </label>
        )}
        <details>
          <summary>Use an access token instead</summary>
          <label>
            Token
            <input name="token" type="password" autoComplete="off" />
          </label>
        </details>
        <button className="primary" type="submit" disabled={busy}>
          {setup ? "Create account" : "Sign in"}
        </button>
        <p className="muted small">
          Tip: open the login link <code>codeyard serve</code> prints to sign in with one tap.
        </p>
      </form>
      {!setup && <EmailCodeLogin onSignedIn={done} />}
    </div>
  );
}
