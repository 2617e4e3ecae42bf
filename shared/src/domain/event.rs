//! What the webhooks record: the events the distribution system consumes.

use super::{Provider, Status};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    Status(StatusEvent),
    Inbound(InboundEvent),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEvent {
    pub event_id: String,
    pub org_id: String,
    pub connection_id: String,
    pub provider: Provider,
    pub provider_message_id: String,
    pub message_id: Option<String>,
    pub status: Status,
    pub provider_status: String,
    pub error_code: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundEvent {
    pub event_id: String,
    pub org_id: String,
    pub connection_id: String,
    pub provider: Provider,
    pub provider_message_id: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub in_reply_to: Option<String>,
    pub opt_out: bool,
    pub occurred_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
}

impl Event {
    pub fn org_id(&self) -> &str {
        match self {
            Event::Status(e) => &e.org_id,
            Event::Inbound(e) => &e.org_id,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Event::Status(e) => &e.event_id,
            Event::Inbound(e) => &e.event_id,
        }
    }

    pub fn received_at(&self) -> DateTime<Utc> {
        match self {
            Event::Status(e) => e.received_at,
            Event::Inbound(e) => e.received_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_event_has_the_contract_shape() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .to_utc();
        let event = Event::Status(StatusEvent {
            event_id: "e1".into(),
            org_id: "ORG_1".into(),
            connection_id: "conn_1".into(),
            provider: Provider::Twilio,
            provider_message_id: "SM1".into(),
            message_id: Some("dist42-r1".into()),
            status: Status::Delivered,
            provider_status: "delivered".into(),
            error_code: None,
            occurred_at: None,
            received_at: at,
        });
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(v["type"], "status");
        assert_eq!(v["orgId"], "ORG_1");
        assert_eq!(v["providerMessageId"], "SM1");
        assert_eq!(v["messageId"], "dist42-r1");
        assert_eq!(v["errorCode"], json!(null));
        assert_eq!(v["receivedAt"], "2026-11-25T10:00:00Z");
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), event);
    }
}
