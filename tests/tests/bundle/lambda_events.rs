//! The events in `tests/events/` (what the README feeds to `cargo lambda invoke --data-file`)
//! through the real handlers, on both stores: the send event through the send function, and the
//! API Gateway v2 requests of both routes, both methods and three providers through the webhook
//! function, signed for the execute-api host they name, with the connections in
//! `tests/events/connections/`. Also a request as `cargo lambda watch` delivers it (plain HTTP,
//! no `X-Forwarded-Proto`) verifying without any setting.

use crate::support::*;
use byosms::domain::{Event, Provider, Status};
use byosms::pipeline::admin;
use byosms::webhook::RouteKind;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer};

/// The Twilio id the send event's message gets (the status events report on it).
const SENT_SID: &str = "SM11111111111111111111111111111111";

fn events_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

fn read_event(name: &str) -> Value {
    let path = events_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn request(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

/// The README's connections: `byosms connection add --org ORG_1 --file ... --id ...`.
async fn add_event_connections(deps: &byosms::Deps) {
    for (file, id) in [
        ("twilio.json", "conn_1"),
        ("infobip.json", "conn_ib"),
        ("linkmobility.json", "conn_link"),
    ] {
        let fields = read_event(&format!("connections/{file}"));
        admin::add_connection(deps, ORG, Some(id), &fields, None)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

async fn webhook(deps: &byosms::Deps, kind: RouteKind, name: &str) -> (u16, String) {
    let response = byosms_webhook_http::handle(deps, kind, request(&read_event(name)))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, String::from_utf8(response.body().to_vec()).unwrap())
}

/// Twilio's API as the send event's connection calls it: the exact account, sender, recipient and
/// text, answered with [`SENT_SID`].
async fn twilio_for_the_send_event() -> MockServer {
    let twilio = MockServer::start().await;
    let auth = {
        use base64::Engine;
        let raw = "AC0123456789abcdef0123456789abcdef:f0e1d2c3b4a5968778695a4b3c2d1e0f";
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    Mock::given(method("POST"))
        .and(path(
            "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
        ))
        .and(header("authorization", auth.as_str()))
        .and(body_string_contains("To=%2B14155550100"))
        .and(body_string_contains("From=%2B14155550199"))
        .and(body_string_contains(
            "Body=Take+our+survey%3A+https%3A%2F%2Fx.y%2Fz",
        ))
        .respond_with(twilio_created(SENT_SID, "queued"))
        .expect(1)
        .mount(&twilio)
        .await;
    twilio
}

#[tokio::test]
async fn the_event_files_run_through_the_handlers_on_both_stores() {
    for backend in BACKENDS {
        let twilio = twilio_for_the_send_event().await;
        let mut settings = settings(Some(&twilio.uri()));
        // Deployed without a custom domain: the signed URL is rebuilt from each request.
        settings.public_base_url = None;
        let deps = deps(backend, settings).await;
        add_event_connections(&deps).await;

        let answer = byosms_send::handle(
            &deps,
            LambdaEvent::new(read_event("send.json"), Context::default()),
        )
        .await
        .unwrap();
        let answer = serde_json::to_value(answer).unwrap();
        assert_eq!(
            answer["results"][0]["messageId"], "dist42-r1",
            "{backend:?}: {answer}"
        );
        assert_eq!(
            answer["results"][0]["status"], "accepted",
            "{backend:?}: {answer}"
        );
        assert_eq!(answer["results"][0]["providerMessageId"], SENT_SID);

        let err = byosms_send::handle(
            &deps,
            LambdaEvent::new(
                read_event("send-unknown-connection.json"),
                Context::default(),
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(Diagnostic::from(err).error_type, "unknown_connection");

        let twiml = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#.to_string();
        for (kind, name, expected) in [
            (
                RouteKind::Status,
                "receive-status-twilio-get.json",
                (200, twiml.clone()),
            ),
            (
                RouteKind::Status,
                "receive-status-twilio.json",
                (200, twiml.clone()),
            ),
            (
                RouteKind::Message,
                "receive-message-twilio.json",
                (200, twiml.clone()),
            ),
            (
                RouteKind::Message,
                "receive-message-infobip.json",
                (200, String::new()),
            ),
            (
                RouteKind::Message,
                "receive-message-linkmobility.json",
                (200, "OK".into()),
            ),
        ] {
            assert_eq!(
                webhook(&deps, kind, name).await,
                expected,
                "{backend:?} {name}"
            );
        }

        let events = deps.stores.messages.list_events(ORG, 20).await.unwrap();
        assert_eq!(
            statuses(&events),
            [
                ("sent".into(), Status::Sent, Some("dist42-r1".into())),
                (
                    "delivered".into(),
                    Status::Delivered,
                    Some("dist42-r1".into())
                ),
            ],
            "{backend:?}"
        );
        let replies: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Inbound(i) => Some((i.provider, i.text.as_str(), i.in_reply_to.as_deref())),
                Event::Status(_) => None,
            })
            .collect();
        assert_eq!(
            replies,
            [
                (Provider::Twilio, "5", Some("dist42-r1")),
                (Provider::Infobip, "4", None),
                (Provider::Linkmobility, "3", None),
            ],
            "{backend:?}"
        );
        let message = deps
            .stores
            .messages
            .get_message(ORG, "dist42-r1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message.status, Some(Status::Delivered));

        // Providers retry: the same events again record nothing more.
        for (kind, name) in [
            (RouteKind::Status, "receive-status-twilio.json"),
            (RouteKind::Message, "receive-message-infobip.json"),
        ] {
            assert_eq!(
                webhook(&deps, kind, name).await.0,
                200,
                "{backend:?} {name}"
            );
        }
        assert_eq!(
            deps.stores
                .messages
                .list_events(ORG, 20)
                .await
                .unwrap()
                .len(),
            5
        );
    }
}

#[tokio::test]
async fn a_changed_event_file_is_refused() {
    let mut settings = settings(None);
    settings.public_base_url = None;
    let deps = deps(Backend::Embedded, settings).await;
    add_event_connections(&deps).await;

    // Another host than the one Twilio signed for.
    let mut event = read_event("receive-message-twilio.json");
    event["headers"]["host"] = json!("attacker.example");
    let response = byosms_webhook_http::handle(&deps, RouteKind::Message, request(&event))
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // Infobip's user with another password (wrong credentials: 403; none at all: 401).
    let mut event = read_event("receive-message-infobip.json");
    event["headers"]["authorization"] = json!("Basic Ynlvc21zOndyb25n");
    let response = byosms_webhook_http::handle(&deps, RouteKind::Message, request(&event))
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let mut event = read_event("receive-message-infobip.json");
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    let response = byosms_webhook_http::handle(&deps, RouteKind::Message, request(&event))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        deps.stores
            .messages
            .list_events(ORG, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// What `cargo lambda watch` hands the function for a webhook posted to
/// `http://127.0.0.1:9000/...` under the workspace's watch router: the real path and path
/// parameters, the client's `Host`, and no `X-Forwarded-Proto` (nothing terminated TLS).
#[tokio::test]
async fn a_webhook_through_the_cargo_lambda_emulator_verifies_with_no_setting() {
    let mut settings = settings(None);
    settings.public_base_url = None;
    let deps = deps(Backend::Embedded, settings).await;
    add_event_connections(&deps).await;

    let path = "/distribution-providers/v1/receive/distribution/message/twilio-sms/ORG_1";
    let params = [
        ("MessageSid", "SM44444444444444444444444444444444"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", "+14155550100"),
        ("To", "+14155550199"),
        ("Body", "2"),
    ];
    let url = format!("http://127.0.0.1:9000{path}");
    let body = form(&params);
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "headers": {
            "host": "127.0.0.1:9000",
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": twilio_signature("f0e1d2c3b4a5968778695a4b3c2d1e0f", &url, &params),
        },
        "pathParameters": {"provider": "twilio-sms", "orgId": "ORG_1"},
        "requestContext": {
            "routeKey": "$default", "stage": "$default", "requestId": "local-1",
            "domainName": "localhost", "domainPrefix": "receive-message",
            "http": {"method": "POST", "path": path, "protocol": "http", "sourceIp": "127.0.0.1", "userAgent": "cargo-lambda"},
            "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": false
    });
    let response = byosms_webhook_http::handle(&deps, RouteKind::Message, request(&event))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = deps.stores.messages.list_events(ORG, 10).await.unwrap();
    assert!(matches!(&events[..], [Event::Inbound(e)] if e.text == "2"));
}
