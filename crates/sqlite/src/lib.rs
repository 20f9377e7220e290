//! The one way Deskrec uses SQLite, shared by the agent and the server.
//!
//! - [`open()`] and [`open_in_memory`]: a connection with the pragmas both
//!   need, migrated.
//! - [`migrate()`]: numbered migrations in code, the version in SQLite's
//!   `user_version`, each migration in one immediate transaction; a schema
//!   newer than the list is refused.
//! - [`write_tx`]: every transaction that writes takes the write lock up
//!   front.
//! - [`Db`]: the one connection behind a mutex, reached from async code on
//!   tokio's blocking pool.
//!
//! Each user keeps its own migration list and its own error type, converting
//! from [`Error`].

mod db;
mod migrate;
mod open;

pub use db::Db;
pub use migrate::{migrate, migrate_to, schema_version};
pub use open::{BUSY_TIMEOUT, open, open_in_memory};

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// Why a database could not be opened, migrated or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite refused a statement outside any migration (opening the file,
    /// a pragma).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file was written by a newer program: its schema is past the last
    /// migration this build knows, and an older program must not write it.
    #[error("database schema version {found} is newer than this program knows ({known})")]
    SchemaTooNew {
        /// `user_version` of the file.
        found: u32,
        /// The number of migrations this build has.
        known: u32,
    },
    /// A migration failed; the database stays at the version before it.
    #[error("database migration {version} failed: {source}")]
    Migration {
        /// The version the migration would have reached.
        version: u32,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A migration left rows whose foreign key points at no row; it was
    /// rolled back.
    #[error("database migration {version} left rows of {table} pointing nowhere")]
    BrokenReferences {
        /// The version the migration would have reached.
        version: u32,
        /// The first table with such a row.
        table: String,
    },
}

/// Starts a transaction that will write.
///
/// Immediate: it takes the write lock when it begins, waiting for it up to
/// the busy timeout. A deferred transaction that reads first and then writes
/// has to upgrade its read lock, and when another connection wrote in
/// between (or holds the write lock) SQLite answers `SQLITE_BUSY` at once,
/// without consulting the busy timeout: the write fails instead of waiting.
pub fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}
