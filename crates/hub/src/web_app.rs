//! The inbox in a browser: the app's own UI (`ui/dist`, built by `npm run build`) served at
//! `/app/`, so an agent without the desktop app (or on a phone) signs in with a browser. The UI
//! finds it is not inside Tauri and talks to this hub over HTTP and the event stream, signed in by
//! a cookie (see [`crate::auth`]).
//!
//! Every page carries a strict Content-Security-Policy: scripts and styles only from the hub
//! itself, connections only back to it, no frames. Customer content is drawn as text by the UI;
//! the policy is the second wall if that ever slips.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::Hub;

/// The built UI. In debug builds it is read from disk when asked for (a rebuilt UI shows without
/// rebuilding the hub); in release builds it is inside the binary. A hub built before the UI
/// serves a page that says so instead of failing to build.
#[derive(rust_embed::RustEmbed)]
#[folder = "../../ui/dist/"]
#[allow_missing = true]
struct Built;

/// `'unsafe-inline'` for styles only: Svelte sets element styles (the list's row positions) as
/// attributes. Images and media may be `blob:` (attachments the agent is about to send) or
/// `data:` (icons inlined by the build).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; \
     font-src 'self'; connect-src 'self'; manifest-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'; object-src 'none'";

pub fn routes() -> Router<Hub> {
    Router::new()
        .route("/", get(|| async { Redirect::permanent("/app/") }))
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(|| async { file("index.html") }))
        .route(
            "/app/{*path}",
            get(|Path(path): Path<String>| async move { file(&path) }),
        )
}

/// One file of the built UI; a path that is not a file (a screen the UI draws itself) gets the
/// UI's page, so a reload anywhere under `/app/` works.
fn file(path: &str) -> Response {
    let (name, found) = match Built::get(path) {
        Some(found) => (path, found),
        None => match Built::get("index.html") {
            // Assets are real files: a missing one is a 404, not the page.
            Some(_) if path.starts_with("assets/") => {
                return StatusCode::NOT_FOUND.into_response();
            }
            Some(found) => ("index.html", found),
            None => {
                tracing::warn!("web app: the UI was not built into this hub; /app/ is empty");
                return (
                    StatusCode::NOT_FOUND,
                    "This hub was built without its web UI: run `npm run build` in ui/, then build the hub again.",
                )
                    .into_response();
            }
        },
    };
    let mime = found.metadata.mimetype().to_string();
    // Vite names assets by their content's hash: they never change, so browsers keep them. The
    // page itself is checked every time, so a new hub's UI is picked up at once.
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = (StatusCode::OK, found.data.into_owned()).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
