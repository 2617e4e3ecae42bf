//! Twilio's Messages API, imitated: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
//! checked as Twilio checks it (Basic auth of the path's account, `To`, `From` or
//! `MessagingServiceSid`, `Body` up to 1600 characters) and answered in Twilio's JSON. Twilio's
//! magic test numbers answer with their errors, as with Twilio's test credentials.

use super::{is_hex, is_sid};
use crate::domain::{SendErrorCode, phone, segments};
use crate::providers::stand_in::{StandIn, basic_auth, field, form_pairs, json_answer};
use axum::Router;
use axum::extract::{Path, RawForm};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::json;

/// A recipient that makes Twilio answer with an error.
struct MagicNumber {
    to: &'static str,
    twilio_code: u32,
    message: &'static str,
    ours: SendErrorCode,
}

/// Twilio's magic `To` numbers (Twilio docs, "Test credentials").
const MAGIC_NUMBERS: [MagicNumber; 3] = [
    MagicNumber {
        to: "+15005550001",
        twilio_code: 21211,
        message: "The 'To' number +15005550001 is not a valid phone number.",
        ours: SendErrorCode::InvalidNumber,
    },
    MagicNumber {
        to: "+15005550009",
        twilio_code: 21614,
        message: "'To' number +15005550009 is not a valid mobile number",
        ours: SendErrorCode::InvalidNumber,
    },
    MagicNumber {
        to: "+15005550004",
        twilio_code: 21610,
        message: "Attempt to send to unsubscribed recipient",
        ours: SendErrorCode::OptedOut,
    },
];

const MAX_BODY_CHARS: usize = 1600;

pub fn stand_in() -> StandIn {
    StandIn {
        router: Router::new().route(
            "/2010-04-01/Accounts/{account_sid}/Messages.json",
            post(create_message),
        ),
        error_numbers: MAGIC_NUMBERS.iter().map(|m| (m.to, m.ours)).collect(),
    }
}

/// Twilio's legacy error body, which its Messages API still answers.
fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    json_answer(
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        }),
    )
}

async fn create_message(
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let authenticated = basic_auth(&headers).is_some_and(|(user, password)| {
        user == account_sid && is_sid(&account_sid, "AC") && is_hex(&password, 32)
    });
    if !authenticated {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form = form_pairs(&body);
    let Some(to) = field(&form, "To") else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    if !phone::is_e164(to) {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    if let Some(magic) = MAGIC_NUMBERS.iter().find(|m| m.to == to) {
        return twilio_error(StatusCode::BAD_REQUEST, magic.twilio_code, magic.message);
    }
    let (from, service) = (field(&form, "From"), field(&form, "MessagingServiceSid"));
    if from.is_none() && service.is_none() {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
        );
    }
    let text = field(&form, "Body").unwrap_or_default();
    if text.is_empty() {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    if text.chars().count() > MAX_BODY_CHARS {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let (encoding, parts) = segments::count(text);
    let now = chrono::Utc::now().to_rfc2822();
    tracing::info!(
        %sid,
        status_callback = field(&form, "StatusCallback").unwrap_or("-"),
        "stand-in: Twilio accepted a message"
    );
    json_answer(
        StatusCode::CREATED,
        json!({
            "sid": sid,
            "account_sid": account_sid,
            "to": to,
            "from": from,
            "messaging_service_sid": service,
            "body": text,
            // A Messaging Service picks the sender later: Twilio says `accepted` until then.
            "status": if service.is_some() { "accepted" } else { "queued" },
            "num_segments": parts.to_string(),
            "encoding": encoding.as_str(),
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": now,
            "date_updated": now,
            "error_code": null,
            "error_message": null,
            "uri": format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"),
        }),
    )
}
