//! `baton-cli`: Baton's headless client, over the same core as the app. Sign in, sync the team's
//! inbox into a local cache, then search, read, reply and export from a terminal or a script —
//! everything but `login` and `sync` works with the hub unreachable; replies wait in the outbox and
//! are delivered exactly once when it is back.

mod config;
mod render;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use baton_core::outbox::Delivered;
use baton_core::search::SearchQuery;
use baton_core::{
    Cache, Engine, HandoffView, HubClient, OutboxState, Sent, TokenFile, TokenStore, Update,
};
use baton_protocol::{AgentCommand, HandoffStatus};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "baton-cli",
    version,
    about = "Baton's headless client: the team inbox in a terminal, offline too"
)]
struct Cli {
    /// The local cache and settings (default: $BATON_CLI_DATA, else ~/.local/share/baton-cli).
    #[arg(long, global = true, env = "BATON_CLI_DATA")]
    data: Option<PathBuf>,
    /// The hub (remembered after `login`). Several hubs serving one team from a shared database
    /// go comma-separated (`https://a.example.com,https://b.example.com`): the CLI uses the first
    /// that answers and moves to the next when it cannot be reached.
    #[arg(long, global = true)]
    hub: Option<String>,
    /// Where the sign-in token is kept: the OS keychain, or `file` (DATA/token, mode 0600) where
    /// no keychain is reachable (a server, CI).
    #[arg(long, global = true, value_enum)]
    token_store: Option<TokenStoreKind>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStoreKind {
    Keychain,
    File,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in; the password is read from standard input.
    Login {
        #[arg(long)]
        email: String,
    },
    /// Deliver the outbox, catch up with the hub and complete the local history, then exit.
    Sync {
        /// Stay connected and keep the cache live (Ctrl-C to stop).
        #[arg(long)]
        follow: bool,
        /// Backfill history only this many days back (default: all of it).
        #[arg(long, value_name = "DAYS")]
        history_days: Option<u32>,
    },
    /// Search messages, notes, customer names and handoff titles. One hit per line:
    /// CONVERSATION<TAB>KIND<TAB>DATE<TAB>SNIPPET, best first; matched words in [brackets].
    Search {
        /// The words to find (quoted or not: `search crushed box`).
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        #[arg(long)]
        channel: Option<String>,
        /// pending, assigned, resolved or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        /// An agent's email, name or id: conversations they held.
        #[arg(long)]
        agent: Option<String>,
        /// From this date (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Before this date (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Print a conversation: its handoff, customer, messages and anything still in the outbox.
    Show { conversation: String },
    /// List handoffs: the queue (`pending`, the default), `mine`, `assigned`, `resolved` or
    /// `cancelled`. One per line: HANDOFF<TAB>CONVERSATION<TAB>STATUS<TAB>ASSIGNEE<TAB>CUSTOMER<TAB>TITLE.
    Queue {
        #[arg(value_enum, default_value_t = View::Pending)]
        view: View,
    },
    /// Reply in a conversation. Exits 0 once the reply is safely queued; it is delivered at once
    /// when the hub is reachable, else by the next `sync`. Every command below works the same way.
    Send { conversation: String, text: String },
    /// Add a note to a conversation, for the team only.
    Note { conversation: String, text: String },
    /// Take a waiting handoff. HANDOFF is a handoff id, or a conversation id for its latest handoff.
    Assign { handoff: String },
    /// Put a handoff you hold back in the queue.
    Release { handoff: String },
    /// Give a handoff you hold to another (online) agent, by email or id.
    Transfer { handoff: String, to: String },
    /// End a handoff; the bot has the conversation again.
    Resolve {
        handoff: String,
        /// How it ended ("refund sent", …).
        #[arg(long)]
        label: Option<String>,
    },
    /// End a handoff without resolving it (admins).
    Cancel { handoff: String },
    /// Set a handoff's tags, replacing the ones it has (none: clear them).
    Tag { handoff: String, tags: Vec<String> },
    /// List the outbox, or retry, edit or discard an item.
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxAction>,
    },
    /// Write a conversation to standard output.
    Export {
        conversation: String,
        #[arg(long, value_enum, default_value_t = Format::Md)]
        format: Format,
    },
}

#[derive(Subcommand)]
enum OutboxAction {
    /// Every queued and failed item (the default).
    List,
    /// Send a failed or waiting item again now.
    Retry { id: i64 },
    /// Change a queued or failed message's text (it is sent as a new command).
    Edit { id: i64, text: String },
    /// Drop an item; it will not be sent.
    Discard { id: i64 },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum View {
    Pending,
    Mine,
    /// Waiting and assigned: who has what.
    Open,
    Assigned,
    Resolved,
    Cancelled,
}

impl From<View> for HandoffView {
    fn from(view: View) -> Self {
        match view {
            View::Pending => HandoffView::Pending,
            View::Mine => HandoffView::Mine,
            View::Open => HandoffView::Open,
            View::Assigned => HandoffView::Assigned,
            View::Resolved => HandoffView::Resolved,
            View::Cancelled => HandoffView::Cancelled,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Json,
    Md,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("baton-cli: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("baton-cli: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything a command needs: the data dir, its settings and the cache.
struct Desk {
    data: PathBuf,
    config: Config,
    hub_flag: Option<String>,
    store_flag: Option<TokenStoreKind>,
    engine: Engine,
}

impl Desk {
    fn open(cli: &Cli) -> anyhow::Result<Self> {
        let data = match &cli.data {
            Some(d) => d.clone(),
            None => default_data_dir()?,
        };
        let config = Config::load(&data)?;
        let cache = Cache::open(&data.join("cache.sqlite"))
            .with_context(|| format!("cannot open the cache in {}", data.display()))?;
        Ok(Self {
            data,
            config,
            hub_flag: cli.hub.clone(),
            store_flag: cli.token_store,
            engine: Engine::new(Arc::new(Mutex::new(cache))),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        match self.cache_handle().lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn hub_url(&self) -> anyhow::Result<String> {
        self.hub_flag
            .clone()
            .or_else(|| self.config.hub_url.clone())
            .ok_or_else(|| anyhow!("no hub yet: pass --hub URL (login remembers it)"))
    }

    fn store_kind(&self) -> TokenStoreKind {
        self.store_flag
            .or(self.config.token_store)
            .unwrap_or(TokenStoreKind::Keychain)
    }

    fn token_file(&self) -> TokenFile {
        TokenFile::new(self.data.join("token"))
    }

    /// The hub the token belongs to: the one `login` used (a --hub given later may be a proxy).
    fn token_key(&self) -> anyhow::Result<String> {
        self.config
            .hub_url
            .clone()
            .map_or_else(|| self.hub_url(), Ok)
    }

    fn save_token(&self, token: &str) -> anyhow::Result<&'static str> {
        match self.store_kind() {
            TokenStoreKind::File => {
                self.token_file().save(token)?;
                Ok("in DATA/token (mode 0600)")
            }
            TokenStoreKind::Keychain => {
                let store = TokenStore::keychain(&self.hub_url()?)?;
                store.save(token).map_err(|e| {
                    anyhow!("{e}\nno keychain here? pass --token-store file to keep the token in {} (readable only by you)", self.data.join("token").display())
                })?;
                Ok("in the OS keychain")
            }
        }
    }

    fn token(&self) -> anyhow::Result<String> {
        let token = match self.store_kind() {
            TokenStoreKind::File => self.token_file().load()?,
            TokenStoreKind::Keychain => TokenStore::keychain(&self.token_key()?)?
                .load()
                .map_err(|e| anyhow!("{e}\npass --token-store file if you signed in with it"))?,
        };
        token.ok_or_else(|| anyhow!("not signed in: run baton-cli login --email YOU --hub URL"))
    }

    fn cache_handle(&self) -> &Arc<Mutex<Cache>> {
        self.engine.cache_ref()
    }

    /// The signed-in client; the engine acts through it from now on.
    fn client(&self) -> anyhow::Result<HubClient> {
        let client = HubClient::new(&self.hub_url()?)?.with_token(self.token()?);
        self.engine.signed_in(client.clone());
        Ok(client)
    }

    /// A handoff by its id, or the latest handoff of a conversation by the conversation's id.
    fn handoff(&self, id: &str) -> anyhow::Result<String> {
        let cache = self.cache();
        if let Some(h) = cache.latest_handoff(id)? {
            return Ok(h.id);
        }
        if cache.handoff(id)?.is_some() {
            return Ok(id.to_string());
        }
        bail!("no handoff or conversation {id:?} in the local cache (run baton-cli sync, or check the id)")
    }

    fn conversation(&self, id: &str) -> anyhow::Result<()> {
        if self.cache().has_conversation(id)? {
            Ok(())
        } else {
            bail!("no conversation {id:?} in the local cache (run baton-cli sync, or check the id)")
        }
    }
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("baton-cli"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("no HOME; pass --data DIR"))?;
    Ok(PathBuf::from(home).join(".local/share/baton-cli"))
}

fn new_txn_id() -> String {
    format!("cli-{:032x}", rand::random::<u128>())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut desk = Desk::open(&cli)?;
    match cli.command {
        Command::Login { email } => login(&mut desk, &email).await,
        Command::Sync {
            follow,
            history_days,
        } => sync(&desk, follow, history_days).await,
        Command::Search {
            query,
            channel,
            status,
            tag,
            agent,
            since,
            until,
            limit,
        } => {
            let cache = desk.cache();
            let agent = match agent {
                Some(a) => Some(render::agent_id(&cache, &a)?),
                None => None,
            };
            let query = SearchQuery {
                text: query.join(" "),
                channel,
                status: status.as_deref().map(parse_status).transpose()?,
                tag,
                agent,
                since: since.as_deref().map(parse_date).transpose()?,
                until: until.as_deref().map(parse_date).transpose()?,
                limit,
            };
            for hit in cache.search(&query)? {
                println!(
                    "{}\t{}\t{}\t{}",
                    hit.conversation_id,
                    hit.kind.as_str(),
                    hit.at
                        .as_deref()
                        .map(render::short_date)
                        .unwrap_or_default(),
                    hit.snippet.replace(['\n', '\t'], " ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { conversation } => {
            desk.conversation(&conversation)?;
            print!("{}", render::show(&desk.cache(), &conversation)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Queue { view } => {
            let me = desk.config.agent_id.clone();
            if matches!(view, View::Mine) && me.is_none() {
                bail!("not signed in: run baton-cli login --email YOU --hub URL");
            }
            for row in desk.cache().view(view.into(), me.as_deref())? {
                let h = &row.handoff;
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    h.id,
                    h.conversation_id,
                    h.status.as_str(),
                    h.assignee.as_deref().unwrap_or("-"),
                    row.customer.as_deref().unwrap_or("-"),
                    h.title.replace(['\n', '\t'], " ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Send { conversation, text } => {
            desk.conversation(&conversation)?;
            let text = text.trim();
            if text.is_empty() {
                bail!("the message is empty");
            }
            let command = AgentCommand::Message {
                conversation_id: conversation,
                text: Some(text.to_string()),
                kind: None,
                payload: None,
            };
            act(&desk, command).await
        }
        Command::Note { conversation, text } => {
            desk.conversation(&conversation)?;
            let text = text.trim();
            if text.is_empty() {
                bail!("the note is empty");
            }
            let command = AgentCommand::Note {
                conversation_id: conversation,
                text: text.to_string(),
            };
            act(&desk, command).await
        }
        Command::Assign { handoff } => {
            let handoff_id = desk.handoff(&handoff)?;
            act(&desk, AgentCommand::Assign { handoff_id }).await
        }
        Command::Release { handoff } => {
            let handoff_id = desk.handoff(&handoff)?;
            act(&desk, AgentCommand::Release { handoff_id }).await
        }
        Command::Transfer { handoff, to } => {
            let handoff_id = desk.handoff(&handoff)?;
            act(&desk, AgentCommand::Transfer { handoff_id, to }).await
        }
        Command::Resolve { handoff, label } => {
            let handoff_id = desk.handoff(&handoff)?;
            act(&desk, AgentCommand::Resolve { handoff_id, label }).await
        }
        Command::Cancel { handoff } => {
            let handoff_id = desk.handoff(&handoff)?;
            act(&desk, AgentCommand::Cancel { handoff_id }).await
        }
        Command::Tag { handoff, tags } => {
            let handoff_id = desk.handoff(&handoff)?;
            act(&desk, AgentCommand::Tags { handoff_id, tags }).await
        }
        Command::Outbox { action } => outbox_command(&desk, action).await,
        Command::Export {
            conversation,
            format,
        } => {
            desk.conversation(&conversation)?;
            let cache = desk.cache();
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&render::export(&cache, &conversation)?)?
                ),
                Format::Md => print!("{}", render::markdown(&cache, &conversation)?),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn login(desk: &mut Desk, email: &str) -> anyhow::Result<ExitCode> {
    let hub_url = desk.hub_url()?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("no password on standard input (echo -n 'secret' | baton-cli login --email …)");
    }
    let client = HubClient::new(&hub_url)?;
    let signed_in = client.login(email, password).await?;
    // Remember the hub before saving the token: the keychain entry is keyed by it.
    desk.config.hub_url = Some(client.hub_url().to_string());
    desk.config.token_store = Some(desk.store_kind());
    let place = desk.save_token(&signed_in.token)?;
    let agent = match signed_in.agent {
        Some(agent) => agent,
        None => {
            client
                .clone()
                .with_token(signed_in.token.clone())
                .me()
                .await?
        }
    };
    desk.config.agent_id = Some(agent.id.clone());
    desk.config.email = Some(agent.email.clone());
    desk.config.save(&desk.data)?;
    println!(
        "signed in to {} as {} <{}>; token kept {place}",
        client.hub_url(),
        agent.name,
        agent.email
    );
    Ok(ExitCode::SUCCESS)
}

/// Tries the outbox once; says what happened on stderr. Never fails the command: anything not
/// delivered stays queued.
async fn flush_outbox(desk: &Desk, force: bool) -> Delivered {
    match tokio::time::timeout(Duration::from_secs(15), desk.engine.deliver(force)).await {
        Ok(Ok(report)) => {
            for refusal in &report.refused {
                eprintln!(
                    "outbox #{0} refused by the hub: {1} (baton-cli outbox retry|edit|discard {0})",
                    refusal.id, refusal.message
                );
            }
            report
        }
        Ok(Err(e)) => {
            eprintln!("outbox: {e}");
            Delivered::default()
        }
        Err(_) => {
            eprintln!("outbox: the hub is slow to answer; what was not delivered stays queued");
            Delivered::default()
        }
    }
}

async fn sync(desk: &Desk, follow: bool, history_days: Option<u32>) -> anyhow::Result<ExitCode> {
    let client = desk.client()?;
    // Sending first: what the agent did offline goes out before the inbox is refreshed.
    let report = flush_outbox(desk, true).await;
    if !report.delivered.is_empty() {
        eprintln!("outbox: delivered {}", report.delivered.len());
    }
    let (updates, mut heard) = tokio::sync::mpsc::channel(256);
    let engine = baton_core::SyncEngine::new(client.clone(), desk.engine.cache(), updates);
    let printer = tokio::spawn(async move {
        while let Some(update) = heard.recv().await {
            if let baton_core::Update::NewHandoff { handoff } = update {
                println!(
                    "new handoff\t{}\t{}\t{}",
                    handoff.conversation_id,
                    handoff.status.as_str(),
                    handoff.title
                );
            }
        }
    });
    let cursor = engine.catch_up().await?;
    let oldest = history_days.map(|d| Utc::now() - chrono::TimeDelta::days(i64::from(d)));
    let backfill = engine
        .backfill(oldest, |p| {
            if let Some(total) = p.total {
                eprintln!(
                    "history: {} of {} messages{}",
                    p.fetched,
                    total,
                    if p.done { " (complete)" } else { "" }
                );
            }
        })
        .await?;
    let (queued, failed) = desk.cache().outbox_counts()?;
    println!(
        "synced up to event {cursor} at {}; history {}; outbox: {queued} queued, {failed} failed",
        Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
        if backfill.done { "complete" } else { "partial" }
    );
    drop(engine);
    let _ = printer.await;
    if follow {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let (updates, mut heard) = tokio::sync::mpsc::channel(256);
        let engine = desk.engine.clone();
        let running = tokio::spawn(async move { engine.run(updates, stop, oldest).await });
        eprintln!("following the hub (Ctrl-C to stop)");
        loop {
            tokio::select! {
                update = heard.recv() => match update {
                    Some(Update::NewHandoff { handoff }) => println!(
                        "new handoff\t{}\t{}\t{}",
                        handoff.conversation_id,
                        handoff.status.as_str(),
                        handoff.title
                    ),
                    Some(Update::SignedOut) => {
                        eprintln!("the hub no longer accepts this sign-in; run baton-cli login");
                        break;
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = tokio::signal::ctrl_c() => {
                    let _ = stop_tx.send(true);
                    break;
                }
            }
        }
        let _ = running.await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Queues an agent command, then tries to deliver it at once. Exits 0 once it is safely queued:
/// what the hub cannot take now is sent by the next `sync`.
async fn act(desk: &Desk, command: AgentCommand) -> anyhow::Result<ExitCode> {
    let signed_in = desk.client();
    // Items waiting out a retry time the hub asked for keep waiting: `sync` sends them.
    let sending = desk.engine.send(&command, &new_txn_id(), false).await?;
    let item = sending.item;
    println!("queued as outbox #{}", item.id);
    if let Err(e) = signed_in {
        eprintln!("not sent yet ({e}); it stays in the outbox");
        return Ok(ExitCode::SUCCESS);
    }
    for refusal in &sending.others_refused {
        eprintln!(
            "outbox #{0} refused by the hub: {1} (baton-cli outbox retry|edit|discard {0})",
            refusal.id, refusal.message
        );
    }
    match sending.sent {
        Sent::Delivered => println!("delivered"),
        Sent::Refused(refusal) if matches!(command, AgentCommand::Message { .. }) => println!(
            "refused by the hub: {}; it stays in the outbox (retry, edit or discard #{})",
            refusal.message, item.id
        ),
        // Nothing to edit or resend later: the refusal is the answer (and the item is gone).
        Sent::Refused(refusal) => {
            eprintln!("refused by the hub: {}", refusal.message);
            return Ok(ExitCode::FAILURE);
        }
        Sent::Queued => {
            let why = desk
                .cache()
                .outbox_item(item.id)
                .ok()
                .and_then(|i| i.error)
                .unwrap_or_else(|| "earlier items are waiting".into());
            println!("not delivered yet ({why}); baton-cli sync will send it");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn outbox_command(desk: &Desk, action: Option<OutboxAction>) -> anyhow::Result<ExitCode> {
    match action.unwrap_or(OutboxAction::List) {
        OutboxAction::List => {
            let items = desk.cache().outbox()?;
            if items.is_empty() {
                println!("the outbox is empty");
            }
            for item in items {
                let state = match item.state {
                    OutboxState::Queued => "queued",
                    OutboxState::Failed => "failed",
                };
                println!(
                    "#{}\t{state}\t{}\t{}\t{}\t{}",
                    item.id,
                    item.action,
                    item.conversation_id.as_deref().unwrap_or("-"),
                    item.text().unwrap_or("").replace(['\n', '\t'], " "),
                    item.error.as_deref().unwrap_or("")
                );
            }
        }
        OutboxAction::Retry { id } => {
            desk.cache().retry(id)?;
            println!("outbox #{id} queued again");
            if desk.client().is_ok() {
                let report = flush_outbox(desk, true).await;
                if report.delivered.contains(&id) {
                    println!("delivered");
                }
            }
        }
        OutboxAction::Edit { id, text } => {
            if text.trim().is_empty() {
                bail!("the new text is empty (discard the item instead)");
            }
            desk.cache().edit(id, text.trim(), &new_txn_id())?;
            println!("outbox #{id} changed and queued again");
        }
        OutboxAction::Discard { id } => {
            desk.cache().discard(id)?;
            println!("outbox #{id} discarded");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_status(s: &str) -> anyhow::Result<HandoffStatus> {
    match s {
        "pending" => Ok(HandoffStatus::Pending),
        "assigned" => Ok(HandoffStatus::Assigned),
        "resolved" => Ok(HandoffStatus::Resolved),
        "cancelled" => Ok(HandoffStatus::Cancelled),
        other => bail!("--status must be pending, assigned, resolved or cancelled, not {other:?}"),
    }
}

fn parse_date(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| anyhow!("{s:?} is not a date (YYYY-MM-DD or RFC 3339)"))
}
