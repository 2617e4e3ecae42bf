//! The record of one outbound message: claimed before the provider is called (the idempotency
//! key is `(orgId, messageId)`), completed with the provider's answer, then advanced by status
//! reports.

use super::{Provider, Status};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The tightest carrier field our id must fit (Vonage `client-ref`).
pub const MAX_MESSAGE_ID_LEN: usize = 100;

/// Printable ASCII without spaces, 1 to [`MAX_MESSAGE_ID_LEN`] characters: fits every
/// provider's reference field and survives a URL. Adapters use it to trust an echoed id only
/// when it is one we could have written.
pub fn is_valid_message_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_MESSAGE_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Why a message was not sent, in the send answer's vocabulary (serialized as these
/// snake_case words; the distribution system matches on them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendErrorCode {
    /// The recipient is not a valid number (for the provider or the numbering plan).
    InvalidNumber,
    /// The recipient opted out (STOP, or the provider says so).
    OptedOut,
    /// The connection's sender is refused by the provider.
    InvalidSender,
    /// The provider refused the connection's credentials.
    AuthFailed,
    /// The account has no credit left.
    InsufficientFunds,
    /// The provider asked us to slow down.
    Throttled,
    /// The provider could not be reached, or said it accepted nothing.
    ProviderUnavailable,
    /// The request may have been accepted: never re-sent blindly.
    OutcomeUnknown,
    /// The provider refused the message for another reason.
    Rejected,
    /// The connection is not usable as configured.
    ConfigError,
    /// The body is empty or longer than the provider takes.
    InvalidBody,
    /// The messageId breaks the id rule.
    InvalidMessageId,
    /// Another invocation is sending this messageId right now.
    InProgress,
    /// Our own storage failed; nothing was sent.
    StorageUnavailable,
}

impl SendErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            SendErrorCode::InvalidNumber => "invalid_number",
            SendErrorCode::OptedOut => "opted_out",
            SendErrorCode::InvalidSender => "invalid_sender",
            SendErrorCode::AuthFailed => "auth_failed",
            SendErrorCode::InsufficientFunds => "insufficient_funds",
            SendErrorCode::Throttled => "throttled",
            SendErrorCode::ProviderUnavailable => "provider_unavailable",
            SendErrorCode::OutcomeUnknown => "outcome_unknown",
            SendErrorCode::Rejected => "rejected",
            SendErrorCode::ConfigError => "config_error",
            SendErrorCode::InvalidBody => "invalid_body",
            SendErrorCode::InvalidMessageId => "invalid_message_id",
            SendErrorCode::InProgress => "in_progress",
            SendErrorCode::StorageUnavailable => "storage_unavailable",
        }
    }
}

impl fmt::Display for SendErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    pub code: SendErrorCode,
    pub message: String,
    pub retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
}

/// One part of a message the provider accepted as several, each with its own id and reports
/// (Vonage returns an id per part, LINK Mobility reports `id$n`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartStatus {
    pub provider_message_id: String,
    /// What this part's own reports say; `None` until one arrives.
    pub status: Option<Status>,
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
    /// For a message of several parts, the aggregate of [`MessageRecord::parts`].
    pub status: Option<Status>,
    /// The provider's id of the message (of its first part when it has several).
    pub provider_message_id: Option<String>,
    /// Every part, when the provider gave each its own id; before the send completes, the parts
    /// that reports named by our id (a report can beat our own write).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartStatus>,
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
    /// Every part's id, in order, when the provider gave one per part (else empty).
    pub part_ids: Vec<String>,
    pub error: Option<SendFailure>,
    pub attempts: u32,
    pub at: DateTime<Utc>,
}

impl MessageRecord {
    /// Every provider id that names this message: its own and each part's.
    pub fn provider_ids(&self) -> impl Iterator<Item = &str> {
        self.provider_message_id
            .as_deref()
            .into_iter()
            .chain(self.parts.iter().map(|p| p.provider_message_id.as_str()))
    }

    /// Whether `provider_message_id` is one of this message's ids, or the message has none yet.
    pub fn may_be_named_by(&self, provider_message_id: &str) -> bool {
        self.provider_message_id.is_none()
            || self.provider_ids().any(|id| id == provider_message_id)
    }

    /// Applies a finished send. A status report may already have advanced the record (a DLR can
    /// beat our own write), so the status only moves forward here too, and parts that reports
    /// named before the send completed keep what those reports said.
    pub fn complete(&mut self, done: &SendCompletion) {
        self.send_state = done.send_state;
        self.provider_message_id = done
            .provider_message_id
            .clone()
            .or(self.provider_message_id.take());
        self.error = done.error.clone();
        self.attempts = done.attempts;
        self.updated_at = done.at;
        let early: Vec<PartStatus> = std::mem::take(&mut self.parts);
        let early_status = |id: &str| {
            early
                .iter()
                .find(|p| p.provider_message_id == id)
                .and_then(|p| p.status)
        };
        let initial = done.status;
        if done.part_ids.len() > 1 {
            self.parts = done
                .part_ids
                .iter()
                .map(|id| PartStatus {
                    provider_message_id: id.clone(),
                    status: forward(initial, early_status(id)),
                })
                .collect();
            if let Some(aggregate) = self.parts_status() {
                self.advance(aggregate, done.at);
            }
        } else {
            let reported = self.provider_message_id.as_deref().and_then(early_status);
            if let Some(next) = forward(initial, reported) {
                self.advance(next, done.at);
            }
        }
    }

    /// Applies a status report for `provider_message_id` (the message's id or one part's).
    /// Returns whether the message's status changed.
    pub fn apply_report(
        &mut self,
        provider_message_id: &str,
        status: Status,
        at: DateTime<Utc>,
    ) -> bool {
        // Before the send completes nobody knows the provider's parts; a message we counted as
        // one segment has one, so its report applies at once. Longer ones wait in `parts`.
        let waits_for_parts = self.send_state == SendState::Sending && self.segments > 1;
        if self.parts.len() <= 1 && !waits_for_parts {
            return self.advance(status, at);
        }
        let part = match self
            .parts
            .iter_mut()
            .position(|p| p.provider_message_id == provider_message_id)
        {
            Some(i) => &mut self.parts[i],
            None => {
                self.parts.push(PartStatus {
                    provider_message_id: provider_message_id.to_string(),
                    status: None,
                });
                self.parts.last_mut().expect("just pushed")
            }
        };
        part.status = forward(part.status, Some(status));
        self.updated_at = at;
        // [`MessageRecord::complete`] applies a waiting report.
        if waits_for_parts {
            return false;
        }
        match self.parts_status() {
            Some(aggregate) => self.advance(aggregate, at),
            None => false,
        }
    }

    /// The message's status as its parts make it (see [`Status::of_parts`]).
    fn parts_status(&self) -> Option<Status> {
        let statuses: Vec<Status> = self.parts.iter().filter_map(|p| p.status).collect();
        (!statuses.is_empty() && statuses.len() == self.parts.len())
            .then(|| Status::of_parts(&statuses))
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

/// The further of two statuses under the monotonic rule.
fn forward(current: Option<Status>, next: Option<Status>) -> Option<Status> {
    match (current, next) {
        (None, next) => next.filter(|s| *s != Status::Unknown),
        (Some(c), Some(n)) if c.may_advance_to(n) => Some(n),
        (current, _) => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> MessageRecord {
        let at = Utc::now();
        MessageRecord {
            org_id: "O".into(),
            message_id: "m1".into(),
            connection_id: "c".into(),
            provider: Provider::Vonage,
            user_id: "U".into(),
            to: "+14155550100".into(),
            body: "hi".into(),
            segments: 2,
            encoding: "gsm7".into(),
            send_state: SendState::Sending,
            status: None,
            provider_message_id: None,
            parts: Vec::new(),
            error: None,
            attempts: 0,
            created_at: at,
            updated_at: at,
        }
    }

    fn accepted(ids: &[&str]) -> SendCompletion {
        SendCompletion {
            send_state: SendState::Accepted,
            status: Some(Status::Accepted),
            provider_message_id: ids.first().map(|s| s.to_string()),
            part_ids: if ids.len() > 1 {
                ids.iter().map(|s| s.to_string()).collect()
            } else {
                Vec::new()
            },
            error: None,
            attempts: 1,
            at: Utc::now(),
        }
    }

    #[test]
    fn a_message_of_parts_is_delivered_only_when_every_part_is() {
        let mut m = record();
        m.complete(&accepted(&["p1", "p2", "p3"]));
        assert_eq!(m.status, Some(Status::Accepted));
        assert!(!m.apply_report("p1", Status::Delivered, Utc::now()));
        assert!(!m.apply_report("p2", Status::Sent, Utc::now()));
        assert_eq!(m.status, Some(Status::Accepted), "p3 is least advanced");
        assert!(m.apply_report("p3", Status::Delivered, Utc::now()));
        assert_eq!(m.status, Some(Status::Sent));
        assert!(m.apply_report("p2", Status::Delivered, Utc::now()));
        assert_eq!(m.status, Some(Status::Delivered));
        // A late `sent` for one part changes neither the part nor the message.
        assert!(!m.apply_report("p2", Status::Sent, Utc::now()));
        assert_eq!(m.parts[1].status, Some(Status::Delivered));
    }

    #[test]
    fn a_failed_part_fails_the_message_for_good() {
        let mut m = record();
        m.complete(&accepted(&["p1", "p2"]));
        assert!(m.apply_report("p2", Status::Undelivered, Utc::now()));
        assert_eq!(m.status, Some(Status::Undelivered));
        assert!(!m.apply_report("p1", Status::Delivered, Utc::now()));
        assert_eq!(m.status, Some(Status::Undelivered));
    }

    #[test]
    fn a_report_that_beats_the_completion_is_applied_by_it() {
        let mut m = record();
        assert!(!m.apply_report("p2", Status::Delivered, Utc::now()));
        assert_eq!(m.status, None);
        m.complete(&accepted(&["p1", "p2"]));
        assert_eq!(m.parts[1].status, Some(Status::Delivered));
        assert_eq!(m.status, Some(Status::Accepted));
        assert!(m.apply_report("p1", Status::Delivered, Utc::now()));
        assert_eq!(m.status, Some(Status::Delivered));

        let mut single = record();
        single.segments = 1;
        assert!(single.apply_report("s1", Status::Delivered, Utc::now()));
        single.complete(&accepted(&["s1"]));
        assert_eq!(single.status, Some(Status::Delivered));
        assert!(single.parts.is_empty());
    }

    #[test]
    fn ids_that_name_the_message() {
        let mut m = record();
        assert!(m.may_be_named_by("anything"), "no id known yet");
        m.complete(&accepted(&["p1", "p2"]));
        assert!(m.may_be_named_by("p2"));
        assert!(!m.may_be_named_by("p9"));
        assert_eq!(m.provider_ids().collect::<Vec<_>>(), ["p1", "p1", "p2"]);
    }
}
