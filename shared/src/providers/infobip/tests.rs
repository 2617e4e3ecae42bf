//! The reference's Basic vector (RFC 7617 §2), the full status table, every payload shape of
//! `providers/infobip.md` (§3, §4 and the courier fixture shapes of §7), error classification of
//! both error bodies, and the connection rules.

use super::*;
use crate::domain::Access;
use crate::providers::{InboundReport, StatusReport, WebhookItem};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use http::{HeaderMap, HeaderValue, Method};

const STATUS_URL: &str = "https://sms.example.test/distribution-providers/v1/receive/distribution/status/infobip-sms/ORG_1";

fn connection(user: &str, password: &str) -> (Connection, ConnectionSecrets) {
    let mut settings = Map::new();
    settings.insert("webhookUsername".into(), json!(user));
    settings.insert("baseUrl".into(), json!("y7k2pd.api.infobip.com"));
    settings.insert("from".into(), json!("41793026700"));
    let mut secrets = ConnectionSecrets::default();
    secrets.insert("apiKey", "0123456789abcdef0123456789abcdef".into());
    secrets.insert("webhookPassword", password.into());
    (
        Connection {
            org_id: "ORG_1".into(),
            connection_id: "conn_1".into(),
            provider: Provider::Infobip,
            name: "i".into(),
            access: Access::All,
            enabled: true,
            settings,
            created_at: Utc::now(),
        },
        secrets,
    )
}

fn request(content_type: Option<&str>, authorization: Option<&str>, body: &str) -> WebhookRequest {
    let mut headers = HeaderMap::new();
    if let Some(ct) = content_type {
        headers.insert("content-type", HeaderValue::from_str(ct).unwrap());
    }
    if let Some(auth) = authorization {
        headers.insert("authorization", HeaderValue::from_str(auth).unwrap());
    }
    WebhookRequest {
        method: Method::POST,
        public_url: STATUS_URL.into(),
        raw_path: "/distribution-providers/v1/receive/distribution/status/infobip-sms/ORG_1".into(),
        raw_query: String::new(),
        headers,
        body: Bytes::copy_from_slice(body.as_bytes()),
        received_at: Utc::now(),
    }
}

const JSON: Option<&str> = Some("application/json");

// --- Webhook authentication -------------------------------------------------------------------

#[test]
fn rfc_7617_vector() {
    assert_eq!(
        basic_authorization("Aladdin", "open sesame"),
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
    let (conn, secrets) = connection("Aladdin", "open sesame");
    let req = request(JSON, Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), "{}");
    assert_eq!(
        Infobip::default().authenticate(&req, &conn, &secrets),
        Ok(())
    );
    // The scheme is matched without regard to case, as HTTP wants.
    let req = request(JSON, Some("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), "{}");
    assert_eq!(
        Infobip::default().authenticate(&req, &conn, &secrets),
        Ok(())
    );
}

#[test]
fn wrong_or_missing_credentials_are_refused() {
    let (conn, secrets) = connection("Aladdin", "open sesame");
    let auth = |header: Option<&str>| {
        Infobip::default().authenticate(&request(JSON, header, "{}"), &conn, &secrets)
    };
    let invalid = Err(AuthError::Invalid("Authorization (HTTP Basic)"));
    assert_eq!(auth(None), Err(AuthError::Missing("Authorization header")));
    assert_eq!(
        auth(Some("")),
        Err(AuthError::Missing("Authorization header"))
    );
    assert_eq!(
        auth(Some(&basic_authorization("Aladdin", "open sesamE"))),
        invalid
    );
    assert_eq!(
        auth(Some(&basic_authorization("aladdin", "open sesame"))),
        invalid
    );
    assert_eq!(
        auth(Some(&basic_authorization("Aladdin", "open sesame "))),
        invalid
    );
    assert_eq!(auth(Some(&basic_authorization("", ""))), invalid);
    assert_eq!(auth(Some("Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==")), invalid);
    assert_eq!(auth(Some("App QWxhZGRpbjpvcGVuIHNlc2FtZQ==")), invalid);
    assert_eq!(auth(Some("Basic %%%not-base64")), invalid);
    // base64("Aladdin") has no colon: no password at all.
    assert_eq!(auth(Some("Basic QWxhZGRpbg==")), invalid);
    assert_eq!(auth(Some("Basic")), invalid);
}

#[test]
fn a_password_with_colons_is_split_at_the_first_one() {
    let (conn, secrets) = connection("byosms", "pass:with:colons");
    let header = basic_authorization("byosms", "pass:with:colons");
    let req = request(JSON, Some(&header), "{}");
    assert_eq!(
        Infobip::default().authenticate(&req, &conn, &secrets),
        Ok(())
    );
}

#[test]
fn only_json_bodies_are_infobip_s() {
    let adapter = Infobip::default();
    assert!(adapter.check_media_type(&request(JSON, None, "{}")).is_ok());
    assert!(
        adapter
            .check_media_type(&request(Some("application/json;charset=UTF-8"), None, "{}"))
            .is_ok()
    );
    assert_eq!(
        adapter.check_media_type(&request(Some("text/plain"), None, "{}")),
        Err(UnsupportedMediaType("text/plain".into()))
    );
    assert!(
        adapter
            .check_media_type(&request(None, None, "{}"))
            .is_err()
    );
    assert!(!adapter.webhook_auth_covers_payload());
}

// --- The status table ---------------------------------------------------------------------------

fn fields(
    id: Option<i64>,
    name: Option<&str>,
    group_id: Option<i64>,
    group: Option<&str>,
) -> StatusFields {
    StatusFields {
        id,
        name: name.map(String::from),
        group_id,
        group_name: group.map(String::from),
    }
}

#[test]
fn the_full_status_table() {
    let by_id = |id: i64, name: &str, group_id: i64, group: &str| {
        fields(Some(id), Some(name), Some(group_id), Some(group)).normalize()
    };
    assert_eq!(by_id(26, "PENDING_ACCEPTED", 1, "PENDING"), Status::Queued);
    assert_eq!(by_id(7, "PENDING_ENROUTE", 1, "PENDING"), Status::Queued);
    assert_eq!(
        by_id(3, "PENDING_WAITING_DELIVERY", 1, "PENDING"),
        Status::Sent
    );
    assert_eq!(
        by_id(2, "DELIVERED_TO_OPERATOR", 3, "DELIVERED"),
        Status::Sent
    );
    assert_eq!(
        by_id(5, "DELIVERED_TO_HANDSET", 3, "DELIVERED"),
        Status::Delivered
    );
    for (id, name) in [
        (4, "UNDELIVERABLE_REJECTED_OPERATOR"),
        (9, "UNDELIVERABLE_NOT_DELIVERED"),
        (31, "UNDELIVERABLE_NOT_SENT"),
    ] {
        assert_eq!(
            by_id(id, name, 2, "UNDELIVERABLE"),
            Status::Undelivered,
            "{name}"
        );
    }
    for (id, name) in [(15, "EXPIRED_EXPIRED"), (29, "EXPIRED_DLR_UNKNOWN")] {
        assert_eq!(by_id(id, name, 4, "EXPIRED"), Status::Undelivered, "{name}");
    }
    for known in statuses::KNOWN
        .iter()
        .filter(|k| k.group == Group::Rejected)
    {
        assert_eq!(
            by_id(known.id, known.name, 5, "REJECTED"),
            Status::Failed,
            "{}",
            known.name
        );
    }
    // Every known status is final or not as the table says.
    for known in statuses::KNOWN {
        let status = by_id(
            known.id,
            known.name,
            known.group.wire().0,
            known.group.wire().1,
        );
        let non_final = matches!(known.id, 26 | 7 | 3 | 2);
        assert_eq!(status.is_final(), !non_final, "{}", known.name);
    }
}

#[test]
fn the_id_decides_then_the_name_then_the_group() {
    // Another DELIVERED status than the two known ones is delivered (group), but id 2 is not.
    assert_eq!(
        fields(
            Some(99),
            Some("DELIVERED_SOMEHOW"),
            Some(3),
            Some("DELIVERED")
        )
        .normalize(),
        Status::Delivered
    );
    assert_eq!(
        fields(Some(2), None, Some(3), None).normalize(),
        Status::Sent
    );
    assert_eq!(
        fields(None, Some("delivered_to_operator"), None, None).normalize(),
        Status::Sent
    );
    assert_eq!(
        fields(None, None, Some(5), None).normalize(),
        Status::Failed
    );
    assert_eq!(
        fields(None, None, None, Some("Expired")).normalize(),
        Status::Undelivered
    );
    assert_eq!(
        fields(None, None, None, Some("pending")).normalize(),
        Status::Queued
    );
    assert_eq!(
        fields(None, None, None, Some("ACCEPTED")).normalize(),
        Status::Accepted
    );
}

#[test]
fn unknown_statuses_keep_their_word() {
    let unknown = fields(Some(77), Some("EXPLODED"), Some(9), Some("BOOM"));
    assert_eq!(unknown.normalize(), Status::Unknown);
    assert_eq!(unknown.word(), "EXPLODED");
    assert_eq!(fields(None, None, None, Some("BOOM")).word(), "BOOM");
    assert_eq!(fields(Some(77), None, None, None).word(), "status 77");
    assert_eq!(fields(None, None, Some(9), None).word(), "group 9");
    assert_eq!(StatusFields::default().normalize(), Status::Unknown);
}

// --- Payload shapes -----------------------------------------------------------------------------

fn items(body: &str) -> Vec<Result<WebhookItem, ParseError>> {
    let (conn, _) = connection("u", "p");
    Infobip::default()
        .parse(&request(JSON, None, body), RouteKind::Status, &conn)
        .unwrap()
}

fn status(item: &Result<WebhookItem, ParseError>) -> &StatusReport {
    match item {
        Ok(WebhookItem::Status(report)) => report,
        other => panic!("not a status report: {other:?}"),
    }
}

fn inbound(item: &Result<WebhookItem, ParseError>) -> &InboundReport {
    match item {
        Ok(WebhookItem::Inbound(report)) => report,
        other => panic!("not an inbound message: {other:?}"),
    }
}

const REFERENCE_DLR: &str = r#"{ "results": [ { "bulkId": "BULK-ID-123-xyz", "messageId": "MESSAGE-ID-123-xyz", "to": "41793026727", "sender": "InfoSMS",
  "sentAt": "2019-11-09T16:00:00.000+0100", "doneAt": "2019-11-09T16:00:00.000+0100", "messageCount": 1,
  "price": { "pricePerMessage": 0.01, "currency": "EUR" },
  "status": { "groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET", "description": "Message delivered to handset" },
  "error": { "groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error", "permanent": false },
  "callbackData": "callbackData" } ] }"#;

const REFERENCE_INBOUND: &str = r#"{ "results": [ { "messageId": "817790313235066447", "from": "385916242493", "to": "385921004026",
    "text": "QUIZ Correct answer is Paris", "cleanText": "Correct answer is Paris", "keyword": "QUIZ",
    "receivedAt": "2019-11-09T16:00:00.000+0000", "smsCount": 1,
    "price": { "pricePerMessage": 0, "currency": "EUR" }, "callbackData": "callbackData",
    "applicationId": "app", "entityId": "entity", "campaignReferenceId": "campaign" } ],
  "messageCount": 1, "pendingMessageCount": 0 }"#;

#[test]
fn the_reference_delivery_report() {
    let items = items(REFERENCE_DLR);
    assert_eq!(items.len(), 1);
    let report = status(&items[0]);
    assert_eq!(
        report,
        &StatusReport {
            provider_message_id: "MESSAGE-ID-123-xyz".into(),
            message_id: Some("callbackData".into()),
            provider_status: "DELIVERED_TO_HANDSET".into(),
            status: Status::Delivered,
            error_code: None,
            occurred_at: Some(Utc.with_ymd_and_hms(2019, 11, 9, 15, 0, 0).unwrap()),
            opt_out: false,
            recipient: Some("+41793026727".into()),
            dedupe_key: "status:MESSAGE-ID-123-xyz:5".into(),
        }
    );
}

#[test]
fn the_reference_inbound_message() {
    let items = items(REFERENCE_INBOUND);
    let report = inbound(&items[0]);
    assert_eq!(
        report,
        &InboundReport {
            provider_message_id: "817790313235066447".into(),
            from: "+385916242493".into(),
            to: "+385921004026".into(),
            // `text` keeps the keyword: the whole reply reaches the survey.
            text: "QUIZ Correct answer is Paris".into(),
            occurred_at: Some(Utc.with_ymd_and_hms(2019, 11, 9, 16, 0, 0).unwrap()),
            part: None,
            reply_to: None,
            opt_out: false,
            dedupe_key: "inbound:817790313235066447".into(),
        }
    );
}

#[test]
fn a_v2_delivery_report_and_an_error_code() {
    let body = r#"{"results":[{"bulkId":"b","messageId":"m-2","to":"41793026727","from":"InfoSMS",
        "sentAt":"2019-11-09T16:00:00.000+0000","doneAt":"2019-11-09T16:00:05.000+0000","smsCount":1,
        "status":{"groupId":2,"groupName":"UNDELIVERABLE","id":9,"name":"UNDELIVERABLE_NOT_DELIVERED"},
        "error":{"groupId":1,"groupName":"HANDSET_ERRORS","id":27,"name":"EC_ABSENT_SUBSCRIBER","permanent":false},
        "entityId":"e","applicationId":"a"}]}"#;
    let items = items(body);
    let report = status(&items[0]);
    assert_eq!(report.status, Status::Undelivered);
    assert_eq!(report.error_code.as_deref(), Some("EC_ABSENT_SUBSCRIBER"));
    assert_eq!(
        report.message_id.as_deref(),
        Some("m-2"),
        "our id is Infobip's id"
    );
    assert_eq!(
        report.occurred_at,
        Some(Utc.with_ymd_and_hms(2019, 11, 9, 16, 0, 5).unwrap())
    );
}

#[test]
fn an_error_without_a_name_is_recorded_by_its_id() {
    let body = r#"{"results":[{"messageId":"m","status":{"groupId":5,"id":6},"error":{"groupId":3,"id":1,"groupName":"Ok"}}]}"#;
    assert_eq!(status(&items(body)[0]).error_code.as_deref(), Some("1"));
    let ok = r#"{"results":[{"messageId":"m","status":{"groupId":3,"id":5},"error":{"groupId":0,"groupName":"Ok","id":0,"name":"NO_ERROR"}}]}"#;
    assert_eq!(status(&items(ok)[0]).error_code, None);
}

#[test]
fn a_batch_keeps_its_good_items() {
    let body = r#"{"results":[
        {"messageId":"a","status":{"groupId":3,"groupName":"DELIVERED","id":5,"name":"DELIVERED_TO_HANDSET"}},
        {"messageId":"b","status":{"groupId":9,"groupName":"SOMETHING_NEW","id":99,"name":"SOMETHING_NEW"}},
        {"status":{"groupId":3,"id":5}},
        "Invalid",
        {"hello":"world"},
        {"messageId":"c","status":"DELIVERED"},
        {"messageId":"d","status":{"groupId":1,"groupName":"Pending","id":7,"name":"PENDING_ENROUTE"}}
    ]}"#;
    let items = items(body);
    assert_eq!(items.len(), 7);
    assert_eq!(status(&items[0]).status, Status::Delivered);
    let unknown = status(&items[1]);
    assert_eq!(
        (unknown.status, unknown.provider_status.as_str()),
        (Status::Unknown, "SOMETHING_NEW")
    );
    for bad in &items[2..6] {
        assert!(bad.is_err(), "{bad:?}");
    }
    assert_eq!(status(&items[6]).status, Status::Queued);
}

#[test]
fn courier_fixture_shapes() {
    // MMS inbound: `message[]` segments instead of `text`.
    let mms = r#"{"results":[{"messageId":"mms-1","from":"385916242493","to":"385921004026",
        "message":[{"contentType":"text/plain","value":"Hello"},{"contentType":"image/jpeg","url":"https://x.example/p.jpg"}],
        "receivedAt":"2019-11-09T16:00:00.000+0000"}]}"#;
    assert_eq!(
        inbound(&items(mms)[0]).text,
        "Hello\nhttps://x.example/p.jpg"
    );
    // Empty text, alphanumeric sender.
    let empty = r#"{"results":[{"messageId":"e-1","from":"InfoSMS","to":"385921004026","text":"","receivedAt":"2019-11-09T16:00:00.000+0000"}]}"#;
    let report = inbound(&items(empty)[0]).clone();
    assert_eq!(
        (report.text.as_str(), report.from.as_str()),
        ("", "InfoSMS")
    );
    // `messageCount: 0`: nothing to record, nothing wrong.
    assert!(items(r#"{"results":[],"messageCount":0,"pendingMessageCount":0}"#).is_empty());
    // Two reports in one POST.
    let two = r#"{"results":[
        {"messageId":"x","status":{"groupId":1,"id":26,"name":"PENDING_ACCEPTED"}},
        {"messageId":"y","status":{"groupId":3,"id":5,"name":"DELIVERED_TO_HANDSET"}}]}"#;
    assert_eq!(items(two).len(), 2);
    // Only `cleanText`: used as the text.
    let clean = r#"{"results":[{"messageId":"c-1","from":"385916242493","to":"385921004026","cleanText":"Paris"}]}"#;
    assert_eq!(inbound(&items(clean)[0]).text, "Paris");
}

#[test]
fn whole_bodies_that_are_not_infobip_s_are_refused() {
    let (conn, _) = connection("u", "p");
    let parse =
        |body: &str| Infobip::default().parse(&request(JSON, None, body), RouteKind::Status, &conn);
    for body in [
        "Invalid",
        r#"{"deliveryReport":[{"messageId":"x"}]}"#,
        r#"{"results":{"messageId":"x"}}"#,
        r#"[{"messageId":"x"}]"#,
        r#"{"results":[{"messageId":"x""#,
        "",
    ] {
        assert!(parse(body).is_err(), "{body}");
    }
}

#[test]
fn a_report_of_the_other_kind_is_returned_for_what_it_is() {
    let (conn, _) = connection("u", "p");
    let got = Infobip::default()
        .parse(
            &request(JSON, None, REFERENCE_DLR),
            RouteKind::Message,
            &conn,
        )
        .unwrap();
    status(&got[0]);
    let got = Infobip::default()
        .parse(
            &request(JSON, None, REFERENCE_INBOUND),
            RouteKind::Status,
            &conn,
        )
        .unwrap();
    inbound(&got[0]);
}

#[test]
fn our_id_comes_back_only_in_our_shape() {
    let body = |callback: &str| {
        format!(
            r#"{{"results":[{{"messageId":"Infobip id with spaces","callbackData":{callback},"status":{{"groupId":3,"id":5}}}}]}}"#
        )
    };
    assert_eq!(
        status(&items(&body(r#""dist42-r1""#))[0])
            .message_id
            .as_deref(),
        Some("dist42-r1")
    );
    assert_eq!(
        status(&items(&body(r#""not ours, has spaces""#))[0]).message_id,
        None
    );
    assert_eq!(status(&items(&body("null"))[0]).message_id, None);
}

#[test]
fn the_dedupe_key_is_the_message_and_the_status() {
    let body = r#"{"results":[
        {"messageId":"m","status":{"groupId":1,"id":26}},
        {"messageId":"m","status":{"groupId":3,"id":5}},
        {"messageId":"m","status":{"groupName":"NEW_WORD"}}]}"#;
    let keys: Vec<String> = items(body)
        .iter()
        .map(|i| status(i).dedupe_key.clone())
        .collect();
    assert_eq!(keys, ["status:m:26", "status:m:5", "status:m:NEW_WORD"]);
}

#[test]
fn infobip_timestamps_parse() {
    let at = Utc.with_ymd_and_hms(2019, 11, 9, 16, 0, 0).unwrap();
    assert_eq!(parse_timestamp("2019-11-09T16:00:00.000+0000"), Some(at));
    assert_eq!(parse_timestamp("2019-11-09T17:00:00.000+0100"), Some(at));
    assert_eq!(parse_timestamp("2019-11-09T16:00:00+0000"), Some(at));
    assert_eq!(parse_timestamp("2019-11-09T16:00:00.000Z"), Some(at));
    assert_eq!(parse_timestamp("2019-11-09T16:00:00.000+00:00"), Some(at));
    assert_eq!(parse_timestamp("2019-11-09T16:00:00.000"), Some(at));
    assert_eq!(
        parse_timestamp("2024-12-10T15:12:28.074+0000"),
        Some(
            Utc.with_ymd_and_hms(2024, 12, 10, 15, 12, 28).unwrap()
                + chrono::Duration::milliseconds(74)
        )
    );
    assert_eq!(parse_timestamp("yesterday"), None);
    assert_eq!(format_timestamp(at), "2019-11-09T16:00:00.000+0000");
    // An unreadable timestamp never costs the report.
    let body =
        r#"{"results":[{"messageId":"m","doneAt":"09/11/2019","status":{"groupId":3,"id":5}}]}"#;
    assert_eq!(status(&items(body)[0]).occurred_at, None);
}

// --- Send ---------------------------------------------------------------------------------------

fn outbound() -> OutboundMessage {
    OutboundMessage {
        message_id: "dist42-r1".into(),
        to: "+41793026727".into(),
        body: "Your survey: https://x.y/z".into(),
    }
}

#[test]
fn the_send_body_is_infobip_s_v3_request() {
    let url = Url::parse(STATUS_URL).unwrap();
    assert_eq!(
        send_body("41793026700", &outbound(), Some(&url)),
        json!({
            "messages": [{
                "sender": "41793026700",
                "destinations": [{ "to": "41793026727", "messageId": "dist42-r1" }],
                "content": { "text": "Your survey: https://x.y/z" },
                "webhooks": {
                    "delivery": { "url": STATUS_URL, "intermediateReport": true, "notify": true },
                    "contentType": "application/json",
                    "callbackData": "dist42-r1",
                },
            }],
            "options": { "includeSmsCountInResponse": true },
        })
    );
    // Without a public base URL, the account's subscription settings decide where reports go.
    let body = send_body("InfoSMS", &outbound(), None);
    assert!(body.pointer("/messages/0/webhooks/delivery").is_none());
    assert_eq!(
        body.pointer("/messages/0/webhooks/callbackData"),
        Some(&json!("dist42-r1"))
    );
}

#[test]
fn the_reference_200_answer_is_accepted() {
    let body = r#"{ "bulkId": "2034072219640523072",
      "messages": [ { "messageId": "2250be2d4219-3af1-78856-aabe-1362af1edfd2",
        "status": { "groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED", "description": "Message sent to next instance" },
        "destination": "41793026727", "details": { "messageCount": 1 } } ] }"#;
    assert_eq!(
        read_accepted(body),
        Ok(Accepted {
            provider_message_id: "2250be2d4219-3af1-78856-aabe-1362af1edfd2".into(),
            part_ids: Vec::new(),
            provider_status: Some("PENDING_ACCEPTED".into()),
            status: Status::Accepted,
        })
    );
}

fn answer_with(status: &str) -> String {
    format!(
        r#"{{"bulkId":"b","messages":[{{"messageId":"dist42-r1","status":{status},"destination":"41793026727"}}]}}"#
    )
}

#[test]
fn each_message_s_status_group_is_checked() {
    let refused = |name: &str, id: i64| {
        let err = read_accepted(&answer_with(&format!(
            r#"{{"groupId":5,"groupName":"REJECTED","id":{id},"name":"{name}"}}"#
        )))
        .unwrap_err();
        (err.code, err.retry)
    };
    use SendErrorCode as C;
    assert_eq!(
        refused("REJECTED_DESTINATION", 52),
        (C::InvalidNumber, Retry::Never)
    );
    assert_eq!(
        refused("REJECTED_PREFIX_MISSING", 8),
        (C::InvalidNumber, Retry::Never)
    );
    assert_eq!(refused("MISSING_TO", 51), (C::InvalidNumber, Retry::Never));
    assert_eq!(
        refused("REJECTED_NOT_ENOUGH_CREDITS", 12),
        (C::InsufficientFunds, Retry::Never)
    );
    assert_eq!(
        refused("REJECTED_PREPAID_PACKAGE_EXPIRED", 17),
        (C::InsufficientFunds, Retry::Never)
    );
    assert_eq!(
        refused("REJECTED_SOURCE", 11),
        (C::InvalidSender, Retry::Never)
    );
    assert_eq!(
        refused("REJECTED_SENDER", 13),
        (C::InvalidSender, Retry::Never)
    );
    assert_eq!(
        refused("REJECTED_MESSAGE_TOO_LONG", 25),
        (C::InvalidBody, Retry::Never)
    );
    assert_eq!(
        refused("REJECTED_SYSTEM_ERROR", 21),
        (C::ProviderUnavailable, Retry::NotAccepted)
    );
    assert_eq!(
        refused("REJECTED_FLOODING_FILTER", 20),
        (C::Throttled, Retry::Never)
    );
    assert_eq!(
        refused("REJECTED_DUPLICATE_MESSAGE_ID", 23),
        (C::Rejected, Retry::Never)
    );
    assert_eq!(refused("REJECTED_DND", 10), (C::Rejected, Retry::Never));
    let err = read_accepted(&answer_with(
        r#"{"groupId":5,"groupName":"REJECTED","id":23,"name":"REJECTED_DUPLICATE_MESSAGE_ID"}"#,
    ))
    .unwrap_err();
    assert_eq!(
        err.provider_code.as_deref(),
        Some("REJECTED_DUPLICATE_MESSAGE_ID")
    );
    assert!(err.message.contains("sent before"), "{}", err.message);
    let undeliverable = read_accepted(&answer_with(
        r#"{"groupId":2,"groupName":"UNDELIVERABLE","id":9,"name":"UNDELIVERABLE_NOT_DELIVERED"}"#,
    ));
    assert_eq!(undeliverable.unwrap_err().code, C::Rejected);
    // A group nobody knows, in a 200: Infobip took the request, so it is not a failure.
    let new_group = read_accepted(&answer_with(
        r#"{"groupId":8,"groupName":"QUEUED_SOMEWHERE","id":88,"name":"QUEUED_SOMEWHERE"}"#,
    ))
    .unwrap();
    assert_eq!(
        new_group.provider_status.as_deref(),
        Some("QUEUED_SOMEWHERE")
    );
    for unreadable in [
        "",
        "{}",
        r#"{"messages":[]}"#,
        r#"{"messages":[{"status":{}}]}"#,
    ] {
        let err = read_accepted(unreadable).unwrap_err();
        assert_eq!(
            (err.code, err.retry),
            (C::OutcomeUnknown, Retry::OutcomeUnknown),
            "{unreadable}"
        );
    }
}

#[test]
fn both_error_bodies_are_classified() {
    use SendErrorCode as C;
    let v3 = |code: &str, property: &str| {
        format!(
            r#"{{"errorCode":"{code}","description":"Request cannot be processed.","action":"Check the syntax, violations and adjust the request.","violations":[{{"property":"{property}","violation":"must not be null"}}],"resources":[]}}"#
        )
    };
    let v2 = |id: &str| {
        format!(
            r#"{{"requestError":{{"serviceException":{{"messageId":"{id}","text":"{id} text"}}}}}}"#
        )
    };
    let classify = |status: u16, body: &str| {
        let err = classify_http_error(status, body);
        (err.code, err.retry, err.provider_code.unwrap_or_default())
    };
    assert_eq!(
        classify(400, &v3("E400", "messages[0].destinations[0].to")),
        (C::InvalidNumber, Retry::Never, "E400".into())
    );
    assert_eq!(
        classify(400, &v3("E400", "messages[0].sender")),
        (C::InvalidSender, Retry::Never, "E400".into())
    );
    assert_eq!(
        classify(400, &v3("E400", "messages[0].content.text")),
        (C::InvalidBody, Retry::Never, "E400".into())
    );
    assert_eq!(
        classify(400, &v3("E400", "options")),
        (C::Rejected, Retry::Never, "E400".into())
    );
    assert_eq!(
        classify(400, &v2("BAD_REQUEST")),
        (C::Rejected, Retry::Never, "BAD_REQUEST".into())
    );
    let with_validation = r#"{"requestError":{"serviceException":{"messageId":"BAD_REQUEST","text":"Bad request","validationErrors":{"messages[0].destinations[0].to":["must not be null"]}}}}"#;
    assert_eq!(classify(400, with_validation).0, C::InvalidNumber);
    assert_eq!(
        classify(401, &v3("E401", "")),
        (C::AuthFailed, Retry::Never, "E401".into())
    );
    assert_eq!(
        classify(401, &v2("UNAUTHORIZED")),
        (C::AuthFailed, Retry::Never, "UNAUTHORIZED".into())
    );
    assert_eq!(classify(403, &v2("FORBIDDEN")).0, C::AuthFailed);
    assert_eq!(
        classify(429, &v3("E429", "")),
        (C::Throttled, Retry::NotAccepted, "E429".into())
    );
    assert_eq!(
        classify(429, &v2("TOO_MANY_REQUESTS")).1,
        Retry::NotAccepted
    );
    assert_eq!(
        classify(500, &v3("E500", "")),
        (C::OutcomeUnknown, Retry::OutcomeUnknown, "E500".into())
    );
    assert_eq!(classify(500, &v2("GENERAL_ERROR")).1, Retry::OutcomeUnknown);
    assert_eq!(
        classify(502, "<html>Bad gateway</html>"),
        (C::OutcomeUnknown, Retry::OutcomeUnknown, "502".into())
    );
    assert_eq!(classify(503, "").1, Retry::OutcomeUnknown);
    assert_eq!(classify(404, "").0, C::Rejected);
    // The scope a 403 lacks is named; the provider's words are only an excerpt.
    assert!(
        classify_http_error(403, &v2("FORBIDDEN"))
            .message
            .contains("sms:message:send")
    );
    let long = format!(
        r#"{{"errorCode":"E400","description":"{}"}}"#,
        "x".repeat(5000)
    );
    assert!(classify_http_error(400, &long).message.chars().count() <= 200);
}

// --- Connection rules ---------------------------------------------------------------------------

fn example_with(field: &str, value: &str) -> Map<String, Value> {
    let mut fields = Infobip::default().example_fields();
    fields.insert(field.into(), json!(value));
    fields
}

fn broken(adapter: &Infobip, field: &str, value: &str) -> Option<String> {
    match adapter.validate_connection(&example_with(field, value)) {
        Ok(_) => None,
        Err(errors) => {
            let text = errors.to_string();
            assert!(errors.0.iter().all(|e| e.field == field), "{text}");
            Some(text)
        }
    }
}

#[test]
fn the_example_is_valid_and_split_into_settings_and_secrets() {
    let out = Infobip::default()
        .validate_connection(&Infobip::default().example_fields())
        .unwrap();
    let secrets: Vec<&str> = out.secrets.names().collect();
    assert_eq!(secrets, ["apiKey", "webhookPassword"]);
    let mut settings: Vec<&String> = out.settings.keys().collect();
    settings.sort();
    assert_eq!(settings, ["baseUrl", "from", "webhookUsername"]);
}

#[test]
fn every_rule_is_named() {
    let adapter = Infobip::default();
    for (field, value, rule) in [
        (
            "apiKey",
            "App 0123456789abcdef0123456789abcdef",
            "without the App prefix",
        ),
        ("apiKey", "0123456789abcdef 0123456789abcdef", "no spaces"),
        ("apiKey", "short-key", "too short"),
        ("webhookUsername", "by:osms", "letters, digits"),
        ("webhookUsername", "byosms!", "letters, digits"),
        ("webhookPassword", "short", "at least 12"),
        (
            "webhookPassword",
            "twelve chars\nplus",
            "control characters",
        ),
        (
            "baseUrl",
            "https://y7k2pd.api.infobip.com",
            "without https://",
        ),
        ("baseUrl", "y7k2pd.api.infobip.com/sms", "path"),
        ("baseUrl", "y7k2pd.api.infobip.com:443", "port"),
        ("baseUrl", "169.254.169.254", "IP address"),
        ("baseUrl", "localhost", "loopback"),
        ("baseUrl", "api.example.com", "under infobip.com"),
        ("from", "+41793026700", "without + or 00"),
        ("from", "0041793026700", "without + or 00"),
        ("from", "0793026700", "country code"),
        ("from", "12345678901234567", "3 to 16 digits"),
        ("from", "InfoSMSLongName", "at most 11"),
        ("from", "Info-SMS", "at most 11"),
    ] {
        let text = broken(&adapter, field, value)
            .unwrap_or_else(|| panic!("{field}={value:?} was accepted"));
        assert!(text.contains(rule), "{field}={value:?}: {text}");
    }
    for (field, value) in [
        ("from", "InfoSMS"),
        ("from", "Info SMS"),
        ("from", "12345"),
        ("webhookUsername", "byosms_hooks-1.x"),
        ("webhookPassword", " spaced secret kept "),
        ("baseUrl", " Y7K2PD.api.infobip.com "),
    ] {
        assert_eq!(broken(&adapter, field, value), None, "{field}={value:?}");
    }
}

#[test]
fn an_api_url_override_lifts_the_infobip_domain_rule_only() {
    let overridden = Infobip::new(Some(Url::parse("http://127.0.0.1:4010/infobip").unwrap()));
    assert_eq!(broken(&overridden, "baseUrl", "api.example.com"), None);
    assert!(broken(&overridden, "baseUrl", "https://x.example.com").is_some());
}

#[test]
fn errors_never_show_a_secret() {
    let mut fields = Infobip::default().example_fields();
    fields.insert("apiKey".into(), json!("App Zq7-do-not-echo-Zq7-0123456789"));
    fields.insert("webhookPassword".into(), json!("Zq7\u{7}echo"));
    let errors = Infobip::default().validate_connection(&fields).unwrap_err();
    for text in [errors.to_string(), format!("{errors:?}")] {
        assert!(!text.contains("Zq7"), "{text}");
    }
}

// --- Samples and the guide ----------------------------------------------------------------------

#[test]
fn samples_authenticate_and_parse_as_what_they_are() {
    let adapter = Infobip::default();
    let (conn, secrets) = connection("byosms", "correct-horse-battery");
    let url = Url::parse(STATUS_URL).unwrap();
    let as_request = |signed: &SignedRequest| {
        let auth = signed
            .headers
            .iter()
            .find(|(n, _)| n == "Authorization")
            .map(|(_, v)| v.as_str());
        request(JSON, auth, std::str::from_utf8(&signed.body).unwrap())
    };
    let event = SampleEvent::Status {
        message_id: Some("dist42-r1".into()),
        provider_message_id: "dist42-r1".into(),
        provider_status: "delivered".into(),
        error_code: None,
    };
    let signed = adapter
        .sample_webhook(&event, &url, &conn, &secrets)
        .unwrap();
    assert_eq!(signed.method, http::Method::POST);
    let req = as_request(&signed);
    assert_eq!(adapter.authenticate(&req, &conn, &secrets), Ok(()));
    let got = adapter.parse(&req, RouteKind::Status, &conn).unwrap();
    let report = status(&got[0]);
    assert_eq!(
        (
            report.status,
            report.provider_status.as_str(),
            report.message_id.as_deref()
        ),
        (Status::Delivered, "DELIVERED_TO_HANDSET", Some("dist42-r1"))
    );
    assert!(
        report.occurred_at.is_some(),
        "the sample's +0000 timestamps parse"
    );

    for (word, expected) in [
        ("UNDELIVERABLE_REJECTED_OPERATOR", Status::Undelivered),
        ("expired", Status::Undelivered),
        ("sent", Status::Sent),
        ("exploded", Status::Unknown),
    ] {
        let event = SampleEvent::Status {
            message_id: None,
            provider_message_id: "p".into(),
            provider_status: word.into(),
            error_code: Some("27".into()),
        };
        let signed = adapter
            .sample_webhook(&event, &url, &conn, &secrets)
            .unwrap();
        let got = adapter
            .parse(&as_request(&signed), RouteKind::Status, &conn)
            .unwrap();
        let report = status(&got[0]);
        assert_eq!(
            (report.status, report.error_code.as_deref()),
            (expected, Some("27")),
            "{word}"
        );
    }

    let event = SampleEvent::Inbound {
        from: "+14155550100".into(),
        to: "41793026700".into(),
        text: "5".into(),
    };
    let signed = adapter
        .sample_webhook(&event, &url, &conn, &secrets)
        .unwrap();
    let body: Value = serde_json::from_slice(&signed.body).unwrap();
    assert_eq!(
        body["results"][0]["from"], "14155550100",
        "digits only, as Infobip writes them"
    );
    let got = adapter
        .parse(&as_request(&signed), RouteKind::Message, &conn)
        .unwrap();
    let reply = inbound(&got[0]);
    assert_eq!(
        (reply.from.as_str(), reply.to.as_str(), reply.text.as_str()),
        ("+14155550100", "+41793026700", "5")
    );
}

#[test]
fn the_guide_names_both_urls_and_the_support_step() {
    let message = Url::parse("https://h.example/distribution-providers/v1/receive/distribution/message/infobip-sms/ORG_1").unwrap();
    let status = Url::parse(STATUS_URL).unwrap();
    let guide = Infobip::default().setup_guide(&message, &status);
    for needle in [
        message.as_str(),
        status.as_str(),
        "Infobip support",
        "webhookUsername",
        "401",
    ] {
        assert!(guide.contains(needle), "{needle}: {guide}");
    }
    let ack = Infobip::default().acknowledge(RouteKind::Status, &connection("u", "p").0);
    assert_eq!(ack.status, 200);
}
