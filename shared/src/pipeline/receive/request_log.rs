//! The one log line every webhook request writes: who it was for, what became of it, how long it
//! took. Nothing in it is a secret, a message body or a phone number: error details lose their
//! quoted values (a parser's error may quote what it could not read).

use super::{ReceiveError, Recorded};
use crate::domain::{Connection, Provider};
use crate::telemetry::without_quoted_values;
use crate::webhook::{Route, WebhookReply};
use std::time::Duration;

pub(super) struct RequestLine<'a> {
    org_id: &'a str,
    /// The owner's provider (MessageBird may post on the Twilio route), else the route's.
    provider: &'a str,
    /// `-` when no connection verified the request.
    connection_id: &'a str,
    route: &'static str,
    latency_ms: u64,
}

impl<'a> RequestLine<'a> {
    pub(super) fn new(route: &'a Route, owner: Option<&'a Connection>, took: Duration) -> Self {
        let provider = owner
            .map(|c| c.provider)
            .or_else(|| Provider::from_route_slug(&route.provider_slug))
            .map_or(route.provider_slug.as_str(), |p| p.as_str());
        RequestLine {
            org_id: &route.org_id,
            provider,
            connection_id: owner.map_or("-", |c| c.connection_id.as_str()),
            route: route.kind.as_str(),
            latency_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        }
    }

    pub(super) fn recorded(&self, reply: &WebhookReply, recorded: &Recorded) {
        tracing::info!(
            org_id = self.org_id,
            provider = self.provider,
            connection_id = self.connection_id,
            route = self.route,
            outcome = "recorded",
            status = reply.status,
            latency_ms = self.latency_ms,
            events = recorded.events,
            duplicates = recorded.duplicates,
            bad_items = recorded.bad_items,
            pending_parts = recorded.pending_parts,
            held = recorded.held,
            "webhook request"
        );
    }

    /// A refusal is a warning; a 5xx (our storage, an unreadable secret) is an error.
    pub(super) fn refused(&self, err: &ReceiveError, reply: &WebhookReply) {
        let outcome = match err {
            ReceiveError::Storage(_) | ReceiveError::SecretUnavailable => "failed",
            ReceiveError::Unauthenticated(_) | ReceiveError::Forbidden(_) => "unauthenticated",
            _ => "refused",
        };
        let detail = match err {
            ReceiveError::Storage(source) => source.to_string(),
            other => other.to_string(),
        };
        let error = without_quoted_values(&detail);
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    org_id = self.org_id,
                    provider = self.provider,
                    connection_id = self.connection_id,
                    route = self.route,
                    outcome,
                    status = reply.status,
                    latency_ms = self.latency_ms,
                    error = %error,
                    "webhook request"
                )
            };
        }
        if reply.status >= 500 {
            line!(error);
        } else {
            line!(warn);
        }
    }
}
