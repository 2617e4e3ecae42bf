//! The Lambda handlers called directly: the webhook functions with real API Gateway v2 (and
//! function URL) events, the send function with a direct-invoke payload.

use crate::support::*;
use base64::Engine;
use byosms::domain::{Event, Status};
use byosms::webhook::RouteKind;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn event(
    mut template: Value,
    url: &str,
    params: &[(&str, &str)],
    base64_body: bool,
) -> lambda_http::Request {
    let body = form(params);
    template["headers"]["x-twilio-signature"] = json!(twilio_signature(AUTH_TOKEN, url, params));
    template["headers"]["content-length"] = json!(body.len().to_string());
    template["body"] = json!(if base64_body {
        base64::engine::general_purpose::STANDARD.encode(&body)
    } else {
        body
    });
    template["isBase64Encoded"] = json!(base64_body);
    lambda_http::request::from_str(&template.to_string()).expect("a valid API Gateway v2 event")
}

fn inbound(body: &str) -> Vec<(&str, &str)> {
    vec![
        ("MessageSid", "SM33333333333333333333333333333333"),
        ("AccountSid", ACCOUNT_SID),
        ("From", TO),
        ("To", FROM),
        ("Body", body),
        ("SmsStatus", "received"),
    ]
}

#[tokio::test]
async fn the_message_function_verifies_against_the_api_gateway_url() {
    let mut settings = settings(None);
    settings.public_base_url = None;
    let deps = deps(Backend::Embedded, settings).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let url = "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/distribution-providers/v1/receive/distribution/message/twilio-sms/ORG_1";
    let request = event(
        fixture("apigw-v2-twilio-message.json"),
        url,
        &inbound("4"),
        true,
    );
    let response = byosms_webhook_http::handle(&deps, RouteKind::Message, request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/xml");
    let body = String::from_utf8(response.body().to_vec()).unwrap();
    assert_eq!(body, r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#);
    let events = deps.stores.messages.list_events(ORG, 10).await.unwrap();
    assert!(matches!(&events[..], [Event::Inbound(e)] if e.text == "4"));

    // The same event signed for another host is refused, and records nothing more.
    let request = event(
        fixture("apigw-v2-twilio-message.json"),
        "https://evil.example/x",
        &inbound("9"),
        true,
    );
    let response = byosms_webhook_http::handle(&deps, RouteKind::Message, request)
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        deps.stores
            .messages
            .list_events(ORG, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn behind_a_custom_domain_the_public_base_url_is_what_twilio_signed() {
    let mut settings = settings(None);
    settings.public_base_url = Some("https://sms.example.com".parse().unwrap());
    let deps = deps(Backend::Embedded, settings).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let mut template = fixture("apigw-v2-twilio-message.json");
    // A stage prefix the function sees but Twilio never called.
    template["rawPath"] =
        json!("/prod/distribution-providers/v1/receive/distribution/message/twilio-sms/ORG_1");
    let url = "https://sms.example.com/distribution-providers/v1/receive/distribution/message/twilio-sms/ORG_1";
    let response = byosms_webhook_http::handle(
        &deps,
        RouteKind::Message,
        event(template, url, &inbound("3"), false),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_status_function_reads_the_raw_path_behind_a_function_url() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_created(
            "SM44444444444444444444444444444444",
            "queued",
        ))
        .expect(1)
        .mount(&twilio)
        .await;
    let mut settings = settings(Some(&twilio.uri()));
    settings.public_base_url = None;
    let deps = deps(Backend::Embedded, settings).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let invoke = json!({"orgId": ORG, "userId": "UR_1", "messages": [{"messageId": "dist42-r1", "to": TO, "body": "survey"}]});
    let answer = byosms_send::handle(&deps, LambdaEvent::new(invoke, Context::default()))
        .await
        .unwrap();
    assert_eq!(
        answer.results[0].provider_message_id.as_deref(),
        Some("SM44444444444444444444444444444444")
    );

    let url = "https://q4zyxwvutsrqponmlkjihgfedc0abcde.lambda-url.eu-west-1.on.aws/distribution-providers/v1/receive/distribution/status/twilio-sms/ORG_1?messageId=dist42-r1";
    let params = [
        ("MessageSid", "SM44444444444444444444444444444444"),
        ("MessageStatus", "delivered"),
        ("AccountSid", ACCOUNT_SID),
    ];
    let request = event(
        fixture("function-url-twilio-status.json"),
        url,
        &params,
        false,
    );
    let response = byosms_webhook_http::handle(&deps, RouteKind::Status, request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let record = deps
        .stores
        .messages
        .get_message(ORG, "dist42-r1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Some(Status::Delivered));
}

#[tokio::test]
async fn the_send_function_reports_unservable_requests_as_typed_errors() {
    let deps = deps(Backend::Embedded, settings(None)).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let call =
        |payload: Value| byosms_send::handle(&deps, LambdaEvent::new(payload, Context::default()));
    let diagnostic = |err| Diagnostic::from(err);

    let err = call(json!({"orgId": ORG, "messages": []}))
        .await
        .unwrap_err();
    let d = diagnostic(err);
    assert_eq!(d.error_type, "invalid_request");
    assert!(d.error_message.contains("userId"), "{}", d.error_message);

    let err = call(json!({"orgId": ORG, "userId": "UR_9", "messages": [{"messageId": "a", "to": TO, "body": "x"}]})).await.unwrap_err();
    assert_eq!(diagnostic(err).error_type, "access_denied");

    let err = call(json!({"orgId": ORG, "connectionId": "conn_x", "userId": "UR_1", "messages": [{"messageId": "a", "to": TO, "body": "x"}]})).await.unwrap_err();
    assert_eq!(diagnostic(err).error_type, "unknown_connection");
}

#[tokio::test]
async fn the_send_function_hides_storage_internals() {
    let deps = unreachable_aws_deps().await;
    let payload = json!({"orgId": ORG, "userId": "UR_1", "messages": [{"messageId": "a", "to": TO, "body": "x"}]});
    let err = byosms_send::handle(&deps, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap_err();
    let d = Diagnostic::from(err);
    assert_eq!(d.error_type, "storage_unavailable");
    assert!(
        !d.error_message.contains("127.0.0.1"),
        "{}",
        d.error_message
    );
}
