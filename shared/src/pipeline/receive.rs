//! The receive pipeline, behind both webhook Lambdas and the gateway: route → org → candidate
//! connections of the provider → authenticate against each candidate's secret → parse → store
//! events → advance message statuses → the provider's acknowledgement.

use crate::deps::Deps;
use crate::domain::phone::{self, KeywordIntent};
use crate::domain::{Connection, Event, InboundEvent, Provider, StatusEvent};
use crate::providers::{AuthError, InboundReport, ProviderAdapter, StatusReport, WebhookItem};
use crate::stores::{InboundPart, StoreError};
use crate::webhook::{Route, WebhookReply, WebhookRequest};

/// Larger than any provider's batch (Infobip's 2000-report buckets included).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a webhook was refused. The display text is what the provider (and whoever reads its
/// logs) sees: it names the problem and never carries a secret or an internal detail.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("unknown provider '{0}'")]
    UnknownProvider(String),
    #[error("unknown org '{0}'")]
    UnknownOrg(String),
    #[error("org '{org_id}' has no enabled {provider} connection")]
    NoConnection { org_id: String, provider: Provider },
    #[error("body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("unsupported content type {0}")]
    UnsupportedMediaType(String),
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    #[error("authentication failed: {0}")]
    Forbidden(String),
    #[error("unreadable payload: {0}")]
    Unparseable(String),
    #[error("storage unavailable, try again")]
    Storage(#[source] StoreError),
}

impl From<StoreError> for ReceiveError {
    fn from(err: StoreError) -> Self {
        ReceiveError::Storage(err)
    }
}

impl ReceiveError {
    pub fn http_status(&self) -> u16 {
        match self {
            ReceiveError::UnknownProvider(_)
            | ReceiveError::UnknownOrg(_)
            | ReceiveError::NoConnection { .. } => 404,
            ReceiveError::TooLarge => 413,
            ReceiveError::UnsupportedMediaType(_) => 415,
            ReceiveError::Unauthenticated(_) => 401,
            ReceiveError::Forbidden(_) => 403,
            ReceiveError::Unparseable(_) => 400,
            ReceiveError::Storage(_) => 503,
        }
    }

    pub fn reply(&self) -> WebhookReply {
        WebhookReply::error(self.http_status(), &self.to_string())
    }
}

/// What one request did, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub events: usize,
    pub duplicates: usize,
    pub bad_items: usize,
    pub pending_parts: usize,
}

/// Handles one webhook request and always answers: the provider's acknowledgement or an error
/// reply. Never panics on any input.
#[tracing::instrument(skip_all, fields(route = route.kind.as_str(), provider = %route.provider_slug, org_id = %route.org_id))]
pub async fn receive(deps: &Deps, route: &Route, request: &WebhookRequest) -> WebhookReply {
    match handle(deps, route, request).await {
        Ok((reply, recorded)) => {
            tracing::info!(
                events = recorded.events,
                duplicates = recorded.duplicates,
                bad_items = recorded.bad_items,
                pending_parts = recorded.pending_parts,
                "webhook recorded"
            );
            reply
        }
        Err(err) => {
            match &err {
                ReceiveError::Storage(source) => {
                    tracing::error!(error = %source, "webhook not stored")
                }
                other => {
                    tracing::warn!(status = other.http_status(), error = %other, "webhook refused")
                }
            }
            err.reply()
        }
    }
}

/// Finds the connection whose secret verifies the request.
async fn authenticate<'a>(
    deps: &'a Deps,
    candidates: &'a [Connection],
    request: &WebhookRequest,
) -> Result<(&'a Connection, &'a dyn ProviderAdapter), ReceiveError> {
    let secrets_store = &deps.stores.secrets;
    let mut media_refusal = None;
    let mut invalid = None;
    let mut missing = None;
    for connection in candidates {
        let Some(adapter) = deps.registry.get(connection.provider) else {
            continue;
        };
        if let Err(refused) = adapter.check_media_type(request) {
            media_refusal = Some(refused.0);
            continue;
        }
        let Some(secrets) = secrets_store
            .get_secrets(&connection.org_id, &connection.connection_id)
            .await?
        else {
            tracing::warn!(connection_id = %connection.connection_id, "connection has no stored secret");
            continue;
        };
        let mut verdict = adapter.authenticate(request, connection, &secrets);
        if let Err(AuthError::Invalid(_)) = verdict {
            // The secret may have been rotated since it was cached: one look at the store.
            let fresh = secrets_store
                .get_fresh_secrets(&connection.org_id, &connection.connection_id)
                .await?;
            if let Some(fresh) = fresh.filter(|f| f.to_json() != secrets.to_json()) {
                verdict = adapter.authenticate(request, connection, &fresh);
            }
        }
        match verdict {
            Ok(()) => return Ok((connection, adapter)),
            Err(AuthError::Invalid(what)) => invalid = Some(format!("invalid {what}")),
            Err(AuthError::Missing(what)) => missing = Some(format!("missing {what}")),
        }
    }
    Err(match (invalid, missing, media_refusal) {
        (Some(why), _, _) => ReceiveError::Forbidden(why),
        (None, Some(why), _) => ReceiveError::Unauthenticated(why),
        (None, None, Some(media)) => ReceiveError::UnsupportedMediaType(media),
        (None, None, None) => {
            ReceiveError::Unauthenticated("no connection could verify the request".into())
        }
    })
}

async fn handle(
    deps: &Deps,
    route: &Route,
    request: &WebhookRequest,
) -> Result<(WebhookReply, Recorded), ReceiveError> {
    let provider = Provider::from_route_slug(&route.provider_slug)
        .ok_or_else(|| ReceiveError::UnknownProvider(route.provider_slug.clone()))?;
    if request.body.len() > MAX_BODY_BYTES {
        return Err(ReceiveError::TooLarge);
    }
    let connections = deps
        .stores
        .connections
        .list_connections(&route.org_id)
        .await?;
    if connections.is_empty() {
        return Err(ReceiveError::UnknownOrg(route.org_id.clone()));
    }
    let candidates: Vec<Connection> = connections
        .into_iter()
        .filter(|c| c.enabled && provider.route_candidates().contains(&c.provider))
        .collect();
    if candidates.is_empty() {
        return Err(ReceiveError::NoConnection {
            org_id: route.org_id.clone(),
            provider,
        });
    }
    let (connection, adapter) = authenticate(deps, &candidates, request).await?;
    let items = adapter
        .parse(request, route.kind, connection)
        .map_err(|e| ReceiveError::Unparseable(e.0))?;

    let mut recorded = Recorded::default();
    for item in &items {
        match item {
            Ok(WebhookItem::Status(report)) => {
                record_status(deps, connection, request, report, &mut recorded).await?
            }
            Ok(WebhookItem::Inbound(report)) => {
                record_inbound(deps, connection, request, report, &mut recorded).await?
            }
            Err(bad) => {
                recorded.bad_items += 1;
                tracing::warn!(connection_id = %connection.connection_id, error = %bad, "bad item in webhook batch");
            }
        }
    }
    if !items.is_empty() && recorded.bad_items == items.len() {
        let first = items
            .iter()
            .find_map(|i| i.as_ref().err())
            .map(|e| e.0.clone());
        return Err(ReceiveError::Unparseable(first.unwrap_or_default()));
    }
    Ok((adapter.acknowledge(route.kind, connection), recorded))
}

async fn record_status(
    deps: &Deps,
    connection: &Connection,
    request: &WebhookRequest,
    report: &StatusReport,
    recorded: &mut Recorded,
) -> Result<(), ReceiveError> {
    let messages = &deps.stores.messages;
    let org_id = &connection.org_id;
    // Our id from the callback finds the message even when the report beat our own write of the
    // provider's id; the provider's id is the fallback.
    let by_our_id = match &report.message_id {
        Some(id) => messages
            .get_message(org_id, id)
            .await?
            .filter(|m| m.connection_id == connection.connection_id),
        None => None,
    };
    let message = match by_our_id {
        Some(m) => Some(m),
        None => {
            messages
                .find_by_provider_message_id(
                    org_id,
                    &connection.connection_id,
                    &report.provider_message_id,
                )
                .await?
        }
    };
    // The status moves first: if the event write then fails, the provider's retry records the
    // event and the (idempotent) status step changes nothing.
    if let Some(message) = &message {
        messages
            .advance_status(
                org_id,
                &message.message_id,
                &report.provider_message_id,
                report.status,
                request.received_at,
            )
            .await?;
        if report.opt_out {
            messages
                .set_opt_out(org_id, &message.to, true, request.received_at)
                .await?;
        }
    }
    let event = Event::Status(StatusEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        org_id: org_id.clone(),
        connection_id: connection.connection_id.clone(),
        provider: connection.provider,
        provider_message_id: report.provider_message_id.clone(),
        message_id: message.map(|m| m.message_id),
        status: report.status,
        provider_status: report.provider_status.clone(),
        error_code: report.error_code.clone(),
        occurred_at: report.occurred_at,
        received_at: request.received_at,
    });
    record_event(deps, connection, &event, &report.dedupe_key, recorded).await
}

/// Records the event once per dedupe key, scoped to the connection that owns the report.
async fn record_event(
    deps: &Deps,
    connection: &Connection,
    event: &Event,
    dedupe_key: &str,
    recorded: &mut Recorded,
) -> Result<(), ReceiveError> {
    let key = format!("{}:{dedupe_key}", connection.connection_id);
    if deps.stores.messages.record_event(event, &key).await? {
        recorded.events += 1;
    } else {
        recorded.duplicates += 1;
    }
    Ok(())
}

async fn record_inbound(
    deps: &Deps,
    connection: &Connection,
    request: &WebhookRequest,
    report: &InboundReport,
    recorded: &mut Recorded,
) -> Result<(), ReceiveError> {
    let messages = &deps.stores.messages;
    let org_id = &connection.org_id;
    let from = phone::normalize(&report.from);
    let text = match &report.part {
        None => report.text.clone(),
        Some(part) => {
            let joined = messages
                .add_inbound_part(&InboundPart {
                    org_id: org_id.clone(),
                    connection_id: connection.connection_id.clone(),
                    from: from.clone(),
                    reference: part.reference.clone(),
                    total: part.total,
                    index: part.index,
                    provider_message_id: report.provider_message_id.clone(),
                    text: report.text.clone(),
                    received_at: request.received_at,
                })
                .await?;
            match joined {
                Some(joined) => joined.text,
                None => {
                    recorded.pending_parts += 1;
                    return Ok(());
                }
            }
        }
    };
    let intent = keyword_intent(report, &text);
    match intent {
        KeywordIntent::OptOut => {
            messages
                .set_opt_out(org_id, &from, true, request.received_at)
                .await?
        }
        KeywordIntent::OptIn => {
            messages
                .set_opt_out(org_id, &from, false, request.received_at)
                .await?
        }
        KeywordIntent::None => {}
    }
    let in_reply_to = messages
        .latest_message_to(org_id, &connection.connection_id, &from)
        .await?;
    let event = Event::Inbound(InboundEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        org_id: org_id.clone(),
        connection_id: connection.connection_id.clone(),
        provider: connection.provider,
        provider_message_id: report.provider_message_id.clone(),
        from,
        to: phone::normalize(&report.to),
        text,
        in_reply_to,
        opt_out: intent == KeywordIntent::OptOut,
        occurred_at: report.occurred_at,
        received_at: request.received_at,
    });
    record_event(deps, connection, &event, &report.dedupe_key, recorded).await
}

fn keyword_intent(report: &InboundReport, text: &str) -> KeywordIntent {
    if report.opt_out {
        KeywordIntent::OptOut
    } else {
        phone::keyword_intent(text)
    }
}
