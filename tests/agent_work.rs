//! Agents working Botpress handoffs, end to end: a real `baton-hub` process, a fake Botpress webhook
//! that checks every call against the contract, and agents speaking the agent API.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::fake_botpress::{FakeBotpress, Mode};
use support::{AgentSession, Botpress, HubData, HubProcess, AGENT_EMAIL};

struct Desk {
    data: HubData,
    hub: HubProcess,
    botpress: Botpress,
    fake: FakeBotpress,
}

async fn desk_with(flags: &[&str]) -> Desk {
    desk_configured(&[], flags).await
}

/// A desk whose channel was changed with `botpress set <channel_flags>` before the hub started.
async fn desk_configured(channel_flags: &[&str], flags: &[&str]) -> Desk {
    let fake = FakeBotpress::start().await;
    let data = HubData::with_webhook(&fake.url());
    data.add_agent("bob@example.com", "Bob", "agent");
    data.add_agent("root@example.com", "Rita Admin", "admin");
    if !channel_flags.is_empty() {
        let mut args = vec![
            "botpress",
            "set",
            "--data",
            data.path(),
            "--channel",
            "Support bot",
        ];
        args.extend_from_slice(channel_flags);
        let (ok, _, err) = support::hub_cli(&args, "");
        assert!(ok, "botpress set failed: {err}");
    }
    let hub = HubProcess::start_with(&data, support::free_port(), flags);
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    Desk {
        data,
        hub,
        botpress,
        fake,
    }
}

async fn desk() -> Desk {
    desk_with(&[]).await
}

fn txn() -> String {
    format!("t-{}", rand_suffix())
}

fn rand_suffix() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u128;
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        * 1000
        + n
}

async fn handoff_id(alice: &AgentSession, ticket: &str) -> String {
    alice.handoff_of(ticket).await["id"]
        .as_str()
        .expect("handoff id")
        .to_string()
}

#[tokio::test]
async fn assigning_tells_botpress_who_took_it_then_greets_the_customer() {
    let d = desk().await;
    let ticket = d
        .botpress
        .hand_off("Refund", "Dana Reyes", "the box was crushed")
        .await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let id = handoff_id(&alice, &ticket).await;

    let (status, body) = alice
        .post(&format!("/handoffs/{id}/assign"), json!({"txn_id": txn()}))
        .await;
    assert_eq!(status, 200, "{body}");
    let handoff = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "handoff")
        .expect("handoff event");
    assert_eq!(handoff["data"]["status"], "assigned");

    let calls = d.fake.wait_for(2).await;
    assert_eq!(calls[0].route, "agent-assigned");
    assert_eq!(calls[0].body["remoteConversationId"], ticket.as_str());
    let agent_id = calls[0].body["remoteUserId"].as_str().expect("agent id");
    assert!(
        agent_id.starts_with("agent:"),
        "agents have their own namespace: {agent_id}"
    );
    assert_eq!(calls[1].route, "message-from-agent");
    assert_eq!(
        calls[1].body["payload"]["text"],
        "You have been assigned to our agent Alice."
    );
    assert_eq!(calls[1].body["remoteUserId"], agent_id);
    assert!(d.fake.violations().is_empty(), "{:?}", d.fake.violations());
}

#[tokio::test]
async fn second_assign_is_refused_with_the_owner_named() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana Reyes", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let bob = AgentSession::sign_in(&d.hub, "bob@example.com").await;
    let id = handoff_id(&alice, &ticket).await;
    assert_eq!(
        alice
            .post(&format!("/handoffs/{id}/assign"), json!({"txn_id": txn()}))
            .await
            .0,
        200
    );

    let (status, body) = bob
        .post(&format!("/handoffs/{id}/assign"), json!({"txn_id": txn()}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "conflict");
    assert_eq!(body["message"], "Alice already took this handoff");
    let (status, body) = bob
        .post(
            &format!("/conversations/{ticket}/messages"),
            json!({"txn_id": txn(), "text": "me too"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["message"], "Alice has this handoff");
}

#[tokio::test]
async fn two_agents_racing_for_one_handoff_get_exactly_one_assignment() {
    let d = desk().await;
    for round in 0..5 {
        let ticket = d
            .botpress
            .hand_off(&format!("Race {round}"), "Dana", "quick!")
            .await;
        let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
        let bob = AgentSession::sign_in(&d.hub, "bob@example.com").await;
        let id = handoff_id(&alice, &ticket).await;
        let path = format!("/handoffs/{id}/assign");
        let (a, b) = tokio::join!(
            alice.post(&path, json!({"txn_id": txn()})),
            bob.post(&path, json!({"txn_id": txn()}))
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}: {a:?} {b:?}");
        // Release it so the next round's assign is not stopped by capacity.
        let winner = if a.0 == 200 { &alice } else { &bob };
        assert_eq!(
            winner
                .post(&format!("/handoffs/{id}/resolve"), json!({"txn_id": txn()}))
                .await
                .0,
            200
        );
    }
    let calls = d.fake.wait_for(15).await;
    let assigned = calls.iter().filter(|c| c.route == "agent-assigned").count();
    assert_eq!(assigned, 5, "one agent-assigned per handoff");
}

#[tokio::test]
async fn a_repeated_txn_id_returns_the_first_result_and_sends_once() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let body = json!({"txn_id": "reply-1", "text": "Sorry about that! Refund on its way."});
    let first = alice
        .post(&format!("/conversations/{ticket}/messages"), body.clone())
        .await;
    let again = alice
        .post(&format!("/conversations/{ticket}/messages"), body)
        .await;
    assert_eq!(first.0, 200);
    assert_eq!(first, again);
    // Replying to a pending handoff assigns it: assigned, greeting, reply.
    let calls = d.fake.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replies: Vec<_> = d
        .fake
        .accepted()
        .into_iter()
        .filter(|c| c.body["payload"]["text"] == "Sorry about that! Refund on its way.")
        .collect();
    assert_eq!(replies.len(), 1, "{calls:#?}");
    assert_eq!(alice.handoff_of(&ticket).await["status"], "assigned");
}

#[tokio::test]
async fn resolving_with_a_label_returns_control_to_the_bot() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let id = handoff_id(&alice, &ticket).await;
    alice
        .post(&format!("/handoffs/{id}/assign"), json!({"txn_id": txn()}))
        .await;
    let (status, body) = alice
        .post(
            &format!("/handoffs/{id}/resolve"),
            json!({"txn_id": txn(), "label": "refunded"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let handoff = alice.latest("handoff", &id).await;
    assert_eq!(handoff["status"], "resolved");
    assert_eq!(handoff["label"], "refunded");
    let calls = d.fake.wait_for(3).await;
    assert_eq!(calls.last().map(|c| c.route.as_str()), Some("stop-hitl"));
    assert_eq!(
        calls.last().map(|c| c.body["remoteConversationId"].clone()),
        Some(json!(ticket))
    );
    let (status, body) = alice
        .post(
            &format!("/conversations/{ticket}/messages"),
            json!({"txn_id": txn(), "text": "one more"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("closed")));
}

#[tokio::test]
async fn an_agent_at_capacity_is_refused_clearly() {
    let d = desk().await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    for i in 0..4 {
        let ticket = d
            .botpress
            .hand_off(&format!("Ticket {i}"), "Dana", "hi")
            .await;
        let id = handoff_id(&alice, &ticket).await;
        let (status, body) = alice
            .post(&format!("/handoffs/{id}/assign"), json!({"txn_id": txn()}))
            .await;
        if i < 3 {
            assert_eq!(status, 200, "{body}");
        } else {
            assert_eq!(status, 409);
            assert_eq!(body["code"], "capacity");
            assert!(
                body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("limit of 3")),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn transfer_goes_to_an_online_agent_and_release_returns_to_the_queue() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let bob = AgentSession::sign_in(&d.hub, "bob@example.com").await;
    let id = handoff_id(&alice, &ticket).await;
    alice
        .post(&format!("/handoffs/{id}/assign"), json!({"txn_id": txn()}))
        .await;

    let (status, body) = alice
        .post(
            &format!("/handoffs/{id}/transfer"),
            json!({"txn_id": txn(), "to": "bob@example.com"}),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (409, Some("Bob is offline; transfer to an online agent"))
    );
    assert_eq!(
        bob.post("/presence", json!({"status": "online"})).await.0,
        200
    );
    let (status, body) = alice
        .post(
            &format!("/handoffs/{id}/transfer"),
            json!({"txn_id": txn(), "to": "bob@example.com"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let calls = d.fake.wait_for(4).await;
    assert_eq!(calls[2].route, "agent-assigned");
    assert_ne!(calls[2].body["remoteUserId"], calls[0].body["remoteUserId"]);
    assert_eq!(
        calls[3].body["payload"]["text"],
        "You are being transferred to our agent Bob."
    );

    assert_eq!(
        bob.post(&format!("/handoffs/{id}/release"), json!({"txn_id": txn()}))
            .await
            .0,
        200
    );
    let handoff = bob.latest("handoff", &id).await;
    assert_eq!(
        (handoff["status"].as_str(), handoff["assignee"].is_null()),
        (Some("pending"), true)
    );
}

#[tokio::test]
async fn only_an_admin_cancels_and_tags_come_from_the_admins_list() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let rita = AgentSession::sign_in(&d.hub, "root@example.com").await;
    let id = handoff_id(&alice, &ticket).await;

    let (ok, _, err) = support::hub_cli(
        &["tags", "set", "--data", d.data.path(), "refund", "vip"],
        "",
    );
    assert!(ok, "{err}");
    let (status, body) = alice
        .post(
            &format!("/handoffs/{id}/tags"),
            json!({"txn_id": txn(), "tags": ["refund", "urgent"]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"urgent\" is not one of the team's tags")),
        "{body}"
    );
    let (status, _) = alice
        .post(
            &format!("/handoffs/{id}/tags"),
            json!({"txn_id": txn(), "tags": ["vip", "refund"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        alice.latest("handoff", &id).await["tags"],
        json!(["refund", "vip"])
    );

    let (status, body) = alice
        .post(&format!("/handoffs/{id}/cancel"), json!({"txn_id": txn()}))
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(
        rita.post(&format!("/handoffs/{id}/cancel"), json!({"txn_id": txn()}))
            .await
            .0,
        200
    );
    assert_eq!(alice.latest("handoff", &id).await["status"], "cancelled");
    let calls = d.fake.wait_for(1).await;
    assert_eq!(calls[0].route, "stop-hitl");
}

#[tokio::test]
async fn notes_stay_with_the_conversation() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let (status, body) = alice
        .post(
            &format!("/conversations/{ticket}/notes"),
            json!({"txn_id": txn(), "text": "VIP customer, be generous"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let note = alice
        .events()
        .await
        .into_iter()
        .find(|e| e["kind"] == "note")
        .expect("note event");
    assert_eq!(note["data"]["conversation_id"], ticket.as_str());
    assert_eq!(note["data"]["text"], "VIP customer, be generous");
    assert!(
        d.fake.accepted().is_empty(),
        "notes never reach the customer"
    );
}

async fn reply(alice: &AgentSession, ticket: &str, text: &str) -> String {
    let (status, body) = alice
        .post(
            &format!("/conversations/{ticket}/messages"),
            json!({"txn_id": txn(), "text": text}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .and_then(|events| events.iter().rev().find(|e| e["kind"] == "message"))
        .and_then(|e| e["data"]["id"].as_str())
        .expect("message event")
        .to_string()
}

#[tokio::test]
async fn the_webhook_down_then_back_delivers_everything_once_in_order() {
    let mut d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    d.fake.down().await;
    let first = reply(&alice, &ticket, "one").await;
    reply(&alice, &ticket, "two").await;
    reply(&alice, &ticket, "three").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(alice.latest("message", &first).await["status"], "queued");

    d.fake.up().await;
    let calls = d.fake.wait_for(5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts: Vec<String> = d
        .fake
        .accepted()
        .iter()
        .filter_map(|c| c.body["payload"]["text"].as_str().map(String::from))
        .collect();
    assert_eq!(
        texts,
        [
            "You have been assigned to our agent Alice.",
            "one",
            "two",
            "three"
        ],
        "{calls:#?}"
    );
    let delivered = alice.latest("message", &first).await;
    assert_eq!(delivered["status"], "sent");
}

#[tokio::test]
async fn botpress_answering_503_is_retried_until_it_accepts() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    d.fake.set_mode(Mode::Unavailable);
    reply(&alice, &ticket, "retry me").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while d.fake.attempts() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub tried once and gave up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.fake.set_mode(Mode::Accept);
    let calls = d.fake.wait_for(3).await;
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.body["payload"]["text"] == "retry me")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_4xx_from_botpress_fails_the_message_with_the_reason_and_it_can_be_resent() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    d.fake.set_mode(Mode::Reject);
    let message = reply(&alice, &ticket, "will be refused").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let m = alice.latest("message", &message).await;
        if m["status"] == "failed" {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "never failed: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        failed["status_reason"]
            .as_str()
            .is_some_and(|r| r.contains("400")),
        "{failed}"
    );

    d.fake.set_mode(Mode::Accept);
    let (status, body) = alice
        .post(
            &format!("/messages/{message}/resend"),
            json!({"txn_id": txn()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let calls = d.fake.wait_for(1).await;
    assert!(calls
        .iter()
        .any(|c| c.body["payload"]["text"] == "will be refused"));
}

#[tokio::test]
async fn a_timeout_makes_the_message_uncertain_never_a_silent_duplicate() {
    let d = desk_with(&["--delivery-timeout", "0.5"]).await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    d.fake.set_mode(Mode::Slow(Duration::from_secs(2)));
    let message = reply(&alice, &ticket, "slow one").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let m = alice.latest("message", &message).await;
        if m["status"] == "uncertain" {
            assert!(
                m["status_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("may or may not")),
                "{m}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never uncertain: {m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts_with_text = d
        .fake
        .accepted()
        .iter()
        .filter(|c| c.body["payload"]["text"] == "slow one")
        .count();
    assert!(
        attempts_with_text <= 1,
        "the hub must not retry an uncertain call by itself"
    );
}

#[tokio::test]
async fn killing_the_hub_with_deliveries_queued_loses_none() {
    let mut d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    d.fake.down().await;
    reply(&alice, &ticket, "before the crash 1").await;
    reply(&alice, &ticket, "before the crash 2").await;
    let port = d.hub.port;
    d.hub.kill();
    d.fake.up().await;
    let hub = HubProcess::start(&d.data, port);
    // A new session: the old client's pooled connection died with the old process.
    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;

    // Every desk message ends delivered or, if the crash caught it mid-call, visibly uncertain.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let outcome = loop {
        let mut latest: Vec<(String, Value)> = Vec::new();
        for event in alice
            .events()
            .await
            .into_iter()
            .filter(|e| e["kind"] == "message")
        {
            let id = event["data"]["id"].as_str().unwrap_or_default().to_string();
            latest.retain(|(known, _)| known != &id);
            latest.push((id, event["data"].clone()));
        }
        let desk: Vec<Value> = latest
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| m["author"] != "end_user")
            .collect();
        if desk.len() == 3
            && desk
                .iter()
                .all(|m| m["status"] == "sent" || m["status"] == "uncertain")
        {
            break desk;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still undelivered: {desk:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted = d.fake.accepted();
    for message in &outcome {
        let copies = accepted
            .iter()
            .filter(|c| c.body["payload"]["text"] == message["text"])
            .count();
        match message["status"].as_str() {
            Some("sent") => assert_eq!(copies, 1, "{message} delivered exactly once"),
            _ => assert!(copies <= 1, "{message} never duplicated"),
        }
    }
    let sent: Vec<&str> = outcome
        .iter()
        .filter(|m| m["status"] == "sent")
        .filter_map(|m| m["text"].as_str())
        .collect();
    let delivered_order: Vec<&str> = accepted
        .iter()
        .filter_map(|c| c.body["payload"]["text"].as_str())
        .filter(|t| sent.contains(t))
        .collect();
    assert_eq!(
        delivered_order, sent,
        "delivered in the order they were written"
    );
}

#[tokio::test]
async fn a_silent_agent_goes_offline_and_their_handoffs_return_to_the_queue() {
    let d = desk_with(&["--agent-session-timeout", "1"]).await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let id = handoff_id(&alice, &ticket).await;
    assert_eq!(
        alice
            .post(&format!("/handoffs/{id}/assign"), json!({"txn_id": txn()}))
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Reading the log is itself a sign of life, so look through a second agent's eyes.
    let bob = AgentSession::sign_in(&d.hub, "bob@example.com").await;
    let handoff = bob.latest("handoff", &id).await;
    assert_eq!(handoff["status"], "pending", "{handoff}");
    let alice_now = bob
        .events()
        .await
        .into_iter()
        .rev()
        .find(|e| e["kind"] == "agent" && e["data"]["email"] == AGENT_EMAIL)
        .expect("agent event");
    assert_eq!(alice_now["data"]["presence"], "offline");
}

#[tokio::test]
async fn the_session_ended_notice_cancels_the_handoff_without_calling_botpress_back() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let (status, _) = d
        .botpress
        .post(
            "botSendsMessage",
            json!({"type": "botSendsMessage", "remoteConversationId": ticket, "remoteUserId": "BOT",
                   "payload": {"text": "( The user has ended the session. )"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = d
        .botpress
        .post("closeRemoteTicket", json!({"type": "closeRemoteTicket", "payload": {"botpressConversationId": "conv_unknown"}}))
        .await;
    assert_eq!(status, 200);
    let handoff = alice.handoff_of(&ticket).await;
    assert_eq!(handoff["status"], "cancelled");
    assert_eq!(handoff["label"], "the customer ended the session");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        d.fake.accepted().is_empty(),
        "Botpress already ended it: {:?}",
        d.fake.accepted()
    );
}

#[tokio::test]
async fn close_remote_ticket_is_matched_through_the_botpress_api_when_the_channel_has_a_token() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let channel = support::hub_cli(&["botpress", "list", "--data", d.data.path()], "").1;
    let channel_id = channel.split('\t').next().expect("channel id").to_string();
    // The running hub reads channel settings per call, so the CLI's change applies at once.
    let (ok, _, err) = support::hub_cli(
        &[
            "botpress",
            "set",
            "--data",
            d.data.path(),
            "--channel",
            &channel_id,
            "--bot-id",
            "bot_123",
            "--bot-token-stdin",
        ],
        "bp_pat_secret",
    );
    assert!(ok, "{err}");
    let listed = support::hub_cli(&["botpress", "list", "--data", d.data.path()], "").1;
    assert!(
        listed.contains("token set") && !listed.contains("bp_pat_secret"),
        "{listed}"
    );
    // Point the channel's API lookups at the fake (an admin-API change, as an admin would).
    let rita = AgentSession::sign_in(&d.hub, "root@example.com").await;
    let response = rita
        .http
        .patch(format!("{}/api/v1/admin/channels/{channel_id}", rita.base))
        .bearer_auth(&rita.token)
        .json(&json!({"botpress_api_url": d.fake.api_url()}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status().as_u16(), 200);
    let view: Value = response.json().await.expect("channel view");
    assert_eq!(view["bot_token_set"], true);
    assert!(
        view.get("bot_token").is_none(),
        "the token is never shown: {view}"
    );

    d.fake.know_conversation("conv_01ABC", &ticket);
    let (status, _) = d
        .botpress
        .post("closeRemoteTicket", json!({"type": "closeRemoteTicket", "payload": {"botpressConversationId": "conv_01ABC"}}))
        .await;
    assert_eq!(status, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rita.handoff_of(&ticket).await["status"] != "cancelled" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never cancelled; lookups: {:?}",
            d.fake.api_lookups()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lookups = d.fake.api_lookups();
    assert_eq!(lookups[0].0, "conv_01ABC");
    assert_eq!(lookups[0].1.as_deref(), Some("Bearer bp_pat_secret"));
    assert_eq!(lookups[0].2.as_deref(), Some("bot_123"));
}

#[tokio::test]
async fn the_admin_api_is_for_admins_and_disabling_an_agent_frees_their_handoffs() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let rita = AgentSession::sign_in(&d.hub, "root@example.com").await;
    let id = handoff_id(&alice, &ticket).await;
    alice
        .post(&format!("/handoffs/{id}/assign"), json!({"txn_id": txn()}))
        .await;

    let (status, body) = alice
        .post(
            "/admin/templates",
            json!({"name": "refund", "text": "Your refund is on its way."}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, body) = rita
        .post(
            "/admin/templates",
            json!({"name": "refund", "text": "Your refund is on its way."}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let template = alice
        .events()
        .await
        .into_iter()
        .find(|e| e["kind"] == "template")
        .expect("template event");
    assert_eq!(template["data"]["name"], "refund");

    let response = rita
        .http
        .patch(format!("{}/api/v1/admin/agents/{AGENT_EMAIL}", rita.base))
        .bearer_auth(&rita.token)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        alice.post("/presence", json!({"status": "online"})).await.0,
        401,
        "a disabled agent is signed out"
    );
    assert_eq!(rita.handoff_of(&ticket).await["status"], "pending");
}

#[tokio::test]
async fn an_image_goes_to_botpress_as_an_image_when_the_channel_relays_images() {
    let d = desk_configured(&["--message-kinds", "text,image,file"], &[]).await;
    let ticket = d
        .botpress
        .hand_off("Damaged box", "Dana", "it arrived crushed")
        .await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;

    let (status, body) = alice
        .post(
            &format!("/conversations/{ticket}/messages"),
            json!({"txn_id": txn(), "type": "image",
                   "payload": {"imageUrl": "https://cdn.example.com/label.png", "title": "Return label"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let message = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .rev()
        .find(|e| e["kind"] == "message")
        .expect("message event")["data"]
        .clone();
    assert_eq!(
        message["type"], "image",
        "the greeting comes first, then the image"
    );
    assert_eq!(message["text"], "Return label", "lists show the title");

    // Replying to a pending handoff assigns it: agent-assigned, the greeting, then the image.
    let calls = d.fake.wait_for(3).await;
    assert_eq!(calls[2].route, "message-from-agent");
    assert_eq!(calls[2].body["messageType"], "image");
    assert_eq!(
        calls[2].body["payload"]["imageUrl"],
        "https://cdn.example.com/label.png"
    );
    assert_eq!(
        calls[2].body["payload"].get("title"),
        None,
        "the integration's 0.2.2 image has no title"
    );
    assert!(d.fake.violations().is_empty(), "{:?}", d.fake.violations());

    // An old HITL plugin relays text only, and says so in the ticket: the image shows as failed.
    let (status, _) = d
        .botpress
        .post(
            "botSendsMessage",
            json!({"type": "botSendsMessage", "remoteConversationId": ticket, "remoteUserId": "BOT",
                   "payload": {"text": "Sorry, the user can not receive this type of message. Please resend your message as a text message."}}),
        )
        .await;
    assert_eq!(status, 200);
    let failed = alice
        .wait_for_message("Return label", |m| m["status"] == "failed")
        .await;
    assert!(
        failed["status_reason"]
            .as_str()
            .is_some_and(|r| r.contains("relays only text")),
        "{failed}"
    );
}

#[tokio::test]
async fn an_endpoint_saved_with_a_trailing_slash_still_works() {
    let d = desk().await;
    let slashed = Botpress::new(&d.hub.url(), &format!("{}/", d.data.endpoint_path));
    let (status, body) = slashed.post("ping", json!({"type": "ping"})).await;
    assert_eq!(status, 200, "{body}");
    let ticket = slashed.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    assert_eq!(alice.handoff_of(&ticket).await["status"], "pending");
}

#[tokio::test]
async fn a_kind_the_channel_does_not_relay_or_a_malformed_payload_is_refused_before_queueing() {
    let d = desk().await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let path = format!("/conversations/{ticket}/messages");

    let (status, body) = alice
        .post(
            &path,
            json!({"txn_id": txn(), "type": "file", "payload": {"fileUrl": "https://x/i.pdf"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("relays only text"),
        "{body}"
    );
    let (status, body) = alice
        .post(&path, json!({"txn_id": txn(), "type": "image", "payload": {"imageUrl": "file:///etc/passwd"}}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("http(s) URL"),
        "{body}"
    );

    // Nothing was assigned or sent by the refused attempts.
    assert_eq!(alice.handoff_of(&ticket).await["status"], "pending");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(d.fake.accepted().is_empty(), "{:?}", d.fake.accepted());
}

#[tokio::test]
async fn a_handoff_nobody_takes_within_the_channels_pending_timeout_goes_back_to_the_bot() {
    // A short session timeout makes the hub's sweeper run often.
    let d = desk_configured(
        &["--pending-timeout", "1"],
        &["--agent-session-timeout", "1"],
    )
    .await;
    let ticket = d.botpress.hand_off("Refund", "Dana", "hello?").await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;

    let calls = d.fake.wait_for(1).await;
    assert_eq!(calls[0].route, "stop-hitl", "{calls:?}");
    assert_eq!(calls[0].body["remoteConversationId"], ticket.as_str());
    let handoff = alice.handoff_of(&ticket).await;
    assert_eq!(handoff["status"], "cancelled");
    assert_eq!(handoff["label"], "no agent took it in time");
    assert!(d.fake.violations().is_empty(), "{:?}", d.fake.violations());
}

/// Who holds each of `tickets`' handoffs, by name ("" while nobody does).
async fn holders(alice: &AgentSession, tickets: &[String]) -> Vec<String> {
    let agents: Vec<Value> = alice
        .events()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "agent")
        .map(|e| e["data"].clone())
        .collect();
    let mut names = Vec::new();
    for ticket in tickets {
        let holder = alice.handoff_of(ticket).await["assignee"].clone();
        names.push(
            agents
                .iter()
                .rev()
                .find(|a| a["id"] == holder)
                .and_then(|a| a["name"].as_str())
                .unwrap_or("")
                .to_string(),
        );
    }
    names
}

/// Who holds each ticket's handoff, once all are held (or after 10 s, as they are then).
async fn held_by_all(alice: &AgentSession, tickets: &[String]) -> Vec<String> {
    let mut held = Vec::new();
    for _ in 0..100 {
        held = holders(alice, tickets).await;
        if held.iter().all(|h| !h.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    held
}

async fn go_online(agent: &AgentSession) {
    assert_eq!(
        agent.post("/presence", json!({"status": "online"})).await.0,
        200
    );
}

#[tokio::test]
async fn with_round_robin_routing_waiting_handoffs_go_to_the_online_agents_in_turn() {
    let d = desk_configured(&["--routing", "round-robin"], &[]).await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let bob = AgentSession::sign_in(&d.hub, "bob@example.com").await;
    go_online(&alice).await;
    go_online(&bob).await;
    let mut tickets = Vec::new();
    for n in 0..4 {
        tickets.push(
            d.botpress
                .hand_off(&format!("Order {n}"), &format!("Customer {n}"), "hello")
                .await,
        );
    }
    let held = held_by_all(&alice, &tickets).await;
    // Nobody picked: each handoff went out in turn, two each, never twice in a row to the same.
    assert_eq!(held.iter().filter(|h| *h == "Alice").count(), 2, "{held:?}");
    assert_eq!(held.iter().filter(|h| *h == "Bob").count(), 2, "{held:?}");
    assert!(held.windows(2).all(|w| w[0] != w[1]), "{held:?}");
    // Rita, an admin who is offline, got none; the customers were told who took them.
    support::eventually(
        Duration::from_secs(10),
        || {
            d.fake
                .accepted()
                .iter()
                .filter(|c| {
                    c.body
                        .to_string()
                        .contains("You have been assigned to our agent")
                })
                .count()
                == 4
        },
        || format!("Botpress got {:?}", d.fake.accepted()),
    )
    .await;
    assert!(d.fake.violations().is_empty(), "{:?}", d.fake.violations());
}

#[tokio::test]
async fn with_least_busy_routing_the_next_handoff_goes_to_whoever_holds_fewest_and_offline_agents_get_none(
) {
    let d = desk_configured(&["--routing", "least-busy"], &[]).await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    go_online(&alice).await;
    let early = [
        d.botpress.hand_off("First", "Ana", "hi").await,
        d.botpress.hand_off("Second", "Ben", "hi").await,
    ];
    let held = held_by_all(&alice, &early).await;
    assert_eq!(held, ["Alice", "Alice"], "only Alice was online");

    // Bob comes online: he holds none, so the next two are his.
    let bob = AgentSession::sign_in(&d.hub, "bob@example.com").await;
    go_online(&bob).await;
    let late = [
        d.botpress.hand_off("Third", "Cy", "hi").await,
        d.botpress.hand_off("Fourth", "Di", "hi").await,
    ];
    assert_eq!(held_by_all(&alice, &late).await, ["Bob", "Bob"]);

    // Manual routing (set through the admin API) leaves the next one waiting for someone to take it.
    let rita = AgentSession::sign_in(&d.hub, "root@example.com").await;
    let channel = alice.handoff_of(&late[0]).await["channel_id"]
        .as_str()
        .expect("channel")
        .to_string();
    let answer = rita
        .http
        .patch(format!("{}/api/v1/admin/channels/{channel}", rita.base))
        .bearer_auth(&rita.token)
        .json(&json!({"routing": "manual"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(answer.status().as_u16(), 200);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["routing"], "manual");
    let waiting = d.botpress.hand_off("Fifth", "Ed", "hi").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(alice.handoff_of(&waiting).await["status"], "pending");
}

#[tokio::test]
async fn the_report_counts_what_agents_did_from_the_cli_and_the_admin_api() {
    let d = desk().await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let first = d
        .botpress
        .hand_off("Refund", "Ana", "money back please")
        .await;
    let second = d.botpress.hand_off("Address", "Ben", "new address").await;
    let _waiting = d.botpress.hand_off("Invoice", "Cy", "invoice?").await;
    for ticket in [&first, &second] {
        let id = handoff_id(&alice, ticket).await;
        alice
            .act(&format!("/handoffs/{id}/assign"), json!({}))
            .await;
        alice.reply(ticket, "On it").await;
    }
    let id = handoff_id(&alice, &first).await;
    alice
        .act(
            &format!("/handoffs/{id}/resolve"),
            json!({"label": "refunded"}),
        )
        .await;

    let (ok, out, err) = support::hub_cli(
        &[
            "report",
            "--data",
            d.data.path(),
            "--since",
            "1d",
            "--by",
            "agent",
            "--format",
            "csv",
        ],
        "",
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("agent,handoffs,resolved,cancelled,first_response_median_secs"),
        "{out}"
    );
    let alice_row: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("Alice,"))
        .expect("a row for Alice")
        .split(',')
        .collect();
    assert_eq!(&alice_row[..4], ["Alice", "2", "1", "0"], "{out}");
    assert!(!alice_row[4].is_empty(), "a first-reply time: {out}");
    assert!(
        lines.iter().any(|l| l.starts_with("unassigned,1,0,0,")),
        "{out}"
    );

    let rita = AgentSession::sign_in(&d.hub, "root@example.com").await;
    let answer = rita
        .http
        .get(format!(
            "{}/api/v1/admin/report?since=1d&by=label&format=csv",
            rita.base
        ))
        .bearer_auth(&rita.token)
        .send()
        .await
        .expect("report");
    assert_eq!(answer.status().as_u16(), 200);
    assert!(answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv")));
    let text = answer.text().await.expect("body");
    assert!(
        text.lines().any(|l| l.starts_with("refunded,1,1,0,")),
        "{text}"
    );
    // Agents are not shown the team's figures; a bad period is refused with the reason.
    assert_eq!(alice.get("/admin/report?since=1d").await.0, 403);
    assert_eq!(rita.get("/admin/report?since=yesterday").await.0, 400);
}

#[tokio::test]
async fn a_customer_waiting_past_the_target_is_told_to_everyone_again_then_to_the_named_admin() {
    // The sweep runs every half second; the hub's clock is moved, not waited for.
    let d = desk_configured(
        &["--wait-target", "300", "--escalate-to", "root@example.com"],
        &["--agent-session-timeout", "2"],
    )
    .await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let ticket = d
        .botpress
        .hand_off("Lost parcel", "Ana", "where is it?")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(alice.handoff_of(&ticket).await.get("escalation").is_none());

    let escalation = |want: &'static str| {
        let alice = &alice;
        let ticket = &ticket;
        async move {
            for _ in 0..100 {
                let h = alice.handoff_of(ticket).await;
                if h["escalation"]["level"] == want {
                    return h["escalation"].clone();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!(
                "the handoff was never {want}: {}",
                alice.handoff_of(ticket).await
            );
        }
    };
    d.data.move_clock(5 * 60 + 1);
    let told = escalation("renotified").await;
    assert!(told.get("to").is_none(), "everyone online: {told}");

    d.data.move_clock(10 * 60 + 1);
    let escalated = escalation("escalated").await;
    let rita = alice
        .events()
        .await
        .into_iter()
        .find(|e| e["kind"] == "agent" && e["data"]["email"] == "root@example.com")
        .expect("Rita");
    assert_eq!(escalated["to"], json!([rita["data"]["id"]]));

    // A bad setting is refused with the reason.
    support::hub_cli_refuses(
        &[
            "botpress",
            "set",
            "--data",
            d.data.path(),
            "--channel",
            "Support bot",
            "--escalate-to",
            "nobody@example.com",
        ],
        "no agent \"nobody@example.com\"",
    );
}

#[tokio::test]
async fn a_customer_queued_while_no_agent_is_online_is_told_so_once() {
    let d = desk_configured(
        &[
            "--no-agent-message",
            "en=Nobody is available right now; we will answer as soon as we can.",
            "--no-agent-message",
            "es=Ahora no hay nadie disponible; te responderemos lo antes posible.",
        ],
        &[],
    )
    .await;
    let told = |fake: &FakeBotpress, text: &str| {
        fake.accepted()
            .iter()
            .filter(|c| c.body.to_string().contains(text))
            .count()
    };
    let ticket = d.botpress.hand_off("Refund", "Ana", "hello?").await;
    support::eventually(
        Duration::from_secs(10),
        || told(&d.fake, "Nobody is available right now") == 1,
        || format!("Botpress got {:?}", d.fake.accepted()),
    )
    .await;
    // Writing again does not repeat it.
    let (status, _) = d
        .botpress
        .post(
            "botSendsMessage",
            json!({"type": "botSendsMessage", "remoteConversationId": ticket, "remoteUserId": "u_again", "payload": {"text": "anyone?"}}),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(told(&d.fake, "Nobody is available right now"), 1);

    // With an agent online, nobody is told that.
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    assert_eq!(
        alice.post("/presence", json!({"status": "online"})).await.0,
        200
    );
    d.botpress.hand_off("Address", "Ben", "hola").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(told(&d.fake, "Nobody is available right now"), 1);
    assert!(d.fake.violations().is_empty(), "{:?}", d.fake.violations());
}

#[tokio::test]
async fn outside_business_hours_a_queued_customer_is_told_even_with_agents_online() {
    use chrono::{Datelike, TimeDelta, Timelike, Utc};
    let d = desk_configured(
        &[
            "--no-agent-message",
            "en=We are closed now; we answer Monday to Friday, 9 to 5.",
            "--business-hours",
            "UTC mon-fri 09:00-17:00",
        ],
        &[],
    )
    .await;
    // The hub's clock goes to the coming Sunday 03:00 UTC (then Monday 10:00), without waiting.
    let now = Utc::now();
    let midnight = now - TimeDelta::seconds(i64::from(now.num_seconds_from_midnight()));
    let to_sunday = i64::from((7 - now.weekday().num_days_from_sunday()) % 7);
    let sunday_3am = midnight
        + TimeDelta::days(if to_sunday == 0 { 7 } else { to_sunday })
        + TimeDelta::hours(3);
    d.data
        .move_clock(u64::try_from((sunday_3am - now).num_seconds()).expect("ahead"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    assert_eq!(
        alice.post("/presence", json!({"status": "online"})).await.0,
        200
    );
    let closed_text = "We are closed now";
    let told = |fake: &FakeBotpress| {
        fake.accepted()
            .iter()
            .filter(|c| c.body.to_string().contains(closed_text))
            .count()
    };
    d.botpress
        .hand_off("Weekend question", "Ana", "hello?")
        .await;
    support::eventually(
        Duration::from_secs(10),
        || told(&d.fake) == 1,
        || format!("Botpress got {:?}", d.fake.accepted()),
    )
    .await;

    let monday_10am = sunday_3am + TimeDelta::hours(31);
    d.data
        .move_clock(u64::try_from((monday_10am - now).num_seconds()).expect("ahead"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        alice.post("/presence", json!({"status": "online"})).await.0,
        200
    );
    d.botpress
        .hand_off("Monday question", "Ben", "hello?")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(told(&d.fake), 1, "open, and Alice is online");

    support::hub_cli_refuses(
        &[
            "botpress",
            "set",
            "--data",
            d.data.path(),
            "--channel",
            "Support bot",
            "--business-hours",
            "UTC weekdays 9-5",
        ],
        "is not a day",
    );
}

#[tokio::test]
async fn an_away_agent_is_offered_no_new_handoff_until_their_next_action_makes_them_online() {
    let d = desk_configured(&["--routing", "round-robin"], &[]).await;
    let alice = AgentSession::sign_in(&d.hub, AGENT_EMAIL).await;
    let bob = AgentSession::sign_in(&d.hub, "bob@example.com").await;
    go_online(&alice).await;
    go_online(&bob).await;
    // Bob's app saw no keyboard or pointer for a while.
    assert_eq!(
        bob.post("/presence", json!({"status": "away"})).await.0,
        200
    );
    let first = [
        d.botpress
            .hand_off("While Bob is away 1", "Ana", "hi")
            .await,
        d.botpress
            .hand_off("While Bob is away 2", "Ben", "hi")
            .await,
    ];
    let held = held_by_all(&alice, &first).await;
    assert_eq!(held, ["Alice", "Alice"], "Bob was away");
    let bob_now = |events: Vec<Value>| {
        events
            .into_iter()
            .rev()
            .find(|e| e["kind"] == "agent" && e["data"]["name"] == "Bob")
            .map(|e| e["data"]["presence"].clone())
    };
    assert_eq!(bob_now(alice.events().await), Some(json!("away")));

    // Bob comes back and does something: he is online again, and the next one can be his.
    let ticket = &first[0];
    bob.act(
        &format!("/conversations/{ticket}/notes"),
        json!({"text": "back"}),
    )
    .await;
    assert_eq!(bob_now(alice.events().await), Some(json!("online")));
    let (status, body) = bob.post("/presence", json!({"status": "asleep"})).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap_or("").contains("\"away\""),
        "{body}"
    );
}
