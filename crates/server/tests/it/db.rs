//! The database while another program writes to it (a backup tool, the
//! `sqlite3` shell, an operator's script).

use std::time::Duration;

use deskrec_server::testing::TestServer;
use rusqlite::TransactionBehavior;

/// A change reads (the role as it is) and then writes. As a deferred
/// transaction its write had to upgrade a read lock while another
/// connection held the write lock, which SQLite refuses at once with
/// SQLITE_BUSY, busy timeout or not: the admin got a 500. Every write
/// transaction is immediate now, so it waits for the lock instead.
#[tokio::test]
async fn a_change_waits_for_another_programs_write_instead_of_failing() {
    let s = TestServer::start().await;
    s.put_role("agent", &["record_screen"]).await;
    let path = s.data.join("deskrec.db");
    let (locked, is_locked) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        let mut c = rusqlite::Connection::open(path).unwrap();
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        locked.send(()).unwrap();
        // Well inside the server's busy timeout (5 s).
        std::thread::sleep(Duration::from_secs(1));
        tx.commit().unwrap();
    });
    is_locked.recv().unwrap();
    let role = s
        .put_role("agent", &["record_screen", "view_recordings"])
        .await;
    other.join().unwrap();
    assert_eq!(
        role["permissions"],
        serde_json::json!(["record_screen", "view_recordings"]),
        "{role}"
    );
}
