//! The store contract, run against both implementations: the embedded SQLite file and
//! DynamoDB + Secrets Manager (the real SDK against moto).

use crate::support::*;
use byosms::domain::{
    Access, Connection, ConnectionSecrets, Event, InboundEvent, MessageRecord, Provider,
    SendCompletion, SendState, Status,
};
use byosms::stores::{Claim, InboundPart};
use chrono::Utc;
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
        assert!(matches!(
            m.claim_message(&record("m1", TO)).await.unwrap(),
            Claim::Claimed
        ));
        let Claim::Exists(existing) = m.claim_message(&record("m1", TO)).await.unwrap() else {
            panic!("{backend:?}: second claim must lose")
        };
        assert_eq!(existing.send_state, SendState::Sending);

        // A report that beats our own write of the send result is not undone by it.
        assert!(
            m.advance_status(ORG, "m1", "SM1", Status::Delivered, Utc::now())
                .await
                .unwrap()
        );
        let stored = m.complete_send(ORG, "m1", &accepted("SM1")).await.unwrap();
        assert_eq!(
            (stored.send_state, stored.status),
            (SendState::Accepted, Some(Status::Delivered))
        );
        assert!(
            !m.advance_status(ORG, "m1", "SM1", Status::Sent, Utc::now())
                .await
                .unwrap()
        );
        assert!(
            !m.advance_status(ORG, "m1", "SM1", Status::Failed, Utc::now())
                .await
                .unwrap()
        );
        assert!(
            m.advance_status(ORG, "m1", "SM1", Status::Read, Utc::now())
                .await
                .unwrap()
        );
        assert!(
            !m.advance_status(ORG, "nope", "SM1", Status::Sent, Utc::now())
                .await
                .unwrap()
        );

        let found = m
            .find_by_provider_message_id(ORG, "conn_1", "SM1")
            .await
            .unwrap()
            .unwrap();
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

        m.claim_message(&record("m2", TO)).await.unwrap();
        m.complete_send(ORG, "m2", &accepted("SM2")).await.unwrap();
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
        let tasks: Vec<_> = steps
            .into_iter()
            .map(|s| {
                let m = m.clone();
                tokio::spawn(async move {
                    m.advance_status(ORG, "m1", "SM1", s, Utc::now())
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
