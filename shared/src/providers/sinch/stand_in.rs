//! Sinch, imitated: the OAuth2 token endpoint (`POST /oauth2/token`, Basic client credentials,
//! `grant_type=client_credentials`) and the Conversation API's
//! `POST /v1/projects/{projectId}/messages:send`, which takes only tokens the stand-in issued and
//! checks the body as Sinch does (app, an SMS recipient with an international number, a text,
//! the metadata, correlation id, channel property and `ttl` limits). Errors are answered in
//! Sinch's google.rpc shape; the numbers of [`ERROR_NUMBERS`] trigger each error answer the
//! adapter must classify.

use super::is_uuid;
use crate::domain::SendErrorCode;
use crate::providers::stand_in::{
    StandIn, authorization, basic_auth, field, form_pairs, json_answer,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

/// A recipient that makes the stand-in answer with an error.
struct ErrorNumber {
    to: &'static str,
    http: StatusCode,
    rpc_status: &'static str,
    message: &'static str,
    /// A google.rpc detail, when Sinch gives one with this error.
    detail: Option<fn() -> Value>,
    ours: SendErrorCode,
}

fn identity_violation() -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{
            "field": "recipient.identified_by.channel_identities[0].identity",
            "description": "The identity is not a valid MSISDN for the SMS channel",
        }],
    })
}

fn retry_shortly() -> Value {
    json!({ "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.2s" })
}

const ERROR_NUMBERS: [ErrorNumber; 6] = [
    ErrorNumber {
        to: "+46700000001",
        http: StatusCode::BAD_REQUEST,
        rpc_status: "INVALID_ARGUMENT",
        message: "Invalid argument: recipient identity",
        detail: Some(identity_violation),
        ours: SendErrorCode::InvalidNumber,
    },
    ErrorNumber {
        to: "+46700000002",
        http: StatusCode::FORBIDDEN,
        rpc_status: "PERMISSION_DENIED",
        message: "The project does not have access to this app",
        detail: None,
        ours: SendErrorCode::AuthFailed,
    },
    ErrorNumber {
        to: "+46700000003",
        http: StatusCode::TOO_MANY_REQUESTS,
        rpc_status: "RESOURCE_EXHAUSTED",
        message: "Too many requests",
        detail: Some(retry_shortly),
        ours: SendErrorCode::Throttled,
    },
    ErrorNumber {
        to: "+46700000004",
        http: StatusCode::SERVICE_UNAVAILABLE,
        rpc_status: "UNAVAILABLE",
        message: "The service is unavailable, try again",
        detail: None,
        ours: SendErrorCode::ProviderUnavailable,
    },
    ErrorNumber {
        to: "+46700000005",
        http: StatusCode::INTERNAL_SERVER_ERROR,
        rpc_status: "INTERNAL",
        message: "Internal error",
        detail: None,
        ours: SendErrorCode::OutcomeUnknown,
    },
    ErrorNumber {
        to: "+46700000006",
        http: StatusCode::UNAUTHORIZED,
        rpc_status: "UNAUTHENTICATED",
        message: "Request had invalid authentication credentials",
        detail: None,
        ours: SendErrorCode::AuthFailed,
    },
];

/// The tokens issued, with when they expire.
#[derive(Clone, Default)]
struct Issued(Arc<Mutex<HashMap<String, Instant>>>);

impl Issued {
    fn issue(&self) -> String {
        let token = format!("sandbox-{}", uuid::Uuid::new_v4().simple());
        let mut tokens = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        tokens.retain(|_, expires| *expires > now);
        tokens.insert(token.clone(), now + TOKEN_LIFETIME);
        token
    }

    fn is_valid(&self, token: &str) -> bool {
        let tokens = self.0.lock().unwrap_or_else(|p| p.into_inner());
        tokens.get(token).is_some_and(|e| *e > Instant::now())
    }
}

pub fn stand_in() -> StandIn {
    StandIn {
        router: Router::new()
            .route(super::TOKEN_PATH, post(issue_token))
            .route(
                "/v1/projects/{project_id}/messages:send",
                post(send_message),
            )
            .with_state(Issued::default()),
        error_numbers: ERROR_NUMBERS.iter().map(|e| (e.to, e.ours)).collect(),
    }
}

/// The token endpoint's OAuth2 error body.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_answer(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

async fn issue_token(State(issued): State<Issued>, headers: HeaderMap, body: Bytes) -> Response {
    let client = basic_auth(&headers).filter(|(id, secret)| !id.is_empty() && !secret.is_empty());
    if client.is_none() {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    let form_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form = form_pairs(&body);
    if !form_type || field(&form, "grant_type").is_none() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required in a form body",
        );
    }
    if field(&form, "grant_type") != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only client_credentials is supported",
        );
    }
    json_answer(
        StatusCode::OK,
        json!({
            "access_token": issued.issue(),
            "expires_in": TOKEN_LIFETIME.as_secs(),
            "scope": "",
            "token_type": "bearer",
        }),
    )
}

/// Sinch's google.rpc error body.
fn rpc_error(status: StatusCode, rpc_status: &str, message: &str, details: Vec<Value>) -> Response {
    json_answer(
        status,
        json!({
            "error": {
                "code": status.as_u16(),
                "message": message,
                "status": rpc_status,
                "details": details,
            }
        }),
    )
}

/// A request-level validation error (boxed: a `Response` is large for an `Err`).
fn invalid(field: &str, description: &str) -> Box<Response> {
    Box::new(rpc_error(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        &format!("Invalid argument: {field}: {description}"),
        vec![json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{ "field": field, "description": description }],
        })],
    ))
}

/// An international MSISDN, with or without `+` (Sinch takes both on send).
fn is_msisdn(identity: &str) -> bool {
    let digits = identity.strip_prefix('+').unwrap_or(identity);
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// `ttl`: whole seconds with an `s`, 3 to 315576000000.
fn is_ttl(ttl: &str) -> bool {
    ttl.strip_suffix('s')
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|s| (3..=315_576_000_000).contains(&s))
}

/// The first rule of Sinch's request-level validation the body breaks.
fn check_body(body: &Value) -> Result<&str, Box<Response>> {
    let text = |path: &[&str]| {
        path.iter()
            .try_fold(body, |v, k| v.get(k))
            .and_then(Value::as_str)
    };
    if text(&["app_id"]).is_none_or(str::is_empty) {
        return Err(invalid("app_id", "is required"));
    }
    let identities = body
        .pointer("/recipient/identified_by/channel_identities")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    let Some(first) = identities.and_then(|a| a.first()) else {
        return Err(invalid(
            "recipient",
            "contact_id or identified_by.channel_identities is required",
        ));
    };
    let identity_field = "recipient.identified_by.channel_identities[0].identity";
    if first.get("channel").and_then(Value::as_str) != Some("SMS") {
        return Err(invalid(
            "recipient.identified_by.channel_identities[0].channel",
            "this app has only the SMS channel",
        ));
    }
    let identity = first
        .get("identity")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !is_msisdn(identity) {
        return Err(invalid(identity_field, "must be an international MSISDN"));
    }
    if text(&["message", "text_message", "text"]).is_none_or(str::is_empty) {
        return Err(invalid("message.text_message.text", "is required"));
    }
    for (name, limit) in [("message_metadata", 1024), ("correlation_id", 128)] {
        if text(&[name]).is_some_and(|v| v.chars().count() > limit) {
            return Err(invalid(
                name,
                &format!("must be at most {limit} characters"),
            ));
        }
    }
    if let Some(properties) = body.get("channel_properties") {
        let Some(properties) = properties.as_object() else {
            return Err(invalid("channel_properties", "must be an object"));
        };
        for (name, value) in properties {
            if value.as_str().is_none_or(|v| v.chars().count() > 1024) {
                return Err(invalid(
                    &format!("channel_properties.{name}"),
                    "must be a string of at most 1024 characters",
                ));
            }
        }
    }
    if text(&["ttl"]).is_some_and(|ttl| !is_ttl(ttl)) {
        return Err(invalid(
            "ttl",
            "must be whole seconds with an s, 3s or more",
        ));
    }
    Ok(identity)
}

async fn send_message(
    State(issued): State<Issued>,
    Path(project_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorization(&headers, "Bearer").is_some_and(|t| issued.is_valid(t)) {
        return rpc_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials",
            vec![],
        );
    }
    if !is_uuid(&project_id) {
        return rpc_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Project {project_id} not found"),
            vec![],
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received",
            vec![],
        );
    };
    let identity = match check_body(&body) {
        Ok(identity) => identity,
        Err(refused) => return *refused,
    };
    let with_plus = format!("+{}", identity.trim_start_matches('+'));
    if let Some(error) = ERROR_NUMBERS.iter().find(|e| e.to == with_plus) {
        let details = error.detail.map(|d| vec![d()]).unwrap_or_default();
        return rpc_error(error.http, error.rpc_status, error.message, details);
    }
    let now = chrono::Utc::now();
    let message_id = super::ulid_like(now);
    let correlation_id = body
        .get("correlation_id")
        .and_then(Value::as_str)
        .unwrap_or("-");
    tracing::info!(%message_id, correlation_id, "stand-in: Sinch accepted a message");
    json_answer(
        StatusCode::OK,
        json!({
            "message_id": message_id,
            "accepted_time": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }),
    )
}
