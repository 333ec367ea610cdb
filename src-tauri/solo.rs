//! Solo mode: with no hub configured, the app runs `baton-hub` in-process on loopback so one person
//! has a working desk with nothing else installed.
//!
//! The first start creates the local agent (an admin, signed in by the app itself — no password to
//! type) and a Botpress channel, and keeps the channel's endpoint path in `solo.json` beside the
//! hub's data so the window can show the URL to paste into Botpress every time, not just once.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use baton_hub::{admin, Hub};
use baton_protocol::Role;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8717";
const LOCAL_AGENT_EMAIL: &str = "me@baton.local";

pub struct SoloHub {
    pub hub_url: String,
    pub endpoint_url: String,
    pub token: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct SoloConfig {
    endpoint_path: String,
}

pub async fn start(
    hub_dir: &Path,
    listen: &str,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<SoloHub> {
    let listen: SocketAddr = listen
        .parse()
        .with_context(|| format!("BATON_SOLO_LISTEN={listen:?} is not host:port"))?;
    let hub = Hub::open(hub_dir).with_context(|| format!("opening {}", hub_dir.display()))?;
    let agent = match admin::find_agent(&hub, LOCAL_AGENT_EMAIL)? {
        Some(agent) => agent,
        None => {
            let name = std::env::var("USER")
                .ok()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "Me".into());
            // Nobody types this password: the app signs the local agent in directly.
            let password = baton_hub::auth::random_secret();
            admin::add_agent(&hub, LOCAL_AGENT_EMAIL, &name, Role::Admin, &password)?
        }
    };
    let config_path = hub_dir.join("solo.json");
    let config = match std::fs::read(&config_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<SoloConfig>(&b).ok())
    {
        Some(config) => config,
        None => {
            let channel = admin::add_botpress_channel(&hub, "Botpress", None)?;
            let config = SoloConfig {
                endpoint_path: channel.endpoint_path,
            };
            write_private(&config_path, &serde_json::to_vec_pretty(&config)?)?;
            config
        }
    };
    let token = admin::issue_token(&hub, &agent.id)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen} (is another Baton running? set BATON_SOLO_LISTEN)")
        })?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        if let Err(e) = baton_hub::serve(listener, hub, shutdown).await {
            tracing::error!(error = %e, "solo hub stopped");
        }
    });
    let hub_url = format!("http://{addr}");
    Ok(SoloHub {
        endpoint_url: format!("{hub_url}{}", config.endpoint_path),
        hub_url,
        token,
    })
}

/// Writes a file only the current user can read: it holds the channel's secret path.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
