//! Agent commands, typed once: every action the agent API takes, how it travels (a route under
//! `/api/v1` and a JSON body with the client's `txn_id`), and how the hub reads it back. The hub's
//! routes, the device's outbox, the app's commands and the CLI all speak [`AgentCommand`], so a
//! command's shape is written down here and nowhere else.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Presence;

/// One thing an agent does. Sent with a `txn_id` the hub records, so a retry applies it once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AgentCommand {
    /// Take a waiting handoff.
    Assign { handoff_id: String },
    /// Put a held handoff back in the queue.
    Release { handoff_id: String },
    /// Give a held handoff to another agent (an id or an email).
    Transfer { handoff_id: String, to: String },
    /// End the handoff; the bot has the conversation again.
    Resolve {
        handoff_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        label: Option<String>,
    },
    /// End the handoff without resolving it (admins only).
    Cancel { handoff_id: String },
    /// Set the handoff's tags (from the team's list).
    Tags {
        handoff_id: String,
        tags: Vec<String>,
    },
    /// Reply to the customer: `text`, or a Botpress message `type` with its `payload`.
    Message {
        conversation_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        text: Option<String>,
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        kind: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional, type = "Record<string, unknown>")]
        payload: Option<Value>,
    },
    /// A note for the team, never shown to the customer.
    Note {
        conversation_id: String,
        text: String,
    },
    /// Send again an own message whose delivery failed or is uncertain.
    Resend { message_id: String },
    /// Let a bot's drafted reply go out: as drafted, or as `text` when the agent edited it.
    Approve {
        message_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        text: Option<String>,
    },
    /// Keep a bot's drafted reply from the customer, saying why.
    Reject {
        message_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        reason: Option<String>,
    },
    /// The agent opened the conversation: channels that show read receipts (WhatsApp) mark the
    /// customer's messages read.
    Read { conversation_id: String },
    /// "Mark as unread": the conversation shows as unread on all of the agent's devices until
    /// they open it again.
    Unread { conversation_id: String },
    /// Go online or offline.
    Presence { status: Presence },
}

/// A command's JSON body on the wire: its `txn_id` and whichever of these fields it takes. The
/// field order is part of the hub's record of what a `txn_id` asked for (which leaves the
/// `txn_id` out); keep it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub payload: Option<Value>,
    /// Left out when absent, so what older commands recorded reads the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a request is not a command the hub takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    #[error("there is no {0:?} command")]
    Unknown(String),
    #[error("the body needs {0}")]
    Missing(&'static str),
    #[error("{0}")]
    Invalid(String),
}

impl AgentCommand {
    /// The action's name, as the outbox and logs show it (`assign`, `message`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Assign { .. } => "assign",
            Self::Release { .. } => "release",
            Self::Transfer { .. } => "transfer",
            Self::Resolve { .. } => "resolve",
            Self::Cancel { .. } => "cancel",
            Self::Tags { .. } => "tags",
            Self::Message { .. } => "message",
            Self::Note { .. } => "note",
            Self::Resend { .. } => "resend",
            Self::Approve { .. } => "approve",
            Self::Reject { .. } => "reject",
            Self::Read { .. } => "read",
            Self::Unread { .. } => "unread",
            Self::Presence { .. } => "presence",
        }
    }

    /// What it acts on: a handoff, conversation or message id (empty for presence).
    pub fn target(&self) -> &str {
        match self {
            Self::Assign { handoff_id }
            | Self::Release { handoff_id }
            | Self::Transfer { handoff_id, .. }
            | Self::Resolve { handoff_id, .. }
            | Self::Cancel { handoff_id }
            | Self::Tags { handoff_id, .. } => handoff_id,
            Self::Message {
                conversation_id, ..
            }
            | Self::Note {
                conversation_id, ..
            }
            | Self::Read { conversation_id }
            | Self::Unread { conversation_id } => conversation_id,
            Self::Resend { message_id }
            | Self::Approve { message_id, .. }
            | Self::Reject { message_id, .. } => message_id,
            Self::Presence { .. } => "",
        }
    }

    /// The conversation it writes into (a reply or a note), for showing it there while pending.
    pub fn conversation_id(&self) -> Option<&str> {
        match self {
            Self::Message {
                conversation_id, ..
            }
            | Self::Note {
                conversation_id, ..
            } => Some(conversation_id),
            _ => None,
        }
    }

    /// The text of a reply or note.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Message { text, .. } => text.as_deref(),
            Self::Note { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The same reply or note with new text; `None` for a command that has no text.
    pub fn with_text(&self, new: &str) -> Option<Self> {
        let mut edited = self.clone();
        match &mut edited {
            Self::Message {
                text: Some(text), ..
            }
            | Self::Note { text, .. } => *text = new.to_string(),
            _ => return None,
        }
        Some(edited)
    }

    /// The route it is posted to, under `/api/v1`.
    pub fn path(&self) -> String {
        let target = self.target();
        match self {
            Self::Message { .. } => format!("/conversations/{target}/messages"),
            Self::Note { .. } => format!("/conversations/{target}/notes"),
            Self::Read { .. } => format!("/conversations/{target}/read"),
            Self::Unread { .. } => format!("/conversations/{target}/unread"),
            Self::Resend { .. } | Self::Approve { .. } | Self::Reject { .. } => {
                format!("/messages/{target}/{}", self.name())
            }
            Self::Presence { .. } => "/presence".into(),
            other => format!("/handoffs/{target}/{}", other.name()),
        }
    }

    /// Its body on the wire.
    pub fn fields(&self, txn_id: &str) -> CommandFields {
        let mut fields = CommandFields {
            txn_id: Some(txn_id.to_string()),
            ..CommandFields::default()
        };
        match self {
            Self::Transfer { to, .. } => fields.to = Some(to.clone()),
            Self::Resolve { label, .. } => fields.label = label.clone(),
            Self::Tags { tags, .. } => fields.tags = Some(tags.clone()),
            Self::Message {
                text,
                kind,
                payload,
                ..
            } => {
                fields.text = text.clone();
                fields.kind = kind.clone();
                fields.payload = payload.clone();
            }
            Self::Note { text, .. } => fields.text = Some(text.clone()),
            Self::Approve { text, .. } => fields.text = text.clone(),
            Self::Reject { reason, .. } => fields.reason = reason.clone(),
            Self::Presence { status } => fields.status = Some(status.as_str().into()),
            Self::Assign { .. }
            | Self::Release { .. }
            | Self::Cancel { .. }
            | Self::Resend { .. }
            | Self::Read { .. }
            | Self::Unread { .. } => {}
        }
        fields
    }

    /// Reads a command back from its route's parts: `kind` is the collection (`handoffs`,
    /// `conversations`, `messages`, `presence`), `target` the id in the path, `action` the last
    /// segment.
    pub fn from_wire(
        kind: &str,
        target: &str,
        action: &str,
        fields: &CommandFields,
    ) -> Result<Self, CommandError> {
        let handoff_id = target.to_string();
        let need = |v: &Option<String>, what| v.clone().ok_or(CommandError::Missing(what));
        Ok(match (kind, action) {
            ("handoffs", "assign") => Self::Assign { handoff_id },
            ("handoffs", "release") => Self::Release { handoff_id },
            ("handoffs", "cancel") => Self::Cancel { handoff_id },
            ("handoffs", "transfer") => Self::Transfer {
                handoff_id,
                to: need(&fields.to, "\"to\"")?,
            },
            ("handoffs", "resolve") => Self::Resolve {
                handoff_id,
                label: fields.label.clone(),
            },
            ("handoffs", "tags") => Self::Tags {
                handoff_id,
                tags: fields
                    .tags
                    .clone()
                    .ok_or(CommandError::Missing("\"tags\": [ … ]"))?,
            },
            ("conversations", "messages") => Self::Message {
                conversation_id: target.to_string(),
                text: fields.text.clone(),
                kind: fields.kind.clone(),
                payload: fields.payload.clone(),
            },
            ("conversations", "notes") => Self::Note {
                conversation_id: target.to_string(),
                text: need(&fields.text, "\"text\"")?,
            },
            ("conversations", "read") => Self::Read {
                conversation_id: target.to_string(),
            },
            ("conversations", "unread") => Self::Unread {
                conversation_id: target.to_string(),
            },
            ("messages", "resend") => Self::Resend {
                message_id: target.to_string(),
            },
            ("messages", "approve") => Self::Approve {
                message_id: target.to_string(),
                text: fields.text.clone(),
            },
            ("messages", "reject") => Self::Reject {
                message_id: target.to_string(),
                reason: fields.reason.clone(),
            },
            ("presence", "") => Self::Presence {
                status: match fields.status.as_deref() {
                    Some("online") => Presence::Online,
                    Some("away") => Presence::Away,
                    Some("offline") => Presence::Offline,
                    other => {
                        return Err(CommandError::Invalid(format!(
                            "status must be \"online\", \"away\" or \"offline\", not {other:?}"
                        )))
                    }
                },
            },
            (_, action) => return Err(CommandError::Unknown(action.to_string())),
        })
    }

    /// Reads a command back from the path [`AgentCommand::path`] made and its body.
    pub fn from_path(path: &str, fields: &CommandFields) -> Result<Self, CommandError> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            ["presence"] => Self::from_wire("presence", "", "", fields),
            [kind, target, action] => Self::from_wire(kind, target, action, fields),
            _ => Err(CommandError::Unknown(path.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_command() -> Vec<AgentCommand> {
        vec![
            AgentCommand::Assign {
                handoff_id: "h1".into(),
            },
            AgentCommand::Release {
                handoff_id: "h1".into(),
            },
            AgentCommand::Transfer {
                handoff_id: "h1".into(),
                to: "b@x".into(),
            },
            AgentCommand::Resolve {
                handoff_id: "h1".into(),
                label: Some("refund".into()),
            },
            AgentCommand::Cancel {
                handoff_id: "h1".into(),
            },
            AgentCommand::Tags {
                handoff_id: "h1".into(),
                tags: vec!["vip".into()],
            },
            AgentCommand::Message {
                conversation_id: "c1".into(),
                text: Some("héllo".into()),
                kind: None,
                payload: None,
            },
            AgentCommand::Message {
                conversation_id: "c1".into(),
                text: None,
                kind: Some("image".into()),
                payload: Some(serde_json::json!({"imageUrl": "https://x/a.png"})),
            },
            AgentCommand::Note {
                conversation_id: "c1".into(),
                text: "called back".into(),
            },
            AgentCommand::Resend {
                message_id: "m1".into(),
            },
            AgentCommand::Approve {
                message_id: "m1".into(),
                text: Some("Your refund is on its way".into()),
            },
            AgentCommand::Approve {
                message_id: "m1".into(),
                text: None,
            },
            AgentCommand::Reject {
                message_id: "m1".into(),
                reason: Some("wrong amount".into()),
            },
            AgentCommand::Read {
                conversation_id: "c1".into(),
            },
            AgentCommand::Unread {
                conversation_id: "c1".into(),
            },
            AgentCommand::Presence {
                status: Presence::Offline,
            },
        ]
    }

    #[test]
    fn every_command_reads_back_from_its_route_and_body() {
        for command in every_command() {
            let fields = command.fields("t1");
            let wire: CommandFields =
                serde_json::from_str(&serde_json::to_string(&fields).expect("json")).expect("body");
            assert_eq!(
                AgentCommand::from_path(&command.path(), &wire).expect("parse"),
                command
            );
        }
    }

    #[test]
    fn every_command_survives_the_outbox_as_json() {
        for command in every_command() {
            let json = serde_json::to_string(&command).expect("json");
            assert_eq!(
                serde_json::from_str::<AgentCommand>(&json).expect("back"),
                command
            );
        }
    }

    #[test]
    fn an_unknown_action_or_a_missing_field_is_refused_with_what_is_wrong() {
        let none = CommandFields::default();
        assert_eq!(
            AgentCommand::from_path("/handoffs/h1/explode", &none),
            Err(CommandError::Unknown("explode".into()))
        );
        assert_eq!(
            AgentCommand::from_path("/handoffs/h1/transfer", &none).map_err(|e| e.to_string()),
            Err("the body needs \"to\"".into())
        );
    }

    #[test]
    fn only_replies_and_notes_have_text_to_edit() {
        let note = AgentCommand::Note {
            conversation_id: "c1".into(),
            text: "a".into(),
        };
        assert_eq!(
            note.with_text("b")
                .and_then(|n| n.text().map(str::to_string)),
            Some("b".into())
        );
        assert!(AgentCommand::Assign {
            handoff_id: "h".into()
        }
        .with_text("b")
        .is_none());
    }
}
