//! Normalized delivery statuses and the rule that keeps a message's status monotonic.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `accepted < queued < sent < delivered < read`; `undelivered` and `failed` are final failures;
/// `unknown` records a provider word nobody has mapped yet and never changes a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Accepted,
    Queued,
    Sent,
    Delivered,
    Read,
    Undelivered,
    Failed,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Queued => "queued",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
            Status::Undelivered => "undelivered",
            Status::Failed => "failed",
            Status::Unknown => "unknown",
        }
    }

    pub fn parse(word: &str) -> Option<Status> {
        [
            Status::Accepted,
            Status::Queued,
            Status::Sent,
            Status::Delivered,
            Status::Read,
            Status::Undelivered,
            Status::Failed,
            Status::Unknown,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Delivered | Status::Read | Status::Undelivered | Status::Failed
        )
    }

    fn progress(self) -> u8 {
        match self {
            Status::Unknown => 0,
            Status::Accepted => 1,
            Status::Queued => 2,
            Status::Sent => 3,
            Status::Delivered | Status::Undelivered | Status::Failed => 4,
            Status::Read => 5,
        }
    }

    /// Whether a message whose current status is `self` moves to `next`. Statuses never move
    /// backwards, a final status is sticky (the only step after `delivered` is `read`), and
    /// `unknown` changes nothing.
    pub fn may_advance_to(self, next: Status) -> bool {
        match (self, next) {
            (_, Status::Unknown) => false,
            (Status::Unknown, _) => true,
            (Status::Delivered, Status::Read) => true,
            (current, _) if current.is_final() => false,
            (current, next) => next.progress() > current.progress(),
        }
    }
}

impl Status {
    /// A message's status from its parts' (every part has one): a final failure of any part is
    /// the message's (`failed` before `undelivered`); delivered (or read) only when every part
    /// is; otherwise the least advanced part's.
    pub fn of_parts(parts: &[Status]) -> Status {
        if parts.contains(&Status::Failed) {
            Status::Failed
        } else if parts.contains(&Status::Undelivered) {
            Status::Undelivered
        } else {
            parts
                .iter()
                .copied()
                .filter(|s| *s != Status::Unknown)
                .min_by_key(|s| s.progress())
                .unwrap_or(Status::Unknown)
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;

    #[test]
    fn moves_forward_only() {
        assert!(Accepted.may_advance_to(Queued));
        assert!(Queued.may_advance_to(Delivered));
        assert!(Sent.may_advance_to(Undelivered));
        assert!(!Sent.may_advance_to(Queued));
        assert!(!Sent.may_advance_to(Sent));
        assert!(Accepted.may_advance_to(Failed));
    }

    #[test]
    fn finals_are_sticky() {
        assert!(!Delivered.may_advance_to(Sent));
        assert!(!Delivered.may_advance_to(Failed));
        assert!(!Delivered.may_advance_to(Undelivered));
        assert!(Delivered.may_advance_to(Read));
        assert!(!Failed.may_advance_to(Delivered));
        assert!(!Undelivered.may_advance_to(Delivered));
        assert!(!Read.may_advance_to(Delivered));
    }

    #[test]
    fn unknown_changes_nothing() {
        for s in [
            Accepted,
            Queued,
            Sent,
            Delivered,
            Read,
            Undelivered,
            Failed,
            Unknown,
        ] {
            assert!(!s.may_advance_to(Unknown));
        }
        assert!(Unknown.may_advance_to(Sent));
    }

    #[test]
    fn parts_make_the_message() {
        use super::Status;
        assert_eq!(Status::of_parts(&[Delivered, Delivered]), Delivered);
        assert_eq!(Status::of_parts(&[Delivered, Read]), Delivered);
        assert_eq!(Status::of_parts(&[Read, Read]), Read);
        assert_eq!(Status::of_parts(&[Delivered, Sent, Queued]), Queued);
        assert_eq!(Status::of_parts(&[Delivered, Undelivered]), Undelivered);
        assert_eq!(Status::of_parts(&[Undelivered, Failed, Sent]), Failed);
        assert_eq!(Status::of_parts(&[Sent, Unknown]), Sent);
    }

    #[test]
    fn words_round_trip() {
        for s in [
            Accepted,
            Queued,
            Sent,
            Delivered,
            Read,
            Undelivered,
            Failed,
            Unknown,
        ] {
            assert_eq!(super::Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(super::Status::parse("DELIVERED"), None);
    }
}
