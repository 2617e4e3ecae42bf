//! Storage ports: one narrow trait per capability, each with an AWS implementation (DynamoDB,
//! Secrets Manager) and an embedded one (one SQLite file) that give the same guarantees.

pub mod cached_secrets;
pub mod dynamodb;
pub mod secrets_manager;
pub mod sqlite;

use crate::domain::{
    Connection, ConnectionSecrets, Event, MessageRecord, Provider, SendCompletion, Status,
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

/// The outcome of claiming a message id for sending.
#[derive(Debug)]
pub enum Claim {
    /// This caller owns the send.
    Claimed,
    /// The message id was claimed before; here is its record as it stands.
    Exists(Box<MessageRecord>),
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Inserts the record unless `(orgId, messageId)` exists: exactly one of any number of racing
    /// callers gets [`Claim::Claimed`].
    async fn claim_message(&self, record: &MessageRecord) -> Result<Claim, StoreError>;

    /// Writes a finished send onto a claimed record (status only moves forward) and indexes the
    /// provider's message id. Returns the record as stored.
    async fn complete_send(
        &self,
        org_id: &str,
        message_id: &str,
        done: &SendCompletion,
    ) -> Result<MessageRecord, StoreError>;

    async fn get_message(
        &self,
        org_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError>;

    async fn find_by_provider_message_id(
        &self,
        org_id: &str,
        provider: Provider,
        provider_message_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError>;

    /// Moves a message's status forward under the monotonic rule; returns whether it changed.
    /// Unknown message ids change nothing.
    async fn advance_status(
        &self,
        org_id: &str,
        message_id: &str,
        status: Status,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records an event unless one with the same `dedupe_key` was recorded for the org; returns
    /// whether it was new.
    async fn record_event(&self, event: &Event, dedupe_key: &str) -> Result<bool, StoreError>;

    /// The org's events, oldest first.
    async fn list_events(&self, org_id: &str, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// The id of the latest accepted message sent to `number` through the connection.
    async fn latest_message_to(
        &self,
        org_id: &str,
        connection_id: &str,
        number: &str,
    ) -> Result<Option<String>, StoreError>;

    async fn set_opt_out(
        &self,
        org_id: &str,
        number: &str,
        opted_out: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    async fn is_opted_out(&self, org_id: &str, number: &str) -> Result<bool, StoreError>;

    /// Keeps one part of a multipart inbound message; once every part of `reference` is in,
    /// returns the joined text (once).
    async fn add_inbound_part(&self, part: &InboundPart) -> Result<Option<String>, StoreError>;
}

/// One part of a multipart reply, keyed by connection, sender and the provider's reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundPart {
    pub org_id: String,
    pub connection_id: String,
    pub from: String,
    pub reference: String,
    pub total: u16,
    pub index: u16,
    pub text: String,
    pub received_at: DateTime<Utc>,
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
