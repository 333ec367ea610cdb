//! Handoffs and the only code that changes their status: what agents do (commands), what the bot
//! side does ([`cancel_by_bot`]), and what the hub does by itself — a silent or disabled agent's
//! handoffs go back to the queue ([`return_to_queue`]), unclaimed ones time out
//! ([`expire_pending`]).
//!
//! Agents' commands each run in one transaction through [`run`], which
//! records the result under the agent's `txn_id`: a retried command gets the first answer back and
//! changes nothing. Refusals change nothing either, so they are simply evaluated again.
//!
//! Everything Botpress must hear about (an agent took the ticket, an agent wrote, the ticket is
//! closed) is queued in `deliveries` in the same transaction as the change, so it is sent exactly
//! when the change is committed — see [`crate::delivery`].

use baton_protocol::{
    Agent, AgentCommand, Author, CommandResult, Conversation, DeliveryStatus, EventData, Handoff,
    HandoffStatus, Message, Note, Presence, Role,
};
use serde_json::{json, Value};

use crate::channel::{localized, ChannelRow};
use crate::error::ApiError;
use crate::store::{Delivery, RecordedCommand, StoreError, Tx};
use crate::Hub;

/// The id an agent has on Botpress's side: its own namespace, never an end user's (ARCHITECTURE.md, Botpress protocol §1.4).
pub fn remote_agent_id(agent_id: &str) -> String {
    format!("agent:{agent_id}")
}

/// The longest text an agent may send or note.
pub const MAX_TEXT: usize = 8000;

/// Runs `command` once per `(agent, txn_id)` and answers its result. `fingerprint` says what was
/// asked: the same `txn_id` with a different request is refused, not answered with the first
/// command's result (which would make the client believe something happened that did not).
pub fn run(
    hub: &Hub,
    agent: &Agent,
    txn_id: &str,
    fingerprint: &str,
    command: &AgentCommand,
) -> Result<Value, ApiError> {
    let txn_id = txn_id.trim();
    if txn_id.is_empty() || txn_id.len() > 128 {
        return Err(ApiError::BadRequest(
            "txn_id must be 1 to 128 characters".into(),
        ));
    }
    let result = hub.store().write(|txn| {
        if let Some(recorded) = txn.recorded_command(&agent.id, txn_id)? {
            if recorded.fingerprint.is_some_and(|r| r != fingerprint) {
                return Err(ApiError::TxnReused(format!(
                    "txn_id {txn_id:?} was already used for a different command; use a new one"
                )));
            }
            return Ok((serde_json::from_str(&recorded.response)?, false));
        }
        // Acting is being active: the agent is online from their first command on (a presence
        // command says itself what it wants; a device marking what its window shows read or
        // unread is not the agent acting).
        let mut agent = current_agent(txn, &agent.id)?;
        if agent.presence != Presence::Online
            && !matches!(
                command,
                AgentCommand::Presence { .. }
                    | AgentCommand::Read { .. }
                    | AgentCommand::Unread { .. }
            )
        {
            agent.presence = Presence::Online;
            txn.put(EventData::Agent(agent.clone()))?;
        }
        execute(txn, hub, &agent, command)?;
        let response = serde_json::to_value(CommandResult {
            events: txn.events().to_vec(),
        })?;
        let recorded = RecordedCommand {
            response: response.to_string(),
            fingerprint: Some(fingerprint.to_string()),
        };
        txn.record_command(&agent.id, txn_id, &recorded, hub.now())?;
        // Most commands (taking a chat, a note, a tag) queue no call: the worker sleeps on.
        Ok::<_, ApiError>((response, txn.calls_queued() > 0))
    });
    let (response, queued_calls) = match result {
        // Hubs sharing a database: the same command, sent again through another hub at the same
        // moment, committed first, and this transaction (which did it too) could not record it and
        // was rolled back. The first one's answer is the answer.
        Err(ApiError::Internal(e)) if hub.store().shared() => {
            match hub.store().reader()?.recorded_command(&agent.id, txn_id)? {
                Some(recorded)
                    if recorded
                        .fingerprint
                        .as_deref()
                        .is_none_or(|r| r == fingerprint) =>
                {
                    (serde_json::from_str(&recorded.response)?, false)
                }
                _ => return Err(ApiError::Internal(e)),
            }
        }
        other => other?,
    };
    if queued_calls {
        hub.wake_delivery();
    }
    Ok(response)
}

/// Does what `command` asks, as `agent`, inside `txn`.
fn execute(
    txn: &mut dyn Tx,
    hub: &Hub,
    agent: &Agent,
    command: &AgentCommand,
) -> Result<(), ApiError> {
    match command {
        AgentCommand::Assign { handoff_id } => assign(txn, hub, agent, handoff_id),
        AgentCommand::Release { handoff_id } => release(txn, hub, agent, handoff_id),
        AgentCommand::Transfer { handoff_id, to } => transfer(txn, hub, agent, handoff_id, to),
        AgentCommand::Resolve { handoff_id, label } => close(
            txn,
            hub,
            agent,
            handoff_id,
            HandoffStatus::Resolved,
            label.as_deref(),
        ),
        AgentCommand::Cancel { handoff_id } => {
            close(txn, hub, agent, handoff_id, HandoffStatus::Cancelled, None)
        }
        AgentCommand::Tags { handoff_id, tags } => set_tags(txn, hub, agent, handoff_id, tags),
        AgentCommand::Message {
            conversation_id,
            text,
            kind,
            payload,
        } => {
            let outgoing = Outgoing::from_command(text, kind, payload)?;
            reply(txn, hub, agent, conversation_id, outgoing)
        }
        AgentCommand::Note {
            conversation_id,
            text,
        } => add_note(txn, hub, agent, conversation_id, text),
        AgentCommand::Resend { message_id } => resend(txn, hub, agent, message_id),
        AgentCommand::Approve { message_id, text } => crate::drafts::decide(
            txn,
            hub,
            Some(agent),
            message_id,
            crate::drafts::Decision::Approve(text.clone()),
        ),
        AgentCommand::Reject { message_id, reason } => crate::drafts::decide(
            txn,
            hub,
            Some(agent),
            message_id,
            crate::drafts::Decision::Reject(reason.clone()),
        ),
        AgentCommand::Read { conversation_id } => {
            let Some(conversation) = txn.conversation(conversation_id)? else {
                return Err(ApiError::NotFound(format!(
                    "no conversation {conversation_id:?}"
                )));
            };
            mark_read(txn, hub, agent, conversation_id, false)?;
            match conversation.channel_kind.as_deref() {
                Some("whatsapp") => crate::whatsapp::mark_read(txn, hub, &conversation),
                // Botpress has no read receipts.
                _ => Ok(()),
            }
        }
        AgentCommand::Unread { conversation_id } => {
            if txn.conversation(conversation_id)?.is_none() {
                return Err(ApiError::NotFound(format!(
                    "no conversation {conversation_id:?}"
                )));
            }
            mark_read(txn, hub, agent, conversation_id, true)
        }
        AgentCommand::Presence { status } => set_presence(txn, agent, *status),
    }
}

/// Moves the agent's read mark: to now (`unread` false), or flags the conversation unread. Only
/// a mark that changes is written, so opening a conversation again and again adds nothing to the
/// log.
fn mark_read(
    txn: &mut dyn Tx,
    hub: &Hub,
    agent: &Agent,
    conversation_id: &str,
    unread: bool,
) -> Result<(), ApiError> {
    let old = txn.read_mark(&agent.id, conversation_id)?;
    let latest = txn
        .latest_customer_message(conversation_id)?
        .map(|m| m.created_at);
    let up_to_date = old
        .as_ref()
        .is_some_and(|m| !m.unread && latest.is_none_or(|at| at <= m.read_at));
    let read_at = match (&old, unread) {
        // Marking unread keeps where it was read up to.
        (Some(old), true) => old.read_at,
        (Some(old), false) if up_to_date => old.read_at,
        _ => hub.now(),
    };
    if old.as_ref().is_some_and(|m| m.unread == unread) && (unread || up_to_date) {
        return Ok(());
    }
    txn.put(EventData::Read(baton_protocol::ReadMark {
        agent_id: agent.id.clone(),
        conversation_id: conversation_id.to_string(),
        read_at,
        unread,
    }))?;
    Ok(())
}

fn current_agent(txn: &dyn Tx, id: &str) -> Result<Agent, ApiError> {
    txn.agent(id)?.ok_or(ApiError::Unauthorized)
}

fn handoff(txn: &dyn Tx, id: &str) -> Result<Handoff, ApiError> {
    txn.handoff(id)?
        .ok_or_else(|| ApiError::NotFound(format!("no handoff {id:?}")))
}

fn agent_name(txn: &dyn Tx, id: &str) -> String {
    txn.agent(id)
        .ok()
        .flatten()
        .map(|a| a.name)
        .unwrap_or_else(|| "another agent".into())
}

fn channel_of(txn: &dyn Tx, handoff: &Handoff) -> Result<ChannelRow, ApiError> {
    txn.channel(&handoff.channel_id)?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "the channel of handoff {:?} no longer exists",
            handoff.id
        ))
    })
}

fn refuse_if_closed(h: &Handoff) -> Result<(), ApiError> {
    match h.status {
        HandoffStatus::Resolved | HandoffStatus::Cancelled => Err(ApiError::Closed(format!(
            "this handoff is already {}; the bot has the conversation again",
            h.status.as_str()
        ))),
        _ => Ok(()),
    }
}

/// The agent may act on a handoff someone holds only if it is theirs, or they are an admin.
fn require_holder(txn: &dyn Tx, h: &Handoff, agent: &Agent) -> Result<(), ApiError> {
    match &h.assignee {
        Some(owner) if owner == &agent.id => Ok(()),
        _ if agent.role == Role::Admin => Ok(()),
        Some(owner) => Err(ApiError::Conflict(format!(
            "{} has this handoff",
            agent_name(txn, owner)
        ))),
        None => Err(ApiError::Conflict(
            "nobody has taken this handoff yet; assign it first".into(),
        )),
    }
}

fn check_capacity(txn: &dyn Tx, agent: &Agent, who: &str) -> Result<(), ApiError> {
    let held = u32::try_from(txn.held_handoffs(&agent.id)?.len()).unwrap_or(u32::MAX);
    if held >= agent.capacity {
        return Err(ApiError::Capacity(format!(
            "{who} already {} {held} handoffs, the limit of {}; resolve or release one first",
            if who == "You" { "hold" } else { "holds" },
            agent.capacity
        )));
    }
    Ok(())
}

/// Queues a call to the channel's Botpress webhook, in order after the conversation's earlier ones.
pub fn enqueue(
    txn: &mut dyn Tx,
    hub: &Hub,
    handoff: &Handoff,
    route: &str,
    body: Value,
    message_id: Option<&str>,
) -> Result<(), ApiError> {
    let call = Delivery {
        channel_id: handoff.channel_id.clone(),
        conversation_id: handoff.conversation_id.clone(),
        route: route.to_string(),
        body: body.to_string(),
        message_id: message_id.map(str::to_string),
    };
    txn.queue_delivery(&call, hub.now())?;
    Ok(())
}

/// Writes a message from the desk (an agent's reply or a system notice) and queues it for Botpress.
/// What an agent sends: a Botpress message type and its payload (ARCHITECTURE.md, Botpress protocol §1.5).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub kind: String,
    pub payload: Value,
}

impl Outgoing {
    pub fn text(text: &str) -> Self {
        Self {
            kind: "text".into(),
            payload: json!({ "text": text }),
        }
    }

    /// `{"text"}` is a text message; `{"type","payload"}` any other kind the channel relays.
    fn from_command(
        text: &Option<String>,
        kind: &Option<String>,
        payload: &Option<Value>,
    ) -> Result<Self, ApiError> {
        match (kind.clone(), payload.clone(), text) {
            (Some(kind), Some(payload), _) => Ok(Self { kind, payload }),
            (None, None, Some(text)) => Ok(Self::text(text)),
            (Some(kind), None, Some(text)) if kind == "text" => Ok(Self::text(text)),
            (None, Some(_), _) => Err(ApiError::BadRequest(
                "a payload needs its \"type\" (image, file, …)".into(),
            )),
            (Some(kind), None, Some(_)) => Err(ApiError::BadRequest(format!(
                "a {kind} message needs a \"payload\""
            ))),
            (_, None, None) => Err(ApiError::BadRequest(
                "the body needs \"text\", or \"type\" and \"payload\"".into(),
            )),
        }
    }

    /// Trims text, then checks size and shape. A text message needs 1 to [`MAX_TEXT`] characters.
    pub(crate) fn checked(mut self) -> Result<Self, ApiError> {
        if let Some(text) = self.payload.get("text").and_then(Value::as_str) {
            let trimmed = text.trim().to_string();
            if self.kind == "text" && trimmed.is_empty() {
                return Err(ApiError::BadRequest("the message is empty".into()));
            }
            if trimmed.chars().count() > MAX_TEXT {
                return Err(ApiError::BadRequest(format!(
                    "the message is longer than {MAX_TEXT} characters"
                )));
            }
            self.payload["text"] = Value::String(trimmed);
        }
        if self.payload.to_string().len() > MAX_PAYLOAD_BYTES {
            return Err(ApiError::BadRequest(format!(
                "the message's payload is larger than {} KiB",
                MAX_PAYLOAD_BYTES / 1024
            )));
        }
        baton_protocol::payload::validate(&self.kind, &self.payload)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(self)
    }
}

/// The largest payload an agent may send (Botpress's own limits are far above any real reply).
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// What a channel's platform hears about a handoff.
pub enum PlatformEvent<'a> {
    /// An agent took the handoff.
    Assigned(&'a Agent),
    /// A message for the customer, from an agent (or the desk itself: `None`).
    Message {
        from: Option<&'a Agent>,
        outgoing: &'a Outgoing,
    },
    /// The handoff ended: the bot has the conversation again.
    Closed,
}

/// Queues the call that tells the handoff's platform about `event`, if it needs one; each
/// channel's module says what its platform needs.
fn tell_platform(
    txn: &mut dyn Tx,
    hub: &Hub,
    handoff: &Handoff,
    event: PlatformEvent<'_>,
    message_id: Option<&str>,
) -> Result<(), ApiError> {
    // The bot asked only for a decision on its drafts: it hears those (`draft.decided`), not
    // that someone looked at them.
    if handoff.for_draft && !matches!(event, PlatformEvent::Message { .. }) {
        return Ok(());
    }
    let channel = channel_of(txn, handoff)?;
    let call = match channel.kind.as_str() {
        "whatsapp" => crate::whatsapp::call_for(txn, handoff, &event, message_id)?,
        "bot" => crate::bot_api::call_for(txn, hub, handoff, &event, message_id)?,
        _ => Some(crate::botpress::call_for(handoff, &event)),
    };
    if let Some((route, body)) = call {
        enqueue(txn, hub, handoff, route, body, message_id)?;
    }
    // A bot in front of a WhatsApp number hears when an agent takes the chat and when it is
    // theirs again (the customer hears the agent's messages on WhatsApp itself).
    let front_bot = channel
        .settings
        .whatsapp
        .as_ref()
        .and_then(|w| w.bot_channel.clone());
    if let Some(bot) = front_bot.filter(|_| !matches!(event, PlatformEvent::Message { .. })) {
        if let Some((route, body)) = crate::bot_api::call_for(txn, hub, handoff, &event, None)? {
            txn.queue_delivery(
                &Delivery {
                    channel_id: bot,
                    conversation_id: handoff.conversation_id.clone(),
                    route: route.to_string(),
                    body: body.to_string(),
                    message_id: None,
                },
                hub.now(),
            )?;
        }
    }
    Ok(())
}

/// A queue item opened only for a bot's drafts becomes a handoff like any other — the bot asked for
/// a person, or an agent wrote to the customer — and the bot hears who has it from now on.
pub fn take_over_draft_item(
    txn: &mut dyn Tx,
    hub: &Hub,
    mut h: Handoff,
) -> Result<Handoff, ApiError> {
    if !h.for_draft {
        return Ok(h);
    }
    h.for_draft = false;
    h.updated_at = hub.now();
    txn.put(EventData::Handoff(h.clone()))?;
    if let Some(holder) = h
        .assignee
        .as_deref()
        .map(|id| txn.agent(id))
        .transpose()?
        .flatten()
    {
        tell_platform(txn, hub, &h, PlatformEvent::Assigned(&holder), None)?;
    }
    Ok(h)
}

/// `secs` as a time span, saturating rather than overflowing on absurd settings.
pub fn span(secs: u64) -> chrono::TimeDelta {
    i64::try_from(secs)
        .ok()
        .and_then(chrono::TimeDelta::try_seconds)
        .unwrap_or(chrono::TimeDelta::MAX)
}

/// Opens a new handoff on `conversation`, waiting for an agent (channels whose platform has no
/// handoff of its own, such as WhatsApp, call this).
pub fn open(
    txn: &mut dyn Tx,
    hub: &Hub,
    conversation: &Conversation,
    title: &str,
    description: Option<&str>,
) -> Result<Handoff, ApiError> {
    let now = hub.now();
    let handoff = Handoff {
        id: hub.new_id("ho"),
        conversation_id: conversation.id.clone(),
        channel_id: conversation.channel_id.clone(),
        status: HandoffStatus::Pending,
        title: title.chars().take(200).collect(),
        description: description.map(|d| d.chars().take(500).collect()),
        assignee: None,
        assigned_by: None,
        label: None,
        tags: Vec::new(),
        priority: None,
        for_draft: false,
        escalation: None,
        created_at: now,
        updated_at: now,
    };
    txn.put(EventData::Handoff(handoff.clone()))?;
    Ok(handoff)
}

/// Sends the customer a message from the desk itself (an automatic reply).
pub fn notify_customer(
    txn: &mut dyn Tx,
    hub: &Hub,
    handoff: &Handoff,
    text: &str,
) -> Result<Message, ApiError> {
    send_to_customer(
        txn,
        hub,
        handoff,
        Author::System,
        None,
        Outgoing::text(text),
    )
}

fn send_to_customer(
    txn: &mut dyn Tx,
    hub: &Hub,
    handoff: &Handoff,
    author: Author,
    agent: Option<&Agent>,
    outgoing: Outgoing,
) -> Result<Message, ApiError> {
    let text = outgoing
        .payload
        .as_object()
        .and_then(baton_protocol::payload::readable_text);
    // Queued behind a call that is already waiting (no webhook URL yet, Botpress down): this
    // message waits for the same reason, and the agent sees it at once.
    let waiting_for = txn.delivery_waiting_reason(&handoff.conversation_id)?;
    let message = Message {
        id: hub.new_id("m"),
        conversation_id: handoff.conversation_id.clone(),
        author,
        author_id: agent.map(|a| a.id.clone()),
        kind: outgoing.kind.clone(),
        text,
        payload: outgoing.payload.clone(),
        status: DeliveryStatus::Queued,
        status_reason: waiting_for,
        created_at: hub.now(),
    };
    txn.put(EventData::Message(message.clone()))?;
    let event = PlatformEvent::Message {
        from: agent,
        outgoing: &outgoing,
    };
    tell_platform(txn, hub, handoff, event, Some(&message.id))?;
    Ok(message)
}

fn customer_language(txn: &dyn Tx, handoff: &Handoff) -> Option<String> {
    let conversation = txn.conversation(&handoff.conversation_id).ok()??;
    let contact = txn.contact(conversation.contact_id.as_deref()?).ok()??;
    ["language", "locale", "lang"].iter().find_map(|k| {
        contact
            .attributes
            .get(*k)
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}

/// Gives `handoff` to `to`: tells Botpress who took it and tells the customer, in their language.
fn hand_to(
    txn: &mut dyn Tx,
    hub: &Hub,
    mut handoff: Handoff,
    to: &Agent,
    transfer: bool,
    by: Option<&str>,
) -> Result<Handoff, ApiError> {
    handoff.status = HandoffStatus::Assigned;
    handoff.assignee = Some(to.id.clone());
    handoff.assigned_by = by.map(str::to_string);
    // Someone has it: if it waits again, it is escalated afresh.
    handoff.escalation = None;
    handoff.updated_at = hub.now();
    txn.put(EventData::Handoff(handoff.clone()))?;
    let channel = channel_of(txn, &handoff)?;
    tell_platform(txn, hub, &handoff, PlatformEvent::Assigned(to), None)?;
    // Outside WhatsApp's 24-hour window a free-form notice cannot reach the customer; an agent
    // looking at the bot's drafts is not news to them.
    if handoff.for_draft
        || (channel.kind == "whatsapp" && !customer_window_open(txn, hub, &handoff)?)
    {
        return Ok(handoff);
    }
    let texts = if transfer {
        &channel.settings.transfer_message
    } else {
        &channel.settings.assign_message
    };
    if let Some(text) = localized(texts, customer_language(txn, &handoff).as_deref(), &to.name) {
        send_to_customer(
            txn,
            hub,
            &handoff,
            Author::System,
            Some(to),
            Outgoing::text(&text),
        )?;
    }
    Ok(handoff)
}

/// The channel's router gives the waiting handoff `handoff_id` to `to`, if it still waits and
/// they still have room; whether it did. The customer and the bot hear it as if `to` took it.
pub fn route_to(
    txn: &mut dyn Tx,
    hub: &Hub,
    handoff_id: &str,
    to: &Agent,
) -> Result<bool, ApiError> {
    let Some(h) = txn.handoff(handoff_id)? else {
        return Ok(false);
    };
    if h.status != HandoffStatus::Pending || h.assignee.is_some() {
        return Ok(false);
    }
    match txn.agent(&to.id)? {
        Some(current) if current.presence == Presence::Online && !current.disabled => {
            if check_capacity(txn, &current, &current.name).is_err() {
                return Ok(false);
            }
            hand_to(txn, hub, h, &current, false, None)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn assign(txn: &mut dyn Tx, hub: &Hub, agent: &Agent, handoff_id: &str) -> Result<(), ApiError> {
    let h = handoff(txn, handoff_id)?;
    refuse_if_closed(&h)?;
    match &h.assignee {
        Some(owner) if owner == &agent.id => return Ok(()),
        Some(owner) => {
            return Err(ApiError::Conflict(format!(
                "{} already took this handoff",
                agent_name(txn, owner)
            )))
        }
        None => {}
    }
    check_capacity(txn, agent, "You")?;
    hand_to(txn, hub, h, agent, false, Some(&agent.id))?;
    Ok(())
}

fn reply(
    txn: &mut dyn Tx,
    hub: &Hub,
    agent: &Agent,
    conversation_id: &str,
    outgoing: Outgoing,
) -> Result<(), ApiError> {
    let template = outgoing.kind == "template";
    let Some(mut h) = open_handoff(txn, conversation_id)? else {
        return Err(match txn.conversation(conversation_id)? {
            Some(_) => {
                ApiError::Closed("this conversation has no open handoff; the bot has it".into())
            }
            None => ApiError::NotFound(format!("no conversation {conversation_id:?}")),
        });
    };
    let channel = channel_of(txn, &h)?;
    let whatsapp = channel.kind == "whatsapp";
    // WhatsApp takes more than Botpress's kinds: templates, reactions, uploaded files, quotes.
    let outgoing = if whatsapp {
        crate::whatsapp::checked_outgoing(txn, hub, conversation_id, outgoing)?
    } else if template {
        return Err(ApiError::BadRequest(
            "templates are WhatsApp's; this conversation is not on WhatsApp".into(),
        ));
    } else {
        outgoing.checked()?
    };
    // A WhatsApp number takes every kind Baton sends; a Botpress bot only what its plugin relays.
    if !whatsapp && !channel.settings.message_kinds.contains(&outgoing.kind) {
        return Err(ApiError::BadRequest(format!(
            "the {} channel's bot relays only {}; ask an admin to allow {} messages",
            channel.name,
            channel.settings.message_kinds.join(", "),
            outgoing.kind
        )));
    }
    // An agent who writes to the customer while deciding on drafts has taken the conversation over.
    h = take_over_draft_item(txn, hub, h)?;
    match &h.assignee {
        None => {
            check_capacity(txn, agent, "You")?;
            h = hand_to(txn, hub, h, agent, false, Some(&agent.id))?;
        }
        Some(owner) if owner != &agent.id => {
            return Err(ApiError::Conflict(format!(
                "{} has this handoff",
                agent_name(txn, owner)
            )));
        }
        Some(_) => {}
    }
    if whatsapp && !template {
        if let Some(conversation) = txn.conversation(&h.conversation_id)? {
            crate::whatsapp::require_window(&conversation, hub.now())?;
        }
    }
    send_to_customer(txn, hub, &h, Author::Agent, Some(agent), outgoing)?;
    Ok(())
}

/// Whether the conversation's customer wrote in the last 24 hours (WhatsApp's window).
fn customer_window_open(txn: &dyn Tx, hub: &Hub, handoff: &Handoff) -> Result<bool, ApiError> {
    Ok(txn
        .conversation(&handoff.conversation_id)?
        .is_some_and(|c| crate::whatsapp::window_open(&c, hub.now())))
}

/// The conversation's handoff that is still pending or assigned, if any.
fn open_handoff(txn: &dyn Tx, conversation_id: &str) -> Result<Option<Handoff>, ApiError> {
    Ok(txn.open_handoff(conversation_id)?)
}

fn release(txn: &mut dyn Tx, hub: &Hub, agent: &Agent, handoff_id: &str) -> Result<(), ApiError> {
    let mut h = handoff(txn, handoff_id)?;
    refuse_if_closed(&h)?;
    if h.assignee.is_none() {
        return Ok(());
    }
    require_holder(txn, &h, agent)?;
    h.status = HandoffStatus::Pending;
    h.assignee = None;
    h.assigned_by = None;
    h.updated_at = hub.now();
    txn.put(EventData::Handoff(h))?;
    Ok(())
}

fn transfer(
    txn: &mut dyn Tx,
    hub: &Hub,
    agent: &Agent,
    handoff_id: &str,
    to: &str,
) -> Result<(), ApiError> {
    let h = handoff(txn, handoff_id)?;
    refuse_if_closed(&h)?;
    require_holder(txn, &h, agent)?;
    let target = match txn.agent(to.trim())? {
        Some(agent) => Some(agent),
        None => txn.agent_by_email(to.trim())?,
    };
    let Some(target) = target.filter(|a| !a.disabled) else {
        return Err(ApiError::NotFound(format!("no agent {to:?}")));
    };
    if h.assignee.as_deref() == Some(target.id.as_str()) {
        return Ok(());
    }
    if target.presence != Presence::Online {
        return Err(ApiError::Conflict(format!(
            "{} is {}; transfer to an online agent",
            target.name,
            target.presence.as_str()
        )));
    }
    check_capacity(txn, &target, &target.name)?;
    hand_to(txn, hub, h, &target, true, Some(&agent.id))?;
    Ok(())
}

/// Ends the handoff and gives the conversation back to the bot (`/stop-hitl`).
fn close(
    txn: &mut dyn Tx,
    hub: &Hub,
    agent: &Agent,
    handoff_id: &str,
    status: HandoffStatus,
    label: Option<&str>,
) -> Result<(), ApiError> {
    let mut h = handoff(txn, handoff_id)?;
    if h.status == status {
        return Ok(());
    }
    refuse_if_closed(&h)?;
    match status {
        HandoffStatus::Cancelled if agent.role != Role::Admin => {
            return Err(ApiError::Forbidden(
                "only an admin can cancel a handoff".into(),
            ))
        }
        HandoffStatus::Cancelled => {}
        _ => require_holder(txn, &h, agent)?,
    }
    h.status = status;
    h.label = label
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .or(h.label);
    h.updated_at = hub.now();
    txn.put(EventData::Handoff(h.clone()))?;
    tell_platform(txn, hub, &h, PlatformEvent::Closed, None)?;
    crate::drafts::reject_waiting(
        txn,
        hub,
        &h.conversation_id,
        "the handoff ended before anyone decided",
    )?;
    Ok(())
}

fn set_tags(
    txn: &mut dyn Tx,
    hub: &Hub,
    agent: &Agent,
    handoff_id: &str,
    tags: &[String],
) -> Result<(), ApiError> {
    let mut h = handoff(txn, handoff_id)?;
    refuse_if_closed(&h)?;
    if h.assignee.is_some() {
        require_holder(txn, &h, agent)?;
    }
    let allowed = tag_list(txn)?;
    let tags = tidy_tags(tags);
    if let Some(unknown) = tags.iter().find(|t| !allowed.contains(t)) {
        return Err(ApiError::BadRequest(format!(
            "{unknown:?} is not one of the team's tags ({}); an admin can add it",
            if allowed.is_empty() {
                "none yet".to_string()
            } else {
                allowed.join(", ")
            }
        )));
    }
    if tags != h.tags {
        h.tags = tags;
        h.updated_at = hub.now();
        txn.put(EventData::Handoff(h))?;
    }
    Ok(())
}

/// Tags as they are kept: trimmed, no empty ones, sorted, each once.
pub fn tidy_tags(tags: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = tags
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

pub fn tag_list(txn: &dyn Tx) -> Result<Vec<String>, ApiError> {
    Ok(txn.tags()?)
}

fn add_note(
    txn: &mut dyn Tx,
    hub: &Hub,
    agent: &Agent,
    conversation_id: &str,
    text: &str,
) -> Result<(), ApiError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT {
        return Err(ApiError::BadRequest(format!(
            "a note needs 1 to {MAX_TEXT} characters"
        )));
    }
    if txn.conversation(conversation_id)?.is_none() {
        return Err(ApiError::NotFound(format!(
            "no conversation {conversation_id:?}"
        )));
    }
    txn.put(EventData::Note(Note {
        id: hub.new_id("n"),
        conversation_id: conversation_id.to_string(),
        agent_id: agent.id.clone(),
        text: text.to_string(),
        created_at: hub.now(),
    }))?;
    Ok(())
}

fn set_presence(txn: &mut dyn Tx, agent: &Agent, presence: Presence) -> Result<(), ApiError> {
    let mut current = current_agent(txn, &agent.id)?;
    if current.presence != presence {
        current.presence = presence;
        txn.put(EventData::Agent(current))?;
    }
    Ok(())
}

/// Requeues an agent's message whose delivery failed or is uncertain, when the agent decides to.
fn resend(txn: &mut dyn Tx, hub: &Hub, agent: &Agent, message_id: &str) -> Result<(), ApiError> {
    let Some(mut message) = txn.message(message_id)? else {
        return Err(ApiError::NotFound(format!("no message {message_id:?}")));
    };
    if message.author_id.as_deref() != Some(agent.id.as_str()) && agent.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "only its author or an admin can resend a message".into(),
        ));
    }
    if !matches!(
        message.status,
        DeliveryStatus::Uncertain | DeliveryStatus::Failed
    ) {
        return Err(ApiError::Conflict(format!(
            "the message is {}, not failed or uncertain",
            message.status.as_str()
        )));
    }
    let Some(call) = txn.delivery_of_message(message_id)? else {
        return Err(ApiError::Conflict(
            "this message was never queued for delivery".into(),
        ));
    };
    // Once the handoff is over the bot has the customer again: an agent's message now would
    // arrive out of nowhere.
    if open_handoff(txn, &call.conversation_id)?.is_none() {
        return Err(ApiError::Closed(
            "this conversation's handoff is over; the bot has the customer again".into(),
        ));
    }
    txn.queue_delivery(&call, hub.now())?;
    message.status = DeliveryStatus::Queued;
    message.status_reason = None;
    txn.put(EventData::Message(message))?;
    Ok(())
}

/// Puts every handoff `agent_id` holds back in the queue (the agent went silent, or was disabled),
/// so no customer waits on someone who left. Returns how many.
pub fn return_to_queue(
    txn: &mut dyn Tx,
    agent_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, StoreError> {
    let held = txn.held_handoffs(agent_id)?;
    for mut h in held.iter().cloned() {
        h.status = HandoffStatus::Pending;
        h.assignee = None;
        h.assigned_by = None;
        h.updated_at = now;
        txn.put(EventData::Handoff(h))?;
    }
    Ok(held.len())
}

/// The bot side ended the handoff (the customer typed the end command, or the bot timed out):
/// cancel it without calling Botpress back, since Botpress already stopped it.
pub fn cancel_by_bot(
    txn: &mut dyn Tx,
    hub: &Hub,
    conversation_id: &str,
    why: &str,
) -> Result<Option<Handoff>, ApiError> {
    let Some(mut h) = open_handoff(txn, conversation_id)? else {
        return Ok(None);
    };
    h.status = HandoffStatus::Cancelled;
    h.label = Some(why.to_string());
    h.updated_at = hub.now();
    txn.put(EventData::Handoff(h.clone()))?;
    crate::drafts::reject_waiting(
        txn,
        hub,
        conversation_id,
        "the bot ended the handoff before anyone decided",
    )?;
    Ok(Some(h))
}

/// Cancels every pending handoff that waited past its channel's `pending_timeout_secs` and hands
/// the conversation back to the bot (`/stop-hitl`), telling the agents why. Returns how many.
pub fn expire_pending(hub: &Hub) -> Result<usize, ApiError> {
    let now = hub.now();
    let channels: Vec<(String, u64)> = hub
        .store()
        .reader()?
        .channels()?
        .into_iter()
        .filter_map(|c| Some((c.id, c.settings.pending_timeout_secs?)))
        .collect();
    let mut expired = 0;
    for (channel_id, secs) in channels {
        let limit = span(secs);
        expired += hub.store().write(|txn| {
            let waiting: Vec<Handoff> = txn
                .pending_handoffs(&channel_id)?
                .into_iter()
            // A bot's drafts have their own timeout (the bot channel's).
            .filter(|h| !h.for_draft && now - h.updated_at > limit)
            .collect();
            for mut h in waiting.iter().cloned() {
                h.status = HandoffStatus::Cancelled;
                h.label = Some("no agent took it in time".into());
                h.updated_at = now;
                txn.put(EventData::Handoff(h.clone()))?;
                tell_platform(txn, hub, &h, PlatformEvent::Closed, None)?;
                crate::drafts::reject_waiting(txn, hub, &h.conversation_id, "no agent took the handoff in time")?;
                tracing::info!(handoff = %h.id, channel = %channel_id, waited_secs = secs, "pending timeout: handed back to the bot");
            }
            Ok::<_, ApiError>(waiting.len())
        })?;
    }
    Ok(expired)
}

/// Escalates waiting handoffs past their channel's target: at the target everyone online is told
/// again (`renotified`), at twice the target the channel's named agents are (`escalated`). Each
/// step is an update of the handoff, which every device hears. Returns how many changed.
pub fn escalate_waiting(hub: &Hub) -> Result<usize, ApiError> {
    use baton_protocol::{Escalation, EscalationLevel};
    let now = hub.now();
    // Outside business hours nobody is expected to answer: no escalation then.
    let channels: Vec<(String, u64, Vec<String>)> = hub
        .store()
        .reader()?
        .channels()?
        .into_iter()
        .filter(|c| {
            c.settings
                .business_hours
                .as_ref()
                .is_none_or(|hours| hours.is_open(now))
        })
        .filter_map(|c| Some((c.id, c.settings.wait_target_secs?, c.settings.escalate_to)))
        .collect();
    let mut changed = 0;
    for (channel_id, secs, escalate_to) in channels {
        let target = span(secs);
        changed += hub.store().write(|txn| {
            let mut n = 0;
            for mut h in txn.pending_handoffs(&channel_id)? {
                if h.for_draft {
                    continue;
                }
                // Since it last waited afresh (queued, or released back to the queue).
                let waited = now - h.updated_at;
                let level = h.escalation.as_ref().map(|e| e.level);
                let next = if waited >= target * 2
                    && !escalate_to.is_empty()
                    && level < Some(EscalationLevel::Escalated)
                {
                    let mut to = Vec::new();
                    for email in &escalate_to {
                        if let Some(agent) = txn.agent_by_email(email)?.filter(|a| !a.disabled) {
                            to.push(agent.id);
                        }
                    }
                    Escalation {
                        level: EscalationLevel::Escalated,
                        at: now,
                        to,
                    }
                } else if waited >= target && level.is_none() {
                    Escalation {
                        level: EscalationLevel::Renotified,
                        at: now,
                        to: Vec::new(),
                    }
                } else {
                    continue;
                };
                tracing::info!(handoff = %h.id, channel = %channel_id, level = ?next.level, waited_secs = waited.num_seconds(), "escalation: a customer has waited past the channel's target");
                h.escalation = Some(next);
                txn.put(EventData::Handoff(h))?;
                n += 1;
            }
            Ok::<_, ApiError>(n)
        })?;
    }
    Ok(changed)
}

/// A customer waits in the queue while no agent is online (or outside the channel's business
/// hours): the channel's "no agent available" message, in their language, tells them so — once
/// per handoff. Called after a customer's
/// message is stored (by then every platform knows the conversation, so the notice cannot arrive
/// before the platform is ready for it).
pub fn tell_if_nobody_can_answer(
    txn: &mut dyn Tx,
    hub: &Hub,
    channel_id: &str,
    conversation_id: &str,
) -> Result<(), ApiError> {
    // Most channels have no such message: the cached settings say so without a read or a copy.
    let wanted = hub.channel_setting(
        channel_id,
        || txn.channel(channel_id).ok().flatten().map(|c| c.settings),
        |s| {
            (!s.no_agent_message.is_empty())
                .then(|| (s.no_agent_message.clone(), s.business_hours.clone()))
        },
    );
    let Some((texts, hours)) = wanted.flatten() else {
        return Ok(());
    };
    let closed = hours.is_some_and(|hours| !hours.is_open(hub.now()));
    let Some(h) = txn
        .open_handoff(conversation_id)?
        .filter(|h| h.status == HandoffStatus::Pending && !h.for_draft)
    else {
        return Ok(());
    };
    // Told already: nothing more to read.
    if txn
        .external_id(channel_id, "no-agent-told", &h.id)?
        .is_some()
    {
        return Ok(());
    }
    if !closed
        && txn
            .agents()?
            .iter()
            .any(|a| a.presence == Presence::Online && !a.disabled)
    {
        return Ok(());
    }
    if channel_of(txn, &h)?.kind == "whatsapp" && !customer_window_open(txn, hub, &h)? {
        return Ok(());
    }
    let language = customer_language(txn, &h);
    let Some(text) = localized(&texts, language.as_deref(), "") else {
        return Ok(());
    };
    // Once per handoff, however often the customer writes.
    if !txn.link_external(channel_id, "no-agent-told", &h.id, &h.id)? {
        return Ok(());
    }
    notify_customer(txn, hub, &h, &text)?;
    tracing::info!(handoff = %h.id, "no agent online: the customer was told");
    Ok(())
}
