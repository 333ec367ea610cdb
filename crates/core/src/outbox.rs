//! The device's outbox: every agent action is written here first, then delivered to the hub in
//! order, each with its `txn_id` so the hub applies it once however often it is sent.
//!
//! A delivery that fails is classified (see [`FailureClass`]): network and transient failures are
//! retried with backoff (honouring `Retry-After`), and everything behind them waits, so order holds;
//! a permanent refusal stops that item with the hub's reason, for the agent to retry, edit or
//! discard, and the rest go on. When the hub has applied an item, its resulting events are written
//! to the cache and the item removed in one transaction: a crash between the two cannot lose it or
//! show it twice, and a lost response is answered from the hub's record on the next attempt.

use std::time::Duration;

use baton_protocol::backoff::Backoff;
use baton_protocol::{AgentCommand, CommandResult};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::cache::{Applied, Cache, CacheError};
use crate::client::{ClientError, HubClient};

/// Why a delivery did not go through, and so what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The hub could not be reached (or the answer was lost): retried with backoff.
    Network,
    /// The hub is there but could not do it now (5xx, 429, signed out): retried with backoff.
    Transient,
    /// The hub refused it (a conflict, a closed handoff, a bad request): stopped until the agent
    /// retries, edits or discards it.
    Permanent,
}

impl FailureClass {
    fn as_str(self) -> &'static str {
        match self {
            FailureClass::Network => "network",
            FailureClass::Transient => "transient",
            FailureClass::Permanent => "permanent",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "network" => Some(FailureClass::Network),
            "transient" => Some(FailureClass::Transient),
            "permanent" => Some(FailureClass::Permanent),
            _ => None,
        }
    }

    /// Classifies a failed delivery; the second value is how long the hub asked us to wait.
    pub fn of(error: &ClientError) -> (Self, Option<Duration>) {
        match error {
            ClientError::Network(_) => (FailureClass::Network, None),
            ClientError::Unauthorized => (FailureClass::Transient, None),
            ClientError::Refused {
                status,
                retry_after,
                ..
            } if *status == 429 || *status >= 500 => (FailureClass::Transient, *retry_after),
            ClientError::Refused { .. } | ClientError::BadUrl(_) => (FailureClass::Permanent, None),
            // The hub answered 2xx with a body we cannot read: it applied the command. Retrying
            // with the same txn_id is harmless and gets the recorded answer.
            ClientError::Protocol(_) => (FailureClass::Transient, None),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Queued,
    Failed,
}

/// One queued action.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct OutboxItem {
    pub id: i64,
    pub txn_id: String,
    /// What the agent did: `message`, `note`, `assign`, `resolve`, …
    pub action: String,
    pub command: AgentCommand,
    pub conversation_id: Option<String>,
    pub state: OutboxState,
    pub attempts: u32,
    pub error_class: Option<FailureClass>,
    /// The hub's reason (permanent) or what went wrong last (while retrying).
    pub error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl OutboxItem {
    /// The text of a queued message or note, for showing it as a pending local echo.
    pub fn text(&self) -> Option<&str> {
        self.command.text()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("no outbox item {0}")]
    NoSuchItem(i64),
    #[error("item {0} is a {1}, which has no text to edit")]
    NotEditable(i64, String),
    #[error("an outbox item this build cannot read: {0}")]
    Unreadable(String),
}

impl From<rusqlite::Error> for OutboxError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Cache(e.into())
    }
}

impl From<serde_json::Error> for OutboxError {
    fn from(e: serde_json::Error) -> Self {
        Self::Cache(e.into())
    }
}

/// How long a delivery waits before its next try: from a second, doubling to a minute, jittered,
/// unless the hub asks for longer (the shared policy, [`baton_protocol::backoff`]).
pub const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

/// The hub's refusal of one item: its error code (`conflict`, `closed`, …) and explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub id: i64,
    pub code: String,
    pub message: String,
}

/// What one delivery attempt of the queue came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivered {
    /// Items the hub applied (removed from the outbox).
    pub delivered: Vec<i64>,
    /// Items the hub refused (now failed, with the reason).
    pub refused: Vec<Refusal>,
    /// The queue stopped here: network or transient trouble; try again at this time.
    pub retry_at: Option<DateTime<Utc>>,
    /// What the hub's answers changed in the cache.
    pub applied: Applied,
}

impl Cache {
    /// Queues a command; returns its item. Queuing the same `txn_id` again changes nothing.
    pub fn enqueue(
        &self,
        command: &AgentCommand,
        txn_id: &str,
        now: DateTime<Utc>,
    ) -> Result<OutboxItem, OutboxError> {
        self.durable.execute(
            "INSERT INTO outbox (txn_id, action, path, body, conversation_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(txn_id) DO NOTHING",
            params![
                txn_id,
                command.name(),
                command.path(),
                serde_json::to_string(command)?,
                command.conversation_id(),
                now.to_rfc3339()
            ],
        )?;
        let id: i64 =
            self.conn
                .query_row("SELECT id FROM outbox WHERE txn_id = ?1", [txn_id], |r| {
                    r.get(0)
                })?;
        self.outbox_item(id)
    }

    /// Every queued or failed item, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxItem>, OutboxError> {
        self.outbox_where("1", &[])
    }

    /// A conversation's queued and failed messages, for showing them after the delivered ones.
    pub fn outbox_for(&self, conversation_id: &str) -> Result<Vec<OutboxItem>, OutboxError> {
        self.outbox_where("conversation_id = ?1", &[conversation_id])
    }

    pub fn outbox_item(&self, id: i64) -> Result<OutboxItem, OutboxError> {
        self.outbox_where("id = ?1", &[&id.to_string()])?
            .pop()
            .ok_or(OutboxError::NoSuchItem(id))
    }

    fn outbox_where(&self, clause: &str, args: &[&str]) -> Result<Vec<OutboxItem>, OutboxError> {
        let sql = format!(
            "SELECT id, txn_id, action, path, body, conversation_id, state, attempts, error_class,
                    error, next_attempt_at, created_at
             FROM outbox WHERE {clause} ORDER BY id"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, u32>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<String>>(10)?,
                r.get::<_, String>(11)?,
            ))
        })?;
        let time = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .ok()
        };
        let mut items = Vec::new();
        for row in rows {
            let (
                id,
                txn_id,
                action,
                path,
                body,
                conversation_id,
                state,
                attempts,
                class,
                error,
                next,
                created,
            ) = row?;
            items.push(OutboxItem {
                id,
                txn_id,
                action,
                command: decode_command(&path, &body)?,
                conversation_id,
                state: if state == "failed" {
                    OutboxState::Failed
                } else {
                    OutboxState::Queued
                },
                attempts,
                error_class: class.as_deref().and_then(FailureClass::parse),
                error,
                next_attempt_at: next.as_deref().and_then(time),
                created_at: time(&created).unwrap_or_default(),
            });
        }
        Ok(items)
    }

    /// Puts a failed (or waiting) item back at the front of the line, to be sent now.
    pub fn retry(&self, id: i64) -> Result<OutboxItem, OutboxError> {
        let changed = self.durable.execute(
            "UPDATE outbox SET state = 'queued', next_attempt_at = NULL WHERE id = ?1",
            [id],
        )?;
        if changed == 0 {
            return Err(OutboxError::NoSuchItem(id));
        }
        self.outbox_item(id)
    }

    /// Drops an item the agent no longer wants sent.
    pub fn discard(&self, id: i64) -> Result<OutboxItem, OutboxError> {
        let item = self.outbox_item(id)?;
        self.durable
            .execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        Ok(item)
    }

    /// Changes the text of a queued or failed message or note and queues it again. It gets a new
    /// `txn_id`: it is a different command from the one the hub may have refused.
    pub fn edit(&self, id: i64, text: &str, new_txn_id: &str) -> Result<OutboxItem, OutboxError> {
        let item = self.outbox_item(id)?;
        if item.text().is_none() {
            return Err(OutboxError::NotEditable(id, item.action));
        }
        let Some(command) = item.command.with_text(text) else {
            return Err(OutboxError::NotEditable(id, item.action));
        };
        let body = serde_json::to_string(&command)?;
        self.durable.execute(
            "UPDATE outbox SET body = ?2, txn_id = ?3, state = 'queued', error = NULL,
                 error_class = NULL, next_attempt_at = NULL
             WHERE id = ?1",
            params![id, body, new_txn_id],
        )?;
        self.outbox_item(id)
    }

    /// The hub applied `id`: write its events and drop the item, in one transaction.
    fn complete(&mut self, id: i64, result: &CommandResult) -> Result<Applied, OutboxError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        let applied = crate::cache::confirm_in(&tx, &result.events)?;
        tx.commit()?;
        Ok(applied)
    }

    fn record_failure(
        &self,
        id: i64,
        class: FailureClass,
        error: &str,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<(), OutboxError> {
        self.durable.execute(
            "UPDATE outbox SET attempts = attempts + 1, error_class = ?2, error = ?3,
                 next_attempt_at = ?4, state = ?5
             WHERE id = ?1",
            params![
                id,
                class.as_str(),
                error,
                next_attempt_at.map(|t| t.to_rfc3339()),
                if class == FailureClass::Permanent {
                    "failed"
                } else {
                    "queued"
                }
            ],
        )?;
        Ok(())
    }

    /// The queued items in delivery order, and the first one's earliest attempt time.
    fn due(&self) -> Result<Vec<OutboxItem>, OutboxError> {
        Ok(self
            .outbox()?
            .into_iter()
            .filter(|i| i.state == OutboxState::Queued)
            .collect())
    }

    pub fn outbox_counts(&self) -> Result<(usize, usize), OutboxError> {
        let (queued, failed): (i64, i64) = self.conn.query_row(
            "SELECT COUNT(*) FILTER (WHERE state = 'queued'), COUNT(*) FILTER (WHERE state = 'failed') FROM outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((queued as usize, failed as usize))
    }
}

/// An item's command as stored: the command itself, or — for items queued by an older build —
/// the route and wire body it was queued as.
fn decode_command(path: &str, body: &str) -> Result<AgentCommand, OutboxError> {
    if let Ok(command) = serde_json::from_str::<AgentCommand>(body) {
        return Ok(command);
    }
    let fields: baton_protocol::CommandFields = serde_json::from_str(body)?;
    AgentCommand::from_path(path, &fields).map_err(|e| OutboxError::Unreadable(e.to_string()))
}

/// Delivers queued items in order until the queue is empty or a network/transient failure stops
/// it. Items whose retry time has not come yet stop the queue too (unless `force`).
///
/// `cache` is locked only between network calls, so readers are never held up by the network.
pub async fn deliver(
    cache: &std::sync::Mutex<Cache>,
    client: &HubClient,
    now: impl Fn() -> DateTime<Utc>,
    force: bool,
) -> Result<Delivered, OutboxError> {
    let lock = || match cache.lock() {
        Ok(c) => c,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut report = Delivered::default();
    let due = lock().due()?;
    for item in due {
        if let Some(at) = item.next_attempt_at {
            if at > now() && !force {
                report.retry_at = Some(at);
                return Ok(report);
            }
        }
        match client.command(&item.txn_id, &item.command).await {
            Ok(result) => {
                let applied = lock().complete(item.id, &result)?;
                merge(&mut report.applied, applied);
                report.delivered.push(item.id);
                tracing::info!(item = item.id, action = %item.action, "outbox: delivered");
            }
            Err(error) => {
                let (class, retry_after) = FailureClass::of(&error);
                let message = error.to_string();
                match class {
                    FailureClass::Permanent => {
                        lock().record_failure(item.id, class, &message, None)?;
                        tracing::warn!(item = item.id, action = %item.action, error = %message, "outbox: refused by the hub");
                        let code = match &error {
                            ClientError::Refused { code, .. } => code.clone(),
                            _ => "refused".into(),
                        };
                        report.refused.push(Refusal {
                            id: item.id,
                            code,
                            message,
                        });
                    }
                    FailureClass::Network | FailureClass::Transient => {
                        let at = now()
                            + chrono::TimeDelta::from_std(RETRY.delay(
                                item.attempts + 1,
                                retry_after,
                                rand::random(),
                            ))
                            .unwrap_or(chrono::TimeDelta::seconds(60));
                        lock().record_failure(item.id, class, &message, Some(at))?;
                        tracing::info!(item = item.id, class = class.as_str(), error = %message, "outbox: will retry");
                        report.retry_at = Some(at);
                        return Ok(report);
                    }
                }
            }
        }
    }
    Ok(report)
}

fn merge(into: &mut Applied, more: Applied) {
    into.applied += more.applied;
    into.new_handoffs.extend(more.new_handoffs);
    into.conversations.extend(more.conversations);
    into.conversations.sort();
    into.conversations.dedup();
}

/// The item a txn_id was queued as, if it is still in the outbox.
pub fn find_by_txn(cache: &Cache, txn_id: &str) -> Result<Option<OutboxItem>, OutboxError> {
    let id: Option<i64> = cache
        .conn
        .query_row("SELECT id FROM outbox WHERE txn_id = ?1", [txn_id], |r| {
            r.get(0)
        })
        .optional()?;
    id.map(|id| cache.outbox_item(id)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classed_by_what_the_hub_said() {
        let refused = |status: u16| ClientError::Refused {
            status,
            code: "x".into(),
            message: "m".into(),
            retry_after: None,
        };
        assert_eq!(
            FailureClass::of(&ClientError::Network("down".into())).0,
            FailureClass::Network
        );
        assert_eq!(FailureClass::of(&refused(503)).0, FailureClass::Transient);
        assert_eq!(FailureClass::of(&refused(429)).0, FailureClass::Transient);
        assert_eq!(FailureClass::of(&refused(409)).0, FailureClass::Permanent);
        assert_eq!(FailureClass::of(&refused(400)).0, FailureClass::Permanent);
    }

    fn cache() -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().expect("dir");
        let cache = Cache::open(&dir.path().join("c.sqlite")).expect("open");
        (dir, cache)
    }

    #[test]
    fn an_item_survives_reopening_and_keeps_its_txn_id() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.sqlite");
        {
            let cache = Cache::open(&path).expect("open");
            cache
                .enqueue(
                    &baton_protocol::AgentCommand::Message {
                        conversation_id: "t_1".into(),
                        text: Some("hi".into()),
                        kind: None,
                        payload: None,
                    },
                    "tx-1",
                    Utc::now(),
                )
                .expect("enqueue");
        }
        let cache = Cache::open(&path).expect("reopen");
        let items = cache.outbox().expect("list");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].txn_id, "tx-1");
        assert_eq!(items[0].text(), Some("hi"));
    }

    #[test]
    fn the_outbox_is_written_with_full_durability_while_synced_data_is_not() {
        let (_dir, cache) = cache();
        assert_eq!(cache.outbox_durability().expect("pragma"), 2, "FULL");
        let synced: i64 = cache
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(synced, 1, "NORMAL");
    }

    #[test]
    fn queueing_the_same_txn_id_twice_keeps_one_item() {
        let (_dir, cache) = cache();
        for _ in 0..2 {
            cache
                .enqueue(
                    &baton_protocol::AgentCommand::Assign {
                        handoff_id: "h".into(),
                    },
                    "tx-same",
                    Utc::now(),
                )
                .expect("enqueue");
        }
        assert_eq!(cache.outbox().expect("list").len(), 1);
    }

    #[test]
    fn an_item_queued_by_an_older_build_as_route_and_body_is_still_delivered_as_its_command() {
        let (_dir, cache) = cache();
        cache
            .durable
            .execute(
                "INSERT INTO outbox (txn_id, action, path, body, conversation_id, created_at)
                 VALUES ('tx-old', 'transfer', '/handoffs/h_9/transfer',
                         '{\"to\":\"b@x\",\"txn_id\":\"tx-old\"}', NULL, ?1)",
                [Utc::now().to_rfc3339()],
            )
            .expect("insert");
        assert_eq!(
            cache.outbox().expect("list")[0].command,
            AgentCommand::Transfer {
                handoff_id: "h_9".into(),
                to: "b@x".into()
            }
        );
    }

    #[test]
    fn editing_a_failed_message_queues_it_again_under_a_new_txn_id() {
        let (_dir, cache) = cache();
        let item = cache
            .enqueue(
                &baton_protocol::AgentCommand::Message {
                    conversation_id: "t".into(),
                    text: Some("helo".into()),
                    kind: None,
                    payload: None,
                },
                "tx-a",
                Utc::now(),
            )
            .expect("enqueue");
        cache
            .record_failure(
                item.id,
                FailureClass::Permanent,
                "the handoff is closed",
                None,
            )
            .expect("fail");
        assert_eq!(
            cache.outbox_item(item.id).expect("item").state,
            OutboxState::Failed
        );
        let edited = cache.edit(item.id, "hello", "tx-b").expect("edit");
        assert_eq!(edited.state, OutboxState::Queued);
        assert_eq!(edited.text(), Some("hello"));
        assert_eq!(edited.txn_id, "tx-b");
        assert!(cache.discard(item.id).is_ok());
        assert!(matches!(
            cache.outbox_item(item.id),
            Err(OutboxError::NoSuchItem(_))
        ));
    }
}
