//! The agent's local state: embedded SQLite in WAL mode.
//!
//! One connection behind a mutex, reached from async code through
//! [`Db::call`] (tokio's blocking pool), like the server's. Every change is
//! one transaction committed before the agent acts on it — a contact is
//! stored before it is acknowledged, a state before the work it names
//! starts — so a crash at any point resumes from what the database says.
//! `synchronous = FULL`: a commit survives power loss, not only a crash.
//!
//! Migrations are numbered, in code, each in its own transaction with its
//! `user_version`; append-only once shipped. Timestamps are integers,
//! microseconds since the Unix epoch on the agent's clock unless a column
//! says `server clock`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AgentError;
use crate::view::AuditEntry;

/// The migrations, oldest first: `MIGRATIONS[i]` takes the schema from
/// version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the whole first schema.
    "
    -- Single values by name, JSON: identity, contact cursor, watermark,
    -- cached policy, clock offset, the live status.
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    -- Segment files the recorder wrote, as last scanned.
    CREATE TABLE segments (
        path       TEXT PRIMARY KEY,
        started_at INTEGER NOT NULL,
        -- End of the last intact chunk (started_at when there is none).
        ended_at   INTEGER NOT NULL,
        bytes      INTEGER NOT NULL,
        chunks     INTEGER NOT NULL,
        -- Finished normally (SEND record): will not grow any more.
        complete   INTEGER NOT NULL CHECK (complete IN (0, 1)),
        scanned_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Contacts relayed by the server; start_at/end_at on the server clock.
    CREATE TABLE contacts (
        contact_id    TEXT PRIMARY KEY,
        seq           INTEGER NOT NULL,
        windows_login TEXT NOT NULL,
        start_at      INTEGER NOT NULL,
        end_at        INTEGER NOT NULL,
        state         TEXT NOT NULL CHECK (state IN
                      ('queued', 'splicing', 'uploading', 'done', 'unrecoverable')),
        -- unrecoverable: the protocol's reason and a detail for people.
        reason        TEXT,
        detail        TEXT,
        -- The contact_outcome went out on the RTE channel.
        outcome_sent  INTEGER NOT NULL DEFAULT 0,
        upload_url    TEXT,
        upload_offset INTEGER NOT NULL DEFAULT 0,
        attempts      INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        last_error    TEXT,
        received_at   INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX contacts_by_state ON contacts(state, seq);
    -- Recordings spliced for contacts; the file is deleted once the
    -- server acknowledged it (deleted_at).
    CREATE TABLE recordings (
        contact_id      TEXT PRIMARY KEY REFERENCES contacts(contact_id),
        path            TEXT NOT NULL,
        bytes           INTEGER NOT NULL,
        requested_start INTEGER NOT NULL,
        requested_end   INTEGER NOT NULL,
        trim_start      INTEGER NOT NULL,
        trim_end        INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        deleted_at      INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        id     INTEGER PRIMARY KEY,
        at     INTEGER NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    ",
    // 2: segments deleted by retention (or found missing) keep their row,
    // so a contact arriving later for their time is told apart from one
    // nothing was recorded for.
    "
    ALTER TABLE segments ADD COLUMN deleted_at INTEGER;
    ALTER TABLE segments ADD COLUMN deleted_reason TEXT;
    ",
    // 3: the recording state over time, so a contact with no segment can
    // be explained (not eligible, logged off, PC off).
    "
    CREATE TABLE timeline (
        id     INTEGER PRIMARY KEY,
        at     INTEGER NOT NULL,
        state  TEXT NOT NULL,
        reason TEXT NOT NULL,
        login  TEXT NOT NULL
    );
    CREATE INDEX timeline_at ON timeline (at);
    ",
    // 4: a deleted segment's findings, and whether they still have to go
    // to the server.
    "
    ALTER TABLE segments ADD COLUMN findings TEXT;
    ALTER TABLE segments ADD COLUMN report_pending INTEGER NOT NULL DEFAULT 0;
    ",
    // 5: pauses (crate::pause), committed before the recorder is told;
    // `reported` is what the server has heard: 0 nothing, 1 the start,
    // 2 the end.
    "
    CREATE TABLE pauses (
        id           TEXT PRIMARY KEY,
        source       TEXT NOT NULL,
        reason       TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        login        TEXT NOT NULL,
        started_at   INTEGER NOT NULL,
        until        INTEGER,
        ended_at     INTEGER,
        end_reason   TEXT,
        reported     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX pauses_open ON pauses (ended_at);
    ",
    // 6: a contact can end `disposed`: the server erased its recorded
    // content or let it expire before the recording arrived, and refuses
    // it (410); `reason` says which (`erased`, `expired`). SQLite cannot
    // change a CHECK in place, so the table is rebuilt (foreign keys are
    // off while migrating, see `Db::open`); no column moved since 1.
    "
    CREATE TABLE contacts_v6 (
        contact_id    TEXT PRIMARY KEY,
        seq           INTEGER NOT NULL,
        windows_login TEXT NOT NULL,
        start_at      INTEGER NOT NULL,
        end_at        INTEGER NOT NULL,
        state         TEXT NOT NULL CHECK (state IN
                      ('queued', 'splicing', 'uploading', 'done', 'unrecoverable', 'disposed')),
        -- unrecoverable: the protocol's reason and a detail for people;
        -- disposed: `erased` or `expired`, and the server's message.
        reason        TEXT,
        detail        TEXT,
        -- The contact_outcome went out on the RTE channel.
        outcome_sent  INTEGER NOT NULL DEFAULT 0,
        upload_url    TEXT,
        upload_offset INTEGER NOT NULL DEFAULT 0,
        attempts      INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        last_error    TEXT,
        received_at   INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO contacts_v6 SELECT * FROM contacts;
    DROP TABLE contacts;
    ALTER TABLE contacts_v6 RENAME TO contacts;
    CREATE INDEX contacts_by_state ON contacts(state, seq);
    ",
];

/// A shared handle to the database; clones share the connection.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, AgentError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Foreign keys on only after migrating: a migration that rebuilds
        // a parent table (6) drops it while its children still point at
        // the name, which the rebuilt table takes again (SQLite's own
        // procedure for schema changes ALTER TABLE cannot make). Off
        // explicitly: the bundled SQLite is built with them on by default.
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        migrate(&mut conn)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, AgentError> + Send + 'static,
    ) -> Result<R, AgentError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Runs `f` on the current thread: for startup, the CLI and tests.
    pub fn call_blocking<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut lock(&self.conn))
    }
}

fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    // A panic mid-closure leaves no open transaction behind (rusqlite
    // rolls back on drop), so the connection is still sound.
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

/// Brings the schema to the newest version. Foreign keys must be off
/// (see [`Db::open`]); each migration checks them before it commits.
fn migrate(conn: &mut Connection) -> Result<(), AgentError> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as u32;
    if found > known {
        return Err(AgentError::SchemaTooNew { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = write_tx(conn)?;
        tx.execute_batch(sql)?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(AgentError::Invalid(format!(
                "migration {} left rows of {table} pointing nowhere",
                i + 1
            )));
        }
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Starts a transaction that will write. Immediate, so it takes the write
/// lock up front and waits for it (busy timeout): a deferred one that reads
/// first fails at once with "database is locked" when another connection
/// (the status command, another task's) wrote in between.
pub fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Names of the `meta` values.
pub mod keys {
    /// [`crate::enroll::Identity`].
    pub const IDENTITY: &str = "identity";
    /// The highest contact `seq` stored (the RTE cursor).
    pub const CURSOR: &str = "contact_cursor";
    /// The server's watermark (server clock).
    pub const WATERMARK: &str = "watermark";
    /// [`crate::policy::CachedPolicy`].
    pub const POLICY: &str = "policy";
    /// [`crate::clock::ClockOffset`].
    pub const CLOCK: &str = "clock_offset";
    /// [`crate::status::Live`].
    pub const LIVE: &str = "live_status";
}

/// A `meta` value.
pub fn get_meta<T: DeserializeOwned>(
    conn: &Connection,
    key: &str,
) -> Result<Option<T>, AgentError> {
    let text: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| AgentError::Invalid(format!("stored {key} is unreadable: {e}")))
    })
    .transpose()
}

/// Sets a `meta` value.
pub fn put_meta<T: Serialize>(conn: &Connection, key: &str, value: &T) -> Result<(), AgentError> {
    let text = serde_json::to_string(value)
        .map_err(|e| AgentError::Invalid(format!("{key} does not serialize: {e}")))?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, text],
    )?;
    Ok(())
}

/// Appends an audit row (in the caller's transaction).
pub fn audit(
    tx: &Transaction<'_>,
    at: i64,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), AgentError> {
    tx.execute(
        "INSERT INTO audit (at, action, target, detail) VALUES (?1, ?2, ?3, ?4)",
        params![at, action, target, detail.to_string()],
    )?;
    Ok(())
}

/// The newest audit rows, newest first.
pub fn recent_audit(conn: &Connection, limit: u32) -> Result<Vec<AuditEntry>, AgentError> {
    let mut stmt =
        conn.prepare("SELECT at, action, target, detail FROM audit ORDER BY id DESC LIMIT ?1")?;
    let rows = stmt
        .query_map([limit], |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                action: r.get(1)?,
                target: r.get(2)?,
                detail: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.db");
        let db = Db::open(&path).unwrap();
        db.call_blocking(|c| put_meta(c, keys::CURSOR, &7u64))
            .unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        let cursor: Option<u64> = db.call_blocking(|c| get_meta(c, keys::CURSOR)).unwrap();
        assert_eq!(cursor, Some(7));
        let mode: String = db
            .call_blocking(|c| c.pragma_query_value(None, "journal_mode", |r| r.get(0)))
            .unwrap();
        assert_eq!(mode, "wal");
        db.call_blocking(|c| c.pragma_update(None, "user_version", 99))
            .unwrap();
        drop(db);
        assert!(matches!(
            Db::open(&path),
            Err(AgentError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn the_contacts_rebuild_keeps_rows_and_their_recordings_and_takes_disposed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.db");
        // A database as version 5 left it, with a contact and its recording.
        let conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.execute_batch(
            "INSERT INTO contacts (contact_id, seq, windows_login, start_at, end_at, state,
                                   received_at, updated_at)
             VALUES ('c-1', 3, 'ann', 10, 20, 'uploading', 1, 1);
             INSERT INTO recordings (contact_id, path, bytes, requested_start, requested_end,
                                     trim_start, trim_end, created_at)
             VALUES ('c-1', '/r/c-1.dskr', 9, 10, 20, 10, 20, 1);",
        )
        .unwrap();
        drop(conn);
        let db = Db::open(&path).unwrap();
        db.call_blocking(|c| {
            let (seq, state): (u64, String) = c
                .query_row(
                    "SELECT seq, state FROM contacts WHERE contact_id = 'c-1'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((seq, state.as_str()), (3, "uploading"));
            c.execute(
                "UPDATE contacts SET state = 'disposed' WHERE contact_id = 'c-1'",
                [],
            )
            .unwrap();
            assert!(c.execute("UPDATE contacts SET state = 'gone'", []).is_err());
            // Foreign keys are on again, and point at the rebuilt table.
            let orphan = "INSERT INTO recordings (contact_id, path, bytes, requested_start,
                          requested_end, trim_start, trim_end, created_at)
                          VALUES ('nope', '/r/x', 1, 0, 0, 0, 0, 0)";
            assert!(c.execute(orphan, []).is_err());
        });
    }
}
