//! Pushes wake an agent's phone and browser: a new handoff reaches each registered device exactly
//! once, through FCM, APNs and Web Push, authenticated as each service requires (checked by fake
//! services on loopback); a device the service says is gone is forgotten; what an agent muted is
//! never sent; signing out removes the session's devices. Against a real `baton-hub` process.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::fake_push::{FakePush, KEY_ID, TEAM_ID, TOPIC};
use support::{AgentSession, Botpress, HubData, HubProcess, AGENT_EMAIL};

/// A hub with all three providers set up through `baton-hub push …`, pointed at `fake`.
fn push_ready_hub(data: &HubData, fake: &FakePush) -> HubProcess {
    let account = data.dir.path().join("service-account.json");
    std::fs::write(&account, &fake.service_account).expect("write account");
    let p8 = data.dir.path().join("AuthKey.p8");
    std::fs::write(&p8, &fake.p8).expect("write p8");
    let url = fake.url();
    for args in [
        vec![
            "push",
            "fcm",
            "--data",
            data.path(),
            "--service-account",
            account.to_str().unwrap_or_default(),
            "--endpoint",
            &url,
        ],
        vec![
            "push",
            "apns",
            "--data",
            data.path(),
            "--team-id",
            TEAM_ID,
            "--key-id",
            KEY_ID,
            "--key",
            p8.to_str().unwrap_or_default(),
            "--topic",
            TOPIC,
            "--endpoint",
            &url,
        ],
        vec![
            "push",
            "web",
            "--data",
            data.path(),
            "--subject",
            "mailto:ops@example.com",
        ],
    ] {
        let (ok, out, err) = support::hub_cli(&args, "");
        assert!(ok, "baton-hub {args:?}: {err}");
        assert!(
            !out.contains("PRIVATE KEY"),
            "a private key is never printed: {out}"
        );
    }
    let (_, shown, _) = support::hub_cli(&["push", "show", "--data", data.path()], "");
    for provider in [
        "fcm: project baton-test",
        "apns: team TEAM123456",
        "web: VAPID public key",
    ] {
        assert!(shown.contains(provider), "{provider} missing from: {shown}");
    }
    HubProcess::start(data, support::free_port())
}

/// Alice, signed in and at work (so a new handoff is for her).
async fn online(hub: &HubProcess) -> AgentSession {
    let alice = AgentSession::sign_in(hub, AGENT_EMAIL).await;
    assert_eq!(
        alice.post("/presence", json!({"status": "online"})).await.0,
        200
    );
    alice
}

/// Alice's Android phone.
fn pixel() -> Value {
    json!({"platform": "fcm", "token": "fcm-alice-pixel"})
}

async fn register(alice: &AgentSession, device: Value) -> String {
    let (status, body) = alice.post("/devices", device).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().expect("device id").to_string()
}

#[tokio::test]
async fn a_new_handoff_wakes_each_of_the_agents_devices_once_through_fcm_apns_and_web_push_each_in_its_language(
) {
    let fake = FakePush::start().await;
    let data = HubData::new();
    let hub = push_ready_hub(&data, &fake);
    let alice = online(&hub).await;
    let (status, key) = alice.get("/devices/web-push-key").await;
    assert_eq!(status, 200);
    assert_eq!(
        key["public_key"].as_str().map(str::len),
        Some(87),
        "a P-256 point, base64url: {key}"
    );
    register(&alice, pixel()).await;
    // Alice's iPhone speaks French: its push does too.
    register(
        &alice,
        json!({"platform": "apns", "token": "a1b2c3d4e5f6", "language": "fr-FR"}),
    )
    .await;
    register(&alice, json!({"platform": "web", "subscription": fake.subscribe("alice-firefox"), "time_zone": "Europe/Paris"})).await;

    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let ticket = botpress
        .hand_off("Refund for order 1042", "Zoë", "I was charged twice")
        .await;
    support::eventually(
        Duration::from_secs(10),
        || fake.pushes().len() >= 3,
        || {
            format!(
                "pushes: {:?}\nrefused: {:?}\nhub log:\n{}",
                fake.pushes(),
                fake.refused(),
                data.log()
            )
        },
    )
    .await;
    // Nothing more comes: one push per device.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pushes = fake.pushes();
    assert!(
        fake.refused().is_empty(),
        "every call was authenticated right: {:?}",
        fake.refused()
    );
    assert_eq!(pushes.len(), 3, "{pushes:#?}");
    assert_eq!(
        fake.token_requests(),
        1,
        "one access token for FCM, then reused"
    );

    let of = |provider: &str| {
        pushes
            .iter()
            .find(|p| p.provider == provider)
            .cloned()
            .expect(provider)
    };
    let fcm = of("fcm");
    assert_eq!(fcm.device, "fcm-alice-pixel");
    assert_eq!(fcm.body["message"]["notification"]["title"], "New handoff");
    assert_eq!(
        fcm.body["message"]["notification"]["body"],
        "Refund for order 1042"
    );
    let conversation = fcm.body["message"]["data"]["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_string();
    assert_eq!(
        fcm.body["message"]["android"]["collapse_key"],
        conversation.as_str(),
        "collapsed per conversation"
    );

    let apns = of("apns");
    assert_eq!(apns.device, "a1b2c3d4e5f6");
    assert_eq!(apns.body["aps"]["alert"]["title"], "Nouveau transfert");
    assert_eq!(apns.body["aps"]["alert"]["body"], "Refund for order 1042");
    assert_eq!(
        apns.body["conversation_id"],
        conversation.as_str(),
        "a tap opens that conversation"
    );
    assert_eq!(apns.headers.get("apns-collapse-id"), Some(&conversation));

    let web = of("web");
    assert_eq!(web.device, "alice-firefox");
    assert_eq!(
        web.body["title"], "New handoff",
        "the payload decrypted with the browser's keys"
    );
    assert_eq!(web.body["conversation_id"], conversation.as_str());
    assert!(web.headers.contains_key("topic"));
    let _ = ticket;
}

#[tokio::test]
async fn a_device_its_service_says_is_gone_is_forgotten_and_a_muted_event_is_never_sent() {
    let fake = FakePush::start().await;
    let data = HubData::new();
    let hub = push_ready_hub(&data, &fake);
    let alice = online(&hub).await;
    let gone = register(
        &alice,
        json!({"platform": "fcm", "token": "fcm-uninstalled"}),
    )
    .await;
    fake.kill_device("fcm-uninstalled");
    register(
        &alice,
        json!({"platform": "apns", "token": "0a1b2c3d4e5f",
        "settings": {"new_handoffs": false}}),
    )
    .await;
    register(
        &alice,
        json!({"platform": "fcm", "token": "fcm-quiet",
        "settings": {"quiet_from": "00:00", "quiet_until": "23:59"}, "time_zone": "UTC"}),
    )
    .await;

    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    botpress
        .hand_off("Where is my parcel", "Kim", "It has been a week")
        .await;
    support::eventually(
        Duration::from_secs(10),
        || !fake.pushes().is_empty(),
        || {
            format!(
                "no push; refused: {:?}\nhub log:\n{}",
                fake.refused(),
                data.log()
            )
        },
    )
    .await;
    // The hub hears "unregistered" and forgets the device.
    support::eventually(
        Duration::from_secs(5),
        || data.log().contains("the device is gone"),
        || data.log(),
    )
    .await;
    let (status, _) = alice.delete(&format!("/devices/{gone}")).await;
    assert_eq!(status, 404, "the dead device was removed");

    botpress
        .hand_off("Second order", "Kim", "And another thing")
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pushes = fake.pushes();
    assert_eq!(
        pushes.len(),
        1,
        "only the first push went to the dead device: {pushes:#?}"
    );
    assert_eq!(pushes[0].device, "fcm-uninstalled");
    assert!(
        pushes.iter().all(|p| p.device != "0a1b2c3d4e5f"),
        "new handoffs muted on that device"
    );
    assert!(
        pushes.iter().all(|p| p.device != "fcm-quiet"),
        "quiet hours hold"
    );
}

#[tokio::test]
async fn signing_out_removes_the_sessions_devices_and_bad_registrations_are_refused() {
    let fake = FakePush::start().await;
    let data = HubData::new();
    let hub = push_ready_hub(&data, &fake);
    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    for bad in [
        json!({"platform": "fcm"}),
        json!({"platform": "carrier-pigeon", "token": "x"}),
        json!({"platform": "web", "subscription": {"endpoint": "ftp://x", "keys": {"p256dh": "x", "auth": "y"}}}),
        json!({"platform": "apns", "token": "t", "time_zone": "Atlantis/Capital"}),
    ] {
        let (status, body) = alice.post("/devices", bad.clone()).await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "says why: {body}"
        );
    }
    let id = register(&alice, json!({"platform": "fcm", "token": "fcm-alice"})).await;
    assert_eq!(alice.post("/logout", json!({})).await.0, 200);

    let again = online(&hub).await;
    let (status, _) = again.delete(&format!("/devices/{id}")).await;
    assert_eq!(status, 404, "signing out removed the device");
    Botpress::new(&hub.url(), &data.endpoint_path)
        .hand_off("After sign-out", "Lee", "hello")
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        fake.pushes().is_empty(),
        "a signed-out phone is not woken: {:?}",
        fake.pushes()
    );
}

/// Two hubs on one PostgreSQL database, set up to push through `fake`'s FCM.
fn two_push_ready_hubs(fake: &FakePush) -> (HubData, HubProcess, HubProcess) {
    let data = HubData::on_postgres(
        &baton_hub::store::postgres::testing::fresh_database(),
        "http://127.0.0.1:9/hook",
    );
    let account = data.dir.path().join("service-account.json");
    std::fs::write(&account, &fake.service_account).expect("write account");
    let mut args = vec!["push".to_string(), "fcm".to_string()];
    args.extend(data.place());
    args.extend([
        "--service-account".to_string(),
        account.display().to_string(),
        "--endpoint".to_string(),
        fake.url(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, err) = support::hub_cli(&args, "");
    assert!(ok, "baton-hub {args:?}: {err}");
    let first = HubProcess::start(&data, support::free_port());
    let second = HubProcess::start(&data, support::free_port());
    (data, first, second)
}

#[tokio::test]
async fn with_two_hubs_on_one_database_a_new_handoff_wakes_a_device_once_not_once_per_hub() {
    let fake = FakePush::start().await;
    let (data, first, second) = two_push_ready_hubs(&fake);
    let alice = online(&first).await;
    register(&alice, pixel()).await;

    // Botpress hands over through the other hub: both follow every commit of the team.
    let botpress = Botpress::new(&second.url(), &data.endpoint_path);
    botpress
        .hand_off("Refund for order 1042", "Zoë", "I was charged twice")
        .await;
    support::eventually(
        Duration::from_secs(10),
        || !fake.pushes().is_empty(),
        || format!("no push came\nhub log:\n{}", data.log()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pushes = fake.pushes();
    assert_eq!(pushes.len(), 1, "one push, not one per hub: {pushes:#?}");
    assert_eq!(
        pushes[0].body["message"]["notification"]["body"],
        "Refund for order 1042"
    );
}

#[tokio::test]
async fn with_two_hubs_a_customer_writing_in_a_chat_taken_through_the_other_hub_wakes_its_agent() {
    let fake = FakePush::start().await;
    let (data, first, second) = two_push_ready_hubs(&fake);
    let alice = online(&first).await;
    register(&alice, pixel()).await;
    let botpress = Botpress::new(&second.url(), &data.endpoint_path);
    let (status, user) = botpress
        .post(
            "createRemoteUser",
            json!({"type": "createRemoteUser", "payload": {"role": "end-user", "name": "Zoë"}}),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    let (status, ticket) = botpress
        .post(
            "createRemoteConversation",
            json!({"type": "createRemoteConversation", "payload": {"title": "Refund for order 1042"}}),
        )
        .await;
    assert_eq!(status, 200, "{ticket}");
    let says = |text: &'static str| {
        let body = json!({"type": "botSendsMessage", "remoteConversationId": ticket["id"],
                          "remoteUserId": user["id"], "payload": {"text": text}});
        let botpress = &botpress;
        async move {
            let (status, answer) = botpress.post("botSendsMessage", body).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    says("I was charged twice").await;
    support::eventually(
        Duration::from_secs(10),
        || fake.pushes().len() == 1,
        || format!("no push for the new handoff\nhub log:\n{}", data.log()),
    )
    .await;

    // Alice takes the chat through the first hub; Zoë writes again through the second.
    let handoff = alice
        .handoff_of(ticket["id"].as_str().expect("ticket id"))
        .await;
    alice
        .act(
            &format!("/handoffs/{}/assign", handoff["id"].as_str().expect("id")),
            json!({}),
        )
        .await;
    says("Any news?").await;
    support::eventually(
        Duration::from_secs(10),
        || fake.pushes().len() >= 2,
        || format!("Alice was not told Zoë wrote\nhub log:\n{}", data.log()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pushes = fake.pushes();
    assert_eq!(pushes.len(), 2, "one push each: {pushes:#?}");
    assert_eq!(
        pushes[1].body["message"]["notification"]["body"],
        "New message from Zoë"
    );
}
