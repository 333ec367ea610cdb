//! A team on PostgreSQL runs several `baton-hub serve` processes over one database: what one
//! instance commits reaches the streams of every other within milliseconds, in seq order, and the
//! CLI administers the shared data from anywhere. Real processes, a real PostgreSQL.

mod support;

use std::time::{Duration, Instant};

use baton_core::HubClient;
use baton_hub::store::postgres::testing;
use futures_util::StreamExt;
use serde_json::Value;
use support::{AgentSession, Botpress, HubData, HubProcess, AGENT_EMAIL};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The events in a stream's frame (notices, such as "caught up", carry none).
fn events_in(message: &WsMessage) -> Vec<Value> {
    match message {
        WsMessage::Text(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(events)) => events,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn a_handoff_taken_in_through_one_hub_reaches_an_agent_streaming_from_another_within_milliseconds(
) {
    let data = HubData::on_postgres(&testing::fresh_database(), "http://127.0.0.1:9/hook");
    let front = HubProcess::start(&data, support::free_port());
    let back = HubProcess::start(&data, support::free_port());

    // Alice signs in on the second hub and follows the inbox there.
    let alice = AgentSession::sign_in(&back, AGENT_EMAIL).await;
    let mut stream = HubClient::new(&back.url())
        .expect("client")
        .with_token(&alice.token)
        .stream(0)
        .await
        .expect("stream opens");
    // The backlog (the agent's own event) and "caught up" first.
    let mut seqs = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(Ok(message)) = stream.next().await {
            seqs.extend(events_in(&message).iter().filter_map(|e| e["seq"].as_u64()));
        }
    })
    .await;

    // Botpress hands a customer over through the first hub.
    let botpress = Botpress::new(&front.url(), &data.endpoint_path);
    let handed = Instant::now();
    botpress
        .hand_off("Refund for order 1042", "Zoë", "I was charged twice")
        .await;
    let acknowledged = handed.elapsed();

    let arrived = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = stream.next().await {
            let events = events_in(&message);
            seqs.extend(events.iter().filter_map(|e| e["seq"].as_u64()));
            if events
                .iter()
                .any(|e| e["kind"] == "handoff" && e["data"]["title"] == "Refund for order 1042")
            {
                return handed.elapsed();
            }
        }
        panic!("the stream ended; hub log:\n{}", data.log());
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the handoff never reached the other hub's stream; hub log:\n{}",
            data.log()
        )
    });
    println!(
        "handoff acknowledged by the first hub after {acknowledged:?}; on the second hub's stream after {arrived:?}"
    );
    // The hand-off is three Botpress calls; the last event reaches the other instance's stream
    // through LISTEN/NOTIFY, not the once-a-second look at the log.
    assert!(
        arrived < acknowledged + Duration::from_millis(300),
        "on the other hub {arrived:?} after the hand-off began, which Botpress saw done after {acknowledged:?}"
    );
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seqs, sorted, "each event once, in seq order");
    assert_eq!(
        seqs.windows(2).filter(|w| w[1] != w[0] + 1).count(),
        0,
        "no seq skipped: {seqs:?}"
    );
}

#[tokio::test]
async fn the_cli_administers_the_shared_database_and_every_hub_sees_it_at_once() {
    let data = HubData::on_postgres(&testing::fresh_database(), "http://127.0.0.1:9/hook");
    let front = HubProcess::start(&data, support::free_port());
    let back = HubProcess::start(&data, support::free_port());

    // An agent added with the CLI signs in on either hub.
    data.add_agent("bob@example.com", "Bob", "admin");
    let on_front = AgentSession::sign_in(&front, "bob@example.com").await;
    let on_back = AgentSession::sign_in(&back, "bob@example.com").await;
    let (status, team) = on_back.get("/snapshot").await;
    assert_eq!(status, 200, "{team}");
    let mut names: Vec<&str> = team["agents"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    names.sort_unstable();
    assert_eq!(names, ["Alice", "Bob"], "{team}");

    // Signing out on one hub ends the session on both.
    let (status, _) = on_front.post("/logout", serde_json::json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = AgentSession {
        http: reqwest::Client::new(),
        base: back.url(),
        token: on_front.token.clone(),
    }
    .get("/me")
    .await;
    assert_eq!(status, 401, "the other hub no longer takes the token");
}
