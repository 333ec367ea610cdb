//! Keeps the local cache in step with the hub's event log.
//!
//! There is one path for catch-up and live: the stream sends every event after the cache's cursor,
//! then new ones as they happen. Events are applied in batches (whatever has arrived, up to
//! [`MAX_BATCH`]), each batch and its cursor in one transaction. When the connection drops the
//! engine waits a jittered, growing delay (capped at [`MAX_BACKOFF`]) and resumes from the cursor,
//! so a hub restart costs nothing but the wait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_protocol::backoff::Backoff;
use baton_protocol::{Handoff, RawEvent, StreamFrame, StreamNotice};
use futures_util::{FutureExt, StreamExt};
use rand::Rng;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::cache::{Applied, Backfill, Cache, CacheError, Incoming, UnreadableEvent};
use crate::client::{ClientError, HubClient};

pub const MAX_BATCH: usize = 500;
/// Events per catch-up request (the hub's largest page), applied in one transaction each.
pub const CATCH_UP_PAGE: u32 = 1000;
/// Messages per backfill request.
pub const BACKFILL_PAGE: u32 = 1000;
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the app should know about, as it happens.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Update {
    /// A handoff this device had not seen before.
    NewHandoff {
        handoff: Handoff,
    },
    /// A known handoff went to an agent (taken, transferred or routed): news to the new holder.
    HandedOver {
        handoff: Handoff,
    },
    /// A waiting handoff was escalated (it waited past its channel's target).
    Escalated {
        handoff: Handoff,
    },
    /// A customer wrote a message this device had not seen before.
    CustomerWrote {
        message: baton_protocol::Message,
    },
    /// Something in these conversations changed (messages, handoffs, customer, read marks).
    InboxChanged {
        conversations: Vec<String>,
    },
    /// The team changed: an agent (presence, name, capacity), a template or the tag list.
    TeamChanged,
    Connection {
        state: ConnectionState,
    },
    /// The hub no longer accepts the token: the agent must sign in again.
    SignedOut,
    /// The outbox's counts changed: actions waiting for the hub, and those it refused.
    OutboxChanged {
        queued: usize,
        failed: usize,
    },
    /// How far the history backfill has got.
    History {
        progress: Backfill,
    },
    /// An event this build could not read was kept aside; everything else was applied.
    Unreadable {
        event: UnreadableEvent,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    /// Caught up with the hub and receiving live events.
    Live {
        seq: u64,
    },
    /// Disconnected; the engine retries after `retry_in_ms`.
    Offline {
        error: String,
        retry_in_ms: u64,
    },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The cache shared between the sync engine (writer) and the app's readers.
pub type SharedCache = Arc<Mutex<Cache>>;

#[derive(Clone)]
pub struct SyncEngine {
    client: HubClient,
    cache: SharedCache,
    updates: mpsc::Sender<Update>,
}

impl SyncEngine {
    pub fn new(client: HubClient, cache: SharedCache, updates: mpsc::Sender<Update>) -> Self {
        Self {
            client,
            cache,
            updates,
        }
    }

    /// Pages through the log until the cache has everything the hub has now; returns the cursor.
    /// A new cache starts from a snapshot instead of replaying the whole log, and so does one whose
    /// cursor the hub no longer keeps (410).
    pub async fn catch_up(&self) -> Result<u64, SyncError> {
        if self.cursor().await? == 0 {
            self.snapshot().await?;
        }
        loop {
            let after = self.cursor().await?;
            let page = match self.client.events(after, CATCH_UP_PAGE).await {
                Err(e) if e.is_gone() => {
                    tracing::info!(
                        after,
                        "sync: the hub no longer has our cursor; taking a snapshot"
                    );
                    self.snapshot().await?;
                    continue;
                }
                other => other?,
            };
            if page.events.is_empty() {
                self.with_cache(|c| c.mark_synced(chrono::Utc::now()))
                    .await?;
                return Ok(after);
            }
            match self.apply(page.events).await {
                // A page is the log itself, so a hole in it is the hub's fault: never skip over
                // it; start again from a snapshot, which has every entity as it is now.
                Err(SyncError::Cache(CacheError::Gap { cursor, found })) => {
                    tracing::error!(
                        cursor,
                        found,
                        "sync: the hub's log has a hole; taking a snapshot"
                    );
                    self.snapshot().await?;
                }
                other => {
                    other?;
                }
            }
        }
    }

    /// Replaces the synced state with the hub's current one (outbox and drafts stay), page by
    /// page; the log is then followed from the first page's seq.
    pub async fn snapshot(&self) -> Result<u64, SyncError> {
        let mut page = self.client.snapshot(None).await?;
        let seq = page.seq;
        let mut first = true;
        loop {
            let next = page.next.clone();
            let applied = self
                .with_cache(move |c| c.apply_snapshot_page(&page, first, seq))
                .await?;
            first = false;
            if applied.team_changed {
                self.emit(Update::TeamChanged).await;
            }
            if !applied.conversations.is_empty() {
                self.emit(Update::InboxChanged {
                    conversations: applied.conversations,
                })
                .await;
            }
            match next {
                Some(next) => page = self.client.snapshot(Some(&next)).await?,
                None => return Ok(seq),
            }
        }
    }

    /// Fetches older messages until the local history is complete or reaches back to
    /// `oldest_wanted`: first the whole history of every conversation with an open handoff (the
    /// work at hand), then everything else, newest first. `progress` hears after each page of the
    /// second part. Resumes where it stopped last time.
    pub async fn backfill(
        &self,
        oldest_wanted: Option<chrono::DateTime<chrono::Utc>>,
        progress: impl Fn(&Backfill),
    ) -> Result<Backfill, SyncError> {
        let open = self.with_cache(|c| c.conversations_to_backfill()).await?;
        for (conversation, mut next) in open {
            loop {
                let page = self
                    .client
                    .messages_before(Some(&conversation), next, BACKFILL_PAGE)
                    .await?;
                next = page.next;
                let id = conversation.clone();
                let done = self
                    .with_cache(move |c| c.apply_conversation_backfill(&id, &page))
                    .await?;
                self.emit(Update::InboxChanged {
                    conversations: vec![conversation.clone()],
                })
                .await;
                if done {
                    break;
                }
            }
        }
        loop {
            let state = self.with_cache(|c| c.backfill()).await?;
            if state.done {
                progress(&state);
                return Ok(state);
            }
            let page = self
                .client
                .messages_before(None, state.next, BACKFILL_PAGE)
                .await?;
            let conversations: Vec<String> = page
                .messages
                .iter()
                .map(|m| m.conversation_id.clone())
                .collect();
            let state = self
                .with_cache(move |c| c.apply_backfill(&page, oldest_wanted))
                .await?;
            progress(&state);
            if !conversations.is_empty() {
                let mut conversations = conversations;
                conversations.sort();
                conversations.dedup();
                self.emit(Update::InboxChanged { conversations }).await;
            }
        }
    }

    /// Runs `f` on the cache off the async threads.
    async fn with_cache<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Cache) -> Result<T, CacheError> + Send + 'static,
    ) -> Result<T, SyncError> {
        let cache = self.cache.clone();
        let value = tokio::task::spawn_blocking(move || {
            let mut cache = match cache.lock() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            f(&mut cache)
        })
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))??;
        Ok(value)
    }

    /// Follows the stream until `stop` turns true, reconnecting with backoff. Returns early only
    /// when the hub refuses the token.
    pub async fn follow(&self, mut stop: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            self.emit(Update::Connection {
                state: ConnectionState::Connecting,
            })
            .await;
            let error = tokio::select! {
                result = self.follow_once(&mut failures) => match result {
                    Err(SyncError::Client(ClientError::Unauthorized)) => {
                        self.emit(Update::SignedOut).await;
                        return;
                    }
                    Err(e) => e.to_string(),
                    Ok(()) => "the hub closed the stream".to_string(),
                },
                _ = stop.changed() => return,
            };
            failures = failures.saturating_add(1);
            // Attempt n waits up to MIN_BACKOFF · 2^n: the first reconnect is already spread out.
            let delay = RECONNECT.delay(failures + 1, None, rand::thread_rng().gen());
            tracing::info!(%error, retry_in_ms = delay.as_millis() as u64, "sync: disconnected");
            self.emit(Update::Connection {
                state: ConnectionState::Offline {
                    error,
                    retry_in_ms: delay.as_millis() as u64,
                },
            })
            .await;
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One connection: catch up from the cursor, then apply live events until it breaks.
    async fn follow_once(&self, failures: &mut u32) -> Result<(), SyncError> {
        if self.cursor().await? == 0 {
            self.snapshot().await?;
        }
        let mut stream = match self.client.stream(self.cursor().await?).await {
            Err(e) if e.is_gone() => {
                tracing::info!("sync: the hub no longer has our cursor; taking a snapshot");
                self.snapshot().await?;
                self.client.stream(self.cursor().await?).await?
            }
            other => other?,
        };
        // Once caught up, every frame (events or the hub's pings) proves the cache is current.
        let mut live = false;
        loop {
            let Some(first) = stream.next().await else {
                return Ok(());
            };
            let mut frames = vec![first];
            // Take whatever else has already arrived, so a backlog is applied in large batches.
            while frames.len() < MAX_BATCH {
                match stream.next().now_or_never() {
                    Some(Some(frame)) => frames.push(frame),
                    _ => break,
                }
            }
            let mut events = Vec::with_capacity(frames.len());
            let mut caught_up = None;
            let mut reread = false;
            for frame in frames {
                match frame.map_err(|e| ClientError::Network(e.to_string()))? {
                    WsMessage::Text(text) => match parse_frame(&text) {
                        Frame::Events(raw) => events.extend(raw),
                        Frame::CaughtUp(seq) => caught_up = Some(seq),
                        // Never skipped: what it held is read again from the log below.
                        Frame::Unreadable(e) => {
                            tracing::warn!(error = %e, "sync: an unreadable frame; reading the log again from the cursor");
                            reread = true;
                        }
                    },
                    WsMessage::Close(_) => return Ok(()),
                    _ => {}
                }
            }
            if !events.is_empty() {
                match self.apply(events).await {
                    Err(SyncError::Cache(CacheError::Gap { cursor, found })) => {
                        tracing::warn!(cursor, found, "sync: the stream skipped events; reading the log again from the cursor");
                        reread = true;
                    }
                    other => {
                        other?;
                    }
                }
            }
            if reread {
                self.catch_up().await?;
            }
            if live || caught_up.is_some() {
                self.with_cache(|c| c.mark_synced(chrono::Utc::now()))
                    .await?;
            }
            if let Some(seq) = caught_up {
                *failures = 0;
                live = true;
                self.emit(Update::Connection {
                    state: ConnectionState::Live { seq },
                })
                .await;
            }
        }
    }

    async fn cursor(&self) -> Result<u64, SyncError> {
        let cache = self.cache.clone();
        let cursor = tokio::task::spawn_blocking(move || match cache.lock() {
            Ok(cache) => cache.cursor(),
            Err(poisoned) => poisoned.into_inner().cursor(),
        })
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))??;
        Ok(cursor)
    }

    /// Decodes and applies a batch. Events of kinds this build does not know only move the cursor;
    /// an event it cannot read is kept aside by its seq and reported, and the rest is applied.
    async fn apply(&self, raw: Vec<RawEvent>) -> Result<Applied, SyncError> {
        let batch: Vec<Incoming> = raw
            .into_iter()
            .map(|event| match event.decode() {
                Ok(Some(decoded)) => Incoming::Event(decoded),
                Ok(None) => {
                    tracing::debug!(seq = event.seq, kind = ?event.kind, "sync: an event kind this build does not know");
                    Incoming::UnknownKind { seq: event.seq }
                }
                Err(e) => Incoming::Unreadable {
                    seq: event.seq,
                    kind: event.kind,
                    error: e.to_string(),
                    data: event.data.get().to_string(),
                },
            })
            .collect();
        let applied = self
            .with_cache(move |cache| cache.apply_batch(&batch))
            .await?;
        for event in &applied.unreadable {
            tracing::warn!(seq = event.seq, kind = ?event.kind, error = ?event.error, "sync: an event this build cannot read was kept aside");
            self.emit(Update::Unreadable {
                event: event.clone(),
            })
            .await;
        }
        for handoff in &applied.new_handoffs {
            self.emit(Update::NewHandoff {
                handoff: handoff.clone(),
            })
            .await;
        }
        for handoff in &applied.handed_over {
            self.emit(Update::HandedOver {
                handoff: handoff.clone(),
            })
            .await;
        }
        for handoff in &applied.escalated {
            self.emit(Update::Escalated {
                handoff: handoff.clone(),
            })
            .await;
        }
        for message in &applied.customer_messages {
            self.emit(Update::CustomerWrote {
                message: message.clone(),
            })
            .await;
        }
        if !applied.conversations.is_empty() {
            self.emit(Update::InboxChanged {
                conversations: applied.conversations.clone(),
            })
            .await;
        }
        if applied.team_changed {
            self.emit(Update::TeamChanged).await;
        }
        Ok(applied)
    }

    async fn emit(&self, update: Update) {
        // The receiver going away means the app is shutting down; nothing to do about it.
        let _ = self.updates.send(update).await;
    }
}

enum Frame {
    Events(Vec<RawEvent>),
    CaughtUp(u64),
    Unreadable(String),
}

fn parse_frame(text: &str) -> Frame {
    match StreamFrame::parse(text) {
        Ok(StreamFrame::Events(events)) => Frame::Events(events),
        Ok(StreamFrame::Notice(StreamNotice::CaughtUp { seq })) => Frame::CaughtUp(seq),
        Err(e) => Frame::Unreadable(e.to_string()),
    }
}

/// How long the stream waits before reconnecting (the shared policy, [`baton_protocol::backoff`]).
pub const RECONNECT: Backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnecting_waits_longer_after_each_failure_up_to_the_cap() {
        for failures in 0..40 {
            let d = RECONNECT.delay(failures, None, 1.0);
            assert!(d >= MIN_BACKOFF && d <= MAX_BACKOFF, "{failures}: {d:?}");
        }
        assert!(RECONNECT.delay(6, None, 1.0) > RECONNECT.delay(2, None, 1.0));
    }

    #[test]
    fn a_caught_up_notice_is_not_mistaken_for_an_event() {
        assert!(matches!(
            parse_frame(r#"{"type":"caught_up","seq":4}"#),
            Frame::CaughtUp(4)
        ));
        assert!(matches!(
            parse_frame(r#"{"seq":5,"kind":"x","data":{}}"#),
            Frame::Events(e) if e.len() == 1
        ));
        assert!(matches!(parse_frame("not json"), Frame::Unreadable(_)));
    }
}
