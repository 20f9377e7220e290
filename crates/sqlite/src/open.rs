//! Opening a database with the pragmas every Deskrec database needs.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::{Error, migrate};

/// How long a statement waits for another connection's lock before it
/// fails with `SQLITE_BUSY`. Writes are short; five seconds covers a slow
/// disk's fsync without hiding a connection that never lets go.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (creating if needed) the database file at `path` and brings it to
/// the last of `migrations` ([`migrate`]).
///
/// - `journal_mode = WAL`: readers do not block the writer or each other.
/// - `synchronous = FULL`: in WAL mode `NORMAL` does not sync at commit, so
///   a power cut can roll back a committed transaction; both programs act
///   on a commit (the server acknowledges a recording, the agent a
///   contact), so it must be on disk first. The cost is one fsync of the
///   WAL per write transaction.
/// - the busy timeout [`BUSY_TIMEOUT`], and foreign keys on once migrated.
pub fn open(path: &Path, migrations: &[&str]) -> Result<Connection, Error> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    prepare(conn, migrations)
}

/// An in-memory database, migrated, with the same busy timeout and foreign
/// keys as [`open`] (an in-memory database has no WAL): for tests.
pub fn open_in_memory(migrations: &[&str]) -> Result<Connection, Error> {
    prepare(Connection::open_in_memory()?, migrations)
}

fn prepare(mut conn: Connection, migrations: &[&str]) -> Result<Connection, Error> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    migrate(&mut conn, migrations)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma<T: rusqlite::types::FromSql>(c: &Connection, name: &str) -> T {
        c.pragma_query_value(None, name, |r| r.get(0)).unwrap()
    }

    #[test]
    fn every_commit_is_synced_and_foreign_keys_are_on() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("t.db"), &["CREATE TABLE t (x)"]).unwrap();
        assert_eq!(pragma::<String>(&c, "journal_mode"), "wal");
        assert_eq!(
            pragma::<i64>(&c, "synchronous"),
            2,
            "synchronous must be FULL (2): acknowledgements follow commits"
        );
        assert_eq!(pragma::<i64>(&c, "foreign_keys"), 1);
        assert_eq!(
            pragma::<i64>(&c, "busy_timeout"),
            BUSY_TIMEOUT.as_millis() as i64
        );
        drop(c);
        // Opened again, nothing to migrate: the same pragmas.
        let c = open(&dir.path().join("t.db"), &["CREATE TABLE t (x)"]).unwrap();
        assert_eq!(pragma::<i64>(&c, "foreign_keys"), 1);
        assert_eq!(pragma::<i64>(&c, "synchronous"), 2);
        let c = open_in_memory(&[]).unwrap();
        assert_eq!(pragma::<i64>(&c, "foreign_keys"), 1);
    }
}
