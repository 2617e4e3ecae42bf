//! Vonage (formerly Nexmo) SMS API: form POSTs to `/sms/json`, one id per message part, delivery
//! receipts and inbound messages as GET, form POST or JSON POST, authenticated by the `sig`
//! parameter. Facts and vectors: `providers/vonage.md` of the reference material, checked
//! against Vonage's SMS API description (`specs/vonage-sms.yaml`) and developer.vonage.com.

#[cfg(feature = "stand-in")]
mod stand_in;

use super::http::{error_excerpt, join_path};
use super::{
    Accepted, AuthError, InboundReport, MessagePart, OutboundMessage, ParseError, ParsedItems,
    ProviderAdapter, Retry, SampleEvent, SendContext, SendError, SignedRequest, StatusReport,
    UnsupportedMediaType, WebhookItem,
};
use crate::domain::segments::{self, Encoding};
use crate::domain::{
    Connection, ConnectionSecrets, FieldReader, Provider, ProviderFields, SendErrorCode, Status,
    ValidationErrors, is_valid_message_id, phone,
};
use crate::providers::http::{ProviderAnswer, exchange};
use crate::providers::{param, webhook_params};
use crate::webhook::{RouteKind, WebhookReply, WebhookRequest};
use async_trait::async_trait;
use aws_lc_rs::hmac as aws_hmac;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Sha256, Sha512};
use std::time::Duration;
use subtle::ConstantTimeEq;
use url::Url;

/// The SMS API's base, as Vonage's API description gives it (`servers`); the send path is
/// relative to it, so an override (`BYOSMS_VONAGE_API_URL`) replaces `https://rest.nexmo.com/sms`.
pub const API_BASE: &str = "https://rest.nexmo.com/sms";
/// The JSON flavour of the send endpoint (`/sms/json` on the real host).
pub const SEND_PATH: &str = "/json";
/// Vonage takes a per-message `callback` (and a `client-ref`) of at most 100 characters.
pub const MAX_CALLBACK_CHARS: usize = 100;
/// How far a signed webhook's `timestamp` may be from our clock, either way. Vonage documents no
/// window; five minutes absorbs clock skew and Vonage's own queueing without keeping a captured
/// request usable for long.
pub const REPLAY_WINDOW_SECONDS: i64 = 5 * 60;
/// The throttle wait when Vonage's answer gives none (the PHP SDK's minimum).
const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(1);

/// The Vonage adapter; `api_base` replaces [`API_BASE`] (`BYOSMS_VONAGE_API_URL`, which may carry
/// a path prefix, as the sandbox's `/vonage` does).
#[derive(Debug)]
pub struct Vonage {
    api_base: Url,
}

impl Vonage {
    pub fn new(api_base: Option<Url>) -> Self {
        Vonage {
            api_base: api_base
                .unwrap_or_else(|| Url::parse(API_BASE).expect("API_BASE is a valid URL")),
        }
    }

    fn send_endpoint(&self) -> String {
        join_path(&self.api_base, SEND_PATH)
    }
}

impl Default for Vonage {
    fn default() -> Self {
        Vonage::new(None)
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook signatures

/// How the account signs: the dashboard's "Signature method" (API settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureMethod {
    /// "MD5 hash": `MD5(base + secret)`, the dashboard default.
    Md5Hash,
    HmacMd5,
    HmacSha1,
    HmacSha256,
    HmacSha512,
}

impl SignatureMethod {
    pub const ALL: [SignatureMethod; 5] = [
        SignatureMethod::Md5Hash,
        SignatureMethod::HmacMd5,
        SignatureMethod::HmacSha1,
        SignatureMethod::HmacSha256,
        SignatureMethod::HmacSha512,
    ];

    /// The word a connection's `signatureMethod` holds (the SDKs' names).
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureMethod::Md5Hash => "md5hash",
            SignatureMethod::HmacMd5 => "md5",
            SignatureMethod::HmacSha1 => "sha1",
            SignatureMethod::HmacSha256 => "sha256",
            SignatureMethod::HmacSha512 => "sha512",
        }
    }

    pub fn parse(word: &str) -> Option<SignatureMethod> {
        SignatureMethod::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(word.trim()))
    }

    fn of(connection: &Connection) -> Option<SignatureMethod> {
        // Validation stores the default, so a missing setting is a connection saved before the
        // field existed: it meant the dashboard default.
        match connection.setting("signatureMethod") {
            None => Some(SignatureMethod::Md5Hash),
            Some(word) => SignatureMethod::parse(word),
        }
    }
}

/// What Vonage signs: every parameter but `sig`, sorted by name in byte order, each value with
/// `&` and `=` replaced by `_`, as `&name=value` pairs one after the other.
pub fn signature_base(params: &[(String, String)]) -> String {
    let mut signed: Vec<(&str, String)> = params
        .iter()
        .filter(|(name, _)| name != "sig")
        .map(|(name, value)| (name.as_str(), value.replace(['&', '='], "_")))
        .collect();
    // Stable: repeated names keep the order they came in.
    signed.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    signed
        .iter()
        .map(|(name, value)| format!("&{name}={value}"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac_hex<M: Mac + hmac::digest::KeyInit>(secret: &str, base: &str) -> String {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(base.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// The `sig` of `params` (lower-case hex; Vonage's PHP SDK sends HMACs upper-case, and `sig`
/// is compared without regard to case).
pub fn signature(method: SignatureMethod, secret: &str, params: &[(String, String)]) -> String {
    let base = signature_base(params);
    match method {
        SignatureMethod::Md5Hash => {
            let mut digest = Md5::new();
            digest.update(base.as_bytes());
            digest.update(secret.as_bytes());
            hex(&digest.finalize())
        }
        SignatureMethod::HmacMd5 => hmac_hex::<Hmac<Md5>>(secret, &base),
        // On `aws-lc-rs`, as Twilio's: `sha1` 0.10 has no arm64 hardware path (see
        // `providers/twilio`), AWS-LC picks the ARMv8 SHA-1 instructions at run time.
        SignatureMethod::HmacSha1 => {
            let key =
                aws_hmac::Key::new(aws_hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
            hex(aws_hmac::sign(&key, base.as_bytes()).as_ref())
        }
        SignatureMethod::HmacSha256 => hmac_hex::<Hmac<Sha256>>(secret, &base),
        SignatureMethod::HmacSha512 => hmac_hex::<Hmac<Sha512>>(secret, &base),
    }
}

fn non_empty<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    param(params, name).filter(|v| !v.trim().is_empty())
}

/// Whether the signed `timestamp` (unix seconds) is within the replay window around `now`.
fn is_fresh(timestamp: &str, now: DateTime<Utc>) -> bool {
    timestamp
        .trim()
        .parse::<i64>()
        .is_ok_and(|t| (now.timestamp() - t).abs() <= REPLAY_WINDOW_SECONDS)
}

// ---------------------------------------------------------------------------------------------
// Delivery receipts and inbound messages

/// Vonage's DLR `status` words, normalized. `unknown` is Vonage's own word (the carrier's receipt
/// could not be read, no further one comes): the message left, so it is `sent`, and the word is
/// kept as the provider status.
pub fn normalize_status(word: &str) -> Status {
    match word.trim().to_ascii_lowercase().as_str() {
        "accepted" | "buffered" | "unknown" => Status::Sent,
        "delivered" => Status::Delivered,
        "expired" | "failed" => Status::Undelivered,
        "rejected" => Status::Failed,
        _ => Status::Unknown,
    }
}

/// DLR `err-code` 9, "Illegal Number": the recipient asked not to receive messages from the
/// sender (Vonage's "Messaging Opted-out Numbers" guide: a `failed` or `rejected` receipt with
/// `err-code` 9 is how the SMS API reports an opted-out number).
const DLR_OPTED_OUT: &str = "9";

/// `message-timestamp`: `YYYY-MM-DD HH:MM:SS`, UTC.
fn parse_message_timestamp(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// `scts`, the carrier's receipt time: `YYMMDDHHMM`, UTC.
fn parse_scts(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if value.len() != 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(&format!("{value}00"), "%y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

fn parse_receipt(params: &[(String, String)], word: &str) -> Result<WebhookItem, ParseError> {
    let part_id = non_empty(params, "messageId")
        .ok_or_else(|| ParseError("delivery receipt has no messageId".into()))?;
    let error_code = non_empty(params, "err-code")
        .filter(|c| c.trim() != "0")
        .map(|c| c.trim().to_string());
    // The carrier's time when it gave one, else when Vonage started pushing; an odd format is
    // never a reason to refuse a receipt.
    let occurred_at = non_empty(params, "scts")
        .and_then(parse_scts)
        .or_else(|| non_empty(params, "message-timestamp").and_then(parse_message_timestamp));
    Ok(WebhookItem::Status(StatusReport {
        provider_message_id: part_id.to_string(),
        message_id: param(params, "client-ref")
            .filter(|id| is_valid_message_id(id))
            .map(str::to_string),
        provider_status: word.to_string(),
        status: normalize_status(word),
        opt_out: error_code.as_deref() == Some(DLR_OPTED_OUT),
        recipient: non_empty(params, "msisdn").map(phone::normalize),
        error_code,
        occurred_at,
        dedupe_key: format!("status:{part_id}:{word}"),
    }))
}

/// The part a long inbound message's webhook carries (`concat-ref`, `concat-total`,
/// `concat-part`, 1-based), or `None` for a whole message.
fn inbound_part(params: &[(String, String)]) -> Result<Option<MessagePart>, ParseError> {
    let (reference, total, index) = (
        non_empty(params, "concat-ref"),
        non_empty(params, "concat-total"),
        non_empty(params, "concat-part"),
    );
    let (Some(reference), Some(total), Some(index)) = (reference, total, index) else {
        if reference.is_some() || total.is_some() || index.is_some() {
            return Err(ParseError(
                "a message part needs concat-ref, concat-total and concat-part".into(),
            ));
        }
        return Ok(None);
    };
    let number = |name: &str, value: &str| {
        value
            .trim()
            .parse::<u16>()
            .map_err(|_| ParseError(format!("{name} is not a number")))
    };
    let (total, index) = (
        number("concat-total", total)?,
        number("concat-part", index)?,
    );
    if total == 0 || index == 0 || index > total {
        return Err(ParseError(format!(
            "concat-part {index} of concat-total {total} is out of range"
        )));
    }
    Ok((total > 1).then(|| MessagePart {
        reference: reference.to_string(),
        total,
        index,
    }))
}

fn parse_inbound(params: &[(String, String)]) -> Result<WebhookItem, ParseError> {
    let required = |name: &str| {
        non_empty(params, name).ok_or_else(|| ParseError(format!("inbound message has no {name}")))
    };
    let id = required("messageId")?;
    let from = required("msisdn")?;
    let to = required("to")?;
    // A binary message has no text; its hex `data` is what reached us.
    let text = param(params, "text")
        .or_else(|| param(params, "data"))
        .unwrap_or_default();
    Ok(WebhookItem::Inbound(InboundReport {
        provider_message_id: id.to_string(),
        // An alphanumeric sender (an operator name) is kept as it came.
        from: phone::normalize(from),
        to: phone::normalize(to),
        text: text.to_string(),
        occurred_at: non_empty(params, "message-timestamp").and_then(parse_message_timestamp),
        part: inbound_part(params)?,
        reply_to: None,
        opt_out: false,
        dedupe_key: format!("inbound:{id}"),
    }))
}

// ---------------------------------------------------------------------------------------------
// Sending

/// One entry of the send answer's `messages`: one per part of the text.
#[derive(Deserialize)]
struct PartResult {
    status: Option<Value>,
    #[serde(rename = "message-id")]
    message_id: Option<String>,
    #[serde(rename = "error-text")]
    error_text: Option<String>,
}

#[derive(Deserialize)]
struct SendAnswer {
    #[serde(default)]
    messages: Vec<PartResult>,
}

/// The other error bodies Vonage answers with (PHP SDK `ExceptionErrorHandler`): `error-code`
/// and `error-code-label`, or RFC 7807 `title` and `detail`.
#[derive(Deserialize, Default)]
struct OtherError {
    #[serde(rename = "error-code")]
    error_code: Option<Value>,
    #[serde(rename = "error-code-label")]
    error_code_label: Option<String>,
    title: Option<String>,
    detail: Option<String>,
    #[serde(default)]
    messages: Vec<PartResult>,
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

impl PartResult {
    fn status_code(&self) -> String {
        self.status.as_ref().map(value_text).unwrap_or_default()
    }
}

/// The number in `[ N ]` right after `label` in a throttle text.
fn bracketed_number_after(text: &str, label: &str) -> Option<u64> {
    let rest = &text[text.find(label)? + label.len()..];
    let inside = rest.trim_start().strip_prefix('[')?;
    inside.split(']').next()?.trim().parse().ok()
}

/// How long a throttle answer asks us to wait: `please wait [ 702 ] and retry` (milliseconds),
/// or one `INTERVAL [ 1000 ]` of `Exceeded maximum MT throughput[ MAX [ 30 ] INTERVAL [ 1000 ] …]`.
pub fn throttle_wait(error_text: &str) -> Duration {
    bracketed_number_after(error_text, "wait")
        .or_else(|| bracketed_number_after(error_text, "INTERVAL"))
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_THROTTLE_WAIT)
}

/// A non-zero `messages[i].status`, classified (Vonage's SMS API error table).
pub fn classify_status(status: &str, error_text: Option<&str>) -> SendError {
    use SendErrorCode as C;
    let (ours, retry, meaning) = match status {
        "1" => (C::Throttled, Retry::NotAccepted, "throttled"),
        "2" => (C::Rejected, Retry::Never, "missing parameters"),
        "3" => (C::Rejected, Retry::Never, "invalid parameters"),
        "4" => (C::AuthFailed, Retry::Never, "invalid credentials"),
        "5" => (C::ProviderUnavailable, Retry::NotAccepted, "internal error"),
        "6" => (
            C::InvalidNumber,
            Retry::Never,
            "invalid message (unroutable number)",
        ),
        "7" => (C::Rejected, Retry::Never, "number barred"),
        "8" => (C::AuthFailed, Retry::Never, "account barred"),
        "9" => (C::InsufficientFunds, Retry::Never, "not enough credit"),
        "10" => (C::Throttled, Retry::NotAccepted, "too many connections"),
        "11" => (
            C::ConfigError,
            Retry::Never,
            "account not enabled for the SMS API",
        ),
        "12" => (C::InvalidBody, Retry::Never, "message too long"),
        "14" | "32" => (C::AuthFailed, Retry::Never, "signature refused"),
        "15" => (C::InvalidSender, Retry::Never, "invalid sender address"),
        "22" => (C::Rejected, Retry::Never, "invalid network code"),
        "23" => (C::ConfigError, Retry::Never, "invalid callback URL"),
        "29" => (
            C::Rejected,
            Retry::Never,
            "destination not whitelisted (demo account)",
        ),
        "33" => (C::InvalidNumber, Retry::Never, "number de-activated"),
        _ => (C::Rejected, Retry::Never, "refused"),
    };
    // The provider's own words go into our answer only as an excerpt.
    let words = error_text
        .map(error_excerpt)
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| meaning.to_string());
    let err = SendError::new(ours, format!("Vonage status {status}: {words}"), retry)
        .with_provider_code(status);
    if ours == C::Throttled {
        err.with_retry_after(Some(
            error_text.map_or(DEFAULT_THROTTLE_WAIT, throttle_wait),
        ))
    } else {
        err
    }
}

/// A non-2xx HTTP answer, classified.
fn classify_http(http_status: u16, body: &str, wait: Option<Duration>) -> SendError {
    let other: OtherError = serde_json::from_str(body).unwrap_or_default();
    if let Some(part) = other.messages.iter().find(|p| p.status_code() != "0") {
        let err = classify_status(&part.status_code(), part.error_text.as_deref());
        // A `Retry-After` header, when there is one, says more than the text.
        return match wait {
            Some(_) => err.with_retry_after(wait),
            None => err,
        };
    }
    let code = other.error_code.as_ref().map(value_text);
    let words = other
        .detail
        .or(other.error_code_label)
        .or(other.title)
        .map(|w| error_excerpt(&w))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| format!("Vonage answered HTTP {http_status}"));
    use SendErrorCode as C;
    let (ours, retry) = match http_status {
        429 => (C::Throttled, Retry::NotAccepted),
        401 | 403 => (C::AuthFailed, Retry::Never),
        503 => (C::ProviderUnavailable, Retry::NotAccepted),
        500..=599 => (C::OutcomeUnknown, Retry::OutcomeUnknown),
        _ => (C::Rejected, Retry::Never),
    };
    let err = SendError::new(ours, words, retry).with_retry_after(wait);
    match code {
        Some(code) => err.with_provider_code(code),
        None => err,
    }
}

fn unreadable_answer() -> SendError {
    SendError::new(
        SendErrorCode::OutcomeUnknown,
        "Vonage answered but its answer could not be read; the message may have been accepted",
        Retry::OutcomeUnknown,
    )
}

/// The parts of an HTTP 200 answer: accepted when every part is, each part's id kept.
fn accepted_parts(parts: &[PartResult]) -> Result<Accepted, SendError> {
    let Some(failed) = parts.iter().position(|p| p.status_code() != "0") else {
        let ids: Option<Vec<String>> = parts
            .iter()
            .map(|p| p.message_id.clone().filter(|id| !id.is_empty()))
            .collect();
        let ids = ids
            .filter(|ids| !ids.is_empty())
            .ok_or_else(unreadable_answer)?;
        return Ok(Accepted {
            provider_message_id: ids[0].clone(),
            part_ids: if ids.len() > 1 { ids } else { Vec::new() },
            provider_status: None,
            status: Status::Accepted,
        });
    };
    let part = &parts[failed];
    let err = classify_status(&part.status_code(), part.error_text.as_deref());
    let accepted = parts.iter().filter(|p| p.status_code() == "0").count();
    if accepted == 0 {
        return Err(err);
    }
    // Some parts went out: sending again would repeat them, whatever the failing part's reason.
    Err(SendError {
        message: format!(
            "Vonage accepted {accepted} of {} parts; part {}: {}",
            parts.len(),
            failed + 1,
            err.message
        ),
        retry: Retry::Never,
        retry_after: None,
        ..err
    })
}

/// `to` as Vonage wants it: the E.164 digits without `+`.
fn vonage_number(e164: &str) -> Option<&str> {
    let digits = e164.strip_prefix('+')?;
    (phone::is_e164(e164) && (7..=15).contains(&digits.len())).then_some(digits)
}

// ---------------------------------------------------------------------------------------------
// Connection fields

fn validate_from(from: &str) -> Result<String, String> {
    if from.starts_with('+') || from.starts_with("00") {
        return Err(
            "a number must start with its country code, without + or 00 (e.g. 35312345678)".into(),
        );
    }
    if from.bytes().all(|b| b.is_ascii_digit()) {
        return if (5..=15).contains(&from.len()) && !from.starts_with('0') {
            Ok(from.to_string())
        } else {
            Err("a number has 5 to 15 digits, its country code first (e.g. 35312345678)".into())
        };
    }
    // Vonage ignores the spaces of an alphanumeric sender id.
    let significant = from.bytes().filter(|b| *b != b' ').count();
    if significant <= 11
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic())
    {
        Ok(from.to_string())
    } else {
        Err("must be a number (country code first, no + or 00) or an alphanumeric sender id of at most 11 letters and digits".into())
    }
}

fn printable_without_spaces(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_graphic())
}

fn validate_api_key(key: &str) -> Result<String, String> {
    if key.len() == 8 && key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(key.to_string())
    } else {
        Err("must be the 8-character API key shown on the Vonage dashboard".into())
    }
}

fn validate_api_secret(secret: &str) -> Result<String, String> {
    if (6..=32).contains(&secret.len()) && printable_without_spaces(secret) {
        Ok(secret.to_string())
    } else {
        Err("must be the API secret shown on the Vonage dashboard: 6 to 32 characters without spaces".into())
    }
}

fn validate_signature_secret(secret: &str) -> Result<String, String> {
    if (8..=512).contains(&secret.len()) && printable_without_spaces(secret) {
        Ok(secret.to_string())
    } else {
        Err("must be the signature secret of the Vonage dashboard's API settings: at least 8 characters without spaces".into())
    }
}

fn validate_signature_method(method: &str) -> Result<String, String> {
    SignatureMethod::parse(method)
        .map(|m| m.as_str().to_string())
        .ok_or_else(|| {
            "must be one of md5hash (the dashboard's \"MD5 hash\"), md5, sha1, sha256, sha512 (HMACs), as set in the Vonage dashboard".into()
        })
}

// ---------------------------------------------------------------------------------------------
// Samples

/// A sample's signed parameters, as Vonage sends them in a GET query.
fn signed_get(
    url: &Url,
    mut params: Vec<(String, String)>,
    method: SignatureMethod,
    secret: &str,
) -> SignedRequest {
    params.push(("timestamp".into(), Utc::now().timestamp().to_string()));
    params.push(("nonce".into(), uuid::Uuid::new_v4().to_string()));
    let sig = signature(method, secret, &params);
    params.push(("sig".into(), sig));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let mut url = url.clone();
    url.set_query(Some(&query));
    SignedRequest {
        method: http::Method::GET,
        url,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// Vonage's inbound ids look like `0A0000000123ABCD`.
fn sample_inbound_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_ascii_uppercase()
}

fn digits(number: &str) -> String {
    number.strip_prefix('+').unwrap_or(number).to_string()
}

fn now_message_timestamp() -> String {
    Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

#[async_trait]
impl ProviderAdapter for Vonage {
    fn provider(&self) -> Provider {
        Provider::Vonage
    }

    fn validate_connection(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<ProviderFields, ValidationErrors> {
        let mut r = FieldReader::new(fields);
        r.setting("apiKey", validate_api_key);
        r.secret("apiSecret", validate_api_secret);
        r.setting("from", validate_from);
        r.secret("signatureSecret", validate_signature_secret);
        r.optional_setting(
            "signatureMethod",
            SignatureMethod::Md5Hash.as_str(),
            validate_signature_method,
        );
        r.send_rate();
        r.finish()
    }

    async fn send(
        &self,
        ctx: &SendContext<'_>,
        message: &OutboundMessage,
    ) -> Result<Accepted, SendError> {
        let api_key = ctx
            .connection
            .setting("apiKey")
            .ok_or_else(|| SendError::config("connection has no apiKey"))?;
        let from = ctx
            .connection
            .setting("from")
            .ok_or_else(|| SendError::config("connection has no from"))?;
        let api_secret = ctx
            .secrets
            .expose("apiSecret")
            .ok_or_else(|| SendError::config("connection secret has no apiSecret"))?;
        let to = vonage_number(&message.to).ok_or_else(|| {
            SendError::new(
                SendErrorCode::InvalidNumber,
                "the recipient is not an E.164 number",
                Retry::Never,
            )
        })?;
        let kind = match segments::count(&message.body).0 {
            Encoding::Gsm7 => "text",
            Encoding::Ucs2 => "unicode",
        };
        let mut form: Vec<(&str, &str)> = vec![
            ("api_key", api_key),
            ("api_secret", api_secret),
            ("from", from),
            ("to", to),
            ("text", &message.body),
            ("type", kind),
            ("client-ref", &message.message_id),
        ];
        // A longer status URL cannot go per message: the account's receipt URL applies (the
        // setup guide says so).
        if let Some(callback) = ctx
            .status_callback
            .map(Url::as_str)
            .filter(|url| url.len() <= MAX_CALLBACK_CHARS)
        {
            form.push(("callback", callback));
        }

        let ProviderAnswer {
            status,
            retry_after: wait,
            body,
        } = exchange(
            ctx.http
                .client()
                .post(self.send_endpoint())
                .header(http::header::ACCEPT, "application/json")
                .form(&form),
        )
        .await?;
        if !(200..300).contains(&status) {
            return Err(classify_http(status, &body, wait));
        }
        let answer: SendAnswer = serde_json::from_str(&body).map_err(|_| unreadable_answer())?;
        accepted_parts(&answer.messages)
    }

    fn authenticate(
        &self,
        request: &WebhookRequest,
        connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<(), AuthError> {
        let params = webhook_params(request).map_err(|_| AuthError::Invalid("sig"))?;
        let given = param(&params, "sig").ok_or(AuthError::Missing("sig parameter"))?;
        let secret = secrets
            .expose("signatureSecret")
            .ok_or(AuthError::Invalid("sig"))?;
        let method = SignatureMethod::of(connection).ok_or(AuthError::Invalid("sig"))?;
        let expected = signature(method, secret, &params);
        if !bool::from(
            expected
                .as_bytes()
                .ct_eq(given.trim().to_ascii_lowercase().as_bytes()),
        ) {
            return Err(AuthError::Invalid("sig"));
        }
        // The timestamp is signed: checking it makes a captured request useless after the window.
        let fresh = param(&params, "timestamp").is_some_and(|t| is_fresh(t, request.received_at));
        if !fresh {
            return Err(AuthError::Invalid("timestamp"));
        }
        // Two connections sharing a signature secret still belong to one account each.
        if let Some(key) = param(&params, "api-key")
            && Some(key) != connection.setting("apiKey")
        {
            return Err(AuthError::Invalid("api-key"));
        }
        Ok(())
    }

    fn check_media_type(&self, request: &WebhookRequest) -> Result<(), UnsupportedMediaType> {
        if request.method == http::Method::GET || request.is_form() || request.is_json() {
            return Ok(());
        }
        Err(UnsupportedMediaType::of(request))
    }

    fn parse(
        &self,
        request: &WebhookRequest,
        _route: RouteKind,
        _connection: &Connection,
    ) -> Result<ParsedItems, ParseError> {
        let params = webhook_params(request)?;
        if params.is_empty() {
            return Err(ParseError("request carries no parameters".into()));
        }
        // What the payload is, not the route it came in on, decides how it is recorded.
        let item = if let Some(word) = param(&params, "status") {
            if word.trim().is_empty() {
                return Err(ParseError("delivery receipt has an empty status".into()));
            }
            parse_receipt(&params, word.trim())?
        } else if param(&params, "msisdn").is_some()
            && ["text", "data", "type"]
                .iter()
                .any(|name| param(&params, name).is_some())
        {
            parse_inbound(&params)?
        } else {
            return Err(ParseError(
                "neither a delivery receipt (status) nor an inbound message (msisdn and text)"
                    .into(),
            ));
        };
        Ok(vec![Ok(item)])
    }

    fn acknowledge(&self, _route: RouteKind, _connection: &Connection) -> WebhookReply {
        // Vonage wants a 200 or 204 and ignores the body; anything else is re-sent for 24 hours.
        WebhookReply::new(200, "text/plain", "")
    }

    fn setup_guide(&self, message_url: &Url, status_url: &Url) -> String {
        let receipts = if status_url.as_str().len() <= MAX_CALLBACK_CHARS {
            format!(
                "Delivery receipts: every message we send names {status_url} as its callback, so \
                 nothing is needed; setting the same URL as the account's \"Delivery receipts \
                 (DLR) webhooks\" (API settings > SMS settings) also covers messages sent \
                 before this connection existed."
            )
        } else {
            format!(
                "Delivery receipts: {status_url} is longer than the {MAX_CALLBACK_CHARS} \
                 characters Vonage takes per message, so set it as the account's \"Delivery \
                 receipts (DLR) webhooks\" URL (API settings > SMS settings): without it no \
                 delivery receipt reaches us."
            )
        };
        format!(
            "At Vonage (Dashboard > API settings > SMS settings: \"SMS API\", not \"Messages \
             API\"): \
             Inbound messages: set {message_url} as the number's inbound webhook (Numbers > Your \
             numbers > the number > Edit) or as the account's \"Inbound SMS webhooks\" URL \
             (API settings > SMS settings); replies need a Vonage number as the connection's \
             from, never an alphanumeric sender. \
             {receipts} \
             Any HTTP method works (GET, POST or POST-JSON). \
             Signatures: Vonage signs webhooks only once Vonage support has enabled signed \
             webhooks for the account: ask them to, and make the connection's signatureMethod \
             match the dashboard's signature method (API settings > Signature method: \"MD5 \
             hash\" is md5hash, the HMACs are md5, sha1, sha256, sha512) and its \
             signatureSecret the dashboard's signature secret. Until then every webhook is \
             refused with 401 (missing sig parameter)."
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
            .expose("signatureSecret")
            .ok_or_else(|| ParseError("connection secret has no signatureSecret".into()))?;
        let method = SignatureMethod::of(connection)
            .ok_or_else(|| ParseError("connection has no valid signatureMethod".into()))?;
        let api_key = connection.setting("apiKey").unwrap_or_default();
        let mut params: Vec<(String, String)> = Vec::new();
        match event {
            SampleEvent::Inbound { from, to, text } => {
                let keyword = text
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_uppercase();
                let kind = match segments::count(text).0 {
                    Encoding::Gsm7 => "text",
                    Encoding::Ucs2 => "unicode",
                };
                params.extend([
                    ("msisdn".into(), digits(from)),
                    ("to".into(), digits(to)),
                    ("messageId".into(), sample_inbound_id()),
                    ("text".into(), text.clone()),
                    ("type".into(), kind.into()),
                    ("keyword".into(), keyword),
                    ("api-key".into(), api_key.into()),
                    ("message-timestamp".into(), now_message_timestamp()),
                ]);
            }
            SampleEvent::Status {
                message_id,
                provider_message_id,
                provider_status,
                error_code,
            } => {
                // The recipient (`msisdn`) is not part of the event: the sample leaves it out.
                params.extend([
                    ("messageId".into(), provider_message_id.clone()),
                    (
                        "to".into(),
                        connection.setting("from").unwrap_or_default().into(),
                    ),
                    ("status".into(), provider_status.clone()),
                    (
                        "err-code".into(),
                        error_code.clone().unwrap_or_else(|| "0".into()),
                    ),
                    ("scts".into(), Utc::now().format("%y%m%d%H%M").to_string()),
                    ("message-timestamp".into(), now_message_timestamp()),
                    ("api-key".into(), api_key.into()),
                ]);
                if let Some(id) = message_id {
                    params.push(("client-ref".into(), id.clone()));
                }
            }
        }
        Ok(signed_get(url, params, method, secret))
    }

    fn example_fields(&self) -> Map<String, Value> {
        Map::from_iter([
            ("apiKey".into(), "abcd1234".into()),
            ("apiSecret".into(), "Abcdef0123456789".into()),
            ("from".into(), "14155550199".into()),
            (
                "signatureSecret".into(),
                "ExampleSignatureSecret0123456789abcdefABCDEF".into(),
            ),
            ("signatureMethod".into(), "md5hash".into()),
        ])
    }

    #[cfg(feature = "stand-in")]
    fn stand_in(&self) -> super::stand_in::StandIn {
        stand_in::stand_in()
    }
}

#[cfg(test)]
mod tests;
