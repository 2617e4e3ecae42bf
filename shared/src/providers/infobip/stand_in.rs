//! Infobip's `POST /sms/3/messages`, imitated: checked as Infobip checks it (`Authorization: App
//! <key>`, `messages[]` with `destinations[].to` in international format without `+`, a sender,
//! `content.text` of at most 25 parts, `messageId` at most 200 characters and never repeated,
//! `callbackData` at most 4000, an absolute delivery URL) and answered in Infobip's formats: the
//! v3 error body, the older `requestError` body, and per-message statuses in a 200.

use super::statuses::{self, Group};
use crate::domain::{SendErrorCode, segments};
use crate::providers::stand_in::{StandIn, authorization, json_answer};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// What a magic recipient makes the stand-in answer.
#[derive(Clone, Copy)]
enum Answer {
    /// A 200 whose message carries this REJECTED status.
    Rejected(&'static str),
    /// HTTP 429 with the v3 `E429` body.
    TooManyRequests,
    /// HTTP 500 with the v3 `E500` body (Infobip may or may not have taken the message).
    GeneralError,
    /// HTTP 403 in the older `requestError` form: a key without an SMS scope.
    Forbidden,
}

struct MagicNumber {
    to: &'static str,
    answer: Answer,
    ours: SendErrorCode,
}

/// Recipients (as our send requests give them) that make the stand-in answer with an error.
const MAGIC_NUMBERS: [MagicNumber; 7] = [
    MagicNumber {
        to: "+41793026001",
        answer: Answer::Rejected("REJECTED_DESTINATION"),
        ours: SendErrorCode::InvalidNumber,
    },
    MagicNumber {
        to: "+41793026002",
        answer: Answer::Rejected("REJECTED_NOT_ENOUGH_CREDITS"),
        ours: SendErrorCode::InsufficientFunds,
    },
    MagicNumber {
        to: "+41793026003",
        answer: Answer::Rejected("REJECTED_SENDER"),
        ours: SendErrorCode::InvalidSender,
    },
    MagicNumber {
        to: "+41793026004",
        answer: Answer::Rejected("REJECTED_DESTINATION_NOT_REGISTERED"),
        ours: SendErrorCode::Rejected,
    },
    MagicNumber {
        to: "+41793026005",
        answer: Answer::TooManyRequests,
        ours: SendErrorCode::Throttled,
    },
    MagicNumber {
        to: "+41793026006",
        answer: Answer::GeneralError,
        ours: SendErrorCode::OutcomeUnknown,
    },
    MagicNumber {
        to: "+41793026007",
        answer: Answer::Forbidden,
        ours: SendErrorCode::AuthFailed,
    },
];

const MAX_PARTS: u32 = 25;
const MAX_MESSAGE_ID_CHARS: usize = 200;
const MAX_CALLBACK_DATA_CHARS: usize = 4000;
const MAX_TO_CHARS: usize = 64;

/// The message ids accepted so far, per API key: Infobip refuses a repeat.
#[derive(Default)]
struct Accepted(Mutex<HashSet<(String, String)>>);

pub fn stand_in() -> StandIn {
    StandIn {
        router: Router::new()
            .route(super::SEND_PATH, post(send_messages))
            .with_state(Arc::new(Accepted::default())),
        error_numbers: MAGIC_NUMBERS.iter().map(|m| (m.to, m.ours)).collect(),
    }
}

/// An error answer for the whole request (boxed: a response is large, and most calls succeed).
type Refusal = Box<Response>;

fn refuse(response: Response) -> Refusal {
    Box::new(response)
}

/// Infobip's v3 error body.
fn api_error(
    status: StatusCode,
    code: &str,
    description: &str,
    violations: &[(String, String)],
) -> Refusal {
    let violations: Vec<Value> = violations
        .iter()
        .map(|(property, violation)| json!({ "property": property, "violation": violation }))
        .collect();
    refuse(json_answer(
        status,
        json!({
            "errorCode": code,
            "description": description,
            "action": "Check the syntax, violations and adjust the request.",
            "violations": violations,
            "resources": [],
        }),
    ))
}

/// The older `requestError.serviceException` body, still answered by parts of Infobip's API.
fn legacy_error(status: StatusCode, id: &str, text: &str) -> Refusal {
    refuse(json_answer(
        status,
        json!({ "requestError": { "serviceException": { "messageId": id, "text": text } } }),
    ))
}

fn bad_request(property: String, violation: &str) -> Refusal {
    api_error(
        StatusCode::BAD_REQUEST,
        "E400",
        "Request cannot be processed.",
        &[(property, violation.to_string())],
    )
}

/// An API key as Infobip issues them: no spaces, long enough to be one.
fn api_key(headers: &HeaderMap) -> Option<String> {
    authorization(headers, super::API_KEY_SCHEME)
        .filter(|key| key.len() >= 16 && key.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
}

fn status_object(name: &str) -> Value {
    let known = statuses::by_name(name);
    let (group_id, group_name) = known.map_or(Group::Pending, |k| k.group).wire();
    json!({
        "groupId": group_id,
        "groupName": group_name,
        "id": known.map_or(26, |k| k.id),
        "name": name,
        "description": name.replace('_', " ").to_lowercase(),
    })
}

async fn send_messages(
    State(accepted): State<Arc<Accepted>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(key) = api_key(&headers) else {
        return *api_error(StatusCode::UNAUTHORIZED, "E401", "Unauthorized", &[]);
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return *bad_request("body".into(), "must be valid JSON");
    };
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return *bad_request("messages".into(), "must not be null");
    };
    if messages.is_empty() {
        return *bad_request("messages".into(), "size must be between 1 and 2147483647");
    }
    let mut answers = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        match check_message(i, message) {
            Ok(destinations) => {
                for destination in destinations {
                    match answer_destination(&accepted, &key, message, destination) {
                        Ok(answer) => answers.push(answer),
                        Err(refusal) => return *refusal,
                    }
                }
            }
            Err(refusal) => return *refusal,
        }
    }
    json_answer(
        StatusCode::OK,
        json!({ "bulkId": uuid::Uuid::new_v4().to_string(), "messages": answers }),
    )
}

/// A message's destinations, once the message itself is well-formed.
fn check_message(i: usize, message: &Value) -> Result<Vec<&Value>, Refusal> {
    let at = |field: &str| format!("messages[{i}].{field}");
    let destinations = message
        .get("destinations")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| bad_request(at("destinations"), "must not be empty"))?;
    let has_text = message
        .pointer("/content/text")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    if !has_text {
        return Err(bad_request(at("content.text"), "must not be blank"));
    }
    if let Some(data) = message.pointer("/webhooks/callbackData") {
        let fits = data
            .as_str()
            .is_some_and(|d| d.chars().count() <= MAX_CALLBACK_DATA_CHARS);
        if !fits {
            return Err(bad_request(
                at("webhooks.callbackData"),
                "size must be between 0 and 4000",
            ));
        }
    }
    if let Some(url) = message.pointer("/webhooks/delivery/url") {
        let absolute = url
            .as_str()
            .and_then(|u| url::Url::parse(u).ok())
            .is_some_and(|u| matches!(u.scheme(), "http" | "https"));
        if !absolute {
            return Err(bad_request(
                at("webhooks.delivery.url"),
                "must be a valid URL",
            ));
        }
    }
    for (j, destination) in destinations.iter().enumerate() {
        let to = destination.get("to").and_then(Value::as_str).unwrap_or("");
        let international = !to.is_empty()
            && to.len() <= MAX_TO_CHARS
            && to.bytes().all(|b| b.is_ascii_digit())
            && !to.starts_with('0');
        if !international {
            return Err(bad_request(
                at(&format!("destinations[{j}].to")),
                "must be a number in international format, digits only, without + or 00",
            ));
        }
        let id_fits = destination.get("messageId").is_none_or(|id| {
            id.as_str()
                .is_some_and(|id| id.chars().count() <= MAX_MESSAGE_ID_CHARS)
        });
        if !id_fits {
            return Err(bad_request(
                at(&format!("destinations[{j}].messageId")),
                "size must be between 0 and 200",
            ));
        }
    }
    Ok(destinations.iter().collect())
}

/// One destination's answer, or an HTTP error answer for the whole request.
fn answer_destination(
    accepted: &Accepted,
    key: &str,
    message: &Value,
    destination: &Value,
) -> Result<Value, Refusal> {
    let to = destination.get("to").and_then(Value::as_str).unwrap_or("");
    let magic = MAGIC_NUMBERS
        .iter()
        .find(|m| m.to.trim_start_matches('+') == to);
    let message_id = destination
        .get("messageId")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let text = message
        .pointer("/content/text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let parts = segments::count(text).1;
    let sender = message.get("sender").and_then(Value::as_str).unwrap_or("");
    // Refusals of the message itself come first; then the magic numbers; then the repeat check.
    let refused = if parts > MAX_PARTS {
        Some("REJECTED_MESSAGE_TOO_LONG")
    } else if sender.trim().is_empty() {
        Some("REJECTED_SOURCE")
    } else {
        None
    };
    let status = match refused {
        Some(name) => name,
        None => magic_status(magic)?,
    };
    let status = if status == "PENDING_ACCEPTED" && !first_use(accepted, key, &message_id) {
        "REJECTED_DUPLICATE_MESSAGE_ID"
    } else {
        status
    };
    tracing::info!(%message_id, status, "stand-in: Infobip answered a message");
    Ok(json!({
        "messageId": message_id,
        "status": status_object(status),
        "destination": to,
        "details": { "messageCount": parts },
    }))
}

/// Whether `message_id` is new for this key (and now taken).
fn first_use(accepted: &Accepted, key: &str, message_id: &str) -> bool {
    accepted
        .0
        .lock()
        .map(|mut seen| seen.insert((key.to_string(), message_id.to_string())))
        .unwrap_or(false)
}

/// The status a (possibly magic) recipient gets, or the HTTP error it makes Infobip answer.
fn magic_status(magic: Option<&MagicNumber>) -> Result<&'static str, Refusal> {
    match magic.map(|m| m.answer) {
        Some(Answer::TooManyRequests) => Err(api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "E429",
            "Too many requests sent.",
            &[],
        )),
        Some(Answer::GeneralError) => Err(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "E500",
            "Something went wrong.",
            &[],
        )),
        Some(Answer::Forbidden) => Err(legacy_error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "Forbidden",
        )),
        Some(Answer::Rejected(name)) => Ok(name),
        None => Ok("PENDING_ACCEPTED"),
    }
}
