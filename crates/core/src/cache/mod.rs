//! The device's local copy of the team's inbox: a SQLite database the sync engine writes hub events
//! into and the UI reads from, online or not. One concern per file: `apply.rs` (events, snapshots,
//! the cursor), `history.rs` (backfill and sync state), `views.rs` (what the inbox shows),
//! `drafts.rs`, `outbox.rs` (the device's queue of agent actions) and `search.rs`. The connections
//! are private to this module; rows are decoded by [`json_rows`] and [`json_row`].
//!
//! [`Cache::apply`] writes a batch of events and the new cursor in one transaction, and skips
//! events at or below the cursor, so every event is applied exactly once and a crash mid-batch
//! leaves the cache as it was before the batch.

mod apply;
mod drafts;
mod history;
mod media;
mod outbox;
pub mod search;
#[cfg(test)]
mod tests;
mod views;

use std::path::Path;

use baton_protocol::{Contact, Event, Handoff, Message, Note};
use rusqlite::{Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) use apply::confirm_in;

/// Numbered migrations, one transaction each; `PRAGMA user_version` records the last applied.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_notes_templates.sql")),
    (3, include_str!("../../migrations/0003_search_outbox.sql")),
    (
        4,
        include_str!("../../migrations/0004_unreadable_events.sql"),
    ),
    (5, include_str!("../../migrations/0005_media.sql")),
    (6, include_str!("../../migrations/0006_reads.sql")),
    (7, include_str!("../../migrations/0007_queue_order.sql")),
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    #[error("local cache error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("local cache holds data this build cannot read: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the local cache is at schema version {found}, newer than this build ({known}); upgrade Baton")]
    TooNew { found: u32, known: u32 },
    #[error("cannot create the cache directory: {0}")]
    Dir(#[from] std::io::Error),
    /// A batch did not continue from the cursor (an event is missing): nothing was applied, and
    /// the caller reads the log again from the cursor.
    #[error("the events jump from seq {cursor} to {found}; reading again from {cursor}")]
    Gap { cursor: u64, found: u64 },
}

/// One event of a batch, as the sync engine could read it.
// Nearly every item is an event: boxing it would allocate for the common case to save space in
// the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Event(Event),
    /// A kind this build does not know (a newer hub): passed over quietly.
    UnknownKind {
        seq: u64,
    },
    /// A known kind whose data could not be read: kept aside by seq, with why (see
    /// [`Cache::unreadable_events`]), and passed over so everything else is applied.
    Unreadable {
        seq: u64,
        kind: String,
        error: String,
        data: String,
    },
}

impl Incoming {
    pub fn seq(&self) -> u64 {
        match self {
            Incoming::Event(e) => e.seq,
            Incoming::UnknownKind { seq } | Incoming::Unreadable { seq, .. } => *seq,
        }
    }
}

/// An event the cache could not read, as the app reports it.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct UnreadableEvent {
    pub seq: u64,
    pub kind: String,
    pub error: String,
}

/// What one [`Cache::apply`] changed, for the updates the app shows.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    /// Handoffs this device had never seen before.
    pub new_handoffs: Vec<Handoff>,
    /// Known handoffs that went to a (different) agent: taken, transferred or routed.
    pub handed_over: Vec<Handoff>,
    /// Customers' messages this device had never seen before.
    pub customer_messages: Vec<Message>,
    /// Waiting handoffs escalated further (past their channel's target).
    pub escalated: Vec<Handoff>,
    /// Conversations whose messages, handoffs or customer changed.
    pub conversations: Vec<String>,
    /// An agent, a template or the tag list changed.
    pub team_changed: bool,
    /// The cursor after the batch.
    pub cursor: u64,
    /// How many events were new (not already applied).
    pub applied: usize,
    /// Events in the batch that could not be read (kept aside).
    pub unreadable: Vec<UnreadableEvent>,
}

/// How far the history backfill has got: `fetched` of `total` messages, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ts_rs::TS)]
pub struct Backfill {
    pub fetched: u64,
    /// The hub's message count when the last page was fetched (unknown before the first).
    pub total: Option<u64>,
    /// Where the next (older) page starts; `None` before the first page or once done.
    pub next: Option<i64>,
    /// The local history is complete (or reaches back as far as the age cap asks).
    pub done: bool,
}

/// Everything the side panel shows about a conversation's customer.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct CustomerView {
    pub contact: Option<Contact>,
    /// Every handoff of this customer (across their conversations), newest first, labels included.
    pub handoffs: Vec<Handoff>,
    /// Notes on this conversation, oldest first.
    pub notes: Vec<Note>,
}

/// Which handoffs a list shows: the queue (`pending`: waiting, so nobody's), the agent's own
/// (`mine`), every open one (`open`: who has what), or a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum HandoffView {
    Pending,
    Mine,
    Open,
    Assigned,
    Resolved,
    Cancelled,
}

/// The order of a list. `waiting` (the default) puts the queue most urgent first, then whoever
/// has waited longest, and closed handoffs newest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum HandoffSort {
    #[default]
    Waiting,
    Newest,
    Oldest,
}

/// Narrows a list; every field left out keeps all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct HandoffFilter {
    /// Carries this tag.
    #[ts(optional)]
    pub tag: Option<String>,
    /// Came through this kind of channel: `botpress`, `whatsapp` or `bot`.
    #[ts(optional)]
    pub channel_kind: Option<String>,
    /// Held by this agent (an id).
    #[ts(optional)]
    pub agent: Option<String>,
    #[ts(optional)]
    pub priority: Option<baton_protocol::Priority>,
    /// Only what the signed-in agent has not read.
    pub unread: bool,
    pub sort: HandoffSort,
}

/// One window of a list: `rows` from `offset` on, of `total`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ts_rs::TS)]
pub struct HandoffPage {
    pub total: u32,
    pub offset: u32,
    pub rows: Vec<HandoffSummary>,
}

/// How many handoffs each list holds, for the tabs, the tray and the team.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
pub struct HandoffCounts {
    pub pending: u32,
    /// Open handoffs assigned to the signed-in agent.
    pub mine: u32,
    /// Pending and assigned.
    #[serde(default)]
    pub open: u32,
    pub resolved: u32,
    pub cancelled: u32,
    /// Waiting or mine, and unread by the signed-in agent: the tray's number.
    #[serde(default)]
    pub unread: u32,
    /// Open handoffs per tag.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, u32>,
}

/// One row of the inbox list.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ts_rs::TS)]
pub struct HandoffSummary {
    pub handoff: Handoff,
    /// The customer's name, once the hub knows who the conversation belongs to.
    pub customer: Option<String>,
    pub last_message: Option<Message>,
    /// The kind of channel the conversation came through (`whatsapp`); none for Botpress.
    #[serde(default)]
    pub channel_kind: Option<String>,
    /// When the customer last wrote (WhatsApp's 24-hour window runs from it).
    #[serde(default)]
    pub last_inbound_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The customer wrote since the signed-in agent last read it, or they marked it unread.
    #[serde(default)]
    pub unread: bool,
}

pub struct Cache {
    conn: Connection,
    /// A second connection to the same file with `synchronous=FULL`, for writes the agent was
    /// told are safe (the outbox): a reply shown as queued survives a power cut. The synced data
    /// does not need that (the hub still has it), so the main connection stays faster.
    durable: Connection,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

impl Cache {
    /// Opens (creating if needed) the cache database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, CacheError> {
        if let Some(dir) = path.parent() {
            // Customers' conversations: readable by this user only.
            baton_protocol::private_fs::private_dir(
                dir,
                &path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )?;
        }
        baton_protocol::private_fs::private_touch(path)?;
        let mut conn = Connection::open(path)?;
        // Applying events uses a few dozen distinct statements; the default cache (16) would
        // re-prepare them over and over.
        conn.set_prepared_statement_cache_capacity(128);
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL in WAL mode: a power cut may lose the last batch, never corrupt; the hub still has it.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // A million messages and their search index: keep the hot pages in memory (32 MiB) and read
        // the rest through a memory map instead of copying.
        conn.pragma_update(None, "cache_size", -8_192)?;
        conn.pragma_update(None, "mmap_size", 0)?;
        // Checkpoint less often: pages rewritten by consecutive batches are copied back once.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        migrate(&mut conn)?;
        let durable = Connection::open(path)?;
        durable.busy_timeout(std::time::Duration::from_secs(5))?;
        durable.pragma_update(None, "synchronous", "FULL")?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            baton_protocol::private_fs::private_file(Path::new(&name))?;
        }
        Ok(Self { conn, durable })
    }

    /// How durably the outbox is written: SQLite's `synchronous` level on its connection
    /// (2 = FULL: every commit is on disk before it returns).
    pub fn outbox_durability(&self) -> Result<i64, CacheError> {
        Ok(self
            .durable
            .query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    }
}

/// Every row of a query whose first column is an entity's JSON, decoded: the one way rows become
/// values in the cache.
fn json_rows<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, CacheError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(serde_json::from_str(&row?)?);
    }
    Ok(out)
}

/// The first row of such a query, decoded, if there is one (a NULL counts as none).
fn json_row<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>, CacheError> {
    let data: Option<Option<String>> = conn
        .prepare_cached(sql)?
        .query_row(params, |r| r.get(0))
        .optional()?;
    Ok(data
        .flatten()
        .map(|d| serde_json::from_str(&d))
        .transpose()?)
}

fn read_state(conn: &Connection, key: &str) -> Result<Option<String>, CacheError> {
    Ok(conn
        .prepare_cached("SELECT value FROM sync_state WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

fn write_state(conn: &Connection, key: &str, value: &str) -> Result<(), CacheError> {
    conn.prepare_cached(
        "INSERT INTO sync_state (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute([key, value])?;
    Ok(())
}

fn read_cursor(conn: &Connection) -> Result<u64, CacheError> {
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM sync_state WHERE key = 'cursor'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn write_cursor(conn: &Connection, seq: u64) -> Result<(), CacheError> {
    conn.prepare_cached(
        "INSERT INTO sync_state (key, value) VALUES ('cursor', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute([seq.to_string()])?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), CacheError> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0);
    if current > known {
        return Err(CacheError::TooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}
