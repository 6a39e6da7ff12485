// Sign in with a one-time code sent by email (issue 19): ask for a code, then trade it for a
// session. The server answers the same whether or not the address has an account, so this
// page always says "if it belongs to an account".
import { useState } from "react";
import { api, ApiError } from "../api/client";
import { ErrorNote } from "../components/ui";

export function EmailCodeLogin({ onSignedIn }: { onSignedIn: () => void }) {
  const [email, setEmail] = useState("");
  const [sent, setSent] = useState(false);
  const [needTotp, setNeedTotp] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const run = (work: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    work()
      .catch((err: unknown) => {
        if (err instanceof ApiError && err.problem.mfa_required) setNeedTotp(true);
        setError(err);
      })
      .finally(() => setBusy(false));
  };

  return (
    <details className="card login-card" data-testid="email-login">
      <summary>Email me a code</summary>
      <ErrorNote error={error} />
      {!sent ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              await api.post("/api/auth/request-otp", { email: email.trim() });
              setSent(true);
            });
          }}
        >
          <label>
            Email
            <input
              type="email"
              autoComplete="email"
              required
              value={email}
              onChange={(e) => setEmail(e.target.value)}
              data-testid="otp-email"
            />
          </label>
          <button className="primary" type="submit" disabled={busy || !email.trim()} data-testid="otp-send">
            Send code
          </button>
        </form>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            const form = new FormData(e.currentTarget);
            const totp = String(form.get("totp_code") ?? "").trim();
            run(async () => {
              await api.post("/api/auth/verify-otp", {
                email: email.trim(),
                code: String(form.get("code") ?? "").trim(),
                totp_code: totp || undefined,
              });
              onSignedIn();
            });
          }}
        >
          <p role="status" className="muted">
            If {email.trim()} belongs to an account, a code is on its way.
          </p>
          <label>
            Code from the email
            <input name="code" inputMode="numeric" autoComplete="one-time-code" required data-testid="otp-code" />
          </label>
          {needTotp && (
            <label>
              Authenticator code
              <input name="totp_code" autoComplete="one-time-code" required autoFocus />
            </label>
          )}
          <button className="primary" type="submit" disabled={busy} data-testid="otp-verify">
            Sign in
          </button>
          <button type="button" className="link" onClick={() => setSent(false)}>
            Send another code
          </button>
        </form>
      )}
    </details>
  );
}
