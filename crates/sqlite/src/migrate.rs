//! Numbered schema migrations, in code.
//!
//! `migrations[i]` takes the schema from version `i` to `i + 1`; the current
//! version is SQLite's `user_version`. Each migration runs in one immediate
//! transaction with its version bump, so a crash or an error leaves the
//! database at a whole version. The version is read again inside that
//! transaction, so two programs opening the same file at once apply each
//! migration once: the second waits for the first's write lock and then
//! finds the work done. Migrations are append-only: never edit one that has
//! shipped.
//!
//! Foreign keys are off while migrating and on afterwards: a migration that
//! rebuilds a parent table (SQLite's own procedure for changes `ALTER TABLE`
//! cannot make) drops it while its children still point at the name. Each
//! migration checks every foreign key before it commits instead.

use rusqlite::{Connection, OptionalExtension};

use crate::{Error, write_tx};

/// The schema version of the open database (`user_version`).
pub fn schema_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Applies every one of `migrations` the database has not seen yet, and
/// leaves foreign keys on.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), Error> {
    migrate_to(conn, migrations, migrations.len() as u32)
}

/// Applies `migrations` up to version `target` (for tests of one
/// migration's effect on data an older one left), and leaves foreign keys
/// on. A database past the last migration is refused with
/// [`Error::SchemaTooNew`] and left untouched.
pub fn migrate_to(conn: &mut Connection, migrations: &[&str], target: u32) -> Result<(), Error> {
    let known = migrations.len() as u32;
    let target = target.min(known);
    // Most opens find nothing to do: answer those without the write lock.
    let found = schema_version(conn)?;
    if found > known {
        return Err(Error::SchemaTooNew { found, known });
    }
    if found >= target {
        // Whatever SQLite was built with: on, as after migrating.
        conn.pragma_update(None, "foreign_keys", "ON")?;
        return Ok(());
    }
    // Outside any transaction: inside one the pragma does nothing.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let applied = apply(conn, migrations, target);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    applied
}

fn apply(conn: &mut Connection, migrations: &[&str], target: u32) -> Result<(), Error> {
    let known = migrations.len() as u32;
    loop {
        let tx = write_tx(conn)?;
        // Again under the write lock: another program may have migrated
        // while this one waited for it.
        let found = schema_version(&tx)?;
        if found > known {
            return Err(Error::SchemaTooNew { found, known });
        }
        if found >= target {
            return Ok(());
        }
        let version = found + 1;
        let failed = |source| Error::Migration { version, source };
        tx.execute_batch(migrations[found as usize])
            .map_err(failed)?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(failed)?;
        if let Some(table) = broken {
            return Err(Error::BrokenReferences { version, table });
        }
        tx.pragma_update(None, "user_version", version)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(version, "database migrated");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    fn table_exists(c: &Connection, name: &str) -> bool {
        c.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    }

    /// A second connection to the file, as another program would have.
    fn connect(path: &Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.busy_timeout(crate::BUSY_TIMEOUT).unwrap();
        c
    }

    #[test]
    fn migrations_apply_in_order_once() {
        let mut c = Connection::open_in_memory().unwrap();
        let all = ["CREATE TABLE a (x)", "ALTER TABLE a ADD COLUMN y"];
        migrate_to(&mut c, &all, 1).unwrap();
        assert_eq!(schema_version(&c).unwrap(), 1);
        migrate(&mut c, &all).unwrap();
        // Nothing left to do: foreign keys on all the same.
        c.pragma_update(None, "foreign_keys", "OFF").unwrap();
        migrate(&mut c, &all).unwrap();
        let fk: i64 = c
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        assert_eq!(schema_version(&c).unwrap(), 2);
        c.execute("INSERT INTO a (x, y) VALUES (1, 2)", []).unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", 3).unwrap();
        let refused = migrate(&mut c, &["CREATE TABLE a (x)"]).unwrap_err();
        assert!(
            matches!(refused, Error::SchemaTooNew { found: 3, known: 1 }),
            "{refused:?}"
        );
        assert_eq!(
            refused.to_string(),
            "database schema version 3 is newer than this program knows (1)"
        );
        assert!(!table_exists(&c, "a"));
        assert_eq!(schema_version(&c).unwrap(), 3);
    }

    #[test]
    fn a_failed_migration_is_rolled_back_whole() {
        let mut c = Connection::open_in_memory().unwrap();
        let all = [
            "CREATE TABLE a (x)",
            // Its first statement works, its second fails: neither stays.
            "CREATE TABLE b (x); INSERT INTO nowhere VALUES (1);",
        ];
        let failed = migrate(&mut c, &all).unwrap_err();
        assert!(
            matches!(failed, Error::Migration { version: 2, .. }),
            "{failed:?}"
        );
        assert!(table_exists(&c, "a"));
        assert!(!table_exists(&c, "b"), "half of migration 2 was kept");
        assert_eq!(schema_version(&c).unwrap(), 1);
        // Foreign keys are on again after a failure too.
        let fk: i64 = c
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
    }

    #[test]
    fn a_migration_leaving_dangling_references_is_rolled_back() {
        let mut c = Connection::open_in_memory().unwrap();
        let all = [
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (parent INTEGER REFERENCES parent(id));",
            "INSERT INTO child VALUES (42)",
        ];
        let failed = migrate(&mut c, &all).unwrap_err();
        assert!(
            matches!(&failed, Error::BrokenReferences { version: 2, table } if table == "child"),
            "{failed:?}"
        );
        let rows: i64 = c
            .query_row("SELECT count(*) FROM child", [], |r| r.get(0))
            .unwrap();
        assert_eq!((rows, schema_version(&c).unwrap()), (0, 1));
    }

    #[test]
    fn a_table_can_be_rebuilt_under_its_children() {
        let mut c = Connection::open_in_memory().unwrap();
        let all = [
            "CREATE TABLE parent (id INTEGER PRIMARY KEY, x CHECK (x IN (1)));
             CREATE TABLE child (parent INTEGER REFERENCES parent(id));
             INSERT INTO parent VALUES (7, 1); INSERT INTO child VALUES (7);",
            "CREATE TABLE parent_2 (id INTEGER PRIMARY KEY, x CHECK (x IN (1, 2)));
             INSERT INTO parent_2 SELECT * FROM parent;
             DROP TABLE parent;
             ALTER TABLE parent_2 RENAME TO parent;",
        ];
        migrate(&mut c, &all).unwrap();
        c.execute("UPDATE parent SET x = 2", []).unwrap();
        // Foreign keys are on, and point at the rebuilt table.
        assert!(c.execute("INSERT INTO child VALUES (8)", []).is_err());
    }

    #[test]
    fn a_migration_waits_for_another_programs_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (locked, is_locked) = std::sync::mpsc::channel();
        let writer = {
            let mut other = connect(&path);
            std::thread::spawn(move || {
                let tx = write_tx(&mut other).unwrap();
                tx.execute_batch("CREATE TABLE theirs (x)").unwrap();
                locked.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                tx.commit().unwrap();
            })
        };
        is_locked.recv().unwrap();
        // The version is read inside the migration's transaction: a
        // deferred one would hold a read snapshot there and fail with
        // SQLITE_BUSY at its first write, busy timeout or not.
        let mut c = connect(&path);
        migrate(&mut c, &["CREATE TABLE a (x)"]).unwrap();
        writer.join().unwrap();
        assert_eq!(schema_version(&c).unwrap(), 1);
        assert!(table_exists(&c, "theirs"));
    }

    /// Set by [`note_wait`] when the migrating connection waits for the lock.
    static WAITING: AtomicBool = AtomicBool::new(false);

    fn note_wait(attempt: i32) -> bool {
        WAITING.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(5));
        attempt < 1000
    }

    #[test]
    fn two_programs_migrating_at_once_apply_each_migration_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let all = ["CREATE TABLE a (x)", "CREATE TABLE b (x)"];
        // The other program holds the write lock, about to apply 1.
        let mut other = connect(&path);
        let tx = other
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        let migrating = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut c = connect(&path);
                c.busy_handler(Some(note_wait)).unwrap();
                migrate(&mut c, &all).map(|()| schema_version(&c).unwrap())
            }
        });
        // Once this one waits for the lock (having seen version 0), the
        // other applies 1 and lets go.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !WAITING.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "the migration never waited for the lock"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        tx.execute_batch(all[0]).unwrap();
        tx.pragma_update(None, "user_version", 1).unwrap();
        tx.commit().unwrap();
        assert_eq!(migrating.join().unwrap().unwrap(), 2);
        assert!(table_exists(&other, "b"));
    }
}
