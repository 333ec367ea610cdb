//! A stand-in for Meta's Graph API (`POST /{version}/{phone-number-id}/messages`) on loopback.
//! Every request is checked against the contract (the version, the number, the bearer token, the
//! body's shape) and recorded, so a test asserts exactly what the customer would have received.
//! Scripted errors (131047, 131026, 130429, 190, …) are played back in order before it accepts.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

pub const VERSION: &str = "v24.0";

#[derive(Default)]
struct Shared {
    phone_number_id: String,
    token: String,
    accepted: Vec<Value>,
    read_receipts: Vec<String>,
    violations: Vec<String>,
    attempts: usize,
    /// (HTTP status, Graph error code) to answer the next sends with, in order.
    errors: VecDeque<(u16, i64)>,
    /// Media id → (MIME type, bytes) the fake serves.
    media: std::collections::HashMap<String, (String, Vec<u8>)>,
    downloads: usize,
    /// Files uploaded to `/{number}/media`: (id, MIME type, file name, bytes).
    uploads: Vec<(String, String, String, Vec<u8>)>,
    /// Graph error codes to answer the next uploads with, in order.
    upload_errors: VecDeque<i64>,
    /// Take the next message, but answer only after the hub has given up waiting.
    hang: bool,
    port: u16,
}

pub struct FakeGraph {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeGraph {
    pub async fn start(phone_number_id: &str, token: &str) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            phone_number_id: phone_number_id.to_string(),
            token: token.to_string(),
            ..Shared::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Graph API");
        let port = listener.local_addr().expect("addr").port();
        shared.lock().unwrap_or_else(|p| p.into_inner()).port = port;
        let app = Router::new()
            .route("/{version}/{number}/messages", post(send))
            .route("/{version}/{number}/media", post(upload))
            .route(
                "/{version}/{waba}/message_templates",
                axum::routing::get(templates),
            )
            .route("/{version}/{media}", axum::routing::get(media_lookup))
            .route("/files/{media}", axum::routing::get(media_file))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            port,
            shared,
            server,
        }
    }

    /// The number it stands for (`--phone-number-id`).
    pub fn phone_number_id(&self) -> String {
        self.lock().phone_number_id.clone()
    }

    /// What to give `--graph-url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits (up to `secs`) until a customer has been sent a text reading `text`.
    pub async fn wait_for_text(&self, text: &str, secs: u64) {
        super::eventually(
            std::time::Duration::from_secs(secs),
            || self.texts().iter().any(|t| t == text),
            || format!("WhatsApp got {:?}, not {text:?}", self.texts()),
        )
        .await;
    }

    /// Answers the next send with Meta's error `code` (and HTTP `status`).
    pub fn fail_next(&self, status: u16, code: i64) {
        self.lock().errors.push_back((status, code));
    }

    /// The token the number now has (after an admin sets a new one).
    pub fn expect_token(&self, token: &str) {
        self.lock().token = token.to_string();
    }

    /// Messages accepted, in arrival order.
    pub fn accepted(&self) -> Vec<Value> {
        self.lock().accepted.clone()
    }

    /// Texts accepted, in arrival order.
    pub fn texts(&self) -> Vec<String> {
        self.accepted()
            .iter()
            .filter_map(|m| m["text"]["body"].as_str().map(str::to_string))
            .collect()
    }

    /// Serves a media file under `id`.
    pub fn add_media(&self, id: &str, mime_type: &str, bytes: &[u8]) {
        self.lock()
            .media
            .insert(id.to_string(), (mime_type.to_string(), bytes.to_vec()));
    }

    /// Takes the next message (the customer gets it) but answers too late: the hub cannot know.
    pub fn hang_next(&self) {
        self.lock().hang = true;
    }

    /// Answers the next media upload with Meta's error `code`.
    pub fn fail_next_upload(&self, code: i64) {
        self.lock().upload_errors.push_back(code);
    }

    /// Files uploaded, in order: (MIME type, file name, bytes).
    pub fn uploads(&self) -> Vec<(String, String, Vec<u8>)> {
        self.lock()
            .uploads
            .iter()
            .map(|(_, mime, name, bytes)| (mime.clone(), name.clone(), bytes.clone()))
            .collect()
    }

    /// How many media files were downloaded.
    pub fn downloads(&self) -> usize {
        self.lock().downloads
    }

    /// The wamids marked read, in order.
    pub fn read_receipts(&self) -> Vec<String> {
        self.lock().read_receipts.clone()
    }

    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    /// Requests that broke the contract (always asserted empty).
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn graph_error(status: u16, code: i64) -> Response {
    let message = match code {
        131047 => "Re-engagement message",
        131026 => "Message undeliverable",
        130429 => "Rate limit hit",
        190 => "Error validating access token: Session has expired",
        _ => "Something went wrong",
    };
    let body = json!({"error": {
        "message": format!("(#{code}) {message}"),
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": message},
        "fbtrace_id": "Afake"
    }});
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        Json(body),
    )
        .into_response()
}

/// Checks a send against the contract (ARCHITECTURE.md, WhatsApp protocol: sending).
fn check(body: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    if body["status"] == "read" {
        if body["messaging_product"] != "whatsapp" || body["message_id"].as_str().is_none() {
            wrong.push("a read receipt without messaging_product or message_id".to_string());
        }
        return wrong;
    }
    if body["messaging_product"] != "whatsapp" {
        wrong.push("messaging_product is not \"whatsapp\"".to_string());
    }
    if body["to"].as_str().is_none_or(str::is_empty) {
        wrong.push("no \"to\"".to_string());
    }
    match body["type"].as_str() {
        Some("text") => {
            let text = body["text"]["body"].as_str().unwrap_or_default();
            if text.is_empty() || text.chars().count() > 4096 {
                wrong.push(format!(
                    "a text body of {} characters",
                    text.chars().count()
                ));
            }
        }
        Some(kind @ ("image" | "video" | "audio" | "document" | "sticker")) => {
            if body[kind]["id"].is_null() && body[kind]["link"].is_null() {
                wrong.push(format!("a {kind} without an id or a link"));
            }
        }
        Some("reaction") => {
            if body["reaction"]["message_id"]
                .as_str()
                .is_none_or(str::is_empty)
                || body["reaction"]["emoji"].as_str().is_none()
            {
                wrong.push("a reaction without message_id and emoji".to_string());
            }
        }
        Some("template" | "interactive") => {}
        other => wrong.push(format!("an unknown type {other:?}")),
    }
    if !body["context"].is_null()
        && body["context"]["message_id"]
            .as_str()
            .is_none_or(str::is_empty)
    {
        wrong.push("a context without the quoted message_id".to_string());
    }
    wrong
}

/// Meta's media URL lookup: `{url, mime_type, sha256, file_size, id}`, the URL short-lived.
async fn media_lookup(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path((_version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    use sha2::Digest;
    let shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {}", shared.token)) {
        return graph_error(401, 190);
    }
    let Some((mime, bytes)) = shared.media.get(&id) else {
        return graph_error(404, 100);
    };
    Json(json!({
        "url": format!("http://127.0.0.1:{}/files/{id}", shared.port),
        "mime_type": mime,
        "sha256": hex::encode(sha2::Sha256::digest(bytes)),
        "file_size": bytes.len(),
        "id": id,
    }))
    .into_response()
}

async fn media_file(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {}", shared.token)) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    shared.downloads += 1;
    match shared.media.get(&id) {
        Some((_, bytes)) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Meta's template list for a WhatsApp Business Account: one approved template with a parameter,
/// one rejected (which agents must not be offered).
async fn templates(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path((version, waba)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    if version != VERSION
        || waba != "9990001"
        || bearer != Some(&format!("Bearer {}", shared.token))
    {
        return graph_error(400, 100);
    }
    Json(json!({"data": [
        {"name": "order_update", "language": "en_US", "status": "APPROVED", "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Your order"},
            {"type": "BODY", "text": "Hello {{1}}, your order {{2}} is on its way."}]},
        {"name": "spammy_offer", "language": "en_US", "status": "REJECTED", "components": [
            {"type": "BODY", "text": "Buy now!"}]}
    ]}))
    .into_response()
}

/// Meta's media upload: multipart with `messaging_product=whatsapp`, `type` (the MIME type) and
/// `file`; answers `{"id"}`, which a message then sends by id.
async fn upload(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path((version, number)): Path<(String, String)>,
    headers: HeaderMap,
    mut form: axum::extract::Multipart,
) -> Response {
    let (mut product, mut kind, mut file) = (None, None, None);
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let Ok(bytes) = field.bytes().await else {
            break;
        };
        match name.as_str() {
            "messaging_product" => product = Some(String::from_utf8_lossy(&bytes).to_string()),
            "type" => kind = Some(String::from_utf8_lossy(&bytes).to_string()),
            "file" => file = Some((filename, content_type, bytes.to_vec())),
            _ => {}
        }
    }
    let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {}", shared.token)) {
        return graph_error(401, 190);
    }
    if let Some(code) = shared.upload_errors.pop_front() {
        return graph_error(400, code);
    }
    let mut wrong = Vec::new();
    if version != VERSION || number != shared.phone_number_id {
        wrong.push(format!("an upload to {version}/{number}"));
    }
    if product.as_deref() != Some("whatsapp") {
        wrong.push("an upload without messaging_product=whatsapp".to_string());
    }
    let Some((Some(filename), Some(content_type), bytes)) = file else {
        shared
            .violations
            .push("an upload without a file part with a name and a type".into());
        return graph_error(400, 100);
    };
    if kind.as_deref() != Some(content_type.as_str()) || bytes.is_empty() {
        wrong.push(format!("an upload typed {kind:?} of a {content_type} file"));
    }
    if !wrong.is_empty() {
        shared.violations.extend(wrong);
        return graph_error(400, 100);
    }
    let id = format!("up-{}", shared.uploads.len() + 1);
    shared
        .uploads
        .push((id.clone(), content_type, filename, bytes));
    Json(json!({ "id": id })).into_response()
}

async fn send(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path((version, number)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (response, late) = answer_send(&shared, &version, &number, &headers, body);
    if late {
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    }
    response
}

/// The answer to one send, and whether to give it too late.
fn answer_send(
    shared: &Mutex<Shared>,
    version: &str,
    number: &str,
    headers: &HeaderMap,
    body: Value,
) -> (Response, bool) {
    let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    shared.attempts += 1;
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    if let Some((status, code)) = shared.errors.pop_front() {
        return (graph_error(status, code), false);
    }
    if bearer.as_deref() != Some(shared.token.as_str()) {
        return (graph_error(401, 190), false);
    }
    let mut wrong = check(&body);
    let kind = body["type"].as_str().unwrap_or_default();
    if let Some(id) = body[kind]["id"].as_str() {
        if !shared.uploads.iter().any(|(up, ..)| up == id) {
            wrong.push(format!("a {kind} by an id never uploaded ({id})"));
        }
    }
    if body.get("baton_upload").is_some() {
        wrong.push("the hub's own upload reference reached WhatsApp".to_string());
    }
    if version != VERSION {
        wrong.push(format!("version {version}, not {VERSION}"));
    }
    if number != shared.phone_number_id {
        wrong.push(format!("sent from number {number}"));
    }
    if !wrong.is_empty() {
        shared
            .violations
            .extend(wrong.into_iter().map(|w| format!("{w}: {body}")));
        return (graph_error(400, 100), false);
    }
    if body["status"] == "read" {
        shared
            .read_receipts
            .push(body["message_id"].as_str().unwrap_or_default().to_string());
        return (Json(json!({"success": true})).into_response(), false);
    }
    shared.accepted.push(body.clone());
    let n = shared.accepted.len();
    let late = std::mem::take(&mut shared.hang);
    let answer = Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": body["to"], "wa_id": body["to"]}],
        "messages": [{"id": format!("wamid.fake{n}")}]
    }))
    .into_response();
    (answer, late)
}

/// Meta's `X-Hub-Signature-256` over `body` under the app secret.
pub fn meta_signature(app_secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Connects a number to the hub in `data` with the CLI, as an admin would (the app secret and the
/// token on standard input); answers the webhook path to give Meta, checking no secret is printed.
pub fn connect_number(
    data: &super::HubData,
    graph: &FakeGraph,
    name: &str,
    app_secret: &str,
    token: &str,
) -> String {
    let number = graph.phone_number_id();
    let graph_url = graph.url();
    let place = data.place();
    let mut args = vec!["whatsapp", "add"];
    args.extend(place.iter().map(String::as_str));
    let (ok, out, err) = super::hub_cli(
        &[
            &args[..],
            &[
                "--name",
                name,
                "--phone-number-id",
                &number,
                "--verify-token",
                "my-verify-token",
                "--graph-url",
                &graph_url,
            ],
        ]
        .concat(),
        &format!("{app_secret}\n{token}\n"),
    );
    assert!(ok, "whatsapp add failed: {err}");
    assert!(
        !out.contains(app_secret) && !out.contains(token),
        "secrets are never printed"
    );
    let path = out.lines().last().expect("a last line").trim().to_string();
    assert!(path.contains("/whatsapp"), "{out}");
    path
}
