//! Delivery of the hub's calls to Botpress (`/agent-assigned`, `/message-from-agent`,
//! `/stop-hitl`) from the persistent `deliveries` table (the hub's own queue, not to be confused
//! with a device's outbox of agent actions).
//!
//! Calls go out in order per conversation: a row is sent only when no earlier row of its
//! conversation is still queued or being sent. Botpress has no idempotency key (ARCHITECTURE.md,
//! Botpress protocol §1.4), so
//! the outcome decides what happens next:
//! - 2xx: sent.
//! - connection refused / no route, 429, 5xx: it certainly did not take effect; retried with
//!   jittered exponential backoff (honouring `Retry-After`) for up to [`GIVE_UP_AFTER`].
//! - any other 4xx: failed, with Botpress's answer as the reason; never retried by itself.
//! - a timeout or a connection lost after the request went out: *uncertain*. The agent sees it and
//!   decides whether to resend; the hub never guesses, so nothing is silently duplicated.
//!
//! A row is marked `sending` before its request leaves; rows still `sending` when the hub starts
//! were in flight when it died, so they become uncertain too. Nothing queued is lost to a crash.
//! An outcome that cannot be recorded (the database is busy or failing) is retried until it is:
//! a row is never left `sending`, which would hold up its conversation.
//!
//! What agents see of a failure is a short reason; Botpress's own answer goes to the hub's log
//! only, and neither ever contains the webhook URL (it is the channel's credential).

use std::time::Duration;

use baton_protocol::backoff::Backoff;
use baton_protocol::{DeliveryStatus, EventData};
use tokio::sync::watch;

use crate::store::{DeliveryState, DueDelivery as Due, StoreError, Tx};
use crate::Hub;

pub const GIVE_UP_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);
const MAX_IN_FLIGHT: usize = 16;
/// How long a call waits before its next try: from half a second, doubling to five minutes,
/// jittered, unless Botpress asks for longer (the shared policy, [`baton_protocol::backoff`]).
pub const RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(300));
/// How long a row waits when its channel has no webhook URL yet (setting one wakes the worker).
const NO_WEBHOOK_RECHECK: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent,
    /// Sent, and the platform named it (a WhatsApp wamid): later statuses refer to that name.
    SentAs(String),
    /// The platform refused the channel's credentials (`token`, the one used): the call waits
    /// until an admin fixes them.
    Broken {
        reason: String,
        token: String,
    },
    Retry {
        error: String,
        after: Option<Duration>,
    },
    Uncertain(String),
    Failed(String),
}

/// Runs until `stop` turns true.
pub async fn run(hub: Hub, mut stop: watch::Receiver<bool>) {
    let http = match crate::egress::client(
        hub.config().allow_private_urls,
        hub.config().delivery_timeout,
    ) {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "outbound: cannot build an HTTP client; deliveries stay queued");
            return;
        }
    };
    {
        let hub = hub.clone();
        match tokio::task::spawn_blocking(move || recover_in_flight(&hub, true)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::warn!(
                count = n,
                "outbound: calls in flight when the hub stopped are marked uncertain"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "outbound: cannot recover in-flight calls"),
            Err(e) => tracing::error!(error = %e, "outbound: recovery task failed"),
        }
    }
    let pacer = std::sync::Arc::new(Pacer::default());
    let mut looked_for_abandoned = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        // Hubs sharing a database: calls another instance claimed and never settled (it died
        // mid-call) are settled here once their lease is over.
        if hub.store().shared() && looked_for_abandoned.elapsed() >= LOOK_FOR_ABANDONED_EVERY {
            looked_for_abandoned = tokio::time::Instant::now();
            let hub2 = hub.clone();
            match tokio::task::spawn_blocking(move || recover_in_flight(&hub2, false)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::warn!(
                    count = n,
                    "outbound: calls a stopped hub instance was sending are marked uncertain"
                ),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "outbound: cannot settle abandoned calls")
                }
                Err(e) => tracing::error!(error = %e, "outbound: recovery task failed"),
            }
        }
        // A read says whether anything is due before a write transaction claims it: every
        // customer's message wakes this loop, and on PostgreSQL a claim takes the log's head and
        // a durable commit even when it finds nothing.
        let wait = next_wake(&hub).await;
        if !wait.is_zero() {
            tokio::select! {
                _ = hub.delivery_wakeup().notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        let hub2 = hub.clone();
        let claimed = tokio::task::spawn_blocking(move || claim_due(&hub2))
            .await
            .map_err(|e| e.to_string())
            .and_then(|claimed| claimed.map_err(|e| e.to_string()));
        let due = match claimed {
            Ok(due) => due,
            Err(e) => {
                // The look said a call is due: without a pause this would claim again at once.
                tracing::error!(error = %e, "outbound: cannot claim due calls; trying again in a second");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
        };
        if due.is_empty() {
            // Another instance took it first; the next look says what is left.
            continue;
        }
        let sends = due.into_iter().map(|row| {
            let http = http.clone();
            let hub = hub.clone();
            let stop = stop.clone();
            let pacer = pacer.clone();
            async move {
                let allow_private = hub.config().allow_private_urls;
                let outcome = match &row.url {
                    Some(url) if !crate::egress::allowed(url, allow_private) => wait_for_admin(
                        "the channel's webhook URL is not an https URL on a public host; an admin must change it",
                    ),
                    Some(url) if row.channel_kind == "whatsapp" => {
                        call_whatsapp(&hub, &http, &pacer, &row, url).await
                    }
                    Some(url) if row.channel_kind == "bot" => call_bot(&hub, &http, &row, url).await,
                    Some(url) => post(&http, url, &row.route, &row.body).await,
                    None => wait_for_admin("the channel has no Botpress webhook URL yet"),
                };
                // Recorded on its own task: a database that refuses for a while holds up only this
                // conversation (its row stays `sending`), never the others.
                tokio::spawn(async move { record(&hub, row, outcome, stop).await });
            }
        });
        futures_util::future::join_all(sends).await;
    }
}

/// One call to a WhatsApp number's Graph API: paced under its throughput, its file uploaded first.
async fn call_whatsapp(
    hub: &Hub,
    http: &reqwest::Client,
    pacer: &Pacer,
    row: &Due,
    url: &str,
) -> Outcome {
    // The settings could not be read just now: try again, never as Botpress.
    let Some(wa) = whatsapp_settings(hub, &row.channel_id).await else {
        return Outcome::Retry {
            error: "the number's settings cannot be read right now".into(),
            after: None,
        };
    };
    if let Some(why) = &wa.broken {
        return wait_for_admin(why);
    }
    // Meta counts a number's messages per second (130429 beyond): a short wait here, a longer one
    // back in the queue.
    let wait = pacer.slot(&row.channel_id, wa.max_per_second);
    if wait > Duration::from_secs(1) {
        return Outcome::Retry {
            error: "paced under the number's messages-per-second limit".into(),
            after: Some(wait),
        };
    }
    tokio::time::sleep(wait).await;
    let token = &wa.access_token;
    let sent =
        match crate::whatsapp::with_uploaded_media(http, hub, url, token, &row.body, row.attempts)
            .await
        {
            Ok(body) => crate::whatsapp::send(http, url, token, &body).await,
            Err(not_uploaded) => not_uploaded,
        };
    from_whatsapp(sent, token)
}

/// One signed event to a bot's events URL.
async fn call_bot(hub: &Hub, http: &reqwest::Client, row: &Due, url: &str) -> Outcome {
    // The bot may not have stored the handoff's id yet.
    if let Some(wait) = hub.bot_callback_wait(&row.conversation_id) {
        return Outcome::Retry {
            error: "waiting for the bot to take the handoff's answer".into(),
            after: Some(wait),
        };
    }
    let secret = match bot_secret(hub, &row.channel_id).await {
        Some(Some(secret)) => secret,
        Some(None) => return Outcome::Failed("the bot was removed by an admin".into()),
        None => {
            return Outcome::Retry {
                error: "the bot's settings cannot be read right now".into(),
                after: None,
            }
        }
    };
    match crate::bot_api::send(http, url, &secret, hub.now(), &row.body).await {
        crate::bot_api::Sent::Delivered => Outcome::Sent,
        crate::bot_api::Sent::Retry(error) => Outcome::Retry { error, after: None },
        crate::bot_api::Sent::Refused(reason) => Outcome::Failed(reason),
    }
}

/// The channel's WhatsApp settings, if it is a WhatsApp number (read through the hub's short cache).
async fn whatsapp_settings(
    hub: &Hub,
    channel_id: &str,
) -> Option<crate::whatsapp::WhatsAppSettings> {
    let (hub, id) = (hub.clone(), channel_id.to_string());
    tokio::task::spawn_blocking(move || {
        let cached = settings_of(&hub, &id)?.whatsapp;
        // A number marked broken is read fresh: an admin (perhaps in another process) may have
        // just fixed it.
        if cached.as_ref().is_some_and(|w| w.broken.is_some()) {
            hub.forget_channel_settings(&id);
            return settings_of(&hub, &id)?.whatsapp;
        }
        cached
    })
    .await
    .ok()
    .flatten()
}

/// A channel's settings through the hub's short cache; `None` when they cannot be read now.
fn settings_of(hub: &Hub, id: &str) -> Option<crate::channel::ChannelSettings> {
    let load = || {
        hub.store()
            .reader()
            .ok()?
            .channel(id)
            .ok()
            .flatten()
            .map(|c| c.settings)
    };
    hub.channel_settings(id, load)
}

/// The bot channel's signing secret (read through the hub's short cache): `Some(None)` for a bot
/// an admin removed, `None` when the settings cannot be read now.
async fn bot_secret(hub: &Hub, channel_id: &str) -> Option<Option<String>> {
    let (hub, id) = (hub.clone(), channel_id.to_string());
    tokio::task::spawn_blocking(move || {
        let bot = settings_of(&hub, &id)?.bot;
        Some(bot.filter(|b| !b.removed).map(|b| b.signing_secret))
    })
    .await
    .ok()
    .flatten()
}

fn from_whatsapp(sent: crate::whatsapp::Sent, token: &str) -> Outcome {
    use crate::whatsapp::Sent;
    match sent {
        Sent::Accepted(Some(wamid)) => Outcome::SentAs(wamid),
        Sent::Accepted(None) => Outcome::Sent,
        Sent::Retry { error, after } => Outcome::Retry { error, after },
        Sent::Refused(reason) => Outcome::Failed(reason),
        Sent::Broken(reason) => Outcome::Broken {
            reason,
            token: token.to_string(),
        },
        Sent::Uncertain(reason) => Outcome::Uncertain(reason),
    }
}

/// Spaces a channel's sends so they stay under its platform's throughput limit.
#[derive(Default)]
struct Pacer {
    /// Channel → when its next send may start.
    next: std::sync::Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
}

impl Pacer {
    /// Takes the channel's next send slot; returns how long until it.
    fn slot(&self, channel_id: &str, per_second: u32) -> Duration {
        let gap = Duration::from_secs(1) / per_second.max(1);
        let Ok(mut next) = self.next.lock() else {
            return Duration::ZERO;
        };
        let now = tokio::time::Instant::now();
        let slot = next.get(channel_id).copied().unwrap_or(now).max(now);
        next.insert(channel_id.to_string(), slot + gap);
        slot - now
    }
}

/// A call that waits until an admin fixes the channel (setting it wakes the queue sooner).
fn wait_for_admin(reason: &str) -> Outcome {
    Outcome::Retry {
        error: reason.into(),
        after: Some(
            NO_WEBHOOK_RECHECK
                .to_std()
                .unwrap_or(Duration::from_secs(60)),
        ),
    }
}

/// Records a call's outcome, retrying while the database is busy or failing: the row stays
/// `sending` only while this runs. If the hub stops first, the row is left `sending`, which the
/// next start turns into *uncertain* — never sent twice, never lost.
async fn record(hub: &Hub, row: Due, outcome: Outcome, stop: watch::Receiver<bool>) {
    let mut wait = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            tracing::warn!(row = row.id, "outbound: stopping before an outcome was recorded; the call counts as uncertain at the next start");
            return;
        }
        let (hub2, row2, outcome2) = (hub.clone(), row.clone(), outcome.clone());
        match tokio::task::spawn_blocking(move || settle(&hub2, &row2, outcome2)).await {
            Ok(Ok(())) => {
                // The conversation's next call may go now.
                hub.wake_delivery();
                return;
            }
            Ok(Err(e)) => {
                tracing::error!(row = row.id, error = %e, retry_in_ms = wait.as_millis() as u64,
                    "outbound: cannot record an outcome yet; trying again")
            }
            Err(e) => tracing::error!(row = row.id, error = %e, "outbound: settle task failed"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

/// POSTs one call and classifies what happened. Reasons are short and never contain the URL;
/// what Botpress answered goes to the log.
pub async fn post(http: &reqwest::Client, base: &str, route: &str, body: &str) -> Outcome {
    let url = format!("{}/{route}", base.trim_end_matches('/'));
    let sent = http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                return Outcome::Sent;
            }
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response.text().await.unwrap_or_default();
            let text: String = text.chars().take(300).collect();
            tracing::warn!(%route, status = status.as_u16(), answer = ?text, "outbound: Botpress did not accept a call");
            if status.as_u16() == 429 || status.is_server_error() {
                Outcome::Retry {
                    error: format!(
                        "Botpress is not accepting messages right now (HTTP {})",
                        status.as_u16()
                    ),
                    after: retry_after,
                }
            } else if status.is_redirection() {
                Outcome::Failed(format!(
                    "the webhook URL answered with a redirect (HTTP {}); an admin must check it",
                    status.as_u16()
                ))
            } else {
                Outcome::Failed(format!("Botpress refused it (HTTP {})", status.as_u16()))
            }
        }
        // Never connected: the request certainly did not reach Botpress.
        Err(e) if e.is_connect() => {
            tracing::info!(%route, error = %e.without_url(), "outbound: cannot reach Botpress");
            Outcome::Retry {
                error: "cannot reach Botpress".into(),
                after: None,
            }
        }
        Err(e) if e.is_builder() => {
            tracing::warn!(%route, error = %e.without_url(), "outbound: the webhook URL is not usable");
            Outcome::Failed(
                "the channel's webhook URL is not usable; an admin must change it".into(),
            )
        }
        Err(e) if e.is_timeout() => Outcome::Uncertain(
            "Botpress did not answer in time; it may or may not have received this".into(),
        ),
        Err(e) => {
            tracing::info!(%route, error = %e.without_url(), "outbound: the connection broke mid-call");
            Outcome::Uncertain(
                "the connection broke before Botpress answered; it may or may not have received this".into(),
            )
        }
    }
}

/// How often hubs sharing a database look for calls an instance abandoned by dying.
const LOOK_FOR_ABANDONED_EVERY: Duration = Duration::from_secs(2);

/// Settles calls whose sender is gone (this process's last run; on a shared database, an instance
/// whose lease ran out). `restarted`: this hub just started, so backoffs from before are over too.
fn recover_in_flight(hub: &Hub, restarted: bool) -> Result<usize, StoreError> {
    let now = hub.now();
    hub.store().write(|txn| {
        let rows = txn.deliveries_in_flight()?;
        for (id, message_id, channel_id) in &rows {
            // A bot's event keeps its id, so the bot can drop a repeat: it is simply sent again.
            if txn.channel(channel_id)?.is_some_and(|c| c.kind == "bot") {
                txn.settle_delivery(*id, DeliveryState::Queued, None, Some(now))?;
                continue;
            }
            let reason =
                "the hub stopped while sending this; it may or may not have reached Botpress";
            txn.settle_delivery(*id, DeliveryState::Uncertain, Some(reason), None)?;
            if let Some(message_id) = message_id {
                set_message_status(txn, message_id, DeliveryStatus::Uncertain, Some(reason))?;
            }
        }
        // A restart is a natural moment to try again: don't wait out backoffs from before it.
        // (Not when other hubs share the database: they did not restart, and an instance
        // starting must not undo every channel's backoff.)
        if restarted && !hub.store().shared() {
            txn.retry_deliveries_now(None, now)?;
        }
        Ok(rows.len())
    })
}

/// Takes up to [`MAX_IN_FLIGHT`] rows that are due and first in their conversation, marking them
/// `sending` in the same transaction.
fn claim_due(hub: &Hub) -> Result<Vec<Due>, StoreError> {
    let now = hub.now();
    hub.store()
        .write(|txn| txn.claim_due_deliveries(now, MAX_IN_FLIGHT))
}

fn settle(hub: &Hub, row: &Due, outcome: Outcome) -> Result<(), StoreError> {
    let now = hub.now();
    let outcome = match outcome {
        Outcome::Retry { error, .. } if now - row.created_at > GIVE_UP_AFTER => {
            Outcome::Failed(format!(
                "gave up after {} h of retrying: {error}",
                GIVE_UP_AFTER.num_hours()
            ))
        }
        other => other,
    };
    if let Outcome::Broken { reason, token } = &outcome {
        hub.store().write(|txn| {
            let at = now + NO_WEBHOOK_RECHECK;
            txn.settle_delivery(row.id, DeliveryState::Queued, Some(reason), Some(at))?;
            if let Some(mut channel) = txn.channel(&row.channel_id)? {
                // Only if the refused token is still the number's: an admin may have just fixed it.
                if let Some(wa) = channel
                    .settings
                    .whatsapp
                    .as_mut()
                    .filter(|w| &w.access_token == token)
                {
                    wa.broken = Some(reason.clone());
                }
                txn.set_channel(
                    &channel.id,
                    &channel.name,
                    channel.webhook_url.as_deref(),
                    &channel.settings,
                )?;
            }
            Ok::<_, StoreError>(())
        })?;
        hub.forget_channel_settings(&row.channel_id);
        tracing::error!(channel = %row.channel_id, "outbound: the channel's credentials were refused; nothing is sent until an admin fixes them");
        return Ok(());
    }
    hub.store().write(|txn| {
        let (state, status, reason) = match &outcome {
            Outcome::Sent => (DeliveryState::Sent, Some(DeliveryStatus::Sent), None),
            Outcome::SentAs(_) => (DeliveryState::Sent, Some(DeliveryStatus::Sent), None),
            Outcome::Broken { .. } => return Ok(()),
            Outcome::Uncertain(reason) => (DeliveryState::Uncertain, Some(DeliveryStatus::Uncertain), Some(reason.clone())),
            Outcome::Failed(reason) => (DeliveryState::Failed, Some(DeliveryStatus::Failed), Some(reason.clone())),
            Outcome::Retry { error, after } => {
                let delay = RETRY.delay(row.attempts + 1, *after, rand::random());
                let at = now + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::seconds(1));
                txn.settle_delivery(row.id, DeliveryState::Queued, Some(error), Some(at))?;
                tracing::info!(row = row.id, route = %row.route, reason = %error, retry_in_ms = delay.as_millis() as u64, "outbound: will retry");
                // Tell the agent why their messages are still waiting (once per reason, not per
                // try): this one's, and those queued behind it in the conversation, which wait
                // for the same reason.
                for message_id in txn.queued_messages(&row.conversation_id)? {
                    set_waiting_reason(txn, &message_id, error)?;
                }
                return Ok(());
            }
        };
        txn.settle_delivery(row.id, state, reason.as_deref(), None)?;
        match &outcome {
            Outcome::Sent | Outcome::SentAs(_) => tracing::debug!(row = row.id, route = %row.route, "outbound: sent"),
            _ => tracing::warn!(row = row.id, route = %row.route, state = state.as_str(), reason = reason.as_deref().unwrap_or(""), "outbound: not delivered"),
        }
        if let (Some(message_id), Some(status)) = (&row.message_id, status) {
            set_message_status(txn, message_id, status, reason.as_deref())?;
            if let Outcome::SentAs(external) = &outcome {
                crate::whatsapp::sent_as(txn, &row.channel_id, external, message_id)?;
            }
        }
        Ok(())
    })
}

fn set_waiting_reason(txn: &mut dyn Tx, message_id: &str, reason: &str) -> Result<(), StoreError> {
    if let Some(mut message) = txn.message(message_id)? {
        if message.status == DeliveryStatus::Queued
            && message.status_reason.as_deref() != Some(reason)
        {
            message.status_reason = Some(reason.to_string());
            txn.put(EventData::Message(message))?;
        }
    }
    Ok(())
}

fn set_message_status(
    txn: &mut dyn Tx,
    message_id: &str,
    status: DeliveryStatus,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    if let Some(mut message) = txn.message(message_id)? {
        // WhatsApp may report the message sent, delivered or read (its statuses name the message)
        // before this call's own outcome is recorded: what the platform reported stands.
        use DeliveryStatus::{Delivered, Read, Sent, Uncertain};
        let reported = matches!(message.status, Sent | Delivered | Read);
        let behind = status == Uncertain || (status == Sent && message.status != Sent);
        if reported && behind {
            return Ok(());
        }
        message.status = status;
        message.status_reason = reason.map(str::to_string);
        txn.put(EventData::Message(message))?;
    }
    Ok(())
}

/// How long until the earliest call that could be claimed comes due: zero when one is due now, at
/// most a second (a call another process queued, or one behind a call being sent, is seen within
/// it), and a second when the queue cannot be read.
async fn next_wake(hub: &Hub) -> Duration {
    let hub2 = hub.clone();
    let next = tokio::task::spawn_blocking(move || hub2.store().reader()?.next_delivery_at())
        .await
        .ok()
        .and_then(Result::ok);
    let cap = Duration::from_secs(1);
    match next {
        Some(Some(at)) => (at - hub.now()).to_std().unwrap_or(Duration::ZERO).min(cap),
        Some(None) | None => cap,
    }
}
