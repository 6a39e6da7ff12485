import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../../api/client";
import { Empty, ErrorNote, Spinner } from "../../components/ui";

// Notification settings: web push on this device, preferences and quiet hours, chat/webhook
// channels, native devices, and the delivery log. Every target has a "Send test".

interface Prefs {
  events: string[];
  quiet_start: string | null;
  quiet_end: string | null;
  timezone: string;
}
interface Channel {
  id: string;
  kind: string;
  name: string;
  created_at: string;
  secret?: string | null;
}
interface Sub {
  id: string;
  endpoint_origin: string;
  user_agent: string | null;
  last_success_at: string | null;
}
interface Device {
  id: string;
  platform: string;
  name: string | null;
  last_success_at: string | null;
}
interface Delivery {
  id: number;
  target: string;
  attempt: number;
  ok: boolean;
  status_code: number | null;
  error: string | null;
  at: string;
}
interface TestResult {
  ok: boolean;
  status_code: number | null;
  error: string | null;
}
type List<T> = { data: T[] };

const KINDS: [string, string][] = [
  ["approval", "Approvals"],
  ["budget", "Budget stops"],
  ["run.input", "Agent asks a question"],
  ["run.finished", "Run ready for review"],
  ["run.failed", "Run failed"],
];

function b64ToBytes(b64: string): Uint8Array<ArrayBuffer> {
  const pad = "=".repeat((4 - (b64.length % 4)) % 4);
  const raw = atob((b64 + pad).replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

async function enablePush(): Promise<void> {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    throw new Error("This browser has no web push (on iOS, add Codeyard to the home screen first).");
  }
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new Error("Notifications are blocked for this site.");
  const reg = await navigator.serviceWorker.register("/sw.js");
  await navigator.serviceWorker.ready;
  const { public_key } = await api.raw<{ public_key: string }>("get", "/api/notifications/vapid-key");
  const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(public_key) });
  await api.raw("post", "/api/notifications/subscribe", sub.toJSON());
}

async function disablePush(): Promise<void> {
  const reg = await navigator.serviceWorker?.getRegistration();
  const sub = await reg?.pushManager.getSubscription();
  if (!sub) return;
  await api.raw("post", "/api/notifications/unsubscribe", { endpoint: sub.endpoint });
  await sub.unsubscribe();
}

function TestButton({ path }: { path: string }) {
  const test = useMutation({ mutationFn: () => api.raw<TestResult>("post", path) });
  return (
    <>
      <button className="small" onClick={() => test.mutate()} disabled={test.isPending}>
        Send test
      </button>
      {test.data && (
        <span className={test.data.ok ? "ok small" : "danger small"} data-testid="test-result">
          {test.data.ok ? "Delivered" : `Failed: ${test.data.error ?? test.data.status_code}`}
        </span>
      )}
      {test.error && <ErrorNote error={test.error} />}
    </>
  );
}

function PushSection() {
  const qc = useQueryClient();
  const subs = useQuery({ queryKey: ["push-subs"], queryFn: () => api.raw<List<Sub>>("get", "/api/notifications/subscriptions") });
  const refresh = () => qc.invalidateQueries({ queryKey: ["push-subs"] });
  const on = useMutation({ mutationFn: enablePush, onSuccess: refresh });
  const off = useMutation({ mutationFn: disablePush, onSuccess: refresh });
  return (
    <div className="card stack" aria-label="Push on this device">
      <h3>Push notifications</h3>
      <div className="row">
        <button className="primary" onClick={() => on.mutate()} disabled={on.isPending}>
          Enable on this device
        </button>
        <button className="small" onClick={() => off.mutate()} disabled={off.isPending}>
          Disable on this device
        </button>
      </div>
      {on.error && <ErrorNote error={on.error} />}
      {off.error && <ErrorNote error={off.error} />}
      {subs.data?.data.length === 0 && <Empty>No browser receives push yet.</Empty>}
      {subs.data?.data.map((s) => (
        <div key={s.id} className="row">
          <span>{s.user_agent?.split(" ").slice(-1)[0] ?? "Browser"}</span>
          <span className="muted small">{s.endpoint_origin}</span>
          <TestButton path={`/api/notifications/subscriptions/${s.id}/test`} />
        </div>
      ))}
    </div>
  );
}

function PrefsSection() {
  const qc = useQueryClient();
  const prefs = useQuery({ queryKey: ["notify-prefs"], queryFn: () => api.raw<Prefs>("get", "/api/notifications/preferences") });
  const save = useMutation({
    mutationFn: (p: Prefs) => api.raw<Prefs>("put", "/api/notifications/preferences", p),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["notify-prefs"] }),
  });
  if (!prefs.data) return <Spinner />;
  const p = prefs.data;
  return (
    <form
      className="card stack"
      aria-label="Notification preferences"
      onSubmit={(e) => {
        e.preventDefault();
        const f = new FormData(e.currentTarget);
        const start = String(f.get("quiet_start") ?? "");
        const end = String(f.get("quiet_end") ?? "");
        save.mutate({
          events: KINDS.map(([k]) => k).filter((k) => f.get(k) === "on"),
          quiet_start: start || null,
          quiet_end: end || null,
          timezone: String(f.get("timezone") || "UTC"),
        });
      }}
    >
      <h3>What to send</h3>
      {KINDS.map(([k, label]) => (
        <label key={k} className="row">
          <input type="checkbox" name={k} defaultChecked={p.events.includes(k)} /> {label}
        </label>
      ))}
      <div className="row">
        <label>
          Quiet from <input type="time" name="quiet_start" defaultValue={p.quiet_start ?? ""} />
        </label>
        <label>
          to <input type="time" name="quiet_end" defaultValue={p.quiet_end ?? ""} />
        </label>
      </div>
      <label>
        Time zone{" "}
        <input name="timezone" defaultValue={p.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone} />
      </label>
      <button className="primary">Save preferences</button>
      {save.isSuccess && <span className="ok small">Saved</span>}
      {save.error && <ErrorNote error={save.error} />}
    </form>
  );
}

function ChannelsSection() {
  const qc = useQueryClient();
  const [secret, setSecret] = useState<string | null>(null);
  const list = useQuery({ queryKey: ["channels"], queryFn: () => api.raw<List<Channel>>("get", "/api/notifications/channels") });
  const refresh = () => qc.invalidateQueries({ queryKey: ["channels"] });
  const add = useMutation({
    mutationFn: (b: { kind: string; name: string; config: { url: string } }) =>
      api.raw<Channel>("post", "/api/notifications/channels", b),
    onSuccess: (c) => {
      setSecret(c.secret ?? null);
      void refresh();
    },
  });
  const del = useMutation({
    mutationFn: (id: string) => api.raw("delete", `/api/notifications/channels/${id}`),
    onSuccess: refresh,
  });
  return (
    <div className="card stack" aria-label="Channels">
      <h3>Slack, Discord and webhooks</h3>
      {list.data?.data.map((c) => (
        <div key={c.id} className="row">
          <strong>{c.name}</strong>
          <span className="muted small">{c.kind}</span>
          <TestButton path={`/api/notifications/channels/${c.id}/test`} />
          <button className="small danger" onClick={() => del.mutate(c.id)}>
            Remove
          </button>
        </div>
      ))}
      <form
        className="row wrap"
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          add.mutate({
            kind: String(f.get("kind")),
            name: String(f.get("name") || f.get("kind")),
            config: { url: String(f.get("url") ?? "") },
          });
        }}
      >
        <select name="kind" aria-label="Kind">
          <option value="slack">Slack</option>
          <option value="discord">Discord</option>
          <option value="webhook">Webhook (signed)</option>
        </select>
        <input name="name" placeholder="Name" aria-label="Name" />
        <input name="url" placeholder="Incoming webhook URL" aria-label="URL" required />
        <button className="primary">Add</button>
      </form>
      {secret && (
        <div className="note">
          Signing secret (shown once; verify with any Standard Webhooks library): <code>{secret}</code>
        </div>
      )}
      {add.error && <ErrorNote error={add.error} />}
    </div>
  );
}

function DevicesSection() {
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ["devices"], queryFn: () => api.raw<List<Device>>("get", "/api/devices") });
  const del = useMutation({
    mutationFn: (id: string) => api.raw("delete", `/api/devices/${id}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["devices"] }),
  });
  if (!list.data?.data.length) return null;
  return (
    <div className="card stack" aria-label="Devices">
      <h3>Phone apps</h3>
      {list.data.data.map((d) => (
        <div key={d.id} className="row">
          <strong>{d.name ?? d.platform}</strong>
          <span className="muted small">{d.platform}</span>
          <TestButton path={`/api/devices/${d.id}/test`} />
          <button className="small danger" onClick={() => del.mutate(d.id)}>
            Remove
          </button>
        </div>
      ))}
    </div>
  );
}

function DeliveriesSection() {
  const log = useQuery({
    queryKey: ["deliveries"],
    queryFn: () => api.raw<List<Delivery>>("get", "/api/notifications/deliveries", undefined, { limit: 20 }),
    refetchInterval: 5000,
  });
  if (!log.data?.data.length) return null;
  return (
    <div className="card stack" aria-label="Delivery log">
      <h3>Recent deliveries</h3>
      <table className="table small">
        <tbody>
          {log.data.data.map((d) => (
            <tr key={d.id}>
              <td>{d.at.slice(5, 19).replace("T", " ")}</td>
              <td>{d.target.split(":")[0]}</td>
              <td className={d.ok ? "ok" : "danger"}>{d.ok ? "ok" : (d.error ?? "failed")}</td>
              <td>{d.status_code ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export default function Notifications() {
  return (
    <div className="stack" data-testid="notification-settings">
      <PushSection />
      <PrefsSection />
      <ChannelsSection />
      <DevicesSection />
      <DeliveriesSection />
    </div>
  );
}
