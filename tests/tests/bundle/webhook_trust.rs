//! Webhooks you can trust (issue 9), on both stores: a report that beats the send's own write is
//! held and applied when the message is recorded; a report for a message we never sent is
//! acknowledged, held, counted in the request's log line and expired, never an event; of several
//! connections of one provider in an org, the one whose secret verifies owns the request; dedupe
//! markers expire; and the one log line per request names org, provider, connection, route,
//! outcome and latency for every provider while no secret, message body or whole phone number
//! reaches the logs.

use crate::support::*;
use crate::webhooks::twilio_request;
use byosms::Deps;
use byosms::domain::{Connection, ConnectionSecrets, Event, Provider, Status, StatusEvent};
use byosms::pipeline::receive::receive;
use byosms::pipeline::send::{SendItem, SendRequest, send};
use byosms::providers::{SampleEvent, SignedRequest};
use byosms::stores::{HELD_REPORT_LIFETIME, HeldReport};
use byosms::webhook::{Route, RouteKind};
use chrono::Utc;
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

const PREFIX: &str = "/distribution-providers/v1/receive/distribution";
const EARLY_SID: &str = "SMeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const FOREIGN_SID: &str = "SMffffffffffffffffffffffffffffffff";

fn status_route() -> (String, Route) {
    let path = format!("{PREFIX}/status/twilio-sms/{ORG}");
    let route = Route::from_path(&path).unwrap();
    (path, route)
}

fn status_params<'a>(sid: &'a str, word: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MessageSid", sid),
        ("MessageStatus", word),
        ("AccountSid", ACCOUNT_SID),
        ("From", FROM),
        ("To", TO),
    ]
}

async fn events(deps: &Deps, org: &str) -> Vec<Event> {
    deps.stores.messages.list_events(org, 1000).await.unwrap()
}

fn send_one(message_id: &str) -> SendRequest {
    SendRequest {
        org_id: ORG.into(),
        connection_id: Some("conn_1".into()),
        user_id: "UR_1".into(),
        messages: vec![SendItem {
            message_id: message_id.into(),
            to: TO.into(),
            body: "survey".into(),
        }],
    }
}

#[tokio::test]
async fn a_report_that_beats_the_sends_write_is_held_and_applied_when_the_message_is_recorded() {
    for backend in BACKENDS {
        let twilio = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(twilio_created(EARLY_SID, "queued"))
            .expect(1)
            .mount(&twilio)
            .await;
        let deps = deps(backend, settings(Some(&twilio.uri()))).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        let (path, route) = status_route();
        // The report names only the provider's id (no echoed messageId): nothing knows it yet.
        let early = twilio_request(&path, "", &status_params(EARLY_SID, "delivered"));
        for _ in 0..2 {
            let reply = receive(&deps, &route, &early).await;
            assert_eq!(reply.status, 200, "{backend:?}: {}", reply.body);
        }
        assert!(
            events(&deps, ORG).await.is_empty(),
            "{backend:?}: a report no message names is not an event"
        );
        let held = deps
            .stores
            .messages
            .held_reports(ORG, "conn_1", EARLY_SID)
            .await
            .unwrap();
        assert_eq!(held.len(), 1, "{backend:?}: held once: {held:?}");

        let answer = send(&deps, &send_one("m1")).await.unwrap();
        assert_eq!(
            answer.results[0].provider_message_id.as_deref(),
            Some(EARLY_SID)
        );
        assert_eq!(
            statuses(&events(&deps, ORG).await),
            [(
                "delivered".to_string(),
                Status::Delivered,
                Some("m1".into())
            )],
            "{backend:?}: the held report became the message's event"
        );
        let message = deps
            .stores
            .messages
            .get_message(ORG, "m1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message.status, Some(Status::Delivered), "{backend:?}");
        assert!(
            deps.stores
                .messages
                .held_reports(ORG, "conn_1", EARLY_SID)
                .await
                .unwrap()
                .is_empty(),
            "{backend:?}: applied reports are forgotten"
        );
        // The provider's retry of the same report now finds the message: still one event.
        assert_eq!(receive(&deps, &route, &early).await.status, 200);
        assert_eq!(events(&deps, ORG).await.len(), 1, "{backend:?}");
    }
}

#[tokio::test]
async fn a_report_for_a_message_never_sent_is_acknowledged_counted_and_expires() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        let (path, route) = status_route();
        let foreign = twilio_request(&path, "", &status_params(FOREIGN_SID, "delivered"));
        let reply = receive(&deps, &route, &foreign).await;
        assert_eq!(
            (reply.status, reply.content_type),
            (200, "text/xml"),
            "{backend:?}"
        );
        assert!(events(&deps, ORG).await.is_empty(), "{backend:?}");
        let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
        assert!(
            logs.lines().map(parse_line).any(|line| {
                let f = &line["fields"];
                f["message"] == "webhook request"
                    && f["org_id"] == ORG
                    && f["held"] == 1
                    && f["outcome"] == "recorded"
            }),
            "{backend:?}: the request's log line counts the held report"
        );

        // One received a lifetime ago is gone: it can no longer become an event.
        let old = HeldReport {
            event: StatusEvent {
                event_id: "e-old".into(),
                org_id: ORG.into(),
                connection_id: "conn_1".into(),
                provider: Provider::Twilio,
                provider_message_id: "SMold".into(),
                message_id: None,
                status: Status::Delivered,
                provider_status: "delivered".into(),
                error_code: None,
                occurred_at: None,
                received_at: Utc::now() - HELD_REPORT_LIFETIME - chrono::TimeDelta::minutes(1),
            },
            dedupe_key: "conn_1:status:SMold:delivered".into(),
        };
        let messages = &deps.stores.messages;
        messages.hold_report(&old).await.unwrap();
        assert!(
            messages
                .held_reports(ORG, "conn_1", "SMold")
                .await
                .unwrap()
                .is_empty(),
            "{backend:?}: an expired hold is gone"
        );
    }
}

/// `secrets` with every value changed: another account's credentials of the same shape.
fn other_account(secrets: &ConnectionSecrets) -> ConnectionSecrets {
    let mut theirs = ConnectionSecrets::default();
    for name in secrets.names() {
        let ours = secrets.expose(name).unwrap_or_default();
        // Same length and alphabet, different bytes.
        let changed = ours
            .chars()
            .map(|c| match c {
                'a'..='y' | 'A'..='Y' | '0'..='8' => char::from(c as u8 + 1),
                'z' => 'a',
                'Z' => 'A',
                '9' => '0',
                other => other,
            })
            .collect();
        theirs.insert(name, changed);
    }
    theirs
}

async fn post(gateway: &str, request: &SignedRequest) -> (u16, String) {
    let mut url = format!("{gateway}{}", request.url.path());
    if let Some(query) = request.url.query() {
        url = format!("{url}?{query}");
    }
    let mut call = reqwest::Client::new()
        .request(request.method.clone(), &url)
        .body(request.body.clone());
    for (name, value) in &request.headers {
        call = call.header(name, value);
    }
    let response = call.send().await.unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// Another account's webhook credentials for `provider`, put over its example connection: the
/// secrets (changed by [`other_account`]) and, where a public key verifies the webhooks, a key of
/// its own.
fn other_accounts_settings(provider: Provider) -> Value {
    match provider {
        Provider::Messagemedia => {
            use rsa::pkcs8::{EncodePublicKey, LineEnding};
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
            let pem = rsa::RsaPublicKey::from(&key)
                .to_public_key_pem(LineEnding::LF)
                .unwrap();
            serde_json::json!({ "webhookPublicKey": pem })
        }
        _ => serde_json::json!({}),
    }
}

#[tokio::test]
async fn of_several_connections_of_one_provider_the_one_whose_secret_verifies_owns_the_request() {
    for backend in BACKENDS {
        let deps = deps(backend, settings_with_stand_ins().await).await;
        let gateway = start_gateway(deps.deps.clone()).await;
        for adapter in deps.registry.all() {
            let provider = adapter.provider();
            let org = format!("ORG_MULTI_{provider}");
            // conn_a, another account's, is a candidate before conn_b, whose secret signs.
            add_connection_with(
                &deps,
                provider,
                &org,
                "conn_a",
                other_accounts_settings(provider),
            )
            .await;
            let secrets = deps.stores.secrets.get_secrets(&org, "conn_a").await;
            let theirs = other_account(&secrets.unwrap().unwrap());
            deps.stores
                .secrets
                .put_secrets(&org, "conn_a", &theirs)
                .await
                .unwrap();
            let owner = add_connection(&deps, provider, &org, "conn_b").await;
            let owners_secrets = deps
                .stores
                .secrets
                .get_secrets(&org, "conn_b")
                .await
                .unwrap()
                .unwrap();
            let event = SampleEvent::Inbound {
                from: TO.into(),
                to: owner.setting("from").unwrap_or(FROM).into(),
                text: "7".into(),
            };
            let url = deps
                .settings
                .route_url(RouteKind::Message, provider, &org)
                .unwrap();
            let signed = adapter
                .sample_webhook(&event, &url, &owner, &owners_secrets)
                .unwrap();
            let answer = post(&gateway, &signed).await;
            assert_eq!(answer.0, 200, "{backend:?} {provider}: {answer:?}");
            let owners: Vec<String> = events(&deps, &org)
                .await
                .iter()
                .map(|e| match e {
                    Event::Inbound(i) => i.connection_id.clone(),
                    Event::Status(s) => s.connection_id.clone(),
                })
                .collect();
            assert_eq!(owners, ["conn_b"], "{backend:?} {provider}");
        }
    }
}

#[tokio::test]
async fn dedupe_markers_carry_their_expiry() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_created(EARLY_SID, "queued"))
        .mount(&twilio)
        .await;
    let deps = deps(Backend::Aws, settings(Some(&twilio.uri()))).await;
    let (_, messages_table) = deps.tables.clone().unwrap();
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    send(&deps, &send_one("m1")).await.unwrap();
    let (path, route) = status_route();
    let delivered = twilio_request(&path, "", &status_params(EARLY_SID, "delivered"));
    assert_eq!(receive(&deps, &route, &delivered).await.status, 200);
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let items = client
        .query()
        .table_name(&messages_table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ORG#{ORG}")),
        )
        .expression_attribute_values(
            ":prefix",
            aws_sdk_dynamodb::types::AttributeValue::S("DEDUPE#".into()),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1, "{items:?}");
    let expires: i64 = items[0]["expiresAt"].as_n().unwrap().parse().unwrap();
    let in_days = (expires - Utc::now().timestamp()) as f64 / 86_400.0;
    assert!(
        (29.9..=30.1).contains(&in_days),
        "the marker expires in 30 days, not {in_days}"
    );
}

fn parse_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or(Value::Null)
}

/// A number no other test uses, so that a search of every test's logs for it is this test's.
fn unique_number(n: usize) -> String {
    let digits = uuid::Uuid::new_v4().as_u128() % 1_000_000;
    format!("+1415{digits:06}{n}")
}

#[tokio::test]
async fn one_log_line_per_request_and_no_secret_body_or_whole_number_in_the_logs() {
    let deps = deps(Backend::Embedded, settings_with_stand_ins().await).await;
    let gateway = start_gateway(deps.deps.clone()).await;
    let mut watched: Vec<(Provider, String)> = Vec::new();
    for (n, adapter) in deps.registry.all().enumerate() {
        let provider = adapter.provider();
        let org = format!("ORG_LOGS_{provider}");
        let connection: Connection = add_connection(&deps, provider, &org, "conn_1").await;
        let secrets = deps
            .stores
            .secrets
            .get_secrets(&org, "conn_1")
            .await
            .unwrap()
            .unwrap();
        let from = unique_number(n);
        let text = format!("LOGPROBE {}", uuid::Uuid::new_v4().simple());
        let url = |kind| deps.settings.route_url(kind, provider, &org).unwrap();
        let inbound = adapter
            .sample_webhook(
                &SampleEvent::Inbound {
                    from: from.clone(),
                    to: connection.setting("from").unwrap_or(FROM).into(),
                    text: text.clone(),
                },
                &url(RouteKind::Message),
                &connection,
                &secrets,
            )
            .unwrap();
        let status = adapter
            .sample_webhook(
                &SampleEvent::Status {
                    message_id: None,
                    provider_message_id: format!("p-{}", uuid::Uuid::new_v4().simple()),
                    provider_status: "delivered".into(),
                    error_code: None,
                },
                &url(RouteKind::Status),
                &connection,
                &secrets,
            )
            .unwrap();
        // The payload reversed: the body, or the query of a GET.
        let mut forged = inbound.clone();
        if forged.body.is_empty() {
            let reversed: String = inbound
                .url
                .query()
                .unwrap_or_default()
                .chars()
                .rev()
                .collect();
            forged.url.set_query(Some(&reversed));
        } else {
            forged.body = forged.body.iter().rev().copied().collect();
        }
        for request in [&inbound, &status, &forged] {
            let answer = post(&gateway, request).await;
            assert!(answer.0 < 500, "{provider}: {answer:?}");
        }
        for name in secrets.names() {
            if let Some(secret) = secrets.expose(name).filter(|s| s.len() >= 8) {
                watched.push((provider, secret.to_string()));
            }
        }
        watched.push((provider, text));
        watched.push((provider, from.clone()));
        watched.push((provider, from.trim_start_matches('+').to_string()));

        let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = logs
            .lines()
            .map(parse_line)
            .filter(|l| l["fields"]["message"] == "webhook request" && l["fields"]["org_id"] == org)
            .collect();
        assert_eq!(
            lines.len(),
            3,
            "{provider}: one line per request: {lines:?}"
        );
        let outcomes: Vec<&str> = lines
            .iter()
            .map(|l| l["fields"]["outcome"].as_str().unwrap_or_default())
            .collect();
        // A reversed body breaks a signature; under HTTP Basic it is merely unreadable.
        let forged_outcome = if adapter.webhook_auth_covers_payload() {
            "unauthenticated"
        } else {
            "refused"
        };
        assert_eq!(
            outcomes,
            ["recorded", "recorded", forged_outcome],
            "{provider}"
        );
        for line in &lines {
            let f = &line["fields"];
            assert_eq!(f["provider"], provider.as_str(), "{provider}: {line}");
            assert!(f["route"].is_string() && f["latency_ms"].is_u64(), "{line}");
            assert!(f["status"].is_u64(), "{line}");
        }
        assert_eq!(lines[0]["fields"]["connection_id"], "conn_1");
        assert_eq!(lines[0]["fields"]["route"], "message");
        assert_eq!(lines[1]["fields"]["route"], "status");
    }
    let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
    for (provider, value) in watched {
        assert!(
            !logs.contains(&value),
            "{provider}: '{value}' reached the logs"
        );
    }
}
