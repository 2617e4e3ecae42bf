//! MessageMedia's Messages API, imitated: `POST /v1/messages` checked as MessageMedia checks it
//! (Basic auth, 1 to 100 messages, each with `content` of 1 to 5000 characters, an
//! international `destination_number`, a `source_number_type` that fits the `source_number`,
//! metadata within its limits, no response-only fields; one bad message refuses the batch) and
//! answered in MessageMedia's JSON: 202 with each message echoed, its `message_id` and
//! `queued`, or `{"message", "details"}` errors. A few numbers in the fictitious Australian
//! range answer with the errors MessageMedia can give.

use crate::domain::SendErrorCode;
use crate::providers::stand_in::{StandIn, basic_auth, json_answer};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Map, Value, json};

/// A recipient that makes the stand-in answer with an error.
struct ErrorNumber {
    to: &'static str,
    status: StatusCode,
    message: &'static str,
    detail: Option<&'static str>,
    ours: SendErrorCode,
}

const ERROR_NUMBERS: [ErrorNumber; 5] = [
    ErrorNumber {
        to: "+61491570400",
        status: StatusCode::BAD_REQUEST,
        message: "Request failed to parse correctly.",
        detail: Some("/messages/0/destination_number: is not a valid mobile number"),
        ours: SendErrorCode::InvalidNumber,
    },
    ErrorNumber {
        to: "+61491570422",
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: "Messages to this destination require TLS 1.3.",
        detail: None,
        ours: SendErrorCode::Rejected,
    },
    ErrorNumber {
        to: "+61491570429",
        status: StatusCode::TOO_MANY_REQUESTS,
        message: "Too many requests.",
        detail: None,
        ours: SendErrorCode::Throttled,
    },
    ErrorNumber {
        to: "+61491570500",
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: "An internal error occurred.",
        detail: None,
        ours: SendErrorCode::OutcomeUnknown,
    },
    ErrorNumber {
        to: "+61491570503",
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "Service unavailable.",
        detail: None,
        ours: SendErrorCode::ProviderUnavailable,
    },
];

const MAX_MESSAGES: usize = 100;
const MAX_CONTENT_CHARS: usize = 5000;
const MAX_METADATA_PAIRS: usize = 10;

pub fn stand_in() -> StandIn {
    StandIn {
        router: Router::new().route("/v1/messages", post(send_messages)),
        error_numbers: ERROR_NUMBERS.iter().map(|e| (e.to, e.ours)).collect(),
    }
}

fn error(status: StatusCode, message: &str, details: &[String]) -> Response {
    let mut body = json!({ "message": message });
    if !details.is_empty() {
        body["details"] = json!(details);
    }
    json_answer(status, body)
}

fn bad_request(details: Vec<String>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "Request failed to parse correctly.",
        &details,
    )
}

/// MessageMedia's API keys and secrets are printable tokens; Basic credentials of any other
/// shape are refused as MessageMedia refuses unknown ones.
fn credentials_look_right(headers: &HeaderMap) -> bool {
    basic_auth(headers).is_some_and(|(key, secret)| {
        !key.is_empty()
            && !secret.is_empty()
            && key.bytes().all(|b| b.is_ascii_graphic())
            && !secret.chars().any(char::is_control)
    })
}

async fn send_messages(headers: HeaderMap, body: Bytes) -> Response {
    if !credentials_look_right(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Invalid authentication credentials",
            &[],
        );
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request(vec!["body: must be a JSON object".into()]);
    };
    let Some(Value::Array(messages)) = request.get("messages") else {
        return bad_request(vec!["/messages: is required and must be an array".into()]);
    };
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        return bad_request(vec![format!(
            "/messages: must hold 1 to {MAX_MESSAGES} messages"
        )]);
    }
    // One invalid message refuses the whole batch, as MessageMedia does.
    let details: Vec<String> = messages
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            message_problems(m)
                .into_iter()
                .map(move |p| format!("/messages/{i}/{p}"))
        })
        .collect();
    if !details.is_empty() {
        return bad_request(details);
    }
    if let Some(magic) = messages.iter().find_map(|m| {
        let to = m.get("destination_number").and_then(Value::as_str)?;
        ERROR_NUMBERS.iter().find(|e| e.to == to)
    }) {
        let details: Vec<String> = magic.detail.map(String::from).into_iter().collect();
        let mut answer = error(magic.status, magic.message, &details);
        if magic.status == StatusCode::TOO_MANY_REQUESTS {
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return answer;
    }
    let accepted: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut echo = m.as_object().cloned().unwrap_or_default();
            let id = uuid::Uuid::new_v4().to_string();
            let callback_url = echo
                .get("callback_url")
                .and_then(Value::as_str)
                .unwrap_or("-");
            tracing::info!(
                message_id = %id,
                callback_url,
                "stand-in: MessageMedia accepted a message"
            );
            echo.insert("message_id".into(), json!(id));
            echo.insert("status".into(), json!("queued"));
            echo.entry("delivery_report").or_insert(json!(false));
            echo.entry("format").or_insert(json!("SMS"));
            Value::Object(echo)
        })
        .collect();
    json_answer(StatusCode::ACCEPTED, json!({ "messages": accepted }))
}

/// Every broken rule of one message, as `field: why`.
fn message_problems(message: &Value) -> Vec<String> {
    let Some(m) = message.as_object() else {
        return vec![": must be an object".into()];
    };
    let mut problems = Vec::new();
    match m.get("content").and_then(Value::as_str) {
        Some(c) if (1..=MAX_CONTENT_CHARS).contains(&c.chars().count()) => {}
        Some(_) => problems.push(format!(
            "content: must be 1 to {MAX_CONTENT_CHARS} characters"
        )),
        None => problems.push("content: is required".into()),
    }
    match m.get("destination_number").and_then(Value::as_str) {
        Some(to) if is_international(to) => {}
        Some(_) => problems.push(
            "destination_number: International address must be between 8 and 15 characters excluding the first '+'"
                .into(),
        ),
        None => problems.push("destination_number: is required".into()),
    }
    problems.extend(source_problems(m));
    for response_only in ["message_id", "status"] {
        if m.contains_key(response_only) {
            problems.push(format!("{response_only}: is read-only"));
        }
    }
    if let Some(value) = m.get("delivery_report")
        && !value.is_boolean()
    {
        problems.push("delivery_report: must be a boolean".into());
    }
    if let Some(value) = m.get("callback_url")
        && value.as_str().is_none_or(|u| url::Url::parse(u).is_err())
    {
        problems.push("callback_url: must be a URL".into());
    }
    if let Some(format) = m.get("format")
        && !matches!(format.as_str(), Some("SMS" | "MMS" | "TTS"))
    {
        problems.push("format: must be SMS, MMS or TTS".into());
    }
    if let Some(metadata) = m.get("metadata") {
        problems.extend(metadata_problems(metadata));
    }
    problems
}

fn is_international(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

fn source_problems(m: &Map<String, Value>) -> Vec<String> {
    let source = m.get("source_number").and_then(Value::as_str);
    let kind = m.get("source_number_type").and_then(Value::as_str);
    match (source, kind) {
        (None, Some(_)) => vec!["source_number_type: only with a source_number".into()],
        (None, None) => vec![],
        (Some(s), Some("INTERNATIONAL")) if !is_international(s) => {
            vec!["source_number: International address must be between 8 and 15 characters excluding the first '+'".into()]
        }
        (Some(s), Some("ALPHANUMERIC"))
            if !(1..=11).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            vec!["source_number: an alphanumeric address has 1 to 11 characters".into()]
        }
        (Some(s), Some("SHORTCODE")) if !s.bytes().all(|b| b.is_ascii_digit()) => {
            vec!["source_number: a short code has digits only".into()]
        }
        (Some(_), Some("INTERNATIONAL" | "ALPHANUMERIC" | "SHORTCODE") | None) => vec![],
        (Some(_), Some(_)) => {
            vec!["source_number_type: must be INTERNATIONAL, ALPHANUMERIC or SHORTCODE".into()]
        }
    }
}

fn metadata_problems(metadata: &Value) -> Vec<String> {
    let Some(pairs) = metadata.as_object() else {
        return vec!["metadata: must be an object of strings".into()];
    };
    let mut problems = Vec::new();
    if pairs.len() > MAX_METADATA_PAIRS {
        problems.push(format!("metadata: at most {MAX_METADATA_PAIRS} pairs"));
    }
    for (key, value) in pairs {
        if key.is_empty() || key.chars().count() > 100 {
            problems.push("metadata: keys have 1 to 100 characters".into());
        }
        match value.as_str() {
            Some(v) if v.chars().count() <= 256 => {}
            _ => problems.push(format!(
                "metadata/{key}: must be a string of at most 256 characters"
            )),
        }
    }
    problems
}
