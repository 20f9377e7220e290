//! Supervisors over real TLS sockets: sign-in, sessions, the pages, and
//! the video endpoint exporting a real recording (`util::recording`:
//! OpenH264 pictures, spliced and signed like an agent does).

use crate::fixtures;
use deskrec_server::testing as util;

use std::path::Path;
use std::time::{Duration, Instant};

use fixtures::record;
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use util::recording::T0;
use util::{Reply, TestServer};

const PASSWORD: &str = "a long enough password";
const VIC: &str = "CORP\\vic";
/// The recording's pictures: 5 fps.
const FRAME_US: i64 = 200_000;

/// Roles `supervisor` (view_recordings) and `agent` (record_screen); users
/// Vic (supervisor), Ina (inactive supervisor), Nora (agent only), all with
/// [`PASSWORD`], and Ann (agent, no password). Vic and Ann are team
/// `north`, so Vic sees Ann's contacts.
async fn seed(s: &TestServer) {
    s.put_role("supervisor", &["view_recordings"]).await;
    s.put_role("agent", &["record_screen"]).await;
    for (name, login, active, roles, password) in [
        ("Vic", VIC, true, vec!["supervisor"], true),
        ("Ina", "CORP\\ina", false, vec!["supervisor"], true),
        ("Nora", "CORP\\nora", true, vec!["agent"], true),
        ("Ann", "CORP\\ann", true, vec!["agent"], false),
    ] {
        let teams = if login == VIC || name == "Ann" {
            vec!["north"]
        } else {
            vec![]
        };
        let u = s
            .admin(
                "POST",
                "/users",
                json!({"name": name, "windows_login": login, "active": active,
                       "roles": roles, "teams": teams}),
            )
            .await;
        if password {
            let path = format!("/users/{}/password", u["id"]);
            s.admin("PUT", &path, json!({ "password": PASSWORD })).await;
        }
    }
}

fn request(method: &str, path: &str, cookie: Option<&str>) -> hyper::http::request::Builder {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(c) = cookie {
        b = b.header("cookie", format!("theme=dark; __Host-deskrec_session={c}"));
    }
    b
}

async fn get(s: &TestServer, path: &str, cookie: Option<&str>) -> Reply {
    s.send(request("GET", path, cookie).body(Full::default()).unwrap())
        .await
}

/// A form post as a browser on `origin` sends it.
async fn post_form(
    s: &TestServer,
    path: &str,
    form: &[(&str, &str)],
    cookie: Option<&str>,
    origin: Option<&str>,
) -> Reply {
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut b =
        request("POST", path, cookie).header("content-type", "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    s.send(b.body(Full::new(Bytes::from(body))).unwrap()).await
}

fn percent(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const SAME_ORIGIN: Option<&str> = Some("https://localhost");

async fn login(s: &TestServer, login: &str, password: &str) -> Reply {
    post_form(
        s,
        "/login",
        &[("login", login), ("password", password)],
        None,
        SAME_ORIGIN,
    )
    .await
}

/// Signs in and returns the session token from the cookie.
async fn sign_in(s: &TestServer, who: &str) -> String {
    let r = login(s, who, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r.header("set-cookie");
    cookie
        .strip_prefix("__Host-deskrec_session=")
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie in {cookie:?}"))
        .to_owned()
}

#[tokio::test]
async fn sign_in_sets_a_secure_session_cookie_stored_only_hashed() {
    let s = TestServer::start().await;
    seed(&s).await;
    let r = login(&s, "corp\\VIC", PASSWORD).await; // logins are case-insensitive
    assert_eq!((r.status, r.header("location")), (303, "/"));
    let cookie = r.header("set-cookie").to_owned();
    let attrs: Vec<&str> = cookie.split(';').map(str::trim).collect();
    for want in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(attrs.contains(&want), "{want} missing from {cookie}");
    }
    let token = cookie
        .strip_prefix("__Host-deskrec_session=")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert_eq!(token.len(), 43, "256 random bits, base64");
    // Only the hash is in the database, with a 12 h expiry.
    let (hash, ttl): (String, i64) = s.state.db().call_blocking(|c| {
        c.query_row(
            "SELECT token_hash, expires_at - created_at FROM sessions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    });
    assert_eq!(hash, hex::encode(Sha256::digest(token.as_bytes())));
    assert_eq!(ttl, 12 * 3600 * 1_000_000);
    let page = get(&s, "/", Some(token)).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Vic (CORP\\vic)"), "{}", page.text());
    // Signed in, the login page sends the user on.
    let again = get(&s, "/login", Some(token)).await;
    assert_eq!((again.status, again.header("location")), (303, "/"));
}

#[tokio::test]
async fn sign_in_refuses_bad_passwords_unknown_inactive_and_unpermitted_users() {
    let s = TestServer::start().await;
    seed(&s).await;
    let cases = [
        (VIC, "the wrong password", "wrong login or password"),
        ("CORP\\nobody", PASSWORD, "wrong login or password"),
        ("CORP\\ann", PASSWORD, "wrong login or password"), // no password set
        ("CORP\\ina", PASSWORD, "deactivated"),
        ("CORP\\nora", PASSWORD, "view_recordings"),
    ];
    for (who, password, message) in cases {
        let r = login(&s, who, password).await;
        assert_eq!(r.status, 401, "{who}");
        assert!(r.text().contains(message), "{who}: {}", r.text());
        assert_eq!(r.header("set-cookie"), "", "{who}");
    }
    // An unknown login costs a password check too (no early return): its
    // sign-in takes at least about as long as one Argon2 verification.
    // Best of five on both sides: load only ever adds time, so a busy
    // machine cannot make this fail, while an early return (a few ms of
    // TLS and SQL) would.
    let phc = deskrec_server::auth::hash_password(PASSWORD).unwrap();
    let check = (0..5)
        .map(|_| {
            let t = Instant::now();
            deskrec_server::auth::verify_password("the wrong password", &phc);
            t.elapsed()
        })
        .min()
        .unwrap();
    let mut unknown = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        login(&s, "CORP\\nobody", "the wrong password").await;
        unknown = unknown.min(t.elapsed());
    }
    assert!(
        unknown * 2 > check,
        "an unknown login took {unknown:?}, one password check {check:?}"
    );
    let sessions: i64 = s.state.db().call_blocking(|c| {
        c.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap()
    });
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn pages_and_video_refuse_signed_out_and_wrong_role_requests() {
    let s = TestServer::start().await;
    seed(&s).await;
    let token = sign_in(&s, VIC).await;
    let paths: Vec<String> = deskrec_server::web::PAGES
        .iter()
        .map(|p| p.replace("{contact_id}", "c-1"))
        .collect();
    let apis: Vec<String> = deskrec_server::web::SESSION_API
        .iter()
        .map(|p| p.replace("{contact_id}", "c-1"))
        .collect();
    for cookie in [None, Some("not-a-session"), Some("")] {
        for p in &paths {
            let r = get(&s, p, cookie).await;
            assert_eq!(
                (r.status, r.header("location")),
                (303, "/login"),
                "{p} {cookie:?}"
            );
        }
        for p in &apis {
            let r = get(&s, p, cookie).await;
            assert_eq!(
                (r.status, r.json()["code"].as_str()),
                (401, Some("unauthorized")),
                "{p} {cookie:?}"
            );
        }
    }
    // The admin token is no session.
    let r = s
        .send(
            request("GET", "/", None)
                .header("authorization", format!("Bearer {}", s.admin_token))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 303);
    // The role loses view_recordings: the open session is refused on the
    // next request, not at the next sign-in.
    s.put_role("supervisor", &["admin"]).await;
    for p in &paths {
        let r = get(&s, p, Some(&token)).await;
        assert_eq!(r.status, 403, "{p}");
        assert!(r.text().contains("view_recordings"), "{}", r.text());
    }
    for p in &apis {
        let r = get(&s, p, Some(&token)).await;
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (403, Some("forbidden")),
            "{p}"
        );
    }
    // Deactivated: signed out.
    let vic = user_id(&s, VIC).await;
    s.admin("PATCH", &format!("/users/{vic}"), json!({"active": false}))
        .await;
    assert_eq!(get(&s, "/", Some(&token)).await.status, 303);
}

async fn user_id(s: &TestServer, login: &str) -> i64 {
    let users = s.admin("GET", "/users", Value::Null).await;
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["windows_login"] == login)
        .and_then(|u| u["id"].as_i64())
        .unwrap()
}

#[tokio::test]
async fn sessions_end_at_expiry_logout_and_password_change() {
    let s = TestServer::start().await;
    seed(&s).await;
    // Expiry.
    let token = sign_in(&s, VIC).await;
    assert_eq!(get(&s, "/devices", Some(&token)).await.status, 200);
    s.state.db().call_blocking(|c| {
        c.execute(
            "UPDATE sessions SET expires_at = ?1",
            [deskrec_server::db::now_micros() - 1],
        )
        .unwrap()
    });
    assert_eq!(get(&s, "/devices", Some(&token)).await.status, 303);

    // Logout: only from our own pages; then the cookie is cleared and the
    // session gone from the server, not just the browser.
    let token = sign_in(&s, VIC).await;
    let r = post_form(
        &s,
        "/logout",
        &[],
        Some(&token),
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(get(&s, "/", Some(&token)).await.status, 200);
    let r = post_form(&s, "/logout", &[], Some(&token), SAME_ORIGIN).await;
    assert_eq!((r.status, r.header("location")), (303, "/login"));
    let cleared = r.header("set-cookie");
    assert!(
        cleared.starts_with("__Host-deskrec_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(get(&s, "/", Some(&token)).await.status, 303);

    // A new password ends every session of the user; audited without it.
    let token = sign_in(&s, VIC).await;
    let vic = user_id(&s, VIC).await;
    let new = "another long password";
    s.admin(
        "PUT",
        &format!("/users/{vic}/password"),
        json!({ "password": new }),
    )
    .await;
    assert_eq!(get(&s, "/", Some(&token)).await.status, 303);
    assert_eq!(login(&s, VIC, new).await.status, 303);
    let audit = s.admin("GET", "/audit", Value::Null).await;
    assert_eq!(audit[0]["action"], "user.password");
    assert_eq!(audit[0]["target"], VIC);
    assert!(!audit.to_string().contains(new));
    assert!(!audit.to_string().contains(PASSWORD));
    // Rules: too short, unknown user.
    let (status, body) = s
        .request(
            "PUT",
            &format!("/api/v1/admin/users/{vic}/password"),
            Some(&s.admin_token),
            "application/json",
            r#"{"password": "short"}"#,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid")));
    let (status, _) = s
        .request(
            "PUT",
            "/api/v1/admin/users/999/password",
            Some(&s.admin_token),
            "application/json",
            &json!({ "password": new }).to_string(),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn login_posts_from_another_origin_are_refused() {
    let s = TestServer::start().await;
    seed(&s).await;
    let form = [("login", VIC), ("password", PASSWORD)];
    for origin in [None, Some("https://evil.example"), Some("null")] {
        let r = post_form(&s, "/login", &form, None, origin).await;
        assert_eq!(r.status, 403, "{origin:?}");
        assert_eq!(r.header("set-cookie"), "");
    }
}

// ------------------------------------------------------------- recordings

/// [`store_for`] for Ann's contact.
fn store(s: &TestServer, contact: &str, start: i64, end: i64, upload: Option<(&str, &Path)>) {
    store_for(s, "CORP\\ann", contact, start, end, upload)
}

/// `login`'s contact in queue `billing` (see `fixtures::store_contact`).
fn store_for(
    s: &TestServer,
    login: &str,
    contact: &str,
    start: i64,
    end: i64,
    upload: Option<(&str, &Path)>,
) {
    fixtures::store_contact(s, login, "billing", contact, (start, end), upload)
}

fn cached_files(s: &TestServer) -> Vec<String> {
    match std::fs::read_dir(s.dir.path().join("cache")) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    }
}

#[tokio::test]
#[cfg_attr(windows, ignore = "needs ffprobe")]
async fn the_video_of_a_stored_recording_has_the_contacts_duration_and_seeks() {
    let s = TestServer::start().await;
    seed(&s).await;
    let device = s.enroll().await.device_id;
    let (start, end) = (T0 + 1_300_000, T0 + 6_900_000);
    let work = tempfile::tempdir().unwrap();
    let rec = record(work.path(), &device, "c-42", start, end);
    store(&s, "c-42", start, end, Some((&device, &rec)));
    store(&s, "c-pending", start, end, None);
    let token = sign_in(&s, VIC).await;

    // The pages show both contacts; only the uploaded one has a player.
    let list = get(&s, "/", Some(&token)).await.text();
    assert!(list.contains("/contacts/c%2D42") && list.contains("/contacts/c%2Dpending"));
    let page = get(&s, "/contacts/c-42", Some(&token)).await;
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains(r#"src="/api/v1/recordings/c%2D42/video.mp4""#),
        "{}",
        page.text()
    );
    assert!(
        !get(&s, "/contacts/c-pending", Some(&token))
            .await
            .text()
            .contains("<video")
    );
    assert_eq!(get(&s, "/contacts/nope", Some(&token)).await.status, 404);
    let devices = get(&s, "/devices", Some(&token)).await.text();
    assert!(
        devices.contains("PC-17") && devices.contains(&device),
        "{devices}"
    );

    // Four players at once: one export.
    let video = "/api/v1/recordings/c-42/video.mp4";
    let plays = (0..4).map(|_| get(&s, video, Some(&token)));
    let replies = futures_util::future::join_all(plays).await;
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), "video/mp4");
        assert_eq!(r.header("cache-control"), "private, no-store");
        assert_eq!(r.body, replies[0].body);
    }
    assert_eq!(cached_files(&s).len(), 1, "{:?}", cached_files(&s));
    let mp4 = work.path().join("served.mp4");
    std::fs::write(&mp4, &replies[0].body).unwrap();
    let duration = deskrec_capture::testing::ffprobe_duration(&mp4);
    let wanted = (end - start) as f64 / 1e6;
    assert!(
        (duration - wanted).abs() <= FRAME_US as f64 / 1e6,
        "the video lasts {duration} s, the contact {wanted} s"
    );

    // Seeking: byte ranges.
    let r = s
        .send(
            request("GET", video, Some(&token))
                .header("range", "bytes=100-199")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 206);
    let total = replies[0].body.len();
    assert_eq!(r.header("content-range"), format!("bytes 100-199/{total}"));
    assert_eq!(r.body, replies[0].body.slice(100..200));

    // No recording yet, no contact.
    let r = get(&s, "/api/v1/recordings/c-pending/video.mp4", Some(&token)).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (404, Some("no_recording"))
    );
    let r = get(&s, "/api/v1/recordings/nope/video.mp4", Some(&token)).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn a_damaged_recording_answers_export_failed_and_caches_nothing() {
    let s = TestServer::start().await;
    seed(&s).await;
    let device = s.enroll().await.device_id;
    let (start, end) = (T0 + 1_000_000, T0 + 3_000_000);
    let work = tempfile::tempdir().unwrap();
    let rec = record(work.path(), &device, "c-bad", start, end);
    let mut bytes = std::fs::read(&rec).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&rec, &bytes).unwrap();
    store(&s, "c-bad", start, end, Some((&device, &rec)));
    let token = sign_in(&s, VIC).await;
    let r = get(&s, "/api/v1/recordings/c-bad/video.mp4", Some(&token)).await;
    assert_eq!(r.status, 500);
    let body = r.json();
    assert_eq!(body["code"], "export_failed");
    assert!(
        body["message"].as_str().unwrap().contains("c-bad"),
        "{body}"
    );
    let cached = cached_files(&s);
    assert!(cached.is_empty(), "{cached:?}");

    // A good recording damaged in storage afterwards: the copy's SHA-256
    // no longer matches the one recorded at upload.
    let rec = record(work.path(), &device, "c-rot", start, end);
    store(&s, "c-rot", start, end, Some((&device, &rec)));
    let stored = s
        .dir
        .path()
        .join("recordings")
        .join(deskrec_vault::FileKind::Recording.file_name("c-rot"));
    let mut bytes = std::fs::read(&stored).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&stored, &bytes).unwrap();
    let r = get(&s, "/api/v1/recordings/c-rot/video.mp4", Some(&token)).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (500, Some("export_failed"))
    );
    let cached = cached_files(&s);
    assert!(cached.is_empty(), "{cached:?}");
}

#[tokio::test]
async fn password_guessing_is_slowed_per_login() {
    let s = TestServer::start().await;
    seed(&s).await;
    for _ in 0..deskrec_server::throttle::FREE_FAILURES {
        assert_eq!(login(&s, VIC, "a wrong guess!").await.status, 401);
    }
    // Now even the right password must wait, and the answer says how long.
    let r = login(&s, VIC, PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r.header("retry-after").parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert!(
        r.text().contains("Too many failed sign-ins"),
        "{}",
        r.text()
    );
    assert_eq!(r.header("set-cookie"), "");
    // Other logins are not affected: Nora's correct password is checked
    // (and refused for her missing permission, not throttled).
    let r = login(&s, "CORP\\nora", PASSWORD).await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("view_recordings"), "{}", r.text());
}

#[tokio::test]
async fn a_login_over_256_bytes_or_a_huge_form_is_refused_before_any_check() {
    let s = TestServer::start().await;
    seed(&s).await;
    let long = "x".repeat(deskrec_server::throttle::MAX_LOGIN_BYTES + 1);
    let r = login(&s, &long, PASSWORD).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.text().contains(&long), "the login is not echoed back");
    // A 1 MB login is refused by the body limit before it is buffered.
    let huge = "x".repeat(1 << 20);
    assert_eq!(login(&s, &huge, PASSWORD).await.status, 413);
    assert_eq!(
        s.state.login_throttle().tracked(),
        (0, 0),
        "nothing was tracked for them"
    );
    // A supervisor is not affected.
    sign_in(&s, VIC).await;
}

#[tokio::test]
async fn one_address_guessing_many_logins_is_slowed() {
    let s = TestServer::start().await;
    seed(&s).await;
    for i in 0..deskrec_server::throttle::FREE_FAILURES_PER_ADDRESS {
        let r = login(&s, &format!("CORP\\made-up-{i}"), "a wrong guess!").await;
        assert_eq!(r.status, 401, "attempt {i}: {}", r.text());
    }
    // A login never tried before: this address must now wait.
    let r = login(&s, VIC, PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("from this address"), "{}", r.text());
    assert_eq!(s.state.login_throttle().tracked().1, 1);
}

#[tokio::test]
async fn pages_and_answers_carry_the_security_headers() {
    let s = TestServer::start().await;
    seed(&s).await;
    let cookie = sign_in(&s, VIC).await;
    for (path, cookie) in [
        ("/login", None),
        ("/", Some(cookie.as_str())),
        ("/api/v1/health", None),
        ("/no/such/page", None),
    ] {
        let r = get(&s, path, cookie).await;
        let csp = r.header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp:?}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp:?}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp:?}");
        // Scripts from this origin only (the player), never inline or eval.
        assert!(csp.contains("script-src 'self';"), "{path}: {csp:?}");
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp:?}");
        assert_eq!(r.header("x-frame-options"), "DENY", "{path}");
        assert_eq!(r.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(r.header("referrer-policy"), "same-origin", "{path}");
        assert!(
            r.header("strict-transport-security")
                .starts_with("max-age="),
            "{path}"
        );
    }
    // The page's one inline style sheet is the one the policy allows.
    let page = get(&s, "/login", None).await;
    let html = page.text();
    let style = html
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .map(|(style, _)| style)
        .expect("an inline style sheet");
    let hash = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        Sha256::digest(style.as_bytes()),
    );
    assert!(
        page.header("content-security-policy")
            .contains(&format!("'sha256-{hash}'")),
        "{}",
        page.header("content-security-policy")
    );
    // The session cookie can only be set by this host, over HTTPS.
    let r = login(&s, VIC, PASSWORD).await;
    assert!(
        r.header("set-cookie").starts_with("__Host-"),
        "{}",
        r.header("set-cookie")
    );
}

/// Team south joins by CSV import: Sam (supervisor) and Bea (agent); Ada
/// administers, with no team. Teams are named case-blind.
async fn seed_south(s: &TestServer) {
    s.put_role("admin", &["admin", "view_recordings"]).await;
    let csv = "name,windows_login,active,roles,teams\n\
               Sam,CORP\\sam,true,supervisor,South\n\
               Bea,CORP\\bea,true,agent,south;SOUTH\n\
               Ada,CORP\\ada,true,admin,\n";
    for _ in 0..2 {
        let (status, report) = s
            .request(
                "POST",
                "/api/v1/admin/users/import",
                Some(&s.admin_token),
                "text/csv",
                csv,
            )
            .await;
        assert_eq!(status, 200, "{report}");
    }
    for login in ["CORP\\sam", "CORP\\ada"] {
        let id = user_id(s, login).await;
        let path = format!("/users/{id}/password");
        s.admin("PUT", &path, json!({ "password": PASSWORD })).await;
    }
    let bea = s
        .admin(
            "GET",
            &format!("/users/{}", user_id(s, "CORP\\bea").await),
            Value::Null,
        )
        .await;
    assert_eq!(
        bea["teams"],
        json!(["South"]),
        "one team, however it is spelled"
    );
}

#[tokio::test]
#[cfg_attr(windows, ignore = "needs ffprobe")]
async fn a_supervisor_gets_404_for_another_teams_contact_on_every_route() {
    let s = TestServer::start().await;
    seed(&s).await;
    seed_south(&s).await;
    let device = s.enroll().await.device_id;
    let work = tempfile::tempdir().unwrap();
    let (start, end) = (T0 + 1_000_000, T0 + 3_000_000);
    for (login, contact) in [("CORP\\ann", "north-1"), ("CORP\\bea", "south-1")] {
        let rec = record(work.path(), &device, contact, start, end);
        store_for(&s, login, contact, start, end, Some((&device, &rec)));
    }
    store_for(&s, "CORP\\nobody", "stray-1", start, end, None);
    for contact in ["north-1", "south-1"] {
        put_audio(&s, contact, util::wav_tone(440.0, 1.0, 8000), 201).await;
    }
    let vic = sign_in(&s, VIC).await;
    let sam = sign_in(&s, "CORP\\sam").await;
    let ada = sign_in(&s, "CORP\\ada").await;

    // Every route of the router, with the other team's contact in every
    // placeholder: none shows it. Routes that name a contact answer 404
    // (or refuse the session outright: admin, device and upload routes).
    let router = deskrec_server::api::router(s.state.clone());
    let paths = util::router_paths(&router);
    let mut contact_routes = 0;
    for path in &paths {
        let probe = util::concrete(path, "south-1");
        let r = get(&s, &probe, Some(&vic)).await;
        let body = r.text();
        // A 404 may echo the id asked for; nothing may show what only
        // the contact holds (its agent).
        assert!(
            !["\\bea", "%5cbea"]
                .iter()
                .any(|l| body.to_lowercase().contains(l)),
            "GET {probe} as Vic shows team south's contact: {} {body}",
            r.status
        );
        if path.contains("{contact_id}") {
            contact_routes += 1;
            assert_eq!(r.status, 404, "GET {probe} as Vic: {body}");
        } else if path.contains('{') {
            assert!(
                !(200..300).contains(&r.status),
                "GET {probe} as Vic: {} {body}",
                r.status
            );
        }
    }
    assert!(contact_routes >= 4, "{paths:?}");

    // Each sees their own team's contact on every contact route, and the
    // administrator sees all three.
    for (who, token, own) in [
        ("Vic", &vic, "north-1"),
        ("Sam", &sam, "south-1"),
        ("Ada", &ada, "north-1"),
    ] {
        for path in paths.iter().filter(|p| p.contains("{contact_id}")) {
            let r = get(&s, &util::concrete(path, own), Some(token)).await;
            assert_eq!(r.status, 200, "GET {path} for {own} as {who}: {}", r.text());
        }
    }
    let list = |token: &str| {
        let token = token.to_owned();
        let s = &s;
        async move {
            let r = get(s, "/api/v1/contacts", Some(&token)).await;
            assert_eq!(r.status, 200, "{}", r.text());
            let mut ids: Vec<String> = r.json()["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["contact_id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            let page = get(s, "/", Some(&token)).await.text();
            (ids, page)
        }
    };
    let (ids, page) = list(&vic).await;
    assert_eq!(ids, ["north-1"]);
    assert!(
        page.contains("north%2D1") && !page.contains("south%2D1") && !page.contains("stray"),
        "{page}"
    );
    let (ids, page) = list(&sam).await;
    assert_eq!(ids, ["south-1"]);
    assert!(!page.contains("north%2D1"), "{page}");
    let (ids, _) = list(&ada).await;
    assert_eq!(ids, ["north-1", "south-1", "stray-1"]);

    // Bea moves to north: her contacts move with her.
    let bea = user_id(&s, "CORP\\bea").await;
    s.admin(
        "PATCH",
        &format!("/users/{bea}"),
        json!({"teams": ["north"]}),
    )
    .await;
    assert_eq!(list(&vic).await.0, ["north-1", "south-1"]);
    assert!(list(&sam).await.0.is_empty());
}

#[tokio::test]
#[cfg_attr(windows, ignore = "needs ffprobe")]
async fn every_playback_and_download_is_audited_and_exported() {
    let s = TestServer::start().await;
    seed(&s).await;
    let device = s.enroll().await.device_id;
    let work = tempfile::tempdir().unwrap();
    let (start, end) = (T0 + 1_000_000, T0 + 3_000_000);
    let rec = record(work.path(), &device, "c-7", start, end);
    store(&s, "c-7", start, end, Some((&device, &rec)));
    let vic = sign_in(&s, VIC).await;
    let audited = |action: &'static str| {
        let s = &s;
        async move {
            s.admin(
                "GET",
                &format!("/audit?action={action}&target=c-7"),
                Value::Null,
            )
            .await
            .as_array()
            .unwrap()
            .len()
        }
    };
    // Refused requests audit nothing.
    assert_eq!(
        get(&s, "/api/v1/recordings/c-7/video.mp4", None)
            .await
            .status,
        401
    );
    assert_eq!(audited("recording.play").await, 0);

    // A playback: the first request and its seeks are one audit row.
    let video = "/api/v1/recordings/c-7/video.mp4";
    assert_eq!(get(&s, video, Some(&vic)).await.status, 200);
    assert_eq!(audited("recording.play").await, 1);
    let r = s
        .send(
            request("GET", video, Some(&vic))
                .header("range", "bytes=10-19")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        audited("recording.play").await,
        1,
        "a seek is the same playback"
    );

    // A download is its own row, and the file comes as an attachment.
    let r = get(&s, "/api/v1/recordings/c-7/download.mp4", Some(&vic)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-disposition"),
        "attachment; filename=\"contact-c-7.mp4\""
    );
    assert_eq!(audited("recording.download").await, 1);

    // The playback window passes: the next play is a new row.
    s.state.db().call_blocking(|c| {
        c.execute(
            "UPDATE audit SET at = at - 3600000000 WHERE action LIKE 'recording.%'",
            [],
        )
        .unwrap()
    });
    assert_eq!(get(&s, video, Some(&vic)).await.status, 200);
    assert_eq!(audited("recording.play").await, 2);

    // The rows say who, which contact, when and what; the export holds them.
    let rows = s
        .admin("GET", "/audit?actor=user:CORP%5Cvic", Value::Null)
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["target"] == "c-7" && r["at"].as_i64().unwrap() > 0)
    );
    let r = s
        .send(
            hyper::Request::builder()
                .uri("/api/v1/admin/audit/export?target=c-7")
                .header("host", "localhost")
                .header("authorization", format!("Bearer {}", s.admin_token))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").starts_with("text/csv"));
    let csv = r.text();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "id,at,actor,action,target,detail");
    assert_eq!(lines.len(), 4, "{csv}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(",user:CORP\\vic,recording.play,c-7,"))
            .count(),
        2,
        "{csv}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(",recording.download,c-7,"))
            .count(),
        1,
        "{csv}"
    );
    // Bad filters are refused, not ignored.
    let (status, _) = s
        .request(
            "GET",
            "/api/v1/admin/audit?from=yesterday",
            Some(&s.admin_token),
            "application/json",
            "",
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_search_filters_by_agent_time_queue_direction_and_status_and_pages_by_cursor() {
    let s = TestServer::start().await;
    seed(&s).await;
    s.admin(
        "POST",
        "/users",
        json!({"name": "Abe", "windows_login": "CORP\\abe", "teams": ["north"]}),
    )
    .await;
    // 120 contacts a minute apart: Ann's and Abe's in turn, queues billing
    // and sales in threes, every fifth outbound, every seventh failed.
    let minute = 60_000_000;
    s.state.db().call_blocking(|c| {
        for i in 0..120i64 {
            let login = if i % 2 == 0 { "CORP\\ann" } else { "corp\\ABE" };
            let queue = if i % 3 == 0 { "sales" } else { "billing" };
            let direction = if i % 5 == 0 { "outbound" } else { "inbound" };
            let (status, reason) = if i % 7 == 0 {
                ("failed", Some("upload_rejected"))
            } else {
                ("pending", None)
            };
            c.execute(
                "INSERT INTO contacts (contact_id, windows_login, start_at, end_at, direction,
                                       queue, status, status_reason, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?3 + 1000000, ?4, ?5, ?6, ?7, 0, 0)",
                rusqlite::params![
                    format!("k{i:03}"),
                    login,
                    T0 + i * minute,
                    direction,
                    queue,
                    status,
                    reason
                ],
            )
            .unwrap();
        }
    });
    let vic = sign_in(&s, VIC).await;
    let search = |query: String| {
        let (s, vic) = (&s, vic.clone());
        async move {
            let r = get(s, &format!("/api/v1/contacts?{query}"), Some(&vic)).await;
            assert_eq!(r.status, 200, "{query}: {}", r.text());
            let v = r.json();
            let ids: Vec<i64> = v["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["contact_id"].as_str().unwrap()[1..].parse().unwrap())
                .collect();
            (ids, v["next"].as_str().map(str::to_owned))
        }
    };
    let expect = |f: &dyn Fn(i64) -> bool| (0..120).rev().filter(|i| f(*i)).collect::<Vec<i64>>();

    // Each filter alone, and all of them at once.
    let at = |i: i64| deskrec_vault::utc::rfc3339(T0 + i * minute);
    let cases: Vec<(String, Vec<i64>)> = vec![
        ("login=CORP%5Cabe".into(), expect(&|i| i % 2 == 1)),
        ("queue=sales".into(), expect(&|i| i % 3 == 0)),
        ("direction=outbound".into(), expect(&|i| i % 5 == 0)),
        ("status=failed".into(), expect(&|i| i % 7 == 0)),
        (
            format!("from={}&to={}", at(10), at(20)),
            expect(&|i| (10..20).contains(&i)),
        ),
        (
            format!(
                "login=CORP%5Cann&queue=sales&direction=outbound&from={}",
                at(30)
            ),
            expect(&|i| i >= 30 && i % 2 == 0 && i % 3 == 0 && i % 5 == 0),
        ),
    ];
    for (query, wanted) in cases {
        let (ids, next) = search(format!("{query}&limit=500")).await;
        assert_eq!(ids, wanted, "{query}");
        assert_eq!(next, None, "{query}");
    }

    // Paging: 50, 50, 20, in order, none twice, none left out.
    let mut seen = vec![];
    let mut before = String::new();
    loop {
        let (ids, next) = search(format!("before={before}")).await;
        seen.extend(ids);
        match next {
            Some(n) => before = n,
            None => break,
        }
    }
    assert_eq!(seen, expect(&|_| true));

    // The page shows the outcome and its reason, and links the next page
    // with the same filters.
    let page = get(&s, "/?status=failed", Some(&vic)).await.text();
    assert!(page.contains("upload_rejected"), "{page}");
    let page = get(&s, "/?queue=billing", Some(&vic)).await.text();
    assert!(page.contains("/?queue=billing&amp;before="), "{page}");

    // Malformed filters are refused with the reason, not ignored.
    for bad in [
        "from=yesterday",
        "status=lost",
        "before=12",
        "limit=0",
        "limit=501",
    ] {
        let r = get(&s, &format!("/api/v1/contacts?{bad}"), Some(&vic)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    let r = get(&s, "/?from=yesterday", Some(&vic)).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("is not a time"), "{}", r.text());
}

#[tokio::test]
async fn the_devices_page_filters_by_state_and_names_who_is_not_recorded() {
    let s = TestServer::start().await;
    seed(&s).await;
    let (mut recording, rec_id) = s.agent().await;
    let (mut paused, paused_id) = s.agent().await;
    let offline_id = s.enroll().await.device_id;
    recording.hello(&rec_id, "CORP\\ann").await;
    paused.hello(&paused_id, "CORP\\ann").await;
    let status = |state: &str| {
        serde_json::from_value::<deskrec_protocol::AgentMessage>(json!({
            "type": "heartbeat",
            "status": {"recording": state, "segments_on_disk": 3, "uploads_queued": 1,
                       "disk_free_bytes": 1_000_000_000u64, "errors": ["screen locked"]},
        }))
        .unwrap()
    };
    recording.send(&status("recording")).await;
    paused.send(&status("paused")).await;
    let vic = sign_in(&s, VIC).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = get(&s, "/devices?state=not_recording", Some(&vic))
            .await
            .text();
        if page.contains(&paused_id) {
            assert!(
                !page.contains(&rec_id) && !page.contains(&offline_id),
                "{page}"
            );
            assert!(
                page.contains("screen locked") && page.contains("1 uploads queued"),
                "{page}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the paused PC never showed: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = get(&s, "/devices?state=recording", Some(&vic)).await.text();
    assert!(
        page.contains(&rec_id) && !page.contains(&paused_id),
        "{page}"
    );
    let page = get(&s, "/devices?state=offline", Some(&vic)).await.text();
    assert!(
        page.contains(&offline_id) && !page.contains(&rec_id),
        "{page}"
    );
    let page = get(&s, "/devices", Some(&vic)).await.text();
    assert!(
        [&rec_id, &paused_id, &offline_id]
            .iter()
            .all(|d| page.contains(*d)),
        "{page}"
    );
}

/// `PUT /api/v1/admin/contacts/{contact}/audio` with `body`; the answer,
/// which must have status `want`.
async fn put_audio(s: &TestServer, contact: &str, body: Vec<u8>, want: u16) -> Value {
    let r = s
        .send(
            hyper::Request::builder()
                .method("PUT")
                .uri(format!("/api/v1/admin/contacts/{contact}/audio"))
                .header("host", "localhost")
                .header("authorization", format!("Bearer {}", s.admin_token))
                .header("content-type", "application/octet-stream")
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, want, "PUT audio of {contact}: {}", r.text());
    r.json()
}

/// Audio of `seconds` made by ffmpeg from a 440 Hz tone, with `args`
/// choosing the codec, into `dir/name`.
fn ffmpeg_audio(dir: &Path, name: &str, seconds: f64, args: &[&str]) -> Vec<u8> {
    let out = dir.join(name);
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg is installed (cargo xtask setup)");
    assert!(status.success(), "ffmpeg {args:?}");
    std::fs::read(out).unwrap()
}

/// Rows of `contact_audio`, and files under the store's `audio/` and the
/// temporary files of imports: what a refused import must not add to.
fn audio_footprint(s: &TestServer) -> (i64, usize, usize) {
    let rows = s.state.db().call_blocking(|c| {
        c.query_row("SELECT count(*) FROM contact_audio", [], |r| r.get(0))
            .unwrap()
    });
    let count = |dir: &Path, pred: &dyn Fn(&str) -> bool| match std::fs::read_dir(dir) {
        Ok(d) => d
            .filter(|e| pred(&e.as_ref().unwrap().file_name().to_string_lossy()))
            .count(),
        Err(_) => 0,
    };
    let stored = count(&s.dir.path().join("recordings/audio"), &|_| true);
    let temps = count(&s.dir.path().join("uploads"), &|n| n.ends_with(".tmp"));
    (rows, stored, temps)
}

#[tokio::test]
#[cfg_attr(windows, ignore = "needs ffmpeg")]
async fn call_audio_in_every_format_is_imported_sealed_and_served() {
    let s = TestServer::start().await;
    seed(&s).await;
    let work = tempfile::tempdir().unwrap();
    let formats: [(&str, &str, &[&str], &str, &str); 6] = [
        (
            "wav-pcm",
            "a.wav",
            &["-ar", "8000", "-c:a", "pcm_s16le"],
            "pcm_s16le",
            "audio/wav",
        ),
        (
            "wav-mulaw",
            "u.wav",
            &["-ar", "8000", "-c:a", "pcm_mulaw"],
            "pcm_mulaw",
            "audio/wav",
        ),
        (
            "wav-alaw",
            "l.wav",
            &["-ar", "8000", "-c:a", "pcm_alaw"],
            "pcm_alaw",
            "audio/wav",
        ),
        (
            "mp3",
            "a.mp3",
            &["-ar", "48000", "-c:a", "libmp3lame", "-b:a", "64k"],
            "mp3",
            "audio/mpeg",
        ),
        (
            "m4a",
            "a.m4a",
            &["-ar", "48000", "-c:a", "aac", "-b:a", "64k"],
            "aac",
            "audio/mp4",
        ),
        (
            "opus",
            "a.opus",
            &["-ar", "48000", "-c:a", "libopus", "-b:a", "32k"],
            "opus",
            "audio/ogg; codecs=opus",
        ),
    ];
    let vic = sign_in(&s, VIC).await;
    let seconds = 2.0;
    for (name, file, args, codec, media_type) in formats {
        let contact = format!("audio-{name}");
        store(&s, &contact, T0, T0 + 2_000_000, None);
        let bytes = ffmpeg_audio(work.path(), file, seconds, args);
        let a = put_audio(&s, &contact, bytes.clone(), 201).await;
        assert_eq!(a["changed"], true);
        let audio = &a["audio"];
        assert_eq!(audio["codec"], codec, "{name}: {audio}");
        assert_eq!(audio["media_type"], media_type, "{name}");
        let duration = audio["duration_us"].as_i64().unwrap() as f64 / 1e6;
        assert!(
            (duration - seconds).abs() <= 0.05,
            "{name}: {duration} s, not {seconds} s"
        );
        // The same audio again: nothing changes, nothing is audited.
        let audits = s.audit_count().await;
        let again = put_audio(&s, &contact, bytes.clone(), 200).await;
        assert_eq!(again["changed"], false);
        assert_eq!(s.audit_count().await, audits);
        // Served to a supervisor who may hear it, byte for byte.
        let r = get(
            &s,
            &format!("/api/v1/recordings/{contact}/audio"),
            Some(&vic),
        )
        .await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(r.header("content-type"), media_type);
        assert_eq!(r.header("cache-control"), "private, no-store");
        assert!(
            r.body == bytes,
            "{name}: the served audio differs from the imported"
        );
        let page = get(&s, &format!("/contacts/{contact}"), Some(&vic))
            .await
            .text();
        let src = format!("/api/v1/recordings/{}/audio", contact.replace('-', "%2D"));
        assert!(
            page.contains(&format!("<audio preload=\"auto\" controls src=\"{src}\"")),
            "{page}"
        );
        let api = get(&s, &format!("/api/v1/contacts/{contact}"), Some(&vic))
            .await
            .json();
        assert_eq!(api["audio"]["sha256"], audio["sha256"]);
        let played = work.path().join(format!("played-{file}"));
        std::fs::write(&played, &r.body).unwrap();
        assert!(
            (deskrec_capture::testing::ffprobe_duration(&played) - seconds).abs() <= 0.1,
            "{name}"
        );
    }
    // At rest the audio is sealed: no stored file holds the plaintext.
    let wav = ffmpeg_audio(
        work.path(),
        "again.wav",
        seconds,
        &["-ar", "8000", "-c:a", "pcm_s16le"],
    );
    let sample = &wav[1000..1064];
    let dir = s.dir.path().join("recordings/audio");
    let stored: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(stored.len(), 6, "{stored:?}");
    for f in stored {
        let b = std::fs::read(&f).unwrap();
        assert!(b.starts_with(b"DSKRSEAL"), "{f:?}");
        assert!(!b.windows(64).any(|w| w == sample), "{f:?} holds plaintext");
    }
    // Every play was audited.
    let plays = s
        .admin("GET", "/audit?action=audio.play", Value::Null)
        .await;
    assert_eq!(plays.as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn bad_audio_gets_a_clear_4xx_and_changes_nothing_stored() {
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), |c| c.limits.audio_mib = 1).await;
    seed(&s).await;
    store(&s, "c-bad", T0, T0 + 2_000_000, None);
    let good = util::wav_tone(440.0, 2.0, 8000);
    put_audio(&s, "c-bad", good.clone(), 201).await;
    let before = audio_footprint(&s);
    let audits = s.audit_count().await;

    // Cut short: the WAV declares more samples than it holds.
    let r = put_audio(&s, "c-bad", good[..good.len() / 2].to_vec(), 422).await;
    assert_eq!(r["code"], "bad_audio");
    assert!(r["message"].as_str().unwrap().contains("declares"), "{r}");
    // Not audio at all, and audio-looking garbage.
    for body in [b"<html>not audio</html>".to_vec(), {
        let mut b = good[..44].to_vec();
        b.extend(std::iter::repeat_n(0xff, 64));
        b[20] = 0x55; // an unknown WAV codec
        b
    }] {
        let r = put_audio(&s, "c-bad", body, 422).await;
        assert_eq!(r["code"], "bad_audio", "{r}");
    }
    // Over the limit (1 MiB here), declared or not.
    let big = util::wav_tone(440.0, 70.0, 8000);
    assert!(big.len() > 1 << 20);
    let r = put_audio(&s, "c-bad", big, 413).await;
    assert_eq!(r["code"], "audio_too_large");
    // A declared size that lies: fewer bytes arrive, then the end.
    let reply = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = s.tls().await;
        let head = format!(
            "PUT /api/v1/admin/contacts/c-bad/audio HTTP/1.1\r\nhost: localhost\r\n\
             authorization: Bearer {}\r\ncontent-length: {}\r\n\r\n",
            s.admin_token,
            good.len() + 5000
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(&good).await.unwrap();
        tls.shutdown().await.unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("incomplete_body"), "{reply}");
    // No such contact.
    put_audio(&s, "nope", good.clone(), 404).await;
    // A supervisor cannot import.
    let vic = sign_in(&s, VIC).await;
    let r = s
        .send(
            request("PUT", "/api/v1/admin/contacts/c-bad/audio", Some(&vic))
                .body(Full::new(Bytes::from(good.clone())))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 401);

    assert_eq!(
        audio_footprint(&s),
        before,
        "a refused import changed what is stored"
    );
    assert_eq!(s.audit_count().await, audits);
    let served = get(&s, "/api/v1/recordings/c-bad/audio", Some(&vic)).await;
    assert!(
        served.body == good,
        "the stored audio is still the good one"
    );
}

/// Each stream's type and duration (s), as ffprobe reads them.
fn ffprobe_streams(file: &Path) -> Vec<(String, f64)> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe is installed (cargo xtask setup)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (kind, duration) = l.split_once(',').unwrap_or((l, ""));
            (kind.to_owned(), duration.trim().parse().unwrap_or(f64::NAN))
        })
        .collect()
}

#[tokio::test]
#[cfg_attr(windows, ignore = "needs ffmpeg")]
async fn the_download_muxes_the_call_audio_over_the_contacts_duration() {
    let s = TestServer::start().await;
    seed(&s).await;
    let device = s.enroll().await.device_id;
    let work = tempfile::tempdir().unwrap();
    let (start, end) = (T0 + 1_300_000, T0 + 6_900_000);
    for contact in ["c-mux", "c-mute"] {
        let rec = record(work.path(), &device, contact, start, end);
        store(&s, contact, start, end, Some((&device, &rec)));
    }
    // The call lasts longer than the recording shows: the download is cut
    // to the recording.
    put_audio(
        &s,
        "c-mux",
        ffmpeg_audio(
            work.path(),
            "call.mp3",
            8.0,
            &["-ar", "8000", "-c:a", "libmp3lame"],
        ),
        201,
    )
    .await;
    let vic = sign_in(&s, VIC).await;
    let wanted = (end - start) as f64 / 1e6;

    let r = get(&s, "/api/v1/recordings/c-mux/download.mp4", Some(&vic)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mp4 = work.path().join("muxed.mp4");
    std::fs::write(&mp4, &r.body).unwrap();
    let streams = ffprobe_streams(&mp4);
    let kinds: Vec<&str> = streams.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["video", "audio"], "{streams:?}");
    let (video, audio) = (streams[0].1, streams[1].1);
    assert!(
        (video - wanted).abs() <= FRAME_US as f64 / 1e6,
        "video {video} s, contact {wanted} s"
    );
    assert!(
        (audio - wanted).abs() <= 0.05,
        "audio {audio} s, contact {wanted} s"
    );
    assert!(
        (deskrec_capture::testing::ffprobe_duration(&mp4) - wanted).abs() <= FRAME_US as f64 / 1e6
    );
    // Asked again: the cached file.
    let again = get(&s, "/api/v1/recordings/c-mux/download.mp4", Some(&vic)).await;
    assert!(again.body == r.body);

    // No audio: the video alone.
    let r = get(&s, "/api/v1/recordings/c-mute/download.mp4", Some(&vic)).await;
    assert_eq!(r.status, 200);
    let mute = work.path().join("mute.mp4");
    std::fs::write(&mute, &r.body).unwrap();
    let kinds: Vec<String> = ffprobe_streams(&mute).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["video"]);
}

#[tokio::test]
#[cfg_attr(windows, ignore = "needs ffmpeg")]
async fn without_ffmpeg_the_muxed_download_says_so_and_the_video_still_plays() {
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), |c| {
        c.mux.ffmpeg = "/nonexistent/ffmpeg".into()
    })
    .await;
    seed(&s).await;
    let device = s.enroll().await.device_id;
    let work = tempfile::tempdir().unwrap();
    let (start, end) = (T0 + 1_000_000, T0 + 3_000_000);
    let rec = record(work.path(), &device, "c-1", start, end);
    store(&s, "c-1", start, end, Some((&device, &rec)));
    put_audio(&s, "c-1", util::wav_tone(440.0, 2.0, 8000), 201).await;
    let vic = sign_in(&s, VIC).await;
    let r = get(&s, "/api/v1/recordings/c-1/download.mp4", Some(&vic)).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (503, Some("mux_unavailable"))
    );
    assert!(r.json()["message"].as_str().unwrap().contains("ffmpeg"));
    assert_eq!(
        get(&s, "/api/v1/recordings/c-1/video.mp4", Some(&vic))
            .await
            .status,
        200
    );
}

/// An HTTPS server on localhost that answers `GET /call.wav` with `body`
/// and 404 otherwise: the ACD's recording store. Its address, and the PEM
/// of its (self-signed) certificate, for the server to trust.
async fn recording_store(body: Vec<u8>) -> (std::net::SocketAddr, String) {
    use hyper::service::service_fn;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Bytes::from(body);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        let found = req.uri().path() == "/call.wav";
                        let resp = hyper::Response::builder()
                            .status(if found { 200 } else { 404 })
                            .body(Full::new(if found { body } else { Bytes::new() }))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, cert.pem())
}

#[tokio::test]
async fn audio_is_fetched_only_from_allowed_https_hosts() {
    let wav = util::wav_tone(440.0, 1.5, 8000);
    let (store_addr, ca) = recording_store(wav.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("acd-ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let s = TestServer::start_with(dir, |c| {
        c.audio_fetch.hosts = vec!["LOCALHOST".into()];
        c.audio_fetch.ca_file = Some(ca_file.clone());
    })
    .await;
    seed(&s).await;
    store(&s, "c-url", T0, T0 + 1_500_000, None);
    let port = store_addr.port();
    let fetch = |url: String| {
        let s = &s;
        async move {
            let (status, body) = s
                .request(
                    "POST",
                    "/api/v1/admin/contacts/c-url/audio/fetch",
                    Some(&s.admin_token),
                    "application/json",
                    &json!({ "url": url }).to_string(),
                )
                .await;
            (status, body)
        }
    };
    // Outside the allow-list, not HTTPS, or a failing answer: nothing stored.
    let before = audio_footprint(&s);
    for (url, status, code) in [
        (
            format!("https://127.0.0.1:{port}/call.wav"),
            422,
            "url_not_allowed",
        ),
        (
            format!("http://localhost:{port}/call.wav"),
            422,
            "url_not_allowed",
        ),
        (
            "https://attacker.example/call.wav".to_owned(),
            422,
            "url_not_allowed",
        ),
        ("not a url".to_owned(), 422, "url_not_allowed"),
        (
            format!("https://localhost:{port}/missing.wav"),
            502,
            "fetch_failed",
        ),
    ] {
        let (got, body) = fetch(url.clone()).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{url}: {body}"
        );
    }
    assert_eq!(audio_footprint(&s), before);

    // From the allowed host, over TLS it trusts: imported as a PUT is.
    let (status, body) = fetch(format!("https://localhost:{port}/call.wav")).await;
    assert_eq!(status, 201, "{body}");
    let sha = hex::encode(Sha256::digest(&wav));
    assert_eq!(body["audio"]["sha256"], sha);
    let (status, body) = fetch(format!("https://localhost:{port}/call.wav")).await;
    assert_eq!((status, &body["changed"]), (200, &json!(false)));
}
