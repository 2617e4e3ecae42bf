//! DynamoDB: a connections table (`orgId`, `connectionId`) and one messages table (`pk`, `sk`,
//! TTL on `expiresAt`, with a stream) that holds, per org (`pk = ORG#{orgId}`):
//!
//! | `sk` | item |
//! |---|---|
//! | `MSG#{messageId}` | message record, with a `version` for optimistic updates |
//! | `PMID#{connectionId}#{providerMessageId}` | each provider id of a message (its own and every part's) → our `messageId` |
//! | `EVT#{receivedAt}#{eventId}` | an event (what the distribution system reads off the stream) |
//! | `DEDUPE#{key}` | a webhook's dedupe marker, expiring after 30 days |
//! | `HELD#{connectionId}#{providerMessageId}#{dedupeKey}` | a status report no message names yet (`kind = held`, the report as JSON in `doc`); `expiresAt` 24 hours after it was received |
//! | `LAST#{connectionId}#{number}` | the latest accepted message to a number by `createdAtMicros` (reply linking) |
//! | `OPTOUT#{number}` | the number's latest opt-out change; `atMicros` is when it happened |
//! | `PART#{connectionId}#{from}#{reference}#{index:05}#{providerMessageId}` | a part of a multipart reply until joined and forgotten; `expiresAt` 2 days after it was received |
//!
//! In `PART#` and `HELD#` keys `%` and `#` inside the values are percent-escaped, so no value passes for a
//! separator. Items of older releases that carry no `providerMessageId` (`PART#…`) or that
//! nothing reads any more (`JOINED#…`) expire on their own.
//!
//! Conditional writes do the claiming: send idempotency, webhook dedupe, monotonic status. A
//! completed send writes its record, its `PMID#` items and `LAST#` in one transaction.

use super::{
    Claim, ConnectionStore, DEDUPE_LIFETIME, HeldReport, INBOUND_PART_LIFETIME, InboundPart,
    JoinedReply, MessageStore, ReadMessage, StoreError, StoredPart, join_parts,
};
use crate::domain::{
    Connection, Event, MessageRecord, SendCompletion, SendState, Status, StatusEvent,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification,
    TransactWriteItem,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// The most items one `TransactWriteItems` takes.
const MAX_TRANSACTION_ITEMS: usize = 100;
const CONDITION_FAILED: &str = "ConditionalCheckFailed";
/// Another transaction or write held one of the items: a race, tried again like a lost condition.
const TRANSACTION_CONFLICT: &str = "TransactionConflict";
/// Optimistic updates that lose a race this many times in a row give up (storage error).
const MAX_UPDATE_RACES: usize = 16;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    connections_table: String,
    messages_table: String,
}

fn unavailable<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(DisplayErrorContext(err).to_string())
}

/// A conditional write's outcome: `Ok(true)` written, `Ok(false)` refused by its condition (an
/// answer, not a failure: the claim was taken, the change was older), `Err` anything else.
fn conditional<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err)
            if err.as_service_error().and_then(|e| e.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(err) => Err(unavailable(err)),
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn org_pk(org_id: &str) -> AttributeValue {
    s(format!("ORG#{org_id}"))
}

fn key(org_id: &str, sk: String) -> Item {
    HashMap::from([
        ("pk".to_string(), org_pk(org_id)),
        ("sk".to_string(), s(sk)),
    ])
}

fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(StoreError::corrupt)
}

fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(StoreError::corrupt)
}

fn string_attr(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn number_attr<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// A value inside a sort key, with `%` and `#` escaped so that it cannot pass for a separator.
fn key_part(value: &str) -> String {
    value.replace('%', "%25").replace('#', "%23")
}

/// The sort key prefix of the parts of `part`'s group.
fn part_group(part: &InboundPart) -> String {
    format!(
        "PART#{}#{}#{}#",
        key_part(&part.connection_id),
        key_part(&part.from),
        key_part(&part.reference)
    )
}

fn part_sk(group: &str, index: u16, provider_message_id: &str) -> String {
    format!("{group}{index:05}#{}", key_part(provider_message_id))
}

/// The sort key prefix of the reports held for a provider id of a connection.
fn held_prefix(connection_id: &str, provider_message_id: &str) -> String {
    format!(
        "HELD#{}#{}#",
        key_part(connection_id),
        key_part(provider_message_id)
    )
}

fn held_key(held: &HeldReport) -> Item {
    let event = &held.event;
    key(
        &event.org_id,
        format!(
            "{}{}",
            held_prefix(&event.connection_id, &event.provider_message_id),
            key_part(&held.dedupe_key)
        ),
    )
}

/// A stored part as the join reads it; `None` for one of an older release (no provider id) or
/// one past its `expiresAt` that TTL has not deleted yet (it may lag by days).
fn stored_part(item: &Item, now: i64) -> Option<StoredPart> {
    let expires_at: i64 = number_attr(item, "expiresAt")?;
    if expires_at <= now {
        return None;
    }
    Some(StoredPart {
        total: number_attr(item, "total")?,
        index: number_attr(item, "index")?,
        provider_message_id: string_attr(item, "providerMessageId")?,
        text: string_attr(item, "text")?,
        received_at_micros: number_attr(item, "receivedAtMicros")?,
    })
}

/// The cancellation reason code of each item of a cancelled transaction, in request order
/// (`"None"` for an item that was fine); empty for any other failure.
fn cancellation_codes<R>(err: &SdkError<TransactWriteItemsError, R>) -> Vec<&str> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None"))
            .collect(),
        _ => Vec::new(),
    }
}

/// A message record as stored: the record, its keys and its version.
#[derive(Serialize, Deserialize)]
struct MessageItem {
    pk: String,
    sk: String,
    kind: String,
    version: u64,
    #[serde(flatten)]
    record: MessageRecord,
}

impl MessageItem {
    fn new(record: MessageRecord, version: u64) -> Self {
        Self {
            pk: format!("ORG#{}", record.org_id),
            sk: format!("MSG#{}", record.message_id),
            kind: "message".into(),
            version,
            record,
        }
    }
}

impl From<MessageItem> for ReadMessage {
    fn from(item: MessageItem) -> Self {
        ReadMessage {
            record: item.record,
            version: item.version,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct EventItem {
    pk: String,
    sk: String,
    kind: String,
    #[serde(flatten)]
    event: Event,
}

/// Creates the two tables as `template.yaml` defines them (for emulators and development
/// accounts; deployments get them from the template), and waits until they are active.
pub async fn create_tables(
    client: &Client,
    connections_table: &str,
    messages_table: &str,
) -> Result<(), StoreError> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(StoreError::corrupt)
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(StoreError::corrupt)
    };
    client
        .create_table()
        .table_name(connections_table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("orgId")?)
        .attribute_definitions(attribute("connectionId")?)
        .key_schema(key("orgId", KeyType::Hash)?)
        .key_schema(key("connectionId", KeyType::Range)?)
        .send()
        .await
        .map_err(unavailable)?;
    client
        .create_table()
        .table_name(messages_table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(StoreError::corrupt)?,
        )
        .send()
        .await
        .map_err(unavailable)?;
    for table in [connections_table, messages_table] {
        wait_until_active(client, table).await?;
    }
    client
        .update_time_to_live()
        .table_name(messages_table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expiresAt")
                .build()
                .map_err(StoreError::corrupt)?,
        )
        .send()
        .await
        .map_err(unavailable)?;
    Ok(())
}

async fn wait_until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    for _ in 0..120 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(unavailable)?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(StoreError::Unavailable(format!(
        "table {table} did not become active"
    )))
}

impl DynamoStore {
    pub fn new(client: Client, connections_table: &str, messages_table: &str) -> Self {
        DynamoStore {
            client,
            connections_table: connections_table.to_string(),
            messages_table: messages_table.to_string(),
        }
    }

    async fn load_message(
        &self,
        org_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageItem>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.messages_table)
            .set_key(Some(key(org_id, format!("MSG#{message_id}"))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.map(from_item).transpose()
    }

    /// Writes `item` if nobody else wrote the record since it was read at `read_version`.
    async fn save_message(
        &self,
        item: &MessageItem,
        read_version: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.messages_table)
            .set_item(Some(to_item(item)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(read_version.to_string()))
            .send()
            .await;
        conditional(result)
    }

    /// Change the record as `message` read it and write it back under that read's version;
    /// when someone wrote it since, read it again and repeat. On return `message` holds the
    /// record as stored. Returns whether `change` changed it (false too when the record is gone).
    async fn update_message(
        &self,
        message: &mut ReadMessage,
        change: impl Fn(&mut MessageRecord) -> bool,
    ) -> Result<bool, StoreError> {
        for _ in 0..MAX_UPDATE_RACES {
            let mut record = message.record.clone();
            if !change(&mut record) {
                return Ok(false);
            }
            let item = MessageItem::new(record, message.version + 1);
            if self.save_message(&item, message.version).await? {
                *message = item.into();
                return Ok(true);
            }
            let org_id = message.record.org_id.clone();
            let message_id = message.record.message_id.clone();
            match self.load_message(&org_id, &message_id).await? {
                Some(latest) => *message = latest.into(),
                None => return Ok(false),
            }
        }
        Err(StoreError::Unavailable(format!(
            "message {} kept changing under concurrent updates",
            message.record.message_id
        )))
    }

    /// One `Put` of a transaction, under `condition` (with its `:values`) when there is one.
    fn transact_put(
        &self,
        item: Item,
        condition: Option<(&str, Vec<(&str, AttributeValue)>)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.messages_table)
            .set_item(Some(item));
        if let Some((expression, values)) = condition {
            put = put.condition_expression(expression);
            for (name, value) in values {
                put = put.expression_attribute_values(name, value);
            }
        }
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(StoreError::corrupt)?)
            .build())
    }

    /// What completing a send writes, in one transaction: the record under its version
    /// condition first (its cancellation reason is the first), an index item per provider id,
    /// and, for an accepted send with `link_reply`, `LAST#` unless a later-created message to
    /// the number holds it.
    fn completion_writes(
        &self,
        item: &MessageItem,
        read_version: u64,
        link_reply: bool,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let record = &item.record;
        let version = ("version = :v", vec![(":v", n(read_version))]);
        let mut writes = vec![self.transact_put(to_item(item)?, Some(version))?];
        // A transaction may name an item once; the first part's id is often the message's.
        let mut seen = std::collections::HashSet::new();
        for id in record.provider_ids().filter(|id| seen.insert(*id)) {
            let mut index = key(
                &record.org_id,
                format!("PMID#{}#{id}", record.connection_id),
            );
            index.insert("messageId".into(), s(&record.message_id));
            writes.push(self.transact_put(index, None)?);
        }
        if link_reply && record.send_state == SendState::Accepted {
            let created = record.created_at.timestamp_micros();
            let mut last = key(
                &record.org_id,
                format!("LAST#{}#{}", record.connection_id, record.to),
            );
            last.insert("messageId".into(), s(&record.message_id));
            last.insert("createdAt".into(), s(record.created_at.to_rfc3339()));
            last.insert("createdAtMicros".into(), n(created));
            // Items of older releases carry no `createdAtMicros`: any completion replaces them.
            let newest = (
                "attribute_not_exists(createdAtMicros) OR createdAtMicros <= :created",
                vec![(":created", n(created))],
            );
            writes.push(self.transact_put(last, Some(newest))?);
        }
        if writes.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Unavailable(format!(
                "message {} names {} provider ids, more than one write can index",
                record.message_id,
                seen.len()
            )));
        }
        Ok(writes)
    }

    /// What recording an event writes, in one transaction: its dedupe marker, unless one
    /// exists (a repeat cancels the transaction with the marker's reason), and the event.
    fn event_writes(
        &self,
        event: &Event,
        dedupe_key: &str,
    ) -> Result<[TransactWriteItem; 2], StoreError> {
        let org_id = event.org_id();
        let mut marker = key(org_id, format!("DEDUPE#{dedupe_key}"));
        marker.insert("eventId".into(), s(event.event_id()));
        marker.insert(
            "expiresAt".into(),
            n((Utc::now() + DEDUPE_LIFETIME).timestamp()),
        );
        let item = EventItem {
            pk: format!("ORG#{org_id}"),
            sk: format!(
                "EVT#{}#{}",
                event
                    .received_at()
                    .to_rfc3339_opts(SecondsFormat::Micros, true),
                event.event_id()
            ),
            kind: "event".into(),
            event: event.clone(),
        };
        Ok([
            self.transact_put(marker, Some(("attribute_not_exists(pk)", Vec::new())))?,
            self.transact_put(to_item(&item)?, None)?,
        ])
    }

    /// One `TransactWriteItems`: all of `writes` or, when cancelled, none (its cancellation
    /// reasons say which item's condition failed, in the order given).
    async fn transact(
        &self,
        writes: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError>> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map(|_| ())
    }

    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.messages_table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Every item of an org's partition whose sort key starts with `prefix`, in key order.
    async fn query_prefix(
        &self,
        org_id: &str,
        prefix: &str,
        newest_first: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.messages_table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", org_pk(org_id))
                .expression_attribute_values(":prefix", s(prefix))
                .scan_index_forward(!newest_first)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            let full = limit.is_some_and(|l| items.len() >= l);
            if start.is_none() || full {
                break;
            }
        }
        if let Some(limit) = limit {
            items.truncate(limit);
        }
        Ok(items)
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.connections_table)
            .set_item(Some(to_item(connection)?))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get_connection(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<Option<Connection>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.connections_table)
            .key("orgId", s(org_id))
            .key("connectionId", s(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.map(from_item).transpose()
    }

    async fn list_connections(&self, org_id: &str) -> Result<Vec<Connection>, StoreError> {
        let mut connections = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.connections_table)
                .key_condition_expression("orgId = :org")
                .expression_attribute_values(":org", s(org_id))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items.unwrap_or_default() {
                connections.push(from_item(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(connections);
            }
        }
    }

    async fn delete_connection(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.connections_table)
            .key("orgId", s(org_id))
            .key("connectionId", s(connection_id))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

#[async_trait]
impl MessageStore for DynamoStore {
    async fn claim_message(&self, record: &MessageRecord) -> Result<Claim, StoreError> {
        let item = MessageItem::new(record.clone(), 0);
        let result = self
            .client
            .put_item()
            .table_name(&self.messages_table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if conditional(result)? {
            return Ok(Claim::Claimed(Box::new(item.into())));
        }
        let existing = self
            .load_message(&record.org_id, &record.message_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("claimed message vanished".into()))?;
        Ok(Claim::Exists(Box::new(existing.record)))
    }

    async fn complete_send(
        &self,
        claimed: &ReadMessage,
        done: &SendCompletion,
    ) -> Result<MessageRecord, StoreError> {
        // Cleared once a later-created message to the number is seen holding `LAST#`.
        let mut link_reply = true;
        // The claim as written is the first try: no read before the write. A report that
        // changed the record since fails the write's version condition, and the record is read.
        let mut read = claimed.clone();
        for _ in 0..MAX_UPDATE_RACES {
            let mut record = read.record.clone();
            record.complete(done);
            let item = MessageItem::new(record, read.version + 1);
            let writes = self.completion_writes(&item, read.version, link_reply)?;
            let Err(err) = self.transact(writes).await else {
                let stored = ReadMessage::from(item);
                // Reports that beat this write were held: now they find their message.
                super::release_after_send(self, &stored).await;
                return Ok(stored.record);
            };
            // Nothing of a cancelled transaction is written: read again and redo it all.
            let codes = cancellation_codes(&err);
            let stale = codes.first() == Some(&CONDITION_FAILED);
            if stale || codes.contains(&TRANSACTION_CONFLICT) {
                let (org_id, message_id) = (&read.record.org_id, &read.record.message_id);
                read = self
                    .load_message(org_id, message_id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("no claimed message {message_id}")))?
                    .into();
                continue;
            }
            // Index items have no condition: past the record, only `LAST#` can fail one.
            if link_reply && codes.iter().skip(1).any(|c| *c == CONDITION_FAILED) {
                link_reply = false;
                continue;
            }
            return Err(unavailable(err));
        }
        Err(StoreError::Unavailable(format!(
            "message {} kept changing under concurrent updates",
            claimed.record.message_id
        )))
    }

    async fn release_claim(&self, org_id: &str, message_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.messages_table)
            .set_key(Some(key(org_id, format!("MSG#{message_id}"))))
            // A completed or attempted send keeps its record: only an untried claim goes back.
            .condition_expression("sendState = :sending AND attempts = :none")
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":none", n(0))
            .send()
            .await;
        conditional(result).map(|_| ())
    }

    async fn read_message(
        &self,
        org_id: &str,
        message_id: &str,
    ) -> Result<Option<ReadMessage>, StoreError> {
        Ok(self.load_message(org_id, message_id).await?.map(Into::into))
    }

    async fn find_by_provider_message_id(
        &self,
        org_id: &str,
        connection_id: &str,
        provider_message_id: &str,
    ) -> Result<Option<ReadMessage>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.messages_table)
            .set_key(Some(key(
                org_id,
                format!("PMID#{connection_id}#{provider_message_id}"),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match out.item.as_ref().and_then(|i| string_attr(i, "messageId")) {
            Some(message_id) => self.read_message(org_id, &message_id).await,
            None => Ok(None),
        }
    }

    async fn advance_status(
        &self,
        message: &mut ReadMessage,
        provider_message_id: &str,
        status: Status,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // The read may be out of date, but only behind the stored record: a report that changes
        // nothing on it changes nothing on a later state either (the rule is monotonic), and
        // any change is written under the read's version, so a stale read never lands.
        let moved = std::sync::atomic::AtomicBool::new(false);
        let written = self
            .update_message(message, |record| {
                let before = record.clone();
                let changed = record.apply_report(provider_message_id, status, at);
                moved.store(changed, std::sync::atomic::Ordering::Relaxed);
                *record != before
            })
            .await?;
        // `moved` is the last attempt's: it only counts if that attempt was written.
        Ok(written && moved.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn record_event(&self, event: &Event, dedupe_key: &str) -> Result<bool, StoreError> {
        match self
            .transact(self.event_writes(event, dedupe_key)?.into())
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if cancellation_codes(&err).first() == Some(&CONDITION_FAILED) => Ok(false),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn record_status_event(
        &self,
        message: &mut ReadMessage,
        event: &StatusEvent,
        dedupe_key: &str,
    ) -> Result<bool, StoreError> {
        let (pmid, status, at) = (&event.provider_message_id, event.status, event.received_at);
        let stored_event = Event::Status(event.clone());
        for _ in 0..MAX_UPDATE_RACES {
            let mut record = message.record.clone();
            record.apply_report(pmid, status, at);
            if record == message.record {
                // The step changes nothing on this read, nor on any later state of the record
                // (the rule is monotonic): the event alone.
                return self.record_event(&stored_event, dedupe_key).await;
            }
            // The record under the read's version first: its cancellation reason is the first,
            // the dedupe marker's the second.
            let item = MessageItem::new(record, message.version + 1);
            let read_version = ("version = :v", vec![(":v", n(message.version))]);
            let mut writes = vec![self.transact_put(to_item(&item)?, Some(read_version))?];
            writes.extend(self.event_writes(&stored_event, dedupe_key)?);
            let Err(err) = self.transact(writes).await else {
                *message = item.into();
                return Ok(true);
            };
            // Nothing of a cancelled transaction is written.
            let codes = cancellation_codes(&err);
            if codes.get(1) == Some(&CONDITION_FAILED) {
                // A repeat of a recorded report: it records nothing but still takes its step,
                // as on every store (the first delivery took it, so this is seldom a write).
                self.advance_status(message, pmid, status, at).await?;
                return Ok(false);
            }
            if codes.first() == Some(&CONDITION_FAILED) || codes.contains(&TRANSACTION_CONFLICT) {
                let (org_id, message_id) = (&message.record.org_id, &message.record.message_id);
                match self.load_message(org_id, message_id).await? {
                    Some(latest) => *message = latest.into(),
                    // A message removed since the read takes no step; its event still counts.
                    None => return self.record_event(&stored_event, dedupe_key).await,
                }
                continue;
            }
            return Err(unavailable(err));
        }
        Err(StoreError::Unavailable(format!(
            "message {} kept changing under concurrent updates",
            message.record.message_id
        )))
    }

    async fn list_events(&self, org_id: &str, limit: usize) -> Result<Vec<Event>, StoreError> {
        let items = self.query_prefix(org_id, "EVT#", true, Some(limit)).await?;
        let mut events = items
            .into_iter()
            .map(|i| from_item::<EventItem>(i).map(|e| e.event))
            .collect::<Result<Vec<_>, _>>()?;
        events.reverse();
        Ok(events)
    }

    async fn latest_message_to(
        &self,
        org_id: &str,
        connection_id: &str,
        number: &str,
    ) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.messages_table)
            .set_key(Some(key(org_id, format!("LAST#{connection_id}#{number}"))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item.as_ref().and_then(|i| string_attr(i, "messageId")))
    }

    async fn set_opt_out(
        &self,
        org_id: &str,
        number: &str,
        opted_out: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at_micros = at.timestamp_micros();
        let mut item = key(org_id, format!("OPTOUT#{number}"));
        item.insert("optedOut".into(), AttributeValue::Bool(opted_out));
        item.insert("updatedAt".into(), s(at.to_rfc3339()));
        item.insert("atMicros".into(), n(at_micros));
        // A change older than the recorded one is ignored; of equal times the later call wins.
        // Items of older releases carry no `atMicros`: any change replaces them.
        let result = self
            .client
            .put_item()
            .table_name(&self.messages_table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR attribute_not_exists(atMicros) OR atMicros <= :at",
            )
            .expression_attribute_values(":at", n(at_micros))
            .send()
            .await;
        conditional(result).map(|_| ())
    }

    async fn is_opted_out(&self, org_id: &str, number: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.messages_table)
            .set_key(Some(key(org_id, format!("OPTOUT#{number}"))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .item
            .and_then(|i| i.get("optedOut").and_then(|v| v.as_bool().ok()).copied())
            .unwrap_or(false))
    }

    async fn add_inbound_part(
        &self,
        part: &InboundPart,
    ) -> Result<Option<JoinedReply>, StoreError> {
        let group = part_group(part);
        let expires_at = (part.received_at + INBOUND_PART_LIFETIME).timestamp();
        let mut item = key(
            &part.org_id,
            part_sk(&group, part.index, &part.provider_message_id),
        );
        item.insert("kind".into(), s("part"));
        item.insert("total".into(), n(part.total));
        item.insert("index".into(), n(part.index));
        item.insert("providerMessageId".into(), s(&part.provider_message_id));
        item.insert("text".into(), s(&part.text));
        item.insert(
            "receivedAtMicros".into(),
            n(part.received_at.timestamp_micros()),
        );
        item.insert("expiresAt".into(), n(expires_at));
        // A repeat of the same part replaces it: kept once, as received last.
        self.put(item).await?;
        // Racing deliveries of the last parts may each see the group complete and join it: they
        // join the same parts, whose dedupe key lets one event through.
        let now = Utc::now().timestamp();
        let parts = self.query_prefix(&part.org_id, &group, false, None).await?;
        Ok(join_parts(
            part.total,
            parts.iter().filter_map(|p| stored_part(p, now)),
        ))
    }

    async fn forget_inbound_parts(
        &self,
        part: &InboundPart,
        joined: &JoinedReply,
    ) -> Result<(), StoreError> {
        let group = part_group(part);
        // `part_ids` are in index order, one per index from 1: exactly the joined parts, not a
        // later message's parts that reuse the reference.
        let deletes = (1u16..)
            .zip(&joined.part_ids)
            .map(|(index, id)| {
                let delete = Delete::builder()
                    .table_name(&self.messages_table)
                    .set_key(Some(key(&part.org_id, part_sk(&group, index, id))))
                    .build()
                    .map_err(StoreError::corrupt)?;
                Ok(TransactWriteItem::builder().delete(delete).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for chunk in deletes.chunks(MAX_TRANSACTION_ITEMS) {
            self.transact(chunk.to_vec()).await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn hold_report(&self, held: &HeldReport) -> Result<bool, StoreError> {
        let mut item = held_key(held);
        item.insert("kind".into(), s("held"));
        item.insert(
            "doc".into(),
            s(serde_json::to_string(held).map_err(StoreError::corrupt)?),
        );
        item.insert("expiresAt".into(), n(held.expires_at().timestamp()));
        let result = self
            .client
            .put_item()
            .table_name(&self.messages_table)
            .set_item(Some(item))
            // A retried report is held once; one whose hold expired (TTL lags) is held anew.
            .condition_expression("attribute_not_exists(pk) OR expiresAt <= :now")
            .expression_attribute_values(":now", n(Utc::now().timestamp()))
            .send()
            .await;
        conditional(result)
    }

    async fn held_reports(
        &self,
        org_id: &str,
        connection_id: &str,
        provider_message_id: &str,
    ) -> Result<Vec<HeldReport>, StoreError> {
        let now = Utc::now().timestamp();
        let items = self
            .query_prefix(
                org_id,
                &held_prefix(connection_id, provider_message_id),
                false,
                None,
            )
            .await?;
        items
            .iter()
            // TTL deletes expired items only eventually: they are gone all the same.
            .filter(|item| number_attr::<i64>(item, "expiresAt").is_some_and(|at| at > now))
            .filter_map(|item| string_attr(item, "doc"))
            .map(|doc| serde_json::from_str(&doc).map_err(StoreError::corrupt))
            .collect()
    }

    async fn forget_held_report(&self, held: &HeldReport) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.messages_table)
            .set_key(Some(held_key(held)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
