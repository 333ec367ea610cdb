//! The tray icon (desktop): how many conversations wait unread, and a menu to open the window, go
//! online or offline, and quit — so an agent can keep Baton closed to the tray all day.
//!
//! The count is the waiting handoffs and mine that a customer wrote in since I last looked (the
//! cache's `HandoffCounts::unread`). It is recounted a moment after the inbox changes, never once
//! per event of a burst.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::Notify;

use crate::Desk;

const TRAY_ID: &str = "baton";
/// The count the tray shows, to say it again when the language changes.
static SHOWN: AtomicU32 = AtomicU32::new(0);
/// How long the count waits after a change for the rest of a burst.
const SETTLE: Duration = Duration::from_millis(300);

/// Asks the tray to recount; cheap to call for every update.
#[derive(Clone)]
pub struct TrayCount {
    changed: Arc<Notify>,
}

impl TrayCount {
    pub fn changed(&self) {
        self.changed.notify_one();
    }
}

/// Puts the icon in the tray and keeps its count; `None` where the desktop has no tray.
pub fn start(app: &AppHandle, desk: Desk) -> Option<TrayCount> {
    let built = build(app, desk.clone());
    if let Err(e) = built {
        tracing::warn!(error = %e, "no tray icon: the desktop has no tray");
        return None;
    }
    let changed = Arc::new(Notify::new());
    let count = TrayCount {
        changed: changed.clone(),
    };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut shown = None;
        loop {
            let unread = desk.cache().lock().ok().and_then(|c| {
                let me = desk.status().me.map(|me| me.id);
                c.counts(me.as_deref()).ok().map(|n| n.unread)
            });
            if let Some(unread) = unread.filter(|n| Some(*n) != shown) {
                show(&app, unread);
                shown = Some(unread);
            }
            changed.notified().await;
            tokio::time::sleep(SETTLE).await;
        }
    });
    count.changed();
    Some(count)
}

/// The tray's menu in the window's language (the ids, which the menu handler reads, never change).
fn menu(app: &AppHandle) -> tauri::Result<Menu<tauri::Wry>> {
    let words = crate::words::words();
    let open = MenuItem::with_id(app, "open", words.tray_open, true, None::<&str>)?;
    let online = MenuItem::with_id(app, "online", words.tray_online, true, None::<&str>)?;
    let offline = MenuItem::with_id(app, "offline", words.tray_offline, true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", words.tray_quit, true, None::<&str>)?;
    Menu::with_items(app, &[&open, &online, &offline, &quit])
}

/// Says the menu and the tooltip again in the window's (new) language.
pub fn relabel(app: &AppHandle) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    match menu(app) {
        Ok(menu) => {
            if let Err(e) = tray.set_menu(Some(menu)) {
                tracing::warn!(error = %e, "the tray menu could not be relabelled");
            }
        }
        Err(e) => tracing::warn!(error = %e, "the tray menu could not be relabelled"),
    }
    show(app, SHOWN.load(Ordering::Relaxed));
}

fn build(app: &AppHandle, desk: Desk) -> tauri::Result<()> {
    let menu = menu(app)?;
    let mut tray = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Baton")
        .menu(&menu)
        .on_menu_event(move |app, event| match event.id.as_ref() {
            "open" => {
                if let Some(window) = app.get_webview_window("main") {
                    let _ = window.unminimize();
                    let _ = window.show();
                    let _ = window.set_focus();
                }
            }
            "online" | "offline" => {
                let status = if event.id.as_ref() == "online" {
                    baton_protocol::Presence::Online
                } else {
                    baton_protocol::Presence::Offline
                };
                let (desk, app) = (desk.clone(), app.clone());
                tauri::async_runtime::spawn(async move {
                    let command = baton_protocol::AgentCommand::Presence { status };
                    let txn_id = format!("tray-{}", crate::desk::rand_suffix());
                    match desk.send(&command, &txn_id).await {
                        // The header shows presence from the team list.
                        Ok(_) => {
                            let _ = app
                                .emit(crate::desk::UPDATE_EVENT, &baton_core::Update::TeamChanged);
                        }
                        Err(e) => tracing::warn!(error = %e, "the tray could not change presence"),
                    }
                });
            }
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    Ok(())
}

/// What the tray says for `unread` conversations: a number beside the icon (where the desktop
/// shows labels) and in its tooltip.
pub fn label(unread: u32) -> Option<String> {
    (unread > 0).then(|| unread.to_string())
}

fn show(app: &AppHandle, unread: u32) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    tracing::info!(unread, "tray: unread count");
    SHOWN.store(unread, Ordering::Relaxed);
    let _ = tray.set_title(label(unread));
    let _ = tray.set_tooltip(Some((crate::words::words().tray_unread)(unread)));
}
