//! Native notifications for new handoffs.
//!
//! On Linux we talk to the notification server through notify-rust (the library the notification
//! plugin itself uses on desktop) because the plugin cannot tell us about a click; we wait for the
//! click on a blocking thread and focus the window. Elsewhere the plugin shows it, and the OS
//! brings the app forward when its notification is tapped.

use tauri::AppHandle;

pub fn new_handoff(app: &AppHandle, title: &str, body: &str) {
    platform::show(app, title, body);
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

    pub fn show(app: &AppHandle, title: &str, body: &str) {
        let app = app.clone();
        let (title, body) = (title.to_string(), body.to_string());
        let notification = notify_rust::Notification::new()
            .appname("Baton")
            .summary(&title)
            .body(&body)
            .action("default", "Open")
            .finalize();
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
                        focus(&app);
                    }
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "no notification server took the notification")
                }
            }
            WAITING.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn focus(app: &AppHandle) {
        use tauri::Manager;
        tracing::info!("notification clicked: bringing the window forward");
        if let Some(window) = app.get_webview_window("main") {
            let _ = window.unminimize();
            let _ = window.show();
            let _ = window.set_focus();
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
mod platform {
    use tauri::AppHandle;
    use tauri_plugin_notification::NotificationExt;

    pub fn show(app: &AppHandle, title: &str, body: &str) {
        if let Err(e) = app.notification().builder().title(title).body(body).show() {
            tracing::warn!(error = %e, "notification could not be shown");
        }
    }
}
