//! Nothing a customer writes is lost: the ways a hostile bot workspace or plain bad luck broke sync
//! and delivery, each played against a real `baton-hub` process and a real device (`baton-core`).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::{Cache, ConnectionState, SyncEngine, Update};
use serde_json::{json, Value};
use support::{signed_in, AgentSession, Botpress, HubData, HubProcess, AGENT_EMAIL};
use tokio::sync::{mpsc, watch};

struct Device {
    _dir: tempfile::TempDir,
    cache: Arc<Mutex<Cache>>,
    updates: mpsc::Receiver<Update>,
    stop: watch::Sender<bool>,
}

impl Device {
    /// A device following the hub's stream.
    async fn following(hub_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("device dir");
        let cache = Arc::new(Mutex::new(
            Cache::open(&dir.path().join("cache.sqlite")).expect("cache"),
        ));
        let (tx, updates) = mpsc::channel(4096);
        let engine = SyncEngine::new(signed_in(hub_url).await, cache.clone(), tx);
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move { engine.follow(stopped).await });
        let mut device = Self {
            _dir: dir,
            cache,
            updates,
            stop,
        };
        device
            .wait_for(|u| {
                matches!(
                    u,
                    Update::Connection {
                        state: ConnectionState::Live { .. }
                    }
                )
            })
            .await;
        device
    }

    async fn wait_for(&mut self, mut pick: impl FnMut(&Update) -> bool) -> Update {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let update = self.updates.recv().await.expect("updates");
                if pick(&update) {
                    return update;
                }
            }
        })
        .await
        .expect("the update came in time")
    }

    fn texts(&self, conversation: &str) -> Vec<String> {
        self.cache
            .lock()
            .expect("cache")
            .messages(conversation)
            .expect("messages")
            .into_iter()
            .filter_map(|m| m.text)
            .collect()
    }

    /// Waits until the device holds `count` messages of `conversation`.
    async fn wait_for_messages(&self, conversation: &str, count: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let texts = self.texts(conversation);
            if texts.len() >= count || tokio::time::Instant::now() > deadline {
                return texts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn a_body_nested_too_deep_is_refused_at_the_door_and_stores_nothing() {
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let ticket = botpress.hand_off("Deep", "Dana Reyes", "hello").await;
    let http = reqwest::Client::new();
    let deep = format!(
        r#"{{"type":"botSendsMessage","remoteConversationId":"{ticket}","remoteUserId":"BOT","payload":{{"text":"x","extra":{}}}}}"#,
        nested(100)
    );
    let response = http
        .post(format!(
            "{}{}/botSendsMessage",
            hub.url(),
            data.endpoint_path
        ))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("error body");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("deeper than 32")),
        "{body}"
    );
    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    let messages: Vec<Value> = alice
        .events()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "message")
        .collect();
    assert_eq!(messages.len(), 1, "only the first message is stored");
}

#[tokio::test]
async fn an_unreadable_event_in_the_log_is_set_aside_and_every_other_message_reaches_the_device() {
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let mut device = Device::following(&hub.url()).await;
    let ticket = botpress.hand_off("Parcel", "Dana Reyes", "msg 0").await;
    device.wait_for_messages(&ticket, 1).await;

    // What a hub before the fix could have stored (or a newer hub writes that this build cannot
    // read): an event nested far past any parser's limit, written by another process.
    let deep_seq = {
        let db = rusqlite::Connection::open(std::path::Path::new(data.path()).join("hub.sqlite"))
            .expect("hub database");
        db.busy_timeout(Duration::from_secs(10)).expect("busy");
        let data = format!(
            r#"{{"id":"m_deep","conversation_id":"{ticket}","author":"bot","type":"text","payload":{},"status":"received","created_at":"2026-11-30T00:00:00Z"}}"#,
            nested(3000)
        );
        db.execute(
            "INSERT INTO events (kind, data) VALUES ('message', ?1)",
            [data],
        )
        .expect("insert");
        db.last_insert_rowid() as u64
    };
    for i in 1..=20 {
        let (status, _) = botpress
            .post(
                "botSendsMessage",
                json!({"type": "botSendsMessage", "remoteConversationId": ticket,
                       "remoteUserId": "BOT", "payload": {"text": format!("msg {i}")}}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let texts = device.wait_for_messages(&ticket, 21).await;
    let expected: Vec<String> = (0..=20).map(|i| format!("msg {i}")).collect();
    assert_eq!(texts, expected, "every other message arrived, in order");
    let Update::Unreadable { event } = device
        .wait_for(|u| matches!(u, Update::Unreadable { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!(event.seq, deep_seq);
    let kept = device
        .cache
        .lock()
        .expect("cache")
        .unreadable_events()
        .expect("unreadable");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].seq, deep_seq);
}

#[tokio::test]
async fn a_device_offline_through_a_20_mib_backlog_reconnects_and_gets_all_of_it() {
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let ticket = botpress.hand_off("Logs", "Dana Reyes", "first").await;
    // The device knows the inbox, then goes away.
    let device_dir = tempfile::tempdir().expect("device dir");
    let cache = Arc::new(Mutex::new(
        Cache::open(&device_dir.path().join("cache.sqlite")).expect("cache"),
    ));
    let (tx, _updates) = mpsc::channel(4096);
    let engine = SyncEngine::new(signed_in(&hub.url()).await, cache.clone(), tx);
    engine.catch_up().await.expect("first sync");

    // 84 messages of 240 KiB each: about 20 MiB of backlog (40 MiB as the log stores it).
    let big = "x".repeat(240 * 1024);
    for i in 0..84 {
        let (status, body) = botpress
            .post(
                "botSendsMessage",
                json!({"type": "botSendsMessage", "remoteConversationId": ticket,
                       "remoteUserId": "BOT", "payload": {"text": format!("{i} {big}")}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    let (tx, mut updates) = mpsc::channel(4096);
    let engine = SyncEngine::new(signed_in(&hub.url()).await, cache.clone(), tx);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move { engine.follow(stopped).await });
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match updates.recv().await.expect("updates") {
                Update::Connection {
                    state: ConnectionState::Live { .. },
                } => return,
                Update::Connection {
                    state: ConnectionState::Offline { error, .. },
                } => panic!("the device could not reconnect: {error}"),
                _ => {}
            }
        }
    })
    .await
    .expect("live again");
    // Everything after the device's first sync (older history comes by backfill, not the log).
    let count = cache
        .lock()
        .expect("cache")
        .messages(&ticket)
        .expect("messages")
        .len();
    assert_eq!(count, 84);
    let _ = stop.send(true);
}

#[tokio::test]
async fn a_reply_waiting_for_a_webhook_url_says_so_on_the_message() {
    let data = HubData::new();
    let (ok, _, err) = support::hub_cli(
        &[
            "botpress",
            "set",
            "--data",
            data.path(),
            "--channel",
            "Support bot",
            "--webhook-url",
            "",
        ],
        "",
    );
    assert!(ok, "{err}");
    let hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let ticket = botpress.hand_off("No hook", "Dana Reyes", "hello?").await;
    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    // Replying takes the handoff first: its agent-assigned call waits ahead of the reply.
    let (status, body) = alice
        .post(
            &format!("/conversations/{ticket}/messages"),
            json!({"txn_id": "t-hook-1", "text": "Your parcel ships Monday"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let reply = alice
        .wait_for_message("Your parcel ships Monday", |m| {
            m["status_reason"].is_string()
        })
        .await;
    assert_eq!(reply["status"], "queued");
    let reason = reply["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no Botpress webhook URL"), "{reason}");
}
