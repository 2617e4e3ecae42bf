//! The local gateway end to end over HTTP: send, a reply and a delivery report, the events.

use crate::support::*;
use byosms::domain::{Event, Status};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

const PREFIX: &str = "/distribution-providers/v1/receive/distribution";

#[tokio::test]
async fn send_reply_and_report_through_http() {
    for backend in BACKENDS {
        let twilio = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(twilio_messages_path()))
            .respond_with(twilio_created(
                "SM55555555555555555555555555555555",
                "queued",
            ))
            .expect(1)
            .mount(&twilio)
            .await;
        let mut settings = settings(Some(&twilio.uri()));
        settings.public_base_url = None;
        let deps = deps(backend, settings).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        let base = start_gateway(deps.deps.clone()).await;
        let http = reqwest::Client::new();

        let health: Value = http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health, json!({"status": "ok"}));

        let answer = http
            .post(format!("{base}/send"))
            .json(&json!({"orgId": ORG, "connectionId": "conn_1", "userId": "UR_1",
                          "messages": [{"messageId": "dist42-r1", "to": TO, "body": "Take our survey"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let answer: Value = answer.json().await.unwrap();
        assert_eq!(
            answer["results"][0]["status"], "accepted",
            "{backend:?}: {answer}"
        );
        assert_eq!(
            answer["results"][0]["providerMessageId"],
            "SM55555555555555555555555555555555"
        );

        let reply = [
            ("MessageSid", "SM66666666666666666666666666666666"),
            ("AccountSid", ACCOUNT_SID),
            ("From", TO),
            ("To", FROM),
            ("Body", "9"),
            ("SmsStatus", "received"),
        ];
        let url = format!("{base}{PREFIX}/message/twilio-sms/{ORG}");
        let r = http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "x-twilio-signature",
                twilio_signature(AUTH_TOKEN, &url, &reply),
            )
            .body(form(&reply))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (
                r.status().as_u16(),
                r.headers()["content-type"].to_str().unwrap()
            ),
            (200, "text/xml")
        );

        let report = [
            ("MessageSid", "SM55555555555555555555555555555555"),
            ("MessageStatus", "delivered"),
            ("AccountSid", ACCOUNT_SID),
        ];
        let url = format!("{base}{PREFIX}/status/twilio-sms/{ORG}?messageId=dist42-r1");
        let r = http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "x-twilio-signature",
                twilio_signature(AUTH_TOKEN, &url, &report),
            )
            .body(form(&report))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        let events = deps.stores.messages.list_events(ORG, 10).await.unwrap();
        assert!(
            matches!(&events[0], Event::Inbound(e) if e.in_reply_to.as_deref() == Some("dist42-r1")),
            "{events:?}"
        );
        assert!(
            matches!(&events[1], Event::Status(e) if e.status == Status::Delivered && e.message_id.as_deref() == Some("dist42-r1"))
        );
        let record = deps
            .stores
            .messages
            .get_message(ORG, "dist42-r1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, Some(Status::Delivered), "{backend:?}");
    }
}

#[tokio::test]
async fn send_errors_are_json_with_a_code() {
    let deps = deps(Backend::Embedded, settings(None)).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let base = start_gateway(deps.deps.clone()).await;
    let http = reqwest::Client::new();
    let post = |body: String| {
        http.post(format!("{base}/send"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let r = post("{not json".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_request");

    let r = post(json!({"orgId": ORG, "userId": "UR_2", "messages": [{"messageId": "m", "to": TO, "body": "x"}]}).to_string()).await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "access_denied");

    let r = http.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn behind_a_tunnel_the_url_is_rebuilt_from_the_forwarded_request() {
    let mut settings = settings(None);
    settings.public_base_url = None;
    let deps = deps(Backend::Embedded, settings).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let base = start_gateway(deps.deps.clone()).await;
    let reply = [
        ("MessageSid", "SM99999999999999999999999999999999"),
        ("AccountSid", ACCOUNT_SID),
        ("From", TO),
        ("To", FROM),
        ("Body", "ok"),
    ];
    let path = format!("{PREFIX}/message/twilio-sms/{ORG}");
    // What Twilio called and signed: the tunnel's public https URL.
    let signed = format!("https://surveys.tunnel.example{path}");
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("host", "surveys.tunnel.example")
        .header("x-forwarded-proto", "https")
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "x-twilio-signature",
            twilio_signature(AUTH_TOKEN, &signed, &reply),
        )
        .body(form(&reply))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}
