//! Who gets a waiting handoff without a supervisor choosing: per channel, `manual` (agents take
//! them; the default), `round-robin` (the next online agent in turn) or `least-busy` (the online
//! agent holding the fewest). Only online, enabled agents under their capacity are given work;
//! waiting handoffs go out most urgent first, then oldest first. The router looks after every
//! commit (a new handoff, a release, an agent coming online or resolving one) and on a slow tick,
//! so it needs no call from the code that changes handoffs.

use std::collections::HashMap;
use std::time::Duration;

use baton_protocol::{Agent, Handoff, Presence, Priority};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::Hub;

/// How a channel's waiting handoffs find an agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    #[default]
    Manual,
    RoundRobin,
    LeastBusy,
}

impl Routing {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "manual" => Some(Self::Manual),
            "round-robin" => Some(Self::RoundRobin),
            "least-busy" => Some(Self::LeastBusy),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::RoundRobin => "round-robin",
            Self::LeastBusy => "least-busy",
        }
    }
}

/// An agent who could take one more handoff, and how many they hold.
struct Candidate {
    agent: Agent,
    held: usize,
}

/// The order waiting handoffs go out in: the most urgent first (none said counts as normal), then
/// whoever has waited longest.
fn queue_order(a: &Handoff, b: &Handoff) -> std::cmp::Ordering {
    let urgency = |h: &Handoff| h.priority.unwrap_or(Priority::Normal);
    urgency(b)
        .cmp(&urgency(a))
        .then(a.created_at.cmp(&b.created_at))
}

/// Picks who gets the next handoff. `last` is the agent the channel's previous round-robin turn
/// went to; agents are taken in a fixed order (by id) so turns go round.
fn pick(
    routing: Routing,
    candidates: &[Candidate],
    last: Option<&str>,
    tags: &[String],
) -> Option<usize> {
    let room = |c: &Candidate| c.held < c.agent.capacity as usize;
    // Skills by tag: a handoff carrying a tag goes to someone with that skill while one has
    // room; only when none has does it go to anyone, so nobody waits for a specialist forever.
    let skilled = |c: &Candidate| c.agent.skills.iter().any(|s| tags.contains(s));
    let specialists = candidates.iter().any(|c| room(c) && skilled(c));
    let free = |c: &Candidate| room(c) && (!specialists || skilled(c));
    match routing {
        Routing::Manual => None,
        Routing::RoundRobin => {
            let after = last.and_then(|l| candidates.iter().position(|c| c.agent.id == l));
            let start = after.map_or(0, |i| i + 1);
            (0..candidates.len())
                .map(|k| (start + k) % candidates.len())
                .find(|&i| free(&candidates[i]))
        }
        Routing::LeastBusy => candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| free(c))
            .min_by_key(|(_, c)| c.held)
            .map(|(i, _)| i),
    }
}

/// Gives every waiting handoff of every automatically routed channel to an agent, while someone
/// can take one: the most urgent first (no priority counts as normal), then whoever has waited
/// longest, across channels. Everything is read first; a write happens only for an agent with
/// room. `turns` keeps each channel's last round-robin pick. Returns how many were given.
pub fn route_waiting(hub: &Hub, turns: &mut HashMap<String, String>) -> Result<usize, ApiError> {
    let (mut waiting, mut candidates) = {
        let read = hub.store().reader()?;
        let routed: HashMap<String, Routing> = read
            .channels()?
            .into_iter()
            .filter(|c| c.settings.routing != Routing::Manual)
            .map(|c| (c.id, c.settings.routing))
            .collect();
        if routed.is_empty() {
            return Ok(0);
        }
        let mut candidates = Vec::new();
        for agent in read.agents()? {
            if agent.presence == Presence::Online && !agent.disabled {
                let held = read.held_handoffs(&agent.id)?.len();
                candidates.push(Candidate { agent, held });
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        candidates.sort_by(|a, b| a.agent.id.cmp(&b.agent.id));
        let mut waiting: Vec<(Routing, Handoff)> = Vec::new();
        for (channel_id, routing) in &routed {
            for h in read.pending_handoffs(channel_id)? {
                if h.assignee.is_none() {
                    waiting.push((*routing, h));
                }
            }
        }
        (waiting, candidates)
    };
    waiting.sort_by(|(_, a), (_, b)| queue_order(a, b));
    let mut given = 0;
    for (routing, handoff) in waiting {
        let last = turns.get(&handoff.channel_id).map(String::as_str);
        // Nobody can take one more: the rest wait too.
        let Some(i) = pick(routing, &candidates, last, &handoff.tags) else {
            break;
        };
        let to = candidates[i].agent.clone();
        match hub
            .store()
            .write(|txn| crate::handoffs::route_to(txn, hub, &handoff.id, &to))
        {
            Ok(true) => {
                tracing::info!(handoff = %handoff.id, agent = %to.id, routing = routing.as_str(), "routing: handoff given to an agent");
                candidates[i].held += 1;
                turns.insert(handoff.channel_id.clone(), to.id);
                given += 1;
            }
            // Taken, released or ended since it was read, or the agent just filled up.
            Ok(false) => {}
            // One handoff that cannot be given (its channel gone, say) must not hold up the rest.
            Err(e) => {
                tracing::warn!(handoff = %handoff.id, error = %e, "routing: could not give the handoff; trying the next")
            }
        }
    }
    if given > 0 {
        hub.wake_delivery();
    }
    Ok(given)
}

/// How often the router looks whether anything was committed since its last pass.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// A pass runs at least this often anyway (an agent's capacity changed, say).
const PASS_AT_LEAST_EVERY: Duration = Duration::from_secs(2);

/// Runs until `stop` turns true: a pass whenever something was committed (seen within 100 ms,
/// from the store's announced sequence, which costs nothing per commit) and every 2 s.
pub async fn run(hub: Hub, mut stop: watch::Receiver<bool>) {
    let mut turns = HashMap::new();
    let mut seen = hub.store().announced();
    let mut last_pass = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = stop.changed() => return,
        }
        // Hubs sharing a database route once, on the instance holding the leader lock.
        if !hub.store().leading() {
            continue;
        }
        let now_seq = hub.store().announced();
        if now_seq == seen && last_pass.elapsed() < PASS_AT_LEAST_EVERY {
            continue;
        }
        seen = now_seq;
        last_pass = tokio::time::Instant::now();
        let hub2 = hub.clone();
        let mut state = std::mem::take(&mut turns);
        match tokio::task::spawn_blocking(move || {
            let given = route_waiting(&hub2, &mut state);
            (given, state)
        })
        .await
        {
            Ok((given, state)) => {
                turns = state;
                if let Err(e) = given {
                    tracing::error!(error = %e, "routing: pass failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "routing: pass task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, held: usize, capacity: u32) -> Candidate {
        let mut agent = Agent::new(id, format!("{id}@x"), id, baton_protocol::Role::Agent);
        agent.capacity = capacity;
        Candidate { agent, held }
    }

    #[test]
    fn round_robin_goes_round_and_skips_whoever_is_full() {
        let c = [
            candidate("a", 0, 5),
            candidate("b", 5, 5),
            candidate("c", 1, 5),
        ];
        assert_eq!(pick(Routing::RoundRobin, &c, None, &[]), Some(0));
        assert_eq!(
            pick(Routing::RoundRobin, &c, Some("a"), &[]),
            Some(2),
            "b is full"
        );
        assert_eq!(pick(Routing::RoundRobin, &c, Some("c"), &[]), Some(0));
        assert_eq!(pick(Routing::RoundRobin, &c, Some("gone"), &[]), Some(0));
    }

    #[test]
    fn the_queue_goes_out_most_urgent_first_and_no_priority_counts_as_normal() {
        let at = |minutes: i64| {
            chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_000 + minutes * 60, 0)
                .unwrap_or_default()
        };
        let h = |id: &str, priority: Option<Priority>, minutes: i64| Handoff {
            id: id.into(),
            conversation_id: id.into(),
            channel_id: "ch".into(),
            status: baton_protocol::HandoffStatus::Pending,
            title: id.into(),
            description: None,
            assignee: None,
            assigned_by: None,
            label: None,
            tags: Vec::new(),
            priority,
            for_draft: false,
            escalation: None,
            created_at: at(minutes),
            updated_at: at(minutes),
        };
        let mut queue = [
            h("low, oldest", Some(Priority::Low), 0),
            h("none, newer", None, 5),
            h("none, older", None, 2),
            h("urgent, newest", Some(Priority::Urgent), 9),
        ];
        queue.sort_by(queue_order);
        let ids: Vec<&str> = queue.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "urgent, newest",
                "none, older",
                "none, newer",
                "low, oldest"
            ]
        );
    }

    #[test]
    fn least_busy_picks_who_holds_fewest_and_manual_picks_nobody() {
        let c = [
            candidate("a", 3, 5),
            candidate("b", 1, 5),
            candidate("c", 0, 0),
        ];
        assert_eq!(
            pick(Routing::LeastBusy, &c, None, &[]),
            Some(1),
            "c takes none"
        );
        assert_eq!(pick(Routing::Manual, &c, None, &[]), None);
        let full = [candidate("a", 2, 2)];
        assert_eq!(pick(Routing::LeastBusy, &full, None, &[]), None);
        assert_eq!(pick(Routing::RoundRobin, &full, None, &[]), None);
    }

    #[test]
    fn a_tagged_handoff_goes_to_an_agent_with_that_skill_while_one_has_room_and_else_to_anyone() {
        let skilled = |id: &str, held: usize, skills: &[&str]| {
            let mut c = candidate(id, held, 2);
            c.agent.skills = skills.iter().map(|s| s.to_string()).collect();
            c
        };
        let billing = ["billing".to_string()];
        let c = [
            skilled("a", 0, &[]),
            skilled("b", 1, &["billing"]),
            skilled("c", 0, &["returns"]),
        ];
        assert_eq!(pick(Routing::LeastBusy, &c, None, &billing), Some(1));
        assert_eq!(pick(Routing::RoundRobin, &c, Some("b"), &billing), Some(1));
        assert_eq!(pick(Routing::LeastBusy, &c, None, &[]), Some(0));
        // The billing specialist is full: anyone rather than nobody.
        let full = [skilled("a", 0, &[]), skilled("b", 2, &["billing"])];
        assert_eq!(pick(Routing::LeastBusy, &full, None, &billing), Some(0));
    }
}
