//! The admin-only agent API under `/api/v1/admin`: the same operations as the admin CLI, for a hub
//! that runs elsewhere. Every route answers 403 to agents who are not admins.

use axum::extract::{Path, State};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use baton_protocol::{Agent, Role, Template};
use serde::Deserialize;

use crate::admin::{self, AdminError, AgentUpdate, ChannelUpdate, ChannelView};
use crate::auth::SignedIn;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::store::StoreError;
use crate::Hub;

pub fn routes() -> Router<Hub> {
    Router::new()
        .route("/agents", get(list_agents).post(add_agent))
        .route("/agents/{id}", patch(update_agent))
        .route("/channels", get(list_channels))
        .route("/report", get(report))
        .route("/channels/{id}", patch(update_channel))
        .route("/tags", get(list_tags).put(set_tags))
        .route("/templates", get(list_templates).post(put_template))
        .route("/templates/{id}", delete(remove_template))
        .route("/botpress", post(add_channel))
        .route("/whatsapp", post(add_whatsapp))
        .route(
            "/whatsapp/{id}",
            patch(update_whatsapp).delete(remove_whatsapp),
        )
        .route("/bots", post(add_bot))
        .route("/bots/{id}", patch(update_bot).delete(remove_bot))
        .route("/bots/{id}/rotate-secret", post(rotate_bot_secret))
}

#[derive(serde::Deserialize)]
struct NewBot {
    name: String,
    events_url: String,
}

/// `{"name","events_url"}` → `{"id","token","signing_secret"}` (shown only now).
async fn add_bot(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    JsonBody(body): JsonBody<NewBot>,
) -> Result<Json<admin::BotCredentials>, ApiError> {
    blocking(move || admin::add_bot_channel(&hub, &body.name, &body.events_url)).await
}

async fn update_bot(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    Path(id): Path<String>,
    JsonBody(update): JsonBody<admin::BotUpdate>,
) -> Result<Json<ChannelView>, ApiError> {
    blocking(move || admin::update_bot(&hub, &id, update)).await
}

async fn remove_bot(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    Path(id): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    let update = admin::BotUpdate {
        removed: Some(true),
        ..Default::default()
    };
    blocking(move || admin::update_bot(&hub, &id, update)).await
}

async fn rotate_bot_secret(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    Path(id): Path<String>,
) -> Result<Json<admin::BotCredentials>, ApiError> {
    blocking(move || admin::rotate_bot_secret(&hub, &id)).await
}

/// Extracts a signed-in admin, or answers 403.
struct SignedInAdmin;

impl axum::extract::FromRequestParts<Hub> for SignedInAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        hub: &Hub,
    ) -> Result<Self, ApiError> {
        let SignedIn(agent) = SignedIn::from_request_parts(parts, hub).await?;
        if agent.role != Role::Admin {
            return Err(ApiError::Forbidden("this needs an admin".into()));
        }
        Ok(SignedInAdmin)
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::EmailTaken(_) => ApiError::Conflict(e.to_string()),
            AdminError::Invalid(m) if m.starts_with("no ") => ApiError::NotFound(m),
            AdminError::Invalid(m) if m.contains("last admin") => ApiError::Conflict(m),
            AdminError::Invalid(m) => ApiError::BadRequest(m),
            AdminError::Hash(m) => ApiError::BadRequest(m),
            AdminError::Store(s) => ApiError::Internal(s),
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<Json<T>, ApiError> {
    let value = tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
    Ok(Json(value))
}

#[derive(Debug, Deserialize)]
struct NewWhatsApp {
    name: String,
    phone_number_id: String,
    verify_token: String,
    app_secret: String,
    access_token: String,
    #[serde(default)]
    graph_url: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct AddedWhatsApp {
    id: String,
    /// Give Meta the hub's public URL followed by this.
    webhook_path: String,
}

async fn add_whatsapp(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    JsonBody(body): JsonBody<NewWhatsApp>,
) -> Result<Json<AddedWhatsApp>, ApiError> {
    blocking(move || {
        let (id, webhook_path) = admin::add_whatsapp_channel(
            &hub,
            &admin::NewWhatsApp {
                name: &body.name,
                phone_number_id: &body.phone_number_id,
                verify_token: &body.verify_token,
                app_secret: &body.app_secret,
                access_token: &body.access_token,
                graph_url: body.graph_url.as_deref(),
            },
        )?;
        Ok(AddedWhatsApp { id, webhook_path })
    })
    .await
}

async fn update_whatsapp(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    Path(id): Path<String>,
    JsonBody(update): JsonBody<admin::WhatsAppUpdate>,
) -> Result<Json<ChannelView>, ApiError> {
    blocking(move || admin::update_whatsapp(&hub, &id, update)).await
}

async fn remove_whatsapp(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    Path(id): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    let update = admin::WhatsAppUpdate {
        removed: Some(true),
        ..Default::default()
    };
    blocking(move || admin::update_whatsapp(&hub, &id, update)).await
}

async fn list_agents(
    State(hub): State<Hub>,
    _: SignedInAdmin,
) -> Result<Json<Vec<Agent>>, ApiError> {
    blocking(move || admin::list_agents(&hub)).await
}

#[derive(Debug, Deserialize)]
struct NewAgent {
    email: String,
    name: String,
    password: String,
    #[serde(default)]
    role: Option<Role>,
}

async fn add_agent(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    JsonBody(b): JsonBody<NewAgent>,
) -> Result<Json<Agent>, ApiError> {
    let new = b;
    blocking(move || {
        admin::add_agent(
            &hub,
            &new.email,
            &new.name,
            new.role.unwrap_or(Role::Agent),
            &new.password,
        )
    })
    .await
}

async fn update_agent(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<AgentUpdate>,
) -> Result<Json<Agent>, ApiError> {
    let update = b;
    blocking(move || admin::update_agent(&hub, &id, update)).await
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    since: String,
    until: Option<String>,
    by: Option<String>,
    format: Option<String>,
}

/// `GET /api/v1/admin/report?since=7d&by=agent&format=csv` (JSON rows without `format=csv`):
/// what `baton-hub report` prints.
async fn report(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    axum::extract::Query(q): axum::extract::Query<ReportQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format is csv or json, not {other:?}"
            )))
        }
    };
    let hub2 = hub.clone();
    let (rows, by) = tokio::task::spawn_blocking(move || {
        crate::report::asked(
            &*hub2.store().reader()?,
            hub2.now(),
            &q.since,
            q.until.as_deref(),
            q.by.as_deref(),
        )
    })
    .await
    .map_err(|_| ApiError::Internal(StoreError::Poisoned))?
    .map_err(|e| match e {
        crate::report::Asked::Invalid(why) => ApiError::BadRequest(why),
        crate::report::Asked::Store(e) => ApiError::Internal(e),
    })?;
    if csv {
        let text = crate::report::csv(&rows, by)
            .map_err(|e| ApiError::Internal(StoreError::CommitFailed(e.to_string())))?;
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            text,
        )
            .into_response());
    }
    Ok(Json(rows).into_response())
}

async fn list_channels(
    State(hub): State<Hub>,
    _: SignedInAdmin,
) -> Result<Json<Vec<ChannelView>>, ApiError> {
    blocking(move || admin::list_channels(&hub)).await
}

#[derive(Debug, Deserialize)]
struct NewChannel {
    name: String,
    #[serde(default)]
    webhook_url: Option<String>,
}

/// Creates a Botpress channel; the answer carries the endpoint path, the only time it is shown.
async fn add_channel(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    JsonBody(b): JsonBody<NewChannel>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let new = b;
    blocking(move || {
        let channel = admin::add_botpress_channel(&hub, &new.name, new.webhook_url.as_deref())?;
        Ok(serde_json::json!({"id": channel.id, "endpoint_path": channel.endpoint_path}))
    })
    .await
}

async fn update_channel(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ChannelUpdate>,
) -> Result<Json<ChannelView>, ApiError> {
    let update = b;
    blocking(move || admin::update_channel(&hub, &id, update)).await
}

async fn list_tags(
    State(hub): State<Hub>,
    _: SignedInAdmin,
) -> Result<Json<Vec<String>>, ApiError> {
    blocking(move || admin::list_tags(&hub)).await
}

#[derive(Debug, Deserialize)]
struct Tags {
    tags: Vec<String>,
}

async fn set_tags(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    JsonBody(b): JsonBody<Tags>,
) -> Result<Json<Vec<String>>, ApiError> {
    let tags = b.tags;
    blocking(move || admin::set_tags(&hub, &tags)).await
}

async fn list_templates(
    State(hub): State<Hub>,
    _: SignedInAdmin,
) -> Result<Json<Vec<Template>>, ApiError> {
    blocking(move || admin::list_templates(&hub)).await
}

#[derive(Debug, Deserialize)]
struct NewTemplate {
    name: String,
    text: String,
}

async fn put_template(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    JsonBody(b): JsonBody<NewTemplate>,
) -> Result<Json<Template>, ApiError> {
    let new = b;
    blocking(move || admin::put_template(&hub, &new.name, &new.text)).await
}

async fn remove_template(
    State(hub): State<Hub>,
    _: SignedInAdmin,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || admin::remove_template(&hub, &id).map(|()| serde_json::json!({}))).await
}
