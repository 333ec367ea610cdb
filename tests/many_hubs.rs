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

#[tokio::test]
async fn a_call_whose_hub_is_killed_mid_send_is_settled_by_another_hub_after_its_lease_and_never_sent_twice(
) {
    let fake = support::fake_botpress::FakeBotpress::start().await;
    let data = HubData::on_postgres(&testing::fresh_database(), &fake.url());
    // A one-second delivery timeout: each claimed call is leased for 3 × 1 s + 5 s.
    let flags = ["--delivery-timeout", "1"];
    let mut first = HubProcess::start_with(&data, support::free_port(), &flags);
    let botpress = Botpress::new(&first.url(), &data.endpoint_path);
    let ticket = botpress.hand_off("Refund", "Dana", "hello").await;
    let alice = AgentSession::sign_in(&first, AGENT_EMAIL).await;

    // Botpress hangs on the call; the first hub dies while waiting for it.
    fake.set_mode(support::fake_botpress::Mode::Slow(Duration::from_secs(30)));
    let (status, body) = alice
        .post(
            &format!("/conversations/{ticket}/messages"),
            serde_json::json!({"txn_id": "t-killed-mid-send", "text": "your refund is on its way"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.attempts() == 0 {
        assert!(
            Instant::now() < deadline,
            "the first hub never called Botpress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    let killed = Instant::now();
    fake.set_mode(support::fake_botpress::Mode::Accept);

    // Another instance takes over: once the lease is over, what was in flight is uncertain and
    // the rest of the conversation's calls go, each once.
    let second = HubProcess::start_with(&data, support::free_port(), &flags);
    let alice = AgentSession::sign_in(&second, AGENT_EMAIL).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let settled = loop {
        let calls: Vec<Value> = alice
            .events()
            .await
            .into_iter()
            .filter(|e| e["kind"] == "message" && e["data"]["author"] == "agent")
            .map(|e| e["data"].clone())
            .collect();
        if let Some(reply) = calls
            .last()
            .filter(|m| m["status"] == "sent" || m["status"] == "uncertain")
        {
            break reply.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the reply was never settled: {calls:#?}\nhub log:\n{}",
            data.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let copies = fake
        .accepted()
        .iter()
        .filter(|c| c.body["payload"]["text"] == "your refund is on its way")
        .count();
    println!(
        "the reply ended {} {:?} after the kill; Botpress took it {copies} time(s)",
        settled["status"],
        killed.elapsed()
    );
    assert!(
        data.log()
            .contains("calls a stopped hub instance was sending are marked uncertain"),
        "the call in flight at the kill was settled as uncertain:\n{}",
        data.log()
    );
    match settled["status"].as_str() {
        Some("sent") => assert_eq!(copies, 1, "delivered exactly once: {settled}"),
        _ => {
            assert!(copies <= 1, "never sent twice: {settled}");
            assert!(
                killed.elapsed() >= Duration::from_secs(7),
                "not settled before the lease was over ({:?})",
                killed.elapsed()
            );
        }
    }
}

#[tokio::test]
async fn the_teams_sweeps_run_on_one_hub_and_move_to_another_when_it_dies() {
    const LEADING: &str = "this instance now runs the team's sweeps";
    let data = HubData::on_postgres(&testing::fresh_database(), "http://127.0.0.1:9/hook");
    let leaders = || data.log().matches(LEADING).count();
    let mut first = HubProcess::start(&data, support::free_port());
    let deadline = Instant::now() + Duration::from_secs(5);
    while leaders() == 0 {
        assert!(Instant::now() < deadline, "no hub leads:\n{}", data.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _second = HubProcess::start(&data, support::free_port());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(leaders(), 1, "one leader at a time:\n{}", data.log());

    first.kill();
    let killed = Instant::now();
    while leaders() < 2 {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the second hub never took over:\n{}",
            data.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "the second hub leads {:?} after the first was killed",
        killed.elapsed()
    );
}

#[tokio::test]
async fn a_team_moved_from_sqlite_to_postgresql_keeps_its_inbox_its_sign_ins_and_every_devices_cursor(
) {
    // A team on SQLite, with a handoff, a reply waiting for Botpress, and a device's cursor.
    let mut data = HubData::new();
    let mut hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let ticket = botpress
        .hand_off("Refund", "Zoë", "I was charged twice")
        .await;
    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    let (status, body) = alice
        .post(
            &format!("/conversations/{ticket}/messages"),
            serde_json::json!({"txn_id": "t-before-the-move", "text": "Looking into it"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cursor = alice
        .events()
        .await
        .last()
        .and_then(|e| e["seq"].as_u64())
        .expect("events");
    hub.kill();
    // The log as SQLite holds it, every event as stored.
    let sqlite_log: Vec<(u64, String, Value)> = {
        let db = rusqlite::Connection::open(data.dir.path().join("hub.sqlite")).expect("sqlite");
        let mut select = db
            .prepare("SELECT seq, kind, data FROM events ORDER BY seq")
            .expect("select");
        let rows = select
            .query_map([], |r| {
                let data: String = r.get(2)?;
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, String>(1)?,
                    serde_json::from_str(&data).unwrap_or(Value::Null),
                ))
            })
            .expect("rows");
        rows.collect::<Result<_, _>>().expect("events")
    };
    let last = sqlite_log.last().map(|e| e.0).expect("a log");

    let url = testing::fresh_database();
    let (ok, out, err) =
        support::hub_cli(&["migrate", "--from-data", data.path(), "--to", &url], "");
    assert!(ok, "migrate failed: {err}");
    assert!(
        out.contains(&format!("the log ends at seq {last}")),
        "{out}"
    );

    // The same team, served from PostgreSQL.
    data.database = Some(url.clone());
    let hub = HubProcess::start(&data, support::free_port());
    let alice = AgentSession {
        http: reqwest::Client::new(),
        base: hub.url(),
        token: alice.token.clone(),
    };
    let (status, snapshot) = alice.get("/snapshot").await;
    assert_eq!(status, 200, "the sign-in still holds: {snapshot}");
    // At least where SQLite's log ended (the new hub may have settled the reply since).
    assert!(
        snapshot["seq"].as_u64().is_some_and(|seq| seq >= last),
        "{snapshot}"
    );
    assert_eq!(snapshot["handoffs"][0]["title"], "Refund", "{snapshot}");
    // The device's cursor reads on in the same log: the same events, seqs and JSON.
    let (_, page) = alice
        .get(&format!("/events?after={cursor}&limit=1000"))
        .await;
    let moved_log: Vec<(u64, String, Value)> = page["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["seq"].as_u64().is_some_and(|s| s <= last))
                .map(|e| {
                    (
                        e["seq"].as_u64().unwrap_or(0),
                        e["kind"].as_str().unwrap_or("").to_string(),
                        e["data"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let expected: Vec<(u64, String, Value)> =
        sqlite_log.into_iter().filter(|e| e.0 > cursor).collect();
    assert_eq!(moved_log, expected);

    // Botpress keeps its endpoint; what comes next continues the log where it was.
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    botpress
        .hand_off("Where is my parcel?", "Sam", "hello?")
        .await;
    let (_, page) = alice.get(&format!("/events?after={last}")).await;
    let next: Vec<u64> = page["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["seq"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(next.first(), Some(&(last + 1)), "{page}");
    // The database now holds a team: a second move into it is refused.
    let (ok, _, err) = support::hub_cli(&["migrate", "--from-data", data.path(), "--to", &url], "");
    assert!(!ok && err.contains("already holds a team"), "{err}");
}

#[tokio::test]
async fn failed_sign_ins_are_counted_across_hubs_so_spreading_guesses_gains_nothing() {
    let data = HubData::on_postgres(&testing::fresh_database(), "http://127.0.0.1:9/hook");
    let hubs = [
        HubProcess::start(&data, support::free_port()),
        HubProcess::start(&data, support::free_port()),
    ];
    let http = reqwest::Client::new();
    let try_password = |hub: &HubProcess, password: &str| {
        let request = http
            .post(format!("{}/api/v1/login", hub.url()))
            .json(&serde_json::json!({"email": AGENT_EMAIL, "password": password}));
        async move {
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    // Five wrong guesses, spread over the two hubs: three on one, two on the other.
    for i in 0..5 {
        assert_eq!(try_password(&hubs[i % 2], "wrong guess").await, 401);
    }
    // Either hub now makes the next try wait, even the one that saw only two failures.
    assert_eq!(try_password(&hubs[1], "wrong guess").await, 429);
    assert_eq!(
        try_password(&hubs[0], support::AGENT_PASSWORD).await,
        429,
        "the right password waits too"
    );
}

#[tokio::test]
async fn the_same_command_sent_through_two_hubs_at_once_is_done_once_and_both_get_its_answer() {
    let data = HubData::on_postgres(&testing::fresh_database(), "http://127.0.0.1:9/hook");
    let hubs = [
        HubProcess::start(&data, support::free_port()),
        HubProcess::start(&data, support::free_port()),
    ];
    let botpress = Botpress::new(&hubs[0].url(), &data.endpoint_path);
    let ticket = botpress.hand_off("Refund", "Zoë", "hello").await;
    let on = [
        AgentSession::sign_in(&hubs[0], AGENT_EMAIL).await,
        AgentSession::sign_in(&hubs[1], AGENT_EMAIL).await,
    ];
    for i in 0..10 {
        let body =
            serde_json::json!({"txn_id": format!("t-twice-{i}"), "text": format!("note {i}")});
        let path = format!("/conversations/{ticket}/notes");
        let (first, second) =
            tokio::join!(on[0].post(&path, body.clone()), on[1].post(&path, body));
        assert_eq!((first.0, second.0), (200, 200), "{first:?} {second:?}");
        assert_eq!(first.1, second.1, "the same answer through both hubs");
    }
    let notes = on[0]
        .events()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "note")
        .count();
    assert_eq!(notes, 10, "each note written once");
}
