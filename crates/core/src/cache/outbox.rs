//! The device's outbox as stored: queued agent commands, in order, written on the durable
//! connection (an action shown as queued survives a power cut). Delivery is in `crate::outbox`.

use baton_protocol::{AgentCommand, CommandResult};
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Applied, Cache};
use crate::outbox::{FailureClass, OutboxError, OutboxItem, OutboxState};

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
            // One row this build cannot read (written by a newer one) must not hide the others:
            // it stays stored, untouched, and is left out of the list.
            let command = match decode_command(&path, &body) {
                Ok(command) => command,
                Err(e) => {
                    tracing::warn!(item = id, %action, error = %e, "outbox: an item this build cannot read is left as it is");
                    continue;
                }
            };
            items.push(OutboxItem {
                id,
                txn_id,
                action,
                command,
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
    pub(crate) fn complete(
        &mut self,
        id: i64,
        result: &CommandResult,
    ) -> Result<Applied, OutboxError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        let applied = super::confirm_in(&tx, &result.events)?;
        tx.commit()?;
        Ok(applied)
    }

    pub(crate) fn record_failure(
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
    pub(crate) fn due(&self) -> Result<Vec<OutboxItem>, OutboxError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn an_item_this_build_cannot_read_does_not_hide_the_others() {
        let (_dir, cache) = cache();
        cache
            .durable
            .execute(
                "INSERT INTO outbox (txn_id, action, path, body, conversation_id, created_at)
                 VALUES ('tx-new', 'teleport', '/handoffs/h_9/teleport', '{\"action\":\"teleport\"}', NULL, ?1)",
                [Utc::now().to_rfc3339()],
            )
            .expect("insert");
        let assign = AgentCommand::Assign {
            handoff_id: "h_1".into(),
        };
        cache.enqueue(&assign, "tx-1", Utc::now()).expect("enqueue");
        let items = cache.outbox().expect("list");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].command, assign);
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
