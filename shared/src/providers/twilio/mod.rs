//! Twilio Programmable Messaging: the Messages API, `X-Twilio-Signature`, TwiML acknowledgements.
//! Facts and vectors: `providers/twilio.md` of the reference material.

#[cfg(feature = "stand-in")]
mod stand_in;

use super::http::{error_excerpt, join_path};
use super::{
    Accepted, AuthError, InboundReport, OutboundMessage, ParseError, ParsedItems, ProviderAdapter,
    Retry, SampleEvent, SendContext, SendError, SignedRequest, StatusReport, UnsupportedMediaType,
    WebhookItem,
};
use crate::domain::{
    Connection, ConnectionSecrets, FieldReader, Provider, ProviderFields, SendErrorCode, Status,
    ValidationErrors, phone,
};
use crate::providers::http::{ProviderAnswer, exchange};
use crate::providers::{param, webhook_params};
use crate::webhook::{RouteKind, WebhookReply, WebhookRequest, encode_query_value};
use async_trait::async_trait;
use aws_lc_rs::hmac;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

pub const API_BASE: &str = "https://api.twilio.com";
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";
/// The query parameter of our `StatusCallback` URL that carries our message id.
pub const MESSAGE_ID_PARAM: &str = "messageId";
const TWIML_EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;
/// The connection overrides on every URL we give Twilio (the Twilio reference's addendum): Twilio
/// retries a webhook only when its URL asks, and a 5xx from us means "not stored, try again".
/// Up to 5 retries (Twilio's maximum) on a refused or timed-out connection, a read timeout and a
/// 5xx; every retry is deduplicated. Twilio strips the fragment before calling.
pub const RETRY_OVERRIDES: &str = "rc=5&rp=ct,rt,5xx";

/// `url` with [`RETRY_OVERRIDES`] as its fragment: the form of every URL handed to Twilio.
pub fn asking_for_retries(mut url: Url) -> Url {
    url.set_fragment(Some(RETRY_OVERRIDES));
    url
}

/// The Twilio adapter; `api_base` replaces `https://api.twilio.com` (`BYOSMS_TWILIO_API_URL`,
/// which may carry a path prefix, as the sandbox's `/twilio` does).
#[derive(Debug)]
pub struct Twilio {
    api_base: Url,
}

impl Twilio {
    pub fn new(api_base: Option<Url>) -> Self {
        Twilio {
            api_base: api_base
                .unwrap_or_else(|| Url::parse(API_BASE).expect("API_BASE is a valid URL")),
        }
    }

    fn messages_endpoint(&self, account_sid: &str) -> String {
        join_path(
            &self.api_base,
            &format!("/2010-04-01/Accounts/{account_sid}/Messages.json"),
        )
    }
}

impl Default for Twilio {
    fn default() -> Self {
        Twilio::new(None)
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_sid(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| is_hex(rest, 32))
}

/// The sender a connection uses: a Messaging Service or a `From` address.
#[derive(Debug, PartialEq, Eq)]
enum Sender<'a> {
    MessagingService(&'a str),
    From(&'a str),
}

fn sender(from: &str) -> Sender<'_> {
    if is_sid(from, "MG") {
        Sender::MessagingService(from)
    } else {
        Sender::From(from)
    }
}

fn validate_from(from: &str) -> Result<String, String> {
    if is_sid(from, "MG") {
        return Ok(from.to_string());
    }
    let digits = from.strip_prefix('+').unwrap_or(from);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if !from.starts_with('+') && (5..=6).contains(&digits.len()) {
            return Ok(from.to_string()); // a short code
        }
        let number = format!("+{digits}");
        return if phone::is_e164(&number) {
            Ok(number)
        } else {
            Err("must be a phone number with its country code (8 to 15 digits), a short code, an alphanumeric sender id of at most 11 characters, or a Messaging Service id (MG + 32 hex)".into())
        };
    }
    let alphanumeric = from.len() <= 11
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic());
    if alphanumeric {
        Ok(from.to_string())
    } else if from.starts_with("MG") {
        Err("looks like a Messaging Service id but is not MG followed by 32 hex digits".into())
    } else {
        Err("an alphanumeric sender id has at most 11 characters (letters, digits, spaces) with at least one letter".into())
    }
}

/// `base64(HMAC-SHA1(authToken, url + concat(sorted name + value)))`. Repeated names contribute
/// each distinct value once, in sorted order (as twilio-python does).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    SigningKey::new(auth_token).sign(url, &signed_params(params))
}

/// What the parameters add to the signed string: each name and distinct value, sorted by name
/// and then by value (sorting the pairs orders both at once). Built once per request, however
/// many URL forms are then tried.
fn signed_params(params: &[(String, String)]) -> Vec<u8> {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut signed = Vec::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len()).sum());
    for (k, v) in pairs {
        signed.extend_from_slice(k.as_bytes());
        signed.extend_from_slice(v.as_bytes());
    }
    signed
}

/// The auth token's HMAC-SHA1, keyed once (the padded key blocks hashed once) and cloned for
/// each URL form tried.
///
/// It runs on `aws-lc-rs`, the crypto rustls already links, rather than RustCrypto's `hmac` with
/// `sha1` 0.10 (the other providers' HMACs use `hmac` with `sha2`): `sha1` 0.10 has no arm64
/// hardware path, and the SAM template deploys arm64, where AWS-LC picks the ARMv8 SHA-1
/// instructions at run time (as it picks SHA-NI on x86_64). `sha1` 0.11 has that path, but needs
/// `digest` 0.11, while `rsa` and `jsonwebtoken` are still on 0.10: two hash stacks in every
/// binary.
struct SigningKey(hmac::Key);

impl SigningKey {
    fn new(auth_token: &str) -> Self {
        Self(hmac::Key::new(
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            auth_token.as_bytes(),
        ))
    }

    fn sign(&self, url: &str, signed_params: &[u8]) -> String {
        let mut mac = hmac::Context::with_key(&self.0);
        mac.update(url.as_bytes());
        mac.update(signed_params);
        base64::engine::general_purpose::STANDARD.encode(mac.sign())
    }

    /// Whether `header` signs `signed_params` under one of the URL forms Twilio may have used.
    /// The URL as given is what Twilio signs almost always, so the other forms are only built
    /// when it does not match.
    fn matches(&self, header: &str, url: &str, signed_params: &[u8]) -> bool {
        let matches = |form: &str| {
            bool::from(
                self.sign(form, signed_params)
                    .as_bytes()
                    .ct_eq(header.as_bytes()),
            )
        };
        matches(url) || url_variants(url).iter().skip(1).any(|form| matches(form))
    }
}

/// The URL forms Twilio may have signed: as given, without the port, and with the default port;
/// each also with our [`RETRY_OVERRIDES`] fragment, since Twilio does not document whether its
/// signature covers the fragment it strips (the request never carries it).
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = host_variants(url);
    let with_fragment: Vec<String> = variants
        .iter()
        .map(|v| format!("{v}#{RETRY_OVERRIDES}"))
        .collect();
    variants.extend(with_fragment);
    variants
}

fn host_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_string()];
    if let Ok(parsed) = Url::parse(url) {
        let mut without = parsed.clone();
        if without.port().is_some() && without.set_port(None).is_ok() {
            variants.push(without.to_string());
        }
        // `Url` drops a default port it is given, so the `:443`/`:80` form is spliced in by hand.
        if parsed.port().is_none()
            && let (Some(host), Some(default)) = (parsed.host_str(), parsed.port_or_known_default())
        {
            let authority = format!("{host}:{default}");
            let prefix = format!("{}://{}", parsed.scheme(), host);
            if let Some(rest) = url.strip_prefix(&prefix) {
                variants.push(format!("{}://{authority}{rest}", parsed.scheme()));
            }
        }
    }
    variants
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Twilio's `MessageStatus` words, normalized (twilio-oai `message_enum_status`).
pub fn normalize_status(word: &str) -> Status {
    match word {
        "accepted" | "scheduled" => Status::Accepted,
        "queued" | "sending" => Status::Queued,
        "sent" => Status::Sent,
        "delivered" => Status::Delivered,
        "read" => Status::Read,
        "undelivered" | "partially_delivered" => Status::Undelivered,
        "failed" | "canceled" => Status::Failed,
        _ => Status::Unknown,
    }
}

const OPTED_OUT: &str = "21610";

/// Our message id from the `StatusCallback` query, if it is one we could have written.
fn our_message_id(request: &WebhookRequest) -> Option<String> {
    request
        .query_pairs()
        .into_iter()
        .find(|(k, _)| k == MESSAGE_ID_PARAM)
        .map(|(_, v)| v)
        .filter(|v| crate::domain::is_valid_message_id(v))
}

fn parse_status(
    request: &WebhookRequest,
    params: &[(String, String)],
    word: &str,
) -> Result<WebhookItem, ParseError> {
    let sid = param(params, "MessageSid")
        .or_else(|| param(params, "SmsSid"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ParseError("status report has no MessageSid".into()))?;
    let error_code = param(params, "ErrorCode")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok(WebhookItem::Status(StatusReport {
        provider_message_id: sid.to_string(),
        message_id: our_message_id(request),
        provider_status: word.to_string(),
        status: normalize_status(word),
        opt_out: error_code.as_deref() == Some(OPTED_OUT),
        recipient: param(params, "To").map(phone::normalize),
        error_code,
        occurred_at: None, // Twilio status callbacks carry no timestamp
        dedupe_key: format!("status:{sid}:{word}"),
    }))
}

fn parse_inbound(params: &[(String, String)]) -> Result<WebhookItem, ParseError> {
    let required = |name: &str| {
        param(params, name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ParseError(format!("inbound message has no {name}")))
    };
    let sid = param(params, "MessageSid")
        .or_else(|| param(params, "SmsMessageSid"))
        .or_else(|| param(params, "SmsSid"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ParseError("inbound message has no MessageSid".into()))?;
    let from = required("From")?;
    let to = required("To")?;
    let mut text = param(params, "Body").unwrap_or_default().to_string();
    // Media-only replies still reach the survey system, as their URLs.
    let media = param(params, "NumMedia")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    for i in 0..media.min(10) {
        if let Some(url) = param(params, &format!("MediaUrl{i}")) {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(url);
        }
    }
    Ok(WebhookItem::Inbound(InboundReport {
        provider_message_id: sid.to_string(),
        from: phone::normalize(from),
        to: phone::normalize(to),
        text,
        occurred_at: None,
        part: None, // Twilio joins long messages before calling
        reply_to: None,
        opt_out: false,
        dedupe_key: format!("inbound:{sid}"),
    }))
}

#[derive(Deserialize)]
struct MessageCreated {
    sid: String,
    status: Option<String>,
}

/// Both error shapes: legacy `{code, message, status}` and RFC 9457 `{code, detail, title}`.
#[derive(Deserialize, Default)]
struct ApiError {
    code: Option<Value>,
    message: Option<String>,
    detail: Option<String>,
    title: Option<String>,
}

fn classify(http_status: u16, body: &str) -> SendError {
    let api: ApiError = serde_json::from_str(body).unwrap_or_default();
    let code = api.code.as_ref().map(|c| match c {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    // The provider's own words go into our answer only as an excerpt.
    let text = api
        .message
        .or(api.detail)
        .or(api.title)
        .map(|words| error_excerpt(&words))
        .filter(|words| !words.is_empty())
        .unwrap_or_else(|| format!("Twilio answered HTTP {http_status}"));
    use SendErrorCode as C;
    let (ours, retry) = match (http_status, code.as_deref()) {
        (429, _) | (_, Some("20429")) => (C::Throttled, Retry::NotAccepted),
        (_, Some(OPTED_OUT)) => (C::OptedOut, Retry::Never),
        (_, Some("21211" | "21614")) => (C::InvalidNumber, Retry::Never),
        (_, Some("21212" | "21606" | "21703")) => (C::InvalidSender, Retry::Never),
        (401, _) | (_, Some("20003")) => (C::AuthFailed, Retry::Never),
        (503, _) => (C::ProviderUnavailable, Retry::NotAccepted),
        (500..=599, _) => (C::OutcomeUnknown, Retry::OutcomeUnknown),
        _ => (C::Rejected, Retry::Never),
    };
    let err = SendError::new(ours, text, retry);
    match code {
        Some(c) => err.with_provider_code(c),
        None => err,
    }
}

#[async_trait]
impl ProviderAdapter for Twilio {
    fn provider(&self) -> Provider {
        Provider::Twilio
    }

    fn validate_connection(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<ProviderFields, ValidationErrors> {
        let mut r = FieldReader::new(fields);
        r.setting("accountSid", |v| {
            if is_sid(v, "AC") {
                Ok(v.to_string())
            } else {
                Err("must be AC followed by 32 hex digits".into())
            }
        });
        r.secret("authToken", |v| {
            if is_hex(v, 32) {
                Ok(v.to_string())
            } else {
                Err("must be 32 hex digits".into())
            }
        });
        r.setting("from", validate_from);
        r.send_rate();
        r.finish()
    }

    async fn send(
        &self,
        ctx: &SendContext<'_>,
        message: &OutboundMessage,
    ) -> Result<Accepted, SendError> {
        let config_error = |what: &str| SendError::config(what);
        let account_sid = ctx
            .connection
            .setting("accountSid")
            .ok_or_else(|| config_error("connection has no accountSid"))?;
        let from = ctx
            .connection
            .setting("from")
            .ok_or_else(|| config_error("connection has no from"))?;
        let auth_token = ctx
            .secrets
            .expose("authToken")
            .ok_or_else(|| config_error("connection secret has no authToken"))?;
        let endpoint = self.messages_endpoint(account_sid);

        let mut form: Vec<(&str, String)> = vec![("To", message.to.clone())];
        match sender(from) {
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid.to_string())),
            Sender::From(from) => form.push(("From", from.to_string())),
        }
        form.push(("Body", message.body.clone()));
        if let Some(callback) = ctx.status_callback {
            // The query is part of what Twilio signs, exactly as we give it: one parameter.
            let mut url = callback.clone();
            url.set_query(Some(&format!(
                "{MESSAGE_ID_PARAM}={}",
                encode_query_value(&message.message_id)
            )));
            form.push(("StatusCallback", asking_for_retries(url).to_string()));
        }

        let ProviderAnswer {
            status,
            retry_after: wait,
            body,
        } = exchange(
            ctx.http
                .client()
                .post(&endpoint)
                .basic_auth(account_sid, Some(auth_token))
                .header(http::header::ACCEPT, "application/json")
                .form(&form),
        )
        .await?;
        if !(200..300).contains(&status) {
            return Err(classify(status, &body).with_retry_after(wait));
        }
        let created: MessageCreated = serde_json::from_str(&body).map_err(|_| {
            SendError::new(
                SendErrorCode::OutcomeUnknown,
                "Twilio accepted the request but its answer could not be read",
                Retry::OutcomeUnknown,
            )
        })?;
        let status = created
            .status
            .as_deref()
            .map(normalize_status)
            .filter(|s| *s != Status::Unknown)
            .unwrap_or(Status::Accepted);
        Ok(Accepted {
            provider_message_id: created.sid,
            part_ids: Vec::new(),
            provider_status: created.status,
            status,
        })
    }

    fn authenticate(
        &self,
        request: &WebhookRequest,
        connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<(), AuthError> {
        let header = request
            .header(SIGNATURE_HEADER)
            .ok_or(AuthError::Missing("X-Twilio-Signature header"))?;
        let token = secrets
            .expose("authToken")
            .ok_or(AuthError::Invalid("X-Twilio-Signature"))?;
        // Only a form POST signs its parameters; GET and JSON sign the URL alone. The form is
        // parsed once: it is checked for the account below too.
        let form = if request.method == http::Method::POST && !request.is_json() {
            Some(
                request
                    .form_pairs()
                    .ok_or(AuthError::Invalid("X-Twilio-Signature"))?,
            )
        } else {
            None
        };
        let signed = form.as_deref().map(signed_params).unwrap_or_default();
        if !SigningKey::new(token).matches(header, &request.public_url, &signed) {
            return Err(AuthError::Invalid("X-Twilio-Signature"));
        }
        if request.is_json() {
            let claimed = request
                .query_pairs()
                .into_iter()
                .find(|(k, _)| k == "bodySHA256")
                .map(|(_, v)| v)
                .ok_or(AuthError::Invalid("bodySHA256"))?;
            let actual = sha256_hex(&request.body);
            if !bool::from(
                actual
                    .as_bytes()
                    .ct_eq(claimed.to_ascii_lowercase().as_bytes()),
            ) {
                return Err(AuthError::Invalid("bodySHA256"));
            }
        }
        // A valid signature from another account's token cannot happen, but a subaccount or a
        // copied token could sign for the wrong connection: the account must match too.
        let params = match form {
            Some(form) => Ok(form),
            None => webhook_params(request),
        };
        if let Ok(params) = params
            && let Some(account) = param(&params, "AccountSid")
            && Some(account) != connection.setting("accountSid")
        {
            return Err(AuthError::Invalid("AccountSid"));
        }
        Ok(())
    }

    fn check_media_type(&self, request: &WebhookRequest) -> Result<(), UnsupportedMediaType> {
        if request.method == http::Method::GET || request.is_form() || request.is_json() {
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
        let params = webhook_params(request)?;
        if params.is_empty() {
            return Err(ParseError("request carries no parameters".into()));
        }
        // What the payload is, not the route it came in on, decides how it is recorded.
        let item = match param(&params, "MessageStatus").or_else(|| param(&params, "SmsStatus")) {
            Some("received" | "receiving") => parse_inbound(&params)?,
            Some(word) if !word.is_empty() => parse_status(request, &params, word)?,
            _ if param(&params, "Body").is_some() => parse_inbound(&params)?,
            _ => {
                return Err(ParseError(
                    "neither a status report (MessageStatus) nor an inbound message (Body)".into(),
                ));
            }
        };
        Ok(vec![Ok(item)])
    }

    fn acknowledge(&self, _route: RouteKind, _connection: &Connection) -> WebhookReply {
        WebhookReply::new(200, "text/xml", TWIML_EMPTY)
    }

    fn setup_guide(&self, message_url: &Url, status_url: &Url) -> String {
        format!(
            "At Twilio, on the sending number (Phone Numbers > Active numbers > the number > Messaging) \
             or on the Messaging Service (Integration > Incoming messages), set \"A message comes in\" \
             to Webhook, HTTP POST, {message_url} (and the same URL as the fallback URL). \
             Delivery reports need no setup: Twilio takes the status URL per message, and every \
             message we send carries its own StatusCallback, {status_url} with \
             ?{MESSAGE_ID_PARAM}=<our message id> before its #fragment. Keep the #{RETRY_OVERRIDES} \
             fragment of the URLs: it makes Twilio retry when we cannot store a webhook."
        )
    }

    fn sample_webhook(
        &self,
        event: &SampleEvent,
        url: &Url,
        connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<SignedRequest, ParseError> {
        let token = secrets
            .expose("authToken")
            .ok_or_else(|| ParseError("connection secret has no authToken".into()))?;
        let account = connection.setting("accountSid").unwrap_or_default();
        let mut params: Vec<(String, String)> = vec![
            ("AccountSid".into(), account.into()),
            ("ApiVersion".into(), "2010-04-01".into()),
        ];
        match event {
            SampleEvent::Inbound { from, to, text } => {
                let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
                params.extend([
                    ("MessageSid".into(), sid.clone()),
                    ("SmsMessageSid".into(), sid.clone()),
                    ("SmsSid".into(), sid),
                    ("From".into(), from.clone()),
                    ("To".into(), to.clone()),
                    ("Body".into(), text.clone()),
                    ("NumMedia".into(), "0".into()),
                    ("NumSegments".into(), "1".into()),
                    ("SmsStatus".into(), "received".into()),
                ]);
            }
            SampleEvent::Status {
                provider_message_id,
                provider_status,
                error_code,
                ..
            } => {
                params.extend([
                    ("MessageSid".into(), provider_message_id.clone()),
                    ("SmsSid".into(), provider_message_id.clone()),
                    ("MessageStatus".into(), provider_status.clone()),
                    ("SmsStatus".into(), provider_status.clone()),
                ]);
                if let Some(from) = connection.setting("from") {
                    params.push(("From".into(), from.into()));
                }
                if let Some(code) = error_code {
                    params.push(("ErrorCode".into(), code.clone()));
                }
            }
        }
        // A status callback goes to the URL we gave Twilio, our message id in its query.
        let mut url = url.clone();
        if let SampleEvent::Status {
            message_id: Some(id),
            ..
        } = event
        {
            url.set_query(Some(&format!(
                "{MESSAGE_ID_PARAM}={}",
                encode_query_value(id)
            )));
        }
        let sig = signature(token, url.as_str(), &params);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        Ok(SignedRequest {
            method: http::Method::POST,
            url,
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("X-Twilio-Signature".into(), sig),
            ],
            body: body.into_bytes(),
        })
    }

    fn example_fields(&self) -> Map<String, Value> {
        Map::from_iter([
            (
                "accountSid".into(),
                "AC0123456789abcdef0123456789abcdef".into(),
            ),
            (
                "authToken".into(),
                "f0e1d2c3b4a5968778695a4b3c2d1e0f".into(),
            ),
            ("from".into(), "+14155550199".into()),
        ])
    }

    #[cfg(feature = "stand-in")]
    fn stand_in(&self) -> super::stand_in::StandIn {
        stand_in::stand_in()
    }
}

#[cfg(test)]
mod tests;
