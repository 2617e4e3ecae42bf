//! LINK Mobility: the exact send request against a strict mock (method, path, Basic auth, every
//! field) and its error answers; a table of bad webhook requests through the gateway, each
//! answered with its status and nothing stored; and good webhooks on both stores: monotonic
//! statuses with sticky finals, duplicates recorded once, unknown codes kept, the resultCode
//! table, `$n` part reports through the per-part model, MOs checked against the connection's
//! platformPartnerId and linked to the message they answer, opt-outs, and the endpointHost rule.

use crate::support::*;
use byosms::domain::{Event, Provider, Status};
use byosms::pipeline::admin;
use byosms::pipeline::receive::receive;
use byosms::pipeline::send::{ResultStatus, SendItem, SendRequest, SendResult, send};
use byosms::providers::linkmobility::basic_authorization;
use byosms::webhook::{Route, WebhookRequest};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PREFIX: &str = "/distribution-providers/v1/receive/distribution";
/// The example connection's credentials and ids (`LinkMobility::example_fields`).
const USERNAME: &str = "byosms-example";
const PASSWORD: &str = "example-Passw0rd-not-real";
const LINK_FROM: &str = "+4790000000";
const PARTNER: &str = "12345";
const GATE: &str = "BYOSMS-GATE-1";
/// A Common message id (base64-like, with `+` and `/`).
const LINK_ID: &str = "Dcshuhod0PMAAAFQ+/PbnR3x";

fn auth() -> String {
    basic_authorization(USERNAME, PASSWORD)
}

fn route_path(kind: &str, slug: &str, org: &str) -> String {
    format!("{PREFIX}/{kind}/{slug}/{org}")
}

/// A DLR as a gate destination posts it.
fn dlr(ref_id: Option<&str>, id: &str, code: Value, timestamp: &str) -> Value {
    json!({
        "refId": ref_id, "id": id, "operator": "no.telenor",
        "sentTimestamp": "2024-05-01T10:00:00Z", "timestamp": timestamp,
        "resultCode": code, "operatorResultCode": null, "segments": 1,
        "gateCustomParameters": {}, "customParameters": {"received": "2024-05-01 12:00:01"}
    })
}

/// An MO as a route's gate posts it.
fn mo(id: &str, text: &str, partner: &str) -> Value {
    json!({
        "destination": LINK_FROM, "subNumber": null, "source": TO,
        "content": {"type": "SMS", "userData": text, "encoding": "TEXT"},
        "operator": "no.telenor", "timestamp": "2024-05-01T10:05:00Z", "messageId": id,
        "operatorTimestamp": null, "operatorMessageId": null,
        "route": {"type": "SUBNUMBER_ROUTE", "id": "route-1", "refId": null, "gateIds": [GATE],
                  "platformId": "COMMON_API", "platformPartnerId": partner},
        "gateCustomParameters": {},
        "customParameters": {"platformPartnerId": partner, "platformId": "COMMON_API",
                             "moReferenceId": id, "queued": "2024-05-01 12:05:00",
                             "serviceCentreTimeStamp": "20240501120500"}
    })
}

// --- send -------------------------------------------------------------------------------------

async fn send_one(deps: &TestDeps, message_id: &str, to: &str, body: &str) -> SendResult {
    let request = SendRequest {
        org_id: ORG.into(),
        connection_id: None,
        user_id: "UR_1".into(),
        messages: vec![SendItem {
            message_id: message_id.into(),
            to: to.into(),
            body: body.into(),
        }],
    };
    send(deps, &request).await.unwrap().results.remove(0)
}

fn queued(message_id: &str, parts: u32) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messageId": message_id, "resultCode": 1005, "description": "Queued", "smsCount": parts
    }))
}

/// LINK's API on a mock, and deps whose LINK adapter calls it.
async fn link_deps(backend: Backend) -> (MockServer, TestDeps) {
    let server = MockServer::start().await;
    let deps = deps(
        backend,
        settings_with_api_urls(&[(Provider::Linkmobility, server.uri())]),
    )
    .await;
    add_connection(&deps, Provider::Linkmobility, ORG, "conn_1").await;
    (server, deps)
}

#[tokio::test]
async fn the_send_request_is_exactly_what_link_documents() {
    let (server, deps) = link_deps(Backend::Embedded).await;
    Mock::given(method("POST"))
        .and(path("/sms/send"))
        .and(header("authorization", auth().as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "source": LINK_FROM,
            "sourceTON": "MSISDN",
            "destination": TO,
            "destinationTON": "MSISDN",
            "userData": "Take our survey: https://x.y/z",
            "dcs": "TEXT",
            "platformId": "COMMON_API",
            "platformPartnerId": PARTNER,
            "useDeliveryReport": true,
            "deliveryReportGates": [GATE],
            "refId": "dist42-r1",
            "ignoreResponse": false,
            "customParameters": {"replySmsCount": "true"},
        })))
        .respond_with(queued(LINK_ID, 1))
        .expect(1)
        .mount(&server)
        .await;
    let result = send_one(&deps, "dist42-r1", TO, "Take our survey: https://x.y/z").await;
    assert_eq!(result.status, ResultStatus::Accepted, "{result:?}");
    assert_eq!(result.provider_message_id.as_deref(), Some(LINK_ID));
    server.verify().await;
}

#[tokio::test]
async fn an_alphanumeric_or_short_sender_gets_its_ton() {
    for (from, ton) in [("Qualtrics", "ALPHANUMERIC"), ("2333", "SHORTNUMBER")] {
        let server = MockServer::start().await;
        let deps = deps(
            Backend::Embedded,
            settings_with_api_urls(&[(Provider::Linkmobility, server.uri())]),
        )
        .await;
        add_connection_with(
            &deps,
            Provider::Linkmobility,
            ORG,
            "conn_1",
            json!({"from": from}),
        )
        .await;
        Mock::given(body_partial_json(json!({"source": from, "sourceTON": ton})))
            .respond_with(queued(LINK_ID, 1))
            .expect(1)
            .mount(&server)
            .await;
        let result = send_one(&deps, "m1", TO, "hi").await;
        assert_eq!(result.status, ResultStatus::Accepted, "{from}: {result:?}");
        server.verify().await;
    }
}

#[tokio::test]
async fn error_answers_are_classified_and_only_throttling_is_retried() {
    use byosms::domain::SendErrorCode as C;
    let (server, deps) = link_deps(Backend::Embedded).await;
    let error = |http: u16, status: u32, description: &str| {
        ResponseTemplate::new(http).set_body_json(json!({
            "status": status, "description": description, "translatedDescription": null
        }))
    };
    let cases = [
        (
            "+4791000001",
            error(401, 106100, "Invalid authentication"),
            C::AuthFailed,
            false,
            1,
        ),
        (
            "+4791000002",
            error(403, 106102, "Unable to access SMSC credentials"),
            C::AuthFailed,
            false,
            1,
        ),
        (
            "+4791000003",
            error(403, 106200, "Invalid or missing platformId"),
            C::ConfigError,
            false,
            1,
        ),
        (
            "+4791000004",
            error(403, 106301, "Specified gate unavailable"),
            C::ConfigError,
            false,
            1,
        ),
        (
            "+4791000005",
            error(400, 106000, "Parse Error: invalid destination"),
            C::InvalidNumber,
            false,
            1,
        ),
        (
            "+4791000006",
            error(500, 106000, "Unknown error"),
            C::OutcomeUnknown,
            false,
            1,
        ),
        (
            "+4791000007",
            ResponseTemplate::new(204),
            C::OutcomeUnknown,
            false,
            1,
        ),
        (
            "+4791000008",
            error(429, 106000, "Too many requests").insert_header("retry-after", "0"),
            C::Throttled,
            true,
            3,
        ),
    ];
    for (i, (to, answer, code, retryable, calls)) in cases.into_iter().enumerate() {
        Mock::given(body_partial_json(json!({"destination": to})))
            .respond_with(answer)
            .expect(calls)
            .named(to)
            .mount(&server)
            .await;
        let result = send_one(&deps, &format!("err-{i}"), to, "hi").await;
        let failure = result
            .error
            .clone()
            .unwrap_or_else(|| panic!("{to}: {result:?}"));
        assert_eq!(result.status, ResultStatus::Failed, "{to}");
        assert_eq!(
            (failure.code, failure.retryable),
            (code, retryable),
            "{to}: {failure:?}"
        );
        assert!(!failure.message.contains(PASSWORD));
    }
    server.verify().await;
}

#[tokio::test]
async fn the_endpoint_host_goes_through_the_admin_host_rule() {
    // Without an override, the host is an admin's and must be a public DNS name.
    let deps = deps(Backend::Embedded, settings(None)).await;
    let adapter = deps.registry.get(Provider::Linkmobility).unwrap();
    let mut input = adapter.example_fields();
    input.insert("provider".into(), json!("linkmobility"));
    input.insert("name".into(), json!("LINK"));
    for bad in [
        "169.254.169.254",
        "localhost",
        "127.0.0.1",
        "wsx.sp247.net:8443",
        "https://wsx.sp247.net/sms",
        "metadata.google.internal",
    ] {
        input.insert("endpointHost".into(), json!(bad));
        let err = admin::add_connection(&deps, ORG, Some("c"), &Value::Object(input.clone()), None)
            .await
            .expect_err(bad)
            .to_string();
        assert!(err.contains("endpointHost"), "{bad}: {err}");
        assert!(!err.contains(PASSWORD), "{err}");
    }
    input.insert("endpointHost".into(), json!("n-eu.linkmobility.io"));
    let added = admin::add_connection(&deps, ORG, Some("c"), &Value::Object(input.clone()), None)
        .await
        .unwrap();
    assert_eq!(added.setting("endpointHost"), Some("n-eu.linkmobility.io"));
    // Under a deployment override (the sandbox) a bare local name is fine: it is never called.
    let sandboxed = deps_with_override().await;
    input.insert("endpointHost".into(), json!("linkmobility.local"));
    admin::add_connection(&sandboxed, ORG, Some("c"), &Value::Object(input), None)
        .await
        .unwrap();
}

async fn deps_with_override() -> TestDeps {
    deps(
        Backend::Embedded,
        settings_with_api_urls(&[(
            Provider::Linkmobility,
            "http://127.0.0.1:9/linkmobility".into(),
        )]),
    )
    .await
}

// --- bad webhooks through the gateway ---------------------------------------------------------

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    authorization: Option<String>,
    body: Vec<u8>,
    status: u16,
}

fn cases() -> Vec<Case> {
    let status_path = route_path("status", "linkmobility-sms", ORG);
    let good = dlr(Some("m1"), LINK_ID, json!(1001), "2024-05-01T10:00:01Z").to_string();
    let case = |name, authorization: Option<String>, status| Case {
        name,
        method: "POST",
        path: status_path.clone(),
        content_type: Some("application/json"),
        authorization,
        body: good.clone().into_bytes(),
        status,
    };
    let valid = || Some(auth());
    let with_body = |name, body: &[u8], status| Case {
        body: body.to_vec(),
        ..case(name, valid(), status)
    };
    let with_path = |name, path: String| Case {
        path,
        ..case(name, valid(), 404)
    };
    let with_type = |name, content_type| Case {
        content_type,
        ..case(name, valid(), 415)
    };
    let foreign_mo = mo("MO-foreign", "5", "99999").to_string();
    vec![
        case("no Authorization header", None, 401),
        case(
            "wrong password",
            Some(basic_authorization(USERNAME, "wrong")),
            403,
        ),
        case(
            "wrong username",
            Some(basic_authorization("someone", PASSWORD)),
            403,
        ),
        case("empty Authorization header", Some(String::new()), 403),
        case(
            "Bearer instead of Basic",
            Some(format!("Bearer {PASSWORD}")),
            403,
        ),
        case("credentials not in base64", Some("Basic %%%".into()), 403),
        // The URL of another org whose connection has other credentials.
        Case {
            path: route_path("status", "linkmobility-sms", "ORG_2"),
            ..case("valid credentials on another org's URL", valid(), 403)
        },
        // Basic auth does not cover the body; the MO's platformPartnerId is checked instead.
        with_body(
            "MO tampered to another platformPartnerId",
            foreign_mo.as_bytes(),
            403,
        ),
        with_body("truncated JSON", &good.as_bytes()[..good.len() / 2], 400),
        with_body("empty body", b"", 400),
        with_body("JSON that is a number, not an object", b"42", 400),
        with_body("JSON array of strings", br#"["a","b"]"#, 400),
        with_body("JSON object of neither kind", br#"{"hello":"world"}"#, 400),
        with_body("report without id", br#"{"resultCode":1001}"#, 400),
        with_body(
            "MO without messageId",
            br#"{"source":"+14155550100","destination":"NO-2333","content":{"userData":"5"}}"#,
            400,
        ),
        with_body("oversize body", &vec![b' '; 1024 * 1024 + 1], 413),
        with_type("XML body", Some("application/xml")),
        with_type("text body", Some("text/plain")),
        with_type("no content type", None),
        with_path(
            "unknown org",
            route_path("status", "linkmobility-sms", "ORG_NOBODY"),
        ),
        with_path(
            "unknown provider slug",
            route_path("status", "linkmobility-mms", ORG),
        ),
        with_path(
            "org without a LINK connection",
            route_path("status", "sinch", ORG),
        ),
        with_path(
            "org whose connection is disabled",
            route_path("status", "linkmobility", "ORG_DISABLED"),
        ),
        with_path(
            "route kind that does not exist",
            route_path("receipt", "linkmobility-sms", ORG),
        ),
        Case {
            method: "PUT",
            ..case("PUT instead of POST", valid(), 405)
        },
    ]
}

#[tokio::test]
async fn bad_link_webhooks_are_refused_and_nothing_is_stored() {
    let deps = deps(Backend::Embedded, settings(None)).await;
    add_connection(&deps, Provider::Linkmobility, ORG, "conn_1").await;
    let other = json!({"username": "org2-user", "password": "org2-password"});
    add_connection_with(&deps, Provider::Linkmobility, "ORG_2", "conn_1", other).await;
    add_connection(&deps, Provider::Linkmobility, "ORG_DISABLED", "conn_1").await;
    disable_connection(&deps, "ORG_DISABLED", "conn_1").await;
    let base = start_gateway(deps.deps.clone()).await;
    let http = reqwest::Client::new();

    let cases = cases();
    assert!(cases.len() >= 12);
    for case in cases {
        let mut request = http
            .request(case.method.parse().unwrap(), format!("{base}{}", case.path))
            .body(case.body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        if let Some(auth) = &case.authorization {
            request = request.header("authorization", auth);
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
        assert!(!body.contains(PASSWORD), "{}", case.name);
    }
    for org in [ORG, "ORG_2", "ORG_DISABLED", "ORG_NOBODY"] {
        let events = deps.stores.messages.list_events(org, 100).await.unwrap();
        assert!(events.is_empty(), "nothing stored for {org}: {events:?}");
    }
}

// --- good webhooks on both stores -------------------------------------------------------------

/// A JSON POST with the connection's Basic credentials, as the receive pipeline gets it.
fn link_request(route_path: &str, body: &Value) -> WebhookRequest {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("authorization", HeaderValue::from_str(&auth()).unwrap());
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

async fn post_link(deps: &TestDeps, kind: &str, body: &Value) -> u16 {
    let path = route_path(kind, "linkmobility-sms", ORG);
    let reply = receive(
        deps,
        &Route::from_path(&path).unwrap(),
        &link_request(&path, body),
    )
    .await;
    assert_eq!(
        (reply.status, reply.content_type, reply.body.as_str()),
        (200, "text/plain", "OK"),
        "{body}"
    );
    reply.status
}

async fn status_of(deps: &TestDeps, message_id: &str) -> Option<Status> {
    let record = deps
        .stores
        .messages
        .get_message(ORG, message_id)
        .await
        .unwrap();
    record.unwrap().status
}

#[tokio::test]
async fn statuses_are_monotonic_finals_sticky_duplicates_once_unknown_kept() {
    for backend in BACKENDS {
        let (server, deps) = link_deps(backend).await;
        Mock::given(method("POST"))
            .respond_with(queued(LINK_ID, 1))
            .mount(&server)
            .await;
        assert_eq!(
            send_one(&deps, "m1", TO, "survey").await.status,
            ResultStatus::Accepted
        );
        let reports = [
            dlr(Some("m1"), LINK_ID, json!(1000), "2024-05-01T10:00:01Z"),
            dlr(Some("m1"), LINK_ID, json!(1001), "2024-05-01T10:00:02Z"),
            dlr(Some("m1"), LINK_ID, json!(1001), "2024-05-01T10:00:02Z"), // LINK's retry
            dlr(Some("m1"), LINK_ID, json!(1000), "2024-05-01T10:00:03Z"), // late
            dlr(Some("m1"), LINK_ID, json!(1006), "2024-05-01T10:00:04Z"), // final after final
            dlr(Some("m1"), LINK_ID, json!(7777), "2024-05-01T10:00:05Z"), // nobody mapped it
        ];
        for report in &reports {
            post_link(&deps, "status", report).await;
        }
        assert_eq!(
            status_of(&deps, "m1").await,
            Some(Status::Delivered),
            "{backend:?}"
        );
        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        let m1 = Some("m1".to_string());
        assert_eq!(
            statuses(&events),
            [
                ("1000".into(), Status::Sent, m1.clone()),
                ("1001".into(), Status::Delivered, m1.clone()),
                ("1000".into(), Status::Sent, m1.clone()),
                ("1006".into(), Status::Undelivered, m1.clone()),
                ("7777".into(), Status::Unknown, m1.clone()),
            ],
            "{backend:?}: the duplicate is recorded once"
        );
    }
}

#[tokio::test]
async fn the_result_code_table_through_the_pipeline() {
    let table = [
        (1005, Status::Queued),
        (1008, Status::Queued),
        (1000, Status::Sent),
        (1013, Status::Sent),
        (1001, Status::Delivered),
        (1007, Status::Delivered),
        (1002, Status::Undelivered),
        (1009, Status::Undelivered),
        (2104, Status::Undelivered),
        (1003, Status::Failed),
        (3, Status::Failed),
        (2103, Status::Failed),
        (4001, Status::Failed),
    ];
    for backend in BACKENDS {
        let (server, deps) = link_deps(backend).await;
        for (i, (code, expected)) in table.into_iter().enumerate() {
            let (message_id, link_id) = (format!("rc-{i}"), format!("LINK{i}+/x"));
            Mock::given(body_partial_json(json!({"refId": message_id})))
                .respond_with(queued(&link_id, 1))
                .mount(&server)
                .await;
            send_one(&deps, &message_id, TO, "survey").await;
            // No refId: found by LINK's id alone.
            post_link(
                &deps,
                "status",
                &dlr(None, &link_id, json!(code), "2024-05-01T10:00:00Z"),
            )
            .await;
            assert_eq!(
                status_of(&deps, &message_id).await,
                Some(expected),
                "{backend:?} {code}"
            );
        }
        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        let Event::Status(failed) = &events[9] else {
            panic!("{events:?}")
        };
        assert_eq!(
            (failed.error_code.as_deref(), failed.message_id.as_deref()),
            (Some("1003"), Some("rc-9"))
        );
    }
}

#[tokio::test]
async fn part_reports_are_aggregated_through_the_per_part_model() {
    for backend in BACKENDS {
        let (server, deps) = link_deps(backend).await;
        let long = "Take our survey, it takes two minutes. ".repeat(6);
        Mock::given(body_partial_json(json!({"refId": "long-ok"})))
            .respond_with(queued("PARTS+ok/1", 2))
            .mount(&server)
            .await;
        Mock::given(body_partial_json(json!({"refId": "long-bad"})))
            .respond_with(queued("PARTS+bad/1", 2))
            .mount(&server)
            .await;
        for id in ["long-ok", "long-bad"] {
            let result = send_one(&deps, id, TO, &long).await;
            assert_eq!(
                (result.status, result.segments),
                (ResultStatus::Accepted, Some(2))
            );
        }
        let record = deps
            .stores
            .messages
            .get_message(ORG, "long-ok")
            .await
            .unwrap()
            .unwrap();
        let parts: Vec<&str> = record
            .parts
            .iter()
            .map(|p| p.provider_message_id.as_str())
            .collect();
        assert_eq!(parts, ["PARTS+ok/1$0", "PARTS+ok/1$1"], "{backend:?}");

        let at = "2024-05-01T10:00:00Z";
        post_link(
            &deps,
            "status",
            &dlr(Some("long-ok"), "PARTS+ok/1$0", json!(1001), at),
        )
        .await;
        assert_eq!(
            status_of(&deps, "long-ok").await,
            Some(Status::Accepted),
            "{backend:?}: one part of two"
        );
        post_link(&deps, "status", &dlr(None, "PARTS+ok/1$1", json!(1001), at)).await;
        assert_eq!(
            status_of(&deps, "long-ok").await,
            Some(Status::Delivered),
            "{backend:?}"
        );

        post_link(
            &deps,
            "status",
            &dlr(Some("long-bad"), "PARTS+bad/1$1", json!(1001), at),
        )
        .await;
        post_link(
            &deps,
            "status",
            &dlr(Some("long-bad"), "PARTS+bad/1$0", json!(2104), at),
        )
        .await;
        assert_eq!(
            status_of(&deps, "long-bad").await,
            Some(Status::Undelivered),
            "{backend:?}"
        );
        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        let ids: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Status(s) => Some((s.provider_message_id.as_str(), s.message_id.as_deref())),
                Event::Inbound(_) => None,
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("PARTS+ok/1$0", Some("long-ok")),
                ("PARTS+ok/1$1", Some("long-ok")),
                ("PARTS+bad/1$1", Some("long-bad")),
                ("PARTS+bad/1$0", Some("long-bad")),
            ],
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn mos_are_linked_deduplicated_and_stop_opts_out() {
    for backend in BACKENDS {
        let (server, deps) = link_deps(backend).await;
        Mock::given(method("POST"))
            .respond_with(queued(LINK_ID, 1))
            .mount(&server)
            .await;
        send_one(&deps, "m-older", TO, "survey").await;
        send_one(&deps, "m-latest", TO, "survey").await;
        post_link(
            &deps,
            "message",
            &mo("MO+1/aaaaaaaaaaaaaaaaaaa", "5", PARTNER),
        )
        .await;
        post_link(
            &deps,
            "message",
            &mo("MO+1/aaaaaaaaaaaaaaaaaaa", "5", PARTNER),
        )
        .await; // retry
        // A DLR on the message route (one gate for both) is recorded as a status.
        post_link(
            &deps,
            "message",
            &dlr(
                Some("m-latest"),
                LINK_ID,
                json!(1001),
                "2024-05-01T10:00:00Z",
            ),
        )
        .await;
        // A partner id given as a number is the same partner.
        let mut stop = mo("MO+2/bbbbbbbbbbbbbbbbbbb", "STOP", PARTNER);
        stop["route"]["platformPartnerId"] = json!(12345);
        post_link(&deps, "message", &stop).await;

        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        assert_eq!(events.len(), 3, "{backend:?}: {events:?}");
        let Event::Inbound(reply) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(
            (reply.from.as_str(), reply.to.as_str(), reply.text.as_str()),
            (TO, LINK_FROM, "5")
        );
        assert_eq!(
            reply.in_reply_to.as_deref(),
            Some("m-latest"),
            "{backend:?}"
        );
        assert!(!reply.opt_out);
        assert!(matches!(&events[1], Event::Status(s) if s.status == Status::Delivered));
        let Event::Inbound(stop) = &events[2] else {
            panic!("{events:?}")
        };
        assert!(stop.opt_out, "{backend:?}");
        assert!(deps.stores.messages.is_opted_out(ORG, TO).await.unwrap());
        let after = send_one(&deps, "m-after-stop", TO, "survey").await;
        assert_eq!(
            after.error.map(|e| e.code),
            Some(byosms::domain::SendErrorCode::OptedOut),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn an_mo_goes_to_the_connection_of_its_platform_partner() {
    // Two connections of one org share LINK credentials but not the platform partner.
    let deps = deps(Backend::Embedded, settings(None)).await;
    add_connection(&deps, Provider::Linkmobility, ORG, "conn_a").await;
    let other = json!({"platformPartnerId": "67890"});
    add_connection_with(&deps, Provider::Linkmobility, ORG, "conn_b", other).await;
    for (partner, owner) in [(PARTNER, "conn_a"), ("67890", "conn_b")] {
        post_link(
            &deps,
            "message",
            &mo(&format!("MO-{partner}"), "5", partner),
        )
        .await;
        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        let Some(Event::Inbound(last)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(last.connection_id, owner);
    }
}
