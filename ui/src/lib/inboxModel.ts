// The inbox as plain data, and the pure functions that answer the UI's questions about it: which
// handoffs a tab shows and in what order, how many each tab holds, what search finds, and how the
// hub's events change it. The browser's backend (web.ts) keeps the hub's inbox this way; the
// tests' in-memory backend (memoryBackend.ts) answers lists, counts and search with the same
// functions. They follow the desktop's cache (crates/core/src/cache/views.rs), which the hub's
// events fill the same way.

import type {
  Agent,
  Contact,
  Conversation,
  CustomerView,
  Handoff,
  HandoffCounts,
  HandoffFilter,
  HandoffPage,
  HandoffSummary,
  HandoffView,
  Message,
  Note,
  ReportGroup,
  ReportRow,
  SearchFilters,
  SearchHit,
  Template,
} from "./types";
import type { ReadMark } from "./generated";

const RANK = { urgent: 3, high: 2, normal: 1, low: 0 } as const;

/** Whether tab `view` shows `h`; `me` is the signed-in agent (for "mine"). */
export function inView(h: Handoff, view: HandoffView, me: string | null): boolean {
  switch (view) {
    case "mine":
      return me !== null && h.status === "assigned" && h.assignee === me;
    case "open":
      return h.status === "pending" || h.status === "assigned";
    default:
      return h.status === view;
  }
}

/** What a list needs to know of a handoff besides the handoff itself. */
export interface ListFacts {
  /** The customer wrote since I read it, or I marked it unread. */
  unread(h: Handoff): boolean;
  /** The kind of channel its conversation came through (`whatsapp`); null for Botpress. */
  channelKind(h: Handoff): string | null;
}

/** The handoffs of tab `view` that pass `filter`, in the filter's order: "waiting" puts the waiting
 * ones first (most urgent, then whoever waited longest), the rest newest first. */
export function listed(handoffs: Iterable<Handoff>, view: HandoffView, filter: HandoffFilter, me: string | null, facts: ListFacts): Handoff[] {
  const shown = [...handoffs].filter(
    (h) =>
      inView(h, view, me) &&
      (!filter.tag || h.tags.includes(filter.tag)) &&
      (!filter.agent || h.assignee === filter.agent) &&
      (!filter.priority || (h.priority ?? "normal") === filter.priority) &&
      (!filter.channel_kind || (facts.channelKind(h) ?? "botpress") === filter.channel_kind) &&
      (!filter.unread || facts.unread(h)),
  );
  const sort = filter.sort ?? "waiting";
  if (sort === "waiting") {
    const waiting = (h: Handoff): boolean => h.status === "pending";
    shown.sort((a, b) => {
      if (waiting(a) !== waiting(b)) return waiting(a) ? -1 : 1;
      if (waiting(a)) return RANK[b.priority ?? "normal"] - RANK[a.priority ?? "normal"] || a.created_at.localeCompare(b.created_at);
      return b.created_at.localeCompare(a.created_at);
    });
  } else shown.sort((a, b) => (sort === "newest" ? -1 : 1) * a.created_at.localeCompare(b.created_at));
  return shown;
}

/** One window of a list: `limit` rows from `offset` on, with how many match in all. */
export function pageOf(shown: Handoff[], offset: number, limit: number, summary: (h: Handoff) => HandoffSummary): HandoffPage {
  return { total: shown.length, offset, rows: shown.slice(offset, offset + limit).map(summary) };
}

/** How many handoffs each tab holds; `unread` counts what waits or is mine and is unread. */
export function countsOf(handoffs: Iterable<Handoff>, me: string | null, unread: (h: Handoff) => boolean): HandoffCounts {
  const counts: HandoffCounts = { pending: 0, mine: 0, open: 0, resolved: 0, cancelled: 0, unread: 0, tags: {} };
  for (const h of handoffs) {
    const mine = me !== null && h.assignee === me;
    if (h.status === "pending" || h.status === "assigned") {
      counts.open += 1;
      for (const t of h.tags) counts.tags[t] = (counts.tags[t] ?? 0) + 1;
    }
    if (h.status === "pending") counts.pending += 1;
    if (h.status === "assigned" && mine) counts.mine += 1;
    if (h.status === "resolved") counts.resolved += 1;
    if (h.status === "cancelled") counts.cancelled += 1;
    if ((h.status === "pending" || (h.status === "assigned" && mine)) && unread(h)) counts.unread += 1;
  }
  return counts;
}

/** The words a search looks for (lower case). */
export function searchWords(text: string): string[] {
  return text.toLowerCase().split(/\s+/).filter(Boolean);
}

/** Whether `text` holds every one of `words`. */
export function matches(text: string | null | undefined, words: string[]): boolean {
  const lower = (text ?? "").toLowerCase();
  return words.length > 0 && words.every((w) => lower.includes(w));
}

/** `text` with the matched words between `[` and `]` (as the desktop's search marks them), cut
 * to about `width` characters around the first match. */
export function snippet(text: string, words: string[], width = 160): string {
  const lower = text.toLowerCase();
  const first = Math.min(...words.map((w) => lower.indexOf(w)).filter((i) => i >= 0));
  let start = 0;
  let cut = text;
  if (Number.isFinite(first) && text.length > width) {
    start = Math.max(0, first - Math.floor(width / 3));
    cut = text.slice(start, start + width);
  }
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const marked = escaped.length ? cut.replace(new RegExp(`(${escaped.join("|")})`, "gi"), "[$1]") : cut;
  return `${start > 0 ? "…" : ""}${marked}${start + width < text.length && text.length > width ? "…" : ""}`;
}

/** The inbox as the hub's snapshot and events describe it, kept in memory. Only the signed-in
 * agent's read marks are kept (others' change nothing this device shows). */
export interface Inbox {
  /** The seq of the last event applied (the log position the state reflects). */
  seq: number;
  me: string | null;
  contacts: Map<string, Contact>;
  conversations: Map<string, Conversation>;
  /** When each conversation's customer last wrote (from its messages). */
  lastCustomerAt: Map<string, string>;
  handoffs: Map<string, Handoff>;
  messages: Map<string, Message>;
  /** Each conversation's newest message (what its row in a list shows). */
  lastMessage: Map<string, Message>;
  agents: Map<string, Agent>;
  notes: Map<string, Note>;
  templates: Map<string, Template>;
  tags: string[];
  /** My read marks, by conversation. */
  reads: Map<string, ReadMark>;
}

export function emptyInbox(me: string | null = null): Inbox {
  return {
    seq: 0,
    me,
    contacts: new Map(),
    conversations: new Map(),
    lastCustomerAt: new Map(),
    handoffs: new Map(),
    messages: new Map(),
    lastMessage: new Map(),
    agents: new Map(),
    notes: new Map(),
    templates: new Map(),
    tags: [],
    reads: new Map(),
  };
}

/** One entry of the hub's log: `{"seq","kind","data"}` (kinds this build does not know are skipped). */
export interface HubEvent {
  seq: number;
  kind: string;
  data: unknown;
}

/** A page of the hub's snapshot (`GET /api/v1/snapshot`). */
export interface SnapshotPage {
  seq: number;
  contacts: Contact[];
  conversations: Conversation[];
  handoffs: Handoff[];
  agents: Agent[];
  notes: Note[];
  templates: Template[];
  tags: { tags: string[] };
  reads?: ReadMark[];
  next?: string | null;
}

/** What applying events changed, for the UI's updates. */
export interface Applied {
  conversations: string[];
  newHandoffs: Handoff[];
  handedOver: Handoff[];
  escalated: Handoff[];
  customerMessages: Message[];
  teamChanged: boolean;
}

function noteCustomerWrote(inbox: Inbox, m: Message): void {
  if (m.author !== "end_user") return;
  const last = inbox.lastCustomerAt.get(m.conversation_id);
  if (!last || last < m.created_at) inbox.lastCustomerAt.set(m.conversation_id, m.created_at);
}

/** Puts a message in (the hub's messages pages, or an event). */
export function putMessage(inbox: Inbox, m: Message): void {
  inbox.messages.set(m.id, m);
  const last = inbox.lastMessage.get(m.conversation_id);
  if (!last || last.id === m.id || last.created_at <= m.created_at) inbox.lastMessage.set(m.conversation_id, m);
  noteCustomerWrote(inbox, m);
}

/** Applies one event's entity (the full new state of it: applying it twice is harmless). */
function upsert(inbox: Inbox, kind: string, data: unknown, applied: Applied): void {
  const touch = (id: string): void => {
    if (!applied.conversations.includes(id)) applied.conversations.push(id);
  };
  switch (kind) {
    case "contact": {
      const c = data as Contact;
      inbox.contacts.set(c.id, c);
      for (const conv of inbox.conversations.values()) if (conv.contact_id === c.id) touch(conv.id);
      break;
    }
    case "conversation": {
      const c = data as Conversation;
      inbox.conversations.set(c.id, c);
      touch(c.id);
      break;
    }
    case "handoff": {
      const h = data as Handoff;
      const before = inbox.handoffs.get(h.id);
      if (before === undefined) {
        if (!applied.newHandoffs.some((n) => n.id === h.id)) applied.newHandoffs.push(h);
      } else {
        if (before.assignee !== h.assignee && h.assignee) applied.handedOver.push(h);
        if (h.escalation && h.escalation.level !== before.escalation?.level) applied.escalated.push(h);
      }
      inbox.handoffs.set(h.id, h);
      touch(h.conversation_id);
      break;
    }
    case "message": {
      const m = data as Message;
      const isNew = !inbox.messages.has(m.id);
      putMessage(inbox, m);
      if (isNew && m.author === "end_user") applied.customerMessages.push(m);
      touch(m.conversation_id);
      break;
    }
    case "agent": {
      const a = data as Agent;
      inbox.agents.set(a.id, a);
      applied.teamChanged = true;
      break;
    }
    case "note": {
      const n = data as Note;
      inbox.notes.set(n.id, n);
      touch(n.conversation_id);
      break;
    }
    case "template": {
      const t = data as Template;
      if (t.deleted) inbox.templates.delete(t.id);
      else inbox.templates.set(t.id, t);
      applied.teamChanged = true;
      break;
    }
    case "tags":
      inbox.tags = [...(data as { tags: string[] }).tags];
      applied.teamChanged = true;
      break;
    case "read": {
      const r = data as ReadMark;
      if (r.agent_id === inbox.me) {
        inbox.reads.set(r.conversation_id, r);
        touch(r.conversation_id);
      }
      break;
    }
    default:
      // A kind a newer hub sends that this build does not know: it only moves the cursor.
      break;
  }
}

export function nothingApplied(): Applied {
  return { conversations: [], newHandoffs: [], handedOver: [], escalated: [], customerMessages: [], teamChanged: false };
}

/** Events after `inbox.seq` that continue the log: applied in order, the cursor moved. Events
 * already applied are skipped; a hole (an event past the next seq) stops the batch there and
 * answers `gap: true`, so the caller reads the log again from the cursor (never skipping one). */
export function applyEvents(inbox: Inbox, events: HubEvent[]): Applied & { gap: boolean } {
  const applied = nothingApplied();
  for (const event of events) {
    if (event.seq <= inbox.seq) continue;
    if (event.seq !== inbox.seq + 1) return { ...applied, gap: true };
    upsert(inbox, event.kind, event.data, applied);
    inbox.seq = event.seq;
  }
  return { ...applied, gap: false };
}

/** What a command's answer carries, applied at once (the stream brings the same events later,
 * harmlessly); the cursor does not move. */
export function applyConfirmed(inbox: Inbox, events: HubEvent[]): Applied {
  const applied = nothingApplied();
  for (const event of events) if (event.seq > inbox.seq) upsert(inbox, event.kind, event.data, applied);
  return applied;
}

/** Replaces the synced state with a snapshot page (`first`: the snapshot's first page, which also
 * sets the cursor); messages are kept (the snapshot has none). */
export function applySnapshot(inbox: Inbox, page: SnapshotPage, first: boolean): void {
  if (first) {
    inbox.seq = page.seq;
    for (const map of [inbox.contacts, inbox.conversations, inbox.handoffs, inbox.agents, inbox.notes, inbox.templates, inbox.reads]) map.clear();
  }
  for (const c of page.contacts) inbox.contacts.set(c.id, c);
  for (const c of page.conversations) inbox.conversations.set(c.id, c);
  for (const h of page.handoffs) inbox.handoffs.set(h.id, h);
  for (const a of page.agents) inbox.agents.set(a.id, a);
  for (const n of page.notes) inbox.notes.set(n.id, n);
  for (const t of page.templates) if (!t.deleted) inbox.templates.set(t.id, t);
  inbox.tags = [...page.tags.tags];
  for (const r of page.reads ?? []) if (r.agent_id === inbox.me) inbox.reads.set(r.conversation_id, r);
}

/** The conversation's customer, once known. */
export function customerOf(inbox: Inbox, conversationId: string): Contact | null {
  const contact = inbox.conversations.get(conversationId)?.contact_id;
  return contact ? (inbox.contacts.get(contact) ?? null) : null;
}

/** Unread for me: marked unread, or (while open) the customer wrote after I last read it. */
export function isUnread(inbox: Inbox, h: Handoff): boolean {
  const mark = inbox.reads.get(h.conversation_id);
  if (mark?.unread) return true;
  if (h.status !== "pending" && h.status !== "assigned") return false;
  const wrote = inbox.lastCustomerAt.get(h.conversation_id);
  return wrote !== undefined && (!mark || Date.parse(wrote) > Date.parse(mark.read_at));
}

/** A conversation's messages, oldest first. */
export function messagesOf(inbox: Inbox, conversationId: string): Message[] {
  return [...inbox.messages.values()].filter((m) => m.conversation_id === conversationId).sort((a, b) => a.created_at.localeCompare(b.created_at));
}

export function summaryOf(inbox: Inbox, h: Handoff): HandoffSummary {
  const conversation = inbox.conversations.get(h.conversation_id);
  return {
    handoff: h,
    customer: customerOf(inbox, h.conversation_id)?.name ?? null,
    last_message: inbox.lastMessage.get(h.conversation_id) ?? null,
    channel_kind: conversation?.channel_kind ?? null,
    last_inbound_at: conversation?.last_inbound_at ?? null,
    unread: isUnread(inbox, h),
  };
}

function facts(inbox: Inbox): ListFacts {
  return { unread: (h) => isUnread(inbox, h), channelKind: (h) => inbox.conversations.get(h.conversation_id)?.channel_kind ?? null };
}

export function inboxPage(inbox: Inbox, view: HandoffView, filter: HandoffFilter, offset: number, limit: number): HandoffPage {
  return pageOf(listed(inbox.handoffs.values(), view, filter, inbox.me, facts(inbox)), offset, limit, (h) => summaryOf(inbox, h));
}

export function inboxCounts(inbox: Inbox): HandoffCounts {
  return countsOf(inbox.handoffs.values(), inbox.me, (h) => isUnread(inbox, h));
}

/** The customer panel: the contact, every handoff of theirs (newest first), notes (oldest first). */
export function customerView(inbox: Inbox, conversationId: string): CustomerView {
  const contact = inbox.conversations.get(conversationId)?.contact_id ?? null;
  const theirs = (id: string): boolean => id === conversationId || (contact !== null && inbox.conversations.get(id)?.contact_id === contact);
  return {
    contact: customerOf(inbox, conversationId),
    handoffs: [...inbox.handoffs.values()].filter((h) => theirs(h.conversation_id)).sort((a, b) => b.created_at.localeCompare(a.created_at)),
    notes: [...inbox.notes.values()].filter((n) => theirs(n.conversation_id)).sort((a, b) => a.created_at.localeCompare(b.created_at)),
  };
}

/** Messages, notes, customers and handoff titles holding every word, narrowed by `filters`, best
 * (newest) first. */
export function searchInbox(inbox: Inbox, text: string, filters: SearchFilters): SearchHit[] {
  const words = searchWords(text);
  if (words.length === 0) return [];
  const latest = (conversationId: string): Handoff | undefined =>
    [...inbox.handoffs.values()].filter((h) => h.conversation_id === conversationId).sort((a, b) => b.created_at.localeCompare(a.created_at))[0];
  const passes = (conversationId: string, at: string | null): boolean => {
    const h = latest(conversationId);
    if (filters.status && h?.status !== filters.status) return false;
    if (filters.channel && h?.channel_id !== filters.channel) return false;
    if (filters.tag && !h?.tags.includes(filters.tag)) return false;
    if (filters.agent && h?.assignee !== filters.agent) return false;
    if (filters.since && at && at.slice(0, 10) < filters.since) return false;
    if (filters.until && at && at.slice(0, 10) > filters.until) return false;
    return true;
  };
  const hits: SearchHit[] = [];
  const hit = (conversation_id: string, kind: SearchHit["kind"], id: string, found: string, at: string | null): void => {
    if (matches(found, words) && passes(conversation_id, at))
      hits.push({ conversation_id, kind, id, snippet: snippet(found, words), at, score: 1, customer: customerOf(inbox, conversation_id)?.name ?? null });
  };
  for (const m of inbox.messages.values()) hit(m.conversation_id, "message", m.id, m.text ?? "", m.created_at);
  for (const n of inbox.notes.values()) hit(n.conversation_id, "note", n.id, n.text, n.created_at);
  for (const h of inbox.handoffs.values()) hit(h.conversation_id, "handoff", h.id, `${h.title} ${h.description ?? ""}`.trim(), h.created_at);
  for (const c of inbox.conversations.values()) {
    const contact = c.contact_id ? inbox.contacts.get(c.contact_id) : undefined;
    if (contact) hit(c.id, "customer", contact.id, `${contact.name} ${contact.email ?? ""}`.trim(), null);
  }
  return hits.sort((a, b) => (b.at ?? "").localeCompare(a.at ?? ""));
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? null;
}

function p90(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.9) - 1)] ?? null;
}

/** The team's figures for handoffs that came in from `since` until `until` (dates, both
 * included), from what is in memory: for when the hub's own report is not available. */
export function reportOf(inbox: Inbox, since: string, until: string, by: ReportGroup): ReportRow[] {
  const rows = new Map<string, { handoffs: number; resolved: number; cancelled: number; first: number[]; resolution: number[] }>();
  for (const h of inbox.handoffs.values()) {
    const day = h.created_at.slice(0, 10);
    if (day < since || day > until || h.for_draft) continue;
    const kind = inbox.conversations.get(h.conversation_id)?.channel_kind;
    const key =
      by === "agent"
        ? h.assignee
          ? (inbox.agents.get(h.assignee)?.name ?? h.assignee)
          : "unassigned"
        : by === "label"
          ? (h.label ?? "none")
          : by === "channel"
            ? kind === "whatsapp"
              ? "WhatsApp"
              : kind === "bot"
                ? "Bot"
                : "Botpress"
            : day;
    const row = rows.get(key) ?? { handoffs: 0, resolved: 0, cancelled: 0, first: [], resolution: [] };
    row.handoffs += 1;
    const start = Date.parse(h.created_at);
    const reply = messagesOf(inbox, h.conversation_id).find((m) => m.author === "agent" && Date.parse(m.created_at) >= start);
    if (reply) row.first.push(Math.round((Date.parse(reply.created_at) - start) / 1000));
    if (h.status === "resolved") {
      row.resolved += 1;
      row.resolution.push(Math.round((Date.parse(h.updated_at) - start) / 1000));
    }
    if (h.status === "cancelled") row.cancelled += 1;
    rows.set(key, row);
  }
  return [...rows.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, r]) => ({
      key,
      handoffs: r.handoffs,
      resolved: r.resolved,
      cancelled: r.cancelled,
      first_response_median_secs: median(r.first),
      first_response_p90_secs: p90(r.first),
      resolution_median_secs: median(r.resolution),
      resolution_p90_secs: p90(r.resolution),
    }));
}

/** A report as CSV (when the hub's own CSV is not available). */
export function reportCsv(rows: ReportRow[]): string {
  const cell = (v: string | number | null): string => {
    const s = v === null ? "" : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const head = ["key", "handoffs", "resolved", "cancelled", "first_response_median_secs", "first_response_p90_secs", "resolution_median_secs", "resolution_p90_secs"];
  return [head.join(","), ...rows.map((r) => head.map((k) => cell(r[k as keyof ReportRow])).join(","))].join("\n") + "\n";
}
