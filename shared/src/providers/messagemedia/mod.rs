//! MessageMedia (Sinch Engage) Messages API: `POST {apiHost}/v1/messages` with Basic auth,
//! delivery reports and replies pushed as JSON to a per-message `callback_url` or to account
//! webhooks, signed with RSA (`X-MessageMedia-Signature`). Facts and vectors:
//! `providers/messagemedia.md` of the reference material.

pub mod signature;
#[cfg(feature = "stand-in")]
mod stand_in;

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
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use signature::{Digest, SimulationKey};
use url::Url;

/// The hosts `apiHost` may name: the legacy host (the SDKs' default, still used by the official
/// n8n node) and the two regional Sinch Engage hosts of the current spec. An account must use
/// its home region's host; nothing else carries our credentials.
pub const API_HOSTS: [&str; 3] = [
    "api.messagemedia.com",
    "eu.app.api.sinch.com",
    "au.app.api.sinch.com",
];
pub const DEFAULT_API_HOST: &str = API_HOSTS[0];
/// The `metadata` key that carries our message id; MessageMedia echoes metadata in delivery
/// reports and replies.
pub const MESSAGE_ID_KEY: &str = "messageId";
pub const SIGNATURE_HEADER: &str = "x-messagemedia-signature";
pub const DIGEST_HEADER: &str = "x-messagemedia-digest-type";
pub const CIPHER_HEADER: &str = "x-messagemedia-cipher-type";
pub const KEY_ID_HEADER: &str = "x-messagemedia-key-id";
/// The Messages API's `content` limit, in characters.
pub const MAX_CONTENT_CHARS: usize = 5000;
/// The account-webhook event that flags an opt-out.
pub const OPT_OUT_EVENT: &str = "OPT_OUT_SMS";

/// The MessageMedia adapter; `api_base` (`BYOSMS_MESSAGEMEDIA_API_URL`, which may carry a path
/// prefix, as the sandbox's `/messagemedia` does) replaces `https://{apiHost}`.
#[derive(Debug, Default)]
pub struct MessageMedia {
    api_base: Option<Url>,
}

impl MessageMedia {
    pub fn new(api_base: Option<Url>) -> Self {
        MessageMedia { api_base }
    }

    fn messages_endpoint(&self, api_host: &str) -> Result<String, SendError> {
        let base = match &self.api_base {
            Some(base) => base.clone(),
            None => Url::parse(&format!("https://{api_host}"))
                .map_err(|_| SendError::config("connection has an invalid apiHost"))?,
        };
        Ok(join_path(&base, "/v1/messages"))
    }
}

// ---------------------------------------------------------------------------------------------
// Connection fields

/// `source_number_type`: MessageMedia's own inference "may be inaccurate", so we always say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceType {
    International,
    Alphanumeric,
    Shortcode,
}

impl SourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::International => "INTERNATIONAL",
            SourceType::Alphanumeric => "ALPHANUMERIC",
            SourceType::Shortcode => "SHORTCODE",
        }
    }
}

/// The type of a stored (validated) sender.
pub fn source_type(from: &str) -> SourceType {
    if from.starts_with('+') {
        SourceType::International
    } else if from.bytes().all(|b| b.is_ascii_digit()) {
        SourceType::Shortcode
    } else {
        SourceType::Alphanumeric
    }
}

/// A sender as stored: `+` and digits for a number (a bare number of 9 or more digits gets its
/// `+`, as the seed's `35312345678`), digits for a short code (3 to 8), or an alphanumeric id.
fn validate_from(input: &str) -> Result<String, String> {
    let digits = input.strip_prefix('+').unwrap_or(input);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if !input.starts_with('+') && (3..=8).contains(&digits.len()) {
            return Ok(digits.to_string());
        }
        let number = format!("+{digits}");
        return if phone::is_e164(&number) {
            Ok(number)
        } else {
            Err("a number must have its country code and 8 to 15 digits (e.g. +61491570157); a short code has 3 to 8 digits".into())
        };
    }
    let alphanumeric = (3..=11).contains(&input.len())
        && input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && input.bytes().any(|b| b.is_ascii_alphabetic());
    if alphanumeric {
        Ok(input.to_string())
    } else {
        Err("an alphanumeric sender id has 3 to 11 characters (letters, digits, _ or -) with at least one letter".into())
    }
}

fn validate_api_key(key: &str) -> Result<String, String> {
    if key.len() > 100 {
        Err("must be at most 100 characters".into())
    } else if key.contains(':') || key.bytes().any(|b| !b.is_ascii_graphic()) {
        Err(
            "must be the API key as MessageMedia shows it: printable characters, no spaces or ':'"
                .into(),
        )
    } else {
        Ok(key.to_string())
    }
}

fn validate_api_secret(secret: &str) -> Result<String, String> {
    if secret.chars().any(char::is_control) {
        Err("must not contain control characters or line breaks".into())
    } else if secret.len() > 200 {
        Err("must be at most 200 characters".into())
    } else {
        Ok(secret.to_string())
    }
}

/// `apiHost`: one of [`API_HOSTS`], given bare or as `https://host`.
fn validate_api_host(input: &str) -> Result<String, String> {
    let host = input
        .trim()
        .strip_prefix("https://")
        .unwrap_or(input.trim())
        .trim_end_matches('/')
        .to_ascii_lowercase();
    if API_HOSTS.contains(&host.as_str()) {
        Ok(host)
    } else {
        Err(format!(
            "must be one of MessageMedia's API hosts: {} (the account's home region)",
            API_HOSTS.join(", ")
        ))
    }
}

/// `webhookKeyId`: the `key_id` the Signature Key API returned, a UUID.
fn validate_key_id(input: &str) -> Result<String, String> {
    let is_uuid = input.len() == 36
        && input.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if is_uuid {
        Ok(input.to_ascii_lowercase())
    } else {
        Err("must be the key_id of the signature key (a UUID)".into())
    }
}

/// Whether a stored (validated) key is the simulation key whose private half is published.
fn is_simulation_key(stored_pem: &str) -> bool {
    signature::parse_public_key(stored_pem)
        .is_ok_and(|key| key == signature::SimulationKey::public())
}

fn simulation_key_refusal() -> String {
    "is byosms's published simulation key, with which anyone can sign: use your account's \
     signature key (the simulation key is accepted only while BYOSMS_MESSAGEMEDIA_API_URL points \
     at a sandbox)"
        .into()
}

fn validate_public_key(input: &str) -> Result<String, String> {
    signature::parse_public_key(input).and_then(|key| signature::public_key_pem(&key))
}

// ---------------------------------------------------------------------------------------------
// Send

/// The one message of our `POST /v1/messages` body.
fn message_json(
    message: &OutboundMessage,
    from: &str,
    callback: Option<&Url>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("content".into(), json!(message.body));
    m.insert("destination_number".into(), json!(message.to));
    m.insert("source_number".into(), json!(from));
    m.insert(
        "source_number_type".into(),
        json!(source_type(from).as_str()),
    );
    m.insert("format".into(), json!("SMS"));
    m.insert("delivery_report".into(), json!(true));
    if let Some(url) = callback {
        m.insert("callback_url".into(), json!(url.as_str()));
    }
    m.insert(
        "metadata".into(),
        json!({ MESSAGE_ID_KEY: message.message_id }),
    );
    m
}

/// MessageMedia's error body: `{"message": "...", "details": ["/messages/0/field: why"]}`.
fn error_text(body: &str) -> (Option<String>, Vec<String>) {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string);
    let details = value
        .get("details")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (message, details)
}

/// Classifies an error answer. Only a 429 or a 503 provably accepted nothing; other 5xx may
/// have sent the message.
pub fn classify(http_status: u16, body: &str) -> SendError {
    let (message, details) = error_text(body);
    let detail_says = |field: &str| details.iter().any(|d| d.contains(field));
    let words = match (message.as_deref(), details.first()) {
        (Some(m), Some(d)) => format!("{m} {d}"),
        (Some(m), None) => m.to_string(),
        (None, Some(d)) => d.clone(),
        (None, None) => String::new(),
    };
    let text = Some(error_excerpt(&words))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| format!("MessageMedia answered HTTP {http_status}"));
    use SendErrorCode as C;
    let (ours, retry) = match http_status {
        400 if detail_says("destination_number") => (C::InvalidNumber, Retry::Never),
        400 if detail_says("source_number") => (C::InvalidSender, Retry::Never),
        400 if detail_says("content") => (C::InvalidBody, Retry::Never),
        401 => (C::AuthFailed, Retry::Never),
        402 => (C::InsufficientFunds, Retry::Never),
        404 => (C::ConfigError, Retry::Never),
        429 => (C::Throttled, Retry::NotAccepted),
        503 => (C::ProviderUnavailable, Retry::NotAccepted),
        500..=599 => (C::OutcomeUnknown, Retry::OutcomeUnknown),
        _ => (C::Rejected, Retry::Never),
    };
    let text = if http_status == 404 {
        format!("{text} (is apiHost the account's home region?)")
    } else {
        text
    };
    SendError::new(ours, text, retry).with_provider_code(http_status.to_string())
}

fn unreadable_acceptance() -> SendError {
    SendError::new(
        SendErrorCode::OutcomeUnknown,
        "MessageMedia accepted the request but its answer could not be read",
        Retry::OutcomeUnknown,
    )
}

/// The 202 answer's first message: its id and status word.
fn accepted(body: &str) -> Result<Accepted, SendError> {
    let value: Value = serde_json::from_str(body).map_err(|_| unreadable_acceptance())?;
    let first = value
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.first())
        .ok_or_else(unreadable_acceptance)?;
    let id = first
        .get("message_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(unreadable_acceptance)?;
    Ok(Accepted {
        provider_message_id: id.to_string(),
        part_ids: Vec::new(),
        provider_status: first
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_string),
        // At submission the status is always `queued`: accepted, nothing more yet.
        status: Status::Accepted,
    })
}

// ---------------------------------------------------------------------------------------------
// Statuses

/// `error_code`s of a `failed` report that say the message reached the network and was not
/// delivered; every other code of a `failed` report is the gateway's refusal.
const UNDELIVERED_CODES: [&str; 8] = ["400", "401", "402", "403", "411", "412", "413", "414"];

/// A delivery report's `status` (and, for `failed` only, its `error_code`), normalized.
/// `undefined` keeps the message's current status (`Unknown` changes nothing); so does any word
/// nobody has mapped yet, which is recorded with the word kept.
pub fn normalize_status(word: &str, error_code: Option<&str>) -> Status {
    match word.trim().to_ascii_lowercase().as_str() {
        "queued" | "scheduled" | "held" | "processing" | "enroute" => Status::Queued,
        "submitted" | "processed" => Status::Sent,
        "delivered" => Status::Delivered,
        // Our model has `read` above `delivered`; MessageMedia's word means the same.
        "read" => Status::Read,
        "expired" | "undeliverable" => Status::Undelivered,
        "failed" if error_code.is_some_and(|c| UNDELIVERED_CODES.contains(&c.trim())) => {
            Status::Undelivered
        }
        "failed" | "rejected" | "cancelled" => Status::Failed,
        _ => Status::Unknown,
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook payloads

/// A payload's field as text: strings and numbers; empty strings and unrendered template
/// references (`$replyId`, left as is when an event lacks the variable) count as absent.
fn text(object: &Map<String, Value>, name: &str) -> Option<String> {
    let value = match object.get(name)? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!value.is_empty() && !value.starts_with('$')).then_some(value)
}

/// `metadata` as MessageMedia echoes it: an object of strings (or, from a form or query
/// template, the same object as a JSON string).
fn metadata(object: &Map<String, Value>) -> Map<String, Value> {
    match object.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_default(),
        _ => Map::new(),
    }
}

fn our_message_id(object: &Map<String, Value>) -> Option<String> {
    text(&metadata(object), MESSAGE_ID_KEY).filter(|id| is_valid_message_id(id))
}

/// Timestamps never refuse a payload: an odd one is just not used.
fn timestamp(object: &Map<String, Value>, name: &str) -> Option<DateTime<Utc>> {
    let value = text(object, name)?;
    DateTime::parse_from_rfc3339(&value)
        .or_else(|_| DateTime::parse_from_str(&value, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.to_utc())
}

/// What a payload is, by its shape: replies and reports share the per-message `callback_url`.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    DeliveryReport,
    Reply,
    OptOut,
}

fn shape(object: &Map<String, Value>) -> Option<Shape> {
    let event = text(object, "event").or_else(|| text(object, "type"));
    if event.as_deref() == Some(OPT_OUT_EVENT)
        || (text(object, "notification_id").is_some() && text(object, "reply_id").is_none())
    {
        Some(Shape::OptOut)
    } else if text(object, "delivery_report_id").is_some() || text(object, "status").is_some() {
        Some(Shape::DeliveryReport)
    } else if text(object, "reply_id").is_some() || object.contains_key("content") {
        Some(Shape::Reply)
    } else {
        None
    }
}

fn delivery_report(object: &Map<String, Value>) -> Result<WebhookItem, ParseError> {
    let id = text(object, "message_id")
        .ok_or_else(|| ParseError("delivery report has no message_id".into()))?;
    let word =
        text(object, "status").ok_or_else(|| ParseError("delivery report has no status".into()))?;
    let error_code = text(object, "error_code");
    let dedupe_key = match text(object, "delivery_report_id") {
        Some(report) => format!("status:{report}"),
        None => format!(
            "status:{id}:{word}:{}",
            error_code.as_deref().unwrap_or("-")
        ),
    };
    Ok(WebhookItem::Status(StatusReport {
        status: normalize_status(&word, error_code.as_deref()),
        provider_message_id: id,
        message_id: our_message_id(object),
        provider_status: word,
        error_code,
        occurred_at: timestamp(object, "submitted_date")
            .or_else(|| timestamp(object, "date_received")),
        opt_out: false,
        // A report's source_number is the recipient of the original message.
        recipient: text(object, "source_number").map(|n| phone::normalize(&n)),
        dedupe_key,
    }))
}

fn reply(
    object: &Map<String, Value>,
    connection: &Connection,
    opt_out: bool,
) -> Result<WebhookItem, ParseError> {
    let (id_field, kind) = if opt_out {
        ("notification_id", "opt-out")
    } else {
        ("reply_id", "reply")
    };
    let id = text(object, id_field)
        .or_else(|| opt_out.then(|| text(object, "reply_id")).flatten())
        .ok_or_else(|| ParseError(format!("{kind} has no {id_field}")))?;
    let from = text(object, "source_number")
        .ok_or_else(|| ParseError(format!("{kind} has no source_number")))?;
    // Absent when the message answered had no source_number: the account's default sender.
    let to = text(object, "destination_number")
        .or_else(|| connection.setting("from").map(str::to_string))
        .unwrap_or_default();
    let reply_to = our_message_id(object)
        .map(ReplyTo::MessageId)
        .or_else(|| text(object, "message_id").map(ReplyTo::ProviderMessageId));
    let content = match object.get("content") {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    Ok(WebhookItem::Inbound(InboundReport {
        provider_message_id: id.clone(),
        from: phone::normalize(&from),
        to: phone::normalize(&to),
        text: content,
        occurred_at: timestamp(object, "date_received"),
        part: None, // MessageMedia joins long replies itself
        reply_to,
        opt_out,
        dedupe_key: format!("{}:{id}", if opt_out { "optout" } else { "inbound" }),
    }))
}

fn item(object: &Map<String, Value>, connection: &Connection) -> Result<WebhookItem, ParseError> {
    match shape(object) {
        Some(Shape::DeliveryReport) => delivery_report(object),
        Some(Shape::Reply) => reply(object, connection, false),
        Some(Shape::OptOut) => reply(object, connection, true),
        None => Err(ParseError(
            "neither a delivery report (delivery_report_id, status) nor a reply (reply_id, content)"
                .into(),
        )),
    }
}

/// The payload's objects: one JSON object, a JSON array of them, the polling APIs' wrappers
/// (`delivery_reports`, `replies`), or a form / query template's flat pairs.
fn payload_objects(request: &WebhookRequest) -> Result<Vec<Value>, ParseError> {
    let pairs_object = |pairs: Vec<(String, String)>| {
        let map: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k, json!(v))).collect();
        vec![Value::Object(map)]
    };
    if request.body.is_empty() {
        let pairs = request.query_pairs();
        if pairs.is_empty() {
            return Err(ParseError("request carries no payload".into()));
        }
        return Ok(pairs_object(pairs));
    }
    if request.is_form() {
        let pairs = request
            .form_pairs()
            .ok_or_else(|| ParseError("form body is not valid UTF-8".into()))?;
        return Ok(pairs_object(pairs));
    }
    let value: Value = serde_json::from_slice(&request.body)
        .map_err(|e| ParseError(format!("body is not valid JSON: {e}")))?;
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(mut map) => {
            for wrapper in ["delivery_reports", "replies"] {
                if let Some(Value::Array(items)) = map.remove(wrapper) {
                    return Ok(items);
                }
            }
            Ok(vec![Value::Object(map)])
        }
        _ => Err(ParseError("JSON body must be an object or an array".into())),
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication

/// The request targets MessageMedia may have signed: the path and query of the public URL we
/// gave it (what its request line carried, before any proxy rewrote the path), then the path
/// as it reached us; each also without the query, since whether MessageMedia signs the query
/// is unverified and the query carries nothing we read.
fn request_targets(request: &WebhookRequest) -> Vec<String> {
    let public_target = request
        .public_url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()));
    let mut targets: Vec<String> = Vec::new();
    for target in public_target.into_iter().chain([request.request_target()]) {
        let path_only = target.split('?').next().unwrap_or_default().to_string();
        for candidate in [target, path_only] {
            if !candidate.is_empty() && !targets.contains(&candidate) {
                targets.push(candidate);
            }
        }
    }
    targets
}

// ---------------------------------------------------------------------------------------------
// The adapter

#[async_trait]
impl ProviderAdapter for MessageMedia {
    fn provider(&self) -> Provider {
        Provider::Messagemedia
    }

    /// MessageMedia's `content`: 1 to 5,000 characters.
    fn body_limit(&self) -> super::BodyLimit {
        super::BodyLimit::Characters(MAX_CONTENT_CHARS)
    }

    fn validate_connection(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<ProviderFields, ValidationErrors> {
        let mut r = FieldReader::new(fields);
        r.setting("apiKey", validate_api_key);
        r.secret("apiSecret", validate_api_secret);
        r.setting("from", validate_from);
        let sandboxed = self.api_base.is_some();
        r.setting("webhookPublicKey", |pem| {
            let stored = validate_public_key(pem)?;
            if !sandboxed && is_simulation_key(&stored) {
                return Err(simulation_key_refusal());
            }
            Ok(stored)
        });
        r.optional_setting("apiHost", DEFAULT_API_HOST, validate_api_host);
        r.optional("webhookKeyId", validate_key_id);
        r.send_rate();
        r.finish()
    }

    async fn send(
        &self,
        ctx: &SendContext<'_>,
        message: &OutboundMessage,
    ) -> Result<Accepted, SendError> {
        let setting = |name: &str| {
            ctx.connection
                .setting(name)
                .ok_or_else(|| SendError::config(format!("connection has no {name}")))
        };
        let api_key = setting("apiKey")?;
        let from = setting("from")?;
        let api_host = ctx
            .connection
            .setting("apiHost")
            .unwrap_or(DEFAULT_API_HOST);
        let api_secret = ctx
            .secrets
            .expose("apiSecret")
            .ok_or_else(|| SendError::config("connection secret has no apiSecret"))?;
        if message.body.chars().count() > MAX_CONTENT_CHARS {
            return Err(SendError::new(
                SendErrorCode::InvalidBody,
                format!("MessageMedia takes at most {MAX_CONTENT_CHARS} characters"),
                Retry::Never,
            ));
        }
        // Validation keeps apiHost to MessageMedia's own hosts: the fixed-host client is right.
        let endpoint = self.messages_endpoint(api_host)?;
        let body = json!({ "messages": [message_json(message, from, ctx.status_callback)] });

        let ProviderAnswer {
            status,
            retry_after: wait,
            body: text,
        } = exchange(
            ctx.http
                .client()
                .post(&endpoint)
                .basic_auth(api_key, Some(api_secret))
                .header(http::header::ACCEPT, "application/json")
                .json(&body),
        )
        .await?;
        if !(200..300).contains(&status) {
            return Err(classify(status, &text).with_retry_after(wait));
        }
        accepted(&text)
    }

    fn authenticate(
        &self,
        request: &WebhookRequest,
        connection: &Connection,
        _secrets: &ConnectionSecrets,
    ) -> Result<(), AuthError> {
        let signature_b64 = request
            .header(SIGNATURE_HEADER)
            .ok_or(AuthError::Missing("X-MessageMedia-Signature header"))?;
        let date = request
            .header("date")
            .ok_or(AuthError::Missing("Date header"))?;
        let digest = request
            .header(DIGEST_HEADER)
            .ok_or(AuthError::Missing("X-MessageMedia-Digest-Type header"))?;
        let digest = Digest::from_header(digest).ok_or(AuthError::Invalid(
            "X-MessageMedia-Digest-Type (SHA224, SHA256 or SHA512)",
        ))?;
        let cipher = request
            .header(CIPHER_HEADER)
            .ok_or(AuthError::Missing("X-MessageMedia-Cipher-Type header"))?;
        if !cipher.trim().eq_ignore_ascii_case("RSA") {
            return Err(AuthError::Invalid("X-MessageMedia-Cipher-Type (RSA)"));
        }
        // Only one signature key is enabled at a time; naming it catches a rotation the admin
        // has not copied here yet, with a clearer answer than a failed signature.
        if let Some(expected) = connection.setting("webhookKeyId") {
            let given = request
                .header(KEY_ID_HEADER)
                .ok_or(AuthError::Missing("X-MessageMedia-Key-Id header"))?;
            if !given.trim().eq_ignore_ascii_case(expected) {
                return Err(AuthError::Invalid("X-MessageMedia-Key-Id"));
            }
        }
        let key = connection
            .setting("webhookPublicKey")
            .and_then(|pem| signature::parse_public_key(pem).ok())
            .ok_or(AuthError::Invalid("X-MessageMedia-Signature"))?;
        // Anyone can sign with the published simulation key: outside a sandboxed deployment a
        // connection that still carries it (stored while one was) verifies nothing.
        if self.api_base.is_none() && key == signature::SimulationKey::public() {
            return Err(AuthError::Invalid(
                "X-MessageMedia-Signature (the connection's key is the published simulation key)",
            ));
        }
        let method = request.method.as_str();
        let verified = request_targets(request).iter().any(|target| {
            let signed = signature::signed_bytes(method, target, date, &request.body);
            signature::verify(&key, digest, &signed, signature_b64)
        });
        if !verified {
            return Err(AuthError::Invalid("X-MessageMedia-Signature"));
        }
        // Checked after the signature, so that an attacker cannot probe our clock with
        // unsigned requests; a signed request outside the window is a replay.
        let signed_at = signature::parse_date(date).ok_or(AuthError::Invalid("Date header"))?;
        if !signature::is_fresh(signed_at, request.received_at) {
            return Err(AuthError::Invalid(
                "Date header (outside the 5-minute replay window)",
            ));
        }
        Ok(())
    }

    fn check_media_type(&self, request: &WebhookRequest) -> Result<(), UnsupportedMediaType> {
        if request.body.is_empty() || request.is_json() || request.is_form() {
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
        let objects = payload_objects(request)?;
        if objects.is_empty() {
            return Err(ParseError("payload has no items".into()));
        }
        // The shape, not the route, decides what an item is; one bad item spoils none other.
        Ok(objects
            .iter()
            .map(|value| match value {
                Value::Object(object) => item(object, connection),
                _ => Err(ParseError("item is not a JSON object".into())),
            })
            .collect())
    }

    fn acknowledge(&self, _route: RouteKind, _connection: &Connection) -> WebhookReply {
        // Any 2xx stops MessageMedia's retries; it reads no body.
        WebhookReply::new(200, "application/json", r#"{"received":true}"#)
    }

    fn setup_guide(&self, message_url: &Url, status_url: &Url) -> String {
        setup_guide(message_url, status_url)
    }

    fn sample_webhook(
        &self,
        event: &SampleEvent,
        url: &Url,
        connection: &Connection,
        _secrets: &ConnectionSecrets,
    ) -> Result<SignedRequest, ParseError> {
        let uses_simulation_key = connection
            .setting("webhookPublicKey")
            .and_then(|pem| signature::parse_public_key(pem).ok())
            .is_some_and(|key| key == SimulationKey::public());
        if !uses_simulation_key {
            return Err(ParseError(
                "MessageMedia signs webhooks with its own private key, which byosms never holds: \
                 only a connection whose webhookPublicKey is the simulation key (the example \
                 connection's) can be simulated"
                    .into(),
            ));
        }
        let now = Utc::now();
        let body = sample_payload(event, url, connection, now);
        let body = serde_json::to_vec(&body).expect("a JSON value serializes");
        let date = signature::format_date(now);
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        let digest = Digest::Sha256;
        let signed = signature::signed_bytes("POST", &target, &date, &body);
        let signature_b64 = signature::sign(&SimulationKey::private(), digest, &signed);
        Ok(SignedRequest {
            method: http::Method::POST,
            url: url.clone(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Date".into(), date),
                ("X-MessageMedia-Signature".into(), signature_b64),
                (
                    "X-MessageMedia-Digest-Type".into(),
                    digest.header_value().into(),
                ),
                ("X-MessageMedia-Cipher-Type".into(), "RSA".into()),
                ("X-MessageMedia-Key-Id".into(), SimulationKey::KEY_ID.into()),
            ],
            body,
        })
    }

    fn example_fields(&self) -> Map<String, Value> {
        Map::from_iter([
            ("apiKey".into(), json!("EXAMPLEAPIKEY0000000")),
            ("apiSecret".into(), json!("ExampleApiSecret00000000000000")),
            ("from".into(), json!("+61491570157")),
            ("webhookPublicKey".into(), json!(SimulationKey::PUBLIC_PEM)),
            ("apiHost".into(), json!(DEFAULT_API_HOST)),
            ("webhookKeyId".into(), json!(SimulationKey::KEY_ID)),
        ])
    }

    #[cfg(feature = "stand-in")]
    fn stand_in(&self) -> super::stand_in::StandIn {
        stand_in::stand_in()
    }
}

/// A payload as MessageMedia pushes it: a `callback_url` delivery report, or the default
/// `RECEIVED_SMS` account-webhook reply.
fn sample_payload(
    event: &SampleEvent,
    url: &Url,
    connection: &Connection,
    now: DateTime<Utc>,
) -> Value {
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    match event {
        SampleEvent::Inbound { from, to, text } => json!({
            "account_id": connection.setting("apiKey").unwrap_or_default(),
            "reply_id": uuid::Uuid::new_v4().to_string(),
            "destination_number": to,
            "source_number": from,
            "date_received": at,
            "content": text,
            "metadata": {},
        }),
        SampleEvent::Status {
            message_id,
            provider_message_id,
            provider_status,
            error_code,
        } => {
            let mut report = json!({
                "callback_url": url.as_str(),
                "delivery_report_id": uuid::Uuid::new_v4().to_string(),
                "date_received": at,
                "submitted_date": at,
                "status": provider_status,
                "delay": 0,
                "message_id": provider_message_id,
                "vendor_account_id": {
                    "vendor_id": "MessageMedia",
                    "account_id": connection.setting("apiKey").unwrap_or_default(),
                },
                "metadata": {},
            });
            if let Some(code) = error_code {
                report["error_code"] = json!(code);
            }
            if let Some(id) = message_id {
                report["metadata"] = json!({ MESSAGE_ID_KEY: id });
            }
            report
        }
    }
}

/// The account-webhook templates the guide gives, so that both webhooks carry what we read.
const REPLY_TEMPLATE: &str = r#"{"reply_id":"$!replyId","notification_id":"$!notificationId","message_id":"$!messageId","source_number":"$!sourceAddress","destination_number":"$!destinationAddress","date_received":"$!receivedTimestamp","content":"$esc.json($!moContent)","metadata":{"messageId":"$esc.json($!metadata.get('messageId'))"}}"#;
const REPORT_TEMPLATE: &str = r#"{"delivery_report_id":"$!drId","message_id":"$!messageId","status":"$!status","error_code":"$!statusCode","source_number":"$!sourceAddress","date_received":"$!receivedTimestamp","submitted_date":"$!submittedTimestamp","metadata":{"messageId":"$esc.json($!metadata.get('messageId'))"}}"#;

fn setup_guide(message_url: &Url, status_url: &Url) -> String {
    format!(
        "At MessageMedia (Sinch Engage): create an API key with Basic authentication (key = apiKey, \
         secret = apiSecret) in the account's home region (apiHost). Ask MessageMedia support to \
         enable signed webhooks (API_SECURE_CALLBACKS), create a signature key \
         (POST /v1/iam/signature_keys {{\"digest\":\"SHA256\",\"cipher\":\"RSA\"}}), enable it \
         (PATCH /v1/iam/signature_keys/enabled) and paste its public_key as webhookPublicKey: \
         every unsigned webhook is refused with 401. \
         Delivery reports need no URL setup: every message we send asks for a delivery report \
         with callback_url {status_url}, where replies to that message arrive too. \
         To also receive replies that answer no message of ours and opt-outs, create an account \
         webhook (POST /v1/webhooks/messages) with method POST, encoding JSON, url {message_url}, \
         events [\"RECEIVED_SMS\",\"OPT_OUT_SMS\"] and template {REPLY_TEMPLATE}. \
         Optionally, for delivery reports of messages sent without a callback, a second webhook: \
         method POST, encoding JSON, url {status_url}, events [\"ENROUTE_DR\",\"SUBMITTED_DR\",\
         \"DELIVERED_DR\",\"EXPIRED_DR\",\"REJECTED_DR\",\"FAILED_DR\"] and template \
         {REPORT_TEMPLATE}. \
         Replies need a number as sender: an alphanumeric sender cannot be answered."
    )
}

#[cfg(test)]
mod tests;
