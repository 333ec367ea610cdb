//! `baton-core` against a real `baton-hub` process on loopback: catch-up, exactly-once application,
//! a cursor that survives a restart, and a stream that resumes after the hub is killed.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::{Cache, ConnectionState, HubClient, SyncEngine, Update};
use baton_protocol::HandoffStatus;
use support::{signed_in, Botpress, HubData, HubProcess};
use tokio::sync::{mpsc, watch};

fn open_cache(dir: &std::path::Path) -> Arc<Mutex<Cache>> {
    Arc::new(Mutex::new(
        Cache::open(&dir.join("cache.sqlite")).expect("cache"),
    ))
}

fn pending_titles(cache: &Arc<Mutex<Cache>>) -> Vec<String> {
    let cache = cache.lock().expect("cache lock");
    let mut titles: Vec<String> = cache
        .handoffs(&[HandoffStatus::Pending])
        .expect("list")
        .into_iter()
        .map(|s| s.handoff.title)
        .collect();
    titles.sort();
    titles
}

/// Waits for the first update `pick` accepts.
async fn next_matching<T>(
    updates: &mut mpsc::Receiver<Update>,
    mut pick: impl FnMut(&Update) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let update = updates.recv().await.expect("updates channel open");
            if let Some(found) = pick(&update) {
                return found;
            }
        }
    })
    .await
    .expect("the expected update arrived in time")
}

async fn next_new_handoff_title(updates: &mut mpsc::Receiver<Update>) -> String {
    next_matching(updates, |u| match u {
        Update::NewHandoff { handoff } => Some(handoff.title.clone()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn events_are_applied_once_and_the_cursor_survives_a_client_restart() {
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let ticket = botpress
        .hand_off("Refund for order 1234", "Dana Reyes", "the box was crushed")
        .await;
    botpress
        .hand_off("Where is my parcel?", "Sam Lee", "tracking says delivered")
        .await;

    let device = tempfile::tempdir().expect("device dir");
    let client = signed_in(&hub.url()).await;
    let cursor = {
        let cache = open_cache(device.path());
        let (tx, _rx) = mpsc::channel(64);
        let cursor = SyncEngine::new(client.clone(), cache.clone(), tx)
            .catch_up()
            .await
            .expect("catch up");
        assert_eq!(
            pending_titles(&cache),
            ["Refund for order 1234", "Where is my parcel?"]
        );
        cursor
    };
    assert!(cursor > 0);

    // The app restarts: a new engine over the same cache file starts from the saved cursor.
    let cache = open_cache(device.path());
    assert_eq!(
        cache.lock().expect("lock").cursor().expect("cursor"),
        cursor
    );
    let (tx, mut rx) = mpsc::channel(64);
    let engine = SyncEngine::new(client, cache.clone(), tx);
    assert_eq!(engine.catch_up().await.expect("catch up"), cursor);
    assert!(
        rx.try_recv().is_err(),
        "nothing is re-announced after a restart"
    );

    botpress
        .hand_off("Change my address", "Kim Ito", "I moved")
        .await;
    engine.catch_up().await.expect("catch up");
    // A new device starts from a snapshot; its history arrives by backfill.
    let history = engine.backfill(None, |_| {}).await.expect("backfill");
    assert!(history.done);
    assert_eq!(
        pending_titles(&cache),
        [
            "Change my address",
            "Refund for order 1234",
            "Where is my parcel?"
        ]
    );
    let messages = cache
        .lock()
        .expect("lock")
        .messages(&ticket)
        .expect("messages");
    assert_eq!(messages.len(), 1, "each message is stored once");
    let update = rx.try_recv().expect("an update for the new handoff");
    assert!(
        matches!(update, Update::NewHandoff { handoff } if handoff.title == "Change my address")
    );
}

#[tokio::test]
async fn the_stream_resumes_after_the_hub_restarts_and_misses_nothing() {
    let data = HubData::new();
    let port = support::free_port();
    let mut hub = HubProcess::start(&data, port);
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);

    let device = tempfile::tempdir().expect("device dir");
    let cache = open_cache(device.path());
    let (tx, mut updates) = mpsc::channel(256);
    let engine = SyncEngine::new(signed_in(&hub.url()).await, cache.clone(), tx);
    let (stop, stopped) = watch::channel(false);
    let following = tokio::spawn(async move { engine.follow(stopped).await });

    next_matching(&mut updates, |u| {
        matches!(
            u,
            Update::Connection {
                state: ConnectionState::Live { .. }
            }
        )
        .then_some(())
    })
    .await;
    botpress
        .hand_off("Before the restart", "Dana Reyes", "hello?")
        .await;
    let title = next_new_handoff_title(&mut updates).await;
    assert_eq!(title, "Before the restart");

    hub.kill();
    next_matching(&mut updates, |u| {
        matches!(
            u,
            Update::Connection {
                state: ConnectionState::Offline { .. }
            }
        )
        .then_some(())
    })
    .await;

    let _hub = HubProcess::start(&data, port);
    // Written while the client may still be waiting to reconnect: it must arrive either way.
    botpress
        .hand_off("After the restart", "Sam Lee", "anyone there?")
        .await;
    let title = next_new_handoff_title(&mut updates).await;
    assert_eq!(
        title, "After the restart",
        "the first handoff is not announced twice"
    );
    assert_eq!(
        pending_titles(&cache),
        ["After the restart", "Before the restart"]
    );

    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(5), following)
        .await
        .expect("engine stops")
        .expect("engine task");
}

#[tokio::test]
async fn a_revoked_sign_in_stops_the_engine_with_signed_out() {
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let device = tempfile::tempdir().expect("device dir");
    let (tx, mut updates) = mpsc::channel(64);
    let client = HubClient::new(&hub.url())
        .expect("client")
        .with_token("not-a-real-token");
    let engine = SyncEngine::new(client, open_cache(device.path()), tx);
    let (_stop, stopped) = watch::channel(false);
    tokio::time::timeout(Duration::from_secs(10), engine.follow(stopped))
        .await
        .expect("follow returns");
    next_matching(&mut updates, |u| {
        matches!(u, Update::SignedOut).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_hub_keeps_serving_after_bad_botpress_requests() {
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let http = reqwest::Client::new();
    let url = format!("{}{}/botSendsMessage", hub.url(), data.endpoint_path);
    let response = http
        .post(&url)
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 400);
    // The hub answers 413 as soon as the body passes its limit and stops reading, so the client
    // sees either that answer or, if it was still writing, the connection closing on it.
    match http
        .post(&url)
        .body(vec![b'x'; 4 * 1024 * 1024])
        .send()
        .await
    {
        Ok(response) => assert_eq!(response.status().as_u16(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    let (status, _) = botpress
        .post("ping", serde_json::json!({"type": "ping"}))
        .await;
    assert_eq!(status, 200);
}

/// The agent's open handoff as each of their devices shows it: read or unread.
fn unread_on(cache: &Arc<Mutex<Cache>>, me: &str) -> Vec<(String, bool)> {
    cache
        .lock()
        .expect("cache lock")
        .view(baton_core::HandoffView::Open, Some(me))
        .expect("view")
        .into_iter()
        .map(|s| (s.handoff.title, s.unread))
        .collect()
}

#[tokio::test]
async fn what_an_agent_read_on_one_device_shows_read_on_the_other_until_the_customer_writes_again()
{
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let ticket = botpress
        .hand_off("Refund for order 1234", "Dana Reyes", "the box was crushed")
        .await;
    let client = signed_in(&hub.url()).await;
    let me = client.me().await.expect("me").id;
    let (laptop_dir, phone_dir) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (laptop, phone) = (open_cache(laptop_dir.path()), open_cache(phone_dir.path()));
    let (tx, _rx) = mpsc::channel(256);
    let laptop_sync = SyncEngine::new(client.clone(), laptop.clone(), tx.clone());
    let phone_sync = SyncEngine::new(client.clone(), phone.clone(), tx);
    let both = || async {
        laptop_sync.catch_up().await.expect("laptop catches up");
        phone_sync.catch_up().await.expect("phone catches up");
        // A device that started from a snapshot knows who wrote when once history is in.
        laptop_sync
            .backfill(None, |_| {})
            .await
            .expect("laptop history");
        phone_sync
            .backfill(None, |_| {})
            .await
            .expect("phone history");
    };
    both().await;
    let title = "Refund for order 1234".to_string();
    assert_eq!(unread_on(&phone, &me), [(title.clone(), true)]);

    // Read on the laptop: the phone shows it read too.
    let read = baton_protocol::AgentCommand::Read {
        conversation_id: ticket.clone(),
    };
    client.command("read-1", &read).await.expect("read");
    both().await;
    assert_eq!(unread_on(&laptop, &me), [(title.clone(), false)]);
    assert_eq!(unread_on(&phone, &me), [(title.clone(), false)]);

    // Opening it again adds nothing to the log.
    let seq = laptop.lock().expect("lock").cursor().expect("cursor");
    client.command("read-2", &read).await.expect("read again");
    both().await;
    assert_eq!(laptop.lock().expect("lock").cursor().expect("cursor"), seq);

    // The customer writes again: unread everywhere.
    let customer = laptop
        .lock()
        .expect("lock")
        .customer(&ticket)
        .expect("customer")
        .expect("the conversation's customer")
        .id;
    let (status, body) = botpress
        .post(
            "botSendsMessage",
            serde_json::json!({"type": "botSendsMessage", "remoteConversationId": ticket,
                               "remoteUserId": customer, "payload": {"text": "any news?"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    both().await;
    assert_eq!(unread_on(&phone, &me), [(title.clone(), true)]);

    // Read, then "mark as unread" on the phone: the laptop shows it unread.
    client.command("read-3", &read).await.expect("read");
    let unread = baton_protocol::AgentCommand::Unread {
        conversation_id: ticket.clone(),
    };
    client.command("unread-1", &unread).await.expect("unread");
    both().await;
    assert_eq!(unread_on(&laptop, &me), [(title.clone(), true)]);
    assert_eq!(
        laptop
            .lock()
            .expect("lock")
            .counts(Some(&me))
            .expect("counts")
            .unread,
        1,
        "the tray counts it"
    );

    // A new device starts from the snapshot, read marks included.
    let tablet_dir = tempfile::tempdir().expect("dir");
    let tablet = open_cache(tablet_dir.path());
    let (tx, _rx) = mpsc::channel(256);
    let tablet_sync = SyncEngine::new(client.clone(), tablet.clone(), tx);
    tablet_sync.catch_up().await.expect("tablet catches up");
    tablet_sync
        .backfill(None, |_| {})
        .await
        .expect("tablet history");
    assert_eq!(unread_on(&tablet, &me), [(title, true)]);
}
