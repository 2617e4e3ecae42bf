//! The store contract, run against both implementations: the embedded SQLite file and
//! DynamoDB + Secrets Manager (the real SDK against moto).

use crate::support::*;
use byosms::domain::{
    Access, Connection, ConnectionSecrets, Event, InboundEvent, MessageRecord, Provider,
    SendCompletion, SendState, Status, StatusEvent,
};
use byosms::stores::{Claim, InboundPart, JoinedReply, MessageStore, ReadMessage};
use chrono::{TimeDelta, Utc};
use serde_json::json;

fn connection(org: &str, id: &str) -> Connection {
    Connection {
        org_id: org.into(),
        connection_id: id.into(),
        provider: Provider::Twilio,
        name: "n".into(),
        access: Access::Users(vec!["UR_1".into()]),
        enabled: true,
        settings: json!({"accountSid": ACCOUNT_SID, "from": FROM})
            .as_object()
            .unwrap()
            .clone(),
        created_at: Utc::now(),
    }
}

/// Claims a new message: the claim is what its completion is written from.
async fn claim(m: &dyn MessageStore, record: &MessageRecord) -> ReadMessage {
    match m.claim_message(record).await.unwrap() {
        Claim::Claimed(claimed) => *claimed,
        Claim::Exists(_) => panic!("{} was claimed before", record.message_id),
    }
}

/// Reads the message and applies one status report to it, as the receive pipeline does.
async fn advance(m: &dyn MessageStore, message_id: &str, pmid: &str, status: Status) -> bool {
    let mut read = m.read_message(ORG, message_id).await.unwrap().unwrap();
    m.advance_status(&mut read, pmid, status, Utc::now())
        .await
        .unwrap()
}

fn record(message_id: &str, to: &str) -> MessageRecord {
    MessageRecord {
        org_id: ORG.into(),
        message_id: message_id.into(),
        connection_id: "conn_1".into(),
        provider: Provider::Twilio,
        user_id: "UR_1".into(),
        to: to.into(),
        body: "b".into(),
        segments: 1,
        encoding: "gsm7".into(),
        send_state: SendState::Sending,
        status: None,
        provider_message_id: None,
        parts: Vec::new(),
        error: None,
        attempts: 0,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn record_on(connection_id: &str, message_id: &str, to: &str) -> MessageRecord {
    MessageRecord {
        connection_id: connection_id.into(),
        ..record(message_id, to)
    }
}

/// A send the provider accepted as several parts, each with its own id (as Vonage answers).
fn accepted_parts(ids: &[&str]) -> SendCompletion {
    SendCompletion {
        part_ids: ids.iter().map(|id| id.to_string()).collect(),
        ..accepted(ids[0])
    }
}

fn accepted(pmid: &str) -> SendCompletion {
    SendCompletion {
        send_state: SendState::Accepted,
        status: Some(Status::Accepted),
        provider_message_id: Some(pmid.into()),
        part_ids: Vec::new(),
        error: None,
        attempts: 1,
        at: Utc::now(),
    }
}

#[tokio::test]
async fn connections_and_secrets() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let c = connection(ORG, "conn_a");
        deps.stores.connections.put_connection(&c).await.unwrap();
        deps.stores
            .connections
            .put_connection(&connection(ORG, "conn_b"))
            .await
            .unwrap();
        deps.stores
            .connections
            .put_connection(&connection("ORG_OTHER", "conn_c"))
            .await
            .unwrap();
        assert_eq!(
            deps.stores
                .connections
                .get_connection(ORG, "conn_a")
                .await
                .unwrap(),
            Some(c)
        );
        let ids: Vec<_> = deps
            .stores
            .connections
            .list_connections(ORG)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.connection_id)
            .collect();
        assert_eq!(ids, ["conn_a", "conn_b"], "{backend:?}");
        assert!(
            deps.stores
                .connections
                .delete_connection(ORG, "conn_a")
                .await
                .unwrap()
        );
        assert!(
            !deps
                .stores
                .connections
                .delete_connection(ORG, "conn_a")
                .await
                .unwrap()
        );
        assert_eq!(
            deps.stores
                .connections
                .get_connection(ORG, "conn_a")
                .await
                .unwrap(),
            None
        );

        let mut secrets = ConnectionSecrets::default();
        secrets.insert("authToken", AUTH_TOKEN.into());
        deps.stores
            .secrets
            .put_secrets(ORG, "conn_b", &secrets)
            .await
            .unwrap();
        secrets.insert("authToken", "rotated".into());
        deps.stores
            .secrets
            .put_secrets(ORG, "conn_b", &secrets)
            .await
            .unwrap();
        let back = deps
            .stores
            .secrets
            .get_secrets(ORG, "conn_b")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            back.expose("authToken"),
            Some("rotated"),
            "{backend:?}: a put replaces the secret"
        );
        deps.stores
            .secrets
            .delete_secrets(ORG, "conn_b")
            .await
            .unwrap();
        deps.stores
            .secrets
            .delete_secrets(ORG, "conn_b")
            .await
            .unwrap();
        assert!(
            deps.stores
                .secrets
                .get_secrets(ORG, "conn_b")
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn claims_completion_and_monotonic_status() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = &deps.stores.messages;
        let claimed_m1 = claim(m.as_ref(), &record("m1", TO)).await;
        let Claim::Exists(existing) = m.claim_message(&record("m1", TO)).await.unwrap() else {
            panic!("{backend:?}: second claim must lose")
        };
        assert_eq!(existing.send_state, SendState::Sending);

        // A report that beats our own write of the send result is not undone by it.
        assert!(advance(m.as_ref(), "m1", "SM1", Status::Delivered).await);
        let stored = m
            .complete_send(&claimed_m1, &accepted("SM1"))
            .await
            .unwrap();
        assert_eq!(
            (stored.send_state, stored.status),
            (SendState::Accepted, Some(Status::Delivered))
        );
        assert!(!advance(m.as_ref(), "m1", "SM1", Status::Sent).await);
        assert!(!advance(m.as_ref(), "m1", "SM1", Status::Failed).await);
        assert!(advance(m.as_ref(), "m1", "SM1", Status::Read).await);
        assert!(m.read_message(ORG, "nope").await.unwrap().is_none());

        let found = m
            .find_by_provider_message_id(ORG, "conn_1", "SM1")
            .await
            .unwrap()
            .unwrap()
            .record;
        assert_eq!(
            (found.message_id.as_str(), found.status),
            ("m1", Some(Status::Read)),
            "{backend:?}"
        );
        assert!(
            m.find_by_provider_message_id(ORG, "conn_other", "SM1")
                .await
                .unwrap()
                .is_none()
        );

        let claimed_m2 = claim(m.as_ref(), &record("m2", TO)).await;
        m.complete_send(&claimed_m2, &accepted("SM2"))
            .await
            .unwrap();
        assert_eq!(
            m.latest_message_to(ORG, "conn_1", TO)
                .await
                .unwrap()
                .as_deref(),
            Some("m2")
        );
        assert_eq!(m.latest_message_to(ORG, "conn_2", TO).await.unwrap(), None);
    }
}

/// The receive pipeline changes a status from the read that found the message; a write made in
/// between must neither be lost nor let the stale read land.
#[tokio::test]
async fn a_status_step_from_an_out_of_date_read_applies_to_the_stored_record() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = deps.stores.messages.as_ref();
        let claimed_m1 = claim(m, &record("m1", TO)).await;
        m.complete_send(&claimed_m1, &accepted("SM1"))
            .await
            .unwrap();
        let mut stale = m.read_message(ORG, "m1").await.unwrap().unwrap();
        assert!(advance(m, "m1", "SM1", Status::Delivered).await);

        let moved = m
            .advance_status(&mut stale, "SM1", Status::Sent, Utc::now())
            .await
            .unwrap();
        assert!(!moved, "{backend:?}: Sent is behind the stored Delivered");
        let stored = m.get_message(ORG, "m1").await.unwrap().unwrap();
        assert_eq!(stored.status, Some(Status::Delivered), "{backend:?}");

        let moved = m
            .advance_status(&mut stale, "SM1", Status::Read, Utc::now())
            .await
            .unwrap();
        assert!(moved, "{backend:?}");
        let stored = m.get_message(ORG, "m1").await.unwrap().unwrap();
        assert_eq!(stored.status, Some(Status::Read), "{backend:?}");
        assert_eq!(
            stale.record, stored,
            "{backend:?}: the read now holds what is stored"
        );

        // A claim given back after the read: the report recreates nothing.
        m.claim_message(&record("m2", TO)).await.unwrap();
        let mut gone = m.read_message(ORG, "m2").await.unwrap().unwrap();
        m.release_claim(ORG, "m2").await.unwrap();
        let moved = m
            .advance_status(&mut gone, "SM2", Status::Delivered, Utc::now())
            .await
            .unwrap();
        assert!(!moved, "{backend:?}");
        assert!(
            m.get_message(ORG, "m2").await.unwrap().is_none(),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn concurrent_status_updates_keep_the_highest() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = deps.stores.messages.clone();
        m.claim_message(&record("m1", TO)).await.unwrap();
        let steps = [
            Status::Queued,
            Status::Sent,
            Status::Delivered,
            Status::Sent,
            Status::Queued,
            Status::Accepted,
        ];
        // Every report starts from the same read, so all but the first write find it stale.
        let read = m.read_message(ORG, "m1").await.unwrap().unwrap();
        let tasks: Vec<_> = steps
            .into_iter()
            .map(|s| {
                let (m, mut read) = (m.clone(), read.clone());
                tokio::spawn(async move {
                    m.advance_status(&mut read, "SM1", s, Utc::now())
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let status = m.get_message(ORG, "m1").await.unwrap().unwrap().status;
        assert_eq!(status, Some(Status::Delivered), "{backend:?}");
    }
}

fn status_event(id: &str, message_id: &str, pmid: &str, status: Status) -> StatusEvent {
    StatusEvent {
        event_id: id.into(),
        org_id: ORG.into(),
        connection_id: "conn_1".into(),
        provider: Provider::Twilio,
        provider_message_id: pmid.into(),
        message_id: Some(message_id.into()),
        status,
        provider_status: format!("{status:?}").to_lowercase(),
        error_code: None,
        occurred_at: None,
        received_at: Utc::now(),
    }
}

fn event_ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.event_id()).collect()
}

/// A status report's step and its event are one write: once per dedupe key, from whatever read
/// found the message, and a repeat still takes its step.
#[tokio::test]
async fn a_status_event_takes_its_step_and_is_recorded_once() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = deps.stores.messages.as_ref();
        let claimed_m1 = claim(m, &record("m1", TO)).await;
        m.complete_send(&claimed_m1, &accepted("SM1"))
            .await
            .unwrap();

        let mut read = m.read_message(ORG, "m1").await.unwrap().unwrap();
        let sent = status_event("e-sent", "m1", "SM1", Status::Sent);
        assert!(
            m.record_status_event(&mut read, &sent, "k-sent")
                .await
                .unwrap()
        );
        let stored = m.get_message(ORG, "m1").await.unwrap().unwrap();
        assert_eq!(stored.status, Some(Status::Sent), "{backend:?}");
        assert_eq!(
            read.record, stored,
            "{backend:?}: the read holds what is stored"
        );

        // A repeat from the same (now stored) read: no second event, nothing changes.
        let again = status_event("e-sent-again", "m1", "SM1", Status::Sent);
        assert!(
            !m.record_status_event(&mut read, &again, "k-sent")
                .await
                .unwrap()
        );

        // From a read taken before the step: the next report lands on the stored record.
        let mut stale = m.read_message(ORG, "m1").await.unwrap().unwrap();
        assert!(advance(m, "m1", "SM1", Status::Delivered).await);
        let behind = status_event("e-queued", "m1", "SM1", Status::Queued);
        assert!(
            m.record_status_event(&mut stale, &behind, "k-queued")
                .await
                .unwrap()
        );
        let read_report = status_event("e-read", "m1", "SM1", Status::Read);
        assert!(
            m.record_status_event(&mut stale, &read_report, "k-read")
                .await
                .unwrap()
        );
        let stored = m.get_message(ORG, "m1").await.unwrap().unwrap();
        assert_eq!(stored.status, Some(Status::Read), "{backend:?}");
        assert_eq!(stale.record, stored, "{backend:?}");
        assert_eq!(
            event_ids(&m.list_events(ORG, 100).await.unwrap()),
            ["e-sent", "e-queued", "e-read"],
            "{backend:?}"
        );

        // An event recorded without its step (as a store of an earlier release could leave
        // it): the repeat takes the step and records nothing.
        let claimed_m2 = claim(m, &record("m2", TO)).await;
        m.complete_send(&claimed_m2, &accepted("SM2"))
            .await
            .unwrap();
        let delivered = status_event("e-m2", "m2", "SM2", Status::Delivered);
        let recorded_alone = Event::Status(delivered.clone());
        assert!(m.record_event(&recorded_alone, "k-m2").await.unwrap());
        let mut read = m.read_message(ORG, "m2").await.unwrap().unwrap();
        let repeat = status_event("e-m2-again", "m2", "SM2", Status::Delivered);
        assert!(
            !m.record_status_event(&mut read, &repeat, "k-m2")
                .await
                .unwrap()
        );
        let stored = m.get_message(ORG, "m2").await.unwrap().unwrap();
        assert_eq!(stored.status, Some(Status::Delivered), "{backend:?}");
        assert_eq!(read.record, stored, "{backend:?}");

        // A claim given back after the read: the event stands, no record comes back.
        m.claim_message(&record("m3", TO)).await.unwrap();
        let mut gone = m.read_message(ORG, "m3").await.unwrap().unwrap();
        m.release_claim(ORG, "m3").await.unwrap();
        let late = status_event("e-m3", "m3", "SM3", Status::Delivered);
        assert!(
            m.record_status_event(&mut gone, &late, "k-m3")
                .await
                .unwrap()
        );
        assert!(
            m.get_message(ORG, "m3").await.unwrap().is_none(),
            "{backend:?}"
        );
        let events = m.list_events(ORG, 100).await.unwrap();
        assert_eq!(event_ids(&events).last(), Some(&"e-m3"), "{backend:?}");
    }
}

/// Reports racing from one stale read: every distinct report is recorded once, repeats are not,
/// and the record ends at the highest status. Racing transactions: not on moto (see
/// [`isolated_backends`]); scripts/test runs it on the AWS stand-in.
#[tokio::test]
async fn racing_status_events_keep_the_highest_and_record_each_report_once() {
    for backend in isolated_backends() {
        let deps = deps(backend, settings(None)).await;
        let m = deps.stores.messages.clone();
        let claimed_m1 = claim(m.as_ref(), &record("m1", TO)).await;
        m.complete_send(&claimed_m1, &accepted("SM1"))
            .await
            .unwrap();
        let read = m.read_message(ORG, "m1").await.unwrap().unwrap();
        let reports = [
            ("k-sent", Status::Sent),
            ("k-delivered", Status::Delivered),
            ("k-sent", Status::Sent),
            ("k-queued", Status::Queued),
            ("k-delivered", Status::Delivered),
            ("k-delivered", Status::Delivered),
        ];
        let tasks: Vec<_> = reports
            .into_iter()
            .enumerate()
            .map(|(i, (key, status))| {
                let (m, mut read) = (m.clone(), read.clone());
                let event = status_event(&format!("e{i}"), "m1", "SM1", status);
                tokio::spawn(
                    async move { m.record_status_event(&mut read, &event, key).await.unwrap() },
                )
            })
            .collect();
        let mut new = 0;
        for t in tasks {
            new += usize::from(t.await.unwrap());
        }
        assert_eq!(new, 3, "{backend:?}: one event per distinct report");
        assert_eq!(
            m.list_events(ORG, 100).await.unwrap().len(),
            3,
            "{backend:?}"
        );
        let status = m.get_message(ORG, "m1").await.unwrap().unwrap().status;
        assert_eq!(status, Some(Status::Delivered), "{backend:?}");
    }
}

fn inbound(id: &str) -> Event {
    Event::Inbound(InboundEvent {
        event_id: id.into(),
        org_id: ORG.into(),
        connection_id: "conn_1".into(),
        provider: Provider::Twilio,
        provider_message_id: format!("SM{id}"),
        from: TO.into(),
        to: FROM.into(),
        text: id.into(),
        in_reply_to: None,
        opt_out: false,
        occurred_at: None,
        received_at: Utc::now(),
    })
}

#[tokio::test]
async fn events_are_deduplicated_and_listed_in_order() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = &deps.stores.messages;
        assert!(m.record_event(&inbound("e1"), "k1").await.unwrap());
        assert!(
            !m.record_event(&inbound("e1-retry"), "k1").await.unwrap(),
            "{backend:?}: same key, one event"
        );
        assert!(m.record_event(&inbound("e2"), "k2").await.unwrap());
        assert!(m.record_event(&inbound("e3"), "k3").await.unwrap());
        let ids: Vec<_> = m
            .list_events(ORG, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event_id().to_string())
            .collect();
        assert_eq!(ids, ["e1", "e2", "e3"], "{backend:?}");
        let newest: Vec<_> = m
            .list_events(ORG, 2)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event_id().to_string())
            .collect();
        assert_eq!(newest, ["e2", "e3"]);
        assert!(m.list_events("ORG_OTHER", 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn opt_outs_and_multipart_replies() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = &deps.stores.messages;
        assert!(!m.is_opted_out(ORG, TO).await.unwrap());
        m.set_opt_out(ORG, TO, true, Utc::now()).await.unwrap();
        assert!(m.is_opted_out(ORG, TO).await.unwrap());
        assert!(!m.is_opted_out("ORG_OTHER", TO).await.unwrap());
        m.set_opt_out(ORG, TO, false, Utc::now()).await.unwrap();
        assert!(!m.is_opted_out(ORG, TO).await.unwrap());

        let part = |index: u16, text: &str| InboundPart {
            org_id: ORG.into(),
            connection_id: "conn_1".into(),
            from: TO.into(),
            reference: "ref-7".into(),
            total: 3,
            index,
            provider_message_id: format!("in-{index}"),
            text: text.into(),
            received_at: Utc::now(),
        };
        assert_eq!(m.add_inbound_part(&part(3, "three")).await.unwrap(), None);
        assert_eq!(m.add_inbound_part(&part(1, "one ")).await.unwrap(), None);
        assert_eq!(
            m.add_inbound_part(&part(1, "one ")).await.unwrap(),
            None,
            "a repeated part is kept once"
        );
        assert_eq!(
            m.add_inbound_part(&part(2, "two "))
                .await
                .unwrap()
                .map(|joined| joined.text)
                .as_deref(),
            Some("one two three"),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn every_provider_id_finds_the_message_on_its_own_connection() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = &deps.stores.messages;
        let claimed_m1 = claim(m.as_ref(), &record_on("conn_1", "m1", TO)).await;
        m.complete_send(&claimed_m1, &accepted_parts(&["V1", "V2"]))
            .await
            .unwrap();
        // Another connection of the org whose provider reuses an id.
        let claimed_m2 = claim(m.as_ref(), &record_on("conn_2", "m2", TO)).await;
        m.complete_send(&claimed_m2, &accepted("V2")).await.unwrap();

        let find = |connection: &'static str, id: &'static str| async move {
            m.find_by_provider_message_id(ORG, connection, id)
                .await
                .unwrap()
                .map(|r| r.record.message_id)
        };
        assert_eq!(
            find("conn_1", "V1").await.as_deref(),
            Some("m1"),
            "{backend:?}"
        );
        assert_eq!(
            find("conn_1", "V2").await.as_deref(),
            Some("m1"),
            "{backend:?}"
        );
        assert_eq!(
            find("conn_2", "V2").await.as_deref(),
            Some("m2"),
            "{backend:?}"
        );
        assert_eq!(find("conn_2", "V1").await, None, "{backend:?}");
        assert_eq!(find("conn_3", "V1").await, None, "{backend:?}");
    }
}

#[tokio::test]
async fn a_completion_of_several_parts_indexes_each_and_aggregates_their_status() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = &deps.stores.messages;
        let mut long = record("m1", TO);
        long.segments = 3;
        let claimed_m1 = claim(m.as_ref(), &long).await;
        let stored = m
            .complete_send(&claimed_m1, &accepted_parts(&["P1", "P2", "P3"]))
            .await
            .unwrap();
        assert_eq!(stored.parts.len(), 3, "{backend:?}");
        for id in ["P1", "P2", "P3"] {
            let found = m
                .find_by_provider_message_id(ORG, "conn_1", id)
                .await
                .unwrap();
            assert_eq!(
                found.map(|r| r.record.message_id).as_deref(),
                Some("m1"),
                "{backend:?}: {id}"
            );
        }

        let report = |id: &'static str, status| advance(m.as_ref(), "m1", id, status);
        assert!(!report("P1", Status::Delivered).await, "{backend:?}");
        assert!(!report("P3", Status::Delivered).await, "{backend:?}");
        let status = |r: Option<MessageRecord>| r.unwrap().status;
        assert_eq!(
            status(m.get_message(ORG, "m1").await.unwrap()),
            Some(Status::Accepted),
            "{backend:?}: P2 has no report yet"
        );
        assert!(report("P2", Status::Delivered).await, "{backend:?}");
        assert_eq!(
            status(m.get_message(ORG, "m1").await.unwrap()),
            Some(Status::Delivered),
            "{backend:?}: every part is delivered"
        );
    }
}

/// DynamoDB only: the embedded store has no write it would refuse here. A recipient too long for
/// a sort key makes the last item of the completion (`LAST#`) invalid; nothing of it may stay.
#[tokio::test]
async fn a_failed_completion_writes_nothing() {
    let deps = deps(Backend::Aws, settings(None)).await;
    let m = &deps.stores.messages;
    let to = format!("+1{}", "5".repeat(1100));
    let claimed_m1 = claim(m.as_ref(), &record("m1", &to)).await;
    assert!(
        m.complete_send(&claimed_m1, &accepted_parts(&["F1", "F2"]))
            .await
            .is_err()
    );
    let stored = m.get_message(ORG, "m1").await.unwrap().unwrap();
    assert_eq!(
        (stored.send_state, stored.attempts),
        (SendState::Sending, 0)
    );
    for id in ["F1", "F2"] {
        assert!(
            m.find_by_provider_message_id(ORG, "conn_1", id)
                .await
                .unwrap()
                .is_none(),
            "{id} indexed without its completion"
        );
    }
}

#[tokio::test]
async fn reply_linking_keeps_the_latest_created_message() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = &deps.stores.messages;
        let mut older = record("m_old", TO);
        older.created_at = Utc::now() - TimeDelta::minutes(1);
        let claimed_m_old = claim(m.as_ref(), &older).await;
        let claimed_m_new = claim(m.as_ref(), &record("m_new", TO)).await;
        // The newer message's send finishes first.
        m.complete_send(&claimed_m_new, &accepted("SMnew"))
            .await
            .unwrap();
        m.complete_send(&claimed_m_old, &accepted("SMold"))
            .await
            .unwrap();
        assert_eq!(
            m.latest_message_to(ORG, "conn_1", TO)
                .await
                .unwrap()
                .as_deref(),
            Some("m_new"),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn release_claim_gives_back_only_an_untried_claim() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = &deps.stores.messages;
        m.claim_message(&record("untried", TO)).await.unwrap();
        m.release_claim(ORG, "untried").await.unwrap();
        assert!(m.get_message(ORG, "untried").await.unwrap().is_none());
        assert!(
            matches!(
                m.claim_message(&record("untried", TO)).await.unwrap(),
                Claim::Claimed(_)
            ),
            "{backend:?}: a released id can be claimed again"
        );

        // Still sending, but the provider was called once: it may have the message.
        let claimed_attempted = claim(m.as_ref(), &record("attempted", TO)).await;
        let attempted = SendCompletion {
            send_state: SendState::Sending,
            status: None,
            provider_message_id: None,
            ..accepted("unused")
        };
        m.complete_send(&claimed_attempted, &attempted)
            .await
            .unwrap();
        m.release_claim(ORG, "attempted").await.unwrap();
        // Completed without a provider call (a refusal of our own).
        let claimed_refused = claim(m.as_ref(), &record("refused", TO)).await;
        let refused = SendCompletion {
            send_state: SendState::Failed,
            status: Some(Status::Failed),
            provider_message_id: None,
            attempts: 0,
            ..accepted("unused")
        };
        m.complete_send(&claimed_refused, &refused).await.unwrap();
        m.release_claim(ORG, "refused").await.unwrap();
        m.release_claim(ORG, "never-claimed").await.unwrap();
        for id in ["attempted", "refused"] {
            assert!(
                m.get_message(ORG, id).await.unwrap().is_some(),
                "{backend:?}: {id} was released"
            );
        }
    }
}

#[tokio::test]
async fn an_older_opt_out_change_never_overrides_a_newer_one() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = &deps.stores.messages;
        let t2 = Utc::now() - TimeDelta::minutes(1);
        let (t1, t3) = (t2 - TimeDelta::seconds(30), t2 + TimeDelta::seconds(30));
        m.set_opt_out(ORG, TO, true, t2).await.unwrap();
        m.set_opt_out(ORG, TO, false, t1).await.unwrap();
        assert!(
            m.is_opted_out(ORG, TO).await.unwrap(),
            "{backend:?}: a retried START from before the STOP"
        );
        m.set_opt_out(ORG, TO, false, t3).await.unwrap();
        assert!(!m.is_opted_out(ORG, TO).await.unwrap(), "{backend:?}");
        m.set_opt_out(ORG, TO, true, t3).await.unwrap();
        assert!(
            m.is_opted_out(ORG, TO).await.unwrap(),
            "{backend:?}: of equal times the later call wins"
        );
    }
}

/// Part `index` of `total` of the reply `ref-1` from `TO` on `conn_1`, with provider id `id`.
fn reply_part(total: u16, index: u16, id: &str, text: &str) -> InboundPart {
    InboundPart {
        org_id: ORG.into(),
        connection_id: "conn_1".into(),
        from: TO.into(),
        reference: "ref-1".into(),
        total,
        index,
        provider_message_id: id.into(),
        text: text.into(),
        received_at: Utc::now(),
    }
}

async fn add_all(
    m: &dyn byosms::stores::MessageStore,
    parts: &[InboundPart],
) -> Option<JoinedReply> {
    let mut joined = None;
    for (i, part) in parts.iter().enumerate() {
        joined = m.add_inbound_part(part).await.unwrap();
        if i + 1 < parts.len() {
            assert_eq!(
                joined,
                None,
                "joined before part {} of {}",
                i + 2,
                parts.len()
            );
        }
    }
    joined
}

#[tokio::test]
async fn a_joined_reply_not_yet_forgotten_joins_again_alike() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = deps.stores.messages.as_ref();
        let parts = [
            reply_part(3, 2, "in-2", "two "),
            reply_part(3, 1, "in-1", "one "),
            reply_part(3, 3, "in-3", "three"),
        ];
        let first = add_all(m, &parts).await.expect("joined");
        assert_eq!(first.text, "one two three", "{backend:?}");
        assert_eq!(first.part_ids, ["in-1", "in-2", "in-3"], "{backend:?}");
        // The joined reply's event was not stored (no forget): the provider delivers the last
        // part again, and the reply is joined again under the same dedupe key.
        let again = m.add_inbound_part(&parts[2]).await.unwrap();
        assert_eq!(again.as_ref(), Some(&first), "{backend:?}");
        assert_eq!(again.unwrap().dedupe_key(), first.dedupe_key());
    }
}

#[tokio::test]
async fn a_reused_reference_joins_the_new_message_from_its_own_parts() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = deps.stores.messages.as_ref();
        let old = [
            reply_part(2, 1, "old-1", "old "),
            reply_part(2, 2, "old-2", "reply"),
        ];
        let joined = add_all(m, &old).await.expect("joined");
        m.forget_inbound_parts(&old[1], &joined).await.unwrap();

        let new = [
            reply_part(2, 2, "new-2", "message"),
            reply_part(2, 1, "new-1", "new "),
        ];
        let later = add_all(m, &new).await.expect("the new message joins");
        assert_eq!(later.text, "new message", "{backend:?}");
        assert_eq!(later.part_ids, ["new-1", "new-2"], "{backend:?}");
        assert_ne!(later.dedupe_key(), joined.dedupe_key());
        m.forget_inbound_parts(&new[1], &later).await.unwrap();
        assert_eq!(
            m.add_inbound_part(&reply_part(2, 1, "third-1", "x"))
                .await
                .unwrap(),
            None,
            "{backend:?}: forgotten parts stay forgotten"
        );
    }
}

#[tokio::test]
async fn parts_of_other_connections_or_senders_do_not_mix() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = deps.stores.messages.as_ref();
        let first = reply_part(2, 1, "a-1", "mine ");
        assert_eq!(m.add_inbound_part(&first).await.unwrap(), None);
        let elsewhere = InboundPart {
            connection_id: "conn_2".into(),
            ..reply_part(2, 2, "b-2", "other connection")
        };
        let someone_else = InboundPart {
            from: "+14155550111".into(),
            ..reply_part(2, 2, "c-2", "other sender")
        };
        for part in [&elsewhere, &someone_else] {
            assert_eq!(
                m.add_inbound_part(part).await.unwrap(),
                None,
                "{backend:?}: {part:?}"
            );
        }
        let joined = m
            .add_inbound_part(&reply_part(2, 2, "a-2", "alone"))
            .await
            .unwrap()
            .expect("joined");
        assert_eq!(joined.text, "mine alone", "{backend:?}");
        assert_eq!(joined.part_ids, ["a-1", "a-2"], "{backend:?}");
    }
}

#[tokio::test]
async fn stale_parts_are_gone() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = deps.stores.messages.as_ref();
        let stale = InboundPart {
            received_at: Utc::now() - TimeDelta::days(3),
            ..reply_part(2, 1, "stale-1", "stale ")
        };
        assert_eq!(m.add_inbound_part(&stale).await.unwrap(), None);
        assert_eq!(
            m.add_inbound_part(&reply_part(2, 2, "fresh-2", "reply"))
                .await
                .unwrap(),
            None,
            "{backend:?}: a part older than 2 days joins nothing"
        );
        let joined = m
            .add_inbound_part(&reply_part(2, 1, "fresh-1", "fresh "))
            .await
            .unwrap()
            .expect("joined");
        assert_eq!(joined.text, "fresh reply", "{backend:?}");
    }
}

#[tokio::test]
async fn a_completion_racing_reports_of_its_parts_keeps_both() {
    for backend in BACKENDS {
        let deps = deps(backend, settings(None)).await;
        let m = deps.stores.messages.clone();
        let mut long = record("m1", TO);
        long.segments = 2;
        let claimed_m1 = claim(m.as_ref(), &long).await;
        // Read before the completion: every report's first write finds it stale.
        let read = m.read_message(ORG, "m1").await.unwrap().unwrap();
        let complete = {
            let m = m.clone();
            tokio::spawn(async move {
                m.complete_send(&claimed_m1, &accepted_parts(&["R1", "R2"]))
                    .await
                    .unwrap()
            })
        };
        let reports: Vec<_> = ["R1", "R2", "R1", "R2"]
            .into_iter()
            .map(|id| {
                let (m, mut read) = (m.clone(), read.clone());
                tokio::spawn(async move {
                    m.advance_status(&mut read, id, Status::Delivered, Utc::now())
                        .await
                        .unwrap()
                })
            })
            .collect();
        complete.await.unwrap();
        for r in reports {
            r.await.unwrap();
        }
        let stored = m.get_message(ORG, "m1").await.unwrap().unwrap();
        assert_eq!(
            (stored.send_state, stored.status),
            (SendState::Accepted, Some(Status::Delivered)),
            "{backend:?}"
        );
        for id in ["R1", "R2"] {
            assert!(
                m.find_by_provider_message_id(ORG, "conn_1", id)
                    .await
                    .unwrap()
                    .is_some(),
                "{backend:?}: {id}"
            );
        }
    }
}
