//! A bot on loopback that takes Baton's events the way a careful bot would: it checks
//! `Baton-Signature` (HMAC-SHA256 of "<t>.<raw body>" under the signing secret, `t` within five
//! minutes) on every call and records each one, so a test asserts exactly what the bot heard.
//! It can be told to refuse the next calls (a bot that is down) to exercise retries.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

#[derive(Default)]
struct Shared {
    secret: String,
    /// Every well-signed call, in arrival order (refused ones too): the event and whether taken.
    calls: Vec<(Value, bool)>,
    /// Calls with a missing or wrong signature.
    forged: usize,
    /// Answer the next calls with 503.
    down_for: usize,
}

pub struct FakeBot {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeBot {
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake bot");
        let port = listener.local_addr().expect("addr").port();
        let app = Router::new()
            .route("/events", post(event))
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What to give `--events-url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
    }

    /// The signing secret `bot add` printed.
    pub fn trust(&self, secret: &str) {
        self.lock().secret = secret.to_string();
    }

    /// Refuse the next `n` calls with 503.
    pub fn go_down_for(&self, n: usize) {
        self.lock().down_for = n;
    }

    /// The events taken, in order.
    pub fn events(&self) -> Vec<Value> {
        self.lock()
            .calls
            .iter()
            .filter(|(_, taken)| *taken)
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// Every well-signed call, taken or refused, in order.
    pub fn calls(&self) -> Vec<Value> {
        self.lock().calls.iter().map(|(e, _)| e.clone()).collect()
    }

    pub fn forged(&self) -> usize {
        self.lock().forged
    }
}

impl Drop for FakeBot {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Whether `header` signs `body` under `secret`, at a time within five minutes of now.
pub fn signed(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header else { return false };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - t).abs() > 300 {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

async fn event(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    let header = headers.get("baton-signature").and_then(|v| v.to_str().ok());
    if !signed(&shared.secret, header, &body) {
        shared.forged += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if shared.down_for > 0 {
        shared.down_for -= 1;
        shared.calls.push((event, false));
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    shared.calls.push((event, true));
    StatusCode::OK
}
