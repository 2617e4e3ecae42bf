//! Sinch through the whole bundle: the exact token and `messages:send` requests against a strict
//! mock (and each error answer's classification), the OAuth2 token's life (cached, fetched once
//! for many concurrent sends, replaced before it expires, fetched again once after a 401, a
//! rotated client secret taking effect), a table of bad webhooks through the gateway (each
//! answered with its status, nothing stored), and what good callbacks record on both stores.

use crate::support::*;
use base64::Engine;
use byosms::domain::{ConnectionSecrets, Event, Provider, SendErrorCode, Status};
use byosms::pipeline::admin;
use byosms::pipeline::receive::receive;
use byosms::pipeline::send::{ResultStatus, SendItem, SendRequest, SendResult, send};
use byosms::providers::sinch::{
    ALGORITHM, ALGORITHM_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature,
};
use byosms::webhook::{Route, WebhookRequest};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{body_json, body_partial_json, body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PREFIX: &str = "/distribution-providers/v1/receive/distribution";
const CLIENT_ID: &str = "2f6e1b7c-0a4d-4c3e-9b8a-5d7f6e1c2b3a";
/// Distinctive, so a search of answers for them cannot miss.
const CLIENT_SECRET: &str = "5inch-client-secret-d00d";
const WEBHOOK_SECRET: &str = "5inch-webhook-secret-f00d";
const PROJECT: &str = "c36f3d3d-1513-2edd-ae42-11995557ff61";
const APP: &str = "01E3S8B6YCMRNR0GGM94H80ACX";
const SINCH_FROM: &str = "+46700000000";
const SINCH_ID: &str = "01EQBC1A3BEK731GY4YXEN0C2R";

fn send_path() -> String {
    format!("/v1/projects/{PROJECT}/messages:send")
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

async fn add_sinch(deps: &TestDeps, org: &str, secret: &str, region: &str) {
    let overrides = json!({
        "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "region": region,
        "projectId": PROJECT, "appId": APP, "from": SINCH_FROM, "webhookSecret": secret,
    });
    add_connection_with(deps, Provider::Sinch, org, "conn_1", overrides).await;
}

/// Deps whose Sinch API and token endpoint are `sinch`, with one Sinch connection in [`ORG`].
async fn sinch_deps(backend: Backend, sinch: &MockServer) -> TestDeps {
    let deps = deps(
        backend,
        settings_with_api_urls(&[(Provider::Sinch, sinch.uri())]),
    )
    .await;
    add_sinch(&deps, ORG, WEBHOOK_SECRET, "eu").await;
    deps
}

fn token_answer(token: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": token, "expires_in": expires_in, "scope": "", "token_type": "bearer",
    }))
}

/// The token request exactly as Sinch documents it.
fn token_request(secret: &str) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .and(header("authorization", basic(CLIENT_ID, secret)))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("grant_type=client_credentials"))
}

fn accepted(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({ "message_id": id, "accepted_time": "2024-06-18T12:34:56Z" }))
}

fn rpc_error(http: u16, status: &str, details: Value) -> ResponseTemplate {
    ResponseTemplate::new(http).set_body_json(json!({
        "error": { "code": http, "message": format!("{status}: refused"), "status": status, "details": details }
    }))
}

async fn send_one(deps: &TestDeps, message_id: &str, to: &str) -> SendResult {
    let request = SendRequest {
        org_id: ORG.into(),
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
async fn the_send_request_is_exactly_sinchs() {
    let sinch = MockServer::start().await;
    token_request(CLIENT_SECRET)
        .respond_with(token_answer("tok-1", 3599))
        .expect(1)
        .mount(&sinch)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .and(header("authorization", "Bearer tok-1"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "app_id": APP,
            "recipient": { "identified_by": { "channel_identities": [ { "channel": "SMS", "identity": TO } ] } },
            "message": { "text_message": { "text": "Take our survey: https://x.y/z" } },
            "channel_priority_order": ["SMS"],
            "channel_properties": { "SMS_SENDER": "46700000000" },
            "message_metadata": "dist42-r1",
            "correlation_id": "dist42-r1",
            "processing_strategy": "DEFAULT",
            "ttl": "86400s",
        })))
        .respond_with(accepted(SINCH_ID))
        .expect(1)
        .mount(&sinch)
        .await;
    let deps = sinch_deps(Backend::Embedded, &sinch).await;
    let result = send_one(&deps, "dist42-r1", TO).await;
    assert_eq!(result.status, ResultStatus::Accepted, "{result:?}");
    assert_eq!(result.provider_message_id.as_deref(), Some(SINCH_ID));
    let record = deps
        .stores
        .messages
        .get_message(ORG, "dist42-r1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Some(Status::Accepted));
    sinch.verify().await;
}

#[tokio::test]
async fn sinchs_error_answers_are_classified() {
    let sinch = MockServer::start().await;
    token_request(CLIENT_SECRET)
        .respond_with(token_answer("tok-1", 3599))
        .mount(&sinch)
        .await;
    let identity = json!([{ "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{ "field": "recipient.identified_by.channel_identities[0].identity", "description": "bad" }] }]);
    let cases: Vec<(&str, ResponseTemplate, SendErrorCode, bool)> = vec![
        (
            "+46700000101",
            rpc_error(400, "INVALID_ARGUMENT", identity),
            SendErrorCode::InvalidNumber,
            false,
        ),
        (
            "+46700000102",
            rpc_error(400, "INVALID_ARGUMENT", json!([])),
            SendErrorCode::Rejected,
            false,
        ),
        (
            "+46700000103",
            rpc_error(403, "PERMISSION_DENIED", json!([])),
            SendErrorCode::AuthFailed,
            false,
        ),
        (
            "+46700000104",
            rpc_error(404, "NOT_FOUND", json!([])),
            SendErrorCode::ConfigError,
            false,
        ),
        (
            "+46700000105",
            rpc_error(429, "RESOURCE_EXHAUSTED", json!([])).insert_header("Retry-After", "60"),
            SendErrorCode::Throttled,
            true,
        ),
        (
            "+46700000106",
            rpc_error(503, "UNAVAILABLE", json!([])).insert_header("Retry-After", "60"),
            SendErrorCode::ProviderUnavailable,
            true,
        ),
        (
            "+46700000107",
            rpc_error(500, "INTERNAL", json!([])),
            SendErrorCode::OutcomeUnknown,
            false,
        ),
    ];
    for (to, answer, _, _) in &cases {
        let recipient = json!({ "recipient": { "identified_by": { "channel_identities": [ { "channel": "SMS", "identity": to } ] } } });
        Mock::given(method("POST"))
            .and(path(send_path()))
            .and(body_partial_json(recipient))
            .respond_with(answer.clone())
            .mount(&sinch)
            .await;
    }
    let deps = sinch_deps(Backend::Embedded, &sinch).await;
    for (i, (to, _, code, retryable)) in cases.iter().enumerate() {
        let result = send_one(&deps, &format!("err-{i}"), to).await;
        let error = result.error.unwrap_or_else(|| panic!("{to} was accepted"));
        assert_eq!(
            (error.code, error.retryable),
            (*code, *retryable),
            "{to}: {}",
            error.message
        );
        assert!(!error.message.contains(CLIENT_SECRET));
        let record = deps
            .stores
            .messages
            .get_message(ORG, &format!("err-{i}"))
            .await
            .unwrap();
        if *retryable {
            // Provably not accepted: the claim was given back for the caller's retry.
            assert!(record.is_none(), "{to}: {record:?}");
            continue;
        }
        // A 500 after the request left may have been accepted: never marked failed.
        let expected = (*code != SendErrorCode::OutcomeUnknown).then_some(Status::Failed);
        assert_eq!(record.map(|r| r.status), Some(expected), "{to}");
    }
}

// ---------------------------------------------------------------------------------------------
// The OAuth2 token

#[tokio::test]
async fn one_token_serves_twenty_concurrent_sends() {
    let sinch = MockServer::start().await;
    token_request(CLIENT_SECRET)
        // Slow enough that every send asks while the first fetch is in flight.
        .respond_with(token_answer("tok-shared", 3599).set_delay(Duration::from_millis(300)))
        .expect(1)
        .mount(&sinch)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .and(header("authorization", "Bearer tok-shared"))
        .respond_with(accepted(SINCH_ID))
        .expect(20)
        .mount(&sinch)
        .await;
    let deps = sinch_deps(Backend::Embedded, &sinch).await;
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..20 {
        let deps = deps.deps.clone();
        sends.spawn(async move {
            let request = SendRequest {
                org_id: ORG.into(),
                connection_id: None,
                user_id: "UR_1".into(),
                messages: vec![SendItem {
                    message_id: format!("c-{i}"),
                    to: TO.into(),
                    body: "survey".into(),
                }],
            };
            send(&deps, &request).await.unwrap().results.remove(0)
        });
    }
    let results = sends.join_all().await;
    assert!(
        results.iter().all(|r| r.status == ResultStatus::Accepted),
        "{results:?}"
    );
    sinch.verify().await;
}

#[tokio::test]
async fn a_token_is_replaced_shortly_before_it_expires() {
    let sinch = MockServer::start().await;
    // Two seconds of life: used for the first half, replaced after.
    token_request(CLIENT_SECRET)
        .respond_with(token_answer("tok-short", 2))
        .expect(2)
        .mount(&sinch)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .respond_with(accepted(SINCH_ID))
        .expect(3)
        .mount(&sinch)
        .await;
    let deps = sinch_deps(Backend::Embedded, &sinch).await;
    assert!(send_one(&deps, "e-1", TO).await.error.is_none());
    assert!(send_one(&deps, "e-2", TO).await.error.is_none());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(send_one(&deps, "e-3", TO).await.error.is_none());
    sinch.verify().await;
}

#[tokio::test]
async fn a_refused_token_is_fetched_again_once() {
    let sinch = MockServer::start().await;
    token_request(CLIENT_SECRET)
        .respond_with(token_answer("tok-old", 3599))
        .up_to_n_times(1)
        .expect(1)
        .mount(&sinch)
        .await;
    token_request(CLIENT_SECRET)
        .respond_with(token_answer("tok-new", 3599))
        .expect(1)
        .mount(&sinch)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .and(header("authorization", "Bearer tok-old"))
        .respond_with(rpc_error(401, "UNAUTHENTICATED", json!([])).insert_header(
            "WWW-Authenticate",
            "Bearer error=\"invalid_token\", expired",
        ))
        .expect(1)
        .mount(&sinch)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .and(header("authorization", "Bearer tok-new"))
        .respond_with(accepted(SINCH_ID))
        .expect(2)
        .mount(&sinch)
        .await;
    let deps = sinch_deps(Backend::Embedded, &sinch).await;
    let first = send_one(&deps, "r-1", TO).await;
    assert_eq!(first.status, ResultStatus::Accepted, "{first:?}");
    // The new token is kept: the next send fetches nothing.
    let second = send_one(&deps, "r-2", TO).await;
    assert_eq!(second.status, ResultStatus::Accepted, "{second:?}");
    sinch.verify().await;
}

#[tokio::test]
async fn a_token_refused_twice_is_an_auth_failure_not_a_loop() {
    let sinch = MockServer::start().await;
    token_request(CLIENT_SECRET)
        .respond_with(token_answer("tok-revoked", 3599))
        .expect(2)
        .mount(&sinch)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .respond_with(rpc_error(401, "UNAUTHENTICATED", json!([])))
        .expect(2)
        .mount(&sinch)
        .await;
    let deps = sinch_deps(Backend::Embedded, &sinch).await;
    let result = send_one(&deps, "r-3", TO).await;
    let error = result.error.unwrap();
    assert_eq!(
        (error.code, error.retryable),
        (SendErrorCode::AuthFailed, false)
    );
    sinch.verify().await;
}

#[tokio::test]
async fn a_rotated_client_secret_takes_effect() {
    for backend in BACKENDS {
        let sinch = MockServer::start().await;
        let rotated = "5inch-rotated-secret-beef";
        token_request(CLIENT_SECRET)
            .respond_with(token_answer("tok-before", 3599))
            .expect(1)
            .mount(&sinch)
            .await;
        token_request(rotated)
            .respond_with(token_answer("tok-after", 3599))
            .expect(1)
            .mount(&sinch)
            .await;
        for token in ["tok-before", "tok-after"] {
            Mock::given(method("POST"))
                .and(path(send_path()))
                .and(header("authorization", format!("Bearer {token}").as_str()))
                .respond_with(accepted(SINCH_ID))
                .expect(1)
                .mount(&sinch)
                .await;
        }
        let deps = sinch_deps(backend, &sinch).await;
        assert!(send_one(&deps, "s-1", TO).await.error.is_none());
        let mut secrets = ConnectionSecrets::default();
        secrets.insert("clientSecret", rotated.into());
        secrets.insert("webhookSecret", WEBHOOK_SECRET.into());
        deps.stores
            .secrets
            .put_secrets(ORG, "conn_1", &secrets)
            .await
            .unwrap();
        // The old token is still fresh, but it belongs to the old secret.
        let after = send_one(&deps, "s-2", TO).await;
        assert!(after.error.is_none(), "{backend:?}: {after:?}");
        sinch.verify().await;
    }
}

#[tokio::test]
async fn both_regions_are_accepted_and_others_refused() {
    let sinch = MockServer::start().await;
    let deps = deps(
        Backend::Embedded,
        settings_with_api_urls(&[(Provider::Sinch, sinch.uri())]),
    )
    .await;
    for (org, region) in [("ORG_US", "US"), ("ORG_EU", "eu")] {
        add_sinch(&deps, org, WEBHOOK_SECRET, region).await;
        let stored = deps
            .stores
            .connections
            .get_connection(org, "conn_1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.setting("region"),
            Some(region.to_ascii_lowercase().as_str())
        );
    }
    let mut input = deps.registry.get(Provider::Sinch).unwrap().example_fields();
    input.insert("provider".into(), json!("sinch"));
    input.insert("name".into(), json!("br"));
    input.insert("region".into(), json!("br"));
    let err = admin::add_connection(&deps, "ORG_BR", None, &Value::Object(input), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("region: must be eu or us"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Webhooks: bad requests through the gateway

fn inbound_body(id: &str, from: &str, text: &str) -> String {
    json!({
        "app_id": APP, "project_id": PROJECT,
        "accepted_time": "2024-06-18T12:35:01.184581Z", "event_time": "2024-06-18T12:35:01.1Z",
        "message_metadata": "",
        "message": {
            "id": id, "direction": "TO_APP",
            "contact_message": { "text_message": { "text": text } },
            "channel_identity": { "channel": "SMS", "identity": from.trim_start_matches('+'), "app_id": "" },
            "conversation_id": "", "contact_id": "", "metadata": "",
            "accept_time": "2024-06-18T12:35:01.179021Z", "sender_id": "46700000000",
            "processing_mode": "DISPATCH"
        }
    })
    .to_string()
}

fn delivery_body(
    message_id: &str,
    status: &str,
    ours: Option<&str>,
    reason: Option<&str>,
) -> String {
    let mut report = json!({
        "message_id": message_id, "conversation_id": "", "status": status,
        "channel_identity": { "channel": "SMS", "identity": TO.trim_start_matches('+'), "app_id": "" },
        "contact_id": "", "metadata": ours.unwrap_or(""), "processing_mode": "DISPATCH",
    });
    if let Some(code) = reason {
        report["reason"] =
            json!({ "code": code, "description": "", "sub_code": "UNSPECIFIED_SUB_CODE" });
    }
    json!({
        "app_id": APP, "project_id": PROJECT,
        "accepted_time": "2024-06-18T12:35:01.374Z", "event_time": "2024-06-18T12:35:02Z",
        "message_delivery_report": report,
    })
    .to_string()
}

/// The four signature headers of `body`, signed with `secret` at `now + offset` seconds.
fn signed_headers(secret: &str, body: &[u8], offset: i64) -> Vec<(&'static str, String)> {
    let nonce = byosms::providers::sinch::ulid_like(chrono::Utc::now());
    let timestamp = (chrono::Utc::now().timestamp() + offset).to_string();
    vec![
        (
            SIGNATURE_HEADER,
            signature(secret, body, &nonce, &timestamp),
        ),
        (NONCE_HEADER, nonce),
        (TIMESTAMP_HEADER, timestamp),
        (ALGORITHM_HEADER, ALGORITHM.to_string()),
    ]
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    /// The bytes sent; `signed` is what the headers were computed over (they differ when tampered).
    body: Vec<u8>,
    signed: Vec<u8>,
    secret: &'static str,
    offset: i64,
    /// Header edits after signing: a name to drop (`None`) or to set.
    edits: Vec<(&'static str, Option<&'static str>)>,
    status: u16,
}

fn message_path(slug: &str, org: &str) -> String {
    format!("{PREFIX}/message/{slug}/{org}")
}

fn cases() -> Vec<Case> {
    let good = inbound_body("01E6NKBV63YG6K01ENEW7S1N80", TO, "5").into_bytes();
    let case = |name, status| Case {
        name,
        method: "POST",
        path: message_path("sinch", ORG),
        content_type: Some("application/json"),
        body: good.clone(),
        signed: good.clone(),
        secret: WEBHOOK_SECRET,
        offset: 0,
        edits: vec![],
        status,
    };
    let with_edits = |name, edits, status| Case {
        edits,
        ..case(name, status)
    };
    let signed_body = |name, body: Vec<u8>, status| Case {
        signed: body.clone(),
        body,
        ..case(name, status)
    };
    let mut tampered = case("tampered body (one digit of the text)", 403);
    tampered.body = inbound_body("01E6NKBV63YG6K01ENEW7S1N80", TO, "6").into_bytes();
    let mut truncated = case("truncated body, signature of the whole", 403);
    truncated.body.truncate(good.len() / 2);
    let mut other_secret = case("signed with another secret", 403);
    other_secret.secret = "5inch-webhook-secret-f00e";
    let mut stale = case("stale timestamp (6 minutes old), correctly signed", 403);
    stale.offset = -360;
    let mut future = case("future timestamp (6 minutes ahead), correctly signed", 403);
    future.offset = 360;
    let mut form = case("form content type", 415);
    form.content_type = Some("application/x-www-form-urlencoded");
    let mut no_type = case("no content type", 415);
    no_type.content_type = None;
    let mut oversize = case("oversize body", 413);
    oversize.body = vec![b' '; 1024 * 1024 + 1];
    let mut wrong_url = case("another org's URL (its own webhook secret)", 403);
    wrong_url.path = message_path("sinch", "ORG_2");
    let mut unknown_org = case("unknown org", 404);
    unknown_org.path = message_path("sinch", "ORG_NOBODY");
    let mut unknown_slug = case("unknown provider slug", 404);
    unknown_slug.path = message_path("sinch-sms", ORG);
    let mut no_connection = case("org without a Sinch connection", 404);
    no_connection.path = message_path("sinch", "ORG_TWILIO");
    let mut disabled = case("org whose Sinch connection is disabled", 404);
    disabled.path = message_path("sinch", "ORG_DISABLED");
    let mut put = case("PUT instead of POST", 405);
    put.method = "PUT";
    let mut cut = good.clone();
    cut.truncate(good.len() / 2);
    let foreign_app = inbound_body("01E6NKBV63YG6K01ENEW7S1N81", TO, "5")
        .replace(APP, "01EB37HMH1M6SV18BSNS3G135H")
        .into_bytes();
    vec![
        with_edits(
            "no signature headers",
            vec![
                (SIGNATURE_HEADER, None),
                (NONCE_HEADER, None),
                (TIMESTAMP_HEADER, None),
                (ALGORITHM_HEADER, None),
            ],
            401,
        ),
        with_edits("no signature", vec![(SIGNATURE_HEADER, None)], 401),
        with_edits("no nonce", vec![(NONCE_HEADER, None)], 401),
        with_edits("no timestamp", vec![(TIMESTAMP_HEADER, None)], 401),
        with_edits("no algorithm", vec![(ALGORITHM_HEADER, None)], 401),
        with_edits(
            "wrong signature (the reference's vector 2)",
            vec![(
                SIGNATURE_HEADER,
                Some("Yc+3R1pIS78xLASybulhs8BsSo9BPB3Pr92QCUoczfk="),
            )],
            403,
        ),
        with_edits("empty signature", vec![(SIGNATURE_HEADER, Some(""))], 403),
        with_edits(
            "another nonce",
            vec![(NONCE_HEADER, Some("01FJA8B4A7BM43YGWSG9GBV067"))],
            403,
        ),
        with_edits(
            "timestamp not in seconds",
            vec![(TIMESTAMP_HEADER, Some("yesterday"))],
            403,
        ),
        with_edits(
            "another algorithm",
            vec![(ALGORITHM_HEADER, Some("HmacSHA1"))],
            403,
        ),
        other_secret,
        stale,
        future,
        tampered,
        truncated,
        signed_body("truncated body, re-signed", cut, 400),
        signed_body("empty body, signed", vec![], 400),
        signed_body(
            "a JSON string, signed",
            br#""MESSAGE_INBOUND""#.to_vec(),
            400,
        ),
        signed_body(
            "message of the wrong type, signed",
            json!({"app_id": APP, "message": "5"})
                .to_string()
                .into_bytes(),
            400,
        ),
        signed_body(
            "JSON that is no Sinch callback, signed",
            br#"{"hello":"world"}"#.to_vec(),
            400,
        ),
        signed_body(
            "a callback of another Conversation app, signed",
            foreign_app,
            403,
        ),
        form,
        no_type,
        oversize,
        wrong_url,
        unknown_org,
        unknown_slug,
        no_connection,
        disabled,
        put,
    ]
}

#[tokio::test]
async fn bad_sinch_webhooks_are_refused_and_nothing_is_stored() {
    let mut settings = settings(None);
    settings.public_base_url = None;
    let deps = deps(Backend::Embedded, settings).await;
    add_sinch(&deps, ORG, WEBHOOK_SECRET, "eu").await;
    add_sinch(&deps, "ORG_2", "5inch-webhook-secret-0rg2", "eu").await;
    add_sinch(&deps, "ORG_DISABLED", WEBHOOK_SECRET, "us").await;
    add_twilio(&deps, "ORG_TWILIO", "conn_1", FROM).await;
    disable_connection(&deps, "ORG_DISABLED", "conn_1").await;
    let base = start_gateway(deps.deps.clone()).await;
    let http = reqwest::Client::new();

    let cases = cases();
    assert!(cases.len() >= 12);
    for case in cases {
        let mut headers = signed_headers(case.secret, &case.signed, case.offset);
        for (name, value) in &case.edits {
            headers.retain(|(n, _)| n != name);
            if let Some(value) = value {
                headers.push((name, value.to_string()));
            }
        }
        let mut request = http
            .request(case.method.parse().unwrap(), format!("{base}{}", case.path))
            .body(case.body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, case.status, "{}: {body}", case.name);
        if status != 405 {
            assert!(
                body.contains("\"error\""),
                "{}: the answer names the problem: {body}",
                case.name
            );
        }
        assert!(!body.contains(WEBHOOK_SECRET), "{}", case.name);
    }
    for org in [ORG, "ORG_2", "ORG_DISABLED", "ORG_TWILIO", "ORG_NOBODY"] {
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
// Webhooks: what good callbacks record

/// A Sinch callback signed now, as the receive pipeline gets it.
fn sinch_request(route_path: &str, body: &str) -> WebhookRequest {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in signed_headers(WEBHOOK_SECRET, body.as_bytes(), 0) {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    WebhookRequest {
        method: Method::POST,
        public_url: format!("https://sms.example.test{route_path}"),
        raw_path: route_path.to_string(),
        raw_query: String::new(),
        headers,
        body: Bytes::from(body.to_string()),
        received_at: chrono::Utc::now(),
    }
}

async fn deliver(deps: &TestDeps, kind: &str, body: &str) -> u16 {
    let path = format!("{PREFIX}/{kind}/sinch/{ORG}");
    let reply = receive(
        deps,
        &Route::from_path(&path).unwrap(),
        &sinch_request(&path, body),
    )
    .await;
    assert_eq!(reply.content_type, "application/json", "{}", reply.body);
    reply.status
}

/// A Sinch mock that accepts every send with `id`, and deps with one message `m1` sent to it.
async fn deps_with_sent_message(backend: Backend, sinch: &MockServer) -> TestDeps {
    token_request(CLIENT_SECRET)
        .respond_with(token_answer("tok-1", 3599))
        .mount(sinch)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .respond_with(accepted(SINCH_ID))
        .mount(sinch)
        .await;
    let deps = sinch_deps(backend, sinch).await;
    let sent = send_one(&deps, "m1", TO).await;
    assert_eq!(sent.status, ResultStatus::Accepted, "{sent:?}");
    deps
}

#[tokio::test]
async fn statuses_are_monotonic_finals_sticky_duplicates_once_and_unknown_words_kept() {
    for backend in BACKENDS {
        let sinch = MockServer::start().await;
        let deps = deps_with_sent_message(backend, &sinch).await;
        for (word, ours, reason) in [
            ("QUEUED_ON_CHANNEL", Some("m1"), None),
            ("DELIVERED", Some("m1"), None),
            // Late and repeated reports, a failure after delivery, and a word nobody knows.
            ("QUEUED_ON_CHANNEL", None, None),
            ("DELIVERED", Some("m1"), None),
            ("FAILED", None, Some("RECIPIENT_NOT_REACHABLE")),
            ("BOUNCED_OFF_THE_MOON", Some("m1"), None),
        ] {
            let status = deliver(
                &deps,
                "status",
                &delivery_body(SINCH_ID, word, ours, reason),
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
            "{backend:?}: delivered is final"
        );
        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        let m1 = Some("m1".to_string());
        assert_eq!(
            statuses(&events),
            [
                ("QUEUED_ON_CHANNEL".into(), Status::Sent, m1.clone()),
                ("DELIVERED".into(), Status::Delivered, m1.clone()),
                ("FAILED".into(), Status::Undelivered, m1.clone()),
                ("BOUNCED_OFF_THE_MOON".into(), Status::Unknown, m1.clone()),
            ],
            "{backend:?}: each (message_id, status) once, found by Sinch's id without our metadata"
        );
        let Some(Event::Status(failed)) = events.get(2) else {
            panic!("{events:?}")
        };
        assert_eq!(
            failed.error_code.as_deref(),
            Some("RECIPIENT_NOT_REACHABLE")
        );
    }
}

#[tokio::test]
async fn replies_are_linked_by_number_and_stop_opts_out() {
    for backend in BACKENDS {
        let sinch = MockServer::start().await;
        let deps = deps_with_sent_message(backend, &sinch).await;
        for _ in 0..2 {
            let body = inbound_body("01E6NKBV63YG6K01ENEW7S1N80", TO, "5");
            assert_eq!(deliver(&deps, "message", &body).await, 200);
        }
        let stop = inbound_body("01E6NKBV63YG6K01ENEW7S1N81", TO, "STOP");
        assert_eq!(deliver(&deps, "message", &stop).await, 200);

        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        assert_eq!(
            events.len(),
            2,
            "{backend:?}: the repeated reply once: {events:?}"
        );
        let Event::Inbound(reply) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(
            (reply.from.as_str(), reply.to.as_str(), reply.text.as_str()),
            (TO, SINCH_FROM, "5")
        );
        assert_eq!(reply.in_reply_to.as_deref(), Some("m1"), "{backend:?}");
        assert!(!reply.opt_out);
        let Event::Inbound(stop) = &events[1] else {
            panic!("{events:?}")
        };
        assert!(stop.opt_out, "{backend:?}");
        assert!(deps.stores.messages.is_opted_out(ORG, TO).await.unwrap());
        let refused = send_one(&deps, "m-after-stop", TO).await;
        assert_eq!(refused.error.map(|e| e.code), Some(SendErrorCode::OptedOut));
    }
}

#[tokio::test]
async fn callbacks_of_the_other_kind_are_recorded_for_what_they_are() {
    for backend in BACKENDS {
        let sinch = MockServer::start().await;
        let deps = deps_with_sent_message(backend, &sinch).await;
        // A reply on the status route, a delivery report on the message route.
        let reply = inbound_body("01E6NKBV63YG6K01ENEW7S1N82", TO, "4");
        assert_eq!(deliver(&deps, "status", &reply).await, 200);
        let report = delivery_body(SINCH_ID, "DELIVERED", Some("m1"), None);
        assert_eq!(deliver(&deps, "message", &report).await, 200);
        // EVENT_DELIVERY: answered and held as the event's report, of none of our messages.
        let event = json!({
            "app_id": APP, "project_id": PROJECT, "event_time": "2024-06-18T12:35:02Z",
            "event_delivery_report": { "event_id": "01EVENT0000000000000000000", "status": "FAILED",
                "reason": { "code": "UNSUPPORTED_OPERATION" }, "metadata": "" }
        });
        assert_eq!(deliver(&deps, "status", &event.to_string()).await, 200);
        // Another trigger (a contact notification): answered, nothing to record.
        let contact = json!({
            "app_id": APP, "project_id": PROJECT, "accepted_time": "2024-06-18T12:35:01Z",
            "contact_create_notification": { "contact": { "id": "01FJA8B466Y0R2GNXD78MD9SM1" } },
            "message_metadata": ""
        });
        assert_eq!(deliver(&deps, "message", &contact.to_string()).await, 200);

        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        assert_eq!(events.len(), 2, "{backend:?}: {events:?}");
        assert!(
            matches!(&events[0], Event::Inbound(r) if r.text == "4" && r.in_reply_to.as_deref() == Some("m1")),
            "{events:?}"
        );
        assert!(
            matches!(&events[1], Event::Status(s) if s.status == Status::Delivered && s.message_id.as_deref() == Some("m1")),
            "{events:?}"
        );
        let held = deps
            .stores
            .messages
            .held_reports(ORG, "conn_1", "01EVENT0000000000000000000")
            .await
            .unwrap();
        assert!(
            matches!(&held[..], [h] if h.event.status == Status::Failed),
            "{held:?}"
        );
        let record = deps
            .stores
            .messages
            .get_message(ORG, "m1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, Some(Status::Delivered));
    }
}
