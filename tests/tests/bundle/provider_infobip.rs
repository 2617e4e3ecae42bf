//! Infobip end to end: the exact `/sms/3/messages` request against a strict mock and the
//! classification of its error answers; a table of bad webhook requests through the gateway
//! (each answered with its status, nothing stored); and what good batches record on both stores:
//! monotonic statuses with sticky finals, duplicates once, unknown words kept, good items of a
//! bad batch, repeated batches, a 2000-report bucket, `+0000` timestamps, replies linked, opt-outs;
//! and the `baseUrl` admin-host rule.

use crate::support::*;
use byosms::domain::{Event, Provider, SendErrorCode, Status};
use byosms::pipeline::admin;
use byosms::pipeline::receive::receive;
use byosms::pipeline::send::{ResultStatus, SendItem, SendRequest, SendResult, send};
use byosms::providers::infobip::{basic_authorization, parse_timestamp};
use byosms::webhook::{Route, RouteKind, WebhookRequest};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PREFIX: &str = "/distribution-providers/v1/receive/distribution";

/// The example connection's fields (what `add_connection` stores).
fn example(field: &str) -> String {
    registry()
        .get(Provider::Infobip)
        .unwrap()
        .example_fields()
        .get(field)
        .and_then(Value::as_str)
        .unwrap()
        .to_string()
}

fn credentials() -> String {
    basic_authorization(&example("webhookUsername"), &example("webhookPassword"))
}

fn route_path(kind: &str, slug: &str, org: &str) -> String {
    format!("{PREFIX}/{kind}/{slug}/{org}")
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

// --- Send ---------------------------------------------------------------------------------------

fn accepted_answer(message_id: &str, to: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "bulkId": "2034072219640523072",
        "messages": [{
            "messageId": message_id,
            "status": { "groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED",
                        "description": "Message sent to next instance" },
            "destination": to,
            "details": { "messageCount": 1 },
        }],
    }))
}

#[tokio::test]
async fn the_send_request_is_exactly_infobip_s() {
    for backend in BACKENDS {
        let infobip = MockServer::start().await;
        let deps = deps(
            backend,
            settings_with_api_urls(&[(Provider::Infobip, infobip.uri())]),
        )
        .await;
        add_connection(&deps, Provider::Infobip, ORG, "conn_1").await;
        let status_url = deps
            .settings
            .route_url(RouteKind::Status, Provider::Infobip, ORG)
            .unwrap();
        assert!(status_url.as_str().ends_with("/status/infobip-sms/ORG_1"));
        Mock::given(method("POST"))
            .and(path("/sms/3/messages"))
            .and(header("authorization", format!("App {}", example("apiKey"))))
            .and(header("content-type", "application/json"))
            .and(header("accept", "application/json"))
            .and(body_json(json!({
                "messages": [{
                    "sender": example("from"),
                    "destinations": [{ "to": "14155550100", "messageId": "ib-1" }],
                    "content": { "text": "Take our survey: https://x.y/z" },
                    "webhooks": {
                        "delivery": { "url": status_url.as_str(), "intermediateReport": true, "notify": true },
                        "contentType": "application/json",
                        "callbackData": "ib-1",
                    },
                }],
                "options": { "includeSmsCountInResponse": true },
            })))
            .respond_with(accepted_answer("ib-1", "14155550100"))
            .expect(1)
            .mount(&infobip)
            .await;
        let result = send_one(&deps, ORG, "ib-1", TO).await;
        assert_eq!(
            result.status,
            ResultStatus::Accepted,
            "{backend:?}: {result:?}"
        );
        assert_eq!(result.provider_message_id.as_deref(), Some("ib-1"));
        // A repeat of our messageId never reaches Infobip (the mock expects one call).
        let again = send_one(&deps, ORG, "ib-1", TO).await;
        assert!(again.duplicate, "{again:?}");
        infobip.verify().await;
    }
}

struct ErrorCase {
    name: &'static str,
    answer: ResponseTemplate,
    code: SendErrorCode,
    retryable: bool,
    calls: u64,
}

fn v3_error(
    status: u16,
    code: &str,
    description: &str,
    property: Option<&str>,
) -> ResponseTemplate {
    let violations: Vec<Value> = property
        .map(|p| json!({ "property": p, "violation": "must be a valid number" }))
        .into_iter()
        .collect();
    ResponseTemplate::new(status).set_body_json(json!({
        "errorCode": code, "description": description,
        "action": "Check the syntax, violations and adjust the request.",
        "violations": violations, "resources": [],
    }))
}

fn v2_error(status: u16, id: &str, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(
        json!({ "requestError": { "serviceException": { "messageId": id, "text": text } } }),
    )
}

fn rejected_answer(id: i64, name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "bulkId": "b",
        "messages": [{ "messageId": "ib-err", "destination": "14155550100",
            "status": { "groupId": 5, "groupName": "REJECTED", "id": id, "name": name } }],
    }))
}

fn error_cases() -> Vec<ErrorCase> {
    use SendErrorCode as C;
    let case = |name, answer, code, retryable, calls| ErrorCase {
        name,
        answer,
        code,
        retryable,
        calls,
    };
    vec![
        case(
            "v3 400 on the destination",
            v3_error(
                400,
                "E400",
                "Request cannot be processed.",
                Some("messages[0].destinations[0].to"),
            ),
            C::InvalidNumber,
            false,
            1,
        ),
        case(
            "v3 400 on the sender",
            v3_error(
                400,
                "E400",
                "Request cannot be processed.",
                Some("messages[0].sender"),
            ),
            C::InvalidSender,
            false,
            1,
        ),
        case(
            "v2 401",
            v2_error(401, "UNAUTHORIZED", "Invalid login details"),
            C::AuthFailed,
            false,
            1,
        ),
        case(
            "v3 403 (a key without the SMS scope)",
            v3_error(403, "E403", "Forbidden", None),
            C::AuthFailed,
            false,
            1,
        ),
        case(
            "v3 429, retried",
            v3_error(429, "E429", "Too many requests sent.", None)
                .insert_header("retry-after", "0"),
            C::Throttled,
            true,
            3,
        ),
        case(
            "v2 429, retried",
            v2_error(429, "TOO_MANY_REQUESTS", "Too many requests"),
            C::Throttled,
            true,
            3,
        ),
        case(
            "v3 500: may have been taken",
            v3_error(500, "E500", "Something went wrong.", None),
            C::OutcomeUnknown,
            false,
            1,
        ),
        case(
            "502 without a body",
            ResponseTemplate::new(502),
            C::OutcomeUnknown,
            false,
            1,
        ),
        case(
            "200 with REJECTED_NOT_ENOUGH_CREDITS",
            rejected_answer(12, "REJECTED_NOT_ENOUGH_CREDITS"),
            C::InsufficientFunds,
            false,
            1,
        ),
        case(
            "200 with REJECTED_DESTINATION",
            rejected_answer(52, "REJECTED_DESTINATION"),
            C::InvalidNumber,
            false,
            1,
        ),
        case(
            "200 with REJECTED_DUPLICATE_MESSAGE_ID",
            rejected_answer(23, "REJECTED_DUPLICATE_MESSAGE_ID"),
            C::Rejected,
            false,
            1,
        ),
        case(
            "200 that cannot be read",
            ResponseTemplate::new(200).set_body_string("<html>"),
            C::OutcomeUnknown,
            false,
            1,
        ),
    ]
}

#[tokio::test]
async fn error_answers_are_classified_and_retried_only_when_not_accepted() {
    let api_key = example("apiKey");
    for (i, case) in error_cases().into_iter().enumerate() {
        let infobip = MockServer::start().await;
        let deps = deps(
            Backend::Embedded,
            settings_with_api_urls(&[(Provider::Infobip, infobip.uri())]),
        )
        .await;
        add_connection(&deps, Provider::Infobip, ORG, "conn_1").await;
        Mock::given(method("POST"))
            .and(path("/sms/3/messages"))
            .respond_with(case.answer)
            .expect(case.calls)
            .mount(&infobip)
            .await;
        let result = send_one(&deps, ORG, &format!("ib-err-{i}"), TO).await;
        let error = result
            .error
            .unwrap_or_else(|| panic!("{}: accepted", case.name));
        assert_eq!(
            (result.status, error.code, error.retryable),
            (ResultStatus::Failed, case.code, case.retryable),
            "{}: {}",
            case.name,
            error.message
        );
        assert_eq!(result.attempts, Some(case.calls as u32), "{}", case.name);
        assert!(!error.message.contains(&api_key), "{}", case.name);
        infobip.verify().await;
    }
}

#[tokio::test]
async fn the_base_url_is_held_to_the_admin_host_rule() {
    let add = |deps: &TestDeps, base_url: &str| {
        let input = {
            let mut fields = registry().get(Provider::Infobip).unwrap().example_fields();
            fields.insert("provider".into(), json!("infobip"));
            fields.insert("name".into(), json!("Infobip"));
            fields.insert("baseUrl".into(), json!(base_url));
            Value::Object(fields)
        };
        let deps = deps.deps.clone();
        async move { admin::add_connection(&deps, ORG, None, &input, None).await }
    };
    let plain = deps(Backend::Embedded, settings(None)).await;
    for refused in [
        "127.0.0.1",
        "169.254.169.254",
        "localhost",
        "metadata.internal",
        "https://y7k2pd.api.infobip.com",
        "y7k2pd.api.infobip.com:8443",
        "y7k2pd.api.infobip.com/sms",
        "api.example.com",
    ] {
        let err = add(&plain, refused).await.expect_err(refused).to_string();
        assert!(err.contains("baseUrl"), "{refused}: {err}");
    }
    let accepted = add(&plain, "Y7K2PD.api.infobip.com").await.unwrap();
    assert_eq!(accepted.setting("baseUrl"), Some("y7k2pd.api.infobip.com"));
    // With BYOSMS_INFOBIP_API_URL set, the host is never called: any bare name will do.
    let overridden = deps(
        Backend::Embedded,
        settings_with_api_urls(&[(Provider::Infobip, "http://127.0.0.1:9/infobip".into())]),
    )
    .await;
    assert!(add(&overridden, "api.example.com").await.is_ok());
    assert!(add(&overridden, "https://api.example.com").await.is_err());
}

// --- Bad webhooks through the gateway ------------------------------------------------------------

enum Auth {
    None,
    Ours,
    Raw(String),
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    auth: Auth,
    body: Vec<u8>,
    status: u16,
}

fn good_dlr_body() -> String {
    json!({ "results": [{
        "bulkId": "b-1", "messageId": "ib-unsent", "to": "14155550100", "sender": "41793026700",
        "sentAt": "2019-11-09T16:00:00.000+0000", "doneAt": "2019-11-09T16:00:00.000+0000", "messageCount": 1,
        "status": { "groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET" },
        "error": { "groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "permanent": false },
    }]})
    .to_string()
}

fn bad_cases() -> Vec<Case> {
    let ours = route_path("status", "infobip-sms", ORG);
    let good = good_dlr_body().into_bytes();
    let case = |name, auth, status| Case {
        name,
        method: "POST",
        path: ours.clone(),
        content_type: Some("application/json"),
        auth,
        body: good.clone(),
        status,
    };
    let user = example("webhookUsername");
    let password = example("webhookPassword");
    let with_body = |name, body: &[u8], status| Case {
        body: body.to_vec(),
        ..case(name, Auth::Ours, status)
    };
    let with_path = |name, path: String, status| Case {
        path,
        ..case(name, Auth::Ours, status)
    };
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    vec![
        case("no Authorization header", Auth::None, 401),
        case("empty Authorization header", Auth::Raw(String::new()), 401),
        case(
            "wrong password",
            Auth::Raw(basic_authorization(&user, "correct-horse-batterY")),
            403,
        ),
        case(
            "wrong username",
            Auth::Raw(basic_authorization("someone", &password)),
            403,
        ),
        case(
            "another org's credentials",
            Auth::Raw(basic_authorization("other", "another-org-password")),
            403,
        ),
        case(
            "password with a trailing space",
            Auth::Raw(basic_authorization(&user, &format!("{password} "))),
            403,
        ),
        case(
            "Bearer instead of Basic",
            Auth::Raw(format!("Bearer {password}")),
            403,
        ),
        case(
            "Basic that is not base64",
            Auth::Raw("Basic %%%%".into()),
            403,
        ),
        case(
            "Basic without a colon",
            Auth::Raw(format!("Basic {}", base64_of(&user))),
            403,
        ),
        Case {
            content_type: Some("text/plain"),
            ..case("wrong content type", Auth::Ours, 415)
        },
        Case {
            content_type: None,
            ..case("no content type", Auth::Ours, 415)
        },
        with_body("truncated JSON", &truncated, 400),
        with_body("a body of just Invalid", b"Invalid", 400),
        with_body(
            "wrong top-level key",
            br#"{"deliveryReport":[{"messageId":"x"}]}"#,
            400,
        ),
        with_body(
            "results of the wrong type",
            br#"{"results":{"messageId":"x"}}"#,
            400,
        ),
        with_body("a JSON array", br#"[{"messageId":"x"}]"#, 400),
        with_body(
            "every item bad",
            br#"{"results":[{"status":{"id":5}},"Invalid",{"hello":"world"}]}"#,
            400,
        ),
        with_body("empty body", b"", 400),
        with_body("oversize body", &vec![b' '; 1024 * 1024 + 1], 413),
        with_path(
            "our credentials on another org's URL",
            route_path("status", "infobip-sms", "ORG_2"),
            403,
        ),
        with_path(
            "unknown org",
            route_path("status", "infobip-sms", "ORG_NOBODY"),
            404,
        ),
        with_path(
            "unknown provider slug",
            route_path("status", "infobip-mms", ORG),
            404,
        ),
        with_path(
            "org without a connection of that provider",
            route_path("status", "vonage-sms", ORG),
            404,
        ),
        with_path(
            "org whose connection is disabled",
            route_path("status", "infobip-sms", "ORG_DISABLED"),
            404,
        ),
        with_path(
            "route kind that does not exist",
            route_path("receipt", "infobip-sms", ORG),
            404,
        ),
        Case {
            method: "PUT",
            ..case("PUT instead of POST", Auth::Ours, 405)
        },
    ]
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn bad_infobip_webhooks_are_refused_and_nothing_is_stored() {
    let deps = deps(Backend::Embedded, settings(None)).await;
    add_connection(&deps, Provider::Infobip, ORG, "conn_1").await;
    let other = json!({ "webhookUsername": "other", "webhookPassword": "another-org-password" });
    add_connection_with(&deps, Provider::Infobip, "ORG_2", "conn_1", other).await;
    add_connection_with(
        &deps,
        Provider::Infobip,
        "ORG_DISABLED",
        "conn_1",
        json!({"enabled": false}),
    )
    .await;
    let gateway = start_gateway(deps.deps.clone()).await;
    let http = reqwest::Client::new();
    let password = example("webhookPassword");

    let cases = bad_cases();
    assert!(cases.len() >= 12);
    for case in cases {
        let mut request = http
            .request(
                case.method.parse().unwrap(),
                format!("{gateway}{}", case.path),
            )
            .body(case.body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        match &case.auth {
            Auth::None => {}
            Auth::Ours => request = request.header("authorization", credentials()),
            Auth::Raw(value) => request = request.header("authorization", value),
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert!(
            body.contains("\"error\""),
            "{}: the answer names the problem: {body}",
            case.name
        );
        assert!(!body.contains(&password), "{}: {body}", case.name);
    }
    for org in [ORG, "ORG_2", "ORG_DISABLED", "ORG_NOBODY"] {
        let events = deps.stores.messages.list_events(org, 100).await.unwrap();
        assert!(events.is_empty(), "nothing stored for {org}: {events:?}");
    }
}

// --- Good webhooks, both stores -------------------------------------------------------------------

/// An Infobip webhook as the receive pipeline gets it, with the example connection's credentials.
fn infobip_request(kind: &str, body: &Value) -> (Route, WebhookRequest) {
    let path = route_path(kind, "infobip-sms", ORG);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "authorization",
        HeaderValue::from_str(&credentials()).unwrap(),
    );
    let request = WebhookRequest {
        method: Method::POST,
        public_url: format!("https://sms.example.test{path}"),
        raw_path: path.clone(),
        raw_query: String::new(),
        headers,
        body: Bytes::from(body.to_string()),
        received_at: chrono::Utc::now(),
    };
    (Route::from_path(&path).unwrap(), request)
}

async fn post(deps: &TestDeps, kind: &str, body: &Value) -> u16 {
    let (route, request) = infobip_request(kind, body);
    let reply = receive(deps, &route, &request).await;
    assert!(
        reply.status != 200 || reply.body.is_empty(),
        "{}",
        reply.body
    );
    reply.status
}

fn dlr(message_id: &str, id: i64, name: &str, group_id: i64, group: &str, done_at: &str) -> Value {
    json!({
        "bulkId": "bulk-1", "messageId": message_id, "to": "14155550100", "sender": "41793026700",
        "sentAt": done_at, "doneAt": done_at, "messageCount": 1,
        "price": { "pricePerMessage": 0.01, "currency": "EUR" },
        "status": { "groupId": group_id, "groupName": group, "id": id, "name": name },
        "error": { "groupId": 0, "groupName": "Ok", "id": 0, "name": "NO_ERROR", "permanent": false },
        "callbackData": message_id,
    })
}

fn statuses_of(events: &[Event]) -> Vec<(String, Status, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Status(s) => Some((s.provider_status.clone(), s.status, s.message_id.clone())),
            Event::Inbound(_) => None,
        })
        .collect()
}

/// A deps whose Infobip API is the stand-in, with the example connection.
async fn infobip_deps(backend: Backend) -> TestDeps {
    let stand_in = start_stand_in(Provider::Infobip).await;
    let deps = deps(
        backend,
        settings_with_api_urls(&[(Provider::Infobip, stand_in)]),
    )
    .await;
    add_connection(&deps, Provider::Infobip, ORG, "conn_1").await;
    deps
}

#[tokio::test]
async fn statuses_are_monotonic_finals_sticky_duplicates_once_unknown_words_kept() {
    for backend in BACKENDS {
        let deps = infobip_deps(backend).await;
        let sent = send_one(&deps, ORG, "ib-m1", TO).await;
        assert_eq!(
            sent.provider_message_id.as_deref(),
            Some("ib-m1"),
            "{sent:?}"
        );
        let at = "2019-11-09T16:00:00.000+0000";
        let reports = [
            dlr("ib-m1", 26, "PENDING_ACCEPTED", 1, "PENDING", at),
            dlr("ib-m1", 5, "DELIVERED_TO_HANDSET", 3, "DELIVERED", at),
            // Late: the intermediate report arrives after the final one.
            dlr("ib-m1", 2, "DELIVERED_TO_OPERATOR", 3, "DELIVERED", at),
            // A retry of the final one.
            dlr("ib-m1", 5, "DELIVERED_TO_HANDSET", 3, "DELIVERED", at),
            dlr("ib-m1", 99, "SOMETHING_NEW", 9, "SOMETHING_NEW", at),
        ];
        for report in &reports {
            assert_eq!(
                post(&deps, "status", &json!({ "results": [report] })).await,
                200,
                "{backend:?}"
            );
        }
        let record = deps
            .stores
            .messages
            .get_message(ORG, "ib-m1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.status,
            Some(Status::Delivered),
            "{backend:?}: finals are sticky"
        );
        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        let m1 = Some("ib-m1".to_string());
        assert_eq!(
            statuses_of(&events),
            [
                ("PENDING_ACCEPTED".into(), Status::Queued, m1.clone()),
                ("DELIVERED_TO_HANDSET".into(), Status::Delivered, m1.clone()),
                ("DELIVERED_TO_OPERATOR".into(), Status::Sent, m1.clone()),
                ("SOMETHING_NEW".into(), Status::Unknown, m1.clone()),
            ],
            "{backend:?}: the retried report is recorded once"
        );
        // Infobip's `+0000` timestamps are the events' times.
        let Event::Status(first) = &events[0] else {
            panic!()
        };
        assert_eq!(first.occurred_at, parse_timestamp(at));
        assert!(first.occurred_at.is_some());
    }
}

#[tokio::test]
async fn a_batch_keeps_its_good_items_and_a_repeated_batch_stores_nothing_twice() {
    for backend in BACKENDS {
        let deps = infobip_deps(backend).await;
        for id in ["ib-b1", "ib-b2"] {
            send_one(&deps, ORG, id, TO).await;
        }
        let at = "2024-12-10T15:12:28.074+0000";
        let batch = json!({ "results": [
            dlr("ib-b1", 5, "DELIVERED_TO_HANDSET", 3, "DELIVERED", at),
            { "messageId": "ib-b1", "status": "DELIVERED" },
            "Invalid",
            dlr("ib-b2", 15, "EXPIRED_EXPIRED", 4, "EXPIRED", at),
            // A report of traffic outside byosms on the same account: acknowledged and held,
            // never an error and never an event.
            dlr("not-ours-1", 9, "UNDELIVERABLE_NOT_DELIVERED", 2, "UNDELIVERABLE", at),
        ]});
        assert_eq!(post(&deps, "status", &batch).await, 200, "{backend:?}");
        let after_first = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        assert_eq!(
            post(&deps, "status", &batch).await,
            200,
            "{backend:?}: the replay"
        );
        let after_replay = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        assert_eq!(
            after_first, after_replay,
            "{backend:?}: a repeated batch stores nothing twice"
        );
        // One request's events share a received time: their order is the store's to choose.
        let mut recorded = statuses_of(&after_first);
        recorded.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            recorded,
            [
                (
                    "DELIVERED_TO_HANDSET".into(),
                    Status::Delivered,
                    Some("ib-b1".into())
                ),
                (
                    "EXPIRED_EXPIRED".into(),
                    Status::Undelivered,
                    Some("ib-b2".into())
                ),
            ],
            "{backend:?}"
        );
        let held = deps
            .stores
            .messages
            .held_reports(ORG, "conn_1", "not-ours-1");
        assert_eq!(held.await.unwrap().len(), 1, "{backend:?}");
        let b2 = deps
            .stores
            .messages
            .get_message(ORG, "ib-b2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            b2.status,
            Some(Status::Undelivered),
            "{backend:?}: EXPIRED is final"
        );
    }
}

/// A bucket of `size` reports (one of them for a message we sent) is processed in one request:
/// the report of our message is its event, every other report is held (none is an event).
async fn bucket(backend: Backend, size: usize) {
    let deps = infobip_deps(backend).await;
    send_one(&deps, ORG, "ib-big", TO).await;
    let at = "2019-11-09T16:00:00.000+0000";
    let mut results: Vec<Value> = (1..size)
        .map(|i| {
            dlr(
                &format!("outside-{i}"),
                5,
                "DELIVERED_TO_HANDSET",
                3,
                "DELIVERED",
                at,
            )
        })
        .collect();
    results.push(dlr("ib-big", 5, "DELIVERED_TO_HANDSET", 3, "DELIVERED", at));
    // Infobip posts a bucket again after a non-2xx answer. moto's server now and then fails one
    // of many concurrent writes (a 500 inside moto, "dictionary changed size during iteration"),
    // which we rightly answer 503; the retry must then complete the bucket without recording
    // anything twice: what this test proves, as Infobip would drive it.
    let body = json!({ "results": results });
    let mut answer = post(&deps, "status", &body).await;
    for _ in 0..4 {
        if answer != 503 {
            break;
        }
        answer = post(&deps, "status", &body).await;
    }
    assert_eq!(answer, 200, "{backend:?}");
    let events = deps
        .stores
        .messages
        .list_events(ORG, size + 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{backend:?}");
    for i in 1..size {
        let held = deps
            .stores
            .messages
            .held_reports(ORG, "conn_1", &format!("outside-{i}"))
            .await
            .unwrap();
        assert_eq!(held.len(), 1, "{backend:?}: outside-{i}");
    }
    let record = deps
        .stores
        .messages
        .get_message(ORG, "ib-big")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Some(Status::Delivered), "{backend:?}");
}

/// Infobip's largest bucket (`maxBucketSize`) is recorded whole in one request. How long it
/// takes is a benchmark's question, not a test's (the receive pipeline records a batch's items
/// several at once so that it fits the function's timeout).
#[tokio::test]
async fn a_bucket_of_2000_reports_is_recorded_whole() {
    bucket(Backend::Embedded, 2000).await;
    // moto answers a few requests a second once a table holds thousands of items, so on it the
    // bucket is Infobip's default size (100): the same code path, not a benchmark of moto.
    bucket(Backend::Aws, 100).await;
}

fn mo(message_id: &str, text: &str) -> Value {
    json!({
        "messageId": message_id, "from": "14155550100", "to": example("from"),
        "text": text, "cleanText": text, "keyword": "",
        "receivedAt": "2019-11-09T16:00:00.000+0000", "smsCount": 1,
        "price": { "pricePerMessage": 0, "currency": "EUR" },
    })
}

#[tokio::test]
async fn replies_are_linked_deduplicated_and_stop_opts_out() {
    for backend in BACKENDS {
        let deps = infobip_deps(backend).await;
        send_one(&deps, ORG, "ib-r1", TO).await;
        let first =
            json!({ "results": [mo("mo-1", "5")], "messageCount": 1, "pendingMessageCount": 0 });
        for _ in 0..2 {
            assert_eq!(post(&deps, "message", &first).await, 200, "{backend:?}");
        }
        // A reply on the status route is recorded as a reply; STOP opts the number out.
        let stop = json!({ "results": [mo("mo-2", "STOP")] });
        assert_eq!(post(&deps, "status", &stop).await, 200, "{backend:?}");
        let empty = json!({ "results": [], "messageCount": 0, "pendingMessageCount": 0 });
        assert_eq!(post(&deps, "message", &empty).await, 200, "{backend:?}");

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
            (
                reply.text.as_str(),
                reply.in_reply_to.as_deref(),
                reply.opt_out
            ),
            ("5", Some("ib-r1"), false),
            "{backend:?}"
        );
        assert_eq!(
            (reply.from.as_str(), reply.to.as_str()),
            (TO, "+41793026700")
        );
        assert_eq!(
            reply.occurred_at,
            parse_timestamp("2019-11-09T16:00:00.000+0000")
        );
        let Event::Inbound(stop) = &events[1] else {
            panic!("{events:?}")
        };
        assert!(stop.opt_out, "{backend:?}");
        assert!(deps.stores.messages.is_opted_out(ORG, TO).await.unwrap());
        // And a later send to that number is refused before it reaches Infobip.
        let refused = send_one(&deps, ORG, "ib-r2", TO).await;
        assert_eq!(
            refused.error.map(|e| e.code),
            Some(SendErrorCode::OptedOut),
            "{backend:?}"
        );
    }
}
