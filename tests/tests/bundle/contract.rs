//! The contract every provider adapter keeps, checked with the same cases for each adapter in
//! `Registry::all()`, so that a provider is covered the moment it is registered. Nothing here
//! names a provider: each adapter's `example_fields`, `sample_webhook`, `stand_in` (and its
//! `error_numbers`) and `webhook_auth_covers_payload` drive the cases.
//!
//! - Webhooks, on both stores, through the gateway: a sample of each kind is answered with the
//!   adapter's acknowledgement and records one event of its kind (a status for the message sent
//!   just before, a reply linked to it); changed by one byte (its payload, and each header its
//!   authentication rests on) it is refused with 401/403 and records nothing; repeated, it still
//!   records one event.
//! - Sends, on both stores, through the send pipeline and the stand-in: accepted with the
//!   provider's id, and each of the stand-in's error numbers classified as it says.
//! - Connection fields: a field of the wrong type, a missing required field and an unknown field
//!   are each named, and no error text shows a secret.
//! - The setup guide names both webhook URLs.

use crate::support::*;
use byosms::Deps;
use byosms::domain::{Connection, ConnectionSecrets, Event, ValidationErrors};
use byosms::pipeline::admin;
use byosms::pipeline::send::{ResultStatus, SendItem, SendRequest, SendResult, send};
use byosms::providers::{ProviderAdapter, SampleEvent, SignedRequest};
use byosms::webhook::{RouteKind, WebhookReply, WebhookRequest};
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

/// Our message id of the message the status sample reports on and the reply answers.
const SENT_ID: &str = "contract-sent";

/// One adapter's connection in an org of its own (the Twilio route also serves MessageBird
/// connections: separate orgs keep each adapter's requests to its own connection).
struct Subject<'a> {
    adapter: &'a dyn ProviderAdapter,
    connection: Connection,
    secrets: ConnectionSecrets,
}

impl<'a> Subject<'a> {
    async fn add(deps: &Deps, adapter: &'a dyn ProviderAdapter) -> Subject<'a> {
        let provider = adapter.provider();
        let org = format!("ORG_{provider}");
        let connection = add_connection(deps, provider, &org, "conn_1").await;
        let secrets = deps
            .stores
            .secrets
            .get_secrets(&org, "conn_1")
            .await
            .unwrap()
            .expect("the connection's secrets are stored");
        Subject {
            adapter,
            connection,
            secrets,
        }
    }

    fn org(&self) -> &str {
        &self.connection.org_id
    }

    async fn send(&self, deps: &Deps, message_id: &str, to: &str) -> SendResult {
        let request = SendRequest {
            org_id: self.org().to_string(),
            connection_id: Some(self.connection.connection_id.clone()),
            user_id: "UR_1".into(),
            messages: vec![SendItem {
                message_id: message_id.into(),
                to: to.into(),
                body: "Take our survey: https://x.y/z".into(),
            }],
        };
        let mut answer = send(deps, &request).await.unwrap_or_else(|e| {
            panic!(
                "{}: the send request was refused: {e}",
                self.connection.provider
            )
        });
        answer.results.remove(0)
    }

    async fn events(&self, deps: &Deps) -> Vec<Event> {
        deps.stores
            .messages
            .list_events(self.org(), 1000)
            .await
            .unwrap()
    }

    /// The adapter's sample of `event`, signed for our public route of `kind`.
    fn sample(&self, deps: &Deps, kind: RouteKind, event: &SampleEvent) -> SignedRequest {
        let url = deps
            .settings
            .route_url(kind, self.connection.provider, self.org())
            .unwrap();
        self.adapter
            .sample_webhook(event, &url, &self.connection, &self.secrets)
            .unwrap_or_else(|e| panic!("{}: no sample: {e}", self.connection.provider))
    }
}

/// What the gateway answered: status, content type, body.
type Answer = (u16, String, String);

fn expected(reply: WebhookReply) -> Answer {
    (reply.status, reply.content_type.to_string(), reply.body)
}

/// Sends `request` to the gateway at `gateway`, at the path and query it was signed for.
async fn post(gateway: &str, request: &SignedRequest) -> Answer {
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
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

/// `bytes` with one ASCII letter or digit (the first at or after the middle) replaced by another
/// of its kind: still well-formed (UTF-8, form and JSON syntax, hex and base64 alphabets), only
/// different.
fn change_one_byte(bytes: &[u8]) -> Vec<u8> {
    let middle = bytes.len() / 2;
    let at = (middle..bytes.len())
        .chain(0..middle)
        .find(|&i| bytes[i].is_ascii_alphanumeric())
        .expect("a letter or digit to change");
    let mut changed = bytes.to_vec();
    changed[at] = match bytes[at] {
        b'9' => b'0',
        b'z' => b'a',
        b'Z' => b'A',
        b => b + 1,
    };
    changed
}

/// The request with its payload changed by one byte: the body, or the query when the body is
/// empty.
fn with_payload_changed(request: &SignedRequest) -> SignedRequest {
    let mut changed = request.clone();
    if !request.body.is_empty() {
        changed.body = change_one_byte(&request.body);
    } else {
        let query = request
            .url
            .query()
            .expect("a sample carries a body or a query");
        let query = String::from_utf8(change_one_byte(query.as_bytes())).unwrap();
        changed.url.set_query(Some(&query));
    }
    changed
}

fn without_header(request: &SignedRequest, name: &str) -> SignedRequest {
    let mut changed = request.clone();
    changed.headers.retain(|(n, _)| n != name);
    changed
}

fn with_header_changed(request: &SignedRequest, name: &str) -> SignedRequest {
    let mut changed = request.clone();
    for (n, value) in &mut changed.headers {
        if n == name {
            *value = String::from_utf8(change_one_byte(value.as_bytes())).unwrap();
        }
    }
    changed
}

fn is_refused(answer: &Answer) -> bool {
    matches!(answer.0, 401 | 403)
}

/// `signed` as the gateway hands it to the adapter (the URL it was signed for is the public URL).
fn as_received(signed: &SignedRequest) -> WebhookRequest {
    WebhookRequest {
        method: signed.method.clone(),
        public_url: signed.url.to_string(),
        raw_path: signed.url.path().to_string(),
        raw_query: signed.url.query().unwrap_or_default().to_string(),
        headers: signed
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect(),
        body: signed.body.clone().into(),
        received_at: chrono::Utc::now(),
    }
}

/// The sample's headers without which the adapter refuses it, asked of the adapter directly so
/// that a request it accepts is not stored.
fn authenticating_headers(subject: &Subject<'_>, request: &SignedRequest) -> Vec<String> {
    let authenticate = |request: &WebhookRequest| {
        subject
            .adapter
            .authenticate(request, &subject.connection, &subject.secrets)
    };
    assert_eq!(
        authenticate(&as_received(request)),
        Ok(()),
        "{}: its own sample does not authenticate",
        subject.connection.provider
    );
    request
        .headers
        .iter()
        .map(|(name, _)| name.clone())
        .filter(|name| authenticate(&as_received(&without_header(request, name))).is_err())
        .collect()
}

/// A changed request is refused and stores nothing (the org's events stay `before`): its
/// payload when the adapter says its authentication covers it, and each header that
/// authentication rests on (the headers without which the request is refused).
async fn changed_requests_are_refused(
    subject: &Subject<'_>,
    deps: &Deps,
    gateway: &str,
    request: &SignedRequest,
    before: &[Event],
    context: &str,
) {
    let mut changed = Vec::new();
    if subject.adapter.webhook_auth_covers_payload() {
        changed.push(("the payload".to_string(), with_payload_changed(request)));
    }
    for name in authenticating_headers(subject, request) {
        changed.push((
            format!("header {name}"),
            with_header_changed(request, &name),
        ));
    }
    assert!(
        !changed.is_empty(),
        "{context}: neither the payload nor any header authenticates the request"
    );
    for (what, request) in changed {
        let answer = post(gateway, &request).await;
        assert!(
            is_refused(&answer),
            "{context}: {what} changed by one byte: {answer:?}"
        );
    }
    assert_eq!(
        subject.events(deps).await,
        before,
        "{context}: a refused request stored an event"
    );
}

/// A reply from the number `SENT_ID` went to, and a delivery report of `SENT_ID`, each with the
/// route it is sent to. "delivered" may not be the provider's word: a report of a word nobody
/// knows is recorded all the same (as `unknown`).
fn samples(subject: &Subject<'_>, provider_message_id: &str) -> [(RouteKind, SampleEvent); 2] {
    let our_number = subject.connection.setting("from").unwrap_or(FROM);
    [
        (
            RouteKind::Message,
            SampleEvent::Inbound {
                from: TO.into(),
                to: our_number.into(),
                text: "5".into(),
            },
        ),
        (
            RouteKind::Status,
            SampleEvent::Status {
                message_id: Some(SENT_ID.into()),
                provider_message_id: provider_message_id.into(),
                provider_status: "delivered".into(),
                error_code: None,
            },
        ),
    ]
}

/// What the event recorded for `kind`'s sample must be.
fn check_event(event: &Event, kind: RouteKind, provider_message_id: &str, context: &str) {
    match (kind, event) {
        (RouteKind::Message, Event::Inbound(reply)) => assert_eq!(
            reply.in_reply_to.as_deref(),
            Some(SENT_ID),
            "{context}: the reply is linked to the message sent to its number"
        ),
        (RouteKind::Status, Event::Status(report)) => assert_eq!(
            (
                report.provider_message_id.as_str(),
                report.message_id.as_deref()
            ),
            (provider_message_id, Some(SENT_ID)),
            "{context}: the report is of the message sent"
        ),
        _ => panic!("{context}: recorded {event:?}"),
    }
}

#[tokio::test]
async fn webhooks_are_acknowledged_once_and_refused_when_changed() {
    for backend in BACKENDS {
        let deps = deps(backend, settings_with_stand_ins().await).await;
        let gateway = start_gateway(deps.deps.clone()).await;
        for adapter in deps.registry.all() {
            let subject = Subject::add(&deps, adapter).await;
            let sent = subject.send(&deps, SENT_ID, TO).await;
            let provider_message_id = sent.provider_message_id.unwrap_or_else(|| {
                panic!(
                    "{backend:?} {}: not sent: {:?}",
                    adapter.provider(),
                    sent.error
                )
            });
            let samples = samples(&subject, &provider_message_id);
            for (kind, event) in samples {
                let context = format!("{backend:?} {} {kind:?}", adapter.provider());
                let before = subject.events(&deps).await;
                let request = subject.sample(&deps, kind, &event);
                let ack = expected(adapter.acknowledge(kind, &subject.connection));

                changed_requests_are_refused(
                    &subject, &deps, &gateway, &request, &before, &context,
                )
                .await;

                assert_eq!(post(&gateway, &request).await, ack, "{context}");
                let after = subject.events(&deps).await;
                assert_eq!(after.len(), before.len() + 1, "{context}: {after:?}");
                check_event(&after[before.len()], kind, &provider_message_id, &context);

                // A provider's retry: answered as before (or refused as a replay), stored once.
                let again = post(&gateway, &request).await;
                assert!(again == ack || again.0 == 403, "{context}: {again:?}");
                assert_eq!(subject.events(&deps).await, after, "{context}: repeated");
            }
        }
    }
}

#[tokio::test]
async fn sends_are_accepted_by_the_stand_in_and_its_errors_classified() {
    for backend in BACKENDS {
        let deps = deps(backend, settings_with_stand_ins().await).await;
        for adapter in deps.registry.all() {
            let subject = Subject::add(&deps, adapter).await;
            let secret_values: Vec<&str> = subject
                .secrets
                .names()
                .filter_map(|n| subject.secrets.expose(n))
                .collect();
            let context = format!("{backend:?} {}", adapter.provider());

            let accepted = subject.send(&deps, "contract-accepted", TO).await;
            assert_eq!(
                accepted.status,
                ResultStatus::Accepted,
                "{context}: {accepted:?}"
            );
            let id = accepted.provider_message_id.clone().unwrap_or_default();
            assert!(!id.is_empty(), "{context}: no provider id");
            let record = deps
                .stores
                .messages
                .get_message(subject.org(), "contract-accepted")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                record.provider_message_id.as_deref(),
                Some(id.as_str()),
                "{context}"
            );

            let error_numbers = adapter.stand_in().error_numbers;
            for (i, (number, code)) in error_numbers.into_iter().enumerate() {
                let result = subject
                    .send(&deps, &format!("contract-error-{i}"), number)
                    .await;
                let error = result
                    .error
                    .unwrap_or_else(|| panic!("{context}: {number} was accepted"));
                assert_eq!(
                    (result.status, error.code),
                    (ResultStatus::Failed, code),
                    "{context}: {number}: {}",
                    error.message
                );
                for secret in &secret_values {
                    assert!(
                        !error.message.contains(secret),
                        "{context}: a secret in {error:?}"
                    );
                }
            }
        }
    }
}

fn expect_invalid(adapter: &dyn ProviderAdapter, fields: &Map<String, Value>) -> ValidationErrors {
    match adapter.validate_connection(fields) {
        Ok(_) => panic!("{}: {fields:?} was accepted", adapter.provider()),
        Err(errors) => errors,
    }
}

fn names(errors: &ValidationErrors, field: &str) -> bool {
    errors.0.iter().any(|e| e.field == field)
}

#[test]
fn connection_fields_are_named_when_wrong_and_secrets_never_shown() {
    for adapter in registry().all() {
        let provider = adapter.provider();
        let example = adapter.example_fields();
        let valid = adapter
            .validate_connection(&example)
            .unwrap_or_else(|e| panic!("{provider}: the example is invalid: {e}"));
        let secret_names: Vec<String> = valid.secrets.names().map(String::from).collect();
        assert!(
            !secret_names.is_empty(),
            "{provider}: a connection without a secret"
        );
        let mut secret_values: Vec<String> = secret_names
            .iter()
            .filter_map(|n| valid.secrets.expose(n).map(String::from))
            .collect();
        let mut shown = Vec::new();

        let numbers: Map<String, Value> =
            example.keys().map(|k| (k.clone(), json!(12345))).collect();
        let errors = expect_invalid(adapter, &numbers);
        for field in example.keys() {
            assert!(
                names(&errors, field),
                "{provider}: {field} as a number: {errors}"
            );
        }

        let mut required = 0;
        for field in example.keys() {
            let mut without = example.clone();
            without.remove(field);
            // An optional field may be left out; a required one must be named.
            if let Err(errors) = adapter.validate_connection(&without) {
                assert!(
                    names(&errors, field),
                    "{provider}: without {field}: {errors}"
                );
                required += 1;
                shown.push(errors);
            }
        }
        assert!(required > 0, "{provider}: every field is optional");

        let mut extra = example.clone();
        extra.insert("notAField".into(), json!("x"));
        let errors = expect_invalid(adapter, &extra);
        assert!(names(&errors, "notAField"), "{provider}: {errors}");
        shown.push(errors);

        // Secrets of a shape the rules may refuse, next to an unknown field that surely is.
        let mut distinctive = extra.clone();
        for name in &secret_names {
            let value = format!("Zq7-{name}-do-not-echo-Zq7");
            distinctive.insert(name.clone(), json!(value));
            secret_values.push(value);
        }
        shown.push(expect_invalid(adapter, &distinctive));

        for errors in &shown {
            let texts = [errors.to_string(), format!("{errors:?}")];
            for (text, secret) in texts
                .iter()
                .flat_map(|t| secret_values.iter().map(move |s| (t, s)))
            {
                assert!(
                    !text.contains(secret.as_str()),
                    "{provider}: a secret in {text}"
                );
            }
        }
    }
}

#[test]
fn every_setup_guide_names_both_webhook_urls() {
    let base = "https://sms.example.test".parse().unwrap();
    for adapter in registry().all() {
        let urls = admin::webhook_urls(&base, adapter.provider(), "ORG_1").unwrap();
        let guide = adapter.setup_guide(&urls.message, &urls.status);
        for url in [&urls.message, &urls.status] {
            assert!(
                guide.contains(url.as_str()),
                "{}: the guide does not name {url}: {guide}",
                adapter.provider()
            );
        }
    }
}
