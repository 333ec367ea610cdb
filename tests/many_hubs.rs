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
async fn a_nul_character_from_a_bot_or_an_agent_is_kept_or_refused_and_never_fails_the_database() {
    let data = HubData::on_postgres(&testing::fresh_database(), "http://127.0.0.1:9/hook");
    let hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let ticket = botpress.hand_off("Refund", "Zoë", "Hello").await;

    // PostgreSQL cannot store a NUL in text. In a message, it is kept as U+FFFD; in an id, the id
    // is simply unknown; and the messages sent beside them are taken as usual.
    let send = |conversation: String, text: &'static str| {
        let botpress = &botpress;
        async move {
            botpress
                .post(
                    "botSendsMessage",
                    serde_json::json!({"type": "botSendsMessage", "remoteConversationId": conversation,
                           "remoteUserId": "nobody\u{0}", "payload": {"text": text}}),
                )
                .await
        }
    };
    let (with_nul, unknown_id, plain) = tokio::join!(
        send(ticket.clone(), "charged\u{0}twice"),
        send(format!("{ticket}\u{0}"), "lost"),
        send(ticket.clone(), "Are you there?"),
    );
    assert_eq!(with_nul.0, 200, "{}", with_nul.1);
    assert_eq!(unknown_id.0, 404, "{}", unknown_id.1);
    assert_eq!(plain.0, 200, "{}", plain.1);

    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    alice
        .wait_for_message("charged\u{FFFD}twice", |m| !m.is_null())
        .await;
    alice
        .wait_for_message("Are you there?", |m| !m.is_null())
        .await;

    // An agent's address holding one is refused, with a reason.
    let (status, refused) = alice.get("/handoffs/h%00x").await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("NUL"),
        "{refused}"
    );
    assert!(!data.log().contains("group commit"), "{}", data.log());
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
    // A reply behind the one in flight waits for its lease, and the hub waits with it: it does
    // not claim again and again meanwhile.
    let (status, body) = alice
        .post(
            &format!("/conversations/{ticket}/messages"),
            serde_json::json!({"txn_id": "t-behind", "text": "one more thing"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (used, over) = (second.cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy = (second.cpu_time() - used).as_secs_f64() / over.elapsed().as_secs_f64();
    println!(
        "the second hub used {:.0}% of a core while the call waited",
        busy * 100.0
    );
    assert!(
        busy < 0.25,
        "the hub kept busy ({:.0}% of a core) while a call waited for another's lease",
        busy * 100.0
    );
    assert!(
        killed.elapsed() < Duration::from_secs(7),
        "the lease was still running while the hub was watched"
    );
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fake
        .accepted()
        .iter()
        .any(|c| c.body["payload"]["text"] == "one more thing")
    {
        assert!(
            Instant::now() < deadline,
            "the reply behind it never went:\n{}",
            data.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    // And a file Alice uploaded, which hubs on PostgreSQL keep in the database.
    let uploaded = alice
        .http
        .post(format!("{}/api/v1/uploads?filename=label.pdf", hub.url()))
        .bearer_auth(&alice.token)
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.4 label".to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status().as_u16(), 200);
    // Copying a hub that still takes messages would lose them: refused, and nothing is written.
    let url = testing::fresh_database();
    let (ok, _, err) = support::hub_cli(&["migrate", "--from-data", data.path(), "--to", &url], "");
    assert!(!ok, "migrate copied a hub that was still serving");
    assert!(err.contains("stop it first"), "{err}");
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

    let (ok, out, err) =
        support::hub_cli(&["migrate", "--from-data", data.path(), "--to", &url], "");
    assert!(ok, "migrate failed: {err}");
    assert!(
        out.contains(&format!("the log ends at seq {last}")),
        "{out}"
    );
    assert!(out.contains("files: 1"), "{out}");

    // The same team, served from PostgreSQL, on a machine without the old directory.
    data.database = Some(url.clone());
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let hub = HubProcess::start_elsewhere(&data, elsewhere.path(), support::free_port());
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

/// A device following the team's hubs at `hub_url` (one, a balancer, or a comma-separated list)
/// with its own cache, as the app does.
struct Device {
    _dir: tempfile::TempDir,
    cache: std::sync::Arc<std::sync::Mutex<baton_core::Cache>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Device {
    async fn following(hub_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("device dir");
        let cache = std::sync::Arc::new(std::sync::Mutex::new(
            baton_core::Cache::open(&dir.path().join("cache.sqlite")).expect("cache"),
        ));
        let (updates, mut drained) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(async move { while drained.recv().await.is_some() {} });
        let engine =
            baton_core::SyncEngine::new(support::signed_in(hub_url).await, cache.clone(), updates);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move { engine.follow(stopped).await });
        Self {
            _dir: dir,
            cache,
            stop,
        }
    }

    fn cursor(&self) -> u64 {
        self.cache.lock().expect("cache").cursor().expect("cursor")
    }

    /// Each message of `conversation` as (id, text, status), oldest first.
    fn messages(&self, conversation: &str) -> Vec<(String, Option<String>, String)> {
        self.cache
            .lock()
            .expect("cache")
            .messages(conversation)
            .expect("messages")
            .into_iter()
            .map(|m| (m.id, m.text, m.status.as_str().to_string()))
            .collect()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The newest state of every message in the log (all of it, page by page), and the log's end.
#[tokio::test]
async fn a_file_taken_in_or_uploaded_through_one_hub_is_served_and_sent_by_another_after_it_dies() {
    const NUMBER: &str = "1122334455667";
    const APP_SECRET: &str = "meta-app-secret";
    const TOKEN: &str = "EAAG-access-token";
    let graph = support::fake_graph::FakeGraph::start(NUMBER, TOKEN).await;
    let data = HubData::on_postgres(&testing::fresh_database(), "http://127.0.0.1:9/hook");
    let whatsapp_path =
        support::fake_graph::connect_number(&data, &graph, "Support line", APP_SECRET, TOKEN);
    // Two machines: each hub has a directory of its own, nothing shared but the database.
    let mut first = HubProcess::start(&data, support::free_port());
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let second = HubProcess::start_elsewhere(&data, elsewhere.path(), support::free_port());
    let alice = AgentSession::sign_in(&first, AGENT_EMAIL).await;

    // Dana sends a photo through the first hub, and Alice opens it there.
    let photo: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    graph.add_media("media-photo", "image/jpeg", &photo);
    let body = serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
            "contacts": [{"profile": {"name": "Dana"}, "wa_id": "15557654321"}],
            "messages": [{"from": "15557654321", "id": "wamid.photo",
                          "timestamp": chrono::Utc::now().timestamp().to_string(), "type": "image",
                          "image": {"id": "media-photo", "mime_type": "image/jpeg", "caption": "my receipt"}}]
        }}]}]
    }))
    .expect("json");
    let http = reqwest::Client::new();
    let taken = http
        .post(format!("{}{whatsapp_path}", first.url()))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            support::fake_graph::meta_signature(APP_SECRET, &body),
        )
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(taken.status().as_u16(), 200);
    let (_, messages) = messages_in_log(&alice).await;
    let received = messages
        .values()
        .find(|m| m["text"] == "[image] my receipt")
        .expect("the photo's message")
        .clone();
    let (photo_id, conversation) = (
        received["id"].as_str().expect("id").to_string(),
        received["conversation_id"]
            .as_str()
            .expect("conversation")
            .to_string(),
    );
    let token = alice.token.clone();
    let media = |hub: &HubProcess, id: &str| {
        let request = http
            .get(format!("{}/api/v1/media/{id}", hub.url()))
            .bearer_auth(&token);
        async move {
            let answer = request.send().await.expect("media");
            (
                answer.status().as_u16(),
                answer.bytes().await.expect("bytes").to_vec(),
            )
        }
    };
    assert_eq!(media(&first, &photo_id).await, (200, photo.clone()));
    assert_eq!(graph.downloads(), 1);

    // Alice uploads a file through the first hub; then that machine dies.
    let png: Vec<u8> = [b"\x89PNG\r\n\x1a\n".as_slice(), &[9u8; 4000]].concat();
    let upload: Value = http
        .post(format!("{}/api/v1/uploads?filename=label.png", first.url()))
        .bearer_auth(&alice.token)
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload answer");
    first.kill();

    // The second hub serves the photo without fetching it from WhatsApp again, takes the reply
    // naming the upload, sends the file to WhatsApp, and serves it back to Alice.
    let alice = AgentSession {
        base: second.url(),
        ..alice
    };
    assert_eq!(media(&second, &photo_id).await, (200, photo.clone()));
    assert_eq!(
        graph.downloads(),
        1,
        "served from the database, not fetched again"
    );
    let (status, answer) = alice
        .post(
            &format!("/conversations/{conversation}/messages"),
            serde_json::json!({"txn_id": "t-label", "type": "image", "payload": {
                "upload": upload["upload"], "mime_type": "image/png", "filename": "label.png",
                "title": "Your return label"}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    support::eventually(
        Duration::from_secs(10),
        || !graph.uploads().is_empty(),
        || "the file never reached WhatsApp".into(),
    )
    .await;
    assert_eq!(
        graph.uploads(),
        [(
            "image/png".to_string(),
            "label.png".to_string(),
            png.clone()
        )]
    );
    let (_, messages) = messages_in_log(&alice).await;
    let sent = messages
        .values()
        .find(|m| m["payload"]["title"] == "Your return label")
        .expect("the reply")
        .clone();
    assert_eq!(
        media(&second, sent["id"].as_str().expect("id")).await,
        (200, png.clone())
    );
    // The second hub's own copy, cut short (as a crash might leave it), is not what it serves.
    let copy = elsewhere
        .path()
        .join("media/uploads")
        .join(upload["upload"].as_str().expect("upload"));
    std::fs::write(&copy, &png[..100]).expect("damage the copy");
    assert_eq!(
        media(&second, sent["id"].as_str().expect("id")).await,
        (200, png)
    );
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
}

async fn messages_in_log(agent: &AgentSession) -> (u64, std::collections::BTreeMap<String, Value>) {
    let (mut after, mut messages) = (0, std::collections::BTreeMap::new());
    loop {
        let (status, page) = agent
            .get(&format!("/events?after={after}&limit=1000"))
            .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let Some(last) = events.last().and_then(|e| e["seq"].as_u64()) else {
            return (after, messages);
        };
        for e in events.iter().filter(|e| e["kind"] == "message") {
            let id = e["data"]["id"].as_str().unwrap_or_default().to_string();
            messages.insert(id, e["data"].clone());
        }
        after = last;
    }
}

/// Posts until the hub behind `url` answers 200, as Meta and the app's outbox do (a request
/// that died with its hub is sent again, through the balancer, to another).
async fn post_until_taken(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, String)],
    body: Vec<u8>,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) if response.status().is_client_error() => {
                panic!("{url} refused: {:?}", response.text().await)
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "{url} never took it");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_behind_a_load_balancer_lose_nothing_when_one_is_killed_mid_load() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    const NUMBER: &str = "1122334455667";
    const APP_SECRET: &str = "meta-app-secret";
    const TOKEN: &str = "EAAG-access-token";
    const TICKETS: usize = 8;
    const PER_TICKET: usize = 40;
    const CUSTOMERS: usize = 4;
    const PER_CUSTOMER: usize = 40;
    const REPLIES: usize = 5;

    let fake_botpress = support::fake_botpress::FakeBotpress::start().await;
    let graph = support::fake_graph::FakeGraph::start(NUMBER, TOKEN).await;
    let data = HubData::on_postgres(&testing::fresh_database(), &fake_botpress.url());
    let whatsapp_path =
        support::fake_graph::connect_number(&data, &graph, "Support line", APP_SECRET, TOKEN);
    // One-second delivery timeouts: a call the killed hub had claimed is leased for 3 × 1 s + 5 s.
    let flags = ["--delivery-timeout", "1"];
    let mut doomed = HubProcess::start_with(&data, support::free_port(), &flags);
    let survivor = HubProcess::start_with(&data, support::free_port(), &flags);
    let balancer = support::balancer::Balancer::start(vec![doomed.port, survivor.port]).await;
    let front = balancer.url();

    // Three devices: through the balancer; with both hubs' addresses, on the one that will die
    // first; and on the survivor.
    let devices = [
        Device::following(&front).await,
        Device::following(&format!("{},{}", doomed.url(), survivor.url())).await,
        Device::following(&survivor.url()).await,
    ];
    let alice = AgentSession::sign_in(&survivor, AGENT_EMAIL).await;
    let alice = AgentSession {
        base: front.clone(),
        ..alice
    };

    // The customers: Botpress tickets and WhatsApp chats, each opened with a first message.
    let botpress = Botpress::new(&front, &data.endpoint_path);
    let mut tickets = Vec::new();
    for t in 0..TICKETS {
        let (_, user) = botpress
            .post("createRemoteUser", serde_json::json!({"type": "createRemoteUser", "payload": {"name": format!("Customer {t}")}}))
            .await;
        let (_, ticket) = botpress
            .post("createRemoteConversation", serde_json::json!({"type": "createRemoteConversation", "payload": {"title": format!("Ticket {t}")}}))
            .await;
        let (user, ticket) = (
            user["id"].as_str().expect("user").to_string(),
            ticket["id"].as_str().expect("ticket").to_string(),
        );
        tickets.push((ticket, user));
    }
    let whatsapp_url = format!("{front}{whatsapp_path}");
    let webhook = |customer: usize, i: usize| -> Vec<u8> {
        let text = format!("wa-{customer}-{i}");
        serde_json::to_vec(&serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
                "contacts": [{"profile": {"name": format!("Dana {customer}")}, "wa_id": format!("1555000{customer:04}")}],
                "messages": [{"from": format!("1555000{customer:04}"), "id": format!("wamid.lb-{customer}-{i}"),
                              "timestamp": chrono::Utc::now().timestamp().to_string(),
                              "type": "text", "text": {"body": text}}]
            }}]}]
        }))
        .expect("json")
    };
    let http = reqwest::Client::new();
    let signed = |body: &[u8]| {
        vec![(
            "x-hub-signature-256",
            support::fake_graph::meta_signature(APP_SECRET, body),
        )]
    };
    for customer in 0..CUSTOMERS {
        let body = webhook(customer, 0);
        post_until_taken(&http, &whatsapp_url, None, &signed(&body), body).await;
    }
    let (_, opened) = messages_in_log(&alice).await;
    let chats: Vec<String> = (0..CUSTOMERS)
        .map(|c| {
            opened
                .values()
                .find(|m| m["text"] == format!("wa-{c}-0"))
                .and_then(|m| m["conversation_id"].as_str())
                .expect("the chat")
                .to_string()
        })
        .collect();

    // The load: customers write through both hubs while Alice answers every one of them.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let unanswered = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let taken = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for (t, (ticket, user)) in tickets.iter().cloned().enumerate() {
        let (http, url) = (
            http.clone(),
            format!("{front}{}/botSendsMessage", data.endpoint_path),
        );
        let (acknowledged, unanswered, taken) =
            (acknowledged.clone(), unanswered.clone(), taken.clone());
        load.push(tokio::spawn(async move {
            for i in 0..PER_TICKET {
                let text = format!("bp-{t}-{i}");
                let body = serde_json::json!({"type": "botSendsMessage", "remoteConversationId": ticket,
                                              "remoteUserId": user, "payload": {"type": "text", "text": text}});
                // Botpress does not send a message again: one the dying hub took unanswered is
                // allowed to be there (once) or not.
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        acknowledged.lock().expect("lock").push(text);
                        taken.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => unanswered.lock().expect("lock").push(text),
                }
            }
        }));
    }
    for customer in 0..CUSTOMERS {
        let (http, url) = (http.clone(), whatsapp_url.clone());
        load.push(tokio::spawn(async move {
            for i in 1..PER_CUSTOMER {
                let body = webhook(customer, i);
                let signature = support::fake_graph::meta_signature(APP_SECRET, &body);
                post_until_taken(
                    &http,
                    &url,
                    None,
                    &[("x-hub-signature-256", signature)],
                    body,
                )
                .await;
            }
        }));
    }
    let conversations: Vec<String> = tickets
        .iter()
        .map(|(ticket, _)| ticket.clone())
        .chain(chats.iter().cloned())
        .collect();
    let replies: Vec<(String, String)> = conversations
        .iter()
        .flat_map(|c| (0..REPLIES).map(move |r| (c.clone(), format!("reply {r} to {c}"))))
        .collect();
    // Four agents (each may hold three handoffs), each answering their share of the chats.
    let mut tokens = vec![alice.token.clone()];
    for n in 1..4 {
        let email = format!("agent{n}@example.com");
        data.add_agent(&email, &format!("Agent {n}"), "agent");
        tokens.push(AgentSession::sign_in(&survivor, &email).await.token);
    }
    let answered = Arc::new(AtomicUsize::new(0));
    for (who, token) in tokens.into_iter().enumerate() {
        let (http, front, answered) = (http.clone(), front.clone(), answered.clone());
        let replies: Vec<(usize, (String, String))> = replies
            .iter()
            .cloned()
            .enumerate()
            .filter(|(n, _)| (n / REPLIES) % 4 == who)
            .collect();
        load.push(tokio::spawn(async move {
            for (n, (conversation, text)) in replies {
                let body = serde_json::to_vec(
                    &serde_json::json!({"txn_id": format!("t-lb-{n}"), "text": text}),
                )
                .expect("json");
                let url = format!("{front}/api/v1/conversations/{conversation}/messages");
                post_until_taken(&http, &url, Some(&token), &[], body).await;
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // A quarter of the way in, while Botpress is slow to answer (so calls are in flight), one hub
    // is killed (SIGKILL: no goodbye).
    let deadline = Instant::now() + Duration::from_secs(30);
    while taken.load(Ordering::Relaxed) < TICKETS * PER_TICKET / 4
        || answered.load(Ordering::Relaxed) < replies.len() / 4
    {
        assert!(
            Instant::now() < deadline,
            "the load never got going:\n{}",
            data.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fake_botpress.set_mode(support::fake_botpress::Mode::Slow(Duration::from_secs(30)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    doomed.kill();
    fake_botpress.set_mode(support::fake_botpress::Mode::Accept);
    for task in load {
        task.await.expect("a load task");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let unanswered = unanswered.lock().expect("lock").clone();
    println!(
        "balancer sent {:?} connections to each hub; {} Botpress messages acknowledged, {} lost with the killed hub's connections",
        balancer.routed,
        acknowledged.len(),
        unanswered.len()
    );
    assert!(
        balancer
            .routed
            .iter()
            .all(|n| n.load(Ordering::Relaxed) > 0),
        "the load went through both hubs"
    );

    // Every acknowledged message and command is in the log exactly once.
    let alice = AgentSession {
        base: survivor.url(),
        ..alice
    };
    let (_, messages) = messages_in_log(&alice).await;
    let times = |text: &str| messages.values().filter(|m| m["text"] == text).count();
    for text in &acknowledged {
        assert_eq!(times(text), 1, "{text} was acknowledged");
    }
    for text in &unanswered {
        assert!(times(text) <= 1, "{text} is there at most once");
    }
    for customer in 0..CUSTOMERS {
        for i in 0..PER_CUSTOMER {
            assert_eq!(
                times(&format!("wa-{customer}-{i}")),
                1,
                "WhatsApp message {customer}-{i}"
            );
        }
    }
    for (_, text) in &replies {
        assert_eq!(times(text), 1, "{text} was acknowledged");
    }

    // Every reply reaches Botpress or WhatsApp exactly once, or is marked uncertain (and then
    // went at most once): the killed hub's calls in flight are settled after their lease.
    let deadline = Instant::now() + Duration::from_secs(40);
    let settled = loop {
        let (_, messages) = messages_in_log(&alice).await;
        let pending: Vec<&Value> = messages
            .values()
            .filter(|m| {
                m["author"] == "agent" && (m["status"] == "queued" || m["status"] == "received")
            })
            .collect();
        if pending.is_empty() {
            break messages;
        }
        assert!(
            Instant::now() < deadline,
            "{} replies never settled, e.g. {}",
            pending.len(),
            pending[0]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let to_botpress: Vec<String> = fake_botpress
        .accepted()
        .iter()
        .filter_map(|c| c.body["payload"]["text"].as_str().map(str::to_string))
        .collect();
    let to_whatsapp = graph.texts();
    let mut uncertain = 0;
    for (conversation, text) in &replies {
        let reply = settled
            .values()
            .find(|m| m["text"] == *text)
            .expect("the reply");
        let sent = if chats.contains(conversation) {
            &to_whatsapp
        } else {
            &to_botpress
        };
        let copies = sent.iter().filter(|t| *t == text).count();
        match reply["status"].as_str() {
            Some("sent" | "delivered" | "read") => assert_eq!(copies, 1, "{text}: {reply}"),
            Some("uncertain") => {
                uncertain += 1;
                assert!(copies <= 1, "{text} was never sent twice: {reply}")
            }
            _ => panic!("{text} ended {reply}"),
        }
    }
    assert!(
        fake_botpress.violations().is_empty(),
        "{:?}",
        fake_botpress.violations()
    );
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());

    // Every device, on whichever hub, ends with the same inbox as the log.
    let (last, log) = messages_in_log(&alice).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while devices.iter().any(|d| d.cursor() < last) {
        assert!(
            Instant::now() < deadline,
            "devices at {:?}, the log at {last}",
            devices.iter().map(Device::cursor).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for conversation in &conversations {
        let mut expected: Vec<(String, Option<String>, String)> = log
            .values()
            .filter(|m| m["conversation_id"] == *conversation)
            .map(|m| {
                (
                    m["id"].as_str().unwrap_or_default().to_string(),
                    m["text"].as_str().map(str::to_string),
                    m["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        expected.sort();
        for (n, device) in devices.iter().enumerate() {
            let mut held = device.messages(conversation);
            held.sort();
            assert_eq!(held, expected, "device {n}, conversation {conversation}");
        }
    }
    println!(
        "{} messages; {} of {} replies uncertain after the kill, the rest delivered once; 3 devices agree with the log at seq {last}",
        log.len(),
        uncertain,
        replies.len()
    );
}
