//! The app's state: where the hub is and how the connection is doing, over the core's [`Engine`]
//! (which owns the cache, sync, the outbox and refusals). Starting the desk connects it (solo or
//! remote) and turns the engine's updates into UI events, status and notifications.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use baton_core::engine::{Engine, Sent};
use baton_core::{Backfill, Cache, ConnectionState, HubClient, TokenStore, Update};
use baton_protocol::{Agent, HandoffStatus};
use serde::Serialize;
use tauri::{AppHandle, Emitter};
use tokio::sync::{mpsc, watch};

use crate::notify;
#[cfg(desktop)]
use crate::solo;

/// The UI event every core update is forwarded as.
pub const UPDATE_EVENT: &str = "baton:update";

#[derive(Clone)]
pub struct Desk {
    inner: Arc<DeskInner>,
}

struct DeskInner {
    /// Where the built-in hub keeps its data (desktop only: phones have no built-in hub).
    #[cfg_attr(mobile, allow(dead_code))]
    data_dir: PathBuf,
    /// The window, once the app is running (for events the outbox raises on its own).
    app: Mutex<Option<AppHandle>>,
    engine: Engine,
    status: Mutex<DeskStatus>,
    stop: watch::Sender<bool>,
    /// What the agent wants to be notified of (kept in the cache, read here once).
    notifications: notify::SharedSettings,
}

/// What the header of the window shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeskStatus {
    /// `solo` (hub inside the app) or `remote`.
    pub mode: &'static str,
    pub hub_url: Option<String>,
    /// Solo mode: the URL to paste into the Botpress integration's `endpointBaseUrl`.
    pub endpoint_url: Option<String>,
    /// Solo mode: the integration's webhook URL replies go to, once the agent has pasted it.
    pub webhook_url: Option<String>,
    pub signed_in: bool,
    /// The signed-in agent.
    pub me: Option<Agent>,
    pub connection: Option<ConnectionState>,
    /// Why the desk could not start, when it could not.
    pub error: Option<String>,
    /// Actions waiting in the outbox, and those the hub refused.
    pub outbox_queued: usize,
    pub outbox_failed: usize,
    /// When the cache was last known to be up to date with the hub (RFC 3339).
    pub synced_at: Option<String>,
    /// How far the history backfill has got.
    pub history: Option<Backfill>,
    /// After this long with no keyboard or pointer in the window, an online agent shows as away
    /// (`BATON_AWAY_AFTER`, seconds; 300 by default, 0 never).
    pub away_after_secs: u64,
}

impl Desk {
    pub fn open(data_dir: &Path) -> Result<Self, baton_core::CacheError> {
        let cache = Cache::open(&data_dir.join("cache.sqlite"))?;
        let notifications = cache.notification_settings().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the notification settings; using the defaults");
            Default::default()
        });
        let (stop, _) = watch::channel(false);
        Ok(Self {
            inner: Arc::new(DeskInner {
                data_dir: data_dir.to_path_buf(),
                app: Mutex::new(None),
                engine: Engine::new(Arc::new(Mutex::new(cache))),
                status: Mutex::new(DeskStatus {
                    away_after_secs: std::env::var("BATON_AWAY_AFTER")
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(300),
                    ..DeskStatus::default()
                }),
                stop,
                notifications: Arc::new(Mutex::new(notifications)),
            }),
        })
    }

    pub fn engine(&self) -> Engine {
        self.inner.engine.clone()
    }

    pub fn notification_settings(&self) -> baton_core::prefs::NotificationSettings {
        match self.inner.notifications.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Saves the agent's notification settings on this device; they apply to the next notice.
    pub fn set_notification_settings(
        &self,
        settings: baton_core::prefs::NotificationSettings,
    ) -> Result<(), String> {
        settings.check().map_err(|e| e.to_string())?;
        self.cache()
            .lock()
            .map_err(|_| "the local cache is unavailable".to_string())?
            .set_notification_settings(&settings)
            .map_err(|e| e.to_string())?;
        match self.inner.notifications.lock() {
            Ok(mut s) => *s = settings,
            Err(poisoned) => *poisoned.into_inner() = settings,
        }
        Ok(())
    }

    /// Whether the handoff `id` is, as this device knows it now, still as `holds` says.
    fn still(&self, id: &str, holds: impl FnOnce(&baton_protocol::Handoff) -> bool) -> bool {
        self.cache()
            .lock()
            .ok()
            .and_then(|c| c.handoff(id).ok().flatten())
            .is_some_and(|h| holds(&h))
    }

    pub fn cache(&self) -> Arc<Mutex<Cache>> {
        self.inner.engine.cache()
    }

    pub fn status(&self) -> DeskStatus {
        match self.inner.status.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_status(&self, app: &AppHandle, change: impl FnOnce(&mut DeskStatus)) {
        let snapshot = {
            let mut status = match self.inner.status.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            change(&mut status);
            status.clone()
        };
        let _ = app.emit("baton:status", snapshot);
    }

    /// Connects the desk: to `BATON_HUB_URL` if set, else to a hub started in-process.
    pub async fn start(self, app: AppHandle) {
        if let Ok(mut slot) = self.inner.app.lock() {
            *slot = Some(app.clone());
        }
        self.refresh_local_status(&app);
        match std::env::var("BATON_HUB_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            Some(hub_url) => self.start_remote(app, hub_url).await,
            None => self.start_solo(app).await,
        }
    }

    /// Phones have no built-in hub: they sign in to the team's.
    #[cfg(mobile)]
    async fn start_solo(self, app: AppHandle) {
        self.set_status(&app, |s| {
            s.mode = "remote";
            s.error = Some("Set the team's hub address (BATON_HUB_URL) to sign in.".into());
        });
    }

    #[cfg(desktop)]
    async fn start_solo(self, app: AppHandle) {
        let listen =
            std::env::var("BATON_SOLO_LISTEN").unwrap_or_else(|_| solo::DEFAULT_LISTEN.into());
        match solo::start(
            &self.inner.data_dir.join("hub"),
            &listen,
            self.inner.stop.subscribe(),
        )
        .await
        {
            Ok(hub) => {
                // Not the endpoint URL: its secret is the channel's only credential.
                tracing::info!(hub = %hub.hub_url, "solo hub running");
                self.set_status(&app, |s| {
                    s.mode = "solo";
                    s.hub_url = Some(hub.hub_url.clone());
                    s.endpoint_url = Some(hub.endpoint_url.clone());
                    s.signed_in = true;
                });
                match HubClient::new(&hub.hub_url) {
                    Ok(client) => self.follow(app, client.with_token(hub.token)),
                    Err(e) => self.set_status(&app, |s| s.error = Some(e.to_string())),
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "solo hub could not start");
                self.set_status(&app, |s| {
                    s.mode = "solo";
                    s.error = Some(format!("The built-in hub could not start: {e:#}"));
                });
            }
        }
    }

    async fn start_remote(self, app: AppHandle, hub_url: String) {
        self.set_status(&app, |s| {
            s.mode = "remote";
            s.hub_url = Some(hub_url.clone());
        });
        let token = TokenStore::keychain(&hub_url).and_then(|store| store.load());
        match (token, HubClient::new(&hub_url)) {
            (Ok(Some(token)), Ok(client)) => {
                self.set_status(&app, |s| s.signed_in = true);
                self.follow(app, client.with_token(token));
            }
            (Ok(None), Ok(_)) => {}
            (Err(e), _) => self.set_status(&app, |s| s.error = Some(e.to_string())),
            (_, Err(e)) => self.set_status(&app, |s| s.error = Some(e.to_string())),
        }
    }

    /// Signs in to the remote hub, keeps the token in the keychain and starts following.
    pub async fn sign_in(&self, app: AppHandle, email: &str, password: &str) -> Result<(), String> {
        let hub_url = self
            .status()
            .hub_url
            .ok_or("no hub is configured (set BATON_HUB_URL)")?;
        let client = HubClient::new(&hub_url).map_err(|e| e.to_string())?;
        let login = client
            .login(email, password)
            .await
            .map_err(|e| e.to_string())?;
        TokenStore::keychain(&hub_url)
            .and_then(|store| store.save(&login.token))
            .map_err(|e| e.to_string())?;
        self.set_status(&app, |s| {
            s.signed_in = true;
            s.error = None;
        });
        self.follow(app, client.with_token(login.token));
        Ok(())
    }

    /// Solo mode: sets the Botpress channel's webhook URL (the solo agent is the hub's admin).
    pub async fn set_botpress_webhook(
        &self,
        app: AppHandle,
        url: &str,
    ) -> Result<(), baton_core::ClientError> {
        let client = self.client().map_err(baton_core::ClientError::Network)?;
        let channels = client
            .call(reqwest::Method::GET, "/admin/channels", None)
            .await?;
        let id = channels
            .as_array()
            .and_then(|c| c.first())
            .and_then(|c| c["id"].as_str())
            .ok_or_else(|| {
                baton_core::ClientError::Protocol("the hub has no Botpress channel".into())
            })?
            .to_string();
        let view = client
            .call(
                reqwest::Method::PATCH,
                &format!("/admin/channels/{id}"),
                Some(serde_json::json!({"webhook_url": url})),
            )
            .await?;
        let saved = view["webhook_url"].as_str().map(str::to_string);
        self.set_status(&app, |s| s.webhook_url = saved);
        Ok(())
    }

    /// Puts an agent action in the outbox and tries to deliver it at once. Offline, it stays
    /// queued (and shows as pending); the engine delivers it when the hub is back.
    pub async fn send(
        &self,
        command: &baton_protocol::AgentCommand,
        txn_id: &str,
    ) -> Result<Sent, baton_core::OutboxError> {
        let sending = self.inner.engine.send(command, txn_id, true).await?;
        if let Some(app) = self.app() {
            let conversations = sending.conversations;
            let _ = app.emit(UPDATE_EVENT, &Update::InboxChanged { conversations });
            self.refresh_local_status(&app);
        }
        Ok(sending.sent)
    }

    fn app(&self) -> Option<AppHandle> {
        self.inner.app.lock().ok().and_then(|a| a.clone())
    }

    /// Re-reads the outbox counts and sync state into the status (after a local change).
    pub fn refresh_status(&self) {
        if let Some(app) = self.app() {
            self.refresh_local_status(&app);
        }
    }

    /// Wakes the outbox worker to try the queue now.
    pub fn deliver_soon(&self) {
        self.inner.engine.deliver_soon();
    }

    /// Re-reads what the status shows from the cache: outbox counts, "synced up to", history.
    fn refresh_local_status(&self, app: &AppHandle) {
        let (counts, synced_at, history) = match self.cache().lock() {
            Ok(cache) => (
                cache.outbox_counts().ok(),
                cache.synced_at().ok().flatten(),
                cache.backfill().ok(),
            ),
            Err(_) => return,
        };
        self.set_status(app, |s| {
            if let Some((queued, failed)) = counts {
                s.outbox_queued = queued;
                s.outbox_failed = failed;
            }
            s.synced_at = synced_at.map(|t| t.to_rfc3339());
            s.history = history;
        });
    }

    /// The signed-in hub client, or a clear error when there is none yet.
    pub fn client(&self) -> Result<HubClient, String> {
        self.inner
            .engine
            .client()
            .ok_or_else(|| "not connected to a hub yet".to_string())
    }

    /// Runs the engine and forwards its updates to the UI, the status and the notification centre.
    fn follow(&self, app: AppHandle, client: HubClient) {
        self.inner.engine.signed_in(client.clone());
        {
            let desk = self.clone();
            let app = app.clone();
            let client = client.clone();
            tauri::async_runtime::spawn(async move {
                if desk.status().mode == "solo" {
                    if let Ok(channels) = client
                        .call(reqwest::Method::GET, "/admin/channels", None)
                        .await
                    {
                        let url = channels[0]["webhook_url"].as_str().map(str::to_string);
                        desk.set_status(&app, |s| s.webhook_url = url);
                    }
                }
                match client.me().await {
                    Ok(me) => desk.set_status(&app, |s| s.me = Some(me)),
                    Err(e) => tracing::warn!(error = %e, "cannot read the signed-in agent"),
                }
                // Opening the desk means being at work: go online (the header toggles it).
                let txn_id = format!("online-{}", rand_suffix());
                let online = baton_protocol::AgentCommand::Presence {
                    status: baton_protocol::Presence::Online,
                };
                if let Err(e) = client.command(&txn_id, &online).await {
                    tracing::warn!(error = %e, "cannot go online");
                }
            });
        }
        let (updates, mut received) = mpsc::channel::<Update>(256);
        let engine = self.inner.engine.clone();
        let stop = self.inner.stop.subscribe();
        // BATON_HISTORY_DAYS caps how far back history is copied to this device.
        let oldest = std::env::var("BATON_HISTORY_DAYS")
            .ok()
            .and_then(|d| d.trim().parse::<i64>().ok())
            .map(|days| chrono::Utc::now() - chrono::TimeDelta::days(days));
        tauri::async_runtime::spawn(async move { engine.run(updates, stop, oldest).await });
        let desk = self.clone();
        let notices = notify::Notices::start(&app, desk.inner.notifications.clone());
        #[cfg(desktop)]
        let tray = crate::tray::start(&app, desk.clone());
        tauri::async_runtime::spawn(async move {
            while let Some(update) = received.recv().await {
                #[cfg(desktop)]
                if matches!(
                    update,
                    Update::InboxChanged { .. } | Update::NewHandoff { .. }
                ) {
                    if let Some(tray) = &tray {
                        tray.changed();
                    }
                }
                let me = desk.status().me.map(|me| me.id);
                let focused = notify::window_focused();
                match &update {
                    // Handed to me while I look elsewhere (routed or transferred; what I take
                    // myself I already know about).
                    Update::HandedOver { handoff }
                        if !focused
                            && me.is_some()
                            && handoff.assignee == me
                            && desk.still(&handoff.id, |h| {
                                h.status == HandoffStatus::Assigned && h.assignee == me
                            }) =>
                    {
                        notices.tell(notify::Notice::ForYou {
                            title: handoff.title.clone(),
                            conversation: handoff.conversation_id.clone(),
                        });
                    }
                    // Waited past the channel's target: everyone online hears again; once escalated,
                    // the named agents do.
                    // (Checked against the cache: after the app was closed, catch-up replays
                    // escalations of handoffs taken since.)
                    Update::Escalated { handoff }
                        if desk.still(&handoff.id, |h| h.status == HandoffStatus::Pending) =>
                    {
                        let to_me = handoff.escalation.as_ref().is_some_and(|e| {
                            e.level == baton_protocol::EscalationLevel::Escalated
                                && me.as_ref().is_some_and(|me| e.to.contains(me))
                        });
                        let renotify = handoff.escalation.as_ref().is_some_and(|e| {
                            e.level == baton_protocol::EscalationLevel::Renotified
                        });
                        if to_me || renotify {
                            notices.tell(notify::Notice::StillWaiting {
                                title: handoff.title.clone(),
                                to_me,
                                conversation: handoff.conversation_id.clone(),
                            });
                        }
                    }
                    // A customer writes in a conversation I hold while the window is not in front.
                    Update::CustomerWrote { message } if !focused && me.is_some() => {
                        let (mine, customer) = desk
                            .cache()
                            .lock()
                            .ok()
                            .map(|c| {
                                let held = c
                                    .latest_handoff(&message.conversation_id)
                                    .ok()
                                    .flatten()
                                    .is_some_and(|h| {
                                        h.status == HandoffStatus::Assigned && h.assignee == me
                                    });
                                let name = c
                                    .customer(&message.conversation_id)
                                    .ok()
                                    .flatten()
                                    .map(|c| c.name);
                                (held, name)
                            })
                            .unwrap_or((false, None));
                        if mine {
                            notices.tell(notify::Notice::CustomerWrote {
                                customer: customer.unwrap_or_else(|| "Your customer".into()),
                                text: message
                                    .text
                                    .clone()
                                    .unwrap_or_else(|| format!("[{}]", message.kind)),
                                conversation: message.conversation_id.clone(),
                            });
                        }
                    }
                    Update::NewHandoff { handoff } if handoff.status == HandoffStatus::Pending => {
                        let customer = desk
                            .cache()
                            .lock()
                            .ok()
                            .and_then(|c| c.customer(&handoff.conversation_id).ok().flatten())
                            .map(|c| c.name);
                        let body = match (customer, &handoff.description) {
                            (Some(name), Some(d)) => format!("{name}: {d}"),
                            (Some(name), None) => format!("{name} is waiting for an agent"),
                            (None, Some(d)) => d.clone(),
                            (None, None) => "A customer is waiting for an agent".to_string(),
                        };
                        tracing::debug!(handoff = %handoff.id, "notifications: a new handoff");
                        notices.tell(notify::Notice::NewHandoff {
                            title: handoff.title.clone(),
                            body,
                            conversation: handoff.conversation_id.clone(),
                        });
                    }
                    Update::Connection { state } => {
                        desk.set_status(&app, |s| s.connection = Some(state.clone()));
                        desk.refresh_local_status(&app);
                    }
                    Update::OutboxChanged { queued, failed } => desk.set_status(&app, |s| {
                        s.outbox_queued = *queued;
                        s.outbox_failed = *failed;
                    }),
                    Update::History { progress } => {
                        desk.set_status(&app, |s| s.history = Some(progress.clone()))
                    }
                    Update::SignedOut => {
                        if let Some(url) = desk.status().hub_url {
                            if let Ok(store) = TokenStore::keychain(&url) {
                                let _ = store.clear();
                            }
                        }
                        desk.set_status(&app, |s| {
                            s.signed_in = false;
                            s.error = Some("The hub signed this device out; sign in again.".into());
                        });
                    }
                    _ => {}
                }
                let _ = app.emit(UPDATE_EVENT, &update);
            }
        });
    }
}

/// A unique-enough suffix for txn ids the shell makes itself.
pub(crate) fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
