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
use baton_protocol::AgentCommand;
use chrono::{DateTime, Utc};

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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FailureClass::Network => "network",
            FailureClass::Transient => "transient",
            FailureClass::Permanent => "permanent",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
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
#[non_exhaustive]
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

/// How long a delivery waits before its next try: a second, doubling to a minute, unless the hub
/// asks for longer (the shared policy, [`baton_protocol::backoff`]).
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
                            // Full delay, no jitter: one device's own queue has no crowd to spread.
                            + chrono::TimeDelta::from_std(RETRY.delay(
                                item.attempts + 1,
                                retry_after,
                                1.0,
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
}
