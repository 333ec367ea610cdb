//! The agent API over a real socket: sign in, page the log, follow the WebSocket stream.

use std::time::Duration;

use baton_hub::{admin, Hub};
use baton_protocol::{Event, EventData, Role};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

struct Running {
    _dir: tempfile::TempDir,
    base: String,
    endpoint: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn running_hub() -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::open_with(
        dir.path(),
        baton_hub::SystemClock,
        baton_hub::HubConfig {
            allow_private_urls: true,
            ..Default::default()
        },
    )
    .expect("open");
    admin::add_agent(
        &hub,
        "alice@example.com",
        "Alice",
        Role::Agent,
        "correct horse",
    )
    .expect("agent");
    let channel = admin::add_botpress_channel(&hub, "Bot", None).expect("channel");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(baton_hub::serve(listener, hub, async {
        let _ = stopped.await;
    }));
    Running {
        _dir: dir,
        base: format!("http://{addr}"),
        endpoint: channel.endpoint_path,
        _stop: stop,
    }
}

/// A tiny HTTP/1.1 JSON client over a raw socket, so these tests need no HTTP client crate.
async fn http(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn login(base: &str) -> String {
    let (status, body) = http(
        base,
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"email": "alice@example.com", "password": "correct horse"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("token").to_string()
}

async fn new_handoff(r: &Running, title: &str) -> String {
    let (status, body) = http(
        &r.base,
        "POST",
        &format!("{}/createRemoteConversation", r.endpoint),
        None,
        Some(json!({"type": "createRemoteConversation", "payload": {"title": title}})),
    )
    .await;
    assert_eq!(status, 200);
    body["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_saying_which_part_was_wrong() {
    let r = running_hub().await;
    let (status, body) = http(
        &r.base,
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"email": "alice@example.com", "password": "wrong"})),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "bad_credentials");
    let (status, _) = http(
        &r.base,
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"email": "nobody@example.com", "password": "correct horse"})),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn events_need_a_token() {
    let r = running_hub().await;
    let (status, body) = http(&r.base, "GET", "/api/v1/events?after=0", None, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    let (status, _) = http(
        &r.base,
        "GET",
        "/api/v1/events?after=0",
        Some("forged"),
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn events_page_with_strictly_increasing_seq_and_a_next_cursor() {
    let r = running_hub().await;
    let token = login(&r.base).await;
    for i in 0..5 {
        new_handoff(&r, &format!("Handoff {i}")).await;
    }
    let (status, page) = http(
        &r.base,
        "GET",
        "/api/v1/events?after=0&limit=4",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs.len(), 4);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(page["next"].as_u64(), seqs.last().copied());
    let (_, rest) = http(
        &r.base,
        "GET",
        &format!("/api/v1/events?after={}", page["next"]),
        Some(&token),
        None,
    )
    .await;
    let rest_seqs: Vec<u64> = rest["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert!(rest_seqs.iter().all(|s| *s > seqs[3]));
    let handoff = rest["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "handoff")
        .expect("a handoff");
    for field in ["id", "conversation_id", "status", "title", "assignee"] {
        assert!(
            handoff["data"].get(field).is_some(),
            "handoff event lacks {field}: {handoff}"
        );
    }
}

#[tokio::test]
async fn the_stream_sends_the_backlog_then_live_events() {
    let r = running_hub().await;
    let token = login(&r.base).await;
    new_handoff(&r, "Before connecting").await;

    let url = format!(
        "{}/api/v1/stream?after=0",
        r.base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("stream connects");

    let mut titles = Vec::new();
    let mut caught_up = false;
    let mut sent_live = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while titles.len() < 2 {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("frame in time");
        let Some(Ok(WsMessage::Text(text))) = frame else {
            continue;
        };
        let value: Value = serde_json::from_str(&text).expect("json");
        if value["type"] == "caught_up" {
            caught_up = true;
            if !sent_live {
                sent_live = true;
                new_handoff(&r, "While connected").await;
            }
            continue;
        }
        let events: Vec<Event> = serde_json::from_value(value).expect("a frame of events");
        for event in events {
            if let EventData::Handoff(h) = event.data {
                titles.push(h.title);
            }
        }
    }
    assert!(caught_up);
    assert_eq!(titles, ["Before connecting", "While connected"]);
}

#[tokio::test]
async fn the_stream_refuses_a_missing_token() {
    let r = running_hub().await;
    let url = format!(
        "{}/api/v1/stream?after=0",
        r.base.replace("http://", "ws://")
    );
    let err = tokio_tungstenite::connect_async(url)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("401"), "{err}");
}
