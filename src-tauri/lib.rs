//! The Baton app shell: a Tauri window around the inbox UI (`ui/`), over `baton-core`.
//!
//! At start the app either follows a hub named by `BATON_HUB_URL`, signing in with the token kept
//! in the OS keychain, or — with no hub configured — runs one in-process on loopback (solo mode,
//! see [`solo`]). Core updates become UI events and, for new handoffs, native notifications.
//! Commands are thin adapters over the core (see [`commands`]); no logic lives in them.

pub mod allocator;
mod commands;
mod desk;
mod notify;
#[cfg_attr(not(mobile), allow(dead_code))]
mod push;
#[cfg(desktop)]
mod solo;
#[cfg(desktop)]
mod tray;
#[cfg(target_os = "linux")]
pub mod window_gl;
mod words;

use tauri::Manager;

pub use desk::Desk;

/// Logs go to stderr and to `DATA_DIR/baton.log`, the file an agent can attach to a support request.
fn init_logging(data_dir: &std::path::Path) {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    use tracing_subscriber::EnvFilter;
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,tao=warn,wry=warn"))
    };
    // The log names customers and conversations: readable by this user only, like the cache.
    let log_path = data_dir.join("baton.log");
    let file = baton_protocol::private_fs::private_dir(data_dir, "baton.log")
        .and_then(|()| baton_protocol::private_fs::private_touch(&log_path))
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
        });
    let result = match file {
        Ok(file) => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(false)
            .with_writer(std::io::stderr.and(std::sync::Mutex::new(file)))
            .try_init(),
        Err(e) => {
            eprintln!(
                "cannot open {}: {e}; logging to stderr only",
                data_dir.join("baton.log").display()
            );
            tracing_subscriber::fmt()
                .with_env_filter(filter())
                .try_init()
        }
    };
    // Already initialised (tests build several apps in one process): keep the first.
    let _ = result;
}

#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    let builder = tauri::Builder::default();
    #[cfg(desktop)]
    let builder = builder.plugin(tauri_plugin_notification::init());
    #[cfg(mobile)]
    let builder = builder.plugin(tauri_plugin_notifications::init());
    let result = builder
        .plugin(tauri_plugin_opener::init())
        .invoke_handler(tauri::generate_handler![
            commands::desk_status,
            commands::list_handoffs,
            commands::handoff_page,
            commands::handoff_counts,
            commands::open_conversation,
            commands::sign_in,
            commands::customer,
            commands::team,
            commands::run_command,
            commands::whatsapp_templates,
            commands::media,
            commands::upload_file,
            commands::channel_problems,
            commands::outbox_list,
            commands::outbox_retry,
            commands::outbox_edit,
            commands::outbox_discard,
            commands::search,
            commands::save_draft,
            commands::set_botpress_webhook,
            commands::open_link,
            commands::notification_settings,
            commands::sign_out,
            commands::use_hub,
            commands::send_test_handoff,
            commands::report,
            commands::export_report,
            commands::set_notification_settings,
            commands::set_language,
        ])
        // Whether the window is in front, kept from its own events: asking the window from the
        // update loop would wait on the main thread, which may be waiting on that loop.
        .on_window_event(|_, event| {
            if let tauri::WindowEvent::Focused(focused) = event {
                notify::set_window_focused(*focused);
            }
        })
        .setup(|app| {
            let handle = app.handle().clone();
            let data_dir = match std::env::var_os("BATON_DATA_DIR") {
                Some(dir) => std::path::PathBuf::from(dir),
                None => app.path().app_data_dir()?,
            };
            init_logging(&data_dir);
            tracing::info!(data_dir = %data_dir.display(), "Baton starting");
            #[cfg(target_os = "linux")]
            window_gl::log_choice();
            let desk = Desk::open(&data_dir)?;
            app.manage(desk.clone());
            tauri::async_runtime::spawn(async move { desk.start(handle).await });
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(err) = result {
        tracing::error!(error = %err, "Baton could not start");
        eprintln!("Baton could not start: {err}");
        std::process::exit(1);
    }
}
