//! The one error type every HTTP handler returns, and how each variant is answered.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_protocol::ErrorBody;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request cannot be understood (bad JSON, wrong `type`, missing field).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or one the hub does not know.
    #[error("sign in first: the request has no valid token")]
    Unauthorized,
    /// 401 on login: the email or password is wrong (deliberately not saying which).
    #[error("wrong email or password")]
    BadCredentials,
    /// 403: signed in, but this needs an admin (or the handoff's owner).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such route, secret or entity. The text never echoes a secret.
    #[error("{0}")]
    NotFound(String),
    /// 409 `conflict`: someone else got there first; the message names them.
    #[error("{0}")]
    Conflict(String),
    /// 409 `capacity`: the agent already holds as many handoffs as they may.
    #[error("{0}")]
    Capacity(String),
    /// 409 `closed`: the handoff is resolved or cancelled; the bot has the conversation again.
    #[error("{0}")]
    Closed(String),
    /// 409 `window_closed`: WhatsApp's 24-hour window with this customer has closed; only an
    /// approved template can reach them.
    #[error("{0}")]
    WindowClosed(String),
    /// 410 `gone`: the cursor is older than the log the hub keeps, or newer than its log (the hub's
    /// data was reset). The client takes a fresh snapshot.
    #[error("{0}")]
    Gone(String),
    /// 409 `txn_reused`: this `txn_id` was already used for a different command.
    #[error("{0}")]
    TxnReused(String),
    /// 413: the body is larger than the route accepts.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// 408: the body did not arrive in time.
    #[error("the request body did not arrive in time")]
    Timeout,
    /// 429: too many failed sign-ins; try again after `retry_after` seconds.
    #[error("too many failed sign-ins; try again in {retry_after} s")]
    Throttled { retry_after: u64 },
    /// 503 `unavailable`: the hub is at a limit right now (too many open streams); try again later.
    #[error("{0}")]
    Unavailable(String),
    /// 500: logged in full, answered without details.
    #[error("internal error")]
    Internal(#[from] StoreError),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::BadCredentials => "bad_credentials",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Capacity(_) => "capacity",
            Self::Closed(_) => "closed",
            Self::WindowClosed(_) => "window_closed",
            Self::Gone(_) => "gone",
            Self::TxnReused(_) => "txn_reused",
            Self::TooLarge { .. } => "too_large",
            Self::Timeout => "timeout",
            Self::Throttled { .. } => "throttled",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_)
            | Self::Capacity(_)
            | Self::Closed(_)
            | Self::WindowClosed(_)
            | Self::TxnReused(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl ApiError {
    pub fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(err) = &self {
            tracing::error!(error = %err, "request failed");
        }
        let body = ErrorBody {
            code: self.code().to_string(),
            message: self.to_string(),
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Self::Throttled { retry_after } = self {
            if let Ok(value) = axum::http::HeaderValue::from_str(&retry_after.to_string()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}
