//! The reference's signature vector (self-generated against the documented scheme: no usable
//! official vector exists), the digest and key forms, the replay window, the status table,
//! payload shapes, error classification and validation rules.

use super::signature::{self, Digest, SimulationKey};
use super::*;
use crate::domain::Access;
use bytes::Bytes;
use chrono::TimeZone;
use http::{HeaderMap, HeaderValue, Method};
use rsa::RsaPublicKey;
use rsa::pkcs1::EncodeRsaPublicKey;

const VECTOR_KEY: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDH7hG9xcseX+zvTCojS0tQhUsMRyTH+gqZCMR0sdS99XJu9/RkLlDUf73upqQdI5PhtNeJdUPDSWmCarGF9QH7LBqa3QYAf0T8a9ns50D7cFxIrU3ozWWrtwpobnTVDwbhxxO/k9SqCSFk40hVV3/tbme7dmWTmyWYUizQY0AxCQIDAQAB";
const VECTOR_PATH: &str = "/receive/distribution/status/messagemedia/org_123";
const VECTOR_DATE: &str = "Wed, 18 Jul 2018 06:33:52 GMT";
const VECTOR_BODY: &str = r#"{"delivery_report_id":"dc6f7774-9572-41a8-9a6b-9976a98db4a9","message_id":"38a6a1a0-36a9-4117-aaee-c0e893393634","status":"delivered","error_code":"220"}"#;
const VECTOR_SIGNATURE: &str = "KdZ4jB4lZGgIF2+w2EtiQGaRmndu8jjBNei1bm6NPlP+Ml4BOJchwuwjT/NpP4iKPTmj4X1AeyfZLCk/Py7CaZ8+eSVICAoUUDcHF4eiqQeVfzTQ84fM0lwMaqyZpVknf/3pS2bN+Og7WV/E33vk56j7oXM1Ckj2UShW7SRL9CY=";

/// The adapter of a deployment whose MessageMedia API is a sandbox: only there may a connection
/// carry the published simulation key that the example connection and the samples use.
fn sandboxed() -> MessageMedia {
    MessageMedia::new(Some("http://127.0.0.1:4010/messagemedia".parse().unwrap()))
}

fn vector_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2018, 7, 18, 6, 33, 52).unwrap()
}

fn vector_key() -> RsaPublicKey {
    signature::parse_public_key(VECTOR_KEY).unwrap()
}

#[test]
fn the_reference_vector_verifies() {
    let signed = signature::signed_bytes("POST", VECTOR_PATH, VECTOR_DATE, VECTOR_BODY.as_bytes());
    assert_eq!(signed.len(), 245);
    assert!(signature::verify(
        &vector_key(),
        Digest::Sha256,
        &signed,
        VECTOR_SIGNATURE
    ));
}

#[test]
fn the_reference_vector_fails_with_newline_separators_or_another_digest() {
    let with_newlines = format!("POST {VECTOR_PATH} HTTP/1.1\n{VECTOR_DATE}\n{VECTOR_BODY}");
    assert!(!signature::verify(
        &vector_key(),
        Digest::Sha256,
        with_newlines.as_bytes(),
        VECTOR_SIGNATURE
    ));
    let signed = signature::signed_bytes("POST", VECTOR_PATH, VECTOR_DATE, VECTOR_BODY.as_bytes());
    for digest in [Digest::Sha224, Digest::Sha512] {
        assert!(!signature::verify(
            &vector_key(),
            digest,
            &signed,
            VECTOR_SIGNATURE
        ));
    }
    assert!(!signature::verify(
        &vector_key(),
        Digest::Sha256,
        &signed,
        "not base64!"
    ));
    assert!(!signature::verify(
        &vector_key(),
        Digest::Sha256,
        &signed,
        ""
    ));
}

fn connection_with_key(key_pem: &str) -> Connection {
    let fields = sandboxed().example_fields();
    let mut fields = fields;
    fields.insert("webhookPublicKey".into(), json!(key_pem));
    if key_pem != SimulationKey::PUBLIC_PEM {
        // The vector names no key id.
        fields.remove("webhookKeyId");
    }
    let valid = sandboxed().validate_connection(&fields).unwrap();
    Connection {
        org_id: "ORG_1".into(),
        connection_id: "conn_1".into(),
        provider: Provider::Messagemedia,
        name: "m".into(),
        access: Access::All,
        enabled: true,
        settings: valid.settings,
        created_at: Utc::now(),
    }
}

fn connection() -> Connection {
    connection_with_key(SimulationKey::PUBLIC_PEM)
}

fn request(
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
    received_at: DateTime<Utc>,
) -> WebhookRequest {
    let mut map = HeaderMap::new();
    map.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.insert(name, HeaderValue::from_str(value).unwrap());
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    WebhookRequest {
        method: Method::POST,
        public_url: format!("https://sms.example.test{target}"),
        raw_path: raw_path.into(),
        raw_query: raw_query.into(),
        headers: map,
        body: Bytes::copy_from_slice(body.as_bytes()),
        received_at,
    }
}

fn vector_request(received_at: DateTime<Utc>, digest: &str, body: &str) -> WebhookRequest {
    request(
        VECTOR_PATH,
        &[
            ("x-messagemedia-signature", VECTOR_SIGNATURE),
            ("x-messagemedia-digest-type", digest),
            ("x-messagemedia-cipher-type", "RSA"),
            ("date", VECTOR_DATE),
        ],
        body,
        received_at,
    )
}

fn authenticate(request: &WebhookRequest, connection: &Connection) -> Result<(), AuthError> {
    sandboxed().authenticate(request, connection, &ConnectionSecrets::default())
}

#[test]
fn the_vector_request_authenticates_inside_the_replay_window_only() {
    let conn = connection_with_key(VECTOR_KEY);
    let at = vector_time();
    for skew in [0, 299, -299] {
        let req = vector_request(at + chrono::Duration::seconds(skew), "SHA256", VECTOR_BODY);
        assert_eq!(authenticate(&req, &conn), Ok(()), "{skew}s");
    }
    let stale = vector_request(at + chrono::Duration::seconds(301), "SHA256", VECTOR_BODY);
    let future = vector_request(at - chrono::Duration::seconds(301), "SHA256", VECTOR_BODY);
    for req in [stale, future] {
        assert_eq!(
            authenticate(&req, &conn),
            Err(AuthError::Invalid(
                "Date header (outside the 5-minute replay window)"
            ))
        );
    }
}

#[test]
fn digest_names_are_normalized_and_others_refused() {
    let conn = connection_with_key(VECTOR_KEY);
    for name in ["SHA256", "SHA-256", "sha256", " Sha-256 "] {
        let req = vector_request(vector_time(), name, VECTOR_BODY);
        assert_eq!(authenticate(&req, &conn), Ok(()), "{name}");
    }
    for name in ["SHA1", "MD5", "SHA384", ""] {
        let req = vector_request(vector_time(), name, VECTOR_BODY);
        assert!(
            matches!(authenticate(&req, &conn), Err(AuthError::Invalid(_))),
            "{name}"
        );
    }
    assert_eq!(Digest::from_header("SHA-512"), Some(Digest::Sha512));
    assert_eq!(Digest::from_header("sha224"), Some(Digest::Sha224));
}

#[test]
fn missing_headers_wrong_keys_and_tampering_are_refused() {
    let conn = connection_with_key(VECTOR_KEY);
    let at = vector_time();
    let mut req = vector_request(at, "SHA256", VECTOR_BODY);
    req.headers.remove("x-messagemedia-signature");
    assert_eq!(
        authenticate(&req, &conn),
        Err(AuthError::Missing("X-MessageMedia-Signature header"))
    );
    let mut req = vector_request(at, "SHA256", VECTOR_BODY);
    req.headers.remove("date");
    assert_eq!(
        authenticate(&req, &conn),
        Err(AuthError::Missing("Date header"))
    );
    let mut req = vector_request(at, "SHA256", VECTOR_BODY);
    req.headers.remove("x-messagemedia-digest-type");
    assert!(matches!(
        authenticate(&req, &conn),
        Err(AuthError::Missing(_))
    ));
    let mut req = vector_request(at, "SHA256", VECTOR_BODY);
    req.headers.insert(
        "x-messagemedia-cipher-type",
        HeaderValue::from_static("DSA"),
    );
    assert!(matches!(
        authenticate(&req, &conn),
        Err(AuthError::Invalid(_))
    ));
    let tampered = VECTOR_BODY.replace("delivered", "deliverez");
    let req = vector_request(at, "SHA256", &tampered);
    assert_eq!(
        authenticate(&req, &conn),
        Err(AuthError::Invalid("X-MessageMedia-Signature"))
    );
    // Another path: the request line is signed.
    let mut req = vector_request(at, "SHA256", VECTOR_BODY);
    req.public_url =
        "https://sms.example.test/receive/distribution/status/messagemedia/org_124".into();
    req.raw_path = "/receive/distribution/status/messagemedia/org_124".into();
    assert!(authenticate(&req, &conn).is_err());
    // The right signature, checked against another connection's key.
    let mut req = vector_request(at, "SHA256", VECTOR_BODY);
    req.headers.insert(
        "x-messagemedia-key-id",
        HeaderValue::from_static(SimulationKey::KEY_ID),
    );
    assert_eq!(
        authenticate(&req, &connection()),
        Err(AuthError::Invalid("X-MessageMedia-Signature"))
    );
}

#[test]
fn the_public_url_is_the_signed_target_behind_a_stage_prefix() {
    let conn = connection_with_key(VECTOR_KEY);
    let mut req = vector_request(vector_time(), "SHA256", VECTOR_BODY);
    req.raw_path = format!("/prod{VECTOR_PATH}");
    assert_eq!(authenticate(&req, &conn), Ok(()));
}

/// A request signed with the simulation key for `target`, with `digest`.
fn simulated(target: &str, digest: Digest, body: &str, at: DateTime<Utc>) -> WebhookRequest {
    let date = signature::format_date(at);
    let signed = signature::signed_bytes("POST", target, &date, body.as_bytes());
    let sig = signature::sign(&SimulationKey::private(), digest, &signed);
    request(
        target,
        &[
            ("x-messagemedia-signature", &sig),
            ("x-messagemedia-digest-type", digest.header_value()),
            ("x-messagemedia-cipher-type", "RSA"),
            ("x-messagemedia-key-id", SimulationKey::KEY_ID),
            ("date", &date),
        ],
        body,
        at,
    )
}

#[test]
fn the_key_id_is_checked_when_the_connection_names_one() {
    let now = Utc::now();
    let req = simulated("/hook", Digest::Sha256, VECTOR_BODY, now);
    assert_eq!(authenticate(&req, &connection()), Ok(()));
    let mut other = req.clone();
    other.headers.insert(
        "x-messagemedia-key-id",
        HeaderValue::from_static("5e0c0a1d-51b1-4d1e-9a5e-000000000002"),
    );
    assert_eq!(
        authenticate(&other, &connection()),
        Err(AuthError::Invalid("X-MessageMedia-Key-Id"))
    );
    let mut none = req.clone();
    none.headers.remove("x-messagemedia-key-id");
    assert_eq!(
        authenticate(&none, &connection()),
        Err(AuthError::Missing("X-MessageMedia-Key-Id header"))
    );
    let mut no_cipher = req.clone();
    no_cipher.headers.remove("x-messagemedia-cipher-type");
    assert!(matches!(
        authenticate(&no_cipher, &connection()),
        Err(AuthError::Missing(_))
    ));
    field_error(json!({"webhookKeyId": "not-a-uuid"}), "webhookKeyId");
}

#[test]
fn sha224_sha256_and_sha512_signatures_verify_as_their_header_says() {
    let now = Utc::now();
    for digest in [Digest::Sha224, Digest::Sha256, Digest::Sha512] {
        let req = simulated("/hook", digest, VECTOR_BODY, now);
        assert_eq!(authenticate(&req, &connection()), Ok(()), "{digest:?}");
        let mut lying = req.clone();
        let other = if digest == Digest::Sha256 {
            "SHA512"
        } else {
            "SHA256"
        };
        lying.headers.insert(
            "x-messagemedia-digest-type",
            HeaderValue::from_static(other),
        );
        assert!(authenticate(&lying, &connection()).is_err(), "{digest:?}");
    }
}

#[test]
fn a_signed_query_string_is_part_of_the_request_line() {
    let now = Utc::now();
    let req = simulated("/hook?a=1&b=%20x", Digest::Sha256, VECTOR_BODY, now);
    assert_eq!(authenticate(&req, &connection()), Ok(()));
    let mut changed = req.clone();
    changed.raw_query = "a=2&b=%20x".into();
    changed.public_url = "https://sms.example.test/hook?a=2&b=%20x".into();
    assert!(authenticate(&changed, &connection()).is_err());
}

#[test]
fn keys_are_read_as_pem_bare_base64_or_pkcs1() {
    let bare = vector_key();
    let pem = signature::public_key_pem(&bare).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(signature::parse_public_key(&pem).unwrap(), bare);
    let pkcs1_pem = bare.to_pkcs1_pem(rsa::pkcs1::LineEnding::CRLF).unwrap();
    assert_eq!(signature::parse_public_key(&pkcs1_pem).unwrap(), bare);
    let pkcs1_b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        bare.to_pkcs1_der().unwrap().as_bytes(),
    );
    assert_eq!(signature::parse_public_key(&pkcs1_b64).unwrap(), bare);
    // Wrapped over lines, as an admin pastes it.
    let wrapped: String = VECTOR_KEY
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    assert_eq!(signature::parse_public_key(&wrapped).unwrap(), bare);
}

#[test]
fn private_keys_certificates_and_junk_are_refused_as_keys() {
    for (input, rule) in [
        (
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
            "private key",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "certificate",
        ),
        ("not a key at all", "RSA public key"),
        ("QUJD", "is not an RSA public key"),
    ] {
        let err = signature::parse_public_key(input).unwrap_err();
        assert!(err.contains(rule), "{input}: {err}");
    }
}

#[test]
fn the_status_table() {
    let table: &[(&str, Option<&str>, Status)] = &[
        ("queued", None, Status::Queued),
        ("scheduled", None, Status::Queued),
        ("held", None, Status::Queued),
        ("processing", None, Status::Queued),
        ("enroute", Some("211"), Status::Queued),
        ("submitted", Some("200"), Status::Sent),
        ("processed", None, Status::Sent),
        ("delivered", Some("220"), Status::Delivered),
        ("DELIVERED", None, Status::Delivered),
        ("read", None, Status::Read),
        ("expired", Some("401"), Status::Undelivered),
        ("undeliverable", None, Status::Undelivered),
        ("rejected", None, Status::Failed),
        ("rejected", Some("305"), Status::Failed),
        ("cancelled", None, Status::Failed),
        ("failed", None, Status::Failed),
        ("undefined", None, Status::Unknown),
        ("exploded", None, Status::Unknown),
        ("", None, Status::Unknown),
    ];
    for (word, code, expected) in table {
        assert_eq!(normalize_status(word, *code), *expected, "{word} {code:?}");
    }
    for code in ["400", "401", "402", "403", "411", "412", "413", "414"] {
        assert_eq!(
            normalize_status("failed", Some(code)),
            Status::Undelivered,
            "{code}"
        );
    }
    for code in [
        "301", "302", "303", "304", "305", "320", "330", "331", "332", "333", "410", "999",
    ] {
        assert_eq!(
            normalize_status("failed", Some(code)),
            Status::Failed,
            "{code}"
        );
    }
}

fn parse_body(body: &str) -> ParsedItems {
    let req = request("/hook", &[], body, Utc::now());
    sandboxed()
        .parse(&req, RouteKind::Status, &connection())
        .unwrap()
}

fn one(body: &str) -> WebhookItem {
    let mut items = parse_body(body);
    assert_eq!(items.len(), 1, "{items:?}");
    items.remove(0).unwrap()
}

#[test]
fn a_callback_delivery_report_is_read_whole() {
    let body = json!({
        "callback_url": "https://sms.example.test/hook",
        "delivery_report_id": "01e1fa0a-6e27-4945-9cdb-18644b4de043",
        "source_number": "+61491570156",
        "date_received": "2016-11-03T11:49:02.807Z",
        "status": "failed",
        "delay": 0,
        "submitted_date": "2016-11-03T11:49:00.000Z",
        "original_text": "Take our survey",
        "message_id": "877c19ef-fa2e-4cec-827a-e1df9b5509f7",
        "vendor_account_id": {"vendor_id": "MessageMedia", "account_id": "Acc"},
        "error_code": "414",
        "metadata": {"messageId": "dist42-r1"}
    });
    let WebhookItem::Status(report) = one(&body.to_string()) else {
        panic!()
    };
    assert_eq!(
        report,
        StatusReport {
            provider_message_id: "877c19ef-fa2e-4cec-827a-e1df9b5509f7".into(),
            message_id: Some("dist42-r1".into()),
            provider_status: "failed".into(),
            status: Status::Undelivered,
            error_code: Some("414".into()),
            occurred_at: Some(Utc.with_ymd_and_hms(2016, 11, 3, 11, 49, 0).unwrap()),
            opt_out: false,
            recipient: Some("+61491570156".into()),
            dedupe_key: "status:01e1fa0a-6e27-4945-9cdb-18644b4de043".into(),
        }
    );
}

#[test]
fn a_report_without_error_code_or_report_id_and_with_odd_dates_still_counts() {
    let WebhookItem::Status(report) = one(
        r#"{"message_id":"m-uuid","status":"rejected","date_received":"yesterday","metadata":{"messageId":"has space"}}"#,
    ) else {
        panic!()
    };
    assert_eq!(report.status, Status::Failed);
    assert_eq!(report.error_code, None);
    assert_eq!(report.occurred_at, None);
    assert_eq!(report.message_id, None, "an id we could not have written");
    assert_eq!(report.dedupe_key, "status:m-uuid:rejected:-");
}

#[test]
fn a_reply_names_the_message_it_answers() {
    let body = json!({
        "reply_id": "a175e797-2b54-468b-9850-41a3eab32f74",
        "message_id": "877c19ef-fa2e-4cec-827a-e1df9b5509f7",
        "content": "5",
        "date_received": "2016-12-07T08:44:00.850Z",
        "source_number": "+61491570156",
        "destination_number": "+61491570157",
        "metadata": {"messageId": "dist42-r1"},
        "callback_url": "https://sms.example.test/hook",
        "vendor_account_id": {"vendor_id": "MessageMedia", "account_id": "Acc"}
    });
    let WebhookItem::Inbound(reply) = one(&body.to_string()) else {
        panic!()
    };
    assert_eq!(
        (
            reply.provider_message_id.as_str(),
            reply.from.as_str(),
            reply.to.as_str(),
            reply.text.as_str(),
            reply.opt_out,
            reply.dedupe_key.as_str()
        ),
        (
            "a175e797-2b54-468b-9850-41a3eab32f74",
            "+61491570156",
            "+61491570157",
            "5",
            false,
            "inbound:a175e797-2b54-468b-9850-41a3eab32f74"
        )
    );
    assert_eq!(reply.reply_to, Some(ReplyTo::MessageId("dist42-r1".into())));
    // Without our metadata, the provider's id of the message answered.
    let WebhookItem::Inbound(bare) = one(
        r#"{"reply_id":"r2","message_id":"877c","content":"yes","source_number":"61491570156"}"#,
    ) else {
        panic!()
    };
    assert_eq!(
        bare.reply_to,
        Some(ReplyTo::ProviderMessageId("877c".into()))
    );
    assert_eq!(bare.from, "+61491570156");
    assert_eq!(bare.to, "+61491570157", "the connection's sender");
}

#[test]
fn opt_outs_are_flagged_with_or_without_the_message_answered() {
    let WebhookItem::Inbound(stop) = one(
        r#"{"notification_id":"3e6e6b1a","account_id":"Acc","source_number":"+61491570156","destination_number":"+61491570157","content":"STOP","date_received":"2016-12-07T08:44:00.850Z"}"#,
    ) else {
        panic!()
    };
    assert!(stop.opt_out);
    assert_eq!(stop.reply_to, None);
    assert_eq!(stop.dedupe_key, "optout:3e6e6b1a");
    // Our template on an OPT_OUT_SMS event: $replyId is not rendered.
    let WebhookItem::Inbound(templated) = one(
        r#"{"reply_id":"$replyId","notification_id":"n2","message_id":"mt","source_number":"+61491570156","content":"stop please"}"#,
    ) else {
        panic!()
    };
    assert!(templated.opt_out);
    // And on a RECEIVED_SMS event, $!notificationId renders empty: an ordinary reply.
    let WebhookItem::Inbound(reply) = one(
        r#"{"reply_id":"r3","notification_id":"","message_id":"mt","source_number":"+61491570156","content":"4"}"#,
    ) else {
        panic!()
    };
    assert!(!reply.opt_out);
    assert_eq!(reply.dedupe_key, "inbound:r3");
}

#[test]
fn batches_keep_their_good_items() {
    let items = parse_body(
        r#"[{"message_id":"a","status":"delivered","delivery_report_id":"d1"},{"status":"delivered"},7,{"reply_id":"r","source_number":"+61491570156","content":"hi"}]"#,
    );
    assert_eq!(items.len(), 4);
    assert!(matches!(items[0], Ok(WebhookItem::Status(_))));
    assert!(items[1].is_err(), "no message_id");
    assert!(items[2].is_err(), "not an object");
    assert!(matches!(items[3], Ok(WebhookItem::Inbound(_))));
    let wrapped = parse_body(
        r#"{"delivery_reports":[{"message_id":"a","status":"enroute","delivery_report_id":"d2"}]}"#,
    );
    assert!(matches!(wrapped[0], Ok(WebhookItem::Status(ref r)) if r.status == Status::Queued));
}

#[test]
fn form_and_query_templates_are_read_too() {
    let mut req = request("/hook", &[], "", Utc::now());
    req.headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    req.body = Bytes::from_static(
        b"message_id=m1&status=delivered&delivery_report_id=d9&metadata=%7B%22messageId%22%3A%22x1%22%7D",
    );
    let items = sandboxed()
        .parse(&req, RouteKind::Status, &connection())
        .unwrap();
    let Ok(WebhookItem::Status(report)) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(report.message_id.as_deref(), Some("x1"));
    let mut get = request(
        "/hook?reply_id=r1&source_number=%2B61491570156&content=5",
        &[],
        "",
        Utc::now(),
    );
    get.method = Method::GET;
    let items = sandboxed()
        .parse(&get, RouteKind::Message, &connection())
        .unwrap();
    assert!(matches!(&items[0], Ok(WebhookItem::Inbound(r)) if r.text == "5"));
}

#[test]
fn unreadable_payloads_are_errors_that_name_the_problem() {
    let adapter = sandboxed();
    for (body, says) in [
        ("{not json", "not valid JSON"),
        ("\"text\"", "object or an array"),
        ("[]", "no items"),
    ] {
        let req = request("/hook", &[], body, Utc::now());
        let err = adapter
            .parse(&req, RouteKind::Status, &connection())
            .unwrap_err();
        assert!(err.0.contains(says), "{body}: {err}");
    }
    let items = parse_body(r#"{"hello":"world"}"#);
    assert!(items[0].as_ref().unwrap_err().0.contains("neither"));
    let empty = request("/hook", &[], "", Utc::now());
    assert!(
        adapter
            .parse(&empty, RouteKind::Status, &connection())
            .is_err()
    );
}

#[test]
fn media_types_other_than_json_and_form_are_refused() {
    let adapter = sandboxed();
    let mut req = request("/hook", &[], "<xml/>", Utc::now());
    assert!(adapter.check_media_type(&req).is_ok());
    req.headers
        .insert("content-type", HeaderValue::from_static("application/xml"));
    assert_eq!(
        adapter.check_media_type(&req),
        Err(UnsupportedMediaType("application/xml".into()))
    );
}

#[test]
fn error_answers_are_classified() {
    use SendErrorCode as C;
    let cases: &[(u16, &str, C, Retry)] = &[
        (
            400,
            r#"{"message":"Request failed to parse correctly.","details":["/messages/0/destination_number: International address must be between 8 and 15 characters excluding the first '+'"]}"#,
            C::InvalidNumber,
            Retry::Never,
        ),
        (
            400,
            r#"{"message":"Request failed","details":["/messages/0/source_number: not registered"]}"#,
            C::InvalidSender,
            Retry::Never,
        ),
        (
            400,
            r#"{"message":"Request failed","details":["/messages/0/content: too long"]}"#,
            C::InvalidBody,
            Retry::Never,
        ),
        (
            400,
            r#"{"message":"Request failed"}"#,
            C::Rejected,
            Retry::Never,
        ),
        (
            401,
            r#"{"message":"Invalid authentication credentials"}"#,
            C::AuthFailed,
            Retry::Never,
        ),
        (402, "", C::InsufficientFunds, Retry::Never),
        (
            403,
            r#"{"message":"This feature has not been enabled in your account."}"#,
            C::Rejected,
            Retry::Never,
        ),
        (
            404,
            r#"{"message":"Resource not found."}"#,
            C::ConfigError,
            Retry::Never,
        ),
        (422, "TLS 1.3 required", C::Rejected, Retry::Never),
        (429, "", C::Throttled, Retry::NotAccepted),
        (503, "", C::ProviderUnavailable, Retry::NotAccepted),
        (500, "oops", C::OutcomeUnknown, Retry::OutcomeUnknown),
        (502, "", C::OutcomeUnknown, Retry::OutcomeUnknown),
        (504, "", C::OutcomeUnknown, Retry::OutcomeUnknown),
    ];
    for (status, body, code, retry) in cases {
        let err = classify(*status, body);
        assert_eq!((err.code, err.retry), (*code, *retry), "{status} {body}");
        assert!(!err.message.is_empty());
        assert_eq!(err.provider_code, Some(status.to_string()));
    }
    assert!(
        classify(401, r#"{"message":"Invalid authentication credentials"}"#)
            .message
            .contains("Invalid authentication credentials")
    );
    let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(5000));
    assert!(classify(400, &long).message.chars().count() <= 200);
    assert!(classify(404, "").message.contains("apiHost"));
}

#[test]
fn the_accepted_answer_gives_the_message_id() {
    let ok = accepted(r#"{"messages":[{"message_id":"04fe9a97-a579-43c5-bb1a-58ed29bf0a6a","status":"queued","content":"x"}]}"#).unwrap();
    assert_eq!(
        ok.provider_message_id,
        "04fe9a97-a579-43c5-bb1a-58ed29bf0a6a"
    );
    assert_eq!(ok.provider_status.as_deref(), Some("queued"));
    assert_eq!(ok.status, Status::Accepted);
    for unreadable in [
        "",
        "{}",
        r#"{"messages":[]}"#,
        r#"{"messages":[{"status":"queued"}]}"#,
    ] {
        assert_eq!(
            accepted(unreadable).unwrap_err().retry,
            Retry::OutcomeUnknown,
            "{unreadable}"
        );
    }
}

#[test]
fn the_message_carries_our_id_callback_and_sender_type() {
    let message = OutboundMessage {
        message_id: "dist42-r1".into(),
        to: "+61491570156".into(),
        body: "Take our survey".into(),
    };
    let callback: Url = "https://sms.example.test/status".parse().unwrap();
    let m = message_json(&message, "+61491570157", Some(&callback));
    assert_eq!(
        Value::Object(m),
        json!({
            "content": "Take our survey",
            "destination_number": "+61491570156",
            "source_number": "+61491570157",
            "source_number_type": "INTERNATIONAL",
            "format": "SMS",
            "delivery_report": true,
            "callback_url": "https://sms.example.test/status",
            "metadata": {"messageId": "dist42-r1"}
        })
    );
    let alpha = message_json(&message, "Qualtrics", None);
    assert_eq!(alpha["source_number_type"], "ALPHANUMERIC");
    assert!(!alpha.contains_key("callback_url"));
    assert_eq!(
        message_json(&message, "12345", None)["source_number_type"],
        "SHORTCODE"
    );
}

fn fields(overrides: Value) -> Map<String, Value> {
    let mut f = sandboxed().example_fields();
    if let Value::Object(o) = overrides {
        f.extend(o);
    }
    f
}

fn field_error(overrides: Value, field: &str) -> String {
    let errors = sandboxed()
        .validate_connection(&fields(overrides))
        .unwrap_err();
    errors
        .0
        .iter()
        .find(|e| e.field == field)
        .unwrap_or_else(|| panic!("{field} not named: {errors}"))
        .rule
        .clone()
}

#[test]
fn senders_are_stored_in_the_form_messagemedia_wants() {
    for (input, stored) in [
        ("35312345678", "+35312345678"),
        ("+61491570157", "+61491570157"),
        ("12345", "12345"),
        ("19001234", "19001234"),
        ("Qualtrics", "Qualtrics"),
        ("My_Brand-1", "My_Brand-1"),
    ] {
        let valid = sandboxed()
            .validate_connection(&fields(json!({ "from": input })))
            .unwrap();
        assert_eq!(valid.settings["from"], stored, "{input}");
    }
    for bad in [
        "+123",
        "+0123456789",
        "AB",
        "TwelveChars1",
        "no spaces",
        "123456789012345678",
    ] {
        field_error(json!({ "from": bad }), "from");
    }
}

#[test]
fn only_messagemedia_hosts_are_allowed_as_api_host() {
    for (input, stored) in [
        ("api.messagemedia.com", "api.messagemedia.com"),
        ("EU.app.api.sinch.com", "eu.app.api.sinch.com"),
        ("https://au.app.api.sinch.com/", "au.app.api.sinch.com"),
    ] {
        let valid = sandboxed()
            .validate_connection(&fields(json!({ "apiHost": input })))
            .unwrap();
        assert_eq!(valid.settings["apiHost"], stored);
    }
    for bad in [
        "evil.example.com",
        "169.254.169.254",
        "api.messagemedia.com:8443",
        "us.app.api.sinch.com",
    ] {
        assert!(field_error(json!({ "apiHost": bad }), "apiHost").contains("must be one of"));
    }
    let mut without = sandboxed().example_fields();
    without.remove("apiHost");
    let valid = sandboxed().validate_connection(&without).unwrap();
    assert_eq!(valid.settings["apiHost"], DEFAULT_API_HOST);
}

#[test]
fn every_broken_rule_is_named_and_no_secret_shown() {
    let secret = "Zq7 secret\u{7}with a bell";
    let errors = sandboxed()
        .validate_connection(&fields(json!({
            "apiKey": "has:colon",
            "apiSecret": secret,
            "from": "?",
            "webhookPublicKey": "-----BEGIN RSA PRIVATE KEY-----\nMIIC\n-----END RSA PRIVATE KEY-----",
            "apiHost": "localhost",
            "typo": "x"
        })))
        .unwrap_err();
    let named: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    for field in [
        "apiKey",
        "apiSecret",
        "from",
        "webhookPublicKey",
        "apiHost",
        "typo",
    ] {
        assert!(named.contains(&field), "{field}: {errors}");
    }
    assert!(!errors.to_string().contains("Zq7"));
    assert!(
        field_error(
            json!({"webhookPublicKey": VECTOR_KEY.replace('Q', "")}),
            "webhookPublicKey"
        )
        .contains("RSA")
    );
    let valid = sandboxed()
        .validate_connection(&fields(json!({ "webhookPublicKey": VECTOR_KEY })))
        .unwrap();
    let stored = valid.settings["webhookPublicKey"].as_str().unwrap();
    assert!(
        stored.starts_with("-----BEGIN PUBLIC KEY-----"),
        "stored as PEM"
    );
    assert_eq!(
        valid.secrets.expose("apiSecret"),
        Some("ExampleApiSecret00000000000000")
    );
    assert!(valid.secrets.names().eq(["apiSecret"]));
}

#[test]
fn samples_authenticate_and_parse_as_what_they_are() {
    let adapter = sandboxed();
    let conn = connection();
    let secrets = ConnectionSecrets::default();
    let url: Url = "https://sms.example.test/distribution-providers/v1/receive/distribution/status/messagemedia-sms/ORG_1"
        .parse()
        .unwrap();
    let events = [
        SampleEvent::Inbound {
            from: "+61491570156".into(),
            to: "+61491570157".into(),
            text: "5".into(),
        },
        SampleEvent::Status {
            message_id: Some("dist42-r1".into()),
            provider_message_id: "877c19ef-fa2e-4cec-827a-e1df9b5509f7".into(),
            provider_status: "delivered".into(),
            error_code: Some("220".into()),
        },
    ];
    for event in events {
        let sample = adapter
            .sample_webhook(&event, &url, &conn, &secrets)
            .unwrap();
        let headers: Vec<(&str, &str)> = sample
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let req = request(
            url.path(),
            &headers,
            std::str::from_utf8(&sample.body).unwrap(),
            Utc::now(),
        );
        assert_eq!(authenticate(&req, &conn), Ok(()));
        let items = adapter.parse(&req, RouteKind::Status, &conn).unwrap();
        match (&event, &items[0]) {
            (SampleEvent::Inbound { .. }, Ok(WebhookItem::Inbound(r))) => {
                assert_eq!((r.from.as_str(), r.text.as_str()), ("+61491570156", "5"))
            }
            (SampleEvent::Status { .. }, Ok(WebhookItem::Status(r))) => {
                assert_eq!(r.message_id.as_deref(), Some("dist42-r1"));
                assert_eq!(r.status, Status::Delivered);
            }
            other => panic!("{other:?}"),
        }
    }
    // A connection with a real account's key cannot be simulated: we never hold its private key.
    let real = connection_with_key(VECTOR_KEY);
    assert!(
        adapter
            .sample_webhook(
                &SampleEvent::Inbound {
                    from: "+61491570156".into(),
                    to: "+61491570157".into(),
                    text: "x".into()
                },
                &url,
                &real,
                &secrets
            )
            .is_err()
    );
}

#[test]
fn the_setup_guide_names_both_urls_and_post() {
    let message: Url = "https://sms.example.test/m".parse().unwrap();
    let status: Url = "https://sms.example.test/s".parse().unwrap();
    let guide = sandboxed().setup_guide(&message, &status);
    for needle in [
        "https://sms.example.test/m",
        "https://sms.example.test/s",
        "method POST",
        "OPT_OUT_SMS",
        "API_SECURE_CALLBACKS",
        "webhookPublicKey",
    ] {
        assert!(guide.contains(needle), "{needle}: {guide}");
    }
}

#[test]
fn the_published_simulation_key_is_refused_outside_a_sandbox() {
    let fields = MessageMedia::new(None).example_fields();
    let errors = MessageMedia::new(None)
        .validate_connection(&fields)
        .expect_err("a real deployment refuses the simulation key");
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.field == "webhookPublicKey" && e.rule.contains("simulation key")),
        "{errors}"
    );
    let sandbox: url::Url = "http://127.0.0.1:4010/messagemedia".parse().unwrap();
    assert!(
        MessageMedia::new(Some(sandbox))
            .validate_connection(&fields)
            .is_ok()
    );
}
