//! What one webhook costs us: authenticating and parsing each registered adapter's sample inbound
//! and status webhooks (CPU only), and the whole receive pipeline for a Twilio inbound on the embedded store (route,
//! connection lookup, secret, verification, parsing, status step and event write).
//! `cargo bench -p byosms --bench webhook`.

use byosms::domain::{Access, Connection, ConnectionSecrets};
use byosms::pipeline::{admin, receive};
use byosms::providers::twilio;
use byosms::providers::{ProviderAdapter, Registry, SampleEvent};
use byosms::webhook::{Route, RouteKind, WebhookRequest};
use byosms::{Deps, Settings};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const ACCOUNT: &str = "AC00000000000000000000000000000000";
const PATH: &str = "/distribution-providers/v1/receive/distribution/message/twilio-sms/ORG_1";

fn inbound(sid: &str) -> WebhookRequest {
    let url = format!("https://sms.example.com{PATH}");
    let params: Vec<(String, String)> = [
        ("MessageSid", sid),
        ("SmsMessageSid", sid),
        ("AccountSid", ACCOUNT),
        ("From", "+14155550100"),
        ("To", "+14155550199"),
        ("Body", "5"),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
        ("FromCountry", "US"),
        ("ToCountry", "US"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    headers.insert(
        "x-twilio-signature",
        twilio::signature(TOKEN, &url, &params).parse().unwrap(),
    );
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    WebhookRequest {
        method: http::Method::POST,
        raw_path: url::Url::parse(&url)
            .map(|u| u.path().to_string())
            .unwrap_or_default(),
        public_url: url,
        raw_query: String::new(),
        headers,
        body: body.into(),
        received_at: chrono::Utc::now(),
    }
}

/// One adapter's example connection, with its secrets, as `connection add` would store it.
fn example_connection(adapter: &dyn ProviderAdapter) -> (Connection, ConnectionSecrets) {
    let fields = adapter
        .validate_connection(&adapter.example_fields())
        .unwrap();
    let connection = Connection {
        org_id: "ORG_1".into(),
        connection_id: "conn_1".into(),
        provider: adapter.provider(),
        name: "bench".into(),
        access: Access::All,
        enabled: true,
        settings: fields.settings,
        created_at: chrono::Utc::now(),
    };
    (connection, fields.secrets)
}

/// The adapter's own signed sample of `kind` (an inbound message, or a delivery report for
/// a message we sent) as the webhook route receives it.
fn sample_request(
    adapter: &dyn ProviderAdapter,
    kind: RouteKind,
    connection: &Connection,
    secrets: &ConnectionSecrets,
) -> WebhookRequest {
    let event = match kind {
        RouteKind::Message => SampleEvent::Inbound {
            from: "+14155550100".into(),
            to: connection.setting("from").unwrap_or("+14155550199").into(),
            text: "5".into(),
        },
        RouteKind::Status => SampleEvent::Status {
            message_id: Some("msg_1".into()),
            provider_message_id: "4f1c2e9a-0000-4000-8000-000000000001".into(),
            provider_status: "delivered".into(),
            error_code: None,
        },
    };
    let base = url::Url::parse("https://sms.example.com").unwrap();
    let url = Route::url(&base, kind, adapter.provider(), "ORG_1").unwrap();
    let sample = adapter
        .sample_webhook(&event, &url, connection, secrets)
        .unwrap();
    WebhookRequest {
        method: sample.method.clone(),
        public_url: sample.url.to_string(),
        raw_path: sample.url.path().to_string(),
        raw_query: sample.url.query().unwrap_or_default().to_string(),
        headers: sample
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect(),
        body: sample.body.clone().into(),
        received_at: chrono::Utc::now(),
    }
}

/// Every registered adapter's own signed sample inbound and status webhook, against its example
/// connection: what the gateway spends in the adapter per request (CPU only, no store). Reported
/// as requests per second too; MessageMedia verifies an RSA signature, the others an HMAC or a
/// shared credential.
fn verify_and_parse(c: &mut Criterion) {
    // A sandboxed deployment: the one the adapters' example connections are valid for.
    let registry = Registry::new(&Settings::sandboxed("http://127.0.0.1:9").expect("a valid base"));
    let mut group = c.benchmark_group("authenticate+parse");
    group.throughput(Throughput::Elements(1));
    for adapter in registry.all() {
        let (connection, secrets) = example_connection(adapter);
        for kind in [RouteKind::Status, RouteKind::Message] {
            let request = sample_request(adapter, kind, &connection, &secrets);
            let name = format!("{}/{}", adapter.provider(), kind.as_str());
            group.bench_function(&name, |b| {
                b.iter(|| {
                    adapter
                        .authenticate(black_box(&request), &connection, &secrets)
                        .unwrap();
                    black_box(adapter.parse(&request, kind, &connection).unwrap());
                })
            });
        }
    }
    group.finish();
}

fn receive_pipeline(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        public_base_url: Some("https://sms.example.com".parse().unwrap()),
        ..Settings::default()
    };
    let deps = Deps::embedded(dir.path(), settings).unwrap();
    let file = serde_json::json!({"provider": "twilio", "name": "bench", "accountSid": ACCOUNT, "authToken": TOKEN, "from": "+14155550199"});
    runtime
        .block_on(admin::add_connection(
            &deps,
            "ORG_1",
            Some("conn_1"),
            &file,
            None,
        ))
        .unwrap();
    let route = Route::from_path(PATH).unwrap();
    let mut n = 0u64;
    c.bench_function(
        "receive pipeline: a new Twilio inbound, embedded store",
        |b| {
            b.to_async(&runtime).iter_batched(
                || {
                    n += 1;
                    inbound(&format!("SM{n:032x}"))
                },
                |request| {
                    let (deps, route) = (&deps, &route);
                    async move {
                        let reply = receive::receive(deps, route, &request).await;
                        assert_eq!(reply.status, 200);
                    }
                },
                criterion::BatchSize::SmallInput,
            )
        },
    );
}

criterion_group!(benches, verify_and_parse, receive_pipeline);
criterion_main!(benches);
