//! LINK Mobility's Common SMS REST API, imitated: `POST /sms/send` checked as the MT doc (v1.18)
//! describes it (HTTP Basic, JSON, `source` by `sourceTON`, `destination` with `+` and country
//! code, `userData` of at most 254 segments in the 2-byte range, `platformId`,
//! `platformPartnerId`, a DLR gate when `useDeliveryReport` is on) and answered in LINK's JSON:
//! `{messageId, resultCode: 1005, description: "Queued"[, smsCount]}`, `ErrorResponse`
//! `{status, description, translatedDescription}` otherwise, 204 when `ignoreResponse` is true.
//!
//! LINK publishes no test numbers: the stand-in's own error numbers below produce the error
//! answers LINK gives in those situations.

use super::{QUEUED, SourceTon, common_message_id};
use crate::domain::{SendErrorCode, phone, segments};
use crate::providers::stand_in::{StandIn, basic_auth, json_answer};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

/// A recipient that makes the stand-in answer with one of LINK's errors.
struct ErrorNumber {
    to: &'static str,
    http: StatusCode,
    status: u32,
    description: &'static str,
    ours: SendErrorCode,
}

const ERROR_NUMBERS: [ErrorNumber; 3] = [
    ErrorNumber {
        to: "+4799999001",
        http: StatusCode::BAD_REQUEST,
        status: 106000,
        description: "Parse Error: invalid destination number",
        ours: SendErrorCode::InvalidNumber,
    },
    ErrorNumber {
        to: "+4799999002",
        http: StatusCode::FORBIDDEN,
        status: 106102,
        description: "Unable to access SMSC credentials",
        ours: SendErrorCode::AuthFailed,
    },
    ErrorNumber {
        to: "+4799999003",
        http: StatusCode::FORBIDDEN,
        status: 106301,
        description: "Specified gate unavailable",
        ours: SendErrorCode::ConfigError,
    },
];

const MAX_SEGMENTS: u32 = 254;
const DATA_CODING: [&str; 4] = ["TEXT", "GSM", "UCS2", "BINARY"];

pub fn stand_in() -> StandIn {
    StandIn {
        router: Router::new().route(super::SEND_PATH, post(send_sms)),
        error_numbers: ERROR_NUMBERS.iter().map(|e| (e.to, e.ours)).collect(),
    }
}

/// LINK's ErrorResponse.
fn link_error(http: StatusCode, status: u32, description: &str) -> Response {
    json_answer(
        http,
        json!({"status": status, "description": description, "translatedDescription": null}),
    )
}

fn invalid(description: &str) -> Response {
    link_error(StatusCode::BAD_REQUEST, 106000, description)
}

fn text<'a>(request: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    request
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `source` as its `sourceTON` (default ALPHANUMERIC) says it must be.
fn source_fits(source: &str, ton: &str) -> bool {
    match ton {
        "MSISDN" => phone::is_e164(source),
        "SHORTNUMBER" => {
            (1..=14).contains(&source.len()) && source.bytes().all(|b| b.is_ascii_digit())
        }
        "ALPHANUMERIC" => (1..=11).contains(&source.chars().count()),
        _ => false,
    }
}

/// The first rule the request breaks, as LINK answers it.
fn refusal(request: &Map<String, Value>) -> Option<Response> {
    let platform = text(request, "platformId");
    let partner = text(request, "platformPartnerId");
    if platform.is_none() {
        return Some(link_error(
            StatusCode::FORBIDDEN,
            106200,
            "Invalid or missing platformId",
        ));
    }
    if partner.is_none() {
        return Some(link_error(
            StatusCode::FORBIDDEN,
            106201,
            "Invalid or missing platformPartnerId",
        ));
    }
    let Some(destination) = text(request, "destination") else {
        return Some(invalid("Missing destination"));
    };
    let destination_ton = text(request, "destinationTON").unwrap_or("MSISDN");
    if destination_ton == "MSISDN" && !phone::is_e164(destination) {
        return Some(invalid(
            "Invalid destination: an MSISDN with + and country code",
        ));
    }
    if let Some(error) = ERROR_NUMBERS.iter().find(|e| e.to == destination) {
        return Some(link_error(error.http, error.status, error.description));
    }
    let Some(source) = text(request, "source") else {
        return Some(invalid("Missing source"));
    };
    let source_ton = text(request, "sourceTON").unwrap_or(SourceTon::Alphanumeric.as_str());
    if !source_fits(source, source_ton) {
        return Some(invalid("Invalid source for its sourceTON"));
    }
    let dcs = text(request, "dcs").unwrap_or("TEXT");
    if !DATA_CODING.contains(&dcs) {
        return Some(invalid("Invalid dcs"));
    }
    let Some(user_data) = text(request, "userData") else {
        return Some(invalid("Missing userData"));
    };
    if user_data.chars().any(|c| (c as u32) > 0xFFFF) {
        return Some(invalid(
            "Invalid userData: characters outside the 2-byte range",
        ));
    }
    if segments::count(user_data).1 > MAX_SEGMENTS {
        return Some(invalid("Invalid userData: more than 254 segments"));
    }
    let wants_report = request
        .get("useDeliveryReport")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let has_gate = request
        .get("deliveryReportGates")
        .and_then(Value::as_array)
        .is_some_and(|gates| {
            gates
                .iter()
                .any(|g| g.as_str().is_some_and(|g| !g.is_empty()))
        });
    if wants_report && !has_gate {
        return Some(link_error(
            StatusCode::FORBIDDEN,
            106300,
            "No gates available",
        ));
    }
    None
}

async fn send_sms(headers: HeaderMap, body: Bytes) -> Response {
    let authenticated = basic_auth(&headers)
        .is_some_and(|(user, password)| !user.is_empty() && !password.is_empty());
    if !authenticated {
        return link_error(StatusCode::UNAUTHORIZED, 106100, "Invalid authentication");
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return invalid("Parse Error");
    };
    if let Some(answer) = refusal(&request) {
        return answer;
    }
    if request
        .get("ignoreResponse")
        .and_then(Value::as_bool)
        .unwrap_or(true)
    {
        return StatusCode::NO_CONTENT.into_response();
    }
    let message_id = common_message_id();
    tracing::info!(
        %message_id,
        ref_id = text(&request, "refId").unwrap_or("-"),
        "stand-in: LINK Mobility queued a message"
    );
    let mut answer =
        json!({"messageId": message_id, "resultCode": QUEUED, "description": "Queued"});
    let count_wanted = request
        .get("customParameters")
        .and_then(|c| c.get("replySmsCount"))
        .and_then(Value::as_str)
        == Some("true");
    if count_wanted {
        let user_data = text(&request, "userData").unwrap_or_default();
        answer["smsCount"] = json!(segments::count(user_data).1);
    }
    json_answer(StatusCode::OK, answer)
}
