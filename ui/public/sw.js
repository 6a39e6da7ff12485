// Codeyard's service worker: shows push notifications and answers approvals from them.
// Payloads (decrypted by the browser) carry kind, title, body, tag, url, and for an approval
// that may be answered outside the app an action_token and action_url (single use, short-lived).
// Chromium shows Approve/Reject buttons, which POST the token directly; browsers without
// notification actions (Safari/iOS, Firefox) open the one-tap page at action_url instead.
// An "approval.resolved" push carries the same tag, so it replaces the stale alert.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { title: "Codeyard", body: event.data ? event.data.text() : "" };
  }
  const actions =
    data.action_token && "actions" in Notification.prototype
      ? [
          { action: "approve", title: "Approve" },
          { action: "reject", title: "Reject" },
        ]
      : [];
  const options = {
    body: data.body || "",
    tag: data.tag || undefined,
    renotify: data.kind !== "approval.resolved",
    requireInteraction: data.kind === "approval" || data.kind === "budget",
    icon: "/icon-192.png",
    badge: "/icon-192.png",
    data,
    actions,
  };
  event.waitUntil(self.registration.showNotification(data.title || "Codeyard", options));
});

// Same-origin paths: the worker answers the server it was installed from.
const actionPath = (data) => `/api/notifications/actions/${encodeURIComponent(data.action_token)}`;
const appPath = (data) => (data.url ? new URL(data.url, self.location.origin).pathname : "/");

async function answer(data, decision) {
  const resp = await fetch(actionPath(data), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ decision }),
    credentials: "omit",
  });
  let title = decision === "approved" ? "Approved" : "Rejected";
  if (!resp.ok) {
    const problem = await resp.json().catch(() => ({}));
    title = "Not answered";
    data = { ...data, body: problem.detail || `HTTP ${resp.status}` };
  }
  await self.registration.showNotification(title, {
    body: data.body || "",
    tag: data.tag,
    renotify: false,
    icon: "/icon-192.png",
    data: { url: appPath(data) },
  });
}

async function open(url) {
  const all = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const client of all) {
    if ("focus" in client && new URL(client.url).origin === self.location.origin) {
      await client.focus();
      if ("navigate" in client) return client.navigate(url);
      return undefined;
    }
  }
  return self.clients.openWindow(url);
}

self.addEventListener("notificationclick", (event) => {
  const data = event.notification.data || {};
  event.notification.close();
  if (event.action === "approve" || event.action === "reject") {
    event.waitUntil(answer(data, event.action === "approve" ? "approved" : "rejected"));
    return;
  }
  // No action buttons here (or the body was tapped): the one-tap page if there is a token.
  event.waitUntil(open(data.action_token ? actionPath(data) : appPath(data)));
});
