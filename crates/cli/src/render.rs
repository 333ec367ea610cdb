//! How conversations look in a terminal (`show`), in Markdown and in JSON (`export`). Everything
//! here reads the local cache only, so it works offline.

use anyhow::bail;
use baton_core::{Cache, OutboxItem, OutboxState};
use baton_protocol::{Agent, Author, DeliveryStatus, Message};
use serde::Serialize;

/// `2026-11-21T08:00:00.123+00:00` → `2026-11-21 08:00`.
pub fn short_date(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// An agent by email, name or id.
pub fn agent_id(cache: &Cache, who: &str) -> anyhow::Result<String> {
    let agents = cache.agents()?;
    let found: Vec<&Agent> = agents
        .iter()
        .filter(|a| {
            a.id == who || a.email.eq_ignore_ascii_case(who) || a.name.eq_ignore_ascii_case(who)
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => bail!("no agent {who:?} in the local cache (use an email, a name or an id)"),
        _ => bail!("{who:?} names more than one agent; use their email"),
    }
}

struct Names {
    customer: Option<String>,
    agents: Vec<Agent>,
}

impl Names {
    fn of(cache: &Cache, conversation: &str) -> anyhow::Result<Self> {
        Ok(Self {
            customer: cache.customer(conversation)?.map(|c| c.name),
            agents: cache.agents()?,
        })
    }

    fn author(&self, m: &Message) -> String {
        match m.author {
            Author::EndUser => self.customer.clone().unwrap_or_else(|| "Customer".into()),
            Author::Bot => "Bot".into(),
            Author::System => "Baton".into(),
            Author::Agent => m
                .author_id
                .as_deref()
                .and_then(|id| self.agents.iter().find(|a| a.id == id))
                .map(|a| a.name.clone())
                .unwrap_or_else(|| "Agent".into()),
        }
    }
}

/// The readable body of a message: its text, or what kind of thing it is and where.
fn body(m: &Message) -> String {
    if let Some(text) = &m.text {
        return text.clone();
    }
    let url = ["imageUrl", "fileUrl", "videoUrl", "audioUrl"]
        .iter()
        .find_map(|k| m.payload.get(k).and_then(|v| v.as_str()));
    match url {
        Some(url) => format!("[{}] {url}", m.kind),
        None => format!("[{}]", m.kind),
    }
}

fn delivery(m: &Message) -> Option<String> {
    let state = match m.status {
        DeliveryStatus::Received | DeliveryStatus::Sent => return None,
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Read => "read",
        DeliveryStatus::Queued => "sending",
        DeliveryStatus::Uncertain => "delivery uncertain",
        DeliveryStatus::Failed => "not delivered",
        DeliveryStatus::Draft => "bot's draft, waiting for approval",
        DeliveryStatus::Rejected => "draft rejected",
    };
    Some(match &m.status_reason {
        Some(reason) => format!("{state}: {reason}"),
        None => state.to_string(),
    })
}

fn pending(item: &OutboxItem) -> String {
    match item.state {
        OutboxState::Queued => match &item.error {
            Some(e) => format!("pending, outbox #{}: {e}", item.id),
            None => format!("pending, outbox #{}", item.id),
        },
        OutboxState::Failed => format!(
            "failed, outbox #{}: {}",
            item.id,
            item.error.as_deref().unwrap_or("refused")
        ),
    }
}

pub fn show(cache: &Cache, conversation: &str) -> anyhow::Result<String> {
    let names = Names::of(cache, conversation)?;
    let mut out = String::new();
    if let Some(h) = cache.latest_handoff(conversation)? {
        out.push_str(&format!("{}  [{}]", h.title, h.status.as_str()));
        if let Some(label) = &h.label {
            out.push_str(&format!(" {label}"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "conversation {conversation} · customer {}\n\n",
        names.customer.as_deref().unwrap_or("unknown")
    ));
    for m in cache.messages(conversation)? {
        out.push_str(&format!(
            "{}  {}: {}",
            when(&m.created_at),
            names.author(&m),
            body(&m)
        ));
        if let Some(state) = delivery(&m) {
            out.push_str(&format!("  ({state})"));
        }
        out.push('\n');
    }
    for item in cache.outbox_for(conversation)? {
        if let Some(text) = item.text().filter(|_| item.action == "message") {
            out.push_str(&format!(
                "{}  you: {text}  ({})\n",
                when(&item.created_at),
                pending(&item)
            ));
        }
    }
    let notes = cache.customer_view(conversation)?.notes;
    if !notes.is_empty() {
        out.push_str("\nnotes:\n");
        for n in notes {
            let by = names
                .agents
                .iter()
                .find(|a| a.id == n.agent_id)
                .map_or("an agent", |a| a.name.as_str());
            out.push_str(&format!("{}  {by}: {}\n", when(&n.created_at), n.text));
        }
    }
    Ok(out)
}

#[derive(Serialize)]
pub struct Export {
    pub conversation_id: String,
    pub customer: Option<baton_protocol::Contact>,
    /// Every handoff of this customer, newest first.
    pub handoffs: Vec<baton_protocol::Handoff>,
    pub notes: Vec<baton_protocol::Note>,
    pub messages: Vec<Message>,
    /// Replies written on this device and not yet delivered.
    pub outbox: Vec<OutboxItem>,
}

pub fn export(cache: &Cache, conversation: &str) -> anyhow::Result<Export> {
    let view = cache.customer_view(conversation)?;
    Ok(Export {
        conversation_id: conversation.to_string(),
        customer: view.contact,
        handoffs: view.handoffs,
        notes: view.notes,
        messages: cache.messages(conversation)?,
        outbox: cache.outbox_for(conversation)?,
    })
}

pub fn markdown(cache: &Cache, conversation: &str) -> anyhow::Result<String> {
    let names = Names::of(cache, conversation)?;
    let data = export(cache, conversation)?;
    let title = cache
        .latest_handoff(conversation)?
        .map_or_else(|| "Conversation".to_string(), |h| h.title);
    let mut out = format!("# {title}\n\n");
    out.push_str(&format!("- Conversation: `{conversation}`\n"));
    if let Some(c) = &data.customer {
        out.push_str(&format!("- Customer: {}", c.name));
        if let Some(email) = &c.email {
            out.push_str(&format!(" <{email}>"));
        }
        out.push('\n');
    }
    if !data.handoffs.is_empty() {
        out.push_str("\n## Handoffs\n\n");
        for h in &data.handoffs {
            out.push_str(&format!(
                "- {} — {} ({})",
                when(&h.created_at),
                h.title,
                h.status.as_str()
            ));
            if let Some(label) = &h.label {
                out.push_str(&format!(", {label}"));
            }
            if !h.tags.is_empty() {
                out.push_str(&format!(", tags: {}", h.tags.join(", ")));
            }
            out.push('\n');
        }
    }
    out.push_str("\n## Messages\n");
    for m in &data.messages {
        out.push_str(&format!(
            "\n**{}** · {}",
            names.author(m),
            when(&m.created_at)
        ));
        if let Some(state) = delivery(m) {
            out.push_str(&format!(" · _{state}_"));
        }
        out.push('\n');
        for line in body(m).lines() {
            out.push_str(&format!("> {line}\n"));
        }
    }
    for item in &data.outbox {
        if let Some(text) = item.text().filter(|_| item.action == "message") {
            out.push_str(&format!(
                "\n**You** · {} · _{}_\n",
                when(&item.created_at),
                pending(item)
            ));
            for line in text.lines() {
                out.push_str(&format!("> {line}\n"));
            }
        }
    }
    if !data.notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        for n in &data.notes {
            out.push_str(&format!(
                "- {}: {}\n",
                when(&n.created_at),
                n.text.replace('\n', " ")
            ));
        }
    }
    Ok(out)
}
