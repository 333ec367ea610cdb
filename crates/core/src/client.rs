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

#[derive(Debug, Clone)]
pub struct HubClient {
    base: Url,
    http: reqwest::Client,
    token: Option<String>,
}

impl HubClient {
    pub fn new(hub_url: &str) -> Result<Self, ClientError> {
        let base = Url::parse(hub_url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| ClientError::BadUrl(hub_url.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Network(e.to_string()))?;
        Ok(Self {
            base,
            http,
            token: None,
        })
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn hub_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.hub_url())
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<LoginResponse, ClientError> {
        let request = self
            .http
            .post(self.url("/api/v1/login"))
            .json(&LoginRequest {
                email: email.into(),
                password: password.into(),
                cookie: false,
            });
        let response = request.send().await.map_err(network)?;
        read_json(response).await
    }

    /// Up to `limit` events after `after`, kinds unknown to this build included.
    pub async fn events(&self, after: u64, limit: u32) -> Result<EventPage<RawEvent>, ClientError> {
        let mut request = self
            .http
            .get(self.url("/api/v1/events"))
            .query(&[("after", after.to_string()), ("limit", limit.to_string())]);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        read_json(request.send().await.map_err(network)?).await
    }

    /// One page of the inbox's current state and the seq it reflects (for a new device, or after
    /// 410); `page` is the previous page's `next`.
    pub async fn snapshot(
        &self,
        page: Option<&str>,
    ) -> Result<baton_protocol::Snapshot, ClientError> {
        let mut request = self.http.get(self.url("/api/v1/snapshot"));
        if let Some(page) = page {
            request = request.query(&[("page", page)]);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        read_json(request.send().await.map_err(network)?).await
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
        let mut request = self.http.get(self.url("/api/v1/messages")).query(&query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        // Each message is decoded on its own: one this build cannot read (nested past the
        // parser's limit, say) is left out and logged, and the rest of the history still arrives.
        #[derive(serde::Deserialize)]
        struct RawPage {
            messages: Vec<Box<serde_json::value::RawValue>>,
            next: Option<i64>,
            total: u64,
        }
        let raw: RawPage = read_json(request.send().await.map_err(network)?).await?;
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
        let mut request = self.http.get(self.url("/api/v1/me"));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        read_json(request.send().await.map_err(network)?).await
    }

    /// Sends an agent command with its `txn_id`; the hub applies it once however often it is sent.
    pub async fn command(
        &self,
        txn_id: &str,
        command: &AgentCommand,
    ) -> Result<CommandResult, ClientError> {
        let mut request = self
            .http
            .post(self.url(&format!("/api/v1{}", command.path())))
            .json(&command.fields(txn_id));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        read_json(request.send().await.map_err(network)?).await
    }

    /// The approved WhatsApp templates for a conversation (its number's).
    pub async fn whatsapp_templates(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<baton_protocol::WhatsAppTemplate>, ClientError> {
        let mut request = self.http.get(self.url(&format!(
            "/api/v1/conversations/{conversation_id}/templates"
        )));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        read_json(request.send().await.map_err(network)?).await
    }

    /// Uploads a file the agent is about to send (`POST /api/v1/uploads`); the hub keeps it by its
    /// hash, so uploading the same file again is harmless.
    pub async fn upload(
        &self,
        filename: &str,
        mime_type: &str,
        bytes: Vec<u8>,
    ) -> Result<baton_protocol::Upload, ClientError> {
        let mut request = self
            .http
            .post(self.url("/api/v1/uploads"))
            .query(&[("filename", filename)])
            .header(reqwest::header::CONTENT_TYPE, mime_type)
            .body(bytes)
            // A 16 MB file over a slow connection takes longer than an API call.
            .timeout(std::time::Duration::from_secs(300));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        read_json(request.send().await.map_err(network)?).await
    }

    /// A customer's media file: its type and bytes.
    pub async fn media(&self, message_id: &str) -> Result<(String, Vec<u8>), ClientError> {
        let mut request = self
            .http
            .get(self.url(&format!("/api/v1/media/{message_id}")));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(network)?;
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
        let mut request = self
            .http
            .request(method, self.url(&format!("/api/v1{path}")));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        read_json(request.send().await.map_err(network)?).await
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

    /// Opens the live stream from `after`.
    pub async fn stream(&self, after: u64) -> Result<Stream, ClientError> {
        let mut ws_url = self.base.clone();
        let scheme = if self.base.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        ws_url
            .set_scheme(scheme)
            .map_err(|_| ClientError::BadUrl(self.base.to_string()))?;
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
        match tokio_tungstenite::connect_async_with_config(request, Some(config), false).await {
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
