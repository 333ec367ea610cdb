//! The device's local copy of the team's inbox: a SQLite database the sync engine writes hub events
//! into and the UI reads from, online or not.
//!
//! [`Cache::apply`] writes a batch of events and the new cursor in one transaction, and skips
//! events at or below the cursor, so every event is applied exactly once and a crash mid-batch
//! leaves the cache as it was before the batch.

use std::path::Path;

use baton_protocol::{
    Agent, Contact, Event, EventData, Handoff, HandoffStatus, Message, Note, Template,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// Numbered migrations, one transaction each; `PRAGMA user_version` records the last applied.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_notes_templates.sql")),
    (3, include_str!("../migrations/0003_search_outbox.sql")),
    (4, include_str!("../migrations/0004_unreadable_events.sql")),
];

#[derive(Debug, thiserror::Error)]
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
    /// Conversations whose messages, handoffs or customer changed.
    pub conversations: Vec<String>,
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

/// Which handoffs a list shows: the queue (`pending`), the agent's own (`mine`), or a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum HandoffView {
    Pending,
    Mine,
    Assigned,
    Resolved,
    Cancelled,
}

/// One row of the inbox list.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct HandoffSummary {
    pub handoff: Handoff,
    /// The customer's name, once the hub knows who the conversation belongs to.
    pub customer: Option<String>,
    pub last_message: Option<Message>,
}

pub struct Cache {
    pub(crate) conn: Connection,
    /// A second connection to the same file with `synchronous=FULL`, for writes the agent was
    /// told are safe (the outbox): a reply shown as queued survives a power cut. The synced data
    /// does not need that (the hub still has it), so the main connection stays faster.
    pub(crate) durable: Connection,
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
        conn.pragma_update(None, "cache_size", -32_768)?;
        conn.pragma_update(None, "mmap_size", 256 * 1024 * 1024)?;
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

    /// The seq of the last hub event applied (0 for a new cache).
    pub fn cursor(&self) -> Result<u64, CacheError> {
        read_cursor(&self.conn)
    }

    /// Applies the events newer than the cursor, and the new cursor, in one transaction.
    pub fn apply(&mut self, events: &[Event]) -> Result<Applied, CacheError> {
        let batch: Vec<Incoming> = events.iter().cloned().map(Incoming::Event).collect();
        self.apply_batch(&batch)
    }

    /// Applies a batch newer than the cursor, and the new cursor, in one transaction. The batch
    /// must continue the log without a hole: the first event after the cursor is `cursor + 1`,
    /// and so on. A hole refuses the whole batch ([`CacheError::Gap`]) so the caller reads the
    /// log again — an event is never skipped. Unreadable events are kept aside, not skipped.
    pub fn apply_batch(&mut self, batch: &[Incoming]) -> Result<Applied, CacheError> {
        let tx = self.conn.transaction()?;
        let mut cursor = read_cursor(&tx)?;
        let mut applied = Applied {
            cursor,
            ..Applied::default()
        };
        for item in batch {
            let seq = item.seq();
            if seq <= cursor {
                continue;
            }
            if seq != cursor + 1 {
                return Err(CacheError::Gap { cursor, found: seq });
            }
            cursor = seq;
            match item {
                Incoming::Event(event) => {
                    applied.applied += 1;
                    upsert(&tx, &event.data, &mut applied)?;
                }
                Incoming::UnknownKind { .. } => {}
                Incoming::Unreadable {
                    seq,
                    kind,
                    error,
                    data,
                } => {
                    tx.prepare_cached(
                        "INSERT INTO unreadable_events (seq, kind, error, data, seen_at)
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(seq) DO NOTHING",
                    )?
                    .execute(params![
                        *seq as i64,
                        kind,
                        error,
                        data,
                        chrono::Utc::now().to_rfc3339()
                    ])?;
                    applied.unreadable.push(UnreadableEvent {
                        seq: *seq,
                        kind: kind.clone(),
                        error: error.clone(),
                    });
                }
            }
        }
        write_cursor(&tx, cursor)?;
        tx.commit()?;
        applied.cursor = cursor;
        applied.conversations.sort();
        applied.conversations.dedup();
        Ok(applied)
    }

    /// Events this device could not read, newest first.
    pub fn unreadable_events(&self) -> Result<Vec<UnreadableEvent>, CacheError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, kind, error FROM unreadable_events ORDER BY seq DESC")?;
        let rows = stmt.query_map([], |r| {
            Ok(UnreadableEvent {
                seq: r.get::<_, i64>(0)? as u64,
                kind: r.get(1)?,
                error: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes what the hub answered a command with, at once, so the agent sees the result before
    /// the stream brings the same events. The cursor does not move (the stream still delivers
    /// them, harmlessly); events the cache already has (seq at or below the cursor) are skipped.
    pub fn apply_confirmed(&mut self, events: &[Event]) -> Result<Applied, CacheError> {
        let tx = self.conn.transaction()?;
        let applied = confirm_in(&tx, events)?;
        tx.commit()?;
        Ok(applied)
    }

    /// Replaces the synced state with a hub snapshot, in one transaction. Local-only data — the
    /// outbox and drafts — is kept. Cached messages are kept too unless the hub's log is behind this
    /// cache's cursor (its data was reset, so they belong to another history); either way backfill
    /// starts over so history is complete again.
    ///
    /// A large inbox comes in pages: `seq` is the first page's (where the log is followed from),
    /// `first` says whether this page starts the snapshot. Until the last page (no `next`) is in,
    /// the cursor is 0, so a device stopped half-way takes the snapshot again.
    pub fn apply_snapshot(
        &mut self,
        snapshot: &baton_protocol::Snapshot,
    ) -> Result<Applied, CacheError> {
        self.apply_snapshot_page(snapshot, true, snapshot.seq)
    }

    /// One page of a snapshot (see [`Cache::apply_snapshot`]).
    pub fn apply_snapshot_page(
        &mut self,
        snapshot: &baton_protocol::Snapshot,
        first: bool,
        seq: u64,
    ) -> Result<Applied, CacheError> {
        let tx = self.conn.transaction()?;
        if first {
            clear_synced(&tx, read_cursor(&tx)? > seq)?;
        }
        // A snapshot's handoffs are not news: only handoffs that arrive live raise notifications.
        let mut applied = Applied::default();
        let known: Vec<EventData> = snapshot
            .contacts
            .iter()
            .cloned()
            .map(EventData::Contact)
            .chain(
                snapshot
                    .conversations
                    .iter()
                    .cloned()
                    .map(EventData::Conversation),
            )
            .chain(snapshot.handoffs.iter().cloned().map(EventData::Handoff))
            .chain(snapshot.agents.iter().cloned().map(EventData::Agent))
            .chain(snapshot.notes.iter().cloned().map(EventData::Note))
            .chain(snapshot.templates.iter().cloned().map(EventData::Template))
            .chain(std::iter::once(EventData::Tags(snapshot.tags.clone())))
            .collect();
        for data in &known {
            upsert(&tx, data, &mut applied)?;
        }
        let done = snapshot.next.is_none();
        write_cursor(&tx, if done { seq } else { 0 })?;
        tx.commit()?;
        applied.new_handoffs.clear();
        applied.cursor = if done { seq } else { 0 };
        applied.applied = known.len();
        applied.conversations.sort();
        applied.conversations.dedup();
        Ok(applied)
    }

    /// Stores one backfill page (older messages). A message the stream already brought is newer
    /// or the same, so it is left as it is. Returns the progress after this page.
    pub fn apply_backfill(
        &mut self,
        page: &baton_protocol::MessagePage,
        oldest_wanted: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Backfill, CacheError> {
        let tx = self.conn.transaction()?;
        let mut fetched: u64 = read_state(&tx, "backfill_fetched")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut too_old = false;
        for m in &page.messages {
            if oldest_wanted.is_some_and(|cutoff| m.created_at < cutoff) {
                too_old = true;
                continue;
            }
            insert_new_message(&tx, m, &serde_json::to_string(m)?)?;
            fetched += 1;
        }
        let done = too_old || page.next.is_none();
        write_state(&tx, "backfill_fetched", &fetched.to_string())?;
        write_state(&tx, "backfill_total", &page.total.to_string())?;
        match page.next {
            Some(next) if !done => write_state(&tx, "backfill_next", &next.to_string())?,
            _ => write_state(&tx, "backfill_done", "1")?,
        }
        tx.commit()?;
        self.backfill()
    }

    /// Conversations with an open handoff whose history has not been fetched in full yet, with
    /// where their next page starts: backfill does these first, so the work at hand is complete.
    pub fn conversations_to_backfill(&self) -> Result<Vec<(String, Option<i64>)>, CacheError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT h.conversation_id,
                    (SELECT value FROM sync_state WHERE key = 'backfill_conversation:' || h.conversation_id)
             FROM handoffs h WHERE h.status IN ('pending', 'assigned')",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (conversation, state) = row?;
            match state.as_deref() {
                Some("done") => {}
                Some(next) => out.push((conversation, next.parse().ok())),
                None => out.push((conversation, None)),
            }
        }
        Ok(out)
    }

    /// Stores one page of a conversation's history; returns whether that history is complete.
    pub fn apply_conversation_backfill(
        &mut self,
        conversation_id: &str,
        page: &baton_protocol::MessagePage,
    ) -> Result<bool, CacheError> {
        let tx = self.conn.transaction()?;
        for m in &page.messages {
            insert_new_message(&tx, m, &serde_json::to_string(m)?)?;
        }
        let key = format!("backfill_conversation:{conversation_id}");
        let state = page
            .next
            .map_or_else(|| "done".to_string(), |n| n.to_string());
        write_state(&tx, &key, &state)?;
        tx.commit()?;
        Ok(page.next.is_none())
    }

    /// How far the history backfill has got.
    pub fn backfill(&self) -> Result<Backfill, CacheError> {
        let get = |key: &str| -> Result<Option<String>, CacheError> { read_state(&self.conn, key) };
        Ok(Backfill {
            fetched: get("backfill_fetched")?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            total: get("backfill_total")?.and_then(|v| v.parse().ok()),
            next: get("backfill_next")?.and_then(|v| v.parse().ok()),
            done: get("backfill_done")?.as_deref() == Some("1"),
        })
    }

    /// Records that the cache was caught up with the hub at `at` (shown as "synced up to …").
    pub fn mark_synced(&self, at: chrono::DateTime<chrono::Utc>) -> Result<(), CacheError> {
        write_state(&self.conn, "synced_at", &at.to_rfc3339())
    }

    /// When the cache was last caught up with the hub, if ever.
    pub fn synced_at(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, CacheError> {
        Ok(read_state(&self.conn, "synced_at")?
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| t.with_timezone(&chrono::Utc)))
    }

    /// Saves what the agent is typing in a conversation (an empty text removes the draft).
    pub fn save_draft(
        &self,
        conversation_id: &str,
        text: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), CacheError> {
        if text.trim().is_empty() {
            self.conn.execute(
                "DELETE FROM drafts WHERE conversation_id = ?1",
                [conversation_id],
            )?;
        } else {
            self.conn.execute(
                "INSERT INTO drafts (conversation_id, text, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(conversation_id) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
                params![conversation_id, text, at.to_rfc3339()],
            )?;
        }
        Ok(())
    }

    pub fn draft(&self, conversation_id: &str) -> Result<Option<String>, CacheError> {
        Ok(self
            .conn
            .query_row(
                "SELECT text FROM drafts WHERE conversation_id = ?1",
                [conversation_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Does the cache know this conversation?
    pub fn has_conversation(&self, conversation_id: &str) -> Result<bool, CacheError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM conversations WHERE id = ?1")?
            .exists([conversation_id])?)
    }

    /// The newest handoff of a conversation (its title and status head `show` and exports).
    pub fn handoff(&self, id: &str) -> Result<Option<Handoff>, CacheError> {
        let data: Option<String> = self
            .conn
            .query_row("SELECT data FROM handoffs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(data.map(|d| serde_json::from_str(&d)).transpose()?)
    }

    pub fn latest_handoff(&self, conversation_id: &str) -> Result<Option<Handoff>, CacheError> {
        let data: Option<String> = self
            .conn
            .query_row(
                "SELECT data FROM handoffs WHERE conversation_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1",
                [conversation_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(data.map(|d| serde_json::from_str(&d)).transpose()?)
    }

    /// Handoffs in `statuses`, newest first, with their customer and last message.
    pub fn handoffs(&self, statuses: &[HandoffStatus]) -> Result<Vec<HandoffSummary>, CacheError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT h.data, ct.data,
                    (SELECT m.data FROM messages m WHERE m.conversation_id = h.conversation_id
                     ORDER BY m.created_at DESC, m.rowid DESC LIMIT 1)
             FROM handoffs h
             LEFT JOIN conversations c ON c.id = h.conversation_id
             LEFT JOIN contacts ct ON ct.id = c.contact_id
             WHERE h.status IN (SELECT value FROM json_each(?1))
             ORDER BY h.created_at DESC, h.rowid DESC",
        )?;
        let wanted: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let rows = stmt.query_map([serde_json::to_string(&wanted)?], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (handoff, contact, last) = row?;
            let contact: Option<Contact> = contact.map(|c| serde_json::from_str(&c)).transpose()?;
            out.push(HandoffSummary {
                handoff: serde_json::from_str(&handoff)?,
                customer: contact.map(|c| c.name),
                last_message: last.map(|m| serde_json::from_str(&m)).transpose()?,
            });
        }
        Ok(out)
    }

    /// Every message of a conversation, oldest first.
    pub fn messages(&self, conversation_id: &str) -> Result<Vec<Message>, CacheError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT data FROM messages WHERE conversation_id = ?1 ORDER BY created_at, rowid",
        )?;
        let rows = stmt.query_map([conversation_id], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?)?);
        }
        Ok(out)
    }

    /// The handoffs `view` shows, newest first; `me` is the signed-in agent (for `mine`).
    pub fn view(
        &self,
        view: HandoffView,
        me: Option<&str>,
    ) -> Result<Vec<HandoffSummary>, CacheError> {
        match view {
            HandoffView::Mine => me.map_or(Ok(Vec::new()), |me| self.assigned_to(me)),
            HandoffView::Pending => self.handoffs(&[HandoffStatus::Pending]),
            HandoffView::Assigned => self.handoffs(&[HandoffStatus::Assigned]),
            HandoffView::Resolved => self.handoffs(&[HandoffStatus::Resolved]),
            HandoffView::Cancelled => self.handoffs(&[HandoffStatus::Cancelled]),
        }
    }

    /// Handoffs assigned to `agent_id` that are still open, newest first.
    pub fn assigned_to(&self, agent_id: &str) -> Result<Vec<HandoffSummary>, CacheError> {
        Ok(self
            .handoffs(&[HandoffStatus::Assigned])?
            .into_iter()
            .filter(|s| s.handoff.assignee.as_deref() == Some(agent_id))
            .collect())
    }

    /// The customer panel for a conversation.
    pub fn customer_view(&self, conversation_id: &str) -> Result<CustomerView, CacheError> {
        let contact = self.customer(conversation_id)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT h.data FROM handoffs h JOIN conversations c ON c.id = h.conversation_id
             WHERE h.conversation_id = ?1
                OR (c.contact_id IS NOT NULL AND c.contact_id = (SELECT contact_id FROM conversations WHERE id = ?1))
             ORDER BY h.created_at DESC, h.rowid DESC",
        )?;
        let rows = stmt.query_map([conversation_id], |r| r.get::<_, String>(0))?;
        let mut handoffs = Vec::new();
        for row in rows {
            handoffs.push(serde_json::from_str(&row?)?);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT data FROM notes WHERE conversation_id = ?1 ORDER BY created_at, rowid",
        )?;
        let rows = stmt.query_map([conversation_id], |r| r.get::<_, String>(0))?;
        let mut notes = Vec::new();
        for row in rows {
            notes.push(serde_json::from_str(&row?)?);
        }
        Ok(CustomerView {
            contact,
            handoffs,
            notes,
        })
    }

    /// The canned replies, by name.
    pub fn templates(&self) -> Result<Vec<Template>, CacheError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM templates ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?)?);
        }
        Ok(out)
    }

    /// The team's tag list.
    pub fn tags(&self) -> Result<Vec<String>, CacheError> {
        let value: Option<String> = self
            .conn
            .query_row("SELECT value FROM settings WHERE key = 'tags'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(match value {
            Some(v) => serde_json::from_str::<baton_protocol::TagList>(&v)?.tags,
            None => Vec::new(),
        })
    }

    /// Everyone on the team, by name.
    pub fn agents(&self) -> Result<Vec<Agent>, CacheError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM agents ORDER BY json_extract(data, '$.name')")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?)?);
        }
        Ok(out)
    }

    /// The customer of a conversation, if known.
    pub fn customer(&self, conversation_id: &str) -> Result<Option<Contact>, CacheError> {
        let data: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT ct.data FROM conversations c LEFT JOIN contacts ct ON ct.id = c.contact_id
                 WHERE c.id = ?1",
                [conversation_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(data
            .flatten()
            .map(|d| serde_json::from_str(&d))
            .transpose()?)
    }
}

/// Empties what a snapshot replaces: every synced entity but messages (kept unless the hub's data
/// was `reset`: then they belong to another history). The outbox and drafts are the device's own.
fn clear_synced(tx: &Connection, reset: bool) -> Result<(), CacheError> {
    tx.execute_batch(
        "DELETE FROM contacts; DELETE FROM conversations; DELETE FROM handoffs;
         DELETE FROM agents; DELETE FROM notes; DELETE FROM templates;
         DELETE FROM settings WHERE key = 'tags';
         DELETE FROM sync_state WHERE key LIKE 'backfill_%';",
    )?;
    for table in [Indexed::Contacts, Indexed::Handoffs, Indexed::Notes] {
        table.clear(tx)?;
    }
    if reset {
        tx.execute_batch("DELETE FROM messages;")?;
        Indexed::Messages.clear(tx)?;
    }
    Ok(())
}

/// Writes one entity's new state (events carry full state, so this is an idempotent upsert) and
/// notes what changed in `applied`.
fn upsert(tx: &Connection, data: &EventData, applied: &mut Applied) -> Result<(), CacheError> {
    match data {
        EventData::Contact(c) => {
            let old = indexed(tx, Indexed::Contacts, &c.id)?;
            tx.prepare_cached(
                "INSERT INTO contacts (id, name, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = excluded.data",
            )?
            .execute(params![c.id, c.name, serde_json::to_string(c)?])?;
            reindex(tx, Indexed::Contacts, old, Some(&c.name))?;
        }
        EventData::Conversation(c) => {
            tx.prepare_cached(
                "INSERT INTO conversations (id, contact_id, channel_id, data) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET contact_id = excluded.contact_id,
                     channel_id = excluded.channel_id, data = excluded.data",
            )?
            .execute(params![
                c.id,
                c.contact_id,
                c.channel_id,
                serde_json::to_string(c)?
            ])?;
            applied.conversations.push(c.id.clone());
        }
        EventData::Handoff(h) => {
            let old = indexed(tx, Indexed::Handoffs, &h.id)?;
            let known = old.is_some();
            tx.prepare_cached(
                "INSERT INTO handoffs (id, conversation_id, status, created_at, title, assignee, tags, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, title = excluded.title,
                     assignee = excluded.assignee, tags = excluded.tags, data = excluded.data",
            )?
            .execute(params![
                h.id,
                h.conversation_id,
                h.status.as_str(),
                h.created_at.to_rfc3339(),
                h.title,
                h.assignee,
                serde_json::to_string(&h.tags)?,
                serde_json::to_string(h)?
            ])?;
            reindex(tx, Indexed::Handoffs, old, Some(&h.title))?;
            if !known && !applied.new_handoffs.iter().any(|n| n.id == h.id) {
                applied.new_handoffs.push(h.clone());
            } else if let Some(n) = applied.new_handoffs.iter_mut().find(|n| n.id == h.id) {
                *n = h.clone();
            }
            applied.conversations.push(h.conversation_id.clone());
        }
        EventData::Message(m) => {
            // Most message events are new messages: try the insert first, and look up the old
            // row only when it was already there (a delivery status changed, say).
            let data = serde_json::to_string(m)?;
            if !insert_new_message(tx, m, &data)? {
                let old = indexed(tx, Indexed::Messages, &m.id)?;
                tx.prepare_cached("UPDATE messages SET text = ?2, data = ?3 WHERE id = ?1")?
                    .execute(params![m.id, m.text, data])?;
                reindex(tx, Indexed::Messages, old, m.text.as_deref())?;
            }
            if applied.conversations.last() != Some(&m.conversation_id) {
                applied.conversations.push(m.conversation_id.clone());
            }
        }
        EventData::Agent(a) => {
            tx.prepare_cached(
                "INSERT INTO agents (id, data) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET data = excluded.data",
            )?
            .execute(params![a.id, serde_json::to_string(a)?])?;
        }
        EventData::Note(n) => {
            let old = indexed(tx, Indexed::Notes, &n.id)?;
            tx.prepare_cached(
                "INSERT INTO notes (id, conversation_id, created_at, text, data) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET text = excluded.text, data = excluded.data",
            )?
            .execute(params![
                n.id,
                n.conversation_id,
                n.created_at.to_rfc3339(),
                n.text,
                serde_json::to_string(n)?
            ])?;
            reindex(tx, Indexed::Notes, old, Some(&n.text))?;
            applied.conversations.push(n.conversation_id.clone());
        }
        EventData::Template(t) if t.deleted => {
            tx.prepare_cached("DELETE FROM templates WHERE id = ?1")?
                .execute([&t.id])?;
        }
        EventData::Template(t) => {
            tx.prepare_cached(
                "INSERT INTO templates (id, name, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = excluded.data",
            )?
            .execute(params![t.id, t.name, serde_json::to_string(t)?])?;
        }
        EventData::Tags(t) => {
            tx.prepare_cached(
                "INSERT INTO settings (key, value) VALUES ('tags', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute([serde_json::to_string(t)?])?;
        }
    }
    Ok(())
}

/// Inserts a message the cache does not have yet, with its search entry; `false` when it already
/// had it (and then nothing is written).
fn insert_new_message(tx: &Connection, m: &Message, data: &str) -> Result<bool, CacheError> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO messages (id, conversation_id, created_at, text, data) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO NOTHING",
        )?
        .execute(params![
            m.id,
            m.conversation_id,
            m.created_at.to_rfc3339(),
            m.text,
            data
        ])?;
    if inserted == 1 {
        reindex(tx, Indexed::Messages, None, m.text.as_deref())?;
    }
    Ok(inserted == 1)
}

/// The entity tables with a search index, and the column each indexes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Indexed {
    Messages,
    Notes,
    Contacts,
    Handoffs,
}

impl Indexed {
    fn sql(self) -> (&'static str, &'static str, &'static str, &'static str) {
        // (select old, index insert, index delete, clear index)
        match self {
            Indexed::Messages => (
                "SELECT rowid, text FROM messages WHERE id = ?1",
                "INSERT INTO messages_fts (rowid, text) VALUES (?1, ?2)",
                "INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', ?1, ?2)",
                "INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')",
            ),
            Indexed::Notes => (
                "SELECT rowid, text FROM notes WHERE id = ?1",
                "INSERT INTO notes_fts (rowid, text) VALUES (?1, ?2)",
                "INSERT INTO notes_fts (notes_fts, rowid, text) VALUES ('delete', ?1, ?2)",
                "INSERT INTO notes_fts (notes_fts) VALUES ('delete-all')",
            ),
            Indexed::Contacts => (
                "SELECT rowid, name FROM contacts WHERE id = ?1",
                "INSERT INTO contacts_fts (rowid, name) VALUES (?1, ?2)",
                "INSERT INTO contacts_fts (contacts_fts, rowid, name) VALUES ('delete', ?1, ?2)",
                "INSERT INTO contacts_fts (contacts_fts) VALUES ('delete-all')",
            ),
            Indexed::Handoffs => (
                "SELECT rowid, title FROM handoffs WHERE id = ?1",
                "INSERT INTO handoffs_fts (rowid, title) VALUES (?1, ?2)",
                "INSERT INTO handoffs_fts (handoffs_fts, rowid, title) VALUES ('delete', ?1, ?2)",
                "INSERT INTO handoffs_fts (handoffs_fts) VALUES ('delete-all')",
            ),
        }
    }

    /// Empties the index (its rows are being deleted wholesale).
    pub(crate) fn clear(self, tx: &Connection) -> Result<(), CacheError> {
        tx.prepare_cached(self.sql().3)?.execute([])?;
        Ok(())
    }
}

/// A row's rowid and indexed text before it is written, if it exists.
type Old = Option<(i64, Option<String>)>;

fn indexed(tx: &Connection, table: Indexed, id: &str) -> Result<Old, CacheError> {
    Ok(tx
        .prepare_cached(table.sql().0)?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Keeps a row's search entry in step with the write just made (the row's new rowid is the old
/// one, or the last insert).
fn reindex(tx: &Connection, table: Indexed, old: Old, new: Option<&str>) -> Result<(), CacheError> {
    let (_, insert, delete, _) = table.sql();
    let rowid = match &old {
        Some((rowid, old_text)) => {
            if old_text.as_deref() == new {
                return Ok(());
            }
            if let Some(old_text) = old_text {
                tx.prepare_cached(delete)?
                    .execute(params![rowid, old_text])?;
            }
            *rowid
        }
        None => tx.last_insert_rowid(),
    };
    if let Some(new) = new {
        tx.prepare_cached(insert)?.execute(params![rowid, new])?;
    }
    Ok(())
}

/// [`Cache::apply_confirmed`] inside a transaction the caller commits.
pub(crate) fn confirm_in(tx: &Connection, events: &[Event]) -> Result<Applied, CacheError> {
    let cursor = read_cursor(tx)?;
    let mut applied = Applied {
        cursor,
        ..Applied::default()
    };
    for event in events.iter().filter(|e| e.seq > cursor) {
        upsert(tx, &event.data, &mut applied)?;
        applied.applied += 1;
    }
    applied.conversations.sort();
    applied.conversations.dedup();
    Ok(applied)
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

#[cfg(test)]
mod tests {
    use super::*;
    use baton_protocol::{Author, Conversation, DeliveryStatus};
    use chrono::{DateTime, Duration, Utc};

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default() + Duration::minutes(minutes)
    }

    fn handoff(id: &str, conv: &str, title: &str, status: HandoffStatus, at: i64) -> EventData {
        EventData::Handoff(Handoff {
            id: id.into(),
            conversation_id: conv.into(),
            channel_id: "ch".into(),
            status,
            title: title.into(),
            description: None,
            assignee: None,
            label: None,
            tags: Vec::new(),
            created_at: t(at),
            updated_at: t(at),
        })
    }

    fn message(id: &str, conv: &str, text: &str, at: i64) -> EventData {
        EventData::Message(Message {
            id: id.into(),
            conversation_id: conv.into(),
            author: Author::EndUser,
            author_id: Some("u_1".into()),
            kind: "text".into(),
            text: Some(text.into()),
            payload: serde_json::json!({"text": text}),
            status: DeliveryStatus::Received,
            status_reason: None,
            created_at: t(at),
        })
    }

    fn events(list: Vec<EventData>) -> Vec<Event> {
        list.into_iter()
            .enumerate()
            .map(|(i, data)| Event {
                seq: i as u64 + 1,
                data,
            })
            .collect()
    }

    fn inbox() -> Vec<Event> {
        events(vec![
            EventData::Contact(Contact {
                id: "u_1".into(),
                channel_id: "ch".into(),
                name: "Dana Reyes".into(),
                email: None,
                picture_url: None,
                attributes: serde_json::json!({}),
                created_at: t(0),
            }),
            EventData::Conversation(Conversation {
                id: "c_1".into(),
                channel_id: "ch".into(),
                contact_id: None,
                created_at: t(0),
            }),
            handoff("h_1", "c_1", "Refund", HandoffStatus::Pending, 1),
            EventData::Conversation(Conversation {
                id: "c_1".into(),
                channel_id: "ch".into(),
                contact_id: Some("u_1".into()),
                created_at: t(0),
            }),
            message("m_1", "c_1", "the box was crushed", 2),
            message("m_2", "c_1", "and wet", 3),
            handoff("h_2", "c_2", "Closed one", HandoffStatus::Resolved, 4),
        ])
    }

    #[test]
    fn the_pending_list_shows_title_customer_and_last_message() {
        let mut cache =
            Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
        cache.apply(&inbox()).expect("apply");
        let pending = cache.handoffs(&[HandoffStatus::Pending]).expect("list");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].handoff.title, "Refund");
        assert_eq!(pending[0].customer.as_deref(), Some("Dana Reyes"));
        assert_eq!(
            pending[0]
                .last_message
                .as_ref()
                .and_then(|m| m.text.as_deref()),
            Some("and wet")
        );
        let texts: Vec<_> = cache
            .messages("c_1")
            .expect("messages")
            .into_iter()
            .filter_map(|m| m.text)
            .collect();
        assert_eq!(texts, ["the box was crushed", "and wet"]);
    }

    #[test]
    fn applying_the_same_events_twice_changes_nothing_the_second_time() {
        let mut cache =
            Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
        let first = cache.apply(&inbox()).expect("apply");
        assert_eq!(first.applied, 7);
        assert_eq!(first.new_handoffs.len(), 2);
        let second = cache.apply(&inbox()).expect("apply again");
        assert_eq!(second.applied, 0);
        assert!(second.new_handoffs.is_empty());
        assert_eq!(cache.messages("c_1").expect("messages").len(), 2);
    }

    #[test]
    fn an_update_to_a_known_handoff_is_not_reported_as_new() {
        let mut cache =
            Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
        cache.apply(&inbox()).expect("apply");
        let later = vec![Event {
            seq: 8,
            data: handoff("h_1", "c_1", "Refund", HandoffStatus::Assigned, 1),
        }];
        let applied = cache.apply(&later).expect("apply");
        assert!(applied.new_handoffs.is_empty());
        assert!(cache
            .handoffs(&[HandoffStatus::Pending])
            .expect("list")
            .is_empty());
    }

    #[test]
    fn the_customer_panel_shows_every_handoff_of_the_customer_with_labels_and_the_notes() {
        let mut cache =
            Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
        let mut events = inbox();
        let mut earlier = match handoff("h_0", "c_0", "Earlier", HandoffStatus::Resolved, -60) {
            EventData::Handoff(h) => h,
            _ => unreachable!(),
        };
        earlier.label = Some("refunded".into());
        let more = vec![
            EventData::Conversation(Conversation {
                id: "c_0".into(),
                channel_id: "ch".into(),
                contact_id: Some("u_1".into()),
                created_at: t(-60),
            }),
            EventData::Handoff(earlier),
            EventData::Note(Note {
                id: "n_1".into(),
                conversation_id: "c_1".into(),
                agent_id: "ag_1".into(),
                text: "VIP".into(),
                created_at: t(5),
            }),
        ];
        for (i, data) in more.into_iter().enumerate() {
            events.push(Event {
                seq: 8 + i as u64,
                data,
            });
        }
        cache.apply(&events).expect("apply");
        let view = cache.customer_view("c_1").expect("view");
        assert_eq!(view.contact.map(|c| c.name).as_deref(), Some("Dana Reyes"));
        let titles: Vec<_> = view
            .handoffs
            .iter()
            .map(|h| (h.title.as_str(), h.label.as_deref()))
            .collect();
        assert_eq!(titles, [("Refund", None), ("Earlier", Some("refunded"))]);
        assert_eq!(view.notes.len(), 1);
    }

    #[test]
    fn the_cursor_survives_reopening_the_cache() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.sqlite");
        {
            let mut cache = Cache::open(&path).expect("open");
            assert_eq!(cache.cursor().expect("cursor"), 0);
            cache.apply(&inbox()).expect("apply");
        }
        let cache = Cache::open(&path).expect("reopen");
        assert_eq!(cache.cursor().expect("cursor"), 7);
        assert_eq!(
            cache
                .handoffs(&[HandoffStatus::Pending])
                .expect("list")
                .len(),
            1
        );
    }

    /// A cache as a build at schema `version` left it: that version's migrations, and rows written
    /// the way that build wrote them.
    fn cache_at_version(path: &std::path::Path, version: u32) {
        let conn = Connection::open(path).expect("open");
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= version) {
            conn.execute_batch(sql).expect("old migration");
            conn.pragma_update(None, "user_version", v)
                .expect("version");
        }
        let m = match message("m_old", "c_old", "parcel crushed in transit", 1) {
            EventData::Message(m) => m,
            _ => unreachable!(),
        };
        conn.execute(
            "INSERT INTO messages (id, conversation_id, created_at, data) VALUES (?1, ?2, ?3, ?4)",
            params![
                m.id,
                m.conversation_id,
                m.created_at.to_rfc3339(),
                serde_json::to_string(&m).expect("json")
            ],
        )
        .expect("old message");
        if version >= 3 {
            // From version 3 on, the cache keeps the search index itself.
            conn.execute_batch(
                "UPDATE messages SET text = json_extract(data, '$.text');
                 INSERT INTO messages_fts (rowid, text) SELECT rowid, text FROM messages;",
            )
            .expect("old index");
        }
        conn.execute(
            "INSERT INTO sync_state (key, value) VALUES ('cursor', '41')",
            [],
        )
        .expect("old cursor");
    }

    #[test]
    fn every_older_schema_upgrades_keeping_its_history_and_cursor_and_makes_it_searchable() {
        for version in 1..MIGRATIONS.len() as u32 {
            let dir = tempfile::tempdir().expect("dir");
            let path = dir.path().join("c.sqlite");
            cache_at_version(&path, version);
            let cache = Cache::open(&path).expect("upgrade");
            assert_eq!(
                cache.cursor().expect("cursor"),
                41,
                "from version {version}"
            );
            assert_eq!(cache.messages("c_old").expect("messages").len(), 1);
            let hits = cache
                .search(&crate::search::SearchQuery {
                    text: "crushed".into(),
                    ..Default::default()
                })
                .expect("search");
            assert_eq!(hits.len(), 1, "from version {version}");
            assert_eq!(hits[0].conversation_id, "c_old");
            assert!(hits[0].snippet.contains("[crushed]"), "{}", hits[0].snippet);
            assert!(cache.outbox().expect("outbox").is_empty());
        }
    }

    #[test]
    fn a_cache_from_a_newer_build_is_refused_not_damaged() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.sqlite");
        {
            let conn = Connection::open(&path).expect("open");
            conn.pragma_update(None, "user_version", 99)
                .expect("version");
        }
        assert!(matches!(
            Cache::open(&path),
            Err(CacheError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn a_snapshot_replaces_the_inbox_but_keeps_the_outbox_and_drafts() {
        let mut cache =
            Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
        cache.apply(&inbox()).expect("apply");
        cache
            .enqueue(
                &baton_protocol::AgentCommand::Message {
                    conversation_id: "c_1".into(),
                    text: Some("on my way".into()),
                    kind: None,
                    payload: None,
                },
                "tx-1",
                t(9),
            )
            .expect("enqueue");
        cache
            .save_draft("c_1", "half a thought", t(9))
            .expect("draft");
        let snapshot = baton_protocol::Snapshot {
            seq: 50,
            contacts: vec![],
            conversations: vec![],
            handoffs: vec![
                match handoff("h_9", "c_9", "Only this", HandoffStatus::Pending, 8) {
                    EventData::Handoff(h) => h,
                    _ => unreachable!(),
                },
            ],
            agents: vec![],
            notes: vec![],
            templates: vec![],
            tags: baton_protocol::TagList {
                tags: vec!["vip".into()],
            },
            next: None,
        };
        let applied = cache.apply_snapshot(&snapshot).expect("snapshot");
        assert!(applied.new_handoffs.is_empty(), "a snapshot is not news");
        assert_eq!(cache.cursor().expect("cursor"), 50);
        let pending: Vec<_> = cache
            .handoffs(&[HandoffStatus::Pending])
            .expect("list")
            .into_iter()
            .map(|s| s.handoff.title)
            .collect();
        assert_eq!(pending, ["Only this"]);
        assert_eq!(cache.tags().expect("tags"), ["vip"]);
        // The hub's log went on from 50 > 7: same history, so messages stay.
        assert_eq!(cache.messages("c_1").expect("messages").len(), 2);
        assert_eq!(cache.outbox().expect("outbox").len(), 1);
        assert_eq!(
            cache.draft("c_1").expect("draft").as_deref(),
            Some("half a thought")
        );
    }

    #[test]
    fn backfill_stops_at_the_age_cap_and_never_overwrites_what_the_stream_brought() {
        let mut cache =
            Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
        cache.apply(&inbox()).expect("apply");
        let as_message = |e: EventData| match e {
            EventData::Message(m) => m,
            _ => unreachable!(),
        };
        let mut stale = as_message(message("m_2", "c_1", "an older copy", 3));
        stale.text = Some("an older copy".into());
        let page = baton_protocol::MessagePage {
            messages: vec![
                stale,
                as_message(message("m_0", "c_1", "hello bot", 0)),
                as_message(message("m_ancient", "c_1", "ancient", -10_000)),
            ],
            next: Some(3),
            total: 5,
        };
        let progress = cache.apply_backfill(&page, Some(t(-60))).expect("page");
        assert!(progress.done, "the page reached past the cap");
        let texts: Vec<_> = cache
            .messages("c_1")
            .expect("messages")
            .into_iter()
            .filter_map(|m| m.text)
            .collect();
        assert_eq!(texts, ["hello bot", "the box was crushed", "and wet"]);
    }

    #[test]
    fn open_conversations_are_backfilled_first_and_only_until_complete() {
        let mut cache =
            Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
        cache.apply(&inbox()).expect("apply");
        // c_1 has a pending handoff; c_2's is resolved.
        let todo = cache.conversations_to_backfill().expect("todo");
        assert_eq!(todo, [("c_1".to_string(), None)]);
        let as_message = |e: EventData| match e {
            EventData::Message(m) => m,
            _ => unreachable!(),
        };
        let first = baton_protocol::MessagePage {
            messages: vec![as_message(message("m_0", "c_1", "older", 0))],
            next: Some(7),
            total: 4,
        };
        assert!(!cache
            .apply_conversation_backfill("c_1", &first)
            .expect("page"));
        assert_eq!(
            cache.conversations_to_backfill().expect("todo"),
            [("c_1".to_string(), Some(7))]
        );
        let last = baton_protocol::MessagePage {
            messages: vec![as_message(message("m_00", "c_1", "oldest", -1))],
            next: None,
            total: 4,
        };
        assert!(cache
            .apply_conversation_backfill("c_1", &last)
            .expect("page"));
        assert!(cache.conversations_to_backfill().expect("todo").is_empty());
        let texts: Vec<_> = cache
            .messages("c_1")
            .expect("messages")
            .into_iter()
            .filter_map(|m| m.text)
            .collect();
        assert_eq!(texts, ["oldest", "older", "the box was crushed", "and wet"]);
    }
}
