// The Backend of a browser that the hub serves the UI to (at /app/): the same inbox as the desktop
// app, over the hub's agent API on the page's own origin. Signed in by an HttpOnly cookie the
// page never sees. The inbox is kept in memory (inboxModel.ts): a snapshot and the recent
// messages after sign-in, then the hub's event stream, resumed from the last seq after a break.
// There is no outbox: the browser works online, says so when it is not, and keeps drafts in
// localStorage so a reload (or a dropped connection) never loses what the agent was typing.

import { agentCommands, filePayload, newTxnId, type Backend } from "./backend";
import { uploadKind } from "./format";
import { language } from "./i18n.svelte";
import {
  applyConfirmed,
  applyEvents,
  applySnapshot,
  customerOf,
  customerView,
  emptyInbox,
  inboxCounts,
  inboxPage,
  isUnread,
  messagesOf,
  putMessage,
  reportCsv,
  reportOf,
  searchInbox,
  type Applied,
  type HubEvent,
  type Inbox,
  type SnapshotPage,
} from "./inboxModel";
import type { AgentCommand, Agent, CommandError, ConnectionState, DeskStatus, Message, NotificationSettings, ReportRow, Update, Upload } from "./types";

const API = "/api/v1";

/** What the desktop app alone does; the browser says so instead of pretending. */
export const DESKTOP_ONLY: CommandError = { code: "desktop_only", message: "Only the Baton desktop app can do this; this browser works with the team's hub." };

/** Why a command did not reach the hub: the browser keeps no outbox, so it is not sent. */
export function offlineError(detail: string): CommandError {
  return { code: "offline", message: `Not sent: the hub cannot be reached (${detail}). Your draft is kept; try again when the connection is back.` };
}

/** Links from messages open in a new tab only for web and mail addresses. */
export function safeLink(url: string): string | null {
  try {
    const parsed = new URL(url);
    return ["http:", "https:", "mailto:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

/** Where a conversation's draft is kept in this browser. */
export function draftKey(conversationId: string): string {
  return `baton.draft.${conversationId}`;
}

const NOTIFICATIONS_KEY = "baton.notifications";
/** This browser's Web Push device at the hub: `{id, endpoint}`. */
const PUSH_DEVICE_KEY = "baton.pushDevice";

/** The bytes of a base64url string (the hub's VAPID public key, an uncompressed P-256 point). */
export function base64UrlBytes(text: string): Uint8Array<ArrayBuffer> {
  const base64 = text.trim().replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  const bytes = new Uint8Array(new ArrayBuffer(binary.length));
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function sameBytes(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a) return false;
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

/** A browser's push subscription, as much of it as Baton uses. */
export interface PushSubscriptionLike {
  readonly endpoint: string;
  readonly options?: { readonly applicationServerKey: ArrayBuffer | null };
  toJSON(): PushSubscriptionJSON;
  unsubscribe(): Promise<boolean>;
}

/** The browser's Web Push: its service worker (public/sw.js), permission and subscription. */
export interface PushEnv {
  permission(): NotificationPermission;
  /** Asks the agent (only from a click). */
  requestPermission(): Promise<NotificationPermission>;
  /** This page's subscription, if any, without registering the service worker. */
  current(): Promise<PushSubscriptionLike | null>;
  /** Registers the service worker and subscribes with the hub's key. */
  subscribe(applicationServerKey: Uint8Array<ArrayBuffer>): Promise<PushSubscriptionLike>;
  /** Hears the service worker (a clicked notification: `{type: "open", conversation_id}`). */
  onMessage(handler: (data: unknown) => void): void;
  /** For quiet hours, e.g. "Europe/Paris". */
  timeZone(): string;
}

/** A conversation to open from the service worker's message, if it is one. */
export function openMessage(data: unknown): string | null {
  const m = data as { type?: unknown; conversation_id?: unknown } | null;
  return m && m.type === "open" && typeof m.conversation_id === "string" && m.conversation_id ? m.conversation_id : null;
}

/** The route and body a command travels as (crates/protocol/src/command.rs: `path`, `fields`). */
export function commandRequest(command: AgentCommand, txnId: string): { path: string; body: Record<string, unknown> } {
  const body: Record<string, unknown> = { txn_id: txnId };
  const put = (key: string, value: unknown): void => {
    if (value !== undefined && value !== null) body[key] = value;
  };
  switch (command.action) {
    case "message":
      put("text", command.text);
      put("type", command.type);
      put("payload", command.payload);
      return { path: `/conversations/${encodeURIComponent(command.conversation_id)}/messages`, body };
    case "note":
      put("text", command.text);
      return { path: `/conversations/${encodeURIComponent(command.conversation_id)}/notes`, body };
    case "read":
    case "unread":
      return { path: `/conversations/${encodeURIComponent(command.conversation_id)}/${command.action}`, body };
    case "resend":
      return { path: `/messages/${encodeURIComponent(command.message_id)}/resend`, body };
    case "approve":
      put("text", command.text);
      return { path: `/messages/${encodeURIComponent(command.message_id)}/approve`, body };
    case "reject":
      put("reason", command.reason);
      return { path: `/messages/${encodeURIComponent(command.message_id)}/reject`, body };
    case "presence":
      put("status", command.status);
      return { path: "/presence", body };
    case "transfer":
      put("to", command.to);
      break;
    case "resolve":
      put("label", command.label);
      break;
    case "tags":
      put("tags", command.tags);
      break;
    default:
      break;
  }
  return { path: `/handoffs/${encodeURIComponent(command.handoff_id)}/${command.action}`, body };
}

/** How long the stream waits before reconnecting after `failures` failures in a row: growing,
 * jittered, capped (as the desktop's crates/protocol/src/backoff.rs). */
export function reconnectDelay(failures: number, random: number = Math.random()): number {
  const min = 1000;
  const max = 30_000;
  const ceiling = Math.min(max, min * 2 ** Math.min(failures, 10));
  return Math.round(Math.max(min, ceiling * (0.5 + random / 2)));
}

/** A stream frame: an array of events, one event, or the hub's `caught_up` notice. */
export function parseFrame(text: string): { events: HubEvent[]; caughtUp: number | null } {
  const value: unknown = JSON.parse(text);
  if (Array.isArray(value)) return { events: value as HubEvent[], caughtUp: null };
  const object = value as { type?: string; seq?: number; kind?: string };
  if (object.type === "caught_up" && typeof object.seq === "number") return { events: [], caughtUp: object.seq };
  if (typeof object.seq === "number" && typeof object.kind === "string") return { events: [value as HubEvent], caughtUp: null };
  throw new Error("a stream frame is an array of events, an event or a notice");
}

class HubError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The hooks a test replaces: the network and the clock. */
export interface WebEnv {
  fetch: typeof fetch;
  WebSocket: typeof WebSocket;
  storage: Storage;
  origin: string;
  setTimeout: (f: () => void, ms: number) => unknown;
  clearTimeout: (id: unknown) => void;
  /** Hears the browser's own `online` and `offline` (its network came or went). */
  onNetwork?: (handler: (online: boolean) => void) => void;
  /** Web Push, where the browser has it. */
  push?: PushEnv;
  /** The conversation the page was opened on (`?conversation=ID`, from a clicked notification). */
  openedOn?: () => string | null;
}

function browserPushEnv(): PushEnv | undefined {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) return undefined;
  const container = navigator.serviceWorker;
  return {
    permission: () => Notification.permission,
    requestPermission: () => Notification.requestPermission(),
    current: async () => (await container.getRegistration("./"))?.pushManager.getSubscription() ?? null,
    subscribe: async (applicationServerKey) => {
      await container.register("./sw.js", { scope: "./" });
      const registration = await container.ready;
      return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
    },
    onMessage: (handler) => container.addEventListener("message", (event) => handler(event.data)),
    timeZone: () => Intl.DateTimeFormat().resolvedOptions().timeZone,
  };
}

/** `?conversation=ID` in the page's address, taken out of it (a reload does not open it again). */
function conversationInAddress(): string | null {
  const url = new URL(window.location.href);
  const id = url.searchParams.get("conversation");
  if (id === null) return null;
  url.searchParams.delete("conversation");
  window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  return id || null;
}

function browserEnv(): WebEnv {
  return {
    fetch: (input, init) => window.fetch(input, init),
    WebSocket: window.WebSocket,
    storage: window.localStorage,
    origin: window.location.origin,
    setTimeout: (f, ms) => window.setTimeout(f, ms),
    clearTimeout: (id) => window.clearTimeout(id as number),
    onNetwork: (handler) => {
      window.addEventListener("online", () => handler(true));
      window.addEventListener("offline", () => handler(false));
    },
    push: browserPushEnv(),
    openedOn: conversationInAddress,
  };
}

export function webBackend(env: WebEnv = browserEnv()): Backend & { readonly inbox: Inbox } {
  let inbox = emptyInbox();
  let me: Agent | null = null;
  let signedIn = false;
  let connection: ConnectionState | null = null;
  let syncedAt: string | null = null;
  let error: string | null = null;
  /** Conversations whose whole history is in memory. */
  const complete = new Set<string>();
  const updateHandlers = new Set<(u: Update) => void>();
  const statusHandlers = new Set<(s: DeskStatus) => void>();
  let socket: WebSocket | null = null;
  let retry: unknown = null;
  let failures = 0;
  /** Bumped at sign-in and sign-out: a stream of an earlier session stops acting. */
  let session = 0;
  let started: Promise<void> | null = null;
  /** Whether the inbox is loaded (a conversation to open waits for it). */
  let ready = false;
  const openHandlers = new Set<(conversationId: string) => void>();
  /** A conversation to open once the inbox is loaded and the window listens. */
  let pendingOpen: string | null = env.openedOn?.() ?? null;

  const status = (): DeskStatus => ({
    mode: "remote",
    hub_url: env.origin,
    endpoint_url: null,
    webhook_url: null,
    signed_in: signedIn,
    me,
    connection: signedIn ? connection : null,
    error,
    outbox_queued: 0,
    outbox_failed: 0,
    synced_at: syncedAt,
    history: null,
    solo_available: false,
    away_after_secs: 300,
  });
  const emitStatus = (): void => {
    const s = status();
    for (const h of statusHandlers) h(s);
  };
  const emit = (u: Update): void => {
    for (const h of updateHandlers) h(u);
  };
  /** Opens a conversation in the window (a clicked notification), now or once the inbox is in. */
  const openWhenReady = (conversationId: string | null): void => {
    if (conversationId) pendingOpen = conversationId;
    if (!ready || pendingOpen === null || openHandlers.size === 0) return;
    const id = pendingOpen;
    pendingOpen = null;
    for (const h of openHandlers) h(id);
  };
  env.push?.onMessage((data) => openWhenReady(openMessage(data)));
  const setConnection = (state: ConnectionState): void => {
    connection = state;
    if (state.state === "live") syncedAt = new Date().toISOString();
    emit({ type: "connection", state });
    emitStatus();
  };
  const announce = (applied: Applied): void => {
    for (const handoff of applied.newHandoffs) emit({ type: "new_handoff", handoff });
    for (const handoff of applied.handedOver) emit({ type: "handed_over", handoff });
    for (const handoff of applied.escalated) emit({ type: "escalated", handoff });
    for (const message of applied.customerMessages) emit({ type: "customer_wrote", message });
    if (applied.conversations.length > 0) emit({ type: "inbox_changed", conversations: applied.conversations });
    if (applied.teamChanged) emit({ type: "team_changed" });
  };

  /** A call of the agent API; the hub's refusals become `{code, message}`, and a network failure
   * (or a hub that is down) marks the browser offline. */
  async function request<T>(method: string, path: string, body?: unknown, init: RequestInit = {}): Promise<T> {
    let response: Response;
    try {
      response = await env.fetch(`${API}${path}`, {
        method,
        credentials: "same-origin",
        headers: body === undefined ? init.headers : { "content-type": "application/json", ...init.headers },
        body: body === undefined ? init.body : JSON.stringify(body),
      });
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      // The hub is out of reach: say so now. An open stream may not have noticed yet; closing it
      // starts the reconnecting (which checks with the hub again, and goes live when it answers).
      if (signedIn && connection?.state !== "offline") {
        setConnection({ state: "offline", error: detail, retry_in_ms: reconnectDelay(failures + 1) });
        socket?.close();
      }
      throw new HubError(0, "offline", detail);
    }
    if (response.ok) {
      const type = response.headers.get("content-type") ?? "";
      return (type.includes("json") ? await response.json() : await response.text()) as T;
    }
    let code = "http";
    let message = `the hub answered ${response.status}`;
    try {
      const b = (await response.json()) as { code?: string; message?: string };
      if (b.code) code = b.code;
      if (b.message) message = b.message;
    } catch {
      // Not the hub's error body (a proxy's page): the status says enough.
    }
    if (response.status === 401 && signedIn && path !== "/login") signedOutByHub();
    if (response.status >= 502 && response.status <= 504) throw new HubError(0, "offline", message);
    throw new HubError(response.status, code, message);
  }

  /** What the UI shows for a failure: the hub's words, or that it was not sent while offline. */
  function asShown(err: unknown): CommandError {
    if (err instanceof HubError) return err.code === "offline" ? offlineError(err.message) : { code: err.code, message: err.message };
    return { code: "unknown", message: String(err) };
  }

  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    try {
      return await request<T>(method, path, body);
    } catch (err) {
      throw asShown(err);
    }
  }

  /** An agent command, with a fresh txn_id: the hub applies it once however often it arrives.
   * Its answer (the events it caused) shows at once. */
  async function run(command: AgentCommand): Promise<void> {
    const { path, body } = commandRequest(command, newTxnId());
    const answer = await call<{ events?: HubEvent[] }>("POST", path, body);
    announce(applyConfirmed(inbox, answer.events ?? []));
  }

  function signedOutByHub(): void {
    if (signedIn) forgetSession();
  }

  /** Signed out (by the agent or the hub): nothing of the session stays in this page. */
  function forgetSession(): void {
    stop();
    signedIn = false;
    me = null;
    inbox = emptyInbox();
    complete.clear();
    void forgetPushDevice();
    emit({ type: "signed_out" });
    emitStatus();
  }

  function stop(): void {
    ready = false;
    session += 1;
    if (retry !== null) env.clearTimeout(retry);
    retry = null;
    const s = socket;
    socket = null;
    if (s) {
      s.onclose = null;
      s.onmessage = null;
      s.onerror = null;
      s.close();
    }
  }

  /** The snapshot, page by page (the cursor is the first page's seq). */
  async function loadSnapshot(): Promise<void> {
    let page = await request<SnapshotPage>("GET", "/snapshot");
    let first = true;
    for (;;) {
      applySnapshot(inbox, page, first);
      first = false;
      if (!page.next) break;
      page = await request<SnapshotPage>("GET", `/snapshot?page=${encodeURIComponent(page.next)}`);
    }
  }

  /** The recent messages (newest first from the hub): the lists' last lines and search. */
  async function loadRecentMessages(): Promise<void> {
    const page = await request<{ messages: Message[] }>("GET", "/messages?limit=2000");
    for (const m of page.messages) putMessage(inbox, m);
  }

  /** Reads the log after the cursor until the hub has no more (after a hole in the stream, or
   * before reconnecting); a cursor the hub no longer keeps (410) takes a fresh snapshot. */
  async function catchUp(): Promise<void> {
    for (;;) {
      let page: { events: HubEvent[] };
      try {
        page = await request<{ events: HubEvent[] }>("GET", `/events?after=${inbox.seq}&limit=1000`);
      } catch (err) {
        if (err instanceof HubError && err.status === 410) {
          await loadSnapshot();
          emit({ type: "inbox_changed", conversations: [...inbox.conversations.keys()] });
          continue;
        }
        throw err;
      }
      if (page.events.length === 0) return;
      const applied = applyEvents(inbox, page.events);
      announce(applied);
      // A hole in a page of the log itself is the hub's: start again from a snapshot.
      if (applied.gap) await loadSnapshot();
    }
  }

  function scheduleReconnect(why: string): void {
    if (!signedIn) return;
    failures += 1;
    const delay = reconnectDelay(failures);
    setConnection({ state: "offline", error: why, retry_in_ms: delay });
    const mine = session;
    retry = env.setTimeout(() => {
      retry = null;
      if (mine === session) void follow();
    }, delay);
  }

  /** One connection: catch up over HTTP (which tells a signed-out browser and a lost cursor
   * apart), then follow the stream from the cursor until it breaks. */
  async function follow(): Promise<void> {
    const mine = session;
    setConnection({ state: "connecting" });
    try {
      await catchUp();
    } catch (err) {
      if (mine === session) scheduleReconnect(err instanceof Error ? err.message : String(err));
      return;
    }
    if (mine !== session || !signedIn) return;
    const scheme = env.origin.startsWith("https:") ? "wss:" : "ws:";
    const ws = new env.WebSocket(`${scheme}//${env.origin.replace(/^https?:\/\//, "")}${API}/stream?after=${inbox.seq}`);
    socket = ws;
    let rereading: Promise<void> = Promise.resolve();
    ws.onmessage = (message: MessageEvent) => {
      if (mine !== session) return;
      let frame: ReturnType<typeof parseFrame>;
      try {
        frame = parseFrame(String(message.data));
      } catch {
        // Never skipped: what it held is read again from the log.
        rereading = rereading.then(catchUp).catch(() => {});
        return;
      }
      rereading = rereading
        .then(async () => {
          if (frame.events.length > 0) {
            const applied = applyEvents(inbox, frame.events);
            announce(applied);
            if (applied.gap) await catchUp();
          }
          if (frame.caughtUp !== null) {
            failures = 0;
            setConnection({ state: "live", seq: inbox.seq });
          } else if (connection?.state === "live") syncedAt = new Date().toISOString();
        })
        .catch(() => ws.close());
    };
    ws.onclose = () => {
      if (socket === ws) socket = null;
      if (mine === session) scheduleReconnect("the connection to the hub was lost");
    };
    ws.onerror = () => {};
  }

  // The browser knows before any request fails: offline at once, and back without waiting out
  // the backoff when its network returns.
  env.onNetwork?.((online) => {
    if (!signedIn) return;
    if (!online) {
      setConnection({ state: "offline", error: "this device has no network", retry_in_ms: reconnectDelay(failures + 1) });
      return;
    }
    if (retry !== null && socket === null) {
      env.clearTimeout(retry);
      retry = null;
      void follow();
    }
  });

  /** After sign-in (or a reload that finds the session): the inbox, then the stream. */
  async function start(agent: Agent): Promise<void> {
    stop();
    me = agent;
    signedIn = true;
    error = null;
    inbox = emptyInbox(agent.id);
    complete.clear();
    failures = 0;
    setConnection({ state: "connecting" });
    try {
      await loadSnapshot();
      await loadRecentMessages();
      syncedAt = new Date().toISOString();
    } catch (err) {
      if (!signedIn) return;
      scheduleReconnect(err instanceof Error ? err.message : String(err));
      emit({ type: "inbox_changed", conversations: [] });
      return;
    }
    emit({ type: "team_changed" });
    emit({ type: "inbox_changed", conversations: [...inbox.conversations.keys()] });
    emitStatus();
    ready = true;
    openWhenReady(null);
    void follow();
  }

  /** Whether the page was opened signed in (the cookie is sent with /me; the page cannot read it). */
  function begin(): Promise<void> {
    started ??= request<Agent>("GET", "/me")
      .then((agent) => start(agent))
      .catch((err: unknown) => {
        if (err instanceof HubError && err.status === 401) return;
        // The hub is out of reach: show the sign-in form; signing in tries again.
        error = asShown(err).message;
        emitStatus();
      });
    return started;
  }

  function readDraft(conversationId: string): string | null {
    try {
      return env.storage.getItem(draftKey(conversationId));
    } catch {
      return null;
    }
  }

  function storedPushDevice(): { id: string; endpoint: string } | null {
    try {
      const value = JSON.parse(env.storage.getItem(PUSH_DEVICE_KEY) ?? "null") as { id?: unknown; endpoint?: unknown } | null;
      return value && typeof value.id === "string" && typeof value.endpoint === "string" ? { id: value.id, endpoint: value.endpoint } : null;
    } catch {
      return null;
    }
  }

  /** The hub's key to subscribe with; `null` when it has no Web Push (404). */
  async function webPushKey(): Promise<string | null> {
    try {
      return (await request<{ public_key: string }>("GET", "/devices/web-push-key")).public_key;
    } catch (err) {
      if (err instanceof HubError && err.status === 404) return null;
      throw asShown(err);
    }
  }

  /** The window's language (it tells us: `setLanguage`), and the one this browser's device was
   * last registered with (`null`: not in this session). */
  let spokenLanguage: string = language();
  let registeredLanguage: string | null = null;

  /** Tells the hub where to wake this browser, with the agent's settings and language for it. */
  async function registerPush(subscription: PushSubscriptionLike, push: PushEnv): Promise<void> {
    const spoken = spokenLanguage;
    const answer = await call<{ id: string }>("POST", "/devices", {
      platform: "web",
      subscription: subscription.toJSON(),
      settings: await backend.notificationSettings(),
      time_zone: push.timeZone(),
      language: spoken,
      preview: "name",
    });
    registeredLanguage = spoken;
    env.storage.setItem(PUSH_DEVICE_KEY, JSON.stringify({ id: answer.id, endpoint: subscription.endpoint }));
  }

  /** Registers this browser's device again (new settings or language), if it has one here. */
  async function registerAgain(): Promise<void> {
    const device = storedPushDevice();
    const push = env.push;
    if (device && push && push.permission() === "granted") {
      const subscription = await push.current();
      if (subscription?.endpoint === device.endpoint) await registerPush(subscription, push);
    }
  }

  /** Signed out: the hub has forgotten this browser's device with the session; so does the
   * browser (the next agent here turns notifications on for themselves). */
  async function forgetPushDevice(): Promise<void> {
    if (!storedPushDevice()) return;
    env.storage.removeItem(PUSH_DEVICE_KEY);
    try {
      await (await env.push?.current())?.unsubscribe();
    } catch {
      // Already gone.
    }
  }

  const browserPush: NonNullable<Backend["browserPush"]> = {
    state: async () => {
      const push = env.push;
      if (!push) return "unsupported";
      if (push.permission() === "denied") return "denied";
      if ((await webPushKey()) === null) return "unavailable";
      const device = storedPushDevice();
      if (!device || push.permission() !== "granted") return "off";
      const subscription = await push.current();
      return subscription?.endpoint === device.endpoint ? "on" : "off";
    },
    enable: async () => {
      const push = env.push;
      if (!push) throw { code: "unsupported", message: "This browser cannot show notifications from the hub." };
      // First, while the click still counts: browsers ask only in answer to one.
      const permission = await push.requestPermission();
      if (permission !== "granted") throw { code: "denied", message: "Notifications are blocked in this browser's settings." };
      const key = await webPushKey();
      if (key === null) throw { code: "unavailable", message: "This hub has no Web Push (an admin sets it up with `baton-hub push web`)." };
      const bytes = base64UrlBytes(key);
      // A subscription made with another key (the hub's was replaced) is refused by the push service.
      const current = await push.current();
      if (current && !sameBytes(current.options?.applicationServerKey, bytes)) await current.unsubscribe();
      await registerPush(await push.subscribe(bytes), push);
    },
    disable: async () => {
      const device = storedPushDevice();
      if (device) {
        try {
          await request("DELETE", `/devices/${encodeURIComponent(device.id)}`);
        } catch (err) {
          // Already forgotten by the hub (signed out elsewhere, or the push service said gone).
          if (!(err instanceof HubError && err.status === 404)) throw asShown(err);
        }
        env.storage.removeItem(PUSH_DEVICE_KEY);
      }
      await (await env.push?.current())?.unsubscribe();
    },
  };

  const backend: Backend & { readonly inbox: Inbox } = {
    web: true,
    get inbox() {
      return inbox;
    },
    deskStatus: async () => {
      await begin();
      return status();
    },
    listHandoffs: async (view) => inboxPage(inbox, view ?? "pending", { unread: false, sort: "waiting" }, 0, Number.MAX_SAFE_INTEGER).rows,
    handoffPage: async (view, filter, offset, limit) => inboxPage(inbox, view, filter, offset, limit),
    handoffCounts: async () => inboxCounts(inbox),
    markUnread: async (conversation_id) => {
      await run({ action: "unread", conversation_id });
      const mark = inbox.reads.get(conversation_id);
      if (inbox.me) inbox.reads.set(conversation_id, { agent_id: inbox.me, conversation_id, read_at: mark?.read_at ?? new Date(0).toISOString(), unread: true });
      announce({ conversations: [conversation_id], newHandoffs: [], handedOver: [], escalated: [], customerMessages: [], teamChanged: false });
    },
    notificationSettings: async () => {
      const defaults: NotificationSettings = { new_handoffs: true, assigned_to_me: true, customer_messages: true, escalations: true, sound: true };
      try {
        return { ...defaults, ...(JSON.parse(env.storage.getItem(NOTIFICATIONS_KEY) ?? "{}") as Partial<NotificationSettings>) };
      } catch {
        return defaults;
      }
    },
    // What Web Push shows is written by the hub, in the language the device registered with.
    setLanguage: async (spoken) => {
      spokenLanguage = spoken;
      if (registeredLanguage !== spoken) await registerAgain();
    },
    setNotificationSettings: async (settings) => {
      if (!!settings.quiet_from !== !!settings.quiet_until) throw { code: "bad_request", message: "quiet hours need both a start and an end" };
      env.storage.setItem(NOTIFICATIONS_KEY, JSON.stringify(settings));
      // The hub decides what wakes this browser: it learns the new settings.
      await registerAgain();
    },
    openConversation: async (conversationId, read = true) => {
      if (!complete.has(conversationId)) {
        try {
          const page = await request<{ messages: Message[] }>("GET", `/messages?conversation=${encodeURIComponent(conversationId)}&limit=2000`);
          for (const m of page.messages) putMessage(inbox, m);
          complete.add(conversationId);
        } catch {
          // Offline: what is in memory shows.
        }
      }
      const handoff = [...inbox.handoffs.values()].find((h) => h.conversation_id === conversationId);
      if (read && inbox.me && handoff && isUnread(inbox, handoff)) {
        // Read here at once, up to the customer's last message by the hub's clock; the hub
        // tells my other devices.
        const at = inbox.lastCustomerAt.get(conversationId) ?? new Date().toISOString();
        inbox.reads.set(conversationId, { agent_id: inbox.me, conversation_id: conversationId, read_at: at, unread: false });
        void run({ action: "read", conversation_id: conversationId }).catch(() => {});
        setTimeout(() => announce({ conversations: [conversationId], newHandoffs: [], handedOver: [], escalated: [], customerMessages: [], teamChanged: false }), 0);
      }
      return { conversation_id: conversationId, customer: customerOf(inbox, conversationId), messages: messagesOf(inbox, conversationId), pending: [], draft: readDraft(conversationId) };
    },
    customer: async (conversationId) => customerView(inbox, conversationId),
    team: async () => ({
      agents: [...inbox.agents.values()].sort((a, b) => a.name.localeCompare(b.name)),
      tags: [...inbox.tags],
      templates: [...inbox.templates.values()].sort((a, b) => a.name.localeCompare(b.name)),
    }),
    signIn: async (email, password) => {
      const answer = await call<{ agent?: Agent }>("POST", "/login", { email, password, cookie: true });
      const agent = answer.agent ?? (await call<Agent>("GET", "/me"));
      started = Promise.resolve();
      await start(agent);
    },
    signOut: async () => {
      try {
        await request("POST", "/logout", {});
      } finally {
        forgetSession();
      }
    },
    useHub: async () => {
      throw DESKTOP_ONLY;
    },
    ...agentCommands(run),
    sendFile: async (conversation_id, file, caption, replyTo) => {
      let upload: Upload;
      try {
        upload = await request<Upload>("POST", `/uploads?filename=${encodeURIComponent(file.name)}`, undefined, {
          headers: { "content-type": file.type || "application/octet-stream" },
          body: file,
        });
      } catch (err) {
        throw asShown(err);
      }
      await run({ action: "message", conversation_id, type: uploadKind(upload.mime_type), payload: filePayload(upload, caption, replyTo) });
    },
    whatsappTemplates: (conversationId) => call("GET", `/conversations/${encodeURIComponent(conversationId)}/templates`),
    channelProblems: async () => {
      if (me?.role !== "admin") return [];
      const channels = await call<Array<{ name?: string; broken?: string }>>("GET", "/admin/channels");
      return channels.filter((c) => typeof c.name === "string" && typeof c.broken === "string").map((c) => ({ channel: c.name as string, reason: c.broken as string }));
    },
    media: async (messageId) => {
      let response: Response;
      try {
        response = await env.fetch(`${API}/media/${encodeURIComponent(messageId)}`, { credentials: "same-origin" });
      } catch (err) {
        throw offlineError(err instanceof Error ? err.message : String(err));
      }
      if (!response.ok) {
        const b = (await response.json().catch(() => ({}))) as { code?: string; message?: string };
        throw { code: b.code ?? "hub", message: b.message ?? `the hub answered ${response.status}` };
      }
      const blob = await response.blob();
      return { mime_type: response.headers.get("content-type") ?? blob.type, data_url: URL.createObjectURL(blob) };
    },
    openLink: async (url) => {
      const safe = safeLink(url);
      if (!safe) throw { code: "bad_link", message: `Only web and mail links open from a message, not ${JSON.stringify(url)}.` };
      window.open(safe, "_blank", "noopener,noreferrer");
    },
    sendTestHandoff: async () => {
      throw DESKTOP_ONLY;
    },
    setBotpressWebhook: async () => {
      throw DESKTOP_ONLY;
    },
    outbox: async () => [],
    retryOutbox: async () => {
      throw DESKTOP_ONLY;
    },
    editOutbox: async () => {
      throw DESKTOP_ONLY;
    },
    discardOutbox: async () => {
      throw DESKTOP_ONLY;
    },
    report: async (since, until, by) => {
      try {
        return await request<ReportRow[]>("GET", `/admin/report?${reportQuery(since, until, by)}`);
      } catch (err) {
        if (err instanceof HubError && err.code === "offline") throw asShown(err);
        return reportOf(inbox, since, until, by);
      }
    },
    exportReport: async (since, until, by) => {
      let csv: string;
      try {
        csv = await request<string>("GET", `/admin/report?${reportQuery(since, until, by)}&format=csv`);
      } catch {
        csv = reportCsv(reportOf(inbox, since, until, by));
      }
      const name = `baton-report-${since}-${until}-by-${by}.csv`;
      const link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv;charset=utf-8" }));
      link.download = name;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
      return name;
    },
    search: async (text, filters) => searchInbox(inbox, text, filters),
    saveDraft: async (conversationId, text) => {
      try {
        if (text) env.storage.setItem(draftKey(conversationId), text);
        else env.storage.removeItem(draftKey(conversationId));
      } catch {
        // Storage full or refused: the draft stays in the composer only.
      }
    },
    onUpdate: async (handler) => {
      updateHandlers.add(handler);
      return () => updateHandlers.delete(handler);
    },
    onStatus: async (handler) => {
      statusHandlers.add(handler);
      return () => statusHandlers.delete(handler);
    },
    // A clicked Web Push notification: the service worker's message to this tab, or a new tab
    // opened on `?conversation=ID`.
    onOpen: async (handler) => {
      openHandlers.add(handler);
      openWhenReady(null);
      return () => openHandlers.delete(handler);
    },
    browserPush,
  };
  return backend;
}

/** The hub's report covers `since` until the end of `until` (both dates included). */
function reportQuery(since: string, until: string, by: string): string {
  const end = new Date(`${until}T00:00:00Z`);
  end.setUTCDate(end.getUTCDate() + 1);
  return new URLSearchParams({ since, until: end.toISOString().slice(0, 10), by }).toString();
}

