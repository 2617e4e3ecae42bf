//! MessageBird (Bird) classic REST API: `POST /messages` with `AccessKey`, status reports as GET
//! query strings, inbound as form or JSON posts, `MessageBird-Signature-JWT` (and the legacy
//! `MessageBird-Signature`) on every webhook, `OK` as the acknowledgement.
//! Facts and vectors: `providers/messagebird.md` of the reference material.

mod payload;
pub mod signature;
#[cfg(feature = "stand-in")]
mod stand_in;

pub use payload::{OPTED_OUT, normalize_status};

use super::http::{error_excerpt, join_path};
use super::{
    Accepted, AuthError, OutboundMessage, ParseError, ParsedItems, ProviderAdapter, Retry,
    SampleEvent, SendContext, SendError, SignedRequest, UnsupportedMediaType,
};
use crate::domain::{
    Connection, ConnectionSecrets, FieldReader, Provider, ProviderFields, SendErrorCode, Status,
    ValidationErrors, phone, segments,
};
use crate::providers::http::{ProviderAnswer, exchange};
use crate::webhook::{RouteKind, WebhookReply, WebhookRequest};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use url::Url;

pub const API_BASE: &str = "https://rest.messagebird.com";
/// Bird's new-platform keys, which the classic API refuses with 401.
const BIRD_PLATFORM_KEY_PREFIXES: [&str; 2] = ["bk_us1_", "bk_eu1_"];
const MAX_ALPHANUMERIC_ORIGINATOR: usize = 11;

/// The MessageBird adapter; `api_base` replaces `https://rest.messagebird.com`
/// (`BYOSMS_MESSAGEBIRD_API_URL`, which may carry a path prefix, as the sandbox's
/// `/messagebird` does).
#[derive(Debug)]
pub struct MessageBird {
    api_base: Url,
}

impl MessageBird {
    pub fn new(api_base: Option<Url>) -> Self {
        MessageBird {
            api_base: api_base
                .unwrap_or_else(|| Url::parse(API_BASE).expect("API_BASE is a valid URL")),
        }
    }
}

impl Default for MessageBird {
    fn default() -> Self {
        MessageBird::new(None)
    }
}

/// An access key's shape: live keys are 25 letters and digits, test keys the same after
/// `test_`. Lengths are not documented, so a range is allowed.
pub fn is_access_key(key: &str) -> bool {
    let rest = key.strip_prefix("test_").unwrap_or(key);
    (20..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn validate_access_key(key: &str) -> Result<String, String> {
    if BIRD_PLATFORM_KEY_PREFIXES
        .iter()
        .any(|p| key.starts_with(p))
    {
        return Err("is a Bird platform key (bk_...), which the classic MessageBird API refuses; use a classic access key from Dashboard > Developers > API access".into());
    }
    if is_access_key(key) {
        Ok(key.to_string())
    } else {
        Err(
            "must be a MessageBird access key: 20 to 64 letters and digits, optionally after test_"
                .into(),
        )
    }
}

fn validate_signing_key(key: &str) -> Result<String, String> {
    if key.len() < 16 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        Err("must be the signing key from Dashboard > Developers > API settings: at least 16 printable characters without spaces".into())
    } else {
        Ok(key.to_string())
    }
}

/// MessageBird's `originator`: the number with its country code and no `+` or `00`, a short
/// code, or an alphanumeric sender id of at most 11 characters.
fn validate_from(from: &str) -> Result<String, String> {
    if from.starts_with('+') {
        return Err("must not start with + (give the number as digits with the country code, e.g. 35312345678)".into());
    }
    if from.bytes().all(|b| b.is_ascii_digit()) {
        if from.starts_with('0') {
            return Err("must start with the country code, not 0 or 00 (e.g. 35312345678)".into());
        }
        let international = phone::is_e164(&format!("+{from}"));
        return if international || (3..=6).contains(&from.len()) {
            Ok(from.to_string())
        } else {
            Err("must be a number with its country code (8 to 15 digits) or a short code (3 to 6 digits)".into())
        };
    }
    let alphanumeric = from.len() <= MAX_ALPHANUMERIC_ORIGINATOR
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic());
    if alphanumeric {
        Ok(from.to_string())
    } else {
        Err("an alphanumeric sender id has at most 11 characters (letters, digits, spaces) with at least one letter".into())
    }
}

/// The send request's JSON body (go `sms/message.go` `messageRequest`, node `types/messages.d.ts`).
fn message_request(
    from: &str,
    recipient: &str,
    message: &OutboundMessage,
    report_url: Option<&Url>,
) -> Value {
    // Said explicitly, so that MessageBird bills and splits the body as we counted it.
    let datacoding = match segments::count(&message.body).0 {
        segments::Encoding::Gsm7 => "plain",
        segments::Encoding::Ucs2 => "unicode",
    };
    let mut body = json!({
        "originator": from,
        "recipients": [recipient],
        "body": message.body,
        "datacoding": datacoding,
        // Status reports come only for messages that carry a reference; it is our id.
        "reference": message.message_id,
    });
    if let Some(url) = report_url {
        body["reportUrl"] = json!(url.as_str());
    }
    body
}

#[derive(Deserialize)]
struct MessageCreated {
    id: String,
    recipients: Option<CreatedRecipients>,
}

#[derive(Deserialize)]
struct CreatedRecipients {
    #[serde(default)]
    items: Vec<CreatedRecipient>,
}

#[derive(Deserialize)]
struct CreatedRecipient {
    status: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<i64>,
    description: Option<String>,
    parameter: Option<String>,
}

/// Classifies an error answer from its HTTP status and its first `errors[]` entry.
fn classify(http_status: u16, body: &str) -> SendError {
    let parsed: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    let first = parsed.errors.first();
    let code = first.and_then(|e| e.code);
    let parameter = first
        .and_then(|e| e.parameter.as_deref())
        .unwrap_or_default();
    let text = first
        .and_then(|e| e.description.as_deref())
        .map(error_excerpt)
        .filter(|words| !words.is_empty())
        .unwrap_or_else(|| format!("MessageBird answered HTTP {http_status}"));
    use SendErrorCode as C;
    let (ours, retry) = match (http_status, code, parameter) {
        (429, _, _) => (C::Throttled, Retry::NotAccepted),
        (401, _, _) | (_, Some(2), _) => (C::AuthFailed, Retry::Never),
        (_, Some(25), _) => (C::InsufficientFunds, Retry::Never),
        (_, Some(9 | 10), "recipient" | "recipients") => (C::InvalidNumber, Retry::Never),
        (_, Some(9 | 10), "originator") => (C::InvalidSender, Retry::Never),
        (_, Some(9 | 10), "body") => (C::InvalidBody, Retry::Never),
        (404, Some(98), _) => (C::ConfigError, Retry::Never),
        (503, _, _) => (C::ProviderUnavailable, Retry::NotAccepted),
        (500..=599, _, _) | (_, Some(99), _) => (C::OutcomeUnknown, Retry::OutcomeUnknown),
        _ => (C::Rejected, Retry::Never),
    };
    let err = SendError::new(ours, text, retry);
    match code {
        Some(c) => err.with_provider_code(c.to_string()),
        None => err,
    }
}

fn accepted(body: &str) -> Result<Accepted, SendError> {
    let created: MessageCreated = serde_json::from_str(body)
        .ok()
        .filter(|c: &MessageCreated| !c.id.is_empty())
        .ok_or_else(|| {
            SendError::new(
                SendErrorCode::OutcomeUnknown,
                "MessageBird accepted the request but its answer could not be read",
                Retry::OutcomeUnknown,
            )
        })?;
    // The answer's `sent` only means accepted (messagebird/php-rest-api#64): reports tell more.
    let provider_status = created
        .recipients
        .and_then(|r| r.items.into_iter().next())
        .and_then(|item| item.status);
    Ok(Accepted {
        provider_message_id: created.id,
        part_ids: Vec::new(),
        provider_status,
        status: Status::Accepted,
    })
}

#[async_trait]
impl ProviderAdapter for MessageBird {
    fn provider(&self) -> Provider {
        Provider::Messagebird
    }

    fn validate_connection(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<ProviderFields, ValidationErrors> {
        let mut r = FieldReader::new(fields);
        let signing_key = r.secret("signingKey", validate_signing_key);
        let access_key = r.secret("accessKey", validate_access_key);
        r.setting("from", validate_from);
        if signing_key.is_some() && signing_key == access_key {
            r.error(
                "signingKey",
                "must not be the access key: the signing key is a separate value (Dashboard > Developers > API settings)",
            );
        }
        r.send_rate();
        r.finish()
    }

    async fn send(
        &self,
        ctx: &SendContext<'_>,
        message: &OutboundMessage,
    ) -> Result<Accepted, SendError> {
        let from = ctx
            .connection
            .setting("from")
            .ok_or_else(|| SendError::config("connection has no from"))?;
        let access_key = ctx
            .secrets
            .expose("accessKey")
            .ok_or_else(|| SendError::config("connection secret has no accessKey"))?;
        if !phone::is_e164(&message.to) {
            return Err(SendError::new(
                SendErrorCode::InvalidNumber,
                "the recipient is not an E.164 number",
                Retry::Never,
            ));
        }
        let recipient = phone::format_recipient(&message.to, phone::NumberFormat::Digits);
        let request = message_request(from, recipient, message, ctx.status_callback);
        let ProviderAnswer {
            status,
            retry_after: wait,
            body,
        } = exchange(
            ctx.http
                .client()
                .post(join_path(&self.api_base, "/messages"))
                .header(
                    http::header::AUTHORIZATION,
                    format!("AccessKey {access_key}"),
                )
                .header(http::header::ACCEPT, "application/json")
                .json(&request),
        )
        .await?;
        if !(200..300).contains(&status) {
            return Err(classify(status, &body).with_retry_after(wait));
        }
        accepted(&body)
    }

    fn authenticate(
        &self,
        request: &WebhookRequest,
        _connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<(), AuthError> {
        let key = secrets.expose("signingKey");
        if let Some(token) = request.header(signature::JWT_HEADER) {
            let key = key.ok_or(AuthError::Invalid("MessageBird-Signature-JWT"))?;
            return signature::verify_jwt(
                token.trim(),
                key,
                &request.public_url,
                &request.body,
                request.received_at,
            )
            .map(|_| ())
            .map_err(|why| {
                tracing::debug!(reason = %why, "MessageBird-Signature-JWT refused");
                AuthError::Invalid("MessageBird-Signature-JWT")
            });
        }
        let legacy = (
            request.header(signature::LEGACY_SIGNATURE_HEADER),
            request.header(signature::LEGACY_TIMESTAMP_HEADER),
        );
        match legacy {
            (Some(sig), Some(timestamp)) => {
                let key = key.ok_or(AuthError::Invalid("MessageBird-Signature"))?;
                signature::verify_legacy(
                    sig,
                    timestamp,
                    key,
                    &request.query_pairs(),
                    &request.body,
                    request.received_at,
                )
                .map_err(|why| {
                    tracing::debug!(reason = %why, "MessageBird-Signature refused");
                    AuthError::Invalid("MessageBird-Signature")
                })
            }
            (Some(_), None) => Err(AuthError::Missing("MessageBird-Request-Timestamp header")),
            _ => Err(AuthError::Missing("MessageBird-Signature-JWT header")),
        }
    }

    fn check_media_type(&self, request: &WebhookRequest) -> Result<(), UnsupportedMediaType> {
        if request.method == http::Method::GET
            || request.body.is_empty()
            || request.is_form()
            || request.is_json()
        {
            return Ok(());
        }
        Err(UnsupportedMediaType::of(request))
    }

    fn parse(
        &self,
        request: &WebhookRequest,
        _route: RouteKind,
        connection: &Connection,
    ) -> Result<ParsedItems, ParseError> {
        let params = payload::params(request)?;
        if params.is_empty() {
            return Err(ParseError("request carries no parameters".into()));
        }
        // What the payload is, not the route it came in on, decides how it is recorded.
        let item = payload::item(&params, connection.setting("from"))?;
        Ok(vec![Ok(item)])
    }

    fn acknowledge(&self, _route: RouteKind, _connection: &Connection) -> WebhookReply {
        // courier: "MB expects an 'OK' body".
        WebhookReply::new(200, "text/plain", "OK")
    }

    fn setup_guide(&self, message_url: &Url, status_url: &Url) -> String {
        format!(
            "At MessageBird (classic dashboard): delivery reports need no setup, since every message \
             we send carries its own reportUrl, {status_url}, and our message id as its reference; \
             to also receive reports of messages sent by other systems, set Developers > API settings > \
             \"status report URL\" to the same {status_url}. For replies, open Flow Builder, create a \
             flow from the template \"Call HTTP endpoint with SMS\", attach the sending number, set \
             the method to POST and the URL to {message_url}, then save and publish. Copy the signing \
             key from Developers > API settings into signingKey (it is not the access key): every \
             request is verified with it, so without it every webhook is refused with 401/403. \
             URLs on the older twilio-sms path keep working for MessageBird connections. Bird \
             platform keys (bk_...) do not work with this API."
        )
    }

    fn sample_webhook(
        &self,
        event: &SampleEvent,
        url: &Url,
        _connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<SignedRequest, ParseError> {
        let key = secrets
            .expose("signingKey")
            .ok_or_else(|| ParseError("connection secret has no signingKey".into()))?;
        let now = chrono::Utc::now();
        let (method, url, body, content_type) = match event {
            SampleEvent::Inbound { from, to, text } => {
                let fields = [
                    ("id", uuid::Uuid::new_v4().simple().to_string()),
                    ("originator", from.trim_start_matches('+').to_string()),
                    ("recipient", to.trim_start_matches('+').to_string()),
                    ("body", text.clone()),
                    (
                        "createdDatetime",
                        now.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
                    ),
                ];
                let body = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish();
                let form = Some("application/x-www-form-urlencoded");
                (http::Method::POST, url.clone(), body.into_bytes(), form)
            }
            SampleEvent::Status { .. } => {
                let mut url = url.clone();
                url.set_query(Some(&status_query(event, now)));
                (http::Method::GET, url, Vec::new(), None)
            }
        };
        let mut headers = vec![(
            "MessageBird-Signature-JWT".to_string(),
            signature::sign_jwt(key, url.as_str(), &body, now),
        )];
        if let Some(content_type) = content_type {
            headers.push(("Content-Type".into(), content_type.into()));
        }
        Ok(SignedRequest {
            method,
            url,
            headers,
            body,
        })
    }

    fn example_fields(&self) -> Map<String, Value> {
        Map::from_iter([
            (
                "signingKey".into(),
                "f4k3s1gn1ngk3yf4k3s1gn1ngk3yf4k3".into(),
            ),
            ("accessKey".into(), "test_FakeAccessKey0123456789".into()),
            ("from".into(), "14155550199".into()),
        ])
    }

    #[cfg(feature = "stand-in")]
    fn stand_in(&self) -> super::stand_in::StandIn {
        stand_in::stand_in()
    }
}

/// A status report's query as MessageBird builds it: form-encoded (`:` as `%3A`, `+` as
/// `%2B`), in its documented order.
fn status_query(event: &SampleEvent, now: chrono::DateTime<chrono::Utc>) -> String {
    let SampleEvent::Status {
        message_id,
        provider_message_id,
        provider_status,
        error_code,
    } = event
    else {
        return String::new();
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("id", provider_message_id);
    if let Some(reference) = message_id {
        query.append_pair("reference", reference);
    }
    query.append_pair("status", provider_status);
    query.append_pair(
        "statusDatetime",
        &now.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
    );
    if let Some(code) = error_code {
        query.append_pair("statusErrorCode", code);
    }
    query.append_pair("messagePartCount", "1");
    query.finish()
}

#[cfg(test)]
mod tests;
