//! The agent API under `/api/v1`: sign in, page through the event log, and follow it live over a
//! WebSocket. Catch-up and live share one path: the stream first sends the log after the client's
//! cursor, then every new event, so a client never needs a separate "initial sync".

use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use baton_protocol::command::CommandError;
use baton_protocol::{AgentCommand, CommandFields, LoginRequest, LoginResponse, StreamNotice};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::{secret_hash, verify_password, ClientAddr, Session, SignedIn};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::store::{StoreError, MAX_FRAME_BYTES};
use crate::{Hub, Revoked};

/// The most events one page (or one catch-up read of the stream) returns.
pub const MAX_PAGE: u32 = 1000;

/// The most bytes one snapshot or message page carries.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// A stream write that takes longer than this means the agent's device stopped reading: the
/// stream is dropped (the device resumes from its cursor when it reconnects).
const STREAM_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// What the stream buffers for a slow reader before it drops it.
const STREAM_WRITE_BUFFER: usize = 8 * 1024 * 1024;

/// A stream that has heard nothing from the device (not even a pong) for this long is dead.
const STREAM_SILENCE: Duration = Duration::from_secs(75);

/// How often an open stream re-checks its sign-in by itself (its token may have expired); changes
/// made in this process or noticed in another reach it at once through [`Revoked`].
const STREAM_RECHECK: Duration = Duration::from_secs(30);

/// What a stream reads from the agent: control frames and a close, never large.
const STREAM_READ_BUFFER: usize = 4 * 1024;

/// How often an idle stream is pinged so dead peers and idle-killing proxies are noticed.
const STREAM_PING: Duration = Duration::from_secs(20);

pub fn routes() -> Router<Hub> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/events", get(events))
        .route("/stream", get(stream))
        .route("/snapshot", get(snapshot))
        .route("/messages", get(messages))
        .route("/presence", post(presence))
        .route("/{kind}/{id}/{action}", post(command))
        .route("/conversations/{id}/templates", get(whatsapp_templates))
        .route("/media/{message_id}", get(media))
        .route("/uploads", post(crate::uploads::receive))
}

async fn me(SignedIn(agent): SignedIn) -> Json<baton_protocol::Agent> {
    Json(agent)
}

type Body = JsonBody<CommandFields>;

/// What a command asked for, as a hash: a `txn_id` sent again must come with the same request.
/// (The names are those the hub has always recorded, so a retry across an upgrade still matches.)
fn fingerprint(command: &AgentCommand, fields: &CommandFields) -> String {
    let name = match command {
        AgentCommand::Message { .. } => "send_message",
        AgentCommand::Note { .. } => "add_note",
        other => other.name(),
    };
    let fields = serde_json::to_string(&CommandFields {
        txn_id: None,
        ..fields.clone()
    })
    .unwrap_or_default();
    secret_hash(&format!("{name}\n{}\n{fields}", command.target()))
}

/// Every agent command but presence: `/handoffs/{id}/assign`, `/conversations/{id}/messages`, …
async fn command(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    Path((kind, id, action)): Path<(String, String, String)>,
    JsonBody(fields): Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let command = AgentCommand::from_wire(&kind, &id, &action, &fields).map_err(|e| match e {
        CommandError::Unknown(_) => ApiError::NotFound(format!("no route {kind}/…/{action}")),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    run(hub, agent, command, &fields).await
}

async fn presence(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    JsonBody(mut fields): Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let command = AgentCommand::from_wire("presence", "", "", &fields)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Presence is a plain toggle: a missing txn_id gets a fresh one.
    fields.txn_id = fields.txn_id.or_else(|| Some(crate::auth::random_secret()));
    run(hub, agent, command, &fields).await
}

/// The approved WhatsApp templates an agent may send in a conversation (its number's, from the
/// Graph API, kept for a few minutes).
async fn whatsapp_templates(
    State(hub): State<Hub>,
    SignedIn(_agent): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<Vec<baton_protocol::WhatsAppTemplate>>, ApiError> {
    let hub2 = hub.clone();
    let channel =
        tokio::task::spawn_blocking(move || channel_of_conversation(&*hub2.store().reader()?, &id))
            .await
            .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    let Some(settings) = channel.settings.whatsapp else {
        return Err(ApiError::BadRequest(
            "templates are WhatsApp's; this conversation is not on WhatsApp".into(),
        ));
    };
    // Kept per account: a new WhatsApp Business Account id lists its own templates at once.
    let cache_key = format!(
        "{}:{}",
        channel.id,
        settings.waba_id.as_deref().unwrap_or_default()
    );
    if let Some(cached) = hub.cached_templates(&cache_key) {
        return Ok(Json(cached));
    }
    let allow_private = hub.config().allow_private_urls;
    if !crate::egress::allowed(&settings.graph_url, allow_private) {
        return Err(ApiError::Conflict(
            "the number's Graph API URL is not an https URL on a public host; an admin must change it".into(),
        ));
    }
    let templates = crate::whatsapp::templates(hub.http()?, &settings).await?;
    hub.remember_templates(&cache_key, &templates);
    Ok(Json(templates))
}

/// The channel a conversation came through.
fn channel_of_conversation(
    read: &dyn crate::store::Read,
    conversation_id: &str,
) -> Result<crate::channel::ChannelRow, ApiError> {
    let conversation = read
        .conversation(conversation_id)?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {conversation_id:?}")))?;
    read.channel(&conversation.channel_id)?
        .ok_or_else(|| ApiError::NotFound("the conversation's channel is gone".into()))
}

/// A customer's media file (a WhatsApp image, voice message, document…), for signed-in agents.
async fn media(
    State(hub): State<Hub>,
    SignedIn(_agent): SignedIn,
    Path(message_id): Path<String>,
) -> Result<Response, ApiError> {
    let hub2 = hub.clone();
    let (message, channel) = tokio::task::spawn_blocking(move || {
        let read = hub2.store().reader()?;
        let message = read
            .message(&message_id)?
            .ok_or_else(|| ApiError::NotFound(format!("no message {message_id:?}")))?;
        let channel = channel_of_conversation(&*read, &message.conversation_id)?;
        Ok::<_, ApiError>((message, channel))
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    // An agent's own file is on the hub already.
    if let Some(upload) = message.payload.get("upload").and_then(|u| u.as_str()) {
        let bytes = crate::uploads::read(&hub, upload)
            .await
            .map_err(|e| match e {
                ApiError::Unavailable(_) => e,
                _ => ApiError::NotFound("the file is no longer on the hub".into()),
            })?;
        let mime_type = message
            .payload
            .get("mime_type")
            .and_then(|m| m.as_str())
            .unwrap_or("application/octet-stream")
            .to_string();
        return Ok(media_response(mime_type, bytes));
    }
    let Some(settings) = channel.settings.whatsapp else {
        return Err(ApiError::NotFound("this message has no media".into()));
    };
    let media = crate::whatsapp::media(&hub, &settings, &message).await?;
    Ok(media_response(media.mime_type, media.bytes))
}

fn media_response(mime_type: String, bytes: impl Into<bytes::Bytes>) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, mime_type),
            // Customers' files are shown as what they are, never sniffed into something else.
            (
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                "nosniff".to_string(),
            ),
        ],
        bytes.into(),
    )
        .into_response()
}

/// Runs a command off the async threads, once per `txn_id`.
async fn run(
    hub: Hub,
    agent: baton_protocol::Agent,
    command: AgentCommand,
    fields: &CommandFields,
) -> Result<Json<serde_json::Value>, ApiError> {
    let txn_id = fields
        .txn_id
        .clone()
        .ok_or_else(|| ApiError::BadRequest("the body needs \"txn_id\"".into()))?;
    let fingerprint = fingerprint(&command, fields);
    let response = tokio::task::spawn_blocking(move || {
        crate::handoffs::run(&hub, &agent, &txn_id, &fingerprint, &command)
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    Ok(Json(response))
}

/// Signs an agent in. Failures are throttled per account and per address (429 with
/// `Retry-After`); an unknown email costs the same time as a wrong password; hashing runs a few at
/// a time so a burst of sign-ins cannot exhaust the hub's memory.
async fn login(
    State(hub): State<Hub>,
    ClientAddr(addr): ClientAddr,
    headers: axum::http::HeaderMap,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let cookie = req.cookie;
    // A browser's sign-in only from the hub's own page, as JSON: another site's form could
    // otherwise sign the visitor's browser in to the other site's account.
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if cookie && !(json && crate::auth::from_own_pages(&headers)) {
        tracing::warn!("a cookie sign-in from outside the hub's pages was refused");
        return Err(ApiError::Forbidden(
            "a browser signs in from the hub's own page".into(),
        ));
    }
    let email = req.email.trim().to_string();
    if email.len() > crate::admin::MAX_EMAIL_LEN {
        return Err(ApiError::BadCredentials);
    }
    // Behind a proxy on this machine every request comes from loopback: counting those together
    // would let one guesser lock everyone out. The per-account count still holds.
    let addr = addr.filter(|a| !a.is_loopback());
    let throttled = |hub: &Hub| match hub.login_throttle().wait(&email, addr, hub.now()) {
        Some(retry_after) => {
            tracing::info!(addr = ?addr, "login refused: too many failures; waiting");
            Err(ApiError::Throttled { retry_after })
        }
        None => Ok(()),
    };
    // Hubs sharing a database count failures together: this one learns the others' first.
    let keys = crate::auth::LoginThrottle::keys(&email, addr);
    if hub.store().shared() {
        let (hub2, keys2) = (hub.clone(), keys.clone());
        match tokio::task::spawn_blocking(move || hub2.store().login_failures(&keys2)).await {
            Ok(Ok(shared)) => hub.login_throttle().merge(&shared),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "login: cannot read the shared failure counts")
            }
            Err(e) => tracing::warn!(error = %e, "login: failure count task failed"),
        }
    }
    throttled(&hub)?;
    let _turn = hub
        .hashing()
        .acquire()
        .await
        .map_err(|_| ApiError::Internal(StoreError::Poisoned))?;
    // Again: failures may have been counted while this one waited its turn.
    throttled(&hub)?;
    let hub2 = hub.clone();
    let email2 = email.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let row = hub2.store().reader()?.credentials(&email2)?;
        let hash = row
            .as_ref()
            .map_or(crate::auth::decoy_hash(), |(_, h)| h.as_str());
        let matches = verify_password(&req.password, hash);
        Ok::<_, ApiError>(row.filter(|_| matches).map(|(id, _)| id))
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    let shared = hub.store().shared();
    let Some(agent_id) = checked else {
        let now = hub.now();
        hub.login_throttle().failed(&email, addr, now);
        if shared {
            let hub2 = hub.clone();
            let counted = tokio::task::spawn_blocking(move || {
                hub2.store()
                    .record_login_failure(&keys, now, crate::auth::FORGET_AFTER)
            })
            .await;
            if !matches!(counted, Ok(Ok(()))) {
                tracing::warn!("login: the failure was counted on this hub only");
            }
        }
        tracing::info!(addr = ?addr, "login refused: wrong email or password");
        return Err(ApiError::BadCredentials);
    };
    hub.login_throttle().succeeded(&email);
    if shared {
        let (hub2, key) = (hub.clone(), crate::auth::LoginThrottle::account_key(&email));
        let _ = tokio::task::spawn_blocking(move || hub2.store().clear_login_failures(&key)).await;
    }
    let hub2 = hub.clone();
    let (token, agent) = tokio::task::spawn_blocking(move || {
        let token = crate::admin::issue_token(&hub2, &agent_id, None)?;
        let agent = hub2.store().reader()?.agent(&agent_id)?;
        Ok::<_, ApiError>((token, agent))
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    if let Some(agent) = &agent {
        tracing::info!(agent = %agent.id, cookie, "agent signed in");
    }
    if !cookie {
        return Ok(Json(LoginResponse { token, agent }).into_response());
    }
    // A browser's session: the page's scripts never see the token (HttpOnly), other sites' pages
    // never send it (SameSite=Strict), and it only travels over TLS (Secure; browsers make an
    // exception for loopback). It lasts as long as a token may.
    let max_age = hub.config().token_max_age.as_secs();
    let set = format!(
        "{}={token}; Path=/api/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict",
        crate::auth::SESSION_COOKIE
    );
    let mut response = Json(LoginResponse {
        token: String::new(),
        agent,
    })
    .into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&set) {
        response
            .headers_mut()
            .insert(axum::http::header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Ends the session of the token this request carries; its open streams close at once.
async fn logout(State(hub): State<Hub>, session: Session) -> Result<impl IntoResponse, ApiError> {
    let hash = session.token_hash.clone();
    let hub2 = hub.clone();
    tokio::task::spawn_blocking(move || hub2.store().write(|txn| txn.remove_token(&hash)))
        .await
        .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    hub.revoke(Revoked::Token(session.token_hash));
    tracing::info!(agent = %session.agent.id, "agent signed out");
    // A browser's cookie goes with its session (a bearer client has none to clear).
    let clear = format!(
        "{}=; Path=/api/; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
        crate::auth::SESSION_COOKIE
    );
    Ok((
        [(axum::http::header::SET_COOKIE, clear)],
        Json(serde_json::json!({})),
    ))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<u32>,
}

/// A JSON body made by the store from stored JSON as it is.
fn raw_json(json: String) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json,
    )
        .into_response()
}

/// A page of the log: `{"events":[…],"next":SEQ}`, at most [`MAX_PAGE`] events and about
/// [`MAX_FRAME_BYTES`].
async fn events(
    State(hub): State<Hub>,
    SignedIn(_agent): SignedIn,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    check_cursor(&hub, q.after).await?;
    let page = tokio::task::spawn_blocking(move || {
        hub.store().event_page(q.after, limit, MAX_FRAME_BYTES)
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    let next = page.last.unwrap_or(q.after);
    Ok(raw_json(format!(
        r#"{{"events":{},"next":{next}}}"#,
        page.json
    )))
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

#[derive(Debug, Deserialize)]
struct SnapshotQuery {
    /// The previous page's `next`.
    page: Option<String>,
}

/// One page of the inbox's current state; `next` names the following page.
async fn snapshot(
    State(hub): State<Hub>,
    SignedIn(_agent): SignedIn,
    query: Result<Query<SnapshotQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let page = tokio::task::spawn_blocking(move || {
        hub.store().snapshot_page(q.page.as_deref(), MAX_PAGE_BYTES)
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))?
    .map_err(|e| match e {
        StoreError::BadCursor => ApiError::BadRequest(e.to_string()),
        other => ApiError::Internal(other),
    })?;
    Ok(raw_json(page))
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
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(500).clamp(1, MAX_MESSAGE_PAGE);
    let page = tokio::task::spawn_blocking(move || {
        hub.store()
            .messages_before(q.conversation.as_deref(), q.before, limit, MAX_PAGE_BYTES)
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    Ok(raw_json(page))
}

async fn stream(
    State(hub): State<Hub>,
    session: Session,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_cursor(&hub, q.after).await?;
    let slot = hub.stream_slot().ok_or_else(|| {
        ApiError::Unavailable(
            "the hub has as many open streams as it serves; try again soon".into(),
        )
    })?;
    // Agents only send pongs and a close on this socket. A small read buffer matters: the
    // WebSocket layer zero-fills its whole read buffer on every poll for input.
    Ok(ws
        .read_buffer_size(STREAM_READ_BUFFER)
        .max_message_size(64 * 1024)
        .max_write_buffer_size(STREAM_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            let agent = session.agent.id.clone();
            tracing::debug!(%agent, after = q.after, "stream opened");
            match follow(hub, socket, q.after, session).await {
                Err(StreamEnd::SignedOut) => {
                    tracing::info!(%agent, "stream closed: the session ended")
                }
                Err(err) => tracing::debug!(%agent, error = %err, "stream closed"),
                Ok(()) => {}
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
    #[error("the device stopped reading or answering")]
    Stalled,
    #[error("the session ended")]
    SignedOut,
}

/// Sends the log after `cursor`, then live events. Subscribes *before* reading the backlog so no
/// event can fall between the two; batches the backlog already covered are skipped by seq. Each
/// frame is a JSON array of events (one commit, or one page of backlog, at most about
/// [`MAX_FRAME_BYTES`]); live batches that are already waiting are written together and flushed
/// once. The stream ends when its session does (sign-out, disabled agent, new password, expiry),
/// when the device stops reading, or when it has been silent (no pong) too long.
async fn follow(
    hub: Hub,
    mut socket: WebSocket,
    mut cursor: u64,
    session: Session,
) -> Result<(), StreamEnd> {
    use futures_util::SinkExt;
    use tokio::sync::broadcast::error::TryRecvError;

    let mut live = hub.frames();
    let mut revoked = hub.revocations();
    cursor = send_backlog(&hub, &mut socket, cursor).await?;
    send_text(
        &mut socket,
        serde_json::to_string(&StreamNotice::CaughtUp { seq: cursor }).map_err(StoreError::from)?,
    )
    .await?;
    let mut ping = tokio::time::interval(STREAM_PING);
    ping.tick().await;
    let mut recheck = tokio::time::interval(STREAM_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.tick().await;
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
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
                        // Buffered; the flush below is what waits on the device (and is timed).
                        socket.feed(WsMessage::Text(batch.text.clone())).await?;
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
                timed(socket.flush()).await?;
                // This peer is slow (the broadcast moved on) or something wrote outside this
                // process: read the log from the cursor instead of dropping anything.
                if behind {
                    cursor = send_backlog(&hub, &mut socket, cursor).await?;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Ok(WsMessage::Close(_))) => return Err(StreamEnd::Closed),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(_)) => heard = tokio::time::Instant::now(),
            },
            gone = revoked.recv() => match gone {
                Ok(Revoked::Agent(id)) if id == session.agent.id => return Err(StreamEnd::SignedOut),
                Ok(Revoked::Token(hash)) if hash == session.token_hash => return Err(StreamEnd::SignedOut),
                // Something changed elsewhere, or this stream missed notices: check now.
                Ok(Revoked::Recheck) | Err(RecvError::Lagged(_)) => {
                    cursor = recheck_session(&hub, &mut socket, &session, cursor).await?;
                }
                Ok(_) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
            _ = recheck.tick() => {
                cursor = recheck_session(&hub, &mut socket, &session, cursor).await?;
            }
            _ = ping.tick() => {
                if heard.elapsed() > STREAM_SILENCE {
                    return Err(StreamEnd::Stalled);
                }
                // An open stream is a sign of life: the agent's app is running.
                hub.touch(&session.agent.id);
                timed(socket.send(WsMessage::Ping(Default::default()))).await?
            }
        }
    }
}

/// Ends the stream if its session no longer holds; else sends any events written elsewhere that
/// it has not sent yet. Returns the new cursor.
async fn recheck_session(
    hub: &Hub,
    socket: &mut WebSocket,
    session: &Session,
    cursor: u64,
) -> Result<u64, StreamEnd> {
    let (hub2, hash) = (hub.clone(), session.token_hash.clone());
    let (still, last) = tokio::task::spawn_blocking(move || {
        Ok::<_, StoreError>((
            crate::auth::session_for_hash(&hub2, hash)?,
            hub2.store().last_seq()?,
        ))
    })
    .await
    .map_err(|_| StoreError::Poisoned)??;
    if still.is_none() {
        return Err(StreamEnd::SignedOut);
    }
    if last > cursor {
        return send_backlog(hub, socket, cursor).await;
    }
    Ok(cursor)
}

/// A write to the device that must finish within [`STREAM_SEND_TIMEOUT`].
async fn timed<F: std::future::Future<Output = Result<(), axum::Error>>>(
    write: F,
) -> Result<(), StreamEnd> {
    match tokio::time::timeout(STREAM_SEND_TIMEOUT, write).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(StreamEnd::Stalled),
    }
}

async fn send_backlog(
    hub: &Hub,
    socket: &mut WebSocket,
    mut cursor: u64,
) -> Result<u64, StreamEnd> {
    loop {
        let hub2 = hub.clone();
        let page = tokio::task::spawn_blocking(move || {
            hub2.store().event_page(cursor, MAX_PAGE, MAX_FRAME_BYTES)
        })
        .await
        .map_err(|_| StoreError::Poisoned)??;
        if let Some(last) = page.last {
            cursor = last;
            send_text(socket, page.json).await?;
        }
        if !page.more {
            return Ok(cursor);
        }
    }
}

async fn send_text(socket: &mut WebSocket, text: String) -> Result<(), StreamEnd> {
    timed(socket.send(WsMessage::Text(text.into()))).await
}
