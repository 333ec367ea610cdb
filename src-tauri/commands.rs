//! The commands the UI calls. Each is a thin adapter over `baton-core`; errors reach the UI as
//! `{code, message}` so it can branch on the code and show the message.

use baton_core::HandoffSummary;
use baton_protocol::{Contact, HandoffStatus, Message};
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

/// Handoffs with the given status (`pending` when none is given), newest first.
#[tauri::command]
pub fn list_handoffs(
    desk: State<'_, Desk>,
    status: Option<String>,
) -> Result<Vec<HandoffSummary>, CommandError> {
    let status = match status.as_deref() {
        None => HandoffStatus::Pending,
        Some(s) => HandoffStatus::parse(s)
            .ok_or_else(|| CommandError::new("bad_request", format!("unknown status {s:?}")))?,
    };
    let cache = desk.cache();
    let cache = cache
        .lock()
        .map_err(|_| CommandError::new("internal", "the local cache is unavailable"))?;
    cache
        .handoffs(&[status])
        .map_err(|e| CommandError::new("cache", e))
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
