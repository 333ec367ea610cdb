//! What an admin does to a hub's data directory: add agents and Botpress channels. The CLI and the
//! app's solo mode call these directly on the store; secrets are returned once and kept only hashed.

use baton_protocol::{Agent, EventData, Role};
use rusqlite::{params, OptionalExtension};

use crate::auth::{hash_password, random_secret, secret_hash};
use crate::store::StoreError;
use crate::Hub;

#[derive(Debug, thiserror::Error)]
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

impl From<rusqlite::Error> for AdminError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

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
    if !email.contains('@') || email.len() > 254 {
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
        let taken: Option<String> = txn
            .conn()
            .query_row("SELECT id FROM agents WHERE email = ?1", [email], |r| {
                r.get(0)
            })
            .optional()?;
        if taken.is_some() {
            return Err(AdminError::EmailTaken(email.to_string()));
        }
        txn.conn().execute(
            "INSERT INTO agents (id, email, password_hash, data) VALUES (?1, ?2, ?3, '{}')",
            params![agent.id, agent.email, hash],
        )?;
        txn.put(EventData::Agent(agent.clone()))?;
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
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(AdminError::Invalid(format!(
                "{url:?} is not an http(s) URL; copy the webhook URL from the integration's page in Botpress"
            )));
        }
    }
    let id = hub.new_id("ch");
    let secret = random_secret();
    let now = hub.now().to_rfc3339();
    hub.store().write(|txn| {
        txn.conn().execute(
            "INSERT INTO channels (id, kind, name, secret_hash, webhook_url, created_at)
             VALUES (?1, 'botpress', ?2, ?3, ?4, ?5)",
            params![
                id,
                name,
                secret_hash(&secret),
                webhook_url.map(|u| u.trim_end_matches('/')),
                now
            ],
        )?;
        Ok::<_, AdminError>(())
    })?;
    Ok(NewBotpressChannel {
        id,
        endpoint_path: format!("/botpress/{secret}"),
    })
}

/// Replaces the team's tag list; agents tag handoffs only from it.
pub fn set_tags(hub: &Hub, tags: &[String]) -> Result<Vec<String>, AdminError> {
    let mut tags: Vec<String> = tags
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    tags.sort();
    tags.dedup();
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
/// are one process and the local agent never types a password.
pub fn issue_token(hub: &Hub, agent_id: &str) -> Result<String, AdminError> {
    let token = random_secret();
    let now = hub.now().to_rfc3339();
    hub.store().write(|txn| {
        txn.conn().execute(
            "INSERT INTO tokens (token_hash, agent_id, created_at) VALUES (?1, ?2, ?3)",
            params![secret_hash(&token), agent_id, now],
        )?;
        Ok::<_, AdminError>(())
    })?;
    Ok(token)
}

/// The first agent with `email`, if any.
pub fn find_agent(hub: &Hub, email: &str) -> Result<Option<Agent>, AdminError> {
    let data: Option<String> = hub.store().read(|conn| {
        conn.query_row("SELECT data FROM agents WHERE email = ?1", [email], |r| {
            r.get(0)
        })
        .optional()
        .map_err(StoreError::from)
    })?;
    match data {
        Some(d) => Ok(Some(serde_json::from_str(&d).map_err(StoreError::from)?)),
        None => Ok(None),
    }
}

/// How many Botpress channels the hub has.
pub fn botpress_channel_count(hub: &Hub) -> Result<u64, AdminError> {
    Ok(hub.store().read(|conn| {
        conn.query_row(
            "SELECT COUNT(*) FROM channels WHERE kind = 'botpress'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(StoreError::from)
    })? as u64)
}
