// The shapes the Rust side sends. Those of baton-protocol and baton-core are generated from the
// Rust types (generated.ts, checked for drift by `make test`); the app shell's own few are below.

export type {
  Agent,
  AgentCommand,
  Author,
  Backfill,
  ConnectionState,
  Contact,
  Conversation,
  CustomerView,
  DeliveryStatus,
  FailureClass,
  Handoff,
  HandoffCounts,
  HandoffFilter,
  HandoffPage,
  HandoffSort,
  HandoffStatus,
  HandoffSummary,
  NotificationSettings,
  ReportGroup,
  ReportRow,
  HandoffView,
  HitKind,
  Message,
  Note,
  OutboxItem,
  OutboxState,
  Presence,
  Role,
  SearchHit,
  Template,
  Update,
  Upload,
  WhatsAppTemplate,
} from "./generated";
import type {
  Agent,
  Backfill,
  ConnectionState,
  Contact,
  HandoffStatus,
  Message,
  OutboxItem,
  Template,
} from "./generated";

export interface Team {
  agents: Agent[];
  tags: string[];
  templates: Template[];
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

export interface SearchFilters {
  status?: HandoffStatus | "";
  channel?: string;
  tag?: string;
  agent?: string;
  since?: string;
  until?: string;
}

/** A channel that cannot send, and why (shown to admins). */
export interface ChannelProblem {
  channel: string;
  reason: string;
}

/** A customer's media file, ready to show (`data_url` is the app's own `data:` URL). */
export interface MediaFile {
  mime_type: string;
  data_url: string;
}

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
  /** This build can run a desk on its own (desktop): the sign-in form offers it. */
  solo_available: boolean;
  /** Idle this long (no keyboard or pointer), an online agent shows as away; 0: never. */
  away_after_secs: number;
}

/** Every command error: a stable code to branch on and a sentence to show. */
export interface CommandError {
  code: string;
  message: string;
}
