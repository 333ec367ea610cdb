// The browser's backend (web.ts) against a stand-in hub: the network and the stream are fakes, the
// inbox model (inboxModel.ts) is the real one.

import { render, screen } from "@testing-library/svelte";
import { describe, expect, test, vi } from "vitest";
import SignIn from "../components/SignIn.svelte";
import App from "../App.svelte";
import { applyEvents, emptyInbox, inboxCounts, inboxPage, searchInbox, type HubEvent } from "./inboxModel";
import { agent, handoff, memoryBackend, message } from "./memoryBackend";
import type { Contact, Conversation, DeskStatus, Update } from "./types";
import { base64UrlBytes, commandRequest, draftKey, parseFrame, reconnectDelay, safeLink, webBackend, type PushEnv, type PushSubscriptionLike, type WebEnv } from "./web";
import NotificationSettingsView from "../components/NotificationSettings.svelte";
import { inbox as testInbox } from "../testInbox";

const AT = "2026-11-30T09:00:00Z";
const ana = agent("ag_ana", "Ana", "admin");

function conversation(id: string, contact: string | null = null): Conversation {
  return { id, channel_id: "ch", contact_id: contact, created_at: AT };
}

function contact(id: string, name: string): Contact {
  return { id, channel_id: "ch", name, attributes: {}, created_at: AT };
}

const snapshot = {
  seq: 3,
  contacts: [contact("u_sam", "Sam Brooks")],
  conversations: [conversation("t_sam", "u_sam")],
  handoffs: [handoff("ho_sam", "t_sam", "Parcel late")],
  agents: [ana],
  notes: [],
  templates: [],
  tags: { tags: ["vip"] },
  reads: [],
};

/** A browser's WebSocket, driven by the test. */
class FakeSocket {
  static opened: FakeSocket[] = [];
  onmessage: ((e: MessageEvent) => void) | null = null;
  onclose: (() => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeSocket.opened.push(this);
  }
  frame(value: unknown): void {
    this.onmessage?.({ data: JSON.stringify(value) } as MessageEvent);
  }
  close(): void {
    this.closed = true;
    this.onclose?.();
  }
}

interface Hub {
  env: WebEnv;
  requests: Array<{ method: string; url: string; body: unknown }>;
  /** What the hub answers, by "METHOD /path" (the query left out). */
  answers: Map<string, (url: string, body: unknown) => unknown>;
  down: boolean;
  timers: Array<() => void>;
  /** The browser's network coming (true) or going (false). */
  network: (online: boolean) => void;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

/** A hub where Ana is signed in, with Sam waiting, and the given storage. */
function fakeHub(storage: Storage = new MemoryStorage()): Hub {
  const hub: Hub = {
    requests: [],
    answers: new Map<string, (url: string, body: unknown) => unknown>([
      ["GET /api/v1/me", () => ana],
      ["GET /api/v1/snapshot", () => snapshot],
      ["GET /api/v1/messages", (url) => ({ messages: url.includes("conversation=") ? [] : [{ ...message("m_1", "t_sam", "Where is my parcel?"), author_id: "u_sam" }], next: null, total: 1 })],
      ["GET /api/v1/events", () => ({ events: [], next: 3 })],
      ["POST /api/v1/login", () => ({ agent: ana })],
    ]),
    down: false,
    timers: [],
    network: () => {},
    env: undefined as unknown as WebEnv,
  };
  hub.env = {
    fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = String(input);
      const method = init?.method ?? "GET";
      const body = typeof init?.body === "string" ? JSON.parse(init.body) : init?.body;
      hub.requests.push({ method, url, body });
      if (hub.down) throw new TypeError("Failed to fetch");
      const answer = hub.answers.get(`${method} ${url.split("?")[0]}`);
      if (!answer) return json(200, { events: [] });
      const value = answer(url, body);
      return value instanceof Response ? value : json(200, value);
    }) as typeof fetch,
    WebSocket: FakeSocket as unknown as typeof WebSocket,
    storage,
    origin: "https://baton.example.com",
    setTimeout: (f) => hub.timers.push(f),
    clearTimeout: () => {},
    onNetwork: (handler) => (hub.network = handler),
  };
  return hub;
}

class MemoryStorage implements Storage {
  private items = new Map<string, string>();
  get length(): number {
    return this.items.size;
  }
  clear(): void {
    this.items.clear();
  }
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  key(index: number): string | null {
    return [...this.items.keys()][index] ?? null;
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

/** Lets the backend's pending promises run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

async function signedIn(hub = fakeHub()) {
  FakeSocket.opened = [];
  const backend = webBackend(hub.env);
  const updates: Update[] = [];
  const statuses: DeskStatus[] = [];
  await backend.onUpdate((u) => updates.push(u));
  await backend.onStatus((s) => statuses.push(s));
  const status = await backend.deskStatus();
  await settle();
  return { backend, hub, updates, statuses, status, socket: () => FakeSocket.opened.at(-1) };
}

describe("the inbox kept in memory", () => {
  const handoffEvent = (seq: number, h = handoff("ho_sam", "t_sam", "Parcel late")): HubEvent => ({ seq, kind: "handoff", data: h });

  test("events after the cursor are applied in order and move it", () => {
    const inbox = emptyInbox("ag_ana");
    const applied = applyEvents(inbox, [
      { seq: 1, kind: "conversation", data: conversation("t_sam", "u_sam") },
      { seq: 2, kind: "contact", data: contact("u_sam", "Sam Brooks") },
      handoffEvent(3),
      { seq: 4, kind: "message", data: { ...message("m_1", "t_sam", "Where is my parcel?"), author_id: "u_sam" } },
    ]);
    expect(inbox.seq).toBe(4);
    expect(applied.newHandoffs.map((h) => h.id)).toEqual(["ho_sam"]);
    expect(applied.customerMessages.map((m) => m.id)).toEqual(["m_1"]);
    const row = inboxPage(inbox, "pending", { unread: false, sort: "waiting" }, 0, 10).rows[0];
    expect(row?.customer).toBe("Sam Brooks");
    expect(row?.last_message?.text).toBe("Where is my parcel?");
    expect(row?.unread).toBe(true);
    expect(inboxCounts(inbox)).toMatchObject({ pending: 1, open: 1, unread: 1 });
  });

  test("an event applied twice changes nothing, and one past a hole is not applied", () => {
    const inbox = emptyInbox("ag_ana");
    applyEvents(inbox, [handoffEvent(1)]);
    expect(applyEvents(inbox, [handoffEvent(1)]).newHandoffs).toEqual([]);
    const taken = applyEvents(inbox, [handoffEvent(3, handoff("ho_sam", "t_sam", "Parcel late", "assigned", "ag_ana"))]);
    expect(taken.gap).toBe(true);
    expect(inbox.seq).toBe(1);
    expect(inbox.handoffs.get("ho_sam")?.status).toBe("pending");
  });

  test("a handoff changing hands is news, and only my own read marks count", () => {
    const inbox = emptyInbox("ag_ana");
    applyEvents(inbox, [handoffEvent(1), { seq: 2, kind: "message", data: message("m_1", "t_sam", "Hello") }]);
    const moved = applyEvents(inbox, [handoffEvent(3, handoff("ho_sam", "t_sam", "Parcel late", "assigned", "ag_bob"))]);
    expect(moved.handedOver.map((h) => h.assignee)).toEqual(["ag_bob"]);
    applyEvents(inbox, [{ seq: 4, kind: "read", data: { agent_id: "ag_bob", conversation_id: "t_sam", read_at: "2026-11-30T10:00:00Z", unread: false } }]);
    expect(inbox.reads.size).toBe(0);
    applyEvents(inbox, [{ seq: 5, kind: "read", data: { agent_id: "ag_ana", conversation_id: "t_sam", read_at: "2026-11-30T10:00:00Z", unread: false } }]);
    expect(inbox.reads.get("t_sam")?.read_at).toBe("2026-11-30T10:00:00Z");
  });

  test("an event of a kind this build does not know only moves the cursor", () => {
    const inbox = emptyInbox("ag_ana");
    expect(applyEvents(inbox, [{ seq: 1, kind: "reaction", data: {} }]).gap).toBe(false);
    expect(inbox.seq).toBe(1);
  });

  test("search finds every word of a message and marks them", () => {
    const inbox = emptyInbox("ag_ana");
    applyEvents(inbox, [handoffEvent(1), { seq: 2, kind: "message", data: message("m_1", "t_sam", "Where is my parcel?") }]);
    const hits = searchInbox(inbox, "PARCEL where", {});
    expect(hits.map((h) => [h.kind, h.snippet])).toEqual([["message", "[Where] is my [parcel]?"]]);
    expect(searchInbox(inbox, "parcel", {}).map((h) => h.kind)).toEqual(["message", "handoff"]);
  });

  test("the tests' in-memory backend lists and counts with the same functions", async () => {
    const backend = memoryBackend(testInbox());
    expect((await backend.handoffPage("pending", { unread: false, sort: "waiting" }, 0, 1)).total).toBe(2);
    expect(await backend.handoffCounts()).toMatchObject({ pending: 2, open: 2, unread: 2 });
  });
});

describe("commands", () => {
  test("every command carries a fresh txn_id, so the hub applies each click once", async () => {
    const { backend, hub } = await signedIn();
    hub.answers.set("POST /api/v1/handoffs/ho_sam/assign", () => ({ events: [] }));
    await backend.assign("ho_sam");
    await backend.assign("ho_sam");
    const sent = hub.requests.filter((r) => r.url === "/api/v1/handoffs/ho_sam/assign").map((r) => (r.body as { txn_id: string }).txn_id);
    expect(sent).toHaveLength(2);
    expect(sent[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(sent[0]).not.toBe(sent[1]);
  });

  test("each command travels on its route with the fields the hub reads", () => {
    expect(commandRequest({ action: "resolve", handoff_id: "h1", label: "refunded" }, "t1")).toEqual({ path: "/handoffs/h1/resolve", body: { txn_id: "t1", label: "refunded" } });
    expect(commandRequest({ action: "message", conversation_id: "c1", text: "Hi" }, "t2")).toEqual({ path: "/conversations/c1/messages", body: { txn_id: "t2", text: "Hi" } });
    expect(commandRequest({ action: "presence", status: "away" }, "t3")).toEqual({ path: "/presence", body: { txn_id: "t3", status: "away" } });
    expect(commandRequest({ action: "reject", message_id: "m1", reason: "rude" }, "t4")).toEqual({ path: "/messages/m1/reject", body: { txn_id: "t4", reason: "rude" } });
  });

  test("what the hub answers a command with shows at once", async () => {
    const { backend, hub } = await signedIn();
    hub.answers.set("POST /api/v1/handoffs/ho_sam/assign", () => ({ events: [{ seq: 4, kind: "handoff", data: handoff("ho_sam", "t_sam", "Parcel late", "assigned", "ag_ana") }] }));
    await backend.assign("ho_sam");
    expect((await backend.handoffCounts()).mine).toBe(1);
  });

  test("the hub's refusal is shown in its words", async () => {
    const { backend, hub } = await signedIn();
    hub.answers.set("POST /api/v1/handoffs/ho_sam/assign", () => json(409, { code: "conflict", message: "Bob already took this handoff" }));
    await expect(backend.assign("ho_sam")).rejects.toEqual({ code: "conflict", message: "Bob already took this handoff" });
  });

  test("a reply while the hub cannot be reached fails visibly and says the browser is offline", async () => {
    const { backend, hub, statuses } = await signedIn();
    hub.down = true;
    await expect(backend.sendMessage("t_sam", "On its way", null)).rejects.toMatchObject({ code: "offline", message: expect.stringContaining("Not sent") });
    expect(statuses.at(-1)?.connection?.state).toBe("offline");
  });

  test("what only the desktop does is refused with a reason, and there is no outbox", async () => {
    const { backend } = await signedIn();
    await expect(backend.useHub(null)).rejects.toMatchObject({ code: "desktop_only" });
    await expect(backend.sendTestHandoff()).rejects.toMatchObject({ code: "desktop_only" });
    await expect(backend.setBotpressWebhook("https://x")).rejects.toMatchObject({ code: "desktop_only" });
    expect(await backend.outbox()).toEqual([]);
  });
});

describe("signing in", () => {
  test("the browser's desk is the hub it came from, with no solo desk to offer", async () => {
    const { status } = await signedIn();
    expect(status).toMatchObject({ mode: "remote", hub_url: "https://baton.example.com", signed_in: true, solo_available: false, outbox_queued: 0 });
  });

  test("a browser without a session sees the sign-in form, and signing in asks for a cookie", async () => {
    const hub = fakeHub();
    hub.answers.set("GET /api/v1/me", () => json(401, { code: "unauthorized", message: "sign in" }));
    const backend = webBackend(hub.env);
    expect((await backend.deskStatus()).signed_in).toBe(false);
    hub.answers.set("GET /api/v1/me", () => ana);
    await backend.signIn("ana@example.com", "secret", "ignored");
    expect(hub.requests.find((r) => r.url === "/api/v1/login")?.body).toEqual({ email: "ana@example.com", password: "secret", cookie: true });
    expect((await backend.deskStatus()).signed_in).toBe(true);
    expect((await backend.handoffCounts()).pending).toBe(1);
  });

  test("the sign-in form asks no hub address in the browser", () => {
    const web = { ...memoryBackend(testInbox()), web: true };
    render(SignIn, { props: { backend: web, hubUrl: "https://baton.example.com", solo: false } });
    expect(screen.queryByTestId("hub-address")).toBeNull();
    expect(screen.queryByTestId("use-solo")).toBeNull();
    expect(screen.getByLabelText("Email")).toBeTruthy();
  });
});

describe("the live stream", () => {
  test("follows the hub from the snapshot's seq and goes live when caught up", async () => {
    const { socket, statuses } = await signedIn();
    expect(socket()?.url).toBe("wss://baton.example.com/api/v1/stream?after=3");
    socket()?.frame({ type: "caught_up", seq: 3 });
    await settle();
    expect(statuses.at(-1)?.connection).toEqual({ state: "live", seq: 3 });
  });

  test("a new event updates the lists and tells the UI", async () => {
    const { backend, socket, updates } = await signedIn();
    socket()?.frame([{ seq: 4, kind: "handoff", data: handoff("ho_olga", "t_olga", "Wrong size") }]);
    await settle();
    expect(updates).toContainEqual(expect.objectContaining({ type: "new_handoff" }));
    expect((await backend.handoffCounts()).pending).toBe(2);
  });

  test("a hole in the stream is filled by reading the log again from the cursor", async () => {
    const { backend, hub, socket } = await signedIn();
    hub.answers.set("GET /api/v1/events", (url) =>
      url.includes("after=3") ? { events: [{ seq: 4, kind: "handoff", data: handoff("ho_olga", "t_olga", "Wrong size") }], next: 4 } : { events: [], next: 5 },
    );
    socket()?.frame([{ seq: 5, kind: "handoff", data: handoff("ho_ravi", "t_ravi", "Refund") }]);
    await settle();
    expect(hub.requests.some((r) => r.url.startsWith("/api/v1/events?after=3"))).toBe(true);
    expect(backend.inbox.seq).toBe(4);
    expect(backend.inbox.handoffs.has("ho_olga")).toBe(true);
  });

  test("a dropped stream says offline, waits, and resumes from the last seq", async () => {
    const { hub, socket, statuses } = await signedIn();
    socket()?.frame([{ seq: 4, kind: "tags", data: { tags: [] } }]);
    await settle();
    socket()?.close();
    expect(statuses.at(-1)?.connection).toMatchObject({ state: "offline" });
    expect(hub.timers).toHaveLength(1);
    hub.timers[0]?.();
    await settle();
    expect(socket()?.url).toBe("wss://baton.example.com/api/v1/stream?after=4");
  });

  test("the browser's network going says offline at once, and its return reconnects without waiting", async () => {
    const { hub, socket, statuses } = await signedIn();
    hub.network(false);
    expect(statuses.at(-1)?.connection).toMatchObject({ state: "offline", error: "this device has no network" });
    socket()?.close();
    const before = FakeSocket.opened.length;
    hub.network(true);
    await settle();
    expect(FakeSocket.opened.length).toBe(before + 1);
  });

  test("the wait before reconnecting grows with each failure, up to half a minute", () => {
    expect(reconnectDelay(1, 1)).toBeLessThan(reconnectDelay(4, 1));
    for (let n = 0; n < 40; n++) expect(reconnectDelay(n, Math.random())).toBeLessThanOrEqual(30_000);
    expect(parseFrame('{"type":"caught_up","seq":7}')).toEqual({ events: [], caughtUp: 7 });
    expect(parseFrame('{"seq":1,"kind":"tags","data":{"tags":[]}}').events).toHaveLength(1);
  });
});

describe("in the browser", () => {
  test("a reload keeps what the agent was typing", async () => {
    const storage = new MemoryStorage();
    const first = await signedIn(fakeHub(storage));
    await first.backend.saveDraft("t_sam", "Let me check the tracking");
    const reloaded = await signedIn(fakeHub(storage));
    expect((await reloaded.backend.openConversation("t_sam")).draft).toBe("Let me check the tracking");
    await reloaded.backend.saveDraft("t_sam", "");
    expect(storage.getItem(draftKey("t_sam"))).toBeNull();
  });

  test("links open in a new tab only for web and mail addresses", async () => {
    expect(safeLink("https://example.com/track?id=1")).toBe("https://example.com/track?id=1");
    expect(safeLink("mailto:help@example.com")).toBe("mailto:help@example.com");
    expect(safeLink("javascript:alert(1)")).toBeNull();
    expect(safeLink("file:///etc/passwd")).toBeNull();
    expect(safeLink("not a link")).toBeNull();
    const open = vi.spyOn(window, "open").mockReturnValue(null);
    const { backend } = await signedIn();
    await backend.openLink("https://example.com/");
    expect(open).toHaveBeenCalledWith("https://example.com/", "_blank", "noopener,noreferrer");
    await expect(backend.openLink("javascript:alert(1)")).rejects.toMatchObject({ code: "bad_link" });
    expect(open).toHaveBeenCalledTimes(1);
    open.mockRestore();
  });

  test("the inbox says when the browser cannot reach the hub, and that nothing sent goes out", async () => {
    FakeSocket.opened = [];
    const hub = fakeHub();
    render(App, { props: { backend: webBackend(hub.env) } });
    await screen.findByText("Parcel late");
    const socket = await vi.waitFor(() => FakeSocket.opened.at(-1) ?? Promise.reject(new Error("no stream yet")));
    socket.close();
    const banner = await screen.findByTestId("offline-banner");
    expect(banner.textContent).toContain("this browser cannot reach the hub");
    expect(screen.getByTestId("connection").textContent).toContain("Offline");
  });

  test("notification settings stay in this browser", async () => {
    const storage = new MemoryStorage();
    const { backend } = await signedIn(fakeHub(storage));
    await backend.setNotificationSettings({ new_handoffs: false, assigned_to_me: true, customer_messages: true, escalations: true, sound: false });
    const again = webBackend(fakeHub(storage).env);
    expect(await again.notificationSettings()).toMatchObject({ new_handoffs: false, sound: false });
  });
});

/** The hub's VAPID public key: an uncompressed P-256 point (65 bytes, the first 4), base64url. */
const HUB_KEY = btoa(String.fromCharCode(4, ...Array.from({ length: 64 }, (_, i) => 250 - i)))
  .replace(/\+/g, "-")
  .replace(/\//g, "_")
  .replace(/=+$/, "");

/** A browser's Web Push: the agent answers the permission prompt with `answer`. */
function fakePush(answer: NotificationPermission = "granted", permission: NotificationPermission = "default") {
  let worker: (data: unknown) => void = () => {};
  const push = {
    permission,
    asked: 0,
    subscribedWith: [] as Uint8Array[],
    subscription: null as (PushSubscriptionLike & { unsubscribed: boolean }) | null,
    /** The service worker posting to this tab. */
    fromWorker: (data: unknown) => worker(data),
    env: undefined as unknown as PushEnv,
  };
  push.env = {
    permission: () => push.permission,
    requestPermission: async () => {
      push.asked += 1;
      if (push.permission === "default") push.permission = answer;
      return push.permission;
    },
    current: async () => push.subscription,
    subscribe: async (key) => {
      push.subscribedWith.push(key);
      const subscription = {
        endpoint: "https://push.example.net/send/abc",
        options: { applicationServerKey: key.buffer },
        unsubscribed: false,
        toJSON: () => ({ endpoint: "https://push.example.net/send/abc", expirationTime: null, keys: { p256dh: "BP256dh", auth: "authsecret" } }),
        unsubscribe: async () => {
          subscription.unsubscribed = true;
          push.subscription = null;
          return true;
        },
      };
      push.subscription = subscription;
      return subscription;
    },
    onMessage: (handler) => (worker = handler),
    timeZone: () => "Europe/Paris",
  };
  return push;
}

/** A hub with Web Push set up (or not), and a browser with push. */
function pushHub(push = fakePush(), webPush = true, storage: Storage = new MemoryStorage()): Hub {
  const hub = fakeHub(storage);
  hub.env.push = push.env;
  hub.answers.set("GET /api/v1/devices/web-push-key", () =>
    webPush ? { public_key: HUB_KEY } : json(404, { code: "not_found", message: "this hub has no Web Push (an admin sets it up with `baton-hub push web`)" }),
  );
  let devices = 0;
  hub.answers.set("POST /api/v1/devices", () => ({ id: `dv_${++devices}` }));
  return hub;
}

const devicePosts = (hub: Hub) => hub.requests.filter((r) => r.method === "POST" && r.url === "/api/v1/devices");

describe("notifications in the browser (Web Push)", () => {
  test("the hub's key is read from base64url as the 65 bytes of its point", () => {
    const bytes = base64UrlBytes(HUB_KEY);
    expect(bytes.length).toBe(65);
    expect(bytes[0]).toBe(4);
    expect(bytes[64]).toBe(187);
  });

  test("turning on asks the browser, subscribes with the hub's key and registers the subscription with the agent's settings", async () => {
    const push = fakePush();
    const { backend, hub } = await signedIn(pushHub(push));
    const settings = { new_handoffs: false, assigned_to_me: true, customer_messages: true, escalations: true, sound: true, quiet_from: "22:00", quiet_until: "07:00" };
    await backend.setNotificationSettings(settings);
    expect(await backend.browserPush?.state()).toBe("off");

    await backend.browserPush?.enable();

    expect(push.asked).toBe(1);
    expect([...(push.subscribedWith[0] ?? [])]).toEqual([...base64UrlBytes(HUB_KEY)]);
    expect(devicePosts(hub).map((r) => r.body)).toEqual([
      {
        platform: "web",
        subscription: { endpoint: "https://push.example.net/send/abc", expirationTime: null, keys: { p256dh: "BP256dh", auth: "authsecret" } },
        settings,
        time_zone: "Europe/Paris",
        language: "en",
        preview: "name",
      },
    ]);
    expect(await backend.browserPush?.state()).toBe("on");
  });

  test("the hub learns the language this browser's pushes should speak when the agent changes it", async () => {
    const { backend, hub } = await signedIn(pushHub());
    await backend.browserPush?.enable();
    const before = devicePosts(hub).length;
    await backend.setLanguage("en");
    expect(devicePosts(hub)).toHaveLength(before);
    await backend.setLanguage("fr");
    expect(devicePosts(hub).at(-1)?.body).toMatchObject({ platform: "web", language: "fr" });
  });

  test("changed notification settings reach the hub for this browser", async () => {
    const { backend, hub } = await signedIn(pushHub());
    await backend.browserPush?.enable();
    await backend.setNotificationSettings({ new_handoffs: true, assigned_to_me: true, customer_messages: false, escalations: true, sound: false });
    expect(devicePosts(hub).at(-1)?.body).toMatchObject({ platform: "web", settings: { customer_messages: false, sound: false } });
    expect(await backend.browserPush?.state()).toBe("on");
  });

  test("turning off removes the device from the hub and unsubscribes the browser", async () => {
    const push = fakePush();
    const { backend, hub } = await signedIn(pushHub(push));
    await backend.browserPush?.enable();
    const subscription = push.subscription;

    await backend.browserPush?.disable();

    expect(hub.requests.filter((r) => r.method === "DELETE").map((r) => r.url)).toEqual(["/api/v1/devices/dv_1"]);
    expect(subscription?.unsubscribed).toBe(true);
    expect(await backend.browserPush?.state()).toBe("off");
  });

  test("a hub without Web Push says it is unavailable, and nothing is subscribed", async () => {
    const push = fakePush();
    const { backend, hub } = await signedIn(pushHub(push, false));
    expect(await backend.browserPush?.state()).toBe("unavailable");
    await expect(backend.browserPush?.enable()).rejects.toMatchObject({ code: "unavailable" });
    expect(push.subscribedWith).toEqual([]);
    expect(devicePosts(hub)).toEqual([]);
  });

  test("a browser without push says unsupported, and one that blocked notifications says denied", async () => {
    const { backend } = await signedIn(fakeHub());
    expect(await backend.browserPush?.state()).toBe("unsupported");
    const blocked = await signedIn(pushHub(fakePush("denied")));
    await expect(blocked.backend.browserPush?.enable()).rejects.toMatchObject({ code: "denied" });
    expect(await blocked.backend.browserPush?.state()).toBe("denied");
  });

  test("signing out forgets this browser's device, as the hub does with the session", async () => {
    const push = fakePush();
    const { backend } = await signedIn(pushHub(push));
    await backend.browserPush?.enable();
    await backend.signOut();
    await settle();
    expect(push.subscription).toBeNull();
    expect(await backend.browserPush?.state()).toBe("off");
  });

  test("a page opened on ?conversation= opens it once the inbox is in", async () => {
    const hub = pushHub();
    hub.env.openedOn = () => "t_sam";
    const backend = webBackend(hub.env);
    const opened: string[] = [];
    await backend.onOpen((id) => opened.push(id));
    expect(opened).toEqual([]);
    await backend.deskStatus();
    await settle();
    expect(opened).toEqual(["t_sam"]);
  });

  test("a click on a notification, told by the service worker, opens that conversation", async () => {
    const push = fakePush();
    const { backend } = await signedIn(pushHub(push));
    const opened: string[] = [];
    await backend.onOpen((id) => opened.push(id));
    push.fromWorker({ type: "something else", conversation_id: "t_other" });
    push.fromWorker({ type: "open", conversation_id: "t_sam" });
    expect(opened).toEqual(["t_sam"]);
  });

  test("Settings offer to turn notifications on in this browser, then off", async () => {
    const { backend } = await signedIn(pushHub());
    render(NotificationSettingsView, { props: { backend } });
    expect((await screen.findByTestId("browser-push-state")).textContent).toBe("Off");
    (await screen.findByRole("button", { name: "Turn on notifications in this browser" })).click();
    expect((await screen.findByRole("button", { name: "Turn off notifications in this browser" })).textContent).toBe("Turn off");
    expect(screen.getByTestId("browser-push-state").textContent).toBe("On");
  });

  test("Settings say in words when the hub has no Web Push, and offer no button", async () => {
    const { backend } = await signedIn(pushHub(fakePush(), false));
    render(NotificationSettingsView, { props: { backend } });
    const row = await screen.findByRole("group", { name: "Notifications in this browser" });
    await vi.waitFor(() => expect(row.textContent).toContain("This hub has no Web Push set up"));
    expect(screen.queryByTestId("browser-push-toggle")).toBeNull();
  });
});
