//! Approve before send: a bot's AI-drafted reply waits on its conversation until an agent approves
//! it (as drafted, or edited) or rejects it with a reason. Only approved text reaches the customer:
//! through WhatsApp when the bot sits in front of a number, or back to the bot in a
//! `draft.decided` event when the bot sends its own messages. A draft on a conversation nobody
//! holds opens a handoff, so it waits in the queue like one; deciding its last draft ends that
//! handoff. A bot channel may set a timeout after which an undecided draft is rejected or sent.

use baton_protocol::{
    Agent, Author, Conversation, DeliveryStatus, EventData, Handoff, HandoffStatus, Message,
    Priority, Role,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handoffs::{Outgoing, MAX_TEXT};
use crate::store::Tx;
use crate::Hub;

/// A bot channel's rule for drafts nobody decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftTimeout {
    pub seconds: u64,
    pub then: OnTimeout,
}

/// What an undecided draft becomes when its time is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    Reject,
    Send,
}

impl OnTimeout {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reject" => Some(Self::Reject),
            "send" => Some(Self::Send),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::Send => "send",
        }
    }
}

/// A human's (or the timeout's) answer to a draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it; `Some(text)` when the agent edited it first.
    Approve(Option<String>),
    Reject(Option<String>),
}

/// Where a draft's conversation is: the bot that drafted it, and whether Baton sends approved
/// text itself (a WhatsApp number the bot is in front of) or the bot does.
struct Route {
    bot_id: String,
    via_whatsapp: bool,
}

fn route(txn: &dyn Tx, conversation: &Conversation) -> Result<Option<Route>, ApiError> {
    let Some(channel) = txn.channel(&conversation.channel_id)? else {
        return Ok(None);
    };
    if channel.settings.bot.is_some() {
        return Ok(Some(Route {
            bot_id: channel.id,
            via_whatsapp: false,
        }));
    }
    Ok(channel
        .settings
        .whatsapp
        .and_then(|w| w.bot_channel)
        .map(|bot_id| Route {
            bot_id,
            via_whatsapp: true,
        }))
}

/// The draft's text, trimmed: 1 to `max` characters (WhatsApp takes fewer than Baton).
fn checked_text(text: &str, max: usize) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::BadRequest("the draft is empty".into()));
    }
    if text.chars().count() > max {
        return Err(ApiError::BadRequest(format!(
            "the draft is longer than {max} characters"
        )));
    }
    Ok(text.to_string())
}

impl Route {
    fn max_text(&self) -> usize {
        if self.via_whatsapp {
            crate::whatsapp::MAX_TEXT
        } else {
            MAX_TEXT
        }
    }
}

/// What `submit` answers.
pub struct Submitted {
    pub draft_id: String,
    pub handoff_id: String,
}

/// Stores the bot `bot_id`'s draft on `conversation` and puts it in front of the agents: in the
/// handoff that is open, or in a new one that waits in the queue.
pub fn submit(
    txn: &mut dyn Tx,
    hub: &Hub,
    bot_id: &str,
    conversation: &Conversation,
    text: &str,
    priority: Option<Priority>,
) -> Result<Submitted, ApiError> {
    let max = route(txn, conversation)?.map_or(MAX_TEXT, |r| r.max_text());
    let text = checked_text(text, max)?;
    let timeout = txn
        .channel(bot_id)?
        .and_then(|c| c.settings.bot)
        .and_then(|b| b.draft_timeout);
    let now = hub.now();
    let handoff = match txn.open_handoff(&conversation.id)? {
        Some(open) => open,
        None => {
            let mut handoff = crate::handoffs::open(
                txn,
                hub,
                conversation,
                "Approve the bot's reply",
                Some(&text),
            )?;
            handoff.for_draft = true;
            handoff.priority = priority;
            txn.put(EventData::Handoff(handoff.clone()))?;
            handoff
        }
    };
    let draft = Message {
        id: hub.new_id("m"),
        conversation_id: conversation.id.clone(),
        author: Author::Bot,
        author_id: None,
        kind: "text".into(),
        text: Some(text.clone()),
        payload: json!({ "text": text }),
        status: DeliveryStatus::Draft,
        status_reason: None,
        created_at: now,
    };
    txn.put(EventData::Message(draft.clone()))?;
    let due = timeout.and_then(|t| now.checked_add_signed(crate::handoffs::span(t.seconds)));
    if let Some(due) = due {
        txn.set_draft_deadline(&draft.id, Some(due))?;
    }
    tracing::info!(draft = %draft.id, conversation = %conversation.id, handoff = %handoff.id, "drafts: a bot's reply waits for approval");
    Ok(Submitted {
        draft_id: draft.id,
        handoff_id: handoff.id,
    })
}

/// Decides on the draft `message_id`: `agent` is who decided, `None` for the channel's timeout
/// (or for the handoff having ended).
pub fn decide(
    txn: &mut dyn Tx,
    hub: &Hub,
    agent: Option<&Agent>,
    message_id: &str,
    decision: Decision,
) -> Result<(), ApiError> {
    let Some(mut draft) = txn.message(message_id)? else {
        return Err(ApiError::NotFound(format!("no message {message_id:?}")));
    };
    if draft.status != DeliveryStatus::Draft {
        return Err(ApiError::Conflict(match draft.status {
            DeliveryStatus::Rejected => "this draft was already rejected".to_string(),
            _ if draft.payload.get("drafted").is_some() => {
                "this draft was already approved".to_string()
            }
            s => format!(
                "the message is {}, not a draft waiting for approval",
                s.as_str()
            ),
        }));
    }
    let Some(conversation) = txn.conversation(&draft.conversation_id)? else {
        return Err(ApiError::NotFound(format!(
            "no conversation {:?}",
            draft.conversation_id
        )));
    };
    let open = txn.open_handoff(&conversation.id)?;
    // Whoever holds the conversation decides on its drafts; a waiting one is anyone's to decide.
    if let (Some(agent), Some(holder)) = (agent, open.as_ref().and_then(|h| h.assignee.as_ref())) {
        if holder != &agent.id && agent.role != Role::Admin {
            let name = txn
                .agent(holder)?
                .map_or_else(|| "another agent".to_string(), |a| a.name);
            return Err(ApiError::Conflict(format!("{name} has this conversation")));
        }
    }
    // A bot no longer in front of the number can have its drafts rejected, never sent.
    let route =
        match (route(txn, &conversation)?, &decision) {
            (Some(route), _) => Some(route),
            (None, Decision::Reject(_)) => None,
            (None, Decision::Approve(_)) => return Err(ApiError::Conflict(
                "the bot that drafted this is no longer connected to the conversation's channel"
                    .into(),
            )),
        };
    let via_whatsapp = route.as_ref().is_some_and(|r| r.via_whatsapp);
    let original = draft.text.clone().unwrap_or_default();
    let who = agent.map_or(Value::Null, |a| json!({ "id": a.id, "name": a.name }));
    let mut event = json!({
        "draft_id": draft.id,
        "conversation_id": conversation.id,
        "handoff_id": open.as_ref().map(|h| h.id.clone()),
        "agent": who,
    });
    let approved = match decision {
        Decision::Approve(edited) => {
            let max = route.as_ref().map_or(MAX_TEXT, Route::max_text);
            let text = checked_text(edited.as_deref().unwrap_or(&original), max)?;
            draft.text = Some(text.clone());
            draft.payload = json!({ "text": text, "drafted": original });
            draft.status = DeliveryStatus::Queued;
            draft.status_reason = None;
            event["decision"] = json!("approved");
            event["text"] = json!(text);
            event["edited"] = json!(text != original);
            if via_whatsapp {
                crate::whatsapp::require_window(&conversation, hub.now())?;
                let outgoing = crate::whatsapp::checked_outgoing(
                    txn,
                    hub,
                    &conversation.id,
                    Outgoing::text(&text),
                )?;
                txn.put(EventData::Message(draft.clone()))?;
                crate::whatsapp::queue_send(txn, hub, &conversation, &outgoing, &draft.id)?;
                event["sent_by"] = json!("baton");
            } else {
                txn.put(EventData::Message(draft.clone()))?;
                event["sent_by"] = json!("bot");
            }
            true
        }
        Decision::Reject(reason) => {
            let reason = reason
                .map(|r| r.trim().chars().take(500).collect::<String>())
                .filter(|r| !r.is_empty());
            draft.status = DeliveryStatus::Rejected;
            draft.status_reason = Some(match (&reason, agent) {
                (Some(r), _) => r.clone(),
                (None, Some(a)) => format!("rejected by {}", a.name),
                (None, None) => "nobody approved it in time".into(),
            });
            txn.put(EventData::Message(draft.clone()))?;
            event["decision"] = json!("rejected");
            event["reason"] = json!(draft.status_reason);
            false
        }
    };
    txn.set_draft_deadline(&draft.id, None)?;
    // The bot hears of every decision; when it sends approved text itself, the draft counts as
    // sent once the bot has the event.
    if let Some(route) = &route {
        crate::bot_api::queue_event(
            txn,
            hub,
            &route.bot_id,
            &conversation.id,
            "draft.decided",
            event,
            (approved && !via_whatsapp).then_some(draft.id.as_str()),
        )?;
    }
    if let Some(handoff) = open.filter(|h| h.for_draft) {
        end_when_decided(txn, hub, handoff, approved)?;
    }
    tracing::info!(draft = %draft.id, approved, by = agent.map_or("the desk", |a| a.id.as_str()), "drafts: decided");
    Ok(())
}

/// A handoff opened only for drafts ends once none is left to decide: the bot has the
/// conversation as before.
fn end_when_decided(
    txn: &mut dyn Tx,
    hub: &Hub,
    mut handoff: Handoff,
    approved: bool,
) -> Result<(), ApiError> {
    if !txn.drafts_waiting(&handoff.conversation_id)?.is_empty() {
        return Ok(());
    }
    handoff.status = HandoffStatus::Resolved;
    handoff.label = Some(
        if approved {
            "draft approved"
        } else {
            "draft rejected"
        }
        .into(),
    );
    handoff.updated_at = hub.now();
    txn.put(EventData::Handoff(handoff))?;
    Ok(())
}

/// The handoff on `conversation_id` ended before its drafts were decided: they are rejected (and
/// the bot hears so), so none waits on a conversation that is the bot's again, or goes out later.
pub fn reject_waiting(
    txn: &mut dyn Tx,
    hub: &Hub,
    conversation_id: &str,
    why: &str,
) -> Result<(), ApiError> {
    for id in txn.drafts_waiting(conversation_id)? {
        decide(txn, hub, None, &id, Decision::Reject(Some(why.to_string())))?;
    }
    Ok(())
}

/// What the channel's timeout makes of the draft `id` now, if it still has one.
fn timeout_of(txn: &dyn Tx, id: &str) -> Result<Option<OnTimeout>, ApiError> {
    let Some(message) = txn.message(id)? else {
        return Ok(None);
    };
    let Some(conversation) = txn.conversation(&message.conversation_id)? else {
        return Ok(None);
    };
    let Some(route) = route(txn, &conversation)? else {
        return Ok(None);
    };
    Ok(txn
        .channel(&route.bot_id)?
        .and_then(|c| c.settings.bot)
        .and_then(|b| b.draft_timeout)
        .map(|t| t.then))
}

/// Decides the draft `id` as its channel's timeout says; whether it was decided.
fn expire(txn: &mut dyn Tx, hub: &Hub, id: &str) -> Result<bool, ApiError> {
    let still_waiting = txn
        .message(id)?
        .is_some_and(|m| m.status == DeliveryStatus::Draft);
    // Decided meanwhile, or the timeout was turned off (or the bot left) since: only the deadline
    // is left to forget.
    let then = match timeout_of(txn, id)? {
        Some(then) if still_waiting => then,
        _ => {
            txn.set_draft_deadline(id, None)?;
            return Ok(false);
        }
    };
    let decision = match then {
        OnTimeout::Send => Decision::Approve(None),
        OnTimeout::Reject => Decision::Reject(None),
    };
    match decide(txn, hub, None, id, decision) {
        Ok(()) => Ok(true),
        Err(e @ ApiError::Internal(_)) => Err(e),
        // It cannot be sent (WhatsApp's window closed, …): it is rejected with the reason, so it
        // is not tried again on every sweep.
        Err(why) => {
            decide(txn, hub, None, id, Decision::Reject(Some(why.to_string())))?;
            Ok(true)
        }
    }
}

/// Decides every draft whose channel's timeout has passed, as the channel says; returns how many.
pub fn expire_due(hub: &Hub) -> Result<usize, ApiError> {
    let due = hub.store().reader()?.due_drafts(hub.now(), 100)?;
    let mut decided = 0;
    for id in due {
        match hub.store().write(|txn| expire(txn, hub, &id)) {
            Ok(true) => decided += 1,
            Ok(false) => {}
            Err(e) => tracing::error!(draft = %id, error = %e, "drafts: cannot apply the timeout"),
        }
    }
    if decided > 0 {
        hub.wake_delivery();
    }
    Ok(decided)
}
