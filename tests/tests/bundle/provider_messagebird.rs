//! MessageBird end to end: the exact send request against a strict mock and its error answers;
//! a table of bad webhook requests through the gateway (each refused with its status, nothing
//! stored); and good requests through the receive pipeline on both stores: GET status reports,
//! monotonic and sticky statuses, duplicates, unknown words, opt-outs (`statusErrorCode` 103 and
//! STOP), replies linked, the legacy signature, each JWT claim tampered, and a MessageBird
//! request on the seed's `twilio-sms` path handled as MessageBird.

use crate::support::*;
use byosms::domain::{Event, Provider, SendErrorCode, Status};
use byosms::pipeline::receive::receive;
use byosms::pipeline::send::{ResultStatus, SendItem, SendRequest, SendResult, send};
use byosms::providers::messagebird::signature::{
    Algorithm, Claims, ISSUER, LEGACY_SIGNATURE_HEADER, LEGACY_TIMESTAMP_HEADER, legacy_signature,
    sha256_hex, sign_claims, sign_jwt,
};
use byosms::webhook::{Route, WebhookRequest};
use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PREFIX: &str = "/distribution-providers/v1/receive/distribution";
const PUBLIC: &str = "https://sms.example.test";
const SIGNING_KEY: &str = "5ec2e7f00d-messagebird-signing-key";
const ACCESS_KEY: &str = "test_5ec2e7f00dMessageBird0123";
const OUR_NUMBER: &str = "14155550199";
const MB_ID: &str = "6fe65f90454aa61536e6a88b88972670";

fn status_path(slug: &str, org: &str) -> String {
    format!("{PREFIX}/status/{slug}/{org}")
}

fn message_path(slug: &str, org: &str) -> String {
    format!("{PREFIX}/message/{slug}/{org}")
}

async fn add_messagebird(deps: &TestDeps, org: &str) {
    let overrides = json!({"signingKey": SIGNING_KEY, "accessKey": ACCESS_KEY, "from": OUR_NUMBER});
    add_connection_with(deps, Provider::Messagebird, org, "conn_mb", overrides).await;
}

fn created(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "id": id, "href": format!("https://rest.messagebird.com/messages/{id}"), "direction": "mt",
        "originator": OUR_NUMBER, "body": "survey", "reference": "m1", "datacoding": "plain",
        "recipients": {"totalCount": 1, "totalSentCount": 1, "totalDeliveredCount": 0,
            "totalDeliveryFailedCount": 0,
            "items": [{"recipient": 14155550100i64, "status": "sent", "messagePartCount": 1}]},
    }))
}

fn mb_error(http: u16, code: i64, parameter: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(http).set_body_json(
        json!({"errors": [{"code": code, "description": "described", "parameter": parameter}]}),
    )
}

async fn send_one(deps: &TestDeps, message_id: &str, body: &str) -> SendResult {
    let request = SendRequest {
        org_id: ORG.into(),
        connection_id: None,
        user_id: "UR_1".into(),
        messages: vec![SendItem {
            message_id: message_id.into(),
            to: TO.into(),
            body: body.into(),
        }],
    };
    send(deps, &request).await.unwrap().results.remove(0)
}

#[tokio::test]
async fn the_send_request_is_exactly_what_messagebird_documents() {
    let mock = MockServer::start().await;
    let deps = deps(
        Backend::Embedded,
        settings_with_api_urls(&[(Provider::Messagebird, mock.uri())]),
    )
    .await;
    add_messagebird(&deps, ORG).await;
    Mock::given(method("POST"))
        .and(path("/messages"))
        .and(header(
            "authorization",
            format!("AccessKey {ACCESS_KEY}").as_str(),
        ))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(body_json(json!({
            "originator": OUR_NUMBER,
            "recipients": ["14155550100"],
            "body": "Take our survey: https://x.y/z",
            "datacoding": "plain",
            "reference": "m1",
            "reportUrl": format!("{PUBLIC}{}", status_path("messagebird-sms", ORG)),
        })))
        .respond_with(created(MB_ID))
        .expect(1)
        .mount(&mock)
        .await;
    let result = send_one(&deps, "m1", "Take our survey: https://x.y/z").await;
    assert_eq!(result.status, ResultStatus::Accepted, "{result:?}");
    assert_eq!(result.provider_message_id.as_deref(), Some(MB_ID));
    mock.verify().await;
}

#[tokio::test]
async fn messagebird_error_answers_are_classified() {
    let mock = MockServer::start().await;
    let deps = deps(
        Backend::Embedded,
        settings_with_api_urls(&[(Provider::Messagebird, mock.uri())]),
    )
    .await;
    add_messagebird(&deps, ORG).await;
    let cases = [
        (
            mb_error(401, 2, Some("access_key")),
            SendErrorCode::AuthFailed,
            1,
        ),
        (
            mb_error(422, 9, Some("recipients")),
            SendErrorCode::InvalidNumber,
            1,
        ),
        (
            mb_error(422, 9, Some("originator")),
            SendErrorCode::InvalidSender,
            1,
        ),
        (mb_error(422, 25, None), SendErrorCode::InsufficientFunds, 1),
        (mb_error(422, 21, None), SendErrorCode::Rejected, 1),
        (
            mb_error(429, 21, None).insert_header("retry-after", "0"),
            SendErrorCode::Throttled,
            3,
        ),
        (mb_error(500, 99, None), SendErrorCode::OutcomeUnknown, 1),
        (
            ResponseTemplate::new(503),
            SendErrorCode::ProviderUnavailable,
            3,
        ),
    ];
    for (i, (answer, code, attempts)) in cases.into_iter().enumerate() {
        mock.reset().await;
        Mock::given(method("POST"))
            .and(path("/messages"))
            .respond_with(answer)
            .expect(attempts)
            .mount(&mock)
            .await;
        let result = send_one(&deps, &format!("err-{i}"), "survey").await;
        let error = result.error.clone().expect("an error");
        assert_eq!(
            (result.status, error.code),
            (ResultStatus::Failed, code),
            "{i}: {result:?}"
        );
        assert!(!error.message.contains(ACCESS_KEY));
        mock.verify().await;
    }
}

/// A JWT over `url` and `body` with these claims changed from a valid set.
fn jwt_with(url: &str, body: &[u8], change: impl FnOnce(&mut Claims)) -> String {
    let now = Utc::now().timestamp() as f64;
    let mut claims = Claims {
        iss: Some(ISSUER.into()),
        nbf: Some(now),
        exp: Some(now + 60.0),
        jti: Some(uuid::Uuid::new_v4().to_string()),
        url_hash: Some(sha256_hex(url.as_bytes())),
        payload_hash: (!body.is_empty()).then(|| sha256_hex(body)),
    };
    change(&mut claims);
    sign_claims(SIGNING_KEY, &claims, Algorithm::HS256)
}

struct Case {
    name: &'static str,
    method: &'static str,
    /// Path and query as sent.
    target: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    status: u16,
}

const JWT: &str = "messagebird-signature-jwt";
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

fn inbound_form(id: &str, text: &str) -> Vec<u8> {
    form(&[
        ("id", id),
        ("originator", "14155550100"),
        ("recipient", OUR_NUMBER),
        ("body", text),
        ("createdDatetime", "2026-01-05T10:02:59+00:00"),
    ])
    .into_bytes()
}

fn bad_cases() -> Vec<Case> {
    let report = format!(
        "{}?id={MB_ID}&reference=m1&status=delivered",
        status_path("messagebird-sms", ORG)
    );
    let report_url = format!("{PUBLIC}{report}");
    let inbound = message_path("messagebird-sms", ORG);
    let inbound_url = format!("{PUBLIC}{inbound}");
    let body = inbound_form("in-1", "5");
    let get = |name, headers, status| Case {
        name,
        method: "GET",
        target: report.clone(),
        content_type: None,
        body: vec![],
        headers,
        status,
    };
    let post = |name, body: Vec<u8>, headers, status| Case {
        name,
        method: "POST",
        target: inbound.clone(),
        content_type: FORM,
        body,
        headers,
        status,
    };
    let valid = |url: &str, body: &[u8]| vec![(JWT, jwt_with(url, body, |_| {}))];
    let now = Utc::now().timestamp();
    let legacy = |ts: i64, sig: Option<String>| {
        let ts = ts.to_string();
        let pairs = form_urlencoded::parse(report.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect::<Vec<_>>();
        let sig = sig.unwrap_or_else(|| legacy_signature(SIGNING_KEY, &ts, &pairs, b""));
        vec![
            (LEGACY_TIMESTAMP_HEADER, ts),
            (LEGACY_SIGNATURE_HEADER, sig),
        ]
    };
    let mut tampered_query = get("query changed after signing", valid(&report_url, b""), 403);
    tampered_query.target = tampered_query.target.replace("delivered", "expired");
    let mut unknown_org = get("unknown org", vec![], 404);
    unknown_org.target = status_path("messagebird-sms", "ORG_NOBODY");
    let mut no_connection = get("org without a MessageBird connection", vec![], 404);
    no_connection.target = status_path("messagebird-sms", "ORG_TWILIO_ONLY");
    let mut unknown_slug = get("unknown provider slug", vec![], 404);
    unknown_slug.target = status_path("bird-sms", ORG);
    let mut empty_get = get("signed GET without parameters", vec![], 400);
    empty_get.target = status_path("messagebird-sms", ORG);
    empty_get.headers = valid(&format!("{PUBLIC}{}", empty_get.target), b"");
    let mut truncated = post(
        "truncated body",
        body[..body.len() / 2].to_vec(),
        valid(&inbound_url, &body),
        403,
    );
    truncated.content_type = FORM;
    let wrong_typed = br#"[{"id":"in-1"}]"#.to_vec();
    let mut json_array = post(
        "signed JSON that is not an object",
        wrong_typed.clone(),
        valid(&inbound_url, &wrong_typed),
        400,
    );
    json_array.content_type = Some("application/json");
    let unrelated = form(&[("hello", "world")]).into_bytes();
    let mut text_plain = post(
        "wrong content type",
        body.clone(),
        valid(&inbound_url, &body),
        415,
    );
    text_plain.content_type = Some("text/plain");
    let oversize = vec![b'a'; 1024 * 1024 + 1];
    vec![
        get("no signature", vec![], 401),
        get("garbage JWT", vec![(JWT, "not.a.jwt".into())], 403),
        get("empty JWT header", vec![(JWT, String::new())], 403),
        get(
            "JWT signed with another key",
            vec![(
                JWT,
                sign_jwt("another-key-0123456789", &report_url, b"", Utc::now()),
            )],
            403,
        ),
        get(
            "stale JWT (expired 10 minutes ago)",
            vec![(
                JWT,
                jwt_with(&report_url, b"", |c| {
                    c.nbf = Some((now - 660) as f64);
                    c.exp = Some((now - 600) as f64);
                }),
            )],
            403,
        ),
        get(
            "future JWT (valid in 10 minutes)",
            vec![(
                JWT,
                jwt_with(&report_url, b"", |c| {
                    c.nbf = Some((now + 600) as f64);
                    c.exp = Some((now + 660) as f64);
                }),
            )],
            403,
        ),
        get(
            "JWT for another org's URL",
            valid(&report_url.replace(ORG, "ORG_2"), b""),
            403,
        ),
        get(
            "JWT with alg none",
            vec![(
                JWT,
                format!(
                    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
                    jwt_with(&report_url, b"", |_| {})
                        .split('.')
                        .nth(1)
                        .unwrap()
                ),
            )],
            403,
        ),
        tampered_query,
        get(
            "legacy signature, stale timestamp",
            legacy(now - 3600, None),
            403,
        ),
        get(
            "legacy signature, future timestamp",
            legacy(now + 3600, None),
            403,
        ),
        get(
            "legacy signature, wrong",
            legacy(
                now,
                Some("KVBdcVdz2lYMwcBLZCRITgxUfA/WkwSi+T3Wxl2HL6w=".into()),
            ),
            403,
        ),
        get(
            "legacy signature without its timestamp",
            vec![(LEGACY_SIGNATURE_HEADER, "abc".into())],
            401,
        ),
        post(
            "body changed after signing",
            inbound_form("in-1", "6"),
            valid(&inbound_url, &body),
            403,
        ),
        post(
            "body added to a token without payload_hash",
            body.clone(),
            valid(&inbound_url, b""),
            403,
        ),
        truncated,
        json_array,
        post(
            "signed form that is no MessageBird payload",
            unrelated.clone(),
            valid(&inbound_url, &unrelated),
            400,
        ),
        text_plain,
        post("oversize body", oversize, vec![], 413),
        unknown_org,
        no_connection,
        unknown_slug,
        empty_get,
    ]
}

#[tokio::test]
async fn bad_messagebird_webhooks_are_refused_and_nothing_is_stored() {
    let deps = deps(Backend::Embedded, settings(None)).await;
    add_messagebird(&deps, ORG).await;
    add_twilio(&deps, "ORG_TWILIO_ONLY", "conn_1", FROM).await;
    let gateway = start_gateway(deps.deps.clone()).await;
    let http = reqwest::Client::new();
    let cases = bad_cases();
    assert!(cases.len() >= 12);
    for case in cases {
        let mut request = http
            .request(
                case.method.parse().unwrap(),
                format!("{gateway}{}", case.target),
            )
            .body(case.body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert!(
            body.contains("\"error\""),
            "{}: names the problem: {body}",
            case.name
        );
        assert!(
            !body.contains(SIGNING_KEY) && !body.contains(ACCESS_KEY),
            "{}",
            case.name
        );
    }
    for org in [ORG, "ORG_TWILIO_ONLY", "ORG_2", "ORG_NOBODY"] {
        let events = deps.stores.messages.list_events(org, 100).await.unwrap();
        assert!(events.is_empty(), "nothing stored for {org}: {events:?}");
    }
}

/// A request as the receive pipeline gets it, signed with a JWT over its public URL and body.
fn mb_request(
    method: Method,
    target: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> WebhookRequest {
    let url = format!("{PUBLIC}{target}");
    let token = sign_jwt(SIGNING_KEY, &url, body, Utc::now());
    with_headers(method, target, content_type, body, &[(JWT, token)])
}

fn with_headers(
    method: Method,
    target: &str,
    content_type: Option<&str>,
    body: &[u8],
    extra: &[(&str, String)],
) -> WebhookRequest {
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::new();
    if let Some(ct) = content_type {
        headers.insert("content-type", HeaderValue::from_str(ct).unwrap());
    }
    for (name, value) in extra {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    WebhookRequest {
        method,
        public_url: format!("{PUBLIC}{target}"),
        raw_path: raw_path.to_string(),
        raw_query: raw_query.to_string(),
        headers,
        body: Bytes::copy_from_slice(body),
        received_at: Utc::now(),
    }
}

fn report_target(slug: &str, query: &[(&str, &str)]) -> String {
    format!("{}?{}", status_path(slug, ORG), form(query))
}

/// Deps with a MessageBird connection that has sent message `m1` (MessageBird id [`MB_ID`]).
async fn sent(backend: Backend) -> (TestDeps, MockServer) {
    let mock = MockServer::start().await;
    let deps = deps(
        backend,
        settings_with_api_urls(&[(Provider::Messagebird, mock.uri())]),
    )
    .await;
    add_messagebird(&deps, ORG).await;
    Mock::given(method("POST"))
        .respond_with(created(MB_ID))
        .mount(&mock)
        .await;
    let result = send_one(&deps, "m1", "survey").await;
    assert_eq!(result.status, ResultStatus::Accepted, "{result:?}");
    (deps, mock)
}

async fn get_report(deps: &TestDeps, slug: &str, query: &[(&str, &str)]) -> (u16, String) {
    let target = report_target(slug, query);
    let route = Route::from_path(target.split('?').next().unwrap()).unwrap();
    let reply = receive(deps, &route, &mb_request(Method::GET, &target, None, b"")).await;
    (
        reply.status,
        format!("{} {}", reply.content_type, reply.body),
    )
}

#[tokio::test]
async fn get_reports_are_monotonic_deduplicated_and_unknown_words_kept() {
    for backend in BACKENDS {
        let (deps, _mock) = sent(backend).await;
        for word in ["buffered", "delivered", "sent", "delivered", "exploded"] {
            let answer = get_report(
                &deps,
                "messagebird-sms",
                &[
                    ("id", MB_ID),
                    ("reference", "m1"),
                    ("recipient", "14155550100"),
                    ("status", word),
                    ("statusDatetime", "2026-01-05T10:03:00+00:00"),
                ],
            )
            .await;
            assert_eq!(answer, (200, "text/plain OK".into()), "{backend:?} {word}");
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
            "{backend:?}: final is sticky"
        );
        let m1 = Some("m1".to_string());
        assert_eq!(
            statuses(&deps.stores.messages.list_events(ORG, 100).await.unwrap()),
            [
                ("buffered".into(), Status::Sent, m1.clone()),
                ("delivered".into(), Status::Delivered, m1.clone()),
                ("sent".into(), Status::Sent, m1.clone()),
                ("exploded".into(), Status::Unknown, m1.clone()),
            ],
            "{backend:?}: the repeated delivered is recorded once"
        );
    }
}

#[tokio::test]
async fn status_error_code_103_opts_the_number_out_and_reports_find_the_message_by_id() {
    for backend in BACKENDS {
        let (deps, _mock) = sent(backend).await;
        // No reference: the report is found by MessageBird's id.
        let answer = get_report(
            &deps,
            "messagebird-sms",
            &[
                ("id", MB_ID),
                ("recipient", "14155550100"),
                ("status", "delivery_failed"),
                ("statusReason", "unknown subscriber"),
                ("statusErrorCode", "103"),
            ],
        )
        .await;
        assert_eq!(answer.0, 200, "{backend:?} {answer:?}");
        let record = deps
            .stores
            .messages
            .get_message(ORG, "m1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, Some(Status::Undelivered));
        assert!(
            deps.stores.messages.is_opted_out(ORG, TO).await.unwrap(),
            "{backend:?}"
        );
        let Event::Status(e) = &deps.stores.messages.list_events(ORG, 10).await.unwrap()[0] else {
            panic!()
        };
        assert_eq!(
            (e.message_id.as_deref(), e.error_code.as_deref()),
            (Some("m1"), Some("103"))
        );
        let later = send_one(&deps, "m2", "survey").await;
        assert_eq!(
            later.error.map(|e| e.code),
            Some(SendErrorCode::OptedOut),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn replies_are_linked_deduplicated_and_stop_opts_out() {
    for backend in BACKENDS {
        let (deps, _mock) = sent(backend).await;
        let target = message_path("messagebird-sms", ORG);
        let route = Route::from_path(&target).unwrap();
        for _ in 0..2 {
            let reply = receive(
                &deps,
                &route,
                &mb_request(Method::POST, &target, FORM, &inbound_form("in-1", "5")),
            )
            .await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (200, "OK"),
                "{backend:?}"
            );
        }
        let json =
            br#"{"id":"in-2","originator":"14155550100","recipient":"14155550199","body":"STOP"}"#;
        let reply = receive(
            &deps,
            &route,
            &mb_request(Method::POST, &target, Some("application/json"), json),
        )
        .await;
        assert_eq!(reply.status, 200, "{backend:?} {}", reply.body);
        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        assert_eq!(
            events.len(),
            2,
            "{backend:?}: the repeated reply is recorded once: {events:?}"
        );
        let Event::Inbound(first) = &events[0] else {
            panic!()
        };
        assert_eq!(
            (
                first.from.as_str(),
                first.to.as_str(),
                first.text.as_str(),
                first.in_reply_to.as_deref()
            ),
            (TO, FROM, "5", Some("m1"))
        );
        let Event::Inbound(stop) = &events[1] else {
            panic!()
        };
        assert!(stop.opt_out);
        assert!(deps.stores.messages.is_opted_out(ORG, TO).await.unwrap());
    }
}

/// One change to a valid set of claims, given the current unix time.
type ClaimChange = fn(&mut Claims, f64);

#[tokio::test]
async fn each_tampered_jwt_claim_is_refused_and_the_legacy_scheme_accepted() {
    for backend in BACKENDS {
        let (deps, _mock) = sent(backend).await;
        let target = message_path("messagebird-sms", ORG);
        let route = Route::from_path(&target).unwrap();
        let url = format!("{PUBLIC}{target}");
        let body = inbound_form("in-9", "4");
        let now = Utc::now().timestamp() as f64;
        let tampered: [(&str, ClaimChange); 4] = [
            ("exp in the past", |c, now| c.exp = Some(now - 120.0)),
            ("nbf in the future", |c, now| c.nbf = Some(now + 120.0)),
            ("url_hash of another URL", |c, _| {
                c.url_hash = Some(sha256_hex(b"https://evil.example/"))
            }),
            ("payload_hash of another body", |c, _| {
                c.payload_hash = Some(sha256_hex(b"id=x"))
            }),
        ];
        for (what, change) in tampered {
            let token = jwt_with(&url, &body, |c| change(c, now));
            let request = with_headers(Method::POST, &target, FORM, &body, &[(JWT, token)]);
            let reply = receive(&deps, &route, &request).await;
            assert_eq!(reply.status, 403, "{backend:?} {what}: {}", reply.body);
        }
        assert!(
            deps.stores
                .messages
                .list_events(ORG, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let report = report_target(
            "messagebird-sms",
            &[("id", MB_ID), ("reference", "m1"), ("status", "delivered")],
        );
        let ts = Utc::now().timestamp().to_string();
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(report.split_once('?').unwrap().1.as_bytes())
                .into_owned()
                .collect();
        let sig = legacy_signature(SIGNING_KEY, &ts, &pairs, b"");
        let legacy = with_headers(
            Method::GET,
            &report,
            None,
            b"",
            &[
                (LEGACY_TIMESTAMP_HEADER, ts),
                (LEGACY_SIGNATURE_HEADER, sig),
            ],
        );
        let reply = receive(
            &deps,
            &Route::from_path(&status_path("messagebird-sms", ORG)).unwrap(),
            &legacy,
        )
        .await;
        assert_eq!(reply.status, 200, "{backend:?} legacy: {}", reply.body);
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

#[tokio::test]
async fn a_messagebird_request_on_the_twilio_path_is_handled_as_messagebird() {
    for backend in BACKENDS {
        let (deps, _mock) = sent(backend).await;
        // The org also has a Twilio connection: the MessageBird signature picks the connection.
        add_twilio(&deps, ORG, "conn_tw", FROM).await;
        let answer = get_report(
            &deps,
            "twilio-sms",
            &[("id", MB_ID), ("reference", "m1"), ("status", "delivered")],
        )
        .await;
        assert_eq!(answer, (200, "text/plain OK".into()), "{backend:?}");
        let target = message_path("twilio-sms", ORG);
        let reply = receive(
            &deps,
            &Route::from_path(&target).unwrap(),
            &mb_request(Method::POST, &target, FORM, &inbound_form("in-3", "3")),
        )
        .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "OK"),
            "{backend:?}"
        );
        let events = deps.stores.messages.list_events(ORG, 10).await.unwrap();
        assert_eq!(events.len(), 2, "{backend:?}: {events:?}");
        for event in &events {
            let (provider, connection) = match event {
                Event::Status(s) => (s.provider, s.connection_id.as_str()),
                Event::Inbound(i) => (i.provider, i.connection_id.as_str()),
            };
            assert_eq!(
                (provider, connection),
                (Provider::Messagebird, "conn_mb"),
                "{backend:?}"
            );
        }
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
