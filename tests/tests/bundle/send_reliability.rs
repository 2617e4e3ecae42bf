//! Issue 8: the send path under every failure a provider's network can show, for all seven
//! providers, against local mock servers that check what was asked of them.
//!
//! - 429 then success: sent again, accepted once, 2 attempts.
//! - 503: retried where the provider's 503 proves nothing was accepted, `outcome_unknown` (never
//!   re-sent) where it does not (LINK Mobility, Infobip).
//! - an answer slower than the client's timeout, and a connection closed after the request was
//!   read: `outcome_unknown`, recorded so, never re-sent by a repeat.
//! - a port that refuses connections (the request provably never left): retried, retryable.
//! - garbage in a 2xx: `outcome_unknown` (the provider took the request, but without its id our
//!   record cannot claim it was accepted; sending again could send twice).
//! - racing duplicates of one messageId, on both stores: exactly one provider request.
//! - each provider's recipient form (`+` or digits), and its body limit.
//! - the deadline: messages without time left come back failed and retryable, unsent.

use crate::support::*;
use byosms::domain::{Provider, SendErrorCode, SendState};
use byosms::pipeline::send::{ResultStatus, SendItem, SendRequest, SendResult, send};
use byosms::providers::http::ProviderHttp;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The provider clients' whole-request timeout in these tests.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(400);
const BODY: &str = "Take our survey: https://x.y/z";

/// What a mock of one provider's send API needs to know.
struct Api {
    provider: Provider,
    /// The send request's path (a regex: some carry the account or project).
    path: &'static str,
    /// The provider's success answer, for a message of ours, and its HTTP status.
    accepted: fn() -> ResponseTemplate,
    accepted_status: u16,
    /// The recipient `TO` as it must appear in the request body.
    recipient: &'static str,
    /// Whether the provider's 503 proves that nothing was accepted (see the README's send
    /// contract for each provider's reason).
    unavailable_is_not_accepted: bool,
}

fn apis() -> Vec<Api> {
    vec![
        Api {
            provider: Provider::Twilio,
            path: r"^/2010-04-01/Accounts/AC[0-9a-f]{32}/Messages\.json$",
            accepted: || twilio_created("SM00000000000000000000000000000042", "queued"),
            accepted_status: 201,
            recipient: "To=%2B14155550100",
            unavailable_is_not_accepted: true,
        },
        Api {
            provider: Provider::Linkmobility,
            path: r"^/sms/send$",
            accepted: || {
                ResponseTemplate::new(200).set_body_json(json!({
                    "messageId": "link-42", "resultCode": 1005, "description": "Queued", "smsCount": 1
                }))
            },
            accepted_status: 200,
            recipient: r#""destination":"+14155550100""#,
            unavailable_is_not_accepted: false,
        },
        Api {
            provider: Provider::Sinch,
            path: r"^/v1/projects/[^/]+/messages:send$",
            accepted: || {
                ResponseTemplate::new(200).set_body_json(
                    json!({ "message_id": "01SINCH42", "accepted_time": "2026-06-18T12:34:56Z" }),
                )
            },
            accepted_status: 200,
            recipient: r#""identity":"+14155550100""#,
            unavailable_is_not_accepted: true,
        },
        Api {
            provider: Provider::Infobip,
            path: r"^/sms/3/messages$",
            accepted: || {
                ResponseTemplate::new(200).set_body_json(json!({
                    "bulkId": "b-42",
                    "messages": [{
                        "messageId": "r1",
                        "status": { "groupId": 1, "groupName": "PENDING", "id": 26,
                                    "name": "PENDING_ACCEPTED", "description": "Message sent to next instance" },
                        "destination": "14155550100",
                        "details": { "messageCount": 1 },
                    }],
                }))
            },
            accepted_status: 200,
            recipient: r#""to":"14155550100""#,
            unavailable_is_not_accepted: false,
        },
        Api {
            provider: Provider::Messagemedia,
            path: r"^/v1/messages$",
            accepted: || {
                ResponseTemplate::new(202).set_body_json(json!({"messages": [{
                    "content": BODY, "destination_number": TO,
                    "message_id": "04fe9a97-a579-43c5-bb1a-58ed29bf0a6a",
                    "status": "queued", "delivery_report": true, "format": "SMS",
                }]}))
            },
            accepted_status: 202,
            recipient: r#""destination_number":"+14155550100""#,
            unavailable_is_not_accepted: true,
        },
        Api {
            provider: Provider::Vonage,
            path: r"^/json$",
            accepted: || {
                ResponseTemplate::new(200).set_body_json(json!({"message-count": "1", "messages": [
                    {"to": "14155550100", "message-id": "0A0000000123ABCD", "status": "0",
                     "remaining-balance": "38.07", "message-price": "0.0412", "network": "23420"}
                ]}))
            },
            accepted_status: 200,
            recipient: "to=14155550100",
            unavailable_is_not_accepted: true,
        },
        Api {
            provider: Provider::Messagebird,
            path: r"^/messages$",
            accepted: || {
                ResponseTemplate::new(201).set_body_json(json!({
                    "id": "e8077d803532c0b5937c639b60216938", "direction": "mt", "body": BODY,
                    "reference": "r1", "datacoding": "plain",
                    "recipients": {"totalCount": 1, "totalSentCount": 1,
                        "items": [{"recipient": 14155550100i64, "status": "sent", "messagePartCount": 1}]},
                }))
            },
            accepted_status: 201,
            recipient: r#""recipients":["14155550100"]"#,
            unavailable_is_not_accepted: true,
        },
    ]
}

fn send_api(api: &Api) -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(path_regex(api.path))
}

/// A mock of the provider; Sinch's also issues OAuth tokens, on its own path.
async fn provider_server(api: &Api) -> MockServer {
    let server = MockServer::start().await;
    if api.provider == Provider::Sinch {
        mount_sinch_tokens(&server).await;
    }
    server
}

async fn mount_sinch_tokens(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "test-token", "expires_in": 3599, "scope": "", "token_type": "bearer",
        })))
        .mount(server)
        .await;
}

/// Deps whose `api`'s provider API is at `base` (Sinch's tokens at `token_base`, when given),
/// with a short client timeout and the provider's example connection `conn_1`.
async fn provider_deps(
    api: &Api,
    backend: Backend,
    base: &str,
    token_base: Option<&str>,
    tune: impl FnOnce(&mut byosms::Settings),
) -> TestDeps {
    let mut settings = settings_with_api_urls(&[(api.provider, base.to_string())]);
    if let Some(tokens) = token_base {
        settings.sinch_auth_api_url = Some(tokens.parse().unwrap());
    }
    tune(&mut settings);
    let mut deps = deps(backend, settings).await;
    deps.deps.http = ProviderHttp::with_timeouts(Duration::from_secs(2), CLIENT_TIMEOUT);
    add_connection(&deps, api.provider, ORG, "conn_1").await;
    deps
}

fn request(ids: &[&str]) -> SendRequest {
    SendRequest {
        org_id: ORG.into(),
        connection_id: Some("conn_1".into()),
        user_id: "UR_1".into(),
        messages: ids
            .iter()
            .map(|id| SendItem {
                message_id: id.to_string(),
                to: TO.into(),
                body: BODY.into(),
            })
            .collect(),
    }
}

async fn send_one(deps: &TestDeps, id: &str) -> SendResult {
    send(deps, &request(&[id])).await.unwrap().results.remove(0)
}

/// (code, retryable, attempts) of a failed result.
fn failed(result: &SendResult) -> (SendErrorCode, bool, Option<u32>) {
    assert_eq!(result.status, ResultStatus::Failed, "{result:?}");
    let error = result.error.as_ref().expect("a failure has an error");
    (error.code, error.retryable, result.attempts)
}

async fn stored_state(deps: &TestDeps, id: &str) -> Option<(SendState, Option<SendErrorCode>)> {
    deps.stores
        .messages
        .get_message(ORG, id)
        .await
        .unwrap()
        .map(|r| (r.send_state, r.error.map(|e| e.code)))
}

#[tokio::test]
async fn a_429_is_sent_again_and_accepted_once_with_each_providers_recipient_form() {
    for api in apis() {
        let server = provider_server(&api).await;
        send_api(&api)
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
            .up_to_n_times(1)
            .expect(1)
            .with_priority(1)
            .mount(&server)
            .await;
        send_api(&api)
            .respond_with((api.accepted)())
            .expect(1)
            .mount(&server)
            .await;
        let deps = provider_deps(&api, Backend::Embedded, &server.uri(), None, |_| {}).await;
        let r = send_one(&deps, "r1").await;
        assert_eq!(
            (r.status, r.attempts, r.duplicate),
            (ResultStatus::Accepted, Some(2), false),
            "{}: {r:?}",
            api.provider
        );
        assert_eq!(
            stored_state(&deps, "r1").await,
            Some((SendState::Accepted, None))
        );
        let requests = server.received_requests().await.unwrap();
        let sends: Vec<_> = requests
            .iter()
            .filter(|q| q.url.path() != "/oauth2/token")
            .collect();
        assert_eq!(sends.len(), 2, "{}", api.provider);
        for sent in sends {
            let body = String::from_utf8_lossy(&sent.body);
            assert!(
                body.contains(api.recipient),
                "{}: the recipient is written {:?} in {body}",
                api.provider,
                api.recipient
            );
        }
        server.verify().await;
    }
}

#[tokio::test]
async fn a_503_is_retried_only_where_it_proves_nothing_was_accepted() {
    for api in apis() {
        let server = provider_server(&api).await;
        let retried = api.unavailable_is_not_accepted;
        send_api(&api)
            .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
            .up_to_n_times(3)
            .expect(if retried { 3 } else { 1 })
            .with_priority(1)
            .mount(&server)
            .await;
        send_api(&api)
            .respond_with((api.accepted)())
            .expect(u64::from(retried))
            .mount(&server)
            .await;
        let deps = provider_deps(&api, Backend::Embedded, &server.uri(), None, |_| {}).await;
        let first = send_one(&deps, "r1").await;
        let again = send_one(&deps, "r1").await;
        if retried {
            assert_eq!(
                failed(&first),
                (SendErrorCode::ProviderUnavailable, true, Some(3)),
                "{}",
                api.provider
            );
            // Retryable means it: the claim was given back, so the caller's retry sends.
            assert_eq!(
                (again.status, again.attempts, again.duplicate),
                (ResultStatus::Accepted, Some(1), false),
                "{}: {again:?}",
                api.provider
            );
        } else {
            assert_eq!(
                failed(&first),
                (SendErrorCode::OutcomeUnknown, false, Some(1)),
                "{}",
                api.provider
            );
            assert!(again.duplicate, "{}: {again:?}", api.provider);
            assert_eq!(failed(&again).0, SendErrorCode::OutcomeUnknown);
            assert_eq!(
                stored_state(&deps, "r1").await,
                Some((
                    SendState::OutcomeUnknown,
                    Some(SendErrorCode::OutcomeUnknown)
                ))
            );
        }
        server.verify().await;
    }
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_an_unknown_outcome_never_sent_again() {
    for api in apis() {
        let server = provider_server(&api).await;
        send_api(&api)
            .respond_with((api.accepted)().set_delay(CLIENT_TIMEOUT * 5))
            .expect(1)
            .mount(&server)
            .await;
        let deps = provider_deps(&api, Backend::Embedded, &server.uri(), None, |_| {}).await;
        let first = send_one(&deps, "r1").await;
        assert_eq!(
            failed(&first),
            (SendErrorCode::OutcomeUnknown, false, Some(1)),
            "{}",
            api.provider
        );
        assert_eq!(
            stored_state(&deps, "r1").await,
            Some((
                SendState::OutcomeUnknown,
                Some(SendErrorCode::OutcomeUnknown)
            )),
            "{}",
            api.provider
        );
        let again = send_one(&deps, "r1").await;
        assert!(again.duplicate, "{}: {again:?}", api.provider);
        assert_eq!(failed(&again).0, SendErrorCode::OutcomeUnknown);
        server.verify().await;
    }
}

#[tokio::test]
async fn garbage_in_a_2xx_is_an_unknown_outcome() {
    for api in apis() {
        let server = provider_server(&api).await;
        let status = api.accepted_status;
        send_api(&api)
            .respond_with(ResponseTemplate::new(status).set_body_string("<html>we are upgrading"))
            .expect(1)
            .mount(&server)
            .await;
        let deps = provider_deps(&api, Backend::Embedded, &server.uri(), None, |_| {}).await;
        let r = send_one(&deps, "r1").await;
        assert_eq!(
            failed(&r),
            (SendErrorCode::OutcomeUnknown, false, Some(1)),
            "{} {status}",
            api.provider
        );
        assert_eq!(
            stored_state(&deps, "r1").await,
            Some((
                SendState::OutcomeUnknown,
                Some(SendErrorCode::OutcomeUnknown)
            ))
        );
        server.verify().await;
    }
}

/// A port nothing listens on: every connection is refused before a byte is written.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_left_retryable() {
    for api in apis() {
        // Sinch's tokens come from a working host, so that the refusal is the send's own.
        let tokens = MockServer::start().await;
        mount_sinch_tokens(&tokens).await;
        let deps = provider_deps(
            &api,
            Backend::Embedded,
            &closed_port(),
            Some(&tokens.uri()),
            |_| {},
        )
        .await;
        let r = send_one(&deps, "r1").await;
        assert_eq!(
            failed(&r),
            (SendErrorCode::ProviderUnavailable, true, Some(3)),
            "{}",
            api.provider
        );
        // Nothing left behind: the caller's retry of r1 is a fresh send.
        assert_eq!(stored_state(&deps, "r1").await, None, "{}", api.provider);
    }
}

/// A server that reads each whole request and closes the connection without answering: the
/// request was delivered, so whether it was acted on is unknown. Counts the requests read.
async fn reads_then_hangs_up() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                if read_request(&mut socket).await {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, requests)
}

/// Reads one HTTP/1.1 request (headers and a `Content-Length` body); false if it never came whole.
async fn read_request(socket: &mut tokio::net::TcpStream) -> bool {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return true;
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn a_connection_closed_after_the_request_was_read_is_an_unknown_outcome() {
    for api in apis() {
        let tokens = MockServer::start().await;
        mount_sinch_tokens(&tokens).await;
        let (url, requests) = reads_then_hangs_up().await;
        let deps = provider_deps(&api, Backend::Embedded, &url, Some(&tokens.uri()), |_| {}).await;
        let first = send_one(&deps, "r1").await;
        assert_eq!(
            failed(&first),
            (SendErrorCode::OutcomeUnknown, false, Some(1)),
            "{}",
            api.provider
        );
        assert_eq!(
            stored_state(&deps, "r1").await,
            Some((
                SendState::OutcomeUnknown,
                Some(SendErrorCode::OutcomeUnknown)
            ))
        );
        let again = send_one(&deps, "r1").await;
        assert!(again.duplicate, "{}: {again:?}", api.provider);
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "{}: never sent again",
            api.provider
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_duplicates_make_one_provider_request_on_both_stores() {
    for backend in BACKENDS {
        for api in apis() {
            let server = provider_server(&api).await;
            send_api(&api)
                // Slow enough that every duplicate arrives while the first is in flight.
                .respond_with((api.accepted)().set_delay(Duration::from_millis(250)))
                .expect(1)
                .mount(&server)
                .await;
            let deps = provider_deps(&api, backend, &server.uri(), None, |s| {
                s.send.concurrency = 4;
            })
            .await;
            let invocation = request(&["race-1"]);
            let (a, b, c) = tokio::join!(
                send(&deps, &invocation),
                send(&deps, &invocation),
                send(&deps, &invocation)
            );
            let results: Vec<SendResult> = [a, b, c]
                .into_iter()
                .map(|r| r.unwrap().results.remove(0))
                .collect();
            let owners: Vec<&SendResult> = results.iter().filter(|r| !r.duplicate).collect();
            assert_eq!(owners.len(), 1, "{backend:?} {}: {results:?}", api.provider);
            assert_eq!(owners[0].status, ResultStatus::Accepted);
            for loser in results.iter().filter(|r| r.duplicate) {
                let (code, retryable, _) = failed(loser);
                assert_eq!(
                    (code, retryable),
                    (SendErrorCode::InProgress, true),
                    "{backend:?} {}",
                    api.provider
                );
            }
            let later = send_one(&deps, "race-1").await;
            assert_eq!(
                (later.status, later.duplicate),
                (ResultStatus::Accepted, true),
                "{backend:?} {}",
                api.provider
            );
            server.verify().await;
        }
    }
}

#[tokio::test]
async fn numbers_outside_the_numbering_plan_and_bodies_over_the_limit_never_reach_a_provider() {
    // (provider, a body just over its limit)
    let over_limit = |provider: Provider| match provider {
        // 254 parts of 153 septets, and one more septet.
        Provider::Linkmobility => "a".repeat(254 * 153 + 1),
        // 25 parts of 67 UCS-2 units, and one more character.
        Provider::Infobip => "ア".repeat(25 * 67 + 1),
        Provider::Messagemedia => "a".repeat(5001),
        _ => "a".repeat(1601),
    };
    for api in apis() {
        let server = provider_server(&api).await;
        send_api(&api)
            .respond_with((api.accepted)())
            .expect(1)
            .mount(&server)
            .await;
        let deps = provider_deps(&api, Backend::Embedded, &server.uri(), None, |_| {}).await;
        let mut invocation = request(&["short-number", "no-country", "too-long", "fine"]);
        invocation.messages[0].to = "+1415555010".into();
        invocation.messages[1].to = "+99912345678".into();
        invocation.messages[2].body = over_limit(api.provider);
        let results = send(&deps, &invocation).await.unwrap().results;
        let codes: Vec<_> = results
            .iter()
            .map(|r| r.error.as_ref().map(|e| (e.code, e.retryable)))
            .collect();
        assert_eq!(
            codes,
            [
                Some((SendErrorCode::InvalidNumber, false)),
                Some((SendErrorCode::InvalidNumber, false)),
                Some((SendErrorCode::InvalidBody, false)),
                None,
            ],
            "{}: {results:?}",
            api.provider
        );
        let message = &results[0].error.as_ref().unwrap().message;
        assert!(message.contains("+1"), "{message}");
        // The refused messages left no record; the good one was sent, once.
        assert_eq!(stored_state(&deps, "too-long").await, None);
        server.verify().await;
    }
}

#[tokio::test]
async fn messages_without_time_left_come_back_retryable_and_unsent() {
    let twilio = &apis()[0];
    let server = provider_server(twilio).await;
    send_api(twilio)
        // Longer than the whole budget: the first call is cut off by the deadline.
        .respond_with((twilio.accepted)().set_delay(Duration::from_secs(3)))
        .expect(1)
        .mount(&server)
        .await;
    let deps = provider_deps(twilio, Backend::Embedded, &server.uri(), None, |s| {
        s.send.concurrency = 1;
        s.send.budget = Duration::from_millis(600);
        s.send.deadline_margin = Duration::from_millis(100);
    })
    .await;
    let results = send(&deps, &request(&["d1", "d2", "d3"]))
        .await
        .unwrap()
        .results;
    // The first was with the provider when time ran out: unknown, never sent again.
    assert_eq!(
        failed(&results[0]),
        (SendErrorCode::OutcomeUnknown, false, Some(1))
    );
    assert_eq!(
        stored_state(&deps, "d1").await,
        Some((
            SendState::OutcomeUnknown,
            Some(SendErrorCode::OutcomeUnknown)
        ))
    );
    // The others never started: failed, retryable, nothing claimed.
    for (r, id) in results[1..].iter().zip(["d2", "d3"]) {
        assert_eq!(r.message_id, id);
        assert_eq!(failed(r), (SendErrorCode::Throttled, true, None));
        assert!(r.error.as_ref().unwrap().message.contains("not attempted"));
        assert_eq!(stored_state(&deps, id).await, None);
    }
    server.verify().await;
}

#[tokio::test]
async fn a_retry_the_deadline_cannot_afford_is_left_to_the_caller() {
    let twilio = &apis()[0];
    let server = provider_server(twilio).await;
    send_api(twilio)
        .respond_with(
            twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "2"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let deps = provider_deps(twilio, Backend::Embedded, &server.uri(), None, |s| {
        s.send.budget = Duration::from_millis(1500);
        s.send.deadline_margin = Duration::from_millis(100);
    })
    .await;
    let r = send_one(&deps, "r1").await;
    // A 2 s wait fits the 5 s the pipeline honours, but not this invocation's time.
    assert_eq!(failed(&r), (SendErrorCode::Throttled, true, Some(1)));
    assert_eq!(stored_state(&deps, "r1").await, None);
    server.verify().await;
}

#[tokio::test]
async fn a_connections_send_rate_paces_the_invocation_and_yields_to_the_deadline() {
    let twilio = &apis()[0];
    let server = provider_server(twilio).await;
    send_api(twilio)
        .respond_with((twilio.accepted)())
        .expect(2)
        .mount(&server)
        .await;
    let mut settings = settings_with_api_urls(&[(twilio.provider, server.uri())]);
    settings.send.concurrency = 8;
    // Calls may start until 0.8 s from now; at 2 per second, slots at 0 s and 0.5 s fit.
    settings.send.budget = Duration::from_millis(1000);
    settings.send.deadline_margin = Duration::from_millis(100);
    let deps = deps(Backend::Embedded, settings).await;
    add_connection_with(
        &deps,
        twilio.provider,
        ORG,
        "conn_1",
        json!({ "sendRatePerSecond": 2 }),
    )
    .await;
    let results = send(&deps, &request(&["p1", "p2", "p3", "p4", "p5"]))
        .await
        .unwrap()
        .results;
    let accepted = results
        .iter()
        .filter(|r| r.status == ResultStatus::Accepted)
        .count();
    assert_eq!(accepted, 2, "{results:?}");
    for r in results.iter().filter(|r| r.status == ResultStatus::Failed) {
        assert_eq!(failed(r).0, SendErrorCode::Throttled, "{r:?}");
        assert!(failed(r).1, "retryable: {r:?}");
        assert_eq!(stored_state(&deps, &r.message_id).await, None);
    }
    server.verify().await;
}

#[tokio::test]
async fn a_send_rate_is_validated_for_every_provider() {
    // Sandboxed, as every example connection is valid only there; nothing is sent.
    let sandboxed = byosms::Settings::sandboxed("http://127.0.0.1:9").unwrap();
    let deps = deps(Backend::Embedded, sandboxed).await;
    for adapter in deps.registry.all() {
        let provider = adapter.provider();
        let mut fields = adapter.example_fields();
        fields.insert("provider".into(), json!(provider.as_str()));
        fields.insert("name".into(), json!("paced"));
        for (rate, stored) in [(json!(1), "1"), (json!("0.5"), "0.5"), (json!(30), "30")] {
            fields.insert("sendRatePerSecond".into(), rate.clone());
            let connection = byosms::pipeline::admin::add_connection(
                &deps,
                ORG,
                None,
                &serde_json::Value::Object(fields.clone()),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{provider} {rate}: {e}"));
            assert_eq!(connection.setting("sendRatePerSecond"), Some(stored));
        }
        for bad in [
            json!(0),
            json!(-1),
            json!("fast"),
            json!(20000),
            json!(true),
        ] {
            fields.insert("sendRatePerSecond".into(), bad.clone());
            let err = byosms::pipeline::admin::add_connection(
                &deps,
                ORG,
                None,
                &serde_json::Value::Object(fields.clone()),
                None,
            )
            .await
            .expect_err(&format!("{provider} {bad}"));
            assert!(
                err.to_string().contains("sendRatePerSecond"),
                "{provider} {bad}: {err}"
            );
        }
    }
}

/// A provider stand-in that answers every request after `hold`, counting how many it holds
/// at once.
async fn counting_server(hold: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let seen = most.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            tokio::spawn(async move {
                // Keep-alive: one connection may carry several requests, one after another.
                while read_request(&mut socket).await {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(hold).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let body = r#"{"sid":"SM00000000000000000000000000000077","status":"queued"}"#;
                    let answer = format!(
                        "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_keeps_at_most_the_configured_number_of_messages_in_flight_and_its_order() {
    let twilio = &apis()[0];
    let (url, most) = counting_server(Duration::from_millis(50)).await;
    let deps = provider_deps(twilio, Backend::Embedded, &url, None, |s| {
        s.send.concurrency = 3;
    })
    .await;
    let ids: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut invocation = request(&refs);
    invocation.messages[5].to = "+1415555010".into(); // one bad message among them
    let results = send(&deps, &invocation).await.unwrap().results;
    let order: Vec<&str> = results.iter().map(|r| r.message_id.as_str()).collect();
    assert_eq!(order, refs, "results in request order");
    assert_eq!(failed(&results[5]).0, SendErrorCode::InvalidNumber);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status == ResultStatus::Accepted)
            .count(),
        11
    );
    let most = most.load(Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} requests in flight at once");
}

#[tokio::test]
async fn an_opted_out_number_is_refused_by_every_provider_until_it_opts_back_in() {
    for api in apis() {
        let server = provider_server(&api).await;
        send_api(&api)
            .respond_with((api.accepted)())
            .expect(1)
            .mount(&server)
            .await;
        let deps = provider_deps(&api, Backend::Embedded, &server.uri(), None, |_| {}).await;
        let messages = &deps.stores.messages;
        let stop = chrono::Utc::now() - chrono::Duration::minutes(2);
        messages.set_opt_out(ORG, TO, true, stop).await.unwrap();
        let refused = send_one(&deps, "o1").await;
        assert_eq!(
            failed(&refused),
            (SendErrorCode::OptedOut, false, Some(0)),
            "{}",
            api.provider
        );
        let start = stop + chrono::Duration::minutes(1);
        messages.set_opt_out(ORG, TO, false, start).await.unwrap();
        let sent = send_one(&deps, "o2").await;
        assert_eq!(
            sent.status,
            ResultStatus::Accepted,
            "{}: {sent:?}",
            api.provider
        );
        server.verify().await;
    }
}
