//! The Botpress *Human in the Loop API* endpoints (ARCHITECTURE.md, Botpress protocol §1.3): five JSON POST
//! routes under `/botpress/{secret}/`. Botpress sends no authentication, so the unguessable secret
//! in the path is the channel's only credential: a wrong one is a 404 and nothing is stored.
//!
//! Bodies are parsed leniently (unknown keys are ignored) but the `type` discriminator must match
//! the route, and the two create routes answer `{"id":"<string>"}` as the integration requires.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use baton_protocol::{
    Author, Contact, Conversation, DeliveryStatus, EventData, Handoff, HandoffStatus, Message,
    BOTPRESS_BOT_USER,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::secret_hash;
use crate::error::ApiError;
use crate::store::StoreError;
use crate::Hub;

/// The Botpress call that tells the integration about `event` (ARCHITECTURE.md, Botpress
/// protocol §1.4): `agent-assigned`, `message-from-agent` or `stop-hitl`.
pub fn call_for(
    handoff: &Handoff,
    event: &crate::handoffs::PlatformEvent<'_>,
) -> (&'static str, Value) {
    use crate::handoffs::{remote_agent_id, PlatformEvent};
    match event {
        PlatformEvent::Assigned(agent) => (
            "agent-assigned",
            json!({
                "remoteConversationId": handoff.conversation_id,
                "remoteUserId": remote_agent_id(&agent.id),
            }),
        ),
        PlatformEvent::Message { from, outgoing } => (
            "message-from-agent",
            json!({
                "remoteConversationId": handoff.conversation_id,
                // A notice from the desk itself speaks as the bot.
                "remoteUserId": from.map_or_else(|| BOTPRESS_BOT_USER.to_string(), |a| remote_agent_id(&a.id)),
                "messageType": outgoing.kind,
                "payload": legacy_payload(&outgoing.kind, &outgoing.payload),
            }),
        ),
        PlatformEvent::Closed => (
            "stop-hitl",
            json!({ "remoteConversationId": handoff.conversation_id }),
        ),
    }
}

/// The payload as the integration's own schemas (0.2.2) take it: its image, audio and video have no
/// `title` (newer SDKs added one), so a title the agent gave stays on the desk only.
fn legacy_payload(kind: &str, payload: &Value) -> Value {
    let mut payload = payload.clone();
    if matches!(kind, "image" | "audio" | "video") {
        if let Some(map) = payload.as_object_mut() {
            map.remove("title");
        }
    }
    payload
}

/// Larger than any text or card Botpress sends; media travel as URLs, never inline.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub fn routes() -> Router<Hub> {
    Router::new()
        .route("/botpress/{secret}/{route}", post(handle))
        // An `endpointBaseUrl` saved with a trailing `/` makes the integration call `…//ping`.
        .route("/botpress/{secret}//{route}", post(handle))
}

/// The channel a secret opens.
#[derive(Debug, Clone)]
struct Channel {
    id: String,
}

async fn handle(
    State(hub): State<Hub>,
    Path((secret, route)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let result = match crate::body::read_limited(body, MAX_BODY_BYTES).await {
        Ok(body) => dispatch(&hub, &secret, &route, &body).await,
        Err(e) => Err(e),
    };
    // The route and the error come from whoever called: logged escaped ({:?}), never the secret.
    result.inspect_err(|err| {
        if !matches!(err, ApiError::Internal(_)) {
            tracing::warn!(route = ?route, code = err.code(), error = ?err.to_string(), "botpress: request refused");
        }
    })
}

/// Runs blocking store work (single writes, reads) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Internal(StoreError::Poisoned))?
}

async fn dispatch(hub: &Hub, secret: &str, route: &str, body: &[u8]) -> Result<Response, ApiError> {
    let channel = match hub.cached_channel_id(&secret_hash(secret)) {
        Some(id) => Some(Channel { id }),
        None => {
            let (hub, secret) = (hub.clone(), secret.to_string());
            blocking(move || channel_for_secret(&hub, &secret)).await?
        }
    }
    .ok_or_else(|| ApiError::NotFound("no Botpress channel has this endpoint".into()))?;
    if !matches!(
        route,
        "ping"
            | "createRemoteUser"
            | "createRemoteConversation"
            | "botSendsMessage"
            | "closeRemoteTicket"
    ) {
        return Err(ApiError::NotFound(format!(
            "the HITL API has no route {route:?}"
        )));
    }
    let value: Value = crate::body::parse(body)?;
    let found = value.get("type").and_then(Value::as_str);
    if found != Some(route) {
        return Err(ApiError::BadRequest(match found {
            Some(t) => format!("this route takes \"type\":\"{route}\", not {t:?}"),
            None => format!("the body needs \"type\":\"{route}\""),
        }));
    }
    match route {
        "ping" => Ok(Json(json!({})).into_response()),
        "createRemoteUser" => {
            let req: CreateRemoteUser = parse(value)?;
            let hub = hub.clone();
            let id = blocking(move || create_remote_user(&hub, &channel, req.payload)).await?;
            Ok(Json(json!({ "id": id })).into_response())
        }
        "createRemoteConversation" => {
            let req: CreateRemoteConversation = parse(value)?;
            let hub = hub.clone();
            let id =
                blocking(move || create_remote_conversation(&hub, &channel, req.payload)).await?;
            Ok(Json(json!({ "id": id })).into_response())
        }
        "botSendsMessage" => {
            let req: BotSendsMessage = parse(value)?;
            bot_sends_message(hub, &channel, req).await?;
            Ok(Json(json!({})).into_response())
        }
        _ => {
            let req: CloseRemoteTicket = parse(value)?;
            // The id names Botpress's downstream conversation, which the hub never saw (§1.8.1):
            // look it up in the background and answer at once.
            let hub = hub.clone();
            let channel = channel.clone();
            let botpress_id = req.payload.botpress_conversation_id;
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { close_remote_ticket(hub, channel, botpress_id).await });
            }
            Ok(Json(json!({})).into_response())
        }
    }
}

/// Resolves `closeRemoteTicket`: through the Botpress API when the channel has a bot id and token,
/// else it is left to the "user ended the session" notice (which cancels the handoff by itself).
async fn close_remote_ticket(hub: Hub, channel: Channel, botpress_id: String) {
    let settings = {
        let hub = hub.clone();
        let id = channel.id.clone();
        tokio::task::spawn_blocking(move || hub.store().reader()?.channel(&id))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .map(|row| row.settings)
    };
    let Some(settings) = settings else { return };
    let (Some(bot_id), Some(token)) = (settings.bot_id.clone(), settings.bot_token.clone()) else {
        tracing::warn!(channel = %channel.id, botpress_conversation = ?botpress_id,
            "botpress: closeRemoteTicket cannot be matched without the channel's bot id and token; relying on the session-ended notice");
        return;
    };
    let allow_private = hub.config().allow_private_urls;
    let ticket = match lookup_ticket(
        allow_private,
        &settings.botpress_api_url,
        &bot_id,
        &token,
        &botpress_id,
    )
    .await
    {
        Ok(Some(ticket)) => ticket,
        Ok(None) => {
            tracing::warn!(channel = %channel.id, botpress_conversation = ?botpress_id,
                "botpress: closeRemoteTicket names a conversation with no ticket tag; not matched");
            return;
        }
        Err(e) => {
            tracing::warn!(channel = %channel.id, botpress_conversation = ?botpress_id, error = %e,
                "botpress: closeRemoteTicket lookup failed; relying on the session-ended notice");
            return;
        }
    };
    let result = tokio::task::spawn_blocking(move || {
        hub.store().write(|txn| {
            if txn
                .conversation(&ticket)?
                .filter(|c| c.channel_id == channel.id)
                .is_none()
            {
                return Ok::<_, ApiError>(None);
            }
            crate::handoffs::cancel_by_bot(txn, &hub, &ticket, "ended on the bot's side")
                .map(|h| h.map(|h| h.id))
        })
    })
    .await;
    match result {
        Ok(Ok(Some(handoff))) => {
            tracing::info!(%handoff, "botpress: closeRemoteTicket cancelled the handoff")
        }
        Ok(Ok(None)) => {
            tracing::info!(botpress_conversation = ?botpress_id, "botpress: closeRemoteTicket matched a ticket with no open handoff")
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "botpress: closeRemoteTicket could not be applied")
        }
        Err(e) => tracing::error!(error = %e, "botpress: closeRemoteTicket task failed"),
    }
}

/// Asks the Botpress API for the downstream conversation and reads our ticket id from its
/// `externalId` tag (the tag's namespace prefix is not documented, so any `…externalId` key counts).
async fn lookup_ticket(
    allow_private: bool,
    api: &str,
    bot_id: &str,
    token: &str,
    conversation: &str,
) -> Result<Option<String>, String> {
    let http = crate::egress::client(allow_private, std::time::Duration::from_secs(10))?;
    let mut url = crate::egress::check_url(api, allow_private, "Botpress API URL")?;
    // The conversation id comes from Botpress's request: one escaped path segment, whatever it holds.
    url.path_segments_mut()
        .map_err(|()| "the Botpress API URL cannot take a path".to_string())?
        .pop_if_empty()
        .extend(["v1", "chat", "conversations", conversation]);
    let response = http
        .get(url)
        .bearer_auth(token)
        .header("x-bot-id", bot_id)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("Botpress API answered {}", response.status()));
    }
    let body: Value = response
        .json()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let tags = body["conversation"]["tags"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    Ok(tags
        .iter()
        .find(|(key, _)| *key == "externalId" || key.ends_with(":externalId"))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_string))
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))
}

fn channel_for_secret(hub: &Hub, secret: &str) -> Result<Option<Channel>, ApiError> {
    let hash = secret_hash(secret);
    if let Some(id) = hub.cached_channel_id(&hash) {
        return Ok(Some(Channel { id }));
    }
    let found = hub
        .store()
        .reader()?
        .channel_by_secret("botpress", &hash)?
        .map(|id| Channel { id });
    if let Some(channel) = &found {
        hub.remember_channel_id(&hash, &channel.id);
    }
    Ok(found)
}

#[derive(Debug, Deserialize)]
struct CreateRemoteUser {
    payload: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct CreateRemoteConversation {
    #[serde(default)]
    payload: ConversationPayload,
}

#[derive(Debug, Default, Deserialize)]
struct ConversationPayload {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BotSendsMessage {
    remote_conversation_id: String,
    remote_user_id: String,
    payload: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct CloseRemoteTicket {
    payload: ClosePayload,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClosePayload {
    botpress_conversation_id: String,
}

fn take_string(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        _ => None,
    }
}

fn create_remote_user(
    hub: &Hub,
    channel: &Channel,
    mut payload: Map<String, Value>,
) -> Result<String, ApiError> {
    let name = take_string(&mut payload, "name").unwrap_or_else(|| "Unknown User".into());
    let contact = Contact {
        id: hub.new_id("u"),
        channel_id: channel.id.clone(),
        name,
        email: take_string(&mut payload, "email"),
        picture_url: take_string(&mut payload, "pictureUrl"),
        attributes: Value::Object(payload),
        created_at: hub.now(),
    };
    hub.store()
        .write(|txn| txn.put(EventData::Contact(contact.clone())))?;
    tracing::info!(channel = %channel.id, contact = %contact.id, "botpress: contact created");
    Ok(contact.id)
}

fn create_remote_conversation(
    hub: &Hub,
    channel: &Channel,
    payload: ConversationPayload,
) -> Result<String, ApiError> {
    let now = hub.now();
    let conversation = Conversation {
        id: hub.new_id("t"),
        channel_id: channel.id.clone(),
        contact_id: None,
        created_at: now,
        channel_kind: None,
        last_inbound_at: None,
    };
    let title = payload
        .title
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Untitled handoff".into());
    let handoff = Handoff {
        id: hub.new_id("ho"),
        conversation_id: conversation.id.clone(),
        channel_id: channel.id.clone(),
        status: HandoffStatus::Pending,
        title,
        description: payload.description.filter(|d| !d.trim().is_empty()),
        assignee: None,
        assigned_by: None,
        label: None,
        tags: Vec::new(),
        priority: None,
        for_draft: false,
        escalation: None,
        created_at: now,
        updated_at: now,
    };
    hub.store().write(|txn| {
        txn.put(EventData::Conversation(conversation.clone()))?;
        txn.put(EventData::Handoff(handoff.clone()))
    })?;
    tracing::info!(channel = %channel.id, handoff = %handoff.id, "botpress: handoff created");
    Ok(conversation.id)
}

async fn bot_sends_message(
    hub: &Hub,
    channel: &Channel,
    req: BotSendsMessage,
) -> Result<(), ApiError> {
    let (kind, text) = describe_payload(&req.payload);
    let from_bot = req.remote_user_id == BOTPRESS_BOT_USER;
    let now = hub.now();
    // The hot path: committed with other requests' messages in one fsync (group commit).
    let hub2 = hub.clone();
    let channel = channel.clone();
    hub.store().write_grouped_async(move |txn| {
        let hub = &hub2;
        let mut conversation = txn
            .conversation(&req.remote_conversation_id)?
            .filter(|c| c.channel_id == channel.id)
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no conversation {:?} on this channel",
                    req.remote_conversation_id
                ))
            })?;
        if !from_bot {
            if txn.contact(&req.remote_user_id)?.is_none() {
                // An id we never issued (the hub's data was reset, say): keep the message attributable.
                tracing::warn!(contact = ?req.remote_user_id, "botpress: message from an unknown user; contact created");
                txn.put(EventData::Contact(Contact {
                    id: req.remote_user_id.clone(),
                    channel_id: channel.id.clone(),
                    name: "Unknown User".into(),
                    email: None,
                    picture_url: None,
                    attributes: Value::Object(Map::new()),
                    created_at: now,
                }))?;
            }
            // Botpress strips the owner from createRemoteConversation (§1.8.2): the first message
            // from a person tells us whose ticket this is.
            if conversation.contact_id.is_none() {
                conversation.contact_id = Some(req.remote_user_id.clone());
                txn.put(EventData::Conversation(conversation.clone()))?;
            }
        }
        let message = Message {
            id: hub.new_id("m"),
            conversation_id: conversation.id.clone(),
            author: if from_bot { Author::Bot } else { Author::EndUser },
            author_id: (!from_bot).then(|| req.remote_user_id.clone()),
            kind: kind.clone(),
            text: text.clone(),
            payload: Value::Object(req.payload.clone()),
            status: DeliveryStatus::Received,
            status_reason: None,
            created_at: now,
        };
        txn.put(EventData::Message(message))?;
        if !from_bot {
            crate::handoffs::tell_if_nobody_can_answer(txn, hub, &channel.id, &conversation.id)?;
        }
        // A HITL plugin on interface 0.4.0 relays text only; it says so in the ticket instead of
        // failing the call, so the agent's last non-text message is marked failed with the reason.
        if from_bot && text.as_deref().is_some_and(|t| t.trim_start().starts_with(CANNOT_RECEIVE_NOTICE)) {
            if let Some(mut refused) = txn.latest_agent_media(&conversation.id)? {
                if refused.status != DeliveryStatus::Failed {
                    refused.status = DeliveryStatus::Failed;
                    refused.status_reason = Some(format!(
                        "the bot's HITL plugin relays only text, so the customer did not get this {}; send it as a link in a text message",
                        refused.kind
                    ));
                    txn.put(EventData::Message(refused))?;
                }
            }
        }
        if from_bot && text.as_deref().is_some_and(|t| is_session_ended_notice(txn, hub, &channel.id, t)) {
            if let Some(h) = crate::handoffs::cancel_by_bot(txn, hub, &conversation.id, "the customer ended the session")? {
                tracing::info!(handoff = %h.id, "botpress: the customer ended the session; handoff cancelled");
            }
        }
        Ok::<_, ApiError>(())
    })
    .await
}

/// What the HITL plugin writes into the ticket when it cannot relay an agent's message
/// (ARCHITECTURE.md, Botpress protocol §1.6).
pub const CANNOT_RECEIVE_NOTICE: &str = "Sorry, the user can not receive this type of message";

fn is_session_ended_notice(
    txn: &dyn crate::store::Tx,
    hub: &Hub,
    channel_id: &str,
    text: &str,
) -> bool {
    let settings = hub.channel_settings(channel_id, || {
        txn.channel(channel_id).ok().flatten().map(|c| c.settings)
    });
    settings
        .map(|s| s.session_ended_notice)
        .is_some_and(|notice| !notice.trim().is_empty() && notice.trim() == text.trim())
}

/// The message type and its readable text. Botpress payloads may say their type (newer plugins) or
/// not (0.2.2): then the type is recognised by its fields (ARCHITECTURE.md, Botpress protocol §1.5).
fn describe_payload(payload: &Map<String, Value>) -> (String, Option<String>) {
    let s = |key: &str| payload.get(key).and_then(Value::as_str).map(str::to_string);
    let kind = s("type").unwrap_or_else(|| {
        let has = |k: &str| payload.contains_key(k);
        let kind = if has("text") && has("options") {
            // Botpress's choice and dropdown have the same shape; a dropdown says so in its type.
            "choice"
        } else if has("title") && has("actions") {
            "card"
        } else if has("items") {
            // A bloc's items name their own type; a carousel's are cards.
            let items = payload.get("items").and_then(Value::as_array);
            if items.is_some_and(|i| {
                i.iter()
                    .any(|item| item.get("type").is_some() && item.get("payload").is_some())
            }) {
                "bloc"
            } else {
                "carousel"
            }
        } else if has("text") {
            "text"
        } else if has("markdown") {
            "markdown"
        } else if has("imageUrl") {
            "image"
        } else if has("audioUrl") {
            "audio"
        } else if has("videoUrl") {
            "video"
        } else if has("fileUrl") {
            "file"
        } else if has("latitude") {
            "location"
        } else {
            "unknown"
        };
        kind.to_string()
    });
    (kind, baton_protocol::payload::readable_text(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn an_untyped_image_payload_is_recognised_by_its_url() {
        let (kind, text) = describe_payload(&payload(json!({"imageUrl": "https://x/p.png"})));
        assert_eq!(kind, "image");
        assert_eq!(text, None);
    }

    #[test]
    fn a_file_shows_its_title_as_text() {
        let (kind, text) = describe_payload(&payload(
            json!({"fileUrl": "https://x/i.pdf", "title": "invoice.pdf"}),
        ));
        assert_eq!(kind, "file");
        assert_eq!(text.as_deref(), Some("invoice.pdf"));
    }

    #[test]
    fn a_newer_plugin_names_its_type() {
        let (kind, _) =
            describe_payload(&payload(json!({"type": "video", "videoUrl": "https://x"})));
        assert_eq!(kind, "video");
    }
}
