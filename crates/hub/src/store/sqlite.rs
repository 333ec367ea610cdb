//! The SQLite store: one database file (WAL) holding the team's entities, the event log,
//! credentials, recorded commands and queued deliveries. The only SQL in the hub is here.
//!
//! [`Store::write_with`] runs one IMMEDIATE transaction on the writer connection. [`Store::submit`]
//! queues a job for the writer thread, which runs the queued jobs each in its own savepoint inside
//! one transaction and commits them with a single fsync (group commit); every caller is answered
//! only after the commit that made its job durable. Reads use a small pool of connections, each a
//! snapshot that never blocks the writer. A background thread checkpoints the WAL.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use baton_protocol::{Agent, Contact, Conversation, Event, EventData, Handoff, Message, Template};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use super::{
    entity_json, parse_snapshot_cursor, Announce, Completion, Delivery, DeliveryState, DueDelivery,
    GroupJob, Live, NewChannel, RawEvents, Read, RecordedCommand, Store, StoreError, StoredToken,
    Tx, SNAPSHOT_TABLES,
};
use crate::channel::{ChannelRow, ChannelSettings};
use crate::push::Device;

/// Numbered migrations, applied in order, one transaction each; `PRAGMA user_version` records the
/// last one applied.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_agent_work.sql")),
    (3, include_str!("../../migrations/0003_handoff_status.sql")),
    (
        4,
        include_str!("../../migrations/0004_expiry_and_fingerprints.sql"),
    ),
    (5, include_str!("../../migrations/0005_deliveries.sql")),
    (6, include_str!("../../migrations/0006_external_ids.sql")),
    (7, include_str!("../../migrations/0007_draft_deadlines.sql")),
    (8, include_str!("../../migrations/0008_reads.sql")),
    (9, include_str!("../../migrations/0009_devices.sql")),
];

/// How long a writer waits for another process (the admin CLI) to release the write lock before
/// giving up: long enough for any admin command, short enough to answer Botpress in its time.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The most jobs one group commit takes.
const MAX_GROUP: usize = 2048;

/// How many idle read connections are kept.
const READER_POOL: usize = 8;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

pub struct SqliteStore {
    path: PathBuf,
    announce: Announce,
    writer: Arc<Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
    jobs: std::sync::mpsc::Sender<Box<dyn GroupJob>>,
    /// Dropping it (with the store) stops the checkpoint thread.
    _checkpoints: std::sync::mpsc::Sender<()>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A write transaction on the writer connection.
struct SqliteTx<'c> {
    tx: Transaction<'c>,
    events: Vec<Event>,
    /// Each event's `data` JSON, made once and shared by the entity row, the log and the streams.
    bodies: Vec<String>,
    /// How many calls it has queued (see [`Tx::calls_queued`]).
    calls: usize,
}

/// A pooled read connection; it goes back to the pool when dropped.
struct Reader<'s> {
    conn: Option<Connection>,
    pool: &'s Mutex<Vec<Connection>>,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut pool)) = (self.conn.take(), self.pool.lock()) {
            if pool.len() < READER_POOL {
                pool.push(conn);
            }
        }
    }
}

mod sealed {
    /// Whatever reads run on: a transaction or a pooled connection.
    pub trait HasConn {
        fn conn(&self) -> Result<&rusqlite::Connection, super::StoreError>;
    }
}
use sealed::HasConn;

impl HasConn for SqliteTx<'_> {
    fn conn(&self) -> Result<&Connection, StoreError> {
        Ok(&self.tx)
    }
}

impl HasConn for Reader<'_> {
    fn conn(&self) -> Result<&Connection, StoreError> {
        self.conn.as_ref().ok_or(StoreError::Poisoned)
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `DIR/hub.sqlite` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("hub.sqlite");
        // The database holds customers' messages and credential hashes: only the hub's user reads it.
        baton_protocol::private_fs::private_dir(data_dir, "hub.sqlite")
            .and_then(|()| baton_protocol::private_fs::private_touch(&path))
            .map_err(|source| StoreError::DataDir {
                path: data_dir.to_path_buf(),
                source,
            })?;
        let mut writer = open_connection(&path)?;
        migrate(&mut writer)?;
        // SQLite creates the WAL and shared-memory files with the database's mode; older hubs'
        // files may predate that.
        for suffix in ["-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            let _ = baton_protocol::private_fs::private_file(Path::new(&name));
        }
        // Checkpoints run on their own thread (below), so commits never wait for one.
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let last: i64 =
            writer.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
        let announce = Announce::new(last as u64);
        let writer = Arc::new(Mutex::new(writer));
        let (jobs, queue) = std::sync::mpsc::channel();
        let (w, a) = (writer.clone(), announce.clone());
        std::thread::Builder::new()
            .name("baton-hub-writer".into())
            .spawn(move || {
                super::group_commits(&w, &queue, MAX_GROUP, |conn, jobs| {
                    commit_group(conn, &a, jobs)
                })
            })
            .map_err(|source| StoreError::DataDir {
                path: path.clone(),
                source,
            })?;
        let (checkpoints, stop) = std::sync::mpsc::channel::<()>();
        let checkpoint_conn = open_connection(&path)?;
        std::thread::Builder::new()
            .name("baton-hub-checkpoint".into())
            .spawn(move || checkpoint_regularly(&checkpoint_conn, &stop))
            .map_err(|source| StoreError::DataDir {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            announce,
            writer,
            readers: Mutex::new(Vec::new()),
            jobs,
            _checkpoints: checkpoints,
        })
    }

    fn reader_conn(&self) -> Result<Reader<'_>, StoreError> {
        let pooled = self.readers.lock().map_err(|_| StoreError::Poisoned)?.pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.path)?,
        };
        Ok(Reader {
            conn: Some(conn),
            pool: &self.readers,
        })
    }
}

impl Store for SqliteStore {
    fn reader(&self) -> Result<Box<dyn Read + '_>, StoreError> {
        Ok(Box::new(self.reader_conn()?))
    }

    fn write_with(&self, f: &mut dyn FnMut(&mut dyn Tx) -> bool) -> Result<(), StoreError> {
        let mut conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        // IMMEDIATE: take the write lock before reading, and wait for it (busy timeout) when
        // another process (the admin CLI) holds it. A deferred transaction that reads first
        // fails at once when it tries to write.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut txn = SqliteTx {
            tx,
            events: Vec::new(),
            bodies: Vec::new(),
            calls: 0,
        };
        if !f(&mut txn) {
            return Ok(());
        }
        let SqliteTx {
            tx, events, bodies, ..
        } = txn;
        tx.commit()?;
        self.announce.committed(&events, &bodies);
        Ok(())
    }

    fn submit(&self, job: Box<dyn GroupJob>) -> Result<(), StoreError> {
        self.jobs.send(job).map_err(|_| StoreError::Poisoned)
    }

    fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.announce.subscribe()
    }

    fn announced(&self) -> u64 {
        self.announce.announced()
    }

    fn noticed(&self, seq: u64) {
        self.announce.noticed(seq);
    }

    fn event_page(
        &self,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<RawEvents, StoreError> {
        let reader = self.reader_conn()?;
        let conn = reader.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, kind, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![after as i64, limit])?;
        let mut page = RawEvents::page(limit, max_bytes);
        while let Some(row) = rows.next()? {
            let seq = row.get::<_, i64>(0)? as u64;
            let kind: String = row.get(1)?;
            let data: String = row.get(2)?;
            if !page.push(seq, &kind, &data) {
                break;
            }
        }
        Ok(page.finish())
    }

    fn log_floor(&self) -> Result<u64, StoreError> {
        read_floor(self.reader_conn()?.conn()?)
    }

    fn trim_log(&self, keep: u64) -> Result<u64, StoreError> {
        let mut conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last: i64 =
            tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
        let floor = (last as u64).saturating_sub(keep).max(read_floor(&tx)?);
        tx.execute("DELETE FROM events WHERE seq <= ?1", [floor as i64])?;
        tx.execute(
            "INSERT INTO settings (key, value) VALUES ('log_floor', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [floor.to_string()],
        )?;
        tx.commit()?;
        Ok(floor)
    }

    fn snapshot_page(&self, from: Option<&str>, max_bytes: usize) -> Result<String, StoreError> {
        let (table, after) = match from {
            None => (0, 0),
            Some(cursor) => parse_snapshot_cursor(cursor).ok_or(StoreError::BadCursor)?,
        };
        let reader = self.reader_conn()?;
        let tx = reader.conn()?.unchecked_transaction()?;
        let seq: i64 =
            tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
        let seq = (seq as u64).max(read_floor(&tx)?);
        let mut json = format!("{{\"seq\":{seq}");
        let mut next = None;
        let mut rows_in_page = 0usize;
        for (i, name) in SNAPSHOT_TABLES.iter().enumerate() {
            json.push_str(&format!(",\"{name}\":["));
            if i >= table && next.is_none() {
                let mut last_row = if i == table { after } else { 0 };
                let mut first = true;
                let sql = format!(
                    "SELECT rowid, data FROM {name} WHERE rowid > ?1 ORDER BY rowid LIMIT 500"
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                'table: loop {
                    let mut rows = stmt.query([last_row])?;
                    let mut any = false;
                    while let Some(row) = rows.next()? {
                        any = true;
                        let rowid: i64 = row.get(0)?;
                        let data: String = row.get(1)?;
                        if rows_in_page > 0 && json.len() + data.len() > max_bytes {
                            next = Some(format!("{i}:{last_row}"));
                            break 'table;
                        }
                        if !first {
                            json.push(',');
                        }
                        json.push_str(&data);
                        first = false;
                        last_row = rowid;
                        rows_in_page += 1;
                    }
                    if !any {
                        break;
                    }
                }
            }
            json.push(']');
        }
        let tags: Option<String> = tx
            .query_row("SELECT value FROM settings WHERE key = 'tags'", [], |r| {
                r.get(0)
            })
            .optional()?;
        json.push_str(",\"tags\":");
        json.push_str(tags.as_deref().unwrap_or("{\"tags\":[]}"));
        json.push_str(",\"next\":");
        match next {
            Some(n) => json.push_str(&format!("\"{n}\"")),
            None => json.push_str("null"),
        }
        json.push('}');
        tx.finish()?;
        Ok(json)
    }

    fn messages_before(
        &self,
        conversation: Option<&str>,
        before: Option<i64>,
        limit: u32,
        max_bytes: usize,
    ) -> Result<String, StoreError> {
        let reader = self.reader_conn()?;
        let conn = reader.conn()?;
        let before = before.unwrap_or(i64::MAX);
        let (mut stmt, total): (rusqlite::CachedStatement<'_>, i64) = match conversation {
            Some(id) => (
                conn.prepare_cached(
                    "SELECT rowid, data FROM messages WHERE conversation_id = ?1 AND rowid < ?2
                     ORDER BY rowid DESC LIMIT ?3",
                )?,
                conn.prepare_cached("SELECT COUNT(*) FROM messages WHERE conversation_id = ?1")?
                    .query_row([id], |r| r.get(0))?,
            ),
            None => (
                conn.prepare_cached(
                    "SELECT rowid, data FROM messages WHERE ?1 IS NULL AND rowid < ?2
                     ORDER BY rowid DESC LIMIT ?3",
                )?,
                conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?,
            ),
        };
        let mut rows = stmt.query(params![conversation, before, limit])?;
        let mut json = String::from("{\"messages\":[");
        let (mut count, mut last, mut cut) = (0u32, None, false);
        while let Some(row) = rows.next()? {
            let rowid: i64 = row.get(0)?;
            let data: String = row.get(1)?;
            if count > 0 && json.len() + data.len() > max_bytes {
                cut = true;
                break;
            }
            if count > 0 {
                json.push(',');
            }
            json.push_str(&data);
            count += 1;
            last = Some(rowid);
        }
        let next = if cut || count == limit { last } else { None };
        json.push_str(&format!(
            "],\"next\":{},\"total\":{total}}}",
            next.map_or("null".to_string(), |n| n.to_string())
        ));
        Ok(json)
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        let reader = self.reader_conn()?;
        let conn = reader.conn()?;
        let seq: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
        Ok((seq as u64).max(read_floor(conn)?))
    }
}

/// Every row of a query that selects one entity's JSON `data` column, decoded.
fn all_where<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(serde_json::from_str(&row?)?);
    }
    Ok(out)
}

/// The one row of a query that selects one entity's JSON `data` column, decoded.
fn one_where<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>, StoreError> {
    let data: Option<String> = conn
        .prepare_cached(sql)?
        .query_row(params, |r| r.get(0))
        .optional()?;
    Ok(data.map(|d| serde_json::from_str(&d)).transpose()?)
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

type RawChannel = (String, String, String, Option<String>, String);

fn channel_row(
    (id, kind, name, webhook_url, settings): RawChannel,
) -> Result<ChannelRow, StoreError> {
    Ok(ChannelRow {
        id,
        kind,
        name,
        webhook_url,
        settings: serde_json::from_str(&settings)?,
    })
}

impl<T: HasConn> Read for T {
    fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        one_where(self.conn()?, "SELECT data FROM agents WHERE id = ?1", [id])
    }

    fn agent_by_email(&self, email: &str) -> Result<Option<Agent>, StoreError> {
        one_where(
            self.conn()?,
            "SELECT data FROM agents WHERE email = ?1",
            [email],
        )
    }

    fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        all_where(
            self.conn()?,
            "SELECT data FROM agents ORDER BY json_extract(data, '$.name'), rowid",
            [],
        )
    }

    fn credentials(&self, email: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT id, password_hash FROM agents WHERE email = ?1 AND disabled = 0",
            )?
            .query_row([email], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn contact(&self, id: &str) -> Result<Option<Contact>, StoreError> {
        one_where(
            self.conn()?,
            "SELECT data FROM contacts WHERE id = ?1",
            [id],
        )
    }

    fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        one_where(
            self.conn()?,
            "SELECT data FROM conversations WHERE id = ?1",
            [id],
        )
    }

    fn handoff(&self, id: &str) -> Result<Option<Handoff>, StoreError> {
        one_where(
            self.conn()?,
            "SELECT data FROM handoffs WHERE id = ?1",
            [id],
        )
    }

    fn message(&self, id: &str) -> Result<Option<Message>, StoreError> {
        one_where(
            self.conn()?,
            "SELECT data FROM messages WHERE id = ?1",
            [id],
        )
    }

    fn has_message(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT 1 FROM messages WHERE id = ?1")?
            .exists([id])?)
    }

    fn latest_agent_media(&self, conversation_id: &str) -> Result<Option<Message>, StoreError> {
        one_where(
            self.conn()?,
            "SELECT data FROM messages WHERE conversation_id = ?1
             AND json_extract(data, '$.author') = 'agent' AND json_extract(data, '$.type') != 'text'
             ORDER BY rowid DESC LIMIT 1",
            [conversation_id],
        )
    }

    fn handoffs_since(&self, since: DateTime<Utc>) -> Result<Vec<Handoff>, StoreError> {
        // Stored times differ in their fractional digits, so text compares only to the second.
        let second = since.format("%Y-%m-%dT%H:%M:%S").to_string();
        all_where(
            self.conn()?,
            "SELECT data FROM handoffs
             WHERE substr(json_extract(data, '$.created_at'), 1, 19) >= ?1 ORDER BY rowid",
            [second],
        )
    }

    fn agent_reply_times(&self, conversation_id: &str) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT json_extract(data, '$.created_at') FROM messages WHERE conversation_id = ?1
             AND json_extract(data, '$.author') = 'agent'",
        )?;
        let rows = stmt.query_map([conversation_id], |r| r.get::<_, String>(0))?;
        let mut times = Vec::new();
        for row in rows {
            if let Some(t) = time(&row?) {
                times.push(t);
            }
        }
        Ok(times)
    }

    fn drafts_waiting(&self, conversation_id: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM messages WHERE conversation_id = ?1
             AND json_extract(data, '$.status') = 'draft' ORDER BY rowid",
        )?;
        let rows = stmt.query_map([conversation_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn due_drafts(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT message_id FROM draft_deadlines WHERE due_at_ms <= ?1
             ORDER BY due_at_ms LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![
                now.timestamp_millis(),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| r.get(0),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn latest_customer_message(
        &self,
        conversation_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        one_where(
            self.conn()?,
            "SELECT data FROM messages WHERE conversation_id = ?1
             AND json_extract(data, '$.author') = 'end_user' ORDER BY rowid DESC LIMIT 1",
            [conversation_id],
        )
    }

    fn read_mark(
        &self,
        agent_id: &str,
        conversation_id: &str,
    ) -> Result<Option<baton_protocol::ReadMark>, StoreError> {
        one_where(
            self.conn()?,
            "SELECT data FROM reads WHERE agent_id = ?1 AND conversation_id = ?2",
            [agent_id, conversation_id],
        )
    }

    fn open_handoff(&self, conversation_id: &str) -> Result<Option<Handoff>, StoreError> {
        one_where(
            self.conn()?,
            "SELECT data FROM handoffs WHERE conversation_id = ?1 AND status IN ('pending', 'assigned')
             ORDER BY rowid DESC LIMIT 1",
            [conversation_id],
        )
    }

    fn held_handoffs(&self, agent_id: &str) -> Result<Vec<Handoff>, StoreError> {
        all_where(
            self.conn()?,
            "SELECT data FROM handoffs WHERE assignee = ?1 AND status = 'assigned' ORDER BY rowid",
            [agent_id],
        )
    }

    fn pending_handoffs(&self, channel_id: &str) -> Result<Vec<Handoff>, StoreError> {
        all_where(
            self.conn()?,
            "SELECT h.data FROM handoffs h JOIN conversations c ON c.id = h.conversation_id
             WHERE c.channel_id = ?1 AND h.status = 'pending' ORDER BY h.rowid",
            [channel_id],
        )
    }

    fn tags(&self) -> Result<Vec<String>, StoreError> {
        let list: Option<baton_protocol::TagList> = one_where(
            self.conn()?,
            "SELECT value FROM settings WHERE key = 'tags'",
            [],
        )?;
        Ok(list.map(|l| l.tags).unwrap_or_default())
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    fn devices(&self) -> Result<Vec<Device>, StoreError> {
        all_where(self.conn()?, "SELECT data FROM devices ORDER BY id", [])
    }

    fn templates(&self) -> Result<Vec<Template>, StoreError> {
        all_where(
            self.conn()?,
            "SELECT data FROM templates WHERE json_extract(data, '$.deleted') IS NOT 1
             ORDER BY json_extract(data, '$.name')",
            [],
        )
    }

    fn channel(&self, id: &str) -> Result<Option<ChannelRow>, StoreError> {
        self.conn()?
            .prepare_cached(
                "SELECT id, kind, name, webhook_url, settings FROM channels WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?
            .map(channel_row)
            .transpose()
    }

    fn channels(&self) -> Result<Vec<ChannelRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, kind, name, webhook_url, settings FROM channels ORDER BY created_at, rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(channel_row(row?)?);
        }
        Ok(out)
    }

    fn channel_by_secret(
        &self,
        kind: &str,
        secret_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT id FROM channels WHERE secret_hash = ?1 AND kind = ?2")?
            .query_row([secret_hash, kind], |r| r.get(0))
            .optional()?)
    }

    fn recorded_command(
        &self,
        agent_id: &str,
        txn_id: &str,
    ) -> Result<Option<RecordedCommand>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT response, fingerprint FROM commands WHERE agent_id = ?1 AND txn_id = ?2",
            )?
            .query_row(params![agent_id, txn_id], |r| {
                Ok(RecordedCommand {
                    response: r.get(0)?,
                    fingerprint: r.get(1)?,
                })
            })
            .optional()?)
    }

    fn token(&self, token_hash: &str) -> Result<Option<StoredToken>, StoreError> {
        let row: Option<(String, String, Option<String>)> = self
            .conn()?
            .prepare_cached(
                "SELECT a.data, t.created_at, t.last_used_at FROM tokens t
                 JOIN agents a ON a.id = t.agent_id
                 WHERE t.token_hash = ?1 AND a.disabled = 0",
            )?
            .query_row([token_hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((agent, created, used)) = row else {
            return Ok(None);
        };
        Ok(Some(StoredToken {
            agent: serde_json::from_str(&agent)?,
            created_at: time(&created),
            last_used_at: used.as_deref().and_then(time),
        }))
    }

    fn delivery_waiting_reason(&self, conversation_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT last_error FROM deliveries WHERE conversation_id = ?1 AND state = 'queued'
                 AND last_error IS NOT NULL ORDER BY id LIMIT 1",
            )?
            .query_row([conversation_id], |r| r.get(0))
            .optional()?)
    }

    fn delivery_of_message(&self, message_id: &str) -> Result<Option<Delivery>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT channel_id, conversation_id, route, body FROM deliveries
                 WHERE message_id = ?1 ORDER BY id DESC LIMIT 1",
            )?
            .query_row([message_id], |r| {
                Ok(Delivery {
                    channel_id: r.get(0)?,
                    conversation_id: r.get(1)?,
                    route: r.get(2)?,
                    body: r.get(3)?,
                    message_id: Some(message_id.to_string()),
                })
            })
            .optional()?)
    }

    fn queued_messages(&self, conversation_id: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT message_id FROM deliveries WHERE conversation_id = ?1
             AND state = 'queued' AND message_id IS NOT NULL ORDER BY id",
        )?;
        let rows = stmt.query_map([conversation_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn deliveries_in_flight(&self) -> Result<Vec<(i64, Option<String>, String)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, message_id, channel_id FROM deliveries WHERE state = 'sending' ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn external_id(
        &self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT internal_id FROM external_ids
                 WHERE channel_id = ?1 AND kind = ?2 AND external_id = ?3",
            )?
            .query_row(params![channel_id, kind, external_id], |r| r.get(0))
            .optional()?)
    }

    fn linked_contact(
        &self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
    ) -> Result<Option<Contact>, StoreError> {
        one_where(
            self.conn()?,
            "SELECT c.data FROM external_ids x JOIN contacts c ON c.id = x.internal_id
             WHERE x.channel_id = ?1 AND x.kind = ?2 AND x.external_id = ?3",
            params![channel_id, kind, external_id],
        )
    }

    fn linked_conversation(
        &self,
        channel_id: &str,
        contact_id: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        one_where(
            self.conn()?,
            "SELECT c.data FROM external_ids x JOIN conversations c ON c.id = x.internal_id
             WHERE x.channel_id = ?1 AND x.kind = 'conversation' AND x.external_id = ?2",
            params![channel_id, contact_id],
        )
    }

    fn next_delivery_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next: Option<String> = self.conn()?.query_row(
            concat!(
                "SELECT MIN(o.next_attempt_at) FROM deliveries o WHERE o.state = 'queued' AND ",
                first_in_its_conversation!()
            ),
            [],
            |r| r.get(0),
        )?;
        Ok(next.as_deref().and_then(time))
    }
}

impl Tx for SqliteTx<'_> {
    fn events(&self) -> &[Event] {
        &self.events
    }

    fn put(&mut self, data: EventData) -> Result<Event, StoreError> {
        let json = entity_json(&data)?;
        match &data {
            EventData::Contact(c) => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO contacts (id, channel_id, data) VALUES (?1, ?2, ?3)
                         ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                    )?
                    .execute(params![c.id, c.channel_id, json])?;
            }
            EventData::Conversation(c) => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO conversations (id, channel_id, contact_id, data)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(id) DO UPDATE SET contact_id = excluded.contact_id,
                                                       data = excluded.data",
                    )?
                    .execute(params![c.id, c.channel_id, c.contact_id, json])?;
            }
            EventData::Handoff(h) => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO handoffs (id, conversation_id, status, assignee, data)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT(id) DO UPDATE SET status = excluded.status,
                             assignee = excluded.assignee, data = excluded.data",
                    )?
                    .execute(params![
                        h.id,
                        h.conversation_id,
                        h.status.as_str(),
                        h.assignee,
                        json
                    ])?;
            }
            EventData::Message(m) => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO messages (id, conversation_id, data) VALUES (?1, ?2, ?3)
                         ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                    )?
                    .execute(params![m.id, m.conversation_id, json])?;
            }
            EventData::Agent(a) => {
                // Agents carry credentials the event must not; their row is made by add_agent.
                self.tx
                    .prepare_cached("UPDATE agents SET data = ?2 WHERE id = ?1")?
                    .execute(params![a.id, json])?;
            }
            EventData::Note(n) => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO notes (id, conversation_id, data) VALUES (?1, ?2, ?3)
                         ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                    )?
                    .execute(params![n.id, n.conversation_id, json])?;
            }
            EventData::Template(t) => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO templates (id, data) VALUES (?1, ?2)
                         ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                    )?
                    .execute(params![t.id, json])?;
            }
            EventData::Tags(_) => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO settings (key, value) VALUES ('tags', ?1)
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    )?
                    .execute([&json])?;
            }
            EventData::Read(r) => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO reads (agent_id, conversation_id, data) VALUES (?1, ?2, ?3)
                         ON CONFLICT(agent_id, conversation_id) DO UPDATE SET data = excluded.data",
                    )?
                    .execute(params![r.agent_id, r.conversation_id, json])?;
            }
        }
        self.tx
            .prepare_cached("INSERT INTO events (kind, data) VALUES (?1, ?2)")?
            .execute(params![data.kind(), json])?;
        let seq = self.tx.last_insert_rowid() as u64;
        let event = Event { seq, data };
        self.events.push(event.clone());
        self.bodies.push(json);
        Ok(event)
    }

    fn add_agent(&mut self, agent: &Agent, password_hash: &str) -> Result<Event, StoreError> {
        self.tx.execute(
            "INSERT INTO agents (id, email, password_hash, data) VALUES (?1, ?2, ?3, '{}')",
            params![agent.id, agent.email, password_hash],
        )?;
        self.put(EventData::Agent(agent.clone()))
    }

    fn set_agent_access(
        &mut self,
        agent_id: &str,
        disabled: bool,
        password_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE agents SET disabled = ?2, password_hash = COALESCE(?3, password_hash) WHERE id = ?1",
            params![agent_id, disabled as i64, password_hash],
        )?;
        Ok(())
    }

    fn add_channel(&mut self, channel: &NewChannel<'_>) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO channels (id, kind, name, secret_hash, webhook_url, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                channel.id,
                channel.kind,
                channel.name,
                channel.secret_hash,
                channel.webhook_url,
                channel.created_at.to_rfc3339()
            ],
        )?;
        Ok(())
    }

    fn set_channel_secret(&mut self, id: &str, secret_hash: &str) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE channels SET secret_hash = ?2 WHERE id = ?1",
            params![id, secret_hash],
        )?;
        Ok(())
    }

    fn set_channel(
        &mut self,
        id: &str,
        name: &str,
        webhook_url: Option<&str>,
        settings: &ChannelSettings,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE channels SET name = ?2, webhook_url = ?3, settings = ?4 WHERE id = ?1",
            params![id, name, webhook_url, serde_json::to_string(settings)?],
        )?;
        Ok(())
    }

    fn link_external(
        &mut self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
        internal_id: &str,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO external_ids (channel_id, kind, external_id, internal_id)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![channel_id, kind, external_id, internal_id])?;
        Ok(inserted == 1)
    }

    fn set_draft_deadline(
        &mut self,
        message_id: &str,
        due_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        match due_at {
            Some(at) => self
                .tx
                .prepare_cached(
                    "INSERT INTO draft_deadlines (message_id, due_at_ms) VALUES (?1, ?2)
                     ON CONFLICT (message_id) DO UPDATE SET due_at_ms = excluded.due_at_ms",
                )?
                .execute(params![message_id, at.timestamp_millis()])?,
            None => self
                .tx
                .prepare_cached("DELETE FROM draft_deadlines WHERE message_id = ?1")?
                .execute([message_id])?,
        };
        Ok(())
    }

    fn unlink_external(
        &mut self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "DELETE FROM external_ids WHERE channel_id = ?1 AND kind = ?2 AND external_id = ?3",
            )?
            .execute(params![channel_id, kind, external_id])?;
        Ok(())
    }

    fn add_token(
        &mut self,
        token_hash: &str,
        agent_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO tokens (token_hash, agent_id, created_at, last_used_at) VALUES (?1, ?2, ?3, ?3)",
            params![token_hash, agent_id, now.to_rfc3339()],
        )?;
        Ok(())
    }

    fn touch_token(&mut self, token_hash: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE tokens SET last_used_at = ?2 WHERE token_hash = ?1",
            params![token_hash, now.to_rfc3339()],
        )?;
        Ok(())
    }

    fn remove_token(&mut self, token_hash: &str) -> Result<(), StoreError> {
        self.tx
            .execute("DELETE FROM tokens WHERE token_hash = ?1", [token_hash])?;
        Ok(())
    }

    fn remove_tokens_of(&mut self, agent_id: &str) -> Result<(), StoreError> {
        self.tx
            .execute("DELETE FROM tokens WHERE agent_id = ?1", [agent_id])?;
        Ok(())
    }

    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        match value {
            Some(value) => self.tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?,
            None => self
                .tx
                .execute("DELETE FROM settings WHERE key = ?1", [key])?,
        };
        Ok(())
    }

    fn put_device(&mut self, device: &Device, token_hash: &str) -> Result<(), StoreError> {
        self.tx.execute(
            "DELETE FROM devices WHERE platform = ?1 AND address = ?2",
            params![device.platform.as_str(), device.address()],
        )?;
        self.tx.execute(
            "INSERT INTO devices (id, agent_id, token_hash, platform, address, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                device.id,
                device.agent_id,
                token_hash,
                device.platform.as_str(),
                device.address(),
                serde_json::to_string(device)?
            ],
        )?;
        Ok(())
    }

    fn remove_device(&mut self, id: &str) -> Result<bool, StoreError> {
        Ok(self.tx.execute("DELETE FROM devices WHERE id = ?1", [id])? == 1)
    }

    fn remove_expired_tokens(
        &mut self,
        born_before: DateTime<Utc>,
        used_before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        Ok(self.tx.execute(
            "DELETE FROM tokens WHERE created_at < ?1 OR COALESCE(last_used_at, created_at) < ?2",
            params![born_before.to_rfc3339(), used_before.to_rfc3339()],
        )?)
    }

    fn record_command(
        &mut self,
        agent_id: &str,
        txn_id: &str,
        recorded: &RecordedCommand,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO commands (agent_id, txn_id, status, response, created_at, fingerprint)
                 VALUES (?1, ?2, 200, ?3, ?4, ?5)",
            )?
            .execute(params![
                agent_id,
                txn_id,
                recorded.response,
                now.to_rfc3339(),
                recorded.fingerprint
            ])?;
        Ok(())
    }

    fn queue_delivery(&mut self, call: &Delivery, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO deliveries (channel_id, conversation_id, route, body, message_id, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )?
            .execute(params![
                call.channel_id,
                call.conversation_id,
                call.route,
                call.body,
                call.message_id,
                now.to_rfc3339()
            ])?;
        self.calls += 1;
        Ok(())
    }

    fn calls_queued(&self) -> usize {
        self.calls
    }

    fn retry_deliveries_now(
        &mut self,
        channel_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE deliveries SET next_attempt_at = ?2
             WHERE state = 'queued' AND (?1 IS NULL OR channel_id = ?1)",
            params![channel_id, now.to_rfc3339()],
        )?;
        Ok(())
    }

    fn claim_due_deliveries(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let due: Vec<DueDelivery> = {
            let mut stmt = self.tx.prepare_cached(
                concat!(
                    "SELECT o.id, c.webhook_url, o.route, o.body, o.message_id, o.attempts, o.created_at,
                            o.conversation_id, o.channel_id, c.kind
                     FROM deliveries o JOIN channels c ON c.id = o.channel_id
                     WHERE o.state = 'queued' AND o.next_attempt_at <= ?1 AND ",
                    first_in_its_conversation!(),
                    " ORDER BY o.id LIMIT ?2"
                ),
            )?;
            let rows = stmt.query_map(params![now.to_rfc3339(), limit as i64], |r| {
                let created: String = r.get(6)?;
                Ok(DueDelivery {
                    id: r.get(0)?,
                    channel_id: r.get(8)?,
                    channel_kind: r.get(9)?,
                    conversation_id: r.get(7)?,
                    url: r.get(1)?,
                    route: r.get(2)?,
                    body: r.get(3)?,
                    message_id: r.get(4)?,
                    attempts: r.get(5)?,
                    created_at: time(&created).unwrap_or(now),
                })
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let mut claimed = Vec::with_capacity(due.len());
        for row in due {
            if row.url.is_some() {
                self.tx.execute(
                    "UPDATE deliveries SET state = 'sending', attempts = attempts + 1 WHERE id = ?1",
                    [row.id],
                )?;
            }
            claimed.push(row);
        }
        Ok(claimed)
    }

    fn settle_delivery(
        &mut self,
        id: i64,
        state: DeliveryState,
        last_error: Option<&str>,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE deliveries SET state = ?2, last_error = ?3,
                 next_attempt_at = COALESCE(?4, next_attempt_at)
             WHERE id = ?1",
            params![
                id,
                state.as_str(),
                last_error,
                next_attempt_at.map(|t| t.to_rfc3339())
            ],
        )?;
        Ok(())
    }
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Copies committed WAL pages into the database file in the background (a PASSIVE checkpoint
/// never blocks the writer or readers), so the WAL stays small without commits paying for it.
fn checkpoint_regularly(conn: &Connection, stop: &std::sync::mpsc::Receiver<()>) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY)
    {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "store: background checkpoint failed; will retry");
        }
    }
}

/// Runs queued jobs in one transaction, each in its own savepoint, and commits it. If SQLite rolls
/// the transaction back on its own part-way (disk full, an I/O error), the jobs that ran are
/// answered with the failure and the ones not yet run stay in `jobs` for a fresh transaction:
/// none is reported as committed or failed wrongly, and none runs outside a transaction.
fn commit_group(
    conn: &mut Connection,
    announce: &Announce,
    jobs: &mut std::collections::VecDeque<Box<dyn GroupJob>>,
) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, "group commit: cannot start a transaction");
            for job in jobs.drain(..) {
                job.fail(e.to_string());
            }
            return;
        }
    };
    let mut txn = SqliteTx {
        tx,
        events: Vec::new(),
        bodies: Vec::new(),
        calls: 0,
    };
    let mut completions: Vec<Completion> = Vec::with_capacity(jobs.len());
    while let Some(job) = jobs.pop_front() {
        let mark = txn.events.len();
        // Prepared once and kept: parsing them again for every job costs more than the job's
        // own cached statements.
        if let Err(e) = txn
            .tx
            .prepare_cached("SAVEPOINT job")
            .and_then(|mut s| s.execute([]))
        {
            job.fail(e.to_string());
            continue;
        }
        let (ok, done) = job.run(&mut txn);
        if ok {
            match txn
                .tx
                .prepare_cached("RELEASE job")
                .and_then(|mut s| s.execute([]))
            {
                Ok(_) => completions.push(done),
                Err(e) => done(Err(e.to_string())),
            }
        } else {
            // Only this job's writes go; after an automatic rollback there is nothing to undo.
            if !txn.tx.is_autocommit() {
                let _ = txn.tx.execute_batch("ROLLBACK TO job; RELEASE job");
            }
            txn.events.truncate(mark);
            txn.bodies.truncate(mark);
        }
        if txn.tx.is_autocommit() {
            tracing::error!(
                jobs = completions.len(),
                "group commit: the database rolled the transaction back; those jobs failed, the rest run again"
            );
            drop(txn);
            for done in completions {
                done(Err("the database rolled the transaction back".into()));
            }
            return;
        }
    }
    let SqliteTx {
        tx, events, bodies, ..
    } = txn;
    match tx.commit() {
        Ok(()) => {
            announce.committed(&events, &bodies);
            for done in completions {
                done(Ok(()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; its writes are rolled back");
            for done in completions {
                done(Err(e.to_string()));
            }
        }
    }
}

fn read_floor(conn: &Connection) -> Result<u64, StoreError> {
    let floor: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = 'log_floor'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(floor.and_then(|f| f.parse().ok()).unwrap_or(0))
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    // The hub uses more distinct statements than the default cache (16) holds.
    conn.set_prepared_statement_cache_capacity(128);
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: an acknowledged Botpress message or agent command must survive a power cut.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0);
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied hub schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_protocol::Role;

    fn open(dir: &Path) -> Box<dyn Store> {
        Box::new(SqliteStore::open(dir).expect("open"))
    }

    fn agent(id: &str) -> Agent {
        Agent::new(id, format!("{id}@x"), "A", Role::Agent)
    }

    store_suite!(|dir: &std::path::Path| -> Box<dyn Store> {
        Box::new(SqliteStore::open(dir).expect("open"))
    });

    #[test]
    fn a_version_1_database_upgrades_with_its_handoffs_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut conn = Connection::open(dir.path().join("hub.sqlite")).expect("open");
            let tx = conn.transaction().expect("tx");
            tx.execute_batch(MIGRATIONS[0].1).expect("v1 schema");
            tx.pragma_update(None, "user_version", 1).expect("version");
            tx.execute_batch(
                "INSERT INTO channels (id, kind, name, secret_hash, created_at)
                     VALUES ('ch', 'botpress', 'Bot', 'h', '2026-01-01T00:00:00Z');
                 INSERT INTO conversations (id, channel_id, data) VALUES ('t_1', 'ch', '{}');
                 INSERT INTO handoffs (id, conversation_id, status, data)
                     VALUES ('ho_1', 't_1', 'pending', '{\"title\":\"Refund\"}');",
            )
            .expect("v1 data");
            tx.commit().expect("commit");
        }
        let store = SqliteStore::open(dir.path()).expect("upgrade");
        let reader = store.reader_conn().expect("reader");
        let conn = reader.conn().expect("conn");
        let (status, title, assignee): (String, String, Option<String>) = conn
            .query_row(
                "SELECT status, json_extract(data, '$.title'), assignee FROM handoffs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("read");
        assert_eq!(
            (status.as_str(), title.as_str(), assignee),
            ("pending", "Refund", None)
        );
        let settings: String = conn
            .query_row("SELECT settings FROM channels", [], |r| r.get(0))
            .expect("settings");
        assert_eq!(settings, "{}");
    }

    #[test]
    fn after_the_database_rolls_a_group_back_on_its_own_no_job_is_reported_wrongly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        // What SQLite does by itself on a full disk or an I/O error: roll the whole transaction back.
        store
            .writer
            .lock()
            .expect("writer")
            .execute_batch(
                "CREATE TEMP TRIGGER fail_b BEFORE INSERT ON agents WHEN NEW.id = 'ag_b'
                 BEGIN SELECT RAISE(ROLLBACK, 'simulated I/O error'); END;",
            )
            .expect("trigger");
        // Hold the writer so the three jobs queue up and run as one group.
        let writer = store.writer.lock().expect("writer");
        let store: &dyn Store = &store;
        let mut answers = Vec::new();
        for id in ["ag_a", "ag_b", "ag_c"] {
            let (answer, answered) = std::sync::mpsc::channel();
            let job = super::super::PendingJob {
                f: move |tx: &mut dyn Tx| tx.add_agent(&agent(id), "h").map(|_| ()),
                answer: move |result: Result<(), StoreError>| {
                    let _ = answer.send(result.is_ok());
                },
                looks_for: Default::default(),
            };
            store.submit(Box::new(job)).expect("queued");
            answers.push(answered);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(writer);
        let reported: Vec<bool> = answers
            .iter()
            .map(|a| a.recv().expect("answered"))
            .collect();
        assert_eq!(
            reported,
            [false, false, true],
            "a and b were rolled back, c committed"
        );
        let stored: Vec<String> = store
            .events_after(0, 10)
            .expect("events")
            .into_iter()
            .filter_map(|e| match e.data {
                EventData::Agent(a) => Some(a.id),
                _ => None,
            })
            .collect();
        assert_eq!(stored, ["ag_c"]);
    }

    #[test]
    fn a_version_4_database_keeps_its_queued_deliveries_under_their_new_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut conn = Connection::open(dir.path().join("hub.sqlite")).expect("open");
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 4) {
                let tx = conn.transaction().expect("tx");
                tx.execute_batch(sql).expect("old schema");
                tx.pragma_update(None, "user_version", version)
                    .expect("version");
                tx.commit().expect("commit");
            }
            conn.execute_batch(
                "INSERT INTO channels (id, kind, name, secret_hash, created_at)
                     VALUES ('ch', 'botpress', 'Bot', 'h', '2026-01-01T00:00:00Z');
                 INSERT INTO outbox (channel_id, conversation_id, route, body, next_attempt_at, created_at)
                     VALUES ('ch', 't_1', 'stop-hitl', '{}', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');",
            )
            .expect("old data");
        }
        let store = open(dir.path());
        let due = store
            .write(|tx| tx.claim_due_deliveries(Utc::now(), 10))
            .expect("claim");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].route, "stop-hitl");
    }

    #[test]
    fn reopening_a_database_keeps_its_events_and_does_not_rerun_migrations() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = open(dir.path());
            store
                .write(|tx| tx.add_agent(&agent("ag_1"), "h"))
                .expect("write");
        }
        let store = open(dir.path());
        assert_eq!(store.last_seq().expect("seq"), 1);
        assert_eq!(store.events_after(0, 10).expect("events").len(), 1);
    }
}
