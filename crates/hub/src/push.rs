//! Push: waking an agent's phone (FCM for Android, APNs for iOS) or browser (Web Push) when
//! something needs them and their app is not in front — a new handoff they could take, a handoff
//! given to them, a customer writing in theirs.
//!
//! Devices register with `POST /api/v1/devices` under the session that registers them (signing
//! out removes them). Each carries its agent's notification settings (which events, quiet hours
//! in the device's time zone) and how much of a customer's words a push may show. The hub's admin
//! configures each provider with `baton-hub push …`; the configuration, with its private keys,
//! stays in the hub's private database.
//!
//! Pushes follow the committed log: [`run`] reads every committed event once, decides who to wake,
//! and sends in the background, so neither a customer's message nor an agent's command ever waits
//! for Google, Apple or a browser vendor. A push is a nudge, not the record: one lost to a crash
//! is still in the agent's inbox when they open the app. Each push is collapsed per conversation
//! (FCM `collapse_key`, APNs `apns-collapse-id`, Web Push `Topic`), so a burst shows as one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use baton_protocol::prefs::NotificationSettings;
use baton_protocol::{Agent, Author, Event, EventData, Handoff, HandoffStatus, Presence};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use web_push_native::jwt_simple::prelude::{
    Claims, ECDSAP256KeyPairLike, ES256KeyPair, RS256KeyPair, RSAKeyPairLike,
};
use web_push_native::p256;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint as _;

use crate::error::ApiError;
use crate::store::StoreError;
use crate::Hub;

/// Where the providers' configuration is kept (the store's hub-wide settings).
pub const CONFIG_KEY: &str = "push";

pub const FCM_ENDPOINT: &str = "https://fcm.googleapis.com";
pub const APNS_ENDPOINT: &str = "https://api.push.apple.com";
pub const APNS_SANDBOX_ENDPOINT: &str = "https://api.sandbox.push.apple.com";

/// The most devices one agent may register (a phone, a tablet, browsers): enough for anyone, and
/// a bound on what one session can make the hub send.
pub const MAX_DEVICES_PER_AGENT: usize = 20;
/// The longest token or subscription endpoint taken.
const MAX_ADDRESS: usize = 2048;
/// The most of a customer's words a push shows, when the agent allows words at all.
const MAX_PREVIEW_CHARS: usize = 180;
/// The most of a push service's refusal read.
const MAX_REFUSAL_BYTES: usize = 8 * 1024;
/// How many pushes may wait for a slot or a retry before new ones are dropped.
const MAX_WAITING: usize = 1024;
/// How many pushes may be in flight at once.
const MAX_IN_FLIGHT: usize = 32;

/// Why push cannot be set up as asked, worded for the admin or the device.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PushError> for ApiError {
    fn from(e: PushError) -> Self {
        match e {
            PushError::Invalid(why) => ApiError::BadRequest(why),
            PushError::Store(e) => ApiError::Internal(e),
        }
    }
}

/// The providers this hub pushes through; any may be absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm: Option<FcmConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<ApnsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebPushConfig>,
}

/// Firebase Cloud Messaging (HTTP v1), authenticated as a Google service account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FcmConfig {
    pub project_id: String,
    pub client_email: String,
    /// The service account's private key (PEM).
    pub private_key: String,
    /// Where access tokens are exchanged for the signed assertion.
    pub token_uri: String,
    #[serde(default = "fcm_endpoint")]
    pub endpoint: String,
}

fn fcm_endpoint() -> String {
    FCM_ENDPOINT.into()
}

/// Apple Push Notification service, with token (`.p8` key) authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApnsConfig {
    pub team_id: String,
    pub key_id: String,
    /// The `.p8` signing key (PEM).
    pub private_key: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    #[serde(default = "apns_endpoint")]
    pub endpoint: String,
}

fn apns_endpoint() -> String {
    APNS_ENDPOINT.into()
}

/// Web Push with VAPID: the hub's own P-256 key pair, made by the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebPushConfig {
    /// The private scalar, base64url (32 bytes).
    pub private_key: String,
    /// The public point, uncompressed, base64url (65 bytes): browsers subscribe with it.
    pub public_key: String,
    /// Who push services may contact about this hub (`mailto:` or `https:`).
    pub subject: String,
}

impl FcmConfig {
    /// Reads a service account's JSON key file (as the Firebase console gives it).
    pub fn from_service_account(json: &str, endpoint: Option<String>) -> Result<Self, PushError> {
        #[derive(Deserialize)]
        struct Account {
            project_id: String,
            client_email: String,
            private_key: String,
            #[serde(default = "google_token_uri")]
            token_uri: String,
        }
        fn google_token_uri() -> String {
            "https://oauth2.googleapis.com/token".into()
        }
        let account: Account = serde_json::from_str(json).map_err(|e| {
            PushError::Invalid(format!(
                "not a service account key file (project_id, client_email, private_key): {e}"
            ))
        })?;
        RS256KeyPair::from_pem(&account.private_key).map_err(|e| {
            PushError::Invalid(format!(
                "the service account's private key is unreadable: {e}"
            ))
        })?;
        Ok(Self {
            project_id: account.project_id,
            client_email: account.client_email,
            private_key: account.private_key,
            token_uri: account.token_uri,
            endpoint: endpoint.unwrap_or_else(fcm_endpoint),
        })
    }
}

impl ApnsConfig {
    pub fn new(
        team_id: &str,
        key_id: &str,
        private_key: &str,
        topic: &str,
        endpoint: String,
    ) -> Result<Self, PushError> {
        ES256KeyPair::from_pem(private_key)
            .map_err(|e| PushError::Invalid(format!("the .p8 key is unreadable: {e}")))?;
        for (name, value) in [("team id", team_id), ("key id", key_id), ("topic", topic)] {
            if value.trim().is_empty() {
                return Err(PushError::Invalid(format!("the {name} is empty")));
            }
        }
        Ok(Self {
            team_id: team_id.trim().into(),
            key_id: key_id.trim().into(),
            private_key: private_key.into(),
            topic: topic.trim().into(),
            endpoint,
        })
    }
}

impl WebPushConfig {
    /// A new VAPID key pair for this hub.
    pub fn generate(subject: &str) -> Result<Self, PushError> {
        Self::check_subject(subject)?;
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let public = secret.public_key().to_encoded_point(false);
        Ok(Self {
            private_key: URL_SAFE_NO_PAD.encode(secret.to_bytes()),
            public_key: URL_SAFE_NO_PAD.encode(public.as_bytes()),
            subject: subject.into(),
        })
    }

    /// Refuses a subject push services could not reach anyone at.
    pub fn check_subject(subject: &str) -> Result<(), PushError> {
        if subject.starts_with("mailto:") || subject.starts_with("https://") {
            Ok(())
        } else {
            Err(PushError::Invalid(
                "the VAPID subject is a mailto: or https: address push services can reach".into(),
            ))
        }
    }

    fn key_pair(&self) -> Result<ES256KeyPair, String> {
        let raw = URL_SAFE_NO_PAD
            .decode(&self.private_key)
            .map_err(|e| e.to_string())?;
        ES256KeyPair::from_bytes(&raw).map_err(|e| e.to_string())
    }
}

/// The configuration, as stored (none set: an empty one).
pub fn config(hub: &Hub) -> Result<PushConfig, StoreError> {
    let stored = hub.store().reader()?.setting(CONFIG_KEY)?;
    Ok(stored
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default())
}

/// Changes the configuration with `change` and stores it.
pub fn configure(
    hub: &Hub,
    change: impl FnOnce(&mut PushConfig) -> Result<(), PushError>,
) -> Result<PushConfig, PushError> {
    let mut config = config(hub)?;
    change(&mut config)?;
    let json = serde_json::to_string(&config).map_err(|e| PushError::Invalid(e.to_string()))?;
    hub.store()
        .write(|txn| txn.set_setting(CONFIG_KEY, Some(&json)))?;
    Ok(config)
}

/// The push service a device is reached through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Fcm,
    Apns,
    Web,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fcm => "fcm",
            Self::Apns => "apns",
            Self::Web => "web",
        }
    }
}

/// A browser's push subscription, as `PushSubscription.toJSON()` gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebSubscription {
    pub endpoint: String,
    pub keys: WebKeys,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebKeys {
    pub p256dh: String,
    pub auth: String,
}

/// How much of a customer's message a push may show on a lock screen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preview {
    /// "New message from Zoë": who, never what.
    #[default]
    Name,
    /// The customer's words (cut short).
    Full,
}

/// A device registered for push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub agent_id: String,
    pub platform: Platform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<WebSubscription>,
    #[serde(default)]
    pub settings: NotificationSettings,
    #[serde(default)]
    pub preview: Preview,
    /// The device's IANA time zone, for its quiet hours (UTC when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The language its app speaks (`en`, `fr`, or a locale): what its pushes say is in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Device {
    /// What identifies the device at its push service: its token, or its subscription's endpoint.
    pub fn address(&self) -> &str {
        match (&self.token, &self.subscription) {
            (Some(token), _) => token,
            (None, Some(s)) => &s.endpoint,
            (None, None) => "",
        }
    }

    fn quiet_now(&self, now: DateTime<Utc>) -> bool {
        let zone = self
            .time_zone
            .as_deref()
            .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
            .unwrap_or(chrono_tz::UTC);
        self.settings.quiet_at(now.with_timezone(&zone).time())
    }
}

/// `POST /api/v1/devices`: `{"platform":"fcm"|"apns","token":…}` or
/// `{"platform":"web","subscription":{…}}`, with the agent's settings for this device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub platform: Platform,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub subscription: Option<WebSubscription>,
    #[serde(default)]
    pub settings: Option<NotificationSettings>,
    #[serde(default)]
    pub preview: Option<Preview>,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

impl Registration {
    /// The device it describes, or what is wrong with it.
    pub fn device(
        self,
        id: String,
        agent_id: &str,
        allow_private_urls: bool,
        now: DateTime<Utc>,
    ) -> Result<Device, PushError> {
        let bad = |why: &str| Err(PushError::Invalid(why.into()));
        match (self.platform, &self.token, &self.subscription) {
            (Platform::Apns, Some(token), None) => {
                // It becomes part of the URL path at Apple: hex only.
                if token.is_empty()
                    || token.len() > MAX_ADDRESS
                    || !token.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return bad("an APNs device token is hexadecimal, at most 2048 characters");
                }
            }
            (Platform::Fcm, Some(token), None) => {
                if token.is_empty()
                    || token.len() > MAX_ADDRESS
                    || !token
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
                {
                    return bad("an FCM registration token is letters, digits, ':', '_' and '-', at most 2048");
                }
            }
            (Platform::Fcm | Platform::Apns, _, _) => {
                return bad("fcm and apns devices register a \"token\" (and no subscription)");
            }
            (Platform::Web, None, Some(s)) => {
                if s.endpoint.len() > MAX_ADDRESS {
                    return bad("the subscription's endpoint is too long");
                }
                crate::egress::check_url(&s.endpoint, allow_private_urls, "push endpoint")
                    .map_err(PushError::Invalid)?;
                let key = URL_SAFE_NO_PAD.decode(s.keys.p256dh.trim_end_matches('='));
                if key
                    .ok()
                    .and_then(|k| p256::PublicKey::from_sec1_bytes(&k).ok())
                    .is_none()
                {
                    return bad("the subscription's p256dh key is not a P-256 public key");
                }
                let auth = URL_SAFE_NO_PAD.decode(s.keys.auth.trim_end_matches('='));
                if auth.map(|a| a.len()).ok() != Some(16) {
                    return bad("the subscription's auth secret is not 16 bytes");
                }
            }
            (Platform::Web, _, _) => {
                return bad("web devices register a \"subscription\" (and no token)");
            }
        }
        let settings = self.settings.unwrap_or_default();
        settings
            .check()
            .map_err(|e| PushError::Invalid(e.to_string()))?;
        // A language tag (BCP 47: letters, digits and '-'; '_' as POSIX locales write it).
        let language = match self.language.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(tag)
                if tag.len() <= 35
                    && tag.starts_with(|c: char| c.is_ascii_alphabetic())
                    && tag
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) =>
            {
                Some(tag.to_string())
            }
            Some(tag) => {
                return Err(PushError::Invalid(format!(
                    "{tag:?} is not a language (a tag like fr or en-GB)"
                )))
            }
        };
        if let Some(zone) = &self.time_zone {
            if zone.parse::<chrono_tz::Tz>().is_err() {
                return Err(PushError::Invalid(format!(
                    "{zone:?} is not a time zone (an IANA name like Europe/Paris)"
                )));
            }
        }
        Ok(Device {
            id,
            agent_id: agent_id.into(),
            platform: self.platform,
            token: self.token,
            subscription: self.subscription,
            settings,
            preview: self.preview.unwrap_or_default(),
            time_zone: self.time_zone,
            language,
            created_at: now,
        })
    }
}

/// What a push tells an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A handoff they could take.
    NewHandoff { handoff: Handoff },
    /// Routed or transferred to them.
    ForYou { handoff: Handoff },
    /// Their customer wrote.
    CustomerWrote {
        conversation_id: String,
        customer: String,
        text: Option<String>,
    },
}

impl Notice {
    fn conversation(&self) -> &str {
        match self {
            Self::NewHandoff { handoff } | Self::ForYou { handoff } => &handoff.conversation_id,
            Self::CustomerWrote {
                conversation_id, ..
            } => conversation_id,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::NewHandoff { .. } => "new_handoff",
            Self::ForYou { .. } => "assigned",
            Self::CustomerWrote { .. } => "customer_message",
        }
    }

    fn wanted(&self, settings: &NotificationSettings) -> bool {
        match self {
            Self::NewHandoff { .. } => settings.new_handoffs,
            Self::ForYou { .. } => settings.assigned_to_me,
            Self::CustomerWrote { .. } => settings.customer_messages,
        }
    }

    /// Title and body in the device's language (French for any `fr*`, else English, as the apps
    /// choose), never more of the customer's words than the device allows.
    fn text(&self, preview: Preview, language: Option<&str>) -> (String, String) {
        let french = language.is_some_and(|l| l.to_ascii_lowercase().starts_with("fr"));
        let said =
            |english: &str, in_french: &str| if french { in_french } else { english }.to_string();
        match self {
            Self::NewHandoff { handoff } => (
                said("New handoff", "Nouveau transfert"),
                handoff.title.clone(),
            ),
            Self::ForYou { handoff } => (
                said("Assigned to you", "Attribué à vous"),
                handoff.title.clone(),
            ),
            Self::CustomerWrote { customer, text, .. } => match (preview, text) {
                (Preview::Full, Some(text)) if !text.trim().is_empty() => {
                    let mut shown: String = text.chars().take(MAX_PREVIEW_CHARS).collect();
                    if text.chars().count() > MAX_PREVIEW_CHARS {
                        shown.push('…');
                    }
                    (customer.clone(), shown)
                }
                _ => (
                    "Baton".into(),
                    if french {
                        format!("Nouveau message de {customer}")
                    } else {
                        format!("New message from {customer}")
                    },
                ),
            },
        }
    }
}

/// Who is woken, for what, from one batch of committed events. `held` follows which agent holds
/// each conversation and `known` each open handoff's last state, across batches.
#[derive(Debug, Default)]
pub struct Decider {
    known: HashMap<String, Known>,
    held: HashMap<String, String>,
}

impl Decider {
    /// Starts from the handoffs open now, so a restart does not take them all for new.
    pub fn starting_from(open: &[Handoff]) -> Self {
        let mut decider = Self::default();
        for h in open {
            decider.note(h);
        }
        decider
    }

    fn note(&mut self, h: &Handoff) -> Option<Known> {
        match h.status {
            HandoffStatus::Pending | HandoffStatus::Assigned => {
                match (&h.status, &h.assignee) {
                    (HandoffStatus::Assigned, Some(agent)) => {
                        self.held.insert(h.conversation_id.clone(), agent.clone());
                    }
                    _ => {
                        self.held.remove(&h.conversation_id);
                    }
                }
                self.known.insert(
                    h.id.clone(),
                    Known {
                        status: h.status,
                        assignee: h.assignee.clone(),
                        for_draft: h.for_draft,
                    },
                )
            }
            _ => {
                if self.held.get(&h.conversation_id).is_some_and(|a| {
                    self.known
                        .get(&h.id)
                        .is_some_and(|k| k.assignee.as_ref() == Some(a))
                }) {
                    self.held.remove(&h.conversation_id);
                }
                self.known.remove(&h.id)
            }
        }
    }

    /// Keeps up with `items` without deciding anything (an instance that does not push).
    pub fn follow(&mut self, items: &[Item]) {
        for item in items {
            if let Item::Handoff(h) = item {
                self.note(h);
            }
        }
    }

    /// The notices for `items`, each with the agents it is for. `agents` reads the team (asked
    /// only when a new handoff needs it); `customer_name` names a conversation's customer (asked
    /// only for a conversation someone holds): a busy log where nobody is to be woken reads
    /// nothing.
    pub fn decide(
        &mut self,
        items: &[Item],
        mut agents: impl FnMut() -> Vec<Agent>,
        mut customer_name: impl FnMut(&str) -> String,
    ) -> Vec<(Notice, Vec<String>)> {
        let mut out = Vec::new();
        let mut team: Option<Vec<Agent>> = None;
        // One commit may write a handoff more than once (opened, then marked as holding a bot's
        // drafts): only its last state in the frame counts, against what was known before it.
        let last: HashMap<&str, usize> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Item::Handoff(h) => Some((h.id.as_str(), i)),
                Item::CustomerWrote { .. } => None,
            })
            .collect();
        let mut earlier: HashMap<String, Option<Known>> = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            match item {
                Item::Handoff(h) => {
                    let noted = self.note(h);
                    let before = earlier.remove(&h.id).unwrap_or(noted);
                    if last.get(h.id.as_str()) != Some(&index) {
                        earlier.insert(h.id.clone(), before);
                        continue;
                    }
                    // New to agents: never seen waiting for one before (a draft's queue item
                    // that a human must now answer counts as new).
                    let new_to_agents = before.as_ref().is_none_or(|k| k.for_draft);
                    if new_to_agents && h.status == HandoffStatus::Pending && !h.for_draft {
                        // Whoever is at work (online, or away from the keyboard) could take it.
                        let to: Vec<String> = team
                            .get_or_insert_with(&mut agents)
                            .iter()
                            .filter(|a| !a.disabled && a.presence != Presence::Offline)
                            .map(|a| a.id.clone())
                            .collect();
                        out.push((
                            Notice::NewHandoff {
                                handoff: (**h).clone(),
                            },
                            to,
                        ));
                    }
                    let newly_theirs = h.status == HandoffStatus::Assigned
                        && h.assignee.is_some()
                        && before.as_ref().map(|k| &k.assignee) != Some(&h.assignee)
                        && h.assigned_by != h.assignee
                        && !h.for_draft;
                    if let (true, Some(agent)) = (newly_theirs, &h.assignee) {
                        out.push((
                            Notice::ForYou {
                                handoff: (**h).clone(),
                            },
                            vec![agent.clone()],
                        ));
                    }
                }
                Item::CustomerWrote {
                    conversation_id,
                    text,
                } => {
                    if let Some(agent) = self.held.get(conversation_id) {
                        out.push((
                            Notice::CustomerWrote {
                                conversation_id: conversation_id.clone(),
                                customer: customer_name(conversation_id),
                                text: text.clone(),
                            },
                            vec![agent.clone()],
                        ));
                    }
                }
            }
        }
        out
    }
}

/// What the decider remembers of an open handoff.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    status: HandoffStatus,
    assignee: Option<String>,
    for_draft: bool,
}

/// What pushes look at in a committed event: handoffs, and what customers write.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    // Boxed: most items are messages.
    Handoff(Box<Handoff>),
    CustomerWrote {
        conversation_id: String,
        text: Option<String>,
    },
}

impl Item {
    pub fn of(event: &Event) -> Option<Self> {
        match &event.data {
            EventData::Handoff(h) => Some(Self::Handoff(Box::new(h.clone()))),
            EventData::Message(m) if m.author == Author::EndUser => Some(Self::CustomerWrote {
                conversation_id: m.conversation_id.clone(),
                text: m.text.clone(),
            }),
            _ => None,
        }
    }

    /// The items of one stream frame after seq `after`, read without decoding what pushes never
    /// look at (message payloads, other kinds): this runs for every commit. (A frame read from
    /// the log may hold several commits, some of them older than the state pushes started from.)
    pub fn read_frame(json: &[u8], after: u64) -> Result<Vec<Self>, serde_json::Error> {
        #[derive(Deserialize)]
        struct Raw<'a> {
            seq: u64,
            kind: String,
            #[serde(borrow)]
            data: &'a serde_json::value::RawValue,
        }
        #[derive(Deserialize)]
        struct MessageHead {
            conversation_id: String,
            author: Author,
            #[serde(default)]
            text: Option<String>,
        }
        let raw: Vec<Raw<'_>> = serde_json::from_slice(json)?;
        let mut items = Vec::new();
        for event in raw.into_iter().filter(|e| e.seq > after) {
            match event.kind.as_str() {
                "handoff" => items.push(Self::Handoff(Box::new(serde_json::from_str(
                    event.data.get(),
                )?))),
                "message" => {
                    let m: MessageHead = serde_json::from_str(event.data.get())?;
                    if m.author == Author::EndUser {
                        items.push(Self::CustomerWrote {
                            conversation_id: m.conversation_id,
                            text: m.text,
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(items)
    }
}

/// What a push service answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent,
    /// The device is gone (uninstalled, signed out of the push service): forget it.
    DeadDevice(String),
    /// Worth another try later (a 5xx, a 429, the network).
    Retry(String),
    /// Refused for a reason retrying will not fix (our configuration); logged.
    Refused(String),
}

/// A secret kept until shortly before it expires, for the credentials (`key`) it was made with:
/// new credentials make it stale at once.
#[derive(Debug, Default)]
struct Cached(Mutex<Option<(String, String, Instant)>>);

impl Cached {
    fn get(&self, key: &str) -> Option<String> {
        let held = self.0.lock().ok()?;
        held.as_ref()
            .filter(|(k, _, until)| k == key && *until > Instant::now())
            .map(|(_, value, _)| value.clone())
    }

    fn put(&self, key: &str, value: &str, lasts: Duration) {
        if let Ok(mut held) = self.0.lock() {
            *held = Some((key.to_string(), value.to_string(), Instant::now() + lasts));
        }
    }

    fn clear(&self) {
        if let Ok(mut held) = self.0.lock() {
            *held = None;
        }
    }
}

/// Sends pushes; keeps the FCM access token and the APNs provider token between them.
pub struct Sender {
    http: reqwest::Client,
    /// APNs speaks HTTP/2 only.
    http2: reqwest::Client,
    /// FCM's access token, for the service account it was issued to.
    fcm_token: Cached,
    /// The signed APNs provider token: Apple refuses one renewed more often than every 20
    /// minutes, and ones older than an hour.
    apns_token: Cached,
    allow_private_urls: bool,
}

impl Sender {
    pub fn new(allow_private_urls: bool) -> Result<Self, String> {
        let http = crate::egress::client(allow_private_urls, Duration::from_secs(15))?;
        let http2 = crate::egress::client_builder(allow_private_urls, Duration::from_secs(15))
            .http2_prior_knowledge()
            .build()
            .map_err(|e| e.without_url().to_string())?;
        Ok(Self {
            http,
            http2,
            fcm_token: Cached::default(),
            apns_token: Cached::default(),
            allow_private_urls,
        })
    }

    /// One push to one device.
    pub async fn send(&self, config: &PushConfig, device: &Device, notice: &Notice) -> Outcome {
        let (title, body) = notice.text(device.preview, device.language.as_deref());
        let conversation = notice.conversation();
        match device.platform {
            Platform::Fcm => match &config.fcm {
                Some(fcm) => self.fcm(fcm, device, notice, &title, &body).await,
                None => Outcome::Refused("FCM is not configured on this hub".into()),
            },
            Platform::Apns => match &config.apns {
                Some(apns) => {
                    self.apns(apns, device, notice, &title, &body, conversation)
                        .await
                }
                None => Outcome::Refused("APNs is not configured on this hub".into()),
            },
            Platform::Web => match &config.web {
                Some(web) => self.web(web, device, notice, &title, &body).await,
                None => Outcome::Refused("Web Push is not configured on this hub".into()),
            },
        }
    }

    async fn fcm_access_token(&self, fcm: &FcmConfig) -> Result<String, Outcome> {
        let account = format!("{} {}", fcm.client_email, fcm.token_uri);
        if let Some(token) = self.fcm_token.get(&account) {
            return Ok(token);
        }
        #[derive(Serialize, Deserialize)]
        struct Scope {
            scope: String,
        }
        let key = RS256KeyPair::from_pem(&fcm.private_key)
            .map_err(|e| Outcome::Refused(format!("the FCM key is unreadable: {e}")))?;
        let claims = Claims::with_custom_claims(
            Scope {
                scope: "https://www.googleapis.com/auth/firebase.messaging".into(),
            },
            web_push_native::jwt_simple::prelude::Duration::from_secs(3600),
        )
        .with_issuer(&fcm.client_email)
        .with_audience(&fcm.token_uri);
        let assertion = key
            .sign(claims)
            .map_err(|e| Outcome::Refused(format!("cannot sign for FCM: {e}")))?;
        let answer = self
            .http
            .post(&fcm.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| Outcome::Retry(e.without_url().to_string()))?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        let Some(token) = body.get("access_token").and_then(Value::as_str) else {
            let why = format!("Google refused the service account ({status}): {body}");
            return Err(if status.is_server_error() {
                Outcome::Retry(why)
            } else {
                Outcome::Refused(why)
            });
        };
        // Kept a minute less than Google says, so it never expires on the way.
        let lasts = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3600)
            .saturating_sub(60);
        self.fcm_token
            .put(&account, token, Duration::from_secs(lasts));
        Ok(token.to_string())
    }

    async fn fcm(
        &self,
        fcm: &FcmConfig,
        device: &Device,
        notice: &Notice,
        title: &str,
        body: &str,
    ) -> Outcome {
        let access = match self.fcm_access_token(fcm).await {
            Ok(token) => token,
            Err(outcome) => return outcome,
        };
        let conversation = notice.conversation();
        let message = json!({"message": {
            "token": device.token,
            "notification": {"title": title, "body": body},
            "data": {"conversation_id": conversation, "kind": notice.kind()},
            "android": {
                "collapse_key": conversation,
                "priority": "high",
                "notification": {"tag": conversation, "sound": if device.settings.sound { Some("default") } else { None }}
            }
        }});
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            fcm.endpoint.trim_end_matches('/'),
            fcm.project_id
        );
        let sent = self
            .http
            .post(url)
            .bearer_auth(access)
            .json(&message)
            .send()
            .await;
        let (status, body) = match refusal(sent).await {
            Ok(refused) => refused,
            Err(outcome) => return outcome,
        };
        let code = body
            .pointer("/error/details/0/errorCode")
            .or_else(|| body.pointer("/error/status"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match (status.as_u16(), code.as_str()) {
            // Only FCM's own word marks a device gone: a 404 alone may be a wrong project or
            // endpoint, which must not wipe every phone.
            (_, "UNREGISTERED") => Outcome::DeadDevice(format!("FCM: {code}")),
            (401, _) => {
                // The access token may have been revoked early: ask for a new one next time.
                self.fcm_token.clear();
                Outcome::Retry("FCM refused the access token".into())
            }
            (429, _) | (500..=599, _) => Outcome::Retry(format!("FCM answered {status}")),
            _ => Outcome::Refused(format!("FCM answered {status}: {body}")),
        }
    }

    async fn apns(
        &self,
        apns: &ApnsConfig,
        device: &Device,
        notice: &Notice,
        title: &str,
        body: &str,
        conversation: &str,
    ) -> Outcome {
        let signer = format!("{} {}", apns.team_id, apns.key_id);
        let jwt = match self.apns_token.get(&signer) {
            Some(jwt) => jwt,
            None => {
                let key = match ES256KeyPair::from_pem(&apns.private_key) {
                    Ok(key) => key.with_key_id(&apns.key_id),
                    Err(e) => return Outcome::Refused(format!("the APNs key is unreadable: {e}")),
                };
                let claims = Claims::create(
                    web_push_native::jwt_simple::prelude::Duration::from_mins(60),
                )
                .with_issuer(&apns.team_id);
                match key.sign(claims) {
                    Ok(jwt) => {
                        self.apns_token
                            .put(&signer, &jwt, Duration::from_secs(40 * 60));
                        jwt
                    }
                    Err(e) => return Outcome::Refused(format!("cannot sign for APNs: {e}")),
                }
            }
        };
        let mut alert = json!({"alert": {"title": title, "body": body}, "thread-id": conversation});
        if device.settings.sound {
            alert["sound"] = json!("default");
        }
        let payload = json!({"aps": alert, "conversation_id": conversation, "kind": notice.kind()});
        let url = format!(
            "{}/3/device/{}",
            apns.endpoint.trim_end_matches('/'),
            device.token.as_deref().unwrap_or("")
        );
        let answer = self
            .http2
            .post(url)
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-topic", &apns.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-collapse-id", conversation)
            .json(&payload)
            .send()
            .await;
        let (status, body) = match refusal(answer).await {
            Ok(refused) => refused,
            Err(outcome) => return outcome,
        };
        let reason = body
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match (status.as_u16(), reason.as_str()) {
            (410, _) | (_, "BadDeviceToken" | "Unregistered" | "DeviceTokenNotForTopic") => {
                Outcome::DeadDevice(format!("APNs: {reason}"))
            }
            (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
                // A new provider token next time.
                self.apns_token.clear();
                Outcome::Retry(format!("APNs: {reason}"))
            }
            (429, _) | (500..=599, _) => Outcome::Retry(format!("APNs answered {status}")),
            _ => Outcome::Refused(format!("APNs answered {status}: {reason}")),
        }
    }

    async fn web(
        &self,
        web: &WebPushConfig,
        device: &Device,
        notice: &Notice,
        title: &str,
        body: &str,
    ) -> Outcome {
        let Some(subscription) = &device.subscription else {
            return Outcome::DeadDevice("a web device without a subscription".into());
        };
        let request = (|| -> Result<axum::http::Request<Vec<u8>>, String> {
            let key_pair = web.key_pair()?;
            let p256dh = URL_SAFE_NO_PAD
                .decode(subscription.keys.p256dh.trim_end_matches('='))
                .map_err(|e| e.to_string())?;
            let auth = URL_SAFE_NO_PAD
                .decode(subscription.keys.auth.trim_end_matches('='))
                .map_err(|e| e.to_string())?;
            let builder = web_push_native::WebPushBuilder::new(
                subscription.endpoint.parse().map_err(|e| format!("{e}"))?,
                p256::PublicKey::from_sec1_bytes(&p256dh).map_err(|e| e.to_string())?,
                web_push_native::Auth::clone_from_slice(&auth),
            )
            .with_valid_duration(Duration::from_secs(12 * 3600));
            let payload = json!({
                "title": title, "body": body,
                "conversation_id": notice.conversation(), "kind": notice.kind(),
            });
            let mut request = builder
                .build(payload.to_string())
                .map_err(|e| e.to_string())?;
            // VAPID (RFC 8292) signed here rather than by the crate, whose audience drops a
            // non-default port: the audience is the endpoint's origin, port included.
            let endpoint = url::Url::parse(&subscription.endpoint).map_err(|e| e.to_string())?;
            let claims = Claims::create(
                web_push_native::jwt_simple::prelude::Duration::from_hours(12),
            )
            .with_audience(endpoint.origin().ascii_serialization())
            .with_subject(&web.subject);
            let jwt = key_pair.sign(claims).map_err(|e| e.to_string())?;
            let value = format!("vapid t={jwt}, k={}", web.public_key);
            request.headers_mut().insert(
                axum::http::header::AUTHORIZATION,
                axum::http::HeaderValue::from_str(&value).map_err(|e| e.to_string())?,
            );
            Ok(request)
        })();
        let request = match request {
            Ok(request) => request,
            Err(why) => {
                return Outcome::Refused(format!("cannot make the Web Push request: {why}"))
            }
        };
        if !crate::egress::allowed(&subscription.endpoint, self.allow_private()) {
            return Outcome::DeadDevice("the subscription's endpoint is not allowed".into());
        }
        let (parts, payload) = request.into_parts();
        let mut call = self.http.post(&subscription.endpoint).body(payload);
        for (name, value) in &parts.headers {
            call = call.header(name.as_str(), value.as_bytes());
        }
        // Topic: a newer push for the same conversation replaces one not yet delivered.
        let topic: String = notice
            .conversation()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(32)
            .collect();
        call = call.header("topic", topic).header("urgency", "high");
        let status = match refusal(call.send().await).await {
            Ok((status, _)) => status,
            Err(outcome) => return outcome,
        };
        match status.as_u16() {
            404 | 410 => Outcome::DeadDevice(format!("the push service answered {status}")),
            429 | 500..=599 => Outcome::Retry(format!("the push service answered {status}")),
            _ => Outcome::Refused(format!("the push service answered {status}")),
        }
    }

    fn allow_private(&self) -> bool {
        self.allow_private_urls
    }
}

/// A push service's refusal (its status and JSON body, if any), or the outcome when there is none
/// to read: sent, or not reached (worth another try).
async fn refusal(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<(reqwest::StatusCode, Value), Outcome> {
    let mut answer = sent.map_err(|e| Outcome::Retry(e.without_url().to_string()))?;
    let status = answer.status();
    if status.is_success() {
        return Err(Outcome::Sent);
    }
    // A refusal's reason is a few hundred bytes; an endpoint (a browser's is anyone's) cannot
    // make the hub hold more.
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = answer.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_REFUSAL_BYTES {
            body.clear();
            break;
        }
    }
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Reads the committed log as it grows and sends the pushes it calls for, until `stop`.
pub async fn run(hub: Hub, mut stop: tokio::sync::watch::Receiver<bool>) {
    let sender = match Sender::new(hub.config().allow_private_urls) {
        Ok(sender) => Arc::new(sender),
        Err(e) => {
            tracing::error!(error = %e, "push: cannot make an HTTP client; no pushes");
            return;
        }
    };
    // Every instance's commits, in seq order: who holds a chat may have changed through another
    // hub. On a shared database only the leader sends, so a push goes out once, not once per
    // instance; the others follow, so that whichever leads next knows who holds what.
    let mut live = hub.store().subscribe();
    let Some((mut decider, mut read_up_to)) = fresh_decider(&hub, &mut stop).await else {
        return;
    };
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let waiting = Arc::new(tokio::sync::Semaphore::new(MAX_WAITING));
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return,
            frame = live.recv() => frame,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                // Pushes are nudges: under a burst too big to follow, some are skipped (the inbox
                // still has everything).
                // What it missed may have moved handoffs: it starts again from the store.
                tracing::warn!(missed, "push: fell behind the log; some pushes skipped");
                let Some((fresh, seq)) = fresh_decider(&hub, &mut stop).await else {
                    return;
                };
                (decider, read_up_to) = (fresh, seq);
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        // Already in the state the decider was read from.
        if frame.last <= read_up_to {
            continue;
        }
        let items = match Item::read_frame(&frame.json, read_up_to) {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "push: a frame of the log did not read; starting again from the store");
                let Some((fresh, seq)) = fresh_decider(&hub, &mut stop).await else {
                    return;
                };
                (decider, read_up_to) = (fresh, seq);
                continue;
            }
        };
        if items.is_empty() {
            continue;
        }
        if !hub.store().leading() {
            decider.follow(&items);
            continue;
        }
        // The decisions read the store (the team, customers' names, the devices) only when
        // someone may be woken; off the async threads, with the decider lent and given back.
        let hub2 = hub.clone();
        let decided = tokio::task::spawn_blocking(move || {
            let read = hub2.store().reader().ok();
            let notices = decider.decide(
                &items,
                || {
                    read.as_ref()
                        .and_then(|r| r.agents().ok())
                        .unwrap_or_default()
                },
                |conversation| {
                    read.as_ref()
                        .and_then(|r| customer_name(&**r, conversation))
                        .unwrap_or_else(|| "a customer".into())
                },
            );
            let devices = if notices.is_empty() {
                Vec::new()
            } else {
                read.as_ref()
                    .and_then(|r| r.devices().ok())
                    .unwrap_or_default()
            };
            let config = if devices.is_empty() {
                None
            } else {
                config(&hub2).ok()
            };
            (decider, notices, devices, config)
        })
        .await;
        let Ok((back, notices, devices, config)) = decided else {
            tracing::error!("push: deciding stopped short; pushes stop");
            return;
        };
        decider = back;
        let Some(config) = config else {
            continue;
        };
        let now = hub.now();
        for (notice, agents) in notices {
            for device in devices.iter().filter(|d| {
                agents.contains(&d.agent_id) && notice.wanted(&d.settings) && !d.quiet_now(now)
            }) {
                // The log is never held up for a slow push service: past a bound, pushes are
                // dropped (they are nudges; the inbox has everything).
                let Ok(queued) = waiting.clone().try_acquire_owned() else {
                    tracing::warn!(device = %device.id, "push: too many pushes waiting; this one dropped");
                    continue;
                };
                let (hub, sender, config, device, notice, in_flight) = (
                    hub.clone(),
                    sender.clone(),
                    config.clone(),
                    device.clone(),
                    notice.clone(),
                    in_flight.clone(),
                );
                tokio::spawn(async move {
                    deliver(&hub, &sender, &in_flight, &config, &device, &notice).await;
                    drop(queued);
                });
            }
        }
    }
}

/// One push, tried again on a passing failure (after 1 s, then 5 s); a dead device is forgotten.
async fn deliver(
    hub: &Hub,
    sender: &Sender,
    in_flight: &tokio::sync::Semaphore,
    config: &PushConfig,
    device: &Device,
    notice: &Notice,
) {
    for wait in [0, 1, 5] {
        if wait > 0 {
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
        // A sending slot only while sending: a push waiting to try again holds none.
        let Ok(_sending) = in_flight.acquire().await else {
            return;
        };
        match sender.send(config, device, notice).await {
            Outcome::Sent => {
                tracing::debug!(device = %device.id, kind = notice.kind(), "push: sent");
                return;
            }
            Outcome::DeadDevice(why) => {
                tracing::info!(device = %device.id, agent = %device.agent_id, %why, "push: the device is gone; forgotten");
                let (hub, id) = (hub.clone(), device.id.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    hub.store().write(|txn| txn.remove_device(&id))
                })
                .await;
                return;
            }
            Outcome::Refused(why) => {
                tracing::warn!(device = %device.id, platform = device.platform.as_str(), %why, "push: refused");
                return;
            }
            Outcome::Retry(why) => {
                tracing::info!(device = %device.id, %why, "push: will try again");
            }
        }
    }
    tracing::warn!(device = %device.id, "push: gave up after three tries");
}

/// A decider from the handoffs open now, and the log's seq it reflects; tried again every second
/// until the store answers (`None`: the hub is stopping).
async fn fresh_decider(
    hub: &Hub,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<(Decider, u64)> {
    loop {
        let hub2 = hub.clone();
        let read = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            // Two reads, not one snapshot: a handoff changed between them may be taken as known
            // already (one push missed), never pushed twice.
            let seq = hub2.store().last_seq()?;
            Ok((open_handoffs(&hub2)?, seq))
        })
        .await;
        match read {
            Ok(Ok((open, seq))) => return Some((Decider::starting_from(&open), seq)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "push: cannot read the open handoffs; trying again")
            }
            Err(_) => tracing::warn!("push: reading the open handoffs stopped short; trying again"),
        }
        tokio::select! {
            _ = stop.changed() => return None,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn open_handoffs(hub: &Hub) -> Result<Vec<Handoff>, StoreError> {
    let read = hub.store().reader()?;
    let mut open = Vec::new();
    for channel in read.channels()? {
        open.extend(read.pending_handoffs(&channel.id)?);
    }
    for agent in read.agents()? {
        open.extend(read.held_handoffs(&agent.id)?);
    }
    Ok(open)
}

/// The name of a conversation's customer.
fn customer_name(read: &dyn crate::store::Read, conversation: &str) -> Option<String> {
    let contact = read.conversation(conversation).ok()??.contact_id?;
    Some(read.contact(&contact).ok()??.name)
}

/// The device routes under `/api/v1`.
pub fn routes() -> axum::Router<Hub> {
    use axum::routing::{delete, get, post};
    axum::Router::new()
        .route("/devices", post(register))
        .route("/devices/web-push-key", get(web_push_key))
        .route("/devices/{id}", delete(unregister))
}

/// `POST /api/v1/devices`: registers this session's device; `{"id": …}`.
async fn register(
    axum::extract::State(hub): axum::extract::State<Hub>,
    session: crate::auth::Session,
    crate::body::JsonBody(registration): crate::body::JsonBody<Registration>,
) -> Result<axum::Json<Value>, ApiError> {
    let device = registration.device(
        hub.new_id("dv"),
        &session.agent.id,
        hub.config().allow_private_urls,
        hub.now(),
    )?;
    let hub2 = hub.clone();
    let id = device.id.clone();
    tokio::task::spawn_blocking(move || {
        let others = hub2
            .store()
            .reader()?
            .devices()?
            .into_iter()
            .filter(|d| d.agent_id == device.agent_id && d.address() != device.address())
            .count();
        if others >= MAX_DEVICES_PER_AGENT {
            return Err(ApiError::BadRequest(format!(
                "an agent may register at most {MAX_DEVICES_PER_AGENT} devices; sign out on one you no longer use"
            )));
        }
        hub2.store()
            .write(|txn| txn.put_device(&device, &session.token_hash))?;
        tracing::info!(device = %device.id, agent = %device.agent_id, platform = device.platform.as_str(), "push: a device registered");
        Ok(())
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    Ok(axum::Json(json!({ "id": id })))
}

/// `DELETE /api/v1/devices/{id}`: the agent's own device, no longer to be woken.
async fn unregister(
    axum::extract::State(hub): axum::extract::State<Hub>,
    crate::auth::SignedIn(agent): crate::auth::SignedIn,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let hub2 = hub.clone();
    tokio::task::spawn_blocking(move || {
        let theirs = hub2
            .store()
            .reader()?
            .devices()?
            .into_iter()
            .any(|d| d.id == id && d.agent_id == agent.id);
        if !theirs {
            return Err(ApiError::NotFound(format!("no device {id:?} of yours")));
        }
        hub2.store().write(|txn| txn.remove_device(&id))?;
        Ok(())
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    Ok(axum::Json(json!({})))
}

/// `GET /api/v1/devices/web-push-key`: the key a browser subscribes with
/// (`applicationServerKey`), or 404 when the hub has no Web Push.
async fn web_push_key(
    axum::extract::State(hub): axum::extract::State<Hub>,
    crate::auth::SignedIn(_agent): crate::auth::SignedIn,
) -> Result<axum::Json<Value>, ApiError> {
    let hub2 = hub.clone();
    let config = tokio::task::spawn_blocking(move || config(&hub2))
        .await
        .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    match config.web {
        Some(web) => Ok(axum::Json(json!({ "public_key": web.public_key }))),
        None => Err(ApiError::NotFound(
            "this hub has no Web Push (an admin sets it up with `baton-hub push web`)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_protocol::{Message, Role};

    fn handoff(
        id: &str,
        status: HandoffStatus,
        assignee: Option<&str>,
        by: Option<&str>,
    ) -> Handoff {
        Handoff {
            id: id.into(),
            conversation_id: format!("t_{id}"),
            channel_id: "ch".into(),
            status,
            title: "Refund".into(),
            description: None,
            assignee: assignee.map(str::to_string),
            assigned_by: by.map(str::to_string),
            label: None,
            tags: Vec::new(),
            priority: None,
            for_draft: false,
            escalation: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn event(data: EventData) -> Item {
        Item::of(&Event { seq: 1, data }).expect("an item")
    }

    fn agent(id: &str, presence: Presence) -> Agent {
        let mut a = Agent::new(id, format!("{id}@x"), id, Role::Agent);
        a.presence = presence;
        a
    }

    #[test]
    fn a_frame_spanning_the_state_pushes_started_from_gives_only_what_came_after_it() {
        let wrote = |seq: u64, text: &str| {
            serde_json::json!({"seq": seq, "kind": "message", "data": {
                "id": format!("m_{seq}"), "conversation_id": "t_1", "author": "end_user",
                "kind": "text", "text": text, "payload": {}, "status": "received",
                "created_at": "2026-12-01T10:00:00Z"}})
        };
        let frame =
            serde_json::to_vec(&[wrote(7, "counted already"), wrote(8, "new")]).expect("frame");
        let items = Item::read_frame(&frame, 7).expect("reads");
        assert_eq!(
            items,
            [Item::CustomerWrote {
                conversation_id: "t_1".into(),
                text: Some("new".into())
            }]
        );
        assert_eq!(Item::read_frame(&frame, 0).expect("reads").len(), 2);
    }

    #[test]
    fn a_new_handoff_wakes_whoever_is_at_work_and_a_taken_one_wakes_nobody() {
        let team = [
            agent("ann", Presence::Online),
            agent("bo", Presence::Away),
            agent("cy", Presence::Offline),
        ];
        let mut decider = Decider::default();
        let new = decider.decide(
            &[event(EventData::Handoff(handoff(
                "h1",
                HandoffStatus::Pending,
                None,
                None,
            )))],
            || team.to_vec(),
            |_| String::new(),
        );
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].1, vec!["ann".to_string(), "bo".to_string()]);
        let taken = decider.decide(
            &[event(EventData::Handoff(handoff(
                "h1",
                HandoffStatus::Assigned,
                Some("ann"),
                Some("ann"),
            )))],
            || team.to_vec(),
            |_| String::new(),
        );
        assert!(
            taken.is_empty(),
            "what I take myself is no news to me: {taken:?}"
        );
        let given = decider.decide(
            &[event(EventData::Handoff(handoff(
                "h1",
                HandoffStatus::Assigned,
                Some("bo"),
                Some("ann"),
            )))],
            || team.to_vec(),
            |_| String::new(),
        );
        assert_eq!(given.len(), 1);
        assert!(matches!(given[0].0, Notice::ForYou { .. }));
        assert_eq!(given[0].1, vec!["bo".to_string()]);
    }

    #[test]
    fn a_bots_draft_wakes_nobody_until_a_human_must_answer_the_customer() {
        let team = [agent("ann", Presence::Online)];
        let mut decider = Decider::default();
        let opened = handoff("h1", HandoffStatus::Pending, None, None);
        let mut draft = opened.clone();
        draft.for_draft = true;
        // One commit opens the queue item and marks it as holding the bot's drafts.
        let first = decider.decide(
            &[
                event(EventData::Handoff(opened.clone())),
                event(EventData::Handoff(draft)),
            ],
            || team.to_vec(),
            |_| String::new(),
        );
        assert!(
            first.is_empty(),
            "a draft to approve is not a new handoff: {first:?}"
        );
        let taken_over = decider.decide(
            &[event(EventData::Handoff(opened))],
            || team.to_vec(),
            |_| String::new(),
        );
        assert_eq!(taken_over.len(), 1, "now the customer waits for a human");
        assert!(matches!(taken_over[0].0, Notice::NewHandoff { .. }));
    }

    #[test]
    fn a_customer_writing_wakes_only_the_agent_who_holds_the_conversation() {
        let team = [agent("ann", Presence::Online)];
        let mut decider =
            Decider::starting_from(&[handoff("h1", HandoffStatus::Assigned, Some("ann"), None)]);
        let message = |conversation: &str| Message {
            id: "m".into(),
            conversation_id: conversation.into(),
            author: Author::EndUser,
            author_id: None,
            kind: "text".into(),
            text: Some("Where is my parcel?".into()),
            payload: Value::Null,
            status: baton_protocol::DeliveryStatus::Received,
            status_reason: None,
            created_at: Utc::now(),
        };
        let wrote = decider.decide(
            &[event(EventData::Message(message("t_h1")))],
            || team.to_vec(),
            |_| "Zoë".into(),
        );
        assert_eq!(wrote.len(), 1);
        assert_eq!(wrote[0].1, vec!["ann".to_string()]);
        let elsewhere = decider.decide(
            &[event(EventData::Message(message("t_other")))],
            || team.to_vec(),
            |_| "Zoë".into(),
        );
        assert!(elsewhere.is_empty());
        decider.decide(
            &[event(EventData::Handoff(handoff(
                "h1",
                HandoffStatus::Resolved,
                Some("ann"),
                None,
            )))],
            || team.to_vec(),
            |_| String::new(),
        );
        let after = decider.decide(
            &[event(EventData::Message(message("t_h1")))],
            || team.to_vec(),
            |_| "Zoë".into(),
        );
        assert!(after.is_empty(), "nobody holds a resolved conversation");
    }

    #[test]
    fn a_push_shows_a_customers_words_only_when_the_agent_allows_it() {
        let notice = Notice::CustomerWrote {
            conversation_id: "t_1".into(),
            customer: "Zoë".into(),
            text: Some("My card number is 4111…".into()),
        };
        assert_eq!(
            notice.text(Preview::Name, None),
            ("Baton".into(), "New message from Zoë".into())
        );
        assert_eq!(
            notice.text(Preview::Name, Some("fr-CA")),
            ("Baton".into(), "Nouveau message de Zoë".into())
        );
        assert_eq!(
            notice.text(Preview::Full, None).1,
            "My card number is 4111…"
        );
        let long = Notice::CustomerWrote {
            conversation_id: "t_1".into(),
            customer: "Zoë".into(),
            text: Some("x".repeat(500)),
        };
        assert_eq!(
            long.text(Preview::Full, Some("en")).1.chars().count(),
            MAX_PREVIEW_CHARS + 1
        );
    }

    #[test]
    fn registrations_are_checked_before_anything_is_kept() {
        let reg = |v: Value| {
            serde_json::from_value::<Registration>(v)
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    r.device("d".into(), "ann", false, Utc::now())
                        .map_err(|e| e.to_string())
                })
        };
        assert!(reg(json!({"platform": "fcm", "token": "abc:DEF-123"})).is_ok());
        assert!(reg(json!({"platform": "fcm"})).is_err());
        assert!(reg(json!({"platform": "apns", "token": "has space"})).is_err());
        assert!(
            reg(json!({"platform": "apns", "token": "ab/../cd"})).is_err(),
            "an APNs token is hex: it goes into Apple's URL"
        );
        assert!(reg(json!({"platform": "apns", "token": "0a1b2c3d"})).is_ok());
        assert!(reg(json!({"platform": "web", "token": "x"})).is_err());
        assert!(reg(json!({"platform": "sms", "token": "x"})).is_err());
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let p256dh = URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
        let auth = URL_SAFE_NO_PAD.encode([7u8; 16]);
        assert!(reg(json!({"platform": "web", "subscription": {"endpoint": "https://push.example.net/x", "keys": {"p256dh": p256dh, "auth": auth}}})).is_ok());
        assert!(reg(json!({"platform": "web", "subscription": {"endpoint": "https://127.0.0.1/x", "keys": {"p256dh": p256dh, "auth": auth}}})).is_err(), "a private endpoint is refused");
        assert!(reg(json!({"platform": "web", "subscription": {"endpoint": "https://push.example.net/x", "keys": {"p256dh": "AAAA", "auth": auth}}})).is_err());
        assert!(
            reg(json!({"platform": "fcm", "token": "t", "time_zone": "Mars/Olympus"})).is_err()
        );
        assert!(reg(json!({"platform": "fcm", "token": "t", "language": "fr_FR"})).is_ok());
        assert!(reg(json!({"platform": "fcm", "token": "t", "language": "<script>"})).is_err());
        assert!(
            reg(json!({"platform": "fcm", "token": "t", "settings": {"quiet_from": "22:00"}}))
                .is_err()
        );
    }

    #[test]
    fn quiet_hours_are_kept_in_the_devices_own_time_zone() {
        let device = Device {
            id: "d".into(),
            agent_id: "ann".into(),
            platform: Platform::Fcm,
            token: Some("t".into()),
            subscription: None,
            settings: NotificationSettings {
                quiet_from: Some("22:00".into()),
                quiet_until: Some("07:00".into()),
                ..NotificationSettings::default()
            },
            preview: Preview::Name,
            time_zone: Some("Asia/Tokyo".into()),
            language: None,
            created_at: Utc::now(),
        };
        // 14:00 UTC is 23:00 in Tokyo.
        let at = |h: u32| {
            DateTime::parse_from_rfc3339(&format!("2026-11-30T{h:02}:00:00Z"))
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_default()
        };
        assert!(device.quiet_now(at(14)));
        assert!(!device.quiet_now(at(3)), "noon in Tokyo");
    }
}
