//! `baton-hub`: serve a hub, or administer its data directory.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use std::time::Duration;

use baton_hub::{admin, Hub, HubConfig};
use baton_protocol::Role;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "baton-hub",
    version,
    about = "Baton's hub: the team's shared inbox for bot handoffs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Botpress HITL API and the agent API.
    Serve {
        /// The hub's data directory (created if missing).
        #[arg(long, env = "BATON_HUB_DATA")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8717")]
        listen: SocketAddr,
        /// Seconds of silence after which an online agent goes offline and their handoffs return
        /// to the queue.
        #[arg(long, default_value_t = 600.0)]
        agent_session_timeout: f64,
        /// Seconds a call to Botpress may take before its outcome counts as uncertain.
        #[arg(long, default_value_t = 10.0)]
        delivery_timeout: f64,
    },
    /// Manage the team's tag list.
    Tags {
        #[command(subcommand)]
        command: TagsCommand,
    },
    /// Manage agents.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Manage Botpress channels.
    Botpress {
        #[command(subcommand)]
        command: BotpressCommand,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Add an agent; the password is read from standard input.
    Add {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "agent", value_parser = ["admin", "agent"])]
        role: String,
    },
}

#[derive(Subcommand)]
enum TagsCommand {
    /// Replace the tag list agents choose from.
    Set {
        #[arg(long)]
        data: PathBuf,
        /// The tags, e.g. `refund billing vip`.
        tags: Vec<String>,
    },
}

#[derive(Subcommand)]
enum BotpressCommand {
    /// Add a Botpress channel; prints the endpoint path for `endpointBaseUrl` on its last line.
    Add {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        name: String,
        /// The integration's webhook URL, `https://webhook.botpress.cloud/<webhookId>`.
        #[arg(long)]
        webhook_url: String,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,baton_hub=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            data,
            listen,
            agent_session_timeout,
            delivery_timeout,
        } => {
            let config = HubConfig {
                agent_session_timeout: seconds(agent_session_timeout, "--agent-session-timeout")?,
                delivery_timeout: seconds(delivery_timeout, "--delivery-timeout")?,
            };
            serve(data, listen, config)
        }
        Command::Tags {
            command: TagsCommand::Set { data, tags },
        } => {
            let hub = Hub::open(&data).with_context(|| format!("opening {}", data.display()))?;
            let tags = admin::set_tags(&hub, &tags)?;
            println!(
                "tags: {}",
                if tags.is_empty() {
                    "(none)".to_string()
                } else {
                    tags.join(", ")
                }
            );
            Ok(())
        }
        Command::Agent {
            command:
                AgentCommand::Add {
                    data,
                    email,
                    name,
                    role,
                },
        } => {
            let hub = Hub::open(&data).with_context(|| format!("opening {}", data.display()))?;
            let password = read_password()?;
            let role = Role::parse(&role).unwrap_or(Role::Agent);
            let agent = admin::add_agent(&hub, &email, &name, role, &password)?;
            println!(
                "added {} {} <{}> as {}",
                agent.id,
                agent.name,
                agent.email,
                agent.role.as_str()
            );
            Ok(())
        }
        Command::Botpress {
            command:
                BotpressCommand::Add {
                    data,
                    name,
                    webhook_url,
                },
        } => {
            let hub = Hub::open(&data).with_context(|| format!("opening {}", data.display()))?;
            let channel = admin::add_botpress_channel(&hub, &name, Some(&webhook_url))?;
            println!("added Botpress channel {} ({name})", channel.id);
            println!("Set the integration's endpointBaseUrl to this hub's public URL followed by:");
            println!("{}", channel.endpoint_path);
            Ok(())
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    let password = input.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!(
            "no password on standard input (pipe it in: echo -n 'secret' | baton-hub agent add …)"
        );
    }
    Ok(password)
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} needs a positive number of seconds, not {value}"))
}

fn serve(data: PathBuf, listen: SocketAddr, config: HubConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let hub = Hub::open_with(&data, baton_hub::SystemClock, config)
            .with_context(|| format!("opening {}", data.display()))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        };
        baton_hub::serve(listener, hub, shutdown)
            .await
            .context("serving")
    })
}
