//! Native notifications: what an agent is told, and how a burst is told as one.
//!
//! Notices (a new handoff, one given to me, a customer writing in mine) are collected for a moment
//! and shown together: one notice as itself, several as one summary ("12 new handoffs · 3 messages
//! in yours"), so a burst, or the catch-up after the app was closed, never stacks a notification
//! per event. Clicking one opens its conversation in the window (`baton:open`).
//!
//! On Linux we talk to the notification server through notify-rust (the library the notification
//! plugin itself uses on desktop) because the plugin cannot tell us about a click; we wait for the
//! click on a blocking thread. Elsewhere the plugin shows it, and the OS brings the app forward
//! when its notification is tapped.

use std::time::Duration;

use baton_core::prefs::NotificationSettings;
use tauri::AppHandle;

use crate::words::Words;
use tokio::sync::mpsc;

/// The window's event asking it to open a conversation (a notification was clicked). Only the
/// Linux path learns of clicks; elsewhere the OS brings the app forward by itself.
#[cfg_attr(not(any(target_os = "linux", target_os = "freebsd")), allow(dead_code))]
pub const OPEN_EVENT: &str = "baton:open";

static WINDOW_FOCUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_window_focused(focused: bool) {
    WINDOW_FOCUSED.store(focused, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the agent has the window in front (then they see what happens without being told).
pub fn window_focused() -> bool {
    WINDOW_FOCUSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Something the agent should hear about.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A handoff anyone could take.
    NewHandoff {
        title: String,
        body: String,
        conversation: String,
    },
    /// A handoff taken for me: routed, or transferred to me.
    ForYou { title: String, conversation: String },
    /// A customer wrote in a conversation I hold.
    CustomerWrote {
        customer: String,
        text: String,
        conversation: String,
    },
    /// A customer has waited past the channel's target (and, `to_me`, it was escalated to me).
    StillWaiting {
        title: String,
        to_me: bool,
        conversation: String,
    },
}

impl Notice {
    fn conversation(&self) -> &str {
        match self {
            Self::NewHandoff { conversation, .. }
            | Self::ForYou { conversation, .. }
            | Self::CustomerWrote { conversation, .. }
            | Self::StillWaiting { conversation, .. } => conversation,
        }
    }
}

/// How long notices gather after the first before they are shown, and the longest a steady
/// stream is held back.
const GATHER: Duration = Duration::from_millis(800);
const HOLD_AT_MOST: Duration = Duration::from_secs(3);

impl Notice {
    /// Whether the agent's settings let this kind of notice through.
    fn wanted(&self, settings: &NotificationSettings) -> bool {
        match self {
            Self::NewHandoff { .. } => settings.new_handoffs,
            Self::ForYou { .. } => settings.assigned_to_me,
            Self::CustomerWrote { .. } => settings.customer_messages,
            Self::StillWaiting { .. } => settings.escalations,
        }
    }
}

/// The agent's notification settings, shared by the settings screen and the notices.
pub type SharedSettings = std::sync::Arc<std::sync::Mutex<NotificationSettings>>;

/// Takes notices and shows them, bursts as one.
#[derive(Clone)]
pub struct Notices {
    tx: mpsc::UnboundedSender<Notice>,
    settings: SharedSettings,
}

impl Notices {
    pub fn start(app: &AppHandle, settings: SharedSettings) -> Self {
        let shown = settings.clone();
        let (tx, mut rx) = mpsc::unbounded_channel::<Notice>();
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let until = tokio::time::Instant::now() + HOLD_AT_MOST;
                loop {
                    let wait =
                        GATHER.min(until.saturating_duration_since(tokio::time::Instant::now()));
                    match tokio::time::timeout(wait, rx.recv()).await {
                        Ok(Some(more)) => batch.push(more),
                        Ok(None) | Err(_) => break,
                    }
                }
                let (title, body, conversation) = told(&batch, crate::words::words());
                let sound = shown.lock().map(|s| s.sound).unwrap_or(true);
                tracing::info!(notices = batch.len(), %title, "notifications: showing");
                platform::show(&app, &title, &body, conversation, sound);
            }
        });
        Self { tx, settings }
    }

    /// Shows `notice` (with others arriving at the same moment) unless the agent turned its kind
    /// off or it is their quiet hours.
    pub fn tell(&self, notice: Notice) {
        let settings = match self.settings.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if !notice.wanted(&settings) || settings.quiet_at(chrono::Local::now().time()) {
            tracing::debug!(?notice, "notifications: not wanted now");
            return;
        }
        // The receiver only goes away when the app is closing.
        let _ = self.tx.send(notice);
    }
}

/// What a batch of notices says, in `words`: one as itself, several as a count of each kind. A
/// click opens the conversation when they all concern one.
fn told(batch: &[Notice], words: &Words) -> (String, String, Option<String>) {
    let one_conversation = batch
        .iter()
        .all(|n| n.conversation() == batch[0].conversation())
        .then(|| batch[0].conversation().to_string());
    if let [only] = batch {
        return match only {
            Notice::NewHandoff { title, body, .. } => {
                (title.clone(), body.clone(), one_conversation)
            }
            Notice::ForYou { title, .. } => (
                (words.assigned_to_you)(title),
                words.waiting_for_reply.into(),
                one_conversation,
            ),
            Notice::CustomerWrote { customer, text, .. } => {
                (customer.clone(), text.clone(), one_conversation)
            }
            Notice::StillWaiting { title, to_me, .. } => (
                if *to_me {
                    (words.escalated_to_you)(title)
                } else {
                    (words.still_waiting)(title)
                },
                words.waited_past_target.into(),
                one_conversation,
            ),
        };
    }
    let count = |f: fn(&Notice) -> bool| batch.iter().filter(|n| f(n)).count();
    let new = count(|n| matches!(n, Notice::NewHandoff { .. }));
    let mine = count(|n| matches!(n, Notice::ForYou { .. }));
    let wrote = count(|n| matches!(n, Notice::CustomerWrote { .. }));
    let late = count(|n| matches!(n, Notice::StillWaiting { .. }));
    if let (Some(_), Notice::CustomerWrote { customer, .. }) = (&one_conversation, &batch[0]) {
        if wrote == batch.len() {
            return (
                customer.clone(),
                (words.new_messages)(wrote),
                one_conversation,
            );
        }
    }
    let mut parts = Vec::new();
    for (n, said) in [
        (new, words.new_handoffs),
        (mine, words.assigned_count),
        (wrote, words.messages_in_yours),
        (late, words.waiting_too_long),
    ] {
        if n > 0 {
            parts.push(said(n));
        }
    }
    ("Baton".into(), parts.join(" · "), one_conversation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(title: &str, conversation: &str) -> Notice {
        Notice::NewHandoff {
            title: title.into(),
            body: "waiting".into(),
            conversation: conversation.into(),
        }
    }

    fn wrote(conversation: &str) -> Notice {
        Notice::CustomerWrote {
            customer: "Zoë".into(),
            text: "hello?".into(),
            conversation: conversation.into(),
        }
    }

    use crate::words::{EN, FR};

    #[test]
    fn one_notice_is_shown_as_itself_and_opens_its_conversation() {
        assert_eq!(
            told(&[new("Refund", "c1")], &EN),
            ("Refund".into(), "waiting".into(), Some("c1".into()))
        );
    }

    #[test]
    fn a_burst_is_one_summary_and_messages_in_one_conversation_collapse() {
        let mut burst: Vec<Notice> = (0..12).map(|i| new("x", &format!("c{i}"))).collect();
        burst.extend([wrote("c20"), wrote("c21"), wrote("c21")]);
        assert_eq!(
            told(&burst, &EN),
            (
                "Baton".into(),
                "12 new handoffs · 3 messages in yours".into(),
                None
            )
        );
        assert_eq!(
            told(&[wrote("c1"), wrote("c1"), wrote("c1")], &EN),
            ("Zoë".into(), "3 new messages".into(), Some("c1".into()))
        );
    }

    #[test]
    fn an_agent_whose_window_speaks_french_is_told_in_french() {
        let mut burst: Vec<Notice> = (0..12).map(|i| new("x", &format!("c{i}"))).collect();
        burst.push(wrote("c20"));
        assert_eq!(
            told(&burst, &FR).1,
            "12 nouveaux transferts · 1 message dans les vôtres"
        );
        let given = Notice::ForYou {
            title: "Remboursement".into(),
            conversation: "c1".into(),
        };
        assert_eq!(
            told(&[given], &FR),
            (
                "Attribué à vous\u{a0}: Remboursement".into(),
                "Le client attend votre réponse".into(),
                Some("c1".into())
            )
        );
    }
}

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
mod platform {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tauri::AppHandle;

    /// Each notification waiting for its click holds a thread until it closes. A burst of handoffs
    /// must not take every thread the app's engine needs: past this many, notifications are shown
    /// without waiting for a click.
    const MAX_WAITING: usize = 8;
    static WAITING: AtomicUsize = AtomicUsize::new(0);

    pub fn show(
        app: &AppHandle,
        title: &str,
        body: &str,
        conversation: Option<String>,
        sound: bool,
    ) {
        let app = app.clone();
        let (title, body) = (title.to_string(), body.to_string());
        let mut notification = notify_rust::Notification::new();
        notification
            .appname("Baton")
            .summary(&title)
            .body(&body)
            .action("default", "Open");
        // The freedesktop sound theme's name for a new message; silent when the agent said so.
        if sound {
            notification.sound_name("message-new-instant");
        } else {
            notification.hint(notify_rust::Hint::SuppressSound(true));
        }
        let notification = notification.finalize();
        if WAITING.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
            WAITING.fetch_sub(1, Ordering::SeqCst);
            if let Err(e) = notification.show() {
                tracing::warn!(error = %e, "no notification server took the notification");
            }
            return;
        }
        std::thread::spawn(move || {
            match notification.show() {
                Ok(handle) => handle.wait_for_action(|action| {
                    if action == "default" {
                        focus(&app, conversation.as_deref());
                    }
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "no notification server took the notification")
                }
            }
            WAITING.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn focus(app: &AppHandle, conversation: Option<&str>) {
        use tauri::{Emitter, Manager};
        tracing::info!(
            conversation = conversation.unwrap_or(""),
            "notification clicked: bringing the window forward"
        );
        if let Some(window) = app.get_webview_window("main") {
            let _ = window.unminimize();
            let _ = window.show();
            let _ = window.set_focus();
        }
        if let Some(id) = conversation {
            let _ = app.emit(super::OPEN_EVENT, id);
        }
    }
}

#[cfg(all(desktop, not(any(target_os = "linux", target_os = "freebsd"))))]
mod platform {
    use tauri::AppHandle;
    use tauri_plugin_notification::NotificationExt;

    pub fn show(
        app: &AppHandle,
        title: &str,
        body: &str,
        _conversation: Option<String>,
        sound: bool,
    ) {
        let mut builder = app.notification().builder().title(title).body(body);
        if sound {
            builder = builder.sound("default");
        }
        if let Err(e) = builder.show() {
            tracing::warn!(error = %e, "notification could not be shown");
        }
    }
}

/// Phones: the same notices through the notifications plugin, carrying the conversation so a tap
/// opens it (the UI listens for the plugin's taps; see `ui/src/lib/backend.ts`).
#[cfg(mobile)]
mod platform {
    use tauri::AppHandle;
    use tauri_plugin_notifications::NotificationsExt;

    pub fn show(
        app: &AppHandle,
        title: &str,
        body: &str,
        conversation: Option<String>,
        sound: bool,
    ) {
        let mut builder = app.notifications().builder().title(title).body(body);
        if let Some(conversation) = conversation {
            builder = builder.extra("conversation_id", conversation);
        }
        if sound {
            builder = builder.sound("default");
        }
        tauri::async_runtime::spawn(async move {
            if let Err(e) = builder.show().await {
                tracing::warn!(error = %e, "notification could not be shown");
            }
        });
    }
}
