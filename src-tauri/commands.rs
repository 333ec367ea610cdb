//! The commands the UI calls. Each is a thin adapter over `baton-core`; errors reach the UI as
//! `{code, message}` so it can branch on the code and show the message.

use baton_core::search::SearchQuery;
use baton_core::{
    ClientError, CustomerView, HandoffCounts, HandoffFilter, HandoffPage, HandoffSummary,
    HandoffView, OutboxItem, SearchHit,
};
use baton_protocol::{Agent, AgentCommand, Contact, HandoffStatus, Message, Template};
use serde::Serialize;
use tauri::{AppHandle, State};

use baton_core::engine::Sent;

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
    /// Which conversation this is: the window shows a composer only for the one it asked for.
    pub conversation_id: String,
    pub customer: Option<Contact>,
    pub messages: Vec<Message>,
    /// Messages and notes written on this device that the hub has not applied yet (queued, or
    /// refused with the reason), oldest first.
    pub pending: Vec<OutboxItem>,
    /// What the agent was typing here, kept across restarts.
    pub draft: Option<String>,
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
        "window_closed" => "window_closed",
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
    status: Option<HandoffView>,
) -> Result<Vec<HandoffSummary>, CommandError> {
    let view = status.unwrap_or(HandoffView::Pending);
    let me = desk.status().me.map(|me| me.id);
    if view == HandoffView::Mine && me.is_none() {
        return Err(CommandError::new("not_signed_in", "not signed in yet"));
    }
    with_cache(&desk, |c| c.view(view, me.as_deref()))
}

/// One window of a list (the inbox renders only the rows in sight, and asks for those).
#[tauri::command]
pub fn handoff_page(
    desk: State<'_, Desk>,
    status: Option<HandoffView>,
    filter: Option<HandoffFilter>,
    offset: u32,
    limit: u32,
) -> Result<HandoffPage, CommandError> {
    let view = status.unwrap_or(HandoffView::Pending);
    let me = desk.status().me.map(|me| me.id);
    let filter = filter.unwrap_or_default();
    // A window is what a screen shows; nobody scrolls 10,000 rows at once.
    let limit = limit.min(500);
    with_cache(&desk, |c| {
        c.view_page(view, me.as_deref(), &filter, offset, limit)
    })
}

/// How many handoffs each tab holds.
#[tauri::command]
pub fn handoff_counts(desk: State<'_, Desk>) -> Result<HandoffCounts, CommandError> {
    let me = desk.status().me.map(|me| me.id);
    with_cache(&desk, |c| c.counts(me.as_deref()))
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

/// Every agent action goes through the outbox with the UI's `txn_id`: delivered at once when the
/// hub is reachable (a refusal comes back as the error, naming who is in the way), else queued
/// and shown as pending until the hub is back. The hub applies each txn_id once.
#[tauri::command]
pub async fn run_command(
    desk: State<'_, Desk>,
    command: AgentCommand,
    txn_id: String,
) -> Result<(), CommandError> {
    let sent = desk
        .send(&command, &txn_id)
        .await
        .map_err(|e| CommandError::new("outbox", e))?;
    match sent {
        Sent::Delivered | Sent::Queued => Ok(()),
        // The agent sees the refusal now (a note's text is still in its field); only a reply
        // stays, failed, in the conversation to retry, edit or discard.
        Sent::Refused(refusal) => Err(CommandError {
            code: known_code(&refusal.code),
            message: refusal.message,
        }),
    }
}

/// A customer's media file, ready to show: its type and a `data:` URL (kept on the device, so it
/// shows offline too).
#[derive(Debug, Serialize)]
pub struct MediaFile {
    pub mime_type: String,
    pub data_url: String,
}

#[tauri::command]
pub async fn media(desk: State<'_, Desk>, message_id: String) -> Result<MediaFile, CommandError> {
    use base64::Engine as _;
    let (mime_type, bytes) = desk
        .engine()
        .media(&message_id)
        .await
        .map_err(CommandError::from)?;
    // Only the types the webview shows inline keep theirs; anything else is a download.
    let inline = ["image/", "audio/", "video/"]
        .iter()
        .any(|p| mime_type.starts_with(p));
    let shown = if inline {
        mime_type.as_str()
    } else {
        "application/octet-stream"
    };
    let data_url = format!(
        "data:{shown};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    );
    Ok(MediaFile {
        mime_type,
        data_url,
    })
}

/// Uploads a file the agent picked to the hub, before a message sends it. The file comes as the
/// raw request body (no JSON array of numbers for a 16 MB file), its name and type in headers.
#[tauri::command]
pub async fn upload_file(
    desk: State<'_, Desk>,
    request: tauri::ipc::Request<'_>,
) -> Result<baton_protocol::Upload, CommandError> {
    let tauri::ipc::InvokeBody::Raw(bytes) = request.body() else {
        return Err(CommandError::new("bad_request", "the file did not arrive"));
    };
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    // The name is percent-encoded by the UI (headers are ASCII).
    let filename = percent_encoding::percent_decode_str(&header("x-filename"))
        .decode_utf8_lossy()
        .into_owned();
    let mime_type = match header("x-mime-type") {
        m if m.is_empty() => "application/octet-stream".to_string(),
        m => m,
    };
    let client = desk
        .client()
        .map_err(|e| CommandError::new("not_signed_in", e))?;
    client
        .upload(&filename, &mime_type, bytes.clone())
        .await
        .map_err(CommandError::from)
}

/// A channel that cannot send, and why (for admins: a refused WhatsApp token, say).
#[derive(Debug, Serialize)]
pub struct ChannelProblem {
    pub channel: String,
    pub reason: String,
}

/// Channels an admin must fix; empty for agents (they cannot fix them) and when all is well.
#[tauri::command]
pub async fn channel_problems(desk: State<'_, Desk>) -> Result<Vec<ChannelProblem>, CommandError> {
    if desk.status().me.map(|m| m.role) != Some(baton_protocol::Role::Admin) {
        return Ok(Vec::new());
    }
    let client = desk
        .client()
        .map_err(|e| CommandError::new("not_signed_in", e))?;
    let channels = client
        .call(reqwest::Method::GET, "/admin/channels", None)
        .await
        .map_err(CommandError::from)?;
    Ok(channels
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(ChannelProblem {
                channel: c["name"].as_str()?.to_string(),
                reason: c["broken"].as_str()?.to_string(),
            })
        })
        .collect())
}

/// A WhatsApp conversation's approved templates (what may be sent once its 24-hour window closed).
#[tauri::command]
pub async fn whatsapp_templates(
    desk: State<'_, Desk>,
    conversation_id: String,
) -> Result<Vec<baton_protocol::WhatsAppTemplate>, CommandError> {
    let client = desk
        .client()
        .map_err(|e| CommandError::new("not_signed_in", e))?;
    client
        .whatsapp_templates(&conversation_id)
        .await
        .map_err(CommandError::from)
}

#[tauri::command]
pub fn open_conversation(
    desk: State<'_, Desk>,
    conversation_id: String,
    read: Option<bool>,
) -> Result<ConversationView, CommandError> {
    let engine = desk.engine();
    let id = conversation_id.clone();
    let me = desk.status().me.map(|me| me.id);
    let shown = (*desk).clone();
    // A conversation reloaded because it changed while the agent looks elsewhere is not read.
    if read.unwrap_or(true) {
        tauri::async_runtime::spawn(async move {
            engine.mark_read(&id, me.as_deref()).await;
            shown.tray_changed();
        });
    }
    let cache = desk.cache();
    let cache = cache
        .lock()
        .map_err(|_| CommandError::new("internal", "the local cache is unavailable"))?;
    Ok(ConversationView {
        conversation_id: conversation_id.clone(),
        customer: cache
            .customer(&conversation_id)
            .map_err(|e| CommandError::new("cache", e))?,
        messages: cache
            .messages(&conversation_id)
            .map_err(|e| CommandError::new("cache", e))?,
        pending: cache
            .outbox_for(&conversation_id)
            .map_err(|e| CommandError::new("cache", e))?,
        draft: cache
            .draft(&conversation_id)
            .map_err(|e| CommandError::new("cache", e))?,
    })
}

#[tauri::command]
pub async fn sign_in(
    app: AppHandle,
    desk: State<'_, Desk>,
    email: String,
    password: String,
    hub_url: Option<String>,
) -> Result<(), CommandError> {
    desk.sign_in(app, &email, &password, hub_url.as_deref())
        .await
        .map_err(|e| CommandError::new("sign_in", e))
}

/// Leaves the team's hub: the app starts again at the sign-in form.
#[tauri::command]
pub async fn sign_out(app: AppHandle, desk: State<'_, Desk>) -> Result<(), CommandError> {
    desk.sign_out(app)
        .await
        .map_err(|e| CommandError::new("sign_in", e))
}

/// Switches to a team hub (or back to a solo desk, `null`); the app restarts on it.
#[tauri::command]
pub fn use_hub(
    app: AppHandle,
    desk: State<'_, Desk>,
    hub_url: Option<String>,
) -> Result<(), CommandError> {
    desk.use_hub(app, hub_url.as_deref())
        .map_err(|e| CommandError::new("bad_request", e))
}

/// Solo mode: a test handoff through the desk's own Botpress endpoint.
#[tauri::command]
pub async fn send_test_handoff(desk: State<'_, Desk>) -> Result<String, CommandError> {
    desk.send_test_handoff()
        .await
        .map_err(|e| CommandError::new("hub", e))
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

/// The outbox: everything waiting for the hub, and what it refused.
#[tauri::command]
pub fn outbox_list(desk: State<'_, Desk>) -> Result<Vec<OutboxItem>, CommandError> {
    let cache = desk.cache();
    let cache = cache
        .lock()
        .map_err(|_| CommandError::new("internal", "the local cache is unavailable"))?;
    cache.outbox().map_err(|e| CommandError::new("cache", e))
}

/// Sends a refused or waiting item again now.
#[tauri::command]
pub fn outbox_retry(desk: State<'_, Desk>, id: i64) -> Result<(), CommandError> {
    outbox_change(&desk, |cache| cache.retry(id).map(|_| ()))
}

/// Changes a waiting or refused message's text; it goes as a new command.
#[tauri::command]
pub fn outbox_edit(
    desk: State<'_, Desk>,
    id: i64,
    text: String,
    txn_id: String,
) -> Result<(), CommandError> {
    if text.trim().is_empty() {
        return Err(CommandError::new("bad_request", "the message is empty"));
    }
    outbox_change(&desk, |cache| {
        cache.edit(id, text.trim(), &txn_id).map(|_| ())
    })
}

/// Drops an item: it will not be sent.
#[tauri::command]
pub fn outbox_discard(desk: State<'_, Desk>, id: i64) -> Result<(), CommandError> {
    outbox_change(&desk, |cache| cache.discard(id).map(|_| ()))
}

fn outbox_change(
    desk: &Desk,
    f: impl FnOnce(&baton_core::Cache) -> Result<(), baton_core::OutboxError>,
) -> Result<(), CommandError> {
    {
        let cache = desk.cache();
        let cache = cache
            .lock()
            .map_err(|_| CommandError::new("internal", "the local cache is unavailable"))?;
        f(&cache).map_err(|e| match e {
            baton_core::OutboxError::NoSuchItem(_) => CommandError::new("not_found", e),
            other => CommandError::new("outbox", other),
        })?;
    }
    desk.deliver_soon();
    desk.refresh_status();
    Ok(())
}

/// What a search may be narrowed by; dates are `YYYY-MM-DD`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SearchFilters {
    status: Option<String>,
    channel: Option<String>,
    tag: Option<String>,
    agent: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// Searches the local cache (works offline): messages, notes, customer names, handoff titles.
#[tauri::command]
pub fn search(
    desk: State<'_, Desk>,
    text: String,
    filters: Option<SearchFilters>,
) -> Result<Vec<SearchHit>, CommandError> {
    let SearchFilters {
        status,
        channel,
        tag,
        agent,
        since,
        until,
    } = filters.unwrap_or_default();
    let date = |s: Option<String>| -> Result<Option<chrono::DateTime<chrono::Utc>>, CommandError> {
        s.filter(|s| !s.trim().is_empty())
            .map(|s| day_start(&s))
            .transpose()
    };
    let query = SearchQuery {
        text,
        channel: channel.filter(|c| !c.is_empty()),
        status: status.as_deref().and_then(HandoffStatus::parse),
        tag: tag.filter(|t| !t.is_empty()),
        agent: agent.filter(|a| !a.is_empty()),
        since: date(since)?,
        until: date(until)?,
        limit: 50,
    };
    with_cache(&desk, |cache| cache.search(&query))
}

/// Keeps what the agent is typing in a conversation.
#[tauri::command]
pub fn save_draft(
    desk: State<'_, Desk>,
    conversation_id: String,
    text: String,
) -> Result<(), CommandError> {
    with_cache(&desk, |cache| {
        cache.save_draft(&conversation_id, &text, chrono::Utc::now())
    })
}

/// A link from a message as the browser may open it: only web and mail links. A customer's
/// message can carry `file:`, `javascript:` or an app's own scheme, which must never be opened.
pub fn openable_link(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|_| format!("{text:?} is not a link"))?;
    match url.scheme() {
        "http" | "https" | "mailto" => Ok(url.to_string()),
        other => Err(format!("{other}: links are not opened from messages")),
    }
}

/// Opens a link from a message in the system browser.
#[tauri::command]
pub fn open_link(app: AppHandle, url: String) -> Result<(), CommandError> {
    use tauri_plugin_opener::OpenerExt;
    let url = openable_link(&url).map_err(|e| CommandError::new("refused", e))?;
    app.opener()
        .open_url(url, None::<&str>)
        .map_err(|e| CommandError::new("open", e))
}

#[cfg(test)]
mod link_tests {
    use super::openable_link;

    #[test]
    fn only_web_and_mail_links_open() {
        assert_eq!(
            openable_link("https://shop.example/order/4711").as_deref(),
            Ok("https://shop.example/order/4711")
        );
        assert!(openable_link("mailto:help@example.com").is_ok());
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "baton://x",
            "not a link",
        ] {
            assert!(openable_link(bad).is_err(), "{bad}");
        }
    }
}

/// What this device notifies the agent of.
#[tauri::command]
pub fn notification_settings(desk: State<'_, Desk>) -> baton_core::prefs::NotificationSettings {
    desk.notification_settings()
}

#[tauri::command]
pub fn set_notification_settings(
    desk: State<'_, Desk>,
    settings: baton_core::prefs::NotificationSettings,
) -> Result<(), CommandError> {
    desk.set_notification_settings(settings)
        .map_err(|e| CommandError::new("bad_request", e))
}

/// Midnight (UTC) of a date the window's date fields give (`2026-11-01`).
fn day_start(text: &str) -> Result<chrono::DateTime<chrono::Utc>, CommandError> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            CommandError::new(
                "bad_request",
                format!("{text:?} is not a date like 2026-11-01"),
            )
        })
}

/// A report's period from the window's date fields: `since` from its midnight (UTC), `until`
/// through its end; at most 400 days.
fn report_period(
    since: &str,
    until: &str,
) -> Result<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>), CommandError> {
    let (since, until) = (
        day_start(since)?,
        day_start(until)? + chrono::TimeDelta::days(1),
    );
    if until <= since {
        return Err(CommandError::new(
            "bad_request",
            "the period ends before it starts",
        ));
    }
    if until - since > chrono::TimeDelta::days(400) {
        return Err(CommandError::new(
            "bad_request",
            "a report covers at most 400 days; ask for several",
        ));
    }
    Ok((since, until))
}

/// Admins' figures for a period, from this device's copy.
#[tauri::command]
pub fn report(
    desk: State<'_, Desk>,
    since: String,
    until: String,
    by: baton_protocol::report::ReportGroup,
) -> Result<Vec<baton_protocol::report::ReportRow>, CommandError> {
    let (since, until) = report_period(&since, &until)?;
    with_cache(&desk, |c| c.report(since, until, by))
}

/// The same report as CSV in the Downloads folder (the data folder if there is none); answers
/// the file's path.
#[tauri::command]
pub fn export_report(
    app: AppHandle,
    desk: State<'_, Desk>,
    since: String,
    until: String,
    by: baton_protocol::report::ReportGroup,
) -> Result<String, CommandError> {
    use tauri::Manager;
    let (from, to) = report_period(&since, &until)?;
    let rows = with_cache(&desk, |c| c.report(from, to, by))?;
    let text = baton_protocol::report::csv(&rows, by)
        .map_err(|e| CommandError::new("internal", e.to_string()))?;
    let dir = app
        .path()
        .download_dir()
        .or_else(|_| app.path().app_data_dir())
        .map_err(|e| CommandError::new("internal", e.to_string()))?;
    let path = dir.join(format!(
        "baton-report-{}-{}-by-{}.csv",
        since.trim(),
        until.trim(),
        by.as_str()
    ));
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, text))
        .map_err(|e| {
            CommandError::new("internal", format!("cannot write {}: {e}", path.display()))
        })?;
    Ok(path.display().to_string())
}

/// The window's language (`en`, `fr`, or a locale): notifications, the tray and the status lines
/// the app writes itself follow it from now on.
#[tauri::command]
pub fn set_language(app: AppHandle, language: String) {
    let language = crate::words::Language::for_locale(&language);
    tracing::info!(?language, "the window's language");
    crate::words::set(language);
    #[cfg(desktop)]
    crate::tray::relabel(&app);
    #[cfg(mobile)]
    let _ = app;
}
