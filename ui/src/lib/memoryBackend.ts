// A `Backend` that keeps an inbox in memory: for component tests (and previews) without Tauri.
// It behaves like the app where the UI can tell: actions change what the lists and conversations
// show, replies wait in an outbox that can refuse them, and search finds words in messages.

import { filePayload, type Attachment, type Backend, type HandoffView } from "./backend";
import { fillTemplate, uploadKind, withText } from "./format";
import { countsOf, inView, listed, matches, pageOf, searchWords, snippet, type ListFacts } from "./inboxModel";
import type {
  AgentCommand,
  ChannelProblem,
  MediaFile,
  NotificationSettings,
  WhatsAppTemplate,
  Agent,
  Contact,
  ConversationView,
  CustomerView,
  DeskStatus,
  Handoff,
  HandoffSummary,
  Message,
  OutboxItem,
  SearchHit,
  Team,
  Update,
} from "./types";

export interface MemoryInbox {
  /** Links the agent opened, in order. */
  opened?: string[];
  me: Agent;
  agents: Agent[];
  contacts: Contact[];
  handoffs: Handoff[];
  messages: Message[];
  outbox: OutboxItem[];
  drafts: Record<string, string>;
  /** Replies to these conversations are refused by the "hub" with this reason. */
  refuse: Record<string, string>;
  /** WhatsApp conversations, with when the customer last wrote. */
  whatsapp?: Record<string, string>;
  /** The WhatsApp templates every number offers. */
  templates?: WhatsAppTemplate[];
  /** Media files by message id. */
  media?: Record<string, MediaFile>;
  /** Channels that cannot send. */
  problems?: ChannelProblem[];
  /** Conversations I have read since the customer last wrote. */
  read?: string[];
  /** Conversations I marked unread. */
  markedUnread?: string[];
  notifications?: NotificationSettings;
  /** What the agent signed in with, and the hub they chose to switch to (`null`: solo). */
  signedInTo?: { email: string; hubUrl: string };
  hubChosen?: string | null;
  /** Remote mode, signed out: the sign-in form shows. */
  signedOut?: boolean;
  /** Solo mode: the desk's Botpress endpoint (Settings shows the setup steps). */
  endpointUrl?: string;
  /** Seconds of no input before I show as away. */
  awayAfterSecs?: number;
  /** My presence as the hub records it (set by setPresence). */
  presence?: Agent["presence"];
  /** The language the window told the app it speaks. */
  language?: string;
}

const AT = "2026-11-30T09:00:00Z";

export function agent(id: string, name: string, role: Agent["role"] = "agent"): Agent {
  return { id, email: `${id}@example.com`, name, role, presence: "online", capacity: 3, disabled: false, skills: [] };
}

export function handoff(id: string, conversation: string, title: string, status: Handoff["status"] = "pending", assignee: string | null = null): Handoff {
  return { id, conversation_id: conversation, channel_id: "ch", status, title, assignee, tags: [], created_at: AT, updated_at: AT };
}

export function message(id: string, conversation: string, text: string, author: Message["author"] = "end_user"): Message {
  return { id, conversation_id: conversation, author, type: "text", text, payload: { text }, status: "received", created_at: AT };
}

export function memoryBackend(inbox: MemoryInbox): Backend & { inbox: MemoryInbox; emit(update: Update): void; clickNotification(conversationId: string): void } {
  const updateHandlers: Array<(u: Update) => void> = [];
  const statusHandlers: Array<(s: DeskStatus) => void> = [];
  const openHandlers: Array<(conversationId: string) => void> = [];
  let nextId = 1;
  const status = (): DeskStatus => ({
    mode: inbox.signedOut ? "remote" : "solo",
    hub_url: "http://127.0.0.1:8717",
    endpoint_url: inbox.endpointUrl ?? null,
    webhook_url: null,
    signed_in: !inbox.signedOut,
    me: inbox.me,
    connection: { state: "live", seq: 1 },
    error: null,
    outbox_queued: inbox.outbox.filter((i) => i.state === "queued").length,
    outbox_failed: inbox.outbox.filter((i) => i.state === "failed").length,
    synced_at: AT,
    history: null,
    away_after_secs: inbox.awayAfterSecs ?? 300,
    solo_available: true,
  });
  const customerOf = (conversation: string): Contact | null => {
    const author = inbox.messages.find((m) => m.conversation_id === conversation && m.author === "end_user");
    return inbox.contacts.find((c) => c.id === author?.author_id) ?? null;
  };
  const summary = (h: Handoff): HandoffSummary => ({
    handoff: h,
    customer: customerOf(h.conversation_id)?.name ?? null,
    last_message: inbox.messages.filter((m) => m.conversation_id === h.conversation_id).at(-1) ?? null,
    channel_kind: inbox.whatsapp?.[h.conversation_id] ? "whatsapp" : null,
    last_inbound_at: inbox.whatsapp?.[h.conversation_id] ?? null,
    unread: isUnread(h),
  });
  const isUnread = (h: Handoff): boolean =>
    (inbox.markedUnread ?? []).includes(h.conversation_id) ||
    ((h.status === "pending" || h.status === "assigned") &&
      !(inbox.read ?? []).includes(h.conversation_id) &&
      inbox.messages.some((m) => m.conversation_id === h.conversation_id && m.author === "end_user"));
  const facts: ListFacts = { unread: isUnread, channelKind: (h) => (inbox.whatsapp?.[h.conversation_id] ? "whatsapp" : null) };
  const changed = (conversations: string[]): void => {
    for (const handler of updateHandlers) handler({ type: "inbox_changed", conversations });
    for (const handler of statusHandlers) handler(status());
  };
  const update = (id: string, change: (h: Handoff) => Handoff): void => {
    inbox.handoffs = inbox.handoffs.map((h) => (h.id === id ? change(h) : h));
    const h = inbox.handoffs.find((x) => x.id === id);
    if (h) changed([h.conversation_id]);
  };
  const queue = (conversation: string, command: AgentCommand): void => {
    const refused = inbox.refuse[conversation];
    inbox.outbox.push({
      id: nextId++,
      txn_id: `t-${nextId}`,
      action: command.action,
      command,
      conversation_id: conversation,
      state: refused ? "failed" : "queued",
      attempts: refused ? 1 : 0,
      error_class: refused ? "permanent" : null,
      error: refused ?? null,
      next_attempt_at: null,
      created_at: AT,
    });
    changed([conversation]);
    if (refused) throw { code: "closed", message: refused };
  };
  const decideDraft = (id: string, change: (m: Message) => Message): void => {
    const draft = inbox.messages.find((m) => m.id === id);
    if (draft?.status !== "draft") throw { code: "conflict", message: "this draft was already decided" };
    inbox.messages = inbox.messages.map((m) => (m.id === id ? change(m) : m));
    changed([draft.conversation_id]);
  };
  const api: Backend & { inbox: MemoryInbox; emit(update: Update): void; clickNotification(conversationId: string): void } = {
    inbox,
    clickNotification: (id) => openHandlers.forEach((h) => h(id)),
    emit: (u) => updateHandlers.forEach((h) => h(u)),
    deskStatus: async () => status(),
    listHandoffs: async (view?: HandoffView) => {
      const v = view ?? "pending";
      return inbox.handoffs.filter((h) => inView(h, v, inbox.me.id)).map(summary);
    },
    handoffPage: async (view, filter, offset, limit) =>
      pageOf(listed(inbox.handoffs, view, filter, inbox.me.id, facts), offset, limit, summary),
    handoffCounts: async () => countsOf(inbox.handoffs, inbox.me.id, isUnread),
    notificationSettings: async () => ({ ...(inbox.notifications ?? { new_handoffs: true, assigned_to_me: true, customer_messages: true, escalations: true, sound: true }) }),
    setNotificationSettings: async (settings) => {
      if (!!settings.quiet_from !== !!settings.quiet_until) throw { code: "bad_request", message: "quiet hours need both a start and an end" };
      inbox.notifications = settings;
    },
    setLanguage: async (language) => {
      inbox.language = language;
    },
    markUnread: async (conversationId) => {
      inbox.markedUnread = [...(inbox.markedUnread ?? []), conversationId];
      inbox.read = (inbox.read ?? []).filter((c) => c !== conversationId);
      changed([conversationId]);
    },
    openConversation: async (conversationId, read = true): Promise<ConversationView> => {
      // Like the hub, a read mark that changes is news (and one that does not is not).
      const h = inbox.handoffs.find((x) => x.conversation_id === conversationId);
      const wasUnread = read && h !== undefined && isUnread(h);
      if (read) {
        inbox.read = [...(inbox.read ?? []).filter((c) => c !== conversationId), conversationId];
        inbox.markedUnread = (inbox.markedUnread ?? []).filter((c) => c !== conversationId);
      }
      if (wasUnread) setTimeout(() => changed([conversationId]), 0);
      return {
      conversation_id: conversationId,
      customer: customerOf(conversationId),
      messages: inbox.messages.filter((m) => m.conversation_id === conversationId),
      pending: inbox.outbox.filter((i) => i.conversation_id === conversationId),
      draft: inbox.drafts[conversationId] ?? null,
      };
    },
    customer: async (conversationId): Promise<CustomerView> => ({
      contact: customerOf(conversationId),
      handoffs: inbox.handoffs.filter((h) => h.conversation_id === conversationId),
      notes: [],
    }),
    team: async (): Promise<Team> => ({ agents: inbox.agents, tags: [], templates: [] }),
    signIn: async (email, _password, hubUrl) => {
      inbox.signedInTo = { email, hubUrl };
    },
    signOut: async () => {},
    useHub: async (hubUrl) => {
      inbox.hubChosen = hubUrl;
    },
    assign: async (id) => update(id, (h) => ({ ...h, status: "assigned", assignee: inbox.me.id })),
    release: async (id) => update(id, (h) => ({ ...h, status: "pending", assignee: null })),
    transfer: async (id, to) => update(id, (h) => ({ ...h, assignee: to })),
    resolve: async (id, label) => update(id, (h) => ({ ...h, status: "resolved", ...(label ? { label } : {}) })),
    cancel: async (id) => update(id, (h) => ({ ...h, status: "cancelled" })),
    setTags: async (id, tags) => update(id, (h) => ({ ...h, tags })),
    sendMessage: async (conversationId, text, replyTo) =>
      queue(
        conversationId,
        replyTo
          ? { action: "message", conversation_id: conversationId, type: "text", payload: { text, reply_to: replyTo } }
          : { action: "message", conversation_id: conversationId, text },
      ),
    sendFile: async (conversationId, file, caption, replyTo) => {
      const upload = { upload: `upload-${nextId}`, mime_type: file.type, filename: file.name, size: file.size };
      queue(conversationId, { action: "message", conversation_id: conversationId, type: uploadKind(file.type), payload: filePayload(upload, caption, replyTo) });
    },
    react: async (conversationId, messageId, emoji) =>
      queue(conversationId, { action: "message", conversation_id: conversationId, type: "reaction", payload: { message_id: messageId, emoji } }),
    sendAttachment: async (conversationId, a: Attachment) => queue(conversationId, { action: "message", conversation_id: conversationId, type: a.kind, payload: { [`${a.kind}Url`]: a.url } }),
    addNote: async () => {},
    whatsappTemplates: async () => inbox.templates ?? [],
    channelProblems: async () => (inbox.me.role === "admin" ? (inbox.problems ?? []) : []),
    media: async (messageId) => {
      const file = inbox.media?.[messageId];
      if (!file) throw { code: "hub", message: "no such file" };
      return file;
    },
    sendTemplate: async (conversationId, template, parameters) =>
      queue(conversationId, {
        action: "message",
        conversation_id: conversationId,
        type: "template",
        payload: { name: template.name, language: template.language, parameters, text: fillTemplate(template.body, parameters) },
      }),
    resend: async () => {},
    openLink: async (url) => {
      inbox.opened = [...(inbox.opened ?? []), url];
    },
    approveDraft: async (messageId, text) => decideDraft(messageId, (m) => ({ ...m, status: "sent", text: text ?? m.text, payload: { text: text ?? m.text, drafted: m.text } })),
    rejectDraft: async (messageId, reason) => decideDraft(messageId, (m) => ({ ...m, status: "rejected", status_reason: reason ?? "rejected" })),
    setPresence: async (presence) => {
      inbox.presence = presence;
      inbox.agents = inbox.agents.map((a) => (a.id === inbox.me.id ? { ...a, presence } : a));
      changed([]);
    },
    setBotpressWebhook: async () => {},
    sendTestHandoff: async () => {
      const n = nextId++;
      inbox.handoffs.push(handoff(`ho_test${n}`, `t_test${n}`, "Test handoff from Baton"));
      inbox.messages.push(message(`m_test${n}`, `t_test${n}`, "This is a test: answer it, then resolve it."));
      changed([`t_test${n}`]);
      return "Test handoff from Baton";
    },
    outbox: async () => inbox.outbox,
    retryOutbox: async (id) => {
      inbox.outbox = inbox.outbox.map((i) => (i.id === id ? { ...i, state: "queued", error: null } : i));
      changed([]);
    },
    editOutbox: async (id, text) => {
      inbox.outbox = inbox.outbox.map((i) => (i.id === id ? { ...i, command: withText(i.command, text), state: "queued", error: null } : i));
      changed([]);
    },
    discardOutbox: async (id) => {
      inbox.outbox = inbox.outbox.filter((i) => i.id !== id);
      changed([]);
    },
    report: async (_since, _until, by) => {
      const rows = new Map<string, { handoffs: number; resolved: number; cancelled: number }>();
      for (const h of inbox.handoffs) {
        const key = by === "agent" ? (inbox.agents.find((a) => a.id === h.assignee)?.name ?? "unassigned") : by === "label" ? (h.label ?? "none") : by === "channel" ? "Botpress" : h.created_at.slice(0, 10);
        const row = rows.get(key) ?? { handoffs: 0, resolved: 0, cancelled: 0 };
        row.handoffs += 1;
        if (h.status === "resolved") row.resolved += 1;
        if (h.status === "cancelled") row.cancelled += 1;
        rows.set(key, row);
      }
      return [...rows.entries()].map(([key, r]) => ({ key, ...r, first_response_median_secs: 90, first_response_p90_secs: 300, resolution_median_secs: null, resolution_p90_secs: null }));
    },
    exportReport: async (since, until, by) => `/home/ana/Downloads/baton-report-${since}-${until}-by-${by}.csv`,
    search: async (text): Promise<SearchHit[]> => {
      const words = searchWords(text);
      return inbox.messages
        .filter((m) => matches(m.text, words))
        .map((m) => ({
          conversation_id: m.conversation_id,
          kind: "message" as const,
          id: m.id,
          snippet: snippet(m.text ?? "", words),
          at: m.created_at,
          score: 1,
          customer: customerOf(m.conversation_id)?.name ?? null,
        }));
    },
    saveDraft: async (conversationId, text) => {
      inbox.drafts[conversationId] = text;
    },
    onUpdate: async (handler) => {
      updateHandlers.push(handler);
      return () => updateHandlers.splice(updateHandlers.indexOf(handler), 1);
    },
    onOpen: async (handler) => {
      openHandlers.push(handler);
      return () => {};
    },
    onStatus: async (handler) => {
      statusHandlers.push(handler);
      return () => statusHandlers.splice(statusHandlers.indexOf(handler), 1);
    },
  };
  return api;
}
