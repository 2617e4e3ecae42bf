//! Infobip's webhook bodies: `{"results": [...]}` batches of delivery reports (v3 and the
//! deprecated v2 shape) and of inbound messages (`MO_JSON_2`, SMS and MMS), read item by item so
//! that one bad item never costs the others.

use super::statuses::StatusFields;
use crate::domain::{is_valid_message_id, phone};
use crate::providers::{InboundReport, ParseError, ParsedItems, StatusReport, WebhookItem};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

/// Reads a whole body: a JSON object with a `results` array (possibly empty: Infobip sends
/// `messageCount: 0` bodies).
pub fn parse_body(body: &[u8]) -> Result<ParsedItems, ParseError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("body is not valid JSON: {e}")))?;
    let Value::Object(mut top) = value else {
        return Err(ParseError("body must be a JSON object with results".into()));
    };
    match top.remove("results") {
        Some(Value::Array(results)) => Ok(results.iter().map(parse_item).collect()),
        Some(_) => Err(ParseError("results must be an array".into())),
        None => Err(ParseError(
            "body has no results: neither delivery reports nor inbound messages".into(),
        )),
    }
}

/// What an item is decides how it is recorded, not the route it came in on: a delivery report
/// carries a `status` object, an inbound message carries `receivedAt` or its text.
fn parse_item(item: &Value) -> Result<WebhookItem, ParseError> {
    let Value::Object(fields) = item else {
        return Err(ParseError("a result is not a JSON object".into()));
    };
    if fields.contains_key("status") {
        parse_status(fields).map(WebhookItem::Status)
    } else if ["receivedAt", "text", "cleanText", "message"]
        .iter()
        .any(|k| fields.contains_key(*k))
    {
        parse_inbound(fields).map(WebhookItem::Inbound)
    } else {
        Err(ParseError(
            "a result is neither a delivery report (status) nor an inbound message (text)".into(),
        ))
    }
}

/// A string field, or a number written as one (ids and numbers come either way in the wild).
fn text<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    match fields.get(name)? {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    }
}

fn required<'a>(
    fields: &'a Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<std::borrow::Cow<'a, str>, ParseError> {
    text(fields, name)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ParseError(format!("{what} has no {name}")))
}

fn integer(fields: &Map<String, Value>, name: &str) -> Option<i64> {
    match fields.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn status_fields(status: &Map<String, Value>) -> StatusFields {
    StatusFields {
        id: integer(status, "id"),
        name: text(status, "name").map(|s| s.into_owned()),
        group_id: integer(status, "groupId"),
        group_name: text(status, "groupName").map(|s| s.into_owned()),
    }
}

/// The report's error, when it is one: its name (`EC_ABSENT_SUBSCRIBER`), else its id. Group
/// `OK` / id 0 / `NO_ERROR` mean there is none.
fn error_code(fields: &Map<String, Value>) -> Option<String> {
    let Some(Value::Object(error)) = fields.get("error") else {
        return None;
    };
    let id = integer(error, "id").filter(|id| *id != 0);
    let name = text(error, "name")
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("NO_ERROR"));
    name.or_else(|| id.map(|id| id.to_string()))
}

fn parse_status(fields: &Map<String, Value>) -> Result<StatusReport, ParseError> {
    let provider_message_id = required(fields, "messageId", "delivery report")?.into_owned();
    let Some(Value::Object(status)) = fields.get("status") else {
        return Err(ParseError("delivery report status is not an object".into()));
    };
    let status = status_fields(status);
    // Our id travels twice: as `destinations[].messageId` (so Infobip's id of our messages is
    // ours) and in `callbackData`. Either is trusted only in our id's shape.
    let message_id = [
        text(fields, "callbackData"),
        Some(std::borrow::Cow::Borrowed(provider_message_id.as_str())),
    ]
    .into_iter()
    .flatten()
    .find(|id| is_valid_message_id(id))
    .map(|id| id.into_owned());
    let dedupe_status = status
        .id
        .map(|id| id.to_string())
        .unwrap_or_else(|| status.word());
    Ok(StatusReport {
        message_id,
        provider_status: status.word(),
        status: status.normalize(),
        error_code: error_code(fields),
        occurred_at: text(fields, "doneAt")
            .or_else(|| text(fields, "sentAt"))
            .and_then(|t| parse_timestamp(&t)),
        opt_out: false, // Infobip reports carry no opt-out signal
        recipient: text(fields, "to").map(|to| phone::normalize(&to)),
        dedupe_key: format!("status:{provider_message_id}:{dedupe_status}"),
        provider_message_id,
    })
}

/// The text of an inbound message: `text` (the whole message, keyword included), else
/// `cleanText`, else an MMS's `message[]` segments (text values and media URLs, one a line).
fn inbound_text(fields: &Map<String, Value>) -> String {
    if let Some(text) = text(fields, "text").or_else(|| text(fields, "cleanText")) {
        return text.into_owned();
    }
    let Some(Value::Array(segments)) = fields.get("message") else {
        return String::new();
    };
    segments
        .iter()
        .filter_map(Value::as_object)
        .filter_map(|segment| text(segment, "value").or_else(|| text(segment, "url")))
        .map(|s| s.into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_inbound(fields: &Map<String, Value>) -> Result<InboundReport, ParseError> {
    let id = required(fields, "messageId", "inbound message")?.into_owned();
    let from = required(fields, "from", "inbound message")?;
    let to = required(fields, "to", "inbound message")?;
    Ok(InboundReport {
        from: phone::normalize(&from),
        to: phone::normalize(&to),
        text: inbound_text(fields),
        occurred_at: text(fields, "receivedAt").and_then(|t| parse_timestamp(&t)),
        part: None, // Infobip joins long messages before forwarding them (smsCount says how many)
        reply_to: None,
        opt_out: false,
        dedupe_key: format!("inbound:{id}"),
        provider_message_id: id,
    })
}

/// Infobip's `yyyy-MM-dd'T'HH:mm:ss.SSSZ` (`2019-11-09T16:00:00.000+0000`, an offset without a
/// colon, which RFC 3339 parsers refuse), and RFC 3339 (`Z`, `+00:00`) too. A timestamp that
/// reads as none of them is dropped, never a reason to refuse the report.
pub fn parse_timestamp(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    for pattern in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(at) = DateTime::parse_from_str(value, pattern) {
            return Some(at.to_utc());
        }
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Some(at.to_utc());
    }
    // Without any offset (not seen from Infobip, but not worth a refusal): taken as UTC.
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// A timestamp as Infobip writes it.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}
