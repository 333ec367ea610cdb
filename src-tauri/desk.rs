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
    /// The tray icon, made once per run (`None` inside: the desktop has no tray).
    #[cfg(desktop)]
    tray: std::sync::OnceLock<Option<crate::tray::TrayCount>>,
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
    /// This build can run a desk by itself (desktop): the sign-in form offers it.
    pub solo_available: bool,
}

/// The team hub chosen in the app (at sign-in, or in a solo desk's Settings), kept in the data
/// directory so the next start goes to it. `BATON_HUB_URL` overrides it.
mod hub_address {
    use std::path::Path;

    const FILE: &str = "hub-address";

    pub fn load(data_dir: &Path) -> Option<String> {
        std::fs::read_to_string(data_dir.join(FILE))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Keeps `hub_url`, or forgets it (`None`: back to a solo desk).
    /// Refuses an address a password should not be sent to: plain `http` is for this computer
    /// only.
    /// Several hubs serving one team are given separated by commas; each is checked.
    pub fn check(hub_url: &str) -> Result<(), String> {
        let addresses: Vec<&str> = baton_core::client::hub_addresses(hub_url).collect();
        if addresses.is_empty() {
            return Err(format!(
                "{hub_url:?} is not an address like https://baton.example.com"
            ));
        }
        addresses.into_iter().try_for_each(check_one)
    }

    fn check_one(hub_url: &str) -> Result<(), String> {
        let url = url::Url::parse(hub_url)
            .map_err(|_| format!("{hub_url:?} is not an address like https://baton.example.com"))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => Ok(()),
            "http" if loopback => Ok(()),
            _ => Err(format!(
                "use https:// for {hub_url}: a password must not travel in the clear"
            )),
        }
    }

    pub fn save(data_dir: &Path, hub_url: Option<&str>) -> std::io::Result<()> {
        let path = data_dir.join(FILE);
        match hub_url {
            Some(url) => std::fs::write(path, format!("{url}\n")),
            None => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_chosen_hub_is_kept_for_the_next_start_and_forgotten_for_a_solo_desk() {
            let dir = tempfile::tempdir().expect("dir");
            assert_eq!(super::load(dir.path()), None);
            super::save(dir.path(), Some("https://baton.example.com")).expect("save");
            assert_eq!(
                super::load(dir.path()).as_deref(),
                Some("https://baton.example.com")
            );
            super::save(dir.path(), None).expect("forget");
            super::save(dir.path(), None).expect("forgetting twice is fine");
            assert_eq!(super::load(dir.path()), None);
        }

        #[test]
        fn a_password_goes_only_over_https_or_to_this_computer() {
            assert!(super::check("https://baton.example.com").is_ok());
            assert!(super::check("http://127.0.0.1:8717").is_ok());
            assert!(super::check("http://localhost:8717").is_ok());
            assert_eq!(
                super::check("http://baton.example.com"),
                Err("use https:// for http://baton.example.com: a password must not travel in the clear".into())
            );
            assert!(super::check("baton.example.com").is_err());
            // Several hubs serving one team: each must be one a password may be sent to.
            assert!(super::check("https://a.example.com, https://b.example.com").is_ok());
            assert!(super::check("https://a.example.com,http://b.example.com").is_err());
            assert!(super::check(" , ").is_err());
        }
    }
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
                    solo_available: cfg!(desktop),
                    away_after_secs: std::env::var("BATON_AWAY_AFTER")
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(300),
                    ..DeskStatus::default()
                }),
                stop,
                notifications: Arc::new(Mutex::new(notifications)),
                #[cfg(desktop)]
                tray: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn engine(&self) -> Engine {
        self.inner.engine.clone()
    }

    /// Makes this device's copy the hub's (`solo`, or a team hub's address): a copy from another
    /// hub is forgotten first — its inbox, and any reply still waiting for that hub.
    fn adopt_hub(&self, hub: &str) -> Result<(), baton_core::CacheError> {
        let cache = self.cache();
        let mut cache = match cache.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let waiting = cache.outbox().map(|o| o.len()).unwrap_or(0);
        if cache.adopt_hub(hub)? {
            tracing::warn!(
                hub,
                dropped_outbox = waiting,
                "this device's copy came from another hub: started afresh"
            );
        }
        Ok(())
    }

    /// Asks the tray to recount (a conversation was read here, the signed-in agent changed).
    pub fn tray_changed(&self) {
        #[cfg(desktop)]
        if let Some(Some(tray)) = self.inner.tray.get() {
            tray.changed();
        }
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
        // The hub applies them to this phone's pushes too.
        #[cfg(mobile)]
        if let (Some(app), Some(client)) = (self.app(), self.inner.engine.client()) {
            crate::push::register(&app, client, settings.clone());
        }
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
        // Whoever asks for the cache reads or writes it: work that allocates.
        crate::allocator::worked();
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

    /// Connects the desk: to `BATON_HUB_URL` if set, else to the hub last signed in to from
    /// this app, else to a hub started in-process.
    pub async fn start(self, app: AppHandle) {
        if let Ok(mut slot) = self.inner.app.lock() {
            *slot = Some(app.clone());
        }
        self.refresh_local_status(&app);
        match std::env::var("BATON_HUB_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| hub_address::load(&self.inner.data_dir))
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
            s.error = Some(crate::words::words().set_hub_address.into());
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
                // The desk's own hub, whatever address it listens on this time.
                if let Err(e) = self.adopt_hub("solo") {
                    tracing::warn!(error = %e, "cannot record which hub this device's copy is from");
                }
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
                    s.error = Some((crate::words::words().solo_failed)(&format!("{e:#}")));
                });
            }
        }
    }

    async fn start_remote(self, app: AppHandle, hub_url: String) {
        self.set_status(&app, |s| {
            s.mode = "remote";
            s.hub_url = Some(hub_url.clone());
        });
        // Under the previous setting if the team only gained (or lost) an address since.
        let previous = self
            .cache()
            .lock()
            .ok()
            .and_then(|cache| cache.hub_of_copy().ok().flatten());
        let token = baton_core::token::token_following(&hub_url, previous.as_deref());
        match (token, HubClient::new(&hub_url)) {
            (Ok(Some(token)), Ok(client)) => {
                if let Err(e) = self.adopt_hub(&hub_url) {
                    tracing::warn!(error = %e, "cannot record which hub this device's copy is from");
                }
                self.set_status(&app, |s| s.signed_in = true);
                self.follow(app, client.with_token(token));
            }
            (Ok(None), Ok(_)) => {}
            (Err(e), _) => self.set_status(&app, |s| s.error = Some(e.to_string())),
            (_, Err(e)) => self.set_status(&app, |s| s.error = Some(e.to_string())),
        }
    }

    /// Signs in to the hub at `hub_url` (or the desk's), keeps the token in the keychain and the
    /// address for next time, and starts following. A different hub than the one this device's
    /// copy came from starts the copy afresh: none of it belongs to the new one.
    pub async fn sign_in(
        &self,
        app: AppHandle,
        email: &str,
        password: &str,
        hub_url: Option<&str>,
    ) -> Result<(), String> {
        if self.status().signed_in {
            return Err("already signed in; sign out first".into());
        }
        let hub_url = match hub_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => self
                .status()
                .hub_url
                .ok_or("type the address of your team's hub")?,
        };
        hub_address::check(&hub_url)?;
        let client = HubClient::new(&hub_url).map_err(|e| e.to_string())?;
        // Kept as the client writes it (several hubs: comma-separated, no trailing slashes).
        let hub_url = client.hub_url();
        let login = client
            .login(email, password)
            .await
            .map_err(|e| e.to_string())?;
        self.adopt_hub(&hub_url).map_err(|e| e.to_string())?;
        hub_address::save(&self.inner.data_dir, Some(&hub_url)).map_err(|e| e.to_string())?;
        TokenStore::keychain(&hub_url)
            .and_then(|store| store.save(&login.token))
            .map_err(|e| e.to_string())?;
        self.set_status(&app, |s| {
            s.mode = "remote";
            s.hub_url = Some(hub_url.clone());
            s.signed_in = true;
            s.error = None;
        });
        self.follow(app, client.with_token(login.token));
        Ok(())
    }

    /// Signs out of the team's hub: the hub forgets the token, the keychain too, and the app
    /// starts again at the sign-in form (this device's copy stays, for the next sign-in).
    pub async fn sign_out(&self, app: AppHandle) -> Result<(), String> {
        let status = self.status();
        let (Some(hub_url), "remote") = (status.hub_url, status.mode) else {
            return Err("a solo desk has no sign-in to leave".into());
        };
        if let Some(client) = self.inner.engine.client() {
            if let Err(e) = client.logout().await {
                tracing::warn!(error = %e, "the hub could not be told of the sign-out");
            }
        }
        self.inner.engine.signed_out();
        TokenStore::keychain(&hub_url)
            .and_then(|store| store.clear())
            .map_err(|e| e.to_string())?;
        tracing::info!(hub = %hub_url, "signed out");
        app.restart();
    }

    /// Switches to the team hub at `hub_url` (or, `None`, back to a solo desk) and restarts the
    /// app on it.
    pub fn use_hub(&self, app: AppHandle, hub_url: Option<&str>) -> Result<(), String> {
        if std::env::var("BATON_HUB_URL").is_ok_and(|u| !u.trim().is_empty()) {
            return Err(
                "BATON_HUB_URL chooses the hub for this app; unset it to choose here".into(),
            );
        }
        let hub_url = hub_url.map(str::trim).filter(|u| !u.is_empty());
        if let Some(url) = hub_url {
            hub_address::check(url)?;
            HubClient::new(url).map_err(|e| e.to_string())?;
        }
        hub_address::save(
            &self.inner.data_dir,
            hub_url.map(|u| u.trim_end_matches('/')),
        )
        .map_err(|e| e.to_string())?;
        tracing::info!(
            hub = hub_url.unwrap_or("solo"),
            "switching hubs: restarting"
        );
        app.restart();
    }

    /// Solo mode: hands a test customer over through the desk's own Botpress endpoint, exactly
    /// as the integration would; answers the handoff's title.
    pub async fn send_test_handoff(&self) -> Result<String, String> {
        const TITLE: &str = "Test handoff from Baton";
        let endpoint = self
            .status()
            .endpoint_url
            .ok_or("only a solo desk has its own Botpress endpoint to test")?;
        let http = reqwest::Client::new();
        let post = |route: &'static str, body: serde_json::Value| {
            let (http, url) = (http.clone(), format!("{endpoint}/{route}"));
            async move {
                let response = http
                    .post(url)
                    .json(&body)
                    .timeout(std::time::Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| format!("the desk's endpoint did not answer: {e}"))?;
                let status = response.status();
                let answer: serde_json::Value = response.json().await.unwrap_or_default();
                if !status.is_success() {
                    return Err(format!("the desk's endpoint refused {route}: {answer}"));
                }
                Ok::<_, String>(answer)
            }
        };
        let user = post(
            "createRemoteUser",
            serde_json::json!({"type": "createRemoteUser", "payload": {"role": "end-user", "name": "Test customer"}}),
        )
        .await?;
        let ticket = post(
            "createRemoteConversation",
            serde_json::json!({"type": "createRemoteConversation", "payload": {"title": TITLE, "description": "Sent from Settings to check the desk"}}),
        )
        .await?;
        post(
            "botSendsMessage",
            serde_json::json!({"type": "botSendsMessage", "remoteConversationId": ticket["id"],
                               "remoteUserId": user["id"],
                               "payload": {"text": "This is a test: answer it, then resolve it."}}),
        )
        .await?;
        Ok(TITLE.into())
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
        #[cfg(mobile)]
        crate::push::register(&app, client.clone(), self.notification_settings());
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
                    Ok(me) => {
                        if let Ok(cache) = desk.cache().lock() {
                            if let Err(e) = cache.set_me(&me.id) {
                                tracing::warn!(error = %e, "cannot record the signed-in agent");
                            }
                        }
                        desk.set_status(&app, |s| s.me = Some(me));
                        desk.tray_changed();
                    }
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
        let tray = desk
            .inner
            .tray
            .get_or_init(|| crate::tray::start(&app, desk.clone()))
            .clone();
        tauri::async_runtime::spawn(async move {
            while let Some(update) = received.recv().await {
                crate::allocator::worked();
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
                                customer: customer
                                    .unwrap_or_else(|| crate::words::words().your_customer.into()),
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
                        let words = crate::words::words();
                        let body = match (customer, &handoff.description) {
                            (Some(name), Some(d)) => format!("{name}: {d}"),
                            (Some(name), None) => (words.is_waiting)(&name),
                            (None, Some(d)) => d.clone(),
                            (None, None) => words.someone_is_waiting.to_string(),
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
                            s.error = Some(crate::words::words().signed_out_by_hub.into());
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
