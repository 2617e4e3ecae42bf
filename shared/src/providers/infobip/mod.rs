//! Infobip SMS: `POST https://{baseUrl}/sms/3/messages` with `Authorization: App <apiKey>`,
//! delivery reports and inbound messages as JSON `results[]` batches, webhooks authenticated with
//! HTTP Basic (the credentials Infobip support sets up for the org). Facts: `providers/infobip.md`
//! of the reference material.

mod reports;
#[cfg(feature = "stand-in")]
mod stand_in;
pub mod statuses;

pub use reports::{format_timestamp, parse_timestamp};

use super::http::{admin_host_rule, error_excerpt, join_path};
use super::{
    Accepted, AuthError, OutboundMessage, ParseError, ParsedItems, ProviderAdapter, Retry,
    SampleEvent, SendContext, SendError, SignedRequest, UnsupportedMediaType,
};
use crate::domain::phone::{self, NumberFormat};
use crate::domain::{
    Connection, ConnectionSecrets, FieldReader, Provider, ProviderFields, SendErrorCode, Status,
    ValidationErrors,
};
use crate::providers::http::{ProviderAnswer, exchange};
use crate::webhook::{RouteKind, WebhookReply, WebhookRequest};
use async_trait::async_trait;
use base64::Engine;
use serde_json::{Map, Value, json};
use statuses::{Group, KnownStatus, StatusFields};
use subtle::ConstantTimeEq;
use url::Url;

/// The send endpoint, relative to the account's base URL.
pub const SEND_PATH: &str = "/sms/3/messages";
/// Infobip's own scheme for API keys: `Authorization: App <apiKey>`.
pub const API_KEY_SCHEME: &str = "App";
/// Infobip's hosts are all under this domain; an admin-typed `baseUrl` must be one of them.
pub const INFOBIP_DOMAIN: &str = "infobip.com";
const MAX_SENDER_DIGITS: usize = 16;
const MAX_ALPHANUMERIC_SENDER: usize = 11;

/// The Infobip adapter; `api_override` (`BYOSMS_INFOBIP_API_URL`, which may carry a path prefix,
/// as the sandbox's `/infobip` does) replaces `https://{baseUrl}` for every connection.
#[derive(Debug, Default)]
pub struct Infobip {
    api_override: Option<Url>,
}

impl Infobip {
    pub fn new(api_override: Option<Url>) -> Self {
        Infobip { api_override }
    }

    /// The send endpoint and the client to call it with: an admin-typed host goes through the
    /// client that connects to public addresses only.
    fn send_endpoint<'a>(
        &self,
        ctx: &'a SendContext<'_>,
    ) -> Result<(String, &'a reqwest::Client), SendError> {
        if let Some(base) = &self.api_override {
            return Ok((join_path(base, SEND_PATH), ctx.http.client()));
        }
        let host = ctx
            .connection
            .setting("baseUrl")
            .ok_or_else(|| SendError::config("connection has no baseUrl"))?;
        let base = Url::parse(&format!("https://{host}"))
            .map_err(|_| SendError::config("connection's baseUrl is not a host name"))?;
        Ok((join_path(&base, SEND_PATH), ctx.http.admin_host_client()))
    }

    fn validate_base_url(&self, input: &str) -> Result<String, String> {
        let host = admin_host_rule(self.api_override.as_ref())(input)?;
        let under_infobip = host == INFOBIP_DOMAIN || host.ends_with(&format!(".{INFOBIP_DOMAIN}"));
        if self.api_override.is_none() && !under_infobip {
            return Err(format!(
                "must be your Infobip base URL, a host under {INFOBIP_DOMAIN} such as xxxxx.api.infobip.com"
            ));
        }
        Ok(host)
    }
}

fn validate_api_key(key: &str) -> Result<String, String> {
    if key.len() >= 4 && key[..4].eq_ignore_ascii_case("app ") {
        return Err("give the key alone, without the App prefix".into());
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be the API key as Infobip shows it: no spaces or line breaks".into());
    }
    if key.len() < 16 {
        return Err("is too short to be an Infobip API key".into());
    }
    Ok(key.to_string())
}

/// The seed: no special characters in the username. `:` would break HTTP Basic itself.
fn validate_webhook_username(user: &str) -> Result<String, String> {
    if user.len() > 64 {
        return Err("must be at most 64 characters long".into());
    }
    if !user
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may contain only letters, digits, dots, underscores and hyphens".into());
    }
    Ok(user.to_string())
}

/// The password is the only thing that authenticates Infobip's webhooks.
fn validate_webhook_password(password: &str) -> Result<String, String> {
    if password.chars().count() < 12 {
        return Err("must be at least 12 characters long".into());
    }
    if password.chars().any(char::is_control) {
        return Err("must not contain control characters or line breaks".into());
    }
    Ok(password.to_string())
}

/// Infobip's `sender`: a number in international format without `+` or `00` (or a short code),
/// or an alphanumeric sender id.
fn validate_sender(from: &str) -> Result<String, String> {
    if from.starts_with('+') || from.starts_with("00") {
        return Err(
            "must be given without + or 00: the number with its country code, digits only (e.g. 41793026700)"
                .into(),
        );
    }
    if from.bytes().all(|b| b.is_ascii_digit()) {
        if from.starts_with('0') {
            return Err("must be the number with its country code, not a national number".into());
        }
        if !(3..=MAX_SENDER_DIGITS).contains(&from.len()) {
            return Err(format!(
                "a numeric sender has 3 to {MAX_SENDER_DIGITS} digits"
            ));
        }
        return Ok(from.to_string());
    }
    let alphanumeric = from.chars().count() <= MAX_ALPHANUMERIC_SENDER
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic());
    if alphanumeric {
        Ok(from.to_string())
    } else {
        Err(format!(
            "an alphanumeric sender id has at most {MAX_ALPHANUMERIC_SENDER} letters, digits or spaces, with at least one letter"
        ))
    }
}

/// Infobip's `to`: international format, digits only.
fn destination(to: &str) -> String {
    phone::format_recipient(to, NumberFormat::Digits).to_string()
}

/// The `/sms/3/messages` body for one message to one destination. Our messageId goes into
/// `destinations[].messageId` (Infobip refuses a repeat: a second guard against double sends,
/// and its id of the message is then ours) and into `webhooks.callbackData` (echoed in reports).
fn send_body(sender: &str, message: &OutboundMessage, status_url: Option<&Url>) -> Value {
    let mut webhooks = json!({
        "contentType": "application/json",
        "callbackData": message.message_id,
    });
    if let Some(url) = status_url {
        webhooks["delivery"] = json!({
            "url": url.as_str(),
            "intermediateReport": true,
            "notify": true,
        });
    }
    json!({
        "messages": [{
            "sender": sender,
            "destinations": [{ "to": destination(&message.to), "messageId": message.message_id }],
            "content": { "text": message.body },
            "webhooks": webhooks,
        }],
        "options": { "includeSmsCountInResponse": true },
    })
}

/// Both error bodies: v3 `{errorCode, description, violations[]}` and the older
/// `{requestError: {serviceException: {messageId, text, validationErrors}}}`.
#[derive(Debug, Default, PartialEq, Eq)]
struct ApiError {
    code: Option<String>,
    description: Option<String>,
    /// The properties the request broke (v3 `violations[].property`, v2 `validationErrors` keys).
    properties: Vec<String>,
}

fn read_api_error(body: &str) -> ApiError {
    let Ok(Value::Object(top)) = serde_json::from_str::<Value>(body) else {
        return ApiError::default();
    };
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    if let Some(exception) = top
        .get("requestError")
        .and_then(|e| e.get("serviceException"))
    {
        let properties = exception
            .get("validationErrors")
            .and_then(Value::as_object)
            .map(|errors| errors.keys().cloned().collect())
            .unwrap_or_default();
        return ApiError {
            code: string(exception.get("messageId")),
            description: string(exception.get("text")),
            properties,
        };
    }
    let properties = top
        .get("violations")
        .and_then(Value::as_array)
        .map(|violations| {
            violations
                .iter()
                .filter_map(|v| string(v.get("property")))
                .collect()
        })
        .unwrap_or_default();
    ApiError {
        code: string(top.get("errorCode")),
        description: string(top.get("description")),
        properties,
    }
}

/// Which of our fields a 400's violated properties point at.
fn bad_request_code(properties: &[String]) -> SendErrorCode {
    let last = |p: &String| p.rsplit(['.', '[']).next().unwrap_or("").to_string();
    let names: Vec<String> = properties.iter().map(last).collect();
    if names.iter().any(|n| n == "to" || n == "destinations]") {
        SendErrorCode::InvalidNumber
    } else if names.iter().any(|n| n == "sender" || n == "from") {
        SendErrorCode::InvalidSender
    } else if names.iter().any(|n| n == "text" || n == "content") {
        SendErrorCode::InvalidBody
    } else {
        SendErrorCode::Rejected
    }
}

/// An HTTP error answer, classified. Only a 429 provably accepted nothing; a 5xx may have come
/// after Infobip took the message.
fn classify_http_error(http_status: u16, body: &str) -> SendError {
    let api = read_api_error(body);
    let text = api
        .description
        .as_deref()
        .map(error_excerpt)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| format!("Infobip answered HTTP {http_status}"));
    use SendErrorCode as C;
    let code = api.code.as_deref();
    let (ours, retry, text) = match (http_status, code) {
        (429, _) | (_, Some("E429" | "TOO_MANY_REQUESTS")) => {
            (C::Throttled, Retry::NotAccepted, text)
        }
        (401, _) | (_, Some("E401" | "UNAUTHORIZED")) => (
            C::AuthFailed,
            Retry::Never,
            format!("{text} (check the apiKey and the baseUrl of the account)"),
        ),
        (403, _) | (_, Some("E403" | "FORBIDDEN")) => (
            C::AuthFailed,
            Retry::Never,
            format!(
                "{text} (the API key needs the sms:message:send, message:send or sms:manage scope)"
            ),
        ),
        (500..=599, _) => (C::OutcomeUnknown, Retry::OutcomeUnknown, text),
        (400, _) => (bad_request_code(&api.properties), Retry::Never, text),
        _ => (C::Rejected, Retry::Never, text),
    };
    let err = SendError::new(ours, text, retry);
    match api.code {
        Some(code) => err.with_provider_code(code),
        None => err.with_provider_code(http_status.to_string()),
    }
}

/// A message the 200 answer says was not taken (`REJECTED_*`, or any final failure group).
fn classify_rejection(status: &StatusFields) -> SendError {
    use SendErrorCode as C;
    let word = status.word();
    let known = status.known().map(|k: KnownStatus| k.name);
    let (code, retry) = match known {
        Some("REJECTED_DESTINATION" | "REJECTED_PREFIX_MISSING" | "MISSING_TO") => {
            (C::InvalidNumber, Retry::Never)
        }
        Some("REJECTED_NOT_ENOUGH_CREDITS" | "REJECTED_PREPAID_PACKAGE_EXPIRED") => {
            (C::InsufficientFunds, Retry::Never)
        }
        Some("REJECTED_SOURCE" | "REJECTED_SENDER") => (C::InvalidSender, Retry::Never),
        Some("REJECTED_MESSAGE_TOO_LONG") => (C::InvalidBody, Retry::Never),
        // Refused, so provably not sent; a second try with the same messageId cannot send twice.
        Some("REJECTED_SYSTEM_ERROR") => (C::ProviderUnavailable, Retry::NotAccepted),
        // Per-number hourly limit: trying again within the invocation cannot help.
        Some("REJECTED_FLOODING_FILTER") => (C::Throttled, Retry::Never),
        _ => (C::Rejected, Retry::Never),
    };
    let description = match known {
        Some("REJECTED_DUPLICATE_MESSAGE_ID") => {
            "Infobip already has a message with this messageId: it was sent before".to_string()
        }
        _ => format!("Infobip refused the message: {}", error_excerpt(&word)),
    };
    SendError::new(code, description, retry).with_provider_code(word)
}

/// Reads a 200 answer: `messages[0]` is our one destination, its status group decides.
fn read_accepted(body: &str) -> Result<Accepted, SendError> {
    let unreadable = || {
        SendError::new(
            SendErrorCode::OutcomeUnknown,
            "Infobip answered 200 but its answer could not be read; the message may have been accepted",
            Retry::OutcomeUnknown,
        )
    };
    let value: Value = serde_json::from_str(body).map_err(|_| unreadable())?;
    let message = value
        .get("messages")
        .and_then(|m| m.get(0))
        .and_then(Value::as_object)
        .ok_or_else(unreadable)?;
    let id = message
        .get("messageId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(unreadable)?;
    let status = message
        .get("status")
        .and_then(Value::as_object)
        .map(reports::status_fields)
        .unwrap_or_default();
    match status.group() {
        Some(Group::Rejected | Group::Undeliverable | Group::Expired) => {
            Err(classify_rejection(&status))
        }
        // PENDING and ACCEPTED are what a send answers; DELIVERED would be early, not wrong. An
        // unknown group in a 200 still means Infobip took the request: never call it failed.
        _ => Ok(Accepted {
            provider_message_id: id.to_string(),
            part_ids: Vec::new(),
            provider_status: Some(status.word()),
            status: Status::Accepted,
        }),
    }
}

/// `Authorization: Basic` credentials, when the header is of that scheme and decodes.
enum BasicCredentials {
    Absent,
    Unreadable,
    Given(Vec<u8>, Vec<u8>),
}

fn basic_credentials(request: &WebhookRequest) -> BasicCredentials {
    let Some(value) = request.header("authorization").map(str::trim) else {
        return BasicCredentials::Absent;
    };
    if value.is_empty() {
        return BasicCredentials::Absent;
    }
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return BasicCredentials::Unreadable;
    };
    if !scheme.eq_ignore_ascii_case("Basic") {
        return BasicCredentials::Unreadable;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return BasicCredentials::Unreadable;
    };
    match decoded.iter().position(|&b| b == b':') {
        Some(colon) => {
            BasicCredentials::Given(decoded[..colon].to_vec(), decoded[colon + 1..].to_vec())
        }
        None => BasicCredentials::Unreadable,
    }
}

/// `Basic base64(user:password)` (RFC 7617), as Infobip presents it.
pub fn basic_authorization(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// What a sample status report carries for a word: Infobip's own status names as they are, our
/// normalized words as the Infobip status that means them, anything else as an unknown status.
fn sample_status(word: &str) -> Value {
    let by_our_word = match word {
        "accepted" | "queued" => statuses::by_name("PENDING_ACCEPTED"),
        "sent" => statuses::by_name("DELIVERED_TO_OPERATOR"),
        "delivered" => statuses::by_name("DELIVERED_TO_HANDSET"),
        "undelivered" => statuses::by_name("UNDELIVERABLE_NOT_DELIVERED"),
        "expired" => statuses::by_name("EXPIRED_EXPIRED"),
        "failed" | "rejected" => statuses::by_name("REJECTED_NETWORK"),
        _ => None,
    };
    match by_our_word.or_else(|| statuses::by_name(word)) {
        Some(known) => {
            let (group_id, group_name) = known.group.wire();
            json!({
                "groupId": group_id, "groupName": group_name,
                "id": known.id, "name": known.name,
                "description": known.name.replace('_', " ").to_lowercase(),
            })
        }
        None => json!({ "groupName": word, "name": word }),
    }
}

fn sample_error(error_code: Option<&str>) -> Value {
    match error_code {
        None => json!({
            "groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR",
            "description": "No Error", "permanent": false,
        }),
        Some(code) => match code.parse::<i64>() {
            Ok(id) => json!({
                "groupId": 1, "groupName": "HANDSET_ERRORS", "id": id,
                "description": format!("error {id}"), "permanent": true,
            }),
            Err(_) => json!({
                "groupId": 1, "groupName": "HANDSET_ERRORS", "name": code,
                "description": code, "permanent": true,
            }),
        },
    }
}

fn sample_body(event: &SampleEvent, connection: &Connection) -> Value {
    let now = format_timestamp(chrono::Utc::now());
    match event {
        SampleEvent::Inbound { from, to, text } => json!({
            "results": [{
                "messageId": uuid::Uuid::new_v4().to_string(),
                "from": destination(from),
                "to": destination(to),
                "text": text,
                "cleanText": text,
                "keyword": "",
                "receivedAt": now,
                "smsCount": 1,
                "price": { "pricePerMessage": 0, "currency": "EUR" },
                "callbackData": null,
            }],
            "messageCount": 1,
            "pendingMessageCount": 0,
        }),
        SampleEvent::Status {
            message_id,
            provider_message_id,
            provider_status,
            error_code,
        } => json!({
            // The recipient is not part of the event: the report leaves `to` out.
            "results": [{
                "bulkId": uuid::Uuid::new_v4().to_string(),
                "messageId": provider_message_id,
                "sender": connection.setting("from").unwrap_or_default(),
                "sentAt": now,
                "doneAt": now,
                "messageCount": 1,
                "price": { "pricePerMessage": 0.01, "currency": "EUR" },
                "status": sample_status(provider_status),
                "error": sample_error(error_code.as_deref()),
                "callbackData": message_id,
            }],
        }),
    }
}

#[async_trait]
impl ProviderAdapter for Infobip {
    fn provider(&self) -> Provider {
        Provider::Infobip
    }

    /// Infobip refuses more than 25 parts as `MESSAGE_TOO_LONG` (infobip.md, status 25).
    fn body_limit(&self) -> super::BodyLimit {
        super::BodyLimit::Parts(25)
    }

    fn validate_connection(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<ProviderFields, ValidationErrors> {
        let mut r = FieldReader::new(fields);
        r.secret("apiKey", validate_api_key);
        r.setting("webhookUsername", validate_webhook_username);
        r.secret("webhookPassword", validate_webhook_password);
        r.setting("baseUrl", |v| self.validate_base_url(v));
        r.setting("from", validate_sender);
        r.send_rate();
        r.finish()
    }

    async fn send(
        &self,
        ctx: &SendContext<'_>,
        message: &OutboundMessage,
    ) -> Result<Accepted, SendError> {
        let sender = ctx
            .connection
            .setting("from")
            .ok_or_else(|| SendError::config("connection has no from"))?;
        let api_key = ctx
            .secrets
            .expose("apiKey")
            .ok_or_else(|| SendError::config("connection secret has no apiKey"))?;
        let (endpoint, client) = self.send_endpoint(ctx)?;
        let body = send_body(sender, message, ctx.status_callback);
        let ProviderAnswer {
            status,
            retry_after: wait,
            body: text,
        } = exchange(
            client
                .post(&endpoint)
                .header(
                    http::header::AUTHORIZATION,
                    format!("{API_KEY_SCHEME} {api_key}"),
                )
                .header(http::header::ACCEPT, "application/json")
                .json(&body),
        )
        .await?;
        if !(200..300).contains(&status) {
            return Err(classify_http_error(status, &text).with_retry_after(wait));
        }
        read_accepted(&text)
    }

    /// HTTP Basic with the connection's `webhookUsername`/`webhookPassword`, compared in
    /// constant time (both halves always compared, so the time says nothing about which failed).
    fn authenticate(
        &self,
        request: &WebhookRequest,
        connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<(), AuthError> {
        const WHAT: &str = "Authorization (HTTP Basic)";
        let (user, password) = match basic_credentials(request) {
            BasicCredentials::Absent => return Err(AuthError::Missing("Authorization header")),
            BasicCredentials::Unreadable => return Err(AuthError::Invalid(WHAT)),
            BasicCredentials::Given(user, password) => (user, password),
        };
        let expected_user = connection.setting("webhookUsername").unwrap_or_default();
        let expected_password = secrets
            .expose("webhookPassword")
            .ok_or(AuthError::Invalid(WHAT))?;
        let user_ok = user.ct_eq(expected_user.as_bytes());
        let password_ok = password.ct_eq(expected_password.as_bytes());
        if bool::from(user_ok & password_ok) && !expected_user.is_empty() {
            Ok(())
        } else {
            Err(AuthError::Invalid(WHAT))
        }
    }

    /// Infobip posts JSON (`MO_JSON_2`, and the `contentType` every send asks for).
    fn check_media_type(&self, request: &WebhookRequest) -> Result<(), UnsupportedMediaType> {
        if request.is_json() {
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
        reports::parse_body(&request.body)
    }

    /// Infobip wants a 200 ("your server returns this code if it accepts the callback").
    fn acknowledge(&self, _route: RouteKind, _connection: &Connection) -> WebhookReply {
        WebhookReply::new(200, "text/plain", "")
    }

    fn setup_guide(&self, message_url: &Url, status_url: &Url) -> String {
        format!(
            "Infobip authenticates its webhooks to us with HTTP Basic, which Infobip support sets \
             up: write to Infobip support and ask them to apply Basic authentication with this \
             connection's webhookUsername and webhookPassword to the webhooks of these URLs. \
             Until they have, every webhook is refused with 401 and nothing is recorded. \
             Replies (two-way): in the inbound configuration of the number you send from \
             (forwarding action HTTP_FORWARD, format MO_JSON_2), forward incoming messages to \
             {message_url}. \
             Delivery reports: every message we send names {status_url} as its delivery URL \
             (webhooks.delivery.url) once BYOSMS_PUBLIC_BASE_URL is set; ask support to make the \
             Basic authentication cover those deliveries too, or set {status_url} as the delivery \
             report URL of a subscription that carries it. \
             The from field is the sender exactly as Infobip shows it, without + or 00; an \
             alphanumeric sender cannot receive replies."
        )
    }

    fn sample_webhook(
        &self,
        event: &SampleEvent,
        url: &Url,
        connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<SignedRequest, ParseError> {
        let user = connection
            .setting("webhookUsername")
            .ok_or_else(|| ParseError("connection has no webhookUsername".into()))?;
        let password = secrets
            .expose("webhookPassword")
            .ok_or_else(|| ParseError("connection secret has no webhookPassword".into()))?;
        let body = sample_body(event, connection);
        Ok(SignedRequest {
            method: http::Method::POST,
            url: url.clone(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Authorization".into(), basic_authorization(user, password)),
            ],
            body: body.to_string().into_bytes(),
        })
    }

    fn example_fields(&self) -> Map<String, Value> {
        Map::from_iter([
            (
                "apiKey".into(),
                "0123456789abcdef0123456789abcdef-01234567-89ab-cdef-0123-456789abcdef".into(),
            ),
            ("webhookUsername".into(), "byosms".into()),
            ("webhookPassword".into(), "correct-horse-battery".into()),
            ("baseUrl".into(), "y7k2pd.api.infobip.com".into()),
            ("from".into(), "41793026700".into()),
        ])
    }

    /// Basic credentials say who sent a request, not what it carried.
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
