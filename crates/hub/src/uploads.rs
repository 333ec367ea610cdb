//! Files agents send (a photo, a PDF, a voice note): uploaded to the hub first, kept by
//! [`crate::files`] (in `DATA/media/uploads/<sha256>`, or in the database of hubs on PostgreSQL),
//! then named by that hash in a message. Keeping the file on the hub
//! means a message can wait in the delivery queue (the customer's platform down, the hub restarted)
//! and still go out with its file; naming it by its hash means uploading the same file twice keeps
//! it once, and a retried upload is harmless.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use baton_protocol::Upload;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::auth::SignedIn;
use crate::error::ApiError;
use crate::files::FileKind;
use crate::Hub;

/// The largest file an agent may send: WhatsApp's limit for audio and video (documents may be
/// larger there, but a support reply rarely is, and the hub holds one upload in memory at a time).
pub const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

#[derive(Deserialize)]
pub struct UploadQuery {
    filename: Option<String>,
}

/// `POST /api/v1/uploads?filename=NAME` with the file as the body and its `Content-Type`.
pub async fn receive(
    State(hub): State<Hub>,
    SignedIn(agent): SignedIn,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Upload>, ApiError> {
    let mime_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
        .filter(|v| is_mime_type(v))
        .ok_or_else(|| {
            ApiError::BadRequest("an upload needs the file's Content-Type (e.g. image/jpeg)".into())
        })?;
    let filename = clean_filename(query.filename.as_deref().unwrap_or_default())
        .ok_or_else(|| ApiError::BadRequest("an upload needs ?filename=".into()))?;
    // 16 MB over a slow connection (1 Mbit/s) takes over two minutes.
    let bytes = crate::body::read_limited_within(
        body,
        MAX_UPLOAD_BYTES,
        std::time::Duration::from_secs(300),
    )
    .await?;
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("the file is empty".into()));
    }
    let upload = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len() as u64;
    crate::files::keep(&hub, FileKind::Upload, &upload, bytes).await?;
    tracing::info!(agent = %agent.id, size, mime = %mime_type, "uploads: an agent uploaded a file");
    Ok(Json(Upload {
        upload,
        mime_type,
        filename,
        size,
    }))
}

/// An upload's name as the hub keeps it, if `upload` is one (a sha256 in hex).
fn upload_id(upload: &str) -> Option<String> {
    (upload.len() == 64 && upload.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| upload.to_ascii_lowercase())
}

fn missing(upload: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "no uploaded file {upload:?}: upload it first (POST /api/v1/uploads)"
    ))
}

/// The size of an upload the hub keeps (blocking, through `read`), or why it cannot be named in a
/// message.
pub fn size(hub: &Hub, read: &dyn crate::store::Read, upload: &str) -> Result<u64, ApiError> {
    let id = upload_id(upload).ok_or_else(|| missing(upload))?;
    crate::files::size_blocking(hub, read, FileKind::Upload, &id)?.ok_or_else(|| missing(upload))
}

/// An upload's bytes, if the hub keeps it.
pub async fn read(hub: &Hub, upload: &str) -> Result<Vec<u8>, ApiError> {
    let id = upload_id(upload).ok_or_else(|| missing(upload))?;
    crate::files::read(hub, FileKind::Upload, &id)
        .await?
        .ok_or_else(|| missing(upload))
}

/// `type/subtype`, in the characters RFC 6838 allows.
fn is_mime_type(v: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    matches!(v.split_once('/'), Some((t, s)) if ok(t) && ok(s))
}

/// The name the customer sees: no path, no control characters, at most 240 bytes.
fn clean_filename(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut clean: String = base.chars().filter(|c| !c.is_control()).collect();
    clean = clean.trim().to_string();
    while clean.len() > 240 {
        clean.pop();
    }
    (!clean.is_empty() && clean != "." && clean != "..").then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_loses_its_path_and_control_characters() {
        assert_eq!(
            clean_filename("C:\\Users\\me\\receipt.pdf").as_deref(),
            Some("receipt.pdf")
        );
        assert_eq!(
            clean_filename("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            clean_filename("fac\u{7}ture été.pdf").as_deref(),
            Some("facture été.pdf")
        );
        assert_eq!(clean_filename(".."), None);
        assert_eq!(clean_filename("  "), None);
    }

    #[test]
    fn only_a_real_mime_type_is_taken() {
        assert!(is_mime_type("image/jpeg"));
        assert!(is_mime_type(
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        ));
        assert!(!is_mime_type("image"));
        assert!(!is_mime_type("image/"));
        assert!(!is_mime_type("text/html<script>"));
    }
}
