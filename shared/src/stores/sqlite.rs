//! The embedded store: one SQLite file in the data directory, shared by `byosms serve` and every
//! other CLI command while they run (WAL journal, busy timeout). Unique keys and transactions
//! (each call a savepoint in its batch's immediate transaction, see `run_batch`) give the
//! guarantees DynamoDB's conditional writes give in AWS. The file holds the local secrets too,
//! so it is created with mode 0600 in a directory of mode 0700.
//!
//! The schema is [`BASE_SCHEMA`] brought up to date by [`MIGRATIONS`] (`PRAGMA user_version`
//! counts the ones a file has run):
//!
//! | table | rows |
//! |---|---|
//! | `connections`, `secrets` | one JSON document per `(org_id, connection_id)` |
//! | `messages` | message records (`doc`) with the columns lookups need; `(org_id, message_id)` unique |
//! | `provider_ids` | every provider id of a message (its own and each part's), per connection → `message_id` |
//! | `events` | events in insertion order (`seq`) |
//! | `dedupe_markers` | one per recorded webhook `(org_id, dedupe_key)`, until `expires_at_micros` (30 days) |
//! | `held_reports` | status reports no message names yet, until `expires_at_micros` (24 hours) |
//! | `opt_outs` | a number's latest opt-out change; `at_micros` is when it happened |
//! | `inbound_parts` | parts of multipart replies, until joined and forgotten or 2 days old (`received_at_micros`) |

use super::{
    Claim, ConnectionStore, DEDUPE_LIFETIME, HeldReport, INBOUND_PART_LIFETIME, InboundPart,
    JoinedReply, MessageStore, ReadMessage, SecretStore, StoreError, StoredPart, join_parts,
};
use crate::domain::{
    Connection, ConnectionSecrets, Event, MessageRecord, SendCompletion, SendState, Status,
    StatusEvent,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::wal::CheckpointMode;
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use std::ffi::c_int;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// Prepared statements kept per connection: every statement the store runs, with room to spare
/// (parsing and planning a statement cost more than running most of them).
const STATEMENT_CACHE: usize = 64;

/// The message a provider id names on a connection. A subquery, not a join: SQLite re-parses and
/// re-plans a cached join of these two tables on every run once the tables are being written
/// (its statement status counts a re-prepare per call), which was the gateway's single largest
/// cost of a status webhook on the store's thread; the subquery stays prepared.
const FIND_BY_PROVIDER_ID: &str = "SELECT doc FROM messages WHERE org_id = ?1 AND message_id =
    (SELECT message_id FROM provider_ids
     WHERE org_id = ?1 AND connection_id = ?2 AND provider_message_id = ?3)";

pub const FILE_NAME: &str = "byosms.sqlite3";

/// The schema of the first release (version 0). Never edited: a change is a new migration, so a
/// new file and an old one end up alike.
const BASE_SCHEMA: &str = "
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

type Migration = fn(&Transaction<'_>) -> Result<(), StoreError>;

/// Step `i` brings the schema from version `i` to `i + 1`. Append only.
const MIGRATIONS: [Migration; 5] = [
    index_every_provider_id,
    order_opt_outs,
    key_parts_by_provider_id,
    expire_dedupe_markers,
    hold_unclaimed_reports,
];

/// Version 1: a table of every provider id per connection (messages of several parts have one
/// per part), filled from the records that already name theirs.
fn index_every_provider_id(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        r#"
        CREATE TABLE provider_ids (
            org_id TEXT NOT NULL,
            connection_id TEXT NOT NULL,
            provider_message_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            PRIMARY KEY (org_id, connection_id, provider_message_id)
        );
        INSERT OR IGNORE INTO provider_ids
            (org_id, connection_id, provider_message_id, message_id)
            SELECT org_id, connection_id, provider_message_id, message_id FROM messages
            WHERE provider_message_id IS NOT NULL;
        -- Parts of a record still sending are only what early reports named: not the provider's.
        INSERT OR IGNORE INTO provider_ids
            (org_id, connection_id, provider_message_id, message_id)
            SELECT m.org_id, m.connection_id, json_extract(p.value, '$.providerMessageId'),
                   m.message_id
            FROM messages AS m, json_each(m.doc, '$.parts') AS p
            WHERE m.send_state <> '"sending"'
              AND json_extract(p.value, '$.providerMessageId') IS NOT NULL;
        DROP INDEX IF EXISTS messages_by_provider_id;
        "#,
    )?;
    Ok(())
}

/// Version 2: opt-out changes carry when they happened as a number, so a change can be compared
/// with the one recorded.
fn order_opt_outs(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch("ALTER TABLE opt_outs ADD COLUMN at_micros INTEGER NOT NULL DEFAULT 0;")?;
    let rows = {
        let mut stmt = tx.prepare("SELECT org_id, number, updated_at FROM opt_outs")?;
        stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?
    };
    for (org, number, updated_at) in rows {
        // An unreadable time stays 0: any later change wins, as every change did before.
        let Ok(at) = DateTime::parse_from_rfc3339(&updated_at) else {
            continue;
        };
        tx.execute(
            "UPDATE opt_outs SET at_micros = ?3 WHERE org_id = ?1 AND number = ?2",
            params![org, number, at.timestamp_micros()],
        )?;
    }
    Ok(())
}

/// Version 3: parts keyed by their provider id too (two messages may reuse a reference), with a
/// sortable receive time. Parts of the old table are dropped: they carry no provider id.
fn key_parts_by_provider_id(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "
        DROP TABLE inbound_parts;
        CREATE TABLE inbound_parts (
            org_id TEXT NOT NULL,
            connection_id TEXT NOT NULL,
            sender TEXT NOT NULL,
            reference TEXT NOT NULL,
            idx INTEGER NOT NULL,
            provider_message_id TEXT NOT NULL,
            total INTEGER NOT NULL,
            text TEXT NOT NULL,
            received_at_micros INTEGER NOT NULL,
            PRIMARY KEY (org_id, connection_id, sender, reference, idx, provider_message_id)
        );
        CREATE INDEX inbound_parts_by_age ON inbound_parts (org_id, received_at_micros);
        ",
    )?;
    Ok(())
}

/// Version 4: dedupe markers apart from the events, each with its expiry, so that they can go
/// (the events stay: they are the record). The markers of existing events start their 30 days now.
fn expire_dedupe_markers(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let expires = (Utc::now() + DEDUPE_LIFETIME).timestamp_micros();
    tx.execute_batch(
        "
        CREATE TABLE dedupe_markers (
            org_id TEXT NOT NULL,
            dedupe_key TEXT NOT NULL,
            expires_at_micros INTEGER NOT NULL,
            PRIMARY KEY (org_id, dedupe_key)
        );
        CREATE INDEX dedupe_markers_by_expiry ON dedupe_markers (expires_at_micros);
        CREATE TABLE events_v4 (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            org_id TEXT NOT NULL,
            doc TEXT NOT NULL
        );
        INSERT INTO events_v4 (seq, org_id, doc) SELECT seq, org_id, doc FROM events;
        ",
    )?;
    tx.execute(
        "INSERT INTO dedupe_markers (org_id, dedupe_key, expires_at_micros)
         SELECT org_id, dedupe_key, ?1 FROM events",
        params![expires],
    )?;
    tx.execute_batch(
        "
        DROP TABLE events;
        ALTER TABLE events_v4 RENAME TO events;
        CREATE INDEX events_by_org ON events (org_id, seq);
        ",
    )?;
    Ok(())
}

/// Version 5: status reports kept aside until a message names their provider id.
fn hold_unclaimed_reports(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "
        CREATE TABLE held_reports (
            org_id TEXT NOT NULL,
            connection_id TEXT NOT NULL,
            provider_message_id TEXT NOT NULL,
            dedupe_key TEXT NOT NULL,
            doc TEXT NOT NULL,
            expires_at_micros INTEGER NOT NULL,
            PRIMARY KEY (org_id, connection_id, provider_message_id, dedupe_key)
        );
        CREATE INDEX held_reports_by_expiry ON held_reports (expires_at_micros);
        ",
    )?;
    Ok(())
}

/// Creates or updates the schema. Immediate, so that of two processes opening an old file at
/// once one migrates and the other then finds it done.
fn migrate(db: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = MIGRATIONS.len();
    let done = usize::try_from(version).map_err(StoreError::corrupt)?;
    // Only at version 0: later steps drop what the base schema would create again.
    if done == 0 {
        tx.execute_batch(BASE_SCHEMA)?;
    }
    if done > known {
        return Err(StoreError::Unavailable(format!(
            "the database has schema version {done}; this byosms knows up to {known}"
        )));
    }
    for step in &MIGRATIONS[done..] {
        step(&tx)?;
    }
    tx.pragma_update(
        None,
        "user_version",
        i64::try_from(known).map_err(StoreError::corrupt)?,
    )?;
    tx.commit()?;
    Ok(())
}

/// The store's handle: every call is a job for the one thread that owns the connection.
#[derive(Clone)]
pub struct SqliteStore {
    jobs: std::sync::mpsc::Sender<Job>,
}

/// A call's database work. It runs inside its batch's transaction and leaves its answer to be
/// sent once that transaction's commit is known.
type Job = Box<dyn FnOnce(&mut rusqlite::Connection) -> Answer + Send>;

/// Sends a job's result to its caller, given how its batch's commit went.
type Answer = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// The most jobs one transaction takes. Every job in a batch waits for the batch's commit, so
/// the bound caps what a call can wait behind; 64 is the gateway's load run's concurrency.
const MAX_BATCH: usize = 64;

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::unavailable(err)
    }
}

/// `execute` and `query_row` through the connection's statement cache: the store runs the same
/// few dozen statements over and over.
trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, read: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for rusqlite::Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, read: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, read)
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
        let mut db = rusqlite::Connection::open(&path)?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&mut db)?;
        db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let checkpoints = Checkpoints::start(&path)?;
        // Replaces SQLite's autocheckpoint, which is itself a WAL hook.
        db.wal_hook(Some(checkpoints.hook()))?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("byosms-sqlite".into())
            .spawn(move || {
                // One connection serves every job, until every handle is gone. SQLite runs one
                // writer at a time anyway; a thread that owns the connection replaces a lock
                // that each of many blocking-pool threads would wait on (under load, most of
                // the gateway's CPU went to those waits and wake-ups).
                while let Ok(first) = queue.recv() {
                    let batch: Vec<Job> = std::iter::once(first)
                        .chain(queue.try_iter().take(MAX_BATCH - 1))
                        .collect();
                    run_batch(&mut db, batch);
                    // After the batch's answers: its callers do not wait for this.
                    checkpoints.restart_if_behind(&db);
                }
            })
            .map_err(StoreError::unavailable)?;
        Ok(SqliteStore { jobs })
    }

    /// Runs blocking database work on the store's thread, off the async runtime.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |db| {
            let result = work(db);
            Box::new(move |committed: Result<(), StoreError>| {
                // A result is only as good as its commit: a batch that failed to commit
                // answers every job in it with that failure, and the caller retries.
                let _ = answer.send(committed.and(result));
            })
        });
        self.jobs.send(job).map_err(|_| {
            StoreError::Unavailable("the embedded store's thread has stopped".into())
        })?;
        answered.await.map_err(|_| {
            StoreError::Unavailable("the embedded store failed while answering".into())
        })?
    }
}

/// WAL frames after which the checkpointer thread is woken: SQLite's default autocheckpoint size,
/// which measured as well as any other (README, "Where the gateway's tail goes").
const CHECKPOINT_AFTER_FRAMES: c_int = 1_000;

/// WAL frames after which the store's thread checkpoints the WAL itself. The checkpointer copies
/// frames as they come, but the WAL restarts only if a write begins after a pass has caught up;
/// a writer with no pause between its commits (measured: one caller awaiting one commit after
/// another) never lets it. This bounds the WAL and the index every read searches.
const CHECKPOINT_INLINE_FRAMES: c_int = 4 * CHECKPOINT_AFTER_FRAMES;

/// WAL checkpoints off the store's thread: a thread with its own connection, woken by the store
/// connection's WAL hook.
///
/// SQLite's autocheckpoint runs inside the commit that takes the WAL past 1,000 frames: two
/// `fsync`s (the WAL, then the database) on the store's thread, while every call of the next
/// batch waits (p90 about 4 ms on this project's disk). A passive checkpoint on another
/// connection holds no lock the writer needs, and the writer itself then never waits on the
/// disk (`synchronous=NORMAL` commits do not sync). The WAL restarts from its start at the
/// first write after a checkpoint has caught up, which is why one is asked for at each commit
/// past the size and not on a timer: a timer let the WAL grow between checkpoints, and every
/// read searched the larger index (tried and taken back, README).
struct Checkpoints {
    shared: std::sync::Arc<CheckpointState>,
    wake: std::sync::mpsc::SyncSender<()>,
}

struct CheckpointState {
    /// The WAL's size in frames at the last commit, as the hook was told.
    wal_frames: AtomicI32,
    /// Held through each checkpoint of this store's. SQLite answers a checkpoint that finds
    /// another under way with busy at once, whatever the mode and the busy timeout, so the
    /// store's thread waits here for the checkpointer's pass instead.
    pass: std::sync::Mutex<()>,
}

impl CheckpointState {
    fn pass(&self) -> std::sync::MutexGuard<'_, ()> {
        // A poisoned lock guards nothing: the database file is SQLite's to keep consistent.
        self.pass
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Checkpoints {
    fn start(path: &Path) -> Result<Self, StoreError> {
        let db = rusqlite::Connection::open(path)?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        let shared = std::sync::Arc::new(CheckpointState {
            wal_frames: AtomicI32::new(0),
            pass: std::sync::Mutex::new(()),
        });
        // One pending wake-up is enough: the pass it starts copies every frame committed by then.
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let state = shared.clone();
        std::thread::Builder::new()
            .name("byosms-sqlite-checkpoint".into())
            .spawn(move || {
                // Ends when the hook, and with it the last `wake`, is dropped with the store's
                // thread and connection.
                while woken.recv().is_ok() {
                    let _pass = state.pass();
                    if let Err(err) = db.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
                        tracing::warn!(error = %err, "embedded store: WAL checkpoint failed");
                    }
                }
            })
            .map_err(StoreError::unavailable)?;
        Ok(Checkpoints { shared, wake })
    }

    /// The store connection's WAL hook, called after each commit with the WAL's size. It does
    /// not checkpoint: inside the commit that calls it, a checkpoint could not wait for the
    /// checkpointer's pass (see [`Checkpoints::restart_if_behind`]).
    fn hook(
        &self,
    ) -> impl FnMut(&mut rusqlite::hooks::Wal, c_int) -> rusqlite::Result<()> + Send + 'static {
        let shared = self.shared.clone();
        let wake = self.wake.clone();
        move |_, frames| {
            shared.wal_frames.store(frames, Ordering::Relaxed);
            if (CHECKPOINT_AFTER_FRAMES..CHECKPOINT_INLINE_FRAMES).contains(&frames) {
                // Full: a wake-up is already pending.
                let _ = wake.try_send(());
            }
            Ok(())
        }
    }

    /// The store's thread's own checkpoint, once the WAL has reached
    /// [`CHECKPOINT_INLINE_FRAMES`]: it waits for a pass under way, copies what that left (little:
    /// the checkpointer has been copying all along), and RESTART waits (the busy timeout) until
    /// no reader is in the WAL, so the next write starts it over.
    fn restart_if_behind(&self, db: &rusqlite::Connection) {
        if self.shared.wal_frames.load(Ordering::Relaxed) < CHECKPOINT_INLINE_FRAMES {
            return;
        }
        let _pass = self.shared.pass();
        match db.wal_checkpoint_v2(None::<&str>, CheckpointMode::RESTART) {
            Ok(_) => self.shared.wal_frames.store(0, Ordering::Relaxed),
            // Another process's checkpoint, or its reader past the busy timeout: the next batch
            // tries again.
            Err(err) => tracing::warn!(error = %err, "embedded store: WAL checkpoint failed"),
        }
    }
}

/// Runs the jobs waiting together in one transaction: one commit for the lot (group commit).
///
/// Under load most of a write's cost was its commit: each one appends every page it changed to
/// the WAL, and the status webhooks of a busy gateway change the same few pages (the newest
/// events, the newest dedupe markers). Each job's own transaction is a savepoint inside this
/// one, so a job that fails or panics takes back only its own writes; the others still commit.
/// No answer is sent before the commit, so nothing is acknowledged that could still be lost.
fn run_batch(db: &mut rusqlite::Connection, batch: Vec<Job>) {
    let mut jobs = batch.into_iter();
    while jobs.len() > 0 {
        if let Err(err) = db.execute_batch("BEGIN IMMEDIATE") {
            // Another process held the write lock past the busy timeout. Each job then runs on
            // its own, its savepoint its whole transaction, as the store ran before batching.
            tracing::warn!(error = %err, "embedded store: no batch transaction, running jobs one by one");
            for job in jobs.by_ref() {
                if let Some(answer) = run_job(db, job) {
                    answer(Ok(()));
                }
            }
            return;
        }
        let mut answers = Vec::new();
        let mut rolled_back = false;
        for job in jobs.by_ref() {
            answers.extend(run_job(db, job));
            // Some errors (a full disk, an I/O error) make SQLite roll the whole transaction
            // back: every job so far lost its writes, and the rest start a new batch.
            if db.is_autocommit() {
                rolled_back = true;
                break;
            }
        }
        let committed = if rolled_back {
            Err("the batch's transaction was rolled back".to_string())
        } else {
            db.execute_batch("COMMIT").map_err(|err| {
                let _ = db.execute_batch("ROLLBACK");
                err.to_string()
            })
        };
        for answer in answers {
            answer(committed.clone().map_err(|err| {
                StoreError::Unavailable(format!("the embedded store could not commit: {err}"))
            }));
        }
    }
}

/// Runs one job. A job that panics loses its own answer (its caller hears that the store
/// failed), never the thread or the other jobs' work: its savepoint rolls back as it unwinds.
fn run_job(db: &mut rusqlite::Connection, job: Job) -> Option<Answer> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(db))).ok()
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
        .row(
            "SELECT doc FROM messages WHERE org_id = ?1 AND message_id = ?2",
            params![org_id, message_id],
            |row| row.get(0),
        )
        .optional()?;
    doc.map(|d| from_json(&d)).transpose()
}

fn save_message(tx: &rusqlite::Connection, record: &MessageRecord) -> Result<(), StoreError> {
    tx.exec(
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

/// Applies a status report to the stored record, read again here under the write lock (a
/// local read costs next to nothing, and no version is needed). Returns the record as stored and
/// whether its status moved; `None` when the message is gone.
fn step_status(
    tx: &rusqlite::Connection,
    org_id: &str,
    message_id: &str,
    provider_message_id: &str,
    status: Status,
    at: DateTime<Utc>,
) -> Result<Option<(MessageRecord, bool)>, StoreError> {
    let Some(mut record) = load_message(tx, org_id, message_id)? else {
        return Ok(None);
    };
    let before = record.clone();
    let moved = record.apply_report(provider_message_id, status, at);
    if record != before {
        save_message(tx, &record)?;
    }
    Ok(Some((record, moved)))
}

/// An event with its dedupe key, ready to be recorded inside a transaction.
struct DedupeMarker {
    org_id: String,
    dedupe_key: String,
    doc: String,
}

impl DedupeMarker {
    fn new(event: &Event, dedupe_key: &str) -> Result<Self, StoreError> {
        Ok(Self {
            org_id: event.org_id().to_string(),
            dedupe_key: dedupe_key.to_string(),
            doc: to_json(event)?,
        })
    }

    /// Records the event unless its key was recorded (and has not expired); returns whether
    /// it was new.
    fn record(&self, tx: &rusqlite::Connection) -> Result<bool, StoreError> {
        let now = Utc::now();
        // Expired markers go first (the index makes this free when none has expired), so that
        // an expired key counts as new and the table stays as large as 30 days' webhooks.
        tx.exec(
            "DELETE FROM dedupe_markers WHERE expires_at_micros <= ?1",
            params![now.timestamp_micros()],
        )?;
        let new = tx.exec(
            "INSERT OR IGNORE INTO dedupe_markers (org_id, dedupe_key, expires_at_micros)
             VALUES (?1, ?2, ?3)",
            params![
                self.org_id,
                self.dedupe_key,
                (now + DEDUPE_LIFETIME).timestamp_micros()
            ],
        )? == 1;
        if new {
            tx.exec(
                "INSERT INTO events (org_id, doc) VALUES (?1, ?2)",
                params![self.org_id, self.doc],
            )?;
        }
        Ok(new)
    }
}

/// Points every provider id of the record at it, on its connection.
fn index_provider_ids(tx: &rusqlite::Connection, record: &MessageRecord) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO provider_ids (org_id, connection_id, provider_message_id, message_id)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (org_id, connection_id, provider_message_id)
         DO UPDATE SET message_id = excluded.message_id",
    )?;
    for id in record.provider_ids() {
        stmt.execute(params![
            record.org_id,
            record.connection_id,
            id,
            record.message_id
        ])?;
    }
    Ok(())
}

fn part_lifetime_micros() -> i64 {
    INBOUND_PART_LIFETIME.num_microseconds().unwrap_or(i64::MAX)
}

#[async_trait]
impl ConnectionStore for SqliteStore {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let doc = to_json(connection)?;
        let (org, id) = (connection.org_id.clone(), connection.connection_id.clone());
        self.run(move |db| {
            db.exec(
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
                .row(
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
            let mut stmt = db.prepare_cached(
                "SELECT doc FROM connections WHERE org_id = ?1 ORDER BY connection_id",
            )?;
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
            let n = db.exec(
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
            db.exec(
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
                .row(
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
            db.exec(
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
            let tx = db.savepoint()?;
            let inserted = tx.exec(
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
                Claim::Claimed(Box::new(ReadMessage::unversioned(record)))
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
        claimed: &ReadMessage,
        done: &SendCompletion,
    ) -> Result<MessageRecord, StoreError> {
        let (org, id) = (
            claimed.record.org_id.clone(),
            claimed.record.message_id.clone(),
        );
        let done = done.clone();
        let record = self
            .run(move |db| {
                let tx = db.savepoint()?;
                // Read again under the write lock: a local read costs no round trip, and it
                // carries any report that beat this completion.
                let mut record = load_message(&tx, &org, &id)?
                    .ok_or_else(|| StoreError::Corrupt(format!("no claimed message {id}")))?;
                record.complete(&done);
                // One transaction: the record is never completed without its index.
                save_message(&tx, &record)?;
                index_provider_ids(&tx, &record)?;
                tx.commit()?;
                Ok(record)
            })
            .await?;
        // Reports that beat this write were held: now they find their message.
        let stored = ReadMessage::unversioned(record);
        super::release_after_send(self, &stored).await;
        Ok(stored.record)
    }

    async fn release_claim(&self, org_id: &str, message_id: &str) -> Result<(), StoreError> {
        let (org, id) = (org_id.to_string(), message_id.to_string());
        self.run(move |db| {
            let tx = db.savepoint()?;
            // A completed or attempted send keeps its record: only an untried claim goes back.
            let untried = load_message(&tx, &org, &id)?
                .is_some_and(|r| r.send_state == SendState::Sending && r.attempts == 0);
            if untried {
                tx.exec(
                    "DELETE FROM messages WHERE org_id = ?1 AND message_id = ?2",
                    params![org, id],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn read_message(
        &self,
        org_id: &str,
        message_id: &str,
    ) -> Result<Option<ReadMessage>, StoreError> {
        let (org, id) = (org_id.to_string(), message_id.to_string());
        let record = self.run(move |db| load_message(db, &org, &id)).await?;
        Ok(record.map(ReadMessage::unversioned))
    }

    async fn find_by_provider_message_id(
        &self,
        org_id: &str,
        connection_id: &str,
        provider_message_id: &str,
    ) -> Result<Option<ReadMessage>, StoreError> {
        let (org, conn, pmid) = (
            org_id.to_string(),
            connection_id.to_string(),
            provider_message_id.to_string(),
        );
        self.run(move |db| {
            let doc: Option<String> = db
                .row(FIND_BY_PROVIDER_ID, params![org, conn, pmid], |row| {
                    row.get(0)
                })
                .optional()?;
            doc.map(|d| from_json(&d).map(ReadMessage::unversioned))
                .transpose()
        })
        .await
    }

    async fn advance_status(
        &self,
        message: &mut ReadMessage,
        provider_message_id: &str,
        status: Status,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (org, id, pmid) = (
            message.record.org_id.clone(),
            message.record.message_id.clone(),
            provider_message_id.to_string(),
        );
        let stepped = self
            .run(move |db| {
                let tx = db.savepoint()?;
                let stepped = step_status(&tx, &org, &id, &pmid, status, at)?;
                tx.commit()?;
                Ok(stepped)
            })
            .await?;
        Ok(match stepped {
            Some((record, moved)) => {
                message.record = record;
                moved
            }
            None => false,
        })
    }

    async fn record_event(&self, event: &Event, dedupe_key: &str) -> Result<bool, StoreError> {
        let marker = DedupeMarker::new(event, dedupe_key)?;
        self.run(move |db| {
            let tx = db.savepoint()?;
            let new = marker.record(&tx)?;
            tx.commit()?;
            Ok(new)
        })
        .await
    }

    async fn record_status_event(
        &self,
        message: &mut ReadMessage,
        event: &StatusEvent,
        dedupe_key: &str,
    ) -> Result<bool, StoreError> {
        let marker = DedupeMarker::new(&Event::Status(event.clone()), dedupe_key)?;
        let (org, id) = (
            message.record.org_id.clone(),
            message.record.message_id.clone(),
        );
        let (pmid, status, at) = (
            event.provider_message_id.clone(),
            event.status,
            event.received_at,
        );
        // One savepoint: the step and its event stand or fall together (and commit with the batch).
        let (stepped, new) = self
            .run(move |db| {
                let tx = db.savepoint()?;
                let stepped = step_status(&tx, &org, &id, &pmid, status, at)?;
                let new = marker.record(&tx)?;
                tx.commit()?;
                Ok((stepped, new))
            })
            .await?;
        if let Some((record, _)) = stepped {
            message.record = record;
        }
        Ok(new)
    }

    async fn list_events(&self, org_id: &str, limit: usize) -> Result<Vec<Event>, StoreError> {
        let org = org_id.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |db| {
            let mut stmt = db.prepare_cached(
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
        let accepted = to_json(&SendState::Accepted)?;
        self.run(move |db| {
            Ok(db
                .row(
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
            // A change older than the recorded one is ignored; of equal times the later call wins.
            db.exec(
                "INSERT INTO opt_outs (org_id, number, opted_out, updated_at, at_micros)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (org_id, number) DO UPDATE
                 SET opted_out = excluded.opted_out, updated_at = excluded.updated_at,
                     at_micros = excluded.at_micros
                 WHERE excluded.at_micros >= opt_outs.at_micros",
                params![
                    org,
                    number,
                    opted_out,
                    at.to_rfc3339(),
                    at.timestamp_micros()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn is_opted_out(&self, org_id: &str, number: &str) -> Result<bool, StoreError> {
        let (org, number) = (org_id.to_string(), number.to_string());
        self.run(move |db| {
            let flag: Option<bool> = db
                .row(
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
        let stale_before = Utc::now().timestamp_micros() - part_lifetime_micros();
        self.run(move |db| {
            let tx = db.savepoint()?;
            // A repeat of the same part replaces it: kept once, as received last.
            tx.exec(
                "INSERT INTO inbound_parts
                 (org_id, connection_id, sender, reference, idx, provider_message_id, total, text,
                  received_at_micros)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (org_id, connection_id, sender, reference, idx, provider_message_id)
                 DO UPDATE SET total = excluded.total, text = excluded.text,
                               received_at_micros = excluded.received_at_micros",
                params![
                    part.org_id,
                    part.connection_id,
                    part.from,
                    part.reference,
                    part.index,
                    part.provider_message_id,
                    part.total,
                    part.text,
                    part.received_at.timestamp_micros(),
                ],
            )?;
            // After the insert, so that a part that is itself stale goes too and joins nothing.
            tx.exec(
                "DELETE FROM inbound_parts WHERE org_id = ?1 AND received_at_micros < ?2",
                params![part.org_id, stale_before],
            )?;
            let parts = group_parts(&tx, &part)?;
            tx.commit()?;
            Ok(join_parts(part.total, parts))
        })
        .await
    }

    async fn forget_inbound_parts(
        &self,
        part: &InboundPart,
        joined: &JoinedReply,
    ) -> Result<(), StoreError> {
        let (part, joined) = (part.clone(), joined.clone());
        self.run(move |db| {
            let tx = db.savepoint()?;
            // `part_ids` are in index order, one per index from 1: exactly the joined parts, not
            // a later message's parts that reuse the reference.
            for (index, id) in (1i64..).zip(&joined.part_ids) {
                tx.exec(
                    "DELETE FROM inbound_parts
                     WHERE org_id = ?1 AND connection_id = ?2 AND sender = ?3 AND reference = ?4
                       AND idx = ?5 AND provider_message_id = ?6",
                    params![
                        part.org_id,
                        part.connection_id,
                        part.from,
                        part.reference,
                        index,
                        id
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn hold_report(&self, held: &HeldReport) -> Result<bool, StoreError> {
        let event = &held.event;
        let (org, conn, pmid, key) = (
            event.org_id.clone(),
            event.connection_id.clone(),
            event.provider_message_id.clone(),
            held.dedupe_key.clone(),
        );
        let (doc, expires) = (to_json(held)?, held.expires_at().timestamp_micros());
        let now = Utc::now().timestamp_micros();
        self.run(move |db| {
            let tx = db.savepoint()?;
            tx.exec(
                "DELETE FROM held_reports WHERE expires_at_micros <= ?1",
                params![now],
            )?;
            let new = tx.exec(
                "INSERT OR IGNORE INTO held_reports
                 (org_id, connection_id, provider_message_id, dedupe_key, doc, expires_at_micros)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![org, conn, pmid, key, doc, expires],
            )? == 1;
            tx.commit()?;
            Ok(new)
        })
        .await
    }

    async fn held_reports(
        &self,
        org_id: &str,
        connection_id: &str,
        provider_message_id: &str,
    ) -> Result<Vec<HeldReport>, StoreError> {
        let (org, conn, pmid) = (
            org_id.to_string(),
            connection_id.to_string(),
            provider_message_id.to_string(),
        );
        let now = Utc::now().timestamp_micros();
        self.run(move |db| {
            let mut stmt = db.prepare_cached(
                "SELECT doc FROM held_reports
                 WHERE org_id = ?1 AND connection_id = ?2 AND provider_message_id = ?3
                   AND expires_at_micros > ?4",
            )?;
            let docs = stmt
                .query_map(params![org, conn, pmid, now], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            docs.iter().map(|d| from_json(d)).collect()
        })
        .await
    }

    async fn forget_held_report(&self, held: &HeldReport) -> Result<(), StoreError> {
        let event = &held.event;
        let (org, conn, pmid, key) = (
            event.org_id.clone(),
            event.connection_id.clone(),
            event.provider_message_id.clone(),
            held.dedupe_key.clone(),
        );
        self.run(move |db| {
            db.exec(
                "DELETE FROM held_reports WHERE org_id = ?1 AND connection_id = ?2
                 AND provider_message_id = ?3 AND dedupe_key = ?4",
                params![org, conn, pmid, key],
            )?;
            Ok(())
        })
        .await
    }
}

/// Every stored part of `part`'s group.
fn group_parts(
    tx: &rusqlite::Connection,
    part: &InboundPart,
) -> Result<Vec<StoredPart>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT total, idx, provider_message_id, text, received_at_micros FROM inbound_parts
         WHERE org_id = ?1 AND connection_id = ?2 AND sender = ?3 AND reference = ?4",
    )?;
    let rows = stmt.query_map(
        params![part.org_id, part.connection_id, part.from, part.reference],
        |row| {
            Ok(StoredPart {
                total: row.get(0)?,
                index: row.get(1)?,
                provider_message_id: row.get(2)?,
                text: row.get(3)?,
                received_at_micros: row.get(4)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PartStatus, Provider};

    fn completed_record() -> MessageRecord {
        let at = Utc::now();
        MessageRecord {
            org_id: "O".into(),
            message_id: "m1".into(),
            connection_id: "c1".into(),
            provider: Provider::Vonage,
            user_id: "U".into(),
            to: "+14155550100".into(),
            body: "hi".into(),
            segments: 2,
            encoding: "gsm7".into(),
            send_state: SendState::Accepted,
            status: Some(Status::Accepted),
            provider_message_id: Some("p1".into()),
            parts: ["p1", "p2"]
                .map(|id| PartStatus {
                    provider_message_id: id.into(),
                    status: Some(Status::Accepted),
                })
                .into(),
            error: None,
            attempts: 1,
            created_at: at,
            updated_at: at,
        }
    }

    /// Calls that wait together run in one transaction, and one that fails or panics takes back
    /// only its own writes: every other call in its batch is answered and kept.
    #[tokio::test]
    async fn a_failing_call_in_a_batch_loses_only_its_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        // Hold the store's thread, so that every call below waits in its queue and they run as
        // one batch once it is let go.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let gate = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .run(move |_| {
                        held.recv().ok();
                        Ok(())
                    })
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;

        let mut calls = Vec::new();
        for i in 0..30 {
            let store = store.clone();
            calls.push(tokio::spawn(async move {
                let key = format!("k{i:02}");
                // A call that writes a marker in its savepoint, then fails (3) or panics (7).
                let marker = key.clone();
                let write_then = move |db: &mut rusqlite::Connection,
                                       panics: bool|
                      -> Result<bool, StoreError> {
                    let tx = db.savepoint()?;
                    tx.exec(
                        "INSERT INTO dedupe_markers (org_id, dedupe_key, expires_at_micros)
                         VALUES ('O', ?1, ?2)",
                        params![marker, i64::MAX],
                    )?;
                    assert!(!panics, "a call that panics");
                    Err(StoreError::Corrupt("a failing call".into()))
                };
                match i % 10 {
                    3 => store.run(move |db| write_then(db, false)).await,
                    7 => store.run(move |db| write_then(db, true)).await,
                    _ => store.record_event(&status_event(&key), &key).await,
                }
            }));
        }
        // A call of the same batch sees the batch's transaction open around its own work.
        let in_batch = {
            let store = store.clone();
            tokio::spawn(async move { store.run(|db| Ok(!db.is_autocommit())).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release.send(()).unwrap();
        gate.await.unwrap().unwrap();

        let mut kept = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            let answer = call.await.unwrap();
            match i % 10 {
                3 => assert!(matches!(answer, Err(StoreError::Corrupt(_))), "{answer:?}"),
                7 => assert!(
                    matches!(answer, Err(StoreError::Unavailable(_))),
                    "{answer:?}"
                ),
                _ => {
                    assert!(answer.unwrap(), "call {i} recorded its event");
                    kept.push(format!("k{i:02}"));
                }
            }
        }
        assert!(
            in_batch.await.unwrap().unwrap(),
            "the calls ran in one transaction"
        );
        assert_eq!(markers(&store).await, kept);
        let events = store.list_events("O", 100).await.unwrap();
        assert_eq!(events.len(), kept.len());
    }

    /// The status path (find by provider id, then the status step) as the gateway runs it, many
    /// times over: the find's statement stays prepared (see [`FIND_BY_PROVIDER_ID`]).
    #[tokio::test]
    async fn finding_by_provider_id_keeps_its_statement_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        for i in 0..50 {
            let record = MessageRecord {
                message_id: format!("m{i}"),
                send_state: SendState::Sending,
                status: None,
                provider_message_id: None,
                parts: Vec::new(),
                attempts: 0,
                ..completed_record()
            };
            let Claim::Claimed(claimed) = store.claim_message(&record).await.unwrap() else {
                panic!("m{i} is new")
            };
            let done = SendCompletion {
                send_state: SendState::Accepted,
                status: Some(Status::Accepted),
                provider_message_id: Some(format!("p{i}")),
                part_ids: Vec::new(),
                error: None,
                attempts: 1,
                at: Utc::now(),
            };
            store.complete_send(&claimed, &done).await.unwrap();
        }
        for i in 0..50 {
            let pmid = format!("p{i}");
            let mut found = store
                .find_by_provider_message_id("O", "c1", &pmid)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.record.message_id, format!("m{i}"));
            let moved = store
                .advance_status(&mut found, &pmid, Status::Delivered, Utc::now())
                .await
                .unwrap();
            assert!(moved);
        }
        let reprepared = store
            .run(|db| {
                let statement = db.prepare_cached(FIND_BY_PROVIDER_ID)?;
                Ok(statement.get_status(rusqlite::StatementStatus::RePrepare))
            })
            .await
            .unwrap();
        assert_eq!(reprepared, 0, "re-prepared on {reprepared} of 50 finds");
    }

    /// A file as the first release left it: a completed two-part message and a STOP.
    fn old_file(dir: &Path, stop_at: DateTime<Utc>) {
        let db = rusqlite::Connection::open(dir.join(FILE_NAME)).unwrap();
        db.execute_batch(BASE_SCHEMA).unwrap();
        let record = completed_record();
        db.execute(
            "INSERT INTO messages (org_id, message_id, connection_id, provider, recipient,
             send_state, provider_message_id, created_at, doc)
             VALUES ('O', 'm1', 'c1', 'vonage', ?1, '\"accepted\"', 'p1', ?2, ?3)",
            params![
                record.to,
                record.created_at.to_rfc3339(),
                to_json(&record).unwrap()
            ],
        )
        .unwrap();
        db.execute(
            "INSERT INTO opt_outs VALUES ('O', '+14155550100', 1, ?1)",
            params![stop_at.to_rfc3339()],
        )
        .unwrap();
        db.execute(
            "INSERT INTO inbound_parts VALUES ('O', 'c1', '+1', 'r', 2, 1, 'old', ?1)",
            params![stop_at.to_rfc3339()],
        )
        .unwrap();
        db.execute(
            "INSERT INTO events (org_id, dedupe_key, doc) VALUES ('O', 'c1:old-key', ?1)",
            params![to_json(&status_event("e-old")).unwrap()],
        )
        .unwrap();
    }

    fn status_event(event_id: &str) -> Event {
        Event::Status(crate::domain::StatusEvent {
            event_id: event_id.into(),
            org_id: "O".into(),
            connection_id: "c1".into(),
            provider: Provider::Vonage,
            provider_message_id: "p1".into(),
            message_id: Some("m1".into()),
            status: Status::Delivered,
            provider_status: "delivered".into(),
            error_code: None,
            occurred_at: None,
            received_at: Utc::now(),
        })
    }

    async fn markers(store: &SqliteStore) -> Vec<String> {
        store
            .run(|db| {
                let mut stmt =
                    db.prepare("SELECT dedupe_key FROM dedupe_markers ORDER BY dedupe_key")?;
                let keys = stmt
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(keys)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn dedupe_markers_expire_and_are_swept_while_the_events_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        assert!(store.record_event(&status_event("e1"), "k1").await.unwrap());
        assert!(store.record_event(&status_event("e2"), "k2").await.unwrap());
        assert!(!store.record_event(&status_event("e3"), "k1").await.unwrap());
        // Thirty days later (as far as the markers can tell).
        store
            .run(|db| Ok(db.execute("UPDATE dedupe_markers SET expires_at_micros = 1", [])?))
            .await
            .unwrap();
        assert!(
            store.record_event(&status_event("e4"), "k1").await.unwrap(),
            "an expired marker no longer dedupes"
        );
        assert_eq!(markers(&store).await, ["k1"], "the expired k2 is swept");
        let ids: Vec<String> = store
            .list_events("O", 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event_id().to_string())
            .collect();
        assert_eq!(ids, ["e1", "e2", "e4"], "events are the record: they stay");
    }

    #[tokio::test]
    async fn an_old_file_is_migrated_and_keeps_working() {
        let dir = tempfile::tempdir().unwrap();
        let stop_at = Utc::now() - chrono::TimeDelta::minutes(5);
        old_file(dir.path(), stop_at);
        let store = SqliteStore::open(dir.path()).unwrap();
        for id in ["p1", "p2"] {
            let found = store.find_by_provider_message_id("O", "c1", id).await;
            let found = found.unwrap().map(|m| m.record.message_id);
            assert_eq!(found.as_deref(), Some("m1"));
        }
        assert!(
            store
                .find_by_provider_message_id("O", "c2", "p1")
                .await
                .unwrap()
                .is_none()
        );
        // The migrated STOP keeps its time: a START from before it changes nothing.
        let number = "+14155550100";
        let before = stop_at - chrono::TimeDelta::seconds(1);
        store.set_opt_out("O", number, false, before).await.unwrap();
        assert!(store.is_opted_out("O", number).await.unwrap());
        store
            .set_opt_out("O", number, false, Utc::now())
            .await
            .unwrap();
        assert!(!store.is_opted_out("O", number).await.unwrap());
        // The old event is kept, and its key still dedupes.
        assert_eq!(store.list_events("O", 10).await.unwrap().len(), 1);
        assert!(
            !store
                .record_event(&status_event("e-again"), "c1:old-key")
                .await
                .unwrap()
        );
        drop(store);

        // Opening again runs nothing twice.
        let store = SqliteStore::open(dir.path()).unwrap();
        let (version, old_index): (i64, i64) = store
            .run(|db| {
                let version = db.pragma_query_value(None, "user_version", |row| row.get(0))?;
                let old_index = db.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'messages_by_provider_id'",
                    [],
                    |row| row.get(0),
                )?;
                Ok((version, old_index))
            })
            .await
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        assert_eq!(old_index, 0, "the dropped index stays dropped");
    }

    #[tokio::test]
    async fn a_file_from_a_newer_release_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let db = rusqlite::Connection::open(dir.path().join(FILE_NAME)).unwrap();
        db.pragma_update(None, "user_version", 99).unwrap();
        drop(db);
        assert!(SqliteStore::open(dir.path()).is_err());
    }

    /// Writes `rows` rows of a page each, one call (one commit) per row, each awaited as the
    /// gateway's callers await theirs.
    async fn write_pages(store: &SqliteStore, rows: usize) {
        store
            .run(|db| Ok(db.execute_batch("CREATE TABLE IF NOT EXISTS filler (b BLOB)")?))
            .await
            .unwrap();
        for _ in 0..rows {
            store
                .run(|db| Ok(db.exec("INSERT INTO filler (b) VALUES (zeroblob(3000))", [])?))
                .await
                .unwrap();
        }
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// In WAL mode only a checkpoint writes the database file, so its growth shows that the
    /// checkpointer thread ran: the writes stay well short of the size at which the store's own
    /// thread would checkpoint.
    #[tokio::test]
    async fn the_checkpointer_thread_checkpoints_the_wal_past_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let database = dir.path().join(FILE_NAME);
        let before = file_len(&database);
        // About two WAL frames a row (its page and the table's), so past 1,000 and short of 4,000.
        write_pages(&store, 700).await;
        let wal = dir.path().join(format!("{FILE_NAME}-wal"));
        assert!(
            file_len(&wal) < (CHECKPOINT_INLINE_FRAMES as u64) * 4096,
            "the writes stayed short of the inline checkpoint"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while file_len(&database) < before + 500 * 3000 {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint reached the database file ({} bytes, {} before)",
                file_len(&database),
                before
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// A steady stream of commits, many times the checkpoint size: the WAL restarts after the
    /// checkpoints and never grows past the size at which the writer checkpoints it itself.
    #[tokio::test]
    async fn the_wal_stays_bounded_under_a_stream_of_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        write_pages(&store, 8_000).await;
        let wal = file_len(&dir.path().join(format!("{FILE_NAME}-wal")));
        // A frame is a 4 KiB page and its 24-byte header; the slack is the frames of the commit
        // that crosses the size (2 or 3 here).
        let bound = (CHECKPOINT_INLINE_FRAMES as u64 + 16) * (4096 + 24);
        assert!(wal > 0, "the store is in WAL mode");
        assert!(wal <= bound, "the WAL grew to {wal} bytes (bound {bound})");
    }
}
