//! Storage ports: one narrow trait per capability, each with an AWS implementation (DynamoDB,
//! Secrets Manager) and an embedded one (one SQLite file) that give the same guarantees.

pub mod aws_http;
pub mod cached_secrets;
pub mod dynamodb;
pub mod secrets_manager;
pub mod sqlite;

use crate::domain::{
    Connection, ConnectionSecrets, Event, MessageRecord, SendCompletion, Status, StatusEvent,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The store could not do its work. Never carries a secret; its message may reach logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn unavailable(err: impl std::fmt::Display) -> Self {
        StoreError::Unavailable(err.to_string())
    }
    pub fn corrupt(err: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(err.to_string())
    }
}

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError>;
    async fn get_connection(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<Option<Connection>, StoreError>;
    async fn list_connections(&self, org_id: &str) -> Result<Vec<Connection>, StoreError>;
    /// Returns whether the connection existed.
    async fn delete_connection(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn put_secrets(
        &self,
        org_id: &str,
        connection_id: &str,
        secrets: &ConnectionSecrets,
    ) -> Result<(), StoreError>;
    async fn get_secrets(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<Option<ConnectionSecrets>, StoreError>;
    async fn delete_secrets(&self, org_id: &str, connection_id: &str) -> Result<(), StoreError>;

    /// The secrets as stored now, past any cache (a webhook failed to verify with a cached one).
    async fn get_fresh_secrets(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<Option<ConnectionSecrets>, StoreError> {
        self.get_secrets(org_id, connection_id).await
    }
}

/// A message record as one read found it, with the store's version of it. A write made from
/// the read lands only when nobody wrote the record since (else the store reads it again), so
/// the caller that just read a record need not read it a second time to change it. Only a store
/// makes one: a caller cannot claim a version it did not read.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadMessage {
    pub record: MessageRecord,
    pub(crate) version: u64,
}

impl ReadMessage {
    /// For a store that reads again under its write lock and ignores the version.
    pub(crate) fn unversioned(record: MessageRecord) -> Self {
        Self { record, version: 0 }
    }
}

/// The outcome of claiming a message id for sending.
#[derive(Debug)]
pub enum Claim {
    /// This caller owns the send; here is the record as claimed, for completing it.
    Claimed(Box<ReadMessage>),
    /// The message id was claimed before; here is its record as it stands.
    Exists(Box<MessageRecord>),
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Inserts the record unless `(orgId, messageId)` exists: exactly one of any number of racing
    /// callers gets [`Claim::Claimed`].
    async fn claim_message(&self, record: &MessageRecord) -> Result<Claim, StoreError>;

    /// Writes a finished send onto a claimed record (status only moves forward) and indexes
    /// every provider id it names (the message's and each part's), in one atomic write: a
    /// failure leaves the claim as it was, never a record without its index. `claimed` is the
    /// record as [`Claim::Claimed`] gave it (or as read since): the write is made from it, so
    /// the send's completion needs no read first, and where the record changed since (a report
    /// that beat the completion) the store reads it again and completes that. Only the caller
    /// that claimed the message completes it. Returns the record as stored.
    async fn complete_send(
        &self,
        claimed: &ReadMessage,
        done: &SendCompletion,
    ) -> Result<MessageRecord, StoreError>;

    /// Gives a claim back when nothing was sent (a store failure between the claim and the
    /// provider call): removes the record only while it is still `sending` with no attempt.
    async fn release_claim(&self, org_id: &str, message_id: &str) -> Result<(), StoreError>;

    /// The message with our id, as read now (for changing it: see [`ReadMessage`]).
    async fn read_message(
        &self,
        org_id: &str,
        message_id: &str,
    ) -> Result<Option<ReadMessage>, StoreError>;

    async fn get_message(
        &self,
        org_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        Ok(self
            .read_message(org_id, message_id)
            .await?
            .map(|read| read.record))
    }

    /// The message that `provider_message_id` (its own id or one part's) names on this
    /// connection.
    async fn find_by_provider_message_id(
        &self,
        org_id: &str,
        connection_id: &str,
        provider_message_id: &str,
    ) -> Result<Option<ReadMessage>, StoreError>;

    /// Applies a status report for `provider_message_id` (the message's id or one part's) to
    /// the message as `message` read it, under the monotonic rule
    /// ([`MessageRecord::apply_report`]); returns whether the message's status changed. Where
    /// the record was written since the read, it is read again and the report applied to that
    /// (the rule does not depend on the order reports arrive in). On return `message` holds the
    /// record as stored. A message removed since the read changes nothing.
    async fn advance_status(
        &self,
        message: &mut ReadMessage,
        provider_message_id: &str,
        status: Status,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records an event unless one with the same `dedupe_key` was recorded for the org; returns
    /// whether it was new.
    async fn record_event(&self, event: &Event, dedupe_key: &str) -> Result<bool, StoreError>;

    /// A status report about `message`, whole: its status step (as [`Self::advance_status`]
    /// takes it, for the event's provider id and status, at its `received_at`) and its event
    /// (as [`Self::record_event`] records it, once per `dedupe_key`), in one atomic write: a
    /// failure leaves neither, so a provider's retry finds nothing half done. A duplicate still
    /// takes its step (the step is idempotent), as the two calls one after the other would. On
    /// return `message` holds the record as stored. Returns whether the event was new.
    async fn record_status_event(
        &self,
        message: &mut ReadMessage,
        event: &StatusEvent,
        dedupe_key: &str,
    ) -> Result<bool, StoreError>;

    /// The org's events, oldest first.
    async fn list_events(&self, org_id: &str, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// The id of the latest accepted message sent to `number` through the connection.
    async fn latest_message_to(
        &self,
        org_id: &str,
        connection_id: &str,
        number: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Records an opt-out (or opt-in) of `number` that happened at `at` (when the provider says
    /// the reply was sent, else when we received it). A change older than the one recorded is
    /// ignored: a retried old START never re-opens a number a newer STOP closed.
    async fn set_opt_out(
        &self,
        org_id: &str,
        number: &str,
        opted_out: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    async fn is_opted_out(&self, org_id: &str, number: &str) -> Result<bool, StoreError>;

    /// Keeps one part of a multipart inbound message; once every part of its group is in,
    /// returns them joined. The parts stay stored until [`MessageStore::forget_inbound_parts`]
    /// (called once the joined reply's event is stored), so a failure in between loses nothing:
    /// the provider's retry joins again.
    async fn add_inbound_part(&self, part: &InboundPart)
    -> Result<Option<JoinedReply>, StoreError>;

    /// Removes the joined parts (by their provider ids) of `part`'s group.
    async fn forget_inbound_parts(
        &self,
        part: &InboundPart,
        joined: &JoinedReply,
    ) -> Result<(), StoreError>;

    /// Keeps aside a status report that no message of its connection names (yet), until
    /// [`HELD_REPORT_LIFETIME`] after it was received; returns whether it was new (a retried
    /// report is held once). Expired reports are gone for good.
    async fn hold_report(&self, held: &HeldReport) -> Result<bool, StoreError>;

    /// The unexpired reports held for `provider_message_id` on the connection.
    async fn held_reports(
        &self,
        org_id: &str,
        connection_id: &str,
        provider_message_id: &str,
    ) -> Result<Vec<HeldReport>, StoreError>;

    /// Removes a held report (once its event is recorded).
    async fn forget_held_report(&self, held: &HeldReport) -> Result<(), StoreError>;
}

/// A status report kept aside: it names a provider id that no message of its connection has,
/// either because the send's own write has not landed yet, or because the message was never ours
/// (an account-wide webhook shared with other systems). Never an event until a message claims it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldReport {
    /// The event the report becomes, still without our `messageId`.
    pub event: StatusEvent,
    /// The report's dedupe key, scoped to its connection (as events are).
    pub dedupe_key: String,
}

impl HeldReport {
    /// When the report is forgotten: a send's write lands within seconds, so a report unclaimed
    /// after this long is for a message we never sent.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.event.received_at + HELD_REPORT_LIFETIME
    }
}

/// How long a held report waits for its message (see [`HeldReport::expires_at`]).
pub const HELD_REPORT_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Applies every report held for one of the message's provider ids: its status step and its
/// event (now naming the message) in one write, then forgets it. Each step is idempotent (monotonic status,
/// deduped event), so two callers racing (the send's completion and a report's second look)
/// record one event; a failure midway leaves the report held for the next caller. Returns the
/// events recorded.
pub async fn release_held_reports(
    store: &dyn MessageStore,
    message: &ReadMessage,
) -> Result<usize, StoreError> {
    let mut message = message.clone();
    let (org_id, connection_id, message_id) = (
        message.record.org_id.clone(),
        message.record.connection_id.clone(),
        message.record.message_id.clone(),
    );
    let provider_ids: Vec<String> = message.record.provider_ids().map(String::from).collect();
    let mut recorded = 0;
    for provider_message_id in &provider_ids {
        let held = store
            .held_reports(&org_id, &connection_id, provider_message_id)
            .await?;
        for report in held {
            let claimed = StatusEvent {
                message_id: Some(message_id.clone()),
                ..report.event.clone()
            };
            if store
                .record_status_event(&mut message, &claimed, &report.dedupe_key)
                .await?
            {
                recorded += 1;
            }
            store.forget_held_report(&report).await?;
        }
    }
    Ok(recorded)
}

/// [`release_held_reports`] after a completed send, where a failure must not fail the send (the
/// provider has the message): it is logged, and the reports stay held for a later look.
pub(crate) async fn release_after_send(store: &dyn MessageStore, message: &ReadMessage) {
    if let Err(err) = release_held_reports(store, message).await {
        tracing::warn!(
            message_id = %message.record.message_id,
            error = %err,
            "held status reports not applied yet"
        );
    }
}

/// One part of a multipart reply, grouped by connection, sender and the provider's reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundPart {
    pub org_id: String,
    pub connection_id: String,
    pub from: String,
    pub reference: String,
    pub total: u16,
    pub index: u16,
    /// The provider's id of this part: what tells two messages that reuse a reference apart.
    pub provider_message_id: String,
    pub text: String,
    pub received_at: DateTime<Utc>,
}

/// Every part of a multipart reply, joined in index order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedReply {
    pub text: String,
    /// The joined parts' provider ids, in index order.
    pub part_ids: Vec<String>,
}

impl JoinedReply {
    /// Identifies the joined reply by its parts: the same parts joined twice (racing deliveries
    /// of the last part) give the same key, a later message reusing the reference another.
    pub fn dedupe_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut ids = self.part_ids.clone();
        ids.sort();
        let digest = Sha256::digest(ids.join("\n").as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("inbound-joined:{hex}")
    }
}

/// How long a webhook's dedupe marker lives: far past any provider's retries (days at most), so
/// that markers do not pile up for ever.
pub(crate) const DEDUPE_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// How long a part of a multipart reply waits for the rest: older parts are gone (their message
/// will not complete), so they cannot be joined with the parts of a later message.
pub(crate) const INBOUND_PART_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::days(2);

/// A stored part of a multipart reply, as a join reads it back.
pub(crate) struct StoredPart {
    pub total: u16,
    pub index: u16,
    pub provider_message_id: String,
    pub text: String,
    pub received_at_micros: i64,
}

/// The rule both stores join by: once every index `1..=total` has a part of that `total`, the
/// reply made of the most recently received part of each index (a later message reusing the
/// reference outranks what an earlier one left behind; equal times pick the greater provider id,
/// so every store picks alike).
pub(crate) fn join_parts(
    total: u16,
    parts: impl IntoIterator<Item = StoredPart>,
) -> Option<JoinedReply> {
    let mut chosen = std::collections::BTreeMap::<u16, StoredPart>::new();
    for part in parts {
        if part.total != total || part.index == 0 || part.index > total {
            continue;
        }
        let newer = |current: &StoredPart| {
            (part.received_at_micros, &part.provider_message_id)
                > (current.received_at_micros, &current.provider_message_id)
        };
        if chosen.get(&part.index).is_none_or(newer) {
            chosen.insert(part.index, part);
        }
    }
    if total == 0 || chosen.len() != usize::from(total) {
        return None;
    }
    // A BTreeMap iterates in key order: the parts come out in index order.
    let (text, part_ids) = chosen
        .into_values()
        .map(|p| (p.text, p.provider_message_id))
        .unzip::<_, _, Vec<_>, Vec<_>>();
    Some(JoinedReply {
        text: text.concat(),
        part_ids,
    })
}

/// Every store a pipeline needs, behind its port.
#[derive(Clone)]
pub struct Stores {
    pub connections: std::sync::Arc<dyn ConnectionStore>,
    pub secrets: std::sync::Arc<dyn SecretStore>,
    pub messages: std::sync::Arc<dyn MessageStore>,
}

impl Stores {
    /// All three ports on one embedded SQLite file.
    pub fn embedded(store: sqlite::SqliteStore) -> Self {
        let store = std::sync::Arc::new(store);
        Stores {
            connections: store.clone(),
            secrets: store.clone(),
            messages: store,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(total: u16, index: u16, id: &str, text: &str, at: i64) -> StoredPart {
        StoredPart {
            total,
            index,
            provider_message_id: id.into(),
            text: text.into(),
            received_at_micros: at,
        }
    }

    #[test]
    fn joins_the_latest_part_of_each_index_in_index_order() {
        let parts = vec![
            stored(3, 3, "c", "three", 5),
            stored(3, 1, "a-old", "old ", 1),
            stored(3, 1, "a", "one ", 2),
            stored(3, 2, "b", "two ", 3),
            stored(2, 2, "x", "other total", 9),
            stored(3, 4, "y", "out of range", 9),
        ];
        let joined = join_parts(3, parts).unwrap();
        assert_eq!(joined.text, "one two three");
        assert_eq!(joined.part_ids, ["a", "b", "c"]);
    }

    #[test]
    fn waits_for_every_index() {
        assert_eq!(join_parts(2, vec![stored(2, 2, "b", "two", 1)]), None);
        assert_eq!(join_parts(0, Vec::new()), None);
    }

    #[test]
    fn equal_times_pick_the_greater_provider_id() {
        let parts = vec![stored(1, 1, "b", "B", 1), stored(1, 1, "a", "A", 1)];
        assert_eq!(join_parts(1, parts).unwrap().part_ids, ["b"]);
    }
}
