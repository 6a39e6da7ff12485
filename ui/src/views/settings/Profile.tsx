// The signed-in user's profile (display name, time zone, picture) and SSH key (issue 19). The key pair is
// made by the server; only the public key and its fingerprint ever reach the page.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError } from "../../api/client";
import { ErrorNote, Spinner } from "../../components/ui";

export default function Profile() {
  const qc = useQueryClient();
  const profile = useQuery({ queryKey: ["profile"], queryFn: () => api.get("/api/me/profile"), retry: false });
  const key = useQuery({
    queryKey: ["ssh-key"],
    queryFn: () =>
      api.get("/api/me/ssh-key").catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 404) return null; // none made yet
        throw e;
      }),
    retry: false,
  });
  const save = useMutation({
    mutationFn: (b: { display_name: string | null; time_zone: string | null }) => api.put("/api/me/profile", b),
    onSuccess: (p) => qc.setQueryData(["profile"], p),
  });
  const picture = useMutation({
    mutationFn: (image: string | null) => (image ? api.put("/api/me/avatar", { image }) : api.delete("/api/me/avatar").then(() => null)),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["profile"] }),
  });
  const makeKey = useMutation({
    mutationFn: () => api.post("/api/me/ssh-key"),
    onSuccess: (k) => qc.setQueryData(["ssh-key"], k),
  });
  const dropKey = useMutation({
    mutationFn: () => api.delete("/api/me/ssh-key"),
    onSuccess: () => qc.setQueryData(["ssh-key"], null),
  });
  if (profile.isPending) return <Spinner />;
  if (profile.error || !profile.data) return null; // the admin token has no profile
  const p = profile.data;
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return (
    <>
      <form
        className="card stack"
        aria-label="Profile"
        data-testid="profile"
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          const get = (k: string) => String(f.get(k) ?? "").trim() || null;
          save.mutate({ display_name: get("display_name"), time_zone: get("time_zone") });
        }}
      >
        <h3>Profile</h3>
        <label>
          Display name
          <input name="display_name" defaultValue={p.display_name ?? ""} placeholder={p.username} maxLength={200} />
        </label>
        <label>
          <span>
            Time zone <span className="muted">(IANA name; empty: this browser's, {browserZone})</span>
          </span>
          <input name="time_zone" defaultValue={p.time_zone ?? ""} placeholder={browserZone} maxLength={64} />
        </label>
        <div className="row gap">
          {p.avatar_url ? (
            <img src={p.avatar_url} alt="Your picture" width={48} height={48} className="avatar" data-testid="avatar" />
          ) : (
            <span className="muted small">No picture</span>
          )}
          <label className="grow">
            <span>
              Picture <span className="muted">(PNG, JPEG, GIF or WebP, at most 256 KiB)</span>
            </span>
            <input
              type="file"
              accept="image/png,image/jpeg,image/gif,image/webp"
              data-testid="avatar-file"
              onChange={(e) => {
                const file = e.target.files?.[0];
                if (!file) return;
                const reader = new FileReader();
                reader.onload = () => picture.mutate(String(reader.result));
                reader.readAsDataURL(file);
              }}
            />
          </label>
          {p.avatar_url && (
            <button type="button" onClick={() => picture.mutate(null)}>
              Remove picture
            </button>
          )}
        </div>
        <ErrorNote error={picture.error} />
        <div className="muted small">Email: {p.email ?? "none (an admin sets it; it lets you sign in with emailed codes)"}</div>
        <button className="primary" disabled={save.isPending}>
          Save profile
        </button>
        {save.isSuccess && (
          <div className="ok-note" role="status">
            Saved.
          </div>
        )}
        <ErrorNote error={save.error} />
      </form>
      <div className="card stack" data-testid="ssh-key">
        <h3>SSH key for pushing</h3>
        <p className="muted small">
          Your runs push their branches with this key. Add the public key to your git host; the private key stays on the
          server, encrypted.
        </p>
        {key.data ? (
          <>
            <code className="wrap-anywhere" data-testid="ssh-public-key">
              {key.data.public_key}
            </code>
            <div className="small">
              Fingerprint <code>{key.data.fingerprint}</code>
            </div>
            <div className="row gap wrap">
              <button type="button" onClick={() => void navigator.clipboard?.writeText(key.data?.public_key ?? "")}>
                Copy public key
              </button>
              <button type="button" onClick={() => confirm("Replace your SSH key? Update your git host after.") && makeKey.mutate()}>
                Replace
              </button>
              <button type="button" className="danger" onClick={() => confirm("Forget your SSH key?") && dropKey.mutate()}>
                Remove
              </button>
            </div>
          </>
        ) : (
          <button type="button" onClick={() => makeKey.mutate()} disabled={makeKey.isPending || key.isPending} data-testid="ssh-make">
            Make an SSH key
          </button>
        )}
        <ErrorNote error={key.error ?? makeKey.error ?? dropKey.error} />
      </div>
    </>
  );
}
