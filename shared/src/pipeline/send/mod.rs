//! The send pipeline: the send Lambda ([`send_within`] its deadline), `POST /send` on the
//! gateway and `byosms send` ([`send`], within the configured budget) all come here.
//! `(orgId, messageId)` is claimed before the provider is called, so a repeat (or a racing
//! duplicate) never reaches the provider twice; [`retry`] decides what is sent again.

pub mod rate;
pub mod retry;

use crate::deps::Deps;
use crate::domain::segments;
use crate::domain::{
    Connection, ConnectionSecrets, MAX_MESSAGE_ID_LEN, MessageRecord, SendCompletion,
    SendErrorCode, SendFailure, SendState, Status, is_valid_message_id, phone,
};
use crate::providers::{
    Accepted, BodyLimit, OutboundMessage, ProviderAdapter, Retry, SendContext, SendError,
};
use crate::stores::{Claim, StoreError};
use crate::webhook::RouteKind;
use chrono::Utc;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub use retry::Deadline;

/// At most this many messages in one invocation.
pub const MAX_MESSAGES: usize = 1000;
/// A claim older than this whose send never finished (the process died) is an unknown outcome.
const STALE_CLAIM: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    pub org_id: String,
    #[serde(default)]
    pub connection_id: Option<String>,
    pub user_id: String,
    pub messages: Vec<SendItem>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendItem {
    pub message_id: String,
    pub to: String,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendResponse {
    pub results: Vec<SendResult>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    Accepted,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendResult {
    pub message_id: String,
    pub status: ResultStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SendFailure>,
    /// This messageId was sent before: the result is the stored one, nothing was re-sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// A request that cannot be served at all (no per-message results).
#[derive(Debug, thiserror::Error)]
pub enum SendRequestError {
    #[error("invalid send request: {0}")]
    Invalid(String),
    #[error("connection {connection_id} does not exist for org {org_id}")]
    UnknownConnection {
        org_id: String,
        connection_id: String,
    },
    #[error("org {0} has no enabled connection")]
    NoConnection(String),
    #[error("org {0} has several enabled connections: name one with connectionId")]
    AmbiguousConnection(String),
    #[error("connection {0} is disabled")]
    Disabled(String),
    #[error("user {user_id} has no access to connection {connection_id}")]
    AccessDenied {
        user_id: String,
        connection_id: String,
    },
    #[error("provider {0} is not supported by this deployment")]
    UnsupportedProvider(String),
    #[error("connection {0} has no stored secret")]
    MissingSecret(String),
    /// The cause is logged, not answered: the invoker learns only to try again.
    #[error("storage unavailable, try again")]
    Store(#[from] StoreError),
}

impl SendRequestError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SendRequestError::Invalid(_) => "invalid_request",
            SendRequestError::UnknownConnection { .. } => "unknown_connection",
            SendRequestError::NoConnection(_) => "no_connection",
            SendRequestError::AmbiguousConnection(_) => "ambiguous_connection",
            SendRequestError::Disabled(_) => "connection_disabled",
            SendRequestError::AccessDenied { .. } => "access_denied",
            SendRequestError::UnsupportedProvider(_) => "unsupported_provider",
            SendRequestError::MissingSecret(_) => "config_error",
            SendRequestError::Store(_) => "storage_unavailable",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            SendRequestError::Invalid(_) | SendRequestError::AmbiguousConnection(_) => 400,
            SendRequestError::AccessDenied { .. } => 403,
            SendRequestError::UnknownConnection { .. } | SendRequestError::NoConnection(_) => 404,
            SendRequestError::Disabled(_) => 409,
            SendRequestError::UnsupportedProvider(_) => 501,
            SendRequestError::MissingSecret(_) => 500,
            SendRequestError::Store(_) => 503,
        }
    }
}

fn failure(
    message_id: &str,
    code: SendErrorCode,
    message: impl Into<String>,
    retryable: bool,
) -> SendResult {
    SendResult {
        message_id: message_id.to_string(),
        status: ResultStatus::Failed,
        provider_message_id: None,
        segments: None,
        encoding: None,
        attempts: None,
        error: Some(SendFailure {
            code,
            message: message.into(),
            retryable,
            provider_code: None,
        }),
        duplicate: false,
    }
}

/// Checks one message before anything is claimed: the refusal of a message that is never sent.
fn refusal(item: &SendItem, limit: BodyLimit) -> Option<SendResult> {
    let refuse = |code, message: String| Some(failure(&item.message_id, code, message, false));
    if !is_valid_message_id(&item.message_id) {
        return refuse(
            SendErrorCode::InvalidMessageId,
            format!(
                "messageId must be 1 to {MAX_MESSAGE_ID_LEN} printable ASCII characters without spaces"
            ),
        );
    }
    if let Err(why) = phone::check_recipient(&item.to) {
        return refuse(SendErrorCode::InvalidNumber, why.to_string());
    }
    if item.body.trim().is_empty() {
        return refuse(SendErrorCode::InvalidBody, "body is empty".into());
    }
    if let Some(why) = over_limit(&item.body, limit) {
        return refuse(SendErrorCode::InvalidBody, why);
    }
    None
}

/// Why a body is longer than the provider takes, if it is.
fn over_limit(body: &str, limit: BodyLimit) -> Option<String> {
    match limit {
        BodyLimit::Characters(max) => (body.chars().count() > max)
            .then(|| format!("body is longer than the provider's {max} characters")),
        BodyLimit::Parts(max) => {
            let (encoding, parts) = segments::count(body);
            (parts > max).then(|| {
                format!(
                    "body takes {parts} SMS parts in {}, more than the provider's {max}",
                    encoding.as_str()
                )
            })
        }
    }
}

/// A message the invocation had no time left for: nothing was claimed or sent.
fn not_attempted(item: &SendItem) -> SendResult {
    let err = out_of_time();
    failure(&item.message_id, err.code, err.message, true)
}

/// The answer a stored record gives.
fn result_of(record: &MessageRecord, duplicate: bool) -> SendResult {
    let base = SendResult {
        message_id: record.message_id.clone(),
        status: ResultStatus::Accepted,
        provider_message_id: record.provider_message_id.clone(),
        segments: Some(record.segments),
        encoding: Some(record.encoding.clone()),
        attempts: Some(record.attempts),
        error: None,
        duplicate,
    };
    // A claim whose process died mid-call never finishes by itself.
    let stale = Utc::now() - record.updated_at
        > chrono::Duration::from_std(STALE_CLAIM).unwrap_or_default();
    match record.send_state {
        SendState::Accepted => base,
        SendState::Failed | SendState::OutcomeUnknown => SendResult {
            status: ResultStatus::Failed,
            error: record.error.clone(),
            ..base
        },
        SendState::Sending if stale => SendResult {
            status: ResultStatus::Failed,
            error: Some(SendFailure {
                code: SendErrorCode::OutcomeUnknown,
                message:
                    "an earlier send of this messageId never finished; it may have been accepted"
                        .into(),
                retryable: false,
                provider_code: None,
            }),
            ..base
        },
        SendState::Sending => SendResult {
            duplicate,
            ..failure(
                &record.message_id,
                SendErrorCode::InProgress,
                "a send of this messageId is in progress; ask again for its result",
                true,
            )
        },
    }
}

/// Finds the connection the request names, or the org's only enabled one, checks access, and
/// reads its secret.
///
/// A named connection's secret is read at the same time as the connection: its id is known from
/// the request, and the two reads are a store round trip each (milliseconds on AWS, in every
/// send). The secret is used only once the connection is found and the checks pass; those come
/// first in what the caller is told, so a refusal reads as it would have without the secret.
async fn resolve_connection(
    deps: &Deps,
    request: &SendRequest,
) -> Result<(Connection, ConnectionSecrets), SendRequestError> {
    let connections = &deps.stores.connections;
    let secrets = &deps.stores.secrets;
    let (connection, secret) = match request.connection_id.as_deref().filter(|c| !c.is_empty()) {
        Some(id) => {
            let (connection, secret) = tokio::join!(
                connections.get_connection(&request.org_id, id),
                secrets.get_secrets(&request.org_id, id)
            );
            let connection = connection?.ok_or_else(|| SendRequestError::UnknownConnection {
                org_id: request.org_id.clone(),
                connection_id: id.to_string(),
            })?;
            check_access(&connection, request)?;
            (connection, secret?)
        }
        None => {
            let connection = only_enabled_connection(deps, &request.org_id).await?;
            check_access(&connection, request)?;
            let secret = secrets
                .get_secrets(&connection.org_id, &connection.connection_id)
                .await?;
            (connection, secret)
        }
    };
    match secret {
        Some(secret) => Ok((connection, secret)),
        None => Err(SendRequestError::MissingSecret(connection.connection_id)),
    }
}

/// The org's one enabled connection, for a request that names none.
async fn only_enabled_connection(
    deps: &Deps,
    org_id: &str,
) -> Result<Connection, SendRequestError> {
    let mut enabled: Vec<Connection> = deps
        .stores
        .connections
        .list_connections(org_id)
        .await?
        .into_iter()
        .filter(|c| c.enabled)
        .collect();
    match enabled.len() {
        0 => Err(SendRequestError::NoConnection(org_id.to_string())),
        1 => Ok(enabled.remove(0)),
        _ => Err(SendRequestError::AmbiguousConnection(org_id.to_string())),
    }
}

fn check_access(connection: &Connection, request: &SendRequest) -> Result<(), SendRequestError> {
    if !connection.enabled {
        return Err(SendRequestError::Disabled(connection.connection_id.clone()));
    }
    if !connection.access.allows(&request.user_id) {
        return Err(SendRequestError::AccessDenied {
            user_id: request.user_id.clone(),
            connection_id: connection.connection_id.clone(),
        });
    }
    Ok(())
}

fn check_request(request: &SendRequest) -> Result<(), SendRequestError> {
    if request.org_id.trim().is_empty() {
        return Err(SendRequestError::Invalid("orgId is empty".into()));
    }
    if request.user_id.trim().is_empty() {
        return Err(SendRequestError::Invalid("userId is empty".into()));
    }
    if request.messages.is_empty() {
        return Err(SendRequestError::Invalid("messages is empty".into()));
    }
    if request.messages.len() > MAX_MESSAGES {
        return Err(SendRequestError::Invalid(format!(
            "at most {MAX_MESSAGES} messages per request, got {}",
            request.messages.len()
        )));
    }
    Ok(())
}

/// Sends every message of the request within the configured budget
/// (`BYOSMS_SEND_BUDGET_MS`); one result per message, in order.
pub async fn send(deps: &Deps, request: &SendRequest) -> Result<SendResponse, SendRequestError> {
    let settings = &deps.settings.send;
    send_within(
        deps,
        request,
        Deadline::after(settings.budget, settings.deadline_margin),
    )
    .await
}

/// Sends every message of the request, starting no provider call after `deadline` allows;
/// one result per message, in order, those not attempted failed and retryable.
#[tracing::instrument(skip_all, fields(org_id = %request.org_id, messages = request.messages.len()))]
pub async fn send_within(
    deps: &Deps,
    request: &SendRequest,
    deadline: Deadline,
) -> Result<SendResponse, SendRequestError> {
    let outcome = send_all(deps, request, &deadline).await;
    match &outcome {
        Err(SendRequestError::Store(cause)) => tracing::error!(error = %cause, "send not served"),
        Err(refused) => tracing::warn!(code = refused.code(), error = %refused, "send refused"),
        Ok(_) => {}
    }
    outcome
}

async fn send_all(
    deps: &Deps,
    request: &SendRequest,
    deadline: &Deadline,
) -> Result<SendResponse, SendRequestError> {
    check_request(request)?;
    let (connection, secrets) = resolve_connection(deps, request).await?;
    let adapter = deps
        .registry
        .get(connection.provider)
        .ok_or_else(|| SendRequestError::UnsupportedProvider(connection.provider.to_string()))?;
    let status_callback =
        deps.settings
            .route_url(RouteKind::Status, connection.provider, &connection.org_id);
    let inbound_callback =
        deps.settings
            .route_url(RouteKind::Message, connection.provider, &connection.org_id);
    let ctx = SendContext {
        http: &deps.http,
        connection: &connection,
        secrets: &secrets,
        status_callback: status_callback.as_ref(),
        inbound_callback: inbound_callback.as_ref(),
    };
    let pacer = connection.send_rate().map(rate::Pacer::per_second);
    let run = Run {
        deps,
        adapter,
        ctx: &ctx,
        user_id: &request.user_id,
        deadline,
        pacer: pacer.as_ref(),
    };
    let run = &run;
    // `buffered` keeps request order while up to `concurrency` messages are in flight.
    // Owned items: a future borrowing the request through a closure argument is not `Send`
    // for every lifetime, which the gateway's handler requires.
    let results: Vec<SendResult> = futures_util::stream::iter(request.messages.iter().cloned())
        .map(|item| async move { run.send_one(&item).await })
        .buffered(deps.settings.send.concurrency.max(1))
        .collect()
        .await;
    let accepted = results
        .iter()
        .filter(|r| r.status == ResultStatus::Accepted)
        .count();
    tracing::info!(
        connection_id = %connection.connection_id,
        provider = %connection.provider,
        accepted,
        failed = results.len() - accepted,
        "send finished"
    );
    Ok(SendResponse { results })
}

/// What every message of one invocation is sent with.
struct Run<'a> {
    deps: &'a Deps,
    adapter: &'a dyn ProviderAdapter,
    ctx: &'a SendContext<'a>,
    user_id: &'a str,
    deadline: &'a Deadline,
    /// The connection's `sendRatePerSecond`, shared by every message of the invocation.
    pacer: Option<&'a rate::Pacer>,
}

impl Run<'_> {
    /// Sends one message and answers for it whatever happens: a store failure spoils this
    /// message's result, never the batch's.
    async fn send_one(&self, item: &SendItem) -> SendResult {
        if let Some(refused) = refusal(item, self.adapter.body_limit()) {
            return refused;
        }
        // Checked before the claim: a message never started leaves nothing behind.
        if self.deadline.time_for_call().is_none() {
            return not_attempted(item);
        }
        let connection = self.ctx.connection;
        let messages = &self.deps.stores.messages;
        let record = claim_record(connection, self.user_id, item);
        // The opt-out is read while the claim is written (one round trip, not two); it counts
        // only once the claim is ours, and nothing is sent before both have answered.
        let (claim, opted_out) = tokio::join!(
            messages.claim_message(&record),
            messages.is_opted_out(&connection.org_id, &item.to)
        );
        let claimed = match claim {
            Ok(Claim::Claimed(claimed)) => claimed,
            Ok(Claim::Exists(existing)) => return result_of(&existing, true),
            Err(err) => return storage_failure(item, &err),
        };
        let opted_out = match opted_out {
            Ok(opted_out) => opted_out,
            Err(err) => {
                // Nothing was sent: give the claim back so that the caller's retry can send.
                self.release(item).await;
                return storage_failure(item, &err);
            }
        };
        let done = if opted_out {
            refused_completion(
                SendError::new(
                    SendErrorCode::OptedOut,
                    "the recipient opted out of messages",
                    Retry::Never,
                ),
                0,
            )
        } else {
            self.provider_completion(item).await
        };
        if done.error.as_ref().is_some_and(|e| e.retryable) {
            // Provably nothing was accepted: the claim goes back, so that the caller's retry of
            // this messageId (which `retryable` invites) sends instead of finding this failure.
            self.release(item).await;
            let mut unsent = record;
            unsent.complete(&done);
            return result_of(&unsent, false);
        }
        // From the claim as written: no read of the record before the write.
        match messages.complete_send(&claimed, &done).await {
            Ok(stored) => result_of(&stored, false),
            Err(err) => {
                // The provider has answered; that answer is the truth the caller needs. The
                // record stays `sending`, so a repeat is answered `in_progress` and later
                // `outcome_unknown`: never a second send.
                tracing::error!(message_id = %item.message_id, error = %err, "send result not recorded");
                let mut unrecorded = record;
                unrecorded.complete(&done);
                result_of(&unrecorded, false)
            }
        }
    }

    async fn release(&self, item: &SendItem) {
        let org_id = &self.ctx.connection.org_id;
        if let Err(err) = self
            .deps
            .stores
            .messages
            .release_claim(org_id, &item.message_id)
            .await
        {
            // The claim stays `sending`: a repeat is answered `in_progress`, later
            // `outcome_unknown`, never sent twice.
            tracing::error!(message_id = %item.message_id, error = %err, "claim not released");
        }
    }
}

/// The record a send claims before the provider is called.
fn claim_record(connection: &Connection, user_id: &str, item: &SendItem) -> MessageRecord {
    let now = Utc::now();
    let (encoding, segments) = segments::count(&item.body);
    MessageRecord {
        org_id: connection.org_id.clone(),
        message_id: item.message_id.clone(),
        connection_id: connection.connection_id.clone(),
        provider: connection.provider,
        user_id: user_id.to_string(),
        to: item.to.clone(),
        body: item.body.clone(),
        segments,
        encoding: encoding.as_str().to_string(),
        send_state: SendState::Sending,
        status: None,
        provider_message_id: None,
        parts: Vec::new(),
        error: None,
        attempts: 0,
        created_at: now,
        updated_at: now,
    }
}

/// A message our own storage kept from being sent: nothing reached the provider, so the caller
/// may try again.
fn storage_failure(item: &SendItem, err: &StoreError) -> SendResult {
    tracing::error!(message_id = %item.message_id, error = %err, "message not sent: storage failed");
    failure(
        &item.message_id,
        SendErrorCode::StorageUnavailable,
        "storage unavailable; nothing was sent, try again",
        true,
    )
}

impl Run<'_> {
    /// Calls the provider and turns its answer into what the record keeps.
    async fn provider_completion(&self, item: &SendItem) -> SendCompletion {
        let outbound = OutboundMessage {
            message_id: item.message_id.clone(),
            to: item.to.clone(),
            body: item.body.clone(),
        };
        let (outcome, attempts) = self.send_with_fresh_credentials(&outbound).await;
        match outcome {
            Ok(accepted) => SendCompletion {
                send_state: SendState::Accepted,
                status: Some(accepted.status),
                provider_message_id: Some(accepted.provider_message_id),
                part_ids: accepted.part_ids,
                error: None,
                attempts,
                at: Utc::now(),
            },
            Err(err) => {
                if err.code == SendErrorCode::OptedOut
                    && let Err(store) = self
                        .deps
                        .stores
                        .messages
                        .set_opt_out(&self.ctx.connection.org_id, &item.to, true, Utc::now())
                        .await
                {
                    tracing::error!(message_id = %item.message_id, error = %store, "opt-out not recorded");
                }
                tracing::warn!(
                    message_id = %item.message_id,
                    code = %err.code,
                    provider_code = err.provider_code.as_deref().unwrap_or(""),
                    "send failed"
                );
                refused_completion(err, attempts)
            }
        }
    }

    /// Sends, and when the provider refuses the credentials, looks once at the secret store: a
    /// secret rotated since this invocation (or a warm cache) read it gets one more try. A
    /// refused credential means nothing was accepted, so the second try cannot send twice.
    async fn send_with_fresh_credentials(
        &self,
        message: &OutboundMessage,
    ) -> (Result<Accepted, SendError>, u32) {
        let (outcome, attempts) = self.send_with_retries(self.ctx, message).await;
        if !matches!(&outcome, Err(err) if err.code == SendErrorCode::AuthFailed) {
            return (outcome, attempts);
        }
        let connection = self.ctx.connection;
        let fresh = self
            .deps
            .stores
            .secrets
            .get_fresh_secrets(&connection.org_id, &connection.connection_id)
            .await;
        match fresh {
            Ok(Some(fresh)) if fresh.to_json() != self.ctx.secrets.to_json() => {
                tracing::info!(message_id = %message.message_id, "credentials changed since they were read: sending again");
                let ctx = SendContext {
                    secrets: &fresh,
                    ..*self.ctx
                };
                let (again, more) = self.send_with_retries(&ctx, message).await;
                (again, attempts + more)
            }
            _ => (outcome, attempts),
        }
    }

    /// Sends until the provider accepts, or [`retry::after_failure`] says to stop. Returns the
    /// last outcome and the number of requests made.
    async fn send_with_retries(
        &self,
        ctx: &SendContext<'_>,
        message: &OutboundMessage,
    ) -> (Result<Accepted, SendError>, u32) {
        let policy = &self.deps.settings.retry;
        let mut rng = fastrand::Rng::new();
        let mut made = 0;
        loop {
            let Some(outcome) = self.attempt(ctx, message).await else {
                // Every request made so far was provably refused: nothing was sent.
                return (Err(out_of_time()), made);
            };
            made += 1;
            let Err(err) = &outcome else {
                return (outcome, made);
            };
            match retry::after_failure(policy, made, err, self.deadline, &mut rng) {
                retry::Next::Stop => return (outcome, made),
                retry::Next::RetryAfter(wait) => {
                    tracing::info!(message_id = %message.message_id, attempt = made, code = %err.code, wait_ms = wait.as_millis() as u64, "retrying send");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One provider request, at the connection's pace and cut off where the deadline requires:
    /// a call still running then may have been accepted, so its outcome is unknown (and never
    /// sent again). `None` when no request could be started in time.
    async fn attempt(
        &self,
        ctx: &SendContext<'_>,
        message: &OutboundMessage,
    ) -> Option<Result<Accepted, SendError>> {
        if let Some(pacer) = self.pacer {
            let slot = pacer.reserve(self.deadline.latest_start())?;
            tokio::time::sleep_until(slot).await;
        }
        let time = self.deadline.time_for_call()?;
        Some(
            match tokio::time::timeout(time, self.adapter.send(ctx, message)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(SendError::new(
                    SendErrorCode::OutcomeUnknown,
                    "the invocation's time ran out while the provider had the request; the message may have been accepted",
                    Retry::OutcomeUnknown,
                )),
            },
        )
    }
}

/// No request could start before the deadline (the connection's rate, or retries, used the
/// time up).
fn out_of_time() -> SendError {
    SendError::new(
        SendErrorCode::Throttled,
        "not attempted: the invocation's time ran out before this message's turn; nothing was sent, send it again",
        Retry::NotAccepted,
    )
}

fn refused_completion(err: SendError, attempts: u32) -> SendCompletion {
    let unknown = err.retry == Retry::OutcomeUnknown;
    SendCompletion {
        send_state: if unknown {
            SendState::OutcomeUnknown
        } else {
            SendState::Failed
        },
        status: (!unknown).then_some(Status::Failed),
        provider_message_id: None,
        part_ids: Vec::new(),
        error: Some(SendFailure {
            code: err.code,
            message: err.message,
            // Only a provably unaccepted request may be tried again by the caller.
            retryable: err.retry == Retry::NotAccepted,
            provider_code: err.provider_code,
        }),
        attempts,
        at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_in_flight_is_in_progress_until_it_is_stale() {
        let now = Utc::now();
        let mut record = MessageRecord {
            org_id: "O".into(),
            message_id: "m".into(),
            connection_id: "c".into(),
            provider: crate::domain::Provider::Twilio,
            user_id: "u".into(),
            to: "+14155550100".into(),
            body: "b".into(),
            segments: 1,
            encoding: "gsm7".into(),
            send_state: SendState::Sending,
            status: None,
            provider_message_id: None,
            parts: Vec::new(),
            error: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
        };
        let fresh = result_of(&record, true);
        assert_eq!(
            fresh.error.as_ref().map(|e| (e.code, e.retryable)),
            Some((SendErrorCode::InProgress, true))
        );
        assert!(fresh.duplicate);
        record.updated_at = now - chrono::Duration::minutes(10);
        let stale = result_of(&record, true);
        assert_eq!(
            stale.error.as_ref().map(|e| (e.code, e.retryable)),
            Some((SendErrorCode::OutcomeUnknown, false))
        );
    }

    #[test]
    fn message_ids() {
        assert!(is_valid_message_id("dist42-r1"));
        assert!(!is_valid_message_id(""));
        assert!(!is_valid_message_id("a b"));
        assert!(!is_valid_message_id("é"));
        assert!(!is_valid_message_id(&"x".repeat(101)));
    }

    #[test]
    fn items_are_checked_before_sending() {
        let item = |to: &str, body: &str| SendItem {
            message_id: "m1".into(),
            to: to.into(),
            body: body.into(),
        };
        let refusal_of = |item: &SendItem| refusal(item, BodyLimit::Characters(1600));
        assert!(refusal_of(&item("+14155550100", "hi")).is_none());
        let code = |r: SendResult| r.error.unwrap().code;
        assert_eq!(
            code(refusal_of(&item("4155550100", "hi")).unwrap()),
            SendErrorCode::InvalidNumber
        );
        assert_eq!(
            code(refusal_of(&item("+14155550100", " ")).unwrap()),
            SendErrorCode::InvalidBody
        );
        assert_eq!(
            code(refusal_of(&item("+14155550100", &"a".repeat(1601))).unwrap()),
            SendErrorCode::InvalidBody
        );
        assert_eq!(
            code(refusal_of(&item("+1415555010", "hi")).unwrap()),
            SendErrorCode::InvalidNumber
        );
        // A part limit counts parts as the networks do: 2 × 67 UCS-2 units fit two parts.
        let two_parts = BodyLimit::Parts(2);
        assert!(refusal(&item("+14155550100", &"ア".repeat(134)), two_parts).is_none());
        let over = refusal(&item("+14155550100", &"ア".repeat(135)), two_parts).unwrap();
        assert_eq!(
            over.error.unwrap().message,
            "body takes 3 SMS parts in ucs2, more than the provider's 2"
        );
    }
}
