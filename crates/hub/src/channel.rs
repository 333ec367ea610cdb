//! A Botpress channel's settings: where replies go, what the customer is told when an agent takes
//! over or hands on, and which message kinds the bot relays.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const DEFAULT_ASSIGN_MESSAGE: &str = "You have been assigned to our agent {{agentName}}.";
pub const DEFAULT_TRANSFER_MESSAGE: &str = "You are being transferred to our agent {{agentName}}.";

/// Per-channel settings, kept as JSON in `channels.settings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSettings {
    /// Botpress bot id and token, used to resolve `closeRemoteTicket` (ARCHITECTURE.md, Botpress protocol §1.8.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token: Option<String>,
    /// Language → text sent to the customer when an agent takes the handoff; `{{agentName}}` is
    /// replaced. An empty map sends nothing.
    #[serde(default = "default_assign")]
    pub assign_message: BTreeMap<String, String>,
    /// Language → text sent when the handoff is transferred to another agent.
    #[serde(default = "default_transfer")]
    pub transfer_message: BTreeMap<String, String>,
    /// Where the Botpress API is (for the `closeRemoteTicket` lookup); tests point it at a fake.
    #[serde(default = "default_api_url")]
    pub botpress_api_url: String,
    /// The notice the HITL plugin writes into the ticket when the customer ends the session
    /// (ARCHITECTURE.md, Botpress protocol §1.6); seeing it cancels the handoff. Empty disables the match.
    #[serde(default = "default_ended_notice")]
    pub session_ended_notice: String,
    /// The Botpress message kinds agents may send on this channel (the bot's HITL plugin decides
    /// what it relays; 0.2.2-era plugins relay text only).
    #[serde(default = "default_kinds")]
    pub message_kinds: Vec<String>,
    /// A handoff no agent has taken this many seconds after it was queued is cancelled and the
    /// conversation handed back to the bot (`/stop-hitl`), so no customer waits forever. `None`
    /// waits as long as it takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_timeout_secs: Option<u64>,
    /// A WhatsApp number's settings (for channels of kind `whatsapp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<crate::whatsapp::WhatsAppSettings>,
    /// A bot's settings (for channels of kind `bot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<crate::bot_api::BotSettings>,
    /// How waiting handoffs find an agent: agents take them (`manual`), or the hub gives them out.
    #[serde(default)]
    pub routing: crate::routing::Routing,
    /// How long a customer should wait at most: past it everyone online is told again, past twice
    /// it the `escalate_to` agents are. `None`: no target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_target_secs: Option<u64>,
    /// Who hears of a handoff waiting twice the target (agents' emails).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalate_to: Vec<String>,
    /// Language → what a customer queued while no agent is online is told, once per handoff.
    /// Empty: nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub no_agent_message: BTreeMap<String, String>,
    /// When the team works; outside them a queued customer gets the no-agent message too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_hours: Option<crate::hours::BusinessHours>,
}

fn default_assign() -> BTreeMap<String, String> {
    BTreeMap::from([("en".to_string(), DEFAULT_ASSIGN_MESSAGE.to_string())])
}

fn default_transfer() -> BTreeMap<String, String> {
    BTreeMap::from([("en".to_string(), DEFAULT_TRANSFER_MESSAGE.to_string())])
}

fn default_api_url() -> String {
    "https://api.botpress.cloud".to_string()
}

pub const DEFAULT_ENDED_NOTICE: &str = "( The user has ended the session. )";

fn default_ended_notice() -> String {
    DEFAULT_ENDED_NOTICE.to_string()
}

fn default_kinds() -> Vec<String> {
    vec!["text".to_string()]
}

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            bot_id: None,
            bot_token: None,
            assign_message: default_assign(),
            transfer_message: default_transfer(),
            botpress_api_url: default_api_url(),
            session_ended_notice: default_ended_notice(),
            message_kinds: default_kinds(),
            pending_timeout_secs: None,
            whatsapp: None,
            bot: None,
            routing: crate::routing::Routing::Manual,
            wait_target_secs: None,
            escalate_to: Vec::new(),
            no_agent_message: BTreeMap::new(),
            business_hours: None,
        }
    }
}

/// A text for `language` (falling back to English, then any), with `{{agentName}}` filled in.
pub fn localized(
    texts: &BTreeMap<String, String>,
    language: Option<&str>,
    agent_name: &str,
) -> Option<String> {
    let language = language.map(|l| l.split(['-', '_']).next().unwrap_or(l).to_lowercase());
    let text = language
        .as_deref()
        .and_then(|l| texts.get(l))
        .or_else(|| texts.get("en"))
        .or_else(|| texts.values().next())?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.replace("{{agentName}}", agent_name))
}

/// What the hub knows of a channel.
#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub id: String,
    /// `botpress`, `whatsapp` or `bot`.
    pub kind: String,
    pub name: String,
    pub webhook_url: Option<String>,
    pub settings: ChannelSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_customers_language_is_used_with_the_agents_name_filled_in() {
        let texts = BTreeMap::from([
            (
                "en".to_string(),
                "You have been assigned to our agent {{agentName}}.".to_string(),
            ),
            (
                "fr".to_string(),
                "Vous êtes maintenant avec {{agentName}}.".to_string(),
            ),
        ]);
        assert_eq!(
            localized(&texts, Some("fr-CA"), "Alice").as_deref(),
            Some("Vous êtes maintenant avec Alice.")
        );
        assert_eq!(
            localized(&texts, Some("de"), "Alice").as_deref(),
            Some("You have been assigned to our agent Alice.")
        );
        assert_eq!(localized(&BTreeMap::new(), None, "Alice"), None);
    }
}
