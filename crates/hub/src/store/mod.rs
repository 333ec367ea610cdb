//! The hub's storage interface: what the hub keeps (the team's entities, the event log,
//! credentials, recorded commands, queued deliveries), asked for in Baton's own words. Domain
//! modules (handoffs, delivery, auth, admin, Botpress routes) speak only to these traits; the one
//! implementation today is [`sqlite::SqliteStore`], and it is the only place in the hub that holds
//! SQL. Another store (PostgreSQL) is one new module implementing [`Store`], [`Read`] and [`Tx`]
//! that passes the shared suite in `suite.rs` (`store_suite!`).
//!
//! Every change runs in a transaction ([`Tx`]) and appends the events announcing it; their `seq`s
//! come from the same transaction, so an entity and its event are committed together or not at
//! all. After the commit the events are broadcast to live streams in `seq` order as [`Live`]
//! frames. [`Store::submit`] is the hot path's variant: jobs from many requests share one commit
//! (group commit), each isolated so one job's failure undoes only its own writes.

/// SQL for "call `o` is first in its conversation": no earlier call of it is still queued or being
/// sent. Calls go in order per conversation; every store's claim and `next_delivery_at` share it.
macro_rules! first_in_its_conversation {
    () => {
        "NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.conversation_id = o.conversation_id
                     AND p.channel_id = o.channel_id
                     AND p.id < o.id AND p.state IN ('queued', 'sending'))"
    };
}

#[cfg(test)]
#[macro_use]
mod suite;
#[cfg(feature = "postgres")]
pub mod moving;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod serving;
pub mod sqlite;

use std::path::PathBuf;

use baton_protocol::{Agent, Contact, Conversation, Event, EventData, Handoff, Message, Template};
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::channel::{ChannelRow, ChannelSettings};
use crate::push::Device;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The most bytes of events one stream frame or log page carries; a single larger event still goes,
/// alone. Clients accept frames far larger than this (see baton-core's client), so a device that
/// was offline for a long time always gets its backlog.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("cannot open the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the database is at schema version {found}, newer than this build knows ({known}); upgrade Baton")]
    TooNew { found: u32, known: u32 },
    #[error("the store lock was poisoned by a panic")]
    Poisoned,
    #[error("the group commit failed: {0}")]
    CommitFailed(String),
    #[error("that snapshot page cursor is not one this hub gave out")]
    BadCursor,
    #[error("this store keeps no files")]
    NoFiles,
}

/// A page of the log as the JSON text of an array of events.
#[derive(Debug, Clone)]
pub struct RawEvents {
    pub json: String,
    pub count: usize,
    /// The seqs of the first and the last event in it.
    pub first: Option<u64>,
    pub last: Option<u64>,
    /// The page stopped at its count or byte limit: there may be more after `last`.
    pub more: bool,
}

impl RawEvents {
    /// An empty page that will take up to `limit` events and about `max_bytes` of them.
    pub(crate) fn page(limit: u32, max_bytes: usize) -> EventPage {
        EventPage {
            page: RawEvents {
                json: String::from("["),
                count: 0,
                first: None,
                last: None,
                more: false,
            },
            limit,
            max_bytes,
        }
    }
}

/// A page of the log being filled from a store's rows, oldest first (every store reads the log
/// its own way and pages it the same way).
pub(crate) struct EventPage {
    page: RawEvents,
    limit: u32,
    max_bytes: usize,
}

impl EventPage {
    /// Adds one event; `false` when the page is full by bytes (it was not added: there is more).
    /// A single event larger than the budget still goes, alone.
    pub(crate) fn push(&mut self, seq: u64, kind: &str, data: &str) -> bool {
        let page = &mut self.page;
        if page.count > 0 && page.json.len() + data.len() + 64 > self.max_bytes {
            page.more = true;
            return false;
        }
        if page.count > 0 {
            page.json.push(',');
        }
        push_event(&mut page.json, seq, kind, data);
        page.count += 1;
        page.first.get_or_insert(seq);
        page.last = Some(seq);
        true
    }

    pub(crate) fn finish(mut self) -> RawEvents {
        self.page.more |= self.page.count as u32 == self.limit;
        self.page.json.push(']');
        self.page
    }
}

/// One commit's events as streams send them: the UTF-8 JSON text of an array of events, made once
/// and shared (not copied) by every stream. `first..=last` are the seqs it holds.
#[derive(Debug, Clone)]
pub struct Live {
    pub first: u64,
    pub last: u64,
    pub json: bytes::Bytes,
    /// Read back from the log (on a shared database: it may hold another instance's commits),
    /// rather than handed over by this process's writer.
    pub from_log: bool,
}

/// What an agent's command was answered with, kept under its `(agent, txn_id)`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCommand {
    pub response: String,
    /// A hash of what was asked (see the API's `fingerprint`); none for commands recorded before
    /// fingerprints existed.
    pub fingerprint: Option<String>,
}

/// A sign-in token of an enabled agent, by its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToken {
    pub agent: Agent,
    /// When it was made; `None` if the stored time cannot be read.
    pub created_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A new channel's row: its credential only as a hash.
#[derive(Debug, Clone)]
pub struct NewChannel<'a> {
    pub id: &'a str,
    /// `botpress`, `whatsapp` or `bot`.
    pub kind: &'a str,
    pub name: &'a str,
    pub secret_hash: &'a str,
    pub webhook_url: Option<&'a str>,
    pub created_at: DateTime<Utc>,
}

/// A call to a bot platform, to queue (or as it was queued).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub channel_id: String,
    pub conversation_id: String,
    /// The platform's route (`message-from-agent`, `stop-hitl`, …).
    pub route: String,
    /// The JSON body to send.
    pub body: String,
    /// The agent's message it carries, if any (its delivery status follows the call's).
    pub message_id: Option<String>,
}

/// A queued call whose time has come, claimed for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub id: i64,
    pub channel_id: String,
    /// `botpress` or `whatsapp`: how the call is made.
    pub channel_kind: String,
    pub conversation_id: String,
    /// The channel's webhook URL; `None` while it has none (the row stays queued).
    pub url: Option<String>,
    pub route: String,
    pub body: String,
    pub message_id: Option<String>,
    /// Attempts before this one.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
}

/// Where a queued call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Queued,
    Sending,
    Sent,
    Uncertain,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Uncertain => "uncertain",
            Self::Failed => "failed",
        }
    }
}

/// What the hub looks up, in a transaction or outside one.
pub trait Read {
    fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError>;
    fn agent_by_email(&self, email: &str) -> Result<Option<Agent>, StoreError>;
    /// Every agent, by name.
    fn agents(&self) -> Result<Vec<Agent>, StoreError>;
    /// The id and password hash of the enabled agent with this email.
    fn credentials(&self, email: &str) -> Result<Option<(String, String)>, StoreError>;
    fn contact(&self, id: &str) -> Result<Option<Contact>, StoreError>;
    fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError>;
    fn handoff(&self, id: &str) -> Result<Option<Handoff>, StoreError>;
    fn message(&self, id: &str) -> Result<Option<Message>, StoreError>;
    /// Whether a message is stored (without reading it).
    fn has_message(&self, id: &str) -> Result<bool, StoreError>;
    /// The size of a file the store keeps ([`Store::keeps_files`]), without reading it.
    fn file_size(&self, _name: &str) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// Whether a platform's message is stored: under `id`, or under an id its `external` id
    /// (kind "message") is linked to. One look-up where the store can make it one.
    fn has_platform_message(
        &self,
        id: &str,
        channel_id: &str,
        external: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.has_message(id)? || self.external_id(channel_id, "message", external)?.is_some())
    }
    /// The newest message an agent wrote in the conversation that is not text, if any.
    fn latest_agent_media(&self, conversation_id: &str) -> Result<Option<Message>, StoreError>;
    /// Handoffs created from `since` (to the second) on, oldest first: what reports count.
    fn handoffs_since(&self, since: DateTime<Utc>) -> Result<Vec<Handoff>, StoreError>;
    /// When agents wrote in the conversation (their replies, not the desk's notices).
    fn agent_reply_times(&self, conversation_id: &str) -> Result<Vec<DateTime<Utc>>, StoreError>;
    /// The conversation's drafted replies still waiting for a decision, oldest first.
    fn drafts_waiting(&self, conversation_id: &str) -> Result<Vec<String>, StoreError>;
    /// Drafts whose channel's timeout has passed by `now`, soonest due first.
    fn due_drafts(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<String>, StoreError>;
    /// The newest message the customer wrote in a conversation.
    fn latest_customer_message(&self, conversation_id: &str)
        -> Result<Option<Message>, StoreError>;
    /// The conversation's handoff that is still pending or assigned, if any (the newest).
    fn open_handoff(&self, conversation_id: &str) -> Result<Option<Handoff>, StoreError>;
    /// Where `agent_id` has read `conversation_id` up to, if they ever opened it.
    fn read_mark(
        &self,
        agent_id: &str,
        conversation_id: &str,
    ) -> Result<Option<baton_protocol::ReadMark>, StoreError>;
    /// The handoffs `agent_id` holds (assigned to them).
    fn held_handoffs(&self, agent_id: &str) -> Result<Vec<Handoff>, StoreError>;
    /// The pending handoffs of a channel's conversations.
    fn pending_handoffs(&self, channel_id: &str) -> Result<Vec<Handoff>, StoreError>;
    /// The team's tags.
    fn tags(&self) -> Result<Vec<String>, StoreError>;
    /// A hub-wide setting's stored JSON (the push providers' configuration, …), if set.
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Every device registered for push.
    fn devices(&self) -> Result<Vec<Device>, StoreError>;
    /// Templates not deleted, by name.
    fn templates(&self) -> Result<Vec<Template>, StoreError>;
    fn channel(&self, id: &str) -> Result<Option<ChannelRow>, StoreError>;
    /// Every channel, oldest first.
    fn channels(&self) -> Result<Vec<ChannelRow>, StoreError>;
    /// The Botpress channel whose endpoint secret has this hash.
    /// The channel of a `kind` (`botpress`, `bot`) whose secret has this hash.
    fn channel_by_secret(
        &self,
        kind: &str,
        secret_hash: &str,
    ) -> Result<Option<String>, StoreError>;
    fn recorded_command(
        &self,
        agent_id: &str,
        txn_id: &str,
    ) -> Result<Option<RecordedCommand>, StoreError>;
    /// The token with this hash, if its agent is enabled.
    fn token(&self, token_hash: &str) -> Result<Option<StoredToken>, StoreError>;
    /// Why the conversation's first waiting call waits (no webhook URL yet, Botpress down), if
    /// one is waiting for a reason.
    fn delivery_waiting_reason(&self, conversation_id: &str) -> Result<Option<String>, StoreError>;
    /// The last call queued for an agent's message.
    fn delivery_of_message(&self, message_id: &str) -> Result<Option<Delivery>, StoreError>;
    /// The messages of the conversation's queued calls, in order.
    fn queued_messages(&self, conversation_id: &str) -> Result<Vec<String>, StoreError>;
    /// Calls marked as being sent (`id`, message, channel), oldest first.
    fn deliveries_in_flight(&self) -> Result<Vec<(i64, Option<String>, String)>, StoreError>;
    /// When the earliest queued call that is first in its conversation comes due (a call behind
    /// another waits for it, as [`Tx::claim_due_deliveries`] does).
    fn next_delivery_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// The contact a platform id (`kind`: `phone`, `bsuid`) is linked to, in one look-up.
    fn linked_contact(
        &self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
    ) -> Result<Option<Contact>, StoreError>;
    /// The conversation linked to a contact on a channel (one per customer and number).
    fn linked_conversation(
        &self,
        channel_id: &str,
        contact_id: &str,
    ) -> Result<Option<Conversation>, StoreError>;
    /// The hub's id for what a channel's platform calls `external_id` (of a `kind`: a message, a
    /// customer, an applied status), if it has one.
    fn external_id(
        &self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
    ) -> Result<Option<String>, StoreError>;
}

/// A write transaction: what [`Read`] sees, including its own writes, plus every change.
pub trait Tx: Read {
    /// The events appended so far in this transaction.
    fn events(&self) -> &[Event];
    /// Stores an entity's new state and appends the event that announces it. (An agent's row must
    /// exist: see [`Tx::add_agent`].)
    fn put(&mut self, data: EventData) -> Result<Event, StoreError>;
    /// A new agent with their password hash; announced like any other agent change.
    fn add_agent(&mut self, agent: &Agent, password_hash: &str) -> Result<Event, StoreError>;
    /// Whether the agent may sign in, and a new password hash if it changes.
    fn set_agent_access(
        &mut self,
        agent_id: &str,
        disabled: bool,
        password_hash: Option<&str>,
    ) -> Result<(), StoreError>;
    fn add_channel(&mut self, channel: &NewChannel<'_>) -> Result<(), StoreError>;
    fn set_channel_secret(&mut self, id: &str, secret_hash: &str) -> Result<(), StoreError>;
    fn set_channel(
        &mut self,
        id: &str,
        name: &str,
        webhook_url: Option<&str>,
        settings: &ChannelSettings,
    ) -> Result<(), StoreError>;
    /// Remembers a platform id for a hub id; `false` when it was already known (a redelivery),
    /// and then nothing changes.
    fn link_external(
        &mut self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
        internal_id: &str,
    ) -> Result<bool, StoreError>;
    /// [`Self::link_external`] for a caller that need not know whether the id was known already:
    /// a store may write it without waiting for the answer.
    fn add_link(
        &mut self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
        internal_id: &str,
    ) -> Result<(), StoreError> {
        self.link_external(channel_id, kind, external_id, internal_id)
            .map(|_| ())
    }
    /// [`Self::add_link`] for a link keyed by an id this transaction made (a new customer's
    /// contact), which nothing can link yet: a store that keeps what it read may know the link
    /// from now on without reading it back.
    fn add_link_to_new_id(
        &mut self,
        channel_id: &str,
        kind: &str,
        new_id: &str,
        internal_id: &str,
    ) -> Result<(), StoreError> {
        self.add_link(channel_id, kind, new_id, internal_id)
    }
    /// When a draft is decided for it if no agent has (`None`: never, or no longer).
    fn set_draft_deadline(
        &mut self,
        message_id: &str,
        due_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;
    /// Forgets a platform id (a phone number the customer no longer has).
    fn unlink_external(
        &mut self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
    ) -> Result<(), StoreError>;
    fn add_token(
        &mut self,
        token_hash: &str,
        agent_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    fn touch_token(&mut self, token_hash: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    fn remove_token(&mut self, token_hash: &str) -> Result<(), StoreError>;
    fn remove_tokens_of(&mut self, agent_id: &str) -> Result<(), StoreError>;
    /// Sets (or, with `None`, removes) a hub-wide setting.
    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<(), StoreError>;
    /// Registers a device for push under the session `token_hash`, replacing any device with the
    /// same platform and address.
    fn put_device(&mut self, device: &Device, token_hash: &str) -> Result<(), StoreError>;
    /// Removes a device; whether there was one.
    fn remove_device(&mut self, id: &str) -> Result<bool, StoreError>;
    /// Removes tokens made before `born_before` or last used before `used_before`; how many.
    fn remove_expired_tokens(
        &mut self,
        born_before: DateTime<Utc>,
        used_before: DateTime<Utc>,
    ) -> Result<usize, StoreError>;
    fn record_command(
        &mut self,
        agent_id: &str,
        txn_id: &str,
        recorded: &RecordedCommand,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Queues a call, due now, behind the conversation's earlier ones.
    fn queue_delivery(&mut self, call: &Delivery, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// How many calls this transaction has queued so far: a job that compares it before and
    /// after knows whether to wake the delivery worker.
    fn calls_queued(&self) -> usize;
    /// Makes queued calls (of one channel, or all) due now.
    fn retry_deliveries_now(
        &mut self,
        channel_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Up to `limit` calls due at `now` that are first in their conversation; those with a URL
    /// are marked `sending` (one more attempt).
    fn claim_due_deliveries(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// Records a call's outcome: its new state, why (if it did not go), and when to try again
    /// (queued calls).
    fn settle_delivery(
        &mut self,
        id: i64,
        state: DeliveryState,
        last_error: Option<&str>,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;
}

/// The entity tables a snapshot carries, in the order its pages walk them.
pub(crate) const SNAPSHOT_TABLES: [&str; 7] = [
    "contacts",
    "conversations",
    "handoffs",
    "agents",
    "notes",
    "templates",
    "reads",
];

/// `"<table index>:<row>"`, as [`Store::snapshot_page`] hands it out (the row is the table's
/// insertion order: SQLite's rowid, PostgreSQL's `rid`).
pub(crate) fn parse_snapshot_cursor(cursor: &str) -> Option<(usize, i64)> {
    let (table, row) = cursor.split_once(':')?;
    let table: usize = table.parse().ok()?;
    (table < SNAPSHOT_TABLES.len()).then_some(())?;
    Some((table, row.parse().ok()?))
}

/// A store's writer thread: takes every queued job (up to `max` at once) and hands them, with the
/// writer's connection, to `commit`, which runs them in one transaction (see each store's
/// `commit_group`; jobs it leaves in the queue run in the next). Ends when the store is dropped.
pub(crate) fn group_commits<C>(
    writer: &std::sync::Mutex<C>,
    queue: &std::sync::mpsc::Receiver<Box<dyn GroupJob>>,
    max: usize,
    mut commit: impl FnMut(&mut C, &mut std::collections::VecDeque<Box<dyn GroupJob>>),
) {
    let mut jobs: std::collections::VecDeque<Box<dyn GroupJob>> = std::collections::VecDeque::new();
    let take_waiting = |jobs: &mut std::collections::VecDeque<Box<dyn GroupJob>>| {
        while jobs.len() < max {
            match queue.try_recv() {
                Ok(job) => jobs.push_back(job),
                Err(_) => break,
            }
        }
    };
    loop {
        if jobs.is_empty() {
            match queue.recv() {
                Ok(job) => jobs.push_back(job),
                Err(_) => return,
            }
        }
        take_waiting(&mut jobs);
        let Ok(mut conn) = writer.lock() else {
            tracing::error!("group commit: the writer lock is poisoned");
            for job in jobs.drain(..) {
                job.fail("the store's writer is broken".into());
            }
            continue;
        };
        // Jobs that came while the writer was busy (another write, the admin CLI) join this group.
        take_waiting(&mut jobs);
        commit(&mut conn, &mut jobs);
    }
}

/// Answers a group job's caller once its commit's outcome is known.
pub type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// One caller's work for a group commit.
pub trait GroupJob: Send {
    /// Runs inside the group's transaction. `true` with the completion to call after the commit;
    /// `false` when the job failed (its caller is answered already, its writes must be undone).
    fn run(self: Box<Self>, tx: &mut dyn Tx) -> (bool, Completion);
    /// The group cannot run at all: answer the caller with why.
    fn fail(self: Box<Self>, error: String);
    /// What the job will look for: a store may look for every job's in a group at once.
    fn looks_for(&self) -> Option<&LookAhead> {
        None
    }
}

/// What a job will look for in the store, said before it runs (see [`GroupJob::looks_for`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookAhead {
    /// Platform messages, to know whether they are stored ([`Read::has_platform_message`]).
    pub messages: Vec<PlatformMessage>,
    /// Platform ids, to know what they are linked to ([`Read::external_id`],
    /// [`Read::linked_contact`]): a customer's phone number, say.
    pub links: Vec<PlatformKey>,
}

/// A platform's id of some kind on a channel, as [`Read::external_id`] looks for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlatformKey {
    pub channel_id: String,
    pub kind: String,
    pub external: String,
}

/// A customer's message from a platform, as [`Read::has_platform_message`] looks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformMessage {
    /// The id the hub gives it.
    pub id: String,
    pub channel_id: String,
    /// The platform's id for it (a WhatsApp wamid).
    pub external: String,
}

/// A hub's storage.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// A consistent view for reads (never blocks the writer).
    fn reader(&self) -> Result<Box<dyn Read + '_>, StoreError>;
    /// Runs `f` in one transaction; commits when it returns `true` (then broadcasts the events),
    /// rolls back otherwise.
    fn write_with(&self, f: &mut dyn FnMut(&mut dyn Tx) -> bool) -> Result<(), StoreError>;
    /// Queues a job for the next group commit.
    fn submit(&self, job: Box<dyn GroupJob>) -> Result<(), StoreError>;
    /// Committed events, as they are committed, in seq order: on a shared store, every
    /// instance's; else this process's (the hub looks for other processes' writes, the admin
    /// CLI's, once a second).
    fn subscribe(&self) -> broadcast::Receiver<Live>;
    /// The newest seq this process committed or noticed (on a shared store, the relay notices
    /// other instances' commits). When the log holds more, another process wrote it.
    fn announced(&self) -> u64;
    /// Records that events up to `seq`, written elsewhere, have been noticed.
    fn noticed(&self, seq: u64);
    /// Up to `limit` events with `seq > after`, oldest first, and no more than `max_bytes` of
    /// them (one larger event still goes, alone), as stored JSON, never re-encoded.
    fn event_page(&self, after: u64, limit: u32, max_bytes: usize)
        -> Result<RawEvents, StoreError>;
    /// Every seq at or below this has been trimmed from the log (0: nothing trimmed).
    fn log_floor(&self) -> Result<u64, StoreError>;
    /// Drops all but the newest `keep` events from the log; returns the new floor.
    fn trim_log(&self, keep: u64) -> Result<u64, StoreError>;
    /// One page of the inbox's current state (every entity but messages) as the JSON text of a
    /// [`baton_protocol::Snapshot`], at most about `max_bytes`; `from` is the previous page's
    /// `next`. Each page reports the seq it reflects.
    fn snapshot_page(&self, from: Option<&str>, max_bytes: usize) -> Result<String, StoreError>;
    /// Messages newest first, all or one conversation's, as the JSON text of a
    /// [`baton_protocol::MessagePage`].
    fn messages_before(
        &self,
        conversation: Option<&str>,
        before: Option<i64>,
        limit: u32,
        max_bytes: usize,
    ) -> Result<String, StoreError>;
    /// The newest seq in the log (0 when empty).
    fn last_seq(&self) -> Result<u64, StoreError>;
    /// Whether several hub instances serve from this store at once (PostgreSQL). Then sweeps run
    /// on one of them ([`Store::leading`]) and agents' activity is shared through the store.
    fn shared(&self) -> bool {
        false
    }
    /// Whether this instance runs the team-wide sweeps (presence and pending timeouts, routing,
    /// escalations, token expiry, draft deadlines): always for a store only it serves; for a
    /// shared one, the instance holding the leader lock, which passes to another when it dies.
    fn leading(&self) -> bool {
        true
    }
    /// Records agents' latest signs of life seen by this instance (a shared store keeps them for
    /// the leader's presence sweep; others need not).
    fn record_activity(&self, _seen: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        Ok(())
    }
    /// Agents' latest signs of life recorded by every instance (empty for a store only one
    /// process serves: it keeps them in memory).
    fn activity(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        Ok(Vec::new())
    }
    /// Failed sign-ins counted by every instance, for each key (`account:<email>`,
    /// `address:<ip>`): how many, and the last one's time. Empty for a store one process serves
    /// (it counts in memory).
    fn login_failures(
        &self,
        _keys: &[String],
    ) -> Result<Vec<(String, u32, DateTime<Utc>)>, StoreError> {
        Ok(Vec::new())
    }
    /// Counts a failed sign-in for each key; a count whose last failure is older than `forget`
    /// starts again.
    fn record_login_failure(
        &self,
        _keys: &[String],
        _now: DateTime<Utc>,
        _forget: chrono::TimeDelta,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// Forgets the failures counted for `key` (the account signed in).
    fn clear_login_failures(&self, _key: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether files (uploads, media: [`crate::files`]) are kept here, for every instance; else
    /// the hub keeps them in its data directory.
    fn keeps_files(&self) -> bool {
        false
    }
    /// Keeps a file under `name`; a name kept already keeps its first bytes (files are named by
    /// what they hold).
    fn put_file(&self, _name: &str, _bytes: &[u8]) -> Result<(), StoreError> {
        Err(StoreError::NoFiles)
    }
    /// A kept file's bytes.
    fn file(&self, _name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
}

impl dyn Store + '_ {
    /// Runs `f` in one transaction; commits if it returns `Ok`, then broadcasts its events.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut f = Some(f);
        let mut outcome: Option<Result<T, E>> = None;
        self.write_with(&mut |tx| {
            let Some(f) = f.take() else { return false };
            let result = f(tx);
            let commit = result.is_ok();
            outcome = Some(result);
            commit
        })?;
        outcome.unwrap_or_else(|| Err(StoreError::Poisoned.into()))
    }

    /// Runs `f` inside the next group commit, with other callers' jobs, and returns once that
    /// commit is durable. A job's own failure undoes only its own writes; a failed commit fails
    /// every job in it.
    pub fn write_grouped<T, E>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (answer, answered) = std::sync::mpsc::sync_channel::<Result<T, E>>(1);
        self.submit(Box::new(PendingJob {
            f,
            answer: move |result| {
                let _ = answer.send(result);
            },
            looks_for: LookAhead::default(),
        }))
        .map_err(E::from)?;
        answered.recv().map_err(|_| E::from(StoreError::Poisoned))?
    }

    /// [`Self::write_grouped`] for async callers: waits without holding a thread, so the hot path
    /// (messages from Botpress) never hops through the blocking pool.
    pub async fn write_grouped_async<T, E>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_grouped_looking_for(LookAhead::default(), f)
            .await
    }

    /// [`Self::write_grouped_async`] for a job that will look for these platform messages and
    /// links: the store may look for every job's in the group at once, before running them.
    pub async fn write_grouped_looking_for<T, E>(
        &self,
        looks_for: LookAhead,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        self.submit(Box::new(PendingJob {
            f,
            answer: move |result| {
                let _ = answer.send(result);
            },
            looks_for,
        }))
        .map_err(E::from)?;
        answered.await.map_err(|_| E::from(StoreError::Poisoned))?
    }

    /// Up to `limit` events after `after`, decoded (for tests and tools; the API serves pages).
    pub fn events_after(&self, after: u64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let page = self.event_page(after, limit, usize::MAX)?;
        Ok(serde_json::from_str(&page.json)?)
    }

    /// The whole snapshot, decoded (for tests and tools; the API pages it).
    pub fn snapshot(&self) -> Result<baton_protocol::Snapshot, StoreError> {
        let mut page: baton_protocol::Snapshot =
            serde_json::from_str(&self.snapshot_page(None, usize::MAX)?)?;
        page.next = None;
        Ok(page)
    }
}

/// A caller's closure and how to answer it, as one group job.
struct PendingJob<F, A> {
    f: F,
    answer: A,
    looks_for: LookAhead,
}

impl<T, E, F, A> GroupJob for PendingJob<F, A>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    A: FnOnce(Result<T, E>) + Send + 'static,
{
    fn run(self: Box<Self>, tx: &mut dyn Tx) -> (bool, Completion) {
        let PendingJob { f, answer, .. } = *self;
        match f(tx) {
            Ok(value) => (
                true,
                Box::new(move |committed: Result<(), String>| {
                    answer(
                        committed
                            .map(|()| value)
                            .map_err(|e| StoreError::CommitFailed(e).into()),
                    );
                }),
            ),
            Err(err) => {
                answer(Err(err));
                (false, Box::new(|_| {}))
            }
        }
    }

    fn fail(self: Box<Self>, error: String) {
        (self.answer)(Err(StoreError::CommitFailed(error).into()));
    }

    fn looks_for(&self) -> Option<&LookAhead> {
        Some(&self.looks_for)
    }
}

/// Where committed events go: to the live streams, and into the store's newest-seq mark. Shared
/// by every implementation so streams see the same frames whatever keeps the data.
#[derive(Debug, Clone)]
pub struct Announce {
    live: broadcast::Sender<Live>,
    seq: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// How many live events a slow stream may fall behind before it re-reads the log instead.
pub(crate) const BROADCAST_CAPACITY: usize = 4096;

impl Announce {
    pub fn new(last_seq: u64) -> Self {
        Self {
            live: broadcast::channel(BROADCAST_CAPACITY).0,
            seq: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(last_seq)),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.live.subscribe()
    }

    pub fn announced(&self) -> u64 {
        self.seq.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn noticed(&self, seq: u64) {
        self.seq.fetch_max(seq, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sends committed events to live streams, in seq order (callers hold their writer lock), in
    /// frames of at most [`MAX_FRAME_BYTES`] (a single larger event goes alone). `bodies` are the
    /// events' `data` JSON as stored, put together without serialising again.
    pub fn committed(&self, events: &[Event], bodies: &[String]) {
        let Some(newest) = events.last() else {
            return;
        };
        self.noticed(newest.seq);
        if self.live.receiver_count() == 0 {
            // No receivers is fine: nobody is streaming right now.
            return;
        }
        let size: usize = bodies.iter().map(|b| b.len() + 48).sum();
        let mut frame = String::with_capacity(size.min(MAX_FRAME_BYTES) + 2);
        let mut first = 0;
        let mut last = 0;
        for (event, body) in events.iter().zip(bodies) {
            if !frame.is_empty() && frame.len() + body.len() + 64 > MAX_FRAME_BYTES {
                frame.push(']');
                let full = std::mem::replace(&mut frame, String::with_capacity(MAX_FRAME_BYTES));
                let _ = self.live.send(Live {
                    first,
                    last,
                    json: full.into(),
                    from_log: false,
                });
            }
            if frame.is_empty() {
                frame.push('[');
                first = event.seq;
            } else {
                frame.push(',');
            }
            push_event(&mut frame, event.seq, event.data.kind(), body);
            last = event.seq;
        }
        frame.push(']');
        let _ = self.live.send(Live {
            first,
            last,
            json: frame.into(),
            from_log: false,
        });
    }
}

/// Appends one event as `{"seq":…,"kind":…,"data":…}`, `data` being stored JSON as it is.
pub fn push_event(json: &mut String, seq: u64, kind: &str, data: &str) {
    use std::fmt::Write;
    let _ = write!(json, r#"{{"seq":{seq},"kind":"{kind}","data":{data}}}"#);
}

/// The JSON of what an event carries (its `data`), as stored in the entity row and the log.
pub fn entity_json(data: &EventData) -> Result<String, serde_json::Error> {
    match data {
        EventData::Contact(v) => serde_json::to_string(v),
        EventData::Conversation(v) => serde_json::to_string(v),
        EventData::Handoff(v) => serde_json::to_string(v),
        EventData::Message(v) => serde_json::to_string(v),
        EventData::Agent(v) => serde_json::to_string(v),
        EventData::Note(v) => serde_json::to_string(v),
        EventData::Template(v) => serde_json::to_string(v),
        EventData::Tags(v) => serde_json::to_string(v),
        EventData::Read(v) => serde_json::to_string(v),
    }
}
