use super::*;
use baton_protocol::{Author, Conversation, DeliveryStatus, EventData, HandoffStatus};
use chrono::{DateTime, Duration, Utc};
use rusqlite::params;

fn t(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default() + Duration::minutes(minutes)
}

fn handoff(id: &str, conv: &str, title: &str, status: HandoffStatus, at: i64) -> EventData {
    EventData::Handoff(Handoff {
        id: id.into(),
        conversation_id: conv.into(),
        channel_id: "ch".into(),
        status,
        title: title.into(),
        description: None,
        assignee: None,
        assigned_by: None,
        label: None,
        tags: Vec::new(),
        priority: None,
        for_draft: false,
        escalation: None,
        created_at: t(at),
        updated_at: t(at),
    })
}

fn message(id: &str, conv: &str, text: &str, at: i64) -> EventData {
    EventData::Message(Message {
        id: id.into(),
        conversation_id: conv.into(),
        author: Author::EndUser,
        author_id: Some("u_1".into()),
        kind: "text".into(),
        text: Some(text.into()),
        payload: serde_json::json!({"text": text}),
        status: DeliveryStatus::Received,
        status_reason: None,
        created_at: t(at),
    })
}

fn events(list: Vec<EventData>) -> Vec<Event> {
    list.into_iter()
        .enumerate()
        .map(|(i, data)| Event {
            seq: i as u64 + 1,
            data,
        })
        .collect()
}

fn inbox() -> Vec<Event> {
    events(vec![
        EventData::Contact(Contact {
            id: "u_1".into(),
            channel_id: "ch".into(),
            name: "Dana Reyes".into(),
            email: None,
            picture_url: None,
            attributes: serde_json::json!({}),
            created_at: t(0),
        }),
        EventData::Conversation(Conversation {
            id: "c_1".into(),
            channel_id: "ch".into(),
            contact_id: None,
            created_at: t(0),
            channel_kind: None,
            last_inbound_at: None,
        }),
        handoff("h_1", "c_1", "Refund", HandoffStatus::Pending, 1),
        EventData::Conversation(Conversation {
            id: "c_1".into(),
            channel_id: "ch".into(),
            contact_id: Some("u_1".into()),
            created_at: t(0),
            channel_kind: None,
            last_inbound_at: None,
        }),
        message("m_1", "c_1", "the box was crushed", 2),
        message("m_2", "c_1", "and wet", 3),
        handoff("h_2", "c_2", "Closed one", HandoffStatus::Resolved, 4),
    ])
}

#[test]
fn the_pending_list_shows_title_customer_and_last_message() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    cache.apply(&inbox()).expect("apply");
    let pending = cache.handoffs(&[HandoffStatus::Pending]).expect("list");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].handoff.title, "Refund");
    assert_eq!(pending[0].customer.as_deref(), Some("Dana Reyes"));
    assert_eq!(
        pending[0]
            .last_message
            .as_ref()
            .and_then(|m| m.text.as_deref()),
        Some("and wet")
    );
    let texts: Vec<_> = cache
        .messages("c_1")
        .expect("messages")
        .into_iter()
        .filter_map(|m| m.text)
        .collect();
    assert_eq!(texts, ["the box was crushed", "and wet"]);
}

#[test]
fn the_queue_shows_the_most_urgent_first_then_whoever_waited_longest_and_every_tab_has_its_count() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    let urgent = |id: &str, at: i64| {
        let EventData::Handoff(mut h) = handoff(id, "c_9", id, HandoffStatus::Pending, at) else {
            unreachable!("a handoff")
        };
        h.priority = Some(baton_protocol::Priority::Urgent);
        EventData::Handoff(h)
    };
    let mine = |id: &str, who: &str| {
        let EventData::Handoff(mut h) = handoff(id, "c_8", id, HandoffStatus::Assigned, 1) else {
            unreachable!("a handoff")
        };
        h.assignee = Some(who.into());
        EventData::Handoff(h)
    };
    cache
        .apply(&events(vec![
            handoff(
                "waited 5 min",
                "c_1",
                "waited 5 min",
                HandoffStatus::Pending,
                10,
            ),
            handoff(
                "waited 10 min",
                "c_2",
                "waited 10 min",
                HandoffStatus::Pending,
                5,
            ),
            urgent("urgent, just now", 14),
            handoff(
                "old resolved",
                "c_3",
                "old resolved",
                HandoffStatus::Resolved,
                1,
            ),
            handoff(
                "new resolved",
                "c_4",
                "new resolved",
                HandoffStatus::Resolved,
                9,
            ),
            mine("ana's", "ag_ana"),
            mine("bo's", "ag_bo"),
        ]))
        .expect("apply");
    let titles = |view| -> Vec<String> {
        cache
            .view(view, Some("ag_ana"))
            .expect("view")
            .into_iter()
            .map(|s| s.handoff.title)
            .collect()
    };
    assert_eq!(
        titles(HandoffView::Pending),
        ["urgent, just now", "waited 10 min", "waited 5 min"]
    );
    assert_eq!(
        titles(HandoffView::Resolved),
        ["new resolved", "old resolved"]
    );
    assert_eq!(
        cache.counts(Some("ag_ana")).expect("counts"),
        HandoffCounts {
            pending: 3,
            mine: 1,
            open: 5,
            resolved: 2,
            cancelled: 0,
            // Nobody wrote in them yet.
            unread: 0,
            tags: Default::default(),
        }
    );
}

#[test]
fn a_change_of_hands_an_escalation_and_a_new_customer_message_are_each_reported_once() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    let first = cache.apply(&inbox()).expect("apply");
    assert_eq!(
        first.customer_messages.len(),
        2,
        "both of Dana's messages are new"
    );
    assert!(first.handed_over.is_empty() && first.escalated.is_empty());
    let EventData::Handoff(mut h) = handoff("h_1", "c_1", "Refund", HandoffStatus::Pending, 1)
    else {
        unreachable!("a handoff")
    };
    h.escalation = Some(baton_protocol::Escalation {
        level: baton_protocol::EscalationLevel::Renotified,
        at: t(20),
        to: Vec::new(),
    });
    let mut taken = h.clone();
    taken.status = HandoffStatus::Assigned;
    taken.assignee = Some("ag_ana".into());
    let later = |seq: u64, data: EventData| Event { seq, data };
    let next = cache
        .apply(&[
            later(7, EventData::Handoff(h.clone())),
            later(8, EventData::Handoff(h)),
            later(9, EventData::Handoff(taken)),
            later(10, message("m_3", "c_1", "hello?", 21)),
        ])
        .expect("apply");
    assert_eq!(
        next.escalated.len(),
        1,
        "escalated once, not again when repeated"
    );
    assert_eq!(next.handed_over.len(), 1);
    assert_eq!(next.handed_over[0].assignee.as_deref(), Some("ag_ana"));
    assert_eq!(next.customer_messages.len(), 1);
}

#[test]
fn applying_the_same_events_twice_changes_nothing_the_second_time() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    let first = cache.apply(&inbox()).expect("apply");
    assert_eq!(first.applied, 7);
    assert_eq!(first.new_handoffs.len(), 2);
    let second = cache.apply(&inbox()).expect("apply again");
    assert_eq!(second.applied, 0);
    assert!(second.new_handoffs.is_empty());
    assert_eq!(cache.messages("c_1").expect("messages").len(), 2);
}

#[test]
fn an_update_to_a_known_handoff_is_not_reported_as_new() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    cache.apply(&inbox()).expect("apply");
    let later = vec![Event {
        seq: 8,
        data: handoff("h_1", "c_1", "Refund", HandoffStatus::Assigned, 1),
    }];
    let applied = cache.apply(&later).expect("apply");
    assert!(applied.new_handoffs.is_empty());
    assert!(cache
        .handoffs(&[HandoffStatus::Pending])
        .expect("list")
        .is_empty());
}

#[test]
fn the_customer_panel_shows_every_handoff_of_the_customer_with_labels_and_their_notes_from_every_conversation(
) {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    let mut events = inbox();
    let mut earlier = match handoff("h_0", "c_0", "Earlier", HandoffStatus::Resolved, -60) {
        EventData::Handoff(h) => h,
        _ => unreachable!(),
    };
    earlier.label = Some("refunded".into());
    let more = vec![
        EventData::Conversation(Conversation {
            id: "c_0".into(),
            channel_id: "ch".into(),
            contact_id: Some("u_1".into()),
            created_at: t(-60),
            channel_kind: None,
            last_inbound_at: None,
        }),
        EventData::Handoff(earlier),
        EventData::Note(Note {
            id: "n_0".into(),
            conversation_id: "c_0".into(),
            agent_id: "ag_1".into(),
            text: "prefers e-mail".into(),
            created_at: t(-59),
        }),
        EventData::Note(Note {
            id: "n_1".into(),
            conversation_id: "c_1".into(),
            agent_id: "ag_1".into(),
            text: "VIP".into(),
            created_at: t(5),
        }),
    ];
    for (i, data) in more.into_iter().enumerate() {
        events.push(Event {
            seq: 8 + i as u64,
            data,
        });
    }
    cache.apply(&events).expect("apply");
    let view = cache.customer_view("c_1").expect("view");
    assert_eq!(view.contact.map(|c| c.name).as_deref(), Some("Dana Reyes"));
    let titles: Vec<_> = view
        .handoffs
        .iter()
        .map(|h| (h.title.as_str(), h.label.as_deref()))
        .collect();
    assert_eq!(titles, [("Refund", None), ("Earlier", Some("refunded"))]);
    let notes: Vec<_> = view.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(
        notes,
        ["prefers e-mail", "VIP"],
        "the earlier conversation's note too"
    );
}

#[test]
fn the_cursor_survives_reopening_the_cache() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("c.sqlite");
    {
        let mut cache = Cache::open(&path).expect("open");
        assert_eq!(cache.cursor().expect("cursor"), 0);
        cache.apply(&inbox()).expect("apply");
    }
    let cache = Cache::open(&path).expect("reopen");
    assert_eq!(cache.cursor().expect("cursor"), 7);
    assert_eq!(
        cache
            .handoffs(&[HandoffStatus::Pending])
            .expect("list")
            .len(),
        1
    );
}

/// A cache as a build at schema `version` left it: that version's migrations, and rows written
/// the way that build wrote them.
fn cache_at_version(path: &std::path::Path, version: u32) {
    let conn = Connection::open(path).expect("open");
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= version) {
        conn.execute_batch(sql).expect("old migration");
        conn.pragma_update(None, "user_version", v)
            .expect("version");
    }
    let m = match message("m_old", "c_old", "parcel crushed in transit", 1) {
        EventData::Message(m) => m,
        _ => unreachable!(),
    };
    conn.execute(
        "INSERT INTO messages (id, conversation_id, created_at, data) VALUES (?1, ?2, ?3, ?4)",
        params![
            m.id,
            m.conversation_id,
            m.created_at.to_rfc3339(),
            serde_json::to_string(&m).expect("json")
        ],
    )
    .expect("old message");
    if version >= 3 {
        // From version 3 on, the cache keeps the search index itself.
        conn.execute_batch(
            "UPDATE messages SET text = json_extract(data, '$.text');
             INSERT INTO messages_fts (rowid, text) SELECT rowid, text FROM messages;",
        )
        .expect("old index");
    }
    conn.execute(
        "INSERT INTO sync_state (key, value) VALUES ('cursor', '41')",
        [],
    )
    .expect("old cursor");
}

#[test]
fn every_older_schema_upgrades_keeping_its_history_and_cursor_and_makes_it_searchable() {
    for version in 1..MIGRATIONS.len() as u32 {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.sqlite");
        cache_at_version(&path, version);
        let cache = Cache::open(&path).expect("upgrade");
        assert_eq!(
            cache.cursor().expect("cursor"),
            41,
            "from version {version}"
        );
        assert_eq!(cache.messages("c_old").expect("messages").len(), 1);
        let hits = cache
            .search(&crate::search::SearchQuery {
                text: "crushed".into(),
                ..Default::default()
            })
            .expect("search");
        assert_eq!(hits.len(), 1, "from version {version}");
        assert_eq!(hits[0].conversation_id, "c_old");
        assert!(hits[0].snippet.contains("[crushed]"), "{}", hits[0].snippet);
        assert!(cache.outbox().expect("outbox").is_empty());
    }
}

#[test]
fn a_cache_from_a_newer_build_is_refused_not_damaged() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("c.sqlite");
    {
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "user_version", 99)
            .expect("version");
    }
    assert!(matches!(
        Cache::open(&path),
        Err(CacheError::TooNew { found: 99, .. })
    ));
}

#[test]
fn a_snapshot_replaces_the_inbox_but_keeps_the_outbox_and_drafts() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    cache.apply(&inbox()).expect("apply");
    cache
        .enqueue(
            &baton_protocol::AgentCommand::Message {
                conversation_id: "c_1".into(),
                text: Some("on my way".into()),
                kind: None,
                payload: None,
            },
            "tx-1",
            t(9),
        )
        .expect("enqueue");
    cache
        .save_draft("c_1", "half a thought", t(9))
        .expect("draft");
    let snapshot = baton_protocol::Snapshot {
        seq: 50,
        contacts: vec![],
        conversations: vec![],
        handoffs: vec![
            match handoff("h_9", "c_9", "Only this", HandoffStatus::Pending, 8) {
                EventData::Handoff(h) => h,
                _ => unreachable!(),
            },
        ],
        agents: vec![],
        notes: vec![],
        templates: vec![],
        tags: baton_protocol::TagList {
            tags: vec!["vip".into()],
        },
        reads: vec![],
        next: None,
    };
    let applied = cache.apply_snapshot(&snapshot).expect("snapshot");
    assert!(applied.new_handoffs.is_empty(), "a snapshot is not news");
    assert_eq!(cache.cursor().expect("cursor"), 50);
    let pending: Vec<_> = cache
        .handoffs(&[HandoffStatus::Pending])
        .expect("list")
        .into_iter()
        .map(|s| s.handoff.title)
        .collect();
    assert_eq!(pending, ["Only this"]);
    assert_eq!(cache.tags().expect("tags"), ["vip"]);
    // The hub's log went on from 50 > 7: same history, so messages stay.
    assert_eq!(cache.messages("c_1").expect("messages").len(), 2);
    assert_eq!(cache.outbox().expect("outbox").len(), 1);
    assert_eq!(
        cache.draft("c_1").expect("draft").as_deref(),
        Some("half a thought")
    );
}

#[test]
fn backfill_stops_at_the_age_cap_and_never_overwrites_what_the_stream_brought() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    cache.apply(&inbox()).expect("apply");
    let as_message = |e: EventData| match e {
        EventData::Message(m) => m,
        _ => unreachable!(),
    };
    let mut stale = as_message(message("m_2", "c_1", "an older copy", 3));
    stale.text = Some("an older copy".into());
    let page = baton_protocol::MessagePage {
        messages: vec![
            stale,
            as_message(message("m_0", "c_1", "hello bot", 0)),
            as_message(message("m_ancient", "c_1", "ancient", -10_000)),
        ],
        next: Some(3),
        total: 5,
    };
    let progress = cache.apply_backfill(&page, Some(t(-60))).expect("page");
    assert!(progress.done, "the page reached past the cap");
    let texts: Vec<_> = cache
        .messages("c_1")
        .expect("messages")
        .into_iter()
        .filter_map(|m| m.text)
        .collect();
    assert_eq!(texts, ["hello bot", "the box was crushed", "and wet"]);
}

#[test]
fn open_conversations_are_backfilled_first_and_only_until_complete() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    cache.apply(&inbox()).expect("apply");
    // c_1 has a pending handoff; c_2's is resolved.
    let todo = cache.conversations_to_backfill().expect("todo");
    assert_eq!(todo, [("c_1".to_string(), None)]);
    let as_message = |e: EventData| match e {
        EventData::Message(m) => m,
        _ => unreachable!(),
    };
    let first = baton_protocol::MessagePage {
        messages: vec![as_message(message("m_0", "c_1", "older", 0))],
        next: Some(7),
        total: 4,
    };
    assert!(!cache
        .apply_conversation_backfill("c_1", &first)
        .expect("page"));
    assert_eq!(
        cache.conversations_to_backfill().expect("todo"),
        [("c_1".to_string(), Some(7))]
    );
    let last = baton_protocol::MessagePage {
        messages: vec![as_message(message("m_00", "c_1", "oldest", -1))],
        next: None,
        total: 4,
    };
    assert!(cache
        .apply_conversation_backfill("c_1", &last)
        .expect("page"));
    assert!(cache.conversations_to_backfill().expect("todo").is_empty());
    let texts: Vec<_> = cache
        .messages("c_1")
        .expect("messages")
        .into_iter()
        .filter_map(|m| m.text)
        .collect();
    assert_eq!(texts, ["oldest", "older", "the box was crushed", "and wet"]);
}

fn read(agent: &str, conv: &str, at: i64, unread: bool) -> EventData {
    EventData::Read(baton_protocol::ReadMark {
        agent_id: agent.into(),
        conversation_id: conv.into(),
        read_at: t(at),
        unread,
    })
}

fn unread_titles(cache: &Cache, me: &str) -> Vec<(String, bool)> {
    cache
        .view(HandoffView::Open, Some(me))
        .expect("view")
        .into_iter()
        .map(|s| (s.handoff.title, s.unread))
        .collect()
}

#[test]
fn a_conversation_is_unread_until_i_read_it_and_again_when_the_customer_writes_or_i_mark_it() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    let mut log = inbox();
    cache.apply(&log).expect("apply");
    let mut push = |cache: &mut Cache, data: EventData| {
        log.push(Event {
            seq: log.len() as u64 + 1,
            data,
        });
        cache.apply(&log).expect("apply");
    };
    assert_eq!(
        unread_titles(&cache, "ag_ana"),
        [("Refund".to_string(), true)]
    );
    assert_eq!(cache.counts(Some("ag_ana")).expect("counts").unread, 1);

    push(&mut cache, read("ag_ana", "c_1", 5, false));
    assert_eq!(
        unread_titles(&cache, "ag_ana"),
        [("Refund".to_string(), false)]
    );
    assert_eq!(cache.counts(Some("ag_ana")).expect("counts").unread, 0);
    // Bo has not read it: read marks are each agent's own.
    assert_eq!(
        unread_titles(&cache, "ag_bo"),
        [("Refund".to_string(), true)]
    );

    push(&mut cache, message("m_3", "c_1", "hello?", 6));
    assert_eq!(
        unread_titles(&cache, "ag_ana"),
        [("Refund".to_string(), true)]
    );

    push(&mut cache, read("ag_ana", "c_1", 7, false));
    push(&mut cache, read("ag_ana", "c_1", 7, true));
    assert_eq!(
        unread_titles(&cache, "ag_ana"),
        [("Refund".to_string(), true)]
    );
    let only_unread = HandoffFilter {
        unread: true,
        ..HandoffFilter::default()
    };
    assert_eq!(
        cache
            .view_page(HandoffView::Open, Some("ag_ana"), &only_unread, 0, 50)
            .expect("page")
            .total,
        1
    );
}

#[test]
fn a_list_comes_in_windows_with_its_total_and_narrows_by_tag_agent_priority_and_channel() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    let mut list = Vec::new();
    for i in 0..30 {
        let EventData::Handoff(mut h) = handoff(
            &format!("h_{i}"),
            &format!("c_{i}"),
            &format!("n{i:02}"),
            HandoffStatus::Pending,
            i,
        ) else {
            unreachable!()
        };
        if i % 3 == 0 {
            h.tags = vec!["billing".into()];
        }
        if i % 10 == 0 {
            h.priority = Some(baton_protocol::Priority::Urgent);
        }
        if i >= 25 {
            h.status = HandoffStatus::Assigned;
            h.assignee = Some("ag_bo".into());
        }
        list.push(EventData::Handoff(h));
    }
    cache.apply(&events(list)).expect("apply");

    let all = HandoffFilter::default();
    let page = cache
        .view_page(HandoffView::Pending, None, &all, 10, 5)
        .expect("page");
    assert_eq!(page.total, 25);
    assert_eq!(page.offset, 10);
    let titles: Vec<_> = page.rows.iter().map(|s| s.handoff.title.as_str()).collect();
    // Urgent first (n00, n10, n20), then the oldest.
    assert_eq!(titles, ["n08", "n09", "n11", "n12", "n13"]);

    let billing = HandoffFilter {
        tag: Some("billing".into()),
        ..HandoffFilter::default()
    };
    let open = cache
        .view_page(HandoffView::Open, None, &billing, 0, 100)
        .expect("page");
    assert_eq!(open.total, 10);
    assert_eq!(
        cache.counts(None).expect("counts").tags.get("billing"),
        Some(&10)
    );

    let bos = HandoffFilter {
        agent: Some("ag_bo".into()),
        sort: HandoffSort::Newest,
        ..HandoffFilter::default()
    };
    let held: Vec<_> = cache
        .view_page(HandoffView::Open, None, &bos, 0, 100)
        .expect("page")
        .rows
        .into_iter()
        .map(|s| s.handoff.title)
        .collect();
    assert_eq!(held, ["n29", "n28", "n27", "n26", "n25"]);

    let urgent = HandoffFilter {
        priority: Some(baton_protocol::Priority::Urgent),
        ..HandoffFilter::default()
    };
    assert_eq!(
        cache
            .view_page(HandoffView::Pending, None, &urgent, 0, 100)
            .expect("page")
            .total,
        3
    );
    let whatsapp = HandoffFilter {
        channel_kind: Some("whatsapp".into()),
        ..HandoffFilter::default()
    };
    let botpress = HandoffFilter {
        channel_kind: Some("botpress".into()),
        ..HandoffFilter::default()
    };
    assert_eq!(
        cache
            .view_page(HandoffView::Open, None, &whatsapp, 0, 100)
            .expect("page")
            .total,
        0
    );
    assert_eq!(
        cache
            .view_page(HandoffView::Open, None, &botpress, 0, 100)
            .expect("page")
            .total,
        30,
        "a conversation with no channel kind came through Botpress"
    );
}

#[test]
fn starting_afresh_for_another_hub_forgets_its_inbox_outbox_and_cursor_but_keeps_my_settings() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    cache.apply(&inbox()).expect("apply");
    cache
        .enqueue(
            &baton_protocol::AgentCommand::Note {
                conversation_id: "c_1".into(),
                text: "for the old hub".into(),
            },
            "t1",
            t(9),
        )
        .expect("queue");
    let quiet = crate::prefs::NotificationSettings {
        sound: false,
        ..Default::default()
    };
    cache.set_notification_settings(&quiet).expect("settings");
    cache.start_afresh().expect("afresh");
    assert_eq!(cache.cursor().expect("cursor"), 0);
    assert!(cache
        .view(HandoffView::Open, None)
        .expect("view")
        .is_empty());
    assert!(cache.messages("c_1").expect("messages").is_empty());
    assert!(cache.outbox().expect("outbox").is_empty());
    assert_eq!(cache.notification_settings().expect("settings"), quiet);
}

#[test]
fn a_copy_from_another_hub_starts_afresh_and_one_from_no_recorded_hub_is_kept() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    cache.apply(&inbox()).expect("apply");
    // A copy made before hubs were recorded is taken to be this hub's.
    assert!(!cache.adopt_hub("https://team.example.com").expect("adopt"));
    assert_eq!(
        cache.view(HandoffView::Pending, None).expect("view").len(),
        1
    );
    assert!(!cache
        .adopt_hub("https://team.example.com")
        .expect("same hub"));
    assert!(cache.adopt_hub("solo").expect("another hub"));
    assert!(cache
        .view(HandoffView::Pending, None)
        .expect("view")
        .is_empty());
    assert_eq!(cache.hub_of_copy().expect("hub").as_deref(), Some("solo"));
}

#[test]
fn adding_or_reordering_a_teams_hub_addresses_keeps_the_copy_and_the_replies_queued_offline() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    assert!(!cache.adopt_hub("https://a.team.example").expect("adopt"));
    cache.apply(&inbox()).expect("apply");
    cache
        .enqueue(
            &baton_protocol::AgentCommand::Note {
                conversation_id: "c_1".into(),
                text: "written offline".into(),
            },
            "t1",
            t(9),
        )
        .expect("queue");
    for setting in [
        "https://a.team.example,https://b.team.example",
        "https://b.team.example, https://a.team.example/",
        "https://b.team.example",
    ] {
        assert!(!cache.adopt_hub(setting).expect("same team"), "{setting}");
        assert_eq!(cache.outbox().expect("outbox").len(), 1, "{setting}");
        assert_eq!(
            cache.view(HandoffView::Pending, None).expect("view").len(),
            1
        );
    }
    assert_eq!(
        cache.hub_of_copy().expect("hub").as_deref(),
        Some("https://b.team.example")
    );
    // No address in common: another team, whose copy this is not.
    assert!(cache
        .adopt_hub("https://other.example")
        .expect("another hub"));
    assert!(cache.outbox().expect("outbox").is_empty());
}

#[test]
fn another_agents_read_mark_changes_nothing_this_device_shows() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    let mut log = inbox();
    cache.apply(&log).expect("apply");
    cache.set_me("ag_ana").expect("me");
    log.push(Event {
        seq: log.len() as u64 + 1,
        data: read("ag_bo", "c_1", 5, false),
    });
    let applied = cache.apply(&log).expect("apply");
    assert!(
        applied.conversations.is_empty(),
        "{:?}",
        applied.conversations
    );
    log.push(Event {
        seq: log.len() as u64 + 1,
        data: read("ag_ana", "c_1", 5, false),
    });
    assert_eq!(cache.apply(&log).expect("apply").conversations, ["c_1"]);
}

#[test]
fn reading_here_reads_up_to_the_customers_last_message_whatever_this_devices_clock_says() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    let mut log = inbox();
    cache.apply(&log).expect("apply");
    // This device's clock runs an hour ahead of the hub's.
    assert!(cache.mark_read_here("ag_ana", "c_1", t(60)).expect("read"));
    assert!(!cache
        .mark_read_here("ag_ana", "c_1", t(61))
        .expect("already read"));
    log.push(Event {
        seq: log.len() as u64 + 1,
        data: message("m_9", "c_1", "still there?", 10),
    });
    cache.apply(&log).expect("apply");
    assert_eq!(
        unread_titles(&cache, "ag_ana"),
        [("Refund".to_string(), true)]
    );
}

#[test]
fn the_report_counts_from_this_devices_copy_as_the_hub_does() {
    let mut cache =
        Cache::open(&tempfile::tempdir().expect("dir").path().join("c.sqlite")).expect("open");
    let EventData::Handoff(mut resolved) =
        handoff("h_r", "c_1", "Refund", HandoffStatus::Resolved, 1)
    else {
        unreachable!()
    };
    resolved.assignee = Some("ag_ana".into());
    resolved.updated_at = t(31);
    let EventData::Message(mut reply) = message("m_a", "c_1", "on it", 3) else {
        unreachable!()
    };
    reply.author = Author::Agent;
    cache
        .apply(&events(vec![
            EventData::Agent(baton_protocol::Agent {
                id: "ag_ana".into(),
                email: "ana@example.com".into(),
                name: "Ana".into(),
                role: baton_protocol::Role::Agent,
                presence: baton_protocol::Presence::Online,
                capacity: 3,
                disabled: false,
                skills: Vec::new(),
            }),
            EventData::Handoff(resolved),
            EventData::Message(reply),
            handoff("h_w", "c_2", "Waiting", HandoffStatus::Pending, 2),
            handoff("h_old", "c_3", "Long ago", HandoffStatus::Pending, -10_000),
        ]))
        .expect("apply");
    let rows = cache
        .report(t(0), t(60), baton_protocol::report::ReportGroup::Agent)
        .expect("report");
    assert_eq!(
        rows.iter()
            .map(|r| (r.key.as_str(), r.handoffs, r.resolved))
            .collect::<Vec<_>>(),
        [("Ana", 1, 1), ("unassigned", 1, 0)]
    );
    assert_eq!(rows[0].first_response_median_secs, Some(120.0));
    assert_eq!(rows[0].resolution_median_secs, Some(1800.0));
    let by_channel = cache
        .report(t(0), t(60), baton_protocol::report::ReportGroup::Channel)
        .expect("report");
    assert_eq!(by_channel[0].key, "Botpress");
}
