//! The agent's local state: embedded SQLite in WAL mode.
//!
//! One connection behind a mutex, reached from async code through
//! [`Db::call`] (tokio's blocking pool), opened and migrated by
//! `deskrec-sqlite` as the server's is. Every change is
//! one transaction committed before the agent acts on it — a contact is
//! stored before it is acknowledged, a state before the work it names
//! starts — so a crash at any point resumes from what the database says.
//! `synchronous = FULL`: a commit survives power loss, not only a crash.
//!
//! Migrations are numbered, in code, each in its own immediate transaction
//! with its `user_version` ([`deskrec_sqlite::migrate`]); append-only once
//! shipped. Every transaction that writes begins with [`write_tx`]. Timestamps are integers,
//! microseconds since the Unix epoch on the agent's clock unless a column
//! says `server clock`.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub use deskrec_sqlite::write_tx;
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
    // off while migrating, see `deskrec_sqlite::migrate`); no column moved
    // since 1.
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
///
/// [`deskrec_sqlite::Db`] with the agent's migrations and its error: the
/// closures [`Db::call`] runs return [`AgentError`], so they need no
/// annotation.
#[derive(Clone, Debug)]
pub struct Db(deskrec_sqlite::Db);

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`
    /// ([`deskrec_sqlite::open`]: WAL, `synchronous = FULL`, foreign keys
    /// off while migrating, since migration 6 rebuilds a parent table).
    pub fn open(path: &Path) -> Result<Self, AgentError> {
        Ok(Self(deskrec_sqlite::Db::open(path, MIGRATIONS)?))
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, AgentError> + Send + 'static,
    ) -> Result<R, AgentError> {
        self.0.call(f).await
    }

    /// Runs `f` on the current thread: for startup, the CLI and tests.
    pub fn call_blocking<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        self.0.call_blocking(f)
    }
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
        serde_json::from_str(&t).map_err(|source| AgentError::StoredValue {
            key: key.to_owned(),
            source,
        })
    })
    .transpose()
}

/// Sets a `meta` value.
pub fn put_meta<T: Serialize>(conn: &Connection, key: &str, value: &T) -> Result<(), AgentError> {
    let text = serde_json::to_string(value).map_err(|source| AgentError::Encode {
        what: key.to_owned(),
        source,
    })?;
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
