//! The hub's agent API as the device calls it: sign in, page the event log, open the live stream.

use std::time::Duration;

use baton_protocol::{
    Agent, AgentCommand, CommandResult, ErrorBody, EventPage, LoginRequest, LoginResponse, RawEvent,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use url::Url;

/// The largest stream message this client accepts (the hub's frames are about 1 MiB at most).
pub const MAX_STREAM_MESSAGE: usize = 64 * 1024 * 1024;

pub type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The hub could not be reached, or the connection broke: worth retrying later.
    #[error("cannot reach the hub: {0}")]
    Network(String),
    /// The token is missing, revoked, or the agent was disabled: sign in again.
    #[error("the hub does not accept this sign-in; sign in again")]
    Unauthorized,
    /// The hub refused with its own explanation.
    #[error("{message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
        /// What the hub's `Retry-After` asked for, if it said.
        retry_after: Option<Duration>,
    },
    #[error("{0:?} is not a hub URL (expected http://host:port or https://…)")]
    BadUrl(String),
    #[error("the hub sent something this build cannot read: {0}")]
    Protocol(String),
}

/// A client of one hub, or of several hubs serving one team from a shared database.
///
/// With several, it stays on one while that one answers, and moves to the next when it cannot be
/// reached (connection refused, timed out): every hub has the same log, sign-ins and commands, so
/// a device resumes from its cursor there and a command sent again is still done once (its
/// `txn_id`). Clones share where they are.
#[derive(Debug, Clone)]
pub struct HubClient {
    bases: std::sync::Arc<Vec<Url>>,
    /// Which of `bases` requests go to.
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    http: reqwest::Client,
    token: Option<String>,
}

/// The addresses written in `hub_url`, unchecked: one, or several separated by commas (or spaces).
pub fn hub_addresses(hub_url: &str) -> impl Iterator<Item = &str> {
    hub_url
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
}

/// The hub addresses in `hub_url` ([`hub_addresses`]), parsed.
pub fn hub_urls(hub_url: &str) -> Result<Vec<Url>, ClientError> {
    let urls = hub_addresses(hub_url)
        .map(|part| {
            Url::parse(part.trim_end_matches('/'))
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| ClientError::BadUrl(part.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err(ClientError::BadUrl(hub_url.to_string()));
    }
    Ok(urls)
}

/// Whether two hub settings name one team: they share an address. Adding, removing or reordering
/// a team's addresses (`A` → `A,B`) keeps its sign-in and this device's copy; a setting with no
/// address in common is another hub.
pub fn shares_an_address(a: &str, b: &str) -> bool {
    match (hub_urls(a), hub_urls(b)) {
        (Ok(a), Ok(b)) => a.iter().any(|u| b.contains(u)),
        _ => a == b,
    }
}

impl HubClient {
    /// A client of the hub at `hub_url`, or of the hubs listed there (comma-separated).
    pub fn new(hub_url: &str) -> Result<Self, ClientError> {
        let bases = hub_urls(hub_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Network(e.to_string()))?;
        Ok(Self {
            bases: std::sync::Arc::new(bases),
            current: Default::default(),
            http,
            token: None,
        })
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The hub addresses as given (one, or several comma-separated): what a sign-in is kept
    /// under.
    pub fn hub_url(&self) -> String {
        self.bases
            .iter()
            .map(|u| u.as_str().trim_end_matches('/'))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The hub requests go to now.
    pub fn current_url(&self) -> &Url {
        let at = self.current.load(std::sync::atomic::Ordering::Relaxed);
        &self.bases[at % self.bases.len()]
    }

    /// Sends the request `build` makes for a hub's base address (without the trailing slash),
    /// with the sign-in. When that hub cannot be reached and others were given, tries each of
    /// them in turn, and stays on the first that answers.
    async fn send(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        use std::sync::atomic::Ordering;
        let mut tried = 0;
        loop {
            let at = self.current.load(Ordering::Relaxed) % self.bases.len();
            let base = &self.bases[at];
            let mut request = build(base.as_str().trim_end_matches('/'));
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(response) => return Ok(response),
                Err(e) if tried + 1 < self.bases.len() && (e.is_connect() || e.is_timeout()) => {
                    tried += 1;
                    let next = (at + 1) % self.bases.len();
                    tracing::warn!(hub = %base, next = %self.bases[next], error = %e, "hub unreachable; trying the next one");
                    // Another request may have moved on already: only move from where we were.
                    let _ = self.current.compare_exchange(
                        at,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                Err(e) => return Err(network(e)),
            }
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<LoginResponse, ClientError> {
        let login = LoginRequest {
            email: email.into(),
            password: password.into(),
            cookie: false,
        };
        let response = self
            .send(|hub| self.http.post(format!("{hub}/api/v1/login")).json(&login))
            .await?;
        read_json(response).await
    }

    /// Up to `limit` events after `after`, kinds unknown to this build included.
    pub async fn events(&self, after: u64, limit: u32) -> Result<EventPage<RawEvent>, ClientError> {
        let query = [("after", after.to_string()), ("limit", limit.to_string())];
        let response = self
            .send(|hub| self.http.get(format!("{hub}/api/v1/events")).query(&query))
            .await?;
        read_json(response).await
    }

    /// One page of the inbox's current state and the seq it reflects (for a new device, or after
    /// 410); `page` is the previous page's `next`.
    pub async fn snapshot(
        &self,
        page: Option<&str>,
    ) -> Result<baton_protocol::Snapshot, ClientError> {
        let response = self
            .send(|hub| {
                let request = self.http.get(format!("{hub}/api/v1/snapshot"));
                match page {
                    Some(page) => request.query(&[("page", page)]),
                    None => request,
                }
            })
            .await?;
        read_json(response).await
    }

    /// Up to `limit` messages older than `before`, newest first (history backfill); only one
    /// conversation's when it is named.
    pub async fn messages_before(
        &self,
        conversation: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<baton_protocol::MessagePage, ClientError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(conversation) = conversation {
            query.push(("conversation", conversation.to_string()));
        }
        if let Some(before) = before {
            query.push(("before", before.to_string()));
        }
        let response = self
            .send(|hub| {
                self.http
                    .get(format!("{hub}/api/v1/messages"))
                    .query(&query)
            })
            .await?;
        // Each message is decoded on its own: one this build cannot read (nested past the
        // parser's limit, say) is left out and logged, and the rest of the history still arrives.
        #[derive(serde::Deserialize)]
        struct RawPage {
            messages: Vec<Box<serde_json::value::RawValue>>,
            next: Option<i64>,
            total: u64,
        }
        let raw: RawPage = read_json(response).await?;
        let mut messages = Vec::with_capacity(raw.messages.len());
        for message in raw.messages {
            match serde_json::from_str(message.get()) {
                Ok(message) => messages.push(message),
                Err(e) => {
                    tracing::warn!(error = %e, "backfill: a message this build cannot read was left out")
                }
            }
        }
        Ok(baton_protocol::MessagePage {
            messages,
            next: raw.next,
            total: raw.total,
        })
    }

    /// The signed-in agent.
    pub async fn me(&self) -> Result<Agent, ClientError> {
        let response = self
            .send(|hub| self.http.get(format!("{hub}/api/v1/me")))
            .await?;
        read_json(response).await
    }

    /// Sends an agent command with its `txn_id`; the hub applies it once however often it is sent.
    pub async fn command(
        &self,
        txn_id: &str,
        command: &AgentCommand,
    ) -> Result<CommandResult, ClientError> {
        let (path, fields) = (command.path(), command.fields(txn_id));
        let response = self
            .send(|hub| self.http.post(format!("{hub}/api/v1{path}")).json(&fields))
            .await?;
        read_json(response).await
    }

    /// The approved WhatsApp templates for a conversation (its number's).
    pub async fn whatsapp_templates(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<baton_protocol::WhatsAppTemplate>, ClientError> {
        let response = self
            .send(|hub| {
                self.http.get(format!(
                    "{hub}/api/v1/conversations/{conversation_id}/templates"
                ))
            })
            .await?;
        read_json(response).await
    }

    /// Uploads a file the agent is about to send (`POST /api/v1/uploads`); the hub keeps it by its
    /// hash, so uploading the same file again is harmless.
    pub async fn upload(
        &self,
        filename: &str,
        mime_type: &str,
        bytes: Vec<u8>,
    ) -> Result<baton_protocol::Upload, ClientError> {
        let bytes = bytes::Bytes::from(bytes);
        let response = self
            .send(|hub| {
                self.http
                    .post(format!("{hub}/api/v1/uploads"))
                    .query(&[("filename", filename)])
                    .header(reqwest::header::CONTENT_TYPE, mime_type)
                    .body(bytes.clone())
                    // A 16 MB file over a slow connection takes longer than an API call.
                    .timeout(std::time::Duration::from_secs(300))
            })
            .await?;
        read_json(response).await
    }

    /// A customer's media file: its type and bytes.
    pub async fn media(&self, message_id: &str) -> Result<(String, Vec<u8>), ClientError> {
        let response = self
            .send(|hub| self.http.get(format!("{hub}/api/v1/media/{message_id}")))
            .await?;
        if !response.status().is_success() {
            return read_json::<serde_json::Value>(response)
                .await
                .and(Err(ClientError::Protocol("the hub sent no file".into())));
        }
        let mime_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let bytes = response.bytes().await.map_err(network)?;
        Ok((mime_type, bytes.to_vec()))
    }

    /// Any other call of the agent API (the admin routes, for instance): `method` on `/api/v1{path}`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let response = self
            .send(|hub| {
                let request = self
                    .http
                    .request(method.clone(), format!("{hub}/api/v1{path}"));
                match &body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await?;
        read_json(response).await
    }

    /// Ends this sign-in on the hub (its token stops working everywhere at once).
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.call(
            reqwest::Method::POST,
            "/logout",
            Some(serde_json::json!({})),
        )
        .await
        .map(|_| ())
    }

    /// Opens the live stream from `after`, on the hub requests go to, or (several given, that
    /// one unreachable) on the next that answers.
    pub async fn stream(&self, after: u64) -> Result<Stream, ClientError> {
        use std::sync::atomic::Ordering;
        let mut tried = 0;
        loop {
            let at = self.current.load(Ordering::Relaxed) % self.bases.len();
            match self.stream_from(&self.bases[at], after).await {
                Err(ClientError::Network(e)) if tried + 1 < self.bases.len() => {
                    tried += 1;
                    let next = (at + 1) % self.bases.len();
                    tracing::warn!(hub = %self.bases[at], next = %self.bases[next], error = %e, "hub unreachable; streaming from the next one");
                    let _ = self.current.compare_exchange(
                        at,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                other => return other,
            }
        }
    }

    async fn stream_from(&self, base: &Url, after: u64) -> Result<Stream, ClientError> {
        let mut ws_url = base.clone();
        let scheme = if base.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        ws_url
            .set_scheme(scheme)
            .map_err(|_| ClientError::BadUrl(base.to_string()))?;
        let url = format!(
            "{}/api/v1/stream?after={after}",
            ws_url.as_str().trim_end_matches('/')
        );
        let mut request = url
            .into_client_request()
            .map_err(|e| ClientError::BadUrl(e.to_string()))?;
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ClientError::Unauthorized)?;
            request.headers_mut().insert("Authorization", value);
        }
        // Set explicitly, far above what the hub sends (frames of about 1 MiB, a single event of
        // a few hundred KiB at most), so a device never refuses its own backlog.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
            max_message_size: Some(MAX_STREAM_MESSAGE),
            max_frame_size: Some(MAX_STREAM_MESSAGE),
            ..Default::default()
        };
        let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
        // As long as any request may take to connect: a hub that does not answer is left.
        let Ok(connected) = tokio::time::timeout(Duration::from_secs(10), connecting).await else {
            return Err(ClientError::Network(format!(
                "{base} did not answer within 10 s"
            )));
        };
        match connected {
            Ok((stream, _)) => Ok(stream),
            Err(tokio_tungstenite::tungstenite::Error::Http(response))
                if response.status().as_u16() == 401 =>
            {
                Err(ClientError::Unauthorized)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response))
                if response.status().as_u16() == 410 =>
            {
                Err(ClientError::Refused {
                    status: 410,
                    code: "gone".into(),
                    message: "the hub no longer has the events after this device's cursor".into(),
                    retry_after: None,
                })
            }
            Err(e) => Err(ClientError::Network(e.to_string())),
        }
    }
}

fn network(e: reqwest::Error) -> ClientError {
    ClientError::Network(e.to_string())
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, ClientError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = response.bytes().await.map_err(network)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()));
    }
    let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
    match body {
        Some(b) if status.as_u16() == 401 && b.code == "unauthorized" => {
            Err(ClientError::Unauthorized)
        }
        Some(b) => Err(ClientError::Refused {
            status: status.as_u16(),
            code: b.code,
            message: b.message,
            retry_after,
        }),
        None if status.as_u16() == 401 => Err(ClientError::Unauthorized),
        None => Err(ClientError::Refused {
            status: status.as_u16(),
            code: "http".into(),
            message: format!("the hub answered {status}"),
            retry_after,
        }),
    }
}

impl ClientError {
    /// The hub cannot continue from this device's cursor (410): take a fresh snapshot.
    pub fn is_gone(&self) -> bool {
        matches!(self, ClientError::Refused { status: 410, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_hubs_are_given_comma_separated_and_each_must_be_an_address() {
        let client =
            HubClient::new("https://a.example.com/, https://b.example.com:8717").expect("two hubs");
        assert_eq!(
            client.hub_url(),
            "https://a.example.com,https://b.example.com:8717"
        );
        assert_eq!(client.current_url().as_str(), "https://a.example.com/");
        assert_eq!(
            HubClient::new("http://127.0.0.1:8717/")
                .map(|c| c.hub_url())
                .ok(),
            Some("http://127.0.0.1:8717".to_string()),
            "one hub is kept as before"
        );
        assert!(matches!(
            HubClient::new("https://a.example.com,ftp://b"),
            Err(ClientError::BadUrl(bad)) if bad == "ftp://b"
        ));
        assert!(HubClient::new(" , ").is_err());
    }

    #[tokio::test]
    async fn a_client_moves_to_the_next_hub_when_one_cannot_be_reached_and_stays_there() {
        // Two ports nothing listens on: the first refuses, and so does the second, so the error is
        // the network's, after both were tried.
        let closed = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            listener.local_addr().expect("addr").port()
        };
        let (a, b) = (closed(), closed());
        let client =
            HubClient::new(&format!("http://127.0.0.1:{a},http://127.0.0.1:{b}")).expect("client");
        assert!(matches!(client.me().await, Err(ClientError::Network(_))));
        assert_eq!(client.current_url().port(), Some(b), "it moved on");
        assert!(matches!(
            client.stream(0).await,
            Err(ClientError::Network(_))
        ));
        assert_eq!(
            client.current_url().port(),
            Some(a),
            "and on again, round the list"
        );
    }
}
