//! Under load: the gateway (`byosms serve`'s router on a real socket, the embedded SQLite store)
//! takes over 2,000 signed webhooks across the seven providers from 64 concurrent clients, with
//! every webhook repeated up to four times and everything shuffled (so finals often come before
//! the reports they outrank). Every distinct event is stored exactly once, every message ends on
//! its final status, every report of a message we never sent is held and never an event, and no
//! request gets anything but a 2xx. No timing is asserted: speed is the benchmarks' business.

use crate::support::*;
use byosms::Deps;
use byosms::domain::{Connection, ConnectionSecrets, Event, Provider, Status};
use byosms::pipeline::send::{SendItem, SendRequest, send};
use byosms::providers::{ProviderAdapter, SampleEvent, SignedRequest, WebhookItem};
use byosms::webhook::{RouteKind, WebhookRequest};
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue};
use std::collections::{BTreeMap, BTreeSet};

const MESSAGES_PER_PROVIDER: usize = 40;
const FOREIGN_REPORTS_PER_PROVIDER: usize = 5;
const CLIENTS: usize = 64;

/// Each provider's words for an intermediate step, delivery and a failure.
fn words(provider: Provider) -> (&'static str, &'static str, &'static str) {
    match provider {
        Provider::Sinch => ("QUEUED_ON_CHANNEL", "DELIVERED", "FAILED"),
        Provider::Messagemedia => ("submitted", "delivered", "failed"),
        Provider::Vonage => ("accepted", "delivered", "rejected"),
        Provider::Messagebird => ("sent", "delivered", "delivery_failed"),
        _ => ("sent", "delivered", "failed"),
    }
}

/// A small deterministic generator (xorshift64*): the same shuffle and copies on every run.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `signed` as the gateway hands it to the adapter.
fn as_received(signed: &SignedRequest) -> WebhookRequest {
    WebhookRequest {
        method: signed.method.clone(),
        public_url: signed.url.to_string(),
        raw_path: signed.url.path().to_string(),
        raw_query: signed.url.query().unwrap_or_default().to_string(),
        headers: signed
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect(),
        body: signed.body.clone().into(),
        received_at: chrono::Utc::now(),
    }
}

/// What one provider's share of the load must leave behind.
#[derive(Default)]
struct Expected {
    /// (provider id, provider's word) of every distinct report of our messages → our id.
    reports: BTreeMap<(String, String), String>,
    /// Our id → the final status its reports lead to.
    finals: BTreeMap<String, Status>,
    /// Our id → the text of the reply to it.
    replies: BTreeMap<String, String>,
    /// Provider ids of reports of messages we never sent.
    foreign: Vec<String>,
}

struct Share<'a> {
    adapter: &'a dyn ProviderAdapter,
    connection: Connection,
    secrets: ConnectionSecrets,
}

impl Share<'_> {
    fn org(&self) -> &str {
        &self.connection.org_id
    }

    fn sample(&self, deps: &Deps, kind: RouteKind, event: &SampleEvent) -> SignedRequest {
        let url = deps
            .settings
            .route_url(kind, self.connection.provider, self.org())
            .unwrap();
        self.adapter
            .sample_webhook(event, &url, &self.connection, &self.secrets)
            .unwrap()
    }

    /// The provider's word (as its payload carries it) and our status, as the adapter reads
    /// them off its own sample.
    fn status_of(&self, sample: &SignedRequest) -> (String, Status) {
        let items = self
            .adapter
            .parse(&as_received(sample), RouteKind::Status, &self.connection)
            .unwrap();
        match &items[..] {
            [Ok(WebhookItem::Status(report))] => (report.provider_status.clone(), report.status),
            other => panic!("{}: {other:?}", self.connection.provider),
        }
    }
}

fn recipient(provider_index: usize, message: usize) -> String {
    format!("+1415556{provider_index}{message:03}")
}

/// Sends the share's messages and returns the webhooks the provider would make about them, with
/// what they must leave behind.
async fn plan(deps: &Deps, share: &Share<'_>, index: usize) -> (Vec<SignedRequest>, Expected) {
    let provider = share.connection.provider;
    let request = SendRequest {
        org_id: share.org().to_string(),
        connection_id: Some("conn_1".into()),
        user_id: "UR_1".into(),
        messages: (0..MESSAGES_PER_PROVIDER)
            .map(|i| SendItem {
                message_id: format!("load-{provider}-{i}"),
                to: recipient(index, i),
                body: "Take our survey".into(),
            })
            .collect(),
    };
    let answer = send(deps, &request).await.unwrap();
    let (step, delivered, failed) = words(provider);
    let mut webhooks = Vec::new();
    let mut expected = Expected::default();
    for (i, result) in answer.results.iter().enumerate() {
        let provider_message_id = result
            .provider_message_id
            .clone()
            .unwrap_or_else(|| panic!("{provider}: not sent: {result:?}"));
        let message_id = result.message_id.clone();
        let last = if i % 4 == 3 { failed } else { delivered };
        let mut statuses = Vec::new();
        for word in [step, last] {
            let sample = share.sample(
                deps,
                RouteKind::Status,
                &SampleEvent::Status {
                    message_id: Some(message_id.clone()),
                    provider_message_id: provider_message_id.clone(),
                    provider_status: word.into(),
                    error_code: None,
                },
            );
            let (provider_word, status) = share.status_of(&sample);
            statuses.push(status);
            expected.reports.insert(
                (provider_message_id.clone(), provider_word),
                message_id.clone(),
            );
            webhooks.push(sample);
        }
        assert!(
            statuses[0].may_advance_to(statuses[1])
                && statuses[1].is_final()
                && !statuses[0].is_final()
                && statuses[0] != Status::Unknown,
            "{provider}: {statuses:?}"
        );
        expected.finals.insert(message_id.clone(), statuses[1]);
        let text = format!("reply {i}");
        webhooks.push(share.sample(
            deps,
            RouteKind::Message,
            &SampleEvent::Inbound {
                from: recipient(index, i),
                to: share.connection.setting("from").unwrap_or(FROM).into(),
                text: text.clone(),
            },
        ));
        expected.replies.insert(message_id, text);
    }
    for i in 0..FOREIGN_REPORTS_PER_PROVIDER {
        let provider_message_id = format!("foreign-{provider}-{i}");
        webhooks.push(share.sample(
            deps,
            RouteKind::Status,
            &SampleEvent::Status {
                message_id: None,
                provider_message_id: provider_message_id.clone(),
                provider_status: delivered.into(),
                error_code: None,
            },
        ));
        expected.foreign.push(provider_message_id);
    }
    (webhooks, expected)
}

async fn post(client: &reqwest::Client, gateway: &str, request: &SignedRequest) -> u16 {
    let mut url = format!("{gateway}{}", request.url.path());
    if let Some(query) = request.url.query() {
        url = format!("{url}?{query}");
    }
    let mut call = client
        .request(request.method.clone(), &url)
        .body(request.body.clone());
    for (name, value) in &request.headers {
        call = call.header(name, value);
    }
    match call.send().await {
        Ok(response) => response.status().as_u16(),
        Err(err) => panic!("the gateway did not answer: {err}"),
    }
}

async fn check(deps: &Deps, share: &Share<'_>, expected: &Expected) {
    let provider = share.connection.provider;
    let events = deps
        .stores
        .messages
        .list_events(share.org(), 10_000)
        .await
        .unwrap();
    let mut reports = BTreeMap::new();
    let mut replies = BTreeMap::new();
    for event in &events {
        match event {
            Event::Status(s) => {
                let key = (s.provider_message_id.clone(), s.provider_status.clone());
                let ours = s.message_id.clone().unwrap_or_default();
                assert!(
                    reports.insert(key.clone(), ours).is_none(),
                    "{provider}: {key:?} stored twice"
                );
            }
            Event::Inbound(r) => {
                let ours = r.in_reply_to.clone().unwrap_or_default();
                assert!(
                    replies.insert(ours.clone(), r.text.clone()).is_none(),
                    "{provider}: two replies to {ours}"
                );
            }
        }
    }
    assert_eq!(reports, expected.reports, "{provider}: status events");
    assert_eq!(replies, expected.replies, "{provider}: replies");
    for (message_id, status) in &expected.finals {
        let record = deps
            .stores
            .messages
            .get_message(share.org(), message_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, Some(*status), "{provider}: {message_id}");
    }
    for id in &expected.foreign {
        let held = deps
            .stores
            .messages
            .held_reports(share.org(), "conn_1", id)
            .await
            .unwrap();
        assert_eq!(held.len(), 1, "{provider}: {id} is held once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_signed_webhooks_from_64_clients_are_each_stored_once() {
    let deps = deps(Backend::Embedded, settings_with_stand_ins().await).await;
    let gateway = start_gateway(deps.deps.clone()).await;
    let mut shares = Vec::new();
    for adapter in deps.registry.all() {
        let provider = adapter.provider();
        let org = format!("ORG_LOAD_{provider}");
        let connection = add_connection(&deps, provider, &org, "conn_1").await;
        let secrets = deps
            .stores
            .secrets
            .get_secrets(&org, "conn_1")
            .await
            .unwrap()
            .unwrap();
        shares.push(Share {
            adapter,
            connection,
            secrets,
        });
    }
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let mut load = Vec::new();
    let mut expectations = Vec::new();
    let mut distinct = 0;
    for (index, share) in shares.iter().enumerate() {
        let (webhooks, expected) = plan(&deps, share, index).await;
        distinct += webhooks.len();
        for webhook in webhooks {
            // One to four deliveries of each: providers retry, and some at once.
            for _ in 0..=dice.below(4) {
                load.push(webhook.clone());
            }
        }
        expectations.push(expected);
    }
    // Fisher–Yates: finals, duplicates and replies arrive in any order.
    for i in (1..load.len()).rev() {
        load.swap(i, dice.below(i + 1));
    }
    assert!(load.len() >= 2000, "only {} webhooks", load.len());

    let client = reqwest::Client::new();
    let answers: Vec<u16> = futures_util::stream::iter(&load)
        .map(|request| post(&client, &gateway, request))
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let by_status: BTreeMap<u16, usize> = answers.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(*s).or_default() += 1;
        m
    });
    let refused: BTreeSet<u16> = by_status
        .keys()
        .copied()
        .filter(|s| !(200..300).contains(s))
        .collect();
    assert!(
        refused.is_empty(),
        "{} webhooks ({distinct} distinct) answered {by_status:?}",
        load.len()
    );
    for (share, expected) in shares.iter().zip(&expectations) {
        check(&deps, share, expected).await;
    }
    println!(
        "{} webhooks ({distinct} distinct) from {CLIENTS} clients: {by_status:?}",
        load.len()
    );
}
