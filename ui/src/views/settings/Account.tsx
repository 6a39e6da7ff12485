import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../../api/client";
import type { MfaSetup } from "../../api/models";
import { ErrorNote, Spinner } from "../../components/ui";
import { NotAvailable } from "./NotAvailable";
import Profile from "./Profile";

export default function Account() {
  const qc = useQueryClient();
  const me = useQuery({ queryKey: ["me"], queryFn: () => api.get("/api/auth/me"), retry: false });
  const [enrol, setEnrol] = useState<MfaSetup | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const password = useMutation({
    mutationFn: (b: { current_password: string; new_password: string }) => api.post("/api/auth/password", b),
  });
  const start = useMutation({
    mutationFn: () => api.post("/api/auth/mfa/setup"),
    onSuccess: setEnrol,
  });
  const verify = useMutation({
    mutationFn: (code: string) => api.post("/api/auth/mfa/verify", { code }),
    onSuccess: (r) => {
      setEnrol(null);
      setCodes(r.recovery_codes);
      void qc.invalidateQueries({ queryKey: ["me"] });
    },
  });
  const disable = useMutation({
    mutationFn: (pw: string) => api.post("/api/auth/mfa/disable", { password: pw }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["me"] }),
  });
  if (me.error) return <NotAvailable error={me.error} />;
  if (!me.data) return <Spinner />;
  const user = me.data.user;
  return (
    <div className="stack">
      <div className="card" data-testid="account">
        Signed in as <strong>{user?.username ?? me.data.name}</strong> ({me.data.role}, {me.data.kind})
        <div className="muted small">{me.data.scopes.join(" ")}</div>
      </div>
      {user && <Profile />}
      {user && (
        <>
          <form
            className="card stack"
            aria-label="Change password"
            onSubmit={(e) => {
              e.preventDefault();
              const f = new FormData(e.currentTarget);
              password.mutate({
                current_password: String(f.get("current") ?? ""),
                new_password: String(f.get("new") ?? ""),
              });
            }}
          >
            <h3>Password</h3>
            <label>
              Current password
              <input name="current" type="password" autoComplete="current-password" required />
            </label>
            <label>
              New password
              <input name="new" type="password" autoComplete="new-password" required />
            </label>
            <ErrorNote error={password.error} />
            {password.isSuccess && <div className="ok-note">Changed. Your other sessions were signed out.</div>}
            <button className="primary">Change password</button>
          </form>
          <div className="card stack" data-testid="mfa">
            <h3>Two-factor authentication</h3>
            {codes && (
              <div className="ok-note">
                On. Keep these single-use recovery codes somewhere safe:
                <pre className="code" data-testid="recovery-codes">{codes.join("\n")}</pre>
              </div>
            )}
            {user.mfa_enabled ? (
              <form
                className="row gap wrap"
                onSubmit={(e) => {
                  e.preventDefault();
                  disable.mutate(String(new FormData(e.currentTarget).get("pw") ?? ""));
                }}
              >
                <input name="pw" type="password" placeholder="Password" aria-label="Password to turn off" required />
                <button className="danger">Turn off</button>
              </form>
            ) : enrol ? (
              <form
                className="stack"
                onSubmit={(e) => {
                  e.preventDefault();
                  verify.mutate(String(new FormData(e.currentTarget).get("code") ?? ""));
                }}
              >
                <div>
                  Add this key to your authenticator app: <code className="break" data-testid="totp-secret">{enrol.secret}</code>
                </div>
                <a href={enrol.otpauth_uri} className="small">
                  Open in an authenticator app
                </a>
                <label>
                  Code from the app
                  <input name="code" inputMode="numeric" autoComplete="one-time-code" required />
                </label>
                <button className="primary">Turn on</button>
              </form>
            ) : (
              <button onClick={() => start.mutate()}>Set up two-factor</button>
            )}
            <ErrorNote error={start.error ?? verify.error ?? disable.error} />
          </div>
        </>
      )}
    </div>
  );
}
