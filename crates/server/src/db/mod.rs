//! The embedded SQLite database.
//!
//! One connection in WAL mode behind a mutex ([`Db`], shared with the agent
//! through `deskrec-sqlite`, which also owns opening, the pragmas and the
//! migration runner). SQLite serialises writers anyway, and the server's
//! statements are short, so one connection is simpler than a pool and fast
//! enough for the first thousand agents. Every transaction that writes
//! begins with [`write_tx`].

mod filter;
mod migrations;

pub use filter::Filter;

use std::path::Path;

pub use deskrec_sqlite::{Db, schema_version, write_tx};
pub use migrations::{MIGRATIONS, migrate};

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
    /// A migration failed and was rolled back.
    #[error(transparent)]
    Migration(deskrec_sqlite::Error),
}

impl From<deskrec_sqlite::Error> for DbError {
    fn from(e: deskrec_sqlite::Error) -> Self {
        match e {
            deskrec_sqlite::Error::Sqlite(e) => Self::Sqlite(e),
            deskrec_sqlite::Error::SchemaTooNew { found, known } => Self::TooNew { found, known },
            other => Self::Migration(other),
        }
    }
}

/// Opens (creating if needed) the database file and migrates it.
pub fn open(path: &Path) -> Result<Db, DbError> {
    Ok(Db::open(path, MIGRATIONS)?)
}

/// An in-memory database, migrated: for tests.
pub fn open_in_memory() -> Result<Db, DbError> {
    Ok(Db::open_in_memory(MIGRATIONS)?)
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
        let db = open(&dir.path().join("t.db")).unwrap();
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
