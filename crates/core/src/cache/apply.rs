//! Writing what the hub sends: batches of events (exactly once, in order), a command's confirmed
//! events, and snapshots; each with its search entries.

use baton_protocol::{Event, EventData, Message};
use rusqlite::{params, Connection, OptionalExtension};

use super::{read_cursor, write_cursor, Applied, Cache, CacheError, Incoming, UnreadableEvent};

impl Cache {
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
            .chain(snapshot.reads.iter().cloned().map(EventData::Read))
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
}

impl Cache {
    /// Forgets everything this device holds of a hub — the inbox, history, files, the outbox,
    /// drafts, the cursor — before it signs in to a different hub: none of it belongs there. Its
    /// own settings (notifications) stay.
    pub fn start_afresh(&mut self) -> Result<(), CacheError> {
        let tx = self.conn.transaction()?;
        clear_synced(&tx, true)?;
        tx.execute_batch(
            "DELETE FROM outbox; DELETE FROM drafts; DELETE FROM media; DELETE FROM reads;
             DELETE FROM unreadable_events; DELETE FROM sync_state;",
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// Empties what a snapshot replaces: every synced entity but messages (kept unless the hub's data
/// was `reset`: then they belong to another history). The outbox and drafts are the device's own.
fn clear_synced(tx: &Connection, reset: bool) -> Result<(), CacheError> {
    tx.execute_batch(
        "DELETE FROM contacts; DELETE FROM conversations; DELETE FROM handoffs;
         DELETE FROM agents; DELETE FROM notes; DELETE FROM templates; DELETE FROM reads;
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
    if matches!(
        data,
        EventData::Agent(_) | EventData::Template(_) | EventData::Tags(_)
    ) {
        applied.team_changed = true;
    }
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
                "INSERT INTO conversations (id, contact_id, channel_id, data, last_customer_at)
                 VALUES (?1, ?2, ?3, ?4,
                     (SELECT MAX(m.created_at) FROM messages m WHERE m.conversation_id = ?1
                      AND json_extract(m.data, '$.author') = 'end_user'))
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
            // Who had it and how far it was escalated before this event: a change of hands is
            // news to the new holder, an escalation to whoever it reaches.
            let (before, escalated_before): (Option<String>, Option<String>) = if known {
                tx.prepare_cached(
                    "SELECT assignee, json_extract(data, '$.escalation.level') FROM handoffs WHERE id = ?1",
                )?
                .query_row([&h.id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .unwrap_or_default()
            } else {
                (None, None)
            };
            let escalated_now = h.escalation.as_ref().map(|e| e.level.as_str());
            if escalated_now.is_some() && escalated_now != escalated_before.as_deref() {
                applied.escalated.push(h.clone());
            }
            tx.prepare_cached(
                "INSERT INTO handoffs (id, conversation_id, status, created_at, title, assignee, tags, data,
                                       priority_rank)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, title = excluded.title,
                     assignee = excluded.assignee, tags = excluded.tags, data = excluded.data,
                     priority_rank = excluded.priority_rank",
            )?
            .execute(params![
                h.id,
                h.conversation_id,
                h.status.as_str(),
                h.created_at.to_rfc3339(),
                h.title,
                h.assignee,
                serde_json::to_string(&h.tags)?,
                serde_json::to_string(h)?,
                match h.priority {
                    Some(baton_protocol::Priority::Urgent) => 3,
                    Some(baton_protocol::Priority::High) => 2,
                    Some(baton_protocol::Priority::Low) => 0,
                    _ => 1,
                }
            ])?;
            reindex(tx, Indexed::Handoffs, old, Some(&h.title))?;
            if known && before != h.assignee && h.assignee.is_some() {
                applied.handed_over.push(h.clone());
            }
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
            let new = insert_new_message(tx, m, &data)?;
            if new && m.author == baton_protocol::Author::EndUser {
                applied.customer_messages.push(m.clone());
            }
            if !new {
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
        EventData::Read(r) => {
            put_read_mark(tx, r)?;
            // Another agent's mark changes nothing this device shows.
            let me: Option<String> = tx
                .prepare_cached("SELECT value FROM sync_state WHERE key = 'me'")?
                .query_row([], |row| row.get(0))
                .optional()?;
            if me.is_none_or(|me| me == r.agent_id) {
                applied.conversations.push(r.conversation_id.clone());
            }
        }
    }
    Ok(())
}

/// Writes an agent's read mark (from the hub, or this device's own before the hub confirms it).
pub(super) fn put_read_mark(
    tx: &Connection,
    r: &baton_protocol::ReadMark,
) -> Result<(), CacheError> {
    tx.prepare_cached(
        "INSERT INTO reads (agent_id, conversation_id, read_at, unread, data)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(agent_id, conversation_id) DO UPDATE SET read_at = excluded.read_at,
             unread = excluded.unread, data = excluded.data",
    )?
    .execute(params![
        r.agent_id,
        r.conversation_id,
        r.read_at.to_rfc3339(),
        r.unread,
        serde_json::to_string(r)?
    ])?;
    Ok(())
}

/// Inserts a message the cache does not have yet, with its search entry; `false` when it already
/// had it (and then nothing is written).
pub(super) fn insert_new_message(
    tx: &Connection,
    m: &Message,
    data: &str,
) -> Result<bool, CacheError> {
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
        if m.author == baton_protocol::Author::EndUser {
            // Timestamps are written by one formatter, so their text sorts as they do.
            tx.prepare_cached(
                "UPDATE conversations SET last_customer_at = ?2
                 WHERE id = ?1 AND (last_customer_at IS NULL OR last_customer_at < ?2)",
            )?
            .execute(params![m.conversation_id, m.created_at.to_rfc3339()])?;
        }
    }
    Ok(inserted == 1)
}

/// The entity tables with a search index, and the column each indexes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Indexed {
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
