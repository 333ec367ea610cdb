//! The Botpress HITL routes, driven in-process with the contract's example bodies.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use baton_hub::{admin, router, Hub};
use baton_protocol::{Author, EventData, HandoffStatus};
use serde_json::{json, Value};
use tower::ServiceExt;

const EXAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/botpress/examples"
);

struct Desk {
    _dir: tempfile::TempDir,
    hub: Hub,
    endpoint: String,
}

fn desk() -> Desk {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::open_with(
        dir.path(),
        baton_hub::SystemClock,
        baton_hub::HubConfig {
            allow_private_urls: true,
            ..Default::default()
        },
    )
    .expect("open hub");
    let channel = admin::add_botpress_channel(&hub, "Support bot", Some("http://127.0.0.1:9/hook"))
        .expect("add channel");
    Desk {
        _dir: dir,
        hub,
        endpoint: channel.endpoint_path,
    }
}

fn example(name: &str) -> Value {
    let path = format!("{EXAMPLES}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("example is JSON")
}

async fn post(hub: &Hub, path: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request");
    let response = router(hub.clone())
        .oneshot(request)
        .await
        .expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

async fn post_json(hub: &Hub, path: &str, body: &Value) -> (StatusCode, Value) {
    post(hub, path, body.to_string()).await
}

fn event_count(hub: &Hub) -> u64 {
    hub.store().last_seq().expect("seq")
}

#[tokio::test]
async fn ping_answers_success_and_stores_nothing() {
    let d = desk();
    let before = event_count(&d.hub);
    let (status, _) = post_json(
        &d.hub,
        &format!("{}/ping", d.endpoint),
        &example("01_ping.request.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event_count(&d.hub), before);
}

#[tokio::test]
async fn create_remote_user_creates_a_contact_and_returns_its_id_as_a_string() {
    let d = desk();
    let (status, body) = post_json(
        &d.hub,
        &format!("{}/createRemoteUser", d.endpoint),
        &example("02_createRemoteUser.request.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let id = body["id"].as_str().expect("id is a string");
    assert_ne!(id, "BOT");
    let events = d.hub.store().events_after(0, 100).expect("events");
    let contact = events.iter().find_map(|e| match &e.data {
        EventData::Contact(c) if c.id == id => Some(c.clone()),
        _ => None,
    });
    let contact = contact.expect("a contact event");
    assert_eq!(contact.name, "Unknown User");
    assert!(contact
        .email
        .as_deref()
        .is_some_and(|e| e.ends_with(".botpress.com")));
    assert_eq!(contact.attributes["role"], "end-user");
}

#[tokio::test]
async fn create_remote_conversation_creates_a_pending_handoff_with_its_title() {
    let d = desk();
    let (status, body) = post_json(
        &d.hub,
        &format!("{}/createRemoteConversation", d.endpoint),
        &example("03_createRemoteConversation.request.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ticket = body["id"].as_str().expect("id is a string").to_string();
    let events = d.hub.store().events_after(0, 100).expect("events");
    let handoff = events
        .iter()
        .find_map(|e| match &e.data {
            EventData::Handoff(h) => Some(h.clone()),
            _ => None,
        })
        .expect("a handoff event");
    assert_eq!(handoff.conversation_id, ticket);
    assert_eq!(handoff.status, HandoffStatus::Pending);
    assert_eq!(handoff.title, "Customer asks for a refund");
    assert_eq!(
        handoff.description.as_deref(),
        Some("Order #1234 arrived damaged")
    );
    assert_eq!(handoff.assignee, None);
}

/// Creates a user and a ticket and returns (user id, ticket id).
async fn user_and_ticket(d: &Desk) -> (String, String) {
    let (_, user) = post_json(
        &d.hub,
        &format!("{}/createRemoteUser", d.endpoint),
        &example("02_createRemoteUser.request.json"),
    )
    .await;
    let (_, ticket) = post_json(
        &d.hub,
        &format!("{}/createRemoteConversation", d.endpoint),
        &example("03_createRemoteConversation.request.json"),
    )
    .await;
    (
        user["id"].as_str().unwrap_or_default().into(),
        ticket["id"].as_str().unwrap_or_default().into(),
    )
}

fn messages(hub: &Hub) -> Vec<baton_protocol::Message> {
    hub.store()
        .events_after(0, 1000)
        .expect("events")
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_end_users_message_is_stored_as_theirs_and_links_the_ticket_to_them() {
    let d = desk();
    let (user, ticket) = user_and_ticket(&d).await;
    let mut body = example("04_botSendsMessage.user_text.request.json");
    body["remoteConversationId"] = json!(ticket);
    body["remoteUserId"] = json!(user);
    let (status, _) = post_json(&d.hub, &format!("{}/botSendsMessage", d.endpoint), &body).await;
    assert_eq!(status, StatusCode::OK);

    let msgs = messages(&d.hub);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].author, Author::EndUser);
    assert_eq!(msgs[0].author_id.as_deref(), Some(user.as_str()));
    assert_eq!(msgs[0].text.as_deref(), Some("Hi, the box was crushed"));
    let conversation = d
        .hub
        .store()
        .events_after(0, 1000)
        .expect("events")
        .into_iter()
        .rev()
        .find_map(|e| match e.data {
            EventData::Conversation(c) => Some(c),
            _ => None,
        })
        .expect("conversation event");
    assert_eq!(conversation.contact_id.as_deref(), Some(user.as_str()));
}

#[tokio::test]
async fn a_message_from_bot_is_stored_as_the_bots() {
    let d = desk();
    let (_, ticket) = user_and_ticket(&d).await;
    let mut body = example("05_botSendsMessage.system_text.request.json");
    body["remoteConversationId"] = json!(ticket);
    let (status, _) = post_json(&d.hub, &format!("{}/botSendsMessage", d.endpoint), &body).await;
    assert_eq!(status, StatusCode::OK);
    let msgs = messages(&d.hub);
    assert_eq!(msgs[0].author, Author::Bot);
    assert_eq!(msgs[0].author_id, None);
}

#[tokio::test]
async fn a_newer_plugins_image_message_keeps_its_type_and_url() {
    let d = desk();
    let (user, ticket) = user_and_ticket(&d).await;
    let mut body = example("06_botSendsMessage.newer_plugin_shape.request.json");
    body["remoteConversationId"] = json!(ticket);
    body["remoteUserId"] = json!(user);
    let (status, _) = post_json(&d.hub, &format!("{}/botSendsMessage", d.endpoint), &body).await;
    assert_eq!(status, StatusCode::OK);
    let msgs = messages(&d.hub);
    assert_eq!(msgs[0].kind, "image");
    assert_eq!(
        msgs[0].payload["imageUrl"],
        "https://files.bpcontent.cloud/example.png"
    );
}

#[tokio::test]
async fn a_message_for_an_unknown_ticket_is_a_404_and_stores_nothing() {
    let d = desk();
    let before = event_count(&d.hub);
    let mut body = example("04_botSendsMessage.user_text.request.json");
    body["remoteConversationId"] = json!("t_doesnotexist");
    let (status, err) = post_json(&d.hub, &format!("{}/botSendsMessage", d.endpoint), &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(err["message"]
        .as_str()
        .is_some_and(|m| m.contains("t_doesnotexist")));
    assert_eq!(event_count(&d.hub), before);
}

#[tokio::test]
async fn close_remote_ticket_is_accepted() {
    let d = desk();
    let (status, _) = post_json(
        &d.hub,
        &format!("{}/closeRemoteTicket", d.endpoint),
        &example("07_closeRemoteTicket.request.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_secret_is_a_404_and_nothing_is_stored() {
    let d = desk();
    let before = event_count(&d.hub);
    let wrong = format!("/botpress/{}/createRemoteConversation", "0".repeat(64));
    let (status, body) = post_json(
        &d.hub,
        &wrong,
        &example("03_createRemoteConversation.request.json"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    assert_eq!(event_count(&d.hub), before);
}

#[tokio::test]
async fn malformed_json_is_a_400_that_says_so_and_stores_nothing() {
    let d = desk();
    let before = event_count(&d.hub);
    let (status, body) = post(
        &d.hub,
        &format!("{}/createRemoteConversation", d.endpoint),
        "{\"type\": \"createRemo",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("not valid JSON")));
    assert_eq!(event_count(&d.hub), before);
}

#[tokio::test]
async fn a_type_that_does_not_match_the_route_is_a_400_naming_both() {
    let d = desk();
    let before = event_count(&d.hub);
    let (status, body) = post_json(
        &d.hub,
        &format!("{}/createRemoteConversation", d.endpoint),
        &json!({"type": "createRemoteUser", "payload": {"name": "x"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("createRemoteConversation") && message.contains("createRemoteUser"),
        "{message}"
    );
    assert_eq!(event_count(&d.hub), before);
}

#[tokio::test]
async fn a_body_missing_required_fields_is_a_400() {
    let d = desk();
    let (status, body) = post_json(
        &d.hub,
        &format!("{}/botSendsMessage", d.endpoint),
        &json!({"type": "botSendsMessage", "payload": {"text": "hi"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("remoteConversationId")));
}

#[tokio::test]
async fn an_oversized_body_is_a_413_and_the_hub_keeps_serving() {
    let d = desk();
    let before = event_count(&d.hub);
    let huge = json!({
        "type": "createRemoteConversation",
        "payload": {"title": "x".repeat(2 * 1024 * 1024)}
    });
    let (status, body) = post_json(
        &d.hub,
        &format!("{}/createRemoteConversation", d.endpoint),
        &huge,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "too_large");
    assert_eq!(event_count(&d.hub), before);
    let (status, _) = post_json(
        &d.hub,
        &format!("{}/ping", d.endpoint),
        &example("01_ping.request.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unicode_titles_and_messages_survive_intact() {
    let d = desk();
    let (status, body) = post_json(
        &d.hub,
        &format!("{}/createRemoteConversation", d.endpoint),
        &json!({"type": "createRemoteConversation", "payload": {"title": "Remboursement 🧾 — 退款"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ticket = body["id"].as_str().unwrap_or_default();
    let (status, _) = post_json(
        &d.hub,
        &format!("{}/botSendsMessage", d.endpoint),
        &json!({"type": "botSendsMessage", "remoteConversationId": ticket, "remoteUserId": "BOT",
                "payload": {"text": "Привет 👋 <b>not html</b>"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        messages(&d.hub)[0].text.as_deref(),
        Some("Привет 👋 <b>not html</b>")
    );
}

#[tokio::test]
async fn an_unknown_route_under_a_valid_secret_is_a_404() {
    let d = desk();
    let (status, _) = post_json(
        &d.hub,
        &format!("{}/deleteEverything", d.endpoint),
        &json!({"type": "deleteEverything"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn text_cut_mid_emoji_is_kept_with_a_replacement_character_not_refused() {
    let d = desk();
    let (_user, ticket) = user_and_ticket(&d).await;
    // A lone high surrogate: the second half of 😀 was cut off upstream.
    let body = format!(
        r#"{{"type":"botSendsMessage","remoteConversationId":"{ticket}","remoteUserId":"BOT","payload":{{"text":"Merci \ud83d"}}}}"#
    );
    let (status, answer) = post(&d.hub, &format!("{}/botSendsMessage", d.endpoint), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let texts: Vec<_> = messages(&d.hub)
        .into_iter()
        .filter_map(|m| m.text)
        .collect();
    assert!(texts.contains(&"Merci \u{FFFD}".to_string()), "{texts:?}");
}

#[tokio::test]
async fn a_body_nested_deeper_than_the_hub_serves_safely_is_refused_with_the_reason() {
    let d = desk();
    let before = event_count(&d.hub);
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let body = format!(
        r#"{{"type":"createRemoteUser","payload":{{"role":"end-user","name":"Deep","attributes":{deep}}}}}"#
    );
    let (status, answer) = post(&d.hub, &format!("{}/createRemoteUser", d.endpoint), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("deeper than 32 levels")),
        "{answer}"
    );
    assert_eq!(event_count(&d.hub), before);
}

#[tokio::test]
async fn botpress_messages_sent_while_another_process_holds_the_write_lock_are_all_stored() {
    let d = desk();
    let (_user, ticket) = user_and_ticket(&d).await;
    let before = messages(&d.hub).len();
    // The admin CLI (or any other process) writing: it holds the database's write lock for 3 s.
    let db_path = d._dir.path().join("hub.sqlite");
    let (locked, lock_taken) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut db = rusqlite::Connection::open(db_path).expect("open");
        let tx = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("write lock");
        tx.execute("INSERT INTO settings (key, value) VALUES ('held', '1')", [])
            .expect("write");
        let _ = locked.send(());
        std::thread::sleep(std::time::Duration::from_secs(3));
        tx.commit().expect("commit");
    });
    lock_taken.recv().expect("lock taken");
    let sends = (0..20).map(|i| {
        let hub = d.hub.clone();
        let path = format!("{}/botSendsMessage", d.endpoint);
        let body = json!({"type": "botSendsMessage", "remoteConversationId": ticket,
                          "remoteUserId": "BOT", "payload": {"text": format!("while locked {i}")}});
        async move { post_json(&hub, &path, &body).await.0 }
    });
    let statuses = futures_util::future::join_all(sends).await;
    holder.join().expect("holder");
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(messages(&d.hub).len(), before + 20);
}

#[tokio::test]
async fn an_oversized_botpress_body_is_a_413() {
    let d = desk();
    let big = "x".repeat(baton_hub::botpress::MAX_BODY_BYTES + 1);
    let (status, answer) = post(&d.hub, &format!("{}/ping", d.endpoint), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["code"], "too_large");
}
