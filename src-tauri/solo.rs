//! Solo mode: with no hub configured, the app runs `baton-hub` in-process on loopback so one person
//! has a working desk with nothing else installed.
//!
//! The first start creates the local agent (an admin, signed in by the app itself — no password to
//! type) and a Botpress channel, and keeps the channel's endpoint path in `solo.json` beside the
//! hub's data so the window can show the URL to paste into Botpress every time, not just once.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use baton_hub::{admin, Hub, HubConfig};
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
    /// The local agent's sign-in, reused at every start (a new one replaces it only when it
    /// expired), so tokens never pile up in the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// The threads the in-process hub runs on: its own, so nothing the window or the sync engine does
/// can starve it of a thread while Botpress waits for an answer.
const HUB_THREADS: usize = 2;

/// Starts the hub on its own runtime and threads, isolated from the app's; returns once it is
/// listening. It stops when `stop` turns true.
pub async fn start(
    hub_dir: &Path,
    listen: &str,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<SoloHub> {
    let listen: SocketAddr = listen
        .parse()
        .with_context(|| format!("BATON_SOLO_LISTEN={listen:?} is not host:port"))?;
    let (ready, started) = tokio::sync::oneshot::channel();
    let hub_dir = hub_dir.to_path_buf();
    std::thread::Builder::new()
        .name("baton-solo-hub".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(HUB_THREADS)
                .thread_name("baton-solo-hub")
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready.send(Err(
                        anyhow::Error::from(e).context("starting the hub's runtime")
                    ));
                    return;
                }
            };
            runtime.block_on(run(hub_dir, listen, stop, ready));
        })
        .context("starting the hub's thread")?;
    started
        .await
        .context("the built-in hub stopped while starting")?
}

async fn run(
    hub_dir: std::path::PathBuf,
    listen: SocketAddr,
    mut stop: watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<anyhow::Result<SoloHub>>,
) {
    let prepared = prepare(&hub_dir, listen).await;
    let (hub, listener, solo) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(solo));
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    if let Err(e) = baton_hub::serve(listener, hub, shutdown).await {
        tracing::error!(error = %e, "solo hub stopped");
    }
}

async fn prepare(
    hub_dir: &Path,
    listen: SocketAddr,
) -> anyhow::Result<(Hub, tokio::net::TcpListener, SoloHub)> {
    // A laptop's desk: the Botpress webhook may be a tunnel or a local test server.
    let config = HubConfig {
        allow_private_urls: true,
        ..HubConfig::default()
    };
    let hub = Hub::open_with(hub_dir, baton_hub::SystemClock, config)
        .with_context(|| format!("opening {}", hub_dir.display()))?;
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
    let mut config = match std::fs::read(&config_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<SoloConfig>(&b).ok())
    {
        Some(config) => config,
        None => {
            let channel = admin::add_botpress_channel(&hub, "Botpress", None)?;
            SoloConfig {
                endpoint_path: channel.endpoint_path,
                token: None,
            }
        }
    };
    let still_valid = match &config.token {
        Some(token) => baton_hub::auth::agent_for_token(&hub, token)?
            .is_some_and(|signed_in| signed_in.id == agent.id),
        None => false,
    };
    if !still_valid {
        config.token = Some(admin::issue_token(
            &hub,
            &agent.id,
            config.token.as_deref(),
        )?);
    }
    write_private(&config_path, &serde_json::to_vec_pretty(&config)?)?;
    let token = config.token.clone().unwrap_or_default();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen} (is another Baton running? set BATON_SOLO_LISTEN)")
        })?;
    let addr = listener.local_addr()?;
    let hub_url = format!("http://{addr}");
    let solo = SoloHub {
        endpoint_url: format!("{hub_url}{}", config.endpoint_path),
        hub_url,
        token,
    };
    Ok((hub, listener, solo))
}

/// Writes a file only the current user can read: it holds the channel's secret path and the
/// local agent's sign-in.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)?;
    baton_protocol::private_fs::private_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_restarted_solo_desk_signs_in_with_the_same_token_and_mints_no_other() {
        let dir = tempfile::tempdir().expect("dir");
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let (hub, listener, first) = prepare(dir.path(), any_port).await.expect("first start");
        drop((hub, listener));
        let (hub, _listener, second) = prepare(dir.path(), any_port).await.expect("second start");
        assert_eq!(first.token, second.token);
        assert_eq!(
            first.endpoint_url.rsplit('/').next(),
            second.endpoint_url.rsplit('/').next()
        );
        let signed_in = baton_hub::auth::agent_for_token(&hub, &second.token).expect("lookup");
        assert_eq!(
            signed_in.map(|a| a.email).as_deref(),
            Some(LOCAL_AGENT_EMAIL)
        );
    }
}
