//! The record of one outbound message: claimed before the provider is called (the idempotency
//! key is `(orgId, messageId)`), completed with the provider's answer, then advanced by status
//! reports.

use super::{Provider, Status};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where the send itself stands, apart from the delivery status that reports advance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendState {
    /// Claimed; the provider call is in flight (or its process died mid-call).
    Sending,
    /// The provider accepted the message.
    Accepted,
    /// The provider (or our own checks) refused it.
    Failed,
    /// The request may have reached the provider but no answer came back: never re-sent blindly.
    OutcomeUnknown,
}

/// A classified send error, in the vocabulary of the send answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendFailure {
    pub code: String,
    pub message: String,
    pub retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRecord {
    pub org_id: String,
    pub message_id: String,
    pub connection_id: String,
    pub provider: Provider,
    pub user_id: String,
    pub to: String,
    pub body: String,
    pub segments: u32,
    pub encoding: String,
    pub send_state: SendState,
    /// The current delivery status (monotonic); `None` until the provider accepts or refuses.
    pub status: Option<Status>,
    pub provider_message_id: Option<String>,
    pub error: Option<SendFailure>,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a finished provider call writes onto a claimed record.
#[derive(Clone, Debug, PartialEq)]
pub struct SendCompletion {
    pub send_state: SendState,
    pub status: Option<Status>,
    pub provider_message_id: Option<String>,
    pub error: Option<SendFailure>,
    pub attempts: u32,
    pub at: DateTime<Utc>,
}

impl MessageRecord {
    /// Applies a finished send. A status report may already have advanced the record (a DLR can
    /// beat our own write), so the status only moves forward here too.
    pub fn complete(&mut self, done: &SendCompletion) {
        self.send_state = done.send_state;
        self.provider_message_id = done
            .provider_message_id
            .clone()
            .or(self.provider_message_id.take());
        self.error = done.error.clone();
        self.attempts = done.attempts;
        self.updated_at = done.at;
        if let Some(next) = done.status {
            self.advance(next, done.at);
        }
    }

    /// Moves the delivery status forward; returns whether it changed.
    pub fn advance(&mut self, next: Status, at: DateTime<Utc>) -> bool {
        let moves = match self.status {
            None => next != Status::Unknown,
            Some(current) => current.may_advance_to(next),
        };
        if moves {
            self.status = Some(next);
            self.updated_at = at;
        }
        moves
    }
}
