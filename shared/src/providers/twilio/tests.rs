//! Twilio's own signature vectors (twilio-python and twilio-node test suites), the adapter's
//! validation rules, status words and payload shapes.

use super::*;
use crate::domain::Access;
use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::json;

const VECTOR_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

fn vector_params() -> Vec<(String, String)> {
    [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn signature_vectors() {
    let p = vector_params();
    assert_eq!(
        signature("12345", VECTOR_URL, &p),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
    assert_eq!(
        signature(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &p
        ),
        "kvajT1Ptam85bY51eRf/AJRuM3w="
    );
    assert_eq!(
        signature("12345", "http://mycompany.com:80/myapp.php?foo=1&bar=2", &p),
        "0ZXoZLH/DfblKGATFgpif+LLRf4="
    );
    assert_eq!(
        signature(
            "12345",
            "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
            &p
        ),
        "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
    );
}

#[test]
fn repeated_values_are_sorted_and_deduplicated() {
    let p: Vec<(String, String)> = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        signature("12345", VECTOR_URL, &p),
        "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    );
}

fn connection() -> (Connection, ConnectionSecrets) {
    let mut settings = Map::new();
    settings.insert("accountSid".into(), json!(format!("AC{}", "a".repeat(32))));
    settings.insert("from".into(), json!("+14155550199"));
    let mut secrets = ConnectionSecrets::default();
    secrets.insert("authToken", "12345".into());
    (
        Connection {
            org_id: "ORG_1".into(),
            connection_id: "conn_1".into(),
            provider: Provider::Twilio,
            name: "t".into(),
            access: Access::All,
            enabled: true,
            settings,
            created_at: Utc::now(),
        },
        secrets,
    )
}

fn request(
    method: Method,
    url: &str,
    content_type: Option<&str>,
    body: &[u8],
    signature: Option<&str>,
) -> WebhookRequest {
    let mut headers = HeaderMap::new();
    if let Some(ct) = content_type {
        headers.insert("content-type", HeaderValue::from_str(ct).unwrap());
    }
    if let Some(sig) = signature {
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(sig).unwrap());
    }
    let raw_query = url
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .to_string();
    let raw_path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .map(|p| p.split('?').next().unwrap_or(p))
        .unwrap_or("/")
        .to_string();
    WebhookRequest {
        method,
        public_url: url.to_string(),
        raw_path,
        raw_query,
        headers,
        body: Bytes::copy_from_slice(body),
        received_at: Utc::now(),
    }
}

fn form(params: &[(String, String)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
        .into_bytes()
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

#[test]
fn authenticates_the_vector_request_in_every_port_form() {
    let (conn, secrets) = connection();
    let body = form(&vector_params());
    let ok = |url: &str, sig: &str| {
        Twilio::default().authenticate(
            &request(Method::POST, url, FORM, &body, Some(sig)),
            &conn,
            &secrets,
        )
    };
    assert_eq!(ok(VECTOR_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="), Ok(()));
    // Signed without the port, received with one: the port is stripped.
    assert_eq!(
        ok(
            "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ),
        Ok(())
    );
    // Signed with the default port, received without: the port is added.
    assert_eq!(ok(VECTOR_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="), Ok(()));
    assert_eq!(
        ok(
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ),
        Ok(())
    );
    assert_eq!(
        ok(
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ),
        Err(AuthError::Invalid("X-Twilio-Signature"))
    );
}

#[test]
fn json_bodies_are_checked_by_their_sha256() {
    let (conn, secrets) = connection();
    let body = br#"{"property": "value", "boolean": true}"#;
    let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    assert_eq!(sha256_hex(body), hash);
    let url = format!("{VECTOR_URL}&bodySHA256={hash}");
    let json = Some("application/json");
    let req = request(
        Method::POST,
        &url,
        json,
        body,
        Some("a9nBmqA0ju/hNViExpshrM61xv4="),
    );
    assert_eq!(
        Twilio::default().authenticate(&req, &conn, &secrets),
        Ok(())
    );
    let url2 = format!("https://mycompany.com/myapp.php?bodySHA256={hash}");
    let req = request(
        Method::POST,
        &url2,
        json,
        body,
        Some("y77kIzt2vzLz71DgmJGsen2scGs="),
    );
    assert_eq!(
        Twilio::default().authenticate(&req, &conn, &secrets),
        Ok(())
    );
    // The body must hash to what the signed URL claims.
    let req = request(
        Method::POST,
        &url,
        json,
        br#"{"property": "other"}"#,
        Some("a9nBmqA0ju/hNViExpshrM61xv4="),
    );
    assert_eq!(
        Twilio::default().authenticate(&req, &conn, &secrets),
        Err(AuthError::Invalid("bodySHA256"))
    );
}

#[test]
fn empty_json_vector_matches_only_with_the_default_port() {
    let (conn, secrets) = connection();
    let hash = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    assert_eq!(sha256_hex(b"{}"), hash);
    let url = format!("{VECTOR_URL}&bodySHA256={hash}");
    let req = request(
        Method::POST,
        &url,
        Some("application/json"),
        b"{}",
        Some("Ldidvp12m26NI7eqEvxnEpkd9Hc="),
    );
    assert_eq!(
        Twilio::default().authenticate(&req, &conn, &secrets),
        Ok(())
    );
}

#[test]
fn missing_signature_and_foreign_account() {
    let (conn, secrets) = connection();
    let body = form(&vector_params());
    let req = request(Method::POST, VECTOR_URL, FORM, &body, None);
    assert_eq!(
        Twilio::default().authenticate(&req, &conn, &secrets),
        Err(AuthError::Missing("X-Twilio-Signature header"))
    );

    let mut params = vector_params();
    params.push(("AccountSid".into(), format!("AC{}", "b".repeat(32))));
    let sig = signature("12345", VECTOR_URL, &params);
    let req = request(Method::POST, VECTOR_URL, FORM, &form(&params), Some(&sig));
    assert_eq!(
        Twilio::default().authenticate(&req, &conn, &secrets),
        Err(AuthError::Invalid("AccountSid"))
    );
}

#[test]
fn validation_rules() {
    let ok = |from: &str| {
        let fields = json!({"accountSid": format!("AC{}", "0".repeat(32)), "authToken": "f".repeat(32), "from": from});
        Twilio::default().validate_connection(fields.as_object().unwrap())
    };
    assert_eq!(ok("+14155550100").unwrap().settings["from"], "+14155550100");
    assert_eq!(ok("13531234567").unwrap().settings["from"], "+13531234567");
    assert_eq!(ok("Qualtrics").unwrap().settings["from"], "Qualtrics");
    assert_eq!(ok("12345").unwrap().settings["from"], "12345");
    let mg = format!("MG{}", "ab".repeat(16));
    assert_eq!(ok(&mg).unwrap().settings["from"], mg.as_str());
    assert!(ok("TwelveChars1").is_err());
    assert!(
        ok("MG1234567890abcdef")
            .unwrap_err()
            .to_string()
            .contains("Messaging Service")
    );
    assert!(ok("+0123").is_err());
    assert!(ok("Qual_trics").is_err());

    let fields = json!({"accountSid": "AC123", "authToken": "secret-token-value", "from": "+14155550100", "extra": 1});
    let err = Twilio::default()
        .validate_connection(fields.as_object().unwrap())
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("accountSid: must be AC followed by 32 hex digits"),
        "{text}"
    );
    assert!(text.contains("authToken: must be 32 hex digits"), "{text}");
    assert!(
        text.contains("extra: is not a field of this provider"),
        "{text}"
    );
    assert!(
        !text.contains("secret-token-value"),
        "a secret leaked into {text}"
    );
}

#[test]
fn status_words() {
    for (word, status) in [
        ("accepted", Status::Accepted),
        ("scheduled", Status::Accepted),
        ("queued", Status::Queued),
        ("sending", Status::Queued),
        ("sent", Status::Sent),
        ("delivered", Status::Delivered),
        ("read", Status::Read),
        ("undelivered", Status::Undelivered),
        ("partially_delivered", Status::Undelivered),
        ("failed", Status::Failed),
        ("canceled", Status::Failed),
        ("exploded", Status::Unknown),
    ] {
        assert_eq!(normalize_status(word), status, "{word}");
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn parses_a_status_callback_with_our_message_id() {
    let params = pairs(&[
        ("MessageSid", "SM0123"),
        ("MessageStatus", "failed"),
        ("SmsStatus", "failed"),
        ("ErrorCode", "21610"),
    ]);
    let url = "https://h/distribution-providers/v1/receive/distribution/status/twilio-sms/ORG_1?messageId=dist42-r1";
    let req = request(Method::POST, url, FORM, &form(&params), None);
    let items = Twilio::default()
        .parse(&req, RouteKind::Status, &connection().0)
        .unwrap();
    let Ok(WebhookItem::Status(report)) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(report.message_id.as_deref(), Some("dist42-r1"));
    assert_eq!(report.status, Status::Failed);
    assert!(report.opt_out);
    assert_eq!(report.dedupe_key, "status:SM0123:failed");

    // A malformed id in the query falls back to the SID.
    let req = request(
        Method::POST,
        "https://h/x?messageId=",
        FORM,
        &form(&params),
        None,
    );
    let Ok(WebhookItem::Status(report)) = &Twilio::default()
        .parse(&req, RouteKind::Status, &connection().0)
        .unwrap()[0]
    else {
        panic!()
    };
    assert_eq!(report.message_id, None);
}

#[test]
fn parses_inbound_with_media_and_on_the_other_route() {
    let params = pairs(&[
        ("MessageSid", "SM9"),
        ("From", "+14155550100"),
        ("To", "+14155550199"),
        ("Body", "5"),
        ("NumMedia", "1"),
        ("MediaUrl0", "https://api.twilio.com/m/1"),
        ("SmsStatus", "received"),
    ]);
    let req = request(Method::POST, "https://h/x", FORM, &form(&params), None);
    // An inbound payload on the status route is recorded for what it is.
    let Ok(WebhookItem::Inbound(report)) = &Twilio::default()
        .parse(&req, RouteKind::Status, &connection().0)
        .unwrap()[0]
    else {
        panic!()
    };
    assert_eq!(report.text, "5\nhttps://api.twilio.com/m/1");
    assert_eq!(report.from, "+14155550100");
    assert_eq!(report.dedupe_key, "inbound:SM9");
}

#[test]
fn refuses_what_it_cannot_read() {
    let req = request(Method::POST, "https://h/x", FORM, b"", None);
    assert!(
        Twilio::default()
            .parse(&req, RouteKind::Message, &connection().0)
            .is_err()
    );
    let req = request(Method::POST, "https://h/x", FORM, b"Foo=bar", None);
    assert!(
        Twilio::default()
            .parse(&req, RouteKind::Message, &connection().0)
            .is_err()
    );
    let req = request(
        Method::POST,
        "https://h/x",
        FORM,
        b"Body=hi&From=%2B1",
        None,
    );
    assert!(
        Twilio::default()
            .parse(&req, RouteKind::Message, &connection().0)
            .is_err(),
        "no MessageSid"
    );
    let req = request(Method::POST, "https://h/x", Some("text/plain"), b"x", None);
    assert!(Twilio::default().check_media_type(&req).is_err());
    let req = request(
        Method::POST,
        "https://h/x",
        FORM,
        &[0x42, 0x6f, 0x64, 0x79, 0x3d, 0xff],
        None,
    );
    assert!(
        Twilio::default()
            .parse(&req, RouteKind::Message, &connection().0)
            .is_err(),
        "invalid UTF-8"
    );
}

#[test]
fn send_errors_are_classified() {
    let c = |status, body: &str| {
        let e = classify(status, body);
        (e.code.as_str(), e.retry)
    };
    assert_eq!(
        c(
            400,
            r#"{"code":21610,"message":"unsubscribed","status":400}"#
        ),
        ("opted_out", Retry::Never)
    );
    assert_eq!(
        c(400, r#"{"code":21211,"message":"invalid To","status":400}"#),
        ("invalid_number", Retry::Never)
    );
    assert_eq!(
        c(
            401,
            r#"{"code":20003,"message":"Authenticate","status":401}"#
        ),
        ("auth_failed", Retry::Never)
    );
    assert_eq!(
        c(
            429,
            r#"{"code":20429,"message":"Too Many Requests","status":429}"#
        ),
        ("throttled", Retry::NotAccepted)
    );
    assert_eq!(c(503, ""), ("provider_unavailable", Retry::NotAccepted));
    assert_eq!(c(500, "oops"), ("outcome_unknown", Retry::OutcomeUnknown));
    assert_eq!(
        c(
            400,
            r#"{"type":"x","title":"Bad","status":400,"code":21614,"detail":"not mobile"}"#
        ),
        ("invalid_number", Retry::Never)
    );
    let e = classify(
        400,
        r#"{"code":21211,"message":"The 'To' number is not valid","status":400}"#,
    );
    assert_eq!(e.provider_code.as_deref(), Some("21211"));
    assert_eq!(e.message, "The 'To' number is not valid");
}

#[test]
fn sample_webhooks_authenticate() {
    let (conn, secrets) = connection();
    let url = Url::parse("http://127.0.0.1:8787/distribution-providers/v1/receive/distribution/message/twilio-sms/ORG_1").unwrap();
    let sample = SampleEvent::Inbound {
        from: "+14155550100".into(),
        to: "+14155550199".into(),
        text: "5".into(),
    };
    let signed = Twilio::default()
        .sample_webhook(&sample, &url, &conn, &secrets)
        .unwrap();
    let sig = signed
        .headers
        .iter()
        .find(|(k, _)| k == "X-Twilio-Signature")
        .unwrap()
        .1
        .clone();
    let req = request(Method::POST, url.as_str(), FORM, &signed.body, Some(&sig));
    assert_eq!(
        Twilio::default().authenticate(&req, &conn, &secrets),
        Ok(())
    );
    assert!(matches!(
        Twilio::default()
            .parse(&req, RouteKind::Message, &connection().0)
            .unwrap()[0],
        Ok(WebhookItem::Inbound(_))
    ));
}

#[test]
fn get_webhooks_sign_the_url_alone_and_carry_the_payload_in_the_query() {
    let (conn, secrets) = connection();
    let url = "https://h/distribution-providers/v1/receive/distribution/message/twilio-sms/ORG_1?MessageSid=SM5&From=%2B14155550100&To=%2B14155550199&Body=yes+please&SmsStatus=received";
    let sig = signature("12345", url, &[]);
    let req = request(Method::GET, url, None, b"", Some(&sig));
    assert_eq!(Twilio::default().check_media_type(&req), Ok(()));
    assert_eq!(
        Twilio::default().authenticate(&req, &conn, &secrets),
        Ok(())
    );
    let Ok(WebhookItem::Inbound(report)) = &Twilio::default()
        .parse(&req, RouteKind::Message, &connection().0)
        .unwrap()[0]
    else {
        panic!()
    };
    assert_eq!(
        (report.text.as_str(), report.from.as_str()),
        ("yes please", "+14155550100")
    );
    // Re-encoding the query (a proxy writing %20 for +) breaks the signature, as it must.
    let reencoded = url.replace("yes+please", "yes%20please");
    let req = request(Method::GET, &reencoded, None, b"", Some(&sig));
    assert_eq!(
        Twilio::default().authenticate(&req, &conn, &secrets),
        Err(AuthError::Invalid("X-Twilio-Signature"))
    );
}

#[test]
fn a_provider_error_is_answered_as_an_excerpt() {
    let long = format!("Bad\nrequest: {}", "x".repeat(5000));
    let e = classify(400, &json!({"code": 21408, "message": long}).to_string());
    assert!(e.message.chars().count() <= crate::providers::http::ERROR_EXCERPT_CHARS);
    assert!(e.message.starts_with("Bad request: xxx"), "{}", e.message);
    // Without words of Twilio's own, the status says what happened.
    assert_eq!(classify(502, "<html>").message, "Twilio answered HTTP 502");
}

/// The example connection, validated, as the connection store would hold it.
fn example_connection() -> (Connection, ConnectionSecrets) {
    let fields = Twilio::default()
        .validate_connection(&Twilio::default().example_fields())
        .unwrap();
    let (mut connection, _) = connection();
    connection.settings = fields.settings;
    (connection, fields.secrets)
}

async fn send_to(
    twilio: &Twilio,
    connection: &Connection,
    secrets: &ConnectionSecrets,
    to: &str,
    body: &str,
) -> Result<Accepted, SendError> {
    let http = crate::providers::http::ProviderHttp::new();
    let ctx = SendContext {
        http: &http,
        connection,
        secrets,
        status_callback: None,
        inbound_callback: None,
    };
    let message = OutboundMessage {
        message_id: "m1".into(),
        to: to.into(),
        body: body.into(),
    };
    twilio.send(&ctx, &message).await
}

#[tokio::test]
async fn sends_under_the_api_bases_path_and_keeps_the_wait_twilio_asks_for() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let (connection, secrets) = example_connection();
    let account = connection.setting("accountSid").unwrap();
    Mock::given(method("POST"))
        .and(path(format!(
            "/twilio/2010-04-01/Accounts/{account}/Messages.json"
        )))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_json(json!({"code": 20429, "message": "Too Many Requests"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let base = Url::parse(&format!("{}/twilio/", server.uri())).unwrap();
    let err = send_to(
        &Twilio::new(Some(base)),
        &connection,
        &secrets,
        "+14155550100",
        "hi",
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.code, err.retry, err.retry_after),
        (
            SendErrorCode::Throttled,
            Retry::NotAccepted,
            Some(std::time::Duration::from_secs(7))
        )
    );
}

/// The stand-in checks what Twilio checks, seen through the adapter that talks to it.
#[cfg(feature = "stand-in")]
#[tokio::test]
async fn the_stand_in_refuses_what_twilio_refuses() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().nest("/twilio", stand_in::stand_in().router);
    tokio::spawn(async move { axum::serve(listener, router).await });
    let twilio = Twilio::new(Some(Url::parse(&format!("http://{addr}/twilio")).unwrap()));
    let (mut connection, secrets) = example_connection();
    let send = |connection: Connection, secrets: ConnectionSecrets, to: &str, body: &str| {
        let (twilio, to, body) = (&twilio, to.to_string(), body.to_string());
        async move { send_to(twilio, &connection, &secrets, &to, &body).await }
    };

    let accepted = send(connection.clone(), secrets.clone(), "+14155550100", "hi")
        .await
        .unwrap();
    assert!(is_sid(&accepted.provider_message_id, "SM"), "{accepted:?}");
    assert_eq!(accepted.status, Status::Queued);

    let too_long = send(
        connection.clone(),
        secrets.clone(),
        "+14155550100",
        &"a".repeat(1601),
    )
    .await
    .unwrap_err();
    assert_eq!(too_long.provider_code.as_deref(), Some("21617"));

    let not_e164 = send(connection.clone(), secrets.clone(), "4155550100", "hi")
        .await
        .unwrap_err();
    assert_eq!(not_e164.code, SendErrorCode::InvalidNumber);

    let mut wrong_token = ConnectionSecrets::default();
    wrong_token.insert("authToken", "not-hex".into());
    let refused = send(connection.clone(), wrong_token, "+14155550100", "hi")
        .await
        .unwrap_err();
    assert_eq!(refused.code, SendErrorCode::AuthFailed);

    connection
        .settings
        .insert("from".into(), json!(format!("MG{}", "b".repeat(32))));
    let through_service = send(connection, secrets, "+14155550100", "hi")
        .await
        .unwrap();
    assert_eq!(through_service.status, Status::Accepted);
}

#[test]
fn a_signature_over_the_url_with_or_without_our_retry_fragment_verifies() {
    let (conn, secrets) = connection();
    let url = "https://sms.example.com/distribution-providers/v1/receive/distribution/status/twilio-sms/ORG_1?messageId=m1";
    let params = pairs(&[("MessageSid", "SM1"), ("MessageStatus", "delivered")]);
    let body = form(&params);
    let verify = |signed_url: &str| {
        let sig = signature("12345", signed_url, &params);
        // The request Twilio makes never carries the fragment.
        Twilio::default().authenticate(
            &request(Method::POST, url, FORM, &body, Some(&sig)),
            &conn,
            &secrets,
        )
    };
    assert_eq!(verify(url), Ok(()));
    assert_eq!(verify(&format!("{url}#{RETRY_OVERRIDES}")), Ok(()));
    // Only our own fragment: any other is not a URL we handed out.
    assert_eq!(
        verify(&format!("{url}#rc=1")),
        Err(AuthError::Invalid("X-Twilio-Signature"))
    );
}

#[test]
fn every_url_we_hand_out_asks_twilio_to_retry() {
    let base: Url = "https://sms.example.com".parse().unwrap();
    let urls = crate::pipeline::admin::webhook_urls(&base, Provider::Twilio, "ORG_1").unwrap();
    for url in [&urls.message, &urls.status] {
        assert_eq!(url.fragment(), Some("rc=5&rp=ct,rt,5xx"), "{url}");
    }
    let guide = Twilio::default().setup_guide(&urls.message, &urls.status);
    assert!(guide.contains(urls.message.as_str()), "{guide}");
    // Other providers' URLs carry no fragment: none of them reads one.
    let sinch = crate::pipeline::admin::webhook_urls(&base, Provider::Sinch, "ORG_1").unwrap();
    assert_eq!(sinch.status.fragment(), None);
}

#[tokio::test]
async fn the_status_callback_of_every_send_asks_twilio_to_retry() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let (connection, secrets) = example_connection();
    let account = connection.setting("accountSid").unwrap();
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{account}/Messages.json"
        )))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": format!("SM{}", "b".repeat(32)), "status": "queued"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let http = crate::providers::http::ProviderHttp::new();
    let status: Url =
        "https://sms.example.com/distribution-providers/v1/receive/distribution/status/twilio-sms/ORG_1"
            .parse()
            .unwrap();
    let ctx = SendContext {
        http: &http,
        connection: &connection,
        secrets: &secrets,
        status_callback: Some(&status),
        inbound_callback: None,
    };
    let message = OutboundMessage {
        message_id: "m 1".into(),
        to: "+14155550100".into(),
        body: "hi".into(),
    };
    Twilio::new(Some(server.uri().parse().unwrap()))
        .send(&ctx, &message)
        .await
        .unwrap();
    let sent = &server.received_requests().await.unwrap()[0];
    let form: Vec<(String, String)> = form_urlencoded::parse(&sent.body).into_owned().collect();
    let callback = form
        .iter()
        .find(|(k, _)| k == "StatusCallback")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        callback,
        Some(format!("{status}?messageId=m%201#rc=5&rp=ct,rt,5xx").as_str())
    );
}
