//! Botpress message payloads (ARCHITECTURE.md, Botpress protocol §1.5): checking what an agent sends before it is queued,
//! and the readable text that stands for any payload in lists, search and exports.
//!
//! Botpress rejects a `message-from-agent` whose payload does not match its type, and only after the
//! hub has accepted the agent's message — so the hub refuses a malformed one up front, with a reason
//! the agent can act on. Unknown extra keys are kept (newer SDKs add `userId`, `additionalData`).

use serde_json::{Map, Value};

/// Every message type the hitl channel may declare (SDK 0.11.8 and the current 2.1.0 interface).
pub const KNOWN_KINDS: &[&str] = &[
    "text", "markdown", "image", "audio", "video", "file", "location", "card", "carousel",
    "choice", "dropdown", "bloc",
];

/// Why a payload cannot be sent as the named type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    #[error("{0:?} is not a Botpress message type (known: {known})", known = KNOWN_KINDS.join(", "))]
    UnknownKind(String),
    #[error("a {kind} message needs a JSON object as its payload")]
    NotAnObject { kind: String },
    #[error("a {kind} message needs \"{field}\" as a non-empty string")]
    MissingText { kind: String, field: String },
    #[error("a {kind} message needs \"{field}\" as a number")]
    MissingNumber { kind: String, field: String },
    #[error("a {kind} message needs \"{field}\" as a non-empty list")]
    MissingList { kind: String, field: String },
    #[error("\"{field}\" of a {kind} message must be an http(s) URL")]
    NotAUrl { kind: String, field: String },
    #[error("a {kind} message has no \"{field}\" (it takes {allowed})")]
    UnknownField {
        kind: String,
        field: String,
        allowed: String,
    },
    #[error("a card action is \"postback\", \"url\" or \"say\", not {0:?}")]
    UnknownAction(String),
    #[error("\"{field}\" of a {kind} message may be left out, but not empty (Botpress refuses an empty one)")]
    EmptyOptional { kind: String, field: String },
    #[error("a bloc holds {known} items, not {0:?}", known = BLOC_KINDS.join(", "))]
    NotInBloc(String),
}

/// What a bloc may hold (Botpress's schema: no cards, lists of choices or blocs in a bloc).
pub const BLOC_KINDS: &[&str] = &[
    "text", "markdown", "image", "audio", "video", "file", "location",
];

/// Optional fields Botpress declares as non-empty strings: absent is fine, `""` is refused.
fn optional_non_empty(kind: &str) -> &'static [&'static str] {
    match kind {
        "image" | "audio" | "video" | "file" => &["title"],
        "card" => &["subtitle", "imageUrl"],
        _ => &[],
    }
}

/// The keys each message type's payload may have (Botpress SDK 0.11.8's schemas, §1.5).
fn allowed_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "text" => &["text"],
        "markdown" => &["markdown"],
        "image" => &["imageUrl", "title"],
        "audio" => &["audioUrl", "title"],
        "video" => &["videoUrl", "title"],
        "file" => &["fileUrl", "title"],
        "location" => &["latitude", "longitude", "address", "title"],
        "card" => &["title", "subtitle", "imageUrl", "actions"],
        "carousel" => &["items"],
        "choice" | "dropdown" => &["text", "options"],
        "bloc" => &["items"],
        _ => &[],
    }
}

fn only_known_keys(
    kind: &str,
    map: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), PayloadError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(field) => Err(PayloadError::UnknownField {
            kind: kind.into(),
            field: field.clone(),
            allowed: allowed.join(", "),
        }),
        None => Ok(()),
    }
}

/// Checks `payload` against the schema of `kind`.
pub fn validate(kind: &str, payload: &Value) -> Result<(), PayloadError> {
    let Some(map) = payload.as_object() else {
        return Err(PayloadError::NotAnObject { kind: kind.into() });
    };
    if !KNOWN_KINDS.contains(&kind) {
        return Err(PayloadError::UnknownKind(kind.to_string()));
    }
    only_known_keys(kind, map, allowed_keys(kind))?;
    for field in optional_non_empty(kind) {
        if let Some(value) = map.get(*field) {
            if value.as_str().is_none_or(|s| s.trim().is_empty()) {
                return Err(PayloadError::EmptyOptional {
                    kind: kind.into(),
                    field: (*field).into(),
                });
            }
        }
    }
    let need_text = |field: &str| -> Result<(), PayloadError> {
        match map.get(field).and_then(Value::as_str) {
            Some(s) if !s.trim().is_empty() => Ok(()),
            _ => Err(PayloadError::MissingText {
                kind: kind.into(),
                field: field.into(),
            }),
        }
    };
    let need_url = |field: &str| -> Result<(), PayloadError> {
        need_text(field)?;
        let url = map.get(field).and_then(Value::as_str).unwrap_or_default();
        if is_web_url(url) {
            Ok(())
        } else {
            Err(PayloadError::NotAUrl {
                kind: kind.into(),
                field: field.into(),
            })
        }
    };
    let need_list = |field: &str| -> Result<&Vec<Value>, PayloadError> {
        match map.get(field).and_then(Value::as_array) {
            Some(items) if !items.is_empty() => Ok(items),
            _ => Err(PayloadError::MissingList {
                kind: kind.into(),
                field: field.into(),
            }),
        }
    };
    match kind {
        "text" => need_text("text"),
        "markdown" => need_text("markdown"),
        "image" => need_url("imageUrl"),
        "audio" => need_url("audioUrl"),
        "video" => need_url("videoUrl"),
        "file" => need_url("fileUrl"),
        "location" => {
            for field in ["latitude", "longitude"] {
                if !map.get(field).is_some_and(Value::is_number) {
                    return Err(PayloadError::MissingNumber {
                        kind: kind.into(),
                        field: field.into(),
                    });
                }
            }
            Ok(())
        }
        "card" => {
            need_text("title")?;
            if map.contains_key("imageUrl") {
                need_url("imageUrl")?;
            }
            match map.get("actions") {
                Some(Value::Array(actions)) => actions.iter().try_for_each(|a| {
                    labelled(kind, a, &["action", "label", "value"])?;
                    if let Some(fields) = a.as_object() {
                        only_known_keys("card action", fields, &["action", "label", "value"])?;
                    }
                    match a.get("action").and_then(Value::as_str).unwrap_or_default() {
                        "postback" | "say" => Ok(()),
                        // A button that opens a link must open a web page, nothing else.
                        "url" => {
                            let value = a.get("value").and_then(Value::as_str).unwrap_or_default();
                            if is_web_url(value) {
                                Ok(())
                            } else {
                                Err(PayloadError::NotAUrl {
                                    kind: kind.into(),
                                    field: "actions[].value".into(),
                                })
                            }
                        }
                        other => Err(PayloadError::UnknownAction(other.to_string())),
                    }
                }),
                _ => Err(PayloadError::MissingList {
                    kind: kind.into(),
                    field: "actions".into(),
                }),
            }
        }
        "carousel" => need_list("items")?
            .iter()
            .try_for_each(|card| validate("card", card)),
        "choice" | "dropdown" => {
            need_text("text")?;
            match map.get("options") {
                Some(Value::Array(options)) => options
                    .iter()
                    .try_for_each(|o| labelled(kind, o, &["label", "value"])),
                _ => Err(PayloadError::MissingList {
                    kind: kind.into(),
                    field: "options".into(),
                }),
            }
        }
        "bloc" => need_list("items")?.iter().try_for_each(|item| {
            if let Some(fields) = item.as_object() {
                only_known_keys("bloc item", fields, &["type", "payload"])?;
            }
            let inner = item.get("type").and_then(Value::as_str).unwrap_or_default();
            if !BLOC_KINDS.contains(&inner) {
                return Err(PayloadError::NotInBloc(inner.to_string()));
            }
            validate(inner, item.get("payload").unwrap_or(&Value::Null))
        }),
        other => Err(PayloadError::UnknownKind(other.to_string())),
    }
}

fn is_web_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

fn labelled(kind: &str, value: &Value, fields: &[&str]) -> Result<(), PayloadError> {
    for field in fields {
        match value.get(field).and_then(Value::as_str) {
            Some(s) if !s.trim().is_empty() => {}
            _ => {
                return Err(PayloadError::MissingText {
                    kind: kind.into(),
                    field: (*field).into(),
                })
            }
        }
    }
    Ok(())
}

/// The text that stands for a payload wherever one line is shown or searched: its own text when it
/// has one, else its title, file name or address.
pub fn readable_text(payload: &Map<String, Value>) -> Option<String> {
    let s = |key: &str| {
        payload
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    // A reaction an agent sent (WhatsApp): `{"message_id","emoji"}`.
    if let (Some(_), Some(emoji)) = (payload.get("message_id"), payload.get("emoji")) {
        return Some(match emoji.as_str().filter(|e| !e.is_empty()) {
            Some(emoji) => format!("[reacted {emoji}]"),
            None => "[removed a reaction]".into(),
        });
    }
    s("text")
        .or_else(|| s("markdown"))
        .or_else(|| s("title"))
        .or_else(|| s("filename"))
        .or_else(|| s("address"))
        .or_else(|| {
            // A bloc reads as its items' texts, in order.
            let items = payload.get("items")?.as_array()?;
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| {
                    i.get("payload")
                        .and_then(Value::as_object)
                        .or_else(|| i.as_object())
                        .and_then(readable_text)
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join(" · "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_example_payload_of_the_contract_is_accepted() {
        let ok = [
            ("text", json!({"text": "Hi, the box was crushed"})),
            (
                "image",
                json!({"imageUrl": "https://files.bpcontent.cloud/p.png"}),
            ),
            (
                "file",
                json!({"fileUrl": "https://x/invoice.pdf", "title": "invoice.pdf"}),
            ),
            (
                "location",
                json!({"latitude": 45.5, "longitude": -73.6, "address": "1 Main St"}),
            ),
            (
                "choice",
                json!({"text": "Pick one", "options": [{"label": "Refund", "value": "refund"}]}),
            ),
            (
                "bloc",
                json!({"items": [{"type": "text", "payload": {"text": "See photo"}}, {"type": "image", "payload": {"imageUrl": "https://x/p.png"}}]}),
            ),
            (
                "card",
                json!({"title": "Order 4711", "actions": [{"action": "url", "label": "Track", "value": "https://x"}]}),
            ),
        ];
        for (kind, payload) in ok {
            assert_eq!(validate(kind, &payload), Ok(()), "{kind}");
        }
    }

    #[test]
    fn a_malformed_payload_is_refused_with_the_field_named() {
        let err = validate("image", &json!({"imageUrl": ""})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a image message needs \"imageUrl\" as a non-empty string"
        );
        let err = validate("file", &json!({"fileUrl": "javascript:alert(1)"})).unwrap_err();
        assert!(err.to_string().contains("http(s) URL"), "{err}");
        let err = validate("text", &json!({"text": "hi", "tracking": {"x": 1}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a text message has no \"tracking\" (it takes text)"
        );
        let card = |action: &str, value: &str| json!({"title": "Order", "actions": [{"action": action, "label": "Go", "value": value}]});
        assert!(validate("card", &card("url", "javascript:alert(1)")).is_err());
        assert!(validate("card", &card("url", "https://shop.example/4711")).is_ok());
        assert!(matches!(
            validate("card", &card("open", "x")),
            Err(PayloadError::UnknownAction(_))
        ));
        let err = validate(
            "carousel",
            &json!({"items": [card("url", "data:text/html,x")]}),
        );
        assert!(err.is_err());
        let err = validate("sticker", &json!({})).unwrap_err();
        assert!(matches!(err, PayloadError::UnknownKind(k) if k == "sticker"));
        let err =
            validate("bloc", &json!({"items": [{"type": "bloc", "payload": {}}]})).unwrap_err();
        assert!(matches!(err, PayloadError::NotInBloc(_)));
        // What Botpress refuses is refused here, with the reason, not after the agent saw "Sent".
        let err = validate(
            "bloc",
            &json!({"items": [{"type": "card", "payload": {"title": "x", "actions": []}}]}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a bloc holds text, markdown, image, audio, video, file, location items, not \"card\""
        );
        let err =
            validate("file", &json!({"fileUrl": "https://x/a.pdf", "title": ""})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"title\" of a file message may be left out, but not empty (Botpress refuses an empty one)"
        );
        assert!(matches!(
            validate(
                "card",
                &json!({"title": "Order", "subtitle": " ", "actions": []})
            ),
            Err(PayloadError::EmptyOptional { .. })
        ));
        assert!(validate("file", &json!({"fileUrl": "https://x/a.pdf"})).is_ok());
        assert!(validate(
            "location",
            &json!({"latitude": 1, "longitude": 2, "address": ""})
        )
        .is_ok());
        assert!(validate("location", &json!({"latitude": "45"})).is_err());
        assert!(validate("text", &json!("just a string")).is_err());
    }

    #[test]
    fn a_payload_reads_as_its_text_title_or_items() {
        let map = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(
            readable_text(&map(
                json!({"fileUrl": "https://x/i.pdf", "title": "invoice.pdf"})
            )),
            Some("invoice.pdf".into())
        );
        assert_eq!(
            readable_text(&map(
                json!({"items": [{"type": "text", "payload": {"text": "See photo"}}, {"type": "image", "payload": {"imageUrl": "https://x", "title": "crushed box"}}]})
            )),
            Some("See photo · crushed box".into())
        );
        assert_eq!(readable_text(&map(json!({"imageUrl": "https://x"}))), None);
    }
}
