//! The embedded store: one SQLite file in the data directory, shared by `byosms serve` and every
//! other CLI command while they run (WAL journal, busy timeout). Unique keys and immediate
//! transactions give the guarantees DynamoDB's conditional writes give in AWS. The file holds the
//! local secrets too, so it is created with mode 0600 in a directory of mode 0700.

use super::{
    Claim, ConnectionStore, InboundPart, JoinedReply, MessageStore, SecretStore, StoreError,
};
use crate::domain::{Connection, ConnectionSecrets, Event, MessageRecord, SendCompletion, Status};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub const FILE_NAME: &str = "byosms.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS connections (
    org_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (org_id, connection_id)
);
CREATE TABLE IF NOT EXISTS secrets (
    org_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (org_id, connection_id)
);
CREATE TABLE IF NOT EXISTS messages (
    org_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    recipient TEXT NOT NULL,
    send_state TEXT NOT NULL,
    provider_message_id TEXT,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (org_id, message_id)
);
CREATE INDEX IF NOT EXISTS messages_by_provider_id
    ON messages (org_id, provider, provider_message_id);
CREATE INDEX IF NOT EXISTS messages_by_recipient
    ON messages (org_id, connection_id, recipient, created_at);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (org_id, dedupe_key)
);
CREATE TABLE IF NOT EXISTS opt_outs (
    org_id TEXT NOT NULL,
    number TEXT NOT NULL,
    opted_out INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, number)
);
CREATE TABLE IF NOT EXISTS inbound_parts (
    org_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    reference TEXT NOT NULL,
    total INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (org_id, connection_id, sender, reference, idx)
);
";

#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<Mutex<rusqlite::Connection>>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::unavailable(err)
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::corrupt)
}

fn from_json<T: serde::de::DeserializeOwned>(doc: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(StoreError::corrupt)
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        if !data_dir.exists() {
            std::fs::create_dir_all(data_dir).map_err(StoreError::unavailable)?;
            restrict(data_dir, 0o700)?;
        }
        let path = data_dir.join(FILE_NAME);
        if !path.exists() {
            create_private_file(&path)?;
        }
        restrict(&path, 0o600)?;
        let db = rusqlite::Connection::open(&path)?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            db: Arc::new(Mutex::new(db)),
        })
    }

    /// Runs blocking database work off the async runtime.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut db = db.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut db)
        })
        .await
        .map_err(StoreError::unavailable)?
    }
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(StoreError::unavailable)
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> Result<(), StoreError> {
    Ok(())
}

fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        // Another process created it first: fine, it is the same store.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::unavailable(e)),
    }
}

fn load_message(
    tx: &rusqlite::Connection,
    org_id: &str,
    message_id: &str,
) -> Result<Option<MessageRecord>, StoreError> {
    let doc: Option<String> = tx
        .query_row(
            "SELECT doc FROM messages WHERE org_id = ?1 AND message_id = ?2",
            params![org_id, message_id],
            |row| row.get(0),
        )
        .optional()?;
    doc.map(|d| from_json(&d)).transpose()
}

fn save_message(tx: &rusqlite::Connection, record: &MessageRecord) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE messages SET send_state = ?3, provider_message_id = ?4, doc = ?5
         WHERE org_id = ?1 AND message_id = ?2",
        params![
            record.org_id,
            record.message_id,
            to_json(&record.send_state)?,
            record.provider_message_id,
            to_json(record)?,
        ],
    )?;
    Ok(())
}

#[async_trait]
impl ConnectionStore for SqliteStore {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let doc = to_json(connection)?;
        let (org, id) = (connection.org_id.clone(), connection.connection_id.clone());
        self.run(move |db| {
            db.execute(
                "INSERT INTO connections (org_id, connection_id, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org_id, connection_id) DO UPDATE SET doc = excluded.doc",
                params![org, id, doc],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_connection(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<Option<Connection>, StoreError> {
        let (org, id) = (org_id.to_string(), connection_id.to_string());
        self.run(move |db| {
            let doc: Option<String> = db
                .query_row(
                    "SELECT doc FROM connections WHERE org_id = ?1 AND connection_id = ?2",
                    params![org, id],
                    |row| row.get(0),
                )
                .optional()?;
            doc.map(|d| from_json(&d)).transpose()
        })
        .await
    }

    async fn list_connections(&self, org_id: &str) -> Result<Vec<Connection>, StoreError> {
        let org = org_id.to_string();
        self.run(move |db| {
            let mut stmt =
                db.prepare("SELECT doc FROM connections WHERE org_id = ?1 ORDER BY connection_id")?;
            let docs = stmt
                .query_map(params![org], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            docs.iter().map(|d| from_json(d)).collect()
        })
        .await
    }

    async fn delete_connection(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<bool, StoreError> {
        let (org, id) = (org_id.to_string(), connection_id.to_string());
        self.run(move |db| {
            let n = db.execute(
                "DELETE FROM connections WHERE org_id = ?1 AND connection_id = ?2",
                params![org, id],
            )?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl SecretStore for SqliteStore {
    async fn put_secrets(
        &self,
        org_id: &str,
        connection_id: &str,
        secrets: &ConnectionSecrets,
    ) -> Result<(), StoreError> {
        let (org, id, doc) = (
            org_id.to_string(),
            connection_id.to_string(),
            secrets.to_json(),
        );
        self.run(move |db| {
            db.execute(
                "INSERT INTO secrets (org_id, connection_id, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org_id, connection_id) DO UPDATE SET doc = excluded.doc",
                params![org, id, doc],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_secrets(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<Option<ConnectionSecrets>, StoreError> {
        let (org, id) = (org_id.to_string(), connection_id.to_string());
        self.run(move |db| {
            let doc: Option<String> = db
                .query_row(
                    "SELECT doc FROM secrets WHERE org_id = ?1 AND connection_id = ?2",
                    params![org, id],
                    |row| row.get(0),
                )
                .optional()?;
            doc.map(|d| {
                ConnectionSecrets::from_json(&d).map_err(|_| {
                    StoreError::Corrupt(
                        "a connection secret is not a JSON object of strings".into(),
                    )
                })
            })
            .transpose()
        })
        .await
    }

    async fn delete_secrets(&self, org_id: &str, connection_id: &str) -> Result<(), StoreError> {
        let (org, id) = (org_id.to_string(), connection_id.to_string());
        self.run(move |db| {
            db.execute(
                "DELETE FROM secrets WHERE org_id = ?1 AND connection_id = ?2",
                params![org, id],
            )?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn claim_message(&self, record: &MessageRecord) -> Result<Claim, StoreError> {
        let record = record.clone();
        self.run(move |db| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO messages
                 (org_id, message_id, connection_id, provider, recipient, send_state,
                  provider_message_id, created_at, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8)",
                params![
                    record.org_id,
                    record.message_id,
                    record.connection_id,
                    record.provider.as_str(),
                    record.to,
                    to_json(&record.send_state)?,
                    record.created_at.to_rfc3339(),
                    to_json(&record)?,
                ],
            )?;
            let claim = if inserted == 1 {
                Claim::Claimed
            } else {
                let existing = load_message(&tx, &record.org_id, &record.message_id)?
                    .ok_or_else(|| StoreError::Corrupt("claimed message vanished".into()))?;
                Claim::Exists(Box::new(existing))
            };
            tx.commit()?;
            Ok(claim)
        })
        .await
    }

    async fn complete_send(
        &self,
        org_id: &str,
        message_id: &str,
        done: &SendCompletion,
    ) -> Result<MessageRecord, StoreError> {
        let (org, id, done) = (org_id.to_string(), message_id.to_string(), done.clone());
        self.run(move |db| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut record = load_message(&tx, &org, &id)?
                .ok_or_else(|| StoreError::Corrupt(format!("no claimed message {id}")))?;
            record.complete(&done);
            save_message(&tx, &record)?;
            tx.commit()?;
            Ok(record)
        })
        .await
    }

    async fn release_claim(&self, org_id: &str, message_id: &str) -> Result<(), StoreError> {
        let (org, id) = (org_id.to_string(), message_id.to_string());
        let sending = to_json(&crate::domain::SendState::Sending)?;
        self.run(move |db| {
            db.execute(
                "DELETE FROM messages WHERE org_id = ?1 AND message_id = ?2 AND send_state = ?3",
                params![org, id, sending],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_message(
        &self,
        org_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let (org, id) = (org_id.to_string(), message_id.to_string());
        self.run(move |db| load_message(db, &org, &id)).await
    }

    async fn find_by_provider_message_id(
        &self,
        org_id: &str,
        connection_id: &str,
        provider_message_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let (org, conn, pmid) = (
            org_id.to_string(),
            connection_id.to_string(),
            provider_message_id.to_string(),
        );
        self.run(move |db| {
            let doc: Option<String> = db
                .query_row(
                    "SELECT doc FROM messages
                     WHERE org_id = ?1 AND connection_id = ?2 AND provider_message_id = ?3",
                    params![org, conn, pmid],
                    |row| row.get(0),
                )
                .optional()?;
            doc.map(|d| from_json(&d)).transpose()
        })
        .await
    }

    async fn advance_status(
        &self,
        org_id: &str,
        message_id: &str,
        provider_message_id: &str,
        status: Status,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (org, id, pmid) = (
            org_id.to_string(),
            message_id.to_string(),
            provider_message_id.to_string(),
        );
        self.run(move |db| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut record) = load_message(&tx, &org, &id)? else {
                return Ok(false);
            };
            let before = record.clone();
            let moved = record.apply_report(&pmid, status, at);
            if record != before {
                save_message(&tx, &record)?;
            }
            tx.commit()?;
            Ok(moved)
        })
        .await
    }

    async fn record_event(&self, event: &Event, dedupe_key: &str) -> Result<bool, StoreError> {
        let (org, key, doc) = (
            event.org_id().to_string(),
            dedupe_key.to_string(),
            to_json(event)?,
        );
        self.run(move |db| {
            let n = db.execute(
                "INSERT OR IGNORE INTO events (org_id, dedupe_key, doc) VALUES (?1, ?2, ?3)",
                params![org, key, doc],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn list_events(&self, org_id: &str, limit: usize) -> Result<Vec<Event>, StoreError> {
        let org = org_id.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |db| {
            let mut stmt = db.prepare(
                "SELECT doc FROM (SELECT seq, doc FROM events WHERE org_id = ?1
                                  ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
            )?;
            let docs = stmt
                .query_map(params![org, limit], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            docs.iter().map(|d| from_json(d)).collect()
        })
        .await
    }

    async fn latest_message_to(
        &self,
        org_id: &str,
        connection_id: &str,
        number: &str,
    ) -> Result<Option<String>, StoreError> {
        let (org, conn, number) = (
            org_id.to_string(),
            connection_id.to_string(),
            number.to_string(),
        );
        let accepted = to_json(&crate::domain::SendState::Accepted)?;
        self.run(move |db| {
            Ok(db
                .query_row(
                    "SELECT message_id FROM messages
                     WHERE org_id = ?1 AND connection_id = ?2 AND recipient = ?3 AND send_state = ?4
                     ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    params![org, conn, number, accepted],
                    |row| row.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn set_opt_out(
        &self,
        org_id: &str,
        number: &str,
        opted_out: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (org, number) = (org_id.to_string(), number.to_string());
        self.run(move |db| {
            db.execute(
                "INSERT INTO opt_outs (org_id, number, opted_out, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (org_id, number) DO UPDATE
                 SET opted_out = excluded.opted_out, updated_at = excluded.updated_at",
                params![org, number, opted_out, at.to_rfc3339()],
            )?;
            Ok(())
        })
        .await
    }

    async fn is_opted_out(&self, org_id: &str, number: &str) -> Result<bool, StoreError> {
        let (org, number) = (org_id.to_string(), number.to_string());
        self.run(move |db| {
            let flag: Option<bool> = db
                .query_row(
                    "SELECT opted_out FROM opt_outs WHERE org_id = ?1 AND number = ?2",
                    params![org, number],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(flag.unwrap_or(false))
        })
        .await
    }

    async fn add_inbound_part(
        &self,
        part: &InboundPart,
    ) -> Result<Option<JoinedReply>, StoreError> {
        let part = part.clone();
        self.run(move |db| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR IGNORE INTO inbound_parts
                 (org_id, connection_id, sender, reference, total, idx, text, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    part.org_id,
                    part.connection_id,
                    part.from,
                    part.reference,
                    part.total,
                    part.index,
                    part.text,
                    part.received_at.to_rfc3339()
                ],
            )?;
            let key = params![part.org_id, part.connection_id, part.from, part.reference];
            let texts = {
                let mut stmt = tx.prepare(
                    "SELECT text FROM inbound_parts
                     WHERE org_id = ?1 AND connection_id = ?2 AND sender = ?3 AND reference = ?4
                     ORDER BY idx",
                )?;
                stmt.query_map(key, |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?
            };
            let joined = (texts.len() >= usize::from(part.total)).then(|| JoinedReply {
                text: texts.concat(),
                part_ids: Vec::new(),
            });
            tx.commit()?;
            Ok(joined)
        })
        .await
    }

    async fn forget_inbound_parts(
        &self,
        part: &InboundPart,
        _joined: &JoinedReply,
    ) -> Result<(), StoreError> {
        let part = part.clone();
        self.run(move |db| {
            db.execute(
                "DELETE FROM inbound_parts
                 WHERE org_id = ?1 AND connection_id = ?2 AND sender = ?3 AND reference = ?4",
                params![part.org_id, part.connection_id, part.from, part.reference],
            )?;
            Ok(())
        })
        .await
    }
}
