//! Any request on any registered provider's webhook routes: every adapter's media-type check,
//! authentication and parsing must answer, never panic.
//!
//! The first byte chooses: the adapter among `Registry::all()` (low four bits), the method
//! (bit 4: POST or GET), whether the request starts from the headers of the adapter's own signed
//! sample (bit 5: its signature header is then present, so the checks behind it are reached), and
//! which sample, or else which content type (bits 6 and 7). The rest is the query, a newline and
//! the body. Each adapter authenticates against its example connection.

#![no_main]

use byosms::Settings;
use byosms::domain::{Access, Connection, ConnectionSecrets};
use byosms::providers::{ProviderAdapter, Registry, SampleEvent};
use byosms::webhook::{Route, RouteKind, WebhookRequest};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use url::Url;

const CONTENT_TYPES: [&str; 4] = [
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded; charset=utf-8",
];
const ROUTES: [RouteKind; 2] = [RouteKind::Message, RouteKind::Status];

/// One adapter with its example connection and the headers of its two signed samples.
struct Fixture {
    adapter: &'static dyn ProviderAdapter,
    connection: Connection,
    secrets: ConnectionSecrets,
    /// By route: the inbound sample's headers, then the status sample's.
    sample_headers: [HeaderMap; 2],
}

fn base_url() -> Url {
    Url::parse("https://sms.example.com").expect("a valid constant")
}

fn fixtures() -> &'static [Fixture] {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| {
        // A sandboxed deployment: the one the adapters' example connections are valid for.
        Registry::new(&Settings::sandboxed("http://127.0.0.1:9").expect("a valid base"))
    });
    FIXTURES.get_or_init(|| registry.all().map(fixture).collect())
}

fn fixture(adapter: &'static dyn ProviderAdapter) -> Fixture {
    let provider = adapter.provider();
    let fields = adapter
        .validate_connection(&adapter.example_fields())
        .unwrap_or_else(|e| panic!("{provider}'s example connection is invalid: {e}"));
    let connection = Connection {
        org_id: "ORG_1".into(),
        connection_id: "conn_1".into(),
        provider,
        name: "fuzz".into(),
        access: Access::All,
        enabled: true,
        settings: fields.settings,
        created_at: chrono::Utc::now(),
    };
    let inbound = SampleEvent::Inbound {
        from: "+14155550100".into(),
        to: connection.setting("from").unwrap_or("+14155550199").into(),
        text: "5".into(),
    };
    let status = SampleEvent::Status {
        message_id: Some("fuzz-1".into()),
        provider_message_id: "fuzz-provider-id".into(),
        provider_status: "delivered".into(),
        error_code: None,
    };
    let headers = |kind: RouteKind, event: &SampleEvent| {
        Route::url(&base_url(), kind, provider, &connection.org_id)
            .and_then(|url| {
                adapter
                    .sample_webhook(event, &url, &connection, &fields.secrets)
                    .ok()
            })
            .map(|sample| header_map(&sample.headers))
            .unwrap_or_default()
    };
    let sample_headers = [
        headers(RouteKind::Message, &inbound),
        headers(RouteKind::Status, &status),
    ];
    Fixture {
        adapter,
        connection,
        secrets: fields.secrets,
        sample_headers,
    }
}

fn header_map(headers: &[(String, String)]) -> HeaderMap {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(value).ok()?,
            ))
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let fixtures = fixtures();
    let Some(fixture) = fixtures.get(usize::from(selector & 0x0f) % fixtures.len().max(1)) else {
        return;
    };
    let method = if selector & 0x10 == 0 {
        Method::POST
    } else {
        Method::GET
    };
    let choice = usize::from(selector >> 6);
    let headers = if selector & 0x20 != 0 {
        fixture.sample_headers[choice % 2].clone()
    } else {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(CONTENT_TYPES[choice % CONTENT_TYPES.len()]),
        );
        headers
    };
    let (query, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (
            String::from_utf8_lossy(&rest[..i]).into_owned(),
            &rest[i + 1..],
        ),
        None => (String::new(), rest),
    };
    let route = ROUTES[choice % 2];
    let Some(url) = Route::url(&base_url(), route, fixture.connection.provider, "ORG_1") else {
        return;
    };
    let public_url = if query.is_empty() {
        url.to_string()
    } else {
        format!("{url}?{query}")
    };
    let request = WebhookRequest {
        method,
        public_url,
        raw_path: url.path().to_string(),
        raw_query: query,
        headers,
        body: bytes::Bytes::copy_from_slice(body),
        received_at: chrono::Utc::now(),
    };
    let adapter = fixture.adapter;
    let _ = adapter.check_media_type(&request);
    let _ = adapter.authenticate(&request, &fixture.connection, &fixture.secrets);
    for route in ROUTES {
        let _ = adapter.parse(&request, route, &fixture.connection);
    }
});
