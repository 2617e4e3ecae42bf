//! The receive pipeline, behind both webhook Lambdas and the gateway: route → org → candidate
//! connections of the provider → authenticate against each candidate's secret → parse → store
//! events → advance message statuses → the provider's acknowledgement.

use crate::deps::Deps;
use crate::domain::phone::{self, KeywordIntent};
use crate::domain::{Connection, Event, InboundEvent, Provider, StatusEvent};
use crate::providers::{
    AuthError, InboundReport, ParseError, ProviderAdapter, ReplyTo, StatusReport, WebhookItem,
};
use crate::stores::{HeldReport, InboundPart, ReadMessage, StoreError, release_held_reports};
use crate::webhook::{Route, WebhookReply, WebhookRequest};
use futures_util::StreamExt;
use request_log::RequestLine;

mod request_log;

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
    /// A candidate connection's secret could not be read: the request may be genuine.
    #[error("the connection's credentials are unavailable, try again")]
    SecretUnavailable,
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
            ReceiveError::Storage(_) | ReceiveError::SecretUnavailable => 503,
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
    /// Status reports kept aside: no message of the connection names their provider id (yet).
    pub held: usize,
}

impl Recorded {
    /// One event written: new, or a repeat of one recorded before.
    fn count(&mut self, new: bool) {
        if new {
            self.events += 1;
        } else {
            self.duplicates += 1;
        }
    }

    fn add(&mut self, other: Recorded) {
        self.events += other.events;
        self.duplicates += other.duplicates;
        self.bad_items += other.bad_items;
        self.pending_parts += other.pending_parts;
        self.held += other.held;
    }
}

/// Items of one request being recorded at once.
const ITEMS_IN_FLIGHT: usize = 16;

/// Handles one webhook request and always answers: the provider's acknowledgement or an error
/// reply. Never panics on any input. Writes one `webhook request` line per request (org,
/// provider, connection, route, outcome, HTTP status, latency and what was recorded); nothing in
/// it is a secret, a message body or a phone number.
#[tracing::instrument(skip_all, fields(route = route.kind.as_str(), provider = %route.provider_slug, org_id = %route.org_id))]
pub async fn receive(deps: &Deps, route: &Route, request: &WebhookRequest) -> WebhookReply {
    let started = std::time::Instant::now();
    let mut owner = None;
    let outcome = handle(deps, route, request, &mut owner).await;
    let line = RequestLine::new(route, owner.as_ref(), started.elapsed());
    match outcome {
        Ok((reply, recorded)) => {
            line.recorded(&reply, &recorded);
            reply
        }
        Err(err) => {
            let reply = err.reply();
            line.refused(&err, &reply);
            reply
        }
    }
}

/// Finds the connection whose secret verifies the request: first every candidate against its
/// cached secret (a junk request costs no secret-store call), then, only if none verified, the
/// candidates whose secret refused it against a fresh read (a rotated secret; the cache rations
/// those reads per connection). A secret that cannot be read is our fault, not the provider's:
/// when no other candidate verifies, the answer is a 5xx so that the provider tries again.
async fn authenticate<'a>(
    deps: &'a Deps,
    candidates: &'a [Connection],
    request: &WebhookRequest,
) -> Result<(&'a Connection, &'a dyn ProviderAdapter), ReceiveError> {
    let secrets_store = &deps.stores.secrets;
    let mut verdicts = Verdicts::default();
    let mut refused = Vec::new();
    for connection in candidates {
        let Some(adapter) = deps.registry.get(connection.provider) else {
            continue;
        };
        if let Err(refusal) = adapter.check_media_type(request) {
            verdicts.media = Some(refusal.0);
            continue;
        }
        let secrets = match secrets_store
            .get_secrets(&connection.org_id, &connection.connection_id)
            .await
        {
            Ok(Some(secrets)) => secrets,
            Ok(None) => {
                verdicts.unreadable_secret(connection, "the connection has no stored secret");
                continue;
            }
            Err(err) => {
                verdicts.unreadable_secret(connection, &err.to_string());
                continue;
            }
        };
        match adapter.authenticate(request, connection, &secrets) {
            Ok(()) => return Ok((connection, adapter)),
            Err(AuthError::Invalid(what)) => {
                verdicts.invalid = Some(format!("invalid {what}"));
                refused.push((connection, adapter, secrets));
            }
            Err(AuthError::Missing(what)) => verdicts.missing = Some(format!("missing {what}")),
        }
    }
    for (connection, adapter, cached) in refused {
        let fresh = secrets_store
            .get_fresh_secrets(&connection.org_id, &connection.connection_id)
            .await;
        match fresh {
            Ok(Some(fresh))
                if fresh.to_json() != cached.to_json()
                    && adapter.authenticate(request, connection, &fresh).is_ok() =>
            {
                return Ok((connection, adapter));
            }
            Ok(_) => {}
            Err(err) => verdicts.unreadable_secret(connection, &err.to_string()),
        }
    }
    Err(verdicts.into_error())
}

/// What the candidates said of a request that none of them verified.
#[derive(Default)]
struct Verdicts {
    invalid: Option<String>,
    missing: Option<String>,
    media: Option<String>,
    secret_unreadable: bool,
}

impl Verdicts {
    fn unreadable_secret(&mut self, connection: &Connection, why: &str) {
        tracing::error!(connection_id = %connection.connection_id, error = why, "connection secret could not be read");
        self.secret_unreadable = true;
    }

    fn into_error(self) -> ReceiveError {
        match self {
            Verdicts {
                secret_unreadable: true,
                ..
            } => ReceiveError::SecretUnavailable,
            Verdicts {
                invalid: Some(why), ..
            } => ReceiveError::Forbidden(why),
            Verdicts {
                missing: Some(why), ..
            } => ReceiveError::Unauthenticated(why),
            Verdicts {
                media: Some(media), ..
            } => ReceiveError::UnsupportedMediaType(media),
            _ => ReceiveError::Unauthenticated("no connection could verify the request".into()),
        }
    }
}

/// The request's work; `owner` is set to the connection that authenticated it (for the log).
async fn handle(
    deps: &Deps,
    route: &Route,
    request: &WebhookRequest,
    owner: &mut Option<Connection>,
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
    *owner = Some(connection.clone());
    let items = adapter
        .parse(request, route.kind, connection)
        .map_err(|e| ReceiveError::Unparseable(e.0))?;

    // A batch's items are recorded several at once: a 2000-report bucket is thousands of store
    // calls, which one after another would outlast the function's timeout on DynamoDB. Their
    // order does not matter: every status step is monotonic and atomic, opt-outs are ordered by
    // their own time, and events dedupe on their keys.
    // Collected first: a lazy `map` over borrowed items would put its closure into this future's
    // type, which then is not `Send` for every lifetime (axum needs it to be).
    let recordings: Vec<_> = items
        .iter()
        .map(|item| record_item(deps, connection, request, item))
        .collect();
    let outcomes: Vec<Result<Recorded, ReceiveError>> = futures_util::stream::iter(recordings)
        .buffer_unordered(ITEMS_IN_FLIGHT)
        .collect()
        .await;
    let mut recorded = Recorded::default();
    for outcome in outcomes {
        recorded.add(outcome?);
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

async fn record_item(
    deps: &Deps,
    connection: &Connection,
    request: &WebhookRequest,
    item: &Result<WebhookItem, ParseError>,
) -> Result<Recorded, ReceiveError> {
    let mut recorded = Recorded::default();
    match item {
        Ok(WebhookItem::Status(report)) => {
            record_status(deps, connection, request, report, &mut recorded).await?
        }
        Ok(WebhookItem::Inbound(report)) => {
            record_inbound(deps, connection, request, report, &mut recorded).await?
        }
        Err(bad) => {
            recorded.bad_items += 1;
            tracing::warn!(
                connection_id = %connection.connection_id,
                error = %crate::telemetry::without_quoted_values(&bad.0),
                "bad item in webhook batch"
            );
        }
    }
    Ok(recorded)
}

/// The message a report is about, on the connection that owns the report. Our id (echoed in a
/// callback URL or the send's reference field) finds the message even when the report beat our
/// own write of the provider's id; but an echoed id is only trusted when the message carries no
/// provider id yet or carries this one: anyone who knows our id scheme could echo it.
async fn find_reported_message(
    deps: &Deps,
    connection: &Connection,
    report: &StatusReport,
) -> Result<Option<ReadMessage>, StoreError> {
    let messages = &deps.stores.messages;
    if let Some(id) = &report.message_id
        && let Some(message) = messages.read_message(&connection.org_id, id).await?
        && message.record.connection_id == connection.connection_id
        && message.record.may_be_named_by(&report.provider_message_id)
    {
        return Ok(Some(message));
    }
    messages
        .find_by_provider_message_id(
            &connection.org_id,
            &connection.connection_id,
            &report.provider_message_id,
        )
        .await
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
    let found = find_reported_message(deps, connection, report).await?;
    let happened_at = report.occurred_at.unwrap_or(request.received_at);
    // An opt-out stands even when we cannot find the message (sent by another system on a
    // shared account): the report's recipient is the number. It is written before the event:
    // if it fails, the provider's retry finds no event yet and writes it again.
    let opted_out_number = found.as_ref().map(|m| m.record.to.clone()).or_else(|| {
        report
            .recipient
            .as_deref()
            .map(phone::normalize)
            .filter(|n| phone::is_e164(n))
    });
    if report.opt_out
        && let Some(number) = &opted_out_number
    {
        messages
            .set_opt_out(org_id, number, true, happened_at)
            .await?;
    }
    let event = StatusEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        org_id: org_id.clone(),
        connection_id: connection.connection_id.clone(),
        provider: connection.provider,
        provider_message_id: report.provider_message_id.clone(),
        message_id: found.as_ref().map(|m| m.record.message_id.clone()),
        status: report.status,
        provider_status: report.provider_status.clone(),
        error_code: report.error_code.clone(),
        occurred_at: report.occurred_at,
        received_at: request.received_at,
    };
    match found {
        // The status step and the event in one write.
        Some(mut message) => {
            let key = scoped_dedupe_key(connection, &report.dedupe_key);
            let new = messages
                .record_status_event(&mut message, &event, &key)
                .await?;
            recorded.count(new);
            Ok(())
        }
        None => hold_report(deps, connection, event, &report.dedupe_key, recorded).await,
    }
}

/// Keeps aside a report that no message of the connection names: the send's write may not have
/// landed yet (the send's completion applies it), or the message was never ours (it expires,
/// and the events never see it). Then looks once more: a send completing between our first
/// look and the hold would have found nothing held.
async fn hold_report(
    deps: &Deps,
    connection: &Connection,
    event: StatusEvent,
    dedupe_key: &str,
    recorded: &mut Recorded,
) -> Result<(), ReceiveError> {
    let messages = &deps.stores.messages;
    let held = HeldReport {
        dedupe_key: scoped_dedupe_key(connection, dedupe_key),
        event,
    };
    if messages.hold_report(&held).await? {
        recorded.held += 1;
    } else {
        recorded.duplicates += 1;
    }
    let second_look = messages
        .find_by_provider_message_id(
            &connection.org_id,
            &connection.connection_id,
            &held.event.provider_message_id,
        )
        .await?;
    if let Some(message) = second_look {
        recorded.events += release_held_reports(messages.as_ref(), &message).await?;
    }
    Ok(())
}

/// A provider's dedupe key, scoped to the connection that owns the report: events are recorded
/// once per key and connection.
fn scoped_dedupe_key(connection: &Connection, dedupe_key: &str) -> String {
    format!("{}:{dedupe_key}", connection.connection_id)
}

/// Records the event once per dedupe key and connection.
async fn record_event(
    deps: &Deps,
    connection: &Connection,
    event: &Event,
    dedupe_key: &str,
    recorded: &mut Recorded,
) -> Result<(), ReceiveError> {
    let key = scoped_dedupe_key(connection, dedupe_key);
    let new = deps.stores.messages.record_event(event, &key).await?;
    recorded.count(new);
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
    let (text, dedupe_key, joined) = match &report.part {
        None => (report.text.clone(), report.dedupe_key.clone(), None),
        Some(part) => {
            let part = InboundPart {
                org_id: org_id.clone(),
                connection_id: connection.connection_id.clone(),
                from: from.clone(),
                reference: part.reference.clone(),
                total: part.total,
                index: part.index,
                provider_message_id: report.provider_message_id.clone(),
                text: report.text.clone(),
                received_at: request.received_at,
            };
            match messages.add_inbound_part(&part).await? {
                Some(joined) => (
                    joined.text.clone(),
                    joined.dedupe_key(),
                    Some((part, joined)),
                ),
                None => {
                    recorded.pending_parts += 1;
                    return Ok(());
                }
            }
        }
    };
    let intent = keyword_intent(report, &text);
    let happened_at = report.occurred_at.unwrap_or(request.received_at);
    match intent {
        KeywordIntent::OptOut => {
            messages
                .set_opt_out(org_id, &from, true, happened_at)
                .await?
        }
        KeywordIntent::OptIn => {
            messages
                .set_opt_out(org_id, &from, false, happened_at)
                .await?
        }
        KeywordIntent::None => {}
    }
    let in_reply_to = reply_target(deps, connection, report, &from).await?;
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
    record_event(deps, connection, &event, &dedupe_key, recorded).await?;
    // Only now that the joined reply is stored may its parts go: until then a retry of any
    // part joins them again (under the same dedupe key, so once).
    if let Some((part, joined)) = joined {
        messages.forget_inbound_parts(&part, &joined).await?;
    }
    Ok(())
}

/// Which of our messages a reply answers: the one the provider names, when it is one of this
/// connection's, else the latest message sent to that number on the connection.
async fn reply_target(
    deps: &Deps,
    connection: &Connection,
    report: &InboundReport,
    from: &str,
) -> Result<Option<String>, StoreError> {
    let messages = &deps.stores.messages;
    let org_id = &connection.org_id;
    let named = match &report.reply_to {
        Some(ReplyTo::MessageId(id)) => messages.get_message(org_id, id).await?,
        Some(ReplyTo::ProviderMessageId(id)) => messages
            .find_by_provider_message_id(org_id, &connection.connection_id, id)
            .await?
            .map(|read| read.record),
        None => None,
    };
    match named.filter(|m| m.connection_id == connection.connection_id) {
        Some(message) => Ok(Some(message.message_id)),
        None => {
            messages
                .latest_message_to(org_id, &connection.connection_id, from)
                .await
        }
    }
}

fn keyword_intent(report: &InboundReport, text: &str) -> KeywordIntent {
    if report.opt_out {
        KeywordIntent::OptOut
    } else {
        phone::keyword_intent(text)
    }
}
