//! Moving a team from SQLite to PostgreSQL (`baton-hub migrate --from-data DIR --to URL`): every
//! table of a SQLite hub, the event log with its seqs included, copied into an empty PostgreSQL
//! database in one transaction. Devices keep syncing from their cursors: the log's seqs, the
//! entities' ids and the sign-in tokens are the same on the other side.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use tokio_postgres::types::ToSql;

use super::serving::Serving;
use super::StoreError;

/// How a SQLite column becomes a PostgreSQL one.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    /// An integer column that PostgreSQL keeps as `INTEGER`.
    Int,
    /// An integer column that PostgreSQL keeps as `BIGINT`.
    BigInt,
    /// SQLite's 0/1 as a boolean.
    Bool,
    /// RFC 3339 text as a `TIMESTAMPTZ`.
    Time,
}

use Kind::{BigInt, Bool, Int, Text, Time};

/// Every table, in an order that satisfies the foreign keys, with the columns copied and how.
/// Rows go in SQLite's rowid order, so PostgreSQL's `rid` keeps their order.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "agents",
        &[
            ("id", Text),
            ("email", Text),
            ("password_hash", Text),
            ("disabled", Bool),
            ("data", Text),
        ],
    ),
    (
        "tokens",
        &[
            ("token_hash", Text),
            ("agent_id", Text),
            ("created_at", Time),
            ("last_used_at", Time),
        ],
    ),
    (
        "channels",
        &[
            ("id", Text),
            ("kind", Text),
            ("name", Text),
            ("secret_hash", Text),
            ("webhook_url", Text),
            ("settings", Text),
            ("created_at", Time),
        ],
    ),
    (
        "contacts",
        &[("id", Text), ("channel_id", Text), ("data", Text)],
    ),
    (
        "conversations",
        &[
            ("id", Text),
            ("channel_id", Text),
            ("contact_id", Text),
            ("data", Text),
        ],
    ),
    (
        "handoffs",
        &[
            ("id", Text),
            ("conversation_id", Text),
            ("status", Text),
            ("assignee", Text),
            ("data", Text),
        ],
    ),
    (
        "messages",
        &[("id", Text), ("conversation_id", Text), ("data", Text)],
    ),
    (
        "notes",
        &[("id", Text), ("conversation_id", Text), ("data", Text)],
    ),
    ("templates", &[("id", Text), ("data", Text)]),
    (
        "reads",
        &[
            ("agent_id", Text),
            ("conversation_id", Text),
            ("data", Text),
        ],
    ),
    ("settings", &[("key", Text), ("value", Text)]),
    (
        "commands",
        &[
            ("agent_id", Text),
            ("txn_id", Text),
            ("status", Int),
            ("response", Text),
            ("fingerprint", Text),
            ("created_at", Time),
        ],
    ),
    (
        "deliveries",
        &[
            ("id", BigInt),
            ("channel_id", Text),
            ("conversation_id", Text),
            ("route", Text),
            ("body", Text),
            ("message_id", Text),
            ("state", Text),
            ("attempts", Int),
            ("next_attempt_at", Time),
            ("last_error", Text),
            ("created_at", Time),
        ],
    ),
    (
        "external_ids",
        &[
            ("channel_id", Text),
            ("kind", Text),
            ("external_id", Text),
            ("internal_id", Text),
        ],
    ),
    (
        "draft_deadlines",
        &[("message_id", Text), ("due_at_ms", BigInt)],
    ),
    (
        "devices",
        &[
            ("id", Text),
            ("agent_id", Text),
            ("token_hash", Text),
            ("platform", Text),
            ("address", Text),
            ("data", Text),
        ],
    ),
    ("events", &[("seq", BigInt), ("kind", Text), ("data", Text)]),
];

/// What was copied: rows per table, and the log's newest seq.
#[derive(Debug, Default)]
pub struct Moved {
    pub rows: Vec<(&'static str, u64)>,
    pub last_seq: u64,
}

/// The files a SQLite hub keeps in `DATA/media` (agents' uploads, customers' media), into the
/// database, where hubs on PostgreSQL keep them ([`crate::files`]): a reply queued with a file
/// still goes out, and a photo already fetched is not fetched again.
fn copy_files(tx: &tokio_postgres::Transaction<'_>, media: &Path) -> Result<u64, StoreError> {
    let insert = super::postgres::wait(
        tx.prepare("INSERT INTO files (name, bytes) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"),
    )?;
    let mut count = 0;
    let files = crate::files::in_media_dir(media).map_err(|source| StoreError::DataDir {
        path: media.to_path_buf(),
        source,
    })?;
    for (kind, id, path) in files {
        let bytes = std::fs::read(&path).map_err(|source| StoreError::DataDir { path, source })?;
        let name = kind.name(&id);
        super::postgres::wait(tx.execute(&insert, &[&name, &bytes]))?;
        count += 1;
    }
    Ok(count)
}

/// One SQLite value as the parameter its PostgreSQL column takes.
fn param(
    value: ValueRef<'_>,
    kind: Kind,
    table: &str,
    column: &str,
) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
    let bad = |why: &str| {
        StoreError::Database(
            format!("{table}.{column}: {why}; the SQLite database may be damaged").into(),
        )
    };
    let text = |v: ValueRef<'_>| -> Result<Option<String>, StoreError> {
        match v {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => Ok(Some(
                std::str::from_utf8(t)
                    .map_err(|_| bad("text that is not UTF-8"))?
                    .to_string(),
            )),
            ValueRef::Integer(i) => Ok(Some(i.to_string())),
            _ => Err(bad("a value of an unexpected type")),
        }
    };
    let integer = |v: ValueRef<'_>| -> Result<Option<i64>, StoreError> {
        match v {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(i) => Ok(Some(i)),
            _ => Err(bad("a value that is not an integer")),
        }
    };
    Ok(match kind {
        Text => Box::new(text(value)?),
        Int => Box::new(
            integer(value)?
                .map(|i| i32::try_from(i).map_err(|_| bad("an integer out of range")))
                .transpose()?,
        ),
        BigInt => Box::new(integer(value)?),
        Bool => Box::new(integer(value)?.map(|i| i != 0)),
        Time => Box::new(
            text(value)?
                .map(|t| {
                    DateTime::parse_from_rfc3339(&t)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|_| bad("a time that is not RFC 3339"))
                })
                .transpose()?,
        ),
    })
}

/// Copies the SQLite hub in `data_dir` into the PostgreSQL database at `url`, which must hold no
/// team yet (it is migrated to the current schema first). All or nothing. Refused while a hub
/// serves from `data_dir` ([`Serving`]).
pub fn sqlite_to_postgres(data_dir: &Path, url: &str) -> Result<Moved, StoreError> {
    let source_path = data_dir.join("hub.sqlite");
    if !source_path.exists() {
        return Err(StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no hub.sqlite in it"),
        });
    }
    // Held for the whole copy (a hub started meanwhile logs that it is not alone).
    let _stopped = Serving::claim(data_dir).map_err(|e| match e {
        StoreError::DataDir { path, source }
            if source.kind() == std::io::ErrorKind::WouldBlock =>
        {
            StoreError::DataDir {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "a hub is serving from it: stop it first, or what it takes in meanwhile is lost",
                ),
            }
        }
        other => other,
    })?;
    // Brings the SQLite database to the current schema too (an older hub's data moves as well).
    drop(super::SqliteStore::open(data_dir)?);
    let source = rusqlite::Connection::open_with_flags(
        &source_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    // One consistent view of the source for the whole copy.
    source.execute_batch("BEGIN")?;
    let target = super::postgres::PostgresStore::open(url)?;
    let mut moved = Moved::default();
    target.with_writer(|client| {
        let tx = super::postgres::wait(client.transaction())?;
        let occupied: bool = super::postgres::wait(tx.query_one(
            "SELECT EXISTS (SELECT 1 FROM agents) OR EXISTS (SELECT 1 FROM events)",
            &[],
        ))?
        .get(0);
        if occupied {
            return Err(StoreError::Database(
                "the PostgreSQL database already holds a team; migrate into an empty one".into(),
            ));
        }
        for (table, columns) in TABLES {
            let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
            let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
            // Deliveries keep their ids (the identity column is told so).
            let overriding = if *table == "deliveries" {
                " OVERRIDING SYSTEM VALUE"
            } else {
                ""
            };
            let insert = super::postgres::wait(tx.prepare(&format!(
                "INSERT INTO {table} ({}){overriding} VALUES ({})",
                names.join(", "),
                placeholders.join(", ")
            )))?;
            // external_ids is a WITHOUT ROWID table: its key is its order.
            let order = if *table == "external_ids" {
                "channel_id, kind, external_id"
            } else {
                "rowid"
            };
            let mut select = source.prepare(&format!(
                "SELECT {} FROM {table} ORDER BY {order}",
                names.join(", ")
            ))?;
            let mut rows = select.query([])?;
            let mut count = 0u64;
            while let Some(row) = rows.next()? {
                let mut params: Vec<Box<dyn ToSql + Sync + Send>> =
                    Vec::with_capacity(columns.len());
                for (i, (column, kind)) in columns.iter().enumerate() {
                    params.push(param(row.get_ref(i)?, *kind, table, column)?);
                }
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                super::postgres::wait(tx.execute(&insert, &refs))?;
                count += 1;
            }
            moved.rows.push((table, count));
        }
        // New deliveries continue after the copied ids; new seqs after the log's end (or its
        // trimmed floor, if the log was trimmed to nothing).
        super::postgres::wait(tx.batch_execute(
            "SELECT setval(pg_get_serial_sequence('deliveries', 'id'),
                           COALESCE((SELECT MAX(id) FROM deliveries), 0) + 1, false)",
        ))?;
        let floor: i64 = super::postgres::wait(
            tx.query_opt("SELECT value FROM settings WHERE key = 'log_floor'", &[]),
        )?
        .and_then(|r| r.get::<_, String>(0).parse().ok())
        .unwrap_or(0);
        let last: i64 =
            super::postgres::wait(tx.query_one("SELECT COALESCE(MAX(seq), 0) FROM events", &[]))?
                .get(0);
        let last = last.max(floor);
        super::postgres::wait(tx.execute("UPDATE log_head SET last = $1", &[&last]))?;
        moved
            .rows
            .push(("files", copy_files(&tx, &data_dir.join("media"))?));
        super::postgres::wait(tx.commit())?;
        moved.last_seq = last as u64;
        Ok(())
    })?;
    Ok(moved)
}
