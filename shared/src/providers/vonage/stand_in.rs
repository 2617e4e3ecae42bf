//! Vonage's SMS API, imitated: `POST {base}/json` (`/sms/json` on `rest.nexmo.com`; the base
//! includes `/sms`, as Vonage's API description has it) checked as Vonage checks it: `api_key`
//! and `api_secret` (form fields or HTTP Basic) of the right shape, `from`, `to` as 7 to 15
//! digits, `text`, a known `type`, `client-ref` and `callback` within 100 characters. Answered as
//! Vonage answers: HTTP 200 with one `messages` entry per part of the text, each with its own
//! `message-id`, and errors as a non-zero `status` with its `error-text`.
//!
//! Vonage has no test numbers; the stand-in's own (in Ofcom's drama range `447700900xxx`, which
//! Vonage's examples use) answer with the errors listed in [`ERROR_NUMBERS`].

use crate::domain::{SendErrorCode, segments};
use crate::providers::stand_in::{StandIn, basic_auth, field, form_pairs, json_answer};
use axum::Router;
use axum::extract::RawForm;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

/// A recipient that makes the stand-in answer with a Vonage error status.
struct ErrorNumber {
    to: &'static str,
    status: &'static str,
    error_text: &'static str,
    ours: SendErrorCode,
}

const ERROR_NUMBERS: [ErrorNumber; 8] = [
    ErrorNumber {
        to: "+447700900001",
        status: "1",
        // Vonage's throttle text names the wait in milliseconds; short here, to keep tests quick.
        error_text: "Throughput Rate Exceeded - please wait [ 50 ] and retry",
        ours: SendErrorCode::Throttled,
    },
    ErrorNumber {
        to: "+447700900005",
        status: "5",
        error_text: "Internal Error",
        ours: SendErrorCode::ProviderUnavailable,
    },
    ErrorNumber {
        to: "+447700900006",
        status: "6",
        error_text: "Unroutable message - rejected",
        ours: SendErrorCode::InvalidNumber,
    },
    ErrorNumber {
        to: "+447700900007",
        status: "7",
        error_text: "Number barred.",
        ours: SendErrorCode::Rejected,
    },
    ErrorNumber {
        to: "+447700900009",
        status: "9",
        error_text: "Quota Exceeded - rejected",
        ours: SendErrorCode::InsufficientFunds,
    },
    ErrorNumber {
        to: "+447700900015",
        status: "15",
        error_text: "Illegal Sender Address - rejected",
        ours: SendErrorCode::InvalidSender,
    },
    ErrorNumber {
        to: "+447700900029",
        status: "29",
        error_text: "Non White-listed Destination - rejected",
        ours: SendErrorCode::Rejected,
    },
    ErrorNumber {
        to: "+447700900033",
        status: "33",
        error_text: "Number de-activated",
        ours: SendErrorCode::InvalidNumber,
    },
];

/// `client-ref` and `callback` limits (developer.vonage.com, SMS API reference).
const MAX_REFERENCE_CHARS: usize = 100;

pub fn stand_in() -> StandIn {
    StandIn {
        router: Router::new().route("/json", post(send_sms)),
        error_numbers: ERROR_NUMBERS.iter().map(|e| (e.to, e.ours)).collect(),
    }
}

/// Vonage answers errors with HTTP 200 and the status in the message entry.
fn vonage_error(status: &str, error_text: &str) -> Response {
    json_answer(
        StatusCode::OK,
        json!({
            "message-count": "1",
            "messages": [{ "status": status, "error-text": error_text }],
        }),
    )
}

fn is_api_key(key: &str) -> bool {
    key.len() == 8 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_api_secret(secret: &str) -> bool {
    (6..=32).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_graphic())
}

/// The credentials' problem, as Vonage words it, if any.
fn credentials_error(headers: &HeaderMap, form: &[(String, String)]) -> Option<Response> {
    let (key, secret) = match (field(form, "api_key"), basic_auth(headers)) {
        (Some(key), _) => (
            key.to_string(),
            field(form, "api_secret").map(str::to_string),
        ),
        (None, Some((user, password))) => (user, Some(password)),
        (None, None) => return Some(vonage_error("2", "Missing api_key")),
    };
    if secret.is_some() && field(form, "sig").is_some() {
        return Some(vonage_error("32", "Signature and API secret disallowed"));
    }
    let Some(secret) = secret else {
        return Some(vonage_error("2", "Missing api_secret"));
    };
    (!is_api_key(&key) || !is_api_secret(&secret)).then(|| vonage_error("4", "Bad Credentials"))
}

fn is_callback(url: &str) -> bool {
    url.len() <= MAX_REFERENCE_CHARS
        && url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// The request's problem, as Vonage words it, if any.
fn message_error(form: &[(String, String)]) -> Option<Response> {
    let Some(to) = field(form, "to") else {
        return Some(vonage_error("2", "Missing to param"));
    };
    if field(form, "from").is_none_or(|f| f.trim().is_empty()) {
        return Some(vonage_error("2", "Missing from param"));
    }
    if !(7..=15).contains(&to.len()) || !to.bytes().all(|b| b.is_ascii_digit()) {
        return Some(vonage_error("3", "Invalid to param"));
    }
    if !matches!(field(form, "type").unwrap_or("text"), "text" | "unicode") {
        return Some(vonage_error("3", "Invalid Message type"));
    }
    if field(form, "text").is_none_or(str::is_empty) {
        return Some(vonage_error("2", "Missing text param"));
    }
    if field(form, "client-ref").is_some_and(|r| r.chars().count() > MAX_REFERENCE_CHARS) {
        return Some(vonage_error("3", "Invalid client-ref param"));
    }
    if field(form, "callback").is_some_and(|c| !is_callback(c)) {
        return Some(vonage_error("23", "Invalid Callback Url"));
    }
    let e164 = format!("+{to}");
    ERROR_NUMBERS
        .iter()
        .find(|e| e.to == e164)
        .map(|e| vonage_error(e.status, e.error_text))
}

async fn send_sms(headers: HeaderMap, RawForm(body): RawForm) -> Response {
    let form = form_pairs(&body);
    if let Some(refused) = credentials_error(&headers, &form).or_else(|| message_error(&form)) {
        return refused;
    }
    let to = field(&form, "to").unwrap_or_default();
    let text = field(&form, "text").unwrap_or_default();
    let client_ref = field(&form, "client-ref");
    let (_, parts) = segments::count(text);
    let messages: Vec<Value> = (0..parts)
        .map(|_| {
            let mut part = json!({
                "to": to,
                "message-id": uuid::Uuid::new_v4().to_string(),
                "status": "0",
                "remaining-balance": "3.14159265",
                "message-price": "0.03330000",
                "network": "23410",
            });
            if let Some(reference) = client_ref {
                part["client-ref"] = json!(reference);
            }
            part
        })
        .collect();
    tracing::info!(
        parts,
        callback = field(&form, "callback").unwrap_or("-"),
        "stand-in: Vonage accepted a message"
    );
    json_answer(
        StatusCode::OK,
        json!({ "message-count": parts.to_string(), "messages": messages }),
    )
}
