//! The deployment the benchmarked functions run against: fresh tables and one Twilio connection
//! on moto (written through byosms' own admin pipeline, so stored exactly as in production), and
//! the events each function is invoked with: the send request, and API Gateway v2 events carrying
//! Twilio's signed status callbacks and inbound messages, each one new. A status callback is for
//! a message sent just before (stored as the send function stores it), as nearly all are in
//! production: the report finds its message, moves its status and records an event.

use byosms::domain::{
    Connection, ConnectionSecrets, MessageRecord, Provider, SendCompletion, SendState, Status,
};
use byosms::pipeline::admin;
use byosms::providers::{ProviderAdapter, SampleEvent, SignedRequest};
use byosms::stores::{Claim, MessageStore, StoreError};
use byosms::webhook::{Route, RouteKind};
use byosms::{Deps, Settings};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use url::Url;

pub const ORG: &str = "BENCH_ORG";
pub const CONNECTION: &str = "bench_twilio";
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const FROM: &str = "+14155550199";
const TO: &str = "+14155550100";
pub const PUBLIC_BASE: &str = "https://sms.example.com";

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("moto: {0}")]
    Store(String),
    #[error("signing a sample webhook: {0}")]
    Sample(String),
}

/// What kind of event a benchmarked function takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Any JSON, answered with itself (the reference echoes).
    Echo,
    /// A send request of one message.
    Send,
    /// A signed Twilio status callback through API Gateway.
    Status,
    /// A signed Twilio inbound message through API Gateway.
    Inbound,
}

pub struct Fixture {
    pub connections_table: String,
    pub messages_table: String,
    connection: Connection,
    secrets: ConnectionSecrets,
    deps: Deps,
    serial: AtomicU64,
}

impl Fixture {
    /// Creates the tables on moto (plain HTTP at `moto_url`) and adds the connection.
    pub async fn seed(moto_url: &str) -> Result<Self, FixtureError> {
        let store = |e: &dyn std::fmt::Display| FixtureError::Store(e.to_string());
        let sdk = byosms::stores::aws_http::sdk_config_loader()
            .endpoint_url(moto_url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "bench",
            ))
            .load()
            .await;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let (connections_table, messages_table) = (
            format!("bench-connections-{suffix}"),
            format!("bench-messages-{suffix}"),
        );
        byosms::stores::dynamodb::create_tables(
            &aws_sdk_dynamodb::Client::new(&sdk),
            &connections_table,
            &messages_table,
        )
        .await
        .map_err(|e| store(&e))?;
        let settings = Settings {
            connections_table: connections_table.clone(),
            messages_table: messages_table.clone(),
            public_base_url: Some(PUBLIC_BASE.parse().expect("a valid URL")),
            ..Settings::default()
        };
        let deps = Deps::aws(&sdk, settings);
        let fields = json!({
            "provider": "twilio",
            "name": "bench",
            "accountSid": ACCOUNT_SID,
            "authToken": AUTH_TOKEN,
            "from": FROM,
        });
        let connection = admin::add_connection(&deps, ORG, Some(CONNECTION), &fields, None)
            .await
            .map_err(|e| store(&e))?;
        let secrets = deps
            .stores
            .secrets
            .get_secrets(ORG, CONNECTION)
            .await
            .map_err(|e| store(&e))?
            .ok_or_else(|| FixtureError::Store("the connection's secret was not stored".into()))?;
        Ok(Fixture {
            connections_table,
            messages_table,
            connection,
            secrets,
            deps,
            serial: AtomicU64::new(0),
        })
    }

    /// The deployment variables every function (and the Python peer) gets.
    pub fn env(&self, twilio_api: &str) -> Vec<(String, String)> {
        [
            ("BYOSMS_CONNECTIONS_TABLE", self.connections_table.as_str()),
            ("BYOSMS_MESSAGES_TABLE", self.messages_table.as_str()),
            ("BYOSMS_PUBLIC_BASE_URL", PUBLIC_BASE),
            ("BYOSMS_TWILIO_API_URL", twilio_api),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn next_serial(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed)
    }

    /// A new event of `kind` (a new message id, a status of a newly sent message, or a new
    /// inbound each call).
    pub async fn event(&self, kind: EventKind) -> Result<Value, FixtureError> {
        match kind {
            EventKind::Echo => Ok(json!({"ping": self.next_serial()})),
            EventKind::Send => Ok(self.send_request(1)),
            EventKind::Status => {
                let (message_id, sid) = self.sent_message().await?;
                // As Twilio calls back: to the URL the send gave it, our message id in its query.
                let report = SampleEvent::Status {
                    message_id: Some(message_id),
                    provider_message_id: sid,
                    provider_status: "delivered".into(),
                    error_code: None,
                };
                self.signed(RouteKind::Status, &report)
            }
            EventKind::Inbound => {
                let reply = SampleEvent::Inbound {
                    from: TO.into(),
                    to: FROM.into(),
                    text: format!("bench {}", self.next_serial()),
                };
                self.signed(RouteKind::Message, &reply)
            }
        }
    }

    /// A send request of `messages` new messages.
    pub fn send_request(&self, messages: usize) -> Value {
        let batch = self.next_serial();
        let messages: Vec<Value> = (0..messages)
            .map(|i| json!({"messageId": format!("bench-{batch}-{i}"), "to": TO, "body": "bench"}))
            .collect();
        json!({"orgId": ORG, "connectionId": CONNECTION, "userId": "bench", "messages": messages})
    }

    /// Stores a message as the send function leaves it once Twilio accepted it; returns our id
    /// and Twilio's sid of it.
    async fn sent_message(&self) -> Result<(String, String), FixtureError> {
        let serial = self.next_serial();
        let (message_id, sid) = (format!("sent-{serial}"), format!("SM{serial:032x}"));
        store_sent_message(
            self.deps.stores.messages.as_ref(),
            &self.connection,
            &message_id,
            &sid,
        )
        .await
        .map_err(|e| FixtureError::Store(e.to_string()))?;
        Ok((message_id, sid))
    }

    fn adapter(&self) -> &dyn ProviderAdapter {
        self.deps
            .registry
            .get(Provider::Twilio)
            .expect("Twilio is registered")
    }

    /// `event` as Twilio signs it for its route, in an API Gateway event.
    fn signed(&self, kind: RouteKind, event: &SampleEvent) -> Result<Value, FixtureError> {
        let base: Url = PUBLIC_BASE.parse().expect("a valid URL");
        let url = Route::url(&base, kind, Provider::Twilio, ORG).expect("a route URL");
        let signed = self
            .adapter()
            .sample_webhook(event, &url, &self.connection, &self.secrets)
            .map_err(|e| FixtureError::Sample(e.to_string()))?;
        Ok(api_gateway_event(&signed))
    }
}

/// Stores message `message_id` (to the bench recipient) as the send function leaves it once the provider
/// accepted it under `provider_message_id`: claimed, then completed (which indexes the id).
pub async fn store_sent_message(
    messages: &dyn MessageStore,
    connection: &Connection,
    message_id: &str,
    provider_message_id: &str,
) -> Result<(), StoreError> {
    let now = chrono::Utc::now();
    let record = MessageRecord {
        org_id: connection.org_id.clone(),
        message_id: message_id.into(),
        connection_id: connection.connection_id.clone(),
        provider: connection.provider,
        user_id: "bench".into(),
        to: TO.into(),
        body: "bench".into(),
        segments: 1,
        encoding: "gsm7".into(),
        send_state: SendState::Sending,
        status: None,
        provider_message_id: None,
        parts: Vec::new(),
        error: None,
        attempts: 0,
        created_at: now,
        updated_at: now,
    };
    let accepted = SendCompletion {
        send_state: SendState::Accepted,
        status: Some(Status::Accepted),
        provider_message_id: Some(provider_message_id.into()),
        part_ids: Vec::new(),
        error: None,
        attempts: 1,
        at: now,
    };
    let Claim::Claimed(claimed) = messages.claim_message(&record).await? else {
        return Err(StoreError::Corrupt(format!(
            "message {message_id} was stored before"
        )));
    };
    messages.complete_send(&claimed, &accepted).await?;
    Ok(())
}

/// An API Gateway HTTP API (payload 2.0) event for a request to our public host, as the HTTP API
/// of template.yaml hands it to the function.
pub fn api_gateway_event(request: &SignedRequest) -> Value {
    let mut headers = serde_json::Map::new();
    for (name, value) in &request.headers {
        headers.insert(name.to_ascii_lowercase(), Value::String(value.clone()));
    }
    let host = request.url.host_str().unwrap_or("localhost").to_string();
    headers.insert("host".into(), Value::String(host.clone()));
    headers.insert("x-forwarded-proto".into(), "https".into());
    let path = request.url.path().to_string();
    let route = Route::from_path(&path);
    let mut params = serde_json::Map::new();
    if let Some(route) = &route {
        params.insert("provider".into(), route.provider_slug.clone().into());
        params.insert("orgId".into(), route.org_id.clone().into());
    }
    let now = chrono::Utc::now();
    json!({
        "version": "2.0",
        "routeKey": format!("{} {path}", request.method),
        "rawPath": path,
        "rawQueryString": request.url.query().unwrap_or(""),
        "headers": headers,
        "pathParameters": params,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "bench",
            "domainName": host,
            "domainPrefix": "sms",
            "http": {
                "method": request.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "TwilioProxy/1.1"
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": format!("{} {path}", request.method),
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "body": String::from_utf8_lossy(&request.body),
        "isBase64Encoded": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_gateway_event_carries_the_signed_request() {
        let request = SignedRequest {
            method: http::Method::POST,
            url: "https://sms.example.com/distribution-providers/v1/receive/distribution/status/twilio-sms/ORG_1?m=1"
                .parse()
                .unwrap(),
            headers: vec![("X-Twilio-Signature".into(), "abc=".into())],
            body: b"MessageSid=SM1".to_vec(),
        };
        let event = api_gateway_event(&request);
        assert_eq!(
            event["rawPath"],
            "/distribution-providers/v1/receive/distribution/status/twilio-sms/ORG_1"
        );
        assert_eq!(event["rawQueryString"], "m=1");
        assert_eq!(event["headers"]["x-twilio-signature"], "abc=");
        assert_eq!(event["headers"]["host"], "sms.example.com");
        assert_eq!(event["pathParameters"]["orgId"], "ORG_1");
        assert_eq!(event["pathParameters"]["provider"], "twilio-sms");
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["body"], "MessageSid=SM1");
    }
}
