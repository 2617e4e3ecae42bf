//! The reference's signature vectors (Sinch's Node, Java, .NET and Python SDK suites), the
//! replay window, validation rules, the status table, payload shapes, error classification and
//! the token cache.

use super::*;
use crate::domain::Access;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

const VECTOR_SECRET: &str = "foo_secret1234";
const VECTOR_NONCE: &str = "01FJA8B4A7BM43YGWSG9GBV067";
const VECTOR_TIMESTAMP: &str = "1634579353";
const VECTOR_1_BODY: &str = r#"{"app_id":"","accepted_time":"2021-10-18T17:49:13.813615Z","project_id":"e2df3a34-a71b-4448-9db5-a8d2baad28e4","contact_create_notification":{"contact":{"id":"01FJA8B466Y0R2GNXD78MD9SM1","channel_identities":[{"channel":"SMS","identity":"48123456789","app_id":""}],"display_name":"New Test Contact","email":"new.contact@email.com","external_id":"","metadata":"","language":"EN_US"}},"message_metadata":""}"#;
const VECTOR_1_SIGNATURE: &str = "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=";
const VECTOR_2_BODY: &str = r#"{"app_id":"01EB37HMH1M6SV18BSNS3G135H","accepted_time":"2020-11-17T15:09:11.659Z","project_id":"c36f3d3d-1513-2edd-ae42-11995557ff61","message_delivery_report":{"message_id":"01EQBC1A3BEK731GY4YXEN0C2R","conversation_id":"01EPYATA64TMNZ1FV02JKF12JF","status":"QUEUED_ON_CHANNEL","contact_id":"01EXA07N79THJ20WSN6AS30TMW"}}"#;
const VECTOR_2_SIGNATURE: &str = "Yc+3R1pIS78xLASybulhs8BsSo9BPB3Pr92QCUoczfk=";
/// Vector 2's body parsed and dumped again by Python's `json.dumps` (`", "` and `": "`).
const VECTOR_2_REDUMPED_SIGNATURE: &str = "YSmA0E9wiWt/Buah6FO1/zSWre+5yOUUVfgR+neGHR4=";

const VECTOR_2_APP: &str = "01EB37HMH1M6SV18BSNS3G135H";
const VECTOR_2_PROJECT: &str = "c36f3d3d-1513-2edd-ae42-11995557ff61";

fn vector_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_634_579_353, 0).unwrap()
}

fn connection_with(
    app_id: &str,
    project_id: &str,
    secret: &str,
) -> (Connection, ConnectionSecrets) {
    let mut settings = Map::new();
    for (k, v) in [
        ("clientId", "2f6e1b7c-0a4d-4c3e-9b8a-5d7f6e1c2b3a"),
        ("region", "eu"),
        ("projectId", project_id),
        ("appId", app_id),
        ("from", "+46700000000"),
    ] {
        settings.insert(k.into(), json!(v));
    }
    let mut secrets = ConnectionSecrets::default();
    secrets.insert("clientSecret", "client-secret".into());
    secrets.insert("webhookSecret", secret.into());
    (
        Connection {
            org_id: "ORG_1".into(),
            connection_id: "conn_1".into(),
            provider: Provider::Sinch,
            name: "s".into(),
            access: Access::All,
            enabled: true,
            settings,
            created_at: Utc::now(),
        },
        secrets,
    )
}

fn connection() -> (Connection, ConnectionSecrets) {
    connection_with(VECTOR_2_APP, VECTOR_2_PROJECT, VECTOR_SECRET)
}

/// A JSON POST with the given signature headers (`None` leaves a header out).
fn signed_request(
    body: &[u8],
    headers: [Option<&str>; 4],
    received_at: DateTime<Utc>,
) -> WebhookRequest {
    let mut map = HeaderMap::new();
    map.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in [
        SIGNATURE_HEADER,
        NONCE_HEADER,
        TIMESTAMP_HEADER,
        ALGORITHM_HEADER,
    ]
    .into_iter()
    .zip(headers)
    {
        if let Some(value) = value {
            map.insert(name, HeaderValue::from_str(value).unwrap());
        }
    }
    WebhookRequest {
        method: Method::POST,
        public_url: "https://h/distribution-providers/v1/receive/distribution/status/sinch/ORG_1"
            .into(),
        raw_path: "/distribution-providers/v1/receive/distribution/status/sinch/ORG_1".into(),
        raw_query: String::new(),
        headers: map,
        body: Bytes::copy_from_slice(body),
        received_at,
    }
}

fn vector_request(body: &str, signature: &str) -> WebhookRequest {
    signed_request(
        body.as_bytes(),
        [
            Some(signature),
            Some(VECTOR_NONCE),
            Some(VECTOR_TIMESTAMP),
            Some(ALGORITHM),
        ],
        vector_time(),
    )
}

/// A request signed now with the vector secret.
fn fresh_request(body: &str) -> WebhookRequest {
    let now = Utc::now().timestamp().to_string();
    let sig = signature(VECTOR_SECRET, body.as_bytes(), VECTOR_NONCE, &now);
    signed_request(
        body.as_bytes(),
        [Some(&sig), Some(VECTOR_NONCE), Some(&now), Some(ALGORITHM)],
        Utc::now(),
    )
}

#[test]
fn signature_vectors() {
    assert_eq!(VECTOR_1_BODY.len(), 405);
    assert_eq!(VECTOR_2_BODY.len(), 322);
    assert_eq!(
        signature(
            VECTOR_SECRET,
            VECTOR_1_BODY.as_bytes(),
            VECTOR_NONCE,
            VECTOR_TIMESTAMP
        ),
        VECTOR_1_SIGNATURE
    );
    assert_eq!(
        signature(
            VECTOR_SECRET,
            VECTOR_2_BODY.as_bytes(),
            VECTOR_NONCE,
            VECTOR_TIMESTAMP
        ),
        VECTOR_2_SIGNATURE
    );
}

/// The negative vector: the same callback re-serialized (as the Python SDK's validator does)
/// signs differently, which is why only the received bytes are ever signed.
#[test]
fn a_reserialized_body_does_not_verify() {
    let redumped = VECTOR_2_BODY.replace("\":", "\": ").replace(",\"", ", \"");
    assert_ne!(redumped, VECTOR_2_BODY);
    assert_eq!(
        signature(
            VECTOR_SECRET,
            redumped.as_bytes(),
            VECTOR_NONCE,
            VECTOR_TIMESTAMP
        ),
        VECTOR_2_REDUMPED_SIGNATURE
    );
    let (conn, secrets) = connection();
    assert_eq!(
        Sinch::default().authenticate(
            &vector_request(&redumped, VECTOR_2_SIGNATURE),
            &conn,
            &secrets
        ),
        Err(AuthError::Invalid("x-sinch-webhook-signature"))
    );
}

/// The Node SDK's signed-data check: `body.nonce.timestamp`.
#[test]
fn signed_data_is_body_dot_nonce_dot_timestamp() {
    let mut mac = HmacSha256::new_from_slice(b"k").unwrap();
    mac.update(b"body.nonce.timestamp");
    let direct = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(signature("k", b"body", "nonce", "timestamp"), direct);
}

#[test]
fn both_vectors_authenticate_at_their_time() {
    let (conn, secrets) = connection();
    assert_eq!(
        Sinch::default().authenticate(
            &vector_request(VECTOR_2_BODY, VECTOR_2_SIGNATURE),
            &conn,
            &secrets
        ),
        Ok(())
    );
    // Vector 1 is of another project (and of no app): its connection is that project's.
    let (conn1, secrets1) = connection_with(
        VECTOR_2_APP,
        "e2df3a34-a71b-4448-9db5-a8d2baad28e4",
        VECTOR_SECRET,
    );
    let req = vector_request(VECTOR_1_BODY, VECTOR_1_SIGNATURE);
    assert_eq!(
        Sinch::default().authenticate(&req, &conn1, &secrets1),
        Ok(())
    );
    assert_eq!(
        Sinch::default().authenticate(&req, &conn, &secrets),
        Err(AuthError::Invalid("project_id (another project)"))
    );
    // Without padding, the signature is the same bytes.
    let unpadded = VECTOR_2_SIGNATURE.trim_end_matches('=');
    assert_eq!(
        Sinch::default().authenticate(&vector_request(VECTOR_2_BODY, unpadded), &conn, &secrets),
        Ok(())
    );
}

#[test]
fn refuses_missing_headers_wrong_secrets_and_other_algorithms() {
    let (conn, secrets) = connection();
    let body = VECTOR_2_BODY.as_bytes();
    let at = vector_time();
    let auth = |headers: [Option<&str>; 4], secrets: &ConnectionSecrets| {
        Sinch::default().authenticate(&signed_request(body, headers, at), &conn, secrets)
    };
    let (s, n, t, a) = (
        Some(VECTOR_2_SIGNATURE),
        Some(VECTOR_NONCE),
        Some(VECTOR_TIMESTAMP),
        Some(ALGORITHM),
    );
    assert_eq!(
        auth([None, n, t, a], &secrets),
        Err(AuthError::Missing("x-sinch-webhook-signature header"))
    );
    assert_eq!(
        auth([s, None, t, a], &secrets),
        Err(AuthError::Missing("x-sinch-webhook-signature-nonce header"))
    );
    assert_eq!(
        auth([s, n, None, a], &secrets),
        Err(AuthError::Missing(
            "x-sinch-webhook-signature-timestamp header"
        ))
    );
    // The Java SDK's rule: the algorithm is required, and no other than HmacSHA256 is taken.
    assert_eq!(
        auth([s, n, t, None], &secrets),
        Err(AuthError::Missing(
            "x-sinch-webhook-signature-algorithm header"
        ))
    );
    assert_eq!(auth([s, n, t, Some("hmacsha256")], &secrets), Ok(()));
    assert_eq!(
        auth([s, n, t, Some("HmacSHA1")], &secrets),
        Err(AuthError::Invalid("x-sinch-webhook-signature-algorithm"))
    );
    assert_eq!(
        auth([Some("not base64!"), n, t, a], &secrets),
        Err(AuthError::Invalid("x-sinch-webhook-signature"))
    );
    assert_eq!(
        auth([Some(""), n, t, a], &secrets),
        Err(AuthError::Invalid("x-sinch-webhook-signature"))
    );
    assert_eq!(
        auth([s, Some("01FJA8B4A7BM43YGWSG9GBV068"), t, a], &secrets),
        Err(AuthError::Invalid("x-sinch-webhook-signature"))
    );
    let (_, other) = connection_with(VECTOR_2_APP, VECTOR_2_PROJECT, "foo_secret1235");
    assert_eq!(
        auth([s, n, t, a], &other),
        Err(AuthError::Invalid("x-sinch-webhook-signature"))
    );
    // The secret is its UTF-8 bytes, not base64 to decode, and is kept with its spaces.
    let (_, spaced) = connection_with(VECTOR_2_APP, VECTOR_2_PROJECT, " foo_secret1234");
    assert!(auth([s, n, t, a], &spaced).is_err());
}

#[test]
fn the_timestamp_window_is_five_minutes_both_ways() {
    let (conn, secrets) = connection();
    let body = VECTOR_2_BODY.as_bytes();
    let at = |offset: i64| vector_time() + chrono::Duration::seconds(offset);
    let auth = |received: DateTime<Utc>| {
        let headers = [
            Some(VECTOR_2_SIGNATURE),
            Some(VECTOR_NONCE),
            Some(VECTOR_TIMESTAMP),
            Some(ALGORITHM),
        ];
        Sinch::default().authenticate(&signed_request(body, headers, received), &conn, &secrets)
    };
    let stale = Err(AuthError::Invalid(
        "x-sinch-webhook-signature-timestamp (more than 5 minutes from now)",
    ));
    assert_eq!(auth(at(300)), Ok(()));
    assert_eq!(auth(at(-300)), Ok(()));
    assert_eq!(auth(at(301)), stale, "stale");
    assert_eq!(auth(at(-301)), stale, "from the future");
    let headers = [
        Some(VECTOR_2_SIGNATURE),
        Some(VECTOR_NONCE),
        Some("16345793.53"),
        Some(ALGORITHM),
    ];
    assert_eq!(
        Sinch::default().authenticate(&signed_request(body, headers, at(0)), &conn, &secrets),
        Err(AuthError::Invalid(
            "x-sinch-webhook-signature-timestamp (not Unix seconds)"
        ))
    );
}

#[test]
fn a_callback_of_another_app_is_refused() {
    let (conn, secrets) = connection_with(
        "01E3S8B6YCMRNR0GGM94H80ACX",
        VECTOR_2_PROJECT,
        VECTOR_SECRET,
    );
    assert_eq!(
        Sinch::default().authenticate(
            &vector_request(VECTOR_2_BODY, VECTOR_2_SIGNATURE),
            &conn,
            &secrets
        ),
        Err(AuthError::Invalid("app_id (another Conversation app)"))
    );
}

#[test]
fn only_json_is_taken() {
    let mut req = fresh_request("{}");
    assert_eq!(Sinch::default().check_media_type(&req), Ok(()));
    req.headers.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    assert_eq!(Sinch::default().check_media_type(&req), Ok(()));
    req.headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    assert!(Sinch::default().check_media_type(&req).is_err());
    req.headers.remove("content-type");
    assert_eq!(
        Sinch::default().check_media_type(&req),
        Err(UnsupportedMediaType("(none)".into()))
    );
}

// ---------------------------------------------------------------------------------------------

#[test]
fn status_table() {
    for (word, reason, status) in [
        ("QUEUED_ON_CHANNEL", None, Status::Sent),
        ("SWITCHING_CHANNEL", None, Status::Queued),
        ("DELIVERED", None, Status::Delivered),
        ("READ", None, Status::Read),
        (
            "FAILED",
            Some("RECIPIENT_NOT_REACHABLE"),
            Status::Undelivered,
        ),
        ("FAILED", Some("DELIVERY_TIMED_OUT"), Status::Undelivered),
        ("FAILED", Some("MESSAGE_EXPIRED"), Status::Undelivered),
        (
            "FAILED",
            Some("DELIVERY_REPORT_TIME_OUT"),
            Status::Undelivered,
        ),
        (
            "FAILED",
            Some("RECIPIENT_NOT_OPTED_IN"),
            Status::Undelivered,
        ),
        ("FAILED", Some("BAD_REQUEST"), Status::Failed),
        ("FAILED", Some("CHANNEL_FAILURE"), Status::Failed),
        ("FAILED", Some("CHANNEL_REJECT"), Status::Failed),
        (
            "FAILED",
            Some("RECIPIENT_INVALID_CHANNEL_IDENTITY"),
            Status::Failed,
        ),
        (
            "FAILED",
            Some("DELIVERY_REJECTED_DUE_TO_POLICY"),
            Status::Failed,
        ),
        ("FAILED", Some("RATE_LIMITED"), Status::Failed),
        ("FAILED", Some("INTERNAL_ERROR"), Status::Failed),
        ("FAILED", None, Status::Failed),
        // Sinch's internal state, never reported; our lower-case words are not Sinch's.
        ("QUEUED", None, Status::Unknown),
        ("delivered", None, Status::Unknown),
        ("EXPLODED", None, Status::Unknown),
        ("", None, Status::Unknown),
    ] {
        assert_eq!(normalize_status(word, reason), status, "{word} {reason:?}");
    }
}

fn parse(body: &str, route: RouteKind) -> Result<ParsedItems, ParseError> {
    Sinch::default().parse(&fresh_request(body), route, &connection().0)
}

fn only_item(body: &str, route: RouteKind) -> WebhookItem {
    let mut items = parse(body, route).unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    items.remove(0).unwrap()
}

#[test]
fn parses_a_failed_delivery_report_with_our_id() {
    let body = json!({
        "app_id": VECTOR_2_APP, "project_id": VECTOR_2_PROJECT,
        "accepted_time": "2020-11-17T16:01:06.374Z", "event_time": "2020-11-17T16:01:07Z",
        "correlation_id": "dist-42/recipient-7",
        "message_delivery_report": {
            "message_id": "01EQBF0BT63J7S1FEKJZ0Z08VD", "conversation_id": "", "status": "FAILED",
            "channel_identity": { "channel": "SMS", "identity": "12345678910", "app_id": "" },
            "contact_id": "",
            "reason": { "code": "RECIPIENT_NOT_REACHABLE", "description": "...", "sub_code": "UNSPECIFIED_SUB_CODE" },
            "metadata": "dist-42/recipient-7", "processing_mode": "DISPATCH"
        }
    })
    .to_string();
    let WebhookItem::Status(report) = only_item(&body, RouteKind::Status) else {
        panic!()
    };
    assert_eq!(report.provider_message_id, "01EQBF0BT63J7S1FEKJZ0Z08VD");
    assert_eq!(report.message_id.as_deref(), Some("dist-42/recipient-7"));
    assert_eq!(report.status, Status::Undelivered);
    assert_eq!(report.provider_status, "FAILED");
    assert_eq!(
        report.error_code.as_deref(),
        Some("RECIPIENT_NOT_REACHABLE")
    );
    assert_eq!(report.recipient.as_deref(), Some("+12345678910"));
    assert_eq!(
        report.occurred_at,
        Some(
            DateTime::parse_from_rfc3339("2020-11-17T16:01:07Z")
                .unwrap()
                .to_utc()
        )
    );
    assert_eq!(
        report.dedupe_key,
        "status:01EQBF0BT63J7S1FEKJZ0Z08VD:FAILED"
    );
    assert!(!report.opt_out);
}

#[test]
fn our_id_comes_from_metadata_then_correlation_id_and_only_when_valid() {
    let report = |metadata: &str, correlation: Option<&str>| {
        let mut body = json!({
            "app_id": VECTOR_2_APP,
            "message_delivery_report": {"message_id": "01A", "status": "DELIVERED", "metadata": metadata}
        });
        if let Some(c) = correlation {
            body["correlation_id"] = json!(c);
        }
        match only_item(&body.to_string(), RouteKind::Status) {
            WebhookItem::Status(r) => r.message_id,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(report("m1", Some("m2")).as_deref(), Some("m1"));
    assert_eq!(report("", Some("m2")).as_deref(), Some("m2"));
    assert_eq!(report("has spaces", Some("m2")).as_deref(), Some("m2"));
    assert_eq!(report(&"x".repeat(101), None), None);
    assert_eq!(report("", None), None);
}

#[test]
fn vector_2_is_a_queued_on_channel_report() {
    let req = vector_request(VECTOR_2_BODY, VECTOR_2_SIGNATURE);
    let items = Sinch::default()
        .parse(&req, RouteKind::Status, &connection().0)
        .unwrap();
    let Ok(WebhookItem::Status(report)) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(
        (
            report.status,
            report.message_id.as_deref(),
            report.recipient.as_deref()
        ),
        (Status::Sent, None, None)
    );
}

const INBOUND: &str = r#"{"app_id":"01EB37HMH1M6SV18BSNS3G135H","project_id":"c36f3d3d-1513-2edd-ae42-11995557ff61","accepted_time":"2020-04-24T08:02:50.184581Z","event_time":"2020-04-24T08:02:50.1Z","message_metadata":"","message":{"id":"01E6NKBV63YG6K01ENEW7S1N80","direction":"TO_APP","contact_message":{"text_message":{"text":"5"}},"channel_identity":{"channel":"SMS","identity":"46732001122","app_id":""},"conversation_id":"","contact_id":"","metadata":"","accept_time":"2020-04-24T08:02:50.179021Z","sender_id":"46700000000","processing_mode":"DISPATCH"}}"#;

#[test]
fn parses_an_inbound_text_on_either_route() {
    for route in [RouteKind::Message, RouteKind::Status] {
        let WebhookItem::Inbound(reply) = only_item(INBOUND, route) else {
            panic!()
        };
        assert_eq!(reply.provider_message_id, "01E6NKBV63YG6K01ENEW7S1N80");
        assert_eq!(reply.from, "+46732001122");
        assert_eq!(reply.to, "+46700000000");
        assert_eq!(reply.text, "5");
        assert_eq!(reply.dedupe_key, "inbound:01E6NKBV63YG6K01ENEW7S1N80");
        assert_eq!(reply.reply_to, None);
        assert_eq!(reply.part, None);
        assert_eq!(
            reply.occurred_at,
            Some(
                DateTime::parse_from_rfc3339("2020-04-24T08:02:50.179021Z")
                    .unwrap()
                    .to_utc()
            )
        );
    }
}

#[test]
fn inbound_content_of_every_kind_becomes_text() {
    let with = |contact: Value| {
        let mut body: Value = serde_json::from_str(INBOUND).unwrap();
        body["message"]["contact_message"] = contact;
        match only_item(&body.to_string(), RouteKind::Message) {
            WebhookItem::Inbound(r) => (r.text, r.reply_to),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        with(json!({"media_message": {"url": "https://m/1.jpg"}})).0,
        "https://m/1.jpg"
    );
    assert_eq!(
        with(json!({"choice_response_message": {"message_id": "x", "postback_data": "yes"}})).0,
        "yes"
    );
    assert_eq!(
        with(json!({"fallback_message": {"raw_message": "raw", "reason": {}}})).0,
        "raw"
    );
    assert_eq!(
        with(json!({"location_message": {"title": "Home", "coordinates": {"latitude": 1.5, "longitude": 2}}})).0,
        "Home (1.5, 2)"
    );
    assert_eq!(
        with(json!({"text_message": {"text": "5"}, "reply_to": {"message_id": "01ABC"}})).1,
        Some(ReplyTo::ProviderMessageId("01ABC".into()))
    );
    // Without sender_id, the number texted is the connection's own.
    let mut body: Value = serde_json::from_str(INBOUND).unwrap();
    body["message"].as_object_mut().unwrap().remove("sender_id");
    let WebhookItem::Inbound(reply) = only_item(&body.to_string(), RouteKind::Message) else {
        panic!()
    };
    assert_eq!(reply.to, "+46700000000");
}

#[test]
fn timestamps_with_zero_to_nine_fraction_digits_are_read() {
    for fraction in [
        "",
        ".1",
        ".18",
        ".184",
        ".1845",
        ".18458",
        ".184581",
        ".1845812",
        ".18458123",
        ".184581234",
    ] {
        let time = format!("2020-04-24T08:02:50{fraction}Z");
        let body = json!({
            "app_id": VECTOR_2_APP, "event_time": time,
            "message_delivery_report": {"message_id": "01A", "status": "DELIVERED"}
        });
        let WebhookItem::Status(report) = only_item(&body.to_string(), RouteKind::Status) else {
            panic!()
        };
        let at = report.occurred_at.unwrap_or_else(|| panic!("{time}"));
        assert_eq!(at.timestamp(), 1_587_715_370, "{time}");
    }
}

#[test]
fn event_deliveries_unknown_words_and_other_triggers() {
    let event = json!({
        "app_id": VECTOR_2_APP,
        "event_delivery_report": {"event_id": "01EV", "status": "FAILED", "reason": {"code": "UNSUPPORTED_OPERATION"}}
    });
    let WebhookItem::Status(report) = only_item(&event.to_string(), RouteKind::Message) else {
        panic!()
    };
    assert_eq!(
        (
            report.provider_message_id.as_str(),
            report.status,
            report.dedupe_key.as_str()
        ),
        ("01EV", Status::Failed, "event:01EV:FAILED")
    );

    let unknown = json!({
        "app_id": VECTOR_2_APP,
        "message_delivery_report": {"message_id": "01A", "status": "BOUNCED_OFF_THE_MOON"}
    });
    let WebhookItem::Status(report) = only_item(&unknown.to_string(), RouteKind::Status) else {
        panic!()
    };
    assert_eq!(
        (report.status, report.provider_status.as_str()),
        (Status::Unknown, "BOUNCED_OFF_THE_MOON")
    );

    // Vector 1, a contact notification: answered, nothing to record.
    assert!(parse(VECTOR_1_BODY, RouteKind::Message).unwrap().is_empty());
}

#[test]
fn a_batch_keeps_its_good_items() {
    let body = format!(
        r#"[{INBOUND}, {{"app_id":"{VECTOR_2_APP}","message_delivery_report":{{"status":"DELIVERED"}}}}, 7]"#
    );
    let items = parse(&body, RouteKind::Message).unwrap();
    assert_eq!(items.len(), 3);
    assert!(matches!(items[0], Ok(WebhookItem::Inbound(_))));
    assert_eq!(
        items[1],
        Err(ParseError(
            "message_delivery_report has no message_id".into()
        ))
    );
    assert!(items[2].is_err());
}

#[test]
fn refuses_what_it_cannot_read() {
    for (body, why) in [
        ("", "body is not valid JSON"),
        (&INBOUND[..INBOUND.len() / 2], "body is not valid JSON"),
        ("[]", "an empty array"),
        (r#"{"hello":"world"}"#, "not a Sinch Conversation callback"),
        (r#""text""#, "a Sinch callback is a JSON object"),
    ] {
        let err = match parse(body, RouteKind::Message) {
            Ok(items) => match items.into_iter().next() {
                Some(Err(e)) => e,
                other => panic!("{body:?}: {other:?}"),
            },
            Err(e) => e,
        };
        assert!(err.0.contains(why), "{body:?}: {err}");
    }
    for (body, why) in [
        (
            json!({"app_id": "x", "message": "hi"}),
            "message is not an object",
        ),
        (
            json!({"app_id": "x", "message": {"id": "1", "channel_identity": {"identity": "4670"}}}),
            "no contact_message",
        ),
        (
            json!({"app_id": "x", "message": {"id": "1", "contact_message": {"text_message": {"text": "5"}}}}),
            "no channel_identity.identity",
        ),
        (
            json!({"app_id": "x", "message": {"channel_identity": {"identity": "46700000001"}, "contact_message": {}}}),
            "no id",
        ),
        (
            json!({"app_id": "x", "message": {"id": "1", "channel_identity": {"identity": "46700000001"}, "contact_message": {"card_message": {}}}}),
            "no text, media",
        ),
        (
            json!({"app_id": "x", "message_delivery_report": {"message_id": "1"}}),
            "has no status",
        ),
        (
            json!({"app_id": "x", "message_delivery_report": []}),
            "is not an object",
        ),
    ] {
        let items = parse(&body.to_string(), RouteKind::Message).unwrap();
        match &items[..] {
            [Err(e)] => assert!(e.0.contains(why), "{body}: {e}"),
            other => panic!("{body}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn fields(overrides: Value) -> Map<String, Value> {
    let mut fields = Sinch::default().example_fields();
    if let Value::Object(o) = overrides {
        fields.extend(o);
    }
    fields
}

#[test]
fn validation_normalizes_what_it_keeps() {
    let valid = Sinch::default()
        .validate_connection(&fields(json!({
            "region": "EU", "appId": "01e3s8b6ycmrnr0ggm94h80acx",
            "projectId": "C36F3D3D-1513-2EDD-AE42-11995557FF61", "from": "35312345678",
            "clientSecret": " spaced secret "
        })))
        .unwrap();
    assert_eq!(valid.settings["region"], "eu");
    assert_eq!(valid.settings["appId"], "01E3S8B6YCMRNR0GGM94H80ACX");
    assert_eq!(
        valid.settings["projectId"],
        "c36f3d3d-1513-2edd-ae42-11995557ff61"
    );
    assert_eq!(valid.settings["from"], "+35312345678");
    assert_eq!(
        valid.secrets.expose("clientSecret"),
        Some(" spaced secret ")
    );
    assert!(!valid.settings.contains_key("clientSecret"));
    assert!(!valid.settings.contains_key("webhookSecret"));

    let from = |from: &str| {
        Sinch::default()
            .validate_connection(&fields(json!({ "from": from })))
            .map(|v| v.settings["from"].as_str().unwrap().to_string())
    };
    assert_eq!(from("+46700000000").unwrap(), "+46700000000");
    assert_eq!(from("0046700000000").unwrap(), "+46700000000");
    assert_eq!(from("Qualtrics").unwrap(), "Qualtrics");
    assert_eq!(from("72345").unwrap(), "72345");
    assert!(from("TwelveChars1").is_err());
    assert!(from("+123").is_err());
    assert!(from("Qual_trics").is_err());

    // from is optional: without it Sinch uses the service plan's default originator.
    let mut without = fields(json!({}));
    without.remove("from");
    assert!(
        !Sinch::default()
            .validate_connection(&without)
            .unwrap()
            .settings
            .contains_key("from")
    );
}

#[test]
fn validation_names_every_broken_rule_and_never_a_secret() {
    let secret = "Zq7-secret\nwith-a-line-break";
    let err = Sinch::default()
        .validate_connection(&fields(json!({
            "clientId": "id:with-colon", "clientSecret": secret, "region": "br",
            "projectId": "project-1", "from": "+0", "appId": "app 1",
            "webhookSecret": "", "extra": true
        })))
        .unwrap_err();
    let text = err.to_string();
    for expected in [
        "clientId: must be the access key's Key ID",
        "clientSecret: must not contain control characters",
        "region: must be eu or us",
        "projectId: must be the project's UUID",
        "from: must be a number with its country code",
        "appId: must be the Conversation app's id",
        "webhookSecret: must not be empty",
        "extra: is not a field of this provider",
    ] {
        assert!(text.contains(expected), "{expected:?} not in {text}");
    }
    assert!(!text.contains("Zq7-secret"), "a secret leaked into {text}");
}

// ---------------------------------------------------------------------------------------------

fn outbound(to: &str) -> OutboundMessage {
    OutboundMessage {
        message_id: "dist42-r1".into(),
        to: to.into(),
        body: "Your survey: https://x.y/z".into(),
    }
}

#[test]
fn the_send_body_is_sinchs() {
    assert_eq!(
        send_body(
            "01E3S8B6YCMRNR0GGM94H80ACX",
            Some("+46700000000"),
            &outbound("+4612345678")
        ),
        json!({
            "app_id": "01E3S8B6YCMRNR0GGM94H80ACX",
            "recipient": { "identified_by": { "channel_identities": [ { "channel": "SMS", "identity": "+4612345678" } ] } },
            "message": { "text_message": { "text": "Your survey: https://x.y/z" } },
            "channel_priority_order": ["SMS"],
            "channel_properties": { "SMS_SENDER": "46700000000" },
            "message_metadata": "dist42-r1",
            "correlation_id": "dist42-r1",
            "processing_strategy": "DEFAULT",
            "ttl": "86400s"
        })
    );
    let without_sender = send_body("A", None, &outbound("+4612345678"));
    assert!(without_sender.get("channel_properties").is_none());
    assert_eq!(
        send_body("A", Some("Qualtrics"), &outbound("+4612345678"))["channel_properties"]["SMS_SENDER"],
        "Qualtrics"
    );
}

#[test]
fn region_hosts_and_overrides() {
    let sinch = Sinch::default();
    assert_eq!(
        sinch.send_endpoint("eu", "p-1"),
        "https://eu.conversation.api.sinch.com/v1/projects/p-1/messages:send"
    );
    assert_eq!(
        sinch.send_endpoint("us", "p-1"),
        "https://us.conversation.api.sinch.com/v1/projects/p-1/messages:send"
    );
    assert_eq!(
        sinch.token_endpoint(),
        "https://auth.sinch.com/oauth2/token"
    );
    let base = Url::parse("http://127.0.0.1:4010/sinch").unwrap();
    let sandbox = Sinch::new(Some(base.clone()), Some(base));
    assert_eq!(
        sandbox.send_endpoint("us", "p-1"),
        "http://127.0.0.1:4010/sinch/v1/projects/p-1/messages:send"
    );
    assert_eq!(
        sandbox.token_endpoint(),
        "http://127.0.0.1:4010/sinch/oauth2/token"
    );
}

fn rpc(code: u16, status: &str, details: Value) -> String {
    json!({"error": {"code": code, "message": format!("{status} happened"), "status": status, "details": details}})
        .to_string()
}

#[test]
fn send_errors_are_classified() {
    let c = |http: u16, body: &str| {
        let e = classify(http, body, "eu");
        (e.code, e.retry, e.provider_code)
    };
    let violation = |field: &str| json!([{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": field, "description": "bad"}]}]);
    use SendErrorCode as C;
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        c(
            400,
            &rpc(
                400,
                "INVALID_ARGUMENT",
                violation("recipient.identified_by.channel_identities[0].identity")
            )
        ),
        (C::InvalidNumber, Retry::Never, some("INVALID_ARGUMENT"))
    );
    assert_eq!(
        c(
            400,
            &rpc(
                400,
                "INVALID_ARGUMENT",
                violation("channel_properties.SMS_SENDER")
            )
        ),
        (C::InvalidSender, Retry::Never, some("INVALID_ARGUMENT"))
    );
    assert_eq!(
        c(
            400,
            &rpc(
                400,
                "INVALID_ARGUMENT",
                violation("message.text_message.text")
            )
        ),
        (C::InvalidBody, Retry::Never, some("INVALID_ARGUMENT"))
    );
    assert_eq!(
        c(400, &rpc(400, "INVALID_ARGUMENT", json!([]))),
        (C::Rejected, Retry::Never, some("INVALID_ARGUMENT"))
    );
    assert_eq!(
        c(401, &rpc(401, "UNAUTHENTICATED", json!([]))).0,
        C::AuthFailed
    );
    assert_eq!(
        c(403, &rpc(403, "PERMISSION_DENIED", json!([]))),
        (C::AuthFailed, Retry::Never, some("PERMISSION_DENIED"))
    );
    assert_eq!(c(404, &rpc(404, "NOT_FOUND", json!([]))).0, C::ConfigError);
    assert!(classify(404, "", "us").message.contains("us region"));
    assert_eq!(
        c(429, &rpc(429, "RESOURCE_EXHAUSTED", json!([]))),
        (C::Throttled, Retry::NotAccepted, some("RESOURCE_EXHAUSTED"))
    );
    assert_eq!(
        c(503, &rpc(503, "UNAVAILABLE", json!([]))),
        (
            C::ProviderUnavailable,
            Retry::NotAccepted,
            some("UNAVAILABLE")
        )
    );
    assert_eq!(
        c(500, "<html>oops</html>"),
        (C::OutcomeUnknown, Retry::OutcomeUnknown, some("500"))
    );
    assert_eq!(c(504, "").1, Retry::OutcomeUnknown);
    assert_eq!(c(409, "").0, C::Rejected);
}

#[test]
fn retry_info_becomes_the_wait_and_provider_words_an_excerpt() {
    let body = rpc(
        429,
        "RESOURCE_EXHAUSTED",
        json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]),
    );
    assert_eq!(
        classify(429, &body, "eu").retry_after,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
    assert_eq!(parse_duration("-1s"), None);
    assert_eq!(parse_duration("2"), None);
    let long = json!({"error": {"message": format!("Bad\n{}", "x".repeat(5000)), "status": "INVALID_ARGUMENT"}});
    let e = classify(400, &long.to_string(), "eu");
    assert!(e.message.chars().count() <= crate::providers::http::ERROR_EXCERPT_CHARS);
    assert!(e.message.starts_with("Bad xxx"), "{}", e.message);
    assert_eq!(classify(502, "", "eu").message, "Sinch answered HTTP 502");
}

#[test]
fn a_token_is_replaced_shortly_before_it_expires() {
    let now = std::time::Instant::now();
    assert_eq!(
        token::refresh_at(now, Duration::from_secs(3600)),
        now + Duration::from_secs(3540)
    );
    // A short-lived token is used for the first half of its life.
    assert_eq!(
        token::refresh_at(now, Duration::from_secs(2)),
        now + Duration::from_secs(1)
    );
}

#[test]
fn sample_webhooks_authenticate_and_parse() {
    let (conn, secrets) = connection();
    let url = Url::parse(
        "http://127.0.0.1:8787/distribution-providers/v1/receive/distribution/message/sinch/ORG_1",
    )
    .unwrap();
    let sinch = Sinch::default();
    let as_request = |signed: &SignedRequest| {
        let mut headers = HeaderMap::new();
        for (k, v) in &signed.headers {
            headers.insert(
                http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        WebhookRequest {
            method: signed.method.clone(),
            public_url: signed.url.to_string(),
            raw_path: signed.url.path().into(),
            raw_query: String::new(),
            headers,
            body: Bytes::from(signed.body.clone()),
            received_at: Utc::now(),
        }
    };
    let inbound = SampleEvent::Inbound {
        from: "+14155550100".into(),
        to: "+46700000000".into(),
        text: "5".into(),
    };
    let signed = sinch
        .sample_webhook(&inbound, &url, &conn, &secrets)
        .unwrap();
    let req = as_request(&signed);
    assert_eq!(sinch.authenticate(&req, &conn, &secrets), Ok(()));
    let items = sinch.parse(&req, RouteKind::Message, &conn).unwrap();
    let Ok(WebhookItem::Inbound(reply)) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(
        (reply.from.as_str(), reply.to.as_str()),
        ("+14155550100", "+46700000000")
    );
    assert_eq!(reply.provider_message_id.len(), 26);

    let status = SampleEvent::Status {
        message_id: Some("m1".into()),
        provider_message_id: "01EQBC1A3BEK731GY4YXEN0C2R".into(),
        provider_status: "failed".into(),
        error_code: Some("MESSAGE_EXPIRED".into()),
    };
    let signed = sinch
        .sample_webhook(&status, &url, &conn, &secrets)
        .unwrap();
    let req = as_request(&signed);
    assert_eq!(sinch.authenticate(&req, &conn, &secrets), Ok(()));
    let items = sinch.parse(&req, RouteKind::Status, &conn).unwrap();
    let Ok(WebhookItem::Status(report)) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(
        (
            report.message_id.as_deref(),
            report.provider_status.as_str(),
            report.status
        ),
        (Some("m1"), "FAILED", Status::Undelivered)
    );
}

#[test]
fn ulids_are_crockford_and_carry_the_time() {
    let at = DateTime::from_timestamp_millis(1_469_918_176_385).unwrap();
    let id = ulid_like(at);
    assert_eq!(id.len(), 26);
    // The ULID spec's example time encodes as 01ARYZ6S41.
    assert_eq!(&id[..10], "01ARYZ6S41");
    assert!(
        id.bytes()
            .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b))
    );
    assert_ne!(ulid_like(at), id);
    assert!(validate_app_id(&id).is_ok());
}

#[test]
fn debug_never_shows_a_token() {
    let shown = format!("{:?}", Sinch::default());
    assert!(shown.contains("TokenCache"), "{shown}");
}

// ---------------------------------------------------------------------------------------------

/// The example connection, validated, as the connection store would hold it.
fn example_connection() -> (Connection, ConnectionSecrets) {
    let valid = Sinch::default()
        .validate_connection(&Sinch::default().example_fields())
        .unwrap();
    let (mut connection, _) = connection();
    connection.settings = valid.settings;
    (connection, valid.secrets)
}

async fn send_to(
    sinch: &Sinch,
    connection: &Connection,
    secrets: &ConnectionSecrets,
    to: &str,
) -> Result<Accepted, SendError> {
    let http = crate::providers::http::ProviderHttp::new();
    let ctx = SendContext {
        http: &http,
        connection,
        secrets,
        status_callback: None,
        inbound_callback: None,
    };
    sinch.send(&ctx, &outbound(to)).await
}

#[tokio::test]
async fn a_refused_token_is_fetched_again_once() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let token = |t: &str| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": t, "expires_in": 3600, "token_type": "bearer"}))
    };
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(token("first"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(token("second"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer first"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer second"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message_id": "01EQBC1A3BEK731GY4YXEN0C2R", "accepted_time": "2024-06-18T12:34:56Z"})))
        .expect(1)
        .mount(&server)
        .await;
    let base = Url::parse(&server.uri()).unwrap();
    let sinch = Sinch::new(Some(base.clone()), Some(base));
    let (connection, secrets) = example_connection();
    let accepted = send_to(&sinch, &connection, &secrets, "+4612345678")
        .await
        .unwrap();
    assert_eq!(accepted.provider_message_id, "01EQBC1A3BEK731GY4YXEN0C2R");
    assert_eq!(accepted.status, Status::Accepted);
}

#[tokio::test]
async fn token_endpoint_failures_never_send_and_say_so() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    for (status, code, retry) in [
        (401, SendErrorCode::AuthFailed, Retry::Never),
        (429, SendErrorCode::Throttled, Retry::NotAccepted),
        (500, SendErrorCode::ProviderUnavailable, Retry::NotAccepted),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth2/token"))
            .respond_with(
                ResponseTemplate::new(status).set_body_json(json!({"error": "invalid_client"})),
            )
            .mount(&server)
            .await;
        Mock::given(path(
            "/v1/projects/c36f3d3d-1513-2edd-ae42-11995557ff61/messages:send",
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
        let base = Url::parse(&server.uri()).unwrap();
        let sinch = Sinch::new(Some(base.clone()), Some(base));
        let (connection, secrets) = example_connection();
        let err = send_to(&sinch, &connection, &secrets, "+4612345678")
            .await
            .unwrap_err();
        assert_eq!((err.code, err.retry), (code, retry), "{status}: {err}");
        assert!(!err.message.contains("example~client.secret"), "{err}");
    }
}

/// The stand-in checks what Sinch checks, seen through the adapter that talks to it.
#[cfg(feature = "stand-in")]
#[tokio::test]
async fn the_stand_in_refuses_what_sinch_refuses() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().nest("/sinch", stand_in::stand_in().router);
    tokio::spawn(async move { axum::serve(listener, router).await });
    let base = Url::parse(&format!("http://{addr}/sinch")).unwrap();
    let sinch = Sinch::new(Some(base.clone()), Some(base));
    let (connection, secrets) = example_connection();

    let accepted = send_to(&sinch, &connection, &secrets, "+14155550100")
        .await
        .unwrap();
    assert!(
        validate_app_id(&accepted.provider_message_id).is_ok(),
        "{accepted:?}"
    );

    let not_a_number = send_to(&sinch, &connection, &secrets, "12")
        .await
        .unwrap_err();
    assert_eq!(not_a_number.code, SendErrorCode::InvalidNumber);

    for (number, code) in stand_in::stand_in().error_numbers {
        let err = send_to(&sinch, &connection, &secrets, number)
            .await
            .unwrap_err();
        assert_eq!(err.code, code, "{number}: {err}");
    }
    let throttled = send_to(&sinch, &connection, &secrets, "+46700000003")
        .await
        .unwrap_err();
    assert_eq!(throttled.retry_after, Some(Duration::from_millis(200)));

    let mut no_secret = ConnectionSecrets::default();
    no_secret.insert("clientSecret", String::new());
    no_secret.insert("webhookSecret", "w".into());
    let refused = send_to(&sinch, &connection, &no_secret, "+14155550100")
        .await
        .unwrap_err();
    assert_eq!(refused.code, SendErrorCode::AuthFailed);
}
