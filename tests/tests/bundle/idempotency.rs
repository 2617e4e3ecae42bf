//! `(orgId, messageId)` is the idempotency key: a repeat, or two invocations racing with the same
//! message, reaches the provider exactly once.

use crate::support::*;
use byosms::pipeline::send::{ResultStatus, SendItem, SendRequest, send};
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

fn request(message_id: &str) -> SendRequest {
    SendRequest {
        org_id: ORG.into(),
        connection_id: Some("conn_1".into()),
        user_id: "UR_1".into(),
        messages: vec![SendItem {
            message_id: message_id.into(),
            to: TO.into(),
            body: "Take our survey".into(),
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_sends_of_one_message_id_make_one_provider_request() {
    for backend in BACKENDS {
        let twilio = MockServer::start().await;
        Mock::given(method("POST"))
            // Slow enough that the second invocation arrives while the first is in flight.
            .respond_with(
                twilio_created("SM00000000000000000000000000000010", "queued")
                    .set_delay(Duration::from_millis(300)),
            )
            .expect(1)
            .mount(&twilio)
            .await;
        let deps = deps(backend, settings(Some(&twilio.uri()))).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        let (first, second) = (request("race-1"), request("race-1"));
        let (a, b) = tokio::join!(send(&deps, &first), send(&deps, &second));
        let (a, b) = (a.unwrap().results.remove(0), b.unwrap().results.remove(0));
        let winners = [&a, &b].iter().filter(|r| !r.duplicate).count();
        assert_eq!(
            winners, 1,
            "{backend:?}: exactly one send owns the message: {a:?} {b:?}"
        );
        let loser = if a.duplicate { &a } else { &b };
        assert_eq!(loser.error.as_ref().unwrap().code.as_str(), "in_progress");
        assert!(loser.error.as_ref().unwrap().retryable);
        // Asking again after the first finished gives its result, still without a second request.
        let again = send(&deps, &request("race-1"))
            .await
            .unwrap()
            .results
            .remove(0);
        assert_eq!(
            (again.status, again.duplicate),
            (ResultStatus::Accepted, true)
        );
        assert_eq!(
            again.provider_message_id.as_deref(),
            Some("SM00000000000000000000000000000010")
        );
        twilio.verify().await;
    }
}

#[tokio::test]
async fn a_repeated_message_id_in_one_request_is_sent_once() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_created(
            "SM00000000000000000000000000000011",
            "queued",
        ))
        .expect(1)
        .mount(&twilio)
        .await;
    let deps = deps(Backend::Embedded, settings(Some(&twilio.uri()))).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let mut req = request("dup-in-batch");
    req.messages.push(req.messages[0].clone());
    let results = send(&deps, &req).await.unwrap().results;
    assert_eq!(results.iter().filter(|r| r.duplicate).count(), 1);
}
