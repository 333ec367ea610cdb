//! A stand-in for Botpress's webhook (`https://webhook.botpress.cloud/<webhookId>`) on loopback.
//! Every call is checked against the published OpenAPI file and recorded, so a test can assert
//! exactly what the customer would have received. It can be taken down, made to fail or to hang.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::Value;

const OPENAPI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/botpress/openapi-botpress-webhook.json"
);
const WEBHOOK_ID: &str = "0a1b2c3d-0000-4000-8000-000000000000";

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub route: String,
    pub body: Value,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Accept,
    /// 503 Service Unavailable (Botpress having a bad moment).
    Unavailable,
    /// 400 with an explanation (a payload Botpress will not take).
    Reject,
    /// Accepts, but answers only after this long.
    Slow(Duration),
}

#[derive(Default)]
struct Shared {
    /// Botpress conversation id → the `externalId` tag (our ticket id), for the API lookup.
    conversations: std::collections::HashMap<String, String>,
    api_lookups: Vec<(String, Option<String>, Option<String>)>,
    accepted: Vec<Call>,
    violations: Vec<String>,
    attempts: usize,
    mode: Option<Mode>,
}

pub struct FakeBotpress {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    spec: Arc<Value>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl FakeBotpress {
    pub async fn start() -> Self {
        let spec: Value = serde_json::from_str(
            &std::fs::read_to_string(OPENAPI).expect("the Botpress OpenAPI file"),
        )
        .expect("OpenAPI is JSON");
        let mut fake = Self {
            port: 0,
            shared: Arc::default(),
            spec: Arc::new(spec),
            server: None,
        };
        fake.up().await;
        fake
    }

    /// The webhook URL to configure on the channel.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/{WEBHOOK_ID}", self.port)
    }

    /// Starts listening (again, on the same port once it has one).
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind fake Botpress");
        self.port = listener.local_addr().expect("addr").port();
        let app = Router::new()
            .route("/{webhook}/{route}", post(receive))
            .route(
                "/v1/chat/conversations/{id}",
                axum::routing::get(get_conversation),
            )
            .with_state((self.shared.clone(), self.spec.clone()));
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Stops listening: calls are refused at the TCP level.
    pub async fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// The Botpress API's base URL (the same server).
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Makes the API know a downstream conversation tagged with our ticket id.
    pub fn know_conversation(&self, botpress_id: &str, ticket: &str) {
        self.lock()
            .conversations
            .insert(botpress_id.to_string(), ticket.to_string());
    }

    /// (conversation id, authorization header, x-bot-id header) of every API lookup.
    pub fn api_lookups(&self) -> Vec<(String, Option<String>, Option<String>)> {
        self.lock().api_lookups.clone()
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = Some(mode);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls answered with success, in arrival order.
    pub fn accepted(&self) -> Vec<Call> {
        self.lock().accepted.clone()
    }

    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    /// Calls that broke the contract (always asserted empty).
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Waits until at least `n` calls were accepted; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} Botpress calls, got {}: {accepted:#?}; violations: {:?}",
                accepted.len(),
                self.violations()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type AppState = (Arc<Mutex<Shared>>, Arc<Value>);

async fn receive(
    State((shared, spec)): State<AppState>,
    Path((webhook, route)): Path<(String, String)>,
    body: String,
) -> (StatusCode, String) {
    let mode = {
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        s.attempts += 1;
        s.mode.unwrap_or(Mode::Accept)
    };
    let violation = if webhook != WEBHOOK_ID {
        Some(format!("wrong webhook id {webhook:?}"))
    } else {
        check(&spec, &route, &body).err()
    };
    if let Some(v) = violation {
        shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .violations
            .push(v.clone());
        return (StatusCode::BAD_REQUEST, v);
    }
    match mode {
        Mode::Unavailable => return (StatusCode::SERVICE_UNAVAILABLE, "try later".into()),
        Mode::Reject => {
            return (
                StatusCode::BAD_REQUEST,
                "payload rejected by the fake".into(),
            )
        }
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
        Mode::Accept => {}
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .accepted
        .push(Call { route, body });
    (StatusCode::OK, "{}".into())
}

/// Checks a body against the OpenAPI request schema of `/route`: an object with every required
/// field, each declared property of its declared type.
fn check(spec: &Value, route: &str, body: &str) -> Result<(), String> {
    let schema_ref = spec["paths"][format!("/{route}")]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["$ref"]
        .as_str()
        .ok_or_else(|| format!("Botpress has no route /{route}"))?;
    let name = schema_ref.rsplit('/').next().unwrap_or_default();
    let schema = &spec["components"]["schemas"][name];
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("/{route}: body is not JSON: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| format!("/{route}: body is not an object"))?;
    for field in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !object.contains_key(field) {
            return Err(format!("/{route}: missing required {field:?} in {value}"));
        }
    }
    for (field, declared) in schema["properties"].as_object().into_iter().flatten() {
        let Some(actual) = object.get(field) else {
            continue;
        };
        let ok = match declared["type"].as_str() {
            Some("string") => actual.as_str().is_some_and(|s| !s.is_empty()),
            Some("object") => actual.is_object(),
            Some("array") => actual.is_array(),
            _ => true,
        };
        if !ok {
            return Err(format!(
                "/{route}: {field:?} should be a {} but is {actual}",
                declared["type"]
            ));
        }
    }
    // ARCHITECTURE.md, Botpress protocol §1.5: a text message's payload is {text: non-empty string}.
    if route == "message-from-agent" && object["messageType"] == "text" {
        let text = object["payload"]["text"].as_str().unwrap_or_default();
        if text.is_empty() {
            return Err(format!(
                "/{route}: a text message needs payload.text, got {value}"
            ));
        }
    }
    Ok(())
}

async fn get_conversation(
    State((shared, _)): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
    s.api_lookups
        .push((id.clone(), header("authorization"), header("x-bot-id")));
    match s.conversations.get(&id) {
        Some(ticket) => (
            StatusCode::OK,
            serde_json::json!({"conversation": {"id": id, "channel": "hitl",
                "tags": {"hitl-api:externalId": ticket}}})
            .to_string(),
        ),
        None => (
            StatusCode::NOT_FOUND,
            r#"{"message":"Conversation not found"}"#.into(),
        ),
    }
}
