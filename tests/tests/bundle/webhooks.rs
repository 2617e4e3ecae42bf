//! Twilio webhooks: a table of bad requests through the gateway (each answered with its status
//! and nothing stored), then what good requests record through the pipeline on both stores:
//! duplicates, unknown words, payloads of the other kind, monotonic statuses, opt-outs, and a
//! 5xx only when storage is down.

use crate::support::*;
use byosms::domain::{Event, Status};
use byosms::pipeline::receive::receive;
use byosms::pipeline::send::{SendItem, SendRequest, send};
use byosms::webhook::{Route, WebhookRequest};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

const PREFIX: &str = "/distribution-providers/v1/receive/distribution";
const SID: &str = "SM11111111111111111111111111111111";

fn inbound_params(body: &str) -> Vec<(&str, &str)> {
    vec![
        ("MessageSid", SID),
        ("SmsMessageSid", SID),
        ("AccountSid", ACCOUNT_SID),
        ("From", TO),
        ("To", FROM),
        ("Body", body),
        ("NumMedia", "0"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ]
}

enum Sig {
    None,
    Valid,
    ForUrl(String),
    Token(&'static str),
    Raw(&'static str),
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    /// The params the signature covers; `body` is what is sent (they differ when tampered).
    signed: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    sig: Sig,
    status: u16,
}

fn message_path(slug: &str, org: &str) -> String {
    format!("{PREFIX}/message/{slug}/{org}")
}

fn cases() -> Vec<Case> {
    let good = inbound_params("5");
    let good_body = form(&good).into_bytes();
    let ours = message_path("twilio-sms", ORG);
    let case = |name, sig, status| Case {
        name,
        method: "POST",
        path: ours.clone(),
        content_type: Some("application/x-www-form-urlencoded"),
        signed: good.clone(),
        body: good_body.clone(),
        sig,
        status,
    };
    let mut truncated = case("truncated form (cut in transit)", Sig::Valid, 403);
    truncated.body.truncate(truncated.body.len() / 2);
    let mut empty = case("empty body, signed", Sig::Valid, 400);
    empty.signed = vec![];
    empty.body = vec![];
    let mut no_sid = case("signed form without MessageSid", Sig::Valid, 400);
    no_sid.signed = vec![
        ("AccountSid", ACCOUNT_SID),
        ("From", TO),
        ("To", FROM),
        ("Body", "5"),
    ];
    no_sid.body = form(&no_sid.signed).into_bytes();
    let mut unrelated = case("signed form that is no Twilio payload", Sig::Valid, 400);
    unrelated.signed = vec![("hello", "world")];
    unrelated.body = form(&unrelated.signed).into_bytes();
    let mut wrong_type = case("wrong content type", Sig::Valid, 415);
    wrong_type.content_type = Some("text/plain");
    let mut no_type = case("no content type", Sig::Valid, 415);
    no_type.content_type = None;
    let mut json_unsigned_body = case("JSON body without bodySHA256", Sig::Valid, 403);
    json_unsigned_body.content_type = Some("application/json");
    json_unsigned_body.signed = vec![];
    json_unsigned_body.body = br#"{"MessageSid":"SM1"}"#.to_vec();
    let mut oversize = case("oversize body", Sig::Valid, 413);
    oversize.body = vec![b'a'; 1024 * 1024 + 1];
    let mut foreign_account = case(
        "valid signature, another account's AccountSid",
        Sig::Valid,
        403,
    );
    foreign_account.signed = good
        .iter()
        .map(|&(k, v)| {
            if k == "AccountSid" {
                (k, "ACffffffffffffffffffffffffffffffff")
            } else {
                (k, v)
            }
        })
        .collect();
    foreign_account.body = form(&foreign_account.signed).into_bytes();
    let mut bad_utf8 = case("form that is not UTF-8", Sig::Valid, 403);
    bad_utf8.body = b"MessageSid=SM1&Body=%FF%FE".to_vec();
    let mut unknown_org = case("unknown org", Sig::Valid, 404);
    unknown_org.path = message_path("twilio-sms", "ORG_NOBODY");
    let mut unknown_slug = case("unknown provider slug", Sig::Valid, 404);
    unknown_slug.path = message_path("twilio-mms", ORG);
    let mut no_connection = case("org without a connection of that provider", Sig::Valid, 404);
    no_connection.path = message_path("vonage-sms", ORG);
    let mut disabled = case("org whose connection is disabled", Sig::Valid, 404);
    disabled.path = message_path("twilio-sms", "ORG_DISABLED");
    let mut bad_kind = case("route kind that does not exist", Sig::Valid, 404);
    bad_kind.path = format!("{PREFIX}/receipt/twilio-sms/{ORG}");
    let mut put = case("PUT instead of POST", Sig::Valid, 405);
    put.method = "PUT";
    vec![
        case("no signature", Sig::None, 401),
        case(
            "wrong signature",
            Sig::Raw("RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            403,
        ),
        case("empty signature header", Sig::Raw(""), 403),
        case(
            "signature for another URL",
            Sig::ForUrl(format!(
                "http://HOST{}",
                message_path("twilio-sms", "ORG_2")
            )),
            403,
        ),
        case(
            "signature with another account's token",
            Sig::Token("00000000000000000000000000000000"),
            403,
        ),
        truncated,
        empty,
        no_sid,
        unrelated,
        wrong_type,
        no_type,
        json_unsigned_body,
        oversize,
        foreign_account,
        bad_utf8,
        unknown_org,
        unknown_slug,
        no_connection,
        disabled,
        bad_kind,
        put,
    ]
}

#[tokio::test]
async fn bad_twilio_webhooks_are_refused_and_nothing_is_stored() {
    let mut settings = settings(None);
    settings.public_base_url = None; // rebuilt from the request, as behind a plain proxy
    let deps = deps(Backend::Embedded, settings).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    add_twilio(&deps, "ORG_DISABLED", "conn_1", FROM).await;
    disable_connection(&deps, "ORG_DISABLED", "conn_1").await;
    let base = start_gateway(deps.deps.clone()).await;
    let host = base.trim_start_matches("http://").to_string();
    let http = reqwest::Client::new();

    let cases = cases();
    assert!(cases.len() >= 12);
    for case in cases {
        let url = format!("{base}{}", case.path);
        let signed: Vec<(String, String)> = case
            .signed
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let signature = match &case.sig {
            Sig::None => None,
            Sig::Valid => Some(byosms::providers::twilio::signature(
                AUTH_TOKEN, &url, &signed,
            )),
            Sig::ForUrl(other) => Some(byosms::providers::twilio::signature(
                AUTH_TOKEN,
                &other.replace("HOST", &host),
                &signed,
            )),
            Sig::Token(token) => Some(byosms::providers::twilio::signature(token, &url, &signed)),
            Sig::Raw(raw) => Some(raw.to_string()),
        };
        let mut request = http
            .request(case.method.parse().unwrap(), &url)
            .body(case.body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        if let Some(sig) = signature {
            request = request.header("x-twilio-signature", sig);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert!(
            body.contains("\"error\""),
            "{}: the answer names the problem: {body}",
            case.name
        );
        assert!(!body.contains(AUTH_TOKEN));
    }
    for org in [ORG, "ORG_DISABLED", "ORG_2", "ORG_NOBODY"] {
        assert!(
            deps.stores
                .messages
                .list_events(org, 100)
                .await
                .unwrap()
                .is_empty(),
            "nothing stored for {org}"
        );
    }
}

/// A signed Twilio form POST as the receive pipeline gets it.
pub fn twilio_request(route_path: &str, query: &str, params: &[(&str, &str)]) -> WebhookRequest {
    let url = format!(
        "https://sms.example.test{route_path}{}",
        if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        }
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(
        "x-twilio-signature",
        HeaderValue::from_str(&twilio_signature(AUTH_TOKEN, &url, params)).unwrap(),
    );
    WebhookRequest {
        method: Method::POST,
        raw_path: url::Url::parse(&url)
            .map(|u| u.path().to_string())
            .unwrap_or_default(),
        public_url: url,
        raw_query: query.to_string(),
        headers,
        body: Bytes::from(form(params)),
        received_at: chrono::Utc::now(),
    }
}

fn status_params<'a>(sid: &'a str, word: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("MessageStatus", word),
        ("SmsStatus", word),
        ("AccountSid", ACCOUNT_SID),
        ("From", FROM),
        ("To", TO),
        ("ApiVersion", "2010-04-01"),
    ]
}

async fn sent_message(deps: &TestDeps, twilio: &MockServer, message_id: &str, sid: &str) {
    Mock::given(method("POST"))
        .respond_with(twilio_created(sid, "queued"))
        .up_to_n_times(1)
        .mount(twilio)
        .await;
    let request = SendRequest {
        org_id: ORG.into(),
        connection_id: None,
        user_id: "UR_1".into(),
        messages: vec![SendItem {
            message_id: message_id.into(),
            to: TO.into(),
            body: "survey".into(),
        }],
    };
    let r = send(deps, &request).await.unwrap();
    assert!(r.results[0].error.is_none(), "{r:?}");
}

#[tokio::test]
async fn statuses_are_monotonic_deduplicated_and_unknown_words_kept() {
    for backend in BACKENDS {
        let twilio = MockServer::start().await;
        let deps = deps(backend, settings(Some(&twilio.uri()))).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        sent_message(&deps, &twilio, "m1", SID).await;
        let route = Route::from_path(&format!("{PREFIX}/status/twilio-sms/{ORG}")).unwrap();
        let path = format!("{PREFIX}/status/twilio-sms/{ORG}");
        for word in ["delivered", "sent", "delivered", "exploded"] {
            let reply = receive(
                &deps,
                &route,
                &twilio_request(&path, "messageId=m1", &status_params(SID, word)),
            )
            .await;
            assert_eq!(
                (reply.status, reply.content_type),
                (200, "text/xml"),
                "{backend:?} {word}: {}",
                reply.body
            );
            assert!(reply.body.contains("<Response/>"));
        }
        let record = deps
            .stores
            .messages
            .get_message(ORG, "m1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.status,
            Some(Status::Delivered),
            "{backend:?}: a late sent never overwrites delivered"
        );
        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        let words: Vec<_> = events
            .iter()
            .map(|e| match e {
                Event::Status(s) => (
                    s.provider_status.as_str(),
                    s.status,
                    s.message_id.as_deref(),
                ),
                Event::Inbound(_) => panic!("no inbound sent"),
            })
            .collect();
        assert_eq!(
            words,
            [
                ("delivered", Status::Delivered, Some("m1")),
                ("sent", Status::Sent, Some("m1")),
                ("exploded", Status::Unknown, Some("m1")),
            ],
            "{backend:?}: the duplicate delivered is recorded once"
        );
    }
}

#[tokio::test]
async fn a_report_without_our_id_is_found_by_the_sid_and_opt_outs_stick() {
    for backend in BACKENDS {
        let twilio = MockServer::start().await;
        let deps = deps(backend, settings(Some(&twilio.uri()))).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        sent_message(&deps, &twilio, "m2", SID).await;
        let path = format!("{PREFIX}/status/twilio-sms/{ORG}");
        let route = Route::from_path(&path).unwrap();
        let mut params = status_params(SID, "failed");
        params.push(("ErrorCode", "21610"));
        // A malformed messageId falls back to the SID.
        let reply = receive(&deps, &route, &twilio_request(&path, "messageId=", &params)).await;
        assert_eq!(reply.status, 200);
        let record = deps
            .stores
            .messages
            .get_message(ORG, "m2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, Some(Status::Failed));
        assert!(
            deps.stores.messages.is_opted_out(ORG, TO).await.unwrap(),
            "{backend:?}: 21610 opts the number out"
        );
        let Event::Status(e) = &deps.stores.messages.list_events(ORG, 10).await.unwrap()[0] else {
            panic!()
        };
        assert_eq!(
            (e.message_id.as_deref(), e.error_code.as_deref()),
            (Some("m2"), Some("21610"))
        );
    }
}

#[tokio::test]
async fn replies_link_to_the_last_message_and_stop_opts_out() {
    for backend in BACKENDS {
        let twilio = MockServer::start().await;
        let deps = deps(backend, settings(Some(&twilio.uri()))).await;
        add_twilio(&deps, ORG, "conn_1", FROM).await;
        sent_message(&deps, &twilio, "m3", SID).await;
        let path = format!("{PREFIX}/message/twilio-sms/{ORG}");
        let route = Route::from_path(&path).unwrap();
        for _ in 0..2 {
            let reply = receive(
                &deps,
                &route,
                &twilio_request(&path, "", &inbound_params("5")),
            )
            .await;
            assert_eq!(reply.status, 200);
        }
        let mut stop = inbound_params("STOP");
        stop[0] = ("MessageSid", "SM22222222222222222222222222222222");
        receive(&deps, &route, &twilio_request(&path, "", &stop)).await;
        // A status report on the message route is recorded as a status.
        let status_route = Route::from_path(&path).unwrap();
        let reply = receive(
            &deps,
            &status_route,
            &twilio_request(&path, "", &status_params(SID, "delivered")),
        )
        .await;
        assert_eq!(reply.status, 200);

        let events = deps.stores.messages.list_events(ORG, 100).await.unwrap();
        assert_eq!(
            events.len(),
            3,
            "{backend:?}: the duplicate reply is recorded once: {events:?}"
        );
        let Event::Inbound(first) = &events[0] else {
            panic!()
        };
        assert_eq!(
            (
                first.text.as_str(),
                first.in_reply_to.as_deref(),
                first.opt_out
            ),
            ("5", Some("m3"), false)
        );
        assert_eq!((first.from.as_str(), first.to.as_str()), (TO, FROM));
        let Event::Inbound(stop) = &events[1] else {
            panic!()
        };
        assert!(stop.opt_out);
        assert!(matches!(&events[2], Event::Status(s) if s.status == Status::Delivered));
        assert!(deps.stores.messages.is_opted_out(ORG, TO).await.unwrap());
    }
}

#[tokio::test]
async fn storage_down_is_a_503_so_the_provider_retries() {
    let deps = unreachable_aws_deps().await;
    let path = format!("{PREFIX}/message/twilio-sms/{ORG}");
    let reply = receive(
        &deps,
        &Route::from_path(&path).unwrap(),
        &twilio_request(&path, "", &inbound_params("5")),
    )
    .await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        !reply.body.contains("127.0.0.1"),
        "no internals in the body: {}",
        reply.body
    );
}

#[tokio::test]
async fn a_rotated_auth_token_is_picked_up_by_a_warm_function() {
    let deps = deps(Backend::Aws, settings(None)).await;
    add_twilio(&deps, ORG, "conn_1", FROM).await;
    let path = format!("{PREFIX}/message/twilio-sms/{ORG}");
    let route = Route::from_path(&path).unwrap();
    let params = inbound_params("1");
    assert_eq!(
        receive(&deps, &route, &twilio_request(&path, "", &params))
            .await
            .status,
        200
    );

    // The admin rotates the token in Secrets Manager; this function's cache still has the old one.
    let rotated = "abcdefabcdefabcdefabcdefabcdef12";
    let direct = byosms::stores::secrets_manager::SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk_config().await),
        &deps.settings.secret_prefix,
    );
    let mut secrets = byosms::domain::ConnectionSecrets::default();
    secrets.insert("authToken", rotated.into());
    use byosms::stores::SecretStore;
    direct.put_secrets(ORG, "conn_1", &secrets).await.unwrap();

    let mut signed_new = twilio_request(&path, "", &params);
    let url = signed_new.public_url.clone();
    let sig = twilio_signature(rotated, &url, &params);
    signed_new
        .headers
        .insert("x-twilio-signature", HeaderValue::from_str(&sig).unwrap());
    let reply = receive(&deps, &route, &signed_new).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // And the old token no longer verifies.
    let reply = receive(&deps, &route, &twilio_request(&path, "", &params)).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
}
