//! [`Db`]: the one connection a program keeps, shared by its tasks.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use crate::Error;

/// A shared handle to a database; clones share the connection.
///
/// One connection behind a mutex: SQLite serialises writers anyway and the
/// statements are short, so one connection is simpler than a pool and fast
/// enough. Async code reaches it through [`Db::call`], which runs the
/// closure on tokio's blocking pool so a slow disk never stalls the
/// reactor.
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
    /// Wraps a connection opened with [`crate::open()`].
    pub fn new(conn: Connection) -> Self {
        Self {
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    /// [`crate::open()`], shared.
    pub fn open(path: &Path, migrations: &[&str]) -> Result<Self, Error> {
        crate::open(path, migrations).map(Self::new)
    }

    /// [`crate::open_in_memory`], shared: for tests.
    pub fn open_in_memory(migrations: &[&str]) -> Result<Self, Error> {
        crate::open_in_memory(migrations).map(Self::new)
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

    /// Runs `f` with the connection on the current thread: for startup,
    /// command-line tools and tests, never from async code.
    pub fn call_blocking<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut lock(&self.conn))
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A poisoned lock means a closure panicked mid-statement; rusqlite rolls
    // back an unfinished transaction when it is dropped, so the connection
    // itself is still sound.
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clones_share_the_connection_and_a_panic_does_not_poison_it() {
        let db = Db::open_in_memory(&["CREATE TABLE t (x INTEGER)"]).unwrap();
        let other = db.clone();
        other
            .call(|c| c.execute("INSERT INTO t VALUES (7)", []).map(drop))
            .await
            .unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            db.call_blocking(|_| panic!("a bug in a closure"))
        }));
        assert!(panicked.is_err());
        let x: i64 = db
            .call_blocking(|c| c.query_row("SELECT x FROM t", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(x, 7);
    }
}
