//! The commands the UI calls. Each is a thin adapter over `baton-core`; errors reach the UI as
//! `{code, message}` so it can branch on the code and show the message.

use baton_core::{ClientError, CustomerView, HandoffSummary};
use baton_protocol::{Agent, Contact, HandoffStatus, Message, Template};
use serde::Serialize;
use tauri::{AppHandle, State};

use crate::desk::{Desk, DeskStatus};

#[derive(Debug, Serialize)]
pub struct CommandError {
    pub code: &'static str,
    pub message: String,
}

impl CommandError {
    fn new(code: &'static str, message: impl ToString) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ConversationView {
    pub customer: Option<Contact>,
    pub messages: Vec<Message>,
}

#[tauri::command]
pub fn desk_status(desk: State<'_, Desk>) -> DeskStatus {
    desk.status()
}

impl From<ClientError> for CommandError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { code, message, .. } => Self {
                code: known_code(&code),
                message,
            },
            ClientError::Network(_) => Self::new("offline", e),
            ClientError::Unauthorized => Self::new("unauthorized", e),
            other => Self::new("hub", other),
        }
    }
}

/// Stable codes the UI branches on; anything else the hub says is passed as `hub`.
fn known_code(code: &str) -> &'static str {
    match code {
        "conflict" => "conflict",
        "capacity" => "capacity",
        "closed" => "closed",
        "forbidden" => "forbidden",
        "not_found" => "not_found",
        "bad_request" => "bad_request",
        _ => "hub",
    }
}

fn with_cache<T>(
    desk: &Desk,
    f: impl FnOnce(&baton_core::Cache) -> Result<T, baton_core::CacheError>,
) -> Result<T, CommandError> {
    let cache = desk.cache();
    let cache = cache
        .lock()
        .map_err(|_| CommandError::new("internal", "the local cache is unavailable"))?;
    f(&cache).map_err(|e| CommandError::new("cache", e))
}

/// Handoffs in a view: `pending` (default), `mine` (assigned to me), or a status.
#[tauri::command]
pub fn list_handoffs(
    desk: State<'_, Desk>,
    status: Option<String>,
) -> Result<Vec<HandoffSummary>, CommandError> {
    match status.as_deref() {
        Some("mine") => {
            let me = desk
                .status()
                .me
                .ok_or_else(|| CommandError::new("not_signed_in", "not signed in yet"))?;
            with_cache(&desk, |c| c.assigned_to(&me.id))
        }
        None => with_cache(&desk, |c| c.handoffs(&[HandoffStatus::Pending])),
        Some(s) => {
            let status = HandoffStatus::parse(s)
                .ok_or_else(|| CommandError::new("bad_request", format!("unknown status {s:?}")))?;
            with_cache(&desk, |c| c.handoffs(&[status]))
        }
    }
}

#[tauri::command]
pub fn customer(
    desk: State<'_, Desk>,
    conversation_id: String,
) -> Result<CustomerView, CommandError> {
    with_cache(&desk, |c| c.customer_view(&conversation_id))
}

#[derive(Debug, Serialize)]
pub struct Team {
    pub agents: Vec<Agent>,
    pub tags: Vec<String>,
    pub templates: Vec<Template>,
}

#[tauri::command]
pub fn team(desk: State<'_, Desk>) -> Result<Team, CommandError> {
    with_cache(&desk, |c| {
        Ok(Team {
            agents: c.agents()?,
            tags: c.tags()?,
            templates: c.templates()?,
        })
    })
}

/// Runs an agent command on the hub. `txn_id` comes from the UI, so a retry of the same click is
/// applied once.
async fn command(desk: &Desk, path: String, body: serde_json::Value) -> Result<(), CommandError> {
    let client = desk.client().map_err(|e| CommandError::new("offline", e))?;
    client.command(&path, body).await?;
    Ok(())
}

#[tauri::command]
pub async fn assign(
    desk: State<'_, Desk>,
    handoff_id: String,
    txn_id: String,
) -> Result<(), CommandError> {
    command(
        &desk,
        format!("/handoffs/{handoff_id}/assign"),
        serde_json::json!({ "txn_id": txn_id }),
    )
    .await
}

#[tauri::command]
pub async fn release(
    desk: State<'_, Desk>,
    handoff_id: String,
    txn_id: String,
) -> Result<(), CommandError> {
    command(
        &desk,
        format!("/handoffs/{handoff_id}/release"),
        serde_json::json!({ "txn_id": txn_id }),
    )
    .await
}

#[tauri::command]
pub async fn transfer(
    desk: State<'_, Desk>,
    handoff_id: String,
    to: String,
    txn_id: String,
) -> Result<(), CommandError> {
    let body = serde_json::json!({ "txn_id": txn_id, "to": to });
    command(&desk, format!("/handoffs/{handoff_id}/transfer"), body).await
}

#[tauri::command]
pub async fn resolve(
    desk: State<'_, Desk>,
    handoff_id: String,
    label: Option<String>,
    txn_id: String,
) -> Result<(), CommandError> {
    let body = serde_json::json!({ "txn_id": txn_id, "label": label });
    command(&desk, format!("/handoffs/{handoff_id}/resolve"), body).await
}

#[tauri::command]
pub async fn cancel(
    desk: State<'_, Desk>,
    handoff_id: String,
    txn_id: String,
) -> Result<(), CommandError> {
    command(
        &desk,
        format!("/handoffs/{handoff_id}/cancel"),
        serde_json::json!({ "txn_id": txn_id }),
    )
    .await
}

#[tauri::command]
pub async fn set_tags(
    desk: State<'_, Desk>,
    handoff_id: String,
    tags: Vec<String>,
    txn_id: String,
) -> Result<(), CommandError> {
    let body = serde_json::json!({ "txn_id": txn_id, "tags": tags });
    command(&desk, format!("/handoffs/{handoff_id}/tags"), body).await
}

#[tauri::command]
pub async fn send_message(
    desk: State<'_, Desk>,
    conversation_id: String,
    text: String,
    txn_id: String,
) -> Result<(), CommandError> {
    let body = serde_json::json!({ "txn_id": txn_id, "text": text });
    command(
        &desk,
        format!("/conversations/{conversation_id}/messages"),
        body,
    )
    .await
}

/// Sends a Botpress message of another kind than text (an image or file by URL, …); the hub
/// checks the payload and that the channel's bot relays that kind.
#[tauri::command]
pub async fn send_attachment(
    desk: State<'_, Desk>,
    conversation_id: String,
    kind: String,
    payload: serde_json::Value,
    txn_id: String,
) -> Result<(), CommandError> {
    let body = serde_json::json!({ "txn_id": txn_id, "type": kind, "payload": payload });
    command(
        &desk,
        format!("/conversations/{conversation_id}/messages"),
        body,
    )
    .await
}

#[tauri::command]
pub async fn add_note(
    desk: State<'_, Desk>,
    conversation_id: String,
    text: String,
    txn_id: String,
) -> Result<(), CommandError> {
    let body = serde_json::json!({ "txn_id": txn_id, "text": text });
    command(
        &desk,
        format!("/conversations/{conversation_id}/notes"),
        body,
    )
    .await
}

#[tauri::command]
pub async fn resend(
    desk: State<'_, Desk>,
    message_id: String,
    txn_id: String,
) -> Result<(), CommandError> {
    command(
        &desk,
        format!("/messages/{message_id}/resend"),
        serde_json::json!({ "txn_id": txn_id }),
    )
    .await
}

#[tauri::command]
pub async fn set_presence(
    desk: State<'_, Desk>,
    status: String,
    txn_id: String,
) -> Result<(), CommandError> {
    let body = serde_json::json!({ "txn_id": txn_id, "status": status });
    command(&desk, "/presence".to_string(), body).await
}

#[tauri::command]
pub fn open_conversation(
    desk: State<'_, Desk>,
    conversation_id: String,
) -> Result<ConversationView, CommandError> {
    let cache = desk.cache();
    let cache = cache
        .lock()
        .map_err(|_| CommandError::new("internal", "the local cache is unavailable"))?;
    Ok(ConversationView {
        customer: cache
            .customer(&conversation_id)
            .map_err(|e| CommandError::new("cache", e))?,
        messages: cache
            .messages(&conversation_id)
            .map_err(|e| CommandError::new("cache", e))?,
    })
}

#[tauri::command]
pub async fn sign_in(
    app: AppHandle,
    desk: State<'_, Desk>,
    email: String,
    password: String,
) -> Result<(), CommandError> {
    desk.sign_in(app, &email, &password)
        .await
        .map_err(|e| CommandError::new("sign_in", e))
}

/// Solo mode: where the desk's Botpress channel sends replies (the integration's webhook URL).
#[tauri::command]
pub async fn set_botpress_webhook(
    app: AppHandle,
    desk: State<'_, Desk>,
    url: String,
) -> Result<(), CommandError> {
    desk.set_botpress_webhook(app, &url)
        .await
        .map_err(CommandError::from)
}
