//! The one error type every HTTP handler returns, and how each variant is answered.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_protocol::ErrorBody;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
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
    /// 404: no such route, secret or entity. The text never echoes a secret.
    #[error("{0}")]
    NotFound(String),
    /// 413: the body is larger than the route accepts.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
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
            Self::NotFound(_) => "not_found",
            Self::TooLarge { .. } => "too_large",
            Self::Internal(_) => "internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
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
        (self.status(), Json(body)).into_response()
    }
}
