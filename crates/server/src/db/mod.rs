//! The embedded SQLite database.
//!
//! One connection in WAL mode behind a mutex. SQLite serialises writers
//! anyway, and the server's statements are short, so one connection is
//! simpler than a pool and fast enough for the first thousand agents. Async
//! code reaches it through [`Db::call`], which runs the closure on tokio's
//! blocking pool so a slow disk never stalls the reactor.

mod filter;
mod migrations;

pub use filter::Filter;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

pub use migrations::{MIGRATIONS, migrate, schema_version};

/// Why the database could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// An SQLite error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer server.
    #[error("database schema version {found} is newer than this server knows ({known})")]
    TooNew {
        /// `user_version` of the file.
        found: u32,
        /// Number of migrations this build has.
        known: u32,
    },
}

/// A shared handle to the database; clones share the connection.
#[derive(Clone)]
pub struct Db {
    /// The one connection; held only for the duration of one closure.
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Opens (creating if needed) the database file and migrates it.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL, not NORMAL: in WAL mode NORMAL does not sync at commit, so
        // a power cut can roll back a committed transaction. The server
        // tells an agent "recording stored" after its commit, and the
        // agent then deletes its copy: that commit must be on disk first.
        // The cost is one fsync of the WAL per write transaction.
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::setup(conn)
    }

    /// An in-memory database, migrated: for tests.
    pub fn open_in_memory() -> Result<Self, DbError> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Self, DbError> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<R, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            // A panic inside `f` is a bug; surface it where it happened.
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Runs `f` with the connection on the current thread: for startup and
    /// tests, never from async handlers.
    pub fn call_blocking<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut lock(&self.conn))
    }
}

fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    // A poisoned lock means a closure panicked mid-statement; SQLite rolls
    // back unfinished transactions, so the connection itself is still sound.
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

/// `seconds` after `micros` (saturating): an expiry from a validity.
pub fn micros_after(micros: i64, seconds: u64) -> i64 {
    micros.saturating_add(
        i64::try_from(seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000),
    )
}

/// Now, in microseconds since the Unix epoch: the unit of every timestamp
/// column.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_commit_is_synced_before_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let (journal, sync): (String, i64) = db.call_blocking(|c| {
            let j = c
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap();
            let s = c
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap();
            (j, s)
        });
        assert_eq!(journal, "wal");
        assert_eq!(
            sync, 2,
            "synchronous must be FULL (2): acknowledgements follow commits"
        );
    }
}
