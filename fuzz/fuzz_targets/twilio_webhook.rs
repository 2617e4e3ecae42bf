//! Any request on a Twilio route: media-type check, signature verification and parsing must
//! answer, never panic. The first bytes choose the method, content type and query; the rest is
//! the body. A fixed connection and token let well-formed inputs get past authentication too.

#![no_main]

use byosms::domain::{Access, Connection, ConnectionSecrets, Provider};
use byosms::providers::{ProviderAdapter, twilio::Twilio};
use byosms::webhook::{RouteKind, WebhookRequest};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [&str; 4] = [
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded; charset=utf-8",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (query, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (String::from_utf8_lossy(&rest[..i]).into_owned(), &rest[i + 1..]),
        None => (String::new(), rest),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static(CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()]),
    );
    let url = "https://sms.example.com/distribution-providers/v1/receive/distribution/status/twilio-sms/ORG_1";
    let public_url = if query.is_empty() { url.to_string() } else { format!("{url}?{query}") };
    let mut secrets = ConnectionSecrets::default();
    secrets.insert("authToken", "0123456789abcdef0123456789abcdef".into());
    // A signature over the input itself, so the parser behind the check is reached as well.
    let params: Vec<(String, String)> = byosms::webhook::WebhookRequest {
        method: http::Method::POST,
        public_url: public_url.clone(),
        raw_query: query.clone(),
        headers: headers.clone(),
        body: bytes::Bytes::copy_from_slice(body),
        received_at: chrono::Utc::now(),
    }
    .form_pairs()
    .unwrap_or_default();
    if selector & 0x80 == 0 {
        let sig = byosms::providers::twilio::signature("0123456789abcdef0123456789abcdef", &public_url, &params);
        headers.insert("x-twilio-signature", http::HeaderValue::from_str(&sig).unwrap());
    }
    let request = WebhookRequest {
        method: if selector & 0x40 == 0 { http::Method::POST } else { http::Method::GET },
        public_url,
        raw_query: query,
        headers,
        body: bytes::Bytes::copy_from_slice(body),
        received_at: chrono::Utc::now(),
    };
    let connection = Connection {
        org_id: "ORG_1".into(),
        connection_id: "conn_1".into(),
        provider: Provider::Twilio,
        name: "fuzz".into(),
        access: Access::All,
        enabled: true,
        settings: serde_json::json!({"accountSid": "AC0123456789abcdef0123456789abcdef", "from": "+14155550199"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        created_at: chrono::Utc::now(),
    };
    let twilio = Twilio::default();
    let _ = twilio.check_media_type(&request);
    let _ = twilio.authenticate(&request, &connection, &secrets);
    for route in [RouteKind::Message, RouteKind::Status] {
        let _ = twilio.parse(&request, route);
    }
});
