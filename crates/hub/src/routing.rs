//! Who gets a waiting handoff without a supervisor choosing: per channel, `manual` (agents take
//! them; the default), `round-robin` (the next online agent in turn) or `least-busy` (the online
//! agent holding the fewest). Only online, enabled agents under their capacity are given work;
//! waiting handoffs go out most urgent first, then oldest first. The router wakes on every commit
//! (a new handoff, a release, an agent coming online or resolving one) and on a slow tick, so it
//! needs no call from the code that changes handoffs.

use std::collections::HashMap;
use std::time::Duration;

use baton_protocol::{Agent, Handoff, Presence};
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

/// What one routing attempt came to.
enum Outcome {
    NobodyFree,
    Gone,
    Given(String),
}

/// Picks who gets the next handoff. `last` is the agent the channel's previous round-robin turn
/// went to; agents are taken in a fixed order (by id) so turns go round.
fn pick(routing: Routing, candidates: &[Candidate], last: Option<&str>) -> Option<usize> {
    let free = |c: &Candidate| c.held < c.agent.capacity as usize;
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
/// can take one. `turns` keeps each channel's last round-robin pick. Returns how many were given.
pub fn route_waiting(hub: &Hub, turns: &mut HashMap<String, String>) -> Result<usize, ApiError> {
    let (channels, agents) = {
        let read = hub.store().reader()?;
        let channels: Vec<(String, Routing)> = read
            .channels()?
            .into_iter()
            .filter(|c| c.settings.routing != Routing::Manual)
            .map(|c| (c.id, c.settings.routing))
            .collect();
        if channels.is_empty() {
            return Ok(0);
        }
        let mut agents: Vec<Agent> = read
            .agents()?
            .into_iter()
            .filter(|a| a.presence == Presence::Online && !a.disabled)
            .collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        (channels, agents)
    };
    if agents.is_empty() {
        return Ok(0);
    }
    let mut given = 0;
    for (channel_id, routing) in channels {
        let mut waiting: Vec<Handoff> = hub
            .store()
            .reader()?
            .pending_handoffs(&channel_id)?
            .into_iter()
            .filter(|h| h.assignee.is_none())
            .collect();
        // Most urgent first, then whoever has waited longest.
        waiting.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.created_at.cmp(&b.created_at))
        });
        for handoff in waiting {
            let outcome = hub.store().write(|txn| {
                let mut candidates = Vec::with_capacity(agents.len());
                for agent in &agents {
                    let held = txn.held_handoffs(&agent.id)?.len();
                    candidates.push(Candidate {
                        agent: agent.clone(),
                        held,
                    });
                }
                let last = turns.get(&channel_id).map(String::as_str);
                let Some(i) = pick(routing, &candidates, last) else {
                    return Ok::<_, ApiError>(Outcome::NobodyFree);
                };
                let to = &candidates[i].agent;
                Ok(if crate::handoffs::route_to(txn, hub, &handoff.id, to)? {
                    Outcome::Given(to.id.clone())
                } else {
                    Outcome::Gone
                })
            })?;
            match outcome {
                // Nobody can take one more: the rest wait too.
                Outcome::NobodyFree => break,
                // Taken, released or ended since it was read.
                Outcome::Gone => {}
                Outcome::Given(id) => {
                    tracing::info!(handoff = %handoff.id, agent = %id, routing = routing.as_str(), "routing: handoff given to an agent");
                    turns.insert(channel_id.clone(), id);
                    given += 1;
                }
            }
        }
    }
    if given > 0 {
        hub.wake_delivery();
    }
    Ok(given)
}

/// Runs until `stop` turns true: after every commit (at most every 50 ms) and every 2 s.
pub async fn run(hub: Hub, mut stop: watch::Receiver<bool>) {
    let mut commits = hub.store().subscribe();
    let mut turns = HashMap::new();
    loop {
        tokio::select! {
            _ = commits.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
        // Let a burst of commits settle into one pass.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while commits.try_recv().is_ok() {}
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
        assert_eq!(pick(Routing::RoundRobin, &c, None), Some(0));
        assert_eq!(
            pick(Routing::RoundRobin, &c, Some("a")),
            Some(2),
            "b is full"
        );
        assert_eq!(pick(Routing::RoundRobin, &c, Some("c")), Some(0));
        assert_eq!(pick(Routing::RoundRobin, &c, Some("gone")), Some(0));
    }

    #[test]
    fn least_busy_picks_who_holds_fewest_and_manual_picks_nobody() {
        let c = [
            candidate("a", 3, 5),
            candidate("b", 1, 5),
            candidate("c", 0, 0),
        ];
        assert_eq!(pick(Routing::LeastBusy, &c, None), Some(1), "c takes none");
        assert_eq!(pick(Routing::Manual, &c, None), None);
        let full = [candidate("a", 2, 2)];
        assert_eq!(pick(Routing::LeastBusy, &full, None), None);
        assert_eq!(pick(Routing::RoundRobin, &full, None), None);
    }
}
