//! The reference's vectors (RFC 7617's Basic example; the PSWin-style negative cases), the
//! resultCode table, every payload shape, error classification and the validation rules.

use super::*;
use crate::domain::Access;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

const ALADDIN: &str = "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==";

/// The DLR example of the MT doc, as the reference quotes it.
const DLR_EXAMPLE: &str = r#"{"refId":"0","id":"0","operator":"no.telenor","sentTimestamp":"2015-11-19T09:37:35Z","timestamp":"2015-11-19T09:37:00Z","resultCode":1001,"operatorResultCode":"2","segments":1,"gateCustomParameters":{},"customParameters":{"received":"2015-11-19 10:37:36"}}"#;

fn mo_example(partner: &str) -> String {
    json!({
        "destination": "NO-2333",
        "subNumber": null,
        "source": "+4741560067",
        "content": {"type": "SMS", "userData": "5", "encoding": "TEXT"},
        "operator": "no.telenor",
        "timestamp": "2021-04-29T10:00:00Z",
        "messageId": "fPJFgT+ZqikAAAFXlRC29Rfq",
        "operatorTimestamp": null,
        "operatorMessageId": null,
        "route": {"type": "KEYWORD_ROUTE", "id": "r1", "refId": null, "gateIds": ["G1"],
                  "platformId": "COMMON_API", "platformPartnerId": partner},
        "gateCustomParameters": {},
        "customParameters": {"platformPartnerId": partner, "moReferenceId": "x",
                             "queued": "2021-04-29 12:00:00", "serviceCentreTimeStamp": "20210429120000",
                             "platformId": "COMMON_API"}
    })
    .to_string()
}

fn connection() -> (Connection, ConnectionSecrets) {
    let fields = LinkMobility::default().example_fields();
    let mut valid = LinkMobility::default()
        .validate_connection(&fields)
        .unwrap();
    valid.settings.insert("username".into(), json!("Aladdin"));
    valid.secrets.insert("password", "open sesame".into());
    (
        Connection {
            org_id: "ORG_1".into(),
            connection_id: "conn_1".into(),
            provider: Provider::Linkmobility,
            name: "l".into(),
            access: Access::All,
            enabled: true,
            settings: valid.settings,
            created_at: Utc::now(),
        },
        valid.secrets,
    )
}

fn request(
    method: Method,
    content_type: Option<&str>,
    query: &str,
    body: &[u8],
    authorization: Option<&str>,
) -> WebhookRequest {
    let mut headers = HeaderMap::new();
    if let Some(ct) = content_type {
        headers.insert("content-type", HeaderValue::from_str(ct).unwrap());
    }
    if let Some(auth) = authorization {
        headers.insert("authorization", HeaderValue::from_str(auth).unwrap());
    }
    WebhookRequest {
        method,
        public_url: format!("https://sms.example.test/status?{query}"),
        raw_path: "/status".into(),
        raw_query: query.into(),
        headers,
        body: Bytes::copy_from_slice(body),
        received_at: Utc::now(),
    }
}

fn json_post(body: &str, authorization: Option<&str>) -> WebhookRequest {
    request(
        Method::POST,
        Some("application/json"),
        "",
        body.as_bytes(),
        authorization,
    )
}

fn parse_one(request: &WebhookRequest) -> WebhookItem {
    let (conn, _) = connection();
    let mut items = LinkMobility::default()
        .parse(request, RouteKind::Status, &conn)
        .unwrap();
    assert_eq!(items.len(), 1);
    items.remove(0).unwrap()
}

fn report(request: &WebhookRequest) -> StatusReport {
    match parse_one(request) {
        WebhookItem::Status(r) => r,
        other => panic!("not a report: {other:?}"),
    }
}

// --- authentication -------------------------------------------------------------------------

#[test]
fn rfc7617_basic_vector() {
    assert_eq!(basic_authorization("Aladdin", "open sesame"), ALADDIN);
    assert_eq!(check_basic(ALADDIN, "Aladdin", "open sesame"), Ok(()));
    // The scheme is case-insensitive, the credentials are not.
    assert_eq!(
        check_basic(
            "basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "Aladdin",
            "open sesame"
        ),
        Ok(())
    );
    assert_eq!(
        check_basic(ALADDIN, "aladdin", "open sesame"),
        Err(AuthError::Invalid(BASIC_INVALID))
    );
}

/// The reference's negative cases (Altinn's PSWin tests): no auth 401, wrong user 401/403,
/// empty body 400, valid 200.
#[test]
fn altinn_style_negative_cases() {
    let (conn, secrets) = connection();
    let adapter = LinkMobility::default();
    let auth = |r: &WebhookRequest| adapter.authenticate(r, &conn, &secrets);
    assert_eq!(
        auth(&json_post(DLR_EXAMPLE, None)),
        Err(AuthError::Missing(BASIC_MISSING))
    );
    let wrong_user = basic_authorization("Aladin", "open sesame");
    assert_eq!(
        auth(&json_post(DLR_EXAMPLE, Some(&wrong_user))),
        Err(AuthError::Invalid(BASIC_INVALID))
    );
    let empty = json_post("", Some(ALADDIN));
    assert_eq!(auth(&empty), Ok(()));
    assert!(adapter.parse(&empty, RouteKind::Status, &conn).is_err());
    assert_eq!(auth(&json_post(DLR_EXAMPLE, Some(ALADDIN))), Ok(()));
}

#[test]
fn malformed_credentials_are_invalid() {
    let (conn, secrets) = connection();
    let adapter = LinkMobility::default();
    for header in [
        "",
        "Basic",
        "Basic %%%notbase64",
        "Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ",
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZSA=", // a trailing space in the password
    ] {
        assert_eq!(
            adapter.authenticate(&json_post(DLR_EXAMPLE, Some(header)), &conn, &secrets),
            Err(AuthError::Invalid(BASIC_INVALID)),
            "{header:?}"
        );
    }
    let mut no_password = ConnectionSecrets::default();
    no_password.insert("other", "x".into());
    assert_eq!(
        adapter.authenticate(&json_post(DLR_EXAMPLE, Some(ALADDIN)), &conn, &no_password),
        Err(AuthError::Invalid(BASIC_INVALID))
    );
}

#[test]
fn an_mo_of_another_platform_partner_is_not_this_connections() {
    let (conn, secrets) = connection();
    let adapter = LinkMobility::default();
    let ours = conn.setting("platformPartnerId").unwrap().to_string();
    let auth = |body: &str| adapter.authenticate(&json_post(body, Some(ALADDIN)), &conn, &secrets);
    assert_eq!(auth(&mo_example(&ours)), Ok(()));
    assert_eq!(
        auth(&mo_example("99999")),
        Err(AuthError::Invalid(PARTNER_INVALID))
    );
    // Only the copy in customParameters names it.
    let mut only_custom: Value = serde_json::from_str(&mo_example("99999")).unwrap();
    only_custom.as_object_mut().unwrap().remove("route");
    assert_eq!(
        auth(&only_custom.to_string()),
        Err(AuthError::Invalid(PARTNER_INVALID))
    );
    // A number is read as its digits.
    let numeric = mo_example(&ours).replace(&format!("\"{ours}\""), &ours);
    assert_eq!(auth(&numeric), Ok(()));
}

// --- status table ---------------------------------------------------------------------------

#[test]
fn every_result_code_of_the_table() {
    use Status::*;
    let table: &[(&[i64], Status)] = &[
        (&[1005, 1008, 1012], Queued),
        (&[1000, 1011, 1013], Sent),
        (&[1001, 1007], Delivered),
        (
            &[1002, 1004, 1006, 1009, 1010, 2104, 2105, 2106, 2107],
            Undelivered,
        ),
        (
            &[
                1003, 0, 1, 2, 3, 4, 5, 6, 104, 105, 2000, 2001, 2002, 2003, 2100, 2101, 2102,
                2103, 2200, 2201, 2202, 2203, 2204, 2205, 2206, 2207, 3000, 3001, 3002, 4000, 4001,
                4002, 4003, 4004, 4005, 4006, 4007,
            ],
            Failed,
        ),
        (
            &[
                7, 103, 106, 999, 1014, 1999, 2004, 2108, 2208, 3003, 4008, 5000, -1,
            ],
            Unknown,
        ),
    ];
    for (codes, expected) in table {
        for code in *codes {
            assert_eq!(normalize_result_code(*code), *expected, "{code}");
        }
    }
}

// --- payload shapes -------------------------------------------------------------------------

#[test]
fn the_reference_dlr_example() {
    let r = report(&json_post(DLR_EXAMPLE, Some(ALADDIN)));
    assert_eq!(r.provider_message_id, "0");
    assert_eq!(r.message_id.as_deref(), Some("0"));
    assert_eq!(
        (r.provider_status.as_str(), r.status),
        ("1001", Status::Delivered)
    );
    assert_eq!(r.error_code, None);
    assert_eq!(
        r.occurred_at,
        Some("2015-11-19T09:37:00Z".parse::<DateTime<Utc>>().unwrap())
    );
    assert_eq!(r.dedupe_key, "status:0:1001:2015-11-19T09:37:00Z");
    assert!(!r.opt_out);
    assert_eq!(r.recipient, None);
}

#[test]
fn a_part_report_keeps_its_part_id_and_failures_their_code() {
    let body = DLR_EXAMPLE
        .replace(r#""id":"0""#, r#""id":"Dcshuhod0PMAAAFQ+/PbnR3x$1""#)
        .replace("1001", "2104")
        .replace(r#""refId":"0""#, r#""refId":null"#);
    let r = report(&json_post(&body, Some(ALADDIN)));
    assert_eq!(r.provider_message_id, "Dcshuhod0PMAAAFQ+/PbnR3x$1");
    assert_eq!(r.message_id, None);
    assert_eq!(r.status, Status::Undelivered);
    assert_eq!(r.error_code.as_deref(), Some("2104"));
    assert_eq!(
        part_ids("Dcshuhod0PMAAAFQ+/PbnR3x", 3),
        [
            "Dcshuhod0PMAAAFQ+/PbnR3x$0",
            "Dcshuhod0PMAAAFQ+/PbnR3x$1",
            "Dcshuhod0PMAAAFQ+/PbnR3x$2"
        ]
    );
    assert!(part_ids("abc", 1).is_empty());
    assert!(part_ids("abc", 0).is_empty());
    assert_eq!(part_ids("abc", 100_000).len(), 254);
}

#[test]
fn unknown_codes_and_words_are_kept_as_unknown() {
    for (code, kept) in [
        ("5555", "5555"),
        (r#""DELIVRD""#, "DELIVRD"),
        (r#""1001""#, "1001"),
    ] {
        let body = DLR_EXAMPLE.replace("1001", code);
        let r = report(&json_post(&body, Some(ALADDIN)));
        assert_eq!(r.provider_status, kept);
        let expected = if kept == "1001" {
            Status::Delivered
        } else {
            Status::Unknown
        };
        assert_eq!(r.status, expected, "{code}");
    }
}

#[test]
fn an_echoed_ref_id_is_trusted_only_when_we_could_have_written_it() {
    for bad in [
        r#""has space""#,
        r#""""#,
        &format!("\"{}\"", "x".repeat(101)),
    ] {
        let body = DLR_EXAMPLE.replace(r#""refId":"0""#, &format!(r#""refId":{bad}"#));
        assert_eq!(report(&json_post(&body, Some(ALADDIN))).message_id, None);
    }
}

#[test]
fn odd_timestamps_never_refuse_a_report() {
    let body = DLR_EXAMPLE.replace("2015-11-19T09:37:00Z", "2015-11-19 10:37:00");
    let r = report(&json_post(&body, Some(ALADDIN)));
    assert_eq!(r.occurred_at, None);
    assert_eq!(r.status, Status::Delivered);
}

#[test]
fn the_mo_payload() {
    let item = parse_one(&json_post(&mo_example("12345"), Some(ALADDIN)));
    let WebhookItem::Inbound(mo) = item else {
        panic!("{item:?}")
    };
    assert_eq!(mo.provider_message_id, "fPJFgT+ZqikAAAFXlRC29Rfq");
    assert_eq!((mo.from.as_str(), mo.to.as_str()), ("+4741560067", "2333"));
    assert_eq!(mo.text, "5");
    assert_eq!(mo.dedupe_key, "inbound:fPJFgT+ZqikAAAFXlRC29Rfq");
    assert_eq!(mo.reply_to, None);
    assert_eq!(mo.part, None);
    assert_eq!(
        mo.occurred_at,
        Some("2021-04-29T10:00:00Z".parse::<DateTime<Utc>>().unwrap())
    );
}

#[test]
fn destinations_become_our_numbers() {
    assert_eq!(our_number("NO-2333"), "2333");
    assert_eq!(our_number("SE-72000"), "72000");
    assert_eq!(our_number("+4790000000"), "+4790000000");
    assert_eq!(our_number("4790000000"), "+4790000000");
    assert_eq!(our_number("no-2333"), "no-2333");
}

#[test]
fn payloads_of_either_kind_are_recorded_for_what_they_are_on_either_route() {
    let (conn, _) = connection();
    let adapter = LinkMobility::default();
    for route in [RouteKind::Message, RouteKind::Status] {
        let items = adapter
            .parse(&json_post(DLR_EXAMPLE, Some(ALADDIN)), route, &conn)
            .unwrap();
        assert!(matches!(items[0], Ok(WebhookItem::Status(_))));
        let items = adapter
            .parse(
                &json_post(&mo_example("12345"), Some(ALADDIN)),
                route,
                &conn,
            )
            .unwrap();
        assert!(matches!(items[0], Ok(WebhookItem::Inbound(_))));
    }
}

#[test]
fn a_batch_keeps_its_good_items() {
    let (conn, _) = connection();
    let body = format!(
        r#"[{DLR_EXAMPLE}, {{"id":"x"}}, 7, {}]"#,
        mo_example("12345")
    );
    let items = LinkMobility::default()
        .parse(&json_post(&body, Some(ALADDIN)), RouteKind::Status, &conn)
        .unwrap();
    assert_eq!(items.len(), 4);
    assert!(matches!(items[0], Ok(WebhookItem::Status(_))));
    assert!(items[1].is_err());
    assert!(items[2].is_err());
    assert!(matches!(items[3], Ok(WebhookItem::Inbound(_))));
}

#[test]
fn form_and_query_payloads_use_the_same_names() {
    let form = b"id=abc%240&refId=m1&resultCode=1000&timestamp=2021-01-01T00%3A00%3A00Z";
    let r = report(&request(
        Method::POST,
        Some("application/x-www-form-urlencoded"),
        "",
        form,
        Some(ALADDIN),
    ));
    assert_eq!(
        (
            r.provider_message_id.as_str(),
            r.message_id.as_deref(),
            r.status
        ),
        ("abc$0", Some("m1"), Status::Sent)
    );
    let query = "source=%2B4741560067&destination=NO-2333&userData=STOP&messageId=mo1";
    let item = parse_one(&request(Method::GET, None, query, b"", Some(ALADDIN)));
    let WebhookItem::Inbound(mo) = item else {
        panic!("{item:?}")
    };
    assert_eq!(
        (mo.from.as_str(), mo.text.as_str()),
        ("+4741560067", "STOP")
    );
}

#[test]
fn unreadable_payloads_are_parse_errors() {
    let (conn, _) = connection();
    let adapter = LinkMobility::default();
    let truncated = &DLR_EXAMPLE[..DLR_EXAMPLE.len() / 2];
    for body in [truncated, "", "[]", "\"text\"", "42", "null"] {
        assert!(
            adapter
                .parse(&json_post(body, Some(ALADDIN)), RouteKind::Status, &conn)
                .is_err(),
            "{body:?}"
        );
    }
    // An object that is neither kind, and reports or MOs missing what identifies them.
    for body in [
        r#"{"hello":"world"}"#,
        r#"{"resultCode":1001}"#,
        r#"{"id":"a","resultCode":null}"#,
        r#"{"content":{"userData":"5"},"source":"+4741560067","destination":"NO-2333"}"#,
        r#"{"content":{"userData":5},"source":"+4741560067","destination":"NO-2333","messageId":"m"}"#,
        r#"{"content":{"userData":"5"},"destination":"NO-2333","messageId":"m"}"#,
    ] {
        let items = adapter
            .parse(&json_post(body, Some(ALADDIN)), RouteKind::Status, &conn)
            .unwrap();
        assert!(items[0].is_err(), "{body}");
    }
}

#[test]
fn media_types_link_sends_are_accepted() {
    let adapter = LinkMobility::default();
    let ok = |ct: Option<&str>, method: Method| {
        adapter
            .check_media_type(&request(method, ct, "", b"", None))
            .is_ok()
    };
    assert!(ok(Some("application/json; charset=utf-8"), Method::POST));
    assert!(ok(Some("application/x-www-form-urlencoded"), Method::POST));
    assert!(ok(None, Method::GET));
    assert!(!ok(Some("application/xml"), Method::POST));
    assert!(!ok(Some("text/plain"), Method::POST));
    assert!(!ok(None, Method::POST));
}

// --- samples --------------------------------------------------------------------------------

#[test]
fn samples_authenticate_and_parse_as_sent() {
    let (conn, secrets) = connection();
    let adapter = LinkMobility::default();
    let url: Url = "https://sms.example.test/status".parse().unwrap();
    let status = SampleEvent::Status {
        message_id: Some("m1".into()),
        provider_message_id: "Dcshuhod0PMAAAFQ+/PbnR3x$1".into(),
        provider_status: "delivered".into(),
        error_code: Some("2".into()),
    };
    let inbound = SampleEvent::Inbound {
        from: "+4741560067".into(),
        to: "+4790000000".into(),
        text: "5".into(),
    };
    for event in [status, inbound] {
        let signed = adapter
            .sample_webhook(&event, &url, &conn, &secrets)
            .unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in &signed.headers {
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        assert_eq!(headers["authorization"], ALADDIN);
        let req = WebhookRequest {
            method: signed.method.clone(),
            public_url: signed.url.to_string(),
            raw_path: signed.url.path().into(),
            raw_query: String::new(),
            headers,
            body: Bytes::from(signed.body.clone()),
            received_at: Utc::now(),
        };
        assert_eq!(adapter.check_media_type(&req), Ok(()));
        assert_eq!(adapter.authenticate(&req, &conn, &secrets), Ok(()));
        match (&event, parse_one(&req)) {
            (SampleEvent::Status { .. }, WebhookItem::Status(r)) => {
                assert_eq!(r.provider_message_id, "Dcshuhod0PMAAAFQ+/PbnR3x$1");
                assert_eq!(r.message_id.as_deref(), Some("m1"));
                assert_eq!(
                    (r.provider_status.as_str(), r.status),
                    ("1001", Status::Delivered)
                );
            }
            (SampleEvent::Inbound { .. }, WebhookItem::Inbound(mo)) => {
                assert_eq!(
                    (mo.from.as_str(), mo.to.as_str(), mo.text.as_str()),
                    ("+4741560067", "+4790000000", "5")
                );
                assert_eq!(mo.provider_message_id.len(), 24);
            }
            (_, item) => panic!("{item:?}"),
        }
    }
    let bad = SampleEvent::Status {
        message_id: None,
        provider_message_id: "x".into(),
        provider_status: "exploded".into(),
        error_code: None,
    };
    assert!(adapter.sample_webhook(&bad, &url, &conn, &secrets).is_err());
}

#[test]
fn the_setup_guide_names_both_urls_and_the_credentials() {
    let message: Url = "https://h.example/message/linkmobility-sms/O"
        .parse()
        .unwrap();
    let status: Url = "https://h.example/status/linkmobility-sms/O"
        .parse()
        .unwrap();
    let guide = LinkMobility::default().setup_guide(&message, &status);
    assert!(guide.contains(message.as_str()) && guide.contains(status.as_str()));
    assert!(guide.contains("gateId") && guide.contains("username") && guide.contains("401"));
    let ack = LinkMobility::default().acknowledge(RouteKind::Status, &connection().0);
    assert_eq!((ack.status, ack.body.as_str()), (200, "OK"));
}

// --- send -----------------------------------------------------------------------------------

#[test]
fn source_ton_follows_the_shape_of_from() {
    assert_eq!(SourceTon::of("+4790000000"), SourceTon::Msisdn);
    assert_eq!(SourceTon::of("2333"), SourceTon::ShortNumber);
    assert_eq!(SourceTon::of("Qualtrics"), SourceTon::Alphanumeric);
    assert_eq!(SourceTon::of("Shop24"), SourceTon::Alphanumeric);
}

#[test]
fn characters_outside_the_bmp_are_dropped() {
    assert!(matches!(bmp_only("Hei på deg €"), Cow::Borrowed(_)));
    assert_eq!(bmp_only("Take our survey 😀 now"), "Take our survey  now");
}

#[test]
fn accepted_answers() {
    let a = read_accepted(
        200,
        r#"{"messageId":"Dcshuhod0PMAAAFQ+/PbnR3x","resultCode":1005,"description":"Queued","smsCount":2}"#,
        "hi",
    )
    .unwrap();
    assert_eq!(a.provider_message_id, "Dcshuhod0PMAAAFQ+/PbnR3x");
    assert_eq!(
        a.part_ids,
        ["Dcshuhod0PMAAAFQ+/PbnR3x$0", "Dcshuhod0PMAAAFQ+/PbnR3x$1"]
    );
    assert_eq!(
        (a.status, a.provider_status.as_deref()),
        (Status::Accepted, Some("1005"))
    );
    // Without smsCount, our own segment count stands in.
    let long = "a".repeat(161);
    let a = read_accepted(200, r#"{"messageId":"m","resultCode":1005}"#, &long).unwrap();
    assert_eq!(a.part_ids, ["m$0", "m$1"]);
    let a = read_accepted(200, r#"{"messageId":"m","smsCount":"1"}"#, &long).unwrap();
    assert!(a.part_ids.is_empty());
    // A 2xx with another code is judged by the table.
    let a = read_accepted(200, r#"{"messageId":"m","resultCode":1000}"#, "hi").unwrap();
    assert_eq!(a.status, Status::Sent);
    let e = read_accepted(
        200,
        r#"{"messageId":"m","resultCode":2106,"description":"Number error"}"#,
        "hi",
    )
    .unwrap_err();
    assert_eq!(
        (e.code, e.retry, e.provider_code.as_deref()),
        (SendErrorCode::Rejected, Retry::Never, Some("2106"))
    );
    for (status, body) in [
        (204, ""),
        (200, "not json"),
        (200, r#"{"resultCode":1005}"#),
        (200, r#"{"messageId":""}"#),
    ] {
        let e = read_accepted(status, body, "hi").unwrap_err();
        assert_eq!(
            (e.code, e.retry),
            (SendErrorCode::OutcomeUnknown, Retry::OutcomeUnknown),
            "{status} {body}"
        );
    }
}

#[test]
fn error_answers_are_classified() {
    use SendErrorCode as C;
    let body = |status: u32, description: &str| {
        json!({"status": status, "description": description, "translatedDescription": null})
            .to_string()
    };
    let cases = [
        (
            401,
            body(106100, "Invalid authentication"),
            C::AuthFailed,
            Retry::Never,
        ),
        (
            403,
            body(106101, "Access denied"),
            C::AuthFailed,
            Retry::Never,
        ),
        (
            403,
            body(106102, "Unable to access SMSC credentials"),
            C::AuthFailed,
            Retry::Never,
        ),
        (
            403,
            body(106200, "Invalid or missing platformId"),
            C::ConfigError,
            Retry::Never,
        ),
        (
            403,
            body(106201, "Invalid or missing platformPartnerId"),
            C::ConfigError,
            Retry::Never,
        ),
        (
            400,
            body(106202, "Invalid or missing currency"),
            C::ConfigError,
            Retry::Never,
        ),
        (
            403,
            body(106300, "No gates available"),
            C::ConfigError,
            Retry::Never,
        ),
        (
            403,
            body(106301, "Specified gate unavailable"),
            C::ConfigError,
            Retry::Never,
        ),
        (
            400,
            body(106000, "Parse Error: invalid destination number"),
            C::InvalidNumber,
            Retry::Never,
        ),
        (
            400,
            body(106000, "Invalid source for its sourceTON"),
            C::InvalidSender,
            Retry::Never,
        ),
        (
            400,
            body(106000, "Unknown error"),
            C::Rejected,
            Retry::Never,
        ),
        (
            403,
            body(106000, "Maximum throttling exceeded"),
            C::Throttled,
            Retry::NotAccepted,
        ),
        (403, String::new(), C::AuthFailed, Retry::Never),
        (429, String::new(), C::Throttled, Retry::NotAccepted),
        (
            500,
            body(106000, "Unknown error"),
            C::OutcomeUnknown,
            Retry::OutcomeUnknown,
        ),
        (
            502,
            "<html>bad gateway</html>".into(),
            C::OutcomeUnknown,
            Retry::OutcomeUnknown,
        ),
        (503, String::new(), C::OutcomeUnknown, Retry::OutcomeUnknown),
        (404, "Not Found".into(), C::Rejected, Retry::Never),
    ];
    for (status, body, code, retry) in cases {
        let e = classify(status, &body);
        assert_eq!((e.code, e.retry), (code, retry), "{status} {body}");
        assert!(e.message.contains(&status.to_string()), "{}", e.message);
    }
    let e = classify(403, &body(106102, "Unable to access SMSC credentials"));
    assert_eq!(e.provider_code.as_deref(), Some("106102"));
    // The PDF's field name for the code is read too.
    assert_eq!(
        classify(403, r#"{"resultCode":106301}"#).code,
        C::ConfigError
    );
    // Provider words are cut to an excerpt.
    let long = classify(400, &body(106000, &"x".repeat(5000)));
    assert!(long.message.chars().count() < 300);
}

// --- validation -----------------------------------------------------------------------------

fn fields_with(field: &str, value: Value) -> Map<String, Value> {
    let mut fields = LinkMobility::default().example_fields();
    fields.insert(field.into(), value);
    fields
}

fn broken_rule(adapter: &LinkMobility, field: &str, value: &str) -> Option<String> {
    match adapter.validate_connection(&fields_with(field, json!(value))) {
        Ok(_) => None,
        Err(errors) => errors
            .0
            .into_iter()
            .find(|e| e.field == field)
            .map(|e| e.rule),
    }
}

#[test]
fn the_example_is_valid_and_split_into_settings_and_the_password() {
    let valid = LinkMobility::default()
        .validate_connection(&LinkMobility::default().example_fields())
        .unwrap();
    assert_eq!(valid.secrets.names().collect::<Vec<_>>(), ["password"]);
    for field in [
        "username",
        "from",
        "platformId",
        "platformPartnerId",
        "endpointHost",
        "gateId",
    ] {
        assert!(valid.settings.contains_key(field), "{field}");
    }
    assert!(!valid.settings.contains_key("password"));
}

#[test]
fn from_rules() {
    let adapter = LinkMobility::default();
    for good in [
        "+35312345678",
        "+4790000000",
        "2333",
        "1",
        "12345678901234",
        "Qualtrics",
        "Shop24",
        "AB",
    ] {
        assert_eq!(broken_rule(&adapter, "from", good), None, "{good}");
    }
    for (bad, rule) in [
        ("+0123456789", "country code"),
        ("+47 900 00 000", "country code"),
        ("+1234567", "country code"),
        ("004790000000", "+ instead of 00"),
        ("123456789012345", "at most 14 digits"),
        ("A", "2 to 11"),
        ("TwelveChars1", "2 to 11"),
        ("1Shop", "does not start with a digit"),
        ("My Shop", "no spaces"),
        ("Bøker", "a-z"),
    ] {
        let broken = broken_rule(&adapter, "from", bad).unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(broken.contains(rule), "{bad}: {broken}");
    }
}

#[test]
fn endpoint_host_goes_through_the_admin_host_rule() {
    let adapter = LinkMobility::default();
    for good in ["wsx.sp247.net", "n-eu.linkmobility.io", " WSX.sp247.net "] {
        assert_eq!(broken_rule(&adapter, "endpointHost", good), None, "{good}");
    }
    let seed = broken_rule(&adapter, "endpointHost", "https://wsx.sp247.net/sms").unwrap();
    assert!(seed.contains("e.g. wsx.sp247.net"), "{seed}");
    for bad in [
        "169.254.169.254",
        "localhost",
        "wsx.sp247.net:443",
        "wsx.sp247.net/sms",
        "metadata.internal",
    ] {
        assert!(
            broken_rule(&adapter, "endpointHost", bad).is_some(),
            "{bad}"
        );
    }
    let valid = adapter
        .validate_connection(&fields_with("endpointHost", json!(" WSX.sp247.net ")))
        .unwrap();
    assert_eq!(valid.settings["endpointHost"], "wsx.sp247.net");
    // Under a deployment override the host is never called: a bare name is enough.
    let sandboxed = LinkMobility::new(Some("http://127.0.0.1:4010/linkmobility".parse().unwrap()));
    assert_eq!(
        broken_rule(&sandboxed, "endpointHost", "linkmobility.local"),
        None
    );
    assert!(broken_rule(&sandboxed, "endpointHost", "https://wsx.sp247.net/sms").is_some());
}

#[test]
fn credential_and_identifier_rules_never_echo_the_password() {
    let adapter = LinkMobility::default();
    assert!(
        broken_rule(&adapter, "username", "user:name")
            .unwrap()
            .contains("colon")
    );
    assert!(
        broken_rule(&adapter, "username", "user\u{7}")
            .unwrap()
            .contains("control")
    );
    let secret = "hunter2\nsecret-Zq7";
    let errors = adapter
        .validate_connection(&fields_with("password", json!(secret)))
        .unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("password: must not contain control characters")
    );
    assert!(!errors.to_string().contains("hunter2") && !format!("{errors:?}").contains("hunter2"));
    // A password keeps its spaces.
    let valid = adapter
        .validate_connection(&fields_with("password", json!(" spaced pass ")))
        .unwrap();
    assert_eq!(valid.secrets.expose("password"), Some(" spaced pass "));
    for field in ["platformId", "platformPartnerId", "gateId"] {
        assert!(
            broken_rule(&adapter, field, "has space").is_some(),
            "{field}"
        );
        assert!(
            broken_rule(&adapter, field, &"x".repeat(65)).is_some(),
            "{field}"
        );
        assert_eq!(
            broken_rule(&adapter, field, "COMMON_API-1"),
            None,
            "{field}"
        );
    }
    let mut missing = adapter.example_fields();
    missing.remove("gateId");
    missing.insert("password".into(), json!(""));
    let errors = adapter
        .validate_connection(&missing)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("gateId: is required") && errors.contains("password: must not be empty"),
        "{errors}"
    );
}
