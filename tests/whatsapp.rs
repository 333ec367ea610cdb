//! A WhatsApp number end to end: a real `baton-hub` process set up with `baton-hub whatsapp add`,
//! Meta's webhooks posted with real signatures (the fixtures of two public WhatsApp libraries,
//! under `tests/fixtures/whatsapp/`, MIT), and a fake Graph API on loopback that checks every send
//! against the contract and plays back Meta's errors.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_graph::FakeGraph;
use support::{AgentSession, HubData, HubProcess, AGENT_EMAIL};

const NUMBER: &str = "1122334455667";
const APP_SECRET: &str = "meta-app-secret";
const TOKEN: &str = "EAAG-access-token";
const VERIFY: &str = "my-verify-token";

/// The fixtures reuse a few wamids across cases; each case gets its own, so dedupe does not hide
/// one case behind another.
fn unique_ids(mut body: Value, case: &str) -> Value {
    if let Some(entries) = body["entry"].as_array_mut() {
        for (e, entry) in entries.iter_mut().enumerate() {
            for (c, change) in entry["changes"]
                .as_array_mut()
                .into_iter()
                .flatten()
                .enumerate()
            {
                for (m, message) in change["value"]["messages"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    message["id"] = json!(format!("wamid.{case}.{e}.{c}.{m}"));
                }
            }
        }
    }
    body
}

fn fixture(file: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/whatsapp/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

struct World {
    data: HubData,
    hub: HubProcess,
    graph: FakeGraph,
    /// `/whatsapp/<channel>/webhook`
    path: String,
    agent: AgentSession,
    http: reqwest::Client,
}

/// Connects a number with the CLI, as an admin would.
fn connect(data: &HubData, graph: &FakeGraph) -> String {
    support::fake_graph::connect_number(data, graph, "Support line", APP_SECRET, TOKEN)
}

async fn world() -> World {
    world_with(&[]).await
}

/// A world whose hub runs with extra `serve` flags (`--delivery-timeout 1`, …).
async fn world_with(flags: &[&str]) -> World {
    let graph = FakeGraph::start(NUMBER, TOKEN).await;
    let data = HubData::new();
    let path = connect(&data, &graph);
    let hub = HubProcess::start_with(&data, support::free_port(), flags);
    let agent = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    World {
        data,
        hub,
        graph,
        path,
        agent,
        http: reqwest::Client::new(),
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    support::fake_graph::meta_signature(secret, body)
}

impl World {
    /// Posts a notification as Meta does: the raw bytes, signed with `secret`.
    async fn post_signed(&self, body: &[u8], signature: Option<String>) -> u16 {
        let mut request = self
            .http
            .post(format!("{}{}", self.hub.url(), self.path))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send().await.expect("post").status().as_u16()
    }

    async fn post(&self, notification: &Value) -> u16 {
        let body = serde_json::to_vec(notification).expect("json");
        self.post_signed(&body, Some(sign(APP_SECRET, &body))).await
    }

    async fn messages(&self) -> Vec<Value> {
        let mut latest = std::collections::BTreeMap::new();
        for e in self.agent.events().await {
            if e["kind"] == "message" {
                latest.insert(
                    e["data"]["id"].as_str().unwrap_or_default().to_string(),
                    e["data"].clone(),
                );
            }
        }
        latest.into_values().collect()
    }

    async fn message_from_customer(&self, text: &str) -> Value {
        self.messages()
            .await
            .into_iter()
            .find(|m| m["text"] == text)
            .unwrap_or(Value::Null)
    }

    /// Dana writes `text` now; the conversation it lands in.
    async fn customer_opens(&self, wamid: &str, text: &str) -> String {
        assert_eq!(
            self.post(&customer_says(wamid, "15557654321", "Dana", text))
                .await,
            200
        );
        self.message_from_customer(text).await["conversation_id"]
            .as_str()
            .expect("conversation")
            .to_string()
    }

    async fn message_id(&self, text: &str) -> String {
        self.message_from_customer(text).await["id"]
            .as_str()
            .expect("the message")
            .to_string()
    }

    /// Waits until the fake Graph API has had `n` sends accepted.
    async fn wait_for_sends(&self, n: usize) {
        support::eventually(
            Duration::from_secs(20),
            || self.graph.accepted().len() >= n,
            || format!("only {:?} reached WhatsApp", self.graph.texts()),
        )
        .await;
    }
}

/// A text message from a customer, as Meta sends it now.
fn customer_says(wamid: &str, from: &str, name: &str, text: &str) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
            "contacts": [{"profile": {"name": name}, "wa_id": from}],
            "messages": [{"from": from, "id": wamid, "timestamp": chrono::Utc::now().timestamp().to_string(),
                          "type": "text", "text": {"body": text}}]
        }}]}]
    })
}

/// A message Dana wrote `days` ago (outside the 24-hour window when that is more than one).
fn customer_said_days_ago(days: i64, wamid: &str, text: &str) -> Value {
    let mut message = customer_says(wamid, "15557654321", "Dana", text);
    let then = (chrono::Utc::now() - chrono::TimeDelta::days(days)).timestamp();
    message["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] =
        json!(then.to_string());
    message
}

fn status(wamid: &str, status: &str, error: Option<i64>) -> Value {
    let mut s = json!({"id": wamid, "status": status, "timestamp": "1700000000", "recipient_id": "15557654321"});
    if let Some(code) = error {
        s["errors"] = json!([{"code": code, "title": "Message undeliverable", "message": "Message undeliverable"}]);
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": NUMBER},
        "statuses": [s]
    }}]}]})
}

#[tokio::test]
async fn meta_verifies_the_webhook_only_with_the_right_verify_token() {
    let w = world().await;
    let get = |token: &str| {
        w.http
            .get(format!(
                "{}{}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}",
                w.hub.url(),
                w.path
            ))
            .send()
    };
    let ok = get(VERIFY).await.expect("get");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.expect("body"), "1158201444");
    assert_eq!(get("guess").await.expect("get").status().as_u16(), 403);
}

#[tokio::test]
async fn every_fixture_signed_is_accepted_and_reads_as_something_an_agent_understands() {
    let w = world().await;
    let messages = fixture("pywa/message.json");
    let cases = messages.as_object().expect("cases");
    for (case, body) in cases {
        assert_eq!(w.post(&unique_ids(body.clone(), case)).await, 200, "{case}");
    }
    for file in [
        "pywa/callback_button.json",
        "pywa/callback_selection.json",
        "pywa/system.json",
    ] {
        for (case, body) in fixture(file).as_object().expect("cases") {
            let case = format!("{file}.{case}");
            assert_eq!(
                w.post(&unique_ids(body.clone(), &case)).await,
                200,
                "{case}"
            );
        }
    }
    let stored = w.messages().await;
    let text_of = |kind: &str| -> Vec<String> {
        stored
            .iter()
            .filter(|m| m["type"] == kind)
            .filter_map(|m| m["text"].as_str().map(str::to_string))
            .collect()
    };
    assert!(
        text_of("text").contains(&"Body Text".to_string()),
        "{stored:?}"
    );
    for kind in [
        "image",
        "video",
        "document",
        "audio",
        "sticker",
        "location",
        "contacts",
        "reaction",
        "order",
        "unsupported",
        "interactive",
        "button",
        "system",
    ] {
        let texts = text_of(kind);
        assert!(!texts.is_empty(), "no {kind} message shown: {stored:?}");
        assert!(
            texts.iter().all(|t| !t.trim().is_empty()),
            "{kind}: {texts:?}"
        );
    }
    assert!(text_of("unsupported")
        .iter()
        .any(|t| t.contains("unsupported content")));
    assert!(text_of("reaction")
        .iter()
        .any(|t| t.contains("removed a reaction")));
    // Unknown content keeps its raw JSON for whoever needs it.
    let unsupported = stored
        .iter()
        .find(|m| m["type"] == "unsupported")
        .expect("unsupported");
    assert!(unsupported["payload"]["errors"].is_array(), "{unsupported}");

    // The same notification again (Meta delivers at least once) stores nothing new.
    let before = w.messages().await.len();
    assert_eq!(
        w.post(&unique_ids(cases["text"].clone(), "text")).await,
        200
    );
    assert_eq!(w.messages().await.len(), before);

    // A business-scoped-id customer with a username and no phone number in the payload.
    let mut bsuid_only = fixture("whatsapp-api-js/incoming.json");
    bsuid_only["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!(NUMBER);
    let value = &mut bsuid_only["entry"][0]["changes"][0]["value"];
    if let Some(contact) = value["contacts"][0].as_object_mut() {
        contact.remove("wa_id");
    }
    if let Some(m) = value["messages"][0].as_object_mut() {
        m.remove("from");
        m.insert("from_user_id".into(), json!("US.13491208655302741918"));
        m.insert("id".into(), json!("wamid.bsuid-only"));
    }
    assert_eq!(w.post(&bsuid_only).await, 200);
    let contacts: Vec<Value> = w
        .agent
        .events()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "contact")
        .map(|e| e["data"].clone())
        .collect();
    assert!(
        contacts
            .iter()
            .any(|c| c["attributes"]["bsuid"] == "US.13491208655302741918"
                && c["attributes"]["username"] == "@testusername"),
        "{contacts:?}"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_refused_and_nothing_is_stored() {
    let w = world().await;
    let body = serde_json::to_vec(&customer_says("wamid.t1", "15557654321", "Dana", "hello?"))
        .expect("json");
    let mut tampered = body.clone();
    let at = tampered.len() - 10;
    tampered[at] = b' ';
    assert_eq!(
        w.post_signed(&tampered, Some(sign(APP_SECRET, &body)))
            .await,
        401
    );
    assert_eq!(
        w.post_signed(&body, Some(sign("another-secret", &body)))
            .await,
        401
    );
    assert_eq!(w.post_signed(&body, None).await, 401);
    assert!(w.messages().await.is_empty());
    assert!(
        w.data.log().contains("wrong or missing signature"),
        "the refusal is logged"
    );
    // Other webhook fields are answered 200 and ignored.
    let other = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "message_template_status_update", "value": {"event": "APPROVED"}}]}]});
    assert_eq!(w.post(&other).await, 200);
    assert!(w.messages().await.is_empty());
}

#[tokio::test]
async fn a_customer_is_queued_the_agent_replies_and_statuses_only_move_forward() {
    let w = world().await;
    assert_eq!(
        w.post(&customer_says(
            "wamid.c1",
            "15557654321",
            "Dana Reyes",
            "my order is late"
        ))
        .await,
        200
    );
    let handoff = w
        .agent
        .events()
        .await
        .into_iter()
        .rev()
        .find(|e| e["kind"] == "handoff")
        .map(|e| e["data"].clone())
        .expect("the chat is queued");
    assert_eq!(handoff["status"], "pending");
    assert_eq!(handoff["title"], "Dana Reyes on WhatsApp");
    let conversation = handoff["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_string();

    let (status_code, answer) = w
        .agent
        .post(
            &format!("/conversations/{conversation}/messages"),
            json!({"txn_id": "r1", "text": "Looking into it now"}),
        )
        .await;
    assert_eq!(status_code, 200, "{answer}");
    // Taking the chat by replying tells the customer who has it (the channel's assign message).
    w.wait_for_sends(2).await;
    assert_eq!(
        w.graph.texts(),
        [
            "You have been assigned to our agent Alice.",
            "Looking into it now"
        ]
    );
    let sent = &w.graph.accepted()[1];
    assert_eq!(sent["to"], "15557654321");
    assert_eq!(sent["type"], "text");
    w.agent
        .wait_for_message("Looking into it now", |m| m["status"] == "sent")
        .await;

    // Meta reports read before delivered: the message stays read.
    assert_eq!(w.post(&status("wamid.fake2", "read", None)).await, 200);
    assert_eq!(w.post(&status("wamid.fake2", "delivered", None)).await, 200);
    assert_eq!(w.post(&status("wamid.fake2", "delivered", None)).await, 200);
    let reply = w
        .agent
        .wait_for_message("Looking into it now", |m| m["status"] == "read")
        .await;
    assert_eq!(reply["status"], "read");
    assert_eq!(
        w.graph
            .texts()
            .iter()
            .filter(|t| *t == "Looking into it now")
            .count(),
        1,
        "sent exactly once"
    );
    assert!(
        w.graph.violations().is_empty(),
        "{:?}",
        w.graph.violations()
    );

    // Resolved, the next message from the customer opens a new handoff in the same conversation.
    let handoff_id = handoff["id"].as_str().expect("id");
    let (code, _) = w
        .agent
        .post(
            &format!("/handoffs/{handoff_id}/resolve"),
            json!({"txn_id": "r2"}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        w.post(&customer_says(
            "wamid.c2",
            "15557654321",
            "Dana Reyes",
            "one more thing"
        ))
        .await,
        200
    );
    let handoffs: std::collections::BTreeSet<String> = w
        .agent
        .events()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "handoff" && e["data"]["conversation_id"] == conversation.as_str())
        .filter_map(|e| e["data"]["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(handoffs.len(), 2, "{handoffs:?}");
}

#[tokio::test]
async fn metas_refusals_reach_the_agent_and_a_refused_token_stops_the_number_until_fixed() {
    let w = world().await;
    let conversation = w.customer_opens("wamid.c1", "hi").await;
    let handoff = w
        .agent
        .events()
        .await
        .into_iter()
        .find(|e| e["kind"] == "handoff")
        .and_then(|e| e["data"]["id"].as_str().map(str::to_string))
        .expect("queued");
    let (code, _) = w
        .agent
        .post(
            &format!("/handoffs/{handoff}/assign"),
            json!({"txn_id": "take"}),
        )
        .await;
    assert_eq!(code, 200);
    w.wait_for_sends(1).await; // the assign message
    let say = |text: &'static str, txn: &'static str| {
        let path = format!("/conversations/{conversation}/messages");
        let agent = &w.agent;
        async move {
            agent
                .post(&path, json!({"txn_id": txn, "text": text}))
                .await
        }
    };

    // 131047 (the window closed on Meta's side): failed, with the reason, never retried.
    w.graph.fail_next(400, 131047);
    assert_eq!(say("first try", "t1").await.0, 200);
    let failed = w
        .agent
        .wait_for_message("first try", |m| m["status"] == "failed")
        .await;
    assert!(
        failed["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("24-hour window"),
        "{failed}"
    );

    // 131026 (undeliverable) arrives asynchronously as a failed status.
    assert_eq!(say("second", "t2").await.0, 200);
    w.wait_for_sends(2).await;
    w.agent
        .wait_for_message("second", |m| m["status"] == "sent")
        .await;
    assert_eq!(
        w.post(&status("wamid.fake2", "failed", Some(131026))).await,
        200
    );
    let undeliverable = w
        .agent
        .wait_for_message("second", |m| m["status"] == "failed")
        .await;
    assert!(
        undeliverable["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("could not deliver"),
        "{undeliverable}"
    );

    // 130429 (throughput): retried, and goes through.
    w.graph.fail_next(429, 130429);
    assert_eq!(say("third", "t3").await.0, 200);
    w.wait_for_sends(3).await;
    w.agent
        .wait_for_message("third", |m| m["status"] == "sent")
        .await;

    // 190 (the token expired): the number is marked broken for admins, nothing goes out…
    w.graph.fail_next(401, 190);
    assert_eq!(say("fourth", "t4").await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, listed, _) = support::hub_cli(&["whatsapp", "list", "--data", w.data.path()], "");
        if listed.contains("BROKEN") {
            assert!(listed.contains("access token"), "{listed}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the number was never marked broken: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts = w.graph.attempts();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        w.graph.attempts(),
        attempts,
        "nothing is retried while the token is refused"
    );

    // …until an admin sets a new token: then the waiting message goes, once.
    w.graph.expect_token("EAAG-new-token");
    let (ok, _, err) = support::hub_cli(
        &[
            "whatsapp",
            "set",
            "--data",
            w.data.path(),
            "--channel",
            "Support line",
            "--secrets-stdin",
        ],
        &format!("{APP_SECRET}\nEAAG-new-token\n"),
    );
    assert!(ok, "{err}");
    w.wait_for_sends(4).await;
    w.agent
        .wait_for_message("fourth", |m| m["status"] == "sent")
        .await;
    assert_eq!(
        w.graph.texts(),
        [
            "You have been assigned to our agent Alice.",
            "second",
            "third",
            "fourth"
        ]
    );
    assert!(
        w.graph.violations().is_empty(),
        "{:?}",
        w.graph.violations()
    );
}

#[tokio::test]
async fn a_reply_queued_when_the_hub_is_killed_reaches_the_customer_once_after_a_restart() {
    let mut w = world().await;
    let conversation = w.customer_opens("wamid.k1", "still waiting").await;
    // Meta is over its throughput: the reply waits for a retry, and the hub dies meanwhile.
    w.graph.fail_next(429, 130429);
    w.graph.fail_next(429, 130429);
    w.agent.reply(&conversation, "On its way").await;
    support::eventually(
        Duration::from_secs(10),
        || w.graph.attempts() >= 2,
        || "the first sends never happened".into(),
    )
    .await;
    let port = w.hub.port;
    w.hub.kill();
    w.hub = HubProcess::start(&w.data, port);
    // (A call cut off by the kill counts as uncertain and is left to the agent, never repeated.)
    support::eventually(
        Duration::from_secs(20),
        || w.graph.texts().iter().any(|t| t == "On its way"),
        || format!("only {:?} reached WhatsApp", w.graph.texts()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.graph
            .texts()
            .iter()
            .filter(|t| *t == "On its way")
            .count(),
        1,
        "{:?}",
        w.graph.texts()
    );
}

#[tokio::test]
async fn after_24_hours_of_silence_free_text_is_refused_with_the_reason() {
    let w = world().await;
    assert_eq!(
        w.post(&customer_said_days_ago(2, "wamid.old", "are you there?"))
            .await,
        200
    );
    let conversation = w.message_from_customer("are you there?").await["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_string();
    let (code, answer) = w
        .agent
        .post(
            &format!("/conversations/{conversation}/messages"),
            json!({"txn_id": "late", "text": "sorry!"}),
        )
        .await;
    assert_eq!(code, 409, "{answer}");
    assert_eq!(answer["code"], "window_closed");
    assert!(w.graph.accepted().is_empty());
}

#[tokio::test]
async fn with_handoff_phrases_only_a_matching_message_queues_the_chat_and_the_auto_reply_goes_out()
{
    let w = world().await;
    let (ok, _, err) = support::hub_cli(
        &[
            "whatsapp",
            "set",
            "--data",
            w.data.path(),
            "--channel",
            "Support line",
            "--handoff-phrase",
            "hablar con un agente",
            "--auto-reply",
            "An agent will be with you shortly.",
        ],
        "",
    );
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_millis(5500)).await; // the hub reads settings at most 5 s old
    assert_eq!(
        w.post(&customer_says(
            "wamid.p1",
            "15550000001",
            "Eve",
            "just browsing"
        ))
        .await,
        200
    );
    let handoffs = |events: &[Value]| events.iter().filter(|e| e["kind"] == "handoff").count();
    assert_eq!(handoffs(&w.agent.events().await), 0);
    assert_eq!(
        w.post(&customer_says(
            "wamid.p2",
            "15550000001",
            "Eve",
            "Quiero HABLAR con un agénte"
        ))
        .await,
        200
    );
    assert_eq!(handoffs(&w.agent.events().await), 1);
    w.wait_for_sends(1).await;
    assert_eq!(w.graph.texts(), ["An agent will be with you shortly."]);
}

#[tokio::test]
async fn an_admin_connects_and_removes_a_number_over_the_api_and_never_sees_a_secret_again() {
    let w = world().await;
    w.data.add_agent("root@example.com", "Root", "admin");
    let admin = AgentSession::sign_in(&w.hub, "root@example.com").await;
    let (code, added) = admin
        .post(
            "/admin/whatsapp",
            json!({"name": "Sales line", "phone_number_id": "5550001", "verify_token": "vt2",
                   "app_secret": "secret-two", "access_token": "token-two", "graph_url": w.graph.url()}),
        )
        .await;
    assert_eq!(code, 200, "{added}");
    let path = added["webhook_path"]
        .as_str()
        .expect("webhook path")
        .to_string();
    assert!(path.contains("/whatsapp"));
    let (_, listed) = admin.get("/admin/channels").await;
    let text = listed.to_string();
    assert!(
        text.contains("Sales line") && text.contains("\"kind\":\"whatsapp\""),
        "{text}"
    );
    for secret in ["secret-two", "token-two", APP_SECRET, TOKEN] {
        assert!(!text.contains(secret), "a secret was shown: {text}");
    }
    let agent_refused = w.agent.post("/admin/whatsapp", json!({})).await.0;
    assert_eq!(agent_refused, 403, "only admins connect numbers");

    let id = added["id"].as_str().expect("id");
    let removed = admin
        .http
        .delete(format!("{}/api/v1/admin/whatsapp/{id}", admin.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .expect("delete");
    assert_eq!(removed.status().as_u16(), 200);
    let verify = w
        .http
        .get(format!(
            "{}{path}?hub.mode=subscribe&hub.challenge=1&hub.verify_token=vt2",
            w.hub.url()
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(
        verify.status().as_u16(),
        404,
        "a removed number takes no webhooks"
    );
}

#[tokio::test]
async fn opening_a_chat_marks_the_customers_messages_read_once() {
    let w = world().await;
    assert_eq!(
        w.post(&customer_says("wamid.r1", "15557654321", "Dana", "first"))
            .await,
        200
    );
    let conversation = w.customer_opens("wamid.r2", "second").await;
    for txn in ["read-1", "read-2"] {
        let (code, answer) = w
            .agent
            .post(
                &format!("/conversations/{conversation}/read"),
                json!({"txn_id": txn}),
            )
            .await;
        assert_eq!(code, 200, "{answer}");
    }
    support::eventually(
        Duration::from_secs(20),
        || !w.graph.read_receipts().is_empty(),
        || "no read receipt reached WhatsApp".into(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.graph.read_receipts(),
        ["wamid.r2"],
        "the newest message, once"
    );
    assert!(
        w.graph.violations().is_empty(),
        "{:?}",
        w.graph.violations()
    );
}

#[tokio::test]
async fn after_the_window_an_agent_sends_an_approved_template_with_its_parameters() {
    let w = world().await;
    let (ok, _, err) = support::hub_cli(
        &[
            "whatsapp",
            "set",
            "--data",
            w.data.path(),
            "--channel",
            "Support line",
            "--waba-id",
            "9990001",
        ],
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(
        w.post(&customer_said_days_ago(2, "wamid.t-old", "any news?"))
            .await,
        200
    );
    let conversation = w.message_from_customer("any news?").await["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_string();
    tokio::time::sleep(Duration::from_millis(5500)).await; // the hub reads settings at most 5 s old
    let listed: Value = w
        .agent
        .http
        .get(format!(
            "{}/api/v1/conversations/{conversation}/templates",
            w.agent.base
        ))
        .bearer_auth(&w.agent.token)
        .send()
        .await
        .expect("templates")
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed,
        json!([{"name": "order_update", "language": "en_US",
                "body": "Hello {{1}}, your order {{2}} is on its way.", "parameters": 2}]),
        "only approved templates"
    );
    let (code, answer) = w
        .agent
        .post(
            &format!("/conversations/{conversation}/messages"),
            json!({"txn_id": "tpl", "type": "template", "payload": {
                "name": "order_update", "language": "en_US", "parameters": ["Dana", "#1234"],
                "text": "Hello Dana, your order #1234 is on its way."}}),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    support::eventually(
        Duration::from_secs(20),
        || w.graph.accepted().iter().any(|m| m["type"] == "template"),
        || format!("no template reached WhatsApp: {:?}", w.graph.accepted()),
    )
    .await;
    let sent = w
        .graph
        .accepted()
        .into_iter()
        .find(|m| m["type"] == "template")
        .expect("template");
    assert_eq!(sent["template"]["name"], "order_update");
    assert_eq!(sent["template"]["language"]["code"], "en_US");
    assert_eq!(
        sent["template"]["components"][0]["parameters"],
        json!([{"type": "text", "text": "Dana"}, {"type": "text", "text": "#1234"}])
    );
    w.agent
        .wait_for_message("Hello Dana, your order #1234 is on its way.", |m| {
            m["status"] == "sent"
        })
        .await;
    assert!(
        w.graph.violations().is_empty(),
        "{:?}",
        w.graph.violations()
    );

    // Another Business Account: its own list is asked for at once, never the old one's from the
    // cache (the fake knows only 9990001's, so this one is refused).
    let (ok, _, err) = support::hub_cli(
        &[
            "whatsapp",
            "set",
            "--data",
            w.data.path(),
            "--channel",
            "Support line",
            "--waba-id",
            "9990002",
        ],
        "",
    );
    assert!(ok, "{err}");
    let other = w
        .agent
        .http
        .get(format!(
            "{}/api/v1/conversations/{conversation}/templates",
            w.agent.base
        ))
        .bearer_auth(&w.agent.token)
        .send()
        .await
        .expect("templates");
    assert_ne!(
        other.status().as_u16(),
        200,
        "not the old account's templates"
    );
}

#[tokio::test]
async fn a_customers_photo_is_fetched_once_checked_and_served_only_to_signed_in_agents() {
    use base64_free::encode_base64;
    let w = world().await;
    let photo: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    w.graph.add_media("media-photo", "image/jpeg", &photo);
    w.graph
        .add_media("media-bad", "image/jpeg", b"not what was announced");
    let image = |wamid: &str, media: &str, sha: &str| {
        let mut n = customer_says(wamid, "15557654321", "Dana", "unused");
        n["entry"][0]["changes"][0]["value"]["messages"][0] = json!({
            "from": "15557654321", "id": wamid, "timestamp": chrono::Utc::now().timestamp().to_string(),
            "type": "image", "image": {"id": media, "mime_type": "image/jpeg", "sha256": sha, "caption": format!("photo {media}")}
        });
        n
    };
    use sha2::Digest;
    let good_sha = encode_base64(&sha2::Sha256::digest(&photo));
    assert_eq!(
        w.post(&image("wamid.img1", "media-photo", &good_sha)).await,
        200
    );
    assert_eq!(
        w.post(&image("wamid.img2", "media-bad", &good_sha)).await,
        200
    );
    let photo_id = w.message_id("[image] photo media-photo").await;
    let url = format!("{}/api/v1/media/{photo_id}", w.hub.url());
    let anonymous = w.http.get(&url).send().await.expect("get");
    assert_eq!(anonymous.status().as_u16(), 401);
    for _ in 0..2 {
        let got = w
            .http
            .get(&url)
            .bearer_auth(&w.agent.token)
            .send()
            .await
            .expect("get");
        assert_eq!(got.status().as_u16(), 200);
        assert_eq!(got.headers()["content-type"], "image/jpeg");
        assert_eq!(got.bytes().await.expect("bytes").as_ref(), photo.as_slice());
    }
    assert_eq!(
        w.graph.downloads(),
        1,
        "fetched once, then served from the hub's storage"
    );
    let bad_id = w.message_id("[image] photo media-bad").await;
    let bad = w
        .http
        .get(format!("{}/api/v1/media/{bad_id}", w.hub.url()))
        .bearer_auth(&w.agent.token)
        .send()
        .await
        .expect("get");
    assert_eq!(bad.status().as_u16(), 503);
    assert!(bad.text().await.expect("text").contains("checksum"));
}

#[tokio::test]
async fn an_agent_sends_a_photo_from_their_computer_quoting_the_customer_and_reacts_to_a_message() {
    let w = world().await;
    assert_eq!(
        w.post(&customer_says(
            "wamid.q1",
            "15557654321",
            "Dana",
            "can I have my receipt?"
        ))
        .await,
        200
    );
    let question = w.message_id("can I have my receipt?").await;
    let conversation = w.message_from_customer("can I have my receipt?").await["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_string();
    let upload = |name: &str, mime: Option<&str>, bytes: Vec<u8>, signed_in: bool| {
        let mut request = w
            .http
            .post(format!("{}/api/v1/uploads?filename={name}", w.hub.url()))
            .body(bytes);
        if let Some(mime) = mime {
            request = request.header("content-type", mime);
        }
        if signed_in {
            request = request.bearer_auth(&w.agent.token);
        }
        async move {
            let answer = request.send().await.expect("upload");
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let png: Vec<u8> = [b"\x89PNG\r\n\x1a\n".as_slice(), &[7u8; 3000]].concat();
    assert_eq!(
        upload("r.png", Some("image/png"), png.clone(), false)
            .await
            .0,
        401
    );
    assert_eq!(upload("r.png", None, png.clone(), true).await.0, 400);
    let (status, receipt) = upload("receipt.png", Some("image/png"), png.clone(), true).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["size"], png.len());
    let (_, pdf) = upload(
        "terms.pdf",
        Some("application/pdf"),
        b"%PDF-1.4 terms".to_vec(),
        true,
    )
    .await;

    let path = format!("/conversations/{conversation}/messages");
    let send = |txn: &str, kind: &str, payload: Value| {
        w.agent.post(
            &path,
            json!({"txn_id": txn, "type": kind, "payload": payload}),
        )
    };
    // What WhatsApp would refuse is refused before it is queued, with the reason.
    let (code, answer) = send(
        "bad1",
        "image",
        json!({"upload": pdf["upload"], "mime_type": "application/pdf", "filename": "terms.pdf"}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        answer
            .to_string()
            .contains("send this application/pdf as a file"),
        "{answer}"
    );
    let (code, _) = send(
        "bad2",
        "image",
        json!({"upload": "ab".repeat(32), "mime_type": "image/png", "filename": "x.png"}),
    )
    .await;
    assert_eq!(code, 400, "a file never uploaded");
    let (_, zip) = upload(
        "logs.zip",
        Some("application/zip"),
        b"PK\x03\x04".to_vec(),
        true,
    )
    .await;
    let (code, answer) = send(
        "bad3",
        "file",
        json!({"upload": zip["upload"], "mime_type": "application/zip", "filename": "logs.zip"}),
    )
    .await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("PDF, text, Word, Excel or PowerPoint"),
        "{answer}"
    );

    // Meta fails the first upload for a moment (131053): the hub uploads again, and sends once.
    w.graph.fail_next_upload(131053);
    let (code, answer) = send(
        "photo",
        "image",
        json!({"upload": receipt["upload"], "mime_type": "image/png", "filename": "receipt.png",
               "title": "Your receipt", "reply_to": question}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = send(
        "doc",
        "file",
        json!({"upload": pdf["upload"], "mime_type": "application/pdf", "filename": "terms.pdf"}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = send(
        "react",
        "reaction",
        json!({"message_id": question, "emoji": "👍"}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");

    // The assign message, the photo, the document and the reaction.
    w.wait_for_sends(4).await;
    let sent = w.graph.accepted();
    let photo = &sent[1];
    assert_eq!(photo["type"], "image");
    assert_eq!(photo["image"]["caption"], "Your receipt");
    assert_eq!(
        photo["context"]["message_id"], "wamid.q1",
        "the photo quotes the question"
    );
    let document = &sent[2];
    assert_eq!(document["type"], "document");
    assert_eq!(document["document"]["filename"], "terms.pdf");
    assert_eq!(
        sent[3]["reaction"],
        json!({"message_id": "wamid.q1", "emoji": "👍"})
    );
    let uploads = w.graph.uploads();
    assert_eq!(uploads.len(), 2, "each file reached WhatsApp once");
    assert_eq!(
        uploads[0],
        (
            "image/png".to_string(),
            "receipt.png".to_string(),
            png.clone()
        )
    );
    assert_eq!(photo["image"]["id"], "up-1");
    assert_eq!(document["document"]["id"], "up-2");
    assert!(
        w.graph.violations().is_empty(),
        "{:?}",
        w.graph.violations()
    );

    // The agent sees their own photo in the conversation, served by the hub.
    let mine = w
        .agent
        .wait_for_message("Your receipt", |m| m["status"] == "sent")
        .await;
    let own = w
        .http
        .get(format!(
            "{}/api/v1/media/{}",
            w.hub.url(),
            mine["id"].as_str().expect("id")
        ))
        .bearer_auth(&w.agent.token)
        .send()
        .await
        .expect("get");
    assert_eq!(own.status().as_u16(), 200);
    assert_eq!(own.headers()["content-type"], "image/png");
    assert_eq!(own.bytes().await.expect("bytes").as_ref(), png.as_slice());
    w.agent
        .wait_for_message("[reacted 👍]", |m| m["status"] == "sent")
        .await;

    // Only the customer's messages can be reacted to.
    let (code, _) = send(
        "bad4",
        "reaction",
        json!({"message_id": mine["id"], "emoji": "👍"}),
    )
    .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn a_reply_whose_answer_was_lost_is_settled_by_the_status_meta_reports_for_it() {
    let w = world_with(&["--delivery-timeout", "1"]).await;
    let conversation = w.customer_opens("wamid.u1", "is it shipped?").await;
    // The assign message goes through; the reply reaches WhatsApp but its answer never comes back.
    w.agent.reply(&conversation, "Hi Dana").await;
    w.wait_for_sends(1).await;
    w.graph.hang_next();
    w.agent.reply(&conversation, "Yes, this morning").await;
    let reply = w
        .agent
        .wait_for_message("Yes, this morning", |m| m["status"] == "uncertain")
        .await;
    // Meta's status names the message it was sent for: the agent sees it was delivered.
    let sent = w.graph.accepted();
    let at = sent
        .iter()
        .position(|m| m["text"]["body"] == "Yes, this morning")
        .expect("sent");
    let body = &sent[at];
    assert_eq!(body["biz_opaque_callback_data"], reply["id"]);
    // (The fake numbers its wamids in order; the hub never heard this one.)
    let mut delivered = status(&format!("wamid.fake{}", at + 1), "delivered", None);
    delivered["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] =
        body["biz_opaque_callback_data"].clone();
    assert_eq!(w.post(&delivered).await, 200);
    let settled = w
        .agent
        .wait_for_message("Yes, this morning", |m| m["status"] == "delivered")
        .await;
    assert_eq!(settled["status"], "delivered");
    // A callback naming a customer's message (or nothing the hub sent) changes nothing.
    let customer_message = w.message_id("is it shipped?").await;
    let mut forged = status("wamid.forged", "read", None);
    forged["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] =
        json!(customer_message);
    assert_eq!(w.post(&forged).await, 200);
    assert_eq!(
        w.message_from_customer("is it shipped?").await["status"],
        "received"
    );
}

#[tokio::test]
async fn a_delivered_report_that_beats_the_sends_own_answer_is_never_undone() {
    let w = world_with(&["--delivery-timeout", "1"]).await;
    let conversation = w.customer_opens("wamid.r1", "hello?").await;
    w.agent.reply(&conversation, "Hi").await;
    w.wait_for_sends(2).await;
    // WhatsApp takes the next reply but answers late; its "delivered" report comes first.
    w.graph.hang_next();
    w.agent.reply(&conversation, "Here it is").await;
    w.wait_for_sends(3).await;
    let body = w.graph.accepted()[2].clone();
    let mut delivered = status("wamid.fake3", "delivered", None);
    delivered["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] =
        body["biz_opaque_callback_data"].clone();
    assert_eq!(w.post(&delivered).await, 200);
    w.agent
        .wait_for_message("Here it is", |m| m["status"] == "delivered")
        .await;
    // The hub then gives up waiting for the answer: the message stays delivered.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let message = w.agent.wait_for_message("Here it is", |_| true).await;
    assert_eq!(message["status"], "delivered", "{message}");
}

#[tokio::test]
async fn a_file_meta_keeps_refusing_fails_after_five_tries_with_the_reason() {
    let w = world().await;
    let conversation = w.customer_opens("wamid.x1", "send me the form").await;
    let receipt: Value = w
        .http
        .post(format!("{}/api/v1/uploads?filename=form.pdf", w.hub.url()))
        .bearer_auth(&w.agent.token)
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.4 a form".to_vec())
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("json");
    for _ in 0..5 {
        w.graph.fail_next_upload(131053);
    }
    let (code, answer) = w
        .agent
        .post(
            &format!("/conversations/{conversation}/messages"),
            json!({"txn_id": "x1", "type": "file", "payload": {"upload": receipt["upload"],
                   "mime_type": "application/pdf", "filename": "form.pdf", "title": "The form"}}),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    let failed = w
        .agent
        .wait_for_message("The form", |m| m["status"] == "failed")
        .await;
    assert!(
        failed["status_reason"]
            .as_str()
            .is_some_and(|r| r.contains("refused the file 5 times")),
        "{failed}"
    );
    assert!(w.graph.uploads().is_empty(), "nothing was taken");
    assert!(w.graph.accepted().iter().all(|m| m["type"] != "document"));
}

#[tokio::test]
async fn a_customer_who_changes_number_is_answered_on_the_new_one_in_the_same_conversation() {
    let w = world().await;
    assert_eq!(
        w.post(&customer_says(
            "wamid.n1",
            "15557654321",
            "Dana",
            "hello from my old phone"
        ))
        .await,
        200
    );
    let conversation =
        w.message_from_customer("hello from my old phone").await["conversation_id"].clone();
    let mut changed = customer_says("wamid.n2", "15557654321", "Dana", "unused");
    changed["entry"][0]["changes"][0]["value"]["messages"][0] = json!({
        "from": "15557654321", "id": "wamid.n2", "timestamp": chrono::Utc::now().timestamp().to_string(),
        "type": "system",
        "system": {"body": "User A changed from 15557654321 to 15550009999", "wa_id": "15550009999", "type": "user_changed_number"}
    });
    assert_eq!(w.post(&changed).await, 200);
    assert_eq!(
        w.post(&customer_says(
            "wamid.n3",
            "15550009999",
            "Dana",
            "now on my new phone"
        ))
        .await,
        200
    );
    assert_eq!(
        w.message_from_customer("now on my new phone").await["conversation_id"],
        conversation,
        "the new number's messages join the same conversation"
    );
    let (code, answer) = w
        .agent
        .post(
            &format!(
                "/conversations/{}/messages",
                conversation.as_str().expect("id")
            ),
            json!({"txn_id": "n1", "text": "Got it"}),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    w.wait_for_sends(2).await;
    assert!(
        w.graph.accepted().iter().all(|m| m["to"] == "15550009999"),
        "{:?}",
        w.graph.accepted()
    );
    // The old number now belongs to someone else: they are a new customer, with their own chat.
    assert_eq!(
        w.post(&customer_says(
            "wamid.n4",
            "15557654321",
            "Sam",
            "hi, new phone who dis"
        ))
        .await,
        200
    );
    assert_ne!(
        w.message_from_customer("hi, new phone who dis").await["conversation_id"],
        conversation,
        "a stranger never lands in Dana's conversation"
    );
}

/// Base64 for the test's own digests (the hub accepts Meta's sha256 in base64 or hex).
mod base64_free {
    pub fn encode_base64(bytes: &[u8]) -> String {
        const TABLE: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
