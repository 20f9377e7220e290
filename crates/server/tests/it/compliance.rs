//! Retention, legal holds and erasure (`compliance`) against the real
//! server: real SQLite, real files in the data directory, and for the
//! crash tests the server binary killed mid-way (`crashpoint`).

use crate::fixtures;
use deskrec_server::testing as util;

use std::path::PathBuf;
// Only the tests that read the data directory's files (Unix) take a Path.
#[cfg(unix)]
use std::path::Path;

use deskrec_server::db::now_micros;
use http_body_util::Full;
use serde_json::{Value, json};
use util::recording::T0;
use util::{Reply, TestServer};

const DAY: i64 = 86_400 * 1_000_000;
const PASSWORD: &str = "a long enough password";

/// A server whose retention is `policy` (TOML under `[retention]`), run
/// only when a test asks.
async fn server(policy: &str) -> TestServer {
    let retention =
        deskrec_server::Config::from_toml(&format!("[retention]\ninterval_hours = 0\n{policy}"))
            .unwrap()
            .retention;
    TestServer::start_with(tempfile::tempdir().unwrap(), |c| c.retention = retention).await
}

/// Users: Ann (agent, team payments), Bob (agent, no team), Vic
/// (supervisor, team payments) and Sam (supervisor, team south), the
/// supervisors with [`PASSWORD`].
async fn seed_users(s: &TestServer) {
    s.put_role("supervisor", &["view_recordings"]).await;
    for (name, login, team, supervisor) in [
        ("Ann", "CORP\\ann", Some("payments"), false),
        ("Bob", "CORP\\bob", None, false),
        ("Vic", "CORP\\vic", Some("payments"), true),
        ("Sam", "CORP\\sam", Some("south"), true),
    ] {
        let roles = if supervisor {
            vec!["supervisor"]
        } else {
            vec![]
        };
        let u = s
            .admin(
                "POST",
                "/users",
                json!({"name": name, "windows_login": login, "roles": roles,
                       "teams": team.into_iter().collect::<Vec<_>>()}),
            )
            .await;
        if supervisor {
            let path = format!("/users/{}/password", u["id"]);
            s.admin("PUT", &path, json!({ "password": PASSWORD })).await;
        }
    }
}

/// A contact of `login` in `queue` that ended `age_days` ago, lasting a
/// minute, with a stored (stand-in) recording when `recording`.
fn contact(
    s: &TestServer,
    device: &str,
    login: &str,
    queue: &str,
    id: &str,
    age_days: i64,
    recording: bool,
) {
    let end = now_micros() - age_days * DAY;
    let file = s.dir.path().join(format!("{id}.src"));
    std::fs::write(&file, format!("the recording of {id}")).unwrap();
    let upload = recording.then_some((device, file.as_path()));
    fixtures::store_contact(s, login, queue, id, (end - 60_000_000, end), upload);
}

/// Imports a one-second `hz` tone as `contact`'s call audio.
async fn audio(s: &TestServer, contact: &str, hz: f64) -> Reply {
    s.send(
        hyper::Request::builder()
            .method("PUT")
            .uri(format!("/api/v1/admin/contacts/{contact}/audio"))
            .header("host", "localhost")
            .header("authorization", format!("Bearer {}", s.admin_token))
            .header("content-type", "audio/wav")
            .body(Full::from(util::wav_tone(hz, 1.0, 8000)))
            .unwrap(),
    )
    .await
}

/// A stored object's key and SHA-256.
type KeyAndSha = (String, String);

/// The files a contact's rows name (recording, sealed audio) and the
/// cache files named after their digests.
fn files_of(s: &TestServer, contact: &str) -> Vec<PathBuf> {
    let (rec, audio): (Option<KeyAndSha>, Option<KeyAndSha>) = s.state.db().call_blocking(|c| {
        let one = |sql: &str| {
            c.query_row(sql, [contact], |r| Ok((r.get(0)?, r.get(1)?)))
                .ok()
        };
        (
            one("SELECT storage_key, sha256 FROM recordings WHERE contact_id = ?1"),
            one("SELECT storage_key, sha256 FROM contact_audio WHERE contact_id = ?1"),
        )
    });
    let data = s.dir.path();
    let mut files = vec![];
    for (key, sha) in rec.iter().chain(audio.iter()) {
        files.push(data.join("recordings").join(key));
        for entry in std::fs::read_dir(data.join("cache")).into_iter().flatten() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().contains(sha.as_str()) {
                files.push(entry.path());
            }
        }
    }
    files
}

/// Puts decrypted-looking files in the playback cache for `contact`'s
/// recording and audio, as a playback would leave them.
fn fill_cache(s: &TestServer, contact: &str) {
    let cache = s.dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    for (table, name) in [
        ("recordings", "v1-{}.mp4"),
        ("contact_audio", "audio-v1-{}"),
    ] {
        let sha: Option<String> = s.state.db().call_blocking(|c| {
            c.query_row(
                &format!("SELECT sha256 FROM {table} WHERE contact_id = ?1"),
                [contact],
                |r| r.get(0),
            )
            .ok()
        });
        if let Some(sha) = sha {
            std::fs::write(cache.join(name.replace("{}", &sha)), b"decrypted").unwrap();
        }
    }
}

fn all_exist(files: &[PathBuf]) -> bool {
    !files.is_empty() && files.iter().all(|f| f.exists())
}

fn none_exist(files: &[PathBuf]) -> bool {
    files.iter().all(|f| !f.exists())
}

async fn run(s: &util::Client) -> Value {
    s.admin("POST", "/retention/run", Value::Null).await
}

/// The ids a run expired, sorted.
fn expired_ids(report: &Value) -> Vec<String> {
    let mut ids: Vec<String> = report["expired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["contact_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn expired_recordings_and_audio_are_deleted_and_audited_and_the_rest_stay() {
    let s = server(
        "default_days = 365
         [[retention.rule]]
         team = \"Payments\"
         days = 90
         [[retention.rule]]
         queue = \"sales\"
         days = 30",
    )
    .await;
    seed_users(&s).await;
    let device = s.enroll().await.device_id;
    // (id, agent, queue, age in days, recording, audio tone, expires)
    let cases = [
        ("old-default", "CORP\\bob", "billing", 400, true, None, true),
        (
            "young-default",
            "CORP\\bob",
            "billing",
            100,
            true,
            None,
            false,
        ),
        ("old-team", "CORP\\ann", "billing", 100, true, None, true),
        ("young-team", "CORP\\ann", "billing", 60, true, None, false),
        (
            "old-sales",
            "CORP\\bob",
            "sales",
            40,
            true,
            Some(440.0),
            true,
        ),
        // The same audio as old-sales: its stored object is shared.
        (
            "young-sales",
            "CORP\\ann",
            "sales",
            10,
            true,
            Some(440.0),
            false,
        ),
        (
            "audio-only",
            "CORP\\bob",
            "billing",
            400,
            false,
            Some(660.0),
            true,
        ),
        (
            "nothing-stored",
            "CORP\\bob",
            "billing",
            400,
            false,
            None,
            false,
        ),
    ];
    for (id, login, queue, age, recording, tone, _) in cases {
        contact(&s, &device, login, queue, id, age, recording);
        if let Some(hz) = tone {
            assert!(matches!(audio(&s, id, hz).await.status, 200 | 201));
        }
        fill_cache(&s, id);
    }
    let files: Vec<Vec<PathBuf>> = cases.iter().map(|c| files_of(&s, c.0)).collect();
    for (c, f) in cases.iter().zip(&files) {
        assert!(c.0 == "nothing-stored" || all_exist(f), "{}: {f:?}", c.0);
    }

    let report = run(&s).await;
    let expected: Vec<&str> = cases.iter().filter(|c| c.6).map(|c| c.0).collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(expired_ids(&report), expected_sorted, "{report}");
    assert_eq!(report["expired_count"], expected.len(), "{report}");
    let of = |id: &str| {
        report["expired"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["contact_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of("old-team")["rule"], "rule team \"Payments\": 90 days");
    assert_eq!(of("old-sales")["rule"], "rule queue \"sales\": 30 days");
    assert_eq!(of("old-default")["rule"], "default: 365 days");
    assert_eq!(
        (
            of("audio-only")["recording"].clone(),
            of("audio-only")["audio"].clone()
        ),
        (json!(false), json!(true))
    );

    for (c, f) in cases.iter().zip(&files) {
        let (id, expires) = (c.0, c.6);
        let shown = s
            .admin("GET", &format!("/contacts/{id}"), Value::Null)
            .await;
        let rows = s.audited("recording.expired", id).await;
        if expires {
            // young-sales holds the same sealed audio: that object stays.
            let gone: Vec<&PathBuf> = f
                .iter()
                .filter(|p| !(id == "old-sales" && p.to_string_lossy().ends_with(".seal")))
                .collect();
            assert!(gone.iter().all(|p| !p.exists()), "{id}: {gone:?}");
            assert_eq!(shown["disposal"]["state"], "expired", "{shown}");
            assert_eq!(shown["disposal"]["by"], "system");
            assert_eq!(rows.len(), 1, "{id}: {rows:?}");
            assert_eq!(rows[0]["actor"], "system");
            assert!(
                !rows[0]["detail"].to_string().contains("sha256"),
                "{rows:?}"
            );
            assert!(files_of(&s, id).is_empty(), "{id}: its rows are gone");
        } else {
            // The decrypted cache of audio old-sales shared went with it
            // (it is opened again on the next play); the rest stays.
            let kept: Vec<PathBuf> = f
                .iter()
                .filter(|p| !(id == "young-sales" && p.to_string_lossy().contains("audio-v1-")))
                .cloned()
                .collect();
            assert!(id == "nothing-stored" || all_exist(&kept), "{id}: {kept:?}");
            assert!(shown["disposal"].is_null(), "{shown}");
            assert!(rows.is_empty(), "{id}: {rows:?}");
        }
    }
    // The kept contact that shares old-sales' audio still plays it.
    let vic = session(&s, "CORP\\vic").await;
    let r = get(&s, "/api/v1/recordings/young-sales/audio", &vic).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // A second run finds nothing more and audits nothing again.
    let again = run(&s).await;
    assert_eq!(again["expired_count"], 0, "{again}");
    for id in expected {
        assert_eq!(s.audited("recording.expired", id).await.len(), 1);
    }
}

#[tokio::test]
async fn held_recordings_stay_past_retention_until_the_hold_is_lifted() {
    let s = server("default_days = 30").await;
    seed_users(&s).await;
    let device = s.enroll().await.device_id;
    for (id, login, age) in [
        ("by-contact", "CORP\\bob", 60),
        ("by-agent", "CORP\\ann", 60),
        ("by-range", "CORP\\bob", 200),
        ("unheld", "CORP\\bob", 60),
    ] {
        contact(&s, &device, login, "billing", id, age, true);
    }
    let at = |days_ago: i64| deskrec_vault::utc::rfc3339(now_micros() - days_ago * DAY);
    let mut holds = vec![];
    for body in [
        json!({"reason": "case 17", "contact_id": "by-contact"}),
        json!({"reason": "case 18", "windows_login": "corp\\ANN"}),
        json!({"reason": "case 19", "from": at(250), "to": at(150)}),
    ] {
        let h = s.admin("POST", "/holds", body).await;
        assert_eq!(h["active"], true, "{h}");
        holds.push(h["id"].as_i64().unwrap());
    }
    // A hold names something, for a reason.
    for bad in [
        json!({"reason": "x"}),
        json!({"reason": " ", "contact_id": "unheld"}),
    ] {
        let (status, body) = s
            .request(
                "POST",
                "/api/v1/admin/holds",
                Some(&s.admin_token),
                "application/json",
                &bad.to_string(),
            )
            .await;
        assert_eq!(status, 422, "{body}");
    }
    for id in &holds {
        let rows = s.audited("hold.set", &format!("hold:{id}")).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["actor"], "admin-token");
    }

    let report = run(&s).await;
    assert_eq!(expired_ids(&report), ["unheld"], "{report}");
    assert_eq!(report["held"], 3, "{report}");
    let files = files_of(&s, "by-contact");
    assert!(all_exist(&files));

    // Held: no erasure either, with a clear answer.
    let (status, body) = s
        .request(
            "POST",
            "/api/v1/admin/contacts/by-contact/erase",
            Some(&s.admin_token),
            "application/json",
            r#"{"reason": "data subject request 4"}"#,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "held");
    assert!(
        body["message"].as_str().unwrap().contains("lift the hold"),
        "{body}"
    );

    // Lifting needs a reason; it keeps the row and is audited.
    let lift = format!("/api/v1/admin/holds/{}", holds[0]);
    let (status, _) = s
        .request(
            "DELETE",
            &lift,
            Some(&s.admin_token),
            "application/json",
            "{}",
        )
        .await;
    assert!(matches!(status, 400 | 422), "{status}");
    let lifted = s
        .admin(
            "DELETE",
            &format!("/holds/{}", holds[0]),
            json!({"reason": "case 17 closed"}),
        )
        .await;
    assert_eq!(lifted["active"], false, "{lifted}");
    assert_eq!(lifted["lifted_by"], "admin-token");
    assert!(lifted["lifted_at"].as_i64().unwrap() > 0);
    let rows = s.audited("hold.lift", &format!("hold:{}", holds[0])).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["detail"]["reason"], "case 17 closed");
    let listed = s.admin("GET", "/holds", Value::Null).await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        3,
        "lifted holds stay listed"
    );

    // The next run takes what the lifted hold kept, and only that.
    let report = run(&s).await;
    assert_eq!(expired_ids(&report), ["by-contact"], "{report}");
    assert_eq!(report["held"], 2, "{report}");
    assert!(none_exist(&files), "{files:?}");
    assert!(all_exist(&files_of(&s, "by-agent")));
    assert!(all_exist(&files_of(&s, "by-range")));
}

/// A session for `login` (the sign-in form is `supervisor.rs`' business).
async fn session(s: &TestServer, login: &str) -> String {
    deskrec_server::auth::login(s.state.db(), login.into(), PASSWORD.into())
        .await
        .unwrap()
        .token
}

async fn get(s: &TestServer, path: &str, session: &str) -> Reply {
    s.send(
        hyper::Request::builder()
            .uri(path)
            .header("host", "localhost")
            .header("cookie", format!("__Host-deskrec_session={session}"))
            .body(Full::default())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn an_erased_contact_has_no_files_its_page_says_so_and_its_media_are_gone() {
    let s = server("").await;
    seed_users(&s).await;
    let device = s.enroll().await.device_id;
    let work = tempfile::tempdir().unwrap();
    let (start, end) = (T0 + 1_000_000, T0 + 3_000_000);
    let rec = fixtures::record(work.path(), &device, "c-1", start, end);
    fixtures::store_contact(
        &s,
        "CORP\\ann",
        "billing",
        "c-1",
        (start, end),
        Some((&device, &rec)),
    );
    assert_eq!(audio(&s, "c-1", 440.0).await.status, 201);
    let (vic, sam) = (
        session(&s, "CORP\\vic").await,
        session(&s, "CORP\\sam").await,
    );
    let media = [
        "/api/v1/recordings/c-1/video.mp4",
        "/api/v1/recordings/c-1/audio",
        "/api/v1/recordings/c-1/download.mp4",
    ];
    // Played: the cache holds the decrypted video and audio.
    for path in &media[..2] {
        let r = get(&s, path, &vic).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let files = files_of(&s, "c-1");
    assert!(files.len() >= 4 && all_exist(&files), "{files:?}");

    let erased = s
        .admin(
            "POST",
            "/contacts/c-1/erase",
            json!({"reason": "data subject request 4"}),
        )
        .await;
    assert_eq!(erased["changed"], true, "{erased}");
    assert_eq!(erased["deleted"], json!({"recording": true, "audio": true}));
    assert_eq!(erased["disposal"]["state"], "erased");
    assert!(none_exist(&files), "{files:?}");
    assert!(files_of(&s, "c-1").is_empty());

    // The page says so, by whom and when, and plays nothing.
    let page = get(&s, "/contacts/c-1", &vic).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains(">erased<") && html.contains("by admin-token"),
        "{html}"
    );
    assert!(html.contains("data subject request 4"), "{html}");
    assert!(
        !html.contains("video.mp4") && !html.contains("/audio\""),
        "{html}"
    );
    // Its media are gone for whoever may see it, and still not found
    // for whoever may not.
    for path in media {
        let r = get(&s, path, &vic).await;
        assert_eq!(r.status, 410, "{path}: {}", r.text());
        assert_eq!(r.json()["code"], "erased");
        assert_eq!(get(&s, path, &sam).await.status, 404, "{path} as Sam");
    }
    let api = get(&s, "/api/v1/contacts/c-1", &vic).await.json();
    assert_eq!(api["contact"]["disposal"]["state"], "erased", "{api}");

    // Audited once, without the content; again changes nothing.
    let rows = s.audited("recording.erased", "c-1").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["actor"], "admin-token");
    assert_eq!(rows[0]["detail"]["reason"], "data subject request 4");
    assert!(!rows[0]["detail"].to_string().contains("sha"), "{rows:?}");
    let again = s
        .admin("POST", "/contacts/c-1/erase", json!({"reason": "again"}))
        .await;
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(s.audited("recording.erased", "c-1").await.len(), 1);
    // Nothing of it is stored again.
    assert_eq!(audio(&s, "c-1", 440.0).await.status, 410);
    let (status, _) = s
        .request(
            "POST",
            "/api/v1/admin/contacts/nope/erase",
            Some(&s.admin_token),
            "application/json",
            r#"{"reason": "x"}"#,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_scheduled_run_at_start_expires_what_retention_ended() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir).await;
    let device = s.enroll().await.device_id;
    contact(&s, &device, "CORP\\bob", "billing", "old", 40, true);
    let files = files_of(&s, "old");
    let dir = s.stop().await;
    let policy = deskrec_server::Config::from_toml("[retention]\ndefault_days = 30")
        .unwrap()
        .retention;
    let s = TestServer::start_with(dir, |c| c.retention = policy).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while s.audited("recording.expired", "old").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run at start did not expire it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(none_exist(&files), "{files:?}");
}

/// What a crashed disposal may leave, read from the data directory: the
/// contact's disposal state and whether its stored files exist.
#[cfg(unix)]
fn on_disk(data: &Path, contact: &str, stored: &[PathBuf]) -> (Option<String>, bool) {
    let db = rusqlite::Connection::open(data.join("deskrec.db")).unwrap();
    let state: Option<String> = db
        .query_row(
            "SELECT disposal FROM contacts WHERE contact_id = ?1",
            [contact],
            |r| r.get(0),
        )
        .unwrap();
    (state, all_exist(stored))
}

/// A POST on its own connection: the status, or None when the server died
/// before answering.
#[cfg(unix)]
async fn post_raw(c: &util::Client, path: &str, body: &str) -> Option<u16> {
    use tokio::io::AsyncWriteExt;
    let mut tls = c.tls().await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        c.admin_token,
        body.len()
    );
    tls.write_all(head.as_bytes()).await.ok()?;
    util::read_status(&mut tls).await
}

/// Two contacts, 40 days old, each with a recording and audio in the
/// data directory at `dir` (seeded before the server starts).
#[cfg(unix)]
fn seed_dir(dir: &Path) -> Vec<(&'static str, Vec<PathBuf>)> {
    use deskrec_vault::FileKind;
    let db = deskrec_server::db::open(&dir.join("deskrec.db")).unwrap();
    let end = now_micros() - 40 * DAY;
    let mut out = vec![];
    for id in ["c-1", "c-2"] {
        let (rec_key, audio_key) = (
            format!("ab/{}", FileKind::Recording.file_name(id)),
            format!("audio/{}", FileKind::Sealed.file_name(id)),
        );
        let mut stored = vec![];
        for key in [&rec_key, &audio_key] {
            let path = dir.join("recordings").join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("content of {key}")).unwrap();
            stored.push(path);
        }
        let cache = dir.join("cache").join(format!("v1-{id}sha.mp4"));
        std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
        std::fs::write(&cache, "decrypted").unwrap();
        stored.push(cache);
        db.call_blocking(|c| {
            c.execute_batch(&format!(
                "INSERT OR IGNORE INTO devices (id, host, public_key_pem, key_id, credential_hash, enrolled_at)
                     VALUES ('d1', 'PC', 'k', 'k', 'h', 0);
                 INSERT INTO contacts (contact_id, windows_login, start_at, end_at, created_at, updated_at, status)
                     VALUES ('{id}', 'CORP\\bob', {start}, {end}, 0, 0, 'uploaded');
                 INSERT INTO uploads (id, device_id, contact_id, length, created_at, updated_at, expires_at, state)
                     VALUES ('up-{id}', 'd1', '{id}', 1, 0, 0, 0, 'stored');
                 INSERT INTO recordings (contact_id, device_id, upload_id, storage_key, bytes, sha256, trim_start, trim_end, stored_at)
                     VALUES ('{id}', 'd1', 'up-{id}', '{rec_key}', 1, '{id}sha', {start}, {end}, 0);
                 INSERT INTO contact_audio (contact_id, storage_key, sha256, bytes, container, codec, sample_rate, channels, duration_us, media_type, stored_at)
                     VALUES ('{id}', '{audio_key}', '{id}audiosha', 1, 'wav', 'pcm', 8000, 1, 1, 'audio/wav', 0);",
                start = end - 60_000_000,
            ))
            .unwrap()
        });
        out.push((id, stored));
    }
    out
}

#[cfg(unix)]
#[tokio::test]
async fn a_crash_in_a_retention_run_or_an_erasure_leaves_no_half_state() {
    use std::time::{Duration, Instant};
    for point in deskrec_server::crashpoint::DISPOSAL_POINTS {
        let dir = tempfile::tempdir().unwrap();
        util::test_key()
            .save(&dir.path().join("recording-key.pem"))
            .unwrap();
        let config = dir.path().join("server.toml");
        std::fs::write(
            &config,
            "[limits]\ndisk_reserve_mib = 0\n[retention]\ndefault_days = 30\ninterval_hours = 0\n",
        )
        .unwrap();
        let contacts = seed_dir(dir.path());
        let erasing = point.starts_with("erase.");
        let mut first = fixtures::spawn_server_with(dir.path(), Some(&config), Some(point));
        let answer = if erasing {
            post_raw(
                &first.client,
                "/api/v1/admin/contacts/c-1/erase",
                r#"{"reason": "request 9"}"#,
            )
            .await
        } else {
            post_raw(&first.client, "/api/v1/admin/retention/run", "").await
        };
        assert_eq!(answer, None, "{point}: answered before the crash");
        let deadline = Instant::now() + Duration::from_secs(10);
        while first.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "{point}: never reached");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(first);
        // Killed: whatever is on disk says where it stopped. Files gone
        // with the row saying nothing happened is the half state that
        // must never be.
        let (intent, outcome) = if erasing {
            ("erasing", "erased")
        } else {
            ("expiring", "expired")
        };
        for (id, stored) in &contacts {
            let (state, present) = on_disk(dir.path(), id, stored);
            if erasing && *id == "c-2" {
                assert_eq!((state.as_deref(), present), (None, true), "{point}: {id}");
                continue;
            }
            assert_eq!(state.as_deref(), Some(intent), "{point}: {id}");
            if point.ends_with(".intent") {
                assert!(present, "{point}: {id}: deleted before the crash point");
            }
        }

        // The restart finishes it: files gone, row marked, audited once.
        let second = fixtures::spawn_server_with(dir.path(), Some(&config), None);
        let c = &second.client;
        let action = format!("recording.{outcome}");
        let done: Vec<&str> = if erasing {
            vec!["c-1"]
        } else {
            vec!["c-1", "c-2"]
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        for id in &done {
            while c.audited(&action, id).await.is_empty() {
                assert!(Instant::now() < deadline, "{point}: {id} never finished");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // Another run (for an erasure: the run expires c-2 as well) does
        // not audit a finished disposal twice.
        run(c).await;
        for (id, stored) in &contacts {
            let shown = c
                .admin("GET", &format!("/contacts/{id}"), Value::Null)
                .await;
            let expect = if done.contains(id) {
                outcome
            } else {
                "expired"
            };
            assert_eq!(shown["disposal"]["state"], expect, "{point}: {shown}");
            assert!(none_exist(stored), "{point}: {id}: {stored:?}");
            let rows = c.audited(&format!("recording.{expect}"), id).await;
            assert_eq!(rows.len(), 1, "{point}: {id}: {rows:?}");
        }
        let db = rusqlite::Connection::open(dir.path().join("deskrec.db")).unwrap();
        let left: i64 = db
            .query_row(
                "SELECT (SELECT count(*) FROM recordings) + (SELECT count(*) FROM contact_audio)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0, "{point}: rows still name deleted files");
    }
}
