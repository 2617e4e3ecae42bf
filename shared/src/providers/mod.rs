//! Provider adapters: one folder per provider (`<provider>/mod.rs` the adapter, `tests.rs` its
//! unit tests, `stand_in.rs` its local imitation) that knows everything about that provider and
//! nothing else. Adding a provider means adding its folder and one line in [`Registry::new`]; the
//! contract suite (`tests/tests/bundle/contract.rs`) and the fuzz target pick it up from
//! [`Registry::all`].

pub mod http;
pub mod infobip;
pub mod linkmobility;
pub mod messagebird;
pub mod messagemedia;
pub mod sinch;
#[cfg(feature = "stand-in")]
pub mod stand_in;
pub mod twilio;
pub mod vonage;

use crate::config::Settings;
use crate::domain::{
    Connection, ConnectionSecrets, Provider, ProviderFields, SendErrorCode, Status,
    ValidationErrors,
};
use crate::webhook::{RouteKind, WebhookReply, WebhookRequest};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Everything an adapter needs to send one message through one connection.
pub struct SendContext<'a> {
    pub http: &'a http::ProviderHttp,
    pub connection: &'a Connection,
    pub secrets: &'a ConnectionSecrets,
    /// Our status route for this connection's org, when a public base URL is known. Adapters that
    /// set a per-message callback add our message id the way their provider allows.
    pub status_callback: Option<&'a Url>,
    /// Our inbound route for this connection's org (for providers that take it per message).
    pub inbound_callback: Option<&'a Url>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Our id (the idempotency key), carried to the provider wherever its API allows.
    pub message_id: String,
    /// E.164 with `+`.
    pub to: String,
    pub body: String,
}

/// The longest body a provider takes, checked before it is called (a longer one fails as
/// `invalid_body` without a request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLimit {
    /// At most this many characters (Unicode scalar values).
    Characters(usize),
    /// At most this many SMS parts, as [`crate::domain::segments`] counts them.
    Parts(u32),
}

/// Twilio's documented 1,600 characters: the limit of a provider that documents none.
pub const DEFAULT_BODY_LIMIT: BodyLimit = BodyLimit::Characters(1600);

/// The provider accepted the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id of the message (of its first part when it gives one per part).
    pub provider_message_id: String,
    /// Every part's id, in order, when the provider gives one per part (Vonage): each part's
    /// reports then find the message, and its status is the aggregate of theirs. Empty when
    /// the message has one id.
    pub part_ids: Vec<String>,
    /// The provider's word for the initial state, when it gives one.
    pub provider_status: Option<String>,
    pub status: Status,
}

/// Whether a failed send may be tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The provider provably did not accept the request (connection refused, 429 "not processed"):
    /// the same request may be sent again.
    NotAccepted,
    /// The request may have been accepted (timeout after it left, 5xx): never re-sent blindly.
    OutcomeUnknown,
    /// Sending again cannot succeed without a change (bad number, bad credentials, opted out).
    Never,
}

/// A classified send failure: our code, a message safe to answer (never a secret, never a
/// provider's whole error body), the provider's own code, and whether it may be sent again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SendError {
    pub code: SendErrorCode,
    pub message: String,
    pub provider_code: Option<String>,
    pub retry: Retry,
    /// How long the provider asked us to wait before trying again (`Retry-After`, a throttle
    /// answer's hint); the pipeline's back-off waits at least this long.
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn new(code: SendErrorCode, message: impl Into<String>, retry: Retry) -> Self {
        SendError {
            code,
            message: message.into(),
            provider_code: None,
            retry,
            retry_after: None,
        }
    }

    /// The connection lacks something validation should have guaranteed.
    pub fn config(message: impl Into<String>) -> Self {
        SendError::new(SendErrorCode::ConfigError, message, Retry::Never)
    }

    pub fn with_provider_code(mut self, code: impl Into<String>) -> Self {
        self.provider_code = Some(code.into());
        self
    }

    pub fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// Classifies a transport error: only a request that provably never left may be retried.
    pub fn from_transport(err: &reqwest::Error) -> Self {
        if err.is_connect() {
            SendError::new(
                SendErrorCode::ProviderUnavailable,
                "could not connect to the provider",
                Retry::NotAccepted,
            )
        } else if err.is_timeout() {
            SendError::new(
                SendErrorCode::OutcomeUnknown,
                "the provider did not answer in time; the message may have been accepted",
                Retry::OutcomeUnknown,
            )
        } else {
            SendError::new(
                SendErrorCode::OutcomeUnknown,
                "the connection to the provider failed mid-request; the message may have been accepted",
                Retry::OutcomeUnknown,
            )
        }
    }
}

/// A `Retry-After` header's wait, in seconds or as an HTTP date.
pub fn retry_after(headers: &::http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(::http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.to_utc();
    (at - Utc::now()).to_std().ok()
}

/// Why a webhook did not authenticate against one connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The request carries no credentials of this provider's kind (401).
    #[error("missing {0}")]
    Missing(&'static str),
    /// Credentials are present but do not verify (403).
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// The whole request could not be read (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The request's body is of a kind this provider never sends (415).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported content type {0}")]
pub struct UnsupportedMediaType(pub String);

impl UnsupportedMediaType {
    /// The refusal of `request`'s media type, named as it came (or `(none)`).
    pub fn of(request: &WebhookRequest) -> Self {
        UnsupportedMediaType(request.media_type().unwrap_or_else(|| "(none)".into()))
    }
}

/// A delivery status report, normalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReport {
    pub provider_message_id: String,
    /// Our id, when the provider echoed it back.
    pub message_id: Option<String>,
    pub provider_status: String,
    pub status: Status,
    pub error_code: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    /// The provider says the recipient opted out (Twilio 21610, MessageBird 103).
    pub opt_out: bool,
    /// The recipient, when the report names it: an opt-out on a report for a message we cannot
    /// find still opts the number out.
    pub recipient: Option<String>,
    /// Identifies this report across provider retries.
    pub dedupe_key: String,
}

/// Which of our messages a reply answers, when the provider says so itself (MessageMedia names
/// the message a reply answers); preferred over "the latest message sent to that number".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyTo {
    /// Our messageId, echoed from the send's metadata.
    MessageId(String),
    /// The provider's id of the message answered.
    ProviderMessageId(String),
}

/// One part of a multipart inbound message that the provider did not join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagePart {
    pub reference: String,
    pub total: u16,
    pub index: u16,
}

/// An inbound message (a reply), normalized. Numbers are E.164 with `+` where international.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundReport {
    pub provider_message_id: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub part: Option<MessagePart>,
    /// The provider's own word on which message this answers.
    pub reply_to: Option<ReplyTo>,
    /// The provider itself flags the message as an opt-out (MessageMedia `OPT_OUT_SMS`).
    pub opt_out: bool,
    pub dedupe_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookItem {
    Status(StatusReport),
    Inbound(InboundReport),
}

/// A request's items; a batch keeps its good items when one is bad.
pub type ParsedItems = Vec<Result<WebhookItem, ParseError>>;

/// The parameters a webhook carries, for the providers that send flat parameters in any of
/// three shapes (Twilio, Vonage): the query of a GET, the form body of a POST, or the top-level
/// scalar fields of a JSON POST (numbers and booleans as their text).
pub fn webhook_params(request: &WebhookRequest) -> Result<Vec<(String, String)>, ParseError> {
    if request.method == ::http::Method::GET {
        return Ok(request.query_pairs());
    }
    if request.is_json() {
        let value: Value = serde_json::from_slice(&request.body)
            .map_err(|e| ParseError(format!("body is not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(ParseError("JSON body must be an object".into()));
        };
        return Ok(map
            .into_iter()
            .filter_map(|(name, value)| match value {
                Value::String(s) => Some((name, s)),
                Value::Number(n) => Some((name, n.to_string())),
                Value::Bool(b) => Some((name, b.to_string())),
                _ => None,
            })
            .collect());
    }
    request
        .form_pairs()
        .ok_or_else(|| ParseError("form body is not valid UTF-8".into()))
}

/// The first value of `name` among webhook parameters.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// What `byosms simulate` asks an adapter to produce.
#[derive(Clone, Debug)]
pub enum SampleEvent {
    Inbound {
        from: String,
        to: String,
        text: String,
    },
    Status {
        /// Our id, carried where the provider would carry it (Twilio: the callback URL's query).
        message_id: Option<String>,
        provider_message_id: String,
        provider_status: String,
        error_code: Option<String>,
    },
}

/// A ready-to-send HTTP request, correctly signed, as the provider would make it.
#[derive(Clone, Debug)]
pub struct SignedRequest {
    pub method: ::http::Method,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[async_trait]
pub trait ProviderAdapter: Send + Sync {
    fn provider(&self) -> Provider;

    /// Checks an admin's provider fields (everything but name, access and enabled) and splits them
    /// into settings and secrets. Every broken rule is reported, naming the field.
    fn validate_connection(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<ProviderFields, ValidationErrors>;

    /// The longest body the provider takes.
    fn body_limit(&self) -> BodyLimit {
        DEFAULT_BODY_LIMIT
    }

    /// Sends one message. Does not retry: the send pipeline decides that from [`SendError::retry`].
    async fn send(
        &self,
        ctx: &SendContext<'_>,
        message: &OutboundMessage,
    ) -> Result<Accepted, SendError>;

    /// Whether the request was made by the provider for this connection. Constant-time wherever a
    /// secret is compared.
    fn authenticate(
        &self,
        request: &WebhookRequest,
        connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<(), AuthError>;

    /// Refuses bodies this provider never sends, before any authentication work.
    fn check_media_type(&self, request: &WebhookRequest) -> Result<(), UnsupportedMediaType>;

    /// Reads an authenticated request of `connection` into items. A payload of the other kind
    /// than the route is returned for what it is.
    fn parse(
        &self,
        request: &WebhookRequest,
        route: RouteKind,
        connection: &Connection,
    ) -> Result<ParsedItems, ParseError>;

    /// The answer the provider expects once the request's items are durably stored.
    fn acknowledge(&self, route: RouteKind, connection: &Connection) -> WebhookReply;

    /// What the admin must set up at the provider, given the org's two webhook URLs (printed by
    /// `connection add`).
    fn setup_guide(&self, message_url: &Url, status_url: &Url) -> String;

    /// A correctly signed request as the provider would send it to `url`, our route for the
    /// event's kind (local testing).
    fn sample_webhook(
        &self,
        event: &SampleEvent,
        url: &Url,
        connection: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<SignedRequest, ParseError>;

    /// A complete, valid connection's provider fields (everything but provider, name, access and
    /// enabled), with obviously fake values: what the contract suite, the fuzz target and the
    /// docs start from.
    fn example_fields(&self) -> Map<String, Value>;

    /// Whether [`ProviderAdapter::authenticate`] refuses a request whose payload (body, or query
    /// when the body is empty) was changed in transit, because the provider signs it. `false`
    /// for providers that authenticate webhooks with a shared credential alone (HTTP Basic), where
    /// only a changed credential can be caught; the contract suite holds each adapter to its word.
    fn webhook_auth_covers_payload(&self) -> bool {
        true
    }

    /// The local imitation of the provider's send API (`byosms sandbox`, the contract suite).
    #[cfg(feature = "stand-in")]
    fn stand_in(&self) -> stand_in::StandIn;
}

/// The adapters of every supported provider, by provider. Each adapter is built once with its
/// deployment settings (`BYOSMS_<PROVIDER>_API_URL` overrides) and may keep state across calls
/// (OAuth tokens).
#[derive(Clone)]
pub struct Registry {
    adapters: HashMap<Provider, Arc<dyn ProviderAdapter>>,
}

impl Registry {
    /// The one place adapters are registered: one line each.
    pub fn new(settings: &Settings) -> Self {
        let api_url = |p: Provider| settings.api_urls.get(&p).cloned();
        let adapters: Vec<Arc<dyn ProviderAdapter>> = vec![
            Arc::new(twilio::Twilio::new(api_url(Provider::Twilio))),
            Arc::new(linkmobility::LinkMobility::new(api_url(
                Provider::Linkmobility,
            ))),
            Arc::new(vonage::Vonage::new(api_url(Provider::Vonage))),
            Arc::new(messagebird::MessageBird::new(api_url(
                Provider::Messagebird,
            ))),
            Arc::new(messagemedia::MessageMedia::new(api_url(
                Provider::Messagemedia,
            ))),
            Arc::new(sinch::Sinch::new(
                api_url(Provider::Sinch),
                settings.sinch_auth_api_url.clone(),
            )),
            Arc::new(infobip::Infobip::new(api_url(Provider::Infobip))),
        ];
        Registry {
            adapters: adapters.into_iter().map(|a| (a.provider(), a)).collect(),
        }
    }

    pub fn get(&self, provider: Provider) -> Option<&dyn ProviderAdapter> {
        self.adapters.get(&provider).map(|a| a.as_ref())
    }

    /// Every registered adapter, in [`Provider::ALL`] order.
    pub fn all(&self) -> impl Iterator<Item = &dyn ProviderAdapter> {
        Provider::ALL.into_iter().filter_map(|p| self.get(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_lists_each_adapter_once_in_provider_order() {
        let registry = Registry::new(&Settings::default());
        let listed: Vec<Provider> = registry.all().map(|a| a.provider()).collect();
        // `Provider`'s order is its declaration order, which is `Provider::ALL`'s.
        assert!(listed.windows(2).all(|w| w[0] < w[1]), "{listed:?}");
        assert!(listed.contains(&Provider::Twilio));
    }

    #[test]
    fn every_example_connection_is_valid_in_a_sandboxed_deployment() {
        let registry = Registry::new(&Settings::sandboxed("http://127.0.0.1:9").unwrap());
        for adapter in registry.all() {
            let fields = adapter.example_fields();
            assert!(
                adapter.validate_connection(&fields).is_ok(),
                "{}: {:?}",
                adapter.provider(),
                adapter.validate_connection(&fields).err()
            );
        }
    }
}
