//! The bot API (`/bot/v1`): any bot — Rasa, Voiceflow, an LLM agent, a WhatsApp bot, Baton's own
//! Botpress integration — hands a conversation to the desk with everything said so far, relays what
//! the customer writes while an agent has it, and hears back what agents do as signed events.
//!
//! A bot channel is created by an admin (`baton-hub bot add`), which shows its bearer token and
//! its signing secret once. The bot calls with `Authorization: Bearer <token>`; the hub calls the
//! bot's events URL with `{"id","type","created_at","data"}` signed in `Baton-Signature` (see
//! [`signature`]). Events go through the delivery queue: in order per conversation, retried with
//! backoff, the same `id` on every retry so the bot can drop repeats.
//!
//! One end user of a bot has one conversation on the desk, across handoffs: what the team learnt
//! about them (notes, the customer panel) is there the next time the bot hands them over.

use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use baton_protocol::{
    Author, Contact, Conversation, DeliveryStatus, EventData, Handoff, HandoffStatus, Message,
    Priority,
};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use utoipa::{OpenApi, ToSchema};

use crate::auth::secret_hash;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::handoffs::PlatformEvent;
use crate::store::{StoreError, Tx};
use crate::Hub;

/// A handoff's history may be long (a whole bot conversation), never unbounded.
const MAX_HISTORY: usize = 500;
/// The body of a handoff with its history.
const MAX_HANDOFF_BODY: usize = 2 * 1024 * 1024;
/// One relayed message.
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// How long after the hub answered the call that created a handoff before it calls the bot about
/// it: Botpress's HITL plugin drops what arrives before it has stored the handoff's id.
pub const CALLBACK_GRACE: Duration = Duration::from_millis(300);

/// What a bot channel keeps in its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotSettings {
    /// Signs the events the hub sends (HMAC-SHA256); shown to the admin once.
    pub signing_secret: String,
    /// Stop taking the bot's calls (its conversations stay).
    #[serde(default)]
    pub removed: bool,
    /// What happens to a drafted reply no agent decides on in time; none waits for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_timeout: Option<crate::drafts::DraftTimeout>,
}

pub fn routes() -> Router<Hub> {
    Router::new()
        .route("/bot/v1/handoffs", post(start_handoff))
        .route(
            "/bot/v1/conversations/{conversation_id}/messages",
            post(relay_message),
        )
        .route("/bot/v1/handoffs/{handoff_id}/close", post(close_handoff))
        .route(
            "/bot/v1/conversations/{conversation_id}/replies",
            post(reply),
        )
        .route(
            "/bot/v1/conversations/{conversation_id}/drafts",
            post(submit_draft),
        )
        .route("/bot/v1/openapi.json", get(openapi))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Baton bot API",
        version = "1",
        description = "Hand conversations from any bot to Baton's human agents. Calls carry `Authorization: Bearer <token>` (from `baton-hub bot add`). Baton calls the bot's events URL with `{\"id\",\"type\",\"created_at\",\"data\"}` — `handoff.assigned`, `agent.message`, `handoff.closed` — signed in `Baton-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\" under the signing secret>`, in order per conversation, retried with the same id. A bot in front of a WhatsApp number also gets `user.message` and answers with `/replies`. A bot that wants a human to approve its AI-drafted replies posts them to `/drafts` and hears `draft.decided`."
    ),
    paths(start_handoff, relay_message, close_handoff, reply, submit_draft),
    components(schemas(
        StartHandoff, EndUser, HistoryItem, Speaker, MessageKind, HandoffStarted, RelayMessage, MessageRelayed,
        CloseHandoff, HandoffClosed, BotReply, BotError, BotEvent, Priority, SubmitDraft, DraftSubmitted
    )),
    modifiers(&BearerAuth)
)]
pub struct BotApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bot_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bot_token",
            Vec::<String>::new(),
        )]);
    }
}

/// The OpenAPI document of this API, generated from the types below.
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(BotApiDoc::openapi())
}

/// An error: `{"code": <what kind>, "message": <what to fix>}`.
#[derive(Serialize, ToSchema)]
pub struct BotError {
    pub code: String,
    pub message: String,
}

/// The person the bot was talking to, as the bot knows them.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndUser {
    /// Their id in the bot's system: the same id is the same customer on the desk.
    #[schema(min_length = 1, max_length = 256)]
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Anything else the bot knows (language, plan, order number…), shown to agents.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

/// The message kinds a bot relays (Botpress's).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Only documents the accepted values.
pub enum MessageKind {
    Text,
    Markdown,
    Image,
    Audio,
    Video,
    File,
    Location,
    Card,
    Carousel,
    Choice,
    Dropdown,
    Bloc,
}

/// Who said something before the handoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    User,
    Bot,
}

/// One message of the conversation so far.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryItem {
    pub author: Speaker,
    /// A Botpress message kind; its payload as Botpress shapes it (`{"text"}` for text,
    /// `{"imageUrl","title"?}` for an image, …).
    #[serde(rename = "type")]
    #[schema(value_type = MessageKind)]
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// When it was said; now if absent.
    pub at: Option<DateTime<Utc>>,
    /// The bot's id for this message: a bot that sends the whole conversation again with the next
    /// handoff gets each message stored once.
    #[schema(max_length = 200)]
    pub id: Option<String>,
}

/// `POST /bot/v1/handoffs`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartHandoff {
    pub user: EndUser,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Why the bot hands over ("asked for a human", "refund over $500"…).
    pub reason: Option<String>,
    pub priority: Option<Priority>,
    /// Tags from the team's list (`baton-hub tags set`): they show in the inbox, and routing
    /// gives the handoff to an agent with a matching skill first.
    #[serde(default)]
    #[schema(max_items = 20)] // MAX_TAGS
    pub tags: Vec<String>,
    /// The conversation so far, oldest first.
    #[serde(default)]
    #[schema(max_items = 500)]
    pub history: Vec<HistoryItem>,
    /// The same key again answers with the same handoff and changes nothing.
    pub idempotency_key: Option<String>,
    /// For a bot in front of a WhatsApp number: the conversation (from `user.message`) to hand
    /// over. Its whole exchange is already on the desk, so `history` is not needed.
    pub conversation_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandoffStarted {
    pub handoff_id: String,
    pub conversation_id: String,
}

/// `POST /bot/v1/conversations/{conversation_id}/messages`: what the end user (or the bot) said.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayMessage {
    #[serde(rename = "type")]
    #[schema(value_type = MessageKind)]
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// `user` unless the bot itself is speaking.
    pub author: Option<Speaker>,
    /// The same key again stores nothing new.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageRelayed {
    pub message_id: String,
}

/// `POST /bot/v1/conversations/{conversation_id}/replies`: the bot in front of a WhatsApp number
/// answers the customer (Baton sends it to WhatsApp).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BotReply {
    /// `text`; `image`, `video`, `audio`, `file` by link; or a WhatsApp `template`.
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// `POST /bot/v1/conversations/{conversation_id}/drafts`: a reply the bot drafted (an AI's, say)
/// for a human to approve, edit or reject before the customer sees it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitDraft {
    #[schema(min_length = 1, max_length = 8000)]
    pub text: String,
    /// How urgent the decision is (orders the queue).
    pub priority: Option<Priority>,
    /// The same key again answers with the same draft and changes nothing.
    #[schema(max_length = 200)]
    pub idempotency_key: Option<String>,
}

/// The draft waits for a decision; `handoff_id` is where agents find it in the queue. The bot
/// hears the decision as `draft.decided` (`data`: `draft_id`, `conversation_id`, `decision`
/// `approved` with the final `text` and `edited`, or `rejected` with a `reason`; `agent`, or
/// null when the channel's timeout decided; `sent_by`: `baton` when Baton sent it to the
/// customer (a WhatsApp number), `bot` when the bot is to send it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DraftSubmitted {
    pub draft_id: String,
    pub handoff_id: String,
}

/// `POST /bot/v1/handoffs/{handoff_id}/close`: the bot or the user ended it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseHandoff {
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandoffClosed {
    pub handoff_id: String,
    /// `cancelled` when this call ended it; what it already was otherwise.
    pub status: String,
}

/// What the hub POSTs to the bot's events URL. `type` is `handoff.assigned`
/// (`data`: `handoff_id`, `conversation_id`, `user_id`, `agent` {`id`,`name`}), `agent.message`
/// (`data`: those and `message_id`, `type`, `payload`, and `agent`: who it is sent as — the desk's
/// assign and transfer notices go out in the new agent's name), `handoff.closed` (`data`: those
/// and `status`, `label`, `agent`), or — for a bot in front of a WhatsApp number —
/// `user.message` (`data`: `conversation_id`, `user_id`, `user_name`, `channel`, `message_id`,
/// `type`, `payload`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BotEvent {
    /// The same on every retry of this event.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub data: Value,
}

/// The bot channel a bearer token opens.
pub struct BotChannel {
    pub id: String,
}

impl FromRequestParts<Hub> for BotChannel {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Self::Rejection> {
        let token = crate::auth::bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        // Kept apart from Botpress endpoint secrets: a token opens only a bot channel.
        let key = format!("bot:{}", secret_hash(token));
        if let Some(id) = hub.cached_channel_id(&key) {
            return Ok(Self { id });
        }
        let (hub2, hash) = (hub.clone(), secret_hash(token));
        let found = tokio::task::spawn_blocking(move || {
            let read = hub2.store().reader()?;
            let Some(id) = read.channel_by_secret("bot", &hash)? else {
                return Ok::<_, StoreError>(None);
            };
            let removed = read
                .channel(&id)?
                .and_then(|c| c.settings.bot)
                .is_none_or(|b| b.removed);
            Ok((!removed).then_some(id))
        })
        .await
        .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
        let Some(id) = found else {
            tracing::warn!("bot api: a call with an unknown token was refused");
            return Err(ApiError::Unauthorized);
        };
        hub.remember_channel_id(&key, &id);
        Ok(Self { id })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Internal(StoreError::Poisoned))?
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// A short text field: trimmed, empty is none, at most `max` characters.
/// The most tags a bot may give a handoff.
const MAX_TAGS: usize = 20;

/// The handoff's tags, each from the team's list (a typo would otherwise route nowhere).
fn team_tags(txn: &dyn crate::store::Read, tags: &[String]) -> Result<Vec<String>, ApiError> {
    if tags.is_empty() {
        return Ok(Vec::new());
    }
    let team = txn.tags()?;
    let mut out: Vec<String> = Vec::new();
    for tag in tags.iter().map(|t| t.trim()) {
        if !team.iter().any(|t| t == tag) {
            return Err(bad(format!(
                "{tag:?} is not one of the team's tags ({})",
                team.join(", ")
            )));
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_string());
        }
    }
    Ok(out)
}

fn short(value: Option<&str>, what: &str, max: usize) -> Result<Option<String>, ApiError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max {
        return Err(bad(format!("{what} is longer than {max} characters")));
    }
    Ok(Some(v.to_string()))
}

/// A message kind and payload as Botpress would relay them.
fn checked_message(kind: &str, payload: &Value) -> Result<(), ApiError> {
    if !baton_protocol::payload::KNOWN_KINDS.contains(&kind) {
        return Err(bad(format!(
            "{kind:?} is not a message type (known: {})",
            baton_protocol::payload::KNOWN_KINDS.join(", ")
        )));
    }
    if !payload.is_object() {
        return Err(bad(format!(
            "a {kind} message needs a JSON object as its payload"
        )));
    }
    if payload.to_string().len() > MAX_PAYLOAD_BYTES {
        return Err(bad(format!(
            "a message's payload is at most {} KiB",
            MAX_PAYLOAD_BYTES / 1024
        )));
    }
    if kind == "text"
        && payload
            .get("text")
            .and_then(Value::as_str)
            .is_none_or(|t| t.trim().is_empty())
    {
        return Err(bad("a text message needs \"text\""));
    }
    Ok(())
}

fn readable(payload: &Value) -> Option<String> {
    payload
        .as_object()
        .and_then(baton_protocol::payload::readable_text)
}

#[utoipa::path(
    post,
    path = "/bot/v1/handoffs",
    request_body = StartHandoff,
    responses(
        (status = 200, description = "The handoff waits for an agent (or was already open for this user, or this idempotency key)", body = HandoffStarted),
        (status = 400, description = "Not valid JSON, or not a handoff", body = BotError),
        (status = 404, description = "`conversation_id` is not a conversation of a WhatsApp number this bot is in front of", body = BotError),
        (status = 401, description = "No or an unknown bot token", body = BotError),
        (status = 413, description = "The body is too large", body = BotError),
    )
)]
async fn start_handoff(
    State(hub): State<Hub>,
    channel: BotChannel,
    JsonBody(start): JsonBody<StartHandoff, MAX_HANDOFF_BODY>,
) -> Result<Json<HandoffStarted>, ApiError> {
    let user_id = short(Some(&start.user.id), "user.id", 256)?
        .ok_or_else(|| bad("user.id is the end user's id in the bot's system"))?;
    if start.history.len() > MAX_HISTORY {
        return Err(bad(format!(
            "history has {} messages; at most {MAX_HISTORY}",
            start.history.len()
        )));
    }
    for (i, item) in start.history.iter().enumerate() {
        checked_message(&item.kind, &item.payload)
            .map_err(|e| bad(format!("history[{i}]: {e}")))?;
    }
    if start.tags.len() > MAX_TAGS {
        return Err(bad(format!(
            "tags has {} tags; at most {MAX_TAGS}",
            start.tags.len()
        )));
    }
    let key = short(start.idempotency_key.as_deref(), "idempotency_key", 200)?;
    let hub2 = hub.clone();
    let started = blocking(move || {
        hub2.store()
            .write(|txn| open_handoff(txn, &hub2, &channel.id, &user_id, &start, key.as_deref()))
    })
    .await?;
    // Calls about this handoff wait a moment: the bot may not have stored its id yet.
    hub.hold_bot_callbacks(&started.conversation_id, Instant::now() + CALLBACK_GRACE);
    Ok(Json(started))
}

fn open_handoff(
    txn: &mut dyn Tx,
    hub: &Hub,
    channel_id: &str,
    user_id: &str,
    start: &StartHandoff,
    key: Option<&str>,
) -> Result<HandoffStarted, ApiError> {
    if let Some(key) = key {
        if let Some(handoff_id) = txn.external_id(channel_id, "handoff-key", key)? {
            if let Some(h) = txn.handoff(&handoff_id)? {
                return Ok(HandoffStarted {
                    handoff_id: h.id,
                    conversation_id: h.conversation_id,
                });
            }
        }
    }
    if let Some(id) = &start.conversation_id {
        return hand_over_fronted(txn, hub, channel_id, id, start, key);
    }
    let user = &start.user;
    let found = txn.linked_contact(channel_id, "user", user_id)?;
    let is_new = found.is_none();
    let mut contact = found.unwrap_or_else(|| Contact {
        id: hub.new_id("u"),
        channel_id: channel_id.to_string(),
        name: String::new(),
        email: None,
        picture_url: None,
        attributes: Value::Object(Map::new()),
        created_at: hub.now(),
    });
    let before = contact.clone();
    let name = short(user.name.as_deref(), "user.name", 200)?;
    contact.name = name
        .or_else(|| (!before.name.is_empty()).then(|| before.name.clone()))
        .unwrap_or_else(|| format!("User {user_id}"));
    if let Some(email) = short(user.email.as_deref(), "user.email", 320)? {
        contact.email = Some(email);
    }
    if !contact.attributes.is_object() {
        contact.attributes = Value::Object(Map::new());
    }
    if let Some(extra) = &user.attributes {
        for (k, v) in extra {
            contact.attributes[k.as_str()] = v.clone();
        }
    }
    if let Some(phone) = short(user.phone.as_deref(), "user.phone", 64)? {
        contact.attributes["phone"] = Value::String(phone);
    }
    contact.attributes["bot_user_id"] = Value::String(user_id.to_string());
    if contact != before {
        txn.put(EventData::Contact(contact.clone()))?;
    }
    if is_new {
        txn.link_external(channel_id, "user", user_id, &contact.id)?;
    }
    let conversation = match txn.linked_conversation(channel_id, &contact.id)? {
        Some(c) => c,
        None => {
            let c = Conversation {
                id: hub.new_id("t"),
                channel_id: channel_id.to_string(),
                contact_id: Some(contact.id.clone()),
                created_at: hub.now(),
                channel_kind: Some("bot".into()),
                last_inbound_at: None,
            };
            txn.put(EventData::Conversation(c.clone()))?;
            txn.link_external(channel_id, "conversation", &contact.id, &c.id)?;
            c
        }
    };
    // One open handoff per customer: asking again answers with the one that is open.
    if let Some(open) = txn.open_handoff(&conversation.id)? {
        let open = crate::handoffs::take_over_draft_item(txn, hub, open)?;
        if let Some(key) = key {
            txn.link_external(channel_id, "handoff-key", key, &open.id)?;
        }
        return Ok(HandoffStarted {
            handoff_id: open.id,
            conversation_id: conversation.id,
        });
    }
    let now = hub.now();
    for (i, item) in start.history.iter().enumerate() {
        let message_id = hub.new_id("m");
        if let Some(id) = short(item.id.as_deref(), &format!("history[{i}].id"), 200)? {
            let key = format!("{}:{id}", conversation.id);
            if !txn.link_external(channel_id, "history", &key, &message_id)? {
                continue;
            }
        }
        let message = Message {
            id: message_id,
            conversation_id: conversation.id.clone(),
            author: match item.author {
                Speaker::User => Author::EndUser,
                Speaker::Bot => Author::Bot,
            },
            author_id: (item.author == Speaker::User).then(|| contact.id.clone()),
            kind: item.kind.clone(),
            text: readable(&item.payload),
            payload: item.payload.clone(),
            status: DeliveryStatus::Received,
            status_reason: None,
            // A time in the future is a clock problem on the bot's side: shown as now.
            created_at: item.at.filter(|at| *at <= now).unwrap_or(now),
        };
        txn.put(EventData::Message(message))?;
    }
    let title = short(start.title.as_deref(), "title", 200)?
        .unwrap_or_else(|| format!("{} needs a person", contact.name));
    let description = short(start.description.as_deref(), "description", 2000)?;
    let reason = short(start.reason.as_deref(), "reason", 500)?;
    let handoff = Handoff {
        id: hub.new_id("ho"),
        conversation_id: conversation.id.clone(),
        channel_id: channel_id.to_string(),
        status: HandoffStatus::Pending,
        title,
        description: match (description, reason) {
            (Some(d), Some(r)) => Some(format!("{r} — {d}")),
            (d, r) => r.or(d),
        },
        assignee: None,
        assigned_by: None,
        label: None,
        tags: team_tags(txn, &start.tags)?,
        priority: start.priority,
        for_draft: false,
        escalation: None,
        created_at: now,
        updated_at: now,
    };
    txn.put(EventData::Handoff(handoff.clone()))?;
    if let Some(key) = key {
        txn.link_external(channel_id, "handoff-key", key, &handoff.id)?;
    }
    tracing::info!(channel = %channel_id, handoff = %handoff.id, history = start.history.len(), "bot api: a bot handed a conversation over");
    Ok(HandoffStarted {
        handoff_id: handoff.id,
        conversation_id: conversation.id,
    })
}

/// A conversation of a WhatsApp number this bot is in front of, if `conversation_id` is one.
/// A conversation the bot `bot_id` may act on: its own, or one on a number it is in front of.
fn bot_conversation(
    txn: &dyn Tx,
    bot_id: &str,
    conversation_id: &str,
) -> Result<Option<Conversation>, ApiError> {
    match txn.conversation(conversation_id)? {
        Some(c) if c.channel_id == bot_id => Ok(Some(c)),
        Some(_) => fronted_conversation(txn, bot_id, conversation_id),
        None => Ok(None),
    }
}

fn fronted_conversation(
    txn: &dyn Tx,
    bot_id: &str,
    conversation_id: &str,
) -> Result<Option<Conversation>, ApiError> {
    let Some(conversation) = txn.conversation(conversation_id)? else {
        return Ok(None);
    };
    Ok(fronted_by(txn, &conversation.channel_id, bot_id)?.then_some(conversation))
}

/// Whether the bot `bot_id` is in front of the channel `channel_id` (a WhatsApp number).
pub fn fronted_by(txn: &dyn Tx, channel_id: &str, bot_id: &str) -> Result<bool, ApiError> {
    Ok(txn
        .channel(channel_id)?
        .and_then(|c| c.settings.whatsapp)
        .and_then(|w| w.bot_channel)
        .is_some_and(|b| b == bot_id))
}

/// The bot in front of a WhatsApp number hands one of its conversations to the desk.
fn hand_over_fronted(
    txn: &mut dyn Tx,
    hub: &Hub,
    bot_id: &str,
    conversation_id: &str,
    start: &StartHandoff,
    key: Option<&str>,
) -> Result<HandoffStarted, ApiError> {
    let conversation = fronted_conversation(txn, bot_id, conversation_id)?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no conversation {conversation_id:?} on a WhatsApp number this bot is in front of"
        ))
    })?;
    if let Some(open) = txn.open_handoff(&conversation.id)? {
        let open = crate::handoffs::take_over_draft_item(txn, hub, open)?;
        if let Some(key) = key {
            txn.link_external(bot_id, "handoff-key", key, &open.id)?;
        }
        return Ok(HandoffStarted {
            handoff_id: open.id,
            conversation_id: conversation.id,
        });
    }
    let customer = match &conversation.contact_id {
        Some(id) => txn.contact(id)?.map(|c| c.name),
        None => None,
    }
    .unwrap_or_else(|| "The customer".into());
    let title = short(start.title.as_deref(), "title", 200)?
        .unwrap_or_else(|| format!("{customer} on WhatsApp"));
    let description = short(start.reason.as_deref(), "reason", 500)?.or(short(
        start.description.as_deref(),
        "description",
        2000,
    )?);
    let mut handoff =
        crate::handoffs::open(txn, hub, &conversation, &title, description.as_deref())?;
    let tags = team_tags(txn, &start.tags)?;
    if start.priority.is_some() || !tags.is_empty() {
        handoff.priority = start.priority.or(handoff.priority);
        handoff.tags = tags;
        txn.put(EventData::Handoff(handoff.clone()))?;
    }
    if let Some(key) = key {
        txn.link_external(bot_id, "handoff-key", key, &handoff.id)?;
    }
    crate::handoffs::tell_if_nobody_can_answer(
        txn,
        hub,
        &conversation.channel_id,
        &conversation.id,
    )?;
    tracing::info!(handoff = %handoff.id, "bot api: the bot in front of a WhatsApp number handed a chat over");
    Ok(HandoffStarted {
        handoff_id: handoff.id,
        conversation_id: conversation.id,
    })
}

/// Tells the bot in front of a WhatsApp number what its customer wrote (`user.message`).
pub fn queue_user_message(
    txn: &mut dyn Tx,
    hub: &Hub,
    bot_id: &str,
    conversation: &Conversation,
    contact: &Contact,
    message: &Message,
) -> Result<(), ApiError> {
    let user_id = ["phone", "bsuid"]
        .iter()
        .find_map(|k| contact.attributes.get(*k).cloned())
        .unwrap_or(Value::Null);
    // A text reads as Botpress's `{"text"}`; anything else as what an agent reads, with
    // WhatsApp's own JSON beside it.
    let (kind, payload) = match message.kind.as_str() {
        "text" => ("text", json!({ "text": message.text })),
        other => (
            other,
            json!({ "text": message.text, "whatsapp": message.payload }),
        ),
    };
    queue_event(
        txn,
        hub,
        bot_id,
        &conversation.id,
        "user.message",
        json!({
            "conversation_id": conversation.id,
            "user_id": user_id,
            "user_name": contact.name,
            "channel": "whatsapp",
            "message_id": message.id,
            "type": kind,
            "payload": payload,
        }),
        None,
    )
}

/// Queues the event `kind` for the bot `bot_id`, in order with the conversation's other calls;
/// `message_id` is the desk message whose status follows the call's.
pub fn queue_event(
    txn: &mut dyn Tx,
    hub: &Hub,
    bot_id: &str,
    conversation_id: &str,
    kind: &str,
    data: Value,
    message_id: Option<&str>,
) -> Result<(), ApiError> {
    let body = event_body(hub, kind, data)?;
    txn.queue_delivery(
        &crate::store::Delivery {
            channel_id: bot_id.to_string(),
            conversation_id: conversation_id.to_string(),
            route: "events".into(),
            body: body.to_string(),
            message_id: message_id.map(str::to_string),
        },
        hub.now(),
    )?;
    Ok(())
}

#[utoipa::path(
    post,
    path = "/bot/v1/conversations/{conversation_id}/replies",
    params(("conversation_id" = String, Path, description = "From a `user.message` event")),
    request_body = BotReply,
    responses(
        (status = 200, description = "Queued for WhatsApp", body = MessageRelayed),
        (status = 400, description = "Not valid JSON, or not something WhatsApp takes", body = BotError),
        (status = 401, description = "No or an unknown bot token", body = BotError),
        (status = 404, description = "Not a conversation of a number this bot is in front of", body = BotError),
        (status = 409, description = "An agent has the conversation, or the 24-hour window has closed", body = BotError),
        (status = 413, description = "The body is too large", body = BotError),
    )
)]
async fn reply(
    State(hub): State<Hub>,
    channel: BotChannel,
    Path(conversation_id): Path<String>,
    JsonBody(reply): JsonBody<BotReply>,
) -> Result<Json<MessageRelayed>, ApiError> {
    let hub2 = hub.clone();
    let message = blocking(move || {
        hub2.store().write(|txn| {
            let conversation = fronted_conversation(txn, &channel.id, &conversation_id)?
                .ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "no conversation {conversation_id:?} on a WhatsApp number this bot is in front of"
                    ))
                })?;
            let outgoing = crate::handoffs::Outgoing {
                kind: reply.kind.clone(),
                payload: reply.payload.clone(),
            };
            crate::whatsapp::send_from_bot(txn, &hub2, &conversation, outgoing)
        })
    })
    .await?;
    hub.wake_delivery();
    Ok(Json(MessageRelayed {
        message_id: message.id,
    }))
}

#[utoipa::path(
    post,
    path = "/bot/v1/conversations/{conversation_id}/drafts",
    params(("conversation_id" = String, Path, description = "From a handoff's answer or a `user.message` event")),
    request_body = SubmitDraft,
    responses(
        (status = 200, description = "Waiting for an agent's decision", body = DraftSubmitted),
        (status = 400, description = "Not valid JSON, or an empty or too long text", body = BotError),
        (status = 401, description = "No or an unknown bot token", body = BotError),
        (status = 404, description = "No such conversation for this bot", body = BotError),
        (status = 413, description = "The body is too large", body = BotError),
    )
)]
async fn submit_draft(
    State(hub): State<Hub>,
    channel: BotChannel,
    Path(conversation_id): Path<String>,
    JsonBody(draft): JsonBody<SubmitDraft>,
) -> Result<Json<DraftSubmitted>, ApiError> {
    let key = short(draft.idempotency_key.as_deref(), "idempotency_key", 200)?;
    let hub2 = hub.clone();
    let submitted = blocking(move || {
        hub2.store().write(|txn| {
            let conversation =
                bot_conversation(txn, &channel.id, &conversation_id)?.ok_or_else(|| {
                    ApiError::NotFound(format!("no conversation {conversation_id:?} for this bot"))
                })?;
            let key = key.map(|k| format!("{}:{k}", conversation.id));
            if let Some(key) = &key {
                if let Some(id) = txn.external_id(&channel.id, "draft-key", key)? {
                    let handoff_id = txn
                        .external_id(&channel.id, "draft-handoff", &id)?
                        .unwrap_or_default();
                    return Ok(DraftSubmitted {
                        draft_id: id,
                        handoff_id,
                    });
                }
            }
            let done = crate::drafts::submit(
                txn,
                &hub2,
                &channel.id,
                &conversation,
                &draft.text,
                draft.priority,
            )?;
            if let Some(key) = &key {
                txn.link_external(&channel.id, "draft-key", key, &done.draft_id)?;
                txn.link_external(
                    &channel.id,
                    "draft-handoff",
                    &done.draft_id,
                    &done.handoff_id,
                )?;
            }
            Ok::<_, ApiError>(DraftSubmitted {
                draft_id: done.draft_id,
                handoff_id: done.handoff_id,
            })
        })
    })
    .await?;
    Ok(Json(submitted))
}

#[utoipa::path(
    post,
    path = "/bot/v1/conversations/{conversation_id}/messages",
    params(("conversation_id" = String, Path, description = "From the handoff's answer")),
    request_body = RelayMessage,
    responses(
        (status = 200, description = "Stored; agents see it", body = MessageRelayed),
        (status = 400, description = "Not valid JSON, or not a message", body = BotError),
        (status = 401, description = "No or an unknown bot token", body = BotError),
        (status = 413, description = "The body is too large", body = BotError),
        (status = 404, description = "No such conversation for this bot", body = BotError),
    )
)]
async fn relay_message(
    State(hub): State<Hub>,
    channel: BotChannel,
    Path(conversation_id): Path<String>,
    JsonBody(relay): JsonBody<RelayMessage>,
) -> Result<Json<MessageRelayed>, ApiError> {
    checked_message(&relay.kind, &relay.payload)?;
    let key = short(relay.idempotency_key.as_deref(), "idempotency_key", 200)?;
    let hub2 = hub.clone();
    let id = hub
        .store()
        .write_grouped_async(move |txn| -> Result<String, ApiError> {
            let conversation = txn
                .conversation(&conversation_id)?
                .filter(|c| c.channel_id == channel.id)
                .ok_or_else(|| {
                    ApiError::NotFound(format!("no conversation {conversation_id:?} for this bot"))
                })?;
            let message_id = hub2.new_id("m");
            if let Some(key) = &key {
                // Keys are the bot's per conversation.
                let key = format!("{}:{key}", conversation.id);
                if !txn.link_external(&channel.id, "message-key", &key, &message_id)? {
                    return Ok(txn
                        .external_id(&channel.id, "message-key", &key)?
                        .unwrap_or(message_id));
                }
            }
            let from_user = relay.author.unwrap_or(Speaker::User) == Speaker::User;
            txn.put(EventData::Message(Message {
                id: message_id.clone(),
                conversation_id: conversation.id.clone(),
                author: if from_user {
                    Author::EndUser
                } else {
                    Author::Bot
                },
                author_id: if from_user {
                    conversation.contact_id.clone()
                } else {
                    None
                },
                kind: relay.kind.clone(),
                text: readable(&relay.payload),
                payload: relay.payload.clone(),
                status: DeliveryStatus::Received,
                status_reason: None,
                created_at: hub2.now(),
            }))?;
            if from_user {
                crate::handoffs::tell_if_nobody_can_answer(
                    txn,
                    &hub2,
                    &channel.id,
                    &conversation.id,
                )?;
            }
            Ok(message_id)
        })
        .await?;
    Ok(Json(MessageRelayed { message_id: id }))
}

#[utoipa::path(
    post,
    path = "/bot/v1/handoffs/{handoff_id}/close",
    params(("handoff_id" = String, Path, description = "From the handoff's answer")),
    request_body = CloseHandoff,
    responses(
        (status = 200, description = "Ended (or already over)", body = HandoffClosed),
        (status = 400, description = "Not valid JSON, or not what this route takes", body = BotError),
        (status = 401, description = "No or an unknown bot token", body = BotError),
        (status = 413, description = "The body is too large", body = BotError),
        (status = 404, description = "No such handoff for this bot", body = BotError),
    )
)]
async fn close_handoff(
    State(hub): State<Hub>,
    channel: BotChannel,
    Path(handoff_id): Path<String>,
    JsonBody(close): JsonBody<CloseHandoff>,
) -> Result<Json<HandoffClosed>, ApiError> {
    let reason = short(close.reason.as_deref(), "reason", 500)?
        .unwrap_or_else(|| "ended on the bot's side".into());
    let hub2 = hub.clone();
    blocking(move || {
        hub2.store().write(|txn| {
            let h = txn
                .handoff(&handoff_id)?
                .filter(|h| {
                    h.channel_id == channel.id
                        || fronted_by(txn, &h.channel_id, &channel.id).unwrap_or(false)
                })
                .ok_or_else(|| {
                    ApiError::NotFound(format!("no handoff {handoff_id:?} for this bot"))
                })?;
            if !matches!(h.status, HandoffStatus::Pending | HandoffStatus::Assigned) {
                return Ok(HandoffClosed {
                    handoff_id: h.id,
                    status: h.status.as_str().to_string(),
                });
            }
            // The bot ended it: nothing is sent back to it.
            crate::handoffs::cancel_by_bot(txn, &hub2, &h.conversation_id, &reason)?;
            Ok(HandoffClosed {
                handoff_id: h.id,
                status: "cancelled".into(),
            })
        })
    })
    .await
    .map(Json)
}

/// The event that tells the bot about `event` (always one: a bot hears everything agents do).
pub fn call_for(
    txn: &dyn Tx,
    hub: &Hub,
    handoff: &Handoff,
    event: &PlatformEvent<'_>,
    message_id: Option<&str>,
) -> Result<Option<(&'static str, Value)>, ApiError> {
    let user_id = txn
        .conversation(&handoff.conversation_id)?
        .and_then(|c| c.contact_id)
        .map(|id| txn.contact(&id))
        .transpose()?
        .flatten()
        .and_then(|c| {
            // The bot's own id for its user; a WhatsApp customer's number (or user id).
            ["bot_user_id", "phone", "bsuid"]
                .iter()
                .find_map(|k| c.attributes.get(*k).cloned())
        })
        .unwrap_or(Value::Null);
    let agent = |a: &baton_protocol::Agent| json!({ "id": a.id, "name": a.name });
    let mut data = json!({
        "handoff_id": handoff.id,
        "conversation_id": handoff.conversation_id,
        "user_id": user_id,
    });
    let kind = match event {
        PlatformEvent::Assigned(to) => {
            data["agent"] = agent(to);
            "handoff.assigned"
        }
        PlatformEvent::Message { from, outgoing } => {
            data["agent"] = from.map_or(Value::Null, agent);
            data["message_id"] = json!(message_id);
            data["type"] = json!(outgoing.kind);
            data["payload"] = outgoing.payload.clone();
            "agent.message"
        }
        PlatformEvent::Closed => {
            let holder = match &handoff.assignee {
                Some(id) => txn.agent(id)?.map(|a| agent(&a)),
                None => None,
            };
            data["status"] = json!(handoff.status.as_str());
            data["label"] = json!(handoff.label);
            data["agent"] = holder.unwrap_or(Value::Null);
            "handoff.closed"
        }
    };
    Ok(Some(("events", event_body(hub, kind, data)?)))
}

/// An event for the bot, with the id it keeps on every retry.
pub fn event_body(hub: &Hub, kind: &str, data: Value) -> Result<Value, ApiError> {
    let event = BotEvent {
        id: hub.new_id("ev"),
        kind: kind.to_string(),
        created_at: hub.now(),
        data,
    };
    serde_json::to_value(&event)
        .map_err(|e| ApiError::Internal(StoreError::CommitFailed(e.to_string())))
}

/// `Baton-Signature` for `body` sent at `t` (Unix seconds): `t=<t>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>">`. The time is signed so a captured call cannot be replayed later; the bot should
/// refuse a `t` more than five minutes from its clock.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    // An HMAC takes a key of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What became of one event sent to a bot.
pub enum Sent {
    Delivered,
    /// Worth trying again (the bot drops a repeat by its id).
    Retry(String),
    /// The bot refused it for good.
    Refused(String),
}

/// POSTs one event to the bot's events URL, signed.
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    now: DateTime<Utc>,
    body: &str,
) -> Sent {
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            "Baton-Signature",
            signature(secret, now.timestamp(), body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => Sent::Delivered,
        Ok(r)
            if r.status().is_server_error()
                || matches!(r.status().as_u16(), 408 | 409 | 425 | 429) =>
        {
            Sent::Retry(format!("the bot answered HTTP {}", r.status().as_u16()))
        }
        Ok(r) => Sent::Refused(format!(
            "the bot refused the event (HTTP {})",
            r.status().as_u16()
        )),
        // Even a call cut off after it left is safe to repeat: the event keeps its id.
        Err(e) => Sent::Retry(format!("the bot cannot be reached ({})", e.without_url())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_the_time_and_the_exact_body() {
        let a = signature("s3cret", 1_700_000_000, br#"{"id":"ev_1"}"#);
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("s3cret", 1_700_000_001, br#"{"id":"ev_1"}"#));
        assert_ne!(a, signature("s3cret", 1_700_000_000, br#"{"id":"ev_2"}"#));
        assert_ne!(a, signature("other", 1_700_000_000, br#"{"id":"ev_1"}"#));
    }

    #[test]
    fn the_openapi_document_names_every_route() {
        let doc = serde_json::to_value(BotApiDoc::openapi()).expect("json");
        for path in [
            "/bot/v1/handoffs",
            "/bot/v1/conversations/{conversation_id}/messages",
            "/bot/v1/handoffs/{handoff_id}/close",
        ] {
            assert!(doc["paths"][path]["post"].is_object(), "{path}");
        }
        assert!(doc["components"]["schemas"]["StartHandoff"].is_object());
    }
}
