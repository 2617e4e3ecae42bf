//! MessageBird's SMS API, imitated: `POST /messages` checked as MessageBird checks it
//! (`Authorization: AccessKey <key>` of a key's shape, a JSON body with `originator`,
//! `recipients` as digits with the country code, `body`; at most 50 recipients, an
//! alphanumeric originator of at most 11 characters, a `reference` of at most 128 characters)
//! and answered with MessageBird's message object or its `errors[]` body. A few recipients
//! answer with MessageBird's errors, so that the adapter's classification is exercised.

use super::is_access_key;
use crate::domain::{SendErrorCode, segments};
use crate::providers::stand_in::{StandIn, authorization, json_answer};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

const MAX_RECIPIENTS: usize = 50;
const MAX_REFERENCE_CHARS: usize = 128;
const MAX_ALPHANUMERIC_ORIGINATOR: usize = 11;

/// A recipient that makes the stand-in answer with one of MessageBird's errors.
struct ErrorNumber {
    to: &'static str,
    http: StatusCode,
    code: u32,
    description: &'static str,
    parameter: Option<&'static str>,
    ours: SendErrorCode,
}

const ERROR_NUMBERS: [ErrorNumber; 5] = [
    ErrorNumber {
        to: "+14155550001",
        http: StatusCode::UNPROCESSABLE_ENTITY,
        code: 9,
        description: "no (correct) recipients found",
        parameter: Some("recipients"),
        ours: SendErrorCode::InvalidNumber,
    },
    ErrorNumber {
        to: "+14155550002",
        http: StatusCode::UNPROCESSABLE_ENTITY,
        code: 25,
        description: "Not enough balance",
        parameter: None,
        ours: SendErrorCode::InsufficientFunds,
    },
    ErrorNumber {
        to: "+14155550003",
        http: StatusCode::TOO_MANY_REQUESTS,
        code: 21,
        description: "Too many requests",
        parameter: None,
        ours: SendErrorCode::Throttled,
    },
    ErrorNumber {
        to: "+14155550004",
        http: StatusCode::INTERNAL_SERVER_ERROR,
        code: 99,
        description: "Internal error",
        parameter: None,
        ours: SendErrorCode::OutcomeUnknown,
    },
    ErrorNumber {
        to: "+14155550005",
        http: StatusCode::SERVICE_UNAVAILABLE,
        code: 99,
        description: "Service temporarily unavailable",
        parameter: None,
        ours: SendErrorCode::ProviderUnavailable,
    },
];

pub fn stand_in() -> StandIn {
    StandIn {
        router: Router::new().route("/messages", post(create_message)),
        error_numbers: ERROR_NUMBERS.iter().map(|e| (e.to, e.ours)).collect(),
    }
}

/// MessageBird's error body: `{"errors":[{"code","description","parameter"}]}`.
fn mb_error(status: StatusCode, code: u32, description: &str, parameter: Option<&str>) -> Response {
    json_answer(
        status,
        json!({"errors": [{"code": code, "description": description, "parameter": parameter}]}),
    )
}

/// A validation error MessageBird answers with 422: its code, description and parameter.
struct Invalid(u32, &'static str, &'static str);

impl Invalid {
    fn answer(&self) -> Response {
        mb_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            self.0,
            self.1,
            Some(self.2),
        )
    }
}

/// `recipients` as MessageBird takes it: an array of numbers or digit strings, or a comma
/// separated string; each an MSISDN (digits with the country code, no `+`).
fn recipients(value: Option<&Value>) -> Option<Vec<String>> {
    let raw: Vec<String> = match value? {
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect::<Option<_>>()?,
        Value::String(s) => s.split(',').map(|r| r.trim().to_string()).collect(),
        _ => return None,
    };
    let msisdn = |r: &String| {
        (8..=15).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_digit()) && !r.starts_with('0')
    };
    (!raw.is_empty() && raw.iter().all(msisdn)).then_some(raw)
}

fn originator_ok(originator: &str) -> bool {
    if originator.bytes().all(|b| b.is_ascii_digit()) {
        return (3..=15).contains(&originator.len());
    }
    originator.len() <= MAX_ALPHANUMERIC_ORIGINATOR
        && originator
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ')
}

/// The first rule of MessageBird's the request breaks, as MessageBird answers it.
fn check(request: &Value) -> Result<Vec<String>, Invalid> {
    let text = |name: &str| {
        request
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if !originator_ok(text("originator")) {
        return Err(Invalid(9, "no (correct) originator given", "originator"));
    }
    let Some(recipients) = recipients(request.get("recipients")) else {
        return Err(Invalid(9, "no (correct) recipients found", "recipients"));
    };
    if recipients.len() > MAX_RECIPIENTS {
        return Err(Invalid(
            10,
            "too many recipients (at most 50)",
            "recipients",
        ));
    }
    if text("body").is_empty() {
        return Err(Invalid(9, "no (correct) body given", "body"));
    }
    if text("reference").chars().count() > MAX_REFERENCE_CHARS {
        return Err(Invalid(10, "reference is too long", "reference"));
    }
    if let Some(url) = request.get("reportUrl")
        && url.as_str().and_then(|u| url::Url::parse(u).ok()).is_none()
    {
        return Err(Invalid(10, "reportUrl is not a valid URL", "reportUrl"));
    }
    if !matches!(
        request.get("datacoding").and_then(Value::as_str),
        None | Some("plain" | "unicode" | "auto")
    ) {
        return Err(Invalid(
            10,
            "datacoding must be plain, unicode or auto",
            "datacoding",
        ));
    }
    Ok(recipients)
}

async fn create_message(headers: HeaderMap, body: Bytes) -> Response {
    if !authorization(&headers, "AccessKey").is_some_and(is_access_key) {
        return mb_error(
            StatusCode::UNAUTHORIZED,
            2,
            "Request not allowed (incorrect access_key)",
            Some("access_key"),
        );
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) if is_json => value,
        _ => return mb_error(StatusCode::UNPROCESSABLE_ENTITY, 21, "Bad request", None),
    };
    let recipients = match check(&request) {
        Ok(recipients) => recipients,
        Err(invalid) => return invalid.answer(),
    };
    if let Some(e) = ERROR_NUMBERS
        .iter()
        .find(|e| recipients.iter().any(|r| e.to.strip_prefix('+') == Some(r)))
    {
        let mut answer = mb_error(e.http, e.code, e.description, e.parameter);
        if e.http == StatusCode::TOO_MANY_REQUESTS {
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return answer;
    }
    created(&request, &recipients)
}

/// MessageBird's message object for a created message (go `sms/testdata/messageObject.json`).
fn created(request: &Value, recipients: &[String]) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let body = request["body"].as_str().unwrap_or_default();
    let parts = segments::count(body).1;
    let items: Vec<Value> = recipients
        .iter()
        .map(|r| {
            json!({
                "recipient": r.parse::<i64>().unwrap_or_default(),
                "status": "sent",
                "statusDatetime": now,
                "messagePartCount": parts,
            })
        })
        .collect();
    tracing::info!(
        %id,
        report_url = request["reportUrl"].as_str().unwrap_or("-"),
        "stand-in: MessageBird accepted a message"
    );
    json_answer(
        StatusCode::CREATED,
        json!({
            "id": id,
            "href": format!("https://rest.messagebird.com/messages/{id}"),
            "direction": "mt",
            "type": "sms",
            "originator": request["originator"],
            "body": body,
            "reference": request.get("reference").cloned().unwrap_or(Value::Null),
            "reportUrl": request.get("reportUrl").cloned().unwrap_or(Value::Null),
            "validity": null,
            "gateway": 10,
            "typeDetails": {},
            "datacoding": request.get("datacoding").cloned().unwrap_or(json!("plain")),
            "mclass": 1,
            "scheduledDatetime": null,
            "createdDatetime": now,
            "recipients": {
                "totalCount": recipients.len(),
                "totalSentCount": recipients.len(),
                "totalDeliveredCount": 0,
                "totalDeliveryFailedCount": 0,
                "items": items,
            },
        }),
    )
}
