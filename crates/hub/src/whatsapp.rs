//! The WhatsApp Cloud API channel (ARCHITECTURE.md, WhatsApp protocol): Meta's webhook — a GET
//! that proves the hub knows the verify token, and signed POSTs carrying customers' messages and
//! the statuses of what agents sent — and the calls the hub makes back through the Graph API.
//!
//! A POST is checked against `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app
//! secret) before anything is parsed; only then is it read, leniently: every field is optional,
//! an unknown message type is kept with its raw JSON, other webhook fields are ignored. What it
//! carries is written in one group commit, and the 200 goes out only after that commit — Meta
//! retries for days, and delivers at least once, so a message is stored once per wamid and a
//! status once per (wamid, status).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use baton_protocol::{Author, Contact, Conversation, DeliveryStatus, EventData, Handoff, Message};
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::files::FileKind;
use crate::handoffs::{Outgoing, PlatformEvent};
use crate::store::{LookAhead, PlatformKey, PlatformMessage, Tx};
use crate::Hub;

/// Meta's payloads can reach 3 MB.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Where the Graph API is, unless a channel says otherwise (tests and staging point at a fake).
pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com";

/// The Graph API version the hub speaks.
pub const API_VERSION: &str = "v24.0";

/// How long after a customer's last message free-form replies are allowed.
pub const WINDOW: TimeDelta = TimeDelta::hours(24);

/// The longest text WhatsApp takes in one message.
pub const MAX_TEXT: usize = 4096;

/// A WhatsApp number's settings, kept in the channel's settings. The two secrets are needed as
/// they are (to check signatures, to call the Graph API), so they live only in the hub's private
/// database and are never shown again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatsAppSettings {
    pub phone_number_id: String,
    pub verify_token: String,
    pub app_secret: String,
    pub access_token: String,
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// Empty: every conversation goes to the queue. Otherwise only a message containing one of
    /// these (case and accents aside) opens a handoff.
    #[serde(default)]
    pub handoff_phrases: Vec<String>,
    /// Sent to the customer the moment their chat is queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_reply: Option<String>,
    /// Why the number cannot send (Meta refused the access token); nothing is sent until an admin
    /// sets a new token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
    /// Removed by an admin: webhooks are refused; its conversations stay in the history.
    #[serde(default)]
    pub removed: bool,
    /// The most messages a second the hub sends from this number (Meta's limit: 80 by default,
    /// 1,000 for upgraded numbers).
    #[serde(default = "default_throughput")]
    pub max_per_second: u32,
    /// The WhatsApp Business Account id, where the number's message templates are listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<String>,
    /// The bot channel in front of this number: it hears customers (`user.message`) while no
    /// agent has them, answers through the bot API, and decides when to hand over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_channel: Option<String>,
}

fn default_throughput() -> u32 {
    80
}

fn default_graph_url() -> String {
    DEFAULT_GRAPH_URL.to_string()
}

impl WhatsAppSettings {
    /// The base every send goes to: `{graph}/{version}/{phone-number-id}`.
    pub fn send_url(&self) -> String {
        format!(
            "{}/{API_VERSION}/{}",
            self.graph_url.trim_end_matches('/'),
            self.phone_number_id
        )
    }
}

pub fn routes() -> Router<Hub> {
    Router::new().route("/whatsapp/{channel}/webhook", get(verify).post(notify))
}

/// The path to give Meta as the callback URL (after the hub's public address).
pub fn webhook_path(channel_id: &str) -> String {
    format!("/whatsapp/{channel_id}/webhook")
}

async fn settings_of(hub: &Hub, channel_id: &str) -> Result<WhatsAppSettings, ApiError> {
    // Read in the last few seconds: no trip to the blocking pool on the hot path.
    let cached = hub.channel_settings(channel_id, || None);
    if let Some(settings) = cached {
        return settings
            .whatsapp
            .filter(|w| !w.removed)
            .ok_or_else(|| ApiError::NotFound("no such WhatsApp channel".into()));
    }
    let (hub2, id) = (hub.clone(), channel_id.to_string());
    let settings = tokio::task::spawn_blocking(move || {
        hub2.channel_settings(&id, || {
            hub2.store()
                .reader()
                .ok()?
                .channel(&id)
                .ok()
                .flatten()
                .map(|c| c.settings)
        })
    })
    .await
    .map_err(|_| ApiError::Internal(crate::store::StoreError::Poisoned))?;
    settings
        .and_then(|s| s.whatsapp)
        .filter(|w| !w.removed)
        .ok_or_else(|| ApiError::NotFound("no such WhatsApp channel".into()))
}

/// Meta's subscription check: echo `hub.challenge` for the right verify token, else 403.
async fn verify(
    State(hub): State<Hub>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    // Parameter names contain dots; read them as they are.
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let Ok(settings) = settings_of(&hub, &channel).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let token = params.get("hub.verify_token").map(String::as_str);
    let subscribing = params.get("hub.mode").map(String::as_str) == Some("subscribe");
    match (subscribing, token, params.get("hub.challenge")) {
        (true, Some(token), Some(challenge)) if same_secret(token, &settings.verify_token) => {
            tracing::info!(channel = %channel, "whatsapp: webhook verified");
            (
                [(axum::http::header::CONTENT_TYPE, "text/plain")],
                challenge.clone(),
            )
                .into_response()
        }
        _ => {
            tracing::warn!(channel = %channel, "whatsapp: webhook verification refused (wrong verify token or mode)");
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(given: &str, known: &str) -> bool {
    let mut mac = match Hmac::<Sha256>::new_from_slice(b"baton-compare") {
        Ok(mac) => mac,
        Err(_) => return false,
    };
    mac.update(known.as_bytes());
    let expected = mac.finalize().into_bytes();
    let mut check = match Hmac::<Sha256>::new_from_slice(b"baton-compare") {
        Ok(mac) => mac,
        Err(_) => return false,
    };
    check.update(given.as_bytes());
    check.verify_slice(&expected).is_ok()
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` with `app_secret`.
pub fn signature_ok(app_secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// A signed notification from Meta: messages and statuses, stored before the 200.
async fn notify(
    State(hub): State<Hub>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let settings = settings_of(&hub, &channel).await?;
    let bytes = crate::body::read_limited(body, MAX_BODY_BYTES).await?;
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !signature_ok(&settings.app_secret, &bytes, signature) {
        tracing::warn!(channel = %channel, signed = signature.is_some(), "whatsapp: a webhook with a wrong or missing signature was refused; nothing stored");
        return Err(ApiError::Unauthorized);
    }
    let value: Value = crate::body::parse(&bytes)?;
    let batch = Batch::read(&value, &settings.phone_number_id);
    if batch.messages.is_empty() && batch.statuses.is_empty() {
        return Ok(StatusCode::OK.into_response());
    }
    let (count, statuses) = (batch.messages.len(), batch.statuses.len());
    let hub2 = hub.clone();
    let looks_for = LookAhead {
        messages: batch
            .messages
            .iter()
            .map(|m| PlatformMessage {
                id: inbound_message_id(&channel, &m.wamid),
                channel_id: channel.clone(),
                external: m.wamid.clone(),
            })
            .collect(),
        // The customer's keys, which [`customer_contact`] looks up.
        links: batch
            .messages
            .iter()
            .flat_map(|m| m.customer.keys())
            .map(|(kind, key)| PlatformKey {
                channel_id: channel.clone(),
                kind: kind.into(),
                external: key.into(),
            })
            .collect(),
    };
    let queued_calls = hub
        .store()
        .write_grouped_looking_for(looks_for, move |txn| {
            let before = txn.calls_queued();
            apply(txn, &hub2, &channel, &settings, batch)?;
            Ok::<_, ApiError>(txn.calls_queued() > before)
        })
        .await?;
    // Most messages queue nothing (no bot, no auto-reply): the worker is left asleep.
    if queued_calls {
        hub.wake_delivery();
    }
    tracing::debug!(messages = count, statuses, "whatsapp: notification stored");
    Ok(StatusCode::OK.into_response())
}

/// Who wrote, as far as the payload says (every part optional: since 2026 a customer may have a
/// username and no phone number in payloads).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Customer {
    pub phone: Option<String>,
    /// The business-scoped user id (`CC.<alnum>`).
    pub bsuid: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
}

impl Customer {
    /// The keys the customer is known by, most stable first.
    fn keys(&self) -> Vec<(&'static str, &str)> {
        let mut keys = Vec::new();
        if let Some(b) = &self.bsuid {
            keys.push(("bsuid", b.as_str()));
        }
        if let Some(p) = &self.phone {
            keys.push(("phone", p.as_str()));
        }
        keys
    }

    fn label(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.username.clone())
            .or_else(|| self.phone.as_ref().map(|p| format!("+{p}")))
            .unwrap_or_else(|| "WhatsApp customer".into())
    }
}

/// One inbound message, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub wamid: String,
    pub customer: Customer,
    pub kind: String,
    pub text: Option<String>,
    pub raw: Value,
    pub at: Option<DateTime<Utc>>,
}

/// One status of a message the hub sent.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub wamid: String,
    pub status: String,
    /// Meta's error code and what to tell the agent, on `failed`.
    pub error: Option<(i64, String)>,
    /// `biz_opaque_callback_data` echoed back: the hub's id of the message it sent.
    pub callback: Option<String>,
}

/// What one notification carries for this number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub messages: Vec<Inbound>,
    pub statuses: Vec<StatusUpdate>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = v;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str()
}

fn unix_time(v: &Value) -> Option<DateTime<Utc>> {
    let secs = match v {
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    DateTime::from_timestamp(secs, 0)
}

impl Batch {
    /// Reads the `messages` changes for `phone_number_id` out of a notification; anything else
    /// (other fields, other numbers, shapes this build does not know) is passed over.
    pub fn read(notification: &Value, phone_number_id: &str) -> Self {
        let mut batch = Batch::default();
        let entries = notification.get("entry").and_then(Value::as_array);
        for change in entries
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("changes").and_then(Value::as_array))
            .flatten()
        {
            if change.get("field").and_then(Value::as_str) != Some("messages") {
                continue;
            }
            let Some(value) = change.get("value") else {
                continue;
            };
            let number = str_at(value, &["metadata", "phone_number_id"]);
            if number.is_some_and(|n| n != phone_number_id) {
                tracing::warn!(number = ?number, "whatsapp: a notification for another number was ignored");
                continue;
            }
            let contacts: Vec<&Value> = value
                .get("contacts")
                .and_then(Value::as_array)
                .map(|c| c.iter().collect())
                .unwrap_or_default();
            let customer_of = |m: &Value| -> Customer {
                let phone = str_at(m, &["from"]).map(str::to_string);
                let bsuid = str_at(m, &["from_user_id"]).map(str::to_string);
                let contact = contacts.iter().find(|c| {
                    (phone.is_some() && str_at(c, &["wa_id"]) == phone.as_deref())
                        || (bsuid.is_some() && str_at(c, &["user_id"]) == bsuid.as_deref())
                });
                let contact = contact.or(if contacts.len() == 1 {
                    contacts.first()
                } else {
                    None
                });
                let from_contact =
                    |path: &[&str]| contact.and_then(|c| str_at(c, path)).map(str::to_string);
                Customer {
                    phone: phone.or_else(|| from_contact(&["wa_id"])),
                    bsuid: bsuid.or_else(|| from_contact(&["user_id"])),
                    username: from_contact(&["profile", "username"]),
                    name: from_contact(&["profile", "name"]),
                }
            };
            for m in value
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(wamid) = str_at(m, &["id"]) else {
                    tracing::warn!("whatsapp: a message without an id was ignored");
                    continue;
                };
                let (kind, text) = describe(m);
                batch.messages.push(Inbound {
                    wamid: wamid.to_string(),
                    customer: customer_of(m),
                    kind,
                    text,
                    raw: m.clone(),
                    at: m.get("timestamp").and_then(unix_time),
                });
            }
            for s in value
                .get("statuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(wamid), Some(status)) = (str_at(s, &["id"]), str_at(s, &["status"]))
                else {
                    continue;
                };
                let error = s
                    .get("errors")
                    .and_then(Value::as_array)
                    .and_then(|e| e.first())
                    .map(|e| {
                        let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
                        (code, failure_reason(code, e))
                    });
                batch.statuses.push(StatusUpdate {
                    wamid: wamid.to_string(),
                    status: status.to_string(),
                    error,
                    callback: str_at(s, &["biz_opaque_callback_data"]).map(str::to_string),
                });
            }
        }
        batch
    }
}

/// The message's type and what an agent reads of it. Unknown types are "unsupported content"
/// (their raw JSON is kept as the payload).
pub fn describe(m: &Value) -> (String, Option<String>) {
    let kind = str_at(m, &["type"]).unwrap_or("unsupported").to_string();
    let s = |path: &[&str]| str_at(m, path).map(str::to_string);
    let text = match kind.as_str() {
        "text" => s(&["text", "body"]),
        "image" | "video" | "audio" | "sticker" | "document" => {
            let media = m.get(&kind);
            let caption = media.and_then(|x| str_at(x, &["caption"]));
            let filename = media.and_then(|x| str_at(x, &["filename"]));
            let voice = media.and_then(|x| x.get("voice")).and_then(Value::as_bool) == Some(true);
            let label = match kind.as_str() {
                "audio" if voice => "voice message".to_string(),
                "document" => filename.map_or("document".to_string(), |f| format!("document: {f}")),
                other => other.to_string(),
            };
            Some(match caption {
                Some(c) => format!("[{label}] {c}"),
                None => format!("[{label}]"),
            })
        }
        "location" => {
            let place = [s(&["location", "name"]), s(&["location", "address"])]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            let at = match (
                m.pointer("/location/latitude").and_then(Value::as_f64),
                m.pointer("/location/longitude").and_then(Value::as_f64),
            ) {
                (Some(lat), Some(lon)) => format!("{lat:.5}, {lon:.5}"),
                _ => String::new(),
            };
            Some(format!(
                "[location] {}",
                [place, at]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join(" — ")
            ))
        }
        "contacts" => {
            let names: Vec<String> = m
                .get("contacts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    let name = str_at(c, &["name", "formatted_name"]).unwrap_or("a contact");
                    let phones: Vec<&str> = c
                        .get("phones")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|p| str_at(p, &["phone"]))
                        .collect();
                    if phones.is_empty() {
                        name.to_string()
                    } else {
                        format!("{name} ({})", phones.join(", "))
                    }
                })
                .collect();
            Some(format!("[contact card] {}", names.join("; ")))
        }
        "interactive" => {
            let reply = m.get("interactive");
            let title = reply.and_then(|r| {
                str_at(r, &["button_reply", "title"])
                    .or_else(|| str_at(r, &["list_reply", "title"]))
                    .or_else(|| str_at(r, &["nfm_reply", "body"]))
            });
            Some(match title {
                Some(t) => format!("[chose] {t}"),
                None => "[an interactive reply]".into(),
            })
        }
        "button" => s(&["button", "text"]).map(|t| format!("[tapped] {t}")),
        "reaction" => Some(match s(&["reaction", "emoji"]).filter(|e| !e.is_empty()) {
            Some(emoji) => format!("[reacted {emoji}]"),
            None => "[removed a reaction]".into(),
        }),
        "order" => {
            let items = m
                .pointer("/order/product_items")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let note = s(&["order", "text"])
                .map(|t| format!(": {t}"))
                .unwrap_or_default();
            Some(format!(
                "[order of {items} item{}]{note}",
                if items == 1 { "" } else { "s" }
            ))
        }
        "system" => s(&["system", "body"])
            .or_else(|| Some("[the customer's WhatsApp identity changed]".into())),
        "revoke" => Some("[deleted a message]".into()),
        "edit" => {
            let new = m.pointer("/edit/message");
            let body = new.and_then(|n| describe(n).1);
            Some(
                format!("[edited] {}", body.unwrap_or_default())
                    .trim()
                    .to_string(),
            )
        }
        _ => Some("[unsupported content]".into()),
    };
    (kind, text)
}

/// Only messages the customer wrote open or refresh the 24-hour window.
fn refreshes_window(kind: &str) -> bool {
    !matches!(kind, "reaction" | "system" | "revoke")
}

/// What an agent is told when Meta refuses or fails a message, by Meta's error code.
pub fn failure_reason(code: i64, error: &Value) -> String {
    match code {
        131047 => "the 24-hour window has closed: only a template can reach this customer now".into(),
        131026 => "WhatsApp could not deliver it (not a WhatsApp user, an old app, or the customer blocked this number)".into(),
        190 => "Meta refused the number's access token; an admin must set a new one".into(),
        131051 => "WhatsApp does not support this kind of message".into(),
        _ => {
            let title = str_at(error, &["title"])
                .or_else(|| str_at(error, &["message"]))
                .unwrap_or("WhatsApp refused it");
            let title: String = title.chars().take(160).collect();
            format!("{title} (WhatsApp error {code})")
        }
    }
}

/// How far along a delivery status is; a later one never replaces a further one.
fn progress(status: DeliveryStatus) -> u8 {
    match status {
        DeliveryStatus::Queued
        | DeliveryStatus::Uncertain
        | DeliveryStatus::Received
        | DeliveryStatus::Draft
        | DeliveryStatus::Rejected => 0,
        DeliveryStatus::Sent => 1,
        DeliveryStatus::Failed => 2,
        DeliveryStatus::Delivered => 3,
        DeliveryStatus::Read => 4,
    }
}

/// Writes one notification: new messages (once per wamid) into their customer's conversation,
/// opening a handoff when the channel's rules say so; statuses onto the messages they concern.
pub fn apply(
    txn: &mut dyn Tx,
    hub: &Hub,
    channel_id: &str,
    settings: &WhatsAppSettings,
    batch: Batch,
) -> Result<(), ApiError> {
    for m in batch.messages {
        // The message's id is made from its wamid, so a redelivery finds it stored and changes
        // nothing, without a second row per message to say so. (Messages stored before ids were
        // made this way are found through their wamid's link.)
        let message_id = inbound_message_id(channel_id, &m.wamid);
        if txn.has_platform_message(&message_id, channel_id, &m.wamid)? {
            continue;
        }
        let (contact, new_contact) = customer_contact(txn, hub, channel_id, &m.customer)?;
        let at = m.at.unwrap_or_else(|| hub.now());
        let opens_window = refreshes_window(&m.kind).then_some(at);
        let (mut conversation, new_conversation) =
            conversation_of(txn, hub, channel_id, &contact, new_contact, opens_window)?;
        if let Some(new_number) = changed_number(&m.raw) {
            follow_new_number(txn, channel_id, contact.clone(), new_number)?;
        }
        let Inbound {
            kind,
            text,
            raw,
            customer,
            ..
        } = m;
        let message = Message {
            id: message_id,
            conversation_id: conversation.id.clone(),
            author: Author::EndUser,
            author_id: Some(contact.id.clone()),
            kind: kind.clone(),
            text: text.clone(),
            payload: raw,
            status: DeliveryStatus::Received,
            status_reason: None,
            created_at: at,
        };
        let stored = txn.put(EventData::Message(message))?;
        // Kept to the minute: rewriting the conversation (and announcing it to every agent) for
        // each message would double the work of a busy number; the window may look up to a
        // minute shorter than it is, never longer.
        if refreshes_window(&kind)
            && conversation
                .last_inbound_at
                .is_none_or(|t| at - t >= TimeDelta::minutes(1))
        {
            conversation.last_inbound_at = Some(at);
            txn.put(EventData::Conversation(conversation.clone()))?;
        }
        // A conversation made just now has no handoff to look for.
        let open = match new_conversation {
            true => None,
            false => txn.open_handoff(&conversation.id)?,
        };
        if let Some(bot) = settings.bot_channel.as_deref() {
            // The bot has the customer until it hands them over (and again once the handoff ends).
            // (A queue item that only holds the bot's drafts leaves the chat with the bot.)
            let handed_over = open.is_some_and(|h| !h.for_draft);
            if let EventData::Message(message) = &stored.data {
                if !handed_over && kind != "system" {
                    crate::bot_api::queue_user_message(
                        txn,
                        hub,
                        bot,
                        &conversation,
                        &contact,
                        message,
                    )?;
                }
            }
            continue;
        }
        if open.is_some() {
            // Still waiting for an agent: told once per handoff if nobody can answer.
            crate::handoffs::tell_if_nobody_can_answer(txn, hub, channel_id, &conversation.id)?;
        } else if refreshes_window(&kind) {
            let wanted = settings.handoff_phrases.is_empty()
                || text
                    .as_deref()
                    .is_some_and(|t| matches_phrase(t, &settings.handoff_phrases));
            if wanted {
                let title = format!("{} on WhatsApp", customer.label());
                let handoff =
                    crate::handoffs::open(txn, hub, &conversation, &title, text.as_deref())?;
                // The auto-reply is a courtesy: it never costs the customer's message. (Its length is
                // checked when an admin sets it; a customer with no address cannot get one.)
                if let Some(reply) = settings
                    .auto_reply
                    .as_deref()
                    .filter(|r| !r.trim().is_empty() && r.chars().count() <= MAX_TEXT)
                    .filter(|_| !customer.keys().is_empty())
                {
                    crate::handoffs::notify_customer(txn, hub, &handoff, reply)?;
                }
                crate::handoffs::tell_if_nobody_can_answer(txn, hub, channel_id, &conversation.id)?;
                tracing::info!(handoff = %handoff.id, "whatsapp: a chat was queued for an agent");
            }
        }
    }
    for s in &batch.statuses {
        let mut known = txn.external_id(channel_id, "message", &s.wamid)?;
        // A send the hub could not confirm (cut off, timed out: *uncertain*) still names its
        // message in the callback data Meta echoes: the status settles what happened to it.
        if let Some(id) = s.callback.as_deref().filter(|_| known.is_none()) {
            if sent_from_here(txn, channel_id, id)? {
                sent_as(txn, channel_id, &s.wamid, id)?;
                known = Some(id.to_string());
            }
        }
        let Some(message_id) = known else {
            // Meta can report a status before the hub has recorded what the send returned: it is
            // kept, and applied when the send is recorded (see [`sent_as`]).
            let reason = s.error.as_ref().map(|(_, r)| r.as_str()).unwrap_or("");
            txn.link_external(
                channel_id,
                "early-status",
                &format!("{}:{}", s.wamid, s.status),
                reason,
            )?;
            continue;
        };
        apply_status(txn, channel_id, &message_id, s)?;
    }
    Ok(())
}

/// The id of a customer's message: the same for every delivery of one wamid on one channel.
pub fn inbound_message_id(channel_id: &str, wamid: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let digest = Sha256::new()
        .chain_update(channel_id.as_bytes())
        .chain_update([0])
        .chain_update(wamid.as_bytes())
        .finalize();
    // 20 characters of 5 bits: the same shape as every other id, 100 bits of the digest.
    let mut bits = 0u32;
    let mut held = 0;
    let mut tail = String::with_capacity(20);
    for byte in digest.iter().take(13) {
        bits = (bits << 8) | u32::from(*byte);
        held += 8;
        while held >= 5 && tail.len() < 20 {
            held -= 5;
            tail.push(ALPHABET[((bits >> held) & 31) as usize] as char);
        }
        bits &= (1 << held) - 1;
    }
    format!("m_{tail}")
}

/// Whether `message_id` is a message the desk sent on this channel.
fn sent_from_here(txn: &dyn Tx, channel_id: &str, message_id: &str) -> Result<bool, ApiError> {
    let Some(message) = txn.message(message_id)? else {
        return Ok(false);
    };
    if message.author == Author::EndUser {
        return Ok(false);
    }
    Ok(txn
        .conversation(&message.conversation_id)?
        .is_some_and(|c| c.channel_id == channel_id))
}

/// Records that the message `message_id` went out as `wamid`, and applies any status Meta
/// reported for it before that was recorded.
pub fn sent_as(
    txn: &mut dyn Tx,
    channel_id: &str,
    wamid: &str,
    message_id: &str,
) -> Result<(), crate::store::StoreError> {
    txn.link_external(channel_id, "message", wamid, message_id)?;
    for status in ["sent", "delivered", "read", "played", "failed"] {
        if let Some(reason) =
            txn.external_id(channel_id, "early-status", &format!("{wamid}:{status}"))?
        {
            let update = StatusUpdate {
                wamid: wamid.to_string(),
                status: status.to_string(),
                error: (!reason.is_empty()).then_some((0, reason)),
                callback: None,
            };
            apply_status(txn, channel_id, message_id, &update).map_err(|e| match e {
                ApiError::Internal(e) => e,
                other => crate::store::StoreError::CommitFailed(other.to_string()),
            })?;
        }
    }
    Ok(())
}

/// Moves a message's delivery status forward (never back: statuses arrive in any order), once
/// per (wamid, status).
fn apply_status(
    txn: &mut dyn Tx,
    channel_id: &str,
    message_id: &str,
    s: &StatusUpdate,
) -> Result<(), ApiError> {
    let key = format!("{}:{}", s.wamid, s.status);
    if !txn.link_external(channel_id, "status", &key, message_id)? {
        return Ok(());
    }
    {
        let Some(mut message) = txn.message(message_id)? else {
            return Ok(());
        };
        let status = match s.status.as_str() {
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "read" | "played" => DeliveryStatus::Read,
            "failed" => DeliveryStatus::Failed,
            other => {
                tracing::info!(status = ?other, "whatsapp: an unknown status was ignored");
                return Ok(());
            }
        };
        if progress(status) <= progress(message.status) {
            return Ok(());
        }
        message.status = status;
        message.status_reason = match status {
            DeliveryStatus::Failed => s.error.as_ref().map(|(_, reason)| reason.clone()),
            _ => None,
        };
        txn.put(EventData::Message(message))?;
    }
    Ok(())
}

/// Case and accents aside, does `text` contain one of `phrases`?
pub fn matches_phrase(text: &str, phrases: &[String]) -> bool {
    let text = fold(text);
    phrases
        .iter()
        .map(|p| fold(p.trim()))
        .any(|p| !p.is_empty() && text.contains(&p))
}

/// Lower case without accents (NFD-free: the common Latin accents are mapped directly).
fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
            'ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ñ' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ý' | 'ÿ' => 'y',
            other => other,
        })
        .collect()
}

/// The contact for a customer: found by any key they are known by (a business-scoped id, a
/// phone), else new (then true). What the payload says now (name, username, a new key) is kept.
fn customer_contact(
    txn: &mut dyn Tx,
    hub: &Hub,
    channel_id: &str,
    customer: &Customer,
) -> Result<(Contact, bool), ApiError> {
    let mut found = None;
    let mut unlinked = Vec::new();
    for (kind, key) in customer.keys() {
        if found.is_none() {
            found = txn.linked_contact(channel_id, kind, key)?;
            if found.is_none() {
                unlinked.push((kind, key));
            }
        } else if txn.external_id(channel_id, kind, key)?.is_none() {
            unlinked.push((kind, key));
        }
    }
    let new = found.is_none();
    let mut contact = found.unwrap_or_else(|| Contact {
        id: hub.new_id("u"),
        channel_id: channel_id.to_string(),
        name: customer.label(),
        email: None,
        picture_url: None,
        attributes: Value::Object(Map::new()),
        created_at: hub.now(),
    });
    let before = contact.clone();
    if let Some(name) = &customer.name {
        contact.name = name.clone();
    }
    if !contact.attributes.is_object() {
        contact.attributes = Value::Object(Map::new());
    }
    let attributes = &mut contact.attributes;
    for (key, value) in [
        ("phone", &customer.phone),
        ("bsuid", &customer.bsuid),
        ("username", &customer.username),
    ] {
        if let Some(value) = value {
            attributes[key] = Value::String(value.clone());
        }
    }
    if contact != before {
        txn.put(EventData::Contact(contact.clone()))?;
    }
    for (kind, key) in unlinked {
        txn.add_link(channel_id, kind, key, &contact.id)?;
    }
    Ok((contact, new))
}

/// The customer's new number, when the message is WhatsApp saying they changed it.
fn changed_number(raw: &Value) -> Option<&str> {
    (str_at(raw, &["system", "type"]) == Some("user_changed_number"))
        .then(|| str_at(raw, &["system", "wa_id"]))
        .flatten()
        .filter(|n| !n.is_empty() && n.len() <= 64)
}

/// Replies go to the customer's new number from now on, and their messages from it land in the
/// same conversation with its history. (A number already linked to another customer stays theirs.)
fn follow_new_number(
    txn: &mut dyn Tx,
    channel_id: &str,
    mut contact: Contact,
    new_number: &str,
) -> Result<(), ApiError> {
    if !txn.link_external(channel_id, "phone", new_number, &contact.id)?
        && txn.external_id(channel_id, "phone", new_number)?.as_deref() != Some(&contact.id)
    {
        tracing::warn!(contact = %contact.id, "whatsapp: a customer's new number already belongs to another contact; replies keep the old one");
        return Ok(());
    }
    if !contact.attributes.is_object() {
        contact.attributes = Value::Object(Map::new());
    }
    // The old number is no longer theirs (WhatsApp numbers get reassigned): whoever writes from
    // it next is a new customer, not this one.
    let old = contact
        .attributes
        .get("phone")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(old) = old.filter(|o| o != new_number) {
        if txn.external_id(channel_id, "phone", &old)?.as_deref() == Some(contact.id.as_str()) {
            txn.unlink_external(channel_id, "phone", &old)?;
        }
    }
    contact.attributes["phone"] = Value::String(new_number.to_string());
    txn.put(EventData::Contact(contact))?;
    Ok(())
}

/// The customer's one conversation on this number, made with their first message (for a contact
/// made just now, without looking for one); true when made. A conversation made for a message
/// that opens the customer-service window (`opens_window`: when it was sent) is stored with it
/// open, rather than stored and then stored again.
fn conversation_of(
    txn: &mut dyn Tx,
    hub: &Hub,
    channel_id: &str,
    contact: &Contact,
    new_contact: bool,
    opens_window: Option<DateTime<Utc>>,
) -> Result<(Conversation, bool), ApiError> {
    if !new_contact {
        if let Some(conversation) = txn.linked_conversation(channel_id, &contact.id)? {
            return Ok((conversation, false));
        }
    }
    let conversation = Conversation {
        id: hub.new_id("t"),
        channel_id: channel_id.to_string(),
        contact_id: Some(contact.id.clone()),
        created_at: hub.now(),
        channel_kind: Some("whatsapp".into()),
        last_inbound_at: opens_window,
    };
    txn.put(EventData::Conversation(conversation.clone()))?;
    if new_contact {
        // Its first conversation: the customer's next message finds it without a read.
        txn.add_link_to_new_id(channel_id, "conversation", &contact.id, &conversation.id)?;
    } else {
        txn.add_link(channel_id, "conversation", &contact.id, &conversation.id)?;
    }
    Ok((conversation, true))
}

/// Marks the customer's newest message read on WhatsApp (which marks the earlier ones too), once.
pub fn mark_read(txn: &mut dyn Tx, hub: &Hub, conversation: &Conversation) -> Result<(), ApiError> {
    let Some(latest) = txn.latest_customer_message(&conversation.id)? else {
        return Ok(());
    };
    // An inbound message keeps Meta's JSON as its payload: its id is the wamid.
    let Some(wamid) = latest.payload.get("id").and_then(Value::as_str) else {
        return Ok(());
    };
    if !txn.link_external(&conversation.channel_id, "read", wamid, &latest.id)? {
        return Ok(());
    }
    let body = json!({ "messaging_product": "whatsapp", "status": "read", "message_id": wamid });
    txn.queue_delivery(
        &crate::store::Delivery {
            channel_id: conversation.channel_id.clone(),
            conversation_id: conversation.id.clone(),
            route: "messages".into(),
            body: body.to_string(),
            message_id: None,
        },
        hub.now(),
    )?;
    Ok(())
}

/// Whether the customer can still get a free-form message (the 24-hour window).
pub fn window_open(conversation: &Conversation, now: DateTime<Utc>) -> bool {
    conversation
        .last_inbound_at
        .is_some_and(|last| now - last < WINDOW)
}

/// Refuses a free-form message once the customer's 24-hour window has closed.
pub fn require_window(conversation: &Conversation, now: DateTime<Utc>) -> Result<(), ApiError> {
    if window_open(conversation, now) {
        return Ok(());
    }
    Err(ApiError::WindowClosed(
        "the customer wrote more than 24 hours ago: WhatsApp allows only an approved template now"
            .into(),
    ))
}

/// The Graph API call that tells WhatsApp about `event`, if it needs one: only messages for the
/// customer do (WhatsApp has no notion of an agent taking over or a handoff ending).
pub fn call_for(
    txn: &dyn Tx,
    handoff: &Handoff,
    event: &PlatformEvent<'_>,
    message_id: Option<&str>,
) -> Result<Option<(&'static str, Value)>, ApiError> {
    let PlatformEvent::Message { outgoing, .. } = event else {
        return Ok(None);
    };
    Ok(Some((
        "messages",
        send_body(txn, &handoff.conversation_id, outgoing, message_id)?,
    )))
}

/// The Graph API body that sends `outgoing` to the conversation's customer.
fn send_body(
    txn: &dyn Tx,
    conversation_id: &str,
    outgoing: &Outgoing,
    message_id: Option<&str>,
) -> Result<Value, ApiError> {
    let contact = txn
        .conversation(conversation_id)?
        .and_then(|c| c.contact_id)
        .map(|id| txn.contact(&id))
        .transpose()?
        .flatten();
    let attribute = |key: &str| {
        contact
            .as_ref()
            .and_then(|c| c.attributes.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // A phone number where there is one; a username-only customer is reached by their
    // business-scoped id.
    let Some(to) = attribute("phone").or_else(|| attribute("bsuid")) else {
        return Err(ApiError::Conflict(
            "this WhatsApp customer has no phone number or user id to write to".into(),
        ));
    };
    let wamid_of = |key: &str| {
        outgoing
            .payload
            .get(key)
            .and_then(Value::as_str)
            .map(|id| customer_wamid(txn, conversation_id, id))
            .transpose()
    };
    let reacted_to = if outgoing.kind == "reaction" {
        wamid_of("message_id")?
    } else {
        None
    };
    let mut body = message_body(&to, outgoing, reacted_to.as_deref())?;
    if let Some(quoted) = wamid_of("reply_to")? {
        body["context"] = json!({ "message_id": quoted });
    }
    // Echoed in the message's statuses: even a send whose answer was lost finds its message.
    if let Some(id) = message_id {
        body["biz_opaque_callback_data"] = Value::String(id.to_string());
    }
    Ok(body)
}

/// The bot in front of this WhatsApp number answers the customer (while no agent has the chat):
/// checked like an agent's reply, stored as the bot's, and queued for WhatsApp.
pub fn send_from_bot(
    txn: &mut dyn Tx,
    hub: &Hub,
    conversation: &Conversation,
    outgoing: Outgoing,
) -> Result<Message, ApiError> {
    if txn
        .open_handoff(&conversation.id)?
        .is_some_and(|h| h.assignee.is_some() && !h.for_draft)
    {
        return Err(ApiError::Conflict(
            "an agent has this conversation; the bot hears from it again when the handoff ends"
                .into(),
        ));
    }
    let outgoing = checked_outgoing(txn, hub, &conversation.id, outgoing)?;
    if outgoing.kind != "template" {
        require_window(conversation, hub.now())?;
    }
    let message = Message {
        id: hub.new_id("m"),
        conversation_id: conversation.id.clone(),
        author: Author::Bot,
        author_id: None,
        kind: outgoing.kind.clone(),
        text: outgoing
            .payload
            .as_object()
            .and_then(baton_protocol::payload::readable_text),
        payload: outgoing.payload.clone(),
        status: DeliveryStatus::Queued,
        status_reason: None,
        created_at: hub.now(),
    };
    txn.put(EventData::Message(message.clone()))?;
    queue_send(txn, hub, conversation, &outgoing, &message.id)?;
    Ok(message)
}

/// Queues the Graph API call that sends the stored message `message_id` (`outgoing`, checked).
pub fn queue_send(
    txn: &mut dyn Tx,
    hub: &Hub,
    conversation: &Conversation,
    outgoing: &Outgoing,
    message_id: &str,
) -> Result<(), ApiError> {
    let body = send_body(txn, &conversation.id, outgoing, Some(message_id))?;
    txn.queue_delivery(
        &crate::store::Delivery {
            channel_id: conversation.channel_id.clone(),
            conversation_id: conversation.id.clone(),
            route: "messages".into(),
            body: body.to_string(),
            message_id: Some(message_id.to_string()),
        },
        hub.now(),
    )?;
    Ok(())
}

/// Checks what an agent sends on WhatsApp: Botpress's kinds (text; image, video, audio, file by
/// link), approved templates, a reaction to one of the customer's messages, a file uploaded to
/// the hub, and on any of them a quote of one of the customer's messages (`reply_to`).
pub fn checked_outgoing(
    txn: &dyn Tx,
    hub: &Hub,
    conversation_id: &str,
    mut outgoing: Outgoing,
) -> Result<Outgoing, ApiError> {
    let reply_to = match outgoing
        .payload
        .as_object_mut()
        .and_then(|p| p.remove("reply_to"))
    {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "\"reply_to\" is the id of the customer's message being answered".into(),
            ))
        }
    };
    let uploaded = outgoing.payload.get("upload").is_some();
    let mut outgoing = match outgoing.kind.as_str() {
        "template" => checked_template(outgoing)?,
        "reaction" => checked_reaction(txn, conversation_id, outgoing)?,
        "image" | "video" | "audio" | "file" if uploaded => checked_upload(hub, txn, outgoing)?,
        _ => outgoing.checked()?,
    };
    if let Some(id) = reply_to {
        if outgoing.kind == "reaction" {
            return Err(ApiError::BadRequest(
                "a reaction names its message in \"message_id\", not \"reply_to\"".into(),
            ));
        }
        customer_wamid(txn, conversation_id, &id)?;
        outgoing.payload["reply_to"] = Value::String(id);
    }
    Ok(outgoing)
}

/// WhatsApp's id for one of the customer's messages in this conversation: what an agent can
/// quote or react to. (An inbound message keeps Meta's JSON as its payload.)
fn customer_wamid(
    txn: &dyn Tx,
    conversation_id: &str,
    message_id: &str,
) -> Result<String, ApiError> {
    let message = txn
        .message(message_id)?
        .filter(|m| m.conversation_id == conversation_id)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "there is no message {message_id:?} in this conversation"
            ))
        })?;
    if message.author != Author::EndUser {
        return Err(ApiError::BadRequest(
            "only the customer's messages can be quoted or reacted to".into(),
        ));
    }
    message
        .payload
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::BadRequest("WhatsApp has no id for this message".into()))
}

/// A reaction: `{"message_id": <the customer's message>, "emoji": "👍"}`; `""` takes it back.
fn checked_reaction(
    txn: &dyn Tx,
    conversation_id: &str,
    outgoing: Outgoing,
) -> Result<Outgoing, ApiError> {
    let p = &outgoing.payload;
    if p.as_object()
        .is_some_and(|m| m.keys().any(|k| k != "message_id" && k != "emoji"))
    {
        return Err(ApiError::BadRequest(
            "a reaction takes only \"message_id\" and \"emoji\"".into(),
        ));
    }
    let Some(target) = p.get("message_id").and_then(Value::as_str) else {
        return Err(ApiError::BadRequest(
            "a reaction needs \"message_id\": the customer's message it is for".into(),
        ));
    };
    customer_wamid(txn, conversation_id, target)?;
    let emoji = p.get("emoji").and_then(Value::as_str).unwrap_or_default();
    let one_emoji = emoji.chars().count() <= 10
        && emoji
            .chars()
            .all(|c| !c.is_ascii() && !c.is_whitespace() && !c.is_control());
    if !one_emoji {
        return Err(ApiError::BadRequest(
            "a reaction is one emoji (or \"\" to take it back)".into(),
        ));
    }
    Ok(Outgoing {
        kind: "reaction".into(),
        payload: json!({ "message_id": target, "emoji": emoji }),
    })
}

/// The MIME types WhatsApp sends as each kind, and its size limit (Meta's supported media types;
/// other document types may pass Meta's API but are not guaranteed to open on the customer's phone).
fn media_rules(kind: &str) -> (&'static [&'static str], u64) {
    const MB: u64 = 1024 * 1024;
    match kind {
        "image" => (&["image/jpeg", "image/png"], 5 * MB),
        "video" => (&["video/mp4", "video/3gpp"], 16 * MB),
        "audio" => (
            &[
                "audio/aac",
                "audio/amr",
                "audio/mpeg",
                "audio/mp4",
                "audio/ogg",
            ],
            16 * MB,
        ),
        _ => (
            &[
                "application/pdf",
                "text/plain",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.ms-excel",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ],
            crate::uploads::MAX_UPLOAD_BYTES as u64,
        ),
    }
}

/// A file the agent uploaded: `{"upload","mime_type","filename","title"?}`, checked against
/// WhatsApp's rules for its kind before it is queued (Meta would refuse it only later).
fn checked_upload(hub: &Hub, txn: &dyn Tx, outgoing: Outgoing) -> Result<Outgoing, ApiError> {
    let kind = outgoing.kind.as_str();
    let p = |key: &str| outgoing.payload.get(key).and_then(Value::as_str);
    if outgoing.payload.as_object().is_some_and(|m| {
        m.keys()
            .any(|k| !["upload", "mime_type", "filename", "title"].contains(&k.as_str()))
    }) {
        return Err(ApiError::BadRequest(format!(
            "an uploaded {kind} takes \"upload\", \"mime_type\", \"filename\" and \"title\""
        )));
    }
    let upload = p("upload").unwrap_or_default().to_ascii_lowercase();
    let size = crate::uploads::size(hub, txn, &upload)?;
    let mime_type = p("mime_type").unwrap_or_default().to_ascii_lowercase();
    let filename = p("filename").map(str::trim).filter(|f| !f.is_empty());
    let (types, limit) = media_rules(kind);
    if !types.contains(&mime_type.as_str()) {
        let what = if mime_type.is_empty() {
            "file"
        } else {
            &mime_type
        };
        return Err(ApiError::BadRequest(if kind == "file" {
            format!("WhatsApp delivers documents only as PDF, text, Word, Excel or PowerPoint; this {what} cannot be sent")
        } else {
            format!(
                "WhatsApp sends a {kind} only as {}; send this {what} as a file instead",
                types.join(", ")
            )
        }));
    }
    if size > limit {
        return Err(ApiError::BadRequest(format!(
            "WhatsApp takes a {kind} of at most {} MB; this one is {:.1} MB",
            limit / (1024 * 1024),
            size as f64 / (1024.0 * 1024.0)
        )));
    }
    let title = p("title").map(str::trim).filter(|t| !t.is_empty());
    if title.is_some_and(|t| t.chars().count() > 1024) {
        return Err(ApiError::BadRequest(
            "a caption is at most 1024 characters".into(),
        ));
    }
    if title.is_some() && kind == "audio" {
        return Err(ApiError::BadRequest(
            "WhatsApp sends audio without a caption".into(),
        ));
    }
    let mut payload = json!({
        "upload": upload,
        "mime_type": mime_type,
        "filename": filename.unwrap_or("file"),
    });
    if let Some(title) = title {
        payload["title"] = Value::String(title.to_string());
    }
    Ok(Outgoing {
        kind: kind.to_string(),
        payload,
    })
}

/// Checks an agent's template message: `{"name","language","parameters":[…],"text"?}` (the text
/// is the filled-in body, for the conversation to show).
pub fn checked_template(outgoing: Outgoing) -> Result<Outgoing, ApiError> {
    let p = &outgoing.payload;
    let name_ok = p
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.trim().is_empty() && n.len() <= 512);
    let language_ok = p
        .get("language")
        .and_then(Value::as_str)
        .is_some_and(|l| !l.trim().is_empty() && l.len() <= 16);
    let parameters = p
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !name_ok || !language_ok {
        return Err(ApiError::BadRequest(
            "a template message needs its \"name\" and \"language\"".into(),
        ));
    }
    if parameters.len() > 20
        || parameters.iter().any(|v| {
            v.as_str()
                .is_none_or(|s| s.trim().is_empty() || s.chars().count() > 1024)
        })
    {
        return Err(ApiError::BadRequest(
            "each template parameter is a text of 1 to 1024 characters (at most 20)".into(),
        ));
    }
    if outgoing.payload.to_string().len() > 64 * 1024 {
        return Err(ApiError::BadRequest(
            "the template message is too large".into(),
        ));
    }
    Ok(outgoing)
}

/// The number's approved templates, from the Graph API (`message_templates`).
pub async fn templates(
    http: &reqwest::Client,
    settings: &WhatsAppSettings,
) -> Result<Vec<baton_protocol::WhatsAppTemplate>, ApiError> {
    let Some(waba) = settings.waba_id.as_deref() else {
        return Err(ApiError::Conflict(
            "an admin must set the number's WhatsApp Business Account id first (baton-hub whatsapp set --waba-id)".into(),
        ));
    };
    let url = format!(
        "{}/{API_VERSION}/{waba}/message_templates?fields=name,language,status,components&limit=200",
        settings.graph_url.trim_end_matches('/')
    );
    let answer = http
        .get(&url)
        .bearer_auth(&settings.access_token)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e.without_url(), "whatsapp: cannot list templates");
            ApiError::Unavailable("WhatsApp's template list cannot be reached right now".into())
        })?;
    if !answer.status().is_success() {
        tracing::warn!(
            status = answer.status().as_u16(),
            "whatsapp: the template list was refused"
        );
        return Err(ApiError::Unavailable(format!(
            "WhatsApp refused the template list (HTTP {})",
            answer.status().as_u16()
        )));
    }
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    let mut out = Vec::new();
    for t in body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if str_at(t, &["status"]) != Some("APPROVED") {
            continue;
        }
        let (Some(name), Some(language)) = (str_at(t, &["name"]), str_at(t, &["language"])) else {
            continue;
        };
        let text = t
            .get("components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| str_at(c, &["type"]).is_some_and(|k| k.eq_ignore_ascii_case("body")))
            .and_then(|c| str_at(c, &["text"]))
            .unwrap_or_default();
        let parameters = (1..=20u32)
            .take_while(|n| text.contains(&format!("{{{{{n}}}}}")))
            .count() as u32;
        out.push(baton_protocol::WhatsAppTemplate {
            name: name.to_string(),
            language: language.to_string(),
            body: text.to_string(),
            parameters,
        });
    }
    Ok(out)
}

/// The largest media file the hub keeps (WhatsApp's own limit for documents is 100 MB).
pub const MAX_MEDIA_BYTES: u64 = 100 * 1024 * 1024;

/// A customer's media file as the hub keeps it.
pub struct Media {
    pub mime_type: String,
    pub bytes: bytes::Bytes,
}

/// The media object of an inbound message (`image`, `video`, `audio`, `document`, `sticker`):
/// Meta's media id, its type and its digest.
fn media_of(message: &Message) -> Option<(&str, &str, Option<&str>)> {
    let kind = message.kind.as_str();
    if !matches!(kind, "image" | "video" | "audio" | "document" | "sticker") {
        return None;
    }
    let media = message.payload.get(kind)?;
    Some((
        str_at(media, &["id"])?,
        str_at(media, &["mime_type"]).unwrap_or("application/octet-stream"),
        str_at(media, &["sha256"]),
    ))
}

/// Whether `bytes` have the digest Meta gave (hex or base64, as its payloads vary).
fn digest_matches(bytes: &[u8], expected: &str) -> bool {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let expected = expected.trim();
    hex::encode(digest).eq_ignore_ascii_case(expected)
        || base64::engine::general_purpose::STANDARD.encode(digest) == expected
}

/// A customer's media file: from the hub's storage, or fetched once from the Graph API (the URL
/// lookup, then the download with the number's token), checked against its sha256 and size, and
/// kept for next time ([`crate::files`]).
pub async fn media(
    hub: &Hub,
    settings: &WhatsAppSettings,
    message: &Message,
) -> Result<Media, ApiError> {
    let Some((media_id, mime_type, digest)) = media_of(message) else {
        return Err(ApiError::NotFound("this message has no media".into()));
    };
    if let Some(bytes) = crate::files::read(hub, FileKind::Media, &message.id).await? {
        return Ok(Media {
            mime_type: mime_type.to_string(),
            bytes: bytes.into(),
        });
    }
    let (http, allow_private) = (hub.http()?, hub.config().allow_private_urls);
    let unavailable = |why: &str| {
        ApiError::Unavailable(format!("the file cannot be fetched from WhatsApp: {why}"))
    };
    let lookup = format!(
        "{}/{API_VERSION}/{media_id}",
        settings.graph_url.trim_end_matches('/')
    );
    if !crate::egress::allowed(&lookup, allow_private) {
        return Err(unavailable("the number's Graph API URL is not allowed"));
    }
    let answer = http
        .get(&lookup)
        .bearer_auth(&settings.access_token)
        .send()
        .await
        .map_err(|_| unavailable("WhatsApp cannot be reached"))?;
    match answer.status().as_u16() {
        200..=299 => {}
        // Meta keeps media for a limited time; an expired one is gone, not briefly unavailable.
        404 | 410 => {
            return Err(ApiError::NotFound(
                "WhatsApp no longer has this file".into(),
            ))
        }
        other => {
            return Err(unavailable(&format!(
                "the lookup was refused (HTTP {other})"
            )))
        }
    }
    let found: Value = answer
        .json()
        .await
        .map_err(|_| unavailable("the lookup answer was unreadable"))?;
    let Some(url) = str_at(&found, &["url"]) else {
        return Err(unavailable("the lookup gave no URL"));
    };
    if found
        .get("file_size")
        .and_then(Value::as_u64)
        .is_some_and(|s| s > MAX_MEDIA_BYTES)
    {
        return Err(ApiError::TooLarge {
            limit: MAX_MEDIA_BYTES as usize,
        });
    }
    if !crate::egress::allowed(url, allow_private) {
        return Err(unavailable("the download URL is not allowed"));
    }
    let mut response = http
        .get(url)
        .bearer_auth(&settings.access_token)
        // Large files take longer than the hub's usual 10 s.
        .timeout(std::time::Duration::from_secs(300))
        .send()
        .await
        .map_err(|_| unavailable("the download failed"))?;
    if !response.status().is_success() {
        // Redirects are not followed: a 3xx is not the file.
        return Err(unavailable(&format!(
            "the download was refused (HTTP {})",
            response.status().as_u16()
        )));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| unavailable("the download broke off"))?
    {
        if (bytes.len() + chunk.len()) as u64 > MAX_MEDIA_BYTES {
            return Err(ApiError::TooLarge {
                limit: MAX_MEDIA_BYTES as usize,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    let expected = digest.or_else(|| str_at(&found, &["sha256"]));
    if let Some(expected) = expected {
        if !digest_matches(&bytes, expected) {
            tracing::warn!(message = %message.id, "whatsapp: a media file did not match its sha256; not kept");
            return Err(unavailable("the file did not match its checksum"));
        }
    }
    // Not kept (the database or the disk refused): the agent still gets it, and it is fetched
    // again next time.
    // (Shared, not copied: a file may be 100 MB.)
    let bytes = bytes::Bytes::from(bytes);
    let _ = crate::files::keep(hub, FileKind::Media, &message.id, bytes.clone()).await;
    Ok(Media {
        mime_type: mime_type.to_string(),
        bytes,
    })
}

/// The Graph API body for an agent's message.
fn message_body(
    to: &str,
    outgoing: &Outgoing,
    reacted_to: Option<&str>,
) -> Result<Value, ApiError> {
    let p = |key: &str| outgoing.payload.get(key).and_then(Value::as_str);
    // Optional fields are left out rather than sent as null.
    let present = |v: Value| match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    };
    let content = match outgoing.kind.as_str() {
        "reaction" => json!({
            "type": "reaction",
            "reaction": { "message_id": reacted_to, "emoji": p("emoji").unwrap_or_default() },
        }),
        kind @ ("image" | "video" | "audio" | "file") if p("upload").is_some() => {
            let wa_kind = if kind == "file" { "document" } else { kind };
            let media = present(json!({
                "caption": p("title").filter(|_| kind != "audio"),
                "filename": p("filename").filter(|_| wa_kind == "document"),
            }));
            // The hub's reference, swapped for WhatsApp's media id when it is sent
            // (see [`with_uploaded_media`]).
            json!({
                "type": wa_kind,
                wa_kind: media,
                UPLOAD_KEY: {
                    "upload": p("upload"),
                    "mime_type": p("mime_type"),
                    "filename": p("filename"),
                },
            })
        }
        "template" => {
            let parameters: Vec<Value> = outgoing
                .payload
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|v| json!({ "type": "text", "text": v }))
                .collect();
            let mut template = json!({ "name": p("name"), "language": { "code": p("language") } });
            if !parameters.is_empty() {
                template["components"] = json!([{ "type": "body", "parameters": parameters }]);
            }
            json!({ "type": "template", "template": template })
        }
        "text" => {
            let body = p("text").unwrap_or_default();
            if body.chars().count() > MAX_TEXT {
                return Err(ApiError::BadRequest(format!(
                    "WhatsApp takes at most {MAX_TEXT} characters in one message"
                )));
            }
            json!({ "type": "text", "text": { "preview_url": true, "body": body } })
        }
        "image" => json!({
            "type": "image",
            "image": present(json!({ "link": p("imageUrl"), "caption": p("title") })),
        }),
        "video" => json!({
            "type": "video",
            "video": present(json!({ "link": p("videoUrl"), "caption": p("title") })),
        }),
        "audio" => json!({ "type": "audio", "audio": { "link": p("audioUrl") } }),
        "file" => json!({
            "type": "document",
            "document": present(json!({ "link": p("fileUrl"), "filename": p("title") })),
        }),
        other => {
            return Err(ApiError::BadRequest(format!(
                "a {other} message cannot be sent on WhatsApp"
            )))
        }
    };
    let mut body =
        json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": to });
    if let (Some(target), Some(extra)) = (body.as_object_mut(), content.as_object()) {
        for (k, v) in extra {
            target.insert(k.clone(), v.clone());
        }
    }
    Ok(body)
}

/// What became of one send to the Graph API.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// Accepted, with the wamid statuses will name.
    Accepted(Option<String>),
    /// Worth trying again (rate limits, Meta's transient errors, 5xx, the network).
    Retry {
        error: String,
        after: Option<std::time::Duration>,
    },
    /// Refused for good, with what to tell the agent.
    Refused(String),
    /// The access token was refused: the number cannot send until an admin fixes it.
    Broken(String),
    /// Cut off after the request left: it may or may not have been sent.
    Uncertain(String),
}

/// How many times a file Meta cannot take (131053) is uploaded before the message fails.
pub const MAX_UPLOAD_TRIES: u32 = 5;

/// Where a queued message body names a file uploaded to the hub (never sent to Meta as is).
const UPLOAD_KEY: &str = "baton_upload";

/// Uploads the file a queued message names (kept on the hub) to the number's media on WhatsApp
/// (`POST {send_url}/media`, multipart), and gives back the body with WhatsApp's media id in its
/// place. Bodies without a file come back as they are. Nothing has reached the customer if this
/// fails, so every failure but a refusal is worth retrying.
pub async fn with_uploaded_media(
    http: &reqwest::Client,
    hub: &Hub,
    send_url: &str,
    token: &str,
    body: &str,
    attempts: u32,
) -> Result<String, Sent> {
    if !body.contains(UPLOAD_KEY) {
        return Ok(body.to_string());
    }
    let Ok(mut message) = serde_json::from_str::<Value>(body) else {
        return Ok(body.to_string());
    };
    let Some(file) = message.as_object_mut().and_then(|m| m.remove(UPLOAD_KEY)) else {
        return Ok(body.to_string());
    };
    let kind = str_at(&message, &["type"])
        .unwrap_or("document")
        .to_string();
    let upload = str_at(&file, &["upload"]).unwrap_or_default();
    let mime_type = str_at(&file, &["mime_type"]).unwrap_or("application/octet-stream");
    let filename = str_at(&file, &["filename"]).unwrap_or("file");
    let gone = || Sent::Refused("the file is no longer on the hub; upload it again".into());
    let bytes = match crate::uploads::read(hub, upload).await {
        Ok(bytes) => bytes,
        // The database did not answer: worth trying again.
        Err(ApiError::Unavailable(error)) => return Err(Sent::Retry { error, after: None }),
        Err(_) => return Err(gone()),
    };
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(filename.to_string())
        .mime_str(mime_type)
        .map_err(|_| Sent::Refused(format!("{mime_type:?} is not a file type WhatsApp takes")))?;
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", mime_type.to_string())
        .part("file", part);
    let url = format!("{}/media", send_url.trim_end_matches('/'));
    let answer = http
        .post(&url)
        .bearer_auth(token)
        .multipart(form)
        // A 16 MB file takes longer than the hub's usual 10 s.
        .timeout(std::time::Duration::from_secs(120))
        .send()
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(e) => {
            tracing::info!(error = %e.without_url(), "whatsapp: a file upload did not finish");
            return Err(Sent::Retry {
                error: "the file could not be uploaded to WhatsApp yet".into(),
                after: None,
            });
        }
    };
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let media_id = str_at(&answer, &["id"]).filter(|_| status.is_success());
    let Some(media_id) = media_id else {
        let code = answer.pointer("/error/code").and_then(Value::as_i64);
        return Err(match code {
            // Meta's media upload error: worth a few more goes, not a day of them.
            Some(131053) if attempts + 1 < MAX_UPLOAD_TRIES => Sent::Retry {
                error: "WhatsApp could not take the file just now (error 131053)".into(),
                after: None,
            },
            Some(131053) => Sent::Refused(format!(
                "WhatsApp refused the file {MAX_UPLOAD_TRIES} times (error 131053); check it opens, or send it as a link"
            )),
            _ => refusal(status, &answer),
        });
    };
    message[kind.as_str()]["id"] = Value::String(media_id.to_string());
    Ok(message.to_string())
}

/// POSTs one message to `{send_url}/messages` with the number's token, and reads Meta's answer.
pub async fn send(http: &reqwest::Client, send_url: &str, token: &str, body: &str) -> Sent {
    let url = format!("{}/messages", send_url.trim_end_matches('/'));
    let sent = http
        .post(&url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) if e.is_connect() => {
            return Sent::Retry {
                error: "cannot reach WhatsApp".into(),
                after: None,
            }
        }
        Err(e) if e.is_timeout() => {
            return Sent::Uncertain(
                "WhatsApp did not answer in time; the customer may or may not have it".into(),
            )
        }
        Err(e) => {
            tracing::info!(error = %e.without_url(), "whatsapp: the connection broke mid-call");
            return Sent::Uncertain(
                "the connection broke before WhatsApp answered; the customer may or may not have it".into(),
            );
        }
    };
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        let wamid = str_at(&answer, &["messages"])
            .map(str::to_string)
            .or_else(|| {
                answer
                    .pointer("/messages/0/id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        return Sent::Accepted(wamid);
    }
    refusal(status, &answer)
}

/// What Meta's answer to a failed call means: retry, refused for good, or a broken token.
fn refusal(status: reqwest::StatusCode, answer: &Value) -> Sent {
    let error = answer.get("error").cloned().unwrap_or(Value::Null);
    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
    tracing::warn!(
        status = status.as_u16(),
        code,
        "whatsapp: Meta did not accept a message"
    );
    match code {
        190 => Sent::Broken(failure_reason(190, &error)),
        130429 | 131056 | 131000 | 4 | 80007 => Sent::Retry {
            error: format!("WhatsApp asked to slow down or failed for a moment (error {code})"),
            after: None,
        },
        _ if status.is_server_error() || status.as_u16() == 429 => Sent::Retry {
            error: format!(
                "WhatsApp is not accepting messages right now (HTTP {})",
                status.as_u16()
            ),
            after: None,
        },
        _ => Sent::Refused(failure_reason(code, &error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_checked_over_the_exact_bytes() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"app-secret").expect("key");
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_ok("app-secret", body, Some(&good)));
        assert!(!signature_ok("other-secret", body, Some(&good)));
        assert!(!signature_ok("app-secret", b"{}", Some(&good)));
        assert!(!signature_ok("app-secret", body, None));
        assert!(!signature_ok("app-secret", body, Some("sha256=zz")));
    }

    #[test]
    fn handoff_phrases_match_whatever_the_case_and_accents() {
        let phrases = vec!["hablar con un agente".to_string(), "HUMAN".to_string()];
        assert!(matches_phrase(
            "Quiero HABLAR con un agénte, por favor",
            &phrases
        ));
        assert!(matches_phrase("a human please", &phrases));
        assert!(!matches_phrase("just browsing", &phrases));
    }

    fn notification(wamid: &str) -> Value {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": "5550001"},
            "contacts": [{"profile": {"name": "Zoë"}, "wa_id": "15550100"}],
            "messages": [{"from": "15550100", "id": wamid, "timestamp": "1764460800", "type": "text", "text": {"body": "hello"}}]
        }}]}]})
    }

    #[test]
    fn a_message_is_stored_once_however_often_meta_delivers_it_and_whenever_it_was_first_stored() {
        let dir = tempfile::tempdir().expect("dir");
        let hub = Hub::open(dir.path()).expect("hub");
        let settings: WhatsAppSettings = serde_json::from_value(json!({
            "phone_number_id": "5550001", "verify_token": "v", "app_secret": "s", "access_token": "a"
        }))
        .expect("settings");
        let store = hub.store();
        let deliver = |wamid: &str| {
            let batch = Batch::read(&notification(wamid), "5550001");
            let (hub, settings) = (hub.clone(), settings.clone());
            store.write(move |txn| apply(txn, &hub, "wa", &settings, batch))
        };
        store
            .write(|tx| {
                tx.add_channel(&crate::store::NewChannel {
                    id: "wa",
                    kind: "whatsapp",
                    name: "Support number",
                    secret_hash: "-",
                    webhook_url: None,
                    created_at: Utc::now(),
                })?;
                // A message stored by an older hub, whose id was random and linked to its wamid.
                tx.link_external("wa", "message", "wamid.old", "m_random")
            })
            .expect("channel");
        deliver("wamid.new").expect("first delivery");
        deliver("wamid.new").expect("redelivery");
        deliver("wamid.old").expect("redelivery of an old message");
        let messages: Vec<_> = store
            .events_after(0, 100)
            .expect("events")
            .into_iter()
            .filter_map(|e| match e.data {
                EventData::Message(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(messages[0].id, inbound_message_id("wa", "wamid.new"));
        assert_eq!(messages[0].text.as_deref(), Some("hello"));
        assert_ne!(
            inbound_message_id("wa", "wamid.new"),
            inbound_message_id("wa2", "wamid.new"),
            "the same wamid on another number is another message"
        );
    }

    #[test]
    fn a_later_status_never_replaces_a_further_one() {
        assert!(progress(DeliveryStatus::Read) > progress(DeliveryStatus::Delivered));
        assert!(progress(DeliveryStatus::Delivered) > progress(DeliveryStatus::Failed));
        assert!(progress(DeliveryStatus::Failed) > progress(DeliveryStatus::Sent));
    }
}
