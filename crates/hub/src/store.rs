//! The hub's storage: one SQLite database (WAL) holding the team's entities and the event log.
//!
//! Every change goes through [`Store::write`], which runs a closure inside one transaction and
//! collects the events it appends; the events get their `seq` from the same transaction, so an
//! entity and the event announcing it are committed together or not at all. After the commit the
//! events are broadcast to live streams *in seq order* (the broadcast happens while the writer lock
//! is still held), so a stream that sees a gap knows something else wrote (another process, such as
//! the admin CLI) and re-reads the log.
//!
//! [`Store::write_grouped`] is the same for the hot path (messages from Botpress): jobs from many
//! requests are queued to one writer thread, which runs each in its own savepoint inside one
//! transaction and commits them with a single fsync (group commit). A job that fails rolls back to
//! its savepoint alone; every caller is answered only after the commit that made it durable.
//!
//! SQLite specifics stay inside this module; the rest of the hub sees entities and events.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use baton_protocol::{Event, EventData};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

/// Numbered migrations, applied in order, one transaction each; `PRAGMA user_version` records the
/// last one applied.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_agent_work.sql")),
    (3, include_str!("../migrations/0003_handoff_status.sql")),
    (
        4,
        include_str!("../migrations/0004_expiry_and_fingerprints.sql"),
    ),
    (5, include_str!("../migrations/0005_deliveries.sql")),
];

/// The most bytes of events one stream frame or log page carries; a single larger event still goes,
/// alone. Clients accept frames far larger than this (see baton-core's client), so a device that
/// was offline for a long time always gets its backlog.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// A page of the log as the JSON text of an array of events.
#[derive(Debug, Clone)]
pub struct RawEvents {
    pub json: String,
    pub count: usize,
    /// The seq of the last event in it.
    pub last: Option<u64>,
    /// The page stopped at its count or byte limit: there may be more after `last`.
    pub more: bool,
}

/// How long a writer waits for another process (the admin CLI) to release the write lock before
/// giving up: long enough for any admin command, short enough to answer Botpress in its time.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// How many live events a slow stream may fall behind before it re-reads the log instead.
const BROADCAST_CAPACITY: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
}

/// One commit's events as streams send them: a JSON array of events, serialised once and shared
/// (not copied) by every stream. `first..=last` are the seqs it holds.
#[derive(Debug, Clone)]
pub struct Live {
    pub first: u64,
    pub last: u64,
    pub json: axum::extract::ws::Utf8Bytes,
}

/// Runs inside the group transaction and returns what to do once the commit's outcome is known.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// One caller's work for the group commit: run it inside the group's transaction, or, when the
/// group cannot run at all, answer its caller with why.
trait GroupJob: Send {
    fn run(self: Box<Self>, txn: &mut Txn<'_>) -> Completion;
    fn fail(self: Box<Self>, error: String);
}
type Job = Box<dyn GroupJob>;

struct PendingJob<F, A> {
    f: F,
    answer: A,
}

impl<T, E, F, A> GroupJob for PendingJob<F, A>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce(&mut Txn<'_>) -> Result<T, E> + Send + 'static,
    A: FnOnce(Result<T, E>) + Send + 'static,
{
    fn run(self: Box<Self>, txn: &mut Txn<'_>) -> Completion {
        let PendingJob { f, answer } = *self;
        let mark = txn.events.len();
        if let Err(e) = txn.tx.execute_batch("SAVEPOINT job") {
            answer(Err(StoreError::from(e).into()));
            return Box::new(|_| {});
        }
        match f(txn) {
            Ok(value) => match txn.tx.execute_batch("RELEASE job") {
                Ok(()) => Box::new(move |committed: Result<(), String>| {
                    answer(
                        committed
                            .map(|()| value)
                            .map_err(|e| StoreError::CommitFailed(e).into()),
                    );
                }),
                Err(e) => {
                    answer(Err(StoreError::from(e).into()));
                    Box::new(|_| {})
                }
            },
            Err(err) => {
                // Only this job's writes go; after an automatic rollback there is nothing to undo.
                if !txn.tx.is_autocommit() {
                    let _ = txn.tx.execute_batch("ROLLBACK TO job; RELEASE job");
                }
                txn.events.truncate(mark);
                txn.bodies.truncate(mark);
                answer(Err(err));
                Box::new(|_| {})
            }
        }
    }

    fn fail(self: Box<Self>, error: String) {
        (self.answer)(Err(StoreError::CommitFailed(error).into()));
    }
}

/// The most jobs one group commit takes.
const MAX_GROUP: usize = 2048;

pub struct Store {
    path: PathBuf,
    /// The newest seq this process has committed (and broadcast): a log that goes further was
    /// written by another process, such as the admin CLI.
    announced: std::sync::Arc<std::sync::atomic::AtomicU64>,
    writer: std::sync::Arc<Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
    live: broadcast::Sender<Live>,
    jobs: std::sync::mpsc::Sender<Job>,
    /// Dropping it (with the store) stops the checkpoint thread.
    _checkpoints: std::sync::mpsc::Sender<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A write transaction. Entities are written with the `put_*` helpers; [`Txn::append`] records the
/// event for each change.
pub struct Txn<'c> {
    tx: Transaction<'c>,
    events: Vec<Event>,
    /// Each event's `data` JSON, made once and shared by the entity row, the log and the streams.
    bodies: Vec<String>,
}

impl Store {
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
        let (live, _) = broadcast::channel(BROADCAST_CAPACITY);
        let last: i64 =
            writer.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
        let announced = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(last as u64));
        let writer = std::sync::Arc::new(Mutex::new(writer));
        let (jobs, queue) = std::sync::mpsc::channel();
        let (w, l, a) = (writer.clone(), live.clone(), announced.clone());
        std::thread::Builder::new()
            .name("baton-hub-writer".into())
            .spawn(move || group_commits(&w, &Announce { live: l, seq: a }, &queue))
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
            announced,
            writer,
            readers: Mutex::new(Vec::new()),
            live,
            jobs,
            _checkpoints: checkpoints,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.live.subscribe()
    }

    /// The newest seq this process committed. When the log holds more, another process wrote it.
    pub fn announced(&self) -> u64 {
        self.announced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records that events up to `seq`, written elsewhere, have been noticed.
    pub fn noticed(&self, seq: u64) {
        self.announced
            .fetch_max(seq, std::sync::atomic::Ordering::SeqCst);
    }

    fn announce(&self) -> Announce {
        Announce {
            live: self.live.clone(),
            seq: self.announced.clone(),
        }
    }

    /// Runs `f` inside the next group commit, with other callers' jobs, and returns once that
    /// commit is durable. A job's own failure rolls back only its own writes (a savepoint); a
    /// failed commit fails every job in it.
    pub fn write_grouped<T, E>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (answer, answered) = std::sync::mpsc::sync_channel::<Result<T, E>>(1);
        self.submit(f, move |result| {
            let _ = answer.send(result);
        })
        .map_err(E::from)?;
        answered.recv().map_err(|_| E::from(StoreError::Poisoned))?
    }

    /// [`Store::write_grouped`] for async callers: waits without holding a thread, so the hot path
    /// (messages from Botpress) never hops through the blocking pool.
    pub async fn write_grouped_async<T, E>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        self.submit(f, move |result| {
            let _ = answer.send(result);
        })
        .map_err(E::from)?;
        answered.await.map_err(|_| E::from(StoreError::Poisoned))?
    }

    /// Queues `f` for the writer thread; `answer` gets its result once the commit's outcome is known.
    fn submit<T, E>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, E> + Send + 'static,
        answer: impl FnOnce(Result<T, E>) + Send + 'static,
    ) -> Result<(), StoreError>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let job: Job = Box::new(PendingJob { f, answer });
        self.jobs.send(job).map_err(|_| StoreError::Poisoned)
    }

    /// Runs `f` in one transaction; commits if it returns `Ok`, then broadcasts its events.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        // IMMEDIATE: take the write lock before reading, and wait for it (busy timeout) when
        // another process (the admin CLI) holds it. A deferred transaction that reads first
        // fails at once when it tries to write.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let mut txn = Txn {
            tx,
            events: Vec::new(),
            bodies: Vec::new(),
        };
        let value = f(&mut txn)?;
        let Txn { tx, events, bodies } = txn;
        tx.commit().map_err(StoreError::from)?;
        broadcast_events(&self.announce(), &events, &bodies);
        Ok(value)
    }

    /// Runs `f` on a read connection (a snapshot; never blocks the writer).
    pub fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let pooled = self.readers.lock().map_err(|_| StoreError::Poisoned)?.pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.path)?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < 8 {
                pool.push(conn);
            }
        }
        result
    }

    /// Up to `limit` events with `seq > after`, oldest first, decoded (for tests and tools; the
    /// API serves [`Store::event_page`]).
    pub fn events_after(&self, after: u64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let page = self.event_page(after, limit, usize::MAX)?;
        Ok(serde_json::from_str(&page.json)?)
    }

    /// Up to `limit` events with `seq > after`, oldest first, and no more than `max_bytes` of
    /// them (one larger event still goes, alone), as the JSON text of an array. The stored JSON is
    /// copied, never decoded and re-encoded: what the hub serves is what it accepted, no deeper.
    pub fn event_page(
        &self,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<RawEvents, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, kind, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![after as i64, limit])?;
            let mut page = RawEvents {
                json: String::from("["),
                count: 0,
                last: None,
                more: false,
            };
            while let Some(row) = rows.next()? {
                let seq = row.get::<_, i64>(0)? as u64;
                let kind: String = row.get(1)?;
                let data: String = row.get(2)?;
                if page.count > 0 && page.json.len() + data.len() + 64 > max_bytes {
                    page.more = true;
                    break;
                }
                if page.count > 0 {
                    page.json.push(',');
                }
                push_event(&mut page.json, seq, &kind, &data);
                page.count += 1;
                page.last = Some(seq);
            }
            page.more |= page.count as u32 == limit;
            page.json.push(']');
            Ok(page)
        })
    }

    /// Every seq at or below this has been trimmed from the log (0: nothing trimmed).
    pub fn log_floor(&self) -> Result<u64, StoreError> {
        self.read(read_floor)
    }

    /// Drops all but the newest `keep` events from the log (entity tables keep the current state;
    /// clients behind the new floor get 410 and take a snapshot). Returns the new floor.
    pub fn trim_log(&self, keep: u64) -> Result<u64, StoreError> {
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

    /// One page of the inbox's current state (every entity but messages) as the JSON text of a
    /// [`baton_protocol::Snapshot`], at most about `max_bytes` long. `from` is the previous page's
    /// `next` (`None` for the first). Each page is read in one transaction and reports the seq it
    /// reflects; a client follows the log from the *first* page's seq, so later pages' newer rows
    /// are replayed over harmlessly (events carry full state).
    pub fn snapshot_page(
        &self,
        from: Option<&str>,
        max_bytes: usize,
    ) -> Result<String, StoreError> {
        let (table, after) = match from {
            None => (0, 0),
            Some(cursor) => parse_snapshot_cursor(cursor).ok_or(StoreError::BadCursor)?,
        };
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
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
        })
    }

    /// The whole snapshot, decoded (for tests and tools; the API pages it).
    pub fn snapshot(&self) -> Result<baton_protocol::Snapshot, StoreError> {
        let mut page: baton_protocol::Snapshot =
            serde_json::from_str(&self.snapshot_page(None, usize::MAX)?)?;
        page.next = None;
        Ok(page)
    }

    /// Messages newest first, `limit` at a time and at most about `max_bytes`, for clients
    /// backfilling their history: all of them, or one conversation's. The JSON text of a
    /// [`baton_protocol::MessagePage`], stored JSON copied as it is.
    pub fn messages_before(
        &self,
        conversation: Option<&str>,
        before: Option<i64>,
        limit: u32,
        max_bytes: usize,
    ) -> Result<String, StoreError> {
        self.read(|conn| {
            let before = before.unwrap_or(i64::MAX);
            let (mut stmt, total): (rusqlite::CachedStatement<'_>, i64) = match conversation {
                Some(id) => (
                    conn.prepare_cached(
                        "SELECT rowid, data FROM messages WHERE conversation_id = ?1 AND rowid < ?2
                         ORDER BY rowid DESC LIMIT ?3",
                    )?,
                    conn.prepare_cached(
                        "SELECT COUNT(*) FROM messages WHERE conversation_id = ?1",
                    )?
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
        })
    }

    /// The newest seq in the log (0 when empty).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            let seq: i64 =
                conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
            Ok((seq as u64).max(read_floor(conn)?))
        })
    }
}

impl Txn<'_> {
    pub fn conn(&self) -> &Connection {
        &self.tx
    }

    /// The events appended so far in this transaction.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Writes `data` to the log and returns the event with its new seq.
    pub fn append(&mut self, data: EventData) -> Result<Event, StoreError> {
        let json = entity_json(&data)?;
        self.append_json(data, json)
    }

    fn append_json(&mut self, data: EventData, json: String) -> Result<Event, StoreError> {
        self.tx
            .prepare_cached("INSERT INTO events (kind, data) VALUES (?1, ?2)")?
            .execute(params![data.kind(), json])?;
        let seq = self.tx.last_insert_rowid() as u64;
        let event = Event { seq, data };
        self.events.push(event.clone());
        self.bodies.push(json);
        Ok(event)
    }

    /// Stores an entity's new state and appends the event that announces it.
    pub fn put(&mut self, data: EventData) -> Result<Event, StoreError> {
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
                // Agents carry credentials the event must not; their row is written by the caller.
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
        }
        self.append_json(data, json)
    }
}

/// Sends committed events to live streams, in seq order (callers hold the writer lock), in
/// frames of at most [`MAX_FRAME_BYTES`] (a single larger event goes alone). Frames are put
/// together from the `data` JSON already made, not serialised again.
fn broadcast_events(announce: &Announce, events: &[Event], bodies: &[String]) {
    let Some(newest) = events.last() else {
        return;
    };
    announce
        .seq
        .fetch_max(newest.seq, std::sync::atomic::Ordering::SeqCst);
    let live = &announce.live;
    if live.receiver_count() == 0 {
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
            let _ = live.send(Live {
                first,
                last,
                json: full.into(),
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
    let _ = live.send(Live {
        first,
        last,
        json: frame.into(),
    });
}

/// Where committed events go: to the live streams, and into the store's newest-seq mark.
struct Announce {
    live: broadcast::Sender<Live>,
    seq: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Appends one event as `{"seq":…,"kind":…,"data":…}`, `data` being stored JSON as it is.
fn push_event(json: &mut String, seq: u64, kind: &str, data: &str) {
    use std::fmt::Write;
    let _ = write!(json, r#"{{"seq":{seq},"kind":"{kind}","data":{data}}}"#);
}

/// The entity tables a snapshot carries, in the order its pages walk them.
const SNAPSHOT_TABLES: [&str; 6] = [
    "contacts",
    "conversations",
    "handoffs",
    "agents",
    "notes",
    "templates",
];

/// `"<table index>:<rowid>"`, as [`Store::snapshot_page`] hands it out.
fn parse_snapshot_cursor(cursor: &str) -> Option<(usize, i64)> {
    let (table, row) = cursor.split_once(':')?;
    let table: usize = table.parse().ok()?;
    (table < SNAPSHOT_TABLES.len()).then_some(())?;
    Some((table, row.parse().ok()?))
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

/// The writer thread: takes every queued job, runs them in one transaction, commits once, then
/// answers each caller. Ends when the store is dropped.
fn group_commits(
    writer: &Mutex<Connection>,
    live: &Announce,
    queue: &std::sync::mpsc::Receiver<Job>,
) {
    let mut jobs: std::collections::VecDeque<Job> = std::collections::VecDeque::new();
    loop {
        if jobs.is_empty() {
            match queue.recv() {
                Ok(job) => jobs.push_back(job),
                Err(_) => return,
            }
        }
        while jobs.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => jobs.push_back(job),
                Err(_) => break,
            }
        }
        let Ok(mut conn) = writer.lock() else {
            tracing::error!("group commit: the writer lock is poisoned");
            for job in jobs.drain(..) {
                job.fail("the store's writer is broken".into());
            }
            continue;
        };
        commit_group(&mut conn, live, &mut jobs);
    }
}

/// Runs queued jobs in one transaction and commits it. If SQLite rolls the transaction back on
/// its own part-way (disk full, an I/O error), the jobs that ran are answered with the failure
/// and the ones not yet run stay in `jobs` for a fresh transaction: none is reported as committed
/// or failed wrongly, and none runs outside a transaction.
fn commit_group(
    conn: &mut Connection,
    live: &Announce,
    jobs: &mut std::collections::VecDeque<Job>,
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
    let mut txn = Txn {
        tx,
        events: Vec::new(),
        bodies: Vec::new(),
    };
    let mut completions: Vec<Completion> = Vec::with_capacity(jobs.len());
    while let Some(job) = jobs.pop_front() {
        completions.push(job.run(&mut txn));
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
    let Txn { tx, events, bodies } = txn;
    match tx.commit() {
        Ok(()) => {
            broadcast_events(live, &events, &bodies);
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

/// The JSON of what an event carries (its `data`), as stored in the entity row and the log.
fn entity_json(data: &EventData) -> Result<String, serde_json::Error> {
    match data {
        EventData::Contact(v) => serde_json::to_string(v),
        EventData::Conversation(v) => serde_json::to_string(v),
        EventData::Handoff(v) => serde_json::to_string(v),
        EventData::Message(v) => serde_json::to_string(v),
        EventData::Agent(v) => serde_json::to_string(v),
        EventData::Note(v) => serde_json::to_string(v),
        EventData::Template(v) => serde_json::to_string(v),
        EventData::Tags(v) => serde_json::to_string(v),
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

/// Every row of a query that selects one entity's JSON `data` column, decoded.
pub fn all_where<T: DeserializeOwned>(
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

/// Reads one entity's JSON `data` column by id from `table`.
pub fn get_entity<T: DeserializeOwned>(
    conn: &Connection,
    table: Entity,
    id: &str,
) -> Result<Option<T>, StoreError> {
    let sql = format!("SELECT data FROM {} WHERE id = ?1", table.table());
    let data: Option<String> = conn
        .prepare_cached(&sql)?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(match data {
        Some(data) => Some(serde_json::from_str(&data)?),
        None => None,
    })
}

/// The entity tables [`get_entity`] reads (a closed set, so table names are never user input).
#[derive(Debug, Clone, Copy)]
pub enum Entity {
    Contact,
    Conversation,
    Handoff,
    Agent,
    Template,
    Message,
}

impl Entity {
    fn table(self) -> &'static str {
        match self {
            Self::Contact => "contacts",
            Self::Conversation => "conversations",
            Self::Handoff => "handoffs",
            Self::Agent => "agents",
            Self::Template => "templates",
            Self::Message => "messages",
        }
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    // The hub's commands use more distinct statements than the default cache (16) holds.
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
    use baton_protocol::Agent;

    #[test]
    fn a_failed_write_leaves_neither_entity_nor_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let result: Result<(), StoreError> = store.write(|txn| {
            txn.append(EventData::Agent(Agent::new(
                "ag_1",
                "a@x",
                "A",
                baton_protocol::Role::Agent,
            )))?;
            Err(StoreError::Poisoned)
        });
        assert!(result.is_err());
        assert_eq!(store.last_seq().expect("seq"), 0);
    }

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
        let store = Store::open(dir.path()).expect("upgrade");
        let (status, title, assignee): (String, String, Option<String>) = store
            .read(|c| {
                c.query_row(
                    "SELECT status, json_extract(data, '$.title'), assignee FROM handoffs",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(StoreError::from)
            })
            .expect("read");
        assert_eq!(
            (status.as_str(), title.as_str(), assignee),
            ("pending", "Refund", None)
        );
        let settings: String = store
            .read(|c| {
                c.query_row("SELECT settings FROM channels", [], |r| r.get(0))
                    .map_err(StoreError::from)
            })
            .expect("settings");
        assert_eq!(settings, "{}");
    }

    #[test]
    fn grouped_writes_from_many_threads_all_commit_and_a_failing_one_leaves_no_trace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(Store::open(dir.path()).expect("open"));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    store.write_grouped(move |txn| {
                        txn.append(EventData::Agent(Agent::new(
                            format!("ag_{i}"),
                            "a@x",
                            "A",
                            baton_protocol::Role::Agent,
                        )))?;
                        if i == 7 {
                            return Err(StoreError::Poisoned);
                        }
                        Ok(i)
                    })
                })
            })
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 15);
        let events = store.events_after(0, 100).expect("events");
        assert_eq!(events.len(), 15);
        assert!(events
            .iter()
            .all(|e| !matches!(&e.data, EventData::Agent(a) if a.id == "ag_7")));
        assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    }

    #[test]
    fn after_the_database_rolls_a_group_back_on_its_own_no_job_is_reported_wrongly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let agent =
            |id: &str| EventData::Agent(Agent::new(id, "a@x", "A", baton_protocol::Role::Agent));
        // Hold the writer so the three jobs queue up and run as one group.
        let writer = store.writer.lock().expect("writer");
        let mut answers = Vec::new();
        for id in ["ag_a", "ag_b", "ag_c"] {
            let (answer, answered) = std::sync::mpsc::channel();
            let data = agent(id);
            store
                .submit(
                    move |txn: &mut Txn<'_>| {
                        txn.append(data)?;
                        if id == "ag_b" {
                            // What SQLite does by itself on a full disk or an I/O error.
                            txn.tx.execute_batch("ROLLBACK")?;
                        }
                        Ok::<_, StoreError>(())
                    },
                    move |result| {
                        let _ = answer.send(result.is_ok());
                    },
                )
                .expect("queued");
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
    fn a_page_of_the_log_stops_at_its_byte_budget_but_always_carries_one_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for i in 0..10 {
            store
                .write(|txn| {
                    txn.append(EventData::Agent(Agent::new(
                        format!("ag_{i}"),
                        "a@x",
                        "x".repeat(1000),
                        baton_protocol::Role::Agent,
                    )))
                })
                .expect("write");
        }
        let page = store.event_page(0, 1000, 3000).expect("page");
        assert_eq!((page.count, page.last, page.more), (2, Some(2), true));
        assert!(page.json.len() <= 3000);
        let one = store.event_page(0, 1000, 10).expect("page");
        assert_eq!(one.count, 1, "a single larger event still goes");
        let rest = store.event_page(2, 1000, usize::MAX).expect("page");
        assert_eq!((rest.count, rest.more), (8, false));
    }

    #[test]
    fn a_snapshot_in_small_pages_holds_every_entity_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for i in 0..25 {
            store
                .write(|txn| {
                    txn.conn().execute(
                        "INSERT INTO agents (id, email, password_hash, data) VALUES (?1, ?2, 'h', '{}')",
                        params![format!("ag_{i}"), format!("a{i}@x")],
                    )?;
                    txn.put(EventData::Agent(Agent::new(
                        format!("ag_{i}"),
                        format!("a{i}@x"),
                        "A",
                        baton_protocol::Role::Agent,
                    )))
                })
                .expect("write");
        }
        let mut cursor: Option<String> = None;
        let mut ids = Vec::new();
        let mut pages = 0;
        loop {
            let page: baton_protocol::Snapshot =
                serde_json::from_str(&store.snapshot_page(cursor.as_deref(), 600).expect("page"))
                    .expect("a snapshot");
            pages += 1;
            ids.extend(page.agents.into_iter().map(|a| a.id));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert!(pages > 3, "{pages} pages");
        let mut expected: Vec<String> = (0..25).map(|i| format!("ag_{i}")).collect();
        expected.sort();
        ids.sort();
        assert_eq!(ids, expected);
        assert!(matches!(
            store.snapshot_page(Some("9:0"), 600),
            Err(StoreError::BadCursor)
        ));
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
        let store = Store::open(dir.path()).expect("upgrade");
        let queued: i64 = store
            .read(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM deliveries WHERE state = 'queued'",
                    [],
                    |r| r.get(0),
                )
                .map_err(StoreError::from)
            })
            .expect("read");
        assert_eq!(queued, 1);
    }

    #[test]
    fn reopening_a_database_keeps_its_events_and_does_not_rerun_migrations() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            store
                .write(|txn| {
                    txn.append(EventData::Agent(Agent::new(
                        "ag_1",
                        "a@x",
                        "A",
                        baton_protocol::Role::Agent,
                    )))
                })
                .expect("write");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.last_seq().expect("seq"), 1);
        assert_eq!(store.events_after(0, 10).expect("events").len(), 1);
    }
}
