// The shapes the Rust side sends (baton-protocol / baton-core / the app shell), kept in one place.

export type HandoffStatus = "pending" | "assigned" | "resolved" | "cancelled";
export type Author = "end_user" | "bot" | "agent" | "system";
export type DeliveryStatus = "received" | "queued" | "sent" | "uncertain" | "failed";

export interface Handoff {
  id: string;
  conversation_id: string;
  channel_id: string;
  status: HandoffStatus;
  title: string;
  description?: string;
  assignee: string | null;
  label?: string;
  tags: string[];
  created_at: string;
  updated_at: string;
}

export type Presence = "online" | "offline";
export type Role = "admin" | "agent";

export interface Agent {
  id: string;
  email: string;
  name: string;
  role: Role;
  presence: Presence;
  capacity: number;
  disabled: boolean;
}

export interface Note {
  id: string;
  conversation_id: string;
  agent_id: string;
  text: string;
  created_at: string;
}

export interface Template {
  id: string;
  name: string;
  text: string;
}

export interface CustomerView {
  contact: Contact | null;
  handoffs: Handoff[];
  notes: Note[];
}

export interface Team {
  agents: Agent[];
  tags: string[];
  templates: Template[];
}

export interface Message {
  id: string;
  conversation_id: string;
  author: Author;
  author_id?: string;
  type: string;
  text?: string;
  payload: Record<string, unknown>;
  status: DeliveryStatus;
  status_reason?: string;
  created_at: string;
}

export interface Contact {
  id: string;
  channel_id: string;
  name: string;
  email?: string;
  picture_url?: string;
  attributes: Record<string, unknown>;
  created_at: string;
}

export interface HandoffSummary {
  handoff: Handoff;
  customer: string | null;
  last_message: Message | null;
}

export interface ConversationView {
  /** Which conversation this is (a draft or a reply only ever belongs to this one). */
  conversation_id: string;
  customer: Contact | null;
  messages: Message[];
  /** Written on this device and not yet applied by the hub: queued, or refused with the reason. */
  pending: OutboxItem[];
  /** What the agent was typing here. */
  draft: string | null;
}

export type FailureClass = "network" | "transient" | "permanent";

/** One action in the device's outbox. */
export interface OutboxItem {
  id: number;
  txn_id: string;
  /** message, note, assign, resolve, … */
  action: string;
  path: string;
  body: Record<string, unknown>;
  conversation_id: string | null;
  state: "queued" | "failed";
  attempts: number;
  error_class: FailureClass | null;
  error: string | null;
  next_attempt_at: string | null;
  created_at: string;
}

export type HitKind = "message" | "note" | "customer" | "handoff";

export interface SearchHit {
  conversation_id: string;
  kind: HitKind;
  id: string;
  /** The text around the match; matched words are between [ and ]. */
  snippet: string;
  at: string | null;
  score: number;
}

export interface SearchFilters {
  status?: HandoffStatus | "";
  channel?: string;
  tag?: string;
  agent?: string;
  since?: string;
  until?: string;
}

export interface Backfill {
  fetched: number;
  total: number | null;
  next: number | null;
  done: boolean;
}

export type ConnectionState =
  | { state: "connecting" }
  | { state: "live"; seq: number }
  | { state: "offline"; error: string; retry_in_ms: number };

export interface DeskStatus {
  mode: "solo" | "remote" | "";
  hub_url: string | null;
  endpoint_url: string | null;
  webhook_url: string | null;
  signed_in: boolean;
  me: Agent | null;
  connection: ConnectionState | null;
  error: string | null;
  outbox_queued: number;
  outbox_failed: number;
  /** When the cache was last known to match the hub (RFC 3339). */
  synced_at: string | null;
  history: Backfill | null;
}

export type Update =
  | { type: "new_handoff"; handoff: Handoff }
  | { type: "inbox_changed"; conversations: string[] }
  | { type: "connection"; state: ConnectionState }
  | { type: "signed_out" };

/** Every command error: a stable code to branch on and a sentence to show. */
export interface CommandError {
  code: string;
  message: string;
}
