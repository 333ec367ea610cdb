//! Fake push services on loopback — FCM HTTP v1 (with its OAuth token endpoint), APNs (HTTP/2
//! only) and a Web Push endpoint — that check what the hub sends as Google, Apple and browser
//! vendors do: the service account's signed assertion, the bearer token, the `.p8` key's JWT, the
//! VAPID signature, and that a Web Push payload decrypts with the browser's keys.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use web_push_native::jwt_simple::prelude::*;
use web_push_native::p256;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint as _;

pub const ACCESS_TOKEN: &str = "ya29.fake-access-token";
pub const TEAM_ID: &str = "TEAM123456";
pub const KEY_ID: &str = "KEY1234567";
pub const TOPIC: &str = "app.baton.desk";
pub const PROJECT: &str = "baton-test";
pub const CLIENT_EMAIL: &str = "push@baton-test.iam.gserviceaccount.com";

/// One push a fake received, checked: who it was for and what it said.
#[derive(Debug, Clone)]
pub struct Push {
    pub provider: &'static str,
    /// The FCM or APNs token, or the Web Push subscription's name.
    pub device: String,
    /// The notification's JSON (for Web Push, after decryption).
    pub body: Value,
    pub headers: HashMap<String, String>,
}

#[derive(Default)]
struct Seen {
    pushes: Vec<Push>,
    token_requests: usize,
    refused: Vec<String>,
}

/// A browser's push subscription keys (the fake keeps the private half to decrypt).
pub struct Browser {
    pub secret: p256::SecretKey,
    pub auth: [u8; 16],
}

impl Browser {
    pub fn new() -> Self {
        Self {
            secret: p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng),
            auth: rand_auth(),
        }
    }

    pub fn p256dh(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.secret.public_key().to_encoded_point(false).as_bytes())
    }

    pub fn auth(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.auth)
    }
}

fn rand_auth() -> [u8; 16] {
    let key = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let mut auth = [0u8; 16];
    auth.copy_from_slice(&key.to_bytes()[..16]);
    auth
}

struct Shared {
    seen: Mutex<Seen>,
    fcm_key: RS256PublicKey,
    apns_key: ES256PublicKey,
    browsers: Mutex<HashMap<String, Browser>>,
    dead: Mutex<HashSet<String>>,
    origin: String,
}

pub struct FakePush {
    pub port: u16,
    shared: Arc<Shared>,
    /// The service account key file to give `baton-hub push fcm`.
    pub service_account: String,
    /// The `.p8` key to give `baton-hub push apns`.
    pub p8: String,
}

impl FakePush {
    pub async fn start() -> Self {
        let fcm = RS256KeyPair::generate(2048).expect("RSA key");
        let apns = ES256KeyPair::generate();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake push");
        let port = listener.local_addr().expect("addr").port();
        let origin = format!("http://127.0.0.1:{port}");
        let shared = Arc::new(Shared {
            seen: Mutex::default(),
            fcm_key: fcm.public_key(),
            apns_key: apns.public_key(),
            browsers: Mutex::default(),
            dead: Mutex::default(),
            origin: origin.clone(),
        });
        let app = Router::new()
            .route("/token", post(token))
            .route("/v1/projects/{project}/{action}", post(fcm_send))
            .route("/3/device/{token}", post(apns_send))
            .route("/wp/{name}", post(web_push))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let service_account = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "client_email": CLIENT_EMAIL,
            "private_key": fcm.to_pem().expect("pem"),
            "token_uri": format!("{origin}/token"),
        })
        .to_string();
        Self {
            port,
            shared,
            service_account,
            p8: apns.to_pem().expect("p8"),
        }
    }

    pub fn url(&self) -> String {
        self.shared.origin.clone()
    }

    /// A browser subscribed as `name`: its subscription JSON, as `PushSubscription.toJSON()`.
    pub fn subscribe(&self, name: &str) -> Value {
        let browser = Browser::new();
        let subscription = json!({
            "endpoint": format!("{}/wp/{name}", self.url()),
            "keys": {"p256dh": browser.p256dh(), "auth": browser.auth()},
        });
        if let Ok(mut browsers) = self.shared.browsers.lock() {
            browsers.insert(name.to_string(), browser);
        }
        subscription
    }

    /// From now on, pushes to `device` are answered as to an uninstalled app.
    pub fn kill_device(&self, device: &str) {
        if let Ok(mut dead) = self.shared.dead.lock() {
            dead.insert(device.to_string());
        }
    }

    pub fn pushes(&self) -> Vec<Push> {
        self.shared
            .seen
            .lock()
            .map(|s| s.pushes.clone())
            .unwrap_or_default()
    }

    pub fn token_requests(&self) -> usize {
        self.shared
            .seen
            .lock()
            .map(|s| s.token_requests)
            .unwrap_or(0)
    }

    /// What the fakes refused (bad signatures, wrong headers): empty when the hub did it right.
    pub fn refused(&self) -> Vec<String> {
        self.shared
            .seen
            .lock()
            .map(|s| s.refused.clone())
            .unwrap_or_default()
    }
}

fn refuse(shared: &Shared, status: StatusCode, why: String) -> Response {
    if let Ok(mut seen) = shared.seen.lock() {
        seen.refused.push(why.clone());
    }
    (status, Json(json!({ "error": why }))).into_response()
}

fn record(shared: &Shared, provider: &'static str, device: &str, body: Value, headers: &HeaderMap) {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    if let Ok(mut seen) = shared.seen.lock() {
        seen.pushes.push(Push {
            provider,
            device: device.to_string(),
            body,
            headers,
        });
    }
}

fn is_dead(shared: &Shared, device: &str) -> bool {
    shared
        .dead
        .lock()
        .map(|d| d.contains(device))
        .unwrap_or(false)
}

/// Google's OAuth token endpoint: a JWT-bearer assertion signed by the service account's key.
async fn token(State(shared): State<Arc<Shared>>, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            format!("grant_type: {form:?}"),
        );
    }
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([CLIENT_EMAIL.to_string()])),
        allowed_audiences: Some(HashSet::from([format!("{}/token", shared.origin)])),
        ..Default::default()
    };
    let assertion = form.get("assertion").cloned().unwrap_or_default();
    match shared
        .fcm_key
        .verify_token::<Value>(&assertion, Some(options))
    {
        Ok(claims)
            if claims.custom.get("scope").and_then(Value::as_str)
                == Some("https://www.googleapis.com/auth/firebase.messaging") =>
        {
            if let Ok(mut seen) = shared.seen.lock() {
                seen.token_requests += 1;
            }
            Json(json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}))
                .into_response()
        }
        Ok(claims) => refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            format!("scope: {:?}", claims.custom),
        ),
        Err(e) => refuse(&shared, StatusCode::UNAUTHORIZED, format!("assertion: {e}")),
    }
}

/// FCM HTTP v1 `messages:send`.
async fn fcm_send(
    State(shared): State<Arc<Shared>>,
    Path((project, action)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if project != PROJECT || action != "messages:send" {
        return refuse(
            &shared,
            StatusCode::NOT_FOUND,
            format!("route {project}/{action}"),
        );
    }
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {ACCESS_TOKEN}")) {
        return refuse(
            &shared,
            StatusCode::UNAUTHORIZED,
            format!("authorization: {bearer:?}"),
        );
    }
    let device = body
        .pointer("/message/token")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    record(&shared, "fcm", &device, body, &headers);
    if is_dead(&shared, &device) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": 404, "status": "NOT_FOUND",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})),
        )
            .into_response();
    }
    Json(json!({"name": format!("projects/{PROJECT}/messages/1")})).into_response()
}

/// APNs: HTTP/2 only, a fresh ES256 JWT from the team's `.p8` key, the app's topic.
async fn apns_send(
    State(shared): State<Arc<Shared>>,
    Path(device): Path<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if version != Version::HTTP_2 {
        return refuse(
            &shared,
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            format!("APNs over {version:?}"),
        );
    }
    let jwt = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bearer "))
        .unwrap_or("");
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([TEAM_ID.to_string()])),
        required_key_id: Some(KEY_ID.to_string()),
        ..Default::default()
    };
    if let Err(e) = shared
        .apns_key
        .verify_token::<NoCustomClaims>(jwt, Some(options))
    {
        return refuse(
            &shared,
            StatusCode::FORBIDDEN,
            format!("provider token: {e}"),
        );
    }
    for (name, want) in [("apns-topic", TOPIC), ("apns-push-type", "alert")] {
        let got = headers.get(name).and_then(|v| v.to_str().ok());
        if got != Some(want) {
            return refuse(&shared, StatusCode::BAD_REQUEST, format!("{name}: {got:?}"));
        }
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            "payload is not JSON".into(),
        );
    };
    record(&shared, "apns", &device, json, &headers);
    if is_dead(&shared, &device) {
        return (
            StatusCode::GONE,
            Json(json!({"reason": "Unregistered", "timestamp": 0})),
        )
            .into_response();
    }
    StatusCode::OK.into_response()
}

/// A browser vendor's push endpoint: VAPID-signed for this origin, aes128gcm as RFC 8291 says.
async fn web_push(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if header("content-encoding") != "aes128gcm" {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            format!("content-encoding {:?}", header("content-encoding")),
        );
    }
    if header("ttl").is_empty() {
        return refuse(&shared, StatusCode::BAD_REQUEST, "no TTL".into());
    }
    // Authorization: vapid t=<JWT>, k=<the hub's public key>
    let auth = header("authorization");
    let mut t = "";
    let mut k = "";
    for part in auth.trim_start_matches("vapid ").split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("t=") {
            t = v;
        } else if let Some(v) = part.strip_prefix("k=") {
            k = v;
        }
    }
    let verified = URL_SAFE_NO_PAD
        .decode(k)
        .ok()
        .and_then(|key| ES256PublicKey::from_bytes(&key).ok())
        .map(|key| {
            let options = VerificationOptions {
                allowed_audiences: Some(HashSet::from([shared.origin.clone()])),
                ..Default::default()
            };
            key.verify_token::<NoCustomClaims>(t, Some(options))
        });
    match verified {
        Some(Ok(claims))
            if claims
                .subject
                .as_deref()
                .is_some_and(|s| s.starts_with("mailto:")) => {}
        other => {
            return refuse(
                &shared,
                StatusCode::UNAUTHORIZED,
                format!("VAPID: {other:?}"),
            )
        }
    }
    let decrypted = {
        let browsers = match shared.browsers.lock() {
            Ok(b) => b,
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
        let Some(browser) = browsers.get(&name) else {
            return refuse(
                &shared,
                StatusCode::NOT_FOUND,
                format!("no subscription {name}"),
            );
        };
        web_push_native::decrypt(
            body.to_vec(),
            &browser.secret,
            &web_push_native::Auth::clone_from_slice(&browser.auth),
        )
    };
    let Ok(plain) = decrypted else {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            "the payload does not decrypt".into(),
        );
    };
    let Ok(json) = serde_json::from_slice::<Value>(&plain) else {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            "the decrypted payload is not JSON".into(),
        );
    };
    record(&shared, "web", &name, json, &headers);
    if is_dead(&shared, &name) {
        return StatusCode::GONE.into_response();
    }
    StatusCode::CREATED.into_response()
}
