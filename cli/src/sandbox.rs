//! `byosms sandbox`: a local stand-in for the providers' send APIs, so the bundle can be tried end
//! to end without an account or a network. It checks a request the way the provider does (path,
//! credentials' shape, required fields, number format) and answers in the provider's format.
//! Twilio's magic test numbers trigger its error answers, as with Twilio's test credentials:
//! `+15005550001` invalid number (21211), `+15005550009` not a mobile (21614), `+15005550004`
//! unsubscribed (21610).

use axum::Router;
use axum::extract::{Path, RawForm};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};

pub fn router() -> Router {
    Router::new().route(
        "/2010-04-01/Accounts/{account_sid}/Messages.json",
        post(twilio_create_message),
    )
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `Basic base64(user:password)` → (user, password).
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

async fn twilio_create_message(
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let authenticated = basic_auth(&headers).is_some_and(|(user, password)| {
        user == account_sid
            && account_sid.starts_with("AC")
            && is_hex(&account_sid[2..], 32)
            && is_hex(&password, 32)
    });
    if !authenticated {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: Vec<(String, String)> = form_pairs(&body);
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(to) = field("To") else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    let digits = to.strip_prefix('+').unwrap_or_default();
    if !(8..=15).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || to == "+15005550001"
    {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    if to == "+15005550009" {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21614,
            &format!("'To' number {to} is not a valid mobile number"),
        );
    }
    if to == "+15005550004" {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21610,
            "Attempt to send to unsubscribed recipient",
        );
    }
    let (from, service) = (field("From"), field("MessagingServiceSid"));
    if from.is_none() && service.is_none() {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
        );
    }
    let body_text = field("Body").unwrap_or_default();
    if body_text.is_empty() {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    if body_text.chars().count() > 1600 {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let (encoding, segments) = byosms::domain::segments::count(body_text);
    let now = chrono::Utc::now().to_rfc2822();
    let message: Value = json!({
        "sid": sid,
        "account_sid": account_sid,
        "to": to,
        "from": from,
        "messaging_service_sid": service,
        "body": body_text,
        "status": if service.is_some() { "accepted" } else { "queued" },
        "num_segments": segments.to_string(),
        "encoding": encoding.as_str(),
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "date_created": now,
        "date_updated": now,
        "error_code": null,
        "error_message": null,
        "uri": format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"),
    });
    tracing::info!(%sid, status_callback = field("StatusCallback").unwrap_or("-"), "sandbox: Twilio accepted a message");
    (StatusCode::CREATED, axum::Json(message)).into_response()
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
