//! Reading request bodies so that no body can hurt the hub or the devices it serves: a size limit
//! (413), a time limit (408), a nesting limit, and repair of text the JSON parser would refuse.
//!
//! The nesting limit matters beyond the request: what the hub stores it serves again, two or three
//! levels deeper (inside an event, inside a page), to every device. Devices parse with a budget of
//! 128 levels; accepting at most [`MAX_DEPTH`] keeps everything the hub ever serves well inside it.
//!
//! Text cut in the middle of an emoji arrives as a lone UTF-16 surrogate escape (`"\ud83d"`), which
//! JSON parsers refuse. Botpress never retries a refused message, so refusing it would lose it: the
//! lone surrogate is replaced with U+FFFD (�) and the rest is kept. So is the NUL character
//! (`"\u0000"`), which PostgreSQL cannot store in text: kept, an id or a key holding one would make
//! the database refuse the whole group commit it came in, other customers' messages with it.
//!
//! For the same reason an address (path or query) holding an encoded NUL (`%00`) is refused
//! ([`refuse_nul_in_address`]): nothing a route reads from it can name anything stored.

use std::borrow::Cow;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The deepest nesting of arrays and objects a request body may have.
pub const MAX_DEPTH: usize = 32;

/// How long a client may take to send its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest body an agent or admin call takes: an 8,000-character reply or a 64 KiB payload
/// with room to spare.
pub const API_BODY_LIMIT: usize = 128 * 1024;

/// A JSON request body of at most `LIMIT` bytes, checked as this module describes.
#[derive(Debug)]
pub struct JsonBody<T, const LIMIT: usize = API_BODY_LIMIT>(pub T);

impl<T, S, const LIMIT: usize> FromRequest<S> for JsonBody<T, LIMIT>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let bytes = read_limited(req.into_body(), LIMIT).await?;
        Ok(JsonBody(parse(&bytes)?))
    }
}

/// Reads a whole body of at most `limit` bytes within [`BODY_TIMEOUT`].
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    read_limited_within(body, limit, BODY_TIMEOUT).await
}

/// Reads a whole body of at most `limit` bytes within `time` (a file takes longer than JSON).
pub async fn read_limited_within(
    body: Body,
    limit: usize,
    time: Duration,
) -> Result<Bytes, ApiError> {
    let read = async {
        let mut body = body;
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > limit {
                    return Err(ApiError::TooLarge { limit });
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(bytes))
    };
    tokio::time::timeout(time, read)
        .await
        .map_err(|_| ApiError::Timeout)?
}

/// Refuses, with 400 and a log line, a request whose path or query holds an encoded NUL (`%00`),
/// before any route reads it (see the module's description).
pub async fn refuse_nul_in_address(
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let uri = request.uri();
    let nul = |part: &str| part.contains("%00");
    if nul(uri.path()) || uri.query().is_some_and(nul) {
        tracing::warn!(path = %uri.path(), "refused an address holding a NUL character (%00)");
        let refused = ApiError::BadRequest(
            "the address holds a NUL character (%00), which no name or id can contain".into(),
        );
        return axum::response::IntoResponse::into_response(refused);
    }
    next.run(request).await
}

/// Parses a JSON body after [`inspect`]ing it.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = inspect(bytes)?;
    serde_json::from_slice(&text).map_err(|e| {
        ApiError::BadRequest(if e.is_data() {
            format!("the body does not fit this route: {e}")
        } else {
            format!("the body is not valid JSON: {e}")
        })
    })
}

/// Checks nesting depth and replaces lone surrogate and NUL escapes, without parsing (one pass, no
/// recursion, so no input can exhaust the stack). Borrowed when nothing needed repair.
pub fn inspect(bytes: &[u8]) -> Result<Cow<'_, [u8]>, ApiError> {
    let mut repaired: Option<Vec<u8>> = None;
    let (mut depth, mut in_string, mut i) = (0usize, false, 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'"' => in_string = false,
                b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                    if let Some(unit) = hex4(bytes, i + 2) {
                        let replaced = match unit {
                            0 => true,
                            0xD800..=0xDBFF => {
                                let low = (bytes.get(i + 6) == Some(&b'\\')
                                    && bytes.get(i + 7) == Some(&b'u'))
                                .then(|| hex4(bytes, i + 8))
                                .flatten();
                                if matches!(low, Some(0xDC00..=0xDFFF)) {
                                    i += 12;
                                    continue;
                                }
                                true
                            }
                            0xDC00..=0xDFFF => true,
                            _ => false,
                        };
                        if replaced {
                            let out = repaired.get_or_insert_with(|| bytes.to_vec());
                            out[i..i + 6].copy_from_slice(b"\\ufffd");
                        }
                        i += 6;
                        continue;
                    }
                    i += 2;
                    continue;
                }
                b'\\' => {
                    i += 2;
                    continue;
                }
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(ApiError::BadRequest(format!(
                            "the body nests arrays and objects deeper than {MAX_DEPTH} levels"
                        )));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    Ok(match repaired {
        Some(bytes) => Cow::Owned(bytes),
        None => Cow::Borrowed(bytes),
    })
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    // (`from_str_radix` would also take a sign: `\u+000` is no escape.)
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cut_mid_emoji_is_kept_with_a_replacement_character() {
        let body = br#"{"text":"Bonjour \ud83d","ok":"\ud83d\ude00","low":"\ude00 x"}"#;
        let value: serde_json::Value = parse(body).expect("repaired");
        assert_eq!(value["text"], "Bonjour \u{FFFD}");
        assert_eq!(value["ok"], "\u{1F600}");
        assert_eq!(value["low"], "\u{FFFD} x");
    }

    #[test]
    fn a_nul_character_is_kept_as_a_replacement_character() {
        let body = br#"{"id":"wamid.\u0000x","text":"a\u0000b","path":"C:\\u0000"}"#;
        let value: serde_json::Value = parse(body).expect("repaired");
        assert_eq!(value["id"], "wamid.\u{FFFD}x");
        assert_eq!(value["text"], "a\u{FFFD}b");
        assert_eq!(value["path"], "C:\\u0000");
        assert!(parse::<serde_json::Value>(br#"{"t":"\u+000"}"#).is_err());
    }

    #[test]
    fn an_escaped_backslash_before_u_is_not_an_escape() {
        let body = br#"{"path":"C:\\ud83d"}"#;
        let value: serde_json::Value = parse(body).expect("plain text");
        assert_eq!(value["path"], "C:\\ud83d");
    }

    #[test]
    fn nesting_past_the_limit_is_refused_and_brackets_in_strings_do_not_count() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let err = parse::<serde_json::Value>(deep.as_bytes()).expect_err("too deep");
        assert!(err.to_string().contains("deeper than 32"), "{err}");
        let ok = format!(r#"{{"t":"{}"}}"#, "[".repeat(500));
        assert!(parse::<serde_json::Value>(ok.as_bytes()).is_ok());
        let edge = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse::<serde_json::Value>(edge.as_bytes()).is_ok());
    }
}
