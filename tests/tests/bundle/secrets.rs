//! Secrets never reach logs, errors, `Debug` output, answers or DynamoDB.

use crate::support::*;
use byosms::pipeline::send::{SendItem, SendRequest, send};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn no_secret_in_logs_debug_errors_or_dynamodb() {
    let logs = captured_logs();
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_error(401, 20003, "Authenticate"))
        .up_to_n_times(1)
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .respond_with(twilio_created(
            "SM77777777777777777777777777777777",
            "queued",
        ))
        .mount(&twilio)
        .await;
    let deps = deps(Backend::Aws, settings(Some(&twilio.uri()))).await;
    let connection = add_twilio(&deps, ORG, "conn_1", FROM).await;

    // A refused connection file names the field but not the value.
    let bad = json!({"provider": "twilio", "name": "x", "accountSid": ACCOUNT_SID, "authToken": format!("{AUTH_TOKEN}!"), "from": FROM});
    let err = byosms::pipeline::admin::add_connection(&deps, ORG, None, &bad, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("authToken"));
    assert!(!format!("{err} {err:?}").contains(AUTH_TOKEN));

    let mut answers = String::new();
    for id in ["auth-fail", "server-error", "ok"] {
        let request = SendRequest {
            org_id: ORG.into(),
            connection_id: None,
            user_id: "UR_1".into(),
            messages: vec![SendItem {
                message_id: id.into(),
                to: TO.into(),
                body: "b".into(),
            }],
        };
        answers.push_str(&serde_json::to_string(&send(&deps, &request).await.unwrap()).unwrap());
    }
    assert!(answers.contains("auth_failed"), "{answers}");

    // Webhooks, verified and refused: the token signs, it is never logged.
    let path = format!("/distribution-providers/v1/receive/distribution/message/twilio-sms/{ORG}");
    let route = byosms::webhook::Route::from_path(&path).unwrap();
    let reply = [
        ("MessageSid", "SM88888888888888888888888888888888"),
        ("AccountSid", ACCOUNT_SID),
        ("From", TO),
        ("To", FROM),
        ("Body", "1"),
    ];
    let good = crate::webhooks::twilio_request(&path, "", &reply);
    let mut forged = good.clone();
    forged.headers.insert(
        "x-twilio-signature",
        http::HeaderValue::from_static("Zm9yZ2Vk"),
    );
    for (request, status) in [(good, 200), (forged, 403)] {
        let answer = byosms::pipeline::receive::receive(&deps, &route, &request).await;
        assert_eq!(answer.status, status, "{}", answer.body);
        answers.push_str(&answer.body);
    }

    let secrets = deps
        .stores
        .secrets
        .get_secrets(ORG, "conn_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secrets.expose("authToken"), Some(AUTH_TOKEN));
    let debug = format!("{connection:?} {secrets:?} {:?}", deps.settings);
    assert!(debug.contains("authToken"), "the field is named: {debug}");
    assert!(!debug.contains(AUTH_TOKEN), "{debug}");
    assert!(!answers.contains(AUTH_TOKEN));

    let (connections_table, messages_table) = deps.tables.clone().unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    for table in [connections_table, messages_table] {
        let items = dynamo
            .scan()
            .table_name(&table)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        assert!(!items.is_empty());
        let dump = format!("{items:?}");
        assert!(!dump.contains(AUTH_TOKEN), "secret stored in {table}");
    }

    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("send failed"),
        "the logs were captured: {logged}"
    );
    assert!(!logged.contains(AUTH_TOKEN), "a secret reached the logs");
    // Basic auth on the wire is the token in base64: not in the logs either.
    assert!(!logged.contains(basic_auth_header().trim_start_matches("Basic ")));
}
