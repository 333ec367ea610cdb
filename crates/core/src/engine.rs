//! The device's engine: the one type that owns what a signed-in device does — its hub client (the
//! sign-in), following the hub live, backfilling history, delivering the outbox with the shared
//! retry policy, and what a refusal means. The app shell and the CLI are thin adapters over it:
//! they decide where the token is kept and how updates are shown, nothing else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_protocol::AgentCommand;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use crate::cache::Cache;
use crate::client::HubClient;
use crate::outbox::{self, Delivered, OutboxError, OutboxItem, Refusal};
use crate::sync::{ConnectionState, SharedCache, SyncEngine, Update};

/// How long [`Engine::send`] waits for the hub before leaving an action to the outbox worker.
pub const SEND_WAIT: Duration = Duration::from_secs(10);

/// How long the outbox worker sleeps when nothing is queued (it is woken when something is).
const IDLE: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    cache: SharedCache,
    /// The signed-in connection to the hub, once there is one.
    client: Mutex<Option<HubClient>>,
    /// Known to be offline: actions are queued without waiting on a connection.
    offline: AtomicBool,
    /// Wakes the outbox worker: something was queued, or the hub is back.
    wake: tokio::sync::Notify,
    /// One delivery run at a time, so an item is never in flight twice from this device.
    delivering: tokio::sync::Mutex<()>,
    /// Conversation → the customer message last marked read from here.
    marked_read: Mutex<std::collections::HashMap<String, String>>,
}

/// What became of an action sent through [`Engine::send`].
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Delivered,
    /// Waiting for the hub (offline, slow, or it asked us to wait): the outbox delivers it later.
    Queued,
    /// The hub refused it, with its reason. A refused reply stays in the outbox (failed) for the
    /// agent to retry, edit or discard; any other action refused here, as the agent takes it, is
    /// dropped: the refusal is the answer, and there is nothing to edit. (Actions refused later,
    /// by the worker, stay failed in the outbox.)
    Refused(Refusal),
}

/// What [`Engine::send`] did with an action, and what else the hub refused on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Sending {
    /// The action as queued.
    pub item: OutboxItem,
    pub sent: Sent,
    /// Earlier queued actions the hub refused in the same run (they stay in the outbox, failed).
    pub others_refused: Vec<Refusal>,
    /// The conversations whose view changed: the action's own, and those of whatever the run
    /// delivered or the hub refused.
    pub conversations: Vec<String>,
}

/// The conversations a delivery run changed (what it applied, and what the hub refused), plus
/// `also`.
fn touched(cache: &Cache, report: &Delivered, also: Option<&str>) -> Vec<String> {
    let mut conversations = report.applied.conversations.clone();
    conversations.extend(also.map(str::to_string));
    for refusal in &report.refused {
        if let Ok(item) = cache.outbox_item(refusal.id) {
            conversations.extend(item.conversation_id);
        }
    }
    conversations.sort();
    conversations.dedup();
    conversations
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("signed_in", &self.client().is_some())
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(cache: SharedCache) -> Self {
        Self {
            inner: Arc::new(Inner {
                cache,
                client: Mutex::new(None),
                offline: AtomicBool::new(false),
                wake: tokio::sync::Notify::new(),
                delivering: tokio::sync::Mutex::new(()),
                marked_read: Mutex::new(std::collections::HashMap::new()),
            }),
        }
    }

    pub fn cache(&self) -> SharedCache {
        self.inner.cache.clone()
    }

    /// The cache, borrowed (for callers that only lock it).
    pub fn cache_ref(&self) -> &SharedCache {
        &self.inner.cache
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        match self.inner.cache.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// From now on the device acts as the agent `client` is signed in as.
    pub fn signed_in(&self, client: HubClient) {
        if let Ok(mut slot) = self.inner.client.lock() {
            *slot = Some(client);
        }
    }

    /// The hub no longer accepts this device's sign-in.
    pub fn signed_out(&self) {
        if let Ok(mut slot) = self.inner.client.lock() {
            *slot = None;
        }
    }

    /// The signed-in hub client, if any.
    pub fn client(&self) -> Option<HubClient> {
        self.inner.client.lock().ok().and_then(|c| c.clone())
    }

    /// Queues `command` (applied once per `txn_id`, however often it is sent) and tries to deliver
    /// the queue at once, waiting at most [`SEND_WAIT`]. Offline or signed out, it stays queued.
    /// `force` also tries earlier items whose retry time has not come (the agent is acting now).
    pub async fn send(
        &self,
        command: &AgentCommand,
        txn_id: &str,
        force: bool,
    ) -> Result<Sending, OutboxError> {
        let item = self.lock_cache().enqueue(command, txn_id, Utc::now())?;
        if self.inner.offline.load(Ordering::SeqCst) || self.client().is_none() {
            self.deliver_soon();
            let conversations = item.conversation_id.iter().cloned().collect();
            return Ok(Sending {
                item,
                sent: Sent::Queued,
                others_refused: Vec::new(),
                conversations,
            });
        }
        let report = match tokio::time::timeout(SEND_WAIT, self.deliver(force)).await {
            Ok(report) => report?,
            // A slow hub: the item stays queued and the worker goes on with it.
            Err(_) => Delivered::default(),
        };
        // Before a refused item is dropped: its conversation is among those that changed.
        let conversations = touched(&self.lock_cache(), &report, item.conversation_id.as_deref());
        let (own, others_refused): (Vec<Refusal>, Vec<Refusal>) =
            report.refused.into_iter().partition(|r| r.id == item.id);
        let sent = if report.delivered.contains(&item.id) {
            Sent::Delivered
        } else if let Some(refusal) = own.into_iter().next() {
            if !matches!(command, AgentCommand::Message { .. }) {
                self.lock_cache().discard(item.id)?;
            }
            Sent::Refused(refusal)
        } else {
            Sent::Queued
        };
        // What waits (behind a refusal, or for the hub) goes on in the worker.
        self.deliver_soon();
        Ok(Sending {
            item,
            sent,
            others_refused,
            conversations,
        })
    }

    /// The agent (`me`) has the conversation open: this device shows it read at once, and the
    /// hub is told, so the agent's other devices do too and the customer sees their messages read
    /// (WhatsApp) — once per new customer message, or after "mark as unread". Best effort, never
    /// queued: a read receipt that cannot go now is not worth sending later.
    pub async fn mark_read(&self, conversation_id: &str, me: Option<&str>) {
        let was_unread = me.is_some_and(|me| {
            self.lock_cache()
                .mark_read_here(me, conversation_id, Utc::now())
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot mark the conversation read on this device");
                    false
                })
        });
        let Some(client) = self.client() else { return };
        if self.inner.offline.load(Ordering::SeqCst) {
            return;
        }
        let newest = self
            .lock_cache()
            .messages(conversation_id)
            .ok()
            .and_then(|m| {
                m.into_iter()
                    .rev()
                    .find(|m| m.author == baton_protocol::Author::EndUser)
            })
            .map(|m| m.id);
        // Nothing the customer wrote and nothing marked unread: nothing to tell.
        if newest.is_none() && !was_unread {
            return;
        }
        if let (Ok(mut marked), Some(newest)) = (self.inner.marked_read.lock(), newest) {
            if marked.get(conversation_id) == Some(&newest) && !was_unread {
                return;
            }
            marked.insert(conversation_id.to_string(), newest);
        }
        let command = AgentCommand::Read {
            conversation_id: conversation_id.to_string(),
        };
        let txn_id = format!("read-{:032x}", rand::random::<u128>());
        if let Err(e) = client.command(&txn_id, &command).await {
            tracing::debug!(error = %e, "cannot mark the conversation read");
        }
    }

    /// A customer's media file: from this device, else from the hub (and kept for offline).
    pub async fn media(
        &self,
        message_id: &str,
    ) -> Result<(String, Vec<u8>), crate::client::ClientError> {
        if let Ok(Some(kept)) = self.lock_cache().media(message_id) {
            return Ok(kept);
        }
        let client = self
            .client()
            .ok_or(crate::client::ClientError::Unauthorized)?;
        let (mime_type, bytes) = client.media(message_id).await?;
        if let Err(e) = self
            .lock_cache()
            .save_media(message_id, &mime_type, &bytes, Utc::now())
        {
            tracing::warn!(error = %e, "cannot keep a media file on this device");
        }
        Ok((mime_type, bytes))
    }

    /// One delivery run over the queue, in order (one run at a time from this device). `force`
    /// tries items whose retry time has not come yet.
    pub async fn deliver(&self, force: bool) -> Result<Delivered, OutboxError> {
        let Some(client) = self.client() else {
            return Ok(Delivered::default());
        };
        let _one_at_a_time = self.inner.delivering.lock().await;
        outbox::deliver(&self.inner.cache, &client, Utc::now, force).await
    }

    /// Wakes the outbox worker to try the queue now.
    pub fn deliver_soon(&self) {
        self.inner.wake.notify_one();
    }

    /// Delivers the outbox whenever something is queued or the hub is back, waiting out retry
    /// times in between, until `stop`. What deliveries change is reported to `updates`.
    pub async fn run_outbox(&self, updates: mpsc::Sender<Update>, mut stop: watch::Receiver<bool>) {
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.wake.notified() => {}
                _ = stop.changed() => return,
            }
            wait = match self.deliver(false).await {
                Ok(report) => {
                    if !report.delivered.is_empty() || !report.refused.is_empty() {
                        self.report(&report, &updates).await;
                    }
                    match report.retry_at {
                        Some(at) => (at - Utc::now())
                            .to_std()
                            .unwrap_or(Duration::from_millis(100)),
                        None => IDLE,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "outbox: cannot read the queue");
                    Duration::from_secs(30)
                }
            };
        }
    }

    /// Tells the device what a delivery run changed: the conversations whose items were applied
    /// or refused, and the outbox's new counts.
    async fn report(&self, report: &Delivered, updates: &mpsc::Sender<Update>) {
        let (conversations, counts) = {
            let cache = self.lock_cache();
            (touched(&cache, report, None), cache.outbox_counts().ok())
        };
        let _ = updates.send(Update::InboxChanged { conversations }).await;
        if let Some((queued, failed)) = counts {
            let _ = updates.send(Update::OutboxChanged { queued, failed }).await;
        }
    }

    /// Everything a signed-in device does, until `stop` or until the hub signs it out: follows the
    /// hub live, delivers the outbox (at once whenever the hub is back), and once live backfills
    /// history as far back as `oldest` (all of it when `None`). Every update goes to `updates`.
    pub async fn run(
        &self,
        updates: mpsc::Sender<Update>,
        stop: watch::Receiver<bool>,
        oldest: Option<DateTime<Utc>>,
    ) {
        let Some(client) = self.client() else {
            let _ = updates.send(Update::SignedOut).await;
            return;
        };
        let (heard, mut received) = mpsc::channel::<Update>(256);
        let live = SyncEngine::new(client.clone(), self.cache(), heard.clone());
        let history = SyncEngine::new(client, self.cache(), heard.clone());
        let following = {
            let stop = stop.clone();
            tokio::spawn(async move { live.follow(stop).await })
        };
        let delivering = {
            let (engine, heard, stop) = (self.clone(), heard.clone(), stop.clone());
            tokio::spawn(async move { engine.run_outbox(heard, stop).await })
        };
        drop(heard);
        let mut backfilling: Option<tokio::task::JoinHandle<()>> = None;
        let mut stop = stop;
        loop {
            let update = tokio::select! {
                update = received.recv() => update,
                _ = stop.changed() => None,
            };
            let Some(update) = update else { break };
            match &update {
                Update::Connection { state } => {
                    let live = matches!(state, ConnectionState::Live { .. });
                    self.inner.offline.store(
                        matches!(state, ConnectionState::Offline { .. }),
                        Ordering::SeqCst,
                    );
                    if live {
                        // Back online: whatever waited in the outbox goes now.
                        self.deliver_soon();
                        if backfilling.is_none() {
                            let (history, updates) = (history.clone(), updates.clone());
                            backfilling = Some(tokio::spawn(async move {
                                let progress = updates.clone();
                                let result = history
                                    .backfill(oldest, move |p| {
                                        let _ = progress.try_send(Update::History {
                                            progress: p.clone(),
                                        });
                                    })
                                    .await;
                                // Progress on the way may be dropped when the receiver is
                                // behind (try_send); the final state never is.
                                match result {
                                    Ok(done) => {
                                        let _ =
                                            updates.send(Update::History { progress: done }).await;
                                    }
                                    Err(e) => {
                                        tracing::warn!(error = %e, "history backfill stopped; it resumes at the next start")
                                    }
                                }
                            }));
                        }
                    }
                }
                Update::SignedOut => self.signed_out(),
                _ => {}
            }
            let signed_out = matches!(update, Update::SignedOut);
            let _ = updates.send(update).await;
            if signed_out {
                break;
            }
        }
        following.abort();
        delivering.abort();
        if let Some(backfill) = backfilling {
            backfill.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().expect("dir");
        let cache = Cache::open(&dir.path().join("c.sqlite")).expect("open");
        (dir, Engine::new(Arc::new(Mutex::new(cache))))
    }

    #[tokio::test]
    async fn an_action_taken_signed_out_waits_in_the_outbox() {
        let (_dir, engine) = engine();
        let assign = AgentCommand::Assign {
            handoff_id: "h_1".into(),
        };
        let sending = engine.send(&assign, "tx-1", true).await.expect("send");
        assert_eq!(sending.sent, Sent::Queued);
        assert_eq!(sending.item.command, assign);
        assert_eq!(
            engine.deliver(true).await.expect("deliver"),
            Delivered::default()
        );
        assert_eq!(
            engine
                .cache()
                .lock()
                .expect("cache")
                .outbox_counts()
                .expect("counts"),
            (1, 0)
        );
    }
}
