//! The PostgreSQL store, for teams that run several hubs over one database (`--database
//! postgres://…`). The same tables as the SQLite store (migrations in `migrations/postgres/`),
//! the same traits, the same shared suite.
//!
//! The driver is tokio-postgres, asynchronous, while the store's interface is synchronous (the
//! SQLite store's calls are short disk reads). Its connections are driven by a small runtime of
//! the store's own, and calls wait on them with `futures_executor::block_on`: that never enters
//! the caller's runtime, so the store works the same from a hub's async handler, a blocking task
//! or a plain thread.
//!
//! Seqs are handed out by `log_head`, whose row lock is held to the writing transaction's commit:
//! writers on every instance take numbers in commit order, so a reader never sees N+1 before N.
//! A transaction counts its seqs on from the head it locked and writes its events to the log in
//! one statement at commit.
//! Each instance group-commits its own writes as the SQLite store does (one transaction, one
//! savepoint per job).

use std::future::Future;
use std::sync::{Arc, Mutex};

use baton_protocol::{
    Agent, Contact, Conversation, Event, EventData, Handoff, HandoffStatus, Message, Template,
};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Row, Transaction};

mod tls;
pub use tls::{Database, TlsMode, UrlError};

use super::{
    entity_json, parse_snapshot_cursor, Announce, Completion, Delivery, DeliveryState, DueDelivery,
    GroupJob, Live, LookAhead, NewChannel, PlatformKey, RawEvents, Read, RecordedCommand, Store,
    StoreError, StoredToken, Tx, SNAPSHOT_TABLES,
};
use crate::channel::{ChannelRow, ChannelSettings};
use crate::push::Device;

/// Numbered migrations, applied in order, one transaction each; `baton_schema` records them.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_instances.sql"),
    ),
    (3, include_str!("../../migrations/postgres/0003_writes.sql")),
    (4, include_str!("../../migrations/postgres/0004_files.sql")),
];

/// The most jobs one group commit takes.
const MAX_GROUP: usize = 2048;

/// How many read connections are open at most, idle ones included (see [`ReaderPool`]).
const READERS_OPEN: usize = 16;
/// How long a read waits for a free connection before it opens one beyond [`READERS_OPEN`].
const READER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Any fixed number: the advisory lock instances take to migrate one at a time.
const MIGRATION_LOCK: i64 = 0x0BA7_0001;
/// The advisory lock the instance running the team-wide sweeps holds, on a connection of its own:
/// if that instance dies its connection closes, the lock goes, and another takes it.
const LEADER_LOCK: i64 = 0x0BA7_0002;
/// How often an instance tries to become the leader (and the leader checks its connection).
const LEADER_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

/// Waits for a database call from synchronous code (see the module's introduction).
///
/// Unconstrained by tokio's cooperative budget: called from inside a tokio task (an async
/// handler, a benchmark's setup), every wait spends that task's budget, and once it is spent a
/// tokio channel answers "not yet, try again" until the task yields, which a task blocked here
/// never does. The wait then spun at full CPU for ever (seen opening a hub after 50 sign-ups).
pub(super) fn wait<F: Future>(f: F) -> F::Output {
    futures_executor::block_on(tokio::task::unconstrained(f))
}

/// The runtime the store's connections run on; shut down without waiting when the store goes
/// (dropping a runtime inside the hub's own would otherwise panic).
struct Driver(Option<tokio::runtime::Runtime>);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Driver {
    fn runtime(&self) -> Result<&tokio::runtime::Runtime, StoreError> {
        self.0.as_ref().ok_or(StoreError::Poisoned)
    }
}

pub struct PostgresStore {
    config: Database,
    driver: Arc<Driver>,
    announce: Announce,
    writer: Arc<Mutex<Conn>>,
    readers: ReaderPool,
    jobs: std::sync::mpsc::Sender<Box<dyn GroupJob>>,
    /// Every instance's commits in seq order, without gaps, as streams send them (see
    /// [`relay`]).
    frames: broadcast::Sender<Live>,
    /// This instance's name in commit notices.
    instance: String,
    /// Whether this instance holds the leader lock (kept by its own thread).
    leading: Arc<std::sync::atomic::AtomicBool>,
    /// Dropped with the store: the leader thread ends, and its connection (and lock) with it.
    _leadership: std::sync::mpsc::Sender<()>,
    lease: std::time::Duration,
}

/// Three default delivery timeouts (10 s) and 5 s.
const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(35);

/// The channel commits are announced on: `"<instance>:<newest seq>"` (see [`PgTx::append_to_log`]).
const LOG_CHANNEL: &str = "baton_log";

/// How many events one frame read from the log holds at most.
const RELAY_PAGE: u32 = 1000;

/// What the relay hears of (see [`relay`]).
enum Wake {
    /// Another instance committed up to this seq (`u64::MAX`: whatever the log gained).
    Other(u64),
    /// This instance committed these events.
    Own(Live),
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.config.get_hosts().len())
            .field("dbname", &self.config.config.get_dbname())
            .field("tls", &self.config.mode)
            .finish_non_exhaustive()
    }
}

/// A write transaction on the writer connection.
///
/// Its events get their seqs here, counting on from the log's head as locked when the
/// transaction began, and reach the log in one statement at commit ([`PgTx::append_to_log`]):
/// one round trip per event fewer, and the head's row is updated once, outside every job's
/// savepoint (a row locked by the transaction and updated in a savepoint makes the database
/// track both as a "multixact", which grew slower with each event of a group).
///
/// What needs no answer — an entity's row written by `put`, a link added by `add_link` — is queued
/// ([`Queued`]) and sent with the next statement that does (a read the writer's cache cannot
/// answer, a write whose result counts, the commit), all in one message: a job whose reads the
/// cache answers costs no round trip at all. The rows queued for one table go in one statement
/// ([`RowWrite`]): a group of a hundred new customers is a handful of statements, not seven
/// hundred, each of which the database would parse, plan and run on its own.
///
/// A job gets its savepoint (so that it can fail alone) only when it sends something: until
/// then, undoing it is dropping what it queued. A job that sends nothing — most, once the cache
/// is warm — costs the database no subtransaction.
///
/// What the database refuses after the running job's savepoint, with nothing of another job in
/// the same send, fails that job alone ([`PgTx::refused_by_database`]). A refused write sent
/// with other jobs' rows may belong to a job already answered, so it breaks the whole
/// transaction: the group fails (its callers are told, nothing is acknowledged) and the writer
/// sends every write at once for a while, so that a job that keeps failing fails alone
/// ([`CAREFUL_GROUPS`]).
struct PgTx<'c> {
    tx: Transaction<'c>,
    statements: &'c Statements,
    cache: &'c std::cell::RefCell<WriterCache>,
    /// The log's head when this transaction locked it.
    head: u64,
    /// `log_head.writes` then.
    writes: i64,
    /// `log_head.unlinks`, with this transaction's own.
    unlinks: std::cell::Cell<i64>,
    events: Vec<Event>,
    bodies: Vec<String>,
    /// How long a claimed delivery is this instance's (see [`PostgresStore::open_with_lease`]).
    lease_secs: f64,
    /// What waits to be sent with the next statement.
    queued: std::cell::RefCell<Vec<Queued>>,
    /// Where the running job stands with its savepoint.
    job: std::cell::Cell<JobSavepoint>,
    /// Whether a savepoint was set in this transaction (and not released by setting the next).
    savepoint_set: std::cell::Cell<bool>,
    /// Why the transaction can no longer commit, once a queued write was refused.
    broken: std::cell::RefCell<Option<String>>,
    /// Why the running job failed, when the database refused a write it sent alone (see
    /// [`PgTx::refused_by_database`]).
    refused: std::cell::RefCell<Option<String>>,
    /// Queue writes (else each is sent at once: see [`CAREFUL_GROUPS`]).
    defer: bool,
    careful: &'c std::cell::Cell<u32>,
    /// Platform messages known not to be stored (see [`PgTx::look_for`]).
    absent: std::cell::RefCell<Absent>,
    /// How many calls it has queued (see [`Tx::calls_queued`]).
    calls: std::cell::Cell<usize>,
}

/// Platform messages a group looked for before its jobs ran and did not find, less what its jobs
/// stored since: by the hub's id, and by (channel, platform id) for the link.
#[derive(Default)]
struct Absent {
    ids: std::collections::HashSet<String>,
    links: std::collections::HashSet<(String, String)>,
}

/// What a write transaction sends with its next statement (see [`PgTx`]).
enum Queued {
    /// A statement without parameters: setting a savepoint, moving to the next job's
    /// ([`NEXT_SAVEPOINT`]).
    Simple(&'static str),
    /// A row of a table whose rows are written together ([`RowWrite`]).
    Row(RowWrite),
    Write {
        sql: &'static str,
        params: Vec<Option<String>>,
    },
}

/// Where a running job stands with its savepoint (see [`PgTx::save_job`]).
#[derive(Clone, Copy, Debug, PartialEq)]
enum JobSavepoint {
    /// No job is running (the group's look-ahead, the commit).
    NoJob,
    /// The job has sent nothing; what it queued starts at this place in the queue.
    NotYet(usize),
    /// Its savepoint is queued ahead of what it sends, which is being prepared.
    Sending,
    /// Its savepoint has gone to the database (everything after it in the send was prepared).
    Set,
}

/// A row to upsert (or, for a link, insert if missing), queued with the other rows of its table.
///
/// Rows queued between two other statements are sent one statement per table, in [`Table`]'s
/// order (a table after those its rows refer to), and within a table in the order they were
/// queued (their `rid`, which orders a conversation's messages, follows it). A row whose key
/// comes again in the same run goes in a later statement of its table, so every row is written
/// as if it had been sent alone: an upsert does not see the same row twice, and the last write
/// of a key is the one kept.
struct RowWrite {
    table: Table,
    /// In the order of [`Table::upsert`]'s arrays, the key first.
    columns: Vec<Option<String>>,
}

/// The tables whose rows are queued, in the order their statements go (see [`RowWrite`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Table {
    Contacts,
    Conversations,
    Handoffs,
    Messages,
    Notes,
    Templates,
    Settings,
    Reads,
    ExternalIds,
}

impl Table {
    /// How many of the leading columns are the row's key.
    fn key_len(self) -> usize {
        match self {
            Table::Reads => 2,
            Table::ExternalIds => 3,
            _ => 1,
        }
    }

    /// The statement that writes a run's rows of this table, one array per column.
    /// (`WITH ORDINALITY … ORDER BY` keeps the rows, and so their `rid`s, in the queue's order.)
    fn upsert(self) -> &'static str {
        match self {
            Table::Contacts => {
                "INSERT INTO contacts (id, channel_id, data)
                 SELECT id, channel_id, data
                 FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r (id, channel_id, data, n)
                 ORDER BY n
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data"
            }
            Table::Conversations => {
                "INSERT INTO conversations (id, channel_id, contact_id, data)
                 SELECT id, channel_id, contact_id, data
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                     WITH ORDINALITY AS r (id, channel_id, contact_id, data, n)
                 ORDER BY n
                 ON CONFLICT (id) DO UPDATE SET contact_id = excluded.contact_id, data = excluded.data"
            }
            Table::Handoffs => {
                "INSERT INTO handoffs (id, conversation_id, status, assignee, data)
                 SELECT id, conversation_id, status, assignee, data
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                     WITH ORDINALITY AS r (id, conversation_id, status, assignee, data, n)
                 ORDER BY n
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status,
                     assignee = excluded.assignee, data = excluded.data"
            }
            Table::Messages => {
                "INSERT INTO messages (id, conversation_id, data)
                 SELECT id, conversation_id, data
                 FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r (id, conversation_id, data, n)
                 ORDER BY n
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data"
            }
            Table::Notes => {
                "INSERT INTO notes (id, conversation_id, data)
                 SELECT id, conversation_id, data
                 FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r (id, conversation_id, data, n)
                 ORDER BY n
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data"
            }
            Table::Templates => {
                "INSERT INTO templates (id, data)
                 SELECT id, data FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r (id, data, n)
                 ORDER BY n
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data"
            }
            Table::Settings => {
                "INSERT INTO settings (key, value)
                 SELECT key, value FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r (key, value, n)
                 ORDER BY n
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            }
            Table::Reads => {
                "INSERT INTO reads (agent_id, conversation_id, data)
                 SELECT agent_id, conversation_id, data
                 FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r (agent_id, conversation_id, data, n)
                 ORDER BY n
                 ON CONFLICT (agent_id, conversation_id) DO UPDATE SET data = excluded.data"
            }
            Table::ExternalIds => {
                "INSERT INTO external_ids (channel_id, kind, external_id, internal_id)
                 SELECT channel_id, kind, external_id, internal_id
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                     WITH ORDINALITY AS r (channel_id, kind, external_id, internal_id, n)
                 ORDER BY n
                 ON CONFLICT DO NOTHING"
            }
        }
    }
}

/// One statement of what a transaction sends (see [`PgTx::send_all`]).
enum Step<'q> {
    Simple(&'static str),
    Write {
        sql: &'static str,
        params: &'q [Option<String>],
    },
    /// Rows of one table, as one array per column.
    Rows {
        table: Table,
        columns: Vec<Vec<Option<&'q str>>>,
    },
}

impl Step<'_> {
    fn sql(&self) -> &'static str {
        match self {
            Step::Simple(sql) | Step::Write { sql, .. } => sql,
            Step::Rows { table, .. } => table.upsert(),
        }
    }
}

/// The statements that send `queued`: each run of [`Queued::Row`]s between two other statements
/// becomes a statement per table (see [`RowWrite`]).
fn steps(queued: &[Queued]) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut run: Vec<&RowWrite> = Vec::new();
    for q in queued {
        match q {
            Queued::Row(row) => run.push(row),
            Queued::Simple(sql) => {
                rows_of(&mut run, &mut steps);
                steps.push(Step::Simple(sql));
            }
            Queued::Write { sql, params } => {
                rows_of(&mut run, &mut steps);
                steps.push(Step::Write { sql, params });
            }
        }
    }
    rows_of(&mut run, &mut steps);
    steps
}

/// Empties a run of rows into `steps`, a statement per table and repeat of a key.
fn rows_of<'q>(run: &mut Vec<&'q RowWrite>, steps: &mut Vec<Step<'q>>) {
    let mut seen: std::collections::HashMap<(Table, &[Option<String>]), usize> =
        std::collections::HashMap::new();
    let mut batches: std::collections::BTreeMap<(Table, usize), Vec<&'q RowWrite>> =
        std::collections::BTreeMap::new();
    for row in run.drain(..) {
        let key = &row.columns[..row.table.key_len().min(row.columns.len())];
        let repeat = seen.entry((row.table, key)).or_insert(0);
        batches.entry((row.table, *repeat)).or_default().push(row);
        *repeat += 1;
    }
    for ((table, _), rows) in batches {
        let width = rows.first().map_or(0, |r| r.columns.len());
        let columns = (0..width)
            .map(|i| {
                rows.iter()
                    .map(|r| r.columns.get(i).and_then(|c| c.as_deref()))
                    .collect()
            })
            .collect();
        steps.push(Step::Rows { table, columns });
    }
}

/// How many transactions the writer sends each write at once after a queued one was refused.
const CAREFUL_GROUPS: u32 = 16;

/// A database call on its way.
type Call<'a, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + 'a>>;

/// A call whose request has gone out (tokio-postgres sends on a call's first poll), or that ended
/// at once.
enum Sent<'a, T> {
    Waiting(Call<'a, T>),
    Ended(Result<T, tokio_postgres::Error>),
}

fn send_now<T>(mut call: Call<'_, T>) -> Sent<'_, T> {
    let mut cx = std::task::Context::from_waker(futures_util::task::noop_waker_ref());
    match call.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(ended) => Sent::Ended(ended),
        std::task::Poll::Pending => Sent::Waiting(call),
    }
}

async fn answer<T>(sent: Sent<'_, T>) -> Result<T, tokio_postgres::Error> {
    match sent {
        Sent::Waiting(call) => call.await,
        Sent::Ended(ended) => ended,
    }
}

impl<'c> PgTx<'c> {
    /// Begins a write transaction on `client`, its first act locking the log's head (see
    /// [`lock_head_first`]).
    fn begin(conn: &'c mut Conn, lease: std::time::Duration) -> Result<Self, StoreError> {
        let Conn {
            client,
            statements,
            cache,
            careful,
        } = conn;
        let defer = match careful.get() {
            0 => true,
            n => {
                careful.set(n - 1);
                false
            }
        };
        let tx = wait(client.transaction())?;
        let since = cache.borrow().position.map(|p| p.head);
        let (locked, others) = lock_head_first(&tx, statements, since)?;
        {
            // Another writer committed since this one last did: what it kept is brought up to
            // date from the events it wrote, or forgotten.
            let mut cache = cache.borrow_mut();
            // (The head too: a writer that does not count its writes — an instance older than
            // the `writes` column, during an upgrade — still moves it with its events.)
            let unchanged = cache
                .position
                .is_some_and(|p| p.writes == locked.writes && p.head == locked.head);
            if !unchanged {
                let followed = others.is_some_and(|rows| cache.follow(&rows, &locked));
                if !followed {
                    cache.forget();
                }
            }
        }
        Ok(Self {
            tx,
            statements,
            cache,
            head: locked.head,
            writes: locked.writes,
            unlinks: std::cell::Cell::new(locked.unlinks),
            events: Vec::new(),
            bodies: Vec::new(),
            lease_secs: lease.as_secs_f64(),
            queued: Default::default(),
            job: std::cell::Cell::new(JobSavepoint::NoJob),
            savepoint_set: Default::default(),
            broken: Default::default(),
            refused: Default::default(),
            defer,
            careful,
            absent: Default::default(),
            calls: Default::default(),
        })
    }

    /// Queues a link's row, to go with the next statement (see [`Tx::add_link`]).
    fn link_later(
        &self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
        internal_id: &str,
    ) -> Result<(), StoreError> {
        let text = |s: &str| Some(s.to_string());
        self.write_later(Queued::Row(RowWrite {
            table: Table::ExternalIds,
            columns: vec![
                text(channel_id),
                text(kind),
                text(external_id),
                text(internal_id),
            ],
        }))
    }

    /// A platform message linked now is no longer known to be missing ([`Absent`]).
    fn no_longer_absent(&self, channel_id: &str, kind: &str, external_id: &str) {
        if kind == "message" {
            self.absent
                .borrow_mut()
                .links
                .remove(&(channel_id.to_string(), external_id.to_string()));
        }
    }

    /// Looks for every platform message and link the group's jobs will look for, in one round
    /// trip, so that each job's own look ([`Read::has_platform_message`], [`Read::external_id`])
    /// costs none. What is not found stays not found while the head is locked, except by this
    /// transaction's writes, which take it out of [`Absent`] and update the writer's cache.
    fn look_for<'j>(&self, wanted: impl Iterator<Item = &'j LookAhead>) -> Result<(), StoreError> {
        let (mut ids, mut channels, mut externals) = (Vec::new(), Vec::new(), Vec::new());
        let mut keys = Vec::new();
        {
            let cache = self.cache.borrow();
            let mut seen = std::collections::HashSet::new();
            for ahead in wanted {
                for m in &ahead.messages {
                    ids.push(m.id.as_str());
                    channels.push(m.channel_id.as_str());
                    externals.push(m.external.as_str());
                }
                for key in &ahead.links {
                    let kept = cache.links.contains_key(&(
                        key.channel_id.clone(),
                        key.kind.clone(),
                        key.external.clone(),
                    ));
                    if !kept && seen.insert(key) {
                        keys.push(key);
                    }
                }
            }
        }
        if ids.is_empty() && keys.is_empty() {
            return Ok(());
        }
        let key_columns =
            |f: fn(&PlatformKey) -> &str| keys.iter().map(|k| f(k)).collect::<Vec<_>>();
        let (key_channels, key_kinds, key_externals) = (
            key_columns(|k| &k.channel_id),
            key_columns(|k| &k.kind),
            key_columns(|k| &k.external),
        );
        let (messages, links) = (self.prepared(LOOK_FOR)?, self.prepared(LOOK_UP_LINKS)?);
        let client = self.client()?;
        // Both questions go out together; an empty one is not asked (a query is sent only once
        // polled).
        async fn unless_empty(
            empty: bool,
            query: impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>>,
        ) -> Result<Vec<Row>, tokio_postgres::Error> {
            match empty {
                true => Ok(Vec::new()),
                false => query.await,
            }
        }
        let (found, linked) = self.run(futures_util::future::try_join(
            unless_empty(
                ids.is_empty(),
                client.query(&messages, &[&ids, &channels, &externals]),
            ),
            unless_empty(
                keys.is_empty(),
                client.query(&links, &[&key_channels, &key_kinds, &key_externals]),
            ),
        ))?;
        {
            let mut cache = self.cache.borrow_mut();
            cache.make_room();
            for row in &linked {
                let channel_id: String = row.try_get(0)?;
                let kind: String = row.try_get(1)?;
                let external: String = row.try_get(2)?;
                let internal: Option<String> = row.try_get(3)?;
                // A contact that does not read is left for its own job to read (and fail alone).
                let contact = row.try_get::<_, Option<&str>>(4)?;
                if let Some(Ok(contact)) = contact.map(serde_json::from_str::<Contact>) {
                    cache.contacts.insert(contact.id.clone(), Some(contact));
                }
                cache.links.insert((channel_id, kind, external), internal);
            }
        }
        let found: std::collections::HashSet<String> = found
            .iter()
            .map(|row| row.try_get::<_, String>(0))
            .collect::<Result<_, _>>()?;
        let mut absent = self.absent.borrow_mut();
        for ((id, channel), external) in ids.iter().zip(&channels).zip(&externals) {
            if !found.contains(*id) {
                absent.ids.insert(id.to_string());
                absent
                    .links
                    .insert((channel.to_string(), external.to_string()));
            }
        }
        Ok(())
    }

    /// Writes now, or with the next statement (see [`PgTx`]).
    fn write_later(&self, write: Queued) -> Result<(), StoreError> {
        self.queued.borrow_mut().push(write);
        if !self.defer {
            self.send_queued_with(async { Ok(()) })?;
        }
        Ok(())
    }

    /// Before the running job sends anything, its savepoint goes ahead of what it queued (see
    /// [`PgTx`]): from then on, undoing the job needs the database. Returns whether what goes
    /// now is the job's alone: its savepoint went with an earlier send, or goes first in this
    /// one (nothing of earlier jobs is queued, as when every write is sent at once).
    fn save_job(&self) -> bool {
        let start = match self.job.get() {
            JobSavepoint::Set => return true,
            JobSavepoint::NoJob | JobSavepoint::Sending => return false,
            JobSavepoint::NotYet(start) => start,
        };
        let set = match self.savepoint_set.replace(true) {
            true => NEXT_SAVEPOINT,
            false => "SAVEPOINT job",
        };
        let mut queued = self.queued.borrow_mut();
        let start = start.min(queued.len());
        queued.insert(start, Queued::Simple(set));
        self.job.set(JobSavepoint::Sending);
        start == 0
    }

    /// Sends what is queued and then `call`, all at once, and waits for every answer; returns
    /// the call's. A failure breaks the transaction, unless it was the running job's alone (see
    /// [`PgTx::refused_by_database`]).
    fn send_queued_with<T>(
        &self,
        call: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        let own = self.save_job();
        let queued = self.queued.take();
        let sent = self.send_all(&queued, call);
        if let Err(e) = &sent {
            self.refused_by_database(e, own);
        }
        sent
    }

    /// After the database refused what was sent, which leaves the transaction unable to go on.
    /// When all that was sent is the running job's (`own`) and its savepoint reached the
    /// database before it, rolling back to the savepoint fails the job alone and lets the group
    /// go on. Anything else — rows queued by earlier jobs, the look-ahead, the commit, a
    /// statement that could not be prepared before the savepoint went — breaks the group (see
    /// [`PgTx`]).
    fn refused_by_database(&self, e: &StoreError, own: bool) {
        let alone = own
            && self.job.get() == JobSavepoint::Set
            && self.broken.borrow().is_none()
            && wait(self.tx.batch_execute("ROLLBACK TO SAVEPOINT job")).is_ok();
        if alone {
            tracing::warn!(error = %e, "group commit: the database refused a job's write; that job failed alone");
            self.refused
                .borrow_mut()
                .get_or_insert_with(|| e.to_string());
            return;
        }
        self.broken
            .borrow_mut()
            .get_or_insert_with(|| e.to_string());
        self.careful.set(CAREFUL_GROUPS);
    }

    fn send_all<T>(
        &self,
        queued: &[Queued],
        call: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        if let Some(why) = self.broken.borrow().as_deref() {
            return Err(StoreError::Database(why.to_string().into()));
        }
        let steps = steps(queued);
        // Prepared before anything is sent (a statement is prepared once per connection).
        let statements = steps
            .iter()
            .map(|step| match step {
                Step::Simple(_) => Ok(None),
                _ => self.prepared(step.sql()).map(Some),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Nothing else goes before the queue: a savepoint in it reaches the database ahead of
        // whatever fails after it.
        if self.job.get() == JobSavepoint::Sending {
            self.job.set(JobSavepoint::Set);
        }
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = steps
            .iter()
            .map(|step| match step {
                Step::Write { params, .. } => {
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
                }
                Step::Rows { columns, .. } => {
                    columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect()
                }
                Step::Simple(_) => Vec::new(),
            })
            .collect();
        let queue: Vec<Sent<'_, ()>> = steps
            .iter()
            .zip(&statements)
            .zip(&params)
            .map(|((step, statement), params)| {
                let call: Call<'_, ()> = match statement {
                    Some(statement) => Box::pin(futures_util::TryFutureExt::map_ok(
                        self.tx.execute(statement, params),
                        |_| (),
                    )),
                    None => Box::pin(self.tx.batch_execute(step.sql())),
                };
                send_now(call)
            })
            .collect();
        // The queue's requests are out; joined with it, `call` goes right behind them.
        let queue = async {
            for sent in queue {
                answer(sent).await?;
            }
            Ok(())
        };
        Ok(wait(futures_util::future::try_join(queue, call))?.1)
    }

    /// Appends to the log and commits; returns the events and their bodies, to announce.
    fn commit(self, instance: &str) -> Result<(Vec<Event>, Vec<String>), StoreError> {
        let (cache, writes) = (self.cache, self.writes);
        let left = Position {
            writes: writes + 1,
            head: self.head + self.events.len() as u64,
            unlinks: self.unlinks.get(),
        };
        let committed = self.append_to_log(instance).and_then(|()| {
            let PgTx {
                tx, events, bodies, ..
            } = self;
            wait(tx.commit())?;
            Ok((events, bodies))
        });
        let mut kept = cache.borrow_mut();
        match &committed {
            Ok(_) => kept.position = Some(left),
            Err(_) => kept.forget(),
        }
        committed
    }

    /// Undoes the transaction, and with it whatever the writer's cache took from it.
    fn roll_back(self) -> Result<(), StoreError> {
        self.cache.borrow_mut().forget();
        Ok(wait(self.tx.rollback())?)
    }

    /// Writes this transaction's events to the log, moves the head past them, counts the
    /// transaction in `writes` (see [`WriterCache`]) and tells other instances (their NOTIFY goes
    /// out at commit), all in one round trip.
    fn append_to_log(&self, instance: &str) -> Result<(), StoreError> {
        let Some(last) = self.events.last() else {
            let counted = self.prepared(COUNT_WRITE)?;
            self.send_queued_with(self.tx.execute(&counted, &[]))?;
            return Ok(());
        };
        let seqs: Vec<i64> = self.events.iter().map(|e| e.seq as i64).collect();
        let kinds: Vec<&str> = self.events.iter().map(|e| e.data.kind()).collect();
        let notice = format!("{instance}:{}", last.seq);
        let (append, notify) = (self.prepared(APPEND_TO_LOG)?, self.prepared(NOTIFY)?);
        let head = last.seq as i64;
        let append_params: Params<'_> = &[&head, &seqs, &kinds, &self.bodies];
        let notify_params: Params<'_> = &[&LOG_CHANNEL, &notice];
        let appended = self.tx.execute(&append, append_params);
        let notified = self.tx.execute(&notify, notify_params);
        self.send_queued_with(futures_util::future::try_join(appended, notified))?;
        Ok(())
    }
}

const NEXT_SAVEPOINT: &str = "RELEASE SAVEPOINT job; SAVEPOINT job";
/// Links a platform's id to the hub's ([`Tx::link_external`]).
const LINK: &str = "INSERT INTO external_ids (channel_id, kind, external_id, internal_id)
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
/// Which of these platform messages are stored (see [`PgTx::look_for`]).
/// (Two primary-key look-ups per message, in a LATERAL subquery the planner cannot turn into a
/// join: a join, `= ANY`, or `EXISTS … OR EXISTS …` may be planned, once for the cached
/// statement, as a scan of every message while the tables are small, and stay one as they grow.)
const LOOK_FOR: &str =
    "SELECT l.id FROM unnest($1::text[], $2::text[], $3::text[]) AS l (id, channel_id, external),
     LATERAL (SELECT 1 FROM messages m WHERE m.id = l.id
              UNION ALL
              SELECT 1 FROM external_ids x WHERE x.channel_id = l.channel_id
                  AND x.kind = 'message' AND x.external_id = l.external
              LIMIT 1) AS found";
/// What these platform ids are linked to, and the contact when it is one (see
/// [`PgTx::look_for`]); an id linked to nothing comes back with nulls. (Primary-key look-ups in
/// LATERAL subqueries, for the reason given at [`LOOK_FOR`].)
const LOOK_UP_LINKS: &str = "SELECT l.channel_id, l.kind, l.external, x.internal_id, c.data
     FROM unnest($1::text[], $2::text[], $3::text[]) AS l (channel_id, kind, external)
     LEFT JOIN LATERAL (SELECT internal_id FROM external_ids x WHERE x.channel_id = l.channel_id
                        AND x.kind = l.kind AND x.external_id = l.external LIMIT 1) AS x ON true
     LEFT JOIN LATERAL (SELECT data FROM contacts c WHERE c.id = x.internal_id LIMIT 1) AS c
         ON true";
/// A transaction without events still counts (see [`WriterCache`]).
const COUNT_WRITE: &str = "UPDATE log_head SET writes = writes + 1";

/// See [`PgTx::append_to_log`].
const APPEND_TO_LOG: &str = "WITH head AS (UPDATE log_head SET last = $1, writes = writes + 1)
     INSERT INTO events (seq, kind, data) SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[])";
/// Other instances hear of a commit (see [`LOG_CHANNEL`]).
const NOTIFY: &str = "SELECT pg_notify($1, $2)";

/// A pooled read connection; it goes back to the pool when dropped.
struct Reader<'s> {
    conn: Option<Conn>,
    pool: &'s ReaderPool,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

/// The read connections. Each new connection costs the database a process (a fork and its
/// start-up) and its statements' planning again, so connections are kept, and a burst of reads
/// (every stream checking the log at once) waits for one of [`READERS_OPEN`] instead of opening
/// more. A read that has waited [`READER_WAIT`] opens one of its own anyway: a caller holding a
/// connection while it asks for another can never wait forever.
#[derive(Default)]
struct ReaderPool {
    state: Mutex<Readers>,
    freed: std::sync::Condvar,
}

#[derive(Default)]
struct Readers {
    idle: Vec<Conn>,
    /// Open connections, idle or in use.
    open: usize,
}

impl ReaderPool {
    fn take(&self, config: &Database, driver: &Driver) -> Result<Conn, StoreError> {
        let deadline = std::time::Instant::now() + READER_WAIT;
        let mut state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
        loop {
            // Connections the database ended while they waited here are dropped.
            while let Some(conn) = state.idle.pop() {
                if !conn.client.is_closed() {
                    return Ok(conn);
                }
                state.open -= 1;
            }
            let now = std::time::Instant::now();
            if state.open < READERS_OPEN || now >= deadline {
                state.open += 1;
                drop(state);
                return connect(config, driver).map(Conn::new).inspect_err(|_| {
                    if let Ok(mut state) = self.state.lock() {
                        state.open -= 1;
                    }
                });
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .map_err(|_| StoreError::Poisoned)?
                .0;
        }
    }

    fn give_back(&self, conn: Conn) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if conn.client.is_closed() || state.open > READERS_OPEN {
            state.open -= 1;
        } else {
            state.idle.push(conn);
        }
        drop(state);
        self.freed.notify_one();
    }
}

mod sealed {
    use super::{wait, Params, Statements, StoreError, WriterCache};
    use std::future::Future;
    use tokio_postgres::{GenericClient, Row};

    /// Whatever reads run on: a transaction or a pooled connection, each with its connection's
    /// prepared statements. Every query goes through them: a statement is parsed and planned
    /// once per connection, and each later use is one round trip instead of two.
    pub trait HasClient {
        type C: GenericClient + Sync;
        fn client(&self) -> Result<&Self::C, StoreError>;
        fn statements(&self) -> Result<&Statements, StoreError>;

        /// The writer's cache, in a write transaction ([`super::remembered`]).
        fn cache(&self) -> Option<&std::cell::RefCell<WriterCache>> {
            None
        }

        /// Whether this platform message is known not to be stored ([`super::Absent`]).
        fn known_absent(&self, _id: &str, _channel_id: &str, _external: &str) -> bool {
            false
        }

        /// Sends one call and waits for its answer (a write transaction may send what it owes
        /// the database in the same message: [`super::PgTx`]).
        fn run<T>(
            &self,
            call: impl Future<Output = Result<T, tokio_postgres::Error>>,
        ) -> Result<T, StoreError> {
            Ok(wait(call)?)
        }

        fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement, StoreError> {
            let statements = self.statements()?;
            if let Some(found) = statements.borrow().get(sql) {
                return Ok(found.clone());
            }
            let made = self.run(self.client()?.prepare(sql))?;
            statements
                .borrow_mut()
                .insert(sql.to_string(), made.clone());
            Ok(made)
        }

        fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
            let statement = self.prepared(sql)?;
            self.run(self.client()?.query(&statement, params))
        }

        fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
            let statement = self.prepared(sql)?;
            self.run(self.client()?.query_opt(&statement, params))
        }

        fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
            let statement = self.prepared(sql)?;
            self.run(self.client()?.query_one(&statement, params))
        }

        fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
            let statement = self.prepared(sql)?;
            self.run(self.client()?.execute(&statement, params))
        }
    }
}
use sealed::HasClient;

/// A connection's prepared statements, by their SQL.
type Statements = std::cell::RefCell<std::collections::HashMap<String, tokio_postgres::Statement>>;

/// A connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: Statements,
    /// The writer's (read connections leave it empty).
    cache: std::cell::RefCell<WriterCache>,
    /// How many more of the writer's transactions send each write at once ([`CAREFUL_GROUPS`]).
    careful: std::cell::Cell<u32>,
}

impl Conn {
    fn new(client: Client) -> Self {
        Self {
            client,
            statements: Statements::default(),
            cache: Default::default(),
            careful: Default::default(),
        }
    }
}

/// What the writer read and wrote of the rows a customer's message touches (its contact,
/// conversation, open handoff, and channel links), kept from one of its transactions to the next
/// while no other writer has committed in between.
///
/// That holds because every write transaction, on every instance, first locks the log's head row
/// ([`lock_head_first`]) and bumps its `writes` count at commit: while this writer holds the lock
/// nobody else writes, so what it read can change only by its own writes, which update what is kept
/// here. A `writes` count at the next lock that is not the one this writer left means another
/// writer committed: its contacts, conversations and handoffs changed only through events, which
/// the lock's round trip brings along ([`WriterCache::follow`]); links are only ever added, except
/// by an unlink, which `log_head.unlinks` counts. So two hubs taking turns on the lock keep what
/// they know instead of reading every customer's rows again each turn. Everything is forgotten
/// whenever a job or transaction is rolled back, or the other writers' events cannot all be read.
#[derive(Default)]
struct WriterCache {
    /// Where this writer's last commit left the log.
    position: Option<Position>,
    contacts: std::collections::HashMap<String, Option<Contact>>,
    conversations: std::collections::HashMap<String, Option<Conversation>>,
    /// By conversation.
    open_handoffs: std::collections::HashMap<String, Option<Handoff>>,
    /// (channel, kind, external id) → the hub's id.
    links: std::collections::HashMap<(String, String, String), Option<String>>,
}

/// How many rows the writer keeps at most; past it, it starts over.
const WRITER_CACHE_ROWS: usize = 50_000;

impl WriterCache {
    fn forget(&mut self) {
        *self = Self::default();
    }

    fn make_room(&mut self) {
        let rows = self.contacts.len()
            + self.conversations.len()
            + self.open_handoffs.len()
            + self.links.len();
        if rows >= WRITER_CACHE_ROWS {
            let position = self.position;
            self.forget();
            self.position = position;
        }
    }

    /// Brings what is kept up to date with what other writers committed since this one's last
    /// commit: `rows` are the events after it (seq, kind, and the data of the kinds kept). False
    /// when they are not all there (the log was trimmed, or too much happened) or cannot be read.
    fn follow(&mut self, rows: &[Row], now: &Locked) -> bool {
        let Some(was) = self.position else {
            return false;
        };
        if now.head < was.head || rows.len() as u64 != now.head - was.head {
            return false;
        }
        for row in rows {
            let (Ok(kind), Ok(data)) =
                (row.try_get::<_, &str>(1), row.try_get::<_, Option<&str>>(2))
            else {
                return false;
            };
            let Some(data) = data else { continue };
            let followed = match kind {
                "contact" => serde_json::from_str::<Contact>(data).map(|c| {
                    self.contacts.insert(c.id.clone(), Some(c));
                }),
                "conversation" => serde_json::from_str::<Conversation>(data).map(|c| {
                    self.conversations.insert(c.id.clone(), Some(c));
                }),
                "handoff" => {
                    serde_json::from_str::<Handoff>(data).map(|h| self.handoff_written(&h))
                }
                _ => Ok(()),
            };
            if followed.is_err() {
                return false;
            }
        }
        if was.unlinks == now.unlinks {
            // A link found missing may have been made since.
            self.links.retain(|_, linked| linked.is_some());
        } else {
            self.links.clear();
        }
        self.position = Some(Position {
            writes: now.writes,
            head: now.head,
            unlinks: now.unlinks,
        });
        self.make_room();
        true
    }

    /// A handoff this transaction wrote: the conversation's open handoff is it, or (closed, or
    /// not the one kept) is read again.
    fn handoff_written(&mut self, h: &Handoff) {
        let open = matches!(h.status, HandoffStatus::Pending | HandoffStatus::Assigned);
        match self.open_handoffs.get(&h.conversation_id) {
            Some(Some(kept)) if kept.id != h.id => {
                self.open_handoffs.remove(&h.conversation_id);
            }
            _ if open => {
                self.open_handoffs
                    .insert(h.conversation_id.clone(), Some(h.clone()));
            }
            Some(Some(_)) => {
                self.open_handoffs.remove(&h.conversation_id);
            }
            _ => {}
        }
    }
}

/// `read`, or what the writer's cache kept of it (see [`WriterCache`]); read connections always
/// read.
fn remembered<K: std::hash::Hash + Eq, V: Clone>(
    on: &impl HasClient,
    map: impl Fn(&mut WriterCache) -> &mut std::collections::HashMap<K, V>,
    key: K,
    read: impl FnOnce() -> Result<V, StoreError>,
) -> Result<V, StoreError> {
    let Some(cache) = on.cache() else {
        return read();
    };
    if let Some(kept) = map(&mut cache.borrow_mut()).get(&key) {
        return Ok(kept.clone());
    }
    let value = read()?;
    let mut cache = cache.borrow_mut();
    cache.make_room();
    map(&mut cache).insert(key, value.clone());
    Ok(value)
}

impl<'c> HasClient for PgTx<'c> {
    type C = Transaction<'c>;
    fn client(&self) -> Result<&Transaction<'c>, StoreError> {
        Ok(&self.tx)
    }
    fn statements(&self) -> Result<&Statements, StoreError> {
        Ok(self.statements)
    }

    fn cache(&self) -> Option<&std::cell::RefCell<WriterCache>> {
        Some(self.cache)
    }

    fn known_absent(&self, id: &str, channel_id: &str, external: &str) -> bool {
        let absent = self.absent.borrow();
        absent.ids.contains(id)
            && absent
                .links
                .contains(&(channel_id.to_string(), external.to_string()))
    }

    fn run<T>(
        &self,
        call: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        self.send_queued_with(call)
    }
}

impl HasClient for Reader<'_> {
    type C = Client;
    fn client(&self) -> Result<&Client, StoreError> {
        self.conn
            .as_ref()
            .map(|c| &c.client)
            .ok_or(StoreError::Poisoned)
    }
    fn statements(&self) -> Result<&Statements, StoreError> {
        self.conn
            .as_ref()
            .map(|c| &c.statements)
            .ok_or(StoreError::Poisoned)
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, or the
    /// key=value form) and brings its schema up to date, with the default delivery lease.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_lease(url, DEFAULT_LEASE)
    }

    /// [`Self::open`], leasing each claimed delivery to this instance for `lease`: longer than
    /// any call to a bot platform takes (the hub passes three delivery timeouts and 5 s). Past
    /// it, an instance that died mid-call is taken over.
    pub fn open_with_lease(url: &str, lease: std::time::Duration) -> Result<Self, StoreError> {
        let mut config = Database::parse(url).map_err(|e| StoreError::Database(Box::new(e)))?;
        // A database that does not answer is noticed: connecting gives up, an idle connection
        // (the leader's, the listener's) is probed, so a dead peer ends it within about 25 s, and
        // so does a request the peer never acknowledges (without these, the system's defaults
        // leave a leader cut off from the database leading, and another leading too, for minutes).
        let settings = &mut config.config;
        if settings.get_connect_timeout().is_none() {
            settings.connect_timeout(std::time::Duration::from_secs(10));
        }
        if settings.get_tcp_user_timeout().is_none() {
            settings.tcp_user_timeout(std::time::Duration::from_secs(15));
        }
        settings.keepalives(true);
        settings.keepalives_idle(std::time::Duration::from_secs(10));
        settings.keepalives_interval(std::time::Duration::from_secs(5));
        settings.keepalives_retries(3);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("baton-hub-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        let driver = Arc::new(Driver(Some(runtime)));
        let mut writer = connect(&config, &driver)?;
        migrate(&mut writer)?;
        let last = head(&writer)?;
        let announce = Announce::new(last);
        let writer = Arc::new(Mutex::new(Conn::new(writer)));
        // Which instance a commit's notice comes from, so an instance does not re-read its own.
        let instance = format!("{:016x}", rand::random::<u64>());
        let instance_name = instance.clone();
        let (wakes, woken) = Wakes::new();
        listen(&config, &driver, instance.clone(), wakes.clone())?;
        forward_own_commits(&driver, announce.subscribe(), wakes)?;
        let (frames, _) = broadcast::channel(super::BROADCAST_CAPACITY);
        let relay_with = (
            config.clone(),
            driver.clone(),
            connect(&config, &driver)?,
            frames.clone(),
            announce.clone(),
        );
        std::thread::Builder::new()
            .name("baton-hub-relay".into())
            .spawn(move || {
                let (config, driver, client, frames, announce) = relay_with;
                relay(&config, &driver, client, last, &woken, &frames, &announce)
            })
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        let (jobs, queue) = std::sync::mpsc::channel();
        let (w, a) = (writer.clone(), announce.clone());
        let (reconfig, redriver) = (config.clone(), driver.clone());
        std::thread::Builder::new()
            .name("baton-hub-writer".into())
            .spawn(move || {
                super::group_commits(&w, &queue, MAX_GROUP, |conn, jobs| {
                    if let Err(e) = reconnect_if_lost(conn, &reconfig, &redriver) {
                        for job in jobs.drain(..) {
                            job.fail(e.to_string());
                        }
                        return;
                    }
                    commit_group(conn, &a, jobs, &instance, lease)
                })
            })
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        let leading = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (leadership, ended) = std::sync::mpsc::channel::<()>();
        let lead = (config.clone(), driver.clone(), leading.clone());
        std::thread::Builder::new()
            .name("baton-hub-leader".into())
            .spawn(move || lead_when_possible(&lead.0, &lead.1, &lead.2, &ended))
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        Ok(Self {
            config,
            driver,
            announce,
            writer,
            readers: ReaderPool::default(),
            jobs,
            frames,
            instance: instance_name,
            leading,
            _leadership: leadership,
            lease,
        })
    }

    /// Runs `f` on the writer connection (moving a team in: `store::moving`).
    pub(super) fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        f(&mut conn.client)
    }

    fn reader_conn(&self) -> Result<Reader<'_>, StoreError> {
        Ok(Reader {
            conn: Some(self.readers.take(&self.config, &self.driver)?),
            pool: &self.readers,
        })
    }
}

/// A new connection, driven by the store's runtime.
fn connect(config: &Database, driver: &Driver) -> Result<Client, StoreError> {
    let config = config.clone();
    let connecting = driver.runtime()?.spawn(async move {
        let (client, connection) = config.connect().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "store: a PostgreSQL connection ended");
            }
        });
        Ok::<_, tokio_postgres::Error>(client)
    });
    wait(connecting)
        .map_err(|e| StoreError::Database(Box::new(e)))?
        .map_err(StoreError::from)
}

/// LISTENs for other instances' commits and sends each one's newest seq to `woken` (its own
/// instance's are left out), on a connection of its own that is opened again whenever the database
/// ends it; after such a gap it sends `u64::MAX`, and the relay reads whatever the log gained.
/// Returns once the first LISTEN holds.
fn listen(
    config: &Database,
    driver: &Driver,
    instance: String,
    woken: Wakes,
) -> Result<(), StoreError> {
    let config = config.clone();
    let (first, listening) = tokio::sync::oneshot::channel::<Result<(), String>>();
    driver.runtime()?.spawn(async move {
        let mut first = Some(first);
        loop {
            match listen_once(&config, &instance, &woken, &mut first).await {
                Ok(Listening::StoreGone) => return,
                Ok(Listening::Lost) => {
                    tracing::warn!("store: the LISTEN connection was lost; opening it again")
                }
                Err(e) => match first.take() {
                    Some(first) => {
                        let _ = first.send(Err(e.to_string()));
                        return;
                    }
                    None => tracing::warn!(error = %e, "store: cannot LISTEN for other instances' commits; trying again"),
                },
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    match wait(listening) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StoreError::Database(e.into())),
        Err(_) => Err(StoreError::Poisoned),
    }
}

/// How one LISTEN connection ended.
enum Listening {
    StoreGone,
    Lost,
}

async fn listen_once(
    config: &Database,
    instance: &str,
    woken: &Wakes,
    first: &mut Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
) -> Result<Listening, tokio_postgres::Error> {
    let (client, mut connection) = config.connect().await?;
    let (notices, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) =
            futures_util::future::poll_fn(|cx| connection.poll_message(cx)).await
        {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                if notices.send(n).is_err() {
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {LOG_CHANNEL}"))
        .await?;
    match first.take() {
        Some(first) => {
            let _ = first.send(Ok(()));
        }
        // Listening again after a gap: what others committed meanwhile is read now.
        None => {
            if !woken.send(Wake::Other(u64::MAX)) {
                return Ok(Listening::StoreGone);
            }
        }
    }
    // Ends when the connection does (its poller drops the sender).
    while let Some(notice) = received.recv().await {
        let Some((from, seq)) = notice.payload().split_once(':') else {
            continue;
        };
        if from == instance {
            continue;
        }
        if let Ok(seq) = seq.parse() {
            if !woken.send(Wake::Other(seq)) {
                return Ok(Listening::StoreGone);
            }
        }
    }
    drop(client);
    Ok(Listening::Lost)
}

/// Holds the leader lock whenever no other instance does: tries every second, and once held,
/// checks every second that its connection (which holds the lock) is still alive.
fn lead_when_possible(
    config: &Database,
    driver: &Driver,
    leading: &std::sync::atomic::AtomicBool,
    ended: &std::sync::mpsc::Receiver<()>,
) {
    use std::sync::atomic::Ordering;
    let mut client: Option<Client> = None;
    loop {
        let was = leading.load(Ordering::SeqCst);
        let mut held = was;
        if client.as_ref().is_none_or(Client::is_closed) {
            // A new connection holds nothing yet; it tries at once (a hub just started leads
            // within milliseconds when no other does, not a second later).
            held = false;
            client = connect(config, driver)
                .inspect_err(
                    |e| tracing::warn!(error = %e, "store: cannot connect to try for leadership"),
                )
                .ok();
        }
        let still = client.as_ref().is_some_and(|c| {
            let asked = if held {
                wait(c.query_one("SELECT true", &[]))
            } else {
                wait(c.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]))
            };
            asked.map(|row| row.get::<_, bool>(0)).unwrap_or(false)
        });
        if still != was {
            if still {
                tracing::info!("store: this instance now runs the team's sweeps (leader)");
            } else {
                tracing::warn!("store: this instance no longer runs the team's sweeps");
                client = None;
            }
            leading.store(still, Ordering::SeqCst);
        }
        match ended.recv_timeout(LEADER_EVERY) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// How the listener and the writer wake the relay: a bounded queue, and when it is full a mark
/// that the relay must read the log (so a relay held up by a slow read never piles up frames).
#[derive(Clone)]
struct Wakes {
    queue: std::sync::mpsc::SyncSender<Wake>,
    behind: Arc<std::sync::atomic::AtomicBool>,
}

/// How many wakes wait for the relay at most.
const WAKES_WAITING: usize = 1024;

impl Wakes {
    fn new() -> (Self, Woken) {
        let (queue, received) = std::sync::mpsc::sync_channel(WAKES_WAITING);
        let behind: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let woken = Woken {
            received,
            behind: behind.clone(),
        };
        (Self { queue, behind }, woken)
    }

    /// `false` once the relay is gone.
    fn send(&self, wake: Wake) -> bool {
        match self.queue.try_send(wake) {
            Ok(()) => true,
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                self.behind.store(true, std::sync::atomic::Ordering::SeqCst);
                true
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The relay's end of [`Wakes`].
struct Woken {
    received: std::sync::mpsc::Receiver<Wake>,
    behind: Arc<std::sync::atomic::AtomicBool>,
}

impl Woken {
    /// The next wake, waiting at most `patience` (`None`: until one comes); a full queue that
    /// dropped some reads as "whatever the log gained". `Err` once every sender is gone.
    fn next(&self, patience: Option<std::time::Duration>) -> Result<Option<Wake>, ()> {
        use std::sync::mpsc::RecvTimeoutError;
        let wake = match patience {
            Some(patience) => match self.received.recv_timeout(patience) {
                Ok(wake) => Some(wake),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Err(()),
            },
            None => Some(self.received.recv().map_err(|_| ())?),
        };
        if self.behind.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Ok(Some(Wake::Other(u64::MAX)));
        }
        Ok(wake)
    }
}

/// Hands this instance's commits to the relay, as the writer announces them.
fn forward_own_commits(
    driver: &Driver,
    mut own: broadcast::Receiver<Live>,
    woken: Wakes,
) -> Result<(), StoreError> {
    use broadcast::error::RecvError;
    driver.runtime()?.spawn(async move {
        loop {
            let wake = match own.recv().await {
                Ok(live) => Wake::Own(live),
                // The relay reads what it missed from the log.
                Err(RecvError::Lagged(_)) => Wake::Other(u64::MAX),
                Err(RecvError::Closed) => return,
            };
            if !woken.send(wake) {
                return;
            }
        }
    });
    Ok(())
}

/// How soon the relay reads the log again after it could not.
const RELAY_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Puts every instance's commits in one order for this instance's streams: frames go out in
/// seq order and without gaps.
///
/// This instance's own commit goes out as the writer made it when it follows the last frame
/// sent; otherwise another instance committed in between, and the relay reads the log up to it
/// (the log holds everything below a commit: seqs are handed out in commit order). Other
/// instances' commits are read from the log when they say so. Without this, a stream handed an
/// own commit ahead of another instance's would find a gap and read the log itself: every
/// stream, every time the instances took turns. A read that fails is tried again a second later.
fn relay(
    config: &Database,
    driver: &Driver,
    mut client: Client,
    mut sent: u64,
    woken: &Woken,
    frames: &broadcast::Sender<Live>,
    announce: &Announce,
) {
    // What the log is known to hold up to, read or not.
    let mut owed = sent;
    loop {
        // A read still owed is tried again after a while, wake or not.
        let Ok(wake) = woken.next((owed > sent).then_some(RELAY_RETRY)) else {
            return;
        };
        match wake {
            Some(Wake::Own(live)) if live.last <= sent => {}
            Some(Wake::Own(live)) if live.first == sent + 1 && owed <= sent => {
                sent = live.last;
                owed = sent;
                let _ = frames.send(live);
            }
            Some(Wake::Own(live)) => owed = owed.max(live.last),
            Some(Wake::Other(seq)) => owed = owed.max(seq),
            None => {}
        }
        while sent < owed {
            let page = match page_after(&client, sent, RELAY_PAGE, super::MAX_FRAME_BYTES) {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "store: cannot read the log for streams; trying again in a second");
                    // The database ended the connection: read again on a new one.
                    if client.is_closed() {
                        if let Ok(fresh) = connect(config, driver) {
                            client = fresh;
                            continue;
                        }
                    }
                    break;
                }
            };
            let (Some(first), Some(last)) = (page.first, page.last) else {
                // The log holds no more: what was owed (`u64::MAX`: whatever it gained) is sent.
                owed = sent;
                break;
            };
            // The team's sweeps (routing) see other instances' commits as they see their own.
            announce.noticed(last);
            sent = last;
            let _ = frames.send(Live {
                first,
                last,
                json: page.json.into(),
                from_log: true,
            });
        }
    }
}

/// Up to `limit` events after `after` (and about `max_bytes`), as stored JSON.
fn page_after(
    client: &impl GenericClient,
    after: u64,
    limit: u32,
    max_bytes: usize,
) -> Result<RawEvents, StoreError> {
    let rows = wait(client.query(
        "SELECT seq, kind, data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[&(after as i64), &i64::from(limit)],
    ))?;
    let mut page = RawEvents::page(limit, max_bytes);
    for row in &rows {
        if !page.push(row.get::<_, i64>(0) as u64, row.get(1), row.get(2)) {
            break;
        }
    }
    Ok(page.finish())
}

/// A new writer connection when the database closed the last one (it restarted, or an
/// administrator ended the session): writes go on without restarting the hub.
fn reconnect_if_lost(
    conn: &mut Conn,
    config: &Database,
    driver: &Driver,
) -> Result<(), StoreError> {
    if conn.client.is_closed() {
        tracing::warn!("store: the writer's PostgreSQL connection was lost; connecting again");
        *conn = Conn::new(connect(config, driver)?);
    }
    Ok(())
}

/// Takes the log head's row lock at the start of a write transaction, before any other row: every
/// writer on every instance takes its locks in that order, so two hubs writing the same
/// conversation never deadlock (one would lock the conversation, the other the head, each then
/// waiting for the other). Writers serialise on the head anyway, to hand out seqs in order.
///
/// With `since` (the head this writer's last commit left), the events after it go in the same
/// round trip: what another writer committed meanwhile, for the writer's cache to follow.
fn lock_head_first(
    tx: &Transaction<'_>,
    statements: &Statements,
    since: Option<u64>,
) -> Result<(Locked, Option<Vec<Row>>), StoreError> {
    let prepared = |sql: &str| -> Result<tokio_postgres::Statement, StoreError> {
        if let Some(found) = statements.borrow().get(sql) {
            return Ok(found.clone());
        }
        let made = wait(tx.prepare(sql))?;
        statements
            .borrow_mut()
            .insert(sql.to_string(), made.clone());
        Ok(made)
    };
    let lock = prepared(LOCK_HEAD)?;
    let locking = tx.query_one(&lock, &[]);
    let (row, others) = match since {
        None => (wait(locking)?, None),
        Some(after) => {
            let (after, most) = (after as i64, OTHERS_EVENTS_MOST);
            let others = prepared(OTHERS_EVENTS)?;
            let params: Params<'_> = &[&after, &most];
            let reading = tx.query(&others, params);
            let (row, rows) = wait(futures_util::future::try_join(locking, reading))?;
            (row, Some(rows))
        }
    };
    let locked = Locked {
        head: row.try_get::<_, i64>(0)? as u64,
        writes: row.try_get(1)?,
        unlinks: row.try_get(2)?,
    };
    Ok((locked, others))
}

const LOCK_HEAD: &str = "SELECT last, writes, unlinks FROM log_head FOR UPDATE";
/// The events after $1 (sent behind [`LOCK_HEAD`], so read once the lock is held), with the data
/// of the kinds the writer keeps ([`WriterCache::follow`]).
const OTHERS_EVENTS: &str = "SELECT seq, kind,
         CASE WHEN kind IN ('contact', 'conversation', 'handoff') THEN data END
     FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";
/// Past this many events from other writers, the writer's cache starts over instead.
const OTHERS_EVENTS_MOST: i64 = 4096;

/// The log head's row, as a write transaction locked it.
struct Locked {
    head: u64,
    /// How many write transactions have committed (see [`WriterCache`]).
    writes: i64,
    /// How many links have been removed.
    unlinks: i64,
}

/// Where a writer's last commit left the log (see [`WriterCache`]).
#[derive(Clone, Copy)]
struct Position {
    writes: i64,
    head: u64,
    unlinks: i64,
}

/// The newest seq handed out and committed.
fn head(client: &impl GenericClient) -> Result<u64, StoreError> {
    let row = wait(client.query_one("SELECT last FROM log_head", &[]))?;
    Ok(row.get::<_, i64>(0) as u64)
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = wait(client.transaction())?;
    // Instances starting together migrate one at a time; the others then find nothing to do.
    wait(tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]))?;
    wait(tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS baton_schema (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    ))?;
    let current: i32 =
        wait(tx.query_one("SELECT COALESCE(MAX(version), 0) FROM baton_schema", &[]))?.get(0);
    let known = MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0);
    if current > known {
        return Err(StoreError::TooNew {
            found: current as u32,
            known: known as u32,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        wait(tx.batch_execute(sql))?;
        wait(tx.execute("INSERT INTO baton_schema (version) VALUES ($1)", &[version]))?;
        tracing::info!(version, "applied hub schema migration (PostgreSQL)");
    }
    wait(tx.commit())?;
    Ok(())
}

fn read_floor(client: &impl GenericClient) -> Result<u64, StoreError> {
    let floor: Option<String> =
        wait(client.query_opt("SELECT value FROM settings WHERE key = 'log_floor'", &[]))?
            .map(|r| r.get(0));
    Ok(floor.and_then(|f| f.parse().ok()).unwrap_or(0))
}

impl Store for PostgresStore {
    fn reader(&self) -> Result<Box<dyn Read + '_>, StoreError> {
        Ok(Box::new(self.reader_conn()?))
    }

    fn write_with(&self, f: &mut dyn FnMut(&mut dyn Tx) -> bool) -> Result<(), StoreError> {
        let mut conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        reconnect_if_lost(&mut conn, &self.config, &self.driver)?;
        let mut txn = PgTx::begin(&mut conn, self.lease)?;
        if !f(&mut txn) {
            return txn.roll_back();
        }
        let (events, bodies) = txn.commit(&self.instance)?;
        self.announce.committed(&events, &bodies);
        Ok(())
    }

    fn submit(&self, job: Box<dyn GroupJob>) -> Result<(), StoreError> {
        self.jobs.send(job).map_err(|_| StoreError::Poisoned)
    }

    fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.frames.subscribe()
    }

    fn shared(&self) -> bool {
        true
    }

    fn leading(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn record_activity(&self, seen: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let (agents, times): (Vec<&str>, Vec<DateTime<Utc>>) =
            seen.iter().map(|(a, t)| (a.as_str(), *t)).unzip();
        let reader = self.reader_conn()?;
        wait(reader.client()?.execute(
            "INSERT INTO agent_activity (agent_id, seen_at)
             SELECT a, t FROM unnest($1::text[], $2::timestamptz[]) AS s(a, t)
             WHERE EXISTS (SELECT 1 FROM agents WHERE id = a)
             ON CONFLICT (agent_id) DO UPDATE
                 SET seen_at = GREATEST(agent_activity.seen_at, excluded.seen_at)",
            &[&agents, &times],
        ))?;
        Ok(())
    }

    fn keeps_files(&self) -> bool {
        true
    }

    fn put_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let reader = self.reader_conn()?;
        wait(reader.client()?.execute(
            "INSERT INTO files (name, bytes) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &bytes],
        ))?;
        Ok(())
    }

    fn file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let reader = self.reader_conn()?;
        Ok(wait(
            reader
                .client()?
                .query_opt("SELECT bytes FROM files WHERE name = $1", &[&name]),
        )?
        .map(|row| row.try_get::<_, Vec<u8>>(0))
        .transpose()?)
    }

    fn login_failures(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, u32, DateTime<Utc>)>, StoreError> {
        let reader = self.reader_conn()?;
        Ok(reader
            .query(
                "SELECT key, count, last_failed FROM login_failures WHERE key = ANY($1)",
                &[&keys],
            )?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    u32::try_from(r.get::<_, i32>(1)).unwrap_or(0),
                    r.get(2),
                )
            })
            .collect())
    }

    fn record_login_failure(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        forget: chrono::TimeDelta,
    ) -> Result<(), StoreError> {
        let reader = self.reader_conn()?;
        let forgotten = now - forget;
        reader.execute(
            "INSERT INTO login_failures (key, count, last_failed)
             SELECT k, 1, $2 FROM unnest($1::text[]) AS k
             ON CONFLICT (key) DO UPDATE SET
                 count = CASE WHEN login_failures.last_failed < $3 THEN 1
                              ELSE login_failures.count + 1 END,
                 last_failed = GREATEST(login_failures.last_failed, excluded.last_failed)",
            &[&keys, &now, &forgotten],
        )?;
        // Made-up emails must not grow the table without end.
        reader.execute(
            "DELETE FROM login_failures WHERE last_failed < $1",
            &[&forgotten],
        )?;
        Ok(())
    }

    fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        self.reader_conn()?
            .execute("DELETE FROM login_failures WHERE key = $1", &[&key])?;
        Ok(())
    }

    fn activity(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let reader = self.reader_conn()?;
        Ok(wait(
            reader
                .client()?
                .query("SELECT agent_id, seen_at FROM agent_activity", &[]),
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
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
        page_after(self.reader_conn()?.client()?, after, limit, max_bytes)
    }

    fn log_floor(&self) -> Result<u64, StoreError> {
        read_floor(self.reader_conn()?.client()?)
    }

    fn trim_log(&self, keep: u64) -> Result<u64, StoreError> {
        let mut conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = wait(conn.client.transaction())?;
        // Holding the head's row: no seq is handed out while the floor moves.
        let last: i64 = wait(tx.query_one("SELECT last FROM log_head FOR UPDATE", &[]))?.get(0);
        let floor = (last as u64).saturating_sub(keep).max(read_floor(&tx)?);
        wait(tx.execute("DELETE FROM events WHERE seq <= $1", &[&(floor as i64)]))?;
        wait(tx.execute(
            "INSERT INTO settings (key, value) VALUES ('log_floor', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&floor.to_string()],
        ))?;
        wait(tx.commit())?;
        Ok(floor)
    }

    fn snapshot_page(&self, from: Option<&str>, max_bytes: usize) -> Result<String, StoreError> {
        let (table, after) = match from {
            None => (0, 0),
            Some(cursor) => parse_snapshot_cursor(cursor).ok_or(StoreError::BadCursor)?,
        };
        let mut reader = self.reader_conn()?;
        let client = &mut reader.conn.as_mut().ok_or(StoreError::Poisoned)?.client;
        // One consistent view of every table and the log's end.
        let tx = wait(
            client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start(),
        )?;
        let seq = head(&tx)?.max(read_floor(&tx)?);
        let mut json = format!("{{\"seq\":{seq}");
        let mut next = None;
        let mut rows_in_page = 0usize;
        for (i, name) in SNAPSHOT_TABLES.iter().enumerate() {
            json.push_str(&format!(",\"{name}\":["));
            if i >= table && next.is_none() {
                let mut last_row = if i == table { after } else { 0 };
                let mut first = true;
                let sql =
                    format!("SELECT rid, data FROM {name} WHERE rid > $1 ORDER BY rid LIMIT 500");
                'table: loop {
                    let rows = wait(tx.query(&sql, &[&last_row]))?;
                    if rows.is_empty() {
                        break;
                    }
                    for row in &rows {
                        let rid: i64 = row.get(0);
                        let data: &str = row.get(1);
                        if rows_in_page > 0 && json.len() + data.len() > max_bytes {
                            next = Some(format!("{i}:{last_row}"));
                            break 'table;
                        }
                        if !first {
                            json.push(',');
                        }
                        json.push_str(data);
                        first = false;
                        last_row = rid;
                        rows_in_page += 1;
                    }
                }
            }
            json.push(']');
        }
        let tags: Option<String> =
            wait(tx.query_opt("SELECT value FROM settings WHERE key = 'tags'", &[]))?
                .map(|r| r.get(0));
        json.push_str(",\"tags\":");
        json.push_str(tags.as_deref().unwrap_or("{\"tags\":[]}"));
        json.push_str(",\"next\":");
        match next {
            Some(n) => json.push_str(&format!("\"{n}\"")),
            None => json.push_str("null"),
        }
        json.push('}');
        wait(tx.commit())?;
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
        let client = reader.client()?;
        let before = before.unwrap_or(i64::MAX);
        let limit64 = i64::from(limit);
        let (rows, total): (Vec<tokio_postgres::Row>, i64) = match conversation {
            Some(id) => (
                wait(client.query(
                    "SELECT rid, data FROM messages WHERE conversation_id = $1 AND rid < $2
                     ORDER BY rid DESC LIMIT $3",
                    &[&id, &before, &limit64],
                ))?,
                wait(client.query_one(
                    "SELECT COUNT(*) FROM messages WHERE conversation_id = $1",
                    &[&id],
                ))?
                .get(0),
            ),
            None => (
                wait(client.query(
                    "SELECT rid, data FROM messages WHERE rid < $1 ORDER BY rid DESC LIMIT $2",
                    &[&before, &limit64],
                ))?,
                wait(client.query_one("SELECT COUNT(*) FROM messages", &[]))?.get(0),
            ),
        };
        let mut json = String::from("{\"messages\":[");
        let (mut count, mut last, mut cut) = (0u32, None, false);
        for row in &rows {
            let rid: i64 = row.get(0);
            let data: &str = row.get(1);
            if count > 0 && json.len() + data.len() > max_bytes {
                cut = true;
                break;
            }
            if count > 0 {
                json.push(',');
            }
            json.push_str(data);
            count += 1;
            last = Some(rid);
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
        let client = reader.client()?;
        Ok(head(client)?.max(read_floor(client)?))
    }
}

/// The one row of a query selecting one entity's JSON, decoded.
fn one_json<T: DeserializeOwned>(
    client: &impl HasClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<T>, StoreError> {
    match client.query_opt(sql, params)? {
        Some(row) => Ok(Some(serde_json::from_str(row.get::<_, &str>(0))?)),
        None => Ok(None),
    }
}

/// Every row of a query selecting one entity's JSON, decoded.
fn all_json<T: DeserializeOwned>(
    client: &impl HasClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<T>, StoreError> {
    let rows = client.query(sql, params)?;
    rows.iter()
        .map(|row| Ok(serde_json::from_str(row.get::<_, &str>(0))?))
        .collect()
}

/// The first column of every row, as text.
fn texts(
    client: &impl HasClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<String>, StoreError> {
    Ok(client
        .query(sql, params)?
        .iter()
        .filter_map(|row| row.get::<_, Option<String>>(0))
        .collect())
}

/// The first column of the row, as text, if there is one.
fn text(
    client: &impl HasClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<String>, StoreError> {
    Ok(client.query_opt(sql, params)?.and_then(|row| row.get(0)))
}

fn channel_row(row: &tokio_postgres::Row) -> Result<ChannelRow, StoreError> {
    Ok(ChannelRow {
        id: row.get(0),
        kind: row.get(1),
        name: row.get(2),
        webhook_url: row.get(3),
        settings: serde_json::from_str(row.get::<_, &str>(4))?,
    })
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The reads, on a transaction or a pooled connection (a macro rather than a blanket impl: the
/// SQLite store has one over its own connections).
macro_rules! impl_read {
    ($lt:lifetime, $ty:ty) => {
        impl<$lt> Read for $ty {
    fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        one_json(self, "SELECT data FROM agents WHERE id = $1", &[&id])
    }

    fn agent_by_email(&self, email: &str) -> Result<Option<Agent>, StoreError> {
        one_json(
            self,
            "SELECT data FROM agents WHERE lower(email) = lower($1)",
            &[&email],
        )
    }

    fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        all_json(
            self,
            "SELECT data FROM agents ORDER BY (data::jsonb->>'name') COLLATE \"C\", rid",
            &[],
        )
    }

    fn credentials(&self, email: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self.query_opt(
            "SELECT id, password_hash FROM agents WHERE lower(email) = lower($1) AND NOT disabled",
            &[&email],
        )?
        .map(|r| (r.get(0), r.get(1))))
    }

    fn contact(&self, id: &str) -> Result<Option<Contact>, StoreError> {
        remembered(self, |c| &mut c.contacts, id.to_string(), || {
            one_json(self, "SELECT data FROM contacts WHERE id = $1", &[&id])
        })
    }

    fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        remembered(self, |c| &mut c.conversations, id.to_string(), || {
            one_json(
                self,
                "SELECT data FROM conversations WHERE id = $1",
                &[&id],
            )
        })
    }

    fn handoff(&self, id: &str) -> Result<Option<Handoff>, StoreError> {
        one_json(self, "SELECT data FROM handoffs WHERE id = $1", &[&id])
    }

    fn message(&self, id: &str) -> Result<Option<Message>, StoreError> {
        one_json(self, "SELECT data FROM messages WHERE id = $1", &[&id])
    }

    fn has_message(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .query_opt("SELECT 1 FROM messages WHERE id = $1", &[&id])?
            .is_some())
    }

    fn file_size(&self, name: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .query_opt(
                "SELECT octet_length(bytes)::bigint FROM files WHERE name = $1",
                &[&name],
            )?
            .map(|row| row.try_get::<_, i64>(0))
            .transpose()?
            .map(|n| n.max(0) as u64))
    }

    fn has_platform_message(
        &self,
        id: &str,
        channel_id: &str,
        external: &str,
    ) -> Result<bool, StoreError> {
        if self.known_absent(id, channel_id, external) {
            return Ok(false);
        }
        // One round trip instead of two for every WhatsApp message.
        Ok(self
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1)
                     OR EXISTS (SELECT 1 FROM external_ids
                                WHERE channel_id = $2 AND kind = 'message' AND external_id = $3)",
                &[&id, &channel_id, &external],
            )?
            .try_get(0)?)
    }

    fn latest_agent_media(&self, conversation_id: &str) -> Result<Option<Message>, StoreError> {
        one_json(
            self,
            "SELECT data FROM messages WHERE conversation_id = $1
             AND data::jsonb->>'author' = 'agent' AND data::jsonb->>'type' <> 'text'
             ORDER BY rid DESC LIMIT 1",
            &[&conversation_id],
        )
    }

    fn handoffs_since(&self, since: DateTime<Utc>) -> Result<Vec<Handoff>, StoreError> {
        // As the SQLite store: stored times differ in their fractional digits, so compare to the
        // second.
        let second = since.format("%Y-%m-%dT%H:%M:%S").to_string();
        all_json(
            self,
            "SELECT data FROM handoffs
             WHERE substr(data::jsonb->>'created_at', 1, 19) >= $1 ORDER BY rid",
            &[&second],
        )
    }

    fn agent_reply_times(&self, conversation_id: &str) -> Result<Vec<DateTime<Utc>>, StoreError> {
        Ok(texts(
            self,
            "SELECT data::jsonb->>'created_at' FROM messages WHERE conversation_id = $1
             AND data::jsonb->>'author' = 'agent'",
            &[&conversation_id],
        )?
        .iter()
        .filter_map(|t| time(t))
        .collect())
    }

    fn drafts_waiting(&self, conversation_id: &str) -> Result<Vec<String>, StoreError> {
        texts(
            self,
            "SELECT id FROM messages WHERE conversation_id = $1
             AND data::jsonb->>'status' = 'draft' ORDER BY rid",
            &[&conversation_id],
        )
    }

    fn due_drafts(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<String>, StoreError> {
        texts(
            self,
            "SELECT message_id FROM draft_deadlines WHERE due_at_ms <= $1
             ORDER BY due_at_ms LIMIT $2",
            &[
                &now.timestamp_millis(),
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )
    }

    fn latest_customer_message(
        &self,
        conversation_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        one_json(
            self,
            "SELECT data FROM messages WHERE conversation_id = $1
             AND data::jsonb->>'author' = 'end_user' ORDER BY rid DESC LIMIT 1",
            &[&conversation_id],
        )
    }

    fn read_mark(
        &self,
        agent_id: &str,
        conversation_id: &str,
    ) -> Result<Option<baton_protocol::ReadMark>, StoreError> {
        one_json(
            self,
            "SELECT data FROM reads WHERE agent_id = $1 AND conversation_id = $2",
            &[&agent_id, &conversation_id],
        )
    }

    fn open_handoff(&self, conversation_id: &str) -> Result<Option<Handoff>, StoreError> {
        remembered(self, |c| &mut c.open_handoffs, conversation_id.to_string(), || {
            one_json(
                self,
                "SELECT data FROM handoffs WHERE conversation_id = $1 AND status IN ('pending', 'assigned')
                 ORDER BY rid DESC LIMIT 1",
                &[&conversation_id],
            )
        })
    }

    fn held_handoffs(&self, agent_id: &str) -> Result<Vec<Handoff>, StoreError> {
        all_json(
            self,
            "SELECT data FROM handoffs WHERE assignee = $1 AND status = 'assigned' ORDER BY rid",
            &[&agent_id],
        )
    }

    fn pending_handoffs(&self, channel_id: &str) -> Result<Vec<Handoff>, StoreError> {
        all_json(
            self,
            "SELECT h.data FROM handoffs h JOIN conversations c ON c.id = h.conversation_id
             WHERE c.channel_id = $1 AND h.status = 'pending' ORDER BY h.rid",
            &[&channel_id],
        )
    }

    fn tags(&self) -> Result<Vec<String>, StoreError> {
        let list: Option<baton_protocol::TagList> = one_json(
            self,
            "SELECT value FROM settings WHERE key = 'tags'",
            &[],
        )?;
        Ok(list.map(|l| l.tags).unwrap_or_default())
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        text(
            self,
            "SELECT value FROM settings WHERE key = $1",
            &[&key],
        )
    }

    fn devices(&self) -> Result<Vec<Device>, StoreError> {
        all_json(self, "SELECT data FROM devices ORDER BY id", &[])
    }

    fn templates(&self) -> Result<Vec<Template>, StoreError> {
        all_json(
            self,
            "SELECT data FROM templates
             WHERE COALESCE(data::jsonb->'deleted', 'false'::jsonb) <> 'true'::jsonb
             ORDER BY (data::jsonb->>'name') COLLATE \"C\"",
            &[],
        )
    }

    fn channel(&self, id: &str) -> Result<Option<ChannelRow>, StoreError> {
        self.query_opt(
            "SELECT id, kind, name, webhook_url, settings FROM channels WHERE id = $1",
            &[&id],
        )?
        .as_ref()
        .map(channel_row)
        .transpose()
    }

    fn channels(&self) -> Result<Vec<ChannelRow>, StoreError> {
        self.query(
            "SELECT id, kind, name, webhook_url, settings FROM channels ORDER BY created_at, rid",
            &[],
        )?
        .iter()
        .map(channel_row)
        .collect()
    }

    fn channel_by_secret(
        &self,
        kind: &str,
        secret_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        text(
            self,
            "SELECT id FROM channels WHERE secret_hash = $1 AND kind = $2",
            &[&secret_hash, &kind],
        )
    }

    fn recorded_command(
        &self,
        agent_id: &str,
        txn_id: &str,
    ) -> Result<Option<RecordedCommand>, StoreError> {
        Ok(self.query_opt(
            "SELECT response, fingerprint FROM commands WHERE agent_id = $1 AND txn_id = $2",
            &[&agent_id, &txn_id],
        )?
        .map(|r| RecordedCommand {
            response: r.get(0),
            fingerprint: r.get(1),
        }))
    }

    fn token(&self, token_hash: &str) -> Result<Option<StoredToken>, StoreError> {
        let Some(row) = self.query_opt(
            "SELECT a.data, t.created_at, t.last_used_at FROM tokens t
             JOIN agents a ON a.id = t.agent_id
             WHERE t.token_hash = $1 AND NOT a.disabled",
            &[&token_hash],
        )?
        else {
            return Ok(None);
        };
        Ok(Some(StoredToken {
            agent: serde_json::from_str(row.get::<_, &str>(0))?,
            created_at: Some(row.get(1)),
            last_used_at: row.get(2),
        }))
    }

    fn delivery_waiting_reason(&self, conversation_id: &str) -> Result<Option<String>, StoreError> {
        text(
            self,
            "SELECT last_error FROM deliveries WHERE conversation_id = $1 AND state = 'queued'
             AND last_error IS NOT NULL ORDER BY id LIMIT 1",
            &[&conversation_id],
        )
    }

    fn delivery_of_message(&self, message_id: &str) -> Result<Option<Delivery>, StoreError> {
        Ok(self.query_opt(
            "SELECT channel_id, conversation_id, route, body FROM deliveries
             WHERE message_id = $1 ORDER BY id DESC LIMIT 1",
            &[&message_id],
        )?
        .map(|r| Delivery {
            channel_id: r.get(0),
            conversation_id: r.get(1),
            route: r.get(2),
            body: r.get(3),
            message_id: Some(message_id.to_string()),
        }))
    }

    fn queued_messages(&self, conversation_id: &str) -> Result<Vec<String>, StoreError> {
        texts(
            self,
            "SELECT message_id FROM deliveries WHERE conversation_id = $1
             AND state = 'queued' AND message_id IS NOT NULL ORDER BY id",
            &[&conversation_id],
        )
    }

    /// Calls whose sender is gone: past their lease (other instances' live calls are theirs).
    fn deliveries_in_flight(&self) -> Result<Vec<(i64, Option<String>, String)>, StoreError> {
        Ok(self.query(
            "SELECT id, message_id, channel_id FROM deliveries WHERE state = 'sending'
             AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
    }

    fn next_delivery_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.query_one(
            concat!(
                "SELECT MIN(o.next_attempt_at) FROM deliveries o WHERE o.state = 'queued' AND ",
                first_in_its_conversation!()
            ),
            &[],
        )?
        .get(0))
    }

    fn linked_contact(
        &self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
    ) -> Result<Option<Contact>, StoreError> {
        // The writer goes through what it keeps of the link and the contact.
        if self.cache().is_some() {
            return match self.external_id(channel_id, kind, external_id)? {
                Some(id) => self.contact(&id),
                None => Ok(None),
            };
        }
        one_json(
            self,
            "SELECT c.data FROM external_ids x JOIN contacts c ON c.id = x.internal_id
             WHERE x.channel_id = $1 AND x.kind = $2 AND x.external_id = $3",
            &[&channel_id, &kind, &external_id],
        )
    }

    fn linked_conversation(
        &self,
        channel_id: &str,
        contact_id: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        if self.cache().is_some() {
            return match self.external_id(channel_id, "conversation", contact_id)? {
                Some(id) => self.conversation(&id),
                None => Ok(None),
            };
        }
        one_json(
            self,
            "SELECT c.data FROM external_ids x JOIN conversations c ON c.id = x.internal_id
             WHERE x.channel_id = $1 AND x.kind = 'conversation' AND x.external_id = $2",
            &[&channel_id, &contact_id],
        )
    }

    fn external_id(
        &self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let key = (channel_id.to_string(), kind.to_string(), external_id.to_string());
        remembered(self, |c| &mut c.links, key, || {
            text(
                self,
                "SELECT internal_id FROM external_ids
                 WHERE channel_id = $1 AND kind = $2 AND external_id = $3",
                &[&channel_id, &kind, &external_id],
            )
        })
    }
}
    };
}
impl_read!('c, PgTx<'c>);
impl_read!('s, Reader<'s>);

impl Tx for PgTx<'_> {
    fn events(&self) -> &[Event] {
        &self.events
    }

    fn put(&mut self, data: EventData) -> Result<Event, StoreError> {
        let json = entity_json(&data)?;
        let text = |s: &str| Some(s.to_string());
        let row = |table, columns| Queued::Row(RowWrite { table, columns });
        let write = match &data {
            EventData::Contact(c) => row(
                Table::Contacts,
                vec![text(&c.id), text(&c.channel_id), text(&json)],
            ),
            EventData::Conversation(c) => row(
                Table::Conversations,
                vec![
                    text(&c.id),
                    text(&c.channel_id),
                    c.contact_id.clone(),
                    text(&json),
                ],
            ),
            EventData::Handoff(h) => row(
                Table::Handoffs,
                vec![
                    text(&h.id),
                    text(&h.conversation_id),
                    text(h.status.as_str()),
                    h.assignee.clone(),
                    text(&json),
                ],
            ),
            EventData::Message(m) => row(
                Table::Messages,
                vec![text(&m.id), text(&m.conversation_id), text(&json)],
            ),
            // Agents carry credentials the event must not; their row is made by add_agent.
            EventData::Agent(a) => Queued::Write {
                sql: "UPDATE agents SET data = $2 WHERE id = $1",
                params: vec![text(&a.id), text(&json)],
            },
            EventData::Note(n) => row(
                Table::Notes,
                vec![text(&n.id), text(&n.conversation_id), text(&json)],
            ),
            EventData::Template(t) => row(Table::Templates, vec![text(&t.id), text(&json)]),
            EventData::Tags(_) => row(Table::Settings, vec![text("tags"), text(&json)]),
            EventData::Read(r) => row(
                Table::Reads,
                vec![text(&r.agent_id), text(&r.conversation_id), text(&json)],
            ),
        };
        self.write_later(write)?;
        {
            let mut cache = self.cache.borrow_mut();
            cache.make_room();
            match &data {
                EventData::Contact(c) => {
                    cache.contacts.insert(c.id.clone(), Some(c.clone()));
                }
                EventData::Conversation(c) => {
                    cache.conversations.insert(c.id.clone(), Some(c.clone()));
                }
                EventData::Handoff(h) => cache.handoff_written(h),
                EventData::Message(m) => {
                    self.absent.borrow_mut().ids.remove(&m.id);
                }
                _ => {}
            }
        }
        // The next seq after the head this transaction holds; the log gets it at commit.
        let event = Event {
            seq: self.head + self.events.len() as u64 + 1,
            data,
        };
        self.events.push(event.clone());
        self.bodies.push(json);
        Ok(event)
    }

    fn add_agent(&mut self, agent: &Agent, password_hash: &str) -> Result<Event, StoreError> {
        self.execute(
            "INSERT INTO agents (id, email, password_hash, data) VALUES ($1, $2, $3, '{}')",
            &[&agent.id, &agent.email, &password_hash],
        )?;
        self.put(EventData::Agent(agent.clone()))
    }

    fn set_agent_access(
        &mut self,
        agent_id: &str,
        disabled: bool,
        password_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE agents SET disabled = $2, password_hash = COALESCE($3, password_hash) WHERE id = $1",
            &[&agent_id, &disabled, &password_hash],
        )?;
        Ok(())
    }

    fn add_channel(&mut self, channel: &NewChannel<'_>) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO channels (id, kind, name, secret_hash, webhook_url, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &channel.id,
                &channel.kind,
                &channel.name,
                &channel.secret_hash,
                &channel.webhook_url,
                &channel.created_at,
            ],
        )?;
        Ok(())
    }

    fn set_channel_secret(&mut self, id: &str, secret_hash: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE channels SET secret_hash = $2 WHERE id = $1",
            &[&id, &secret_hash],
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
        self.execute(
            "UPDATE channels SET name = $2, webhook_url = $3, settings = $4 WHERE id = $1",
            &[&id, &name, &webhook_url, &serde_json::to_string(settings)?],
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
        self.no_longer_absent(channel_id, kind, external_id);
        let key = (
            channel_id.to_string(),
            kind.to_string(),
            external_id.to_string(),
        );
        // Looked for under this lock and not there: nothing can be in the way, so the row is
        // queued like an entity's instead of waited for (see [`WriterCache`]).
        let known_absent = matches!(self.cache.borrow().links.get(&key), Some(None));
        let linked = if known_absent {
            self.link_later(channel_id, kind, external_id, internal_id)?;
            true
        } else {
            self.execute(LINK, &[&channel_id, &kind, &external_id, &internal_id])? == 1
        };
        if linked {
            let mut cache = self.cache.borrow_mut();
            cache.make_room();
            cache.links.insert(key, Some(internal_id.to_string()));
        }
        Ok(linked)
    }

    fn add_link(
        &mut self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
        internal_id: &str,
    ) -> Result<(), StoreError> {
        let key = (
            channel_id.to_string(),
            kind.to_string(),
            external_id.to_string(),
        );
        let known = self.cache.borrow().links.get(&key).cloned();
        if let Some(Some(_)) = known {
            // Linked already: the insert would do nothing.
            return Ok(());
        }
        self.no_longer_absent(channel_id, kind, external_id);
        self.link_later(channel_id, kind, external_id, internal_id)?;
        let mut cache = self.cache.borrow_mut();
        match known {
            // Known to be missing: it is this one now.
            Some(None) => {
                cache.make_room();
                cache.links.insert(key, Some(internal_id.to_string()));
            }
            // Not known: whichever row is there is read when next asked for.
            _ => {
                cache.links.remove(&key);
            }
        }
        Ok(())
    }

    fn add_link_to_new_id(
        &mut self,
        channel_id: &str,
        kind: &str,
        new_id: &str,
        internal_id: &str,
    ) -> Result<(), StoreError> {
        // Known to be missing, so `add_link` keeps it as this one (else it would read it back).
        {
            let mut cache = self.cache.borrow_mut();
            cache.make_room();
            let key = (channel_id.to_string(), kind.to_string(), new_id.to_string());
            cache.links.insert(key, None);
        }
        self.add_link(channel_id, kind, new_id, internal_id)
    }

    fn set_draft_deadline(
        &mut self,
        message_id: &str,
        due_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        match due_at {
            Some(at) => self.execute(
                "INSERT INTO draft_deadlines (message_id, due_at_ms) VALUES ($1, $2)
                 ON CONFLICT (message_id) DO UPDATE SET due_at_ms = excluded.due_at_ms",
                &[&message_id, &at.timestamp_millis()],
            )?,
            None => self.execute(
                "DELETE FROM draft_deadlines WHERE message_id = $1",
                &[&message_id],
            )?,
        };
        Ok(())
    }

    fn unlink_external(
        &mut self,
        channel_id: &str,
        kind: &str,
        external_id: &str,
    ) -> Result<(), StoreError> {
        let removed = self.execute(
            "DELETE FROM external_ids WHERE channel_id = $1 AND kind = $2 AND external_id = $3",
            &[&channel_id, &kind, &external_id],
        )?;
        if removed > 0 {
            // Other writers keep links across turns unless one is removed (see [`WriterCache`]).
            self.execute("UPDATE log_head SET unlinks = unlinks + 1", &[])?;
            self.unlinks.set(self.unlinks.get() + 1);
        }
        let key = (
            channel_id.to_string(),
            kind.to_string(),
            external_id.to_string(),
        );
        self.cache.borrow_mut().links.insert(key, None);
        Ok(())
    }

    fn add_token(
        &mut self,
        token_hash: &str,
        agent_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO tokens (token_hash, agent_id, created_at, last_used_at) VALUES ($1, $2, $3, $3)",
            &[&token_hash, &agent_id, &now],
        )?;
        Ok(())
    }

    fn touch_token(&mut self, token_hash: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.execute(
            "UPDATE tokens SET last_used_at = $2 WHERE token_hash = $1",
            &[&token_hash, &now],
        )?;
        Ok(())
    }

    fn remove_token(&mut self, token_hash: &str) -> Result<(), StoreError> {
        self.execute("DELETE FROM tokens WHERE token_hash = $1", &[&token_hash])?;
        Ok(())
    }

    fn remove_tokens_of(&mut self, agent_id: &str) -> Result<(), StoreError> {
        self.execute("DELETE FROM tokens WHERE agent_id = $1", &[&agent_id])?;
        Ok(())
    }

    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        match value {
            Some(value) => self.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )?,
            None => self.execute("DELETE FROM settings WHERE key = $1", &[&key])?,
        };
        Ok(())
    }

    fn put_device(&mut self, device: &Device, token_hash: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM devices WHERE platform = $1 AND address = $2",
            &[&device.platform.as_str(), &device.address()],
        )?;
        self.execute(
            "INSERT INTO devices (id, agent_id, token_hash, platform, address, data)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &device.id,
                &device.agent_id,
                &token_hash,
                &device.platform.as_str(),
                &device.address(),
                &serde_json::to_string(device)?,
            ],
        )?;
        Ok(())
    }

    fn remove_device(&mut self, id: &str) -> Result<bool, StoreError> {
        Ok(self.execute("DELETE FROM devices WHERE id = $1", &[&id])? == 1)
    }

    fn remove_expired_tokens(
        &mut self,
        born_before: DateTime<Utc>,
        used_before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        Ok(self.execute(
            "DELETE FROM tokens WHERE created_at < $1 OR COALESCE(last_used_at, created_at) < $2",
            &[&born_before, &used_before],
        )? as usize)
    }

    fn record_command(
        &mut self,
        agent_id: &str,
        txn_id: &str,
        recorded: &RecordedCommand,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO commands (agent_id, txn_id, status, response, created_at, fingerprint)
             VALUES ($1, $2, 200, $3, $4, $5)",
            &[
                &agent_id,
                &txn_id,
                &recorded.response,
                &now,
                &recorded.fingerprint,
            ],
        )?;
        Ok(())
    }

    fn queue_delivery(&mut self, call: &Delivery, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO deliveries (channel_id, conversation_id, route, body, message_id, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            &[
                &call.channel_id,
                &call.conversation_id,
                &call.route,
                &call.body,
                &call.message_id,
                &now,
            ],
        )?;
        self.calls.set(self.calls.get() + 1);
        Ok(())
    }

    fn calls_queued(&self) -> usize {
        self.calls.get()
    }

    fn retry_deliveries_now(
        &mut self,
        channel_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE deliveries SET next_attempt_at = $2
             WHERE state = 'queued' AND ($1::text IS NULL OR channel_id = $1)",
            &[&channel_id, &now],
        )?;
        Ok(())
    }

    fn claim_due_deliveries(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // SKIP LOCKED: a row another instance is claiming right now is left to it.
        let rows = self.query(
            concat!(
                "SELECT o.id, c.webhook_url, o.route, o.body, o.message_id, o.attempts, o.created_at,
                        o.conversation_id, o.channel_id, c.kind
                 FROM deliveries o JOIN channels c ON c.id = o.channel_id
                 WHERE o.state = 'queued' AND o.next_attempt_at <= $1 AND ",
                first_in_its_conversation!(),
                " ORDER BY o.id LIMIT $2 FOR UPDATE OF o SKIP LOCKED"
            ),
            &[&now, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            let row = DueDelivery {
                id: r.get(0),
                url: r.get(1),
                route: r.get(2),
                body: r.get(3),
                message_id: r.get(4),
                attempts: u32::try_from(r.get::<_, i32>(5)).unwrap_or(0),
                created_at: r.get(6),
                conversation_id: r.get(7),
                channel_id: r.get(8),
                channel_kind: r.get(9),
            };
            if row.url.is_some() {
                // Leased by the database's clock, which every instance shares.
                self.execute(
                    "UPDATE deliveries SET state = 'sending', attempts = attempts + 1,
                         claimed_until = now() + make_interval(secs => $2)
                     WHERE id = $1",
                    &[&row.id, &self.lease_secs],
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
        self.execute(
            "UPDATE deliveries SET state = $2, last_error = $3,
                 next_attempt_at = COALESCE($4, next_attempt_at)
             WHERE id = $1",
            &[&id, &state.as_str(), &last_error, &next_attempt_at],
        )?;
        Ok(())
    }
}

/// Runs queued jobs in one transaction, each in its own savepoint, and commits it. A job that
/// fails is rolled back to its savepoint; if the transaction itself breaks, the jobs that ran are
/// answered with the failure and the ones not yet run stay in `jobs` for a fresh transaction.
fn commit_group(
    conn: &mut Conn,
    announce: &Announce,
    jobs: &mut std::collections::VecDeque<Box<dyn GroupJob>>,
    instance: &str,
    lease: std::time::Duration,
) {
    let mut txn = match PgTx::begin(conn, lease) {
        Ok(txn) => txn,
        Err(e) => {
            tracing::error!(error = %e, "group commit: cannot start a transaction");
            for job in jobs.drain(..) {
                job.fail(e.to_string());
            }
            return;
        }
    };
    if let Err(e) = txn.look_for(jobs.iter().filter_map(|job| job.looks_for())) {
        // The transaction is aborted: nothing ran, every caller is told (Meta sends again).
        tracing::error!(error = %e, "group commit: cannot look for the group's platform messages");
        txn.cache.borrow_mut().forget();
        drop(txn);
        for job in jobs.drain(..) {
            job.fail(e.to_string());
        }
        return;
    }
    let mut completions: Vec<Completion> = Vec::with_capacity(jobs.len());
    while let Some(job) = jobs.pop_front() {
        let mark = txn.events.len();
        let queue_mark = txn.queued.borrow().len();
        let unlinks_mark = txn.unlinks.get();
        // A savepoint only once the job sends something (see [`PgTx::save_job`]), queued to go
        // with what it sends; a failed job's rollback leaves it in place, setting the next one
        // releases it, and the commit releases the last.
        txn.job.set(JobSavepoint::NotYet(queue_mark));
        let (ran, done) = job.run(&mut txn);
        let saved = txn.job.replace(JobSavepoint::NoJob) == JobSavepoint::Set;
        // A job the database refused failed, whatever it made of the error.
        let refused = txn.refused.take();
        let ok = ran && refused.is_none();
        let broken = txn.broken.borrow().clone();
        let ended = if let Some(why) = broken {
            Err(why)
        } else if ok {
            Ok(())
        } else {
            txn.events.truncate(mark);
            // Its unlinks are undone with it: the count this writer leaves must be the database's.
            txn.unlinks.set(unlinks_mark);
            txn.bodies.truncate(mark);
            // The job's writes are undone; the cache may hold some of them.
            txn.cache.borrow_mut().forget();
            if saved {
                // What it queued since its last statement never went; the rest is rolled back.
                txn.queued.borrow_mut().clear();
                wait(txn.tx.batch_execute("ROLLBACK TO SAVEPOINT job")).map_err(|e| e.to_string())
            } else {
                // Nothing of it reached the database: its queued writes are dropped.
                txn.queued.borrow_mut().truncate(queue_mark);
                Ok(())
            }
        };
        match (ok, ended) {
            (true, Ok(())) => completions.push(done),
            (false, Ok(())) => {
                if let Some(why) = refused.filter(|_| ran) {
                    done(Err(why));
                }
            }
            (_, Err(e)) => {
                tracing::error!(error = %e, jobs = completions.len(), "group commit: the transaction broke; those jobs failed, the rest run again");
                if ran {
                    done(Err(e.to_string()));
                }
                txn.cache.borrow_mut().forget();
                drop(txn);
                for done in completions {
                    done(Err(e.to_string()));
                }
                return;
            }
        }
    }
    match txn.commit(instance) {
        Ok((events, bodies)) => {
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

#[cfg(any(test, feature = "test-postgres"))]
pub mod testing {
    //! A real PostgreSQL for tests: one server per test process, started in a temporary
    //! directory (as the `postgres` user when the tests run as root, since PostgreSQL refuses
    //! root), a fresh database per test, and the server stopped when the process ends.

    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;

    pub struct Server {
        pub port: u16,
    }

    /// Debian keeps the server's programs under /usr/lib/postgresql/<version>/bin.
    fn bin_dir() -> PathBuf {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin"))
                    .collect()
            })
            .unwrap_or_default();
        versions.sort();
        versions
            .pop()
            .filter(|b| b.join("initdb").exists())
            .expect("PostgreSQL is not installed (make test installs Debian's postgresql)")
    }

    /// Whether the tests run as root (asked of `id`, to need no libc binding).
    fn root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0\n"))
            .unwrap_or(false)
    }

    fn as_postgres(program: &Path) -> Command {
        if root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    fn start(durable: bool, tls: Option<(&str, &str)>) -> Server {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("baton-pg-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let mut ssl = String::new();
        if let Some((cert, key)) = tls {
            let (cert_file, key_file) = (dir.join("server.crt"), dir.join("server.key"));
            std::fs::write(&cert_file, cert).expect("write the certificate");
            std::fs::write(&key_file, key).expect("write the key");
            // PostgreSQL refuses a key others can read.
            baton_protocol::private_fs::private_file(&key_file).expect("key mode");
            ssl = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert_file.display(),
                key_file.display()
            );
        }
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
        let data = dir.join("data");
        let init = as_postgres(&bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = free_port();
        // Tests need no durability (fsync off: faster); benchmarks measure PostgreSQL's default.
        let fast = if durable {
            ""
        } else {
            " -c fsync=off -c synchronous_commit=off"
        };
        let options = format!(
            "-p {port} -k {} -h 127.0.0.1 -c max_connections=300{fast}{ssl}",
            dir.display()
        );
        let started = as_postgres(&bin.join("pg_ctl"))
            .args(["-D"])
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.join("log"))
            .args(["-w", "start"])
            .output()
            .expect("pg_ctl runs");
        assert!(
            started.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        // Stopped (and its directory removed) when this test process ends, however it ends: a
        // watcher of our own user (so it may signal this process) stops it as its owner.
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser} {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runuser = if root() { "runuser -u postgres --" } else { "" },
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        let _ = Command::new("/bin/sh")
            .args(["-c", &stop])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        Server { port }
    }

    /// The tests' server: no fsync, so a test does not wait on the disk.
    pub fn server() -> &'static Server {
        static SERVER: OnceLock<Server> = OnceLock::new();
        SERVER.get_or_init(|| start(false, None))
    }

    /// A server of its own that offers TLS with this certificate (PEM) and key.
    pub fn tls_server(cert: &str, key: &str) -> Server {
        start(false, Some((cert, key)))
    }

    /// The benchmarks' server: PostgreSQL's default durability (every commit fsynced).
    pub fn durable_server() -> &'static Server {
        static SERVER: OnceLock<Server> = OnceLock::new();
        SERVER.get_or_init(|| start(true, None))
    }

    /// The URL of a new, empty database on the test server.
    pub fn fresh_database() -> String {
        database_on(server())
    }

    /// The URL of a new, empty database on the durable server.
    pub fn fresh_durable_database() -> String {
        database_on(durable_server())
    }

    /// The URL of a new, empty database on `server`.
    pub fn database_on(server: &Server) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let created = as_postgres(&bin_dir().join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &server.port.to_string(),
                "-U",
                "postgres",
                &name,
            ])
            .output()
            .expect("createdb runs");
        assert!(
            created.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", server.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PlatformMessage;

    // No lease: a claimed call counts as abandoned at once, as every call in flight does for a
    // store one process serves when it restarts (the suite's view). Leases have their own test.
    store_suite!(|_dir: &std::path::Path| -> Box<dyn Store> {
        Box::new(
            PostgresStore::open_with_lease(&testing::fresh_database(), std::time::Duration::ZERO)
                .expect("open"),
        )
    });

    #[test]
    fn a_task_that_waits_on_the_store_hundreds_of_times_without_yielding_is_answered_every_time() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            // One poll of one task: tokio's budget for it (128 operations) is never renewed.
            // Each wait is on a tokio channel, as a new connection's is.
            let answered = runtime.block_on(async {
                (0..500)
                    .map(|n| {
                        let (answer, answered) = tokio::sync::oneshot::channel();
                        let _ = answer.send(n);
                        wait(answered).expect("answered")
                    })
                    .count()
            });
            let _ = done.send(answered);
        });
        let answered = finished
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("every wait is answered instead of spinning");
        assert_eq!(answered, 500);
    }

    #[test]
    fn writes_go_on_after_the_database_ends_the_writers_connection() {
        let url = testing::fresh_database();
        let store = PostgresStore::open(&url).expect("open");
        let tags = |tags: &[&str]| {
            let list = baton_protocol::TagList {
                tags: tags.iter().map(|t| t.to_string()).collect(),
            };
            (&store as &dyn Store).write(|tx| tx.put(EventData::Tags(list)))
        };
        tags(&["a"]).expect("first write");
        // An administrator (or a restart) ends every other session on the database.
        let admin = connect(&Database::parse(&url).expect("url"), &store.driver).expect("admin");
        wait(admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        ))
        .expect("terminate");
        std::thread::sleep(std::time::Duration::from_millis(300));
        tags(&["b"]).expect("a write after the connection was lost");
        let store: &dyn Store = &store;
        assert_eq!(
            store.reader().expect("reader").tags().expect("tags"),
            vec!["b"]
        );
    }

    #[test]
    fn another_instances_commits_still_arrive_after_the_database_ends_every_connection() {
        let url = testing::fresh_database();
        let writer = PostgresStore::open(&url).expect("open one instance");
        let follower = PostgresStore::open(&url).expect("open another");
        let mut others = follower.subscribe();
        let admin = connect(&Database::parse(&url).expect("url"), &writer.driver).expect("admin");
        wait(admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        ))
        .expect("terminate");
        // The LISTEN connection is opened again within about a second.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        (&writer as &dyn Store)
            .write(|tx| {
                tx.put(EventData::Tags(baton_protocol::TagList {
                    tags: vec!["after".into()],
                }))
            })
            .expect("write");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match others.try_recv() {
                Ok(frame) if String::from_utf8_lossy(&frame.json).contains("after") => break,
                Ok(_) | Err(broadcast::error::TryRecvError::Empty) => {}
                Err(e) => panic!("relay: {e}"),
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the other instance's commit never arrived"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn an_instances_streams_get_every_instances_commits_in_seq_order_without_gaps() {
        let url = testing::fresh_database();
        let here = PostgresStore::open(&url).expect("open one instance");
        let there = PostgresStore::open(&url).expect("open another");
        let mut frames = here.subscribe();
        // The instances take turns, as two hubs behind a load balancer do.
        for i in 0..40 {
            let writer: &dyn Store = if i % 2 == 0 { &here } else { &there };
            writer
                .write(|tx| {
                    tx.put(EventData::Tags(baton_protocol::TagList {
                        tags: vec![format!("t{i}")],
                    }))
                })
                .expect("write");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut sent = 0;
        while sent < 40 {
            match frames.try_recv() {
                Ok(frame) => {
                    assert_eq!(
                        frame.first,
                        sent + 1,
                        "a frame after seq {sent} starts at {}: a stream would find a gap",
                        frame.first
                    );
                    let events: Vec<serde_json::Value> =
                        serde_json::from_slice(&frame.json).expect("a JSON array");
                    assert_eq!(events.len() as u64, frame.last - frame.first + 1);
                    sent = frame.last;
                }
                Err(broadcast::error::TryRecvError::Empty) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "frames stopped at seq {sent} of 40"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("frames: {e}"),
            }
        }
        assert_eq!(sent, 40);
        assert_eq!(
            (&here as &dyn Store).announced(),
            40,
            "the other instance's commits count as seen"
        );
    }

    #[test]
    fn a_claimed_call_is_its_instances_until_the_lease_is_over() {
        let url = testing::fresh_database();
        let leased_store = std::sync::Arc::new(
            PostgresStore::open_with_lease(&url, std::time::Duration::from_secs(600))
                .expect("open"),
        );
        let leased: &dyn Store = &*leased_store;
        let now = Utc::now();
        leased
            .write(|tx| {
                tx.add_channel(&NewChannel {
                    id: "ch",
                    kind: "botpress",
                    name: "Bot",
                    secret_hash: "h",
                    webhook_url: Some("https://example.com/hook"),
                    created_at: now,
                })?;
                tx.queue_delivery(
                    &Delivery {
                        channel_id: "ch".into(),
                        conversation_id: "t_1".into(),
                        route: "message-from-agent".into(),
                        body: "{}".into(),
                        message_id: None,
                    },
                    now,
                )
            })
            .expect("queue");
        let claimed = leased
            .write(|tx| tx.claim_due_deliveries(now, 16))
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        let in_flight = |store: &dyn Store| {
            store
                .reader()
                .expect("reader")
                .deliveries_in_flight()
                .expect("in flight")
                .len()
        };
        assert_eq!(
            in_flight(leased),
            0,
            "another instance leaves a leased call alone"
        );
        // Its lease made to end now: the call is abandoned, for any instance to settle.
        let ended = leased_store
            .writer
            .lock()
            .map(|conn| {
                wait(conn.client.execute(
                    "UPDATE deliveries SET claimed_until = now() - interval '1 second'",
                    &[],
                ))
            })
            .expect("writer");
        assert_eq!(ended.expect("update"), 1);
        assert_eq!(in_flight(leased), 1);
    }

    #[test]
    fn reopening_a_database_keeps_its_events_and_does_not_rerun_migrations() {
        let url = testing::fresh_database();
        {
            let store: Box<dyn Store> = Box::new(PostgresStore::open(&url).expect("open"));
            store
                .write(|tx| {
                    tx.put(EventData::Tags(baton_protocol::TagList {
                        tags: vec!["vip".into()],
                    }))
                })
                .expect("write");
        }
        let store: Box<dyn Store> = Box::new(PostgresStore::open(&url).expect("reopen"));
        assert_eq!(store.last_seq().expect("seq"), 1);
        assert_eq!(
            store.reader().expect("reader").tags().expect("tags"),
            vec!["vip"]
        );
    }

    /// Channel "ch", of `kind`.
    pub(super) fn add_channel(tx: &mut dyn Tx, kind: &str) -> Result<(), StoreError> {
        tx.add_channel(&NewChannel {
            id: "ch",
            kind,
            name: "Support",
            secret_hash: "h",
            webhook_url: None,
            created_at: Utc::now(),
        })
    }

    pub(super) fn customer(id: &str, name: &str) -> Contact {
        Contact {
            id: id.into(),
            channel_id: "ch".into(),
            name: name.into(),
            email: None,
            picture_url: None,
            attributes: serde_json::json!({}),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_writer_reads_again_what_another_instance_changed_and_keeps_nothing_of_a_rolled_back_job() {
        let url = testing::fresh_database();
        let ours: Box<dyn Store> = Box::new(PostgresStore::open(&url).expect("ours"));
        let theirs: Box<dyn Store> = Box::new(PostgresStore::open(&url).expect("theirs"));
        let named = |store: &dyn Store, id: &str| {
            store
                .write(|tx| tx.contact(id))
                .expect("read in a write")
                .map(|c| c.name)
        };
        ours.write(|tx| {
            add_channel(tx, "botpress")?;
            tx.put(EventData::Contact(customer("u_1", "Dana")))
        })
        .expect("write");
        assert_eq!(named(&*ours, "u_1").as_deref(), Some("Dana"));

        // Another instance renames her: our writer's next transaction sees it.
        theirs
            .write(|tx| tx.put(EventData::Contact(customer("u_1", "Dana Reyes"))))
            .expect("rename");
        assert_eq!(named(&*ours, "u_1").as_deref(), Some("Dana Reyes"));

        // A job that wrote and then failed leaves nothing behind, in the database or the writer.
        let failed: Result<(), StoreError> = ours.write_grouped(|tx| {
            tx.put(EventData::Contact(customer("u_2", "Sam")))?;
            Err(StoreError::Poisoned)
        });
        assert!(failed.is_err());
        assert_eq!(named(&*ours, "u_2"), None);

        // Links too: one made by another instance is found, one removed there is gone.
        assert_eq!(
            ours.write(|tx| tx.linked_contact("ch", "phone", "+15550001"))
                .expect("lookup"),
            None
        );
        theirs
            .write(|tx| tx.link_external("ch", "phone", "+15550001", "u_1"))
            .expect("link");
        let found = ours
            .write(|tx| tx.linked_contact("ch", "phone", "+15550001"))
            .expect("lookup");
        assert_eq!(found.map(|c| c.name).as_deref(), Some("Dana Reyes"));
        theirs
            .write(|tx| tx.unlink_external("ch", "phone", "+15550001"))
            .expect("unlink");
        assert_eq!(
            ours.write(|tx| tx.linked_contact("ch", "phone", "+15550001"))
                .expect("lookup"),
            None
        );
    }

    #[test]
    fn a_writer_keeps_what_it_read_across_another_instances_commits_by_following_their_events() {
        let url = testing::fresh_database();
        let ours = PostgresStore::open(&url).expect("ours");
        let theirs: Box<dyn Store> = Box::new(PostgresStore::open(&url).expect("theirs"));
        let admin = connect(&Database::parse(&url).expect("url"), &ours.driver).expect("admin");
        let ours: &dyn Store = &ours;
        let found = || {
            ours.write(|tx| tx.linked_contact("ch", "phone", "+15550001"))
                .expect("lookup")
                .map(|c| c.name)
        };
        ours.write(|tx| {
            add_channel(tx, "whatsapp")?;
            tx.put(EventData::Contact(customer("u_1", "Dana")))?;
            tx.link_external("ch", "phone", "+15550001", "u_1")
        })
        .expect("write");
        assert_eq!(found().as_deref(), Some("Dana"));

        // The link's row goes behind every hub's back: a writer that still finds it answered from
        // what it kept, though another instance committed in between (and renamed her).
        wait(admin.execute("DELETE FROM external_ids", &[])).expect("delete");
        theirs
            .write(|tx| tx.put(EventData::Contact(customer("u_1", "Dana Reyes"))))
            .expect("rename");
        assert_eq!(found().as_deref(), Some("Dana Reyes"));

        // When another writer's events are no longer all in the log, the writer reads again.
        theirs
            .write(|tx| tx.put(EventData::Contact(customer("u_2", "Sam"))))
            .expect("write");
        wait(admin.execute("DELETE FROM events WHERE kind = 'contact'", &[])).expect("trim");
        assert_eq!(found(), None);
    }

    /// A WhatsApp-like job: stores its message unless it is stored already, and says which.
    struct Inbound {
        wanted: LookAhead,
        fails_after_storing: bool,
        outcomes: Arc<Mutex<Vec<(String, &'static str)>>>,
    }

    impl Inbound {
        fn job(
            wamid: &str,
            fails_after_storing: bool,
            outcomes: &Arc<Mutex<Vec<(String, &'static str)>>>,
        ) -> Box<dyn GroupJob> {
            Box::new(Inbound {
                wanted: LookAhead {
                    messages: vec![PlatformMessage {
                        id: format!("m_{wamid}"),
                        channel_id: "ch".into(),
                        external: wamid.into(),
                    }],
                    links: Vec::new(),
                },
                fails_after_storing,
                outcomes: outcomes.clone(),
            })
        }
    }

    impl GroupJob for Inbound {
        fn run(self: Box<Self>, tx: &mut dyn Tx) -> (bool, Completion) {
            let m = &self.wanted.messages[0];
            let outcome = match tx.has_platform_message(&m.id, &m.channel_id, &m.external) {
                Ok(true) => "already stored",
                Ok(false) => {
                    let message = Message {
                        id: m.id.clone(),
                        conversation_id: "c_1".into(),
                        author: baton_protocol::Author::EndUser,
                        author_id: None,
                        kind: "text".into(),
                        text: Some("hello".into()),
                        payload: serde_json::json!({}),
                        status: baton_protocol::DeliveryStatus::Received,
                        status_reason: None,
                        created_at: Utc::now(),
                    };
                    match tx.put(EventData::Message(message)) {
                        Ok(_) if self.fails_after_storing => "failed",
                        Ok(_) => "stored",
                        Err(_) => "error",
                    }
                }
                Err(_) => "error",
            };
            let mut outcomes = self.outcomes.lock().expect("outcomes");
            outcomes.push((m.external.clone(), outcome));
            (
                outcome == "stored" || outcome == "already stored",
                Box::new(|_| {}),
            )
        }

        fn fail(self: Box<Self>, error: String) {
            panic!("the group failed: {error}");
        }

        fn looks_for(&self) -> Option<&LookAhead> {
            Some(&self.wanted)
        }
    }

    #[test]
    fn a_group_looks_for_its_platform_messages_at_once_and_still_stores_each_exactly_once() {
        let url = testing::fresh_database();
        let store = PostgresStore::open(&url).expect("open");
        let shared: &dyn Store = &store;
        shared
            .write(|tx| {
                add_channel(tx, "whatsapp")?;
                tx.put(EventData::Conversation(Conversation {
                    id: "c_1".into(),
                    channel_id: "ch".into(),
                    contact_id: None,
                    created_at: Utc::now(),
                    channel_kind: None,
                    last_inbound_at: None,
                }))?;
                tx.link_external("ch", "message", "wamid.linked", "m_from_before")
            })
            .expect("write");
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let mut conn = Conn::new(connect(&store.config, &store.driver).expect("connect"));
        let announce = Announce::new(0);
        let lease = std::time::Duration::from_secs(30);
        let mut first: std::collections::VecDeque<_> =
            [Inbound::job("wamid.1", false, &outcomes)].into();
        commit_group(&mut conn, &announce, &mut first, "i", lease);
        let mut group: std::collections::VecDeque<_> = [
            // Sent again by Meta: stored by the group before, found.
            Inbound::job("wamid.1", false, &outcomes),
            // Twice in one group: the second finds the first's.
            Inbound::job("wamid.2", false, &outcomes),
            Inbound::job("wamid.2", false, &outcomes),
            // Stored through an older link.
            Inbound::job("wamid.linked", false, &outcomes),
            // A job that fails after storing leaves nothing for the next one to find.
            Inbound::job("wamid.3", true, &outcomes),
            Inbound::job("wamid.3", false, &outcomes),
        ]
        .into();
        commit_group(&mut conn, &announce, &mut group, "i", lease);
        assert_eq!(
            *outcomes.lock().expect("outcomes"),
            [
                ("wamid.1", "stored"),
                ("wamid.1", "already stored"),
                ("wamid.2", "stored"),
                ("wamid.2", "already stored"),
                ("wamid.linked", "already stored"),
                ("wamid.3", "failed"),
                ("wamid.3", "stored"),
            ]
            .map(|(w, o)| (w.to_string(), o))
        );
        let read = shared.reader().expect("reader");
        for id in ["m_wamid.1", "m_wamid.2", "m_wamid.3"] {
            assert!(read.has_message(id).expect("read"), "{id} is stored");
        }
        assert!(!read.has_message("m_wamid.linked").expect("read"));
    }

    /// Two instances on one database, where the customers `names` (u_1, u_2, …) are and +15550001
    /// is u_1's; and a writer connection of the first's, for driving its group commits.
    fn two_instances_with(names: &[&str]) -> (PostgresStore, Box<dyn Store>, Conn) {
        let url = testing::fresh_database();
        let store = PostgresStore::open(&url).expect("ours");
        let theirs: Box<dyn Store> = Box::new(PostgresStore::open(&url).expect("theirs"));
        let ours: &dyn Store = &store;
        ours.write(|tx| {
            add_channel(tx, "whatsapp")?;
            for (n, name) in names.iter().enumerate() {
                tx.put(EventData::Contact(customer(&format!("u_{}", n + 1), name)))?;
            }
            tx.link_external("ch", "phone", "+15550001", "u_1")
        })
        .expect("write");
        let conn = Conn::new(connect(&store.config, &store.driver).expect("connect"));
        (store, theirs, conn)
    }

    #[test]
    fn a_group_looks_up_its_customers_at_once_and_each_job_still_sees_the_links_made_before_it() {
        let (store, theirs, mut conn) = two_instances_with(&["Dana"]);
        let ours: &dyn Store = &store;
        let announce = Announce::new(0);
        let lease = std::time::Duration::from_secs(30);
        let found = Arc::new(Mutex::new(Vec::new()));
        let job = |phone: &'static str| -> Box<dyn GroupJob> {
            let found = found.clone();
            Box::new(super::super::PendingJob {
                f: move |tx: &mut dyn Tx| -> Result<(), StoreError> {
                    let contact = match tx.linked_contact("ch", "phone", phone)? {
                        Some(contact) => contact,
                        None => {
                            let contact = customer(&format!("u_{phone}"), "New");
                            tx.put(EventData::Contact(contact.clone()))?;
                            tx.add_link("ch", "phone", phone, &contact.id)?;
                            contact
                        }
                    };
                    found.lock().expect("found").push((phone, contact.name));
                    Ok(())
                },
                answer: |_: Result<(), StoreError>| {},
                looks_for: LookAhead {
                    messages: Vec::new(),
                    links: vec![PlatformKey {
                        channel_id: "ch".into(),
                        kind: "phone".into(),
                        external: phone.into(),
                    }],
                },
            })
        };
        // Our writer learns that +15550003 is nobody's; then another instance links it.
        let mut group: std::collections::VecDeque<_> = [job("+15550003")].into();
        commit_group(&mut conn, &announce, &mut group, "i", lease);
        theirs
            .write(|tx| {
                tx.put(EventData::Contact(customer("u_3", "Sam")))?;
                tx.unlink_external("ch", "phone", "+15550003")?;
                tx.link_external("ch", "phone", "+15550003", "u_3")
            })
            .expect("theirs");
        found.lock().expect("found").clear();
        let mut group: std::collections::VecDeque<_> = [
            job("+15550001"),
            job("+15550002"),
            job("+15550002"),
            job("+15550003"),
        ]
        .into();
        commit_group(&mut conn, &announce, &mut group, "i", lease);
        assert_eq!(
            *found.lock().expect("found"),
            [
                ("+15550001", "Dana".to_string()),
                ("+15550002", "New".to_string()),
                ("+15550002", "New".to_string()),
                ("+15550003", "Sam".to_string()),
            ]
        );
        let read = ours.reader().expect("reader");
        assert_eq!(
            read.external_id("ch", "phone", "+15550002").expect("read"),
            Some("u_+15550002".to_string())
        );
    }

    /// A job for `commit_group`, which says in `ended` whether it was committed.
    fn group_job(
        name: &'static str,
        ended: &Arc<Mutex<Vec<(&'static str, bool)>>>,
        f: impl FnOnce(&mut dyn Tx) -> Result<(), StoreError> + Send + 'static,
    ) -> Box<dyn GroupJob> {
        let ended = ended.clone();
        Box::new(super::super::PendingJob {
            f,
            answer: move |result: Result<(), StoreError>| {
                ended.lock().expect("ended").push((name, result.is_ok()))
            },
            looks_for: LookAhead::default(),
        })
    }

    /// Commits `jobs` as one group on `conn`; says how each ended, sorted by name.
    fn commit_and_tell(
        conn: &mut Conn,
        jobs: &mut std::collections::VecDeque<Box<dyn GroupJob>>,
        ended: &Mutex<Vec<(&'static str, bool)>>,
    ) -> Vec<(&'static str, bool)> {
        commit_group(
            conn,
            &Announce::new(0),
            jobs,
            "i",
            std::time::Duration::from_secs(30),
        );
        assert!(jobs.is_empty(), "every job ran");
        let mut outcomes = std::mem::take(&mut *ended.lock().expect("ended"));
        outcomes.sort();
        outcomes
    }

    fn conversation(id: &str) -> Conversation {
        Conversation {
            id: id.into(),
            channel_id: "ch".into(),
            contact_id: Some("u_1".into()),
            created_at: Utc::now(),
            channel_kind: None,
            last_inbound_at: None,
        }
    }

    /// A customer's message in conversation t_1.
    fn said(id: &str, text: &str) -> Message {
        Message {
            id: id.into(),
            conversation_id: "t_1".into(),
            author: baton_protocol::Author::EndUser,
            author_id: Some("u_1".into()),
            kind: "text".into(),
            text: Some(text.into()),
            payload: serde_json::json!({}),
            status: baton_protocol::DeliveryStatus::Received,
            status_reason: None,
            created_at: Utc::now(),
        }
    }

    /// The texts of conversation t_1's messages, oldest first.
    fn texts_of_t_1(store: &dyn Store) -> Vec<String> {
        let page = store
            .messages_before(Some("t_1"), None, 50, 1 << 20)
            .expect("messages");
        let page: serde_json::Value = serde_json::from_str(&page).expect("a page");
        let mut texts: Vec<String> = page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_string())
            .collect();
        texts.reverse();
        texts
    }

    #[test]
    fn a_groups_rows_go_a_table_at_a_time_yet_end_as_if_written_one_by_one() {
        let (store, _theirs, mut conn) = two_instances_with(&["Dana"]);
        let ours: &dyn Store = &store;
        let before = ours.last_seq().expect("seq");
        let ended = Arc::new(Mutex::new(Vec::new()));
        let mut group: std::collections::VecDeque<_> = [
            group_job("opens a conversation", &ended, |tx| {
                // Its messages need its conversation, queued in the same run: the conversations'
                // statement goes before the messages'.
                tx.put(EventData::Conversation(conversation("t_1")))?;
                tx.put(EventData::Message(said("m_1", "Hello")))?;
                tx.put(EventData::Message(said("m_2", "Are you there")))?;
                tx.put(EventData::Message(said("m_2", "Are you there?")))?;
                tx.add_link("ch", "phone", "+15550002", "u_1")?;
                Ok(())
            }),
            group_job("renames her twice", &ended, |tx| {
                tx.put(EventData::Contact(customer("u_1", "Dana R.")))?;
                tx.put(EventData::Message(said("m_3", "Hi again")))?;
                tx.put(EventData::Contact(customer("u_1", "Dana Reyes")))?;
                // A link already made stays the first one's.
                tx.add_link("ch", "phone", "+15550002", "u_2")?;
                Ok(())
            }),
            group_job("fails before sending", &ended, |tx| {
                tx.put(EventData::Contact(customer("u_3", "Lee")))?;
                tx.put(EventData::Message(said("m_4", "never sent")))?;
                Err(StoreError::Poisoned)
            }),
            group_job("fails after sending", &ended, |tx| {
                tx.put(EventData::Contact(customer("u_2", "Sam")))?;
                tx.put(EventData::Message(said("m_1", "Hello (lost)")))?;
                // A read the writer cannot answer sends everything queued, this job's rows too.
                tx.agent("ag_nobody")?;
                Err(StoreError::Poisoned)
            }),
            group_job("edits the first message", &ended, |tx| {
                tx.put(EventData::Message(said("m_1", "Hello!")))?;
                Ok(())
            }),
        ]
        .into();
        assert_eq!(
            commit_and_tell(&mut conn, &mut group, &ended),
            [
                ("edits the first message", true),
                ("fails after sending", false),
                ("fails before sending", false),
                ("opens a conversation", true),
                ("renames her twice", true),
            ]
        );
        assert_eq!(texts_of_t_1(ours), ["Hello!", "Are you there?", "Hi again"]);
        let read = ours.reader().expect("reader");
        let name = |id| read.contact(id).expect("read").map(|c| c.name);
        assert_eq!(name("u_1").as_deref(), Some("Dana Reyes"));
        assert_eq!((name("u_2"), name("u_3")), (None, None));
        assert_eq!(
            read.external_id("ch", "phone", "+15550002").expect("read"),
            Some("u_1".to_string())
        );
        // The log holds the committed jobs' events, and no gap where the failed ones were.
        let events = ours.events_after(before, 100).expect("events");
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (before + 1..=before + 8).collect::<Vec<_>>());
        assert!(events.iter().all(|e| match &e.data {
            EventData::Contact(c) => c.id == "u_1",
            EventData::Message(m) => m.id != "m_4",
            _ => true,
        }));
    }

    #[test]
    fn a_row_the_database_refuses_fails_its_group_once_and_then_only_its_own_job() {
        let (store, _theirs, mut conn) = two_instances_with(&["Dana"]);
        let ours: &dyn Store = &store;
        ours.write(|tx| tx.put(EventData::Conversation(conversation("t_1"))))
            .expect("conversation");
        let ended = Arc::new(Mutex::new(Vec::new()));
        let group = |ended: &Arc<Mutex<Vec<(&'static str, bool)>>>| {
            let jobs: std::collections::VecDeque<_> = [
                group_job("before", ended, |tx| {
                    tx.put(EventData::Message(said("m_1", "Hello"))).map(drop)
                }),
                group_job("refused", ended, |tx| {
                    // Its conversation does not exist: the database refuses the row.
                    let mut lost = said("m_2", "nowhere");
                    lost.conversation_id = "t_missing".into();
                    tx.put(EventData::Message(lost)).map(drop)
                }),
                group_job("after", ended, |tx| {
                    tx.put(EventData::Message(said("m_3", "Still there?")))
                        .map(drop)
                }),
            ]
            .into();
            jobs
        };
        // Queued together, the rows are refused together: no job is acknowledged.
        assert_eq!(
            commit_and_tell(&mut conn, &mut group(&ended), &ended),
            [("after", false), ("before", false), ("refused", false)]
        );
        assert!(texts_of_t_1(ours).is_empty());

        // Sent again (as Meta and bots do), the refused job fails alone.
        assert_eq!(
            commit_and_tell(&mut conn, &mut group(&ended), &ended),
            [("after", true), ("before", true), ("refused", false)]
        );
        assert_eq!(texts_of_t_1(ours), ["Hello", "Still there?"]);
    }

    #[test]
    fn a_write_refused_after_its_jobs_savepoint_fails_that_job_alone() {
        let (store, _theirs, mut conn) = two_instances_with(&["Dana"]);
        let ours: &dyn Store = &store;
        ours.write(|tx| tx.put(EventData::Conversation(conversation("t_1"))))
            .expect("conversation");
        let ended = Arc::new(Mutex::new(Vec::new()));
        let mut group: std::collections::VecDeque<_> = [
            group_job("before", &ended, |tx| {
                tx.put(EventData::Message(said("m_1", "Hello"))).map(drop)
            }),
            group_job("refused", &ended, |tx| {
                tx.put(EventData::Message(said("m_2", "never kept")))?;
                // Sends what is queued (the job before's rows, then this job's savepoint and
                // rows), then a call for a channel that does not exist, which is refused.
                tx.agent("ag_nobody")?;
                let call = Delivery {
                    channel_id: "ch_missing".into(),
                    conversation_id: "t_1".into(),
                    route: "message-from-agent".into(),
                    body: "{}".into(),
                    message_id: None,
                };
                tx.queue_delivery(&call, Utc::now())
            }),
            group_job("after", &ended, |tx| {
                tx.put(EventData::Message(said("m_3", "Still there?")))
                    .map(drop)
            }),
        ]
        .into();
        assert_eq!(
            commit_and_tell(&mut conn, &mut group, &ended),
            [("after", true), ("before", true), ("refused", false)]
        );
        assert_eq!(texts_of_t_1(ours), ["Hello", "Still there?"]);
    }

    #[test]
    fn a_new_customers_conversation_is_known_to_the_next_transaction_without_reading_it_back() {
        let url = testing::fresh_database();
        let store = PostgresStore::open(&url).expect("open");
        let ours: &dyn Store = &store;
        ours.write(|tx| add_channel(tx, "whatsapp"))
            .expect("channel");
        ours.write(|tx| {
            tx.put(EventData::Contact(customer("u_new", "New")))?;
            tx.add_link_to_new_id("ch", "conversation", "u_new", "t_new")?;
            tx.add_link("ch", "conversation", "u_old", "t_old")
        })
        .expect("write");
        let key = |id: &str| ("ch".to_string(), "conversation".to_string(), id.to_string());
        {
            let conn = store.writer.lock().expect("writer");
            let cache = conn.cache.borrow();
            assert_eq!(
                cache.links.get(&key("u_new")),
                Some(&Some("t_new".to_string()))
            );
            // A link whose key may have been there already is read when next asked for.
            assert_eq!(cache.links.get(&key("u_old")), None);
        }
        assert_eq!(
            ours.reader()
                .expect("reader")
                .external_id("ch", "conversation", "u_new")
                .expect("read"),
            Some("t_new".to_string()),
            "and it is stored"
        );
    }

    #[test]
    fn a_file_kept_through_one_instance_is_read_through_another_and_keeps_its_first_bytes() {
        let url = testing::fresh_database();
        let ours = PostgresStore::open(&url).expect("ours");
        let theirs = PostgresStore::open(&url).expect("theirs");
        assert!(ours.keeps_files());
        assert_eq!(theirs.file("uploads/abc").expect("read"), None);
        let size = |store: &PostgresStore| {
            store
                .reader()
                .and_then(|read| read.file_size("uploads/abc"))
                .expect("size")
        };
        assert_eq!(size(&theirs), None);
        let photo: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        ours.put_file("uploads/abc", &photo).expect("put");
        ours.put_file("uploads/abc", b"something else")
            .expect("put again");
        assert_eq!(theirs.file("uploads/abc").expect("read"), Some(photo));
        assert_eq!(size(&theirs), Some(70_000));
    }

    #[test]
    fn a_rolled_back_unlink_does_not_hide_another_instances_unlink_from_the_writer() {
        let (_ours, theirs, mut conn) = two_instances_with(&["Dana", "Sam"]);
        let announce = Announce::new(0);
        let lease = std::time::Duration::from_secs(30);
        let found = Arc::new(Mutex::new(Vec::new()));
        let job = |unlink_and_fail: bool| -> Box<dyn GroupJob> {
            let found = found.clone();
            Box::new(super::super::PendingJob {
                f: move |tx: &mut dyn Tx| -> Result<(), StoreError> {
                    if unlink_and_fail {
                        tx.unlink_external("ch", "phone", "+15550001")?;
                        return Err(StoreError::Poisoned);
                    }
                    let contact = tx.linked_contact("ch", "phone", "+15550001")?;
                    found.lock().expect("found").push(contact.map(|c| c.id));
                    Ok(())
                },
                answer: |_: Result<(), StoreError>| {},
                looks_for: Default::default(),
            })
        };
        // A job that unlinks and fails, then one that reads the link (and keeps it).
        let mut group: std::collections::VecDeque<_> = [job(true), job(false)].into();
        commit_group(&mut conn, &announce, &mut group, "i", lease);
        // Another instance gives the number to someone else.
        theirs
            .write(|tx| {
                tx.unlink_external("ch", "phone", "+15550001")?;
                tx.link_external("ch", "phone", "+15550001", "u_2")
            })
            .expect("move the number");
        let mut group: std::collections::VecDeque<_> = [job(false)].into();
        commit_group(&mut conn, &announce, &mut group, "i", lease);
        assert_eq!(
            *found.lock().expect("found"),
            [Some("u_1".to_string()), Some("u_2".to_string())]
        );
    }
}
