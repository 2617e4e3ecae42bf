//! What one Twilio webhook costs us: verifying and parsing it (CPU only), and the whole receive
//! pipeline on the embedded store (route, connection lookup, secret, verification, parsing,
//! status step and event write). `cargo bench -p byosms --bench webhook`.

use byosms::domain::{Access, Connection, ConnectionSecrets, Provider};
use byosms::pipeline::{admin, receive};
use byosms::providers::ProviderAdapter;
use byosms::providers::twilio::{self, Twilio};
use byosms::webhook::{Route, RouteKind, WebhookRequest};
use byosms::{Deps, Settings};
use criterion::{Criterion, criterion_group, criterion_main};
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

fn verify_and_parse(c: &mut Criterion) {
    let twilio = Twilio::default();
    let mut secrets = ConnectionSecrets::default();
    secrets.insert("authToken", TOKEN.into());
    let connection = Connection {
        org_id: "ORG_1".into(),
        connection_id: "conn_1".into(),
        provider: Provider::Twilio,
        name: "bench".into(),
        access: Access::All,
        enabled: true,
        settings: serde_json::json!({"accountSid": ACCOUNT, "from": "+14155550199"})
            .as_object()
            .unwrap()
            .clone(),
        created_at: chrono::Utc::now(),
    };
    let request = inbound("SM00000000000000000000000000000001");
    c.bench_function(
        "twilio: verify X-Twilio-Signature and parse an inbound",
        |b| {
            b.iter(|| {
                twilio
                    .authenticate(black_box(&request), &connection, &secrets)
                    .unwrap();
                black_box(
                    twilio
                        .parse(&request, RouteKind::Message, &connection)
                        .unwrap(),
                );
            })
        },
    );
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
