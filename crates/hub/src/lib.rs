//! `baton-hub` is Baton's server: it receives handoffs and messages from Botpress through the
//! *Human in the Loop API* (ARCHITECTURE.md, "The Botpress protocol"), keeps the team's shared
//! inbox in SQLite with an event log of every change, and serves agents over REST and a WebSocket
//! stream. It runs standalone (`baton-hub serve`) or inside the app (solo mode) through [`serve`].
//!
//! `main.rs` only parses arguments; everything here takes its listener, clock and data directory
//! from the caller so tests bind port 0 and pass time in.

pub mod admin;
pub mod admin_api;
pub mod api;
pub mod auth;
pub mod body;
pub mod bot_api;
pub mod botpress;
pub mod channel;
pub mod delivery;
pub mod drafts;
pub mod egress;
pub mod error;
pub mod files;
pub mod front;
pub mod handoffs;
pub mod hours;
pub mod presence;
pub mod push;
pub mod report;
pub mod routing;
pub mod store;
pub mod uploads;
#[cfg(feature = "web-app")]
pub mod web_app;
pub mod whatsapp;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use chrono::{DateTime, Utc};
use rand::Rng;

pub use error::ApiError;
pub use store::{Store, StoreError};

/// Where the hub gets the time from; tests pass a fixed one.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system's time moved forward by the seconds written in a file: whole-system tests move a
/// running hub's time (`BATON_TEST_CLOCK_OFFSET_FILE`) instead of sleeping through real minutes.
/// The file is read at most every 50 ms; a missing or unreadable one means no offset.
pub struct OffsetClock {
    file: std::path::PathBuf,
    read: std::sync::Mutex<(std::time::Instant, chrono::TimeDelta)>,
}

impl OffsetClock {
    pub fn new(file: impl Into<std::path::PathBuf>) -> Self {
        let file = file.into();
        let offset = Self::offset_in(&file);
        Self {
            file,
            read: std::sync::Mutex::new((std::time::Instant::now(), offset)),
        }
    }

    fn offset_in(file: &Path) -> chrono::TimeDelta {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .and_then(|secs| chrono::TimeDelta::try_milliseconds((secs * 1000.0) as i64))
            .unwrap_or_default()
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        if read.0.elapsed() > Duration::from_millis(50) {
            *read = (std::time::Instant::now(), Self::offset_in(&self.file));
        }
        Utc::now() + read.1
    }
}

/// How a hub behaves; `Default` is what `baton-hub serve` uses unless told otherwise.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// An online agent silent this long goes offline and their handoffs return to the queue.
    pub agent_session_timeout: Duration,
    /// How long a call to Botpress may take before its outcome counts as uncertain.
    pub delivery_timeout: Duration,
    /// A sign-in token unused this long stops working.
    pub token_idle_timeout: Duration,
    /// A sign-in token this old stops working, used or not.
    pub token_max_age: Duration,
    /// Whether the hub may call URLs that are plain `http`, or whose host is on loopback or a
    /// private network (`BATON_ALLOW_PRIVATE_URLS=1`): for tests and solo mode, never a
    /// production hub, where it would let a channel's settings reach the hub's own network.
    pub allow_private_urls: bool,
    /// The most connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

/// The environment variable that lets a hub call private and plain-http URLs.
pub const ALLOW_PRIVATE_URLS_ENV: &str = "BATON_ALLOW_PRIVATE_URLS";

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            agent_session_timeout: Duration::from_secs(600),
            delivery_timeout: Duration::from_secs(10),
            token_idle_timeout: Duration::from_secs(14 * 24 * 3600),
            token_max_age: Duration::from_secs(90 * 24 * 3600),
            allow_private_urls: std::env::var(ALLOW_PRIVATE_URLS_ENV).is_ok_and(|v| v == "1"),
            max_connections: 1000,
        }
    }
}

/// How many password hashes run at once (sign-ins wait their turn beyond that).
const PARALLEL_HASHES: usize = 2;

/// The shared state behind every route: the store, the clock and the id source.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    store: Box<dyn Store>,
    clock: Box<dyn Clock>,
    config: HubConfig,
    started: DateTime<Utc>,
    /// When each agent last showed a sign of life (a request or an open stream), since start.
    activity: Mutex<HashMap<String, DateTime<Utc>>>,
    delivery: tokio::sync::Notify,
    /// Botpress secret hash → channel id, for a few seconds (a rotated secret, even one rotated
    /// by another process, stops working within [`Hub::SETTINGS_TTL`]).
    channel_ids: Mutex<HashMap<String, (std::time::Instant, String)>>,
    /// Conversation → until when calls to its bot wait (its handoff was just created).
    bot_holds: Mutex<HashMap<String, std::time::Instant>>,
    /// Channel settings read in the last few seconds: the message hot path needs them per request.
    settings: Mutex<HashMap<String, (std::time::Instant, channel::ChannelSettings)>>,
    /// Sessions ended in this process (sign-out, a disabled agent, a new password): open streams
    /// of those close at once. Streams also re-check their token every second, for changes made
    /// by another process (the admin CLI).
    revoked: tokio::sync::broadcast::Sender<Revoked>,
    login_throttle: Mutex<auth::LoginThrottle>,
    /// Password hashing is slow and memory-hungry by design (Argon2, ~19 MiB each): a few at a time.
    hashing: tokio::sync::Semaphore,
    /// Open streams hold one each: an upgraded connection leaves the front door's count.
    streams: Arc<tokio::sync::Semaphore>,
    /// WhatsApp numbers' approved templates, as last listed (they change rarely; Meta's listing
    /// is slow).
    templates: Mutex<HashMap<String, (std::time::Instant, Vec<baton_protocol::WhatsAppTemplate>)>>,
    /// Where customers' media files are kept (`DATA/media`); none for a hub without a directory.
    media_dir: Mutex<Option<std::path::PathBuf>>,
    /// For the hub's own calls that are not deliveries (the template list); `None` if it could
    /// not be built (then those calls answer 503).
    http: Option<reqwest::Client>,
    /// Committed events as ready WebSocket text frames, made once per commit for every stream.
    frames: std::sync::OnceLock<tokio::sync::broadcast::Sender<Frame>>,
}

/// One commit's events as a WebSocket text frame (`first..=last` are its seqs), shared by every
/// stream: checked as UTF-8 once, not once per stream.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub first: u64,
    pub last: u64,
    pub text: axum::extract::ws::Utf8Bytes,
}

/// A session that just ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Revoked {
    /// Every session of this agent.
    Agent(String),
    /// The session of this token (by its hash).
    Token(String),
    /// Something changed outside this process (the admin CLI wrote, tokens expired): every
    /// stream checks its session again and reads the log for events it has not sent.
    Recheck,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Opens the hub whose data lives in `data_dir` (created if missing).
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_clock(data_dir, SystemClock)
    }

    pub fn open_with_clock(data_dir: &Path, clock: impl Clock) -> Result<Self, StoreError> {
        Self::open_with(data_dir, clock, HubConfig::default())
    }

    pub fn open_with(
        data_dir: &Path,
        clock: impl Clock,
        config: HubConfig,
    ) -> Result<Self, StoreError> {
        let store = store::SqliteStore::open(data_dir)?;
        let hub = Self::with_store(Box::new(store), clock, config);
        // Customers' files live beside the database, as private as it.
        let media = data_dir.join("media");
        let _ = baton_protocol::private_fs::private_dir(&media, "media");
        if let Ok(mut dir) = hub.inner.media_dir.lock() {
            *dir = Some(media);
        }
        Ok(hub)
    }

    /// Opens the hub whose data lives in the PostgreSQL database at `url` (migrating it if
    /// needed); `files`, if given, is this instance's directory for customers' media.
    #[cfg(feature = "postgres")]
    pub fn open_postgres(
        url: &str,
        files: Option<&Path>,
        clock: impl Clock,
        config: HubConfig,
    ) -> Result<Self, StoreError> {
        // A claimed call is this instance's for three delivery timeouts and 5 s.
        let lease = config.delivery_timeout * 3 + Duration::from_secs(5);
        let store = store::PostgresStore::open_with_lease(url, lease)?;
        let hub = Self::with_store(Box::new(store), clock, config);
        if let Some(files) = files {
            let media = files.join("media");
            baton_protocol::private_fs::private_dir(&media, "media").map_err(|source| {
                StoreError::DataDir {
                    path: files.to_path_buf(),
                    source,
                }
            })?;
            if let Ok(mut dir) = hub.inner.media_dir.lock() {
                *dir = Some(media);
            }
        }
        Ok(hub)
    }

    /// A hub over any [`Store`] implementation.
    pub fn with_store(store: Box<dyn Store>, clock: impl Clock, config: HubConfig) -> Self {
        let http = egress::client(config.allow_private_urls, Duration::from_secs(10))
            .inspect_err(|e| tracing::error!(error = %e, "cannot build the hub's HTTP client"))
            .ok();
        let max_streams = config.max_connections.max(1);
        let started = clock.now();
        Self {
            inner: Arc::new(HubInner {
                store,
                clock: Box::new(clock),
                config,
                started,
                activity: Mutex::new(HashMap::new()),
                delivery: tokio::sync::Notify::new(),
                channel_ids: Mutex::new(HashMap::new()),
                bot_holds: Mutex::new(HashMap::new()),
                settings: Mutex::new(HashMap::new()),
                revoked: tokio::sync::broadcast::channel(256).0,
                frames: std::sync::OnceLock::new(),
                templates: Mutex::new(HashMap::new()),
                media_dir: Mutex::new(None),
                http,
                login_throttle: Mutex::new(auth::LoginThrottle::default()),
                hashing: tokio::sync::Semaphore::new(PARALLEL_HASHES),
                streams: Arc::new(tokio::sync::Semaphore::new(max_streams)),
            }),
        }
    }

    /// Ends sessions now: their open streams close.
    pub fn revoke(&self, what: Revoked) {
        let _ = self.inner.revoked.send(what);
    }

    /// Committed events as stream frames, from now on: this instance's commits and, on a shared
    /// database, other instances', in seq order. The first caller starts the thread that turns
    /// them into frames; a frame it misses (it fell behind) shows as a gap in seqs, and streams
    /// read the log for it.
    pub(crate) fn frames(&self) -> tokio::sync::broadcast::Receiver<Frame> {
        let sender = self.inner.frames.get_or_init(|| {
            let (frames, _) = tokio::sync::broadcast::channel(4096);
            // On a shared database an agent may change on another instance.
            let recheck = self.store().shared().then(|| self.inner.revoked.clone());
            relay_frames(
                "baton-hub-frames",
                self.store().subscribe(),
                frames.clone(),
                recheck,
            );
            frames
        });
        sender.subscribe()
    }

    pub(crate) fn revocations(&self) -> tokio::sync::broadcast::Receiver<Revoked> {
        self.inner.revoked.subscribe()
    }

    pub(crate) fn login_throttle(&self) -> std::sync::MutexGuard<'_, auth::LoginThrottle> {
        match self.inner.login_throttle.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn hashing(&self) -> &tokio::sync::Semaphore {
        &self.inner.hashing
    }

    /// A place for one more open stream, if the hub has one.
    pub(crate) fn stream_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.inner.streams.clone().try_acquire_owned().ok()
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Records a sign of life from an agent.
    pub fn touch(&self, agent_id: &str) {
        let now = self.now();
        if let Ok(mut activity) = self.inner.activity.lock() {
            activity.insert(agent_id.to_string(), now);
        }
    }

    /// The agent's last sign of life; the hub's start for agents not heard from since.
    pub fn last_seen(&self, agent_id: &str) -> DateTime<Utc> {
        self.inner
            .activity
            .lock()
            .ok()
            .and_then(|a| a.get(agent_id).copied())
            .unwrap_or(self.inner.started)
    }

    /// How long channel settings are reused before being read again (changes made by another
    /// process, such as the admin CLI, apply within this).
    pub const SETTINGS_TTL: Duration = Duration::from_secs(5);

    pub(crate) fn cached_channel_id(&self, secret_hash: &str) -> Option<String> {
        let ids = self.inner.channel_ids.lock().ok()?;
        let (at, id) = ids.get(secret_hash)?;
        (at.elapsed() < Self::SETTINGS_TTL).then(|| id.clone())
    }

    /// Calls to the bot about `conversation_id` wait until `until` (see [`bot_api::CALLBACK_GRACE`]).
    pub(crate) fn hold_bot_callbacks(&self, conversation_id: &str, until: std::time::Instant) {
        if let Ok(mut holds) = self.inner.bot_holds.lock() {
            let now = std::time::Instant::now();
            holds.retain(|_, t| *t > now);
            holds.insert(conversation_id.to_string(), until);
        }
    }

    /// How long calls to the bot about `conversation_id` must still wait.
    pub(crate) fn bot_callback_wait(&self, conversation_id: &str) -> Option<std::time::Duration> {
        let holds = self.inner.bot_holds.lock().ok()?;
        let until = *holds.get(conversation_id)?;
        until.checked_duration_since(std::time::Instant::now())
    }

    pub(crate) fn remember_channel_id(&self, secret_hash: &str, id: &str) {
        if let Ok(mut ids) = self.inner.channel_ids.lock() {
            if ids.len() > 10_000 {
                ids.clear();
            }
            ids.insert(
                secret_hash.to_string(),
                (std::time::Instant::now(), id.to_string()),
            );
        }
    }

    /// Forgets every cached secret (after this process rotated one).
    pub(crate) fn forget_channel_ids(&self) {
        if let Ok(mut ids) = self.inner.channel_ids.lock() {
            ids.clear();
        }
    }

    /// A channel's settings, from the cache when fresh, else from `load`.
    pub(crate) fn channel_settings(
        &self,
        id: &str,
        load: impl FnOnce() -> Option<channel::ChannelSettings>,
    ) -> Option<channel::ChannelSettings> {
        self.channel_setting(id, load, channel::ChannelSettings::clone)
    }

    /// What `pick` reads from a channel's settings (cached as [`Hub::channel_settings`]), without
    /// copying the rest: hot paths ask one question per message.
    pub(crate) fn channel_setting<T>(
        &self,
        id: &str,
        load: impl FnOnce() -> Option<channel::ChannelSettings>,
        pick: impl FnOnce(&channel::ChannelSettings) -> T,
    ) -> Option<T> {
        if let Ok(cache) = self.inner.settings.lock() {
            if let Some((at, settings)) = cache.get(id) {
                if at.elapsed() < Self::SETTINGS_TTL {
                    return Some(pick(settings));
                }
            }
        }
        let settings = load()?;
        let picked = pick(&settings);
        if let Ok(mut cache) = self.inner.settings.lock() {
            cache.insert(id.to_string(), (std::time::Instant::now(), settings));
        }
        Some(picked)
    }

    /// How long a number's template list is reused.
    const TEMPLATES_TTL: Duration = Duration::from_secs(600);

    /// A number's templates as listed in the last 10 minutes; `key` names the number and its
    /// WhatsApp Business Account.
    pub(crate) fn cached_templates(
        &self,
        key: &str,
    ) -> Option<Vec<baton_protocol::WhatsAppTemplate>> {
        let cache = self.inner.templates.lock().ok()?;
        let (at, list) = cache.get(key)?;
        (at.elapsed() < Self::TEMPLATES_TTL).then(|| list.clone())
    }

    pub(crate) fn remember_templates(&self, key: &str, list: &[baton_protocol::WhatsAppTemplate]) {
        if let Ok(mut cache) = self.inner.templates.lock() {
            cache.insert(key.to_string(), (std::time::Instant::now(), list.to_vec()));
        }
    }

    pub(crate) fn media_dir(&self) -> Option<std::path::PathBuf> {
        self.inner.media_dir.lock().ok().and_then(|d| d.clone())
    }

    pub(crate) fn http(&self) -> Result<&reqwest::Client, ApiError> {
        self.inner.http.as_ref().ok_or_else(|| {
            ApiError::Unavailable("the hub cannot make outside calls right now".into())
        })
    }

    /// Drops cached settings after this process changed a channel.
    pub(crate) fn forget_channel_settings(&self, id: &str) {
        if let Ok(mut cache) = self.inner.settings.lock() {
            cache.remove(id);
        }
    }

    /// Tells the delivery worker that new calls are queued.
    pub fn wake_delivery(&self) {
        self.inner.delivery.notify_one();
    }

    pub(crate) fn delivery_wakeup(&self) -> &tokio::sync::Notify {
        &self.inner.delivery
    }

    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// A new entity id: `prefix` + `_` + 20 random base-32 characters (100 bits). Prefixes keep the
    /// namespaces apart (an agent id can never look like an end user's) and none is ever `BOT`.
    pub fn new_id(&self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
        let mut rng = rand::thread_rng();
        let tail: String = (0..20)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        format!("{prefix}_{tail}")
    }
}

/// Turns `live`'s commits into stream frames on `frames`, on a thread of its own.
///
/// `recheck`, on a shared database: an agent changed on another instance (disabled, a new
/// password) has every stream here check its session at once, as a change by the admin CLI does.
/// Only frames read back from the log can hold one.
fn relay_frames(
    name: &str,
    mut live: tokio::sync::broadcast::Receiver<store::Live>,
    relay: tokio::sync::broadcast::Sender<Frame>,
    recheck: Option<tokio::sync::broadcast::Sender<Revoked>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let started = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || loop {
            match live.blocking_recv() {
                Ok(commit) => {
                    // A customer's payload that happens to hold this text only costs a recheck.
                    // (This process's own commits are its own changes: it revoked what they ended.)
                    let agent_changed = commit.from_log
                        && memchr::memmem::find(&commit.json, br#""kind":"agent""#).is_some();
                    match axum::extract::ws::Utf8Bytes::try_from(commit.json) {
                        Ok(text) => {
                            let _ = relay.send(Frame {
                                first: commit.first,
                                last: commit.last,
                                text,
                            });
                        }
                        Err(e) => tracing::error!(error = %e, "stream: a commit's frame is not UTF-8; streams read it from the log"),
                    }
                    if let (true, Some(recheck)) = (agent_changed, &recheck) {
                        let _ = recheck.send(Revoked::Recheck);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "stream: frames fell behind; streams read the gap from the log")
                }
                Err(RecvError::Closed) => return,
            }
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "stream: cannot start the frame thread; streams catch up from the log");
    }
}

/// Every route the hub serves.
pub fn router(hub: Hub) -> Router {
    let router = Router::new()
        .merge(botpress::routes())
        .merge(whatsapp::routes())
        .merge(bot_api::routes())
        .nest("/api/v1", api::routes().merge(push::routes()))
        .nest("/api/v1/admin", admin_api::routes())
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    #[cfg(feature = "web-app")]
    let router = router.merge(web_app::routes());
    router
        .layer(axum::middleware::from_fn(body::refuse_nul_in_address))
        .with_state(hub)
}

/// Serves [`router`] on `listener` until `shutdown` resolves, through the front door ([`front`]:
/// connection cap and timeouts), with the hub's background work (the Botpress delivery queue and
/// the sweeps) running alongside.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hub: Hub,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "baton-hub listening");
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let delivery = tokio::spawn(delivery::run(hub.clone(), stopped.clone()));
    let sweep = tokio::spawn(presence::run(hub.clone(), stopped.clone()));
    let routing_task = tokio::spawn(routing::run(hub.clone(), stopped.clone()));
    let push_task = tokio::spawn(push::run(hub.clone(), stopped.clone()));
    let watch = tokio::spawn(watch_other_writers(hub.clone(), stopped.clone()));
    let activity = tokio::spawn(share_activity(hub.clone(), stopped));
    {
        // Files an earlier version kept in this instance's --data only, for the other instances.
        let hub = hub.clone();
        tokio::task::spawn_blocking(move || match files::share_local_files(&hub) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                files = n,
                "files: copied this instance's files into the database"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "files: cannot copy this instance's files into the database")
            }
        });
    }
    let limits = front::Limits {
        max_connections: hub.config().max_connections,
        ..front::Limits::default()
    };
    let result = front::serve(listener, router(hub), limits, async move {
        shutdown.await;
        let _ = stop.send(true);
    })
    .await;
    let _ = delivery.await;
    let _ = sweep.await;
    let _ = routing_task.await;
    let _ = push_task.await;
    let _ = watch.await;
    let _ = activity.await;
    result
}

/// On a database several hubs share, writes the agents' signs of life this instance saw, every
/// few seconds (an eighth of the session timeout at most), for the leader's presence sweep.
async fn share_activity(hub: Hub, mut stop: tokio::sync::watch::Receiver<bool>) {
    if !hub.store().shared() {
        return;
    }
    let every = (hub.config().agent_session_timeout / 8)
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let seen: Vec<(String, DateTime<Utc>)> = match hub.inner.activity.lock() {
            Ok(activity) => activity.iter().map(|(a, t)| (a.clone(), *t)).collect(),
            Err(_) => continue,
        };
        let hub2 = hub.clone();
        match tokio::task::spawn_blocking(move || hub2.store().record_activity(&seen)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "presence: cannot share agents' activity; trying again")
            }
            Err(e) => tracing::warn!(error = %e, "presence: activity task failed"),
        }
    }
}

/// How often the hub looks for writes made by another process.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Notices, within a second, events another process (the admin CLI) wrote to the log: streams are
/// told to send them and to check their session again (a disabled agent, a new password). One
/// cheap read per second for the whole hub, whatever the number of streams.
///
/// A shared database needs none of it: other processes' commits arrive through the store's
/// relay ([`Hub::frames`]), which has streams recheck when an agent changed.
async fn watch_other_writers(hub: Hub, mut stop: tokio::sync::watch::Receiver<bool>) {
    if hub.store().shared() {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => {}
            _ = stop.changed() => return,
        }
        let hub2 = hub.clone();
        let last = match tokio::task::spawn_blocking(move || hub2.store().last_seq()).await {
            Ok(Ok(last)) => last,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the log's end; trying again");
                continue;
            }
            Err(_) => continue,
        };
        // This process's own commit is in the log a moment before it is announced: look again
        // before telling every stream to read the log (under load that moment is always now).
        if last > hub.store().announced() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if last > hub.store().announced() {
            hub.store().noticed(last);
            hub.revoke(Revoked::Recheck);
        }
    }
}
