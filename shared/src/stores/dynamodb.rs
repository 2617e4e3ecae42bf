//! DynamoDB: a connections table (`orgId`, `connectionId`) and one messages table (`pk`, `sk`,
//! TTL on `expiresAt`, with a stream) that holds, per org (`pk = ORG#{orgId}`):
//!
//! | `sk` | item |
//! |---|---|
//! | `MSG#{messageId}` | message record, with a `version` for optimistic updates |
//! | `PMID#{provider}#{providerMessageId}` | the provider's id → our `messageId` |
//! | `EVT#{receivedAt}#{eventId}` | an event (what the distribution system reads off the stream) |
//! | `DEDUPE#{key}` | a webhook's dedupe marker, expiring after 30 days |
//! | `LAST#{connectionId}#{number}` | the latest accepted message to a number (reply linking) |
//! | `OPTOUT#{number}` | the number's opt-out flag |
//! | `PART#…` / `JOINED#…` | parts of a multipart reply and the marker of its one join |
//!
//! Conditional writes do the claiming: send idempotency, webhook dedupe, monotonic status.

use super::{Claim, ConnectionStore, InboundPart, JoinedReply, MessageStore, StoreError};
use crate::domain::{Connection, Event, MessageRecord, SendCompletion, SendState, Status};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification,
    TransactWriteItem,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

const DEDUPE_TTL_DAYS: i64 = 30;
const PART_TTL_DAYS: i64 = 2;
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

fn expires_in(days: i64) -> AttributeValue {
    AttributeValue::N(
        (Utc::now() + chrono::Duration::days(days))
            .timestamp()
            .to_string(),
    )
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
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    /// Read, change, write back under the version condition; repeats when it loses a race.
    /// Returns the record as stored, or `None` when there is no such message.
    async fn update_message(
        &self,
        org_id: &str,
        message_id: &str,
        change: impl Fn(&mut MessageRecord) -> bool,
    ) -> Result<Option<(MessageRecord, bool)>, StoreError> {
        for _ in 0..MAX_UPDATE_RACES {
            let Some(mut item) = self.load_message(org_id, message_id).await? else {
                return Ok(None);
            };
            if !change(&mut item.record) {
                return Ok(Some((item.record, false)));
            }
            let read_version = item.version;
            item.version += 1;
            if self.save_message(&item, read_version).await? {
                return Ok(Some((item.record, true)));
            }
        }
        Err(StoreError::Unavailable(format!(
            "message {message_id} kept changing under concurrent updates"
        )))
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
        let item = MessageItem {
            pk: format!("ORG#{}", record.org_id),
            sk: format!("MSG#{}", record.message_id),
            kind: "message".into(),
            version: 0,
            record: record.clone(),
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.messages_table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Claimed),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let existing = self
                    .load_message(&record.org_id, &record.message_id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("claimed message vanished".into()))?;
                Ok(Claim::Exists(Box::new(existing.record)))
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn complete_send(
        &self,
        org_id: &str,
        message_id: &str,
        done: &SendCompletion,
    ) -> Result<MessageRecord, StoreError> {
        let (record, _) = self
            .update_message(org_id, message_id, |record| {
                record.complete(done);
                true
            })
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no claimed message {message_id}")))?;
        if let (SendState::Accepted, Some(pmid)) = (record.send_state, &record.provider_message_id)
        {
            let mut index = key(org_id, format!("PMID#{}#{pmid}", record.connection_id));
            index.insert("messageId".into(), s(&record.message_id));
            self.put(index).await?;
            let mut last = key(
                org_id,
                format!("LAST#{}#{}", record.connection_id, record.to),
            );
            last.insert("messageId".into(), s(&record.message_id));
            last.insert("createdAt".into(), s(record.created_at.to_rfc3339()));
            self.put(last).await?;
        }
        Ok(record)
    }

    async fn release_claim(&self, org_id: &str, message_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.messages_table)
            .set_key(Some(key(org_id, format!("MSG#{message_id}"))))
            .condition_expression("sendState = :sending")
            .expression_attribute_values(":sending", s("sending"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn get_message(
        &self,
        org_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        Ok(self
            .load_message(org_id, message_id)
            .await?
            .map(|i| i.record))
    }

    async fn find_by_provider_message_id(
        &self,
        org_id: &str,
        connection_id: &str,
        provider_message_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
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
            Some(message_id) => self.get_message(org_id, &message_id).await,
            None => Ok(None),
        }
    }

    async fn advance_status(
        &self,
        org_id: &str,
        message_id: &str,
        provider_message_id: &str,
        status: Status,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let moved = std::sync::atomic::AtomicBool::new(false);
        self.update_message(org_id, message_id, |record| {
            let before = record.clone();
            let changed = record.apply_report(provider_message_id, status, at);
            moved.store(changed, std::sync::atomic::Ordering::Relaxed);
            *record != before
        })
        .await?;
        Ok(moved.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn record_event(&self, event: &Event, dedupe_key: &str) -> Result<bool, StoreError> {
        let org_id = event.org_id();
        let mut marker = key(org_id, format!("DEDUPE#{dedupe_key}"));
        marker.insert("eventId".into(), s(event.event_id()));
        marker.insert("expiresAt".into(), expires_in(DEDUPE_TTL_DAYS));
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
        let put = |item: Item, condition: Option<&str>| {
            Put::builder()
                .table_name(&self.messages_table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(str::to_string))
                .build()
                .map_err(StoreError::corrupt)
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(put(marker, Some("attribute_not_exists(pk)"))?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(put(to_item(&item)?, None)?)
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => {
                let duplicate = err
                    .as_service_error()
                    .and_then(|e| match e {
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
                        _ => None,
                    })
                    .and_then(|c| c.cancellation_reasons.as_ref())
                    .and_then(|reasons| reasons.first())
                    .and_then(|r| r.code.as_deref())
                    == Some("ConditionalCheckFailed");
                if duplicate {
                    Ok(false)
                } else {
                    Err(unavailable(err))
                }
            }
        }
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
        let mut item = key(org_id, format!("OPTOUT#{number}"));
        item.insert("optedOut".into(), AttributeValue::Bool(opted_out));
        item.insert("updatedAt".into(), s(at.to_rfc3339()));
        self.put(item).await
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
        let group = format!("{}#{}#{}", part.connection_id, part.from, part.reference);
        let mut item = key(&part.org_id, format!("PART#{group}#{:05}", part.index));
        item.insert("text".into(), s(&part.text));
        item.insert("expiresAt".into(), expires_in(PART_TTL_DAYS));
        self.put(item).await?;
        let parts = self
            .query_prefix(&part.org_id, &format!("PART#{group}#"), false, None)
            .await?;
        if parts.len() < usize::from(part.total) {
            return Ok(None);
        }
        // Several deliveries may see the last part arrive: the one that writes the marker joins.
        let mut marker = key(&part.org_id, format!("JOINED#{group}"));
        marker.insert("expiresAt".into(), expires_in(PART_TTL_DAYS));
        let won = self
            .client
            .put_item()
            .table_name(&self.messages_table)
            .set_item(Some(marker))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match won {
            Ok(_) => {}
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(unavailable(err)),
        }
        let text = parts
            .iter()
            .filter_map(|p| string_attr(p, "text"))
            .collect::<String>();
        Ok(Some(JoinedReply {
            text,
            part_ids: Vec::new(),
        }))
    }

    async fn forget_inbound_parts(
        &self,
        part: &InboundPart,
        _joined: &JoinedReply,
    ) -> Result<(), StoreError> {
        let group = format!("{}#{}#{}", part.connection_id, part.from, part.reference);
        let parts = self
            .query_prefix(&part.org_id, &format!("PART#{group}#"), false, None)
            .await?;
        for p in parts {
            let mut k = Item::new();
            k.extend(
                p.into_iter()
                    .filter(|(name, _)| name == "pk" || name == "sk"),
            );
            self.client
                .delete_item()
                .table_name(&self.messages_table)
                .set_key(Some(k))
                .send()
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}
