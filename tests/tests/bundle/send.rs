//! The send pipeline against a local mock of Twilio's Messages API that checks the exact request:
//! method, path, Basic auth, content type and every form field.

use crate::support::*;
use byosms::domain::{SendState, Status};
use byosms::pipeline::send::{ResultStatus, SendItem, SendRequest, SendRequestError, send};
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer};

fn request(message_id: &str, to: &str, body: &str) -> SendRequest {
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

fn status_callback(message_id: &str) -> String {
    format!(
        "https://sms.example.test/distribution-providers/v1/receive/distribution/status/twilio-sms/{ORG}?messageId={message_id}#rc=5&rp=ct,rt,5xx"
    )
}

#[tokio::test]
async fn sends_through_the_messages_api_with_every_field() {
    for backend in BACKENDS {
        let twilio = MockServer::start().await;
        let body = "Take our survey: https://x.y/z";
        Mock::given(method("POST"))
            .and(path(twilio_messages_path()))
            .and(header("authorization", basic_auth_header().as_str()))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(header("accept", "application/json"))
            .and(body_string(form(&[
                ("To", TO),
                ("From", FROM),
                ("Body", body),
                ("StatusCallback", &status_callback("dist42-r1")),
            ])))
            .respond_with(twilio_created(
                "SM00000000000000000000000000000001",
                "queued",
            ))
            .expect(1)
            .mount(&twilio)
            .await;
        let deps = deps(backend, settings(Some(&twilio.uri()))).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;

        let response = send(&deps, &request("dist42-r1", TO, body)).await.unwrap();
        let result = &response.results[0];
        assert_eq!(
            result.status,
            ResultStatus::Accepted,
            "{backend:?}: {result:?}"
        );
        assert_eq!(
            result.provider_message_id.as_deref(),
            Some("SM00000000000000000000000000000001")
        );
        assert_eq!(
            (result.segments, result.encoding.as_deref(), result.attempts),
            (Some(1), Some("gsm7"), Some(1))
        );
        let record = deps
            .stores
            .messages
            .get_message(ORG, "dist42-r1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.send_state, SendState::Accepted);
        assert_eq!(record.status, Some(Status::Queued));
        assert_eq!(record.user_id, "UR_1");
    }
}

#[tokio::test]
async fn a_messaging_service_sends_as_messaging_service_sid() {
    let mg = "MG0123456789abcdef0123456789abcdef";
    let twilio = MockServer::start().await;
    twilio_request_with(&[
        ("To", TO),
        ("MessagingServiceSid", mg),
        ("Body", "アンケートにご協力ください"),
        ("StatusCallback", &status_callback("m-jp")),
    ])
    .respond_with(twilio_created(
        "SM00000000000000000000000000000002",
        "accepted",
    ))
    .expect(1)
    .mount(&twilio)
    .await;
    let deps = deps(Backend::Embedded, settings(Some(&twilio.uri()))).await;
    add_twilio(&deps, ORG, "conn_1", mg).await;
    let response = send(&deps, &request("m-jp", TO, "アンケートにご協力ください"))
        .await
        .unwrap();
    assert_eq!(response.results[0].status, ResultStatus::Accepted);
    assert_eq!(response.results[0].encoding.as_deref(), Some("ucs2"));
}

#[tokio::test]
async fn provider_errors_are_classified_and_opt_outs_remembered() {
    for backend in BACKENDS {
        let twilio = MockServer::start().await;
        twilio_request_with(&[
            ("To", "+14155550111"),
            ("From", FROM),
            ("Body", "hi"),
            ("StatusCallback", &status_callback("bad-number")),
        ])
        .respond_with(twilio_error(
            400,
            21211,
            "The 'To' number +14155550111 is not a valid phone number.",
        ))
        .expect(1)
        .mount(&twilio)
        .await;
        twilio_request_with(&[
            ("To", TO),
            ("From", FROM),
            ("Body", "hi"),
            ("StatusCallback", &status_callback("stopped")),
        ])
        .respond_with(twilio_error(
            400,
            21610,
            "Attempt to send to unsubscribed recipient",
        ))
        .expect(1)
        .mount(&twilio)
        .await;
        let deps = deps(backend, settings(Some(&twilio.uri()))).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;

        let r = &send(&deps, &request("bad-number", "+14155550111", "hi"))
            .await
            .unwrap()
            .results[0];
        let e = r.error.as_ref().unwrap();
        assert_eq!(
            (e.code.as_str(), e.retryable, e.provider_code.as_deref()),
            ("invalid_number", false, Some("21211"))
        );

        let r = &send(&deps, &request("stopped", TO, "hi"))
            .await
            .unwrap()
            .results[0];
        assert_eq!(r.error.as_ref().unwrap().code.as_str(), "opted_out");
        // The number is now known to have opted out: the next send never reaches Twilio.
        let r = &send(&deps, &request("after-stop", TO, "hi"))
            .await
            .unwrap()
            .results[0];
        assert_eq!(
            r.error.as_ref().unwrap().code.as_str(),
            "opted_out",
            "{backend:?}"
        );
        assert_eq!(r.attempts, Some(0));
    }
}

#[tokio::test]
async fn only_what_twilio_provably_refused_is_retried() {
    let twilio = MockServer::start().await;
    // Throttled once (20429: "not processed"), then accepted.
    Mock::given(method("POST"))
        .respond_with(twilio_error(429, 20429, "Too Many Requests"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&twilio)
        .await;
    twilio_request_with(&[
        ("To", TO),
        ("From", FROM),
        ("Body", "hi"),
        ("StatusCallback", &status_callback("throttled")),
    ])
    .respond_with(twilio_created(
        "SM00000000000000000000000000000003",
        "queued",
    ))
    .expect(1)
    .mount(&twilio)
    .await;
    let deps = deps(Backend::Embedded, settings(Some(&twilio.uri()))).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let r = &send(&deps, &request("throttled", TO, "hi"))
        .await
        .unwrap()
        .results[0];
    assert_eq!((r.status, r.attempts), (ResultStatus::Accepted, Some(2)));
}

#[tokio::test]
async fn an_unknown_outcome_is_never_resent() {
    for backend in BACKENDS {
        let twilio = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(500).set_body_string("upstream error"))
            .expect(1)
            .mount(&twilio)
            .await;
        let deps = deps(backend, settings(Some(&twilio.uri()))).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        let r = &send(&deps, &request("m500", TO, "hi"))
            .await
            .unwrap()
            .results[0];
        let e = r.error.as_ref().unwrap();
        assert_eq!(
            (e.code.as_str(), e.retryable, r.attempts),
            ("outcome_unknown", false, Some(1))
        );
        // The caller asks again: the stored outcome comes back, Twilio is not called again.
        let again = &send(&deps, &request("m500", TO, "hi"))
            .await
            .unwrap()
            .results[0];
        assert!(again.duplicate);
        assert_eq!(
            again.error.as_ref().unwrap().code.as_str(),
            "outcome_unknown"
        );
        let record = deps
            .stores
            .messages
            .get_message(ORG, "m500")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.send_state, SendState::OutcomeUnknown, "{backend:?}");
    }
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported_retryable() {
    // A port nothing listens on: the request provably never reached a provider.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let deps = deps(Backend::Embedded, settings(Some(&url))).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let r = &send(&deps, &request("refused", TO, "hi"))
        .await
        .unwrap()
        .results[0];
    let e = r.error.as_ref().unwrap();
    assert_eq!(
        (e.code.as_str(), e.retryable, r.attempts),
        ("provider_unavailable", true, Some(3))
    );
}

#[tokio::test]
async fn bad_messages_never_reach_the_provider() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_created("SMx", "queued"))
        .expect(0)
        .mount(&twilio)
        .await;
    let deps = deps(Backend::Embedded, settings(Some(&twilio.uri()))).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let mut req = request("ok-id", "4155550100", "hi");
    req.messages.push(SendItem {
        message_id: "has space".into(),
        to: TO.into(),
        body: "hi".into(),
    });
    req.messages.push(SendItem {
        message_id: "empty".into(),
        to: TO.into(),
        body: "  ".into(),
    });
    let codes: Vec<_> = send(&deps, &req)
        .await
        .unwrap()
        .results
        .into_iter()
        .map(|r| r.error.unwrap().code.as_str())
        .collect();
    assert_eq!(
        codes,
        ["invalid_number", "invalid_message_id", "invalid_body"]
    );
}

#[tokio::test]
async fn connection_lookup_and_access_grant() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let no_conn = send(&deps, &request("m", TO, "hi")).await.unwrap_err();
        assert!(
            matches!(no_conn, SendRequestError::UnknownConnection { .. }),
            "{no_conn}"
        );
        add_twilio(&deps, ORG, "conn_1", FROM).await;

        let mut other_user = request("m", TO, "hi");
        other_user.user_id = "UR_2".into();
        let denied = send(&deps, &other_user).await.unwrap_err();
        assert_eq!(
            (denied.code(), denied.http_status()),
            ("access_denied", 403)
        );

        // Without connectionId the org's only enabled connection is used...
        let mut implicit = request("m", "+1415", "hi");
        implicit.connection_id = None;
        let r = send(&deps, &implicit).await.unwrap();
        assert_eq!(
            r.results[0].error.as_ref().unwrap().code.as_str(),
            "invalid_number"
        );
        // ...and with two, the caller must choose.
        add_twilio(&deps, ORG, "conn_2", FROM).await;
        let ambiguous = send(&deps, &implicit).await.unwrap_err();
        assert_eq!(ambiguous.code(), "ambiguous_connection", "{backend:?}");
    }
}
