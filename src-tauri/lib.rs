//! The Baton app shell: a Tauri window around the inbox UI (`ui/`), over `baton-core`.
//!
//! At start the app either follows a hub named by `BATON_HUB_URL`, signing in with the token kept
//! in the OS keychain, or — with no hub configured — runs one in-process on loopback (solo mode,
//! see [`solo`]). Core updates become UI events and, for new handoffs, native notifications.
//! Commands are thin adapters over the core (see [`commands`]); no logic lives in them.

mod commands;
mod desk;
mod notify;
mod solo;

use tauri::Manager;

pub use desk::Desk;

#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,baton_app=info,baton_core=info,baton_hub=info".into()),
        )
        .try_init();

    let result = tauri::Builder::default()
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(tauri::generate_handler![
            commands::desk_status,
            commands::list_handoffs,
            commands::open_conversation,
            commands::sign_in,
        ])
        .setup(|app| {
            let handle = app.handle().clone();
            let data_dir = match std::env::var_os("BATON_DATA_DIR") {
                Some(dir) => std::path::PathBuf::from(dir),
                None => app.path().app_data_dir()?,
            };
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
