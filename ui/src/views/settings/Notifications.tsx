import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../../api/client";
import type { Preferences, TestResult } from "../../api/models";
import { Empty, ErrorNote, Spinner } from "../../components/ui";

// Notification settings: web push on this device, preferences and quiet hours, chat/webhook
// channels, native devices, and the delivery log. Every target has a "Send test".

type NotifyKind = NonNullable<Preferences["events"]>[number];

const KINDS: [NotifyKind, string][] = [
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
  const { public_key } = await api.get("/api/notifications/vapid-key");
  const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(public_key) });
  const keys = sub.toJSON().keys ?? {};
  await api.post("/api/notifications/subscribe", {
    endpoint: sub.endpoint,
    keys: { p256dh: keys.p256dh ?? "", auth: keys.auth ?? "" },
  });
}

async function disablePush(): Promise<void> {
  const reg = await navigator.serviceWorker?.getRegistration();
  const sub = await reg?.pushManager.getSubscription();
  if (!sub) return;
  await api.post("/api/notifications/unsubscribe", { endpoint: sub.endpoint });
  await sub.unsubscribe();
}

/** "Send test" for one target: ``send`` posts to that target's own test route. */
function TestButton({ send }: { send: () => Promise<TestResult> }) {
  const test = useMutation({ mutationFn: send });
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
  const subs = useQuery({ queryKey: ["push-subs"], queryFn: () => api.get("/api/notifications/subscriptions") });
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
          <TestButton send={() => api.post("/api/notifications/subscriptions/{sub_id}/test", undefined, { path: { sub_id: s.id } })} />
        </div>
      ))}
    </div>
  );
}

function PrefsSection() {
  const qc = useQueryClient();
  const prefs = useQuery({ queryKey: ["notify-prefs"], queryFn: () => api.get("/api/notifications/preferences") });
  const save = useMutation({
    mutationFn: (p: Preferences) => api.put("/api/notifications/preferences", p),
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
          <input type="checkbox" name={k} defaultChecked={p.events?.includes(k)} /> {label}
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

const URL_HINTS: Record<string, string> = {
  slack: "Incoming webhook URL",
  discord: "Incoming webhook URL",
  webhook: "Your endpoint's URL",
  apprise: "Apprise URL, e.g. ntfy://ntfy.sh/topic or tgram://token/chat-id",
};

// Slack's Request URL for a channel with buttons: where the Slack app posts Approve/Reject clicks.
function slackRequestUrl(id: string): string {
  return `${window.location.origin}/api/notifications/slack/${id}/interactions`;
}

function ChannelsSection() {
  const qc = useQueryClient();
  const [secret, setSecret] = useState<string | null>(null);
  const [kind, setKind] = useState("slack");
  const [requestUrl, setRequestUrl] = useState<string | null>(null);
  const [socketMode, setSocketMode] = useState(false);
  const list = useQuery({ queryKey: ["channels"], queryFn: () => api.get("/api/notifications/channels") });
  const refresh = () => qc.invalidateQueries({ queryKey: ["channels"] });
  const add = useMutation({
    mutationFn: (b: { kind: string; name: string; config: Record<string, unknown> }) => api.post("/api/notifications/channels", b),
    onSuccess: (c, b) => {
      setSecret(c.secret ?? null);
      setRequestUrl(b.config.signing_secret ? slackRequestUrl(c.id) : null);
      setSocketMode(Boolean(b.config.app_token));
      void refresh();
    },
  });
  const del = useMutation({
    mutationFn: (id: string) => api.delete("/api/notifications/channels/{channel_id}", { path: { channel_id: id } }),
    onSuccess: refresh,
  });
  return (
    <div className="card stack" aria-label="Channels">
      <h3>Slack, Discord, webhooks and Apprise</h3>
      {list.data?.data.map((c) => (
        <div key={c.id} className="row">
          <strong>{c.name}</strong>
          <span className="muted small">{c.kind}</span>
          <TestButton send={() => api.post("/api/notifications/channels/{channel_id}/test", undefined, { path: { channel_id: c.id } })} />
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
          const url = String(f.get("url") ?? "").trim();
          const config: Record<string, unknown> = kind === "slack" && !url ? {} : { url };
          const signing = String(f.get("signing_secret") ?? "").trim();
          // A bot token posts (and later updates) the message; an app-level token adds Socket Mode.
          const bot = String(f.get("bot_token") ?? "").trim();
          const appToken = String(f.get("app_token") ?? "").trim();
          if (kind === "slack" && bot) {
            config.bot_token = bot;
            config.channel = String(f.get("slack_channel") ?? "").trim();
          }
          if (kind === "slack" && appToken) config.app_token = appToken;
          if (kind === "slack" && signing) config.signing_secret = signing;
          if (kind === "slack" && (signing || appToken)) {
            config.approvers = String(f.get("approvers") ?? "")
              .split(/[\s,]+/)
              .filter(Boolean);
          }
          add.mutate({ kind, name: String(f.get("name") || kind), config });
        }}
      >
        <select name="kind" aria-label="Kind" value={kind} onChange={(e) => setKind(e.target.value)}>
          <option value="slack">Slack</option>
          <option value="discord">Discord</option>
          <option value="webhook">Webhook (signed)</option>
          <option value="apprise">Apprise (ntfy, Telegram, email…)</option>
        </select>
        <input name="name" placeholder="Name" aria-label="Name" />
        <input
          name="url"
          placeholder={kind === "slack" ? "Incoming webhook URL (or use a bot token)" : URL_HINTS[kind]}
          aria-label="URL"
          required={kind !== "slack"}
        />
        {kind === "slack" && (
          <>
            <input
              name="signing_secret"
              type="password"
              autoComplete="off"
              placeholder="Slack app signing secret (for Approve/Reject buttons)"
              aria-label="Slack signing secret"
            />
            <input name="approvers" placeholder="Approver Slack user ids, e.g. U012AB3CD" aria-label="Slack approvers" />
            <input name="bot_token" type="password" autoComplete="off" placeholder="Bot token xoxb-… (updates answered messages)" aria-label="Slack bot token" />
            <input name="slack_channel" placeholder="Slack channel id, e.g. C012AB3CD" aria-label="Slack channel id" />
            <input name="app_token" type="password" autoComplete="off" placeholder="App-level token xapp-… (Socket Mode: no public URL)" aria-label="Slack app-level token" />
          </>
        )}
        <button className="primary">Add</button>
      </form>
      {secret && (
        <div className="note">
          Signing secret (shown once; verify with any Standard Webhooks library): <code>{secret}</code>
        </div>
      )}
      {requestUrl && (
        <div className="note" aria-label="Slack buttons set-up">
          In your Slack app, turn on Interactivity and set the Request URL to <code>{requestUrl}</code> (Slack must be able to
          reach it).
        </div>
      )}
      {socketMode && (
        <div className="note" aria-label="Slack Socket Mode set-up">
          Socket Mode: in your Slack app, turn on Socket Mode and Interactivity; Codeyard connects to Slack itself, no public
          URL needed. Invite the bot to the channel.
        </div>
      )}
      {add.error && <ErrorNote error={add.error} />}
    </div>
  );
}

function DevicesSection() {
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ["devices"], queryFn: () => api.get("/api/devices") });
  const del = useMutation({
    mutationFn: (id: string) => api.delete("/api/devices/{device_id}", { path: { device_id: id } }),
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
          <TestButton send={() => api.post("/api/devices/{device_id}/test", undefined, { path: { device_id: d.id } })} />
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
    queryFn: () => api.get("/api/notifications/deliveries", { query: { limit: 20 } }),
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
