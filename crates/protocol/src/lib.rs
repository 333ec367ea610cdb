//! The wire types Baton's hub and app share: the entities of a team's inbox (contacts, conversations,
//! handoffs, messages, agents), the events of the hub's log that carry them, and the error body every
//! API failure uses. Serde only, no I/O: both sides depend on this crate and neither on the other.
//!
//! [`private_fs`] is the one piece of I/O here: the file permissions both sides give their data.
//!
//! Every event carries the *full new state* of the one entity it touches, so applying an event twice,
//! or onto a stale cache, is harmless (upsert semantics). The `kind` names the entity type.

pub mod backoff;
pub mod command;
pub mod payload;
pub mod prefs;
pub mod private_fs;
pub mod report;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use command::{AgentCommand, CommandFields};

/// The sentinel `remoteUserId` Botpress uses for messages that no end user wrote (ARCHITECTURE.md, Botpress protocol §1.3).
pub const BOTPRESS_BOT_USER: &str = "BOT";

/// A person on the customer side, as a bot introduced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Contact {
    pub id: String,
    pub channel_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub picture_url: Option<String>,
    /// Everything else the bot told us about the person, kept as given.
    #[serde(default)]
    #[ts(type = "Record<string, unknown>")]
    pub attributes: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// One customer thread on one channel. It outlives its handoffs; for Botpress it is one ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Conversation {
    pub id: String,
    pub channel_id: String,
    /// Unknown until the customer's first message names them (Botpress strips it on creation).
    #[serde(default)]
    pub contact_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The kind of channel it came through (`whatsapp`); none for Botpress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub channel_kind: Option<String>,
    /// When the customer last wrote (WhatsApp: free-form replies are allowed for 24 hours after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub last_inbound_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum HandoffStatus {
    Pending,
    Assigned,
    Resolved,
    Cancelled,
}

impl HandoffStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Assigned => "assigned",
            Self::Resolved => "resolved",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "assigned" => Self::Assigned,
            "resolved" => Self::Resolved,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// A bot's request for a person to take over a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Handoff {
    pub id: String,
    pub conversation_id: String,
    pub channel_id: String,
    pub status: HandoffStatus,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub description: Option<String>,
    /// The agent id of whoever has it, if anyone.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Who gave it to the assignee: the assignee themselves (taken), another agent (transferred),
    /// or nobody (the desk's routing). A phone is woken for what others gave it, not what it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub assigned_by: Option<String>,
    /// How it ended, when an agent resolved it with a label ("refunded", "duplicate", …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub label: Option<String>,
    /// Tags from the admin's list.
    #[serde(default)]
    pub tags: Vec<String>,
    /// How urgent the bot (or an agent) says it is; none is normal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub priority: Option<Priority>,
    /// Opened only so a human decides on a bot's drafted replies: deciding the last one ends it,
    /// and the bot hears of the decisions (`draft.decided`), not of the handoff.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(optional, as = "Option<bool>")]
    pub for_draft: bool,
    /// Set once it has waited past its channel's target: everyone online is told again, then
    /// the channel's named admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub escalation: Option<Escalation>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How far a waiting handoff has been escalated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Escalation {
    pub level: EscalationLevel,
    pub at: DateTime<Utc>,
    /// The agents it was escalated to (for `escalated`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(optional, as = "Option<Vec<String>>")]
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum EscalationLevel {
    /// Waited past the channel's target: everyone online is told again.
    Renotified,
    /// Waited twice the target: the channel's named admins are told.
    Escalated,
}

impl EscalationLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Renotified => "renotified",
            Self::Escalated => "escalated",
        }
    }
}

/// A handoff's urgency, as a bot sends it (`POST /bot/v1/handoffs`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ts_rs::TS,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    EndUser,
    Bot,
    Agent,
    System,
}

impl Author {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndUser => "end_user",
            Self::Bot => "bot",
            Self::Agent => "agent",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "end_user" => Self::EndUser,
            "bot" => Self::Bot,
            "agent" => Self::Agent,
            "system" => Self::System,
            _ => return None,
        })
    }
}

/// Where a message is on its way to the other side. Inbound messages are `Received`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Received,
    Queued,
    Sent,
    /// The customer's phone has it (WhatsApp).
    Delivered,
    /// The customer opened it (WhatsApp).
    Read,
    Uncertain,
    Failed,
    /// A bot's drafted reply, waiting for a human to approve or reject it.
    Draft,
    /// A drafted reply a human (or the channel's timeout) kept from the customer.
    Rejected,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Uncertain => "uncertain",
            Self::Failed => "failed",
            Self::Draft => "draft",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => Self::Received,
            "queued" => Self::Queued,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "uncertain" => Self::Uncertain,
            "failed" => Self::Failed,
            "draft" => Self::Draft,
            "rejected" => Self::Rejected,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub author: Author,
    /// The contact id or agent id of the writer; none for bot and system messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub author_id: Option<String>,
    /// The message type as the channel named it (`text`, `image`, `file`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The readable part of the message, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub text: Option<String>,
    /// The channel's payload as received or sent, for what `text` cannot show.
    #[serde(default)]
    #[ts(type = "Record<string, unknown>")]
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub status_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "admin" => Self::Admin,
            "agent" => Self::Agent,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    /// The app is open but the agent has been idle past its away timeout: not offered new work,
    /// online again at their next action.
    Away,
    #[default]
    Offline,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Away => "away",
            Self::Offline => "offline",
        }
    }
}

/// The default number of handoffs one agent may hold at once.
pub const DEFAULT_CAPACITY: u32 = 3;

fn default_capacity() -> u32 {
    DEFAULT_CAPACITY
}

/// A person on the team, as everyone else sees them (no credentials).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Agent {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub presence: Presence,
    /// How many handoffs the agent may hold at once.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    #[serde(default)]
    pub disabled: bool,
    /// Tags this agent is the one for: a waiting handoff carrying one of them is routed to an
    /// agent who has it, when one can take it.
    #[serde(default)]
    pub skills: Vec<String>,
}

impl Agent {
    pub fn new(
        id: impl Into<String>,
        email: impl Into<String>,
        name: impl Into<String>,
        role: Role,
    ) -> Self {
        Self {
            id: id.into(),
            email: email.into(),
            name: name.into(),
            role,
            presence: Presence::Offline,
            capacity: DEFAULT_CAPACITY,
            disabled: false,
            skills: Vec::new(),
        }
    }
}

/// An agent's note on a conversation; notes outlive handoffs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Note {
    pub id: String,
    pub conversation_id: String,
    pub agent_id: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// A canned reply the composer offers after `:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub text: String,
    /// Deleted templates stay in the log with this set, so caches drop them.
    #[serde(default)]
    pub deleted: bool,
}

/// An approved WhatsApp message template: what may be sent once the customer's 24-hour window has
/// closed. `body` has `{{1}}`, `{{2}}`, … where the `parameters` go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct WhatsAppTemplate {
    pub name: String,
    pub language: String,
    pub body: String,
    pub parameters: u32,
}

/// A file an agent uploaded to the hub, ready to send (`POST /api/v1/uploads`). `upload` is the
/// file's sha256 in hex: the same file uploaded twice is kept once. A message sends it with
/// `{"type":"image"|"video"|"audio"|"file","payload":{"upload","mime_type","filename","title"?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Upload {
    pub upload: String,
    pub mime_type: String,
    pub filename: String,
    #[ts(type = "number")]
    pub size: u64,
}

/// Where one agent has read a conversation up to, shared by all their devices. A conversation is
/// unread for them when the customer wrote after `read_at`, or when they marked it `unread`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ReadMark {
    pub agent_id: String,
    pub conversation_id: String,
    pub read_at: DateTime<Utc>,
    /// "Mark as unread": shown unread whatever was read, until the agent opens it again.
    #[serde(default)]
    pub unread: bool,
}

/// The team's tag list, as the admin keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagList {
    pub tags: Vec<String>,
}

/// What one event of the hub's log carries: the full new state of one entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum EventData {
    Contact(Contact),
    Conversation(Conversation),
    Handoff(Handoff),
    Message(Message),
    Agent(Agent),
    Note(Note),
    Template(Template),
    Tags(TagList),
    Read(ReadMark),
}

impl EventData {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Contact(_) => "contact",
            Self::Conversation(_) => "conversation",
            Self::Handoff(_) => "handoff",
            Self::Message(_) => "message",
            Self::Agent(_) => "agent",
            Self::Note(_) => "note",
            Self::Template(_) => "template",
            Self::Tags(_) => "tags",
            Self::Read(_) => "read",
        }
    }
}

/// One entry of the hub's event log: `{"seq":…,"kind":…,"data":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    #[serde(flatten)]
    pub data: EventData,
}

/// An event as it travels, before its kind is known to be one this build understands and before
/// its `data` is decoded. Clients decode with this first so a newer hub's new kinds are skipped,
/// not fatal, and so one unreadable event is isolated by its `seq` instead of failing its whole
/// frame: `data` stays raw JSON text, which is read without any nesting limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawEvent {
    pub seq: u64,
    pub kind: String,
    pub data: Box<serde_json::value::RawValue>,
}

impl PartialEq for RawEvent {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq && self.kind == other.kind && self.data.get() == other.data.get()
    }
}

/// The kinds of event this build understands.
pub const EVENT_KINDS: &[&str] = &[
    "contact",
    "conversation",
    "handoff",
    "message",
    "agent",
    "note",
    "template",
    "tags",
    "read",
];

impl RawEvent {
    /// The typed event, or `None` when this build does not know the kind.
    pub fn decode(&self) -> Result<Option<Event>, serde_json::Error> {
        if !EVENT_KINDS.contains(&self.kind.as_str()) {
            return Ok(None);
        }
        let tagged = format!(r#"{{"kind":"{}","data":{}}}"#, self.kind, self.data.get());
        let data: EventData = serde_json::from_str(&tagged)?;
        Ok(Some(Event {
            seq: self.seq,
            data,
        }))
    }
}

/// `GET /api/v1/events` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage<E = Event> {
    pub events: Vec<E>,
    /// The cursor to pass as `after` next time (the last seq returned, or `after` if none).
    pub next: u64,
}

/// A frame on the WebSocket stream that is not an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamNotice {
    /// The backlog after the requested cursor has been sent; what follows is live.
    CaughtUp { seq: u64 },
}

/// `GET /api/v1/snapshot`: the inbox's current state and the log position it reflects, so a new
/// device (or one whose cursor the hub no longer keeps) starts without replaying the whole log.
/// Messages are not in it; they come by [`MessagePage`]s (backfill), newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Follow the stream from here.
    pub seq: u64,
    pub contacts: Vec<Contact>,
    pub conversations: Vec<Conversation>,
    pub handoffs: Vec<Handoff>,
    pub agents: Vec<Agent>,
    pub notes: Vec<Note>,
    pub templates: Vec<Template>,
    pub tags: TagList,
    /// Every agent's read marks (a hub older than them sends none).
    #[serde(default)]
    pub reads: Vec<ReadMark>,
    /// The snapshot continues: ask for `GET /api/v1/snapshot?page=<next>`. Follow the log from the
    /// *first* page's `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /api/v1/messages?before=CURSOR&limit=N`: the hub's messages, newest first, for backfill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    /// Pass as `before` for the next (older) page; `None` when this was the oldest.
    pub next: Option<i64>,
    /// How many messages the hub holds in all (for progress).
    pub total: u64,
}

/// What one text frame of `GET /api/v1/stream` carries: a JSON array of events (one commit, or
/// one page of the backlog) or a notice. A lone event object is accepted too.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamFrame {
    Events(Vec<RawEvent>),
    Notice(StreamNotice),
}

impl StreamFrame {
    /// Reads a frame without decoding its events' `data` (see [`RawEvent`]), so no payload, however
    /// deep, makes the frame unreadable.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Object {
            #[serde(rename = "type")]
            notice: Option<String>,
            seq: Option<u64>,
            kind: Option<String>,
            data: Option<Box<serde_json::value::RawValue>>,
        }
        if text.trim_start().starts_with('[') {
            return serde_json::from_str(text).map(StreamFrame::Events);
        }
        let object: Object = serde_json::from_str(text)?;
        match object {
            Object {
                notice: Some(_), ..
            } => serde_json::from_str(text).map(StreamFrame::Notice),
            Object {
                seq: Some(seq),
                kind: Some(kind),
                data: Some(data),
                ..
            } => Ok(StreamFrame::Events(vec![RawEvent { seq, kind, data }])),
            _ => Err(serde::de::Error::custom(
                "a stream frame is an array of events, an event or a notice",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// A browser's sign-in: the session goes into an `HttpOnly` cookie (`baton_session`) that
    /// the page's scripts cannot read, and the answer carries no token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cookie: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The bearer token; empty (and left out) when the session is a browser's cookie.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
}

/// What every agent command answers: the events it caused (empty when it changed nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    pub events: Vec<Event>,
}

/// The body of every error response: a stable `code` to branch on and a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff() -> Handoff {
        let t = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        Handoff {
            id: "ho_1".into(),
            conversation_id: "cv_1".into(),
            channel_id: "ch_1".into(),
            status: HandoffStatus::Pending,
            title: "Refund".into(),
            description: None,
            assignee: None,
            assigned_by: None,
            label: None,
            tags: Vec::new(),
            priority: None,
            for_draft: false,
            escalation: None,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn an_event_travels_as_seq_kind_and_data() {
        let event = Event {
            seq: 7,
            data: EventData::Handoff(handoff()),
        };
        let json = serde_json::to_value(&event).unwrap_or_default();
        assert_eq!(json["seq"], 7);
        assert_eq!(json["kind"], "handoff");
        assert_eq!(json["data"]["status"], "pending");
        assert_eq!(json["data"]["assignee"], serde_json::Value::Null);
        let back: Event = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, event);
    }

    fn raw(seq: u64, kind: &str, data: &str) -> RawEvent {
        RawEvent {
            seq,
            kind: kind.into(),
            data: serde_json::value::RawValue::from_string(data.into()).expect("raw json"),
        }
    }

    #[test]
    fn an_unknown_event_kind_decodes_to_none_instead_of_failing() {
        assert!(matches!(raw(3, "reaction", "{}").decode(), Ok(None)));
    }

    #[test]
    fn a_known_kind_with_a_broken_body_is_an_error() {
        assert!(raw(3, "handoff", r#"{"id":1}"#).decode().is_err());
    }

    #[test]
    fn a_frame_with_one_event_nested_past_any_parser_limit_still_reads_and_isolates_it() {
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let frame = format!(
            r#"[{{"seq":1,"kind":"tags","data":{{"tags":["vip"]}}}},{{"seq":2,"kind":"message","data":{{"payload":{deep}}}}},{{"seq":3,"kind":"tags","data":{{"tags":[]}}}}]"#
        );
        let Ok(StreamFrame::Events(events)) = StreamFrame::parse(&frame) else {
            panic!("the frame reads");
        };
        let decoded: Vec<bool> = events.iter().map(|e| e.decode().is_ok()).collect();
        assert_eq!(decoded, [true, false, true]);
        assert_eq!(events[1].seq, 2);
    }

    #[test]
    fn a_stream_frame_is_a_batch_a_notice_or_one_event() {
        let batch = StreamFrame::parse(
            r#"[{"seq":1,"kind":"tags","data":{"tags":[]}},{"seq":2,"kind":"x","data":{}}]"#,
        );
        assert!(matches!(batch, Ok(StreamFrame::Events(e)) if e.len() == 2 && e[1].seq == 2));
        assert_eq!(
            StreamFrame::parse(r#"{"type":"caught_up","seq":7}"#).ok(),
            Some(StreamFrame::Notice(StreamNotice::CaughtUp { seq: 7 }))
        );
        let one = StreamFrame::parse(r#"{"seq":3,"kind":"tags","data":{"tags":[]}}"#);
        assert!(matches!(one, Ok(StreamFrame::Events(e)) if e.len() == 1));
        assert!(StreamFrame::parse("{\"nonsense\":true}").is_err());
    }
}
