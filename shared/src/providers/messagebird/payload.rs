//! MessageBird's webhook payloads read into items.
//!
//! - Status reports: GET with everything in the query (POST accepted too): `id`, `reference`
//!   (our messageId), `recipient`, `status`, `statusDatetime`, `statusReason`,
//!   `statusErrorCode` (103: the recipient sent STOP), `mccmnc`, `ported`, `price[...]`, ...
//! - Inbound on a virtual number: a form POST by default, JSON when a flow sets the content type:
//!   `id`, `originator`, `recipient`, `body`, `createdDatetime`, `mediaUrls` for MMS.
//! - Inbound on a short code: `mid`, `shortcode`, `originator`, `message`, `receive_datetime`
//!   (`YYYYMMDDhhmmss`).
//!
//! A repeated key keeps its last value (as courier's decoder does); media URLs keep them all.

use crate::domain::{Status, is_valid_message_id, phone};
use crate::providers::{InboundReport, ParseError, StatusReport, WebhookItem};
use crate::webhook::WebhookRequest;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

/// `statusErrorCode` of a report whose recipient opted out (sent STOP).
pub const OPTED_OUT: &str = "103";

/// MessageBird's `status` words, normalized (node SDK `Recipient.status`).
pub fn normalize_status(word: &str) -> Status {
    match word {
        "scheduled" => Status::Queued,
        "sent" | "buffered" => Status::Sent,
        "delivered" => Status::Delivered,
        "expired" | "delivery_failed" => Status::Undelivered,
        _ => Status::Unknown,
    }
}

/// A request's parameters, in order: the body's (form or JSON) when there is a body, else the
/// query's. JSON arrays contribute each element under their key; nested objects are skipped.
pub fn params(request: &WebhookRequest) -> Result<Vec<(String, String)>, ParseError> {
    if request.body.is_empty() {
        return Ok(request.query_pairs());
    }
    if request.is_json() {
        return json_params(&request.body);
    }
    request
        .form_pairs()
        .ok_or_else(|| ParseError("form body is not valid UTF-8".into()))
}

fn json_params(body: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ParseError("JSON body must be an object".into()));
    };
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut pairs = Vec::new();
    for (key, value) in map {
        match &value {
            Value::Array(items) => {
                pairs.extend(items.iter().filter_map(scalar).map(|v| (key.clone(), v)))
            }
            other => pairs.extend(scalar(other).map(|v| (key.clone(), v))),
        }
    }
    Ok(pairs)
}

/// The last value of `name`, when not empty.
fn last<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Reads the parameters as the payload they are, whatever route they came in on.
pub fn item(
    params: &[(String, String)],
    our_number: Option<&str>,
) -> Result<WebhookItem, ParseError> {
    let has = |name| last(params, name).is_some();
    let text_field = has("body") || has("message") || has("mediaUrls") || has("mediaURLs");
    if has("originator") && text_field {
        return inbound(params, our_number);
    }
    if has("status") {
        return status(params);
    }
    Err(ParseError(
        "neither a status report (id, status) nor an inbound message (originator, body or message)"
            .into(),
    ))
}

fn status(params: &[(String, String)]) -> Result<WebhookItem, ParseError> {
    let id = last(params, "id").ok_or_else(|| ParseError("status report has no id".into()))?;
    let word = last(params, "status").unwrap_or_default();
    let error_code = last(params, "statusErrorCode").map(str::to_string);
    Ok(WebhookItem::Status(StatusReport {
        provider_message_id: id.to_string(),
        message_id: last(params, "reference")
            .filter(|r| is_valid_message_id(r))
            .map(str::to_string),
        provider_status: word.to_string(),
        status: normalize_status(word),
        opt_out: error_code.as_deref() == Some(OPTED_OUT),
        recipient: last(params, "recipient").map(phone::normalize),
        error_code,
        occurred_at: last(params, "statusDatetime").and_then(rfc3339),
        dedupe_key: format!("status:{id}:{word}"),
    }))
}

fn inbound(
    params: &[(String, String)],
    our_number: Option<&str>,
) -> Result<WebhookItem, ParseError> {
    let short_code = last(params, "shortcode");
    let id = last(params, "id")
        .or_else(|| last(params, "mid"))
        .ok_or_else(|| ParseError("inbound message has no id (or mid)".into()))?;
    let from = last(params, "originator").unwrap_or_default();
    let to = last(params, "recipient")
        .or(short_code)
        .or(our_number)
        .ok_or_else(|| ParseError("inbound message has no recipient (or shortcode)".into()))?;
    let mut text = last(params, "body")
        .or_else(|| last(params, "message"))
        .unwrap_or_default()
        .to_string();
    // Media-only replies still reach the survey system, as their URLs.
    for (_, url) in params.iter().filter(|(k, v)| {
        matches!(k.as_str(), "mediaUrls" | "mediaUrls[]" | "mediaURLs") && !v.is_empty()
    }) {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(url);
    }
    let occurred_at = last(params, "createdDatetime")
        .and_then(rfc3339)
        .or_else(|| last(params, "receive_datetime").and_then(compact_datetime));
    Ok(WebhookItem::Inbound(InboundReport {
        provider_message_id: id.to_string(),
        from: phone::normalize(from),
        to: phone::normalize(to),
        text,
        occurred_at,
        part: None, // believed joined by MessageBird; no part fields have been observed
        reply_to: None,
        opt_out: false,
        dedupe_key: format!("inbound:{id}"),
    }))
}

/// An odd timestamp is never a reason to refuse a report: it is just not used.
fn rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

/// A short code's `receive_datetime`, `YYYYMMDDhhmmss` (taken as UTC).
fn compact_datetime(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}
