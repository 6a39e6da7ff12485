// Admins manage people here: invite by email (they sign in with emailed codes) or add a user
// with a first password, change roles (audited), set a new password (which ends that user's
// sessions), sign them out everywhere, remove them.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, type BodyOf } from "../../api/client";
import type { User } from "../../api/models";
import { ErrorNote, Spinner } from "../../components/ui";
import { ago } from "../../lib/format";

type UserRow = User;
type Role = NonNullable<BodyOf<"/api/users", "post">["role"]>;

const ROLES: [Role, string][] = [
  ["admin", "admin — everything, including users and settings"],
  ["member", "member — runs, approvals, landing"],
  ["viewer", "viewer — read only"],
];

export default function Users() {
  const qc = useQueryClient();
  const [note, setNote] = useState<string | null>(null);
  const users = useQuery({
    queryKey: ["users"],
    queryFn: () => api.get("/api/users", { query: { limit: 500 } }),
    retry: false,
  });
  const done = (text: string) => {
    setNote(text);
    void qc.invalidateQueries({ queryKey: ["users"] });
    void qc.invalidateQueries({ queryKey: ["auth-status"] }); // the first user ends the set-up banner
  };
  const invite = useMutation({
    mutationFn: (body: { username: string; password: string; role: Role }) => api.post("/api/users", body),
    onSuccess: (u) => done(`Added ${u.username}. Give them the password; they can change it in Settings → Account.`),
  });
  const inviteByEmail = useMutation({
    mutationFn: (body: { email: string; role: Role }) => api.post("/api/users/invite", body),
    onSuccess: (u) => done(`Invited ${u.email} as ${u.username}: they sign in with a code sent by email.`),
  });
  const setRole = useMutation({
    mutationFn: ({ id, role }: { id: string; role: Role }) =>
      api.patch("/api/users/{user_id}/role", { role }, { path: { user_id: id } }),
    onSuccess: (u) => done(`${u.username} is now ${u.role}.`),
  });
  const update = useMutation({
    mutationFn: ({ id, body }: { id: string; body: { role?: Role; password?: string } }) =>
      api.patch("/api/users/{user_id}", body, { path: { user_id: id } }),
    onSuccess: (u, vars) => done(vars.body.password ? `New password set for ${u.username}; their sessions ended.` : `${u.username} is now ${u.role}.`),
  });
  const signOut = useMutation({
    mutationFn: (u: UserRow) => api.delete("/api/users/{user_id}/sessions", { path: { user_id: u.id } }),
    onSuccess: (_r, u) => done(`${u.username} is signed out everywhere.`),
  });
  const remove = useMutation({
    mutationFn: (u: UserRow) => api.delete("/api/users/{user_id}", { path: { user_id: u.id } }),
    onSuccess: (_r, u) => done(`Removed ${u.username}.`),
  });
  if (users.isPending) return <Spinner />;
  return (
    <div className="stack" data-testid="users">
      <ErrorNote
        error={
          users.error ?? invite.error ?? inviteByEmail.error ?? setRole.error ?? update.error ?? signOut.error ?? remove.error
        }
      />
      {note && (
        <div className="ok-note" role="status">
          {note}
        </div>
      )}
      {(users.data?.data ?? []).map((u) => (
        <div key={u.id} className="card stack" data-testid="user">
          <div className="row gap">
            <strong className="grow">
              {u.display_name ?? u.username}
              {u.display_name && <span className="muted"> {u.username}</span>}
            </strong>
            <span className={`badge ${u.mfa_enabled ? "ok" : ""}`}>{u.mfa_enabled ? "two-factor on" : "password only"}</span>
          </div>
          <div className="muted small">
            added {ago(u.created_at)}
            {u.email && <> · {u.email}</>}
          </div>
          <label>
            Role
            <select
              value={u.role}
              aria-label={`Role of ${u.username}`}
              onChange={(e) => setRole.mutate({ id: u.id, role: e.target.value as Role })}
            >
              {ROLES.map(([role, label]) => (
                <option key={role} value={role}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          <div className="row gap wrap">
            <button
              type="button"
              onClick={() => {
                const password = prompt(`New password for ${u.username} (at least 8 characters):`);
                if (password) update.mutate({ id: u.id, body: { password } });
              }}
            >
              Reset password
            </button>
            <button type="button" onClick={() => signOut.mutate(u)}>
              Sign out everywhere
            </button>
            <button type="button" className="danger" onClick={() => confirm(`Remove ${u.username}?`) && remove.mutate(u)}>
              Remove
            </button>
          </div>
          {u.mfa_enabled && (
            <div className="muted small">
              Lost their authenticator? On the server: <code>codeyard users reset-mfa {u.username}</code>
            </div>
          )}
        </div>
      ))}
      <form
        className="card stack"
        aria-label="Invite by email"
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          inviteByEmail.mutate({
            email: String(f.get("email") ?? "").trim(),
            role: String(f.get("role") ?? "member") as Role,
          });
          e.currentTarget.reset();
        }}
      >
        <h3>Invite by email</h3>
        <label>
          Email
          <input name="email" type="email" required autoComplete="off" />
        </label>
        <label>
          Role
          <select name="role" defaultValue="member">
            {ROLES.map(([role, label]) => (
              <option key={role} value={role}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <button className="primary" disabled={inviteByEmail.isPending}>
          Send invitation
        </button>
      </form>
      <form
        className="card stack"
        aria-label="Add a user"
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          invite.mutate({
            username: String(f.get("username") ?? "").trim(),
            password: String(f.get("password") ?? ""),
            role: String(f.get("role") ?? "member") as Role,
          });
          e.currentTarget.reset();
        }}
      >
        <h3>Add a user</h3>
        <label>
          Username
          <input name="username" required autoCapitalize="none" autoComplete="off" />
        </label>
        <label>
          <span>
            First password <span className="muted">(at least 8 characters; they can change it)</span>
          </span>
          <input name="password" type="password" minLength={8} required autoComplete="new-password" />
        </label>
        <label>
          Role
          <select name="role" defaultValue="member">
            {ROLES.map(([role, label]) => (
              <option key={role} value={role}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <button className="primary" disabled={invite.isPending}>
          Add user
        </button>
      </form>
    </div>
  );
}
