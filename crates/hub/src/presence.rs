//! Agents who go silent go offline, handoffs nobody takes go back to the bot, and drafts nobody
//! decides are decided by their channel's timeout. Every authenticated request and every open stream counts as a
//! sign of life; an online agent with none for `agent_session_timeout` is set offline and their
//! assigned handoffs return to the queue, so no customer waits on someone who left.

use std::time::Duration;

use baton_protocol::{Agent, EventData, Presence};
use tokio::sync::watch;

use crate::store::StoreError;
use crate::Hub;

pub async fn run(hub: Hub, mut stop: watch::Receiver<bool>) {
    let every = (hub.config().agent_session_timeout / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        // Hubs sharing a database sweep once, on the instance holding the leader lock.
        if !hub.store().leading() {
            continue;
        }
        let hub2 = hub.clone();
        match tokio::task::spawn_blocking(move || sweep(&hub2)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(agents = n, "presence: silent agents set offline"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "presence: sweep failed"),
            Err(e) => tracing::error!(error = %e, "presence: sweep task failed"),
        }
        let hub2 = hub.clone();
        match tokio::task::spawn_blocking(move || crate::auth::delete_expired_tokens(&hub2)).await {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(tokens = n, "expired sign-ins removed");
                hub.revoke(crate::Revoked::Recheck);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "token expiry: sweep failed"),
            Err(e) => tracing::error!(error = %e, "token expiry: sweep task failed"),
        }
        let hub2 = hub.clone();
        match tokio::task::spawn_blocking(move || crate::handoffs::expire_pending(&hub2)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "pending timeout: sweep failed"),
            Err(e) => tracing::error!(error = %e, "pending timeout: sweep task failed"),
        }
        let hub2 = hub.clone();
        match tokio::task::spawn_blocking(move || crate::handoffs::escalate_waiting(&hub2)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "escalation: sweep failed"),
            Err(e) => tracing::error!(error = %e, "escalation: sweep task failed"),
        }
        let hub2 = hub.clone();
        match tokio::task::spawn_blocking(move || crate::drafts::expire_due(&hub2)).await {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(drafts = n, "draft timeout: undecided drafts decided")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "draft timeout: sweep failed"),
            Err(e) => tracing::error!(error = %e, "draft timeout: sweep task failed"),
        }
    }
}

/// Sets offline every online or away agent silent past the timeout; returns how many.
pub fn sweep(hub: &Hub) -> Result<usize, StoreError> {
    let timeout = chrono::TimeDelta::from_std(hub.config().agent_session_timeout)
        .unwrap_or(chrono::TimeDelta::minutes(10));
    let now = hub.now();
    // What other instances saw of each agent (a shared database), beside what this one saw.
    let elsewhere: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> =
        hub.store().activity()?.into_iter().collect();
    let last_seen = |id: &str| {
        let here = hub.last_seen(id);
        elsewhere.get(id).map_or(here, |there| here.max(*there))
    };
    let silent: Vec<Agent> = hub
        .store()
        .reader()?
        .agents()?
        .into_iter()
        .filter(|a| a.presence != Presence::Offline)
        .filter(|a| now - last_seen(&a.id) > timeout)
        .collect();
    for agent in &silent {
        hub.store().write(|txn| {
            let mut agent = agent.clone();
            agent.presence = Presence::Offline;
            txn.put(EventData::Agent(agent.clone()))?;
            crate::handoffs::return_to_queue(txn, &agent.id, now)?;
            tracing::info!(agent = %agent.id, "presence: agent silent past the session timeout; handoffs returned to the queue");
            Ok::<_, StoreError>(())
        })?;
    }
    Ok(silent.len())
}
