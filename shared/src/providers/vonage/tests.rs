//! Vonage's own signature vectors (vonage-php-sdk-core `SignatureTest.php`, the same data in
//! vonage-node-sdk, and vonage-python-sdk `test_auth.py`), the replay window, the adapter's
//! validation rules, the receipt status table, payload shapes and error classification.

use super::*;
use crate::domain::Access;
use bytes::Bytes;
use chrono::TimeZone;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::json;

const PHP_SECRET: &str = "my_secret_key_for_testing";

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// vonage-php-sdk-core `SignatureTest.php`, the main data set.
fn php_params() -> Vec<(String, String)> {
    pairs(&[
        ("message-timestamp", "2013-11-21 15:27:30"),
        ("messageId", "020000001B0FE827"),
        ("msisdn", "14843472194"),
        ("text", "Test again"),
        ("timestamp", "1385047698"),
        ("to", "13239877404"),
        ("type", "text"),
    ])
}

const PHP_TIMESTAMP: i64 = 1385047698;

const PHP_VECTORS: [(SignatureMethod, &str); 5] = [
    (SignatureMethod::Md5Hash, "d2e7b1dc968737c5998ad624e02f90b7"),
    (SignatureMethod::HmacMd5, "DDEBD46008C2D4E93CCE578A332A52D5"),
    (
        SignatureMethod::HmacSha1,
        "27D0D05C2876C7CB1720DBCDBA4D492E1E55C09A",
    ),
    (
        SignatureMethod::HmacSha256,
        "DDB8397C2B90AAC7F3882D306475C9A5058C92322EEF43C92B298B6E0FC0D330",
    ),
    (
        SignatureMethod::HmacSha512,
        "E0D3C650F8C9D1A5C174D10DDDBFB003E561F59B265616208B0487C5D819481CD3C311D59CF6165ECD1139622D5BA3A256C0D763AC4A9AD9144B5A426B94FE82",
    ),
];

#[test]
fn the_signed_base_sorts_by_byte_and_prefixes_every_pair() {
    assert_eq!(
        signature_base(&php_params()),
        "&message-timestamp=2013-11-21 15:27:30&messageId=020000001B0FE827&msisdn=14843472194&text=Test again&timestamp=1385047698&to=13239877404&type=text"
    );
    // `sig` itself is never signed, wherever it is.
    let mut with_sig = php_params();
    with_sig.insert(2, ("sig".into(), "whatever".into()));
    assert_eq!(signature_base(&with_sig), signature_base(&php_params()));
}

#[test]
fn php_sdk_vectors_for_every_method() {
    for (method, expected) in PHP_VECTORS {
        assert_eq!(
            signature(method, PHP_SECRET, &php_params()),
            expected.to_ascii_lowercase(),
            "{method:?}"
        );
    }
}

#[test]
fn php_sdk_vector_with_ampersand_and_equals_in_a_value() {
    let params = pairs(&[
        ("keyword", "TEST"),
        ("message-timestamp", "2017-04-04 22:57:47"),
        ("messageId", "0B00000042AC53BD"),
        ("msisdn", "14843472194"),
        ("nonce", "929d6744-bd28-42c8-b6cf-31d5b4f43732"),
        ("text", "Test with & and ="),
        ("timestamp", "1491346667"),
        ("to", "12192259404"),
        ("type", "text"),
    ]);
    assert!(signature_base(&params).contains("&text=Test with _ and _&"));
    assert_eq!(
        signature(SignatureMethod::Md5Hash, PHP_SECRET, &params),
        "e06d9763e3fd0b9c31beb5fc2fcb011c"
    );
}

#[test]
fn php_sdk_vector_with_an_empty_secret() {
    let params = pairs(&[
        ("message-timestamp", "2013-11-21 17:31:42"),
        ("messageId", "030000002A264B8B"),
        ("msisdn", "14843472194"),
        ("text", "Message test"),
        ("timestamp", "1385055102"),
        ("to", "14849970568"),
        ("type", "text"),
    ]);
    assert_eq!(
        signature(SignatureMethod::Md5Hash, "", &params),
        "f0bfad43bd90cf1ea1f1525c18ba4dab"
    );
}

#[test]
fn python_sdk_vectors() {
    let params = pairs(&[
        ("param1", "value1"),
        ("param2", "value2"),
        ("timestamp", "1234567890"),
    ]);
    assert_eq!(
        signature(SignatureMethod::HmacSha256, "signature_secret", &params),
        "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287"
    );
    assert_eq!(
        signature(SignatureMethod::HmacMd5, "signature_secret", &params),
        "724c2bf6ca423c36e20631b11d1c5753"
    );
    // `check_signature`: the params carry their own sig, which the signed set leaves out.
    let signed = pairs(&[
        ("param", "value"),
        ("timestamp", "1234567890"),
        ("sig", "655a4d0b7f064dff438defc52b012cf5"),
    ]);
    assert_eq!(
        signature(SignatureMethod::HmacMd5, "signature_secret", &signed),
        "655a4d0b7f064dff438defc52b012cf5"
    );
}

// ---------------------------------------------------------------------------------------------
// authenticate

fn connection(method: SignatureMethod) -> (Connection, ConnectionSecrets) {
    let mut settings = Map::new();
    settings.insert("apiKey".into(), json!("abcd1234"));
    settings.insert("from".into(), json!("13239877404"));
    settings.insert("signatureMethod".into(), json!(method.as_str()));
    let mut secrets = ConnectionSecrets::default();
    secrets.insert("apiSecret", "Abcdef0123456789".into());
    secrets.insert("signatureSecret", PHP_SECRET.into());
    (
        Connection {
            org_id: "ORG_1".into(),
            connection_id: "conn_1".into(),
            provider: Provider::Vonage,
            name: "v".into(),
            access: Access::All,
            enabled: true,
            settings,
            created_at: Utc::now(),
        },
        secrets,
    )
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    Get,
    Form,
    Json,
}

const SHAPES: [Shape; 3] = [Shape::Get, Shape::Form, Shape::Json];

fn encode(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// `params` as Vonage sends them in `shape`, received at `received_at` (unix seconds).
fn request(shape: Shape, params: &[(String, String)], received_at: i64) -> WebhookRequest {
    let mut headers = HeaderMap::new();
    let (method, raw_query, body) = match shape {
        Shape::Get => (Method::GET, encode(params), Vec::new()),
        Shape::Form => {
            headers.insert(
                "content-type",
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            (Method::POST, String::new(), encode(params).into_bytes())
        }
        Shape::Json => {
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let object: Map<String, Value> = params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            (
                Method::POST,
                String::new(),
                serde_json::to_vec(&object).unwrap(),
            )
        }
    };
    let raw_path = "/distribution-providers/v1/receive/distribution/message/vonage-sms/ORG_1";
    WebhookRequest {
        method,
        public_url: format!("https://sms.example.test{raw_path}"),
        raw_path: raw_path.into(),
        raw_query,
        headers,
        body: Bytes::from(body),
        received_at: Utc.timestamp_opt(received_at, 0).unwrap(),
    }
}

fn with_sig(mut params: Vec<(String, String)>, sig: &str) -> Vec<(String, String)> {
    params.push(("sig".into(), sig.into()));
    params
}

fn authenticate(method: SignatureMethod, request: &WebhookRequest) -> Result<(), AuthError> {
    let (conn, secrets) = connection(method);
    Vonage::default().authenticate(request, &conn, &secrets)
}

#[test]
fn every_method_verifies_the_php_vector_in_every_shape_and_any_case() {
    for (method, sig) in PHP_VECTORS {
        for shape in SHAPES {
            for given in [sig.to_string(), sig.to_ascii_lowercase()] {
                let req = request(shape, &with_sig(php_params(), &given), PHP_TIMESTAMP);
                assert_eq!(authenticate(method, &req), Ok(()), "{method:?} {shape:?}");
            }
        }
    }
}

#[test]
fn a_signature_of_another_method_or_secret_is_refused() {
    let md5hash = PHP_VECTORS[0].1;
    let req = request(Shape::Get, &with_sig(php_params(), md5hash), PHP_TIMESTAMP);
    assert_eq!(
        authenticate(SignatureMethod::HmacSha256, &req),
        Err(AuthError::Invalid("sig"))
    );
    let (conn, mut secrets) = connection(SignatureMethod::Md5Hash);
    secrets.insert("signatureSecret", "another_secret_entirely".into());
    assert_eq!(
        Vonage::default().authenticate(&req, &conn, &secrets),
        Err(AuthError::Invalid("sig"))
    );
}

#[test]
fn missing_and_tampered_signatures_are_refused() {
    let md5hash = PHP_VECTORS[0].1;
    for shape in SHAPES {
        let unsigned = request(shape, &php_params(), PHP_TIMESTAMP);
        assert_eq!(
            authenticate(SignatureMethod::Md5Hash, &unsigned),
            Err(AuthError::Missing("sig parameter")),
            "{shape:?}"
        );
        let mut tampered = with_sig(php_params(), md5hash);
        tampered[3].1 = "Test agaim".into();
        assert_eq!(
            authenticate(
                SignatureMethod::Md5Hash,
                &request(shape, &tampered, PHP_TIMESTAMP)
            ),
            Err(AuthError::Invalid("sig")),
            "{shape:?}"
        );
        // An added parameter is part of what is signed.
        let mut added = with_sig(php_params(), md5hash);
        added.push(("client-ref".into(), "someone-elses".into()));
        assert_eq!(
            authenticate(
                SignatureMethod::Md5Hash,
                &request(shape, &added, PHP_TIMESTAMP)
            ),
            Err(AuthError::Invalid("sig")),
            "{shape:?}"
        );
    }
}

#[test]
fn the_replay_window_is_five_minutes_both_ways() {
    let sig = PHP_VECTORS[3].1;
    let params = with_sig(php_params(), sig);
    let at = |offset: i64| {
        authenticate(
            SignatureMethod::HmacSha256,
            &request(Shape::Form, &params, PHP_TIMESTAMP + offset),
        )
    };
    assert_eq!(at(REPLAY_WINDOW_SECONDS), Ok(()));
    assert_eq!(at(-REPLAY_WINDOW_SECONDS), Ok(()));
    assert_eq!(
        at(REPLAY_WINDOW_SECONDS + 1),
        Err(AuthError::Invalid("timestamp"))
    );
    assert_eq!(
        at(-REPLAY_WINDOW_SECONDS - 1),
        Err(AuthError::Invalid("timestamp"))
    );
}

#[test]
fn a_signed_request_without_a_timestamp_is_refused() {
    let params: Vec<(String, String)> = php_params()
        .into_iter()
        .filter(|(k, _)| k != "timestamp")
        .collect();
    let sig = signature(SignatureMethod::Md5Hash, PHP_SECRET, &params);
    assert_eq!(
        authenticate(
            SignatureMethod::Md5Hash,
            &request(Shape::Get, &with_sig(params, &sig), PHP_TIMESTAMP)
        ),
        Err(AuthError::Invalid("timestamp"))
    );
}

#[test]
fn another_accounts_api_key_is_refused() {
    for (key, expected) in [
        ("abcd1234", Ok(())),
        ("ffff0000", Err(AuthError::Invalid("api-key"))),
    ] {
        let mut params = php_params();
        params.push(("api-key".into(), key.into()));
        let sig = signature(SignatureMethod::Md5Hash, PHP_SECRET, &params);
        let req = request(Shape::Json, &with_sig(params, &sig), PHP_TIMESTAMP);
        assert_eq!(authenticate(SignatureMethod::Md5Hash, &req), expected);
    }
}

#[test]
fn unreadable_bodies_are_refused_not_panicked_on() {
    let mut req = request(Shape::Json, &php_params(), PHP_TIMESTAMP);
    req.body = Bytes::from_static(br#"{"sig": "abc", "text": "cut"#);
    assert_eq!(
        authenticate(SignatureMethod::Md5Hash, &req),
        Err(AuthError::Invalid("sig"))
    );
    let mut req = request(Shape::Form, &php_params(), PHP_TIMESTAMP);
    req.body = Bytes::from_static(b"sig=abc&text=%FF%FE");
    assert_eq!(
        authenticate(SignatureMethod::Md5Hash, &req),
        Err(AuthError::Invalid("sig"))
    );
}

#[test]
fn media_types_other_than_form_and_json_are_refused() {
    let mut req = request(Shape::Form, &php_params(), PHP_TIMESTAMP);
    assert!(Vonage::default().check_media_type(&req).is_ok());
    req.headers
        .insert("content-type", HeaderValue::from_static("text/plain"));
    assert!(Vonage::default().check_media_type(&req).is_err());
    req.headers.remove("content-type");
    assert!(Vonage::default().check_media_type(&req).is_err());
    assert!(
        Vonage::default()
            .check_media_type(&request(Shape::Get, &php_params(), PHP_TIMESTAMP))
            .is_ok()
    );
}

// ---------------------------------------------------------------------------------------------
// parse

fn parse(shape: Shape, params: &[(&str, &str)]) -> Result<ParsedItems, ParseError> {
    let (conn, _) = connection(SignatureMethod::Md5Hash);
    Vonage::default().parse(
        &request(shape, &pairs(params), Utc::now().timestamp()),
        RouteKind::Status,
        &conn,
    )
}

fn one(shape: Shape, params: &[(&str, &str)]) -> WebhookItem {
    let mut items = parse(shape, params).unwrap();
    assert_eq!(items.len(), 1);
    items.remove(0).unwrap()
}

#[test]
fn the_receipt_status_table() {
    let table = [
        ("accepted", Status::Sent),
        ("buffered", Status::Sent),
        ("delivered", Status::Delivered),
        ("expired", Status::Undelivered),
        ("failed", Status::Undelivered),
        ("rejected", Status::Failed),
        ("unknown", Status::Sent),
        ("DELIVERED", Status::Delivered),
        ("exploded", Status::Unknown),
        ("", Status::Unknown),
    ];
    for (word, status) in table {
        assert_eq!(normalize_status(word), status, "{word}");
    }
}

/// A receipt as vonage-php-sdk-core's `dlr-get.txt` / `dlr-post.txt` / `dlr-post-json.txt` carry it.
fn receipt(status: &str) -> Vec<(&str, &str)> {
    vec![
        ("msisdn", "14845551212"),
        ("to", "16105551212"),
        ("network-code", "310090"),
        ("messageId", "0C000000217B7F02"),
        ("price", "0.00570000"),
        ("status", status),
        ("scts", "1612012147"),
        ("err-code", "0"),
        ("api-key", "abcd1234"),
        ("client-ref", "our-message-1"),
        ("message-timestamp", "2016-12-01 21:47:48"),
    ]
}

#[test]
fn receipts_in_every_shape() {
    for shape in SHAPES {
        let WebhookItem::Status(report) = one(shape, &receipt("delivered")) else {
            panic!("{shape:?}: not a status")
        };
        assert_eq!(
            report,
            StatusReport {
                provider_message_id: "0C000000217B7F02".into(),
                message_id: Some("our-message-1".into()),
                provider_status: "delivered".into(),
                status: Status::Delivered,
                error_code: None,
                occurred_at: Some(Utc.with_ymd_and_hms(2016, 12, 1, 21, 47, 0).unwrap()),
                opt_out: false,
                recipient: Some("+14845551212".into()),
                dedupe_key: "status:0C000000217B7F02:delivered".into(),
            },
            "{shape:?}"
        );
    }
}

#[test]
fn receipt_details_errors_opt_outs_and_odd_timestamps() {
    let mut failed = receipt("failed");
    failed[7] = ("err-code", "6");
    failed[6] = ("scts", "garbage");
    let WebhookItem::Status(report) = one(Shape::Get, &failed) else {
        panic!()
    };
    assert_eq!(report.error_code.as_deref(), Some("6"));
    assert!(!report.opt_out);
    // An unreadable scts falls back to message-timestamp, never to a refusal.
    assert_eq!(
        report.occurred_at,
        Some(Utc.with_ymd_and_hms(2016, 12, 1, 21, 47, 48).unwrap())
    );

    let mut opted_out = receipt("rejected");
    opted_out[7] = ("err-code", "9");
    let WebhookItem::Status(report) = one(Shape::Form, &opted_out) else {
        panic!()
    };
    assert!(report.opt_out, "err-code 9: the recipient opted out");
    assert_eq!(report.status, Status::Failed);

    let mut odd = receipt("exploded");
    odd[10] = ("message-timestamp", "yesterday");
    odd[6] = ("scts", "");
    odd[9] = ("client-ref", "not a valid id");
    let WebhookItem::Status(report) = one(Shape::Json, &odd) else {
        panic!()
    };
    assert_eq!(
        (
            report.status,
            report.provider_status.as_str(),
            report.occurred_at,
            report.message_id
        ),
        (Status::Unknown, "exploded", None, None)
    );
}

#[test]
fn a_receipt_without_a_message_id_is_unreadable() {
    let without: Vec<_> = receipt("delivered")
        .into_iter()
        .filter(|(k, _)| *k != "messageId")
        .collect();
    assert!(parse(Shape::Get, &without).is_err());
    let mut empty_status = receipt("delivered");
    empty_status[5] = ("status", " ");
    assert!(parse(Shape::Get, &empty_status).is_err());
}

/// An inbound message as vonage-php-sdk-core's `inbound.txt` carries it.
fn inbound(text: &str) -> Vec<(&str, &str)> {
    vec![
        ("msisdn", "14845552121"),
        ("to", "16105553939"),
        ("messageId", "02000000DA7C52E7"),
        ("text", text),
        ("type", "text"),
        ("keyword", "HELLO"),
        ("api-key", "abcd1234"),
        ("message-timestamp", "2016-12-01 22:04:50"),
    ]
}

#[test]
fn inbound_messages_in_every_shape_and_on_either_route() {
    for shape in SHAPES {
        let item = one(shape, &inbound("Hello world & = +"));
        assert_eq!(
            item,
            WebhookItem::Inbound(InboundReport {
                provider_message_id: "02000000DA7C52E7".into(),
                from: "+14845552121".into(),
                to: "+16105553939".into(),
                text: "Hello world & = +".into(),
                occurred_at: Some(Utc.with_ymd_and_hms(2016, 12, 1, 22, 4, 50).unwrap()),
                part: None,
                reply_to: None,
                opt_out: false,
                dedupe_key: "inbound:02000000DA7C52E7".into(),
            }),
            "{shape:?} (parsed on the status route: the payload decides)"
        );
    }
}

#[test]
fn inbound_parts_and_their_rules() {
    let mut part = inbound("second half");
    part.extend([
        ("concat", "true"),
        ("concat-ref", "4"),
        ("concat-total", "4"),
        ("concat-part", "3"),
    ]);
    let WebhookItem::Inbound(report) = one(Shape::Get, &part) else {
        panic!()
    };
    assert_eq!(
        report.part,
        Some(MessagePart {
            reference: "4".into(),
            total: 4,
            index: 3
        })
    );
    // Without `concat` (no UDH from the carrier) the concat-* fields still make a part.
    let no_flag: Vec<_> = part
        .iter()
        .copied()
        .filter(|(k, _)| *k != "concat")
        .collect();
    let WebhookItem::Inbound(report) = one(Shape::Form, &no_flag) else {
        panic!()
    };
    assert_eq!(report.part.map(|p| p.index), Some(3));

    let replace = |name: &'static str, value: &'static str| {
        let mut p = part.clone();
        p.iter_mut().find(|(k, _)| *k == name).unwrap().1 = value;
        p
    };
    for bad in [
        replace("concat-part", "5"),
        replace("concat-part", "0"),
        replace("concat-total", "many"),
        part.iter()
            .copied()
            .filter(|(k, _)| *k != "concat-ref")
            .collect(),
    ] {
        assert!(parse(Shape::Get, &bad).is_err(), "{bad:?}");
    }
    // A "multipart" of one part is a whole message.
    let mut whole = inbound("all of it");
    whole.extend([
        ("concat-ref", "9"),
        ("concat-total", "1"),
        ("concat-part", "1"),
    ]);
    let WebhookItem::Inbound(single) = one(Shape::Get, &whole) else {
        panic!()
    };
    assert_eq!(single.part, None);
}

#[test]
fn inbound_oddities() {
    let mut alphanumeric = inbound("hi");
    alphanumeric[0] = ("msisdn", "MTN");
    let WebhookItem::Inbound(report) = one(Shape::Get, &alphanumeric) else {
        panic!()
    };
    assert_eq!(report.from, "MTN");

    let binary = [
        ("msisdn", "14845552121"),
        ("to", "16105553939"),
        ("messageId", "02000000DA7C52E8"),
        ("type", "binary"),
        ("data", "0011223344"),
        ("udh", "050003CC0201"),
    ];
    let WebhookItem::Inbound(report) = one(Shape::Get, &binary) else {
        panic!()
    };
    assert_eq!(report.text, "0011223344");

    let no_to: Vec<_> = inbound("hi")
        .into_iter()
        .filter(|(k, _)| *k != "to")
        .collect();
    assert!(parse(Shape::Get, &no_to).is_err());
    assert!(parse(Shape::Get, &[("hello", "world")]).is_err());
    assert!(parse(Shape::Get, &[]).is_err());
}

#[test]
fn json_bodies_that_are_not_objects_are_unreadable() {
    let (conn, _) = connection(SignatureMethod::Md5Hash);
    let mut req = request(Shape::Json, &[], PHP_TIMESTAMP);
    for body in [&b"[1,2]"[..], b"\"text\"", b"{\"msisdn\":", b""] {
        req.body = Bytes::copy_from_slice(body);
        assert!(
            Vonage::default()
                .parse(&req, RouteKind::Message, &conn)
                .is_err()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Send answers

fn parts(answer: Value) -> Vec<PartResult> {
    serde_json::from_value::<SendAnswer>(answer)
        .unwrap()
        .messages
}

#[test]
fn a_long_message_keeps_every_parts_id() {
    // vonage-python-sdk `send_long_sms.json`, numbers as Vonage gives them.
    let answer = json!({"message-count": "2", "messages": [
        {"to": "1234567890", "message-id": "0C000000217B7F02", "status": "0", "remaining-balance": "38.07", "message-price": "0.0412", "network": "23420"},
        {"to": "1234567890", "message-id": "0C000000217B7F03", "status": "0", "remaining-balance": "38.03", "message-price": "0.0412", "network": "23420"},
    ]});
    let accepted = accepted_parts(&parts(answer)).unwrap();
    assert_eq!(accepted.provider_message_id, "0C000000217B7F02");
    assert_eq!(accepted.part_ids, ["0C000000217B7F02", "0C000000217B7F03"]);
    assert_eq!(accepted.status, Status::Accepted);

    let single = json!({"message-count": "1", "messages": [
        {"to": "1234567890", "message-id": "3295d748-4e14-4681-af78-166c6c5b4e1a", "status": "0"},
    ]});
    let accepted = accepted_parts(&parts(single)).unwrap();
    assert!(accepted.part_ids.is_empty());
}

#[test]
fn every_error_status_is_classified() {
    use SendErrorCode as C;
    let table = [
        ("1", C::Throttled, Retry::NotAccepted),
        ("2", C::Rejected, Retry::Never),
        ("3", C::Rejected, Retry::Never),
        ("4", C::AuthFailed, Retry::Never),
        ("5", C::ProviderUnavailable, Retry::NotAccepted),
        ("6", C::InvalidNumber, Retry::Never),
        ("7", C::Rejected, Retry::Never),
        ("8", C::AuthFailed, Retry::Never),
        ("9", C::InsufficientFunds, Retry::Never),
        ("10", C::Throttled, Retry::NotAccepted),
        ("11", C::ConfigError, Retry::Never),
        ("12", C::InvalidBody, Retry::Never),
        ("14", C::AuthFailed, Retry::Never),
        ("15", C::InvalidSender, Retry::Never),
        ("22", C::Rejected, Retry::Never),
        ("23", C::ConfigError, Retry::Never),
        ("29", C::Rejected, Retry::Never),
        ("32", C::AuthFailed, Retry::Never),
        ("33", C::InvalidNumber, Retry::Never),
        ("99", C::Rejected, Retry::Never),
    ];
    for (status, code, retry) in table {
        let answer =
            json!({"message-count": "1", "messages": [{"status": status, "error-text": "words"}]});
        let err = accepted_parts(&parts(answer)).unwrap_err();
        assert_eq!((err.code, err.retry), (code, retry), "status {status}");
        assert_eq!(err.provider_code.as_deref(), Some(status));
        assert!(err.message.contains("words"));
    }
    // A number status is read like a string one (python `send_sms_error.json` has strings).
    let numeric = json!({"messages": [{"status": 7, "error-text": "Number barred"}]});
    assert_eq!(
        accepted_parts(&parts(numeric)).unwrap_err().provider_code,
        Some("7".into())
    );
}

#[test]
fn throttle_answers_carry_their_wait() {
    assert_eq!(
        throttle_wait("Throughput Rate Exceeded - please wait [ 702 ] and retry"),
        Duration::from_millis(702)
    );
    assert_eq!(
        throttle_wait("Exceeded maximum MT throughput[ MAX [ 30 ] INTERVAL [ 1000 ] ]"),
        Duration::from_millis(1000)
    );
    assert_eq!(throttle_wait("Throttled"), DEFAULT_THROTTLE_WAIT);
    let answer = json!({"message-count": "1", "messages": [{"status": "1", "error-text": "Throughput Rate Exceeded - please wait [ 702 ] and retry"}]});
    let err = accepted_parts(&parts(answer)).unwrap_err();
    assert_eq!(err.retry_after, Some(Duration::from_millis(702)));
}

#[test]
fn a_partly_accepted_message_is_never_sent_again() {
    let answer = json!({"message-count": "2", "messages": [
        {"to": "1234567890", "message-id": "0C000000217B7F02", "status": "0"},
        {"status": "1", "error-text": "Throughput Rate Exceeded - please wait [ 702 ] and retry"},
    ]});
    let err = accepted_parts(&parts(answer)).unwrap_err();
    assert_eq!(
        (err.code, err.retry, err.retry_after),
        (SendErrorCode::Throttled, Retry::Never, None)
    );
    assert!(err.message.contains("1 of 2 parts"), "{}", err.message);
}

#[test]
fn unreadable_or_empty_answers_are_unknown_outcomes() {
    for answer in [
        json!({"message-count": "0", "messages": []}),
        json!({"messages": [{"status": "0"}]}),
    ] {
        let err = accepted_parts(&parts(answer)).unwrap_err();
        assert_eq!(
            (err.code, err.retry),
            (SendErrorCode::OutcomeUnknown, Retry::OutcomeUnknown)
        );
    }
}

#[test]
fn http_errors_are_classified() {
    use SendErrorCode as C;
    let rate = r#"{"type":"https://developer.nexmo.com/api-errors#throttled","title":"Rate Limit Hit","detail":"Please wait, then retry your request"}"#;
    let err = classify_http(429, rate, Some(Duration::from_secs(2)));
    assert_eq!(
        (err.code, err.retry, err.retry_after),
        (
            C::Throttled,
            Retry::NotAccepted,
            Some(Duration::from_secs(2))
        )
    );
    assert!(err.message.contains("Please wait"));
    let err = classify_http(
        401,
        r#"{"error-code":"401","error-code-label":"authentication failed"}"#,
        None,
    );
    assert_eq!(
        (err.code, err.provider_code.as_deref()),
        (C::AuthFailed, Some("401"))
    );
    assert_eq!(classify_http(500, "", None).retry, Retry::OutcomeUnknown);
    assert_eq!(classify_http(502, "<html>", None).code, C::OutcomeUnknown);
    assert_eq!(
        classify_http(503, "", None).retry,
        Retry::NotAccepted,
        "503: nothing was accepted"
    );
    assert_eq!(classify_http(400, "nonsense", None).code, C::Rejected);
    let messages = r#"{"messages":[{"status":"4","error-text":"Bad Credentials"}]}"#;
    assert_eq!(classify_http(401, messages, None).code, C::AuthFailed);
    let long = "x".repeat(10_000);
    assert!(
        classify_http(400, &format!(r#"{{"detail":"{long}"}}"#), None)
            .message
            .len()
            < 300
    );
}

#[test]
fn recipients_go_out_as_digits() {
    assert_eq!(vonage_number("+447700900000"), Some("447700900000"));
    assert_eq!(vonage_number("447700900000"), None);
    assert_eq!(vonage_number("+12"), None);
}

// ---------------------------------------------------------------------------------------------
// Connection fields

fn fields(overrides: Value) -> Map<String, Value> {
    let mut fields = Vonage::default().example_fields();
    if let Value::Object(o) = overrides {
        fields.extend(o);
    }
    fields
}

fn broken(overrides: Value) -> Vec<(String, String)> {
    Vonage::default()
        .validate_connection(&fields(overrides))
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| (e.field, e.rule))
        .collect()
}

#[test]
fn the_example_is_valid_and_the_method_defaults_to_md5hash() {
    let valid = Vonage::default()
        .validate_connection(&fields(json!({})))
        .unwrap();
    assert_eq!(valid.settings["apiKey"], "abcd1234");
    assert_eq!(valid.settings["from"], "14155550199");
    assert!(valid.settings.get("apiSecret").is_none());
    assert_eq!(valid.secrets.expose("apiSecret"), Some("Abcdef0123456789"));
    let mut without = fields(json!({}));
    without.remove("signatureMethod");
    let valid = Vonage::default().validate_connection(&without).unwrap();
    assert_eq!(valid.settings["signatureMethod"], "md5hash");
    let valid = Vonage::default()
        .validate_connection(&fields(
            json!({"signatureMethod": "SHA256", "from": "Qualtrics"}),
        ))
        .unwrap();
    assert_eq!(valid.settings["signatureMethod"], "sha256");
    assert_eq!(valid.settings["from"], "Qualtrics");
}

#[test]
fn every_broken_rule_is_named_and_no_secret_shown() {
    let errors = broken(json!({
        "apiKey": "abc",
        "apiSecret": "sec ret",
        "from": "+35312345678",
        "signatureSecret": "short",
        "signatureMethod": "sha384",
    }));
    let named: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        named,
        [
            "apiKey",
            "apiSecret",
            "from",
            "signatureSecret",
            "signatureMethod"
        ]
    );
    for (_, rule) in &errors {
        assert!(
            !rule.contains("sec ret") && !rule.contains("short"),
            "{rule}"
        );
    }
    assert!(errors[2].1.contains("without + or 00"));
}

#[test]
fn sender_rules() {
    for ok in ["35312345678", "12345", "Qualtrics", "My Survey 1"] {
        assert_eq!(validate_from(ok).as_deref(), Ok(ok), "{ok}");
    }
    for bad in [
        "0035312345678",
        "+35312345678",
        "0123456",
        "1234",
        "1234567890123456",
        "TooLongSenderName",
        "Survey!",
        "12 34",
    ] {
        assert!(validate_from(bad).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// Samples, acknowledgement and the guide

#[test]
fn samples_are_signed_as_vonage_signs_and_parse_as_what_they_are() {
    for method in SignatureMethod::ALL {
        let (conn, secrets) = connection(method);
        let url: Url = "https://sms.example.test/distribution-providers/v1/receive/distribution/message/vonage-sms/ORG_1".parse().unwrap();
        let events = [
            SampleEvent::Inbound {
                from: "+14155550100".into(),
                to: "13239877404".into(),
                text: "Oui, très bien & = merci".into(),
            },
            SampleEvent::Status {
                message_id: Some("m-1".into()),
                provider_message_id: "0C000000217B7F02".into(),
                provider_status: "delivered".into(),
                error_code: None,
            },
        ];
        for event in events {
            let sample = Vonage::default()
                .sample_webhook(&event, &url, &conn, &secrets)
                .unwrap();
            assert_eq!(sample.method, Method::GET);
            let req = WebhookRequest {
                method: sample.method.clone(),
                public_url: sample.url.to_string(),
                raw_path: sample.url.path().into(),
                raw_query: sample.url.query().unwrap_or_default().into(),
                headers: HeaderMap::new(),
                body: Bytes::new(),
                received_at: Utc::now(),
            };
            assert_eq!(
                Vonage::default().authenticate(&req, &conn, &secrets),
                Ok(()),
                "{method:?}"
            );
            let items = Vonage::default()
                .parse(&req, RouteKind::Message, &conn)
                .unwrap();
            match (&event, &items[0]) {
                (SampleEvent::Inbound { text, .. }, Ok(WebhookItem::Inbound(r))) => {
                    assert_eq!((&r.text, r.from.as_str()), (text, "+14155550100"));
                    assert_eq!(r.to, "+13239877404");
                }
                (SampleEvent::Status { .. }, Ok(WebhookItem::Status(r))) => {
                    assert_eq!(
                        (
                            r.provider_message_id.as_str(),
                            r.message_id.as_deref(),
                            r.status
                        ),
                        ("0C000000217B7F02", Some("m-1"), Status::Delivered)
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn the_acknowledgement_is_a_plain_200() {
    let (conn, _) = connection(SignatureMethod::Md5Hash);
    for route in [RouteKind::Message, RouteKind::Status] {
        assert_eq!(Vonage::default().acknowledge(route, &conn).status, 200);
    }
}

#[test]
fn the_guide_says_where_receipts_must_be_set() {
    let message: Url =
        "https://s.io/distribution-providers/v1/receive/distribution/message/vonage-sms/O1"
            .parse()
            .unwrap();
    let short: Url =
        "https://s.io/distribution-providers/v1/receive/distribution/status/vonage-sms/O1"
            .parse()
            .unwrap();
    let long: Url = "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/distribution-providers/v1/receive/distribution/status/vonage-sms/ORG_1".parse().unwrap();
    let guide = Vonage::default().setup_guide(&message, &short);
    assert!(guide.contains(message.as_str()) && guide.contains(short.as_str()));
    assert!(guide.contains("nothing is needed"), "{guide}");
    assert!(guide.contains("support"), "{guide}");
    let guide = Vonage::default().setup_guide(&message, &long);
    assert!(guide.contains("longer than the 100 characters"), "{guide}");
}

#[test]
fn example_secrets_never_show_in_debug() {
    let valid = Vonage::default()
        .validate_connection(&fields(json!({})))
        .unwrap();
    let shown = format!("{valid:?}");
    assert!(!shown.contains("Abcdef0123456789"));
    assert!(!shown.contains("ExampleSignatureSecret"));
}
