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
        #[command(flatten)]
        data: Place,
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
        /// Seconds a sign-in may go unused before it stops working (default: 14 days).
        #[arg(long, default_value_t = 14.0 * 24.0 * 3600.0)]
        token_idle_timeout: f64,
        /// Seconds after which a sign-in stops working, used or not (default: 90 days).
        #[arg(long, default_value_t = 90.0 * 24.0 * 3600.0)]
        token_max_age: f64,
        /// The most connections served at once; more wait their turn.
        #[arg(long, default_value_t = 1000)]
        max_connections: usize,
    },
    /// Manage the team's tag list.
    Tags {
        #[command(subcommand)]
        command: TagsCommand,
    },
    /// Manage canned replies (agents type `:name` in the composer).
    Template {
        #[command(subcommand)]
        command: TemplateCommand,
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
    /// Manage WhatsApp numbers (Meta's WhatsApp Cloud API).
    Whatsapp {
        #[command(subcommand)]
        command: WhatsappCommand,
    },
    /// Manage bots that hand off through the bot API (`/bot/v1`).
    Bot {
        #[command(subcommand)]
        command: BotCommand,
    },
    /// How the team did: handoffs, and the median and 90th percentile of the time to the first
    /// reply and to resolution, per day, channel, agent or label.
    Report {
        #[command(flatten)]
        data: Place,
        /// From when: a date (`2026-11-01`, UTC), a time (RFC 3339), or days ago (`7d`).
        #[arg(long)]
        since: String,
        /// Until when (not included); now by default. Same forms as `--since`.
        #[arg(long)]
        until: Option<String>,
        /// One row per `day`, `channel`, `agent` or `label`.
        #[arg(long, default_value = "day")]
        by: String,
        /// `csv`, or `table` for reading in a terminal.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Copy a SQLite hub (its data directory) into an empty PostgreSQL database, log and seqs
    /// included, so several hubs can serve the team from it; devices keep syncing from their
    /// cursors. Stop the hub first.
    Migrate {
        /// The SQLite hub's data directory.
        #[arg(long)]
        from_data: PathBuf,
        /// The PostgreSQL database (postgres://user:password@host/db), empty; BATON_DATABASE_URL
        /// keeps its password off the command line.
        #[arg(long, env = "BATON_DATABASE_URL")]
        to: String,
    },
    /// Manage the event log clients sync from.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Set up push to phones (FCM, APNs) and browsers (Web Push).
    Push {
        #[command(subcommand)]
        command: PushCommand,
    },
}

#[derive(Subcommand)]
enum PushCommand {
    /// Android phones, through Firebase Cloud Messaging: the service account key file the
    /// Firebase console gives (Project settings → Service accounts → Generate new private key).
    Fcm {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        service_account: PathBuf,
        /// Another FCM address (a test server); Google's by default.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// iPhones, through APNs with a token-based key (Apple Developer → Keys → a .p8 key with
    /// Apple Push Notifications service).
    Apns {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        team_id: String,
        #[arg(long)]
        key_id: String,
        /// The .p8 file.
        #[arg(long)]
        key: PathBuf,
        /// The iOS app's bundle id.
        #[arg(long)]
        topic: String,
        /// Apple's sandbox (development builds of the app).
        #[arg(long)]
        sandbox: bool,
        /// Another APNs address (a test server).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Browsers, through Web Push: the hub makes its VAPID key pair (once; again with --new-key).
    Web {
        #[command(flatten)]
        data: Place,
        /// How push services may reach whoever runs this hub: mailto:… or https://….
        #[arg(long)]
        subject: String,
        #[arg(long)]
        new_key: bool,
    },
    /// What is set up (never the private keys).
    Show {
        #[command(flatten)]
        data: Place,
    },
    /// Stop pushing through one provider: fcm, apns or web.
    Off {
        #[command(flatten)]
        data: Place,
        provider: String,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Keep only the newest KEEP events. The inbox itself is untouched; devices whose cursor is
    /// older get "410 gone" and take a fresh snapshot.
    Trim {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        keep: u64,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Add an agent; the password is read from standard input.
    Add {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "agent", value_parser = ["admin", "agent"])]
        role: String,
    },
    /// List the agents.
    List {
        #[command(flatten)]
        data: Place,
    },
    /// Change an agent (by id or email).
    Set {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        agent: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = ["admin", "agent"])]
        role: Option<String>,
        /// How many handoffs the agent may hold at once.
        #[arg(long)]
        capacity: Option<u32>,
        /// The tags this agent is the one for, comma-separated (from the team's tags; "" clears):
        /// routing gives them waiting handoffs carrying one first.
        #[arg(long)]
        skills: Option<String>,
        /// Sign the agent out everywhere and stop them signing in; their handoffs return to the queue.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Set a new password (read from standard input); signs the agent out everywhere.
    ResetPassword {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        agent: String,
    },
}

#[derive(Subcommand)]
enum TemplateCommand {
    /// Add a canned reply, or replace the text of the one with that name.
    Add {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        name: String,
        #[arg(long)]
        text: String,
    },
    Remove {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        name: String,
    },
    List {
        #[command(flatten)]
        data: Place,
    },
}

#[derive(Subcommand)]
enum TagsCommand {
    /// Replace the tag list agents choose from.
    Set {
        #[command(flatten)]
        data: Place,
        /// The tags, e.g. `refund billing vip`.
        tags: Vec<String>,
    },
    List {
        #[command(flatten)]
        data: Place,
    },
}

#[derive(Subcommand)]
enum BotCommand {
    /// Connect a bot; prints `token: <TOKEN>` and `signing-secret: <SECRET>` on its last two lines
    /// (shown only now).
    Add {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        name: String,
        /// Where the hub POSTs the bot's events (handoff.assigned, agent.message, handoff.closed).
        #[arg(long)]
        events_url: String,
    },
    /// List the bots (their secrets are never shown).
    List {
        #[command(flatten)]
        data: Place,
    },
    /// Change a bot (by channel id or name).
    Set {
        #[command(flatten)]
        data: Place,
        channel: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        events_url: Option<String>,
        /// Seconds a drafted reply (`POST /bot/v1/conversations/{id}/drafts`) waits for an
        /// agent's decision; 0 waits for ever (the default).
        #[arg(long)]
        draft_timeout: Option<u64>,
        /// What an undecided draft becomes when its time is up: `reject` (default) or `send`.
        #[arg(long)]
        on_draft_timeout: Option<String>,
        #[command(flatten)]
        shared: SharedChannelArgs,
    },
    /// Stop taking a bot's calls; its conversations stay in the history.
    Remove {
        #[command(flatten)]
        data: Place,
        channel: String,
    },
    /// New credentials for a bot (the old token stops working); printed like `add`.
    RotateSecret {
        #[command(flatten)]
        data: Place,
        channel: String,
    },
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // Parsed once from the command line; its size does not matter.
enum WhatsappCommand {
    /// Connect a WhatsApp number. Reads the app secret and the access token from standard input,
    /// one per line; prints the webhook path to give Meta on its last line.
    Add {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        name: String,
        /// The number's id at Meta (WhatsApp → API setup → Phone number ID).
        #[arg(long)]
        phone_number_id: String,
        /// The verify token you will type into Meta's webhook settings.
        #[arg(long)]
        verify_token: String,
        /// Where the Graph API is (default Meta's; tests and staging point at a fake).
        #[arg(long)]
        graph_url: Option<String>,
    },
    /// List the WhatsApp numbers (secrets are never shown).
    List {
        #[command(flatten)]
        data: Place,
    },
    /// Change a number (by channel id or name).
    Set {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        channel: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        verify_token: Option<String>,
        #[arg(long)]
        graph_url: Option<String>,
        /// Read a new app secret and access token from standard input, one per line (a new token
        /// also clears a refused-token mark, and waiting messages go out).
        #[arg(long)]
        secrets_stdin: bool,
        /// Only messages containing one of these phrases open a handoff (repeat the flag); an
        /// empty phrase clears the list, and then every conversation does.
        #[arg(long = "handoff-phrase", value_name = "PHRASE")]
        handoff_phrases: Vec<String>,
        /// Sent to the customer when their chat is queued (empty: nothing).
        #[arg(long)]
        auto_reply: Option<String>,
        /// The most messages a second to send from this number (default 80, Meta's limit for a
        /// new number; up to 1000 once Meta has upgraded it).
        #[arg(long, value_name = "N")]
        max_per_second: Option<u32>,
        /// The WhatsApp Business Account id, so agents can pick the number's approved templates.
        #[arg(long)]
        waba_id: Option<String>,
        /// Put a bot (a channel from `baton-hub bot add`, by id or name) in front of the number:
        /// it answers customers until it hands them over. An empty value takes it away.
        #[arg(long)]
        bot: Option<String>,
        #[command(flatten)]
        shared: SharedChannelArgs,
    },
    /// Stop taking a number's webhooks; its conversations stay in the history.
    Remove {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        channel: String,
    },
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // Parsed once from the command line; its size does not matter.
enum BotpressCommand {
    /// Add a Botpress channel; prints the endpoint path for `endpointBaseUrl` on its last line.
    Add {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        name: String,
        /// The integration's webhook URL, `https://webhook.botpress.cloud/<webhookId>`.
        #[arg(long)]
        webhook_url: String,
    },
    /// List the channels (secrets are never shown).
    List {
        #[command(flatten)]
        data: Place,
    },
    /// Give a channel a new endpoint secret (printed once, on the last line); the old endpoint
    /// stops working. Paste the new one into the integration's `endpointBaseUrl`.
    RotateSecret {
        #[command(flatten)]
        data: Place,
        /// The channel's id or name.
        #[arg(long)]
        channel: String,
    },
    /// Change a channel (by id or name).
    Set {
        #[command(flatten)]
        data: Place,
        #[arg(long)]
        channel: String,
        #[arg(long)]
        webhook_url: Option<String>,
        /// The Botpress bot id, for matching closeRemoteTicket through the Botpress API.
        #[arg(long)]
        bot_id: Option<String>,
        /// Read a Botpress personal access token from standard input (never printed back).
        #[arg(long)]
        bot_token_stdin: bool,
        /// What the customer is told when an agent takes over: `LANG=TEXT`, `{{agentName}}` filled in.
        /// Repeat for each language; an empty TEXT removes that language.
        #[arg(long = "assign-message", value_name = "LANG=TEXT")]
        assign_message: Vec<String>,
        /// What the customer is told on a transfer: `LANG=TEXT`.
        #[arg(long = "transfer-message", value_name = "LANG=TEXT")]
        transfer_message: Vec<String>,
        /// The notice that means the customer ended the session (empty disables the match).
        #[arg(long)]
        session_ended_notice: Option<String>,
        /// The message types agents may send, comma-separated (`text,image,file`): what the bot's
        /// HITL plugin relays. Text is always one of them.
        #[arg(long, value_delimiter = ',')]
        message_kinds: Option<Vec<String>>,
        /// Seconds a handoff may wait for an agent before it is handed back to the bot; 0 waits
        /// as long as it takes.
        #[arg(long, value_name = "SECS")]
        pending_timeout: Option<u64>,
        #[command(flatten)]
        shared: SharedChannelArgs,
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
            token_idle_timeout,
            token_max_age,
            max_connections,
        } => {
            let config = HubConfig {
                agent_session_timeout: seconds(agent_session_timeout, "--agent-session-timeout")?,
                delivery_timeout: seconds(delivery_timeout, "--delivery-timeout")?,
                token_idle_timeout: seconds(token_idle_timeout, "--token-idle-timeout")?,
                token_max_age: seconds(token_max_age, "--token-max-age")?,
                max_connections,
                ..HubConfig::default()
            };
            serve(data, listen, config)
        }
        Command::Agent {
            command: AgentCommand::List { data },
        } => {
            let hub = open(&data)?;
            for a in admin::list_agents(&hub)? {
                let state = if a.disabled {
                    "disabled"
                } else {
                    a.presence.as_str()
                };
                println!(
                    "{}\t{}\t{}\t{}\tcapacity {}\t{}",
                    a.id,
                    a.email,
                    a.name,
                    a.role.as_str(),
                    a.capacity,
                    state
                );
            }
            Ok(())
        }
        Command::Agent {
            command:
                AgentCommand::Set {
                    data,
                    agent,
                    name,
                    role,
                    capacity,
                    skills,
                    disable,
                    enable,
                },
        } => {
            let hub = open(&data)?;
            let update = admin::AgentUpdate {
                name,
                role: role.as_deref().and_then(Role::parse),
                capacity,
                skills: skills.map(|s| s.split(',').map(str::to_string).collect()),
                disabled: if disable {
                    Some(true)
                } else if enable {
                    Some(false)
                } else {
                    None
                },
                password: None,
            };
            let a = admin::update_agent(&hub, &agent, update)?;
            println!(
                "{} <{}>: {}, capacity {}{}{}",
                a.name,
                a.email,
                a.role.as_str(),
                a.capacity,
                if a.skills.is_empty() {
                    String::new()
                } else {
                    format!(", skills {}", a.skills.join(", "))
                },
                if a.disabled { ", disabled" } else { "" }
            );
            Ok(())
        }
        Command::Agent {
            command: AgentCommand::ResetPassword { data, agent },
        } => {
            let hub = open(&data)?;
            let password = read_password()?;
            let a = admin::update_agent(
                &hub,
                &agent,
                admin::AgentUpdate {
                    password: Some(password),
                    ..Default::default()
                },
            )?;
            println!(
                "new password set for {} <{}>; they are signed out everywhere",
                a.name, a.email
            );
            Ok(())
        }
        Command::Botpress {
            command: BotpressCommand::List { data },
        } => {
            let hub = open(&data)?;
            for c in admin::list_channels(&hub)? {
                println!(
                    "{}\t{}\twebhook {}\tbot id {}\ttoken {}\tkinds {}\tpending timeout {}",
                    c.id,
                    c.name,
                    c.webhook_url.as_deref().unwrap_or("(none)"),
                    c.bot_id.as_deref().unwrap_or("(none)"),
                    if c.bot_token_set { "set" } else { "not set" },
                    c.message_kinds.join(","),
                    c.pending_timeout_secs
                        .map(|s| format!("{s} s"))
                        .unwrap_or_else(|| "none".into())
                );
            }
            Ok(())
        }
        Command::Botpress {
            command:
                BotpressCommand::Set {
                    data,
                    channel,
                    webhook_url,
                    bot_id,
                    bot_token_stdin,
                    assign_message,
                    transfer_message,
                    session_ended_notice,
                    message_kinds,
                    pending_timeout,
                    shared,
                },
        } => {
            let hub = open(&data)?;
            let update = admin::ChannelUpdate {
                webhook_url,
                bot_id,
                bot_token: if bot_token_stdin {
                    Some(read_password()?)
                } else {
                    None
                },
                assign_message: languages(&assign_message)?,
                transfer_message: languages(&transfer_message)?,
                session_ended_notice,
                message_kinds,
                pending_timeout_secs: pending_timeout,
                ..shared.update()?
            };
            let c = admin::update_channel(&hub, &channel, update)?;
            println!("updated {} ({}); routing: {}", c.id, c.name, c.routing);
            Ok(())
        }
        Command::Botpress {
            command: BotpressCommand::RotateSecret { data, channel },
        } => {
            let hub = open(&data)?;
            let rotated = admin::rotate_botpress_secret(&hub, &channel)?;
            println!(
                "new endpoint secret for {}; the old endpoint no longer works.",
                rotated.id
            );
            println!("Set the integration's endpointBaseUrl to this hub's public URL followed by:");
            println!("{}", rotated.endpoint_path);
            Ok(())
        }
        Command::Whatsapp { command } => whatsapp(command),
        Command::Bot { command } => bot(command),
        Command::Report {
            data,
            since,
            until,
            by,
            format,
        } => {
            let hub = open(&data)?;
            let (rows, by) = baton_hub::report::asked(
                &*hub.store().reader()?,
                chrono::Utc::now(),
                &since,
                until.as_deref(),
                Some(&by),
            )?;
            match format.as_str() {
                "csv" => print!("{}", baton_hub::report::csv(&rows, by)?),
                "table" => print!("{}", baton_hub::report::table(&rows, by)),
                other => bail!("--format is csv or table, not {other:?}"),
            }
            Ok(())
        }
        Command::Push { command } => push_command(command),
        Command::Migrate { from_data, to } => {
            let moved = baton_hub::store::moving::sqlite_to_postgres(&from_data, &to)
                .with_context(|| format!("moving {} to PostgreSQL", from_data.display()))?;
            for (table, rows) in &moved.rows {
                println!("{table}: {rows}");
            }
            println!(
                "moved: the log ends at seq {}; serve with --database (devices keep their cursors)",
                moved.last_seq
            );
            Ok(())
        }
        Command::Log {
            command: LogCommand::Trim { data, keep },
        } => {
            let hub = open(&data)?;
            let floor = hub.store().trim_log(keep)?;
            println!("the log now starts after seq {floor}");
            Ok(())
        }
        Command::Tags {
            command: TagsCommand::List { data },
        } => {
            println!("{}", admin::list_tags(&open(&data)?)?.join("\n"));
            Ok(())
        }
        Command::Template {
            command: TemplateCommand::Add { data, name, text },
        } => {
            let t = admin::put_template(&open(&data)?, &name, &text)?;
            println!("template :{} saved", t.name);
            Ok(())
        }
        Command::Template {
            command: TemplateCommand::Remove { data, name },
        } => {
            admin::remove_template(&open(&data)?, &name)?;
            println!("template {name} removed");
            Ok(())
        }
        Command::Template {
            command: TemplateCommand::List { data },
        } => {
            for t in admin::list_templates(&open(&data)?)? {
                println!(":{}\t{}", t.name, t.text);
            }
            Ok(())
        }
        Command::Tags {
            command: TagsCommand::Set { data, tags },
        } => {
            let hub = open(&data)?;
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
            let hub = open(&data)?;
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
            let hub = open(&data)?;
            let channel = admin::add_botpress_channel(&hub, &name, Some(&webhook_url))?;
            println!("added Botpress channel {} ({name})", channel.id);
            println!("Set the integration's endpointBaseUrl to this hub's public URL followed by:");
            println!("{}", channel.endpoint_path);
            Ok(())
        }
    }
}

fn bot(command: BotCommand) -> anyhow::Result<()> {
    let shown_once = |c: &admin::BotCredentials| {
        println!("The bot calls with the token; it checks Baton-Signature on events with the signing secret. Neither is shown again:");
        println!("token: {}", c.token);
        println!("signing-secret: {}", c.signing_secret);
    };
    match command {
        BotCommand::Add {
            data,
            name,
            events_url,
        } => {
            let hub = open(&data)?;
            let c = admin::add_bot_channel(&hub, &name, &events_url)?;
            println!(
                "added bot channel {} ({name}); its API is /bot/v1 (OpenAPI: /bot/v1/openapi.json)",
                c.id
            );
            shown_once(&c);
            Ok(())
        }
        BotCommand::List { data } => {
            let hub = open(&data)?;
            for c in admin::list_channels(&hub)?
                .into_iter()
                .filter(|c| c.kind == "bot")
            {
                println!(
                    "{}\t{}\tevents {}\t{}",
                    c.id,
                    c.name,
                    c.webhook_url.as_deref().unwrap_or("?"),
                    if c.removed { "removed" } else { "ok" }
                );
            }
            Ok(())
        }
        BotCommand::Set {
            data,
            channel,
            name,
            events_url,
            draft_timeout,
            on_draft_timeout,
            shared,
        } => {
            let hub = open(&data)?;
            set_common(&hub, &channel, shared)?;
            let c = admin::update_bot(
                &hub,
                &channel,
                admin::BotUpdate {
                    name,
                    events_url,
                    removed: None,
                    draft_timeout_secs: draft_timeout,
                    on_draft_timeout,
                },
            )?;
            println!("updated {} ({})", c.id, c.name);
            if let Some(t) = c.draft_timeout {
                println!(
                    "on-draft-timeout: {} after {} s",
                    t.then.as_str(),
                    t.seconds
                );
            }
            Ok(())
        }
        BotCommand::Remove { data, channel } => {
            let hub = open(&data)?;
            let c = admin::update_bot(
                &hub,
                &channel,
                admin::BotUpdate {
                    removed: Some(true),
                    ..Default::default()
                },
            )?;
            println!(
                "removed {} ({}): its calls are refused; its conversations stay",
                c.id, c.name
            );
            Ok(())
        }
        BotCommand::RotateSecret { data, channel } => {
            let hub = open(&data)?;
            let c = admin::rotate_bot_secret(&hub, &channel)?;
            println!(
                "new credentials for {}; the old token no longer works",
                c.id
            );
            shown_once(&c);
            Ok(())
        }
    }
}

/// What every channel kind's `set` takes: how its handoffs find agents and what happens when
/// nobody takes them.
#[derive(clap::Args)]
struct SharedChannelArgs {
    /// How waiting handoffs find an agent: `manual` (agents take them; the default),
    /// `round-robin` or `least-busy` (the hub gives them to online agents under capacity).
    #[arg(long)]
    routing: Option<String>,
    /// Seconds a customer should wait at most: past it everyone online is told again, past
    /// twice it the `--escalate-to` agents are (0 removes the target).
    #[arg(long, value_name = "SECS")]
    wait_target: Option<u64>,
    /// Agents' emails told of a handoff waiting twice the target, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "EMAILS")]
    escalate_to: Option<Vec<String>>,
    /// What a customer is told when they are queued and no agent is online: `LANG=TEXT`, once per
    /// language; an empty TEXT removes that language.
    #[arg(long = "no-agent-message", value_name = "LANG=TEXT")]
    no_agent_message: Vec<String>,
    /// When the team works, in the channel's time zone: `Europe/Madrid mon-fri 09:00-18:00`
    /// (empty removes them). Outside them a queued customer gets the no-agent message.
    #[arg(long, value_name = "HOURS")]
    business_hours: Option<String>,
}

impl SharedChannelArgs {
    fn update(self) -> anyhow::Result<admin::ChannelUpdate> {
        Ok(admin::ChannelUpdate {
            routing: self.routing,
            wait_target_secs: self.wait_target,
            escalate_to: self.escalate_to,
            no_agent_message: languages(&self.no_agent_message)?,
            business_hours: self.business_hours,
            ..Default::default()
        })
    }
}

/// The shared settings on a WhatsApp number's or a bot's `set`.
fn set_common(hub: &Hub, channel: &str, shared: SharedChannelArgs) -> anyhow::Result<()> {
    let update = shared.update()?;
    if update.routing.is_some()
        || update.wait_target_secs.is_some()
        || update.escalate_to.is_some()
        || update.no_agent_message.is_some()
        || update.business_hours.is_some()
    {
        let c = admin::update_channel(hub, channel, update)?;
        println!("routing: {}", c.routing);
    }
    Ok(())
}

fn whatsapp(command: WhatsappCommand) -> anyhow::Result<()> {
    match command {
        WhatsappCommand::Add {
            data,
            name,
            phone_number_id,
            verify_token,
            graph_url,
        } => {
            let hub = open(&data)?;
            let (app_secret, access_token) = read_two_secrets()?;
            let (id, path) = admin::add_whatsapp_channel(
                &hub,
                &admin::NewWhatsApp {
                    name: &name,
                    phone_number_id: &phone_number_id,
                    verify_token: &verify_token,
                    app_secret: &app_secret,
                    access_token: &access_token,
                    graph_url: graph_url.as_deref(),
                },
            )?;
            println!("added WhatsApp channel {id} ({name})");
            println!("In Meta's app dashboard (WhatsApp → Configuration), set the callback URL to this hub's public URL followed by the path below, and the verify token you chose; subscribe to the messages field:");
            println!("{path}");
            Ok(())
        }
        WhatsappCommand::List { data } => {
            let hub = open(&data)?;
            for c in admin::list_channels(&hub)?
                .into_iter()
                .filter(|c| c.kind == "whatsapp")
            {
                println!(
                    "{}\t{}\tnumber {}\twebhook {}\t{}\thandoff {}{}",
                    c.id,
                    c.name,
                    c.phone_number_id.as_deref().unwrap_or("?"),
                    c.webhook_path.as_deref().unwrap_or("?"),
                    match (&c.broken, c.removed) {
                        (_, true) => "removed".to_string(),
                        (Some(why), _) => format!("BROKEN: {why}"),
                        (None, _) => "ok".to_string(),
                    },
                    if c.handoff_phrases.is_empty() {
                        "every conversation".to_string()
                    } else {
                        format!("on {}", c.handoff_phrases.join(" | "))
                    },
                    c.auto_reply
                        .as_deref()
                        .map(|r| format!("\tauto-reply {r:?}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        WhatsappCommand::Set {
            data,
            channel,
            name,
            verify_token,
            graph_url,
            secrets_stdin,
            handoff_phrases,
            auto_reply,
            max_per_second,
            waba_id,
            bot,
            shared,
        } => {
            let hub = open(&data)?;
            set_common(&hub, &channel, shared)?;
            let (app_secret, access_token) = if secrets_stdin {
                let (a, t) = read_two_secrets()?;
                (Some(a), Some(t))
            } else {
                (None, None)
            };
            let c = admin::update_whatsapp(
                &hub,
                &channel,
                admin::WhatsAppUpdate {
                    name,
                    verify_token,
                    app_secret,
                    access_token,
                    graph_url,
                    handoff_phrases: (!handoff_phrases.is_empty()).then_some(handoff_phrases),
                    auto_reply,
                    removed: None,
                    max_per_second,
                    waba_id,
                    bot,
                },
            )?;
            println!("updated {} ({})", c.id, c.name);
            Ok(())
        }
        WhatsappCommand::Remove { data, channel } => {
            let hub = open(&data)?;
            let c = admin::update_whatsapp(
                &hub,
                &channel,
                admin::WhatsAppUpdate {
                    removed: Some(true),
                    ..Default::default()
                },
            )?;
            println!(
                "removed {} ({}): its webhooks are refused; its conversations stay",
                c.id, c.name
            );
            Ok(())
        }
    }
}

/// The app secret and the access token, one per line on standard input.
fn read_two_secrets() -> anyhow::Result<(String, String)> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the app secret and access token from stdin")?;
    let mut lines = input.lines().map(str::trim).filter(|l| !l.is_empty());
    match (lines.next(), lines.next()) {
        (Some(secret), Some(token)) => Ok((secret.to_string(), token.to_string())),
        _ => bail!(
            "standard input needs two lines: the app secret, then the access token (printf '%s\\n%s\\n' \"$APP_SECRET\" \"$TOKEN\" | baton-hub whatsapp add …)"
        ),
    }
}

/// Where the team's data is: SQLite in a data directory (the default), or a PostgreSQL database
/// shared by every hub instance, with the directory (optional then) for this instance's files.
#[derive(clap::Args, Debug, Clone)]
struct Place {
    /// The hub's data directory (created if missing): its SQLite database and its files, or with
    /// --database only this instance's files.
    #[arg(long, env = "BATON_HUB_DATA", required_unless_present = "database")]
    data: Option<PathBuf>,
    /// A PostgreSQL database for the team's data (postgres://user:password@host/db), shared by
    /// every hub instance that names it; instead of SQLite in --data. TLS as for psql:
    /// ?sslmode=verify-full&sslrootcert=/path/ca.pem (or verify-ca, require, prefer, disable).
    #[arg(long, env = "BATON_DATABASE_URL")]
    database: Option<String>,
}

impl Place {
    fn open(&self, clock: impl baton_hub::Clock, config: HubConfig) -> anyhow::Result<Hub> {
        match (&self.database, &self.data) {
            (Some(url), files) => Hub::open_postgres(url, files.as_deref(), clock, config)
                .context("opening the PostgreSQL database"),
            (None, Some(data)) => Hub::open_with(data, clock, config)
                .with_context(|| format!("opening {}", data.display())),
            (None, None) => bail!("give the hub's --data directory or a --database URL"),
        }
    }
}

fn open(place: &Place) -> anyhow::Result<Hub> {
    place.open(baton_hub::SystemClock, HubConfig::default())
}

/// `LANG=TEXT` arguments as a map (`None` when there are none).
fn languages(
    args: &[String],
) -> anyhow::Result<Option<std::collections::BTreeMap<String, String>>> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut map = std::collections::BTreeMap::new();
    for arg in args {
        let (lang, text) = arg
            .split_once('=')
            .with_context(|| format!("{arg:?} is not LANG=TEXT"))?;
        map.insert(lang.to_string(), text.to_string());
    }
    Ok(Some(map))
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

fn serve(data: Place, listen: SocketAddr, config: HubConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let hub = match std::env::var_os("BATON_TEST_CLOCK_OFFSET_FILE") {
            // Whole-system tests move this hub's time forward by writing seconds to the file.
            Some(file) => data.open(baton_hub::OffsetClock::new(file), config),
            None => data.open(baton_hub::SystemClock, config),
        }?;
        // A SQLite hub tells `migrate` it is running (see `Serving`), once its directory is made
        // (and private); a second one on the same directory is only warned about, as before.
        let _serving = match (&data.database, &data.data) {
            (None, Some(dir)) => match baton_hub::store::serving::Serving::claim(dir) {
                Ok(serving) => Some(serving),
                Err(e) => {
                    tracing::warn!(error = %e, "another hub may be serving from this directory");
                    None
                }
            },
            _ => None,
        };
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

/// `baton-hub push …`.
fn push_command(command: PushCommand) -> anyhow::Result<()> {
    use baton_hub::push::{self, ApnsConfig, FcmConfig, WebPushConfig};
    let show = |config: &push::PushConfig| {
        let line = |name: &str, set: Option<String>| {
            println!("{name}: {}", set.unwrap_or_else(|| "not set up".into()));
        };
        line(
            "fcm",
            config.fcm.as_ref().map(|f| {
                format!(
                    "project {} as {} via {}",
                    f.project_id, f.client_email, f.endpoint
                )
            }),
        );
        line(
            "apns",
            config.apns.as_ref().map(|a| {
                format!(
                    "team {} key {} for {} via {}",
                    a.team_id, a.key_id, a.topic, a.endpoint
                )
            }),
        );
        line(
            "web",
            config
                .web
                .as_ref()
                .map(|w| format!("VAPID public key {} ({})", w.public_key, w.subject)),
        );
    };
    let config = match command {
        PushCommand::Fcm {
            data,
            service_account,
            endpoint,
        } => {
            let json = std::fs::read_to_string(&service_account)
                .with_context(|| format!("reading {}", service_account.display()))?;
            let fcm = FcmConfig::from_service_account(&json, endpoint)?;
            push::configure(&open(&data)?, |c| {
                c.fcm = Some(fcm);
                Ok(())
            })?
        }
        PushCommand::Apns {
            data,
            team_id,
            key_id,
            key,
            topic,
            sandbox,
            endpoint,
        } => {
            let pem = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let endpoint = endpoint.unwrap_or_else(|| {
                if sandbox {
                    push::APNS_SANDBOX_ENDPOINT
                } else {
                    push::APNS_ENDPOINT
                }
                .into()
            });
            let apns = ApnsConfig::new(&team_id, &key_id, &pem, &topic, endpoint)?;
            push::configure(&open(&data)?, |c| {
                c.apns = Some(apns);
                Ok(())
            })?
        }
        PushCommand::Web {
            data,
            subject,
            new_key,
        } => push::configure(&open(&data)?, |c| {
            c.web = match c.web.take() {
                // Browsers subscribed with the old key: keeping it keeps them.
                Some(mut web) if !new_key => {
                    WebPushConfig::check_subject(&subject)?;
                    web.subject = subject.clone();
                    Some(web)
                }
                _ => Some(WebPushConfig::generate(&subject)?),
            };
            Ok(())
        })?,
        PushCommand::Show { data } => push::config(&open(&data)?)?,
        PushCommand::Off { data, provider } => push::configure(&open(&data)?, |c| {
            match provider.as_str() {
                "fcm" => c.fcm = None,
                "apns" => c.apns = None,
                "web" => c.web = None,
                other => {
                    return Err(push::PushError::Invalid(format!(
                        "{other:?} is not a provider: fcm, apns or web"
                    )))
                }
            }
            Ok(())
        })?,
    };
    show(&config);
    Ok(())
}
