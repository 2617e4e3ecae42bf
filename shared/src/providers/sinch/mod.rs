//! Sinch Conversation API: OAuth2 client credentials, `messages:send` on the SMS channel,
//! `MESSAGE_INBOUND` / `MESSAGE_DELIVERY` / `EVENT_DELIVERY` callbacks signed with
//! `x-sinch-webhook-signature`. Facts and vectors: `providers/sinch.md` of the reference material.
//!
//! Not the Sinch SMS ("XMS") REST API, whose `batches` and `mo_text` callbacks are another
//! product with other credentials.

#[cfg(feature = "stand-in")]
mod stand_in;
mod token;

use super::http::{error_excerpt, join_path};
use super::{
    Accepted, AuthError, InboundReport, OutboundMessage, ParseError, ParsedItems, ProviderAdapter,
    ReplyTo, Retry, SampleEvent, SendContext, SendError, SignedRequest, StatusReport,
    UnsupportedMediaType, WebhookItem,
};
use crate::domain::{
    Connection, ConnectionSecrets, FieldReader, Provider, ProviderFields, SendErrorCode, Status,
    ValidationErrors, is_valid_message_id, phone,
};
use crate::providers::http::{ProviderAnswer, exchange};
use crate::webhook::{RouteKind, WebhookReply, WebhookRequest};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::time::Duration;
use subtle::ConstantTimeEq;
use token::{TokenCache, TokenRequest};
use url::Url;

/// The global token host serves every Conversation region (sinch/docs PR #206).
pub const AUTH_BASE: &str = "https://auth.sinch.com";
pub const TOKEN_PATH: &str = "/oauth2/token";
pub const SIGNATURE_HEADER: &str = "x-sinch-webhook-signature";
pub const NONCE_HEADER: &str = "x-sinch-webhook-signature-nonce";
pub const TIMESTAMP_HEADER: &str = "x-sinch-webhook-signature-timestamp";
pub const ALGORITHM_HEADER: &str = "x-sinch-webhook-signature-algorithm";
pub const ALGORITHM: &str = "HmacSHA256";
/// How far a signature's timestamp may be from our clock, either way (Sinch asks for "an
/// acceptable time window" and names none).
pub const REPLAY_WINDOW_SECONDS: i64 = 5 * 60;
/// The regions the seed offers.
pub const REGIONS: [&str; 2] = ["eu", "us"];
/// How long Sinch keeps trying to hand a message to the SMS channel: an invitation older than a
/// day is not worth delivering.
const TTL: &str = "86400s";

/// `FAILED` reasons that are the recipient's side (the message left, the handset never got it):
/// `undelivered`; every other reason is `failed` (the reference's classification).
const RECIPIENT_SIDE_REASONS: [&str; 5] = [
    "RECIPIENT_NOT_REACHABLE",
    "DELIVERY_TIMED_OUT",
    "MESSAGE_EXPIRED",
    "DELIVERY_REPORT_TIME_OUT",
    "RECIPIENT_NOT_OPTED_IN",
];

/// The envelope fields every callback carries next to its one trigger-specific key.
const ENVELOPE_FIELDS: [&str; 6] = [
    "app_id",
    "project_id",
    "accepted_time",
    "event_time",
    "message_metadata",
    "correlation_id",
];

/// The Sinch adapter. `api_base` replaces `https://{region}.conversation.api.sinch.com`
/// (`BYOSMS_SINCH_API_URL`), `auth_base` replaces `https://auth.sinch.com`
/// (`BYOSMS_SINCH_AUTH_API_URL`); either may carry a path prefix, as the sandbox's `/sinch` does.
#[derive(Debug)]
pub struct Sinch {
    api_base: Option<Url>,
    auth_base: Url,
    tokens: TokenCache,
}

impl Sinch {
    pub fn new(api_base: Option<Url>, auth_base: Option<Url>) -> Self {
        Sinch {
            api_base,
            auth_base: auth_base
                .unwrap_or_else(|| Url::parse(AUTH_BASE).expect("AUTH_BASE is a valid URL")),
            tokens: TokenCache::default(),
        }
    }

    /// The Conversation API base of a region, unless the deployment overrides it.
    pub fn region_base(&self, region: &str) -> Url {
        self.api_base.clone().unwrap_or_else(|| {
            Url::parse(&format!("https://{region}.conversation.api.sinch.com"))
                .expect("a region is two letters")
        })
    }

    pub fn send_endpoint(&self, region: &str, project_id: &str) -> String {
        join_path(
            &self.region_base(region),
            &format!("/v1/projects/{project_id}/messages:send"),
        )
    }

    pub fn token_endpoint(&self) -> String {
        join_path(&self.auth_base, TOKEN_PATH)
    }
}

impl Default for Sinch {
    fn default() -> Self {
        Sinch::new(None, None)
    }
}

// ---------------------------------------------------------------------------------------------
// Connection fields

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `8-4-4-4-12` hex digits: Sinch project ids (and access key ids) are UUIDs.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && is_hex(g))
}

fn validate_project_id(v: &str) -> Result<String, String> {
    if is_uuid(v) {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(
            "must be the project's UUID (8-4-4-4-12 hex digits, Dashboard > Settings > Projects)"
                .into(),
        )
    }
}

/// Conversation app ids are ULIDs: 26 characters of Crockford base32.
fn validate_app_id(v: &str) -> Result<String, String> {
    let upper = v.to_ascii_uppercase();
    let crockford = |b: u8| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b));
    if upper.len() == 26 && upper.bytes().all(crockford) {
        Ok(upper)
    } else {
        Err("must be the Conversation app's id: 26 letters and digits (e.g. 01E3S8B6YCMRNR0GGM94H80ACX)".into())
    }
}

fn validate_region(v: &str) -> Result<String, String> {
    let lower = v.to_ascii_lowercase();
    if REGIONS.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err("must be eu or us: the data center of the Conversation app".into())
    }
}

/// The user half of HTTP Basic: printable, without the `:` that would end it.
fn validate_client_id(v: &str) -> Result<String, String> {
    if v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        Ok(v.to_string())
    } else {
        Err(
            "must be the access key's Key ID: at most 128 printable characters, no spaces or ':'"
                .into(),
        )
    }
}

/// A secret is kept byte for byte; only characters no HTTP header or form can carry are refused.
fn validate_secret(v: &str) -> Result<String, String> {
    if v.len() > 1024 {
        Err("must be at most 1024 characters".into())
    } else if v.chars().any(char::is_control) {
        Err("must not contain control characters (a pasted line break?)".into())
    } else {
        Ok(v.to_string())
    }
}

/// A number with its country code (stored E.164 with `+`), a short code, or an alphanumeric
/// sender id.
fn validate_from(v: &str) -> Result<String, String> {
    let digits = v.strip_prefix('+').unwrap_or(v);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if !v.starts_with('+') && (3..=8).contains(&digits.len()) {
            return Ok(digits.to_string()); // a short code
        }
        let number = phone::normalize(digits);
        return if phone::is_e164(&number) {
            Ok(number)
        } else {
            Err("must be a number with its country code (8 to 15 digits, e.g. 35312345678), a short code of 3 to 8 digits, or an alphanumeric sender id of at most 11 characters".into())
        };
    }
    let alphanumeric = v.len() <= 11
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && v.bytes().any(|b| b.is_ascii_alphabetic());
    if alphanumeric {
        Ok(v.to_string())
    } else {
        Err("an alphanumeric sender id has at most 11 characters (letters, digits, spaces) with at least one letter".into())
    }
}

/// A number as Sinch writes MSISDNs in `SMS_SENDER` and callbacks: digits, no `+`.
fn msisdn(number: &str) -> &str {
    number.strip_prefix('+').unwrap_or(number)
}

// ---------------------------------------------------------------------------------------------
// Statuses

/// A delivery report's `status`, normalized; `FAILED` by its `reason.code` (sinch.md §4).
pub fn normalize_status(word: &str, reason: Option<&str>) -> Status {
    match word {
        "QUEUED_ON_CHANNEL" => Status::Sent,
        "SWITCHING_CHANNEL" => Status::Queued,
        "DELIVERED" => Status::Delivered,
        "READ" => Status::Read,
        "FAILED" if reason.is_some_and(|r| RECIPIENT_SIDE_REASONS.contains(&r)) => {
            Status::Undelivered
        }
        "FAILED" => Status::Failed,
        _ => Status::Unknown,
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook authentication

type HmacSha256 = Hmac<Sha256>;

/// `base64(HMAC-SHA256(secret, body + "." + nonce + "." + timestamp))`: the secret's UTF-8 bytes
/// as they are (not base64-decoded), the body as received.
pub fn signature(secret: &str, body: &[u8], nonce: &str, timestamp: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(signature_bytes(secret, body, nonce, timestamp))
}

fn signature_bytes(secret: &str, body: &[u8], nonce: &str, timestamp: &str) -> Vec<u8> {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.update(b".");
    mac.update(nonce.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Standard base64, with or without its padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Whether a signature's timestamp (Unix seconds) is within the window around `now`.
fn within_window(timestamp: &str, now: DateTime<Utc>) -> Result<(), AuthError> {
    let at: i64 = timestamp.trim().parse().map_err(|_| {
        AuthError::Invalid("x-sinch-webhook-signature-timestamp (not Unix seconds)")
    })?;
    if (now.timestamp() - at).abs() > REPLAY_WINDOW_SECONDS {
        return Err(AuthError::Invalid(
            "x-sinch-webhook-signature-timestamp (more than 5 minutes from now)",
        ));
    }
    Ok(())
}

/// Each callback object of a body: the body itself, or the elements of an array of them.
fn callbacks(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// A signed callback of another app or project of the same account (a secret reused across
/// apps) does not belong to this connection.
fn foreign_id(body: &[u8], connection: &Connection) -> Option<&'static str> {
    let value: Value = serde_json::from_slice(body).ok()?;
    for callback in callbacks(&value) {
        for (field, setting) in [("app_id", "appId"), ("project_id", "projectId")] {
            let given = callback.get(field).and_then(Value::as_str).unwrap_or("");
            let ours = connection.setting(setting).unwrap_or("");
            if !given.is_empty() && !given.eq_ignore_ascii_case(ours) {
                return Some(field);
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Callbacks

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

fn non_empty<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    str_at(value, path).filter(|s| !s.is_empty())
}

/// ISO 8601 with any number of fraction digits (Sinch writes 0 to 9).
fn time_at(value: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(str_at(value, path)?)
        .ok()
        .map(|t| t.to_utc())
}

/// Our id, echoed in the report's `metadata` (our `message_metadata`) or the envelope's
/// `correlation_id`, when it is one we could have written.
fn echoed_message_id(callback: &Value, report: &Value) -> Option<String> {
    [
        str_at(report, &["metadata"]),
        str_at(callback, &["correlation_id"]),
        str_at(callback, &["message_metadata"]),
    ]
    .into_iter()
    .flatten()
    .find(|id| is_valid_message_id(id))
    .map(str::to_string)
}

/// A `message_delivery_report` or an `event_delivery_report` (its `event_id` in place of a
/// message id: recorded for what it is, it names none of our messages).
fn parse_delivery(callback: &Value, key: &str, id_field: &str) -> Result<WebhookItem, ParseError> {
    let report = callback
        .get(key)
        .filter(|r| r.is_object())
        .ok_or_else(|| ParseError(format!("{key} is not an object")))?;
    let id = non_empty(report, &[id_field])
        .ok_or_else(|| ParseError(format!("{key} has no {id_field}")))?;
    let word =
        non_empty(report, &["status"]).ok_or_else(|| ParseError(format!("{key} has no status")))?;
    let reason = non_empty(report, &["reason", "code"]);
    let kind = if id_field == "event_id" {
        "event"
    } else {
        "status"
    };
    Ok(WebhookItem::Status(StatusReport {
        provider_message_id: id.to_string(),
        message_id: echoed_message_id(callback, report),
        provider_status: word.to_string(),
        status: normalize_status(word, reason),
        error_code: reason.map(str::to_string),
        occurred_at: time_at(callback, &["event_time"]),
        opt_out: false,
        recipient: non_empty(report, &["channel_identity", "identity"]).map(phone::normalize),
        dedupe_key: format!("{kind}:{id}:{word}"),
    }))
}

/// The text of a `contact_message`, whichever kind it is.
fn contact_text(contact: &Value) -> Result<String, ParseError> {
    if let Some(text) = str_at(contact, &["text_message", "text"]) {
        return Ok(text.to_string());
    }
    if let Some(url) = str_at(contact, &["media_message", "url"]) {
        return Ok(url.to_string());
    }
    if let Some(data) = str_at(contact, &["choice_response_message", "postback_data"]) {
        return Ok(data.to_string());
    }
    if let Some(raw) = str_at(contact, &["fallback_message", "raw_message"]) {
        return Ok(raw.to_string());
    }
    if let Some(location) = contact.get("location_message") {
        let coordinate = |axis: &str| {
            location
                .get("coordinates")
                .and_then(|c| c.get(axis))
                .map(Value::to_string)
                .unwrap_or_default()
        };
        let title = str_at(location, &["title"]).unwrap_or("location");
        return Ok(format!(
            "{title} ({}, {})",
            coordinate("latitude"),
            coordinate("longitude")
        ));
    }
    Err(ParseError(
        "inbound message has no text, media, choice, fallback or location content".into(),
    ))
}

fn parse_inbound(callback: &Value, connection: &Connection) -> Result<WebhookItem, ParseError> {
    let message = callback
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| ParseError("message is not an object".into()))?;
    let id = non_empty(message, &["id"])
        .ok_or_else(|| ParseError("inbound message has no id".into()))?;
    let from = non_empty(message, &["channel_identity", "identity"])
        .ok_or_else(|| ParseError("inbound message has no channel_identity.identity".into()))?;
    let contact = message
        .get("contact_message")
        .filter(|c| c.is_object())
        .ok_or_else(|| ParseError("inbound message has no contact_message".into()))?;
    // The number that was texted; the connection's own sender when Sinch leaves it out.
    let to = non_empty(message, &["sender_id"])
        .or_else(|| connection.setting("from"))
        .unwrap_or_default();
    Ok(WebhookItem::Inbound(InboundReport {
        provider_message_id: id.to_string(),
        from: phone::normalize(from),
        to: phone::normalize(to),
        text: contact_text(contact)?,
        occurred_at: time_at(message, &["accept_time"])
            .or_else(|| time_at(callback, &["event_time"])),
        part: None, // the SMS channel joins a concatenated MO before calling
        // Only channels with threads say what a message answers; SMS replies are linked by
        // numbers (`correlation_id` on an MO is merely the last one seen, not the one answered).
        reply_to: non_empty(contact, &["reply_to", "message_id"])
            .map(|m| ReplyTo::ProviderMessageId(m.to_string())),
        opt_out: false, // STOP arrives as ordinary text: the pipeline's keywords decide
        dedupe_key: format!("inbound:{id}"),
    }))
}

/// One callback object: an item, or none for a trigger we do not record (contact and
/// conversation notifications, ...), or why it cannot be read.
fn parse_callback(
    callback: &Value,
    connection: &Connection,
) -> Result<Option<WebhookItem>, ParseError> {
    let Value::Object(fields) = callback else {
        return Err(ParseError("a Sinch callback is a JSON object".into()));
    };
    if fields.contains_key("message") {
        return parse_inbound(callback, connection).map(Some);
    }
    if fields.contains_key("message_delivery_report") {
        return parse_delivery(callback, "message_delivery_report", "message_id").map(Some);
    }
    if fields.contains_key("event_delivery_report") {
        return parse_delivery(callback, "event_delivery_report", "event_id").map(Some);
    }
    if !fields.contains_key("app_id") && !fields.contains_key("project_id") {
        return Err(ParseError(
            "not a Sinch Conversation callback: no app_id, project_id or known trigger".into(),
        ));
    }
    let trigger = fields
        .keys()
        .find(|k| !ENVELOPE_FIELDS.contains(&k.as_str()))
        .map_or("(none)", String::as_str);
    tracing::info!(trigger, "Sinch callback of a trigger we do not record");
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Send

/// What a send needs from the connection, all of it guaranteed by validation.
struct SendConfig<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    region: &'a str,
    project_id: &'a str,
    app_id: &'a str,
    from: Option<&'a str>,
}

impl<'a> SendConfig<'a> {
    fn of(ctx: &'a SendContext<'_>) -> Result<Self, SendError> {
        let setting = |name: &str| {
            ctx.connection
                .setting(name)
                .ok_or_else(|| SendError::config(format!("connection has no {name}")))
        };
        let secret = |name: &str| {
            ctx.secrets
                .expose(name)
                .ok_or_else(|| SendError::config(format!("connection secret has no {name}")))
        };
        Ok(SendConfig {
            client_id: setting("clientId")?,
            client_secret: secret("clientSecret")?,
            region: setting("region")?,
            project_id: setting("projectId")?,
            app_id: setting("appId")?,
            from: ctx.connection.setting("from"),
        })
    }
}

/// The `messages:send` body (field names of the SDKs' `SendMessageRequest`). Our id travels in
/// `message_metadata` (echoed as the delivery report's `metadata`) and `correlation_id` (echoed
/// top-level). No `callback_url`: it would be signed with another secret than the webhooks'.
pub fn send_body(app_id: &str, from: Option<&str>, message: &OutboundMessage) -> Value {
    let mut body = json!({
        "app_id": app_id,
        "recipient": {
            "identified_by": {
                "channel_identities": [{ "channel": "SMS", "identity": message.to }]
            }
        },
        "message": { "text_message": { "text": message.body } },
        "channel_priority_order": ["SMS"],
        "message_metadata": message.message_id,
        "correlation_id": message.message_id,
        "processing_strategy": "DEFAULT",
        "ttl": TTL,
    });
    if let Some(from) = from {
        body["channel_properties"] = json!({ "SMS_SENDER": msisdn(from) });
    }
    body
}

/// A google.rpc `Duration` in JSON: decimal seconds with an `s` (`"1.5s"`).
fn parse_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

/// The wait a google.rpc error's `RetryInfo` detail asks for.
fn retry_info(error: &Value) -> Option<Duration> {
    error
        .get("details")?
        .as_array()?
        .iter()
        .filter(|d| str_at(d, &["@type"]).is_some_and(|t| t.ends_with("google.rpc.RetryInfo")))
        .find_map(|d| parse_duration(str_at(d, &["retryDelay"])?))
}

/// The fields a google.rpc `BadRequest` detail names.
fn violated_fields(error: &Value) -> Vec<String> {
    let Some(details) = error.get("details").and_then(Value::as_array) else {
        return Vec::new();
    };
    details
        .iter()
        .filter_map(|d| d.get("fieldViolations").and_then(Value::as_array))
        .flatten()
        .filter_map(|v| str_at(v, &["field"]).map(str::to_string))
        .collect()
}

/// A refused `messages:send`, classified (sinch.md §2 Errors).
pub fn classify(http_status: u16, body: &str, region: &str) -> SendError {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let error = parsed.get("error").cloned().unwrap_or(Value::Null);
    let rpc_status = non_empty(&error, &["status"]).map(str::to_string);
    let text = str_at(&error, &["message"])
        .map(error_excerpt)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| format!("Sinch answered HTTP {http_status}"));
    let fields = violated_fields(&error);
    let names = |words: &[&str]| fields.iter().any(|f| words.iter().any(|w| f.contains(w)));
    use SendErrorCode as C;
    let (code, retry, text) = match http_status {
        400 if names(&["identity", "recipient"]) => (C::InvalidNumber, Retry::Never, text),
        400 if names(&["SMS_SENDER", "channel_properties"]) => {
            (C::InvalidSender, Retry::Never, text)
        }
        400 if names(&["text_message", "message.text"]) => (C::InvalidBody, Retry::Never, text),
        401 | 403 => (C::AuthFailed, Retry::Never, text),
        404 => (
            C::ConfigError,
            Retry::Never,
            format!(
                "{text} (is the Conversation app in the {region} region, and are projectId and appId right?)"
            ),
        ),
        429 => (C::Throttled, Retry::NotAccepted, text),
        // UNAVAILABLE: the service took nothing in (ARCHITECTURE: 503 is not accepted).
        503 => (C::ProviderUnavailable, Retry::NotAccepted, text),
        500..=599 => (C::OutcomeUnknown, Retry::OutcomeUnknown, text),
        _ => (C::Rejected, Retry::Never, text),
    };
    let err = SendError::new(code, text, retry).with_retry_after(retry_info(&error));
    match rpc_status {
        Some(status) => err.with_provider_code(status),
        None => err.with_provider_code(http_status.to_string()),
    }
}

/// One `messages:send` call's answer.
enum Answer {
    Accepted(Accepted),
    /// 401: the token is refused (expired early, revoked).
    TokenRefused,
    Refused(SendError),
}

impl Sinch {
    async fn post_message(
        &self,
        ctx: &SendContext<'_>,
        endpoint: &str,
        token: &str,
        body: &Value,
        region: &str,
    ) -> Result<Answer, SendError> {
        let ProviderAnswer {
            status,
            retry_after: wait,
            body: text,
        } = exchange(
            ctx.http
                .client()
                .post(endpoint)
                .bearer_auth(token)
                .header(http::header::ACCEPT, "application/json")
                .json(body),
        )
        .await?;
        if status == 401 {
            return Ok(Answer::TokenRefused);
        }
        if !(200..300).contains(&status) {
            let err = classify(status, &text, region);
            let wait = err.retry_after.or(wait);
            return Ok(Answer::Refused(err.with_retry_after(wait)));
        }
        let id = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| non_empty(&v, &["message_id"]).map(str::to_string))
            .ok_or_else(|| {
                SendError::new(
                    SendErrorCode::OutcomeUnknown,
                    "Sinch accepted the request but its answer has no message_id",
                    Retry::OutcomeUnknown,
                )
            })?;
        Ok(Answer::Accepted(Accepted {
            provider_message_id: id,
            part_ids: Vec::new(),
            provider_status: None, // Sinch's internal QUEUED, which it never reports
            status: Status::Accepted,
        }))
    }
}

#[async_trait]
impl ProviderAdapter for Sinch {
    fn provider(&self) -> Provider {
        Provider::Sinch
    }

    fn validate_connection(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<ProviderFields, ValidationErrors> {
        let mut r = FieldReader::new(fields);
        r.setting("clientId", validate_client_id);
        r.secret("clientSecret", validate_secret);
        r.setting("region", validate_region);
        r.setting("projectId", validate_project_id);
        r.optional("from", validate_from);
        r.setting("appId", validate_app_id);
        r.secret("webhookSecret", validate_secret);
        r.send_rate();
        r.finish()
    }

    async fn send(
        &self,
        ctx: &SendContext<'_>,
        message: &OutboundMessage,
    ) -> Result<Accepted, SendError> {
        let config = SendConfig::of(ctx)?;
        let endpoint = self.send_endpoint(config.region, config.project_id);
        let token_endpoint = self.token_endpoint();
        let token_request = TokenRequest {
            http: ctx.http.client(),
            endpoint: &token_endpoint,
            client_id: config.client_id,
            client_secret: config.client_secret,
        };
        let connection = (
            ctx.connection.org_id.as_str(),
            ctx.connection.connection_id.as_str(),
        );
        let body = send_body(config.app_id, config.from, message);
        let mut refused: Option<String> = None;
        // A refused token is dropped and fetched again once: a 401 means nothing was accepted,
        // so the second call cannot send twice.
        for _ in 0..2 {
            let token = self
                .tokens
                .token(connection, &token_request, refused.as_deref())
                .await?;
            match self
                .post_message(ctx, &endpoint, &token, &body, config.region)
                .await?
            {
                Answer::Accepted(accepted) => return Ok(accepted),
                Answer::Refused(err) => return Err(err),
                Answer::TokenRefused => refused = Some(token),
            }
        }
        Err(SendError::new(
            SendErrorCode::AuthFailed,
            "Sinch refused a freshly fetched access token (HTTP 401): check the access key's project",
            Retry::Never,
        )
        .with_provider_code("UNAUTHENTICATED"))
    }

    fn authenticate(
        &self,
        request: &WebhookRequest,
        connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<(), AuthError> {
        let given = request
            .header(SIGNATURE_HEADER)
            .ok_or(AuthError::Missing("x-sinch-webhook-signature header"))?;
        let nonce = request
            .header(NONCE_HEADER)
            .ok_or(AuthError::Missing("x-sinch-webhook-signature-nonce header"))?;
        let timestamp = request.header(TIMESTAMP_HEADER).ok_or(AuthError::Missing(
            "x-sinch-webhook-signature-timestamp header",
        ))?;
        // Sinch sends the algorithm with every signed callback; the Java SDK requires it and
        // so do we (a request without it is not one Sinch made), and no other algorithm is taken.
        let algorithm = request.header(ALGORITHM_HEADER).ok_or(AuthError::Missing(
            "x-sinch-webhook-signature-algorithm header",
        ))?;
        if !algorithm.trim().eq_ignore_ascii_case(ALGORITHM) {
            return Err(AuthError::Invalid("x-sinch-webhook-signature-algorithm"));
        }
        let secret = secrets
            .expose("webhookSecret")
            .ok_or(AuthError::Invalid("x-sinch-webhook-signature"))?;
        within_window(timestamp, request.received_at)?;
        let expected = signature_bytes(secret, &request.body, nonce, timestamp);
        let given = LENIENT_BASE64
            .decode(given.trim())
            .map_err(|_| AuthError::Invalid("x-sinch-webhook-signature"))?;
        if !bool::from(expected.ct_eq(&given)) {
            return Err(AuthError::Invalid("x-sinch-webhook-signature"));
        }
        match foreign_id(&request.body, connection) {
            Some("app_id") => Err(AuthError::Invalid("app_id (another Conversation app)")),
            Some(_) => Err(AuthError::Invalid("project_id (another project)")),
            None => Ok(()),
        }
    }

    fn check_media_type(&self, request: &WebhookRequest) -> Result<(), UnsupportedMediaType> {
        if request.is_json() {
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
        let value: Value = serde_json::from_slice(&request.body)
            .map_err(|e| ParseError(format!("body is not valid JSON: {e}")))?;
        let callbacks = callbacks(&value);
        if callbacks.is_empty() {
            return Err(ParseError("an empty array carries no callback".into()));
        }
        // What each payload is, not the route it came in on, decides how it is recorded.
        Ok(callbacks
            .into_iter()
            .filter_map(|callback| parse_callback(callback, connection).transpose())
            .collect())
    }

    fn acknowledge(&self, _route: RouteKind, _connection: &Connection) -> WebhookReply {
        WebhookReply::new(200, "application/json", "{}")
    }

    fn setup_guide(&self, message_url: &Url, status_url: &Url) -> String {
        format!(
            "At Sinch (dashboard > Conversation API > Apps > your app > Webhooks), add two webhooks, \
             both with target type HTTP and the same secret, which is this connection's webhookSecret:\n\
             1. Delivery status: target {status_url}, triggers MESSAGE_DELIVERY and EVENT_DELIVERY.\n\
             2. Replies: target {message_url}, trigger MESSAGE_INBOUND.\n\
             The app must be in the connection's region (eu or us), with the SMS channel set up on a \
             service plan of the same region. clientId and clientSecret are a project access key \
             (Settings > Access Keys); do not set a per-message callback URL or \
             secret_for_overridden_callback_urls: every callback comes through these two webhooks."
        )
    }

    fn sample_webhook(
        &self,
        event: &SampleEvent,
        url: &Url,
        connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<SignedRequest, ParseError> {
        let secret = secrets
            .expose("webhookSecret")
            .ok_or_else(|| ParseError("connection secret has no webhookSecret".into()))?;
        let app_id = connection.setting("appId").unwrap_or_default();
        let project_id = connection.setting("projectId").unwrap_or_default();
        let now = Utc::now();
        let time = now.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut callback = json!({
            "app_id": app_id,
            "project_id": project_id,
            "accepted_time": time,
            "event_time": time,
            "message_metadata": "",
        });
        match event {
            SampleEvent::Inbound { from, to, text } => {
                callback["message"] = json!({
                    "id": ulid_like(now),
                    "direction": "TO_APP",
                    "contact_message": { "text_message": { "text": text } },
                    "channel_identity": { "channel": "SMS", "identity": msisdn(from), "app_id": "" },
                    "conversation_id": "",
                    "contact_id": "",
                    "metadata": "",
                    "accept_time": time,
                    "sender_id": msisdn(to),
                    "processing_mode": "DISPATCH",
                    "injected": false,
                });
            }
            SampleEvent::Status {
                message_id,
                provider_message_id,
                provider_status,
                error_code,
            } => {
                // `simulate` may give our word (delivered) or Sinch's (DELIVERED).
                let word = provider_status.to_ascii_uppercase();
                let mut report = json!({
                    "message_id": provider_message_id,
                    "conversation_id": "",
                    "status": word,
                    "contact_id": "",
                    "metadata": message_id.as_deref().unwrap_or(""),
                    "processing_mode": "DISPATCH",
                });
                if let Some(code) = error_code {
                    report["reason"] = json!({
                        "code": code,
                        "description": "",
                        "sub_code": "UNSPECIFIED_SUB_CODE",
                    });
                }
                callback["message_delivery_report"] = report;
                if let Some(id) = message_id {
                    callback["correlation_id"] = json!(id);
                }
            }
        }
        let body = serde_json::to_vec(&callback).expect("a JSON value always serializes");
        let nonce = ulid_like(now);
        let timestamp = now.timestamp().to_string();
        Ok(SignedRequest {
            method: http::Method::POST,
            url: url.clone(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                (
                    SIGNATURE_HEADER.into(),
                    signature(secret, &body, &nonce, &timestamp),
                ),
                (NONCE_HEADER.into(), nonce),
                (TIMESTAMP_HEADER.into(), timestamp),
                (ALGORITHM_HEADER.into(), ALGORITHM.into()),
            ],
            body,
        })
    }

    fn example_fields(&self) -> Map<String, Value> {
        Map::from_iter([
            (
                "clientId".into(),
                "2f6e1b7c-0a4d-4c3e-9b8a-5d7f6e1c2b3a".into(),
            ),
            ("clientSecret".into(), "example~client.secret-0123".into()),
            ("region".into(), "eu".into()),
            (
                "projectId".into(),
                "c36f3d3d-1513-2edd-ae42-11995557ff61".into(),
            ),
            ("from".into(), "+447700900123".into()),
            ("appId".into(), "01E3S8B6YCMRNR0GGM94H80ACX".into()),
            ("webhookSecret".into(), "example-webhook-secret-0123".into()),
        ])
    }

    #[cfg(feature = "stand-in")]
    fn stand_in(&self) -> super::stand_in::StandIn {
        stand_in::stand_in()
    }
}

/// A ULID-shaped id (48 bits of milliseconds, 80 random bits, Crockford base32), the form of
/// Sinch's message ids and nonces.
pub fn ulid_like(at: DateTime<Utc>) -> String {
    const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = u128::try_from(at.timestamp_millis()).unwrap_or_default() & ((1 << 48) - 1);
    let random = uuid::Uuid::new_v4().as_u128() & ((1 << 80) - 1);
    let value = (millis << 80) | random;
    (0..26)
        .rev()
        .map(|i| CROCKFORD[((value >> (5 * i)) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests;
