// Baton's service worker (served at /app/sw.js, scope /app/): shows the hub's Web Push
// notifications while no tab is open, and opens their conversation when one is clicked.
// Plain JavaScript with no imports (it is copied as is, not bundled); src/lib/sw.test.ts runs
// this very file against a stand-in `self`.

/** The notification a push's JSON payload (`{title, body, conversation_id, kind}`) shows: one per
 * conversation (the tag), a newer one replacing it and ringing again. */
function notificationFor(payload) {
  const p = payload && typeof payload === "object" ? payload : {};
  const id = typeof p.conversation_id === "string" ? p.conversation_id : "";
  const options = { body: typeof p.body === "string" ? p.body : "", icon: "icons/icon-192.png", data: { conversation_id: id } };
  if (id) Object.assign(options, { tag: id, renotify: true });
  return { title: typeof p.title === "string" && p.title ? p.title : "Baton", options };
}

/** Where a clicked notification opens its conversation in a new window (relative to /app/). */
function openUrlFor(conversationId) {
  return conversationId ? "./?conversation=" + encodeURIComponent(conversationId) : "./";
}

function readPayload(data) {
  if (!data) return {};
  try {
    return data.json();
  } catch {
    return { body: data.text() };
  }
}

// It keeps nothing (no cache): a new version takes over at once.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  const { title, options } = notificationFor(readPayload(event.data));
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const id = (event.notification.data && event.notification.data.conversation_id) || "";
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      const open = windows.find((w) => new URL(w.url).pathname.startsWith(new URL(self.registration.scope).pathname));
      if (open) {
        if (id) open.postMessage({ type: "open", conversation_id: id });
        return open.focus();
      }
      return self.clients.openWindow(openUrlFor(id));
    }),
  );
});
