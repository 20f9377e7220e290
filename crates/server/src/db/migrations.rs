//! Numbered schema migrations, in code.
//!
//! `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`; the current
//! version is SQLite's `user_version`. `deskrec_sqlite::migrate` runs each in
//! its own immediate transaction with the version bump, so a crash leaves
//! the database at a whole version. Migrations are append-only: never edit
//! one that has shipped.
//!
//! Timestamps are integers, microseconds since the Unix epoch (UTC).

use rusqlite::Connection;

use super::DbError;

/// The migrations, oldest first.
pub const MIGRATIONS: &[&str] = &[
    // 1: directory and audit.
    "
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL,
        -- Windows logins compare case-insensitively, like Windows does.
        windows_login TEXT NOT NULL UNIQUE COLLATE NOCASE,
        active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE TABLE roles (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE role_permissions (
        role_id    INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
        permission TEXT NOT NULL
                   CHECK (permission IN ('record_screen', 'view_recordings', 'admin')),
        PRIMARY KEY (role_id, permission)
    ) WITHOUT ROWID;
    CREATE TABLE user_roles (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, role_id)
    ) WITHOUT ROWID;
    CREATE INDEX user_roles_by_role ON user_roles(role_id);
    -- One row per top-level settings field; value is JSON.
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        id     INTEGER PRIMARY KEY,
        at     INTEGER NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    ",
    // 2: devices and enrollment.
    "
    CREATE TABLE enrollment_tokens (
        id         INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER,
        device_id  TEXT
    );
    CREATE TABLE devices (
        id              TEXT PRIMARY KEY,
        host            TEXT NOT NULL,
        public_key_pem  TEXT NOT NULL,
        key_id          TEXT NOT NULL,
        credential_hash TEXT NOT NULL UNIQUE,
        enrolled_at     INTEGER NOT NULL,
        revoked_at      INTEGER,
        last_seen_at    INTEGER,
        last_login      TEXT,
        agent_version   TEXT,
        last_status     TEXT
    );
    ",
    // 3: contacts and their relay, uploads, stored recordings, supervisors.
    "
    -- A customer contact as the ACD reported it; contact_id is the ACD's id.
    CREATE TABLE contacts (
        id            INTEGER PRIMARY KEY,
        contact_id    TEXT NOT NULL UNIQUE,
        windows_login TEXT NOT NULL COLLATE NOCASE,
        start_at      INTEGER NOT NULL,
        end_at        INTEGER NOT NULL CHECK (end_at > start_at),
        direction     TEXT,
        queue         TEXT,
        audio_ref     TEXT,
        -- The screen recording's status as supervisors see it.
        status        TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'uploaded', 'failed', 'unrecoverable')),
        status_reason TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE INDEX contacts_by_login ON contacts(windows_login, end_at);
    CREATE INDEX contacts_by_start ON contacts(start_at);
    -- Which logins each device has reported: contacts of a login are relayed
    -- to every device it was seen on.
    CREATE TABLE device_logins (
        device_id     TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        windows_login TEXT NOT NULL COLLATE NOCASE,
        first_seen_at INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        PRIMARY KEY (device_id, windows_login)
    ) WITHOUT ROWID;
    CREATE INDEX device_logins_by_login ON device_logins(windows_login);
    -- Each device's ordered relay queue; seq is the device's own contact
    -- sequence number, the cursor agents send back in Hello.
    CREATE TABLE deliveries (
        device_id      TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        seq            INTEGER NOT NULL,
        contact        INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
        created_at     INTEGER NOT NULL,
        outcome        TEXT CHECK (outcome IN ('uploaded', 'unrecoverable')),
        outcome_reason TEXT,
        PRIMARY KEY (device_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_by_contact ON deliveries(contact);
    -- The highest seq the device confirmed it has queued durably.
    ALTER TABLE devices ADD COLUMN contact_cursor INTEGER;
    -- Singleton: every contact ending before `watermark` has been imported.
    CREATE TABLE relay_state (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        watermark INTEGER
    );
    INSERT INTO relay_state (id, watermark) VALUES (1, NULL);
    -- tus uploads of recordings.
    CREATE TABLE uploads (
        id         TEXT PRIMARY KEY,
        device_id  TEXT NOT NULL REFERENCES devices(id),
        contact_id TEXT NOT NULL,
        length     INTEGER NOT NULL,
        received   INTEGER NOT NULL DEFAULT 0,
        state      TEXT NOT NULL DEFAULT 'receiving'
                   CHECK (state IN ('receiving', 'stored', 'rejected', 'terminated')),
        reason     TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX uploads_by_contact ON uploads(contact_id);
    -- Verified recordings in storage, one per contact.
    CREATE TABLE recordings (
        contact_id  TEXT PRIMARY KEY REFERENCES contacts(contact_id),
        device_id   TEXT NOT NULL REFERENCES devices(id),
        upload_id   TEXT NOT NULL REFERENCES uploads(id),
        storage_key TEXT NOT NULL,
        bytes       INTEGER NOT NULL,
        sha256      TEXT NOT NULL,
        trim_start  INTEGER NOT NULL,
        trim_end    INTEGER NOT NULL,
        stored_at   INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Supervisors sign in with a password (argon2id PHC string).
    ALTER TABLE users ADD COLUMN password_hash TEXT;
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_user ON sessions(user_id);
    ",
    // 4: fleet enrollment tokens, each enrolling up to max_uses PCs, and
    // every attempt made with one.
    "
    CREATE TABLE fleet_tokens (
        id           INTEGER PRIMARY KEY,
        token_hash   TEXT NOT NULL UNIQUE,
        name         TEXT NOT NULL,
        -- A glob over host names (`*`, `?`), compared case-insensitively;
        -- NULL: any host.
        host_pattern TEXT,
        max_uses     INTEGER NOT NULL CHECK (max_uses > 0),
        uses         INTEGER NOT NULL DEFAULT 0 CHECK (uses <= max_uses),
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        revoked_at   INTEGER
    );
    CREATE TABLE fleet_token_uses (
        id        INTEGER PRIMARY KEY,
        token_id  INTEGER NOT NULL REFERENCES fleet_tokens(id) ON DELETE CASCADE,
        at        INTEGER NOT NULL,
        host      TEXT NOT NULL,
        -- The device enrolled; NULL when refused.
        device_id TEXT REFERENCES devices(id),
        outcome   TEXT NOT NULL CHECK (outcome IN
                  ('enrolled', 'token_expired', 'token_revoked', 'token_exhausted',
                   'host_not_allowed'))
    );
    CREATE INDEX fleet_token_uses_by_token ON fleet_token_uses(token_id, at);
    ",
    // 5: audit rows looked up by what they are about (a device's segment
    // report is recorded once: the check must not scan the whole log).
    "
    CREATE INDEX audit_by_action_target ON audit(action, target);
    ",
    // 6: when each login was live on each device, so a contact is relayed
    // only to the devices its login was on during it. A session starts
    // where the server last heard from the device before the Hello that
    // reported it (the PC may have been logged on, offline, since then)
    // and ends at the Hello that reported someone else. Existing pairs
    // become sessions from their first to their last sighting, the
    // latest one per device still open.
    "
    CREATE TABLE login_sessions (
        id            INTEGER PRIMARY KEY,
        device_id     TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        windows_login TEXT NOT NULL COLLATE NOCASE,
        started_at    INTEGER NOT NULL,
        ended_at      INTEGER
    );
    CREATE INDEX login_sessions_by_login ON login_sessions(windows_login, started_at);
    CREATE UNIQUE INDEX login_sessions_open ON login_sessions(device_id) WHERE ended_at IS NULL;
    INSERT INTO login_sessions (device_id, windows_login, started_at, ended_at)
        SELECT device_id, windows_login, first_seen_at, last_seen_at FROM device_logins;
    UPDATE login_sessions SET ended_at = NULL
        WHERE id IN (SELECT (SELECT s.id FROM login_sessions s WHERE s.device_id = d.device_id
                             ORDER BY s.ended_at DESC, s.id DESC LIMIT 1)
                     FROM (SELECT DISTINCT device_id FROM login_sessions) d);
    ",
    // 7: teams, and what contact search needs. A supervisor sees the
    // contacts of the users who share a team with them. The contact
    // indexes serve the supervisors' search, newest first, by each filter
    // (agent, queue, direction, status) and by time alone.
    "
    CREATE TABLE teams (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE team_members (
        team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        PRIMARY KEY (team_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX team_members_by_user ON team_members(user_id);
    DROP INDEX contacts_by_start;
    CREATE INDEX contacts_by_start ON contacts(start_at, id);
    CREATE INDEX contacts_by_login_start ON contacts(windows_login, start_at, id);
    CREATE INDEX contacts_by_status_start ON contacts(status, start_at, id);
    CREATE INDEX contacts_by_queue_start ON contacts(queue, start_at, id);
    CREATE INDEX contacts_by_direction_start ON contacts(direction, start_at, id);
    CREATE INDEX audit_by_at ON audit(at);
    ",
    // 8: the call audio of a contact, sealed in the recording store
    // (`audio`). One per contact; `sha256` is the plaintext's, so the same
    // audio imported again is recognised and changes nothing.
    "
    CREATE TABLE contact_audio (
        contact_id  TEXT PRIMARY KEY REFERENCES contacts(contact_id),
        storage_key TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        bytes       INTEGER NOT NULL,
        container   TEXT NOT NULL,
        codec       TEXT NOT NULL,
        sample_rate INTEGER NOT NULL,
        channels    INTEGER NOT NULL,
        duration_us INTEGER NOT NULL,
        media_type  TEXT NOT NULL,
        stored_at   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX contact_audio_by_key ON contact_audio(storage_key);
    ",
    // 9: the stretches inside a stored recording with no video (the agent
    // paused or stopped recording), as verification found them: a JSON
    // array of [start, end] µs pairs, shown on the player's timeline.
    "
    ALTER TABLE recordings ADD COLUMN gaps TEXT NOT NULL DEFAULT '[]';
    ",
    // 10: retention, legal holds and erasure (`compliance`). A contact's
    // stored recording and call audio are disposed of by expiry or on
    // request: the intent (`expiring`, `erasing`) commits before any file
    // is deleted, the outcome (`expired`, `erased`) after, with the
    // `recordings` and `contact_audio` rows gone. NULL: nothing disposed.
    // A hold covers the contacts every one of its criteria matches: the
    // contact, the agent's login, and the time range (overlapping it).
    "
    ALTER TABLE contacts ADD COLUMN disposal TEXT
        CHECK (disposal IN ('expiring', 'expired', 'erasing', 'erased'));
    ALTER TABLE contacts ADD COLUMN disposal_at INTEGER;
    ALTER TABLE contacts ADD COLUMN disposal_by TEXT;
    ALTER TABLE contacts ADD COLUMN disposal_reason TEXT;
    CREATE INDEX contacts_by_end ON contacts(end_at);
    CREATE INDEX contacts_disposing ON contacts(disposal)
        WHERE disposal IN ('expiring', 'erasing');
    CREATE TABLE legal_holds (
        id            INTEGER PRIMARY KEY,
        reason        TEXT NOT NULL,
        contact_id    TEXT,
        windows_login TEXT COLLATE NOCASE,
        from_at       INTEGER,
        to_at         INTEGER,
        created_at    INTEGER NOT NULL,
        created_by    TEXT NOT NULL,
        lifted_at     INTEGER,
        lifted_by     TEXT,
        lift_reason   TEXT,
        CHECK (contact_id IS NOT NULL OR windows_login IS NOT NULL
               OR from_at IS NOT NULL OR to_at IS NOT NULL),
        CHECK (from_at IS NULL OR to_at IS NULL OR from_at < to_at)
    );
    CREATE INDEX legal_holds_active ON legal_holds(id) WHERE lifted_at IS NULL;
    ",
    // 11: pauses. `recordings.pauses` holds the spans a recording shows
    // as paused pictures, with their reasons, as verification found them
    // (a JSON array of {range, reason}); `pauses` holds every pause the
    // devices reported (agent clock), and the API's requests.
    "
    ALTER TABLE recordings ADD COLUMN pauses TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE pauses (
        device_id     TEXT NOT NULL,
        pause_id      TEXT NOT NULL,
        source        TEXT NOT NULL,
        reason        TEXT NOT NULL,
        requested_by  TEXT NOT NULL,
        windows_login TEXT NOT NULL,
        started_at    INTEGER,
        until         INTEGER,
        ended_at      INTEGER,
        end_reason    TEXT,
        requested_at  INTEGER,
        reported_at   INTEGER,
        PRIMARY KEY (device_id, pause_id)
    ) WITHOUT ROWID;
    CREATE INDEX pauses_by_login ON pauses(windows_login, started_at);
    ",
];

/// Applies every migration the database has not seen yet.
pub fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    Ok(deskrec_sqlite::migrate(conn, MIGRATIONS)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskrec_sqlite::schema_version;

    fn migrate_to(c: &mut Connection, target: u32) -> Result<(), deskrec_sqlite::Error> {
        deskrec_sqlite::migrate_to(c, MIGRATIONS, target)
    }

    fn fresh() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", "ON").unwrap();
        c
    }

    #[test]
    fn every_migration_applies_in_order_and_leaves_a_sound_schema() {
        let mut c = fresh();
        for v in 1..=MIGRATIONS.len() as u32 {
            migrate_to(&mut c, v).unwrap();
            assert_eq!(schema_version(&c).unwrap(), v);
            let ok: String = c
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ok, "ok");
            let fk_problems: i64 = c
                .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(fk_problems, 0);
        }
    }

    #[test]
    fn logins_seen_before_version_6_become_sessions_the_latest_open() {
        let mut c = fresh();
        migrate_to(&mut c, 5).unwrap();
        c.execute_batch(
            "INSERT INTO devices (id, host, public_key_pem, key_id, credential_hash, enrolled_at)
                 VALUES ('d1', 'h', 'k', 'i', 'c1', 0), ('d2', 'h', 'k', 'i', 'c2', 0);
             INSERT INTO device_logins VALUES ('d1', 'ann', 10, 20), ('d1', 'bob', 30, 40),
                                              ('d2', 'ann', 50, 60);",
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let sessions: Vec<(String, String, i64, Option<i64>)> = c
            .prepare("SELECT device_id, windows_login, started_at, ended_at FROM login_sessions ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let row = |d: &str, l: &str, from, to| (d.to_owned(), l.to_owned(), from, to);
        assert_eq!(
            sessions,
            [
                row("d1", "ann", 10, Some(20)),
                row("d1", "bob", 30, None),
                row("d2", "ann", 50, None)
            ]
        );
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut c = fresh();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        assert_eq!(schema_version(&c).unwrap(), MIGRATIONS.len() as u32);
    }

    #[test]
    fn a_database_from_a_newer_server_is_refused() {
        let mut c = fresh();
        c.pragma_update(None, "user_version", MIGRATIONS.len() as u32 + 1)
            .unwrap();
        assert!(matches!(migrate(&mut c), Err(DbError::TooNew { .. })));
    }

    #[test]
    fn a_failed_migration_leaves_the_previous_version() {
        let mut c = fresh();
        migrate_to(&mut c, 1).unwrap();
        // Simulate a half-applied v2 by creating one of its tables first:
        // the v2 transaction fails and rolls back whole.
        c.execute_batch("CREATE TABLE devices (x)").unwrap();
        assert!(migrate(&mut c).is_err());
        assert_eq!(schema_version(&c).unwrap(), 1);
        let tokens: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'enrollment_tokens'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tokens, 0);
    }
}
