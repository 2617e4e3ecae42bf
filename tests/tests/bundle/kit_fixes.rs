//! The provider kit's defect fixes, each shown through the real pipelines: our own storage
//! failing half-way (a message store that refuses chosen writes), secrets that cannot be read or
//! were rotated, forged echoes of our ids, reports for other connections, and opt-outs that
//! arrive out of order.

use crate::support::*;
use crate::webhooks::twilio_request;
use byosms::domain::{
    Connection, ConnectionSecrets, Event, MessageRecord, SendCompletion, Status, StatusEvent,
};
use byosms::pipeline::receive::receive;
use byosms::pipeline::send::{ResultStatus, SendItem, SendRequest, send};
use byosms::stores::{
    Claim, HeldReport, InboundPart, JoinedReply, MessageStore, ReadMessage, SecretStore,
    StoreError, Stores, cached_secrets::CachedSecrets, sqlite::SqliteStore,
};
use byosms::webhook::Route;
use byosms::{Deps, pipeline::admin};
use chrono::{DateTime, Duration as Span, Utc};
use http::HeaderValue;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer};

const PREFIX: &str = "/distribution-providers/v1/receive/distribution";
const SID_A: &str = "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SID_B: &str = "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// The embedded message store, refusing `complete_send` while told to.
struct FlakyMessages {
    inner: SqliteStore,
    fail_completion: AtomicBool,
}

fn refused() -> StoreError {
    StoreError::Unavailable("injected failure".into())
}

#[async_trait::async_trait]
impl MessageStore for FlakyMessages {
    async fn claim_message(&self, r: &MessageRecord) -> Result<Claim, StoreError> {
        self.inner.claim_message(r).await
    }
    async fn complete_send(
        &self,
        c: &ReadMessage,
        d: &SendCompletion,
    ) -> Result<MessageRecord, StoreError> {
        if self.fail_completion.load(Ordering::SeqCst) {
            return Err(refused());
        }
        self.inner.complete_send(c, d).await
    }
    async fn release_claim(&self, o: &str, m: &str) -> Result<(), StoreError> {
        self.inner.release_claim(o, m).await
    }
    async fn read_message(&self, o: &str, m: &str) -> Result<Option<ReadMessage>, StoreError> {
        self.inner.read_message(o, m).await
    }
    async fn find_by_provider_message_id(
        &self,
        o: &str,
        c: &str,
        p: &str,
    ) -> Result<Option<ReadMessage>, StoreError> {
        self.inner.find_by_provider_message_id(o, c, p).await
    }
    async fn advance_status(
        &self,
        m: &mut ReadMessage,
        p: &str,
        s: Status,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.advance_status(m, p, s, at).await
    }
    async fn record_event(&self, e: &Event, k: &str) -> Result<bool, StoreError> {
        self.inner.record_event(e, k).await
    }
    async fn record_status_event(
        &self,
        m: &mut ReadMessage,
        e: &StatusEvent,
        k: &str,
    ) -> Result<bool, StoreError> {
        self.inner.record_status_event(m, e, k).await
    }
    async fn list_events(&self, o: &str, l: usize) -> Result<Vec<Event>, StoreError> {
        self.inner.list_events(o, l).await
    }
    async fn latest_message_to(
        &self,
        o: &str,
        c: &str,
        n: &str,
    ) -> Result<Option<String>, StoreError> {
        self.inner.latest_message_to(o, c, n).await
    }
    async fn set_opt_out(
        &self,
        o: &str,
        n: &str,
        v: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.set_opt_out(o, n, v, at).await
    }
    async fn is_opted_out(&self, o: &str, n: &str) -> Result<bool, StoreError> {
        self.inner.is_opted_out(o, n).await
    }
    async fn add_inbound_part(&self, p: &InboundPart) -> Result<Option<JoinedReply>, StoreError> {
        self.inner.add_inbound_part(p).await
    }
    async fn forget_inbound_parts(
        &self,
        p: &InboundPart,
        j: &JoinedReply,
    ) -> Result<(), StoreError> {
        self.inner.forget_inbound_parts(p, j).await
    }
    async fn hold_report(&self, h: &HeldReport) -> Result<bool, StoreError> {
        self.inner.hold_report(h).await
    }
    async fn held_reports(&self, o: &str, c: &str, p: &str) -> Result<Vec<HeldReport>, StoreError> {
        self.inner.held_reports(o, c, p).await
    }
    async fn forget_held_report(&self, h: &HeldReport) -> Result<(), StoreError> {
        self.inner.forget_held_report(h).await
    }
}

/// The embedded store's secrets, counting reads (what Secrets Manager would bill and throttle).
struct CountingSecrets {
    inner: SqliteStore,
    reads: AtomicUsize,
}

#[async_trait::async_trait]
impl SecretStore for CountingSecrets {
    async fn put_secrets(&self, o: &str, c: &str, s: &ConnectionSecrets) -> Result<(), StoreError> {
        self.inner.put_secrets(o, c, s).await
    }
    async fn get_secrets(&self, o: &str, c: &str) -> Result<Option<ConnectionSecrets>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_secrets(o, c).await
    }
    async fn delete_secrets(&self, o: &str, c: &str) -> Result<(), StoreError> {
        self.inner.delete_secrets(o, c).await
    }
}

struct Rig {
    deps: Deps,
    messages: Arc<FlakyMessages>,
    secrets: Arc<CountingSecrets>,
    _dir: tempfile::TempDir,
}

/// Deps on the embedded store whose message writes can be made to fail and whose secrets are
/// read through the warm-function cache, counted.
fn rig(twilio_api: Option<&str>) -> Rig {
    captured_logs();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let messages = Arc::new(FlakyMessages {
        inner: store.clone(),
        fail_completion: AtomicBool::new(false),
    });
    let secrets = Arc::new(CountingSecrets {
        inner: store.clone(),
        reads: AtomicUsize::new(0),
    });
    let stores = Stores {
        connections: Arc::new(store),
        secrets: Arc::new(CachedSecrets::new(
            secrets.clone(),
            Duration::from_secs(300),
        )),
        messages: messages.clone(),
    };
    Rig {
        deps: Deps::new(stores, settings(twilio_api)),
        messages,
        secrets,
        _dir: dir,
    }
}

fn send_request(ids: &[&str]) -> SendRequest {
    SendRequest {
        org_id: ORG.into(),
        connection_id: Some("conn_1".into()),
        user_id: "UR_1".into(),
        messages: ids
            .iter()
            .map(|id| SendItem {
                message_id: id.to_string(),
                to: TO.into(),
                body: "survey".into(),
            })
            .collect(),
    }
}

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

#[tokio::test]
async fn a_store_failure_after_the_provider_accepted_answers_each_message() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_created(SID_A, "queued"))
        .expect(2)
        .mount(&twilio)
        .await;
    let rig = rig(Some(&twilio.uri()));
    add_twilio(&rig.deps, ORG, "conn_1", FROM).await;
    rig.messages.fail_completion.store(true, Ordering::SeqCst);
    let answer = send(&rig.deps, &send_request(&["m1", "m2", "bad id"]))
        .await
        .expect("a store failure spoils no batch");
    let r = &answer.results;
    assert_eq!(r.len(), 3);
    for accepted in &r[..2] {
        assert_eq!(accepted.status, ResultStatus::Accepted, "{accepted:?}");
        assert_eq!(accepted.provider_message_id.as_deref(), Some(SID_A));
    }
    assert_eq!(
        r[2].error.as_ref().unwrap().code.as_str(),
        "invalid_message_id"
    );
    // The unrecorded send is never sent again: a repeat is in progress, not a new send.
    rig.messages.fail_completion.store(false, Ordering::SeqCst);
    let again = send(&rig.deps, &send_request(&["m1"])).await.unwrap();
    assert_eq!(
        again.results[0].error.as_ref().map(|e| e.code.as_str()),
        Some("in_progress")
    );
}

#[tokio::test]
async fn junk_webhooks_do_not_bypass_the_secret_cache() {
    let rig = rig(None);
    add_twilio(&rig.deps, ORG, "conn_1", FROM).await;
    let other = json!({
        "provider": "twilio", "name": "second", "from": "+14155550198",
        "accountSid": "AC99999999999999999999999999999999",
        "authToken": "99999999999999999999999999999999",
    });
    admin::add_connection(&rig.deps, ORG, Some("conn_2"), &other, None)
        .await
        .unwrap();
    let (path, route) = status_route();
    let before = rig.secrets.reads.load(Ordering::SeqCst);
    for _ in 0..50 {
        let mut forged = twilio_request(&path, "", &status_params(SID_A, "delivered"));
        forged
            .headers
            .insert("x-twilio-signature", HeaderValue::from_static("Zm9yZ2Vk"));
        assert_eq!(receive(&rig.deps, &route, &forged).await.status, 403);
    }
    let reads = rig.secrets.reads.load(Ordering::SeqCst) - before;
    // Two candidates: at most one read each to fill the cache and one forced refresh each.
    assert!(reads <= 4, "50 forged webhooks made {reads} secret reads");
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_is_a_503_and_an_error() {
    let rig = rig(None);
    add_twilio(&rig.deps, ORG, "conn_1", FROM).await;
    rig.deps
        .stores
        .secrets
        .delete_secrets(ORG, "conn_1")
        .await
        .unwrap();
    let (path, route) = status_route();
    let reply = receive(
        &rig.deps,
        &route,
        &twilio_request(&path, "", &status_params(SID_A, "delivered")),
    )
    .await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines()
            .any(|l| l.contains("\"ERROR\"") && l.contains("connection secret could not be read")),
        "an error is logged"
    );
}

/// Two messages sent through the rig's connection: m1 → SID_A, m2 → SID_B.
async fn two_sent_messages(twilio: &MockServer, deps: &Deps) {
    for sid in [SID_A, SID_B] {
        Mock::given(method("POST"))
            .respond_with(twilio_created(sid, "queued"))
            .up_to_n_times(1)
            .mount(twilio)
            .await;
        let id = if sid == SID_A { "m1" } else { "m2" };
        let r = send(deps, &send_request(&[id])).await.unwrap();
        assert_eq!(r.results[0].provider_message_id.as_deref(), Some(sid));
    }
}

async fn status_of(deps: &Deps, id: &str) -> Option<Status> {
    deps.stores
        .messages
        .get_message(ORG, id)
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test]
async fn an_echoed_message_id_is_trusted_only_with_its_provider_id() {
    for backend in BACKENDS {
        let twilio = MockServer::start().await;
        let deps = deps(backend, settings(Some(&twilio.uri()))).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        two_sent_messages(&twilio, &deps).await;
        // Our id says m1, the provider's id is m2's: the provider's id wins.
        let (path, route) = status_route();
        let reply = receive(
            &deps,
            &route,
            &twilio_request(&path, "messageId=m1", &status_params(SID_B, "delivered")),
        )
        .await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            status_of(&deps, "m1").await,
            Some(Status::Queued),
            "{backend:?}"
        );
        assert_eq!(status_of(&deps, "m2").await, Some(Status::Delivered));
    }
}

#[tokio::test]
async fn a_provider_id_is_looked_up_on_the_reporting_connection_only() {
    for backend in BACKENDS {
        let twilio = MockServer::start().await;
        let deps = deps(backend, settings(Some(&twilio.uri()))).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        two_sent_messages(&twilio, &deps).await;
        let (other_sid, other_token) = (
            "AC99999999999999999999999999999999",
            "99999999999999999999999999999999",
        );
        let other = json!({
            "provider": "twilio", "name": "second", "from": "+14155550198",
            "accountSid": other_sid, "authToken": other_token,
        });
        admin::add_connection(&deps, ORG, Some("conn_2"), &other, None)
            .await
            .unwrap();
        // conn_2's account reports on an id that is conn_1's message.
        let (path, route) = status_route();
        let mut params = status_params(SID_A, "failed");
        params[2] = ("AccountSid", other_sid);
        let mut request = twilio_request(&path, "", &params);
        let sig = twilio_signature(other_token, &request.public_url, &params);
        request
            .headers
            .insert("x-twilio-signature", HeaderValue::from_str(&sig).unwrap());
        assert_eq!(receive(&deps, &route, &request).await.status, 200);
        assert_eq!(
            status_of(&deps, "m1").await,
            Some(Status::Queued),
            "{backend:?}"
        );
        // No message of conn_2 has that id: the report is held for conn_2, never an event.
        let events = deps.stores.messages.list_events(ORG, 10).await.unwrap();
        assert!(events.is_empty(), "{backend:?}: {events:?}");
        let held = deps
            .stores
            .messages
            .held_reports(ORG, "conn_2", SID_A)
            .await
            .unwrap();
        assert_eq!(held.len(), 1, "{backend:?}");
    }
}

#[tokio::test]
async fn an_opt_out_report_for_an_unknown_message_opts_the_recipient_out() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        let (path, route) = status_route();
        let mut params = status_params(SID_A, "failed");
        params.push(("ErrorCode", "21610"));
        let reply = receive(&deps, &route, &twilio_request(&path, "", &params)).await;
        assert_eq!(reply.status, 200);
        assert!(
            deps.stores.messages.is_opted_out(ORG, TO).await.unwrap(),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn a_retried_old_start_does_not_reopen_a_number_a_newer_stop_closed() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        let path = format!("{PREFIX}/message/twilio-sms/{ORG}");
        let route = Route::from_path(&path).unwrap();
        let inbound = |sid: &'static str, text: &'static str| {
            vec![
                ("MessageSid", sid),
                ("AccountSid", ACCOUNT_SID),
                ("From", TO),
                ("To", FROM),
                ("Body", text),
            ]
        };
        let now = Utc::now();
        let mut start = twilio_request(&path, "", &inbound(SID_A, "START"));
        start.received_at = now - Span::minutes(10);
        let mut stop = twilio_request(&path, "", &inbound(SID_B, "STOP"));
        stop.received_at = now - Span::minutes(5);
        assert_eq!(receive(&deps, &route, &start).await.status, 200);
        assert_eq!(receive(&deps, &route, &stop).await.status, 200);
        // Twilio retries the old START (its first delivery timed out at Twilio's end).
        assert_eq!(receive(&deps, &route, &start).await.status, 200);
        assert!(
            deps.stores.messages.is_opted_out(ORG, TO).await.unwrap(),
            "{backend:?}: the newer STOP stands"
        );
    }
}

#[tokio::test]
async fn a_rotated_token_is_used_at_once_after_the_provider_refuses_the_old_one() {
    let twilio = MockServer::start().await;
    let deps = deps(Backend::Aws, settings(Some(&twilio.uri()))).await;
    let connection: Connection = add_twilio(&deps, ORG, "conn_1", FROM).await;
    Mock::given(method("POST"))
        .and(header("authorization", basic_auth_header().as_str()))
        .respond_with(twilio_created(SID_A, "queued"))
        .up_to_n_times(1)
        .mount(&twilio)
        .await;
    let first = send(&deps, &send_request(&["m1"])).await.unwrap();
    assert_eq!(first.results[0].status, ResultStatus::Accepted);

    // The admin rotates the token behind the warm function's cache; Twilio refuses the old one.
    let rotated = "abcdefabcdefabcdefabcdefabcdef12";
    let direct = byosms::stores::secrets_manager::SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk_config().await),
        &deps.settings.secret_prefix,
    );
    let mut secrets = ConnectionSecrets::default();
    secrets.insert("authToken", rotated.into());
    direct
        .put_secrets(ORG, &connection.connection_id, &secrets)
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(header("authorization", basic_auth_header().as_str()))
        .respond_with(twilio_error(401, 20003, "Authenticate"))
        .mount(&twilio)
        .await;
    use base64::Engine;
    let new_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{rotated}"))
    );
    Mock::given(method("POST"))
        .and(header("authorization", new_auth.as_str()))
        .respond_with(twilio_created(SID_B, "queued"))
        .expect(1)
        .mount(&twilio)
        .await;
    let second = send(&deps, &send_request(&["m2"])).await.unwrap();
    let r = &second.results[0];
    assert_eq!(
        (r.status, r.provider_message_id.as_deref(), r.attempts),
        (ResultStatus::Accepted, Some(SID_B), Some(2)),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_provider_asking_for_a_long_wait_is_not_hammered() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "60"),
        )
        .expect(1)
        .mount(&twilio)
        .await;
    let deps = deps(Backend::Embedded, settings(Some(&twilio.uri()))).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let answer = send(&deps, &send_request(&["m1"])).await.unwrap();
    let r = &answer.results[0];
    let e = r.error.as_ref().unwrap();
    // One attempt, not three within the minute Twilio asked for; the caller may try later.
    assert_eq!(
        (e.code.as_str(), e.retryable, r.attempts),
        ("throttled", true, Some(1)),
        "{r:?}"
    );
}
