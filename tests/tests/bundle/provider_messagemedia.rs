//! MessageMedia through the bundle: the exact send request against a strict mock (method, path,
//! Basic auth, every field) and its error answers; a table of bad webhooks through the gateway,
//! each answered with its status and nothing stored; then good webhooks on both stores:
//! statuses monotonic and deduplicated, unknown words kept, replies and reports told apart by
//! shape at one URL, a reply linked to the message it names, `OPT_OUT_SMS`, SHA-224/256/512
//! signatures from PKCS#1 and SPKI keys, the `Date` replay window and the regional hosts.

use crate::support::*;
use byosms::domain::{Event, Provider, Status};
use byosms::pipeline::admin;
use byosms::pipeline::receive::receive;
use byosms::pipeline::send::{ResultStatus, SendItem, SendRequest, SendResult, send};
use byosms::providers::messagemedia::signature::{self, Digest};
use byosms::webhook::{Route, WebhookRequest};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use std::sync::OnceLock;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PREFIX: &str = "/distribution-providers/v1/receive/distribution";
const API_KEY: &str = "MMKEY0123456789ABCDE";
/// Distinctive, so a search of answers for it cannot miss.
const API_SECRET: &str = "mmSecret5ec2e7f00d5ec2e7f00d99";
const OUR_NUMBER: &str = "+61491570157";
const RECIPIENT: &str = "+61491570156";

/// Keys made once per run (RSA key generation is slow in a debug build).
fn test_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap())
}

fn other_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap())
}

fn spki_pem(key: &RsaPrivateKey) -> String {
    RsaPublicKey::from(key)
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

fn pkcs1_pem(key: &RsaPrivateKey) -> String {
    RsaPublicKey::from(key)
        .to_pkcs1_pem(LineEnding::CRLF)
        .unwrap()
}

/// A MessageMedia connection of this file's credentials, its webhooks signed by `public_pem`.
async fn add_messagemedia(deps: &TestDeps, org: &str, public_pem: &str, extra: Value) {
    let mut overrides = json!({
        "apiKey": API_KEY,
        "apiSecret": API_SECRET,
        "from": OUR_NUMBER,
        "webhookPublicKey": public_pem,
        "webhookKeyId": null,
    });
    if let (Value::Object(o), Value::Object(e)) = (&mut overrides, extra) {
        o.extend(e);
    }
    add_connection_with(deps, Provider::Messagemedia, org, "conn_1", overrides).await;
}

fn basic() -> String {
    use base64::Engine;
    let raw = format!("{API_KEY}:{API_SECRET}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

async fn send_one(deps: &TestDeps, org: &str, message_id: &str, to: &str) -> SendResult {
    let request = SendRequest {
        org_id: org.into(),
        connection_id: None,
        user_id: "UR_1".into(),
        messages: vec![SendItem {
            message_id: message_id.into(),
            to: to.into(),
            body: "Take our survey: https://x.y/z".into(),
        }],
    };
    send(deps, &request).await.unwrap().results.remove(0)
}

// ---------------------------------------------------------------------------------------------
// Send

#[tokio::test]
async fn the_send_request_is_exactly_what_messagemedia_documents() {
    let api = MockServer::start().await;
    let deps = deps(
        Backend::Embedded,
        settings_with_api_urls(&[(Provider::Messagemedia, api.uri())]),
    )
    .await;
    add_messagemedia(&deps, ORG, &spki_pem(test_key()), json!({})).await;
    let expected = json!({"messages": [{
        "content": "Take our survey: https://x.y/z",
        "destination_number": RECIPIENT,
        "source_number": OUR_NUMBER,
        "source_number_type": "INTERNATIONAL",
        "format": "SMS",
        "delivery_report": true,
        "callback_url": format!("https://sms.example.test{PREFIX}/status/messagemedia-sms/{ORG}"),
        "metadata": {"messageId": "mm-send-1"},
    }]});
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("authorization", basic().as_str()))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(body_json(&expected))
        .respond_with(
            ResponseTemplate::new(202).set_body_json(json!({"messages": [{
                "content": "Take our survey: https://x.y/z",
                "destination_number": RECIPIENT,
                "message_id": "04fe9a97-a579-43c5-bb1a-58ed29bf0a6a",
                "status": "queued",
                "delivery_report": true,
                "format": "SMS",
            }]})),
        )
        .expect(1)
        .mount(&api)
        .await;
    let result = send_one(&deps, ORG, "mm-send-1", RECIPIENT).await;
    assert_eq!(result.status, ResultStatus::Accepted, "{result:?}");
    assert_eq!(
        result.provider_message_id.as_deref(),
        Some("04fe9a97-a579-43c5-bb1a-58ed29bf0a6a")
    );
    let record = deps
        .stores
        .messages
        .get_message(ORG, "mm-send-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Some(Status::Accepted));
}

#[tokio::test]
async fn error_answers_are_classified_and_only_unaccepted_ones_retried() {
    use byosms::domain::SendErrorCode as C;
    let cases: Vec<(ResponseTemplate, C, u64)> = vec![
        (
            ResponseTemplate::new(400).set_body_json(json!({
                "message": "Request failed to parse correctly.",
                "details": ["/messages/0/destination_number: International address must be between 8 and 15 characters excluding the first '+'"],
            })),
            C::InvalidNumber,
            1,
        ),
        (
            ResponseTemplate::new(401)
                .set_body_json(json!({"message": "Invalid authentication credentials"})),
            C::AuthFailed,
            1,
        ),
        (
            ResponseTemplate::new(404).set_body_json(json!({"message": "Resource not found."})),
            C::ConfigError,
            1,
        ),
        (
            ResponseTemplate::new(429).insert_header("retry-after", "0"),
            C::Throttled,
            3,
        ),
        (ResponseTemplate::new(503), C::ProviderUnavailable, 3),
        (ResponseTemplate::new(500), C::OutcomeUnknown, 1),
    ];
    for (i, (answer, code, hits)) in cases.into_iter().enumerate() {
        let api = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(answer)
            .expect(hits)
            .mount(&api)
            .await;
        let deps = deps(
            Backend::Embedded,
            settings_with_api_urls(&[(Provider::Messagemedia, api.uri())]),
        )
        .await;
        add_messagemedia(&deps, ORG, &spki_pem(test_key()), json!({})).await;
        let result = send_one(&deps, ORG, &format!("mm-err-{i}"), RECIPIENT).await;
        let error = result.error.expect("an error");
        assert_eq!(
            (result.status, error.code),
            (ResultStatus::Failed, code),
            "{code}: {}",
            error.message
        );
        assert!(!error.message.contains(API_SECRET));
        api.verify().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Signed requests

/// A request as MessageMedia signs it: `POST {target} HTTP/1.1` + `Date` + body, with `key`.
struct Signed {
    target: String,
    date: String,
    digest: &'static str,
    body: Vec<u8>,
    signature: String,
}

fn sign_with(
    key: &RsaPrivateKey,
    target: &str,
    at: DateTime<Utc>,
    digest: Digest,
    body: &[u8],
) -> Signed {
    let date = signature::format_date(at);
    let bytes = signature::signed_bytes("POST", target, &date, body);
    Signed {
        target: target.into(),
        signature: signature::sign(key, digest, &bytes),
        date,
        digest: digest.header_value(),
        body: body.to_vec(),
    }
}

fn sign(target: &str, body: &Value) -> Signed {
    sign_with(
        test_key(),
        target,
        Utc::now(),
        Digest::Sha256,
        body.to_string().as_bytes(),
    )
}

fn route_path(kind: &str, org: &str) -> String {
    format!("{PREFIX}/{kind}/messagemedia-sms/{org}")
}

/// The pipeline's view of `signed`, received now at the public test host.
fn webhook(signed: &Signed) -> WebhookRequest {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("date", signed.date.as_str()),
        ("x-messagemedia-signature", signed.signature.as_str()),
        ("x-messagemedia-digest-type", signed.digest),
        ("x-messagemedia-cipher-type", "RSA"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    WebhookRequest {
        method: Method::POST,
        public_url: format!("https://sms.example.test{}", signed.target),
        raw_path: signed.target.clone(),
        raw_query: String::new(),
        headers,
        body: Bytes::from(signed.body.clone()),
        received_at: Utc::now(),
    }
}

fn delivery_report(
    provider_id: &str,
    report_id: &str,
    status: &str,
    our_id: Option<&str>,
) -> Value {
    let mut report = json!({
        "callback_url": format!("https://sms.example.test{}", route_path("status", ORG)),
        "delivery_report_id": report_id,
        "source_number": RECIPIENT,
        "date_received": "2026-07-18T06:33:52.000Z",
        "status": status,
        "delay": 0,
        "submitted_date": "2026-07-18T06:33:50.000Z",
        "message_id": provider_id,
        "vendor_account_id": {"vendor_id": "MessageMedia", "account_id": "Acc"},
        "metadata": {},
    });
    if let Some(id) = our_id {
        report["metadata"] = json!({"messageId": id});
    }
    report
}

// ---------------------------------------------------------------------------------------------
// Bad webhooks through the gateway

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
}

fn signed_headers(signed: &Signed) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("date", signed.date.clone()),
        ("x-messagemedia-signature", signed.signature.clone()),
        ("x-messagemedia-digest-type", signed.digest.into()),
        ("x-messagemedia-cipher-type", "RSA".into()),
    ]
}

fn without(headers: &[(&'static str, String)], name: &str) -> Vec<(&'static str, String)> {
    headers
        .iter()
        .filter(|(n, _)| *n != name)
        .cloned()
        .collect()
}

fn replaced(
    headers: &[(&'static str, String)],
    name: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    let mut changed = without(headers, name);
    changed.push((name, value.to_string()));
    changed
}

fn bad_cases() -> Vec<Case> {
    let ours = route_path("status", ORG);
    let report = delivery_report("877c19ef", "d-bad", "delivered", None);
    let good = sign(&ours, &report);
    let good_headers = signed_headers(&good);
    let case = |name, headers: Vec<(&'static str, String)>, body: Vec<u8>, status| Case {
        name,
        method: "POST",
        path: ours.clone(),
        headers,
        body,
        status,
    };
    let signed_body = |target: &str, body: &[u8], at: DateTime<Utc>, key: &RsaPrivateKey| {
        let signed = sign_with(key, target, at, Digest::Sha256, body);
        (signed_headers(&signed), body.to_vec())
    };
    let now = Utc::now();
    let (stale, stale_body) =
        signed_body(&ours, &good.body, now - Duration::minutes(6), test_key());
    let (future, future_body) =
        signed_body(&ours, &good.body, now + Duration::minutes(6), test_key());
    let (foreign, foreign_body) = signed_body(&ours, &good.body, now, other_key());
    let (other_url, other_url_body) =
        signed_body(&route_path("status", "ORG_2"), &good.body, now, test_key());
    let (string, string_body) = signed_body(&ours, br#""a string""#, now, test_key());
    let (not_json, not_json_body) = signed_body(&ours, b"{\"status\":", now, test_key());
    let (no_shape, no_shape_body) = signed_body(&ours, br#"{"hello":"world"}"#, now, test_key());
    let (no_id, no_id_body) = signed_body(&ours, br#"{"status":"delivered"}"#, now, test_key());
    let mut tampered = good.body.clone();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'a' { b'b' } else { b'a' };
    let truncated = good.body[..good.body.len() / 2].to_vec();
    let mut unknown_org = case("unknown org", good_headers.clone(), good.body.clone(), 404);
    unknown_org.path = route_path("status", "ORG_NOBODY");
    let mut unknown_slug = case(
        "unknown provider slug",
        good_headers.clone(),
        good.body.clone(),
        404,
    );
    unknown_slug.path = format!("{PREFIX}/status/messagemedia-mms/{ORG}");
    let mut put = case(
        "PUT instead of POST",
        good_headers.clone(),
        good.body.clone(),
        405,
    );
    put.method = "PUT";
    vec![
        case(
            "no signature",
            without(&good_headers, "x-messagemedia-signature"),
            good.body.clone(),
            401,
        ),
        case(
            "no Date",
            without(&good_headers, "date"),
            good.body.clone(),
            401,
        ),
        case(
            "no digest type",
            without(&good_headers, "x-messagemedia-digest-type"),
            good.body.clone(),
            401,
        ),
        case(
            "signature that is not base64",
            replaced(&good_headers, "x-messagemedia-signature", "%%%"),
            good.body.clone(),
            403,
        ),
        case("signature by another key", foreign, foreign_body, 403),
        case(
            "digest type SHA1",
            replaced(&good_headers, "x-messagemedia-digest-type", "SHA1"),
            good.body.clone(),
            403,
        ),
        case(
            "digest type that lies (SHA512 for a SHA256 signature)",
            replaced(&good_headers, "x-messagemedia-digest-type", "SHA512"),
            good.body.clone(),
            403,
        ),
        case(
            "cipher other than RSA",
            replaced(&good_headers, "x-messagemedia-cipher-type", "DSA"),
            good.body.clone(),
            403,
        ),
        case("stale Date, correctly signed", stale, stale_body, 403),
        case("future Date, correctly signed", future, future_body, 403),
        case(
            "Date changed after signing",
            replaced(
                &good_headers,
                "date",
                &signature::format_date(now - Duration::seconds(1)),
            ),
            good.body.clone(),
            403,
        ),
        case("tampered body", good_headers.clone(), tampered, 403),
        case("truncated body", good_headers.clone(), truncated, 403),
        case("signed for another URL", other_url, other_url_body, 403),
        case("signed JSON string", string, string_body, 400),
        case("signed truncated JSON", not_json, not_json_body, 400),
        case(
            "signed object of no known shape",
            no_shape,
            no_shape_body,
            400,
        ),
        case("signed report without message_id", no_id, no_id_body, 400),
        case(
            "XML body",
            replaced(&good_headers, "content-type", "application/xml"),
            good.body.clone(),
            415,
        ),
        case(
            "oversize body",
            good_headers.clone(),
            vec![b' '; 1024 * 1024 + 1],
            413,
        ),
        unknown_org,
        unknown_slug,
        put,
    ]
}

#[tokio::test]
async fn bad_messagemedia_webhooks_are_refused_and_nothing_is_stored() {
    let deps = deps(Backend::Embedded, settings(None)).await;
    add_messagemedia(&deps, ORG, &spki_pem(test_key()), json!({})).await;
    add_messagemedia(&deps, "ORG_2", &spki_pem(other_key()), json!({})).await;
    let base = start_gateway(deps.deps.clone()).await;
    let http = reqwest::Client::new();
    let cases = bad_cases();
    assert!(cases.len() >= 12);
    for case in cases {
        let mut request = http
            .request(case.method.parse().unwrap(), format!("{base}{}", case.path))
            .body(case.body.clone());
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, case.status, "{}: {body}", case.name);
        if status != 405 {
            assert!(
                body.contains("\"error\""),
                "{}: names the problem: {body}",
                case.name
            );
        }
        assert!(!body.contains(API_SECRET));
    }
    for org in [ORG, "ORG_2", "ORG_NOBODY"] {
        assert!(
            deps.stores
                .messages
                .list_events(org, 100)
                .await
                .unwrap()
                .is_empty(),
            "nothing stored for {org}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Good webhooks on both stores

async fn stand_in_deps(backend: Backend) -> TestDeps {
    let stand_in = start_stand_in(Provider::Messagemedia).await;
    deps(
        backend,
        settings_with_api_urls(&[(Provider::Messagemedia, stand_in)]),
    )
    .await
}

async fn post(deps: &TestDeps, kind: &str, body: &Value) -> u16 {
    let path = route_path(kind, ORG);
    let reply = receive(
        deps,
        &Route::from_path(&path).unwrap(),
        &webhook(&sign(&path, body)),
    )
    .await;
    assert!(reply.status == 200 || reply.status >= 400, "{}", reply.body);
    reply.status
}

fn sent_id(result: &SendResult) -> String {
    result
        .provider_message_id
        .clone()
        .unwrap_or_else(|| panic!("not sent: {result:?}"))
}

#[tokio::test]
async fn reports_are_monotonic_deduplicated_and_unknown_words_kept() {
    for backend in BACKENDS {
        let deps = stand_in_deps(backend).await;
        add_messagemedia(&deps, ORG, &spki_pem(test_key()), json!({})).await;
        let id = sent_id(&send_one(&deps, ORG, "m1", RECIPIENT).await);
        let reports = [
            ("d1", "enroute", Some("m1")),
            ("d2", "submitted", Some("m1")),
            ("d3", "delivered", Some("m1")),
            ("d3", "delivered", Some("m1")), // MessageMedia's retry
            ("d4", "submitted", None),       // late, and found by its message_id
            ("d5", "exploded", Some("m1")),
            ("d6", "undefined", Some("m1")),
        ];
        for (report_id, word, our_id) in reports {
            let status = post(
                &deps,
                "status",
                &delivery_report(&id, report_id, word, our_id),
            )
            .await;
            assert_eq!(status, 200, "{backend:?} {word}");
        }
        let record = deps
            .stores
            .messages
            .get_message(ORG, "m1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.status,
            Some(Status::Delivered),
            "{backend:?}: finals are sticky"
        );
        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        let seen: Vec<_> = events
            .iter()
            .map(|e| match e {
                Event::Status(s) => (
                    s.provider_status.as_str(),
                    s.status,
                    s.message_id.as_deref(),
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("enroute", Status::Queued, Some("m1")),
                ("submitted", Status::Sent, Some("m1")),
                ("delivered", Status::Delivered, Some("m1")),
                ("submitted", Status::Sent, Some("m1")),
                ("exploded", Status::Unknown, Some("m1")),
                ("undefined", Status::Unknown, Some("m1")),
            ],
            "{backend:?}: the retried report is recorded once"
        );
    }
}

#[tokio::test]
async fn replies_and_reports_share_a_url_and_replies_link_to_the_message_they_name() {
    for backend in BACKENDS {
        let deps = stand_in_deps(backend).await;
        add_messagemedia(&deps, ORG, &spki_pem(test_key()), json!({})).await;
        let first = sent_id(&send_one(&deps, ORG, "m-first", RECIPIENT).await);
        sent_id(&send_one(&deps, ORG, "m-later", RECIPIENT).await);
        // A reply to the first message, pushed to its callback_url (our status route).
        let reply = json!({
            "reply_id": "a175e797-2b54-468b-9850-41a3eab32f74",
            "message_id": first,
            "content": "5",
            "date_received": "2026-07-18T06:40:00.000Z",
            "source_number": RECIPIENT,
            "destination_number": OUR_NUMBER,
            "metadata": {"messageId": "m-first"},
            "callback_url": format!("https://sms.example.test{}", route_path("status", ORG)),
            "vendor_account_id": {"vendor_id": "MessageMedia", "account_id": "Acc"},
        });
        assert_eq!(post(&deps, "status", &reply).await, 200);
        assert_eq!(post(&deps, "status", &reply).await, 200, "a retry");
        // The same reply again through the account webhook: one event still.
        assert_eq!(post(&deps, "message", &reply).await, 200);
        // Without our metadata, the provider's id of the message answered links it.
        let mut bare = reply.clone();
        bare["reply_id"] = json!("b275e797-2b54-468b-9850-41a3eab32f74");
        bare["metadata"] = json!({});
        assert_eq!(post(&deps, "message", &bare).await, 200);
        // A report on the message route is recorded as a report.
        assert_eq!(
            post(
                &deps,
                "message",
                &delivery_report(&first, "d-x", "delivered", None)
            )
            .await,
            200
        );

        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        assert_eq!(events.len(), 3, "{backend:?}: {events:?}");
        for event in &events[..2] {
            let Event::Inbound(r) = event else {
                panic!("{event:?}")
            };
            assert_eq!(
                (
                    r.in_reply_to.as_deref(),
                    r.from.as_str(),
                    r.to.as_str(),
                    r.text.as_str()
                ),
                (Some("m-first"), RECIPIENT, OUR_NUMBER, "5"),
                "{backend:?}: linked to the message it names, not the latest"
            );
        }
        assert!(
            matches!(&events[2], Event::Status(s) if s.message_id.as_deref() == Some("m-first"))
        );
    }
}

#[tokio::test]
async fn opt_out_sms_opts_the_number_out_even_without_a_message() {
    for backend in BACKENDS {
        let deps = stand_in_deps(backend).await;
        add_messagemedia(&deps, ORG, &spki_pem(test_key()), json!({})).await;
        // An unsolicited opt-out through the account webhook (our template), no message_id.
        let opt_out = json!({
            "reply_id": "",
            "notification_id": "3e6e6b1a-6c1d-4b1a-9c1e-6f1a6b1a6c1d",
            "message_id": "",
            "source_number": RECIPIENT,
            "destination_number": OUR_NUMBER,
            "date_received": "2026-07-18T06:44:00.850Z",
            "content": "Remove me",
            "metadata": {"messageId": ""},
        });
        assert_eq!(post(&deps, "message", &opt_out).await, 200);
        assert!(
            deps.stores
                .messages
                .is_opted_out(ORG, RECIPIENT)
                .await
                .unwrap(),
            "{backend:?}"
        );
        let events = deps.stores.messages.list_events(ORG, 10).await.unwrap();
        let Event::Inbound(e) = &events[0] else {
            panic!()
        };
        assert!(e.opt_out);
        let refused = send_one(&deps, ORG, "m-after", RECIPIENT).await;
        assert_eq!(
            refused.status,
            ResultStatus::Failed,
            "{backend:?}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn every_digest_and_key_form_verifies_and_the_date_window_holds() {
    let deps = deps(Backend::Embedded, settings(None)).await;
    // The key as PKCS#1 PEM: stored as SPKI, verifying the same.
    add_messagemedia(&deps, ORG, &pkcs1_pem(test_key()), json!({})).await;
    let path = route_path("status", ORG);
    let route = Route::from_path(&path).unwrap();
    let now = Utc::now();
    for (i, digest) in [Digest::Sha224, Digest::Sha256, Digest::Sha512]
        .into_iter()
        .enumerate()
    {
        let body = delivery_report("p1", &format!("d{i}"), "submitted", None).to_string();
        let signed = sign_with(test_key(), &path, now, digest, body.as_bytes());
        let reply = receive(&deps, &route, &webhook(&signed)).await;
        assert_eq!(reply.status, 200, "{digest:?}: {}", reply.body);
    }
    // Dashed digest names, as the 2026 spec shows them.
    let body = delivery_report("p1", "d-dash", "submitted", None).to_string();
    let signed = sign_with(test_key(), &path, now, Digest::Sha512, body.as_bytes());
    let mut request = webhook(&signed);
    request.headers.insert(
        "x-messagemedia-digest-type",
        HeaderValue::from_static("SHA-512"),
    );
    assert_eq!(receive(&deps, &route, &request).await.status, 200);
    for (minutes, expected) in [(-4, 200), (4, 200), (-6, 403), (6, 403)] {
        let body = delivery_report("p1", &format!("w{minutes}"), "submitted", None).to_string();
        let signed = sign_with(
            test_key(),
            &path,
            now + Duration::minutes(minutes),
            Digest::Sha256,
            body.as_bytes(),
        );
        let reply = receive(&deps, &route, &webhook(&signed)).await;
        assert_eq!(reply.status, expected, "{minutes} min: {}", reply.body);
    }
    let stored = deps
        .stores
        .connections
        .get_connection(ORG, "conn_1")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored
            .setting("webhookPublicKey")
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----"),
        "stored as SPKI PEM"
    );
}

#[tokio::test]
async fn regional_api_hosts_are_allowed_and_others_refused() {
    let deps = deps(Backend::Embedded, settings(None)).await;
    for (i, host) in [
        "api.messagemedia.com",
        "eu.app.api.sinch.com",
        "au.app.api.sinch.com",
    ]
    .into_iter()
    .enumerate()
    {
        add_messagemedia_with_host(&deps, &format!("conn_ok_{i}"), host)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    for host in [
        "api.example.com",
        "169.254.169.254",
        "localhost",
        "api.messagemedia.com.evil.test",
    ] {
        let err = add_messagemedia_with_host(&deps, "conn_bad", host)
            .await
            .unwrap_err();
        assert!(err.contains("apiHost"), "{host}: {err}");
        assert!(!err.contains(API_SECRET));
    }
}

async fn add_messagemedia_with_host(deps: &TestDeps, id: &str, host: &str) -> Result<(), String> {
    let input = json!({
        "provider": "messagemedia",
        "name": "MessageMedia",
        "apiKey": API_KEY,
        "apiSecret": API_SECRET,
        "from": OUR_NUMBER,
        "webhookPublicKey": spki_pem(test_key()),
        "apiHost": host,
    });
    admin::add_connection(deps, ORG, Some(id), &input, None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
