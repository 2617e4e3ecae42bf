//! Vonage through the bundle: the exact send request against a local mock of the SMS API (method,
//! path, content type, every form field) and its error answers; a table of bad webhook requests
//! through the gateway, each answered with its status and nothing stored; and what good receipts
//! and replies record on both stores: monotonic statuses, duplicates once, unknown words kept,
//! one id per part with the message delivered only when every part is, multipart replies joined
//! in any order across GET, form and JSON, every signature method, the replay window.

use crate::support::*;
use byosms::domain::{Event, Provider, SendErrorCode, Status};
use byosms::pipeline::receive::receive;
use byosms::pipeline::send::{ResultStatus, SendItem, SendRequest, SendResult, send};
use byosms::providers::vonage::{REPLAY_WINDOW_SECONDS, SignatureMethod, signature};
use byosms::webhook::{Route, RouteKind, WebhookRequest};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{Map, Value, json};
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PREFIX: &str = "/distribution-providers/v1/receive/distribution";
const API_KEY: &str = "vk5ec2e7";
/// Distinctive, so a search of answers for them cannot miss.
const API_SECRET: &str = "Vs5ec2e7f00d99aa";
const SIGNATURE_SECRET: &str = "VonageSig-5ec2e7f00d-5ec2e7f00d-99";
/// Our Vonage number, as the connection keeps it (no `+`).
const OUR_NUMBER: &str = "14155550199";
/// `TO` as Vonage writes it.
const RECIPIENT: &str = "14155550100";

async fn add_vonage(deps: &TestDeps, org: &str, method: SignatureMethod) {
    add_vonage_with(deps, org, method, SIGNATURE_SECRET).await;
}

async fn add_vonage_with(deps: &TestDeps, org: &str, method: SignatureMethod, secret: &str) {
    let overrides = json!({
        "apiKey": API_KEY,
        "apiSecret": API_SECRET,
        "from": OUR_NUMBER,
        "signatureSecret": secret,
        "signatureMethod": method.as_str(),
    });
    add_connection_with(deps, Provider::Vonage, org, "conn_1", overrides).await;
}

fn owned(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

/// `params` with a fresh `timestamp` and `nonce`, and the `sig` Vonage would add.
fn signed(method: SignatureMethod, secret: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
    signed_at(method, secret, params, &now())
}

fn signed_at(
    method: SignatureMethod,
    secret: &str,
    params: &[(&str, &str)],
    timestamp: &str,
) -> Vec<(String, String)> {
    let mut params = owned(params);
    params.push(("timestamp".into(), timestamp.into()));
    params.push(("nonce".into(), uuid::Uuid::new_v4().to_string()));
    let sig = signature(method, secret, &params);
    params.push(("sig".into(), sig));
    params
}

fn signed_md5hash(params: &[(&str, &str)]) -> Vec<(String, String)> {
    signed(SignatureMethod::Md5Hash, SIGNATURE_SECRET, params)
}

fn encode(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn json_body(params: &[(String, String)]) -> Vec<u8> {
    let object: Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    serde_json::to_vec(&object).unwrap()
}

/// The three ways Vonage can be set to call: GET, POST form, POST JSON.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Get,
    Form,
    Json,
}

fn route_path(kind: RouteKind, org: &str) -> String {
    format!("{PREFIX}/{}/vonage-sms/{org}", kind.as_str())
}

/// A Vonage webhook as the receive pipeline gets it.
fn webhook(kind: RouteKind, shape: Shape, params: &[(String, String)]) -> WebhookRequest {
    let raw_path = route_path(kind, ORG);
    let mut headers = HeaderMap::new();
    let (method, raw_query, body) = match shape {
        Shape::Get => (Method::GET, encode(params), Vec::new()),
        Shape::Form => {
            headers.insert(
                "content-type",
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            (Method::POST, String::new(), encode(params).into_bytes())
        }
        Shape::Json => {
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            (Method::POST, String::new(), json_body(params))
        }
    };
    WebhookRequest {
        method,
        public_url: format!("https://sms.example.test{raw_path}"),
        raw_path,
        raw_query,
        headers,
        body: Bytes::from(body),
        received_at: chrono::Utc::now(),
    }
}

async fn deliver(deps: &TestDeps, kind: RouteKind, shape: Shape, params: &[(String, String)]) {
    let route = Route::from_path(&route_path(kind, ORG)).unwrap();
    let reply = receive(deps, &route, &webhook(kind, shape, params)).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, ""),
        "{shape:?} {params:?}"
    );
}

fn receipt<'a>(part_id: &'a str, client_ref: &'a str, status: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("msisdn", RECIPIENT),
        ("to", OUR_NUMBER),
        ("network-code", "310090"),
        ("messageId", part_id),
        ("price", "0.00570000"),
        ("status", status),
        ("scts", "2501011200"),
        ("err-code", "0"),
        ("api-key", API_KEY),
        ("client-ref", client_ref),
        ("message-timestamp", "2025-01-01 12:00:05"),
    ]
}

fn inbound<'a>(id: &'a str, text: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("msisdn", RECIPIENT),
        ("to", OUR_NUMBER),
        ("messageId", id),
        ("text", text),
        ("type", "text"),
        ("keyword", "KW"),
        ("api-key", API_KEY),
        ("message-timestamp", "2025-01-01 12:01:00"),
    ]
}

// ---------------------------------------------------------------------------------------------
// Sending

fn send_request(message_id: &str, to: &str, body: &str) -> SendRequest {
    SendRequest {
        org_id: ORG.into(),
        connection_id: Some("conn_1".into()),
        user_id: "UR_1".into(),
        messages: vec![SendItem {
            message_id: message_id.into(),
            to: to.into(),
            body: body.into(),
        }],
    }
}

fn status_url() -> String {
    format!(
        "https://sms.example.test{}",
        route_path(RouteKind::Status, ORG)
    )
}

/// Vonage's answer accepting a message as these parts.
fn accepted(part_ids: &[&str]) -> ResponseTemplate {
    let messages: Vec<Value> = part_ids
        .iter()
        .map(|id| {
            json!({"to": RECIPIENT, "message-id": id, "status": "0",
                   "remaining-balance": "38.07", "message-price": "0.0412", "network": "23420"})
        })
        .collect();
    ResponseTemplate::new(200)
        .set_body_json(json!({"message-count": part_ids.len().to_string(), "messages": messages}))
}

fn vonage_error(status: &str, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "message-count": "1",
        "messages": [{"status": status, "error-text": text}],
    }))
}

/// The SMS API request with exactly these form fields, in this order.
fn send_api_request(fields: &[(&str, &str)]) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/json"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(header("accept", "application/json"))
        .and(body_string(form(fields)))
}

async fn vonage_deps(backend: Backend, api: &MockServer) -> TestDeps {
    let deps = deps(
        backend,
        settings_with_api_urls(&[(Provider::Vonage, api.uri())]),
    )
    .await;
    add_vonage(&deps, ORG, SignatureMethod::Md5Hash).await;
    deps
}

async fn send_one(deps: &TestDeps, message_id: &str, to: &str, body: &str) -> SendResult {
    let mut response = send(deps, &send_request(message_id, to, body))
        .await
        .unwrap();
    response.results.remove(0)
}

#[tokio::test]
async fn sends_the_documented_form_with_every_field() {
    for backend in BACKENDS {
        let api = MockServer::start().await;
        let body = "Take our survey: https://x.y/z";
        let callback = status_url();
        send_api_request(&[
            ("api_key", API_KEY),
            ("api_secret", API_SECRET),
            ("from", OUR_NUMBER),
            ("to", RECIPIENT),
            ("text", body),
            ("type", "text"),
            ("client-ref", "v-send-1"),
            ("callback", &callback),
        ])
        .respond_with(accepted(&["0C000000217B7F02"]))
        .expect(1)
        .mount(&api)
        .await;
        let deps = vonage_deps(backend, &api).await;

        let result = send_one(&deps, "v-send-1", TO, body).await;
        assert_eq!(
            (result.status, result.provider_message_id.as_deref()),
            (ResultStatus::Accepted, Some("0C000000217B7F02")),
            "{backend:?}: {result:?}"
        );
        let record = deps
            .stores
            .messages
            .get_message(ORG, "v-send-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, Some(Status::Accepted));
        assert!(record.parts.is_empty(), "one part, one id");
    }
}

#[tokio::test]
async fn unicode_is_sent_as_unicode_and_long_status_urls_are_left_to_the_account() {
    let api = MockServer::start().await;
    let body = "アンケートにご協力ください";
    // No callback: the status URL on this host is longer than Vonage's 100 characters.
    send_api_request(&[
        ("api_key", API_KEY),
        ("api_secret", API_SECRET),
        ("from", OUR_NUMBER),
        ("to", RECIPIENT),
        ("text", body),
        ("type", "unicode"),
        ("client-ref", "v-send-2"),
    ])
    .respond_with(accepted(&["0C000000217B7F03"]))
    .expect(1)
    .mount(&api)
    .await;
    let mut settings = settings_with_api_urls(&[(Provider::Vonage, api.uri())]);
    settings.public_base_url = Some(
        "https://abcdef1234.execute-api.eu-west-1.amazonaws.com"
            .parse()
            .unwrap(),
    );
    let deps = deps(Backend::Embedded, settings).await;
    add_vonage(&deps, ORG, SignatureMethod::Md5Hash).await;
    let result = send_one(&deps, "v-send-2", TO, body).await;
    assert_eq!(result.status, ResultStatus::Accepted, "{result:?}");
    assert_eq!(result.encoding.as_deref(), Some("ucs2"));
}

#[tokio::test]
async fn error_answers_are_classified_and_never_show_a_secret() {
    let cases: Vec<(&str, ResponseTemplate, SendErrorCode, bool)> = vec![
        (
            "status 1, throttled",
            vonage_error(
                "1",
                "Throughput Rate Exceeded - please wait [ 10 ] and retry",
            ),
            SendErrorCode::Throttled,
            true,
        ),
        (
            "status 4",
            vonage_error("4", "Bad Credentials"),
            SendErrorCode::AuthFailed,
            false,
        ),
        (
            "status 9",
            vonage_error("9", "Quota Exceeded - rejected"),
            SendErrorCode::InsufficientFunds,
            false,
        ),
        (
            "status 15",
            vonage_error("15", "Illegal Sender Address - rejected"),
            SendErrorCode::InvalidSender,
            false,
        ),
        (
            "HTTP 429",
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(json!({"title": "Rate Limit Hit", "detail": "Please wait"})),
            SendErrorCode::Throttled,
            true,
        ),
        (
            "HTTP 500 after sending",
            ResponseTemplate::new(500).set_body_string("oops"),
            SendErrorCode::OutcomeUnknown,
            false,
        ),
        (
            "HTTP 200 that is not JSON",
            ResponseTemplate::new(200).set_body_string("<html>"),
            SendErrorCode::OutcomeUnknown,
            false,
        ),
        (
            "part 2 of 2 refused",
            ResponseTemplate::new(200).set_body_json(json!({"message-count": "2", "messages": [
                {"to": RECIPIENT, "message-id": "0C00000000000010", "status": "0"},
                {"status": "9", "error-text": "Quota Exceeded - rejected"},
            ]})),
            SendErrorCode::InsufficientFunds,
            false,
        ),
    ];
    for (i, (name, answer, code, retried)) in cases.into_iter().enumerate() {
        let api = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/json"))
            .respond_with(answer)
            .mount(&api)
            .await;
        let deps = vonage_deps(Backend::Embedded, &api).await;
        let result = send_one(&deps, &format!("v-err-{i}"), TO, "survey").await;
        let error = result
            .error
            .clone()
            .unwrap_or_else(|| panic!("{name}: {result:?}"));
        assert_eq!(
            (result.status, error.code),
            (ResultStatus::Failed, code),
            "{name}: {error:?}"
        );
        let calls = api.received_requests().await.unwrap().len();
        assert_eq!(calls > 1, retried, "{name}: {calls} calls");
        for secret in [API_SECRET, SIGNATURE_SECRET] {
            assert!(!error.message.contains(secret), "{name}: {error:?}");
        }
    }
}

#[tokio::test]
#[ignore = "needs `shared/tools/spec-mock vonage 4021` running (Prism validating specs/vonage-sms.yaml)"]
async fn the_send_request_passes_vonages_api_description() {
    let spec_mock = std::env::var("BYOSMS_TEST_VONAGE_SPEC_MOCK")
        .unwrap_or_else(|_| "http://127.0.0.1:4021".into());
    let deps = deps(
        Backend::Embedded,
        settings_with_api_urls(&[(Provider::Vonage, spec_mock)]),
    )
    .await;
    add_vonage(&deps, ORG, SignatureMethod::Md5Hash).await;
    for (id, body) in [("v-spec-1", "Take our survey"), ("v-spec-2", "アンケート")] {
        let result = send_one(&deps, id, TO, body).await;
        // Prism answers the spec's example (message-id 0A0000000123ABCD1) only to a valid request.
        assert_eq!(
            (result.status, result.provider_message_id.as_deref()),
            (ResultStatus::Accepted, Some("0A0000000123ABCD1")),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad webhooks through the gateway

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    query: String,
    body: Vec<u8>,
    status: u16,
}

fn form_case(name: &'static str, params: &[(String, String)], status: u16) -> Case {
    Case {
        name,
        method: "POST",
        path: route_path(RouteKind::Message, ORG),
        content_type: Some("application/x-www-form-urlencoded"),
        query: String::new(),
        body: encode(params).into_bytes(),
        status,
    }
}

fn get_case(name: &'static str, params: &[(String, String)], status: u16) -> Case {
    Case {
        name,
        method: "GET",
        path: route_path(RouteKind::Status, ORG),
        content_type: None,
        query: encode(params),
        body: Vec::new(),
        status,
    }
}

fn json_case(name: &'static str, body: Vec<u8>, status: u16) -> Case {
    Case {
        name,
        method: "POST",
        path: route_path(RouteKind::Message, ORG),
        content_type: Some("application/json"),
        query: String::new(),
        body,
        status,
    }
}

fn bad_cases() -> Vec<Case> {
    let message = inbound("02000000DA7C52E7", "5");
    let good = signed_md5hash(&message);
    let unsigned = owned(&message);
    let seconds_away = |seconds: i64| (chrono::Utc::now().timestamp() + seconds).to_string();

    let mut tampered = good.clone();
    tampered[3].1 = "6".into();
    let mut added = good.clone();
    added.push(("client-ref".into(), "someone-elses".into()));
    let mut wrong_sig = good.clone();
    wrong_sig.last_mut().unwrap().1 = "d2e7b1dc968737c5998ad624e02f90b7".into();
    let mut empty_sig = good.clone();
    empty_sig.last_mut().unwrap().1 = String::new();
    let without_timestamp = {
        let params = owned(&message);
        let sig = signature(SignatureMethod::Md5Hash, SIGNATURE_SECRET, &params);
        [params, vec![("sig".into(), sig)]].concat()
    };
    let mut foreign_key = message.clone();
    foreign_key[6] = ("api-key", "ffff0000");
    let receipt_without_id: Vec<_> = receipt("x", "v-m", "delivered")
        .into_iter()
        .filter(|(k, _)| *k != "messageId")
        .collect();
    let good_json = json_body(&good);

    let mut truncated_form = form_case("truncated form (cut in transit, sig lost)", &good, 401);
    truncated_form.body.truncate(truncated_form.body.len() / 2);
    let mut truncated_json = json_case("truncated JSON", good_json.clone(), 403);
    truncated_json.body.truncate(good_json.len() - 2);
    let mut wrong_type = form_case("wrong content type", &good, 415);
    wrong_type.content_type = Some("text/plain");
    let mut no_type = form_case("POST without a content type", &good, 415);
    no_type.content_type = None;
    let mut json_as_form = json_case("JSON sent as a form", good_json.clone(), 401);
    json_as_form.content_type = Some("application/x-www-form-urlencoded");
    let mut oversize = form_case("oversize body", &good, 413);
    oversize.body = vec![b'a'; 1024 * 1024 + 1];
    let mut other_org = form_case(
        "signed for another org's connection (wrong URL)",
        &signed(
            SignatureMethod::Md5Hash,
            "AnotherOrgsSignatureSecret-0000",
            &message,
        ),
        403,
    );
    other_org.path = route_path(RouteKind::Message, ORG);
    let mut unknown_org = form_case("unknown org", &good, 404);
    unknown_org.path = route_path(RouteKind::Message, "ORG_NOBODY");
    let mut no_connection = form_case("org without a Vonage connection", &good, 404);
    no_connection.path = route_path(RouteKind::Message, "ORG_TWILIO");
    let mut unknown_kind = form_case("route kind that does not exist", &good, 404);
    unknown_kind.path = format!("{PREFIX}/receipt/vonage-sms/{ORG}");
    let mut deeper = form_case("path below the route", &good, 404);
    deeper.path = format!("{}/extra", route_path(RouteKind::Message, ORG));
    let mut put = form_case("PUT instead of GET or POST", &good, 405);
    put.method = "PUT";

    vec![
        get_case("no sig (signing not enabled at Vonage)", &unsigned, 401),
        get_case("wrong sig", &wrong_sig, 403),
        get_case("empty sig", &empty_sig, 403),
        get_case(
            "signed with another secret",
            &signed(
                SignatureMethod::Md5Hash,
                "NotTheSignatureSecret-1234",
                &message,
            ),
            403,
        ),
        get_case(
            "signed with another method than the connection's",
            &signed(SignatureMethod::HmacSha256, SIGNATURE_SECRET, &message),
            403,
        ),
        get_case(
            "stale timestamp",
            &signed_at(
                SignatureMethod::Md5Hash,
                SIGNATURE_SECRET,
                &message,
                &seconds_away(-REPLAY_WINDOW_SECONDS - 60),
            ),
            403,
        ),
        get_case(
            "future timestamp",
            &signed_at(
                SignatureMethod::Md5Hash,
                SIGNATURE_SECRET,
                &message,
                &seconds_away(REPLAY_WINDOW_SECONDS + 60),
            ),
            403,
        ),
        get_case(
            "timestamp that is not a number",
            &signed_at(
                SignatureMethod::Md5Hash,
                SIGNATURE_SECRET,
                &message,
                "yesterday",
            ),
            403,
        ),
        get_case("signed without a timestamp", &without_timestamp, 403),
        form_case("tampered text", &tampered, 403),
        form_case("parameter added after signing", &added, 403),
        form_case(
            "another account's api-key, validly signed",
            &signed_md5hash(&foreign_key),
            403,
        ),
        other_org,
        truncated_form,
        truncated_json,
        json_case(
            "JSON that is not an object",
            br#""just text""#.to_vec(),
            403,
        ),
        json_as_form,
        wrong_type,
        no_type,
        oversize,
        get_case(
            "signed receipt without messageId",
            &signed_md5hash(&receipt_without_id),
            400,
        ),
        form_case(
            "signed parameters that are no Vonage payload",
            &signed_md5hash(&[("hello", "world")]),
            400,
        ),
        unknown_org,
        no_connection,
        unknown_kind,
        deeper,
        put,
    ]
}

#[tokio::test]
async fn bad_vonage_webhooks_are_refused_and_nothing_is_stored() {
    let deps = deps(Backend::Embedded, settings(None)).await;
    add_vonage(&deps, ORG, SignatureMethod::Md5Hash).await;
    add_twilio(&deps, "ORG_TWILIO", "conn_1", FROM).await;
    let base = start_gateway(deps.deps.clone()).await;
    let http = reqwest::Client::new();

    let cases = bad_cases();
    assert!(cases.len() >= 12);
    for case in cases {
        let mut url = format!("{base}{}", case.path);
        if !case.query.is_empty() {
            url = format!("{url}?{}", case.query);
        }
        let mut request = http
            .request(case.method.parse().unwrap(), &url)
            .body(case.body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
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
        for secret in [API_SECRET, SIGNATURE_SECRET] {
            assert!(!body.contains(secret), "{}: {body}", case.name);
        }
    }
    for org in [ORG, "ORG_TWILIO", "ORG_NOBODY"] {
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

/// Sends `message_id` through a mock that accepts it as `part_ids`.
async fn sent(deps: &TestDeps, api: &MockServer, message_id: &str, body: &str, part_ids: &[&str]) {
    Mock::given(method("POST"))
        .and(path("/json"))
        .respond_with(accepted(part_ids))
        .up_to_n_times(1)
        .mount(api)
        .await;
    let result = send_one(deps, message_id, TO, body).await;
    assert_eq!(result.status, ResultStatus::Accepted, "{result:?}");
}

async fn status_of(deps: &TestDeps, message_id: &str) -> Option<Status> {
    deps.stores
        .messages
        .get_message(ORG, message_id)
        .await
        .unwrap()
        .unwrap()
        .status
}

async fn events(deps: &TestDeps) -> Vec<Event> {
    deps.stores.messages.list_events(ORG, 1000).await.unwrap()
}

#[tokio::test]
async fn receipts_are_monotonic_deduplicated_and_unknown_words_kept() {
    for backend in BACKENDS {
        let api = MockServer::start().await;
        let deps = vonage_deps(backend, &api).await;
        sent(&deps, &api, "v-m1", "survey", &["0C00000000000001"]).await;
        let shapes = [
            Shape::Get,
            Shape::Form,
            Shape::Json,
            Shape::Get,
            Shape::Form,
            Shape::Json,
        ];
        let words = [
            "accepted",
            "delivered",
            "delivered",
            "buffered",
            "exploded",
            "unknown",
        ];
        for (shape, word) in shapes.into_iter().zip(words) {
            let params = signed_md5hash(&receipt("0C00000000000001", "v-m1", word));
            deliver(&deps, RouteKind::Status, shape, &params).await;
        }
        assert_eq!(
            status_of(&deps, "v-m1").await,
            Some(Status::Delivered),
            "{backend:?}: late words never overwrite delivered"
        );
        let recorded: Vec<_> = events(&deps)
            .await
            .into_iter()
            .map(|e| match e {
                Event::Status(s) => (s.provider_status, s.status, s.message_id),
                Event::Inbound(i) => panic!("{backend:?}: {i:?}"),
            })
            .collect();
        let m1 = Some("v-m1".to_string());
        assert_eq!(
            recorded,
            [
                ("accepted".to_string(), Status::Sent, m1.clone()),
                ("delivered".to_string(), Status::Delivered, m1.clone()),
                ("buffered".to_string(), Status::Sent, m1.clone()),
                ("exploded".to_string(), Status::Unknown, m1.clone()),
                ("unknown".to_string(), Status::Sent, m1.clone()),
            ],
            "{backend:?}: the repeated delivered is recorded once"
        );
    }
}

#[tokio::test]
async fn each_part_has_its_receipts_and_the_message_is_delivered_when_all_are() {
    for backend in BACKENDS {
        let api = MockServer::start().await;
        let deps = vonage_deps(backend, &api).await;
        let long = "a".repeat(400); // three GSM-7 parts
        let parts = ["0C000000000000A1", "0C000000000000A2", "0C000000000000A3"];
        sent(&deps, &api, "v-long", &long, &parts).await;
        let record = deps
            .stores
            .messages
            .get_message(ORG, "v-long")
            .await
            .unwrap()
            .unwrap();
        let stored: Vec<&str> = record
            .parts
            .iter()
            .map(|p| p.provider_message_id.as_str())
            .collect();
        assert_eq!(stored, parts, "{backend:?}: one id per part");

        // Parts report out of order; a receipt without client-ref finds its message by part id.
        deliver(
            &deps,
            RouteKind::Status,
            Shape::Json,
            &signed_md5hash(&receipt(parts[2], "v-long", "delivered")),
        )
        .await;
        let no_ref: Vec<_> = receipt(parts[0], "", "delivered");
        deliver(
            &deps,
            RouteKind::Status,
            Shape::Get,
            &signed_md5hash(&no_ref),
        )
        .await;
        assert_ne!(
            status_of(&deps, "v-long").await,
            Some(Status::Delivered),
            "{backend:?}: a part is still out"
        );
        deliver(
            &deps,
            RouteKind::Status,
            Shape::Form,
            &signed_md5hash(&receipt(parts[1], "v-long", "delivered")),
        )
        .await;
        assert_eq!(
            status_of(&deps, "v-long").await,
            Some(Status::Delivered),
            "{backend:?}"
        );

        // Another long message: one part's final failure is the message's.
        let others = ["0C000000000000B1", "0C000000000000B2"];
        sent(&deps, &api, "v-long-2", &"b".repeat(200), &others).await;
        deliver(
            &deps,
            RouteKind::Status,
            Shape::Get,
            &signed_md5hash(&receipt(others[0], "v-long-2", "delivered")),
        )
        .await;
        deliver(
            &deps,
            RouteKind::Status,
            Shape::Get,
            &signed_md5hash(&receipt(others[1], "v-long-2", "expired")),
        )
        .await;
        assert_eq!(
            status_of(&deps, "v-long-2").await,
            Some(Status::Undelivered),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn err_code_9_opts_the_recipient_out() {
    for backend in BACKENDS {
        let api = MockServer::start().await;
        let deps = vonage_deps(backend, &api).await;
        sent(&deps, &api, "v-m9", "survey", &["0C00000000000009"]).await;
        let mut refused = receipt("0C00000000000009", "v-m9", "rejected");
        refused[7] = ("err-code", "9");
        deliver(
            &deps,
            RouteKind::Status,
            Shape::Json,
            &signed_md5hash(&refused),
        )
        .await;
        assert_eq!(status_of(&deps, "v-m9").await, Some(Status::Failed));
        assert!(
            deps.stores.messages.is_opted_out(ORG, TO).await.unwrap(),
            "{backend:?}: err-code 9 is Vonage's opted-out recipient"
        );
        let Event::Status(e) = &events(&deps).await[0] else {
            panic!()
        };
        assert_eq!(e.error_code.as_deref(), Some("9"));
        // Later sends to that number are refused without calling Vonage.
        let calls = api.received_requests().await.unwrap().len();
        let result = send_one(&deps, "v-m9-again", TO, "survey").await;
        assert_eq!(result.error.map(|e| e.code), Some(SendErrorCode::OptedOut));
        assert_eq!(api.received_requests().await.unwrap().len(), calls);
    }
}

#[tokio::test]
async fn multipart_replies_are_joined_in_any_order_across_shapes() {
    for backend in BACKENDS {
        let api = MockServer::start().await;
        let deps = vonage_deps(backend, &api).await;
        sent(&deps, &api, "v-asked", "How was it?", &["0C00000000000100"]).await;
        let part = |id: &'static str, index: &'static str, text: &'static str| {
            let mut p = inbound(id, text);
            p.extend([
                ("concat", "true"),
                ("concat-ref", "4F"),
                ("concat-total", "3"),
                ("concat-part", index),
            ]);
            signed_md5hash(&p)
        };
        let third = part("0200000000000003", "3", " three");
        deliver(&deps, RouteKind::Message, Shape::Json, &third).await;
        deliver(
            &deps,
            RouteKind::Message,
            Shape::Get,
            &part("0200000000000001", "1", "one"),
        )
        .await;
        assert!(
            events(&deps).await.is_empty(),
            "{backend:?}: waiting for part 2"
        );
        deliver(
            &deps,
            RouteKind::Message,
            Shape::Form,
            &part("0200000000000002", "2", " two"),
        )
        .await;
        // Vonage re-sends a part it thinks we missed: the reply is still recorded once.
        deliver(&deps, RouteKind::Message, Shape::Json, &third).await;

        let events = events(&deps).await;
        assert_eq!(events.len(), 1, "{backend:?}: {events:?}");
        let Event::Inbound(reply) = &events[0] else {
            panic!()
        };
        assert_eq!(
            (
                reply.text.as_str(),
                reply.from.as_str(),
                reply.to.as_str(),
                reply.in_reply_to.as_deref()
            ),
            ("one two three", TO, FROM, Some("v-asked")),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn replies_link_to_the_last_message_and_stop_opts_out() {
    for backend in BACKENDS {
        let api = MockServer::start().await;
        let deps = vonage_deps(backend, &api).await;
        sent(&deps, &api, "v-m3", "survey", &["0C00000000000003"]).await;
        let five = signed_md5hash(&inbound("0200000000000005", "5"));
        deliver(&deps, RouteKind::Message, Shape::Get, &five).await;
        deliver(&deps, RouteKind::Message, Shape::Get, &five).await;
        deliver(
            &deps,
            RouteKind::Message,
            Shape::Form,
            &signed_md5hash(&inbound("0200000000000006", "STOP")),
        )
        .await;
        // A receipt on the message route is recorded as what it is.
        deliver(
            &deps,
            RouteKind::Message,
            Shape::Json,
            &signed_md5hash(&receipt("0C00000000000003", "v-m3", "delivered")),
        )
        .await;

        let events = events(&deps).await;
        assert_eq!(
            events.len(),
            3,
            "{backend:?}: the repeated reply once: {events:?}"
        );
        let Event::Inbound(first) = &events[0] else {
            panic!()
        };
        assert_eq!(
            (
                first.text.as_str(),
                first.in_reply_to.as_deref(),
                first.opt_out,
                first.from.as_str()
            ),
            ("5", Some("v-m3"), false, TO)
        );
        let Event::Inbound(stop) = &events[1] else {
            panic!()
        };
        assert!(stop.opt_out);
        assert!(matches!(&events[2], Event::Status(s) if s.status == Status::Delivered));
        assert!(deps.stores.messages.is_opted_out(ORG, TO).await.unwrap());
    }
}

#[tokio::test]
async fn every_signature_method_verifies_through_the_gateway_inside_the_window() {
    let deps = deps(Backend::Embedded, settings(None)).await;
    let orgs: Vec<(SignatureMethod, String)> = SignatureMethod::ALL
        .into_iter()
        .map(|m| (m, format!("ORG_{}", m.as_str())))
        .collect();
    for (method, org) in &orgs {
        add_vonage(&deps, org, *method).await;
    }
    let base = start_gateway(deps.deps.clone()).await;
    let http = reqwest::Client::new();
    let almost_stale = (chrono::Utc::now().timestamp() - REPLAY_WINDOW_SECONDS + 30).to_string();
    for (method, org) in &orgs {
        let id = format!("02{:0>14}", method.as_str());
        let message = inbound(&id, "5");
        let params = signed_at(*method, SIGNATURE_SECRET, &message, &almost_stale);
        let url = format!("{base}{}", route_path(RouteKind::Message, org));
        let get = http
            .get(format!("{url}?{}", encode(&params)))
            .send()
            .await
            .unwrap();
        assert_eq!(get.status().as_u16(), 200, "{method:?} GET");
        // Vonage's PHP SDK writes HMACs in upper case: the same request, upper-cased sig.
        let second = format!("03{:0>14}", method.as_str());
        let mut upper = signed(*method, SIGNATURE_SECRET, &inbound(&second, "6"));
        let sig = upper.last_mut().unwrap();
        sig.1 = sig.1.to_ascii_uppercase();
        let json = http
            .post(&url)
            .header("content-type", "application/json")
            .body(json_body(&upper))
            .send()
            .await
            .unwrap();
        assert_eq!(json.status().as_u16(), 200, "{method:?} JSON");
        let recorded = deps.stores.messages.list_events(org, 10).await.unwrap();
        assert_eq!(recorded.len(), 2, "{method:?}");
    }
}

#[tokio::test]
async fn the_sandbox_stand_in_accepts_long_texts_as_parts() {
    let deps = deps(Backend::Embedded, settings_with_stand_ins().await).await;
    add_vonage(&deps, ORG, SignatureMethod::Md5Hash).await;
    let result = send_one(&deps, "v-stand-in", TO, &"c".repeat(320)).await;
    assert_eq!(result.status, ResultStatus::Accepted, "{result:?}");
    let record = deps
        .stores
        .messages
        .get_message(ORG, "v-stand-in")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.parts.len(),
        3,
        "the stand-in answers one id per part"
    );
    // One of the stand-in's error numbers: Vonage's status 6, an unroutable recipient.
    let refused = send_one(&deps, "v-stand-in-2", "+447700900006", "survey").await;
    assert_eq!(
        refused.error.map(|e| e.code),
        Some(SendErrorCode::InvalidNumber)
    );
}
