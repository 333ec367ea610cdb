// Generated from baton-protocol and baton-core by ts-rs; do not edit.
// Regenerate: BATON_UPDATE_TYPES=1 cargo test -p baton-core typescript

export type HandoffStatus = "pending" | "assigned" | "resolved" | "cancelled";

export type Priority = "low" | "normal" | "high" | "urgent";

export type Author = "end_user" | "bot" | "agent" | "system";

export type DeliveryStatus = "received" | "queued" | "sent" | "delivered" | "read" | "uncertain" | "failed" | "draft" | "rejected";

export type Presence = "online" | "away" | "offline";

export type Role = "admin" | "agent";

export type Contact = { id: string, channel_id: string, name: string, email?: string, picture_url?: string, 
/**
 * Everything else the bot told us about the person, kept as given.
 */
attributes: Record<string, unknown>, created_at: string, };

export type Conversation = { id: string, channel_id: string, 
/**
 * Unknown until the customer's first message names them (Botpress strips it on creation).
 */
contact_id: string | null, created_at: string, 
/**
 * The kind of channel it came through (`whatsapp`); none for Botpress.
 */
channel_kind?: string, 
/**
 * When the customer last wrote (WhatsApp: free-form replies are allowed for 24 hours after).
 */
last_inbound_at?: string, };

export type Handoff = { id: string, conversation_id: string, channel_id: string, status: HandoffStatus, title: string, description?: string, 
/**
 * The agent id of whoever has it, if anyone.
 */
assignee: string | null, 
/**
 * Who gave it to the assignee: the assignee themselves (taken), another agent (transferred),
 * or nobody (the desk's routing). A phone is woken for what others gave it, not what it took.
 */
assigned_by?: string, 
/**
 * How it ended, when an agent resolved it with a label ("refunded", "duplicate", …).
 */
label?: string, 
/**
 * Tags from the admin's list.
 */
tags: Array<string>, 
/**
 * How urgent the bot (or an agent) says it is; none is normal.
 */
priority?: Priority, 
/**
 * Opened only so a human decides on a bot's drafted replies: deciding the last one ends it,
 * and the bot hears of the decisions (`draft.decided`), not of the handoff.
 */
for_draft?: boolean, 
/**
 * Set once it has waited past its channel's target: everyone online is told again, then
 * the channel's named admins.
 */
escalation?: Escalation, created_at: string, updated_at: string, };

export type Escalation = { level: EscalationLevel, at: string, 
/**
 * The agents it was escalated to (for `escalated`).
 */
to?: Array<string>, };

export type EscalationLevel = "renotified" | "escalated";

export type Message = { id: string, conversation_id: string, author: Author, 
/**
 * The contact id or agent id of the writer; none for bot and system messages.
 */
author_id?: string, 
/**
 * The message type as the channel named it (`text`, `image`, `file`, …).
 */
type: string, 
/**
 * The readable part of the message, where it has one.
 */
text?: string, 
/**
 * The channel's payload as received or sent, for what `text` cannot show.
 */
payload: Record<string, unknown>, status: DeliveryStatus, status_reason?: string, created_at: string, };

export type Agent = { id: string, email: string, name: string, role: Role, presence: Presence, 
/**
 * How many handoffs the agent may hold at once.
 */
capacity: number, disabled: boolean, 
/**
 * Tags this agent is the one for: a waiting handoff carrying one of them is routed to an
 * agent who has it, when one can take it.
 */
skills: Array<string>, };

export type Note = { id: string, conversation_id: string, agent_id: string, text: string, created_at: string, };

export type Template = { id: string, name: string, text: string, 
/**
 * Deleted templates stay in the log with this set, so caches drop them.
 */
deleted: boolean, };

export type WhatsAppTemplate = { name: string, language: string, body: string, parameters: number, };

export type Upload = { upload: string, mime_type: string, filename: string, size: number, };

export type AgentCommand = { "action": "assign", handoff_id: string, } | { "action": "release", handoff_id: string, } | { "action": "transfer", handoff_id: string, to: string, } | { "action": "resolve", handoff_id: string, label?: string, } | { "action": "cancel", handoff_id: string, } | { "action": "tags", handoff_id: string, tags: Array<string>, } | { "action": "message", conversation_id: string, text?: string, type?: string, payload?: Record<string, unknown>, } | { "action": "note", conversation_id: string, text: string, } | { "action": "resend", message_id: string, } | { "action": "approve", message_id: string, text?: string, } | { "action": "reject", message_id: string, reason?: string, } | { "action": "read", conversation_id: string, } | { "action": "unread", conversation_id: string, } | { "action": "presence", status: Presence, };

export type HandoffView = "pending" | "mine" | "open" | "assigned" | "resolved" | "cancelled";

export type HandoffSummary = { handoff: Handoff, 
/**
 * The customer's name, once the hub knows who the conversation belongs to.
 */
customer: string | null, last_message: Message | null, 
/**
 * The kind of channel the conversation came through (`whatsapp`); none for Botpress.
 */
channel_kind: string | null, 
/**
 * When the customer last wrote (WhatsApp's 24-hour window runs from it).
 */
last_inbound_at: string | null, 
/**
 * The customer wrote since the signed-in agent last read it, or they marked it unread.
 */
unread: boolean, };

export type HandoffCounts = { pending: number, 
/**
 * Open handoffs assigned to the signed-in agent.
 */
mine: number, 
/**
 * Pending and assigned.
 */
open: number, resolved: number, cancelled: number, 
/**
 * Waiting or mine, and unread by the signed-in agent: the tray's number.
 */
unread: number, 
/**
 * Open handoffs per tag.
 */
tags: { [key in string]: number }, };

export type HandoffSort = "waiting" | "newest" | "oldest";

export type HandoffFilter = { 
/**
 * Carries this tag.
 */
tag?: string, 
/**
 * Came through this kind of channel: `botpress`, `whatsapp` or `bot`.
 */
channel_kind?: string, 
/**
 * Held by this agent (an id).
 */
agent?: string, priority?: Priority, 
/**
 * Only what the signed-in agent has not read.
 */
unread: boolean, sort: HandoffSort, };

export type HandoffPage = { total: number, offset: number, rows: Array<HandoffSummary>, };

export type ReadMark = { agent_id: string, conversation_id: string, read_at: string, 
/**
 * "Mark as unread": shown unread whatever was read, until the agent opens it again.
 */
unread: boolean, };

export type NotificationSettings = { 
/**
 * A handoff I could take.
 */
new_handoffs: boolean, 
/**
 * A handoff routed or transferred to me.
 */
assigned_to_me: boolean, 
/**
 * A customer writing in a conversation I hold (while the window is not in front).
 */
customer_messages: boolean, 
/**
 * A customer waiting past the channel's target, and escalations to me.
 */
escalations: boolean, sound: boolean, 
/**
 * Quiet hours, `HH:MM` in the device's time: no notification between them (across midnight
 * when `quiet_from` is later than `quiet_until`). Both or neither.
 */
quiet_from?: string, quiet_until?: string, };

export type ReportGroup = "day" | "channel" | "agent" | "label";

export type ReportRow = { key: string, handoffs: number, resolved: number, cancelled: number, first_response_median_secs: number | null, first_response_p90_secs: number | null, resolution_median_secs: number | null, resolution_p90_secs: number | null, };

export type CustomerView = { contact: Contact | null, 
/**
 * Every handoff of this customer (across their conversations), newest first, labels included.
 */
handoffs: Array<Handoff>, 
/**
 * Notes on this conversation, oldest first.
 */
notes: Array<Note>, };

export type Backfill = { fetched: number, 
/**
 * The hub's message count when the last page was fetched (unknown before the first).
 */
total: number | null, 
/**
 * Where the next (older) page starts; `None` before the first page or once done.
 */
next: number | null, 
/**
 * The local history is complete (or reaches back as far as the age cap asks).
 */
done: boolean, };

export type FailureClass = "network" | "transient" | "permanent";

export type OutboxState = "queued" | "failed";

export type OutboxItem = { id: number, txn_id: string, 
/**
 * What the agent did: `message`, `note`, `assign`, `resolve`, …
 */
action: string, command: AgentCommand, conversation_id: string | null, state: OutboxState, attempts: number, error_class: FailureClass | null, 
/**
 * The hub's reason (permanent) or what went wrong last (while retrying).
 */
error: string | null, next_attempt_at: string | null, created_at: string, };

export type HitKind = "message" | "note" | "customer" | "handoff";

export type SearchHit = { conversation_id: string, kind: HitKind, 
/**
 * The message, note, contact or handoff id.
 */
id: string, 
/**
 * The matched text around the match, the matched words between [`MARK_OPEN`] and [`MARK_CLOSE`].
 */
snippet: string, at: string | null, 
/**
 * Relevance: higher is better.
 */
score: number, 
/**
 * Whose conversation it is, once known: results from many customers read apart.
 */
customer: string | null, };

export type ConnectionState = { "state": "connecting" } | { "state": "live", seq: number, } | { "state": "offline", error: string, retry_in_ms: number, };

export type UnreadableEvent = { seq: number, kind: string, error: string, };

export type Update = { "type": "new_handoff", handoff: Handoff, } | { "type": "handed_over", handoff: Handoff, } | { "type": "escalated", handoff: Handoff, } | { "type": "customer_wrote", message: Message, } | { "type": "inbox_changed", conversations: Array<string>, } | { "type": "team_changed" } | { "type": "connection", state: ConnectionState, } | { "type": "signed_out" } | { "type": "outbox_changed", queued: number, failed: number, } | { "type": "history", progress: Backfill, } | { "type": "unreadable", event: UnreadableEvent, };
