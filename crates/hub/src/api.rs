//! The agent API under `/api/v1`: sign in, page through the event log, and follow it live over a
//! WebSocket. Catch-up and live share one path: the stream first sends the log after the client's
//! cursor, then every new event, so a client never needs a separate "initial sync".

use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use baton_protocol::{Event, EventPage, LoginRequest, LoginResponse, StreamNotice};
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::{random_secret, secret_hash, verify_password, SignedIn};
use crate::error::ApiError;
use crate::store::{get_entity, Entity, StoreError};
use crate::Hub;

/// The most events one page (or one catch-up read of the stream) returns.
pub const MAX_PAGE: u32 = 1000;

/// What a stream reads from the agent: control frames and a close, never large.
const STREAM_READ_BUFFER: usize = 4 * 1024;

/// How often an idle stream is pinged so dead peers and idle-killing proxies are noticed.
const STREAM_PING: Duration = Duration::from_secs(20);

pub fn routes() -> Router<Hub> {
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/events", get(events))
        .route("/stream", get(stream))
        .route("/snapshot", get(snapshot))
        .route("/messages", get(messages))
        .route("/presence", post(presence))
        .route("/handoffs/{id}/assign", post(assign))
        .route("/handoffs/{id}/release", post(release))
        .route("/handoffs/{id}/transfer", post(transfer))
        .route("/handoffs/{id}/resolve", post(resolve))
        .route("/handoffs/{id}/cancel", post(cancel))
        .route("/handoffs/{id}/tags", post(tags))
        .route("/conversations/{id}/messages", post(send_message))
        .route("/conversations/{id}/notes", post(add_note))
        .route("/messages/{id}/resend", post(resend))
}

async fn me(SignedIn(agent): SignedIn) -> Json<baton_protocol::Agent> {
    Json(agent)
}

/// The body every command takes: the client's `txn_id` plus the command's own fields.
#[derive(Debug, Deserialize)]
struct CommandBody {
    #[serde(default)]
    txn_id: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    status: Option<String>,
    /// A message's Botpress type, with `payload`, for anything but plain text.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

type Body = Result<Json<CommandBody>, axum::extract::rejection::JsonRejection>;

fn parse_body(body: Body) -> Result<CommandBody, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| ApiError::BadRequest(format!("the body needs \"{field}\"")))
}

/// Runs a command off the async threads, once per `txn_id`.
async fn command(
    hub: Hub,
    agent: baton_protocol::Agent,
    txn_id: Option<String>,
    f: impl FnOnce(&mut crate::store::Txn<'_>, &Hub, &baton_protocol::Agent) -> Result<(), ApiError>
        + Send
        + 'static,
) -> Result<Json<serde_json::Value>, ApiError> {
    let txn_id = required(txn_id, "txn_id")?;
    let response = tokio::task::spawn_blocking(move || crate::work::run(&hub, &agent, &txn_id, f))
        .await
        .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    Ok(Json(response))
}

async fn presence(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = parse_body(body)?;
    let presence = match body.status.as_deref() {
        Some("online") => baton_protocol::Presence::Online,
        Some("offline") => baton_protocol::Presence::Offline,
        other => {
            return Err(ApiError::BadRequest(format!(
                "status must be \"online\" or \"offline\", not {other:?}"
            )))
        }
    };
    // Presence is a plain toggle: a missing txn_id gets a fresh one.
    let txn_id = body.txn_id.or_else(|| Some(crate::auth::random_secret()));
    command(hub, agent, txn_id, move |txn, hub, agent| {
        crate::work::set_presence(txn, hub, agent, presence)
    })
    .await
}

async fn assign(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = parse_body(body)?;
    command(hub, agent, body.txn_id, move |txn, hub, agent| {
        crate::work::assign(txn, hub, agent, &id)
    })
    .await
}

async fn release(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = parse_body(body)?;
    command(hub, agent, body.txn_id, move |txn, hub, agent| {
        crate::work::release(txn, hub, agent, &id)
    })
    .await
}

async fn transfer(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = parse_body(body)?;
    let to = required(body.to, "to")?;
    command(hub, agent, body.txn_id, move |txn, hub, agent| {
        crate::work::transfer(txn, hub, agent, &id, &to)
    })
    .await
}

async fn resolve(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = parse_body(body)?;
    let label = body.label;
    command(hub, agent, body.txn_id, move |txn, hub, agent| {
        crate::work::close(
            txn,
            hub,
            agent,
            &id,
            baton_protocol::HandoffStatus::Resolved,
            label.as_deref(),
        )
    })
    .await
}

async fn cancel(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = parse_body(body)?;
    command(hub, agent, body.txn_id, move |txn, hub, agent| {
        crate::work::close(
            txn,
            hub,
            agent,
            &id,
            baton_protocol::HandoffStatus::Cancelled,
            None,
        )
    })
    .await
}

async fn tags(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = parse_body(body)?;
    let tags = body
        .tags
        .ok_or_else(|| ApiError::BadRequest("the body needs \"tags\": [ … ]".into()))?;
    command(hub, agent, body.txn_id, move |txn, hub, agent| {
        crate::work::set_tags(txn, hub, agent, &id, &tags)
    })
    .await
}

async fn send_message(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = parse_body(body)?;
    // `{"text"}` is a text message; `{"type","payload"}` any other kind the channel relays.
    let outgoing = match (body.kind, body.payload, body.text) {
        (Some(kind), Some(payload), _) => crate::work::Outgoing { kind, payload },
        (None, None, Some(text)) => crate::work::Outgoing::text(&text),
        (Some(kind), None, Some(text)) if kind == "text" => crate::work::Outgoing::text(&text),
        (None, Some(_), _) => {
            return Err(ApiError::BadRequest(
                "a payload needs its \"type\" (image, file, …)".into(),
            ))
        }
        (Some(kind), None, Some(_)) => {
            return Err(ApiError::BadRequest(format!(
                "a {kind} message needs a \"payload\""
            )))
        }
        (_, None, None) => {
            return Err(ApiError::BadRequest(
                "the body needs \"text\", or \"type\" and \"payload\"".into(),
            ))
        }
    };
    command(hub, agent, body.txn_id, move |txn, hub, agent| {
        crate::work::reply(txn, hub, agent, &id, outgoing)
    })
    .await
}

async fn add_note(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = parse_body(body)?;
    let text = required(body.text, "text")?;
    command(hub, agent, body.txn_id, move |txn, hub, agent| {
        crate::work::add_note(txn, hub, agent, &id, &text)
    })
    .await
}

async fn resend(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = parse_body(body)?;
    command(hub, agent, body.txn_id, move |txn, hub, agent| {
        crate::work::resend(txn, hub, agent, &id)
    })
    .await
}

async fn login(
    State(hub): State<Hub>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<LoginResponse>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let response = tokio::task::spawn_blocking(move || {
        let row: Option<(String, String)> = hub.store().read(|conn| {
            conn.query_row(
                "SELECT id, password_hash FROM agents WHERE email = ?1 AND disabled = 0",
                [req.email.trim()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::from)
        })?;
        let Some((agent_id, hash)) = row else {
            tracing::info!("login refused: unknown or disabled email");
            return Err(ApiError::BadCredentials);
        };
        if !verify_password(&req.password, &hash) {
            tracing::info!(agent = %agent_id, "login refused: wrong password");
            return Err(ApiError::BadCredentials);
        }
        let token = random_secret();
        let now = hub.now().to_rfc3339();
        let agent = hub.store().write(|txn| {
            txn.conn().execute(
                "INSERT INTO tokens (token_hash, agent_id, created_at) VALUES (?1, ?2, ?3)",
                params![secret_hash(&token), agent_id, now],
            )?;
            get_entity(txn.conn(), Entity::Agent, &agent_id)
        })?;
        tracing::info!(agent = %agent_id, "agent signed in");
        Ok(LoginResponse { token, agent })
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    Ok(Json(response))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<u32>,
}

async fn events(
    State(hub): State<Hub>,
    SignedIn(_agent): SignedIn,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    check_cursor(&hub, q.after).await?;
    let events = tokio::task::spawn_blocking(move || hub.store().events_after(q.after, limit))
        .await
        .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    let next = events.last().map(|e| e.seq).unwrap_or(q.after);
    Ok(Json(EventPage { events, next }))
}

/// 410 when the log can't continue from `after`: the events after it were trimmed, or `after` is
/// beyond the log (the hub's data was reset). Either way the client needs a fresh snapshot.
async fn check_cursor(hub: &Hub, after: u64) -> Result<(), ApiError> {
    let hub = hub.clone();
    let (floor, last) = tokio::task::spawn_blocking(move || {
        Ok::<_, StoreError>((hub.store().log_floor()?, hub.store().last_seq()?))
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    if after < floor {
        return Err(ApiError::Gone(format!(
            "this hub no longer keeps the events after {after} (it keeps those after {floor}); take a fresh snapshot"
        )));
    }
    if after > last {
        return Err(ApiError::Gone(format!(
            "this hub's log ends at {last}, before {after}: its data was reset; take a fresh snapshot"
        )));
    }
    Ok(())
}

async fn snapshot(
    State(hub): State<Hub>,
    SignedIn(_agent): SignedIn,
) -> Result<Json<baton_protocol::Snapshot>, ApiError> {
    let snapshot = tokio::task::spawn_blocking(move || hub.store().snapshot())
        .await
        .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    Ok(Json(snapshot))
}

#[derive(Debug, Deserialize)]
struct MessagesQuery {
    before: Option<i64>,
    limit: Option<u32>,
    /// Only this conversation's messages.
    conversation: Option<String>,
}

/// The most messages one backfill page returns.
const MAX_MESSAGE_PAGE: u32 = 2000;

async fn messages(
    State(hub): State<Hub>,
    SignedIn(_agent): SignedIn,
    query: Result<Query<MessagesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<baton_protocol::MessagePage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(500).clamp(1, MAX_MESSAGE_PAGE);
    let page = tokio::task::spawn_blocking(move || {
        hub.store()
            .messages_before(q.conversation.as_deref(), q.before, limit)
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    Ok(Json(page))
}

async fn stream(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_cursor(&hub, q.after).await?;
    // Agents only send pings and a close on this socket. A small read buffer matters: the
    // WebSocket layer zero-fills its whole read buffer on every poll for input.
    Ok(ws
        .read_buffer_size(STREAM_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            tracing::debug!(agent = %agent.id, after = q.after, "stream opened");
            if let Err(err) = follow(hub, socket, q.after, agent.id.clone()).await {
                tracing::debug!(agent = %agent.id, error = %err, "stream closed");
            }
        }))
}

#[derive(Debug, thiserror::Error)]
enum StreamEnd {
    #[error("peer went away: {0}")]
    Socket(#[from] axum::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("peer closed the stream")]
    Closed,
}

/// Sends the log after `cursor`, then live events. Subscribes *before* reading the backlog so no
/// event can fall between the two; batches the backlog already covered are skipped by seq. Each
/// frame is a JSON array of events (one commit, or one page of backlog); live batches that are
/// already waiting are written together and flushed once.
async fn follow(
    hub: Hub,
    mut socket: WebSocket,
    mut cursor: u64,
    agent_id: String,
) -> Result<(), StreamEnd> {
    use futures_util::SinkExt;
    use tokio::sync::broadcast::error::TryRecvError;

    let mut live = hub.store().subscribe();
    cursor = send_backlog(&hub, &mut socket, cursor).await?;
    send_json(&mut socket, &StreamNotice::CaughtUp { seq: cursor }).await?;
    let mut ping = tokio::time::interval(STREAM_PING);
    ping.tick().await;
    loop {
        tokio::select! {
            received = live.recv() => {
                let (mut next, mut behind) = match received {
                    Ok(event) => (Some(event), false),
                    Err(RecvError::Lagged(_)) => (None, true),
                    Err(RecvError::Closed) => return Ok(()),
                };
                while let Some(batch) = next.take() {
                    if batch.first == cursor + 1 {
                        socket.feed(WsMessage::Text(batch.json.clone())).await?;
                        cursor = batch.last;
                    } else if batch.last > cursor {
                        // A gap (another process wrote to the log) or an overlap with the
                        // backlog just sent: the log has everything, from the cursor on.
                        behind = true;
                        break;
                    }
                    match live.try_recv() {
                        Ok(more) => next = Some(more),
                        Err(TryRecvError::Empty) => {}
                        Err(TryRecvError::Lagged(_)) => behind = true,
                        Err(TryRecvError::Closed) => return Ok(()),
                    }
                }
                socket.flush().await?;
                // This peer is slow (the broadcast moved on) or something wrote outside this
                // process: read the log from the cursor instead of dropping anything.
                if behind {
                    cursor = send_backlog(&hub, &mut socket, cursor).await?;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Ok(WsMessage::Close(_))) => return Err(StreamEnd::Closed),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                // An open stream is a sign of life: the agent's app is running.
                hub.touch(&agent_id);
                socket.send(WsMessage::Ping(Default::default())).await?
            }
        }
    }
}

async fn send_backlog(
    hub: &Hub,
    socket: &mut WebSocket,
    mut cursor: u64,
) -> Result<u64, StreamEnd> {
    loop {
        let hub2 = hub.clone();
        let page: Vec<Event> =
            tokio::task::spawn_blocking(move || hub2.store().events_after(cursor, MAX_PAGE))
                .await
                .map_err(|_| StoreError::Poisoned)??;
        let full = page.len() as u32 == MAX_PAGE;
        if let Some(last) = page.last() {
            cursor = last.seq;
            send_json(socket, &page).await?;
        }
        if !full {
            return Ok(cursor);
        }
    }
}

async fn send_json<T: serde::Serialize>(
    socket: &mut WebSocket,
    value: &T,
) -> Result<(), StreamEnd> {
    let text = serde_json::to_string(value).map_err(StoreError::from)?;
    socket.send(WsMessage::Text(text.into())).await?;
    Ok(())
}
