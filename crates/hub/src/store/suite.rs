//! The store suite: what every [`Store`] implementation must do, written once against the traits.
//! An implementation's tests call `store_suite!(open)` with a function that opens a fresh store in
//! a directory; the macro makes one test per case (matrix-rust-sdk's `statestore_integration_tests!`
//! is the model).

use std::path::Path;
use std::sync::Arc;

use baton_protocol::{
    Agent, Author, Contact, Conversation, DeliveryStatus, EventData, Handoff, HandoffStatus,
    Message, Role, TagList, Template,
};
use chrono::{DateTime, Utc};

use super::{Delivery, DeliveryState, NewChannel, RecordedCommand, Store, StoreError};
use crate::channel::ChannelSettings;

pub type Open = fn(&Path) -> Box<dyn Store>;

/// One test per case below, for the implementation `open` makes.
macro_rules! store_suite {
    ($open:expr) => {
        mod store_suite {
            #[allow(unused_imports)]
            use super::*;
            use $crate::store::suite;
            const OPEN: suite::Open = $open;
            store_suite!(@cases OPEN;
                a_failed_write_leaves_neither_entity_nor_event,
                grouped_writes_from_many_threads_all_commit_and_a_failing_one_leaves_no_trace,
                committed_events_reach_live_streams_in_seq_order_and_rolled_back_ones_never_do,
                a_page_of_the_log_stops_at_its_byte_budget_but_always_carries_one_event,
                a_trimmed_log_keeps_its_floor_and_its_newest_events,
                a_snapshot_in_small_pages_holds_every_entity_once,
                entities_read_back_as_written_and_open_handoffs_are_found_by_conversation,
                a_disabled_agent_has_no_credentials_and_no_valid_token,
                tokens_are_touched_removed_and_expired,
                a_recorded_command_is_found_by_agent_and_txn_id,
                deliveries_go_one_at_a_time_per_conversation_and_settle,
                channels_are_found_by_secret_and_keep_their_settings,
                tags_and_templates_read_back_without_deleted_templates,
                messages_page_newest_first_with_a_total,
                a_platform_id_is_linked_once_and_found_again,
                a_platform_message_is_found_by_its_id_or_by_its_link,
                a_link_added_without_an_answer_is_found_and_never_replaces_one,
                drafts_wait_per_conversation_and_come_due_by_their_deadline,
            );
        }
    };
    (@cases $open:ident; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let dir = tempfile::tempdir().expect("tempdir");
                suite::$case(&$open, dir.path());
            }
        )*
    };
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
}

fn agent(id: &str, role: Role) -> Agent {
    Agent::new(id, format!("{id}@example.com"), format!("Agent {id}"), role)
}

fn add_channel(store: &dyn Store, id: &str, secret_hash: &str) {
    store
        .write(|tx| {
            tx.add_channel(&NewChannel {
                id,
                kind: "botpress",
                name: &format!("Channel {id}"),
                secret_hash,
                webhook_url: Some("https://example.com/hook"),
                created_at: at(0),
            })
        })
        .expect("channel");
}

fn conversation(id: &str, channel: &str) -> EventData {
    EventData::Conversation(Conversation {
        id: id.into(),
        channel_id: channel.into(),
        contact_id: None,
        created_at: at(1),
        channel_kind: None,
        last_inbound_at: None,
    })
}

fn handoff(id: &str, conversation: &str, status: HandoffStatus, assignee: Option<&str>) -> Handoff {
    Handoff {
        id: id.into(),
        conversation_id: conversation.into(),
        channel_id: "ch".into(),
        status,
        title: format!("Handoff {id}"),
        description: None,
        assignee: assignee.map(str::to_string),
        assigned_by: None,
        label: None,
        tags: Vec::new(),
        priority: None,
        for_draft: false,
        escalation: None,
        created_at: at(2),
        updated_at: at(2),
    }
}

fn message(id: &str, conversation: &str, text: &str) -> Message {
    Message {
        id: id.into(),
        conversation_id: conversation.into(),
        author: Author::EndUser,
        author_id: None,
        kind: "text".into(),
        text: Some(text.into()),
        payload: serde_json::json!({ "text": text }),
        status: DeliveryStatus::Received,
        status_reason: None,
        created_at: at(3),
    }
}

pub fn a_failed_write_leaves_neither_entity_nor_event(open: &Open, dir: &Path) {
    let store = open(dir);
    let result: Result<(), StoreError> = store.write(|tx| {
        tx.add_agent(&agent("ag_1", Role::Agent), "h")?;
        Err(StoreError::Poisoned)
    });
    assert!(result.is_err());
    assert_eq!(store.last_seq().expect("seq"), 0);
    assert_eq!(
        store.reader().expect("reader").agent("ag_1").expect("read"),
        None
    );
}

pub fn grouped_writes_from_many_threads_all_commit_and_a_failing_one_leaves_no_trace(
    open: &Open,
    dir: &Path,
) {
    let store: Arc<dyn Store> = Arc::from(open(dir));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                store.write_grouped(move |tx| {
                    // One fails before it writes anything, one after.
                    if i == 11 {
                        return Err(StoreError::Poisoned);
                    }
                    tx.add_agent(&agent(&format!("ag_{i}"), Role::Agent), "h")?;
                    if i == 7 {
                        return Err(StoreError::Poisoned);
                    }
                    Ok(i)
                })
            })
        })
        .collect();
    let results: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 14);
    let events = store.events_after(0, 100).expect("events");
    assert_eq!(events.len(), 14);
    assert!(events
        .iter()
        .all(|e| !matches!(&e.data, EventData::Agent(a) if a.id == "ag_7")));
    // No seq is skipped: a failed job's number goes to the next event.
    assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert_eq!(events.first().map(|e| e.seq), Some(1));
    assert_eq!(
        store.reader().expect("reader").agent("ag_7").expect("read"),
        None
    );
}

pub fn committed_events_reach_live_streams_in_seq_order_and_rolled_back_ones_never_do(
    open: &Open,
    dir: &Path,
) {
    let store = open(dir);
    let mut live = store.subscribe();
    let _: Result<(), StoreError> = store.write(|tx| {
        tx.add_agent(&agent("ag_x", Role::Agent), "h")?;
        Err(StoreError::Poisoned)
    });
    store
        .write(|tx| {
            tx.add_agent(&agent("ag_1", Role::Agent), "h")?;
            tx.add_agent(&agent("ag_2", Role::Agent), "h")
        })
        .expect("write");
    // A shared store hands frames on from a thread of its own: they arrive a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let frame = loop {
        match live.try_recv() {
            Err(tokio::sync::broadcast::error::TryRecvError::Empty)
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            got => break got.expect("a frame"),
        }
    };
    assert_eq!((frame.first, frame.last), (1, 2));
    let events: Vec<serde_json::Value> =
        serde_json::from_slice(&frame.json).expect("the frame is a JSON array");
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[1]["data"]["id"], "ag_2");
    assert!(live.try_recv().is_err(), "nothing else was committed");
    assert_eq!(store.announced(), 2);
}

pub fn a_page_of_the_log_stops_at_its_byte_budget_but_always_carries_one_event(
    open: &Open,
    dir: &Path,
) {
    let store = open(dir);
    for i in 0..10 {
        let mut a = agent(&format!("ag_{i}"), Role::Agent);
        a.name = "x".repeat(1000);
        store.write(|tx| tx.add_agent(&a, "h")).expect("write");
    }
    let page = store.event_page(0, 1000, 3000).expect("page");
    assert_eq!((page.count, page.last, page.more), (2, Some(2), true));
    assert!(page.json.len() <= 3000);
    let one = store.event_page(0, 1000, 10).expect("page");
    assert_eq!(one.count, 1, "a single larger event still goes");
    let rest = store.event_page(2, 1000, usize::MAX).expect("page");
    assert_eq!((rest.count, rest.more), (8, false));
}

pub fn a_trimmed_log_keeps_its_floor_and_its_newest_events(open: &Open, dir: &Path) {
    let store = open(dir);
    for i in 0..5 {
        store
            .write(|tx| tx.add_agent(&agent(&format!("ag_{i}"), Role::Agent), "h"))
            .expect("write");
    }
    assert_eq!(store.trim_log(2).expect("trim"), 3);
    assert_eq!(store.log_floor().expect("floor"), 3);
    assert_eq!(store.last_seq().expect("seq"), 5);
    let kept: Vec<u64> = store
        .events_after(0, 10)
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(kept, [4, 5]);
    assert_eq!(
        store.snapshot().expect("snapshot").agents.len(),
        5,
        "entities stay"
    );
}

pub fn a_snapshot_in_small_pages_holds_every_entity_once(open: &Open, dir: &Path) {
    let store = open(dir);
    for i in 0..25 {
        store
            .write(|tx| tx.add_agent(&agent(&format!("ag_{i}"), Role::Agent), "h"))
            .expect("write");
    }
    let mut cursor: Option<String> = None;
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let page: baton_protocol::Snapshot =
            serde_json::from_str(&store.snapshot_page(cursor.as_deref(), 600).expect("page"))
                .expect("a snapshot");
        pages += 1;
        assert_eq!(page.seq, 25, "every page says which seq it reflects");
        ids.extend(page.agents.into_iter().map(|a| a.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(pages > 3, "{pages} pages");
    let mut expected: Vec<String> = (0..25).map(|i| format!("ag_{i}")).collect();
    expected.sort();
    ids.sort();
    assert_eq!(ids, expected);
    assert!(matches!(
        store.snapshot_page(Some("9:0"), 600),
        Err(StoreError::BadCursor)
    ));
}

pub fn entities_read_back_as_written_and_open_handoffs_are_found_by_conversation(
    open: &Open,
    dir: &Path,
) {
    let store = open(dir);
    add_channel(&*store, "ch", "secret-hash");
    add_channel(&*store, "ch2", "secret-hash-2");
    let contact = Contact {
        id: "u_1".into(),
        channel_id: "ch".into(),
        name: "Dana Ñúñez 🌵".into(),
        email: None,
        picture_url: None,
        attributes: serde_json::json!({ "language": "fr" }),
        created_at: at(1),
    };
    store
        .write(|tx| {
            tx.put(EventData::Contact(contact.clone()))?;
            tx.put(conversation("t_1", "ch"))?;
            tx.put(conversation("t_2", "ch2"))?;
            tx.put(EventData::Handoff(handoff(
                "h_old",
                "t_1",
                HandoffStatus::Resolved,
                None,
            )))?;
            tx.put(EventData::Handoff(handoff(
                "h_1",
                "t_1",
                HandoffStatus::Assigned,
                Some("ag_1"),
            )))?;
            tx.put(EventData::Handoff(handoff(
                "h_2",
                "t_2",
                HandoffStatus::Pending,
                None,
            )))?;
            tx.put(EventData::Message(message("m_1", "t_1", "hello")))
        })
        .expect("write");
    let read = store.reader().expect("reader");
    assert_eq!(read.contact("u_1").expect("contact"), Some(contact));
    assert_eq!(
        read.message("m_1").expect("message").and_then(|m| m.text),
        Some("hello".into())
    );
    assert_eq!(
        read.open_handoff("t_1").expect("open").map(|h| h.id),
        Some("h_1".into())
    );
    assert_eq!(read.open_handoff("t_nope").expect("none"), None);
    let held: Vec<String> = read
        .held_handoffs("ag_1")
        .expect("held")
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(held, ["h_1"]);
    assert!(read.pending_handoffs("ch").expect("pending").is_empty());
    assert_eq!(read.pending_handoffs("ch2").expect("pending").len(), 1);
    assert_eq!(
        read.handoff("h_old").expect("h").map(|h| h.status),
        Some(HandoffStatus::Resolved)
    );
    assert_eq!(
        read.conversation("t_1").expect("c").map(|c| c.channel_id),
        Some("ch".into())
    );
    drop(read);
    // A handoff's new state replaces the old one everywhere.
    store
        .write(|tx| {
            tx.put(EventData::Handoff(handoff(
                "h_1",
                "t_1",
                HandoffStatus::Pending,
                None,
            )))
        })
        .expect("write");
    let read = store.reader().expect("reader");
    assert!(read.held_handoffs("ag_1").expect("held").is_empty());
    assert_eq!(read.pending_handoffs("ch").expect("pending").len(), 1);
}

pub fn a_disabled_agent_has_no_credentials_and_no_valid_token(open: &Open, dir: &Path) {
    let store = open(dir);
    let ana = agent("ag_ana", Role::Admin);
    store
        .write(|tx| {
            tx.add_agent(&ana, "hash-1")?;
            tx.add_token("tok-1", &ana.id, at(0))
        })
        .expect("write");
    {
        let read = store.reader().expect("reader");
        assert_eq!(
            read.agent_by_email(&ana.email).expect("by email"),
            Some(ana.clone())
        );
        assert_eq!(
            read.credentials(&ana.email).expect("credentials"),
            Some((ana.id.clone(), "hash-1".to_string()))
        );
        let token = read.token("tok-1").expect("token").expect("valid");
        assert_eq!(
            (token.agent.id.as_str(), token.created_at),
            (ana.id.as_str(), Some(at(0)))
        );
        assert_eq!(read.agents().expect("agents").len(), 1);
    }
    store
        .write(|tx| tx.set_agent_access(&ana.id, false, Some("hash-2")))
        .expect("new password");
    assert_eq!(
        store
            .reader()
            .expect("reader")
            .credentials(&ana.email)
            .expect("c")
            .map(|c| c.1),
        Some("hash-2".to_string())
    );
    store
        .write(|tx| tx.set_agent_access(&ana.id, true, None))
        .expect("disable");
    let read = store.reader().expect("reader");
    assert_eq!(read.credentials(&ana.email).expect("credentials"), None);
    assert_eq!(read.token("tok-1").expect("token"), None);
}

pub fn tokens_are_touched_removed_and_expired(open: &Open, dir: &Path) {
    let store = open(dir);
    store
        .write(|tx| {
            tx.add_agent(&agent("ag_1", Role::Agent), "h")?;
            tx.add_token("old", "ag_1", at(0))?;
            tx.add_token("used", "ag_1", at(0))?;
            tx.add_token("gone", "ag_1", at(0))?;
            tx.touch_token("used", at(100))?;
            tx.remove_token("gone")
        })
        .expect("write");
    assert_eq!(
        store
            .reader()
            .expect("r")
            .token("used")
            .expect("t")
            .and_then(|t| t.last_used_at),
        Some(at(100))
    );
    let removed = store
        .write(|tx| tx.remove_expired_tokens(at(-1), at(50)))
        .expect("expire");
    assert_eq!(removed, 1, "only the idle one");
    let read = store.reader().expect("reader");
    assert!(read.token("old").expect("t").is_none() && read.token("gone").expect("t").is_none());
    assert!(read.token("used").expect("t").is_some());
    drop(read);
    store
        .write(|tx| tx.remove_tokens_of("ag_1"))
        .expect("sign out");
    assert!(store
        .reader()
        .expect("r")
        .token("used")
        .expect("t")
        .is_none());
}

pub fn a_recorded_command_is_found_by_agent_and_txn_id(open: &Open, dir: &Path) {
    let store = open(dir);
    let recorded = RecordedCommand {
        response: r#"{"events":[]}"#.into(),
        fingerprint: Some("fp".into()),
    };
    store
        .write(|tx| {
            tx.add_agent(&agent("ag_1", Role::Agent), "h")?;
            tx.record_command("ag_1", "txn-1", &recorded, at(0))
        })
        .expect("write");
    let read = store.reader().expect("reader");
    assert_eq!(
        read.recorded_command("ag_1", "txn-1").expect("r"),
        Some(recorded)
    );
    assert_eq!(read.recorded_command("ag_1", "txn-2").expect("r"), None);
    assert_eq!(read.recorded_command("ag_2", "txn-1").expect("r"), None);
}

pub fn deliveries_go_one_at_a_time_per_conversation_and_settle(open: &Open, dir: &Path) {
    let store = open(dir);
    add_channel(&*store, "ch", "s");
    let call = |conversation: &str, route: &str, message: Option<&str>| Delivery {
        channel_id: "ch".into(),
        conversation_id: conversation.into(),
        route: route.into(),
        body: format!(r#"{{"remoteConversationId":"{conversation}"}}"#),
        message_id: message.map(str::to_string),
    };
    let mut counted = Vec::new();
    store
        .write(|tx| {
            counted.push(tx.calls_queued());
            tx.queue_delivery(&call("t_1", "agent-assigned", None), at(0))?;
            tx.queue_delivery(&call("t_1", "message-from-agent", Some("m_1")), at(0))?;
            tx.queue_delivery(&call("t_2", "stop-hitl", None), at(0))?;
            counted.push(tx.calls_queued());
            Ok::<_, StoreError>(())
        })
        .expect("queue");
    assert_eq!(
        counted,
        [0, 3],
        "the transaction counts the calls it queued"
    );
    assert_eq!(
        store
            .reader()
            .expect("r")
            .delivery_of_message("m_1")
            .expect("d"),
        Some(call("t_1", "message-from-agent", Some("m_1")))
    );
    let first = store
        .write(|tx| tx.claim_due_deliveries(at(1), 16))
        .expect("claim");
    let routes: Vec<&str> = first.iter().map(|d| d.route.as_str()).collect();
    assert_eq!(
        routes,
        ["agent-assigned", "stop-hitl"],
        "one per conversation"
    );
    assert_eq!(first[0].url.as_deref(), Some("https://example.com/hook"));
    assert_eq!(first[0].attempts, 0);
    assert_eq!(
        store
            .reader()
            .expect("r")
            .deliveries_in_flight()
            .expect("f")
            .len(),
        2
    );
    assert!(store
        .write(|tx| tx.claim_due_deliveries(at(1), 16))
        .expect("claim")
        .is_empty());

    // Botpress was down for the first: it waits, and so does the message behind it.
    store
        .write(|tx| {
            tx.settle_delivery(
                first[0].id,
                DeliveryState::Queued,
                Some("Botpress is down"),
                Some(at(60)),
            )?;
            tx.settle_delivery(first[1].id, DeliveryState::Sent, None, None)
        })
        .expect("settle");
    let read = store.reader().expect("reader");
    assert_eq!(
        read.delivery_waiting_reason("t_1").expect("w").as_deref(),
        Some("Botpress is down")
    );
    assert_eq!(read.queued_messages("t_1").expect("q"), ["m_1"]);
    assert_eq!(
        read.next_delivery_at().expect("next"),
        Some(at(60)),
        "the message is due, but behind the call that waits: that call's retry is next"
    );
    drop(read);
    assert!(store
        .write(|tx| tx.claim_due_deliveries(at(2), 16))
        .expect("claim")
        .is_empty());
    let retried = store
        .write(|tx| tx.claim_due_deliveries(at(61), 16))
        .expect("claim");
    assert_eq!((retried.len(), retried[0].attempts), (1, 1));
    store
        .write(|tx| tx.settle_delivery(retried[0].id, DeliveryState::Sent, None, None))
        .expect("settle");
    let message = store
        .write(|tx| tx.claim_due_deliveries(at(62), 16))
        .expect("claim");
    assert_eq!(message[0].message_id.as_deref(), Some("m_1"));
    store
        .write(|tx| {
            tx.settle_delivery(
                message[0].id,
                DeliveryState::Queued,
                Some("wait"),
                Some(at(10_000)),
            )?;
            tx.retry_deliveries_now(Some("ch"), at(63))
        })
        .expect("retry now");
    assert_eq!(
        store
            .write(|tx| tx.claim_due_deliveries(at(63), 16))
            .expect("claim")
            .len(),
        1
    );
}

pub fn channels_are_found_by_secret_and_keep_their_settings(open: &Open, dir: &Path) {
    let store = open(dir);
    add_channel(&*store, "ch_a", "hash-a");
    add_channel(&*store, "ch_b", "hash-b");
    let settings = ChannelSettings {
        pending_timeout_secs: Some(600),
        message_kinds: vec!["text".into(), "image".into()],
        ..ChannelSettings::default()
    };
    store
        .write(|tx| {
            tx.set_channel("ch_b", "Sales bot", None, &settings)?;
            tx.set_channel_secret("ch_a", "hash-a2")
        })
        .expect("write");
    let read = store.reader().expect("reader");
    assert_eq!(
        read.channel_by_secret("botpress", "hash-a").expect("s"),
        None
    );
    assert_eq!(
        read.channel_by_secret("botpress", "hash-a2").expect("s"),
        Some("ch_a".into())
    );
    let b = read.channel("ch_b").expect("c").expect("exists");
    assert_eq!(
        (b.name.as_str(), b.webhook_url.as_deref()),
        ("Sales bot", None)
    );
    assert_eq!(b.settings, settings);
    let ids: Vec<String> = read
        .channels()
        .expect("all")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["ch_a", "ch_b"]);
}

pub fn tags_and_templates_read_back_without_deleted_templates(open: &Open, dir: &Path) {
    let store = open(dir);
    assert!(store.reader().expect("r").tags().expect("tags").is_empty());
    let template = |id: &str, name: &str, deleted| Template {
        id: id.into(),
        name: name.into(),
        text: "Hello".into(),
        deleted,
    };
    store
        .write(|tx| {
            tx.put(EventData::Tags(TagList {
                tags: vec!["refund".into(), "vip".into()],
            }))?;
            tx.put(EventData::Template(template("tp_2", "thanks", false)))?;
            tx.put(EventData::Template(template("tp_1", "hello", false)))?;
            tx.put(EventData::Template(template("tp_3", "old", true)))
        })
        .expect("write");
    let read = store.reader().expect("reader");
    assert_eq!(read.tags().expect("tags"), ["refund", "vip"]);
    let names: Vec<String> = read
        .templates()
        .expect("t")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["hello", "thanks"]);
    assert_eq!(
        store.snapshot().expect("snapshot").tags.tags,
        ["refund", "vip"]
    );
}

pub fn messages_page_newest_first_with_a_total(open: &Open, dir: &Path) {
    let store = open(dir);
    add_channel(&*store, "ch", "s");
    store
        .write(|tx| {
            tx.put(conversation("t_1", "ch"))?;
            tx.put(conversation("t_2", "ch"))?;
            for i in 0..5 {
                tx.put(EventData::Message(message(
                    &format!("m_{i}"),
                    "t_1",
                    &format!("n{i}"),
                )))?;
            }
            tx.put(EventData::Message(message("m_x", "t_2", "other")))
        })
        .expect("write");
    let page: baton_protocol::MessagePage = serde_json::from_str(
        &store
            .messages_before(Some("t_1"), None, 2, usize::MAX)
            .expect("page"),
    )
    .expect("json");
    let ids: Vec<&str> = page.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m_4", "m_3"]);
    assert_eq!(page.total, 5);
    let rest: baton_protocol::MessagePage = serde_json::from_str(
        &store
            .messages_before(Some("t_1"), page.next, 10, usize::MAX)
            .expect("page"),
    )
    .expect("json");
    assert_eq!(rest.messages.len(), 3);
    assert_eq!(rest.next, None);
    let all: baton_protocol::MessagePage = serde_json::from_str(
        &store
            .messages_before(None, None, 100, usize::MAX)
            .expect("page"),
    )
    .expect("json");
    assert_eq!(all.total, 6);
}

pub fn a_platform_id_is_linked_once_and_found_again(open: &Open, dir: &Path) {
    let store = open(dir);
    add_channel(&*store, "ch", "s");
    let first = store
        .write(|tx| tx.link_external("ch", "message", "wamid.1", "m_1"))
        .expect("link");
    let again = store
        .write(|tx| tx.link_external("ch", "message", "wamid.1", "m_2"))
        .expect("link");
    assert!(first && !again, "a redelivery changes nothing");
    let read = store.reader().expect("reader");
    assert_eq!(
        read.external_id("ch", "message", "wamid.1")
            .expect("r")
            .as_deref(),
        Some("m_1")
    );
    assert_eq!(
        read.external_id("ch", "status", "wamid.1").expect("r"),
        None
    );
    drop(read);
    // A number the customer gave up is forgotten, and can be someone else's later.
    store
        .write(|tx| tx.unlink_external("ch", "message", "wamid.1"))
        .expect("unlink");
    assert_eq!(
        store
            .reader()
            .expect("reader")
            .external_id("ch", "message", "wamid.1")
            .expect("r"),
        None
    );
    assert!(store
        .write(|tx| tx.link_external("ch", "message", "wamid.1", "m_3"))
        .expect("link"));
}

pub fn a_link_added_without_an_answer_is_found_and_never_replaces_one(open: &Open, dir: &Path) {
    let store = open(dir);
    add_channel(&*store, "ch", "s");
    let found = store
        .write(|tx| {
            tx.link_external("ch", "phone", "+1555", "u_first")?;
            // Looked for first, then added, then found; and added blind, then found.
            let before = tx.external_id("ch", "conversation", "u_first")?;
            tx.add_link("ch", "conversation", "u_first", "t_1")?;
            tx.add_link("ch", "username", "dana", "u_first")?;
            tx.add_link("ch", "phone", "+1555", "u_second")?;
            Ok::<_, StoreError>((
                before,
                tx.external_id("ch", "conversation", "u_first")?,
                tx.external_id("ch", "username", "dana")?,
                tx.external_id("ch", "phone", "+1555")?,
            ))
        })
        .expect("write");
    let expected = |s: &str| Some(s.to_string());
    assert_eq!(
        found,
        (
            None,
            expected("t_1"),
            expected("u_first"),
            expected("u_first")
        ),
        "a number already linked stays with its customer"
    );
    let read = store.reader().expect("reader");
    assert_eq!(
        read.external_id("ch", "phone", "+1555").expect("read"),
        expected("u_first")
    );
    assert_eq!(
        read.external_id("ch", "conversation", "u_first")
            .expect("read"),
        expected("t_1")
    );
}

pub fn a_platform_message_is_found_by_its_id_or_by_its_link(open: &Open, dir: &Path) {
    let store = open(dir);
    add_channel(&*store, "ch", "s");
    store
        .write(|tx| {
            tx.put(conversation("c1", "ch"))?;
            tx.put(EventData::Message(message("m_stored", "c1", "hi")))?;
            tx.link_external("ch", "message", "wamid.linked", "m_old")
        })
        .expect("write");
    let read = store.reader().expect("reader");
    let seen = |id: &str, wamid: &str| read.has_platform_message(id, "ch", wamid).expect("read");
    assert!(seen("m_stored", "wamid.new"), "stored under its id");
    assert!(
        seen("m_other", "wamid.linked"),
        "stored before ids came from wamids"
    );
    assert!(!seen("m_other", "wamid.new"), "never seen");
    assert!(
        !read
            .has_platform_message("m_other", "another channel", "wamid.linked")
            .expect("read"),
        "a link belongs to its channel"
    );
}

pub fn drafts_wait_per_conversation_and_come_due_by_their_deadline(open: &Open, dir: &Path) {
    let store = open(dir);
    add_channel(&*store, "ch", "s");
    store
        .write(|tx| {
            tx.put(conversation("c1", "ch"))?;
            for (id, status) in [
                ("m_1", DeliveryStatus::Draft),
                ("m_2", DeliveryStatus::Received),
                ("m_3", DeliveryStatus::Draft),
            ] {
                let mut m = message(id, "c1", "hello");
                m.status = status;
                tx.put(EventData::Message(m))?;
            }
            tx.set_draft_deadline("m_1", Some(at(60)))?;
            tx.set_draft_deadline("m_3", Some(at(30)))?;
            Ok::<_, StoreError>(())
        })
        .expect("write");
    let read = store.reader().expect("reader");
    assert_eq!(read.drafts_waiting("c1").expect("r"), ["m_1", "m_3"]);
    assert!(read.due_drafts(at(29), 10).expect("r").is_empty());
    assert_eq!(read.due_drafts(at(60), 10).expect("r"), ["m_3", "m_1"]);
    assert_eq!(read.due_drafts(at(60), 1).expect("r"), ["m_3"]);
    drop(read);
    // Decided: no longer due, and a later deadline replaces an earlier one.
    store
        .write(|tx| {
            tx.set_draft_deadline("m_3", None)?;
            tx.set_draft_deadline("m_1", Some(at(90)))
        })
        .expect("write");
    let read = store.reader().expect("reader");
    assert!(read.due_drafts(at(60), 10).expect("r").is_empty());
    assert_eq!(read.due_drafts(at(90), 10).expect("r"), ["m_1"]);
}
