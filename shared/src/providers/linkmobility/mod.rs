//! LINK Mobility's "Common" SMS REST API: `POST https://{endpointHost}/sms/send` with HTTP Basic,
//! delivery reports and inbound messages (MO) pushed by the connection's gates, authenticated
//! with the gate destination's HTTP Basic credentials. Facts: `providers/linkmobility.md` of the
//! reference material (LINK's own PDFs: SMS REST API MT/DLR 1.18, MO 1.7, Gate API 1.2).

#[cfg(feature = "stand-in")]
mod stand_in;

use super::http::{ProviderHttp, admin_host_rule, error_excerpt, join_path};
use super::{
    Accepted, AuthError, InboundReport, OutboundMessage, ParseError, ParsedItems, ProviderAdapter,
    Retry, SampleEvent, SendContext, SendError, SignedRequest, StatusReport, UnsupportedMediaType,
    WebhookItem,
};
use crate::domain::{
    Connection, ConnectionSecrets, FieldReader, Provider, ProviderFields, SendErrorCode, Status,
    ValidationErrors, is_valid_message_id, phone, segments,
};
use crate::providers::http::{ProviderAnswer, exchange};
use crate::webhook::{RouteKind, WebhookReply, WebhookRequest};
use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use subtle::ConstantTimeEq;
use url::Url;

/// The single-message send path under the endpoint host (or an API override).
pub const SEND_PATH: &str = "/sms/send";
/// The send-response and DLR code for "queued": the only code a successful send answers with.
pub const QUEUED: i64 = 1005;
/// LINK sends at most 254 segments; a larger `smsCount` is not believed.
const MAX_PARTS: u32 = 254;

/// The LINK Mobility adapter. `api_override` (`BYOSMS_LINKMOBILITY_API_URL`, e.g. the sandbox's
/// `http://127.0.0.1:4010/linkmobility`) replaces `https://{endpointHost}` for every connection.
#[derive(Debug, Default)]
pub struct LinkMobility {
    api_override: Option<Url>,
}

impl LinkMobility {
    pub fn new(api_override: Option<Url>) -> Self {
        LinkMobility { api_override }
    }

    fn send_endpoint(&self, endpoint_host: &str) -> String {
        match &self.api_override {
            Some(base) => join_path(base, SEND_PATH),
            None => format!("https://{endpoint_host}{SEND_PATH}"),
        }
    }

    /// An admin typed the endpoint host: it is reached only through the client that connects to
    /// public addresses alone. A deployment override is the deployer's and may be on loopback.
    fn client<'a>(&self, http: &'a ProviderHttp) -> &'a reqwest::Client {
        if self.api_override.is_some() {
            http.client()
        } else {
            http.admin_host_client()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connection fields
// ---------------------------------------------------------------------------------------------

/// The type of number LINK reads `source` as (MT doc: `sourceTON`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceTon {
    Msisdn,
    ShortNumber,
    Alphanumeric,
}

impl SourceTon {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceTon::Msisdn => "MSISDN",
            SourceTon::ShortNumber => "SHORTNUMBER",
            SourceTon::Alphanumeric => "ALPHANUMERIC",
        }
    }

    /// Inferred from a validated `from`: `+…` is an MSISDN, digits alone a short number, anything
    /// else an alphanumeric sender.
    pub fn of(from: &str) -> SourceTon {
        if from.starts_with('+') {
            SourceTon::Msisdn
        } else if from.bytes().all(|b| b.is_ascii_digit()) {
            SourceTon::ShortNumber
        } else {
            SourceTon::Alphanumeric
        }
    }
}

fn validate_from(from: &str) -> Result<String, String> {
    if from.starts_with('+') {
        return if phone::is_e164(from) {
            Ok(from.to_string())
        } else {
            Err(
                "a number must be + followed by the country code and number (8 to 15 digits)"
                    .into(),
            )
        };
    }
    if from.bytes().all(|b| b.is_ascii_digit()) {
        return if from.starts_with("00") {
            Err("write an international number with + instead of 00".into())
        } else if from.len() <= 14 {
            Ok(from.to_string())
        } else {
            Err("a short number has at most 14 digits; give a full number with + and the country code".into())
        };
    }
    let alphanumeric = (2..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric())
        && !from.starts_with(|c: char| c.is_ascii_digit());
    if alphanumeric {
        Ok(from.to_string())
    } else {
        Err("an alphanumeric sender id has 2 to 11 letters or digits (a-z, A-Z, 0-9), no spaces, and does not start with a digit".into())
    }
}

fn validate_username(user: &str) -> Result<String, String> {
    if user.contains(':') {
        Err("must not contain a colon (HTTP Basic cannot carry one in a user name)".into())
    } else if user.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else if user.len() > 128 {
        Err("must be at most 128 characters long".into())
    } else {
        Ok(user.to_string())
    }
}

/// The rule only: the value never appears in the message.
fn validate_password(password: &str) -> Result<String, String> {
    if password.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else if password.len() > 256 {
        Err("must be at most 256 characters long".into())
    } else {
        Ok(password.to_string())
    }
}

/// Platform, partner and gate ids are opaque to us (`COMMON_API`, digits, gate names).
fn validate_identifier(id: &str) -> Result<String, String> {
    if id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(id.to_string())
    } else {
        Err("may contain only printable ASCII characters without spaces, at most 64".into())
    }
}

/// The kit's admin-host rule, with the seed's example form (`https://wsx.sp247.net/sms`)
/// answered by the host to type instead.
fn endpoint_host_rule(api_override: Option<&Url>) -> impl Fn(&str) -> Result<String, String> {
    let rule = admin_host_rule(api_override);
    move |input: &str| {
        rule(input).map_err(|broken| {
            match Url::parse(input.trim())
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
            {
                Some(host) if input.contains("://") => {
                    format!("{broken}: give only the host, e.g. {host}")
                }
                _ => broken,
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Send
// ---------------------------------------------------------------------------------------------

/// The MT request, field for field as the MT doc (v1.18) names them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendSms<'a> {
    source: &'a str,
    #[serde(rename = "sourceTON")]
    source_ton: &'static str,
    destination: &'a str,
    #[serde(rename = "destinationTON")]
    destination_ton: &'static str,
    user_data: &'a str,
    dcs: &'static str,
    platform_id: &'a str,
    platform_partner_id: &'a str,
    use_delivery_report: bool,
    delivery_report_gates: [&'a str; 1],
    ref_id: &'a str,
    /// The doc's default is `true` (a 204 without the messageId): always ask for the answer.
    ignore_response: bool,
    custom_parameters: CustomParameters,
}

/// `replySmsCount` makes LINK answer how many parts it sends: the part ids of its DLRs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomParameters {
    reply_sms_count: &'static str,
}

/// `200 {"messageId":"…","resultCode":1005,"description":"Queued","smsCount":2}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendAnswer {
    message_id: Option<String>,
    result_code: Option<Value>,
    description: Option<String>,
    sms_count: Option<Value>,
}

/// `{"status":106102,"description":"…","translatedDescription":null}`: the shape LINK answers
/// errors with (the PDF's ErrorResponse names the code `resultCode`; both are read).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorAnswer {
    status: Option<Value>,
    result_code: Option<Value>,
    description: Option<String>,
    translated_description: Option<String>,
}

/// A JSON number, or a string of one.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// LINK supports only the Basic Multilingual Plane (MT doc: 4-byte characters such as most
/// emoji are not supported): they are dropped rather than the whole invitation refused.
fn bmp_only(body: &str) -> Cow<'_, str> {
    if body.chars().all(|c| (c as u32) <= 0xFFFF) {
        Cow::Borrowed(body)
    } else {
        Cow::Owned(body.chars().filter(|c| (*c as u32) <= 0xFFFF).collect())
    }
}

/// The ids LINK gives the parts of a message in its DLRs: `{messageId}${n}`, from 0. A message of
/// one part keeps its own id.
pub fn part_ids(message_id: &str, parts: u32) -> Vec<String> {
    if parts > 1 {
        (0..parts.min(MAX_PARTS))
            .map(|n| format!("{message_id}${n}"))
            .collect()
    } else {
        Vec::new()
    }
}

/// Classifies an error answer (HTTP 400/401/403, ErrorResponse codes 1061xx–1063xx). Every 4xx
/// is a refusal (nothing was queued); a 5xx may come after LINK queued the message.
pub fn classify(http_status: u16, body: &str) -> SendError {
    let answer: ErrorAnswer = serde_json::from_str(body).unwrap_or_default();
    let code = answer
        .status
        .as_ref()
        .or(answer.result_code.as_ref())
        .and_then(integer);
    let words = answer
        .description
        .or(answer.translated_description)
        .map(|d| error_excerpt(&d))
        .filter(|d| !d.is_empty());
    let lower = words.as_deref().unwrap_or_default().to_ascii_lowercase();
    use SendErrorCode as C;
    let (ours, retry) = match (http_status, code) {
        (500..=599, _) => (C::OutcomeUnknown, Retry::OutcomeUnknown),
        (429, _) => (C::Throttled, Retry::NotAccepted),
        (_, _) if lower.contains("throttl") => (C::Throttled, Retry::NotAccepted),
        (401, _) | (_, Some(106100..=106102)) => (C::AuthFailed, Retry::Never),
        (_, Some(106200 | 106201 | 106202 | 106300 | 106301)) => (C::ConfigError, Retry::Never),
        (400, _) if lower.contains("destination") => (C::InvalidNumber, Retry::Never),
        (400, _) if lower.contains("source") => (C::InvalidSender, Retry::Never),
        (403, _) => (C::AuthFailed, Retry::Never),
        _ => (C::Rejected, Retry::Never),
    };
    let text = match (&words, code) {
        (Some(w), Some(c)) => format!("LINK Mobility answered HTTP {http_status} ({c}): {w}"),
        (Some(w), None) => format!("LINK Mobility answered HTTP {http_status}: {w}"),
        (None, _) => format!("LINK Mobility answered HTTP {http_status}"),
    };
    let err = SendError::new(ours, text, retry);
    match code {
        Some(c) => err.with_provider_code(c.to_string()),
        None => err,
    }
}

/// Reads a 2xx answer. Only `resultCode` 1005 (or none) with a messageId is a clean acceptance;
/// another code is undocumented on a 2xx, so it is judged by the status table.
fn read_accepted(http_status: u16, body: &str, user_data: &str) -> Result<Accepted, SendError> {
    let unknown = |why: &str| {
        SendError::new(
            SendErrorCode::OutcomeUnknown,
            format!("LINK Mobility answered HTTP {http_status} {why}; the message may be queued"),
            Retry::OutcomeUnknown,
        )
    };
    if body.trim().is_empty() {
        // A 204 (ignoreResponse in effect): queued, but without an id; DLRs find it by refId.
        return Err(unknown("without a messageId"));
    }
    let answer: SendAnswer =
        serde_json::from_str(body).map_err(|_| unknown("with an unreadable body"))?;
    let code = answer
        .result_code
        .as_ref()
        .and_then(integer)
        .unwrap_or(QUEUED);
    let status = if code == QUEUED {
        Status::Accepted
    } else {
        normalize_result_code(code)
    };
    if matches!(status, Status::Failed | Status::Undelivered) {
        let words = answer.description.as_deref().map(error_excerpt);
        return Err(SendError::new(
            SendErrorCode::Rejected,
            format!(
                "LINK Mobility refused the message with resultCode {code}: {}",
                words.unwrap_or_default()
            ),
            Retry::Never,
        )
        .with_provider_code(code.to_string()));
    }
    let message_id = answer
        .message_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| unknown("without a messageId"))?;
    let parts = answer
        .sms_count
        .as_ref()
        .and_then(integer)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_else(|| segments::count(user_data).1);
    Ok(Accepted {
        part_ids: part_ids(&message_id, parts),
        provider_message_id: message_id,
        provider_status: Some(code.to_string()),
        status: if status == Status::Unknown {
            Status::Accepted
        } else {
            status
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Status table
// ---------------------------------------------------------------------------------------------

/// A DLR `resultCode`, normalized (MT doc v1.18 pp. 24–26). Unmapped codes are `unknown`.
pub fn normalize_result_code(code: i64) -> Status {
    match code {
        1005 | 1008 | 1012 => Status::Queued,
        1000 | 1011 | 1013 => Status::Sent,
        // 1007 is TEMP for billing only: the handset has the message.
        1001 | 1007 => Status::Delivered,
        // The message reached the network but not the handset (1009: billed, not delivered).
        1002 | 1004 | 1006 | 1009 | 1010 | 2104..=2107 => Status::Undelivered,
        0..=6
        | 104
        | 105
        | 1003
        | 2000..=2003
        | 2100..=2103
        | 2200..=2207
        | 3000..=3002
        | 4000..=4007 => Status::Failed,
        _ => Status::Unknown,
    }
}

/// The resultCode a status word stands for, for `byosms simulate status` (`delivered` …).
fn result_code_of_word(word: &str) -> Option<i64> {
    if let Ok(code) = word.trim().parse::<i64>() {
        return Some(code);
    }
    Some(match word {
        "queued" | "accepted" => 1005,
        "sent" => 1000,
        "delivered" => 1001,
        "undelivered" => 1006,
        "expired" => 1002,
        "failed" => 1003,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

const BASIC_MISSING: &str = "Authorization header (HTTP Basic)";
const BASIC_INVALID: &str = "HTTP Basic credentials";
const PARTNER_INVALID: &str = "platformPartnerId";

/// A webhook's payload as JSON: a JSON body as it is, or the pairs of a form POST or of a GET
/// query as an object of strings (a gate destination's `contentType`, method and template
/// decide which LINK sends).
fn payload(request: &WebhookRequest) -> Result<Value, ParseError> {
    let pairs = if request.method == http::Method::GET {
        request.query_pairs()
    } else if request.is_json() {
        return serde_json::from_slice(&request.body)
            .map_err(|e| ParseError(format!("body is not valid JSON: {e}")));
    } else {
        request
            .form_pairs()
            .ok_or_else(|| ParseError("form body is not valid UTF-8".into()))?
    };
    if pairs.is_empty() {
        return Err(ParseError("request carries no parameters".into()));
    }
    Ok(Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    ))
}

/// A string or number field, as text; `None` when absent, null, empty or of another type.
fn scalar(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `outer.inner` of a JSON payload, or the flat `outer.inner` / `inner` key of a form or query.
fn nested(object: &Map<String, Value>, outer: &str, inner: &str) -> Option<String> {
    object
        .get(outer)
        .and_then(Value::as_object)
        .and_then(|o| scalar(o, inner))
        .or_else(|| scalar(object, &format!("{outer}.{inner}")))
}

fn timestamp(object: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    // Odd formats never refuse a report: the time is then the time we received it.
    DateTime::parse_from_rfc3339(&scalar(object, key)?)
        .ok()
        .map(|t| t.to_utc())
}

/// The platform partner an MO names (`route.platformPartnerId`, or its copy in
/// `customParameters`).
fn claimed_partner(object: &Map<String, Value>) -> Option<String> {
    nested(object, "route", "platformPartnerId")
        .or_else(|| nested(object, "customParameters", "platformPartnerId"))
}

/// The items of a payload: one object, or (defensively) an array of them.
fn objects(payload: &Value) -> Vec<Option<&Map<String, Value>>> {
    match payload {
        Value::Array(items) => items.iter().map(Value::as_object).collect(),
        other => vec![other.as_object()],
    }
}

/// MO `destination` for short numbers is country-prefixed (`NO-2333`): the number is `2333`,
/// as the connection's `from` has it.
fn our_number(destination: &str) -> String {
    match destination.split_once('-') {
        Some((country, number))
            if country.len() == 2
                && country.bytes().all(|b| b.is_ascii_uppercase())
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            number.to_string()
        }
        _ => phone::normalize(destination),
    }
}

fn parse_report(object: &Map<String, Value>) -> Result<WebhookItem, ParseError> {
    let id = scalar(object, "id").ok_or_else(|| ParseError("delivery report has no id".into()))?;
    let word = scalar(object, "resultCode")
        .ok_or_else(|| ParseError("delivery report has no resultCode".into()))?;
    // A code we cannot read is a word nobody mapped: recorded as unknown, answered 2xx.
    let status = word
        .trim()
        .parse::<i64>()
        .map_or(Status::Unknown, normalize_result_code);
    let at = scalar(object, "timestamp").unwrap_or_default();
    Ok(WebhookItem::Status(StatusReport {
        dedupe_key: format!("status:{id}:{word}:{at}"),
        message_id: scalar(object, "refId").filter(|r| is_valid_message_id(r)),
        error_code: matches!(status, Status::Failed | Status::Undelivered).then(|| word.clone()),
        occurred_at: timestamp(object, "timestamp"),
        recipient: scalar(object, "destination").map(|d| phone::normalize(&d)),
        opt_out: false,
        provider_message_id: id,
        provider_status: word,
        status,
    }))
}

fn parse_inbound(object: &Map<String, Value>) -> Result<WebhookItem, ParseError> {
    let required = |name: &str| {
        scalar(object, name).ok_or_else(|| ParseError(format!("inbound message has no {name}")))
    };
    let id = required("messageId")?;
    let from = required("source")?;
    let to = required("destination")?;
    let text = match object.get("content") {
        Some(Value::Object(content)) => content.get("userData").and_then(Value::as_str),
        _ => object
            .get("content.userData")
            .or_else(|| object.get("userData"))
            .and_then(Value::as_str),
    }
    .ok_or_else(|| ParseError("inbound message has no content.userData".into()))?;
    Ok(WebhookItem::Inbound(InboundReport {
        dedupe_key: format!("inbound:{id}"),
        provider_message_id: id,
        from: phone::normalize(&from),
        to: our_number(&to),
        text: text.to_string(),
        occurred_at: timestamp(object, "timestamp"),
        part: None,
        // The MO names no MT: the pipeline links it to the latest message sent to `from`.
        reply_to: None,
        opt_out: false,
    }))
}

/// What a payload is decides how it is recorded, not the route: one gate may serve both.
fn parse_item(object: Option<&Map<String, Value>>) -> Result<WebhookItem, ParseError> {
    let object = object.ok_or_else(|| ParseError("item is not a JSON object".into()))?;
    let is_report = object.contains_key("resultCode");
    let is_inbound = object.contains_key("content")
        || object.contains_key("content.userData")
        || object.contains_key("userData");
    if is_report {
        parse_report(object)
    } else if is_inbound {
        parse_inbound(object)
    } else {
        Err(ParseError(
            "neither a delivery report (resultCode) nor an inbound message (content)".into(),
        ))
    }
}

/// `Authorization: Basic base64(user:password)` compared with the connection's, constant-time.
fn check_basic(header: &str, username: &str, password: &str) -> Result<(), AuthError> {
    let invalid = AuthError::Invalid(BASIC_INVALID);
    let (scheme, encoded) = header.trim().split_once(' ').ok_or(invalid.clone())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid);
    }
    let given = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid.clone())?;
    let expected = format!("{username}:{password}");
    if bool::from(given.ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(invalid)
    }
}

/// `Basic base64(user:password)`, as a gate destination with credentials sends it.
pub fn basic_authorization(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A Common-style message id: 18 random bytes in base64 (24 characters, `+` and `/` included).
fn common_message_id() -> String {
    let mut bytes = uuid::Uuid::new_v4().as_bytes().to_vec();
    bytes.extend_from_slice(&uuid::Uuid::new_v4().as_bytes()[..2]);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sample_report(
    message_id: Option<&str>,
    provider_message_id: &str,
    provider_status: &str,
    error_code: Option<&str>,
) -> Result<Value, ParseError> {
    let code = result_code_of_word(provider_status).ok_or_else(|| {
        ParseError(format!(
            "'{provider_status}' is neither a LINK resultCode nor one of queued, sent, delivered, undelivered, expired, failed"
        ))
    })?;
    let now = Utc::now();
    Ok(json!({
        "refId": message_id,
        "id": provider_message_id,
        "operator": null,
        "sentTimestamp": (now - chrono::Duration::seconds(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "resultCode": code,
        "operatorResultCode": error_code,
        "segments": 1,
        "gateCustomParameters": {},
        "customParameters": {"received": now.format("%Y-%m-%d %H:%M:%S").to_string()},
    }))
}

fn sample_inbound(from: &str, to: &str, text: &str, connection: &Connection) -> Value {
    let now = Utc::now();
    let id = common_message_id();
    let platform_id = connection.setting("platformId");
    let partner = connection.setting("platformPartnerId");
    let route_type = if SourceTon::of(to) == SourceTon::ShortNumber {
        "KEYWORD_ROUTE"
    } else {
        "SUBNUMBER_ROUTE"
    };
    json!({
        "destination": to,
        "subNumber": null,
        "source": from,
        "content": {"type": "SMS", "userData": text, "encoding": "TEXT"},
        "operator": null,
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "messageId": id,
        "operatorTimestamp": null,
        "operatorMessageId": null,
        "route": {
            "type": route_type,
            "id": common_message_id(),
            "refId": null,
            "gateIds": [connection.setting("gateId")],
            "platformId": platform_id,
            "platformPartnerId": partner,
            "number": to,
            "active": true,
        },
        "gateCustomParameters": {},
        "customParameters": {
            "platformPartnerId": partner,
            "platformId": platform_id,
            "moReferenceId": id,
            "queued": now.format("%Y-%m-%d %H:%M:%S").to_string(),
            "serviceCentreTimeStamp": now.format("%Y%m%d%H%M%S").to_string(),
        },
    })
}

fn connection_setting<'a>(connection: &'a Connection, name: &str) -> Result<&'a str, SendError> {
    connection
        .setting(name)
        .ok_or_else(|| SendError::config(format!("connection has no {name}")))
}

#[async_trait]
impl ProviderAdapter for LinkMobility {
    fn provider(&self) -> Provider {
        Provider::Linkmobility
    }

    /// linkmobility.md: up to 254 segments.
    fn body_limit(&self) -> super::BodyLimit {
        super::BodyLimit::Parts(254)
    }

    fn validate_connection(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<ProviderFields, ValidationErrors> {
        let mut r = FieldReader::new(fields);
        r.setting("username", validate_username);
        r.secret("password", validate_password);
        r.setting("from", validate_from);
        r.setting("platformId", validate_identifier);
        r.setting("platformPartnerId", validate_identifier);
        r.setting(
            "endpointHost",
            endpoint_host_rule(self.api_override.as_ref()),
        );
        r.setting("gateId", validate_identifier);
        r.send_rate();
        r.finish()
    }

    async fn send(
        &self,
        ctx: &SendContext<'_>,
        message: &OutboundMessage,
    ) -> Result<Accepted, SendError> {
        let connection = ctx.connection;
        let username = connection_setting(connection, "username")?;
        let from = connection_setting(connection, "from")?;
        let host = connection_setting(connection, "endpointHost")?;
        let password = ctx
            .secrets
            .expose("password")
            .ok_or_else(|| SendError::config("connection secret has no password"))?;
        let user_data = bmp_only(&message.body);
        if user_data.len() != message.body.len() {
            tracing::warn!(
                message_id = %message.message_id,
                "dropped characters outside the Basic Multilingual Plane, which LINK cannot send"
            );
        }
        let request = SendSms {
            source: from,
            source_ton: SourceTon::of(from).as_str(),
            destination: &message.to,
            destination_ton: "MSISDN",
            user_data: &user_data,
            dcs: "TEXT",
            platform_id: connection_setting(connection, "platformId")?,
            platform_partner_id: connection_setting(connection, "platformPartnerId")?,
            use_delivery_report: true,
            delivery_report_gates: [connection_setting(connection, "gateId")?],
            ref_id: &message.message_id,
            ignore_response: false,
            custom_parameters: CustomParameters {
                reply_sms_count: "true",
            },
        };
        let ProviderAnswer {
            status,
            retry_after: wait,
            body,
        } = exchange(
            self.client(ctx.http)
                .post(self.send_endpoint(host))
                .basic_auth(username, Some(password))
                .header(http::header::ACCEPT, "application/json")
                .json(&request),
        )
        .await?;
        if (200..300).contains(&status) {
            read_accepted(status, &body, &user_data)
        } else {
            Err(classify(status, &body).with_retry_after(wait))
        }
    }

    fn authenticate(
        &self,
        request: &WebhookRequest,
        connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<(), AuthError> {
        let header = request
            .header("authorization")
            .ok_or(AuthError::Missing(BASIC_MISSING))?;
        let username = connection
            .setting("username")
            .ok_or(AuthError::Invalid(BASIC_INVALID))?;
        let password = secrets
            .expose("password")
            .ok_or(AuthError::Invalid(BASIC_INVALID))?;
        check_basic(header, username, password)?;
        // Connections of one org may share LINK credentials; an MO names its platform partner,
        // and only the connection of that partner owns it.
        if let Ok(payload) = payload(request) {
            let ours = connection.setting("platformPartnerId");
            let foreign = objects(&payload)
                .into_iter()
                .flatten()
                .filter_map(claimed_partner)
                .any(|claimed| Some(claimed.as_str()) != ours);
            if foreign {
                return Err(AuthError::Invalid(PARTNER_INVALID));
            }
        }
        Ok(())
    }

    fn check_media_type(&self, request: &WebhookRequest) -> Result<(), UnsupportedMediaType> {
        if request.method == http::Method::GET || request.is_json() || request.is_form() {
            return Ok(());
        }
        Err(UnsupportedMediaType::of(request))
    }

    fn parse(
        &self,
        request: &WebhookRequest,
        _route: RouteKind,
        _connection: &Connection,
    ) -> Result<ParsedItems, ParseError> {
        let payload = payload(request)?;
        let items = objects(&payload);
        if items.is_empty() {
            return Err(ParseError("the JSON array carries no items".into()));
        }
        if items.len() == 1 && items[0].is_none() && !payload.is_array() {
            return Err(ParseError(
                "body must be a JSON object (or an array of objects)".into(),
            ));
        }
        Ok(items.into_iter().map(parse_item).collect())
    }

    fn acknowledge(&self, _route: RouteKind, _connection: &Connection) -> WebhookReply {
        // LINK wants a 2xx, 200 recommended; a gate with `acknowledge: true` and a required
        // answer string is a LINK Support setting the setup guide warns about.
        WebhookReply::new(200, "text/plain", "OK")
    }

    fn setup_guide(&self, message_url: &Url, status_url: &Url) -> String {
        format!(
            "LINK Mobility has no self-service webhook settings: ask LINK Support (or use the Gate API, \
             PUT /gate/partnergate/platform/<platformId>/partner/<platformPartnerId>/id/<gateId>) to set up: \
             (1) delivery reports: the destination of the gate named in this connection's gateId gets \
             url {status_url}, contentType application/json, and username/password equal to this \
             connection's username and password; \
             (2) replies: the keyword or subnumber route of your sending number gets a gate (preferably a \
             second one) whose destination is url {message_url}, contentType application/json, with the \
             same username and password. If one gate serves both, either URL works: reports and replies \
             are told apart by their shape. The gate must not require a special acknowledgement string \
             (we answer 200 \"OK\"). Without the destination credentials LINK sends no Authorization \
             header and every webhook is refused with 401."
        )
    }

    fn sample_webhook(
        &self,
        event: &SampleEvent,
        url: &Url,
        connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<SignedRequest, ParseError> {
        let username = connection
            .setting("username")
            .ok_or_else(|| ParseError("connection has no username".into()))?;
        let password = secrets
            .expose("password")
            .ok_or_else(|| ParseError("connection secret has no password".into()))?;
        let body = match event {
            SampleEvent::Inbound { from, to, text } => sample_inbound(from, to, text, connection),
            SampleEvent::Status {
                message_id,
                provider_message_id,
                provider_status,
                error_code,
            } => sample_report(
                message_id.as_deref(),
                provider_message_id,
                provider_status,
                error_code.as_deref(),
            )?,
        };
        Ok(SignedRequest {
            method: http::Method::POST,
            url: url.clone(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                (
                    "Authorization".into(),
                    basic_authorization(username, password),
                ),
            ],
            body: body.to_string().into_bytes(),
        })
    }

    fn example_fields(&self) -> Map<String, Value> {
        Map::from_iter([
            ("username".into(), "byosms-example".into()),
            ("password".into(), "example-Passw0rd-not-real".into()),
            ("from".into(), "+4790000000".into()),
            ("platformId".into(), "COMMON_API".into()),
            ("platformPartnerId".into(), "12345".into()),
            ("endpointHost".into(), "wsx.sp247.net".into()),
            ("gateId".into(), "BYOSMS-GATE-1".into()),
        ])
    }

    /// HTTP Basic is a shared credential: a changed body with the same header still verifies.
    fn webhook_auth_covers_payload(&self) -> bool {
        false
    }

    #[cfg(feature = "stand-in")]
    fn stand_in(&self) -> super::stand_in::StandIn {
        stand_in::stand_in()
    }
}

#[cfg(test)]
mod tests;
