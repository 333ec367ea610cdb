//! Any bot hands off through the bot API: a real `baton-hub` process set up with `baton-hub bot
//! add`, a bot playing its part over HTTP, and a fake bot server on loopback that checks the
//! signature of every event the hub sends back.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::fake_bot::FakeBot;
use support::{AgentSession, HubData, HubProcess, AGENT_EMAIL};

struct World {
    data: HubData,
    hub: HubProcess,
    bot: FakeBot,
    token: String,
    agent: AgentSession,
    http: reqwest::Client,
}

/// Connects a bot with the CLI, as an admin would: the token and the secret are the last two lines.
fn connect(data: &HubData, bot: &FakeBot) -> (String, String) {
    let (ok, out, err) = support::hub_cli(
        &[
            "bot",
            "add",
            "--data",
            data.path(),
            "--name",
            "Rasa bot",
            "--events-url",
            &bot.url(),
        ],
        "",
    );
    assert!(ok, "bot add failed: {err}");
    let lines: Vec<&str> = out.lines().collect();
    let token = lines[lines.len() - 2]
        .strip_prefix("token: ")
        .expect("token line")
        .to_string();
    let secret = lines[lines.len() - 1]
        .strip_prefix("signing-secret: ")
        .expect("signing-secret line")
        .to_string();
    (token, secret)
}

async fn world() -> World {
    world_with(&[], &[]).await
}

/// A world whose bot is set with `bot set ARGS` and whose hub runs with `flags`.
async fn world_with(bot_set: &[&str], flags: &[&str]) -> World {
    let bot = FakeBot::start().await;
    let data = HubData::new();
    let (token, secret) = connect(&data, &bot);
    bot.trust(&secret);
    if !bot_set.is_empty() {
        let mut args = vec!["bot", "set", "--data", data.path(), "Rasa bot"];
        args.extend_from_slice(bot_set);
        let (ok, _, err) = support::hub_cli(&args, "");
        assert!(ok, "bot set failed: {err}");
    }
    let hub = HubProcess::start_with(&data, support::free_port(), flags);
    let agent = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    World {
        data,
        hub,
        bot,
        token,
        agent,
        http: reqwest::Client::new(),
    }
}

impl World {
    async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        self.call_as(&self.token, path, body).await
    }

    async fn call_as(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let answer = self
            .http
            .post(format!("{}/bot/v1{path}", self.hub.url()))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("bot call");
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    async fn wait_for_events(&self, n: usize) {
        support::eventually(
            Duration::from_secs(20),
            || self.bot.events().len() >= n,
            || format!("the bot heard only {:?}", self.bot.events()),
        )
        .await;
    }
}

/// Twenty messages of a bot conversation, oldest first.
fn history() -> Vec<Value> {
    (0..20)
        .map(|i| {
            let author = if i % 2 == 0 { "user" } else { "bot" };
            json!({"author": author, "type": "text", "payload": {"text": format!("line {i} from the {author}")},
                   "at": (chrono::Utc::now() - chrono::TimeDelta::minutes(20 - i)).to_rfc3339()})
        })
        .collect()
}

#[tokio::test]
async fn a_bot_hands_over_with_its_history_and_hears_the_agent_take_it_reply_and_resolve_in_order()
{
    let w = world().await;
    let start = json!({
        "user": {"id": "rasa-user-42", "name": "Zoë Martin", "email": "zoe@example.com", "attributes": {"plan": "gold"}},
        "title": "Refund over the limit", "reason": "asked for a human", "priority": "high",
        "history": history(), "idempotency_key": "conv-42-handoff-1"
    });
    let (code, started) = w.call("/handoffs", start.clone()).await;
    assert_eq!(code, 200, "{started}");
    let handoff_id = started["handoff_id"]
        .as_str()
        .expect("handoff_id")
        .to_string();
    let conversation = started["conversation_id"]
        .as_str()
        .expect("conversation_id")
        .to_string();
    // The same key again: the same handoff, nothing new.
    let (code, again) = w.call("/handoffs", start).await;
    assert_eq!(code, 200);
    assert_eq!(again, started);

    // The agent sees the whole bot conversation, in order, and the handoff's urgency.
    let events = w.agent.events().await;
    let texts: Vec<String> = events
        .iter()
        .filter(|e| e["kind"] == "message" && e["data"]["conversation_id"] == conversation.as_str())
        .filter_map(|e| e["data"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(texts.len(), 20, "{texts:?}");
    assert_eq!(texts[0], "line 0 from the user");
    assert_eq!(texts[19], "line 19 from the bot");
    let handoffs: Vec<&Value> = events.iter().filter(|e| e["kind"] == "handoff").collect();
    assert_eq!(handoffs.len(), 1, "one handoff for two identical calls");
    assert_eq!(handoffs[0]["data"]["priority"], "high");
    assert_eq!(handoffs[0]["data"]["description"], "asked for a human");
    let contact = events
        .iter()
        .find(|e| e["kind"] == "contact")
        .expect("contact");
    assert_eq!(contact["data"]["name"], "Zoë Martin");
    assert_eq!(contact["data"]["attributes"]["plan"], "gold");

    // What the customer writes meanwhile reaches the agent.
    let (code, relayed) = w
        .call(
            &format!("/conversations/{conversation}/messages"),
            json!({"type": "text", "payload": {"text": "are you there?"}}),
        )
        .await;
    assert_eq!(code, 200, "{relayed}");
    w.agent
        .wait_for_message("are you there?", |m| m["author"] == "end_user")
        .await;

    // The agent takes it, answers and resolves it: the bot hears each, once, in order, signed.
    w.agent
        .act(&format!("/handoffs/{handoff_id}/assign"), json!({}))
        .await;
    w.agent
        .act(
            &format!("/conversations/{conversation}/messages"),
            json!({"text": "Hi Zoë, I can do that refund"}),
        )
        .await;
    w.agent
        .act(
            &format!("/handoffs/{handoff_id}/resolve"),
            json!({"label": "refunded"}),
        )
        .await;
    w.wait_for_events(4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard = w.bot.events();
    let kinds: Vec<&str> = heard.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "handoff.assigned",
            "agent.message",
            "agent.message",
            "handoff.closed"
        ],
        "{heard:#?}"
    );
    assert_eq!(heard[0]["data"]["agent"]["name"], "Alice");
    assert_eq!(heard[0]["data"]["user_id"], "rasa-user-42");
    assert_eq!(
        heard[1]["data"]["payload"]["text"],
        "You have been assigned to our agent Alice."
    );
    assert_eq!(
        heard[1]["data"]["agent"]["name"], "Alice",
        "the notice goes out in her name"
    );
    assert_eq!(
        heard[2]["data"]["payload"]["text"],
        "Hi Zoë, I can do that refund"
    );
    assert_eq!(heard[2]["data"]["type"], "text");
    assert_eq!(heard[3]["data"]["status"], "resolved");
    assert_eq!(heard[3]["data"]["label"], "refunded");
    assert_eq!(heard[3]["data"]["handoff_id"], handoff_id.as_str());
    let ids: std::collections::BTreeSet<&str> =
        heard.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 4, "each event has its own id");
    assert!(heard.iter().all(|e| e["created_at"].is_string()));
    assert_eq!(w.bot.forged(), 0, "every call was signed");
    w.agent
        .wait_for_message("Hi Zoë, I can do that refund", |m| m["status"] == "sent")
        .await;

    // The next handoff for the same user lands in the same conversation, with what came before;
    // history the bot sends again (by its ids) is stored once.
    let with_ids = |ids: std::ops::Range<i32>| -> Vec<Value> {
        ids.map(|i| json!({"author": "user", "type": "text", "id": format!("msg-{i}"), "payload": {"text": format!("numbered {i}")}}))
            .collect()
    };
    let (code, next) = w
        .call(
            "/handoffs",
            json!({"user": {"id": "rasa-user-42"}, "history": with_ids(0..3)}),
        )
        .await;
    assert_eq!(code, 200, "{next}");
    assert_eq!(next["conversation_id"], conversation.as_str());
    assert_ne!(next["handoff_id"], handoff_id.as_str());
    // The bot ends it itself: it is cancelled, and nothing is sent back to it.
    let (code, closed) = w
        .call(
            &format!(
                "/handoffs/{}/close",
                next["handoff_id"].as_str().expect("id")
            ),
            json!({"reason": "the user left"}),
        )
        .await;
    assert_eq!(code, 200, "{closed}");
    assert_eq!(closed["status"], "cancelled");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.bot.events().len(), 4);

    let (code, third) = w
        .call(
            "/handoffs",
            json!({"user": {"id": "rasa-user-42"}, "history": with_ids(0..5)}),
        )
        .await;
    assert_eq!(code, 200, "{third}");
    let numbered: Vec<String> = w
        .agent
        .events()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "message")
        .filter_map(|e| e["data"]["text"].as_str().map(str::to_string))
        .filter(|t| t.starts_with("numbered "))
        .collect();
    assert_eq!(
        numbered,
        [
            "numbered 0",
            "numbered 1",
            "numbered 2",
            "numbered 3",
            "numbered 4"
        ],
        "each message of the history once"
    );
}

#[tokio::test]
async fn bad_calls_get_a_clear_error_and_change_nothing() {
    let w = world().await;
    let ok = json!({"user": {"id": "u1"}, "history": []});
    assert_eq!(
        w.call_as("not-a-token", "/handoffs", ok.clone()).await.0,
        401
    );
    let anonymous = w
        .http
        .post(format!("{}/bot/v1/handoffs", w.hub.url()))
        .json(&ok)
        .send()
        .await
        .expect("post");
    assert_eq!(anonymous.status().as_u16(), 401);
    for (body, says) in [
        (json!({"user": {"id": ""}}), "user.id"),
        (
            json!({"user": {"id": "u1"}, "priority": "whenever"}),
            "whenever",
        ),
        (json!({"user": {"id": "u1"}, "colour": "red"}), "colour"),
        (
            json!({"user": {"id": "u1"}, "history": [{"author": "user", "type": "hologram", "payload": {}}]}),
            "history[0]",
        ),
        (
            json!({"user": {"id": "u1"}, "history": [{"author": "user", "type": "text", "payload": {"text": " "}}]}),
            "history[0]",
        ),
    ] {
        let (code, answer) = w.call("/handoffs", body.clone()).await;
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(answer.to_string().contains(says), "{body}: {answer}");
    }
    let (code, _) = w.call("/handoffs", json!({"user": {"id": "u1"}, "history": vec![json!({"author": "bot", "type": "text", "payload": {"text": "x"}}); 501]})).await;
    assert_eq!(code, 400, "a history of 501 messages");
    // Malformed JSON, and a conversation that is not this bot's.
    let raw = w
        .http
        .post(format!("{}/bot/v1/handoffs", w.hub.url()))
        .bearer_auth(&w.token)
        .header("content-type", "application/json")
        .body("{\"user\":")
        .send()
        .await
        .expect("post");
    assert_eq!(raw.status().as_u16(), 400);
    let (code, _) = w
        .call(
            "/conversations/t_nope/messages",
            json!({"type": "text", "payload": {"text": "hi"}}),
        )
        .await;
    assert_eq!(code, 404);
    let handoffs = w
        .agent
        .events()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "handoff")
        .count();
    assert_eq!(handoffs, 0, "nothing was stored");
}

#[tokio::test]
async fn the_served_openapi_document_describes_the_bot_api() {
    let w = world().await;
    let doc: Value = w
        .http
        .get(format!("{}/bot/v1/openapi.json", w.hub.url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/bot/v1/handoffs",
        "/bot/v1/conversations/{conversation_id}/messages",
        "/bot/v1/handoffs/{handoff_id}/close",
    ] {
        assert!(doc["paths"][path]["post"].is_object(), "{path}: {doc}");
    }
    let priority = &doc["components"]["schemas"]["Priority"]["enum"];
    assert_eq!(*priority, json!(["low", "normal", "high", "urgent"]));
}

#[tokio::test]
async fn an_event_the_bot_could_not_take_is_sent_again_with_the_same_id_even_across_a_hub_kill() {
    let mut w = world().await;
    let (_, started) = w
        .call("/handoffs", json!({"user": {"id": "u9", "name": "Ana"}}))
        .await;
    let handoff_id = started["handoff_id"].as_str().expect("id").to_string();
    // The bot is down: the first event is refused twice, and the hub is killed meanwhile.
    w.bot.go_down_for(2);
    w.agent
        .act(&format!("/handoffs/{handoff_id}/assign"), json!({}))
        .await;
    support::eventually(
        Duration::from_secs(20),
        || w.bot.calls().len() >= 2,
        || format!("the bot was called {:?}", w.bot.calls()),
    )
    .await;
    let port = w.hub.port;
    w.hub.kill();
    w.hub = HubProcess::start(&w.data, port);
    w.wait_for_events(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = w.bot.calls();
    let assigned: Vec<&Value> = calls
        .iter()
        .filter(|e| e["type"] == "handoff.assigned")
        .collect();
    assert!(assigned.len() >= 3, "{calls:#?}");
    assert!(
        assigned.iter().all(|e| e["id"] == assigned[0]["id"]),
        "the same id on every try: {assigned:#?}"
    );
    let taken = w.bot.events();
    assert_eq!(
        taken
            .iter()
            .filter(|e| e["type"] == "handoff.assigned")
            .count(),
        1,
        "taken once"
    );
    assert_eq!(taken[0]["type"], "handoff.assigned", "in order: {taken:#?}");
}

/// A WhatsApp customer's message, as Meta posts it, signed with the app secret.
async fn customer_writes(hub: &HubProcess, path: &str, wamid: &str, text: &str) -> u16 {
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1122334455667"},
            "contacts": [{"profile": {"name": "Dana"}, "wa_id": "15557654321"}],
            "messages": [{"from": "15557654321", "id": wamid, "timestamp": chrono::Utc::now().timestamp().to_string(),
                          "type": "text", "text": {"body": text}}]
        }}]}]
    }))
    .expect("json");
    reqwest::Client::new()
        .post(format!("{}{path}", hub.url()))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            support::fake_graph::meta_signature("meta-app-secret", &body),
        )
        .body(body)
        .send()
        .await
        .expect("webhook")
        .status()
        .as_u16()
}

/// A WhatsApp number with the bot in front of it; answers the world and the number's webhook path.
async fn fronted_world(graph: &support::fake_graph::FakeGraph) -> (World, String) {
    let bot = FakeBot::start().await;
    let data = HubData::new();
    let path = support::fake_graph::connect_number(
        &data,
        graph,
        "Support line",
        "meta-app-secret",
        "EAAG-token",
    );
    let (token, secret) = connect(&data, &bot);
    bot.trust(&secret);
    let (ok, _, err) = support::hub_cli(
        &[
            "whatsapp",
            "set",
            "--data",
            data.path(),
            "--channel",
            "Support line",
            "--bot",
            "Rasa bot",
        ],
        "",
    );
    assert!(ok, "{err}");
    let hub = HubProcess::start(&data, support::free_port());
    let agent = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    let w = World {
        data,
        hub,
        bot,
        token,
        agent,
        http: reqwest::Client::new(),
    };
    (w, path)
}

#[tokio::test]
async fn a_bot_in_front_of_a_whatsapp_number_answers_hands_over_and_gets_the_chat_back() {
    let graph = support::fake_graph::FakeGraph::start("1122334455667", "EAAG-token").await;
    let (w, path) = fronted_world(&graph).await;
    let user_messages = || {
        w.bot
            .events()
            .into_iter()
            .filter(|e| e["type"] == "user.message")
            .collect::<Vec<_>>()
    };

    // The customer writes: the bot hears it, and no handoff opens.
    assert_eq!(
        customer_writes(&w.hub, &path, "wamid.f1", "hola, quiero cambiar mi pedido").await,
        200
    );
    w.wait_for_events(1).await;
    let heard = &user_messages()[0];
    assert_eq!(
        heard["data"]["payload"]["text"],
        "hola, quiero cambiar mi pedido"
    );
    assert_eq!(heard["data"]["user_id"], "15557654321");
    assert_eq!(heard["data"]["channel"], "whatsapp");
    let conversation = heard["data"]["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_string();
    assert!(
        w.agent
            .events()
            .await
            .iter()
            .all(|e| e["kind"] != "handoff"),
        "the bot has it"
    );

    // The bot answers through Baton, which sends it to WhatsApp.
    let (code, answer) = w
        .call(
            &format!("/conversations/{conversation}/replies"),
            json!({"type": "text", "payload": {"text": "¿Cuál es tu número de pedido?"}}),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    graph
        .wait_for_text("¿Cuál es tu número de pedido?", 15)
        .await;
    assert_eq!(graph.accepted()[0]["to"], "15557654321");

    // The customer asks for a person; the bot hands the chat over with the whole exchange.
    assert_eq!(
        customer_writes(&w.hub, &path, "wamid.f2", "quiero hablar con una persona").await,
        200
    );
    w.wait_for_events(2).await;
    let (code, started) = w
        .call(
            "/handoffs",
            json!({"user": {"id": "15557654321"}, "conversation_id": conversation, "reason": "asked for a person", "priority": "high"}),
        )
        .await;
    assert_eq!(code, 200, "{started}");
    assert_eq!(started["conversation_id"], conversation.as_str());
    let handoff_id = started["handoff_id"].as_str().expect("id").to_string();
    let events = w.agent.events().await;
    let handoff = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "handoff")
        .expect("handoff");
    assert_eq!(handoff["data"]["status"], "pending");
    assert_eq!(handoff["data"]["title"], "Dana on WhatsApp");
    let exchange: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["kind"] == "message")
        .map(|e| {
            (
                e["data"]["author"].as_str().unwrap_or("").to_string(),
                e["data"]["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        exchange.contains(&(
            "bot".to_string(),
            "¿Cuál es tu número de pedido?".to_string()
        )),
        "{exchange:?}"
    );
    assert!(
        exchange.contains(&(
            "end_user".to_string(),
            "quiero hablar con una persona".to_string()
        )),
        "{exchange:?}"
    );

    // An agent takes it while the bot's events URL is down: the customer still hears the agent at
    // once (the bot's events wait in their own queue), and the bot hears of it when it is back.
    w.bot.go_down_for(2);
    w.agent
        .act(&format!("/handoffs/{handoff_id}/assign"), json!({}))
        .await;
    graph
        .wait_for_text("You have been assigned to our agent Alice.", 5)
        .await;
    support::eventually(
        Duration::from_secs(15),
        || {
            w.bot
                .events()
                .iter()
                .any(|e| e["type"] == "handoff.assigned")
        },
        || format!("the bot heard {:?}", w.bot.events()),
    )
    .await;
    assert_eq!(
        customer_writes(&w.hub, &path, "wamid.f3", "gracias").await,
        200
    );
    let (code, _) = w
        .call(
            &format!("/conversations/{conversation}/replies"),
            json!({"type": "text", "payload": {"text": "sigo aquí"}}),
        )
        .await;
    assert_eq!(code, 409, "an agent has the chat");
    w.agent
        .act(
            &format!("/conversations/{conversation}/messages"),
            json!({"text": "Hola Dana, soy Alice"}),
        )
        .await;
    w.agent
        .act(&format!("/handoffs/{handoff_id}/resolve"), json!({}))
        .await;
    support::eventually(
        Duration::from_secs(15),
        || w.bot.events().iter().any(|e| e["type"] == "handoff.closed"),
        || format!("the bot heard {:?}", w.bot.events()),
    )
    .await;
    assert_eq!(
        user_messages().len(),
        2,
        "nothing the customer said to the agent went to the bot"
    );
    assert!(graph.texts().iter().any(|t| t == "Hola Dana, soy Alice"));

    // The chat is the bot's again.
    assert_eq!(
        customer_writes(&w.hub, &path, "wamid.f4", "una cosa más").await,
        200
    );
    w.wait_for_user_messages(3).await;
    let handoffs = || async {
        w.agent
            .events()
            .await
            .into_iter()
            .filter(|e| e["kind"] == "handoff")
            .filter_map(|e| e["data"]["id"].as_str().map(str::to_string))
            .collect::<std::collections::BTreeSet<String>>()
    };
    assert_eq!(handoffs().await.len(), 1, "no handoff opened by itself");
    assert_eq!(w.bot.forged(), 0);
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());

    // An admin removes the bot: the number's customers reach the queue by themselves again.
    let (ok, _, err) =
        support::hub_cli(&["bot", "remove", "--data", w.data.path(), "Rasa bot"], "");
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_secs(6)).await; // the hub's settings cache
    assert_eq!(
        customer_writes(&w.hub, &path, "wamid.f5", "¿hay alguien?").await,
        200
    );
    assert_eq!(
        handoffs().await.len(),
        2,
        "the chat was queued for an agent"
    );
}

impl World {
    /// The bot's `draft.decided` events, oldest first.
    fn decisions(&self) -> Vec<Value> {
        self.bot
            .events()
            .into_iter()
            .filter(|e| e["type"] == "draft.decided")
            .collect()
    }

    /// Waits until the bot has heard `n` customer messages (`user.message`).
    async fn wait_for_user_messages(&self, n: usize) {
        support::eventually(
            Duration::from_secs(15),
            || {
                self.bot
                    .events()
                    .iter()
                    .filter(|e| e["type"] == "user.message")
                    .count()
                    == n
            },
            || format!("the bot heard {:?}", self.bot.events()),
        )
        .await;
    }

    async fn wait_for_decisions(&self, n: usize) -> Vec<Value> {
        support::eventually(
            Duration::from_secs(20),
            || self.decisions().len() >= n,
            || format!("the bot heard {:?}", self.bot.events()),
        )
        .await;
        self.decisions()
    }

    /// A handoff the agent resolves, so the bot has a conversation with the customer again.
    async fn conversation_back_with_the_bot(&self) -> String {
        let (code, started) = self
            .call(
                "/handoffs",
                json!({"user": {"id": "rasa-user-7", "name": "Ana Souza"}, "history": history()}),
            )
            .await;
        assert_eq!(code, 200, "{started}");
        let handoff = started["handoff_id"].as_str().expect("id");
        self.agent
            .act(&format!("/handoffs/{handoff}/assign"), json!({}))
            .await;
        self.agent
            .act(&format!("/handoffs/{handoff}/resolve"), json!({}))
            .await;
        self.wait_for_events(2).await;
        started["conversation_id"]
            .as_str()
            .expect("conversation")
            .to_string()
    }
}

#[tokio::test]
async fn a_bots_drafts_wait_in_the_queue_and_the_bot_hears_each_decision_with_the_final_text() {
    let w = world().await;
    let conversation = w.conversation_back_with_the_bot().await;
    let heard_before = w.bot.events().len();

    // The bot's AI drafts a reply: it waits in the queue for a person, nothing goes out.
    let draft = json!({"text": "Your refund of $80 was sent today.", "priority": "high", "idempotency_key": "d-1"});
    let (code, submitted) = w
        .call(
            &format!("/conversations/{conversation}/drafts"),
            draft.clone(),
        )
        .await;
    assert_eq!(code, 200, "{submitted}");
    let (code, again) = w
        .call(&format!("/conversations/{conversation}/drafts"), draft)
        .await;
    assert_eq!(
        (code, &again),
        (200, &submitted),
        "the same key, the same draft"
    );
    let draft_id = submitted["draft_id"]
        .as_str()
        .expect("draft_id")
        .to_string();
    let handoff_id = submitted["handoff_id"]
        .as_str()
        .expect("handoff_id")
        .to_string();
    let waiting = w.agent.latest("handoff", &handoff_id).await;
    assert_eq!(waiting["status"], "pending");
    assert_eq!(waiting["title"], "Approve the bot's reply");
    assert_eq!(waiting["priority"], "high");
    assert_eq!(waiting["for_draft"], true);
    let shown = w.agent.latest("message", &draft_id).await;
    assert_eq!(shown["status"], "draft");
    assert_eq!(shown["author"], "bot");
    assert_eq!(shown["text"], "Your refund of $80 was sent today.");

    // The agent corrects the amount and approves: the bot gets the final text, signed, and is
    // told to send it itself; the draft shows as sent once the bot has it; the queue is empty.
    w.agent
        .act(
            &format!("/messages/{draft_id}/approve"),
            json!({"text": "Your refund of $85 was sent today."}),
        )
        .await;
    let decided = w.wait_for_decisions(1).await;
    assert_eq!(decided[0]["data"]["draft_id"], draft_id.as_str());
    assert_eq!(decided[0]["data"]["decision"], "approved");
    assert_eq!(
        decided[0]["data"]["text"],
        "Your refund of $85 was sent today."
    );
    assert_eq!(decided[0]["data"]["edited"], true);
    assert_eq!(decided[0]["data"]["sent_by"], "bot");
    assert_eq!(decided[0]["data"]["agent"]["name"], "Alice");
    w.agent
        .wait_for_message("Your refund of $85 was sent today.", |m| {
            m["status"] == "sent" && m["payload"]["drafted"] == "Your refund of $80 was sent today."
        })
        .await;
    let ended = w.agent.latest("handoff", &handoff_id).await;
    assert_eq!(ended["status"], "resolved");
    assert_eq!(ended["label"], "draft approved");

    // Deciding again is refused with the reason; nothing more reaches the bot.
    let (code, answer) = w
        .agent
        .post(
            &format!("/messages/{draft_id}/reject"),
            json!({"txn_id": "late-reject", "reason": "too late"}),
        )
        .await;
    assert_eq!(code, 409, "{answer}");
    assert!(answer.to_string().contains("already approved"), "{answer}");

    // The next draft is rejected with a reason: the bot hears why, the customer hears nothing.
    let (code, second) = w
        .call(
            &format!("/conversations/{conversation}/drafts"),
            json!({"text": "I can give you a 50% discount on everything!"}),
        )
        .await;
    assert_eq!(code, 200, "{second}");
    let second_id = second["draft_id"].as_str().expect("draft_id").to_string();
    w.agent
        .act(
            &format!("/messages/{second_id}/reject"),
            json!({"reason": "we don't offer that discount"}),
        )
        .await;
    let decided = w.wait_for_decisions(2).await;
    assert_eq!(decided[1]["data"]["decision"], "rejected");
    assert_eq!(decided[1]["data"]["reason"], "we don't offer that discount");
    assert!(decided[1]["data"].get("text").is_none());
    let rejected = w.agent.latest("message", &second_id).await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["status_reason"], "we don't offer that discount");

    // Drafts are the bot's business: it heard the two decisions and nothing about who looked.
    let kinds: Vec<String> = w.bot.events()[heard_before..]
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_string))
        .collect();
    assert_eq!(kinds, ["draft.decided", "draft.decided"]);
    assert_eq!(w.bot.forged(), 0);

    // A draft waits; then the bot asks for a person: the same queue item becomes a real handoff,
    // the bot hears who takes it, and when it ends the undecided draft is rejected, never sent.
    let (_, third) = w
        .call(
            &format!("/conversations/{conversation}/drafts"),
            json!({"text": "Anything else?"}),
        )
        .await;
    let third_id = third["draft_id"].as_str().expect("draft_id").to_string();
    let (code, started) = w
        .call(
            "/handoffs",
            json!({"user": {"id": "rasa-user-7"}, "reason": "asked for a person"}),
        )
        .await;
    assert_eq!(code, 200, "{started}");
    assert_eq!(started["handoff_id"], third["handoff_id"]);
    let handoff = started["handoff_id"].as_str().expect("id").to_string();
    let now_real = w.agent.latest("handoff", &handoff).await;
    assert!(now_real.get("for_draft").is_none(), "{now_real}");
    w.agent
        .act(&format!("/handoffs/{handoff}/assign"), json!({}))
        .await;
    w.agent
        .act(&format!("/handoffs/{handoff}/resolve"), json!({}))
        .await;
    let decided = w.wait_for_decisions(3).await;
    assert_eq!(decided[2]["data"]["draft_id"], third_id.as_str());
    assert_eq!(decided[2]["data"]["decision"], "rejected");
    assert_eq!(
        decided[2]["data"]["reason"],
        "the handoff ended before anyone decided"
    );
    support::eventually(
        Duration::from_secs(15),
        || w.bot.events().iter().any(|e| e["type"] == "handoff.closed"),
        || format!("the bot heard {:?}", w.bot.events()),
    )
    .await;
    let kinds: Vec<String> = w.bot.events()[heard_before..]
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        kinds,
        [
            "draft.decided",
            "draft.decided",
            "handoff.assigned",
            "agent.message", // the customer is told who took it, as with any handoff
            "handoff.closed",
            "draft.decided"
        ]
    );
    assert_eq!(
        w.agent.latest("message", &third_id).await["status"],
        "rejected"
    );

    // Bad drafts are refused with the reason.
    let (code, answer) = w
        .call(
            &format!("/conversations/{conversation}/drafts"),
            json!({"text": "   "}),
        )
        .await;
    assert_eq!(code, 400, "{answer}");
    let (code, _) = w
        .call("/conversations/cv_nope/drafts", json!({"text": "hi"}))
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn a_bot_in_front_of_a_whatsapp_number_drafts_and_only_the_approved_text_reaches_the_customer(
) {
    let graph = support::fake_graph::FakeGraph::start("1122334455667", "EAAG-token").await;
    let (w, path) = fronted_world(&graph).await;
    assert_eq!(
        customer_writes(&w.hub, &path, "wamid.d1", "¿Dónde está mi pedido 5521?").await,
        200
    );
    w.wait_for_events(1).await;
    let conversation = w.bot.events()[0]["data"]["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_string();

    let (code, first) = w
        .call(
            &format!("/conversations/{conversation}/drafts"),
            json!({"text": "Tu pedido 5521 llega mañana."}),
        )
        .await;
    assert_eq!(code, 200, "{first}");
    let (code, second) = w
        .call(
            &format!("/conversations/{conversation}/drafts"),
            json!({"text": "Tu pedido fue cancelado."}),
        )
        .await;
    assert_eq!(code, 200, "{second}");
    assert_eq!(
        first["handoff_id"], second["handoff_id"],
        "one queue item for both"
    );
    // While the drafts wait, the chat is still the bot's: what the customer writes reaches it.
    assert_eq!(
        customer_writes(&w.hub, &path, "wamid.d1b", "¿hola?").await,
        200
    );
    w.wait_for_user_messages(2).await;
    assert!(
        graph.texts().is_empty(),
        "nothing goes out before a decision"
    );

    // The agent rejects the wrong one and approves the right one: WhatsApp gets exactly that.
    let reject = second["draft_id"].as_str().expect("id");
    w.agent
        .act(
            &format!("/messages/{reject}/reject"),
            json!({"reason": "not cancelled"}),
        )
        .await;
    let approve = first["draft_id"].as_str().expect("id");
    w.agent
        .act(&format!("/messages/{approve}/approve"), json!({}))
        .await;
    support::eventually(
        Duration::from_secs(15),
        || graph.texts() == ["Tu pedido 5521 llega mañana."],
        || format!("WhatsApp got {:?}", graph.texts()),
    )
    .await;
    w.agent
        .wait_for_message("Tu pedido 5521 llega mañana.", |m| m["status"] == "sent")
        .await;
    let decided = w.wait_for_decisions(2).await;
    assert_eq!(decided[1]["data"]["decision"], "approved");
    assert_eq!(
        decided[1]["data"]["sent_by"], "baton",
        "the bot must not send it again"
    );
    let handoff = first["handoff_id"].as_str().expect("id");
    assert_eq!(
        w.agent.latest("handoff", handoff).await["status"],
        "resolved"
    );
    // The chat stays the bot's: its next message goes to the bot, not to the queue.
    assert_eq!(
        customer_writes(&w.hub, &path, "wamid.d2", "¡gracias!").await,
        200
    );
    w.wait_for_user_messages(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(graph.texts().len(), 1);
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
}

#[tokio::test]
async fn a_draft_nobody_decides_in_time_is_sent_or_rejected_as_the_channel_says() {
    // The presence sweep (which applies draft timeouts) runs every half second here.
    let w = world_with(
        &["--draft-timeout", "1", "--on-draft-timeout", "send"],
        &["--agent-session-timeout", "2"],
    )
    .await;
    let conversation = w.conversation_back_with_the_bot().await;
    let (code, submitted) = w
        .call(
            &format!("/conversations/{conversation}/drafts"),
            json!({"text": "We open at 9 tomorrow."}),
        )
        .await;
    assert_eq!(code, 200, "{submitted}");
    let decided = w.wait_for_decisions(1).await;
    assert_eq!(decided[0]["data"]["decision"], "approved");
    assert_eq!(decided[0]["data"]["text"], "We open at 9 tomorrow.");
    assert_eq!(
        decided[0]["data"]["agent"],
        Value::Null,
        "the timeout decided"
    );
    let handoff = submitted["handoff_id"].as_str().expect("id");
    assert_eq!(
        w.agent.latest("handoff", handoff).await["status"],
        "resolved"
    );

    // A bad setting is refused with the reason.
    support::hub_cli_refuses(
        &[
            "bot",
            "set",
            "--data",
            w.data.path(),
            "Rasa bot",
            "--on-draft-timeout",
            "maybe",
        ],
        "\"reject\" or \"send\"",
    );
    support::hub_cli_refuses(
        &[
            "bot",
            "set",
            "--data",
            w.data.path(),
            "Rasa bot",
            "--draft-timeout",
            "10000000000000",
        ],
        "at most 2592000",
    );
}

#[tokio::test]
async fn a_bot_tags_its_handoff_and_routing_gives_it_to_the_agent_with_that_skill() {
    let bot = FakeBot::start().await;
    let data = HubData::new();
    let (token, secret) = connect(&data, &bot);
    bot.trust(&secret);
    data.add_agent("bob@example.com", "Bob", "agent");
    let cli = |args: &[&str]| {
        let (ok, out, err) = support::hub_cli(args, "");
        assert!(ok, "{args:?} failed: {err}");
        out
    };
    cli(&["tags", "set", "--data", data.path(), "billing", "returns"]);
    cli(&[
        "bot",
        "set",
        "--data",
        data.path(),
        "Rasa bot",
        "--routing",
        "least-busy",
    ]);
    let said = cli(&[
        "agent",
        "set",
        "--data",
        data.path(),
        "--agent",
        "bob@example.com",
        "--skills",
        "billing",
    ]);
    assert!(said.contains("skills billing"), "{said}");
    support::hub_cli_refuses(
        &[
            "agent",
            "set",
            "--data",
            data.path(),
            "--agent",
            "bob@example.com",
            "--skills",
            "biling",
        ],
        "\"biling\" is not one of the team's tags",
    );
    let hub = HubProcess::start(&data, support::free_port());
    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    let bob = AgentSession::sign_in(&hub, "bob@example.com").await;
    for agent in [&alice, &bob] {
        assert_eq!(
            agent.post("/presence", json!({"status": "online"})).await.0,
            200
        );
    }
    let w = World {
        data,
        hub,
        bot,
        token,
        agent: alice,
        http: reqwest::Client::new(),
    };
    let hand_over = |user: &str, tags: Value| json!({"user": {"id": user, "name": user}, "title": format!("{user} needs help"), "tags": tags});
    // A tag the team does not have is refused, with the list.
    let (code, body) = w
        .call("/handoffs", hand_over("u-0", json!(["bilingg"])))
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("billing, returns"),
        "{body}"
    );

    // Two billing handoffs: both to Bob, the billing specialist, though Alice holds fewer.
    let mut ids = Vec::new();
    for user in ["u-1", "u-2"] {
        let (code, started) = w
            .call("/handoffs", hand_over(user, json!(["billing"])))
            .await;
        assert_eq!(code, 200, "{started}");
        ids.push(started["handoff_id"].as_str().expect("id").to_string());
    }
    // An untagged one goes to whoever holds fewest: Alice.
    let (code, started) = w.call("/handoffs", hand_over("u-3", json!([]))).await;
    assert_eq!(code, 200, "{started}");
    ids.push(started["handoff_id"].as_str().expect("id").to_string());
    let (_, me) = bob.get("/me").await;
    let bob_id = me["id"].as_str().expect("Bob's id").to_string();
    let holders = || async {
        let events = w.agent.events().await;
        ids.iter()
            .map(|id| {
                events
                    .iter()
                    .rev()
                    .find(|e| e["kind"] == "handoff" && e["data"]["id"] == id.as_str())
                    .map(|e| e["data"]["assignee"].clone())
                    .unwrap_or(Value::Null)
            })
            .collect::<Vec<Value>>()
    };
    let mut held = Vec::new();
    for _ in 0..100 {
        held = holders().await;
        if held.iter().all(|h| !h.is_null()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(held[0], json!(bob_id), "{held:?}");
    assert_eq!(held[1], json!(bob_id), "{held:?}");
    assert_ne!(held[2], json!(bob_id), "{held:?}");
    let first = w
        .agent
        .events()
        .await
        .into_iter()
        .rev()
        .find(|e| e["kind"] == "handoff" && e["data"]["id"] == ids[0].as_str())
        .expect("the first handoff");
    assert_eq!(first["data"]["tags"], json!(["billing"]));
}
