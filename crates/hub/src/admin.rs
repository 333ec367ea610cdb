//! What an admin does to a hub's data directory: add agents and Botpress channels. The CLI and the
//! app's solo mode call these directly on the store; secrets are returned once and kept only hashed.

use baton_protocol::{Agent, EventData, Role};

use crate::auth::{hash_password, random_secret, secret_hash};
use crate::store::{NewChannel, StoreError};
use crate::Hub;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    #[error("an agent with email {0} already exists")]
    EmailTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The longest email address an agent may have (RFC 5321's limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A Botpress channel as the admin sees it right after creating it: the only time the secret path
/// exists outside the hub.
#[derive(Debug, Clone)]
pub struct NewBotpressChannel {
    pub id: String,
    /// `/botpress/<secret>`: append it to the hub's public URL for Botpress's `endpointBaseUrl`.
    pub endpoint_path: String,
}

pub fn add_agent(
    hub: &Hub,
    email: &str,
    name: &str,
    role: Role,
    password: &str,
) -> Result<Agent, AdminError> {
    let email = email.trim();
    let name = name.trim();
    if !email.contains('@') || email.len() > MAX_EMAIL_LEN {
        return Err(AdminError::Invalid(format!(
            "{email:?} is not an email address"
        )));
    }
    if name.is_empty() {
        return Err(AdminError::Invalid("the agent needs a name".into()));
    }
    if password.chars().count() < 8 {
        return Err(AdminError::Invalid(
            "the password needs at least 8 characters".into(),
        ));
    }
    let hash = hash_password(password).map_err(|e| AdminError::Hash(e.to_string()))?;
    let agent = Agent::new(hub.new_id("ag"), email, name, role);
    hub.store().write(|txn| {
        if txn.agent_by_email(email)?.is_some() {
            return Err(AdminError::EmailTaken(email.to_string()));
        }
        txn.add_agent(&agent, &hash)?;
        Ok(agent.clone())
    })
}

pub fn add_botpress_channel(
    hub: &Hub,
    name: &str,
    webhook_url: Option<&str>,
) -> Result<NewBotpressChannel, AdminError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AdminError::Invalid("the channel needs a name".into()));
    }
    if let Some(url) = webhook_url {
        crate::egress::check_url(url, hub.config().allow_private_urls, "webhook URL").map_err(
            |e| {
                AdminError::Invalid(format!(
                    "{e}; copy the webhook URL from the integration's page in Botpress"
                ))
            },
        )?;
    }
    let id = hub.new_id("ch");
    let secret = random_secret();
    let channel = NewChannel {
        id: &id,
        kind: "botpress",
        name,
        secret_hash: &secret_hash(&secret),
        webhook_url: webhook_url.map(|u| u.trim_end_matches('/')),
        created_at: hub.now(),
    };
    hub.store().write(|txn| txn.add_channel(&channel))?;
    Ok(NewBotpressChannel {
        id,
        endpoint_path: format!("/botpress/{secret}"),
    })
}

/// A WhatsApp number to connect. The two secrets are Meta's (the app secret signs webhooks; the
/// access token sends): kept in the hub's private database, never shown again.
#[derive(Debug, Clone)]
pub struct NewWhatsApp<'a> {
    pub name: &'a str,
    pub phone_number_id: &'a str,
    pub verify_token: &'a str,
    pub app_secret: &'a str,
    pub access_token: &'a str,
    /// `None`: Meta's Graph API.
    pub graph_url: Option<&'a str>,
}

/// Connects a WhatsApp number; returns the channel id and the webhook path to give Meta.
pub fn add_whatsapp_channel(
    hub: &Hub,
    new: &NewWhatsApp<'_>,
) -> Result<(String, String), AdminError> {
    let name = new.name.trim();
    let phone_number_id = new.phone_number_id.trim();
    if name.is_empty() {
        return Err(AdminError::Invalid("the channel needs a name".into()));
    }
    if phone_number_id.is_empty() || !phone_number_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(AdminError::Invalid(
            "the phone number id is the number Meta shows under WhatsApp → API setup (digits only)"
                .into(),
        ));
    }
    for (what, value) in [
        ("verify token", new.verify_token),
        ("app secret", new.app_secret),
        ("access token", new.access_token),
    ] {
        if value.trim().is_empty() {
            return Err(AdminError::Invalid(format!("the {what} is empty")));
        }
    }
    let graph_url = new
        .graph_url
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .unwrap_or_else(|| crate::whatsapp::DEFAULT_GRAPH_URL.to_string());
    crate::egress::check_url(&graph_url, hub.config().allow_private_urls, "Graph API URL")
        .map_err(AdminError::Invalid)?;
    let whatsapp = crate::whatsapp::WhatsAppSettings {
        phone_number_id: phone_number_id.to_string(),
        verify_token: new.verify_token.trim().to_string(),
        app_secret: new.app_secret.trim().to_string(),
        access_token: new.access_token.trim().to_string(),
        graph_url,
        handoff_phrases: Vec::new(),
        auto_reply: None,
        broken: None,
        removed: false,
        max_per_second: 80,
        waba_id: None,
        bot_channel: None,
    };
    let send_url = whatsapp.send_url();
    let settings = crate::channel::ChannelSettings {
        whatsapp: Some(whatsapp),
        ..Default::default()
    };
    let id = hub.new_id("ch");
    let channel = NewChannel {
        id: &id,
        kind: "whatsapp",
        name,
        // Webhooks are authenticated by signature, not by a secret in the path.
        secret_hash: &secret_hash(&random_secret()),
        webhook_url: Some(&send_url),
        created_at: hub.now(),
    };
    hub.store().write(|txn| {
        txn.add_channel(&channel)?;
        txn.set_channel(&id, name, Some(&send_url), &settings)
    })?;
    let path = crate::whatsapp::webhook_path(&id);
    Ok((id, path))
}

/// What an admin may change about a WhatsApp number; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct WhatsAppUpdate {
    pub name: Option<String>,
    pub verify_token: Option<String>,
    pub app_secret: Option<String>,
    /// A new access token also clears a "broken" mark: sending starts again.
    pub access_token: Option<String>,
    pub graph_url: Option<String>,
    /// Phrases that open a handoff; empty: every conversation does.
    pub handoff_phrases: Option<Vec<String>>,
    /// Empty: none.
    pub auto_reply: Option<String>,
    /// Stop taking this number's webhooks (its conversations stay).
    pub removed: Option<bool>,
    /// The most messages a second sent from this number.
    pub max_per_second: Option<u32>,
    /// The WhatsApp Business Account id (for listing message templates); empty removes it.
    pub waba_id: Option<String>,
    /// The bot channel (id or name) to put in front of the number; empty takes it away.
    pub bot: Option<String>,
}

pub fn update_whatsapp(
    hub: &Hub,
    key: &str,
    update: WhatsAppUpdate,
) -> Result<ChannelView, AdminError> {
    let row = find_channel(hub, key)?;
    let id = row.id.clone();
    let mut settings = row.settings;
    let Some(wa) = settings.whatsapp.as_mut() else {
        return Err(AdminError::Invalid(format!(
            "{key:?} is not a WhatsApp channel"
        )));
    };
    let non_empty = |v: String, what: &str| {
        let v = v.trim().to_string();
        if v.is_empty() {
            Err(AdminError::Invalid(format!("the {what} is empty")))
        } else {
            Ok(v)
        }
    };
    if let Some(v) = update.verify_token {
        wa.verify_token = non_empty(v, "verify token")?;
    }
    if let Some(v) = update.app_secret {
        wa.app_secret = non_empty(v, "app secret")?;
    }
    if let Some(v) = update.access_token {
        wa.access_token = non_empty(v, "access token")?;
        wa.broken = None;
    }
    if let Some(v) = update.graph_url {
        let v = v.trim().trim_end_matches('/').to_string();
        crate::egress::check_url(&v, hub.config().allow_private_urls, "Graph API URL")
            .map_err(AdminError::Invalid)?;
        wa.graph_url = v;
    }
    if let Some(phrases) = update.handoff_phrases {
        wa.handoff_phrases = phrases
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
    }
    if let Some(text) = update.auto_reply {
        if text.trim().chars().count() > crate::whatsapp::MAX_TEXT {
            return Err(AdminError::Invalid(format!(
                "the auto-reply is longer than WhatsApp's {} characters",
                crate::whatsapp::MAX_TEXT
            )));
        }
        wa.auto_reply = Some(text.trim().to_string()).filter(|t| !t.is_empty());
    }
    if let Some(removed) = update.removed {
        wa.removed = removed;
    }
    if let Some(waba) = update.waba_id {
        let waba = waba.trim().to_string();
        if !waba.chars().all(|c| c.is_ascii_digit()) {
            return Err(AdminError::Invalid(
                "the WhatsApp Business Account id is digits (Business settings → WhatsApp accounts)".into(),
            ));
        }
        wa.waba_id = Some(waba).filter(|w| !w.is_empty());
    }
    if let Some(rate) = update.max_per_second {
        if !(1..=1000).contains(&rate) {
            return Err(AdminError::Invalid(
                "the throughput must be between 1 and 1000 messages a second".into(),
            ));
        }
        wa.max_per_second = rate;
    }
    if let Some(bot) = update.bot {
        wa.bot_channel = match bot.trim() {
            "" => None,
            key => {
                let bot = bot_channel(hub, key)?;
                if bot.settings.bot.as_ref().is_some_and(|b| b.removed) {
                    return Err(AdminError::Invalid(format!("the bot {key:?} was removed")));
                }
                Some(bot.id)
            }
        };
    }
    let send_url = wa.send_url();
    let name = update
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or(row.name);
    let now = hub.now();
    hub.store().write(|txn| {
        txn.set_channel(&id, &name, Some(&send_url), &settings)?;
        // Calls that waited for this number (a refused token) are tried again now.
        txn.retry_deliveries_now(Some(&id), now)
    })?;
    hub.forget_channel_settings(&id);
    hub.wake_delivery();
    let row = find_channel(hub, &id)?;
    Ok(channel_view(row))
}

/// A bot channel's credentials, shown once: the bearer token the bot calls with, and the secret
/// that signs the events the hub sends it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BotCredentials {
    pub id: String,
    pub token: String,
    pub signing_secret: String,
}

fn checked_events_url(hub: &Hub, url: &str) -> Result<String, AdminError> {
    let url = url.trim().to_string();
    crate::egress::check_url(&url, hub.config().allow_private_urls, "events URL")
        .map_err(AdminError::Invalid)?;
    Ok(url)
}

/// Connects a bot through the bot API (`/bot/v1`); its events go to `events_url`.
pub fn add_bot_channel(
    hub: &Hub,
    name: &str,
    events_url: &str,
) -> Result<BotCredentials, AdminError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AdminError::Invalid("the channel needs a name".into()));
    }
    let events_url = checked_events_url(hub, events_url)?;
    let (token, signing_secret) = (random_secret(), random_secret());
    let settings = crate::channel::ChannelSettings {
        bot: Some(crate::bot_api::BotSettings {
            signing_secret: signing_secret.clone(),
            removed: false,
            draft_timeout: None,
        }),
        // A bot relays whatever kind its own channel takes; it says so by refusing an event.
        message_kinds: baton_protocol::payload::KNOWN_KINDS
            .iter()
            .map(|k| k.to_string())
            .collect(),
        ..Default::default()
    };
    let id = hub.new_id("ch");
    let channel = NewChannel {
        id: &id,
        kind: "bot",
        name,
        secret_hash: &secret_hash(&token),
        webhook_url: Some(&events_url),
        created_at: hub.now(),
    };
    hub.store().write(|txn| {
        txn.add_channel(&channel)?;
        txn.set_channel(&id, name, Some(&events_url), &settings)
    })?;
    Ok(BotCredentials {
        id,
        token,
        signing_secret,
    })
}

/// The longest a draft may wait for its channel's timeout.
pub const MAX_DRAFT_TIMEOUT_SECS: u64 = 30 * 24 * 3600;

/// What an admin may change about a bot channel; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct BotUpdate {
    pub name: Option<String>,
    pub events_url: Option<String>,
    /// Stop taking the bot's calls (its conversations stay).
    pub removed: Option<bool>,
    /// Seconds a drafted reply waits for an agent's decision; 0: for ever.
    pub draft_timeout_secs: Option<u64>,
    /// What an undecided draft becomes then: `reject` (the default) or `send`.
    pub on_draft_timeout: Option<String>,
}

/// A bot channel by id or name (a Botpress channel may have the same name).
fn bot_channel(hub: &Hub, key: &str) -> Result<crate::channel::ChannelRow, AdminError> {
    let key = key.trim();
    hub.store()
        .reader()?
        .channels()?
        .into_iter()
        .filter(|c| c.settings.bot.is_some())
        .find(|c| c.id == key || c.name == key)
        .ok_or_else(|| AdminError::Invalid(format!("no bot channel {key:?}")))
}

pub fn update_bot(hub: &Hub, key: &str, update: BotUpdate) -> Result<ChannelView, AdminError> {
    let row = bot_channel(hub, key)?;
    let mut settings = row.settings;
    let url = match update.events_url {
        Some(url) => Some(checked_events_url(hub, &url)?),
        None => row.webhook_url,
    };
    if let (Some(removed), Some(bot)) = (update.removed, settings.bot.as_mut()) {
        bot.removed = removed;
    }
    if let Some(bot) = settings.bot.as_mut() {
        let then = match update.on_draft_timeout.as_deref().map(str::trim) {
            Some(s) => Some(crate::drafts::OnTimeout::parse(s).ok_or_else(|| {
                AdminError::Invalid(format!(
                    "on_draft_timeout is \"reject\" or \"send\", not {s:?}"
                ))
            })?),
            None => None,
        };
        let seconds = update
            .draft_timeout_secs
            .or(bot.draft_timeout.map(|t| t.seconds))
            .filter(|s| *s > 0);
        if seconds.is_some_and(|s| s > MAX_DRAFT_TIMEOUT_SECS) {
            return Err(AdminError::Invalid(format!(
                "draft_timeout_secs is at most {MAX_DRAFT_TIMEOUT_SECS} (30 days)"
            )));
        }
        if then.is_some() && seconds.is_none() {
            return Err(AdminError::Invalid(
                "on_draft_timeout needs draft_timeout_secs (how long a draft waits)".into(),
            ));
        }
        bot.draft_timeout = seconds.map(|seconds| crate::drafts::DraftTimeout {
            seconds,
            then: then
                .or(bot.draft_timeout.map(|t| t.then))
                .unwrap_or(crate::drafts::OnTimeout::Reject),
        });
    }
    let name = update
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or(row.name);
    let now = hub.now();
    let removed = settings.bot.as_ref().is_some_and(|b| b.removed);
    let fronted = hub.store().write(|txn| {
        txn.set_channel(&row.id, &name, url.as_deref(), &settings)?;
        txn.retry_deliveries_now(Some(&row.id), now)?;
        // A removed bot no longer stands in front of any number: its customers reach the queue.
        let mut fronted = Vec::new();
        for mut number in txn.channels()? {
            let Some(wa) = number.settings.whatsapp.as_mut() else {
                continue;
            };
            if removed && wa.bot_channel.as_deref() == Some(row.id.as_str()) {
                wa.bot_channel = None;
                txn.set_channel(
                    &number.id,
                    &number.name,
                    number.webhook_url.as_deref(),
                    &number.settings,
                )?;
                fronted.push(number.id);
            }
        }
        Ok::<_, AdminError>(fronted)
    })?;
    for id in std::iter::once(&row.id).chain(&fronted) {
        hub.forget_channel_settings(id);
    }
    hub.wake_delivery();
    Ok(channel_view(find_channel(hub, &row.id)?))
}

/// New credentials for a bot: a new token (the old one stops working within seconds) and a new
/// signing secret (events are signed with it from now on). Shown only now.
pub fn rotate_bot_secret(hub: &Hub, key: &str) -> Result<BotCredentials, AdminError> {
    let row = bot_channel(hub, key)?;
    let (token, signing_secret) = (random_secret(), random_secret());
    let mut settings = row.settings;
    if let Some(bot) = settings.bot.as_mut() {
        bot.signing_secret = signing_secret.clone();
    }
    hub.store().write(|txn| {
        txn.set_channel_secret(&row.id, &secret_hash(&token))?;
        txn.set_channel(&row.id, &row.name, row.webhook_url.as_deref(), &settings)
    })?;
    hub.forget_channel_settings(&row.id);
    Ok(BotCredentials {
        id: row.id,
        token,
        signing_secret,
    })
}

/// Gives a Botpress channel a new endpoint secret; the old one stops working at once (within a few
/// seconds for a hub running in another process). Like `add`, the new path is shown only now.
pub fn rotate_botpress_secret(hub: &Hub, key: &str) -> Result<NewBotpressChannel, AdminError> {
    let id = channel_id(hub, key)?;
    let secret = random_secret();
    hub.store()
        .write(|txn| txn.set_channel_secret(&id, &secret_hash(&secret)))?;
    hub.forget_channel_ids();
    tracing::info!(channel = %id, "botpress: endpoint secret rotated");
    Ok(NewBotpressChannel {
        id,
        endpoint_path: format!("/botpress/{secret}"),
    })
}

/// Replaces the team's tag list; agents tag handoffs only from it.
pub fn set_tags(hub: &Hub, tags: &[String]) -> Result<Vec<String>, AdminError> {
    let tags = crate::handoffs::tidy_tags(tags);
    if let Some(long) = tags.iter().find(|t| t.chars().count() > 64) {
        return Err(AdminError::Invalid(format!(
            "the tag {long:?} is longer than 64 characters"
        )));
    }
    hub.store().write(|txn| {
        txn.put(EventData::Tags(baton_protocol::TagList {
            tags: tags.clone(),
        }))?;
        Ok::<_, AdminError>(())
    })?;
    Ok(tags)
}

/// Issues a bearer token for an agent without a password; for solo mode, where the app and the hub
/// are one process and the local agent never types a password. `replacing` (the previous token,
/// no longer usable) is revoked in the same transaction, so tokens never pile up.
pub fn issue_token(
    hub: &Hub,
    agent_id: &str,
    replacing: Option<&str>,
) -> Result<String, AdminError> {
    let token = random_secret();
    let now = hub.now();
    hub.store().write(|txn| {
        if let Some(old) = replacing {
            txn.remove_token(&secret_hash(old))?;
        }
        txn.add_token(&secret_hash(&token), agent_id, now)
    })?;
    Ok(token)
}

/// The first agent with `email`, if any.
pub fn find_agent(hub: &Hub, email: &str) -> Result<Option<Agent>, AdminError> {
    Ok(hub.store().reader()?.agent_by_email(email)?)
}

/// What an admin may change about an agent; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AgentUpdate {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub capacity: Option<u32>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
    /// The tags the agent is the one for (each from the team's list); empty clears them.
    pub skills: Option<Vec<String>>,
}

/// Every agent, as the team sees them.
pub fn list_agents(hub: &Hub) -> Result<Vec<Agent>, AdminError> {
    Ok(hub.store().reader()?.agents()?)
}

/// Finds an agent by id or email.
pub fn agent_by_key(hub: &Hub, key: &str) -> Result<Agent, AdminError> {
    let read = hub.store().reader()?;
    let found = match read.agent(key.trim())? {
        Some(agent) => Some(agent),
        None => read.agent_by_email(key.trim())?,
    };
    found.ok_or_else(|| AdminError::Invalid(format!("no agent {key:?}")))
}

pub fn update_agent(hub: &Hub, key: &str, update: AgentUpdate) -> Result<Agent, AdminError> {
    let mut agent = agent_by_key(hub, key)?;
    let hash = match &update.password {
        Some(p) if p.chars().count() < 8 => {
            return Err(AdminError::Invalid(
                "the password needs at least 8 characters".into(),
            ))
        }
        Some(p) => Some(hash_password(p).map_err(|e| AdminError::Hash(e.to_string()))?),
        None => None,
    };
    if let Some(name) = update
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
    {
        agent.name = name;
    }
    if let Some(role) = update.role {
        agent.role = role;
    }
    if let Some(capacity) = update.capacity {
        if !(1..=100).contains(&capacity) {
            return Err(AdminError::Invalid(
                "capacity must be between 1 and 100".into(),
            ));
        }
        agent.capacity = capacity;
    }
    if let Some(skills) = update.skills {
        let team = hub.store().reader()?.tags()?;
        let mut wanted: Vec<String> = Vec::new();
        for skill in skills.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            if !team.iter().any(|t| t == skill) {
                return Err(AdminError::Invalid(format!(
                    "{skill:?} is not one of the team's tags ({}); add it with `baton-hub tags set` first",
                    team.join(", ")
                )));
            }
            if !wanted.iter().any(|w| w == skill) {
                wanted.push(skill.to_string());
            }
        }
        agent.skills = wanted;
    }
    if let Some(disabled) = update.disabled {
        agent.disabled = disabled;
        if disabled {
            agent.presence = baton_protocol::Presence::Offline;
        }
    }
    let now = hub.now();
    let signs_out = agent.disabled || hash.is_some();
    hub.store().write(|txn| {
        // A team always keeps one enabled admin: otherwise nobody could manage it from the app.
        if agent.role != Role::Admin || agent.disabled {
            let active_admin = |a: &Agent| a.role == Role::Admin && !a.disabled;
            let other_admins = txn
                .agents()?
                .iter()
                .filter(|a| a.id != agent.id && active_admin(a))
                .count();
            let was_admin = txn.agent(&agent.id)?.is_some_and(|a| active_admin(&a));
            if was_admin && other_admins == 0 {
                return Err(AdminError::Invalid(format!(
                    "{} is the team's last admin; make someone else an admin first",
                    agent.name
                )));
            }
        }
        txn.set_agent_access(&agent.id, agent.disabled, hash.as_deref())?;
        // A new password signs the agent out everywhere.
        if hash.is_some() || agent.disabled {
            txn.remove_tokens_of(&agent.id)?;
        }
        if agent.disabled {
            // Their customers go back to the queue rather than wait on someone who left.
            crate::handoffs::return_to_queue(txn, &agent.id, now)?;
        }
        txn.put(EventData::Agent(agent.clone()))?;
        Ok::<_, AdminError>(())
    })?;
    if signs_out {
        // Their open streams close now, not at their next request.
        hub.revoke(crate::Revoked::Agent(agent.id.clone()));
    }
    Ok(agent)
}

/// A channel as an admin sees it: settings without the secrets.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelView {
    pub id: String,
    pub name: String,
    /// `botpress`, `whatsapp` or `bot`.
    pub kind: String,
    /// WhatsApp: the number's id at Meta, where its webhook goes, and why it cannot send (if so).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub handoff_phrases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_reply: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    /// WhatsApp: the bot channel in front of the number, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot_channel: Option<String>,
    pub webhook_url: Option<String>,
    pub bot_id: Option<String>,
    /// Whether a Botpress token is stored (it is never shown).
    pub bot_token_set: bool,
    pub assign_message: std::collections::BTreeMap<String, String>,
    pub transfer_message: std::collections::BTreeMap<String, String>,
    pub session_ended_notice: String,
    pub message_kinds: Vec<String>,
    pub pending_timeout_secs: Option<u64>,
    /// `manual`, `round-robin` or `least-busy`.
    pub routing: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_target_secs: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub escalate_to: Vec<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub no_agent_message: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_hours: Option<String>,
    /// Bot: how long a drafted reply waits for an agent, and what it becomes then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft_timeout: Option<crate::drafts::DraftTimeout>,
}

/// What an admin may change about a channel; `None` leaves a field as it is. In the message maps,
/// an empty text removes that language.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ChannelUpdate {
    pub name: Option<String>,
    pub webhook_url: Option<String>,
    pub bot_id: Option<String>,
    pub bot_token: Option<String>,
    pub botpress_api_url: Option<String>,
    pub assign_message: Option<std::collections::BTreeMap<String, String>>,
    pub transfer_message: Option<std::collections::BTreeMap<String, String>>,
    pub session_ended_notice: Option<String>,
    pub message_kinds: Option<Vec<String>>,
    /// Seconds a handoff may wait for an agent; 0 means no limit.
    pub pending_timeout_secs: Option<u64>,
    /// `manual`, `round-robin` or `least-busy`.
    pub routing: Option<String>,
    /// Seconds a customer should wait at most; 0 removes the target.
    pub wait_target_secs: Option<u64>,
    /// Emails of the agents told of a handoff waiting twice the target (empty: nobody).
    pub escalate_to: Option<Vec<String>>,
    /// Language → what a customer queued with no agent online is told (empty text removes it).
    pub no_agent_message: Option<std::collections::BTreeMap<String, String>>,
    /// `Europe/Madrid mon-fri 09:00-18:00`; empty removes them.
    pub business_hours: Option<String>,
}

pub fn list_channels(hub: &Hub) -> Result<Vec<ChannelView>, AdminError> {
    Ok(hub
        .store()
        .reader()?
        .channels()?
        .into_iter()
        .map(channel_view)
        .collect())
}

fn channel_view(row: crate::channel::ChannelRow) -> ChannelView {
    let wa = row.settings.whatsapp.clone();
    let whatsapp = row.kind == "whatsapp";
    ChannelView {
        phone_number_id: wa.as_ref().map(|w| w.phone_number_id.clone()),
        webhook_path: whatsapp.then(|| crate::whatsapp::webhook_path(&row.id)),
        broken: wa.as_ref().and_then(|w| w.broken.clone()),
        handoff_phrases: wa
            .as_ref()
            .map(|w| w.handoff_phrases.clone())
            .unwrap_or_default(),
        auto_reply: wa.as_ref().and_then(|w| w.auto_reply.clone()),
        bot_channel: wa.as_ref().and_then(|w| w.bot_channel.clone()),
        draft_timeout: row.settings.bot.as_ref().and_then(|b| b.draft_timeout),
        routing: row.settings.routing.as_str(),
        wait_target_secs: row.settings.wait_target_secs,
        escalate_to: row.settings.escalate_to.clone(),
        no_agent_message: row.settings.no_agent_message.clone(),
        business_hours: row
            .settings
            .business_hours
            .as_ref()
            .map(|b| b.as_str().to_string()),
        removed: wa.as_ref().is_some_and(|w| w.removed)
            || row.settings.bot.as_ref().is_some_and(|b| b.removed),
        id: row.id,
        name: row.name,
        kind: row.kind.clone(),
        webhook_url: row.webhook_url,
        bot_id: row.settings.bot_id,
        bot_token_set: row.settings.bot_token.is_some(),
        assign_message: row.settings.assign_message,
        transfer_message: row.settings.transfer_message,
        session_ended_notice: row.settings.session_ended_notice,
        message_kinds: row.settings.message_kinds,
        pending_timeout_secs: row.settings.pending_timeout_secs,
    }
}

/// Finds a channel by id or name.
pub fn channel_id(hub: &Hub, key: &str) -> Result<String, AdminError> {
    Ok(find_channel(hub, key)?.id)
}

/// A channel by id or name (an id wins over another channel's name).
fn find_channel(hub: &Hub, key: &str) -> Result<crate::channel::ChannelRow, AdminError> {
    let key = key.trim();
    let mut channels = hub.store().reader()?.channels()?;
    let at = channels
        .iter()
        .position(|c| c.id == key)
        .or_else(|| channels.iter().position(|c| c.name == key))
        .ok_or_else(|| AdminError::Invalid(format!("no channel {key:?}")))?;
    Ok(channels.swap_remove(at))
}

pub fn update_channel(
    hub: &Hub,
    key: &str,
    update: ChannelUpdate,
) -> Result<ChannelView, AdminError> {
    let row = find_channel(hub, key)?;
    let id = row.id.clone();
    let mut settings = row.settings;
    let allow_private = hub.config().allow_private_urls;
    let webhook_url = match update.webhook_url.as_deref().map(str::trim) {
        Some("") => None,
        Some(url) => {
            crate::egress::check_url(url, allow_private, "webhook URL")
                .map_err(AdminError::Invalid)?;
            Some(url.trim_end_matches('/').to_string())
        }
        None => row.webhook_url,
    };
    let blank_is_none = |v: String| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    if let Some(v) = update.bot_id {
        settings.bot_id = blank_is_none(v);
    }
    if let Some(v) = update.bot_token {
        settings.bot_token = blank_is_none(v);
    }
    if let Some(v) = update.botpress_api_url {
        crate::egress::check_url(&v, allow_private, "Botpress API URL")
            .map_err(AdminError::Invalid)?;
        settings.botpress_api_url = v.trim().trim_end_matches('/').to_string();
    }
    let merge = |into: &mut std::collections::BTreeMap<String, String>,
                 from: std::collections::BTreeMap<String, String>| {
        for (lang, text) in from {
            if text.trim().is_empty() {
                into.remove(&lang);
            } else {
                into.insert(lang.trim().to_lowercase(), text.trim().to_string());
            }
        }
    };
    if let Some(m) = update.no_agent_message {
        merge(&mut settings.no_agent_message, m);
    }
    if let Some(hours) = update.business_hours {
        settings.business_hours = match hours.trim() {
            "" => None,
            text => Some(crate::hours::BusinessHours::new(text).map_err(AdminError::Invalid)?),
        };
    }
    if let Some(m) = update.assign_message {
        merge(&mut settings.assign_message, m);
    }
    if let Some(m) = update.transfer_message {
        merge(&mut settings.transfer_message, m);
    }
    if let Some(v) = update.session_ended_notice {
        settings.session_ended_notice = v.trim().to_string();
    }
    if let Some(kinds) = update.message_kinds {
        let kinds: Vec<String> = kinds.iter().map(|k| k.trim().to_string()).collect();
        if let Some(unknown) = kinds
            .iter()
            .find(|k| !baton_protocol::payload::KNOWN_KINDS.contains(&k.as_str()))
        {
            return Err(AdminError::Invalid(format!(
                "{unknown:?} is not a Botpress message type (known: {})",
                baton_protocol::payload::KNOWN_KINDS.join(", ")
            )));
        }
        if !kinds.iter().any(|k| k == "text") {
            return Err(AdminError::Invalid(
                "the message kinds must include text".into(),
            ));
        }
        settings.message_kinds = kinds;
    }
    if let Some(r) = update.routing.as_deref() {
        settings.routing = crate::routing::Routing::parse(r).ok_or_else(|| {
            AdminError::Invalid(format!(
                "routing is \"manual\", \"round-robin\" or \"least-busy\", not {r:?}"
            ))
        })?;
    }
    if let Some(secs) = update.wait_target_secs {
        settings.wait_target_secs = (secs > 0).then_some(secs);
    }
    if let Some(emails) = update.escalate_to {
        let mut to = Vec::new();
        for email in emails.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let agent = hub
                .store()
                .reader()?
                .agent_by_email(email)?
                .ok_or_else(|| AdminError::Invalid(format!("no agent {email:?} to escalate to")))?;
            to.push(agent.email);
        }
        settings.escalate_to = to;
    }
    if let Some(secs) = update.pending_timeout_secs {
        settings.pending_timeout_secs = (secs > 0).then_some(secs);
    }
    let name = update
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or(row.name);
    let now = hub.now();
    hub.store().write(|txn| {
        txn.set_channel(&id, &name, webhook_url.as_deref(), &settings)?;
        // Calls waiting for this channel (perhaps for a URL) are tried again now.
        txn.retry_deliveries_now(Some(&id), now)
    })?;
    hub.forget_channel_settings(&id);
    hub.wake_delivery();
    let row = find_channel(hub, &id)?;
    Ok(channel_view(row))
}

pub fn list_tags(hub: &Hub) -> Result<Vec<String>, AdminError> {
    Ok(hub.store().reader()?.tags()?)
}

pub fn list_templates(hub: &Hub) -> Result<Vec<baton_protocol::Template>, AdminError> {
    Ok(hub.store().reader()?.templates()?)
}

/// Adds a canned reply, or replaces the text of the one with that name.
pub fn put_template(
    hub: &Hub,
    name: &str,
    text: &str,
) -> Result<baton_protocol::Template, AdminError> {
    let name = name.trim().trim_start_matches(':');
    if name.is_empty() || name.chars().count() > 64 || name.contains(char::is_whitespace) {
        return Err(AdminError::Invalid(
            "a template name is 1 to 64 characters without spaces (agents type :name)".into(),
        ));
    }
    if text.trim().is_empty() {
        return Err(AdminError::Invalid("the template has no text".into()));
    }
    let existing = list_templates(hub)?.into_iter().find(|t| t.name == name);
    let template = baton_protocol::Template {
        id: existing.map(|t| t.id).unwrap_or_else(|| hub.new_id("tp")),
        name: name.to_string(),
        text: text.trim().to_string(),
        deleted: false,
    };
    hub.store().write(|txn| {
        txn.put(EventData::Template(template.clone()))?;
        Ok::<_, AdminError>(())
    })?;
    Ok(template)
}

pub fn remove_template(hub: &Hub, key: &str) -> Result<(), AdminError> {
    let template = list_templates(hub)?
        .into_iter()
        .find(|t| t.id == key || t.name == key.trim_start_matches(':'))
        .ok_or_else(|| AdminError::Invalid(format!("no template {key:?}")))?;
    hub.store().write(|txn| {
        txn.put(EventData::Template(baton_protocol::Template {
            deleted: true,
            ..template
        }))?;
        Ok::<_, AdminError>(())
    })?;
    Ok(())
}
