// The only module that talks to Tauri. Components get a `Backend` and never import Tauri, so tests
// and previews can pass another implementation.

import { addPluginListener, invoke } from "@tauri-apps/api/core";
import { fillTemplate, uploadKind } from "./format";
import { isMessageKey, t, type Language } from "./i18n.svelte";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  AgentCommand,
  CommandError,
  ConversationView,
  CustomerView,
  DeskStatus,
  HandoffCounts,
  HandoffFilter,
  HandoffPage,
  HandoffSummary,
  HandoffView,
  NotificationSettings,
  OutboxItem,
  ReportGroup,
  ReportRow,
  Presence,
  SearchFilters,
  SearchHit,
  Team,
  ChannelProblem,
  MediaFile,
  Update,
  Upload,
  WhatsAppTemplate,
} from "./types";

export type { HandoffView } from "./types";

/** Whether the hub can wake this browser with Web Push: the browser has no push, the hub has
 * none set up (404 for its key), not turned on here, on, or notifications blocked in the browser. */
export type BrowserPushState = "unsupported" | "unavailable" | "off" | "on" | "denied";

export interface Backend {
  /** A browser the hub serves the UI to (lib/web.ts): the hub is the page's origin (sign-in asks
   * no address) and what only the desktop app does is absent. */
  readonly web?: boolean;
  deskStatus(): Promise<DeskStatus>;
  listHandoffs(view?: HandoffView): Promise<HandoffSummary[]>;
  /** One window of a list: `limit` rows from `offset` on, narrowed by `filter`, with the total. */
  handoffPage(view: HandoffView, filter: HandoffFilter, offset: number, limit: number): Promise<HandoffPage>;
  /** How many handoffs each tab holds. */
  handoffCounts(): Promise<HandoffCounts>;
  /** Shows the conversation unread on all my devices until I open it again. */
  markUnread(conversationId: string): Promise<void>;
  /** What this device notifies me of. */
  notificationSettings(): Promise<NotificationSettings>;
  /** The window's language: what the app says outside it (notifications, the tray) follows. */
  setLanguage(language: Language): Promise<void>;
  /** Refused, with the reason, for quiet hours that are half set or not times. */
  setNotificationSettings(settings: NotificationSettings): Promise<void>;
  /** A conversation's messages; `read` (the default) also marks it read on all my devices. */
  openConversation(conversationId: string, read?: boolean): Promise<ConversationView>;
  customer(conversationId: string): Promise<CustomerView>;
  team(): Promise<Team>;
  /** Signs in to the hub at `hubUrl` (kept for next time); a different hub than the last one
   * starts this device's copy of the inbox afresh. */
  signIn(email: string, password: string, hubUrl: string): Promise<void>;
  /** Signs out of the team's hub: the token leaves the keychain and the sign-in form shows. */
  signOut(): Promise<void>;
  /** Switches the desk to the team hub at `hubUrl`, or back to the solo desk (`null`), and
   * restarts the app on it. */
  useHub(hubUrl: string | null): Promise<void>;
  // Agent commands: each carries a fresh txn_id so the hub applies it once.
  assign(handoffId: string): Promise<void>;
  release(handoffId: string): Promise<void>;
  transfer(handoffId: string, to: string): Promise<void>;
  resolve(handoffId: string, label: string | null): Promise<void>;
  cancel(handoffId: string): Promise<void>;
  setTags(handoffId: string, tags: string[]): Promise<void>;
  /** `replyTo`: the customer's message this answers (quoted on WhatsApp). */
  sendMessage(conversationId: string, text: string, replyTo?: string | null): Promise<void>;
  /** A file from the agent's computer (WhatsApp): uploaded to the hub, then sent as a message. */
  sendFile(conversationId: string, file: File, caption: string, replyTo?: string | null): Promise<void>;
  /** A reaction to one of the customer's messages (WhatsApp); `""` takes it back. */
  react(conversationId: string, messageId: string, emoji: string): Promise<void>;
  /** An image, file, video or audio by URL (what the channel's bot relays decides what is allowed). */
  sendAttachment(conversationId: string, attachment: Attachment): Promise<void>;
  addNote(conversationId: string, text: string): Promise<void>;
  /** A WhatsApp conversation's approved templates (all that may be sent once its window closed). */
  whatsappTemplates(conversationId: string): Promise<WhatsAppTemplate[]>;
  /** Channels that cannot send (admins only; empty for agents). */
  channelProblems(): Promise<ChannelProblem[]>;
  /** A customer's media file (kept on the device once fetched). */
  media(messageId: string): Promise<MediaFile>;
  /** Sends an approved template with its parameters filled in. */
  sendTemplate(conversationId: string, template: WhatsAppTemplate, parameters: string[]): Promise<void>;
  resend(messageId: string): Promise<void>;
  /** Opens a web or mail link from a message in the system browser (the app refuses others). */
  openLink(url: string): Promise<void>;
  /** Lets a bot's drafted reply go out: as drafted, or as `text` when edited. */
  approveDraft(messageId: string, text: string | null): Promise<void>;
  /** Keeps a bot's drafted reply from the customer, saying why. */
  rejectDraft(messageId: string, reason: string | null): Promise<void>;
  setPresence(status: Presence): Promise<void>;
  /** Solo mode: hands a test customer over through the desk's own Botpress endpoint, as the
   * integration would; answers the handoff's title. */
  sendTestHandoff(): Promise<string>;
  /** Solo mode: where replies go (the Botpress integration's webhook URL). */
  setBotpressWebhook(url: string): Promise<void>;
  /** The outbox: what waits for the hub and what it refused. */
  outbox(): Promise<OutboxItem[]>;
  retryOutbox(id: number): Promise<void>;
  editOutbox(id: number, text: string): Promise<void>;
  discardOutbox(id: number): Promise<void>;
  /** Admins: the team's figures for `since`–`until` (dates, both included), from this device's
   * copy (offline too). */
  report(since: string, until: string, by: ReportGroup): Promise<ReportRow[]>;
  /** Writes the same report as CSV to the Downloads folder; answers where. */
  exportReport(since: string, until: string, by: ReportGroup): Promise<string>;
  /** Searches the local cache; works offline. */
  search(text: string, filters: SearchFilters): Promise<SearchHit[]>;
  saveDraft(conversationId: string, text: string): Promise<void>;
  onUpdate(handler: (update: Update) => void): Promise<() => void>;
  onStatus(handler: (status: DeskStatus) => void): Promise<() => void>;
  /** A notification was clicked: the window shows its conversation. */
  onOpen(handler: (conversationId: string) => void): Promise<() => void>;
  /** The browser only (lib/web.ts): notifications from the hub while no tab is open (Web Push). */
  readonly browserPush?: {
    state(): Promise<BrowserPushState>;
    /** Asks the browser's permission (so only from a click), subscribes, registers with the hub. */
    enable(): Promise<void>;
    /** Unsubscribes and removes the device from the hub. */
    disable(): Promise<void>;
  };
}

/** Turns whatever a command rejected with into `{code, message}`, the message in the window's
 * language: the hub and the app write English, so another language says a known code in its own
 * words (`error.<code>` in the catalogs), with what they said as `{detail}` where it helps. */
export function asCommandError(err: unknown): CommandError {
  const { code, message: detail } = commandError(err);
  const key = `error.${code}`;
  return { code, message: isMessageKey(key) ? t(key, { detail }) : detail };
}

/** Whatever a command rejected with as `{code, message}`, as the app or the hub wrote it. */
function commandError(err: unknown): CommandError {
  if (typeof err === "object" && err !== null && "code" in err && "message" in err) {
    const e = err as { code: unknown; message: unknown };
    return { code: String(e.code), message: String(e.message) };
  }
  return { code: "unknown", message: typeof err === "string" ? err : String(err) };
}

async function call<T>(command: string, args?: Record<string, unknown> | Uint8Array, options?: { headers: Record<string, string> }): Promise<T> {
  try {
    return await invoke<T>(command, args, options);
  } catch (err) {
    throw commandError(err);
  }
}

function subscribe<T>(event: string, handler: (payload: T) => void): Promise<UnlistenFn> {
  return listen<T>(event, (e) => handler(e.payload));
}

/** What agents attach: a link to media the customer can open. */
export type AttachmentKind = "image" | "file" | "video" | "audio";
export interface Attachment {
  kind: AttachmentKind;
  url: string;
  title: string;
}

/** The Botpress payload of an attachment (ARCHITECTURE.md, Botpress protocol §1.5: `imageUrl`, `fileUrl` + `title`, …). */
export function attachmentPayload(a: Attachment): Record<string, string> {
  const payload: Record<string, string> = { [`${a.kind}Url`]: a.url.trim() };
  if (a.title.trim()) payload.title = a.title.trim();
  return payload;
}

/** The payload that sends an uploaded file (the hub checks it against WhatsApp's rules). */
export function filePayload(upload: Upload, caption: string, replyTo?: string | null): Record<string, string> {
  const payload: Record<string, string> = { upload: upload.upload, mime_type: upload.mime_type, filename: upload.filename };
  if (caption.trim() && uploadKind(upload.mime_type) !== "audio") payload.title = caption.trim();
  if (replyTo) payload.reply_to = replyTo;
  return payload;
}

/** A client-made id for one command; a retry of the same action reuses it. */
export function newTxnId(): string {
  return crypto.randomUUID();
}

/** The agent's actions as hub commands: the same mapping for every backend, each sending through
 * its own `run` (Rust's outbox in the app, the hub over HTTP in a browser). */
export function agentCommands(
  run: (command: AgentCommand) => Promise<void>,
): Pick<Backend, "assign" | "release" | "transfer" | "resolve" | "cancel" | "setTags" | "sendMessage" | "react" | "sendAttachment" | "addNote" | "sendTemplate" | "resend" | "approveDraft" | "rejectDraft" | "setPresence"> {
  return {
    assign: (handoff_id) => run({ action: "assign", handoff_id }),
    release: (handoff_id) => run({ action: "release", handoff_id }),
    transfer: (handoff_id, to) => run({ action: "transfer", handoff_id, to }),
    resolve: (handoff_id, label) => run({ action: "resolve", handoff_id, ...(label ? { label } : {}) }),
    cancel: (handoff_id) => run({ action: "cancel", handoff_id }),
    setTags: (handoff_id, tags) => run({ action: "tags", handoff_id, tags }),
    sendMessage: (conversation_id, text, replyTo) =>
      run(
        replyTo
          ? { action: "message", conversation_id, type: "text", payload: { text, reply_to: replyTo } }
          : { action: "message", conversation_id, text },
      ),
    react: (conversation_id, message_id, emoji) =>
      run({ action: "message", conversation_id, type: "reaction", payload: { message_id, emoji } }),
    sendAttachment: (conversation_id, attachment) =>
      run({
        action: "message",
        conversation_id,
        type: attachment.kind,
        payload: attachmentPayload(attachment),
      }),
    addNote: (conversation_id, text) => run({ action: "note", conversation_id, text }),
    sendTemplate: (conversation_id, template, parameters) =>
      run({
        action: "message",
        conversation_id,
        type: "template",
        payload: { name: template.name, language: template.language, parameters, text: fillTemplate(template.body, parameters) },
      }),
    resend: (message_id) => run({ action: "resend", message_id }),
    approveDraft: (message_id, text) => run(text === null ? { action: "approve", message_id } : { action: "approve", message_id, text }),
    rejectDraft: (message_id, reason) => run(reason === null ? { action: "reject", message_id } : { action: "reject", message_id, reason }),
    setPresence: (status) => run({ action: "presence", status }),
  };
}

/** Every agent command goes through one app command, typed as the Rust side declares it. */
function run(command: AgentCommand): Promise<void> {
  return call<void>("run_command", { command, txnId: newTxnId() });
}

export const tauriBackend: Backend = {
  deskStatus: () => call<DeskStatus>("desk_status"),
  listHandoffs: (view) => call<HandoffSummary[]>("list_handoffs", { status: view ?? null }),
  handoffPage: (view, filter, offset, limit) => call<HandoffPage>("handoff_page", { status: view, filter, offset, limit }),
  handoffCounts: () => call<HandoffCounts>("handoff_counts"),
  markUnread: (conversation_id) => run({ action: "unread", conversation_id }),
  notificationSettings: () => call<NotificationSettings>("notification_settings"),
  setLanguage: (language) => call<void>("set_language", { language }),
  setNotificationSettings: (settings) => call<void>("set_notification_settings", { settings }),
  openConversation: (conversationId, read = true) =>
    call<ConversationView>("open_conversation", { conversationId, read }),
  customer: (conversationId) => call<CustomerView>("customer", { conversationId }),
  team: () => call<Team>("team"),
  signIn: (email, password, hubUrl) => call<void>("sign_in", { email, password, hubUrl }),
  signOut: () => call<void>("sign_out"),
  useHub: (hubUrl) => call<void>("use_hub", { hubUrl }),
  ...agentCommands(run),
  sendFile: async (conversation_id, file, caption, replyTo) => {
    const upload = await call<Upload>("upload_file", new Uint8Array(await file.arrayBuffer()), {
      headers: { "x-filename": encodeURIComponent(file.name), "x-mime-type": file.type || "application/octet-stream" },
    });
    await run({ action: "message", conversation_id, type: uploadKind(upload.mime_type), payload: filePayload(upload, caption, replyTo) });
  },
  media: (messageId) => call<MediaFile>("media", { messageId }),
  channelProblems: () => call<ChannelProblem[]>("channel_problems"),
  whatsappTemplates: (conversationId) => call<WhatsAppTemplate[]>("whatsapp_templates", { conversationId }),
  openLink: (url) => call<void>("open_link", { url }),
  setBotpressWebhook: (url) => call<void>("set_botpress_webhook", { url }),
  sendTestHandoff: () => call<string>("send_test_handoff"),
  outbox: () => call<OutboxItem[]>("outbox_list"),
  retryOutbox: (id) => call<void>("outbox_retry", { id }),
  editOutbox: (id, text) => call<void>("outbox_edit", { id, text, txnId: newTxnId() }),
  discardOutbox: (id) => call<void>("outbox_discard", { id }),
  search: (text, filters) => call<SearchHit[]>("search", { text, filters }),
  report: (since, until, by) => call<ReportRow[]>("report", { since, until, by }),
  exportReport: (since, until, by) => call<string>("export_report", { since, until, by }),
  saveDraft: (conversationId, text) => call<void>("save_draft", { conversationId, text }),
  onUpdate: (handler) => subscribe<Update>("baton:update", handler),
  onStatus: (handler) => subscribe<DeskStatus>("baton:status", handler),
  onOpen: async (handler) => {
    const stopDesktop = await subscribe<string>("baton:open", handler);
    // Not waited for: on a desktop the phones' plugin is absent and its call only fails.
    let stopPhone = (): void => {};
    void onNotificationTapped(handler).then((stop) => {
      stopPhone = stop;
    });
    return () => {
      stopDesktop();
      stopPhone();
    };
  },
};

/** On a phone, a tapped notification (a local one, or a push that woke the app, even from cold)
 * names its conversation in `conversation_id`. The notifications plugin exists only on phones:
 * on a desktop this listens to nothing. */
async function onNotificationTapped(handler: (conversationId: string) => void): Promise<() => void> {
  try {
    const listener = await addPluginListener<{ data?: Record<string, string> }>("notifications", "notificationClicked", (tap) => {
      const conversation = tap.data?.conversation_id;
      if (conversation) handler(conversation);
    });
    // Hands over a tap that launched the app before anyone listened.
    await invoke("plugin:notifications|set_click_listener_active", { active: true });
    return () => void listener.unregister();
  } catch {
    return () => {};
  }
}
