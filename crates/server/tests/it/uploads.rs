//! Recording uploads (tus 1.0) over real TLS sockets: resuming after
//! connections die mid-body, verification and the reasons a recording is
//! refused, authentication on every endpoint, the protocol's error
//! answers, and the acknowledgement on the RTE channel. Recordings are
//! real: OpenH264 pictures, encrypted, spliced and signed by a device key.

use deskrec_server::testing as util;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use deskrec_protocol::ServerMessage;
use deskrec_vault::{PrivateKey, TimeRange};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::http::request::Builder;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use util::recording::{SECOND, T0, Take};
use util::{Reply, TestServer, test_key};

const ANN: &str = "CORP\\ann";
const UPLOADS: &str = "/api/v1/uploads";

/// A second device key (the first is the test key), made once.
fn other_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate().unwrap())
}

/// An enrolled device and the key it signs with.
struct Device {
    id: String,
    credential: String,
    key: &'static PrivateKey,
}

/// A device on which Ann has logged on: her contacts are relayed to it,
/// so it may upload their recordings.
async fn device(s: &TestServer, key: &'static PrivateKey) -> Device {
    let e = s.enroll_key(key).await;
    let mut agent = s.rte(Some(&e.credential)).await.unwrap();
    agent.hello(&e.device_id, ANN).await;
    Device {
        id: e.device_id,
        credential: e.credential,
        key,
    }
}

impl Device {
    /// This device's recording of one of Ann's contacts (`T0 + 1 s` to
    /// `T0 + 7 s`, see [`contacts`]).
    fn recording(&self, contact: &str) -> Vec<u8> {
        self.take(contact, ANN, TimeRange::new(T0 + SECOND, T0 + 7 * SECOND))
    }

    fn take(&self, contact: &str, agent: &str, requested: TimeRange) -> Vec<u8> {
        self.take_at(contact, agent, requested, 0)
    }

    /// A recording made on a PC whose clock is `clock_offset` behind the
    /// server's.
    fn take_at(
        &self,
        contact: &str,
        agent: &str,
        requested: TimeRange,
        clock_offset: i64,
    ) -> Vec<u8> {
        Take {
            device_id: &self.id,
            device_key: self.key,
            contact_id: contact,
            agent,
            requested,
            clock_offset,
        }
        .record()
    }
}

/// Imports Ann's contacts from `T0 + 1 s` to `T0 + 7 s` as the ACD does.
async fn contacts(s: &TestServer, ids: &[&str]) {
    for id in ids {
        contact_at(s, id, T0 + SECOND, T0 + 7 * SECOND).await;
    }
}

async fn contact_at(s: &TestServer, id: &str, start: i64, end: i64) {
    let t = |us| deskrec_vault::utc::rfc3339(us);
    let c = json!({"contact_id": id, "windows_login": ANN, "start": t(start), "end": t(end)});
    s.admin("POST", "/contacts", json!({ "contacts": [c] }))
        .await;
}

/// A contact as the admin API shows it.
async fn contact(s: &TestServer, id: &str) -> Value {
    s.admin("GET", &format!("/contacts/{id}"), Value::Null)
        .await
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

// ------------------------------------------------------------ tus client

fn tus(method: &str, path: &str, credential: Option<&str>) -> Builder {
    let b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("tus-resumable", "1.0.0");
    match credential {
        Some(c) => b.header("authorization", format!("Bearer {c}")),
        None => b,
    }
}

async fn call(s: &TestServer, b: Builder, body: &[u8]) -> Reply {
    s.send(b.body(Full::new(Bytes::copy_from_slice(body))).unwrap())
        .await
}

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

async fn create(s: &TestServer, d: &Device, contact: &str, length: usize) -> Reply {
    let meta = format!("filename {},contact_id {}", b64("c.dskr"), b64(contact));
    let b = tus("POST", UPLOADS, Some(&d.credential))
        .header("upload-length", length)
        .header("upload-metadata", meta);
    call(s, b, b"").await
}

/// Creates an upload; returns its path.
async fn create_ok(s: &TestServer, d: &Device, contact: &str, length: usize) -> String {
    let r = create(s, d, contact, length).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let location = r.header("location").to_owned();
    assert!(location.starts_with("/api/v1/uploads/up-"), "{location}");
    location
}

fn patch_request(path: &str, credential: &str, offset: usize) -> Builder {
    tus("PATCH", path, Some(credential))
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset)
}

async fn patch(s: &TestServer, d: &Device, path: &str, offset: usize, body: &[u8]) -> Reply {
    call(s, patch_request(path, &d.credential, offset), body).await
}

async fn head(s: &TestServer, d: &Device, path: &str) -> Reply {
    call(s, tus("HEAD", path, Some(&d.credential)), b"").await
}

fn offset(r: &Reply) -> usize {
    r.header("upload-offset")
        .parse()
        .unwrap_or_else(|_| panic!("no Upload-Offset in a {} answer", r.status))
}

/// Creates an upload and sends it whole in one PATCH; the PATCH's answer.
async fn upload(s: &TestServer, d: &Device, contact: &str, bytes: &[u8]) -> Reply {
    let path = create_ok(s, d, contact, bytes.len()).await;
    patch(s, d, &path, 0, bytes).await
}

/// Starts a PATCH of `body` at `offset` that sends only its first `sent`
/// bytes, and hands back the open connection: drop it to cut the
/// connection mid-body, keep it to leave the server waiting.
async fn patch_partly(
    s: &TestServer,
    d: &Device,
    path: &str,
    offset: usize,
    body: &[u8],
    sent: usize,
) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let mut tls = TlsConnector::from(util::pinned_client(&s.fingerprint()))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\
         tus-resumable: 1.0.0\r\ncontent-type: application/offset+octet-stream\r\n\
         upload-offset: {offset}\r\ncontent-length: {}\r\n\r\n",
        d.credential,
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body[..sent]).await.unwrap();
    tls.flush().await.unwrap();
    tls
}

// --------------------------------------------------------- server's view

fn upload_id(path: &str) -> String {
    path.rsplit('/').next().unwrap().to_owned()
}

/// The upload's committed offset, from the database.
async fn received(s: &TestServer, path: &str) -> usize {
    let id = upload_id(path);
    s.state
        .db()
        .call(move |c| {
            c.query_row("SELECT received FROM uploads WHERE id = ?1", [id], |r| {
                r.get::<_, i64>(0)
            })
        })
        .await
        .unwrap() as usize
}

/// Waits until the server has committed `n` bytes of the upload.
async fn wait_received(s: &TestServer, path: &str, n: usize) {
    for _ in 0..500 {
        if received(s, path).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the server kept {} bytes, not the {n} that arrived",
        received(s, path).await
    );
}

/// Waits until a PATCH is appending to the upload's file past `at`: the
/// server has taken the request up (a request the server has not read yet
/// is, to it, newer than anything that follows).
async fn wait_writing(s: &TestServer, path: &str, at: usize) {
    let part = s.state.uploads().part_path(&upload_id(path));
    for _ in 0..500 {
        if std::fs::metadata(&part).unwrap().len() > at as u64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server never wrote the PATCH's body");
}

/// Upload files still in `data_dir/uploads`.
fn part_files(s: &TestServer) -> Vec<PathBuf> {
    std::fs::read_dir(s.dir.path().join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// The stored recording of `contact`: its storage key and the SHA-256 the
/// server recorded for it.
async fn stored(s: &TestServer, contact: &str) -> Option<(String, String)> {
    let contact = contact.to_owned();
    s.state
        .db()
        .call(move |c| {
            use rusqlite::OptionalExtension;
            c.query_row(
                "SELECT storage_key, sha256 FROM recordings WHERE contact_id = ?1",
                [contact],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .await
        .unwrap()
}

/// The newest audit row.
async fn last_audit(s: &TestServer) -> Value {
    s.admin("GET", "/audit?limit=1", Value::Null).await[0].clone()
}

/// A small reproducible random source (xorshift); the seed is printed so a
/// failure can be replayed with `DESKREC_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("DESKREC_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| deskrec_server::db::now_micros() as u64 | 1);
        println!("DESKREC_TEST_SEED={seed}");
        Rng(seed)
    }

    /// A number in `1..n`.
    fn between_one_and(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        1 + (self.0 % (n as u64 - 1)) as usize
    }
}

// ----------------------------------------------------------------- tests

#[tokio::test]
async fn an_upload_cut_at_random_points_resumes_from_the_last_byte_and_stores_identical_bytes() {
    let mut s = TestServer::start().await;
    let d = device(&s, test_key()).await;
    contacts(&s, &["c-1"]).await;
    let bytes = d.recording("c-1");
    let path = create_ok(&s, &d, "c-1", bytes.len()).await;
    let mut rng = Rng::new();
    let mut at = 0;
    for round in 0..6 {
        // The agent sends the rest, but only a random part gets through.
        let rest = &bytes[at..];
        // A part that leaves something to resume needs two bytes or more
        // (seed 1796288525170135 left one, and the draw divided by zero).
        if rest.len() < 2 {
            break;
        }
        let sent = rng.between_one_and(rest.len());
        let conn = patch_partly(&s, &d, &path, at, rest, sent).await;
        if round % 2 == 0 {
            // The connection dies: the server keeps exactly what arrived.
            drop(conn);
            wait_received(&s, &path, at + sent).await;
            let h = head(&s, &d, &path).await;
            assert_eq!((h.status, offset(&h)), (200, at + sent));
            assert_eq!(h.header("upload-length"), bytes.len().to_string());
            at += sent;
        } else {
            // The connection hangs: once the server is writing the body,
            // the agent gives up and resumes on a new connection; its HEAD
            // takes the upload over from the stalled PATCH, which records
            // what it had.
            wait_writing(&s, &path, at).await;
            let h = head(&s, &d, &path).await;
            assert_eq!(h.status, 200);
            let now = offset(&h);
            assert!(
                (at + 1..=at + sent).contains(&now),
                "{now} not in {}..={}",
                at + 1,
                at + sent
            );
            drop(conn);
            at = now;
        }
        if round == 2 {
            // The upload also survives a restart of the server.
            s = TestServer::start_in(s.stop().await).await;
        }
    }
    let done = patch(&s, &d, &path, at, &bytes[at..]).await;
    assert_eq!(done.status, 204, "{}", done.text());
    assert_eq!(offset(&done), bytes.len());
    assert_eq!(done.header("tus-resumable"), "1.0.0");
    // The stored file is the original, byte for byte.
    let (key, sha) = stored(&s, "c-1").await.expect("a stored recording");
    let file = std::fs::read(s.dir.path().join("recordings").join(key)).unwrap();
    assert_eq!(sha256(&file), sha256(&bytes));
    assert_eq!(sha, sha256(&bytes));
    assert_eq!(contact(&s, "c-1").await["status"], "uploaded");
    assert!(part_files(&s).is_empty(), "{:?}", part_files(&s));
    // An agent that missed the answer sees the upload is complete.
    let h = head(&s, &d, &path).await;
    assert_eq!((h.status, offset(&h)), (200, bytes.len()));
}

/// Uploads `bytes` for `contact` and checks the refusal: 422 with a reason
/// containing `why`, the contact failed with that reason, audited, and
/// nothing kept.
async fn assert_rejected(s: &TestServer, d: &Device, contact_id: &str, bytes: &[u8], why: &str) {
    let r = upload(s, d, contact_id, bytes).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let body = r.json();
    assert_eq!(body["code"], "recording_rejected");
    let reason = body["message"].as_str().unwrap();
    assert!(
        reason.contains(why),
        "{contact_id}: {reason:?} should say {why:?}"
    );
    let c = contact(s, contact_id).await;
    assert_eq!(
        (&c["status"], &c["status_reason"]),
        (&json!("failed"), &json!(reason))
    );
    let audit = last_audit(s).await;
    assert_eq!(
        (
            &audit["action"],
            &audit["target"],
            &audit["detail"]["reason"]
        ),
        (
            &json!("recording.reject"),
            &json!(contact_id),
            &json!(reason)
        )
    );
    assert_eq!(stored(s, contact_id).await, None);
    assert!(part_files(s).is_empty(), "{:?}", part_files(s));
}

#[tokio::test]
async fn tampered_truncated_replayed_and_foreign_recordings_are_refused_with_their_reason() {
    let s = TestServer::start().await;
    let a = device(&s, test_key()).await;
    let b = device(&s, other_key()).await;
    contacts(
        &s,
        &[
            "tampered",
            "truncated",
            "stored",
            "replayed",
            "foreign",
            "bob",
        ],
    )
    .await;
    contact_at(&s, "later", T0 + 60 * SECOND, T0 + 120 * SECOND).await;

    let mut tampered = a.recording("tampered");
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x10;
    assert_rejected(&s, &a, "tampered", &tampered, "fails its digest check").await;

    let whole = a.recording("truncated");
    assert_rejected(
        &s,
        &a,
        "truncated",
        &whole[..whole.len() - 100],
        "truncated",
    )
    .await;

    // A good recording is stored; replayed for another contact it is not.
    let good = a.recording("stored");
    assert_eq!(upload(&s, &a, "stored", &good).await.status, 204);
    assert_rejected(
        &s,
        &a,
        "replayed",
        &good,
        "is of contact \"stored\", but it was uploaded for contact \"replayed\"",
    )
    .await;

    // A second, different recording of a contact that has one is refused,
    // and the stored one stays.
    let second = a.take(
        "stored",
        ANN,
        TimeRange::new(T0 + 2 * SECOND, T0 + 6 * SECOND),
    );
    let r = upload(&s, &a, "stored", &second).await;
    assert_eq!(
        (r.status, &r.json()["code"]),
        (409, &json!("already_stored"))
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("already has a different stored recording")
    );
    assert_eq!(contact(&s, "stored").await["status"], "uploaded");
    assert_eq!(stored(&s, "stored").await.unwrap().1, sha256(&good));

    // Signed by device A, uploaded by device B.
    let foreign = a.recording("foreign");
    let why = format!("signed by device {}, but device {} uploaded it", a.id, b.id);
    assert_rejected(&s, &b, "foreign", &foreign, &why).await;

    // Another agent's screen, and a recording of another time.
    let bob = a.take(
        "bob",
        "CORP\\bob",
        TimeRange::new(T0 + SECOND, T0 + 7 * SECOND),
    );
    assert_rejected(&s, &a, "bob", &bob, "was handled by").await;
    let later = a.recording("later");
    assert_rejected(
        &s,
        &a,
        "later",
        &later,
        "does not overlap contact \"later\"",
    )
    .await;
    let finished =
        |outcome: &str| format!("deskrec_uploads_finished_total{{outcome=\"{outcome}\"}}");
    assert_eq!(s.metric(&finished("stored")).await, Some(1.0));
    assert_eq!(s.metric(&finished("rejected")).await, Some(7.0));
}

#[tokio::test]
async fn every_upload_endpoint_refuses_bad_credentials_and_other_devices() {
    let s = TestServer::start().await;
    let a = device(&s, test_key()).await;
    let b = device(&s, other_key()).await;
    contacts(&s, &["c-1"]).await;
    let path = create_ok(&s, &a, "c-1", 1000).await;
    assert_eq!(offset(&patch(&s, &a, &path, 0, &[7; 10]).await), 10);
    let endpoints = [
        ("OPTIONS", UPLOADS),
        ("POST", UPLOADS),
        ("OPTIONS", &path),
        ("HEAD", &path),
        ("PATCH", &path),
        ("DELETE", &path),
    ];
    for (method, p) in endpoints {
        for credential in [None, Some("not-a-credential")] {
            let req = tus(method, p, credential)
                .header("content-type", "application/offset+octet-stream")
                .header("upload-offset", 10)
                .header("upload-length", 5);
            let r = call(&s, req, b"").await;
            assert_eq!(r.status, 401, "{method} {p} with {credential:?}");
            assert_eq!(r.header("www-authenticate"), "Bearer");
            if method != "HEAD" {
                assert_eq!(r.json()["code"], "unauthorized");
            }
        }
    }
    // Device B cannot see, extend or end device A's upload.
    assert_eq!(head(&s, &b, &path).await.status, 404);
    assert_eq!(patch(&s, &b, &path, 10, &[1; 10]).await.status, 404);
    let r = call(&s, tus("DELETE", &path, Some(&b.credential)), b"").await;
    assert_eq!((r.status, &r.json()["code"]), (404, &json!("not_found")));
    assert_eq!(
        offset(&head(&s, &a, &path).await),
        10,
        "A's upload is untouched"
    );
    // A request without Tus-Resumable is told which version to speak.
    let r = call(
        &s,
        hyper::Request::builder()
            .method("HEAD")
            .uri(&path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {}", a.credential)),
        b"",
    )
    .await;
    assert_eq!((r.status, r.header("tus-version")), (412, "1.0.0"));
    // A revoked device is locked out of its own upload.
    s.admin("POST", &format!("/devices/{}/revoke", a.id), Value::Null)
        .await;
    assert_eq!(head(&s, &a, &path).await.status, 401);
    assert_eq!(patch(&s, &a, &path, 10, &[1; 10]).await.status, 401);
}

#[tokio::test]
async fn checksums_offsets_and_sizes_are_enforced() {
    let s = TestServer::start().await;
    let d = device(&s, test_key()).await;
    contacts(&s, &["c-1"]).await;
    let r = call(&s, tus("OPTIONS", UPLOADS, Some(&d.credential)), b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("tus-version"), "1.0.0");
    assert_eq!(r.header("tus-extension"), "creation,termination,checksum");
    assert_eq!(r.header("tus-checksum-algorithm"), "sha1,sha256");
    assert_eq!(r.header("tus-max-size"), (2u64 << 30).to_string());

    let bytes = d.recording("c-1");
    let path = create_ok(&s, &d, "c-1", bytes.len()).await;
    let sha1 = |b: &[u8]| STANDARD.encode(<sha1::Sha1 as sha1::Digest>::digest(b));
    let first = &bytes[..1000];
    // A body that does not match its checksum appends nothing.
    let r = call(
        &s,
        patch_request(&path, &d.credential, 0)
            .header("upload-checksum", format!("sha1 {}", sha1(b"other"))),
        first,
    )
    .await;
    assert_eq!(
        (r.status, &r.json()["code"]),
        (460, &json!("checksum_mismatch"))
    );
    assert_eq!(offset(&head(&s, &d, &path).await), 0);
    let part = s.state.uploads().part_path(&upload_id(&path));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 0);
    // One that matches is appended.
    let r = call(
        &s,
        patch_request(&path, &d.credential, 0)
            .header("upload-checksum", format!("sha1 {}", sha1(first))),
        first,
    )
    .await;
    assert_eq!((r.status, offset(&r)), (204, 1000), "{}", r.text());
    // Unknown algorithms and other media types are refused.
    let r = call(
        &s,
        patch_request(&path, &d.credential, 1000).header("upload-checksum", "md5 AAAA"),
        b"x",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        &s,
        tus("PATCH", &path, Some(&d.credential))
            .header("content-type", "application/json")
            .header("upload-offset", 1000),
        b"{}",
    )
    .await;
    assert_eq!(
        (r.status, &r.json()["code"]),
        (415, &json!("unsupported_media_type"))
    );
    // The wrong offset is a conflict that names the right one.
    let r = patch(&s, &d, &path, 0, first).await;
    assert_eq!(
        (r.status, &r.json()["code"]),
        (409, &json!("offset_mismatch"))
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("resume from 1000")
    );
    // A body longer than what is left is refused whole.
    let r = patch(&s, &d, &path, 1000, &bytes).await;
    assert_eq!((r.status, &r.json()["code"]), (413, &json!("too_large")));
    assert_eq!(offset(&head(&s, &d, &path).await), 1000);
    // The rest, with a SHA-256 checksum, completes and stores it.
    let rest = &bytes[1000..];
    let r = call(
        &s,
        patch_request(&path, &d.credential, 1000).header(
            "upload-checksum",
            format!("sha256 {}", STANDARD.encode(Sha256::digest(rest))),
        ),
        rest,
    )
    .await;
    assert_eq!((r.status, offset(&r)), (204, bytes.len()), "{}", r.text());

    // Creation: the metadata must name a known contact, the size must fit.
    let bad = call(
        &s,
        tus("POST", UPLOADS, Some(&d.credential)).header("upload-length", 10),
        b"",
    )
    .await;
    assert_eq!(
        (bad.status, &bad.json()["code"]),
        (400, &json!("bad_request"))
    );
    let r = create(&s, &d, "no-such-contact", 10).await;
    assert_eq!(
        (r.status, &r.json()["code"]),
        (422, &json!("unknown_contact"))
    );
    s.admin(
        "PATCH",
        "/settings",
        json!({"upload": {"max_recording_bytes": 5000, "max_parallel": 2, "max_bytes_per_second": null}}),
    )
    .await;
    contacts(&s, &["c-2"]).await;
    let r = create(&s, &d, "c-2", 5001).await;
    assert_eq!((r.status, &r.json()["code"]), (413, &json!("too_large")));
    let r = call(&s, tus("OPTIONS", UPLOADS, Some(&d.credential)), b"").await;
    assert_eq!(r.header("tus-max-size"), "5000");
    assert_eq!(create(&s, &d, "c-2", 5000).await.status, 201);
}

#[tokio::test]
async fn the_completing_patch_is_followed_by_recording_stored_on_rte() {
    let s = TestServer::start().await;
    let d = device(&s, test_key()).await;
    let mut agent = s.rte(Some(&d.credential)).await.unwrap();
    agent.hello(&d.id, ANN).await;
    // Ann was also seen on another PC, so the contact goes to both.
    let other = device(&s, other_key()).await;
    contacts(&s, &["c-1"]).await; // relayed to this PC: Ann is logged on
    let bytes = d.recording("c-1");
    let r = upload(&s, &d, "c-1", &bytes).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(recording_stored(&mut agent).await, "c-1");
    // Everything the server knows agrees.
    let c = contact(&s, "c-1").await;
    assert_eq!(
        (&c["status"], &c["status_reason"]),
        (&json!("uploaded"), &Value::Null)
    );
    let mine = c["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["device_id"] == json!(d.id))
        .expect("a delivery to this device");
    assert_eq!(mine["outcome"], "uploaded");
    let audit = last_audit(&s).await;
    assert_eq!(
        (&audit["action"], &audit["actor"]),
        (
            &json!("recording.store"),
            &json!(format!("device:{}", d.id))
        )
    );
    assert_eq!(audit["detail"]["sha256"], json!(sha256(&bytes)));

    // The agent missed the answer and uploads the same bytes again: that
    // succeeds, and is acknowledged again.
    let again = upload(&s, &d, "c-1", &bytes).await;
    assert_eq!(again.status, 204, "{}", again.text());
    assert_eq!(recording_stored(&mut agent).await, "c-1");
    // The other device cannot even start an upload for the contact.
    let r = create(&s, &other, "c-1", bytes.len()).await;
    assert_eq!(
        (r.status, &r.json()["code"]),
        (409, &json!("already_stored"))
    );
}

/// The next `RecordingStored` on the RTE channel (other messages, such as
/// the contact relay, are skipped).
async fn recording_stored(agent: &mut util::Agent) -> String {
    loop {
        if let ServerMessage::RecordingStored(m) = agent.recv().await {
            return m.contact_id;
        }
    }
}

#[tokio::test]
async fn terminated_and_expired_uploads_lose_their_bytes_and_the_sweep_finishes_a_complete_one() {
    let s = TestServer::start().await;
    let d = device(&s, test_key()).await;
    contacts(&s, &["c-1", "c-2", "c-3"]).await;
    let id_of = |p: &str| upload_id(p);

    // DELETE ends an upload and its bytes.
    let cancelled = create_ok(&s, &d, "c-1", 1000).await;
    patch(&s, &d, &cancelled, 0, &[1; 100]).await;
    let r = call(&s, tus("DELETE", &cancelled, Some(&d.credential)), b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(head(&s, &d, &cancelled).await.status, 410);
    let r = patch(&s, &d, &cancelled, 100, &[1; 10]).await;
    assert_eq!((r.status, &r.json()["code"]), (410, &json!("upload_gone")));
    assert!(!s.state.uploads().part_path(&id_of(&cancelled)).exists());

    // An upload that stopped receiving data expires.
    let stale = create_ok(&s, &d, "c-2", 1000).await;
    patch(&s, &d, &stale, 0, &[1; 100]).await;
    let id = id_of(&stale);
    s.state
        .db()
        .call(move |c| c.execute("UPDATE uploads SET expires_at = 0 WHERE id = ?1", [id]))
        .await
        .unwrap();
    deskrec_server::uploads::sweep(&s.state).await.unwrap();
    assert_eq!(head(&s, &d, &stale).await.status, 410);
    let r = patch(&s, &d, &stale, 100, &[1; 10]).await;
    assert!(
        r.json()["message"].as_str().unwrap().contains("expired"),
        "{}",
        r.text()
    );
    assert!(!s.state.uploads().part_path(&id_of(&stale)).exists());

    // An upload file that lost synced bytes (damaged, restored from an old
    // backup) resumes from what it holds instead of failing forever.
    let damaged = create_ok(&s, &d, "c-3", 1000).await;
    patch(&s, &d, &damaged, 0, &[1; 100]).await;
    let part = s.state.uploads().part_path(&id_of(&damaged));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&part)
        .unwrap()
        .set_len(40)
        .unwrap();
    let r = patch(&s, &d, &damaged, 100, &[1; 10]).await;
    assert_eq!((r.status, &r.json()["code"]), (400, &json!("interrupted")));
    assert_eq!(offset(&head(&s, &d, &damaged).await), 40);
    let r = call(&s, tus("DELETE", &damaged, Some(&d.credential)), b"").await;
    assert_eq!(r.status, 204);

    // The server crashed after committing the last byte, before verifying:
    // the sweep at start verifies and stores it.
    let bytes = d.recording("c-3");
    let complete = create_ok(&s, &d, "c-3", bytes.len()).await;
    let id = id_of(&complete);
    std::fs::write(s.state.uploads().part_path(&id), &bytes).unwrap();
    let length = bytes.len() as i64;
    s.state
        .db()
        .call(move |c| {
            c.execute(
                "UPDATE uploads SET received = ?2 WHERE id = ?1",
                rusqlite::params![id, length],
            )
        })
        .await
        .unwrap();
    deskrec_server::uploads::sweep(&s.state).await.unwrap();
    assert_eq!(stored(&s, "c-3").await.unwrap().1, sha256(&bytes));
    assert_eq!(contact(&s, "c-3").await["status"], "uploaded");
    assert!(part_files(&s).is_empty(), "{:?}", part_files(&s));
}

#[tokio::test]
async fn a_pc_clock_minutes_off_is_placed_on_the_servers_clock() {
    let s = TestServer::start().await;
    let a = device(&s, test_key()).await;
    // The PC's clock is 5 minutes behind: what it recorded from T0 + 1 s on
    // its clock happened at T0 + 5 min + 1 s on the server's.
    let skew = 300 * SECOND;
    for id in ["skewed", "unadjusted"] {
        contact_at(&s, id, T0 + skew + SECOND, T0 + skew + 7 * SECOND).await;
    }
    let on_pc_clock = TimeRange::new(T0 + SECOND, T0 + 7 * SECOND);
    let good = a.take_at("skewed", ANN, on_pc_clock, skew);
    assert_eq!(upload(&s, &a, "skewed", &good).await.status, 204);
    assert_eq!(contact(&s, "skewed").await["status"], "uploaded");
    // The same recording claiming no offset would be 5 minutes early.
    let bad = a.take_at("unadjusted", ANN, on_pc_clock, 0);
    assert_rejected(&s, &a, "unadjusted", &bad, "does not overlap").await;
}

#[tokio::test]
async fn another_device_can_neither_upload_a_contact_it_was_not_sent_nor_interrupt_a_patch() {
    let s = TestServer::start().await;
    let a = device(&s, test_key()).await;
    // A device that never reported Ann's logon: nothing of hers is relayed
    // to it.
    let e = s.enroll_key(other_key()).await;
    let forger = Device {
        id: e.device_id,
        credential: e.credential,
        key: other_key(),
    };
    contacts(&s, &["c-1"]).await;
    let r = create(&s, &forger, "c-1", 1000).await;
    assert_eq!(
        (r.status, &r.json()["code"]),
        (403, &json!("contact_not_delivered")),
        "{}",
        r.text()
    );
    assert_eq!(contact(&s, "c-1").await["status"], "pending");

    // A's PATCH is half sent when the forger, who learnt the upload id,
    // asks about it: the forger gets 404 and A's PATCH goes on.
    let bytes = a.recording("c-1");
    let path = create_ok(&s, &a, "c-1", bytes.len()).await;
    let half = bytes.len() / 2;
    let mut tls = patch_partly(&s, &a, &path, 0, &bytes, half).await;
    wait_writing(&s, &path, 0).await;
    assert_eq!(head(&s, &forger, &path).await.status, 404);
    let r = call(&s, tus("DELETE", &path, Some(&forger.credential)), b"").await;
    assert_eq!(r.status, 404);
    tls.write_all(&bytes[half..]).await.unwrap();
    tls.flush().await.unwrap();
    assert_eq!(util::read_status(&mut tls).await, Some(204));
    assert!(stored(&s, "c-1").await.is_some());
    assert_eq!(contact(&s, "c-1").await["status"], "uploaded");
}

#[tokio::test]
async fn a_device_holds_only_so_many_open_uploads() {
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), |c| {
        c.limits.open_uploads_per_device = 2;
    })
    .await;
    let a = device(&s, test_key()).await;
    contacts(&s, &["c-1"]).await;
    let first = create_ok(&s, &a, "c-1", 1000).await;
    create_ok(&s, &a, "c-1", 1000).await;
    let r = create(&s, &a, "c-1", 1000).await;
    assert_eq!(
        (r.status, &r.json()["code"]),
        (429, &json!("too_many_uploads")),
        "{}",
        r.text()
    );
    // Another device is not affected; ending one frees a place.
    let b = device(&s, other_key()).await;
    contacts(&s, &["c-2"]).await;
    create_ok(&s, &b, "c-2", 1000).await;
    let r = call(&s, tus("DELETE", &first, Some(&a.credential)), b"").await;
    assert_eq!(r.status, 204);
    create_ok(&s, &a, "c-1", 1000).await;
}

// Free space is read with statvfs: on Windows the reserve is not checked
// (docs/security.md).
#[cfg(unix)]
#[tokio::test]
async fn a_disk_at_its_reserve_answers_507_and_free_space_is_a_metric() {
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), |c| {
        // More than any disk has: every upload would eat the reserve.
        c.limits.disk_reserve_mib = 1 << 40;
    })
    .await;
    let a = device(&s, test_key()).await;
    contacts(&s, &["c-1"]).await;
    let r = create(&s, &a, "c-1", 1000).await;
    assert_eq!(
        (r.status, &r.json()["code"]),
        (507, &json!("insufficient_storage")),
        "{}",
        r.text()
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("disk_reserve_mib")
    );
    assert_eq!(
        contact(&s, "c-1").await["status"],
        "pending",
        "nothing was lost or failed"
    );
    let free = s
        .metric("deskrec_storage_free_bytes{volume=\"uploads\"}")
        .await
        .expect("the free-space gauge");
    assert!(free > 0.0, "{free}");
}

#[tokio::test]
async fn the_gaps_inside_a_recording_are_stored_with_it() {
    let s = TestServer::start().await;
    let a = device(&s, test_key()).await;
    contacts(&s, &["gappy"]).await;
    // Chunk 1 (T0 + 2 s to T0 + 4 s) was never recorded.
    let bytes = Take {
        device_id: &a.id,
        device_key: a.key,
        contact_id: "gappy",
        agent: ANN,
        requested: TimeRange::new(T0 + SECOND, T0 + 7 * SECOND),
        clock_offset: 0,
    }
    .record_skipping(Some(1));
    assert_eq!(upload(&s, &a, "gappy", &bytes).await.status, 204);
    let gaps: String = s.state.db().call_blocking(|c| {
        c.query_row(
            "SELECT gaps FROM recordings WHERE contact_id = 'gappy'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    });
    let gaps: Vec<[i64; 2]> = serde_json::from_str(&gaps).unwrap();
    assert_eq!(gaps, [[T0 + 2 * SECOND, T0 + 4 * SECOND]]);
}

/// Marks a contact's content disposed of in the database, as a disposal's
/// intent (step 1) commits it, without running the rest: the moment
/// between the intent and the deletion of the files.
async fn dispose(s: &TestServer, contact: &str, disposal: &str) {
    let (contact, disposal) = (contact.to_owned(), disposal.to_owned());
    s.state
        .db()
        .call(move |c| {
            c.execute(
                "UPDATE contacts SET disposal = ?2, disposal_at = 1, disposal_by = 'admin-token'
                 WHERE contact_id = ?1",
                [contact, disposal],
            )
        })
        .await
        .unwrap();
}

/// The state of an upload, from the database.
async fn upload_state(s: &TestServer, path: &str) -> String {
    let id = upload_id(path);
    s.state
        .db()
        .call(move |c| {
            c.query_row("SELECT state FROM uploads WHERE id = ?1", [id], |r| {
                r.get(0)
            })
        })
        .await
        .unwrap()
}

/// Files under the server's recording store.
fn store_files(s: &TestServer) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&s.dir.path().join("recordings"), &mut files);
    files
}

/// `(status, code)` of an answer (no code when it has no JSON body).
fn refusal(r: &Reply) -> (u16, String) {
    let body: Value = serde_json::from_str(&r.text()).unwrap_or_default();
    (
        r.status,
        body["code"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn an_upload_under_way_when_its_contact_is_erased_is_refused_and_its_bytes_go() {
    let s = TestServer::start().await;
    let d = device(&s, test_key()).await;
    contacts(&s, &["c-1"]).await;
    let bytes = d.recording("c-1");
    let half = bytes.len() / 2;
    let path = create_ok(&s, &d, "c-1", bytes.len()).await;
    let r = patch(&s, &d, &path, 0, &bytes[..half]).await;
    assert_eq!((r.status, offset(&r)), (204, half), "{}", r.text());
    let part = s.state.uploads().part_path(&upload_id(&path));
    assert!(part.exists());

    let erased = s.erase("c-1").await;
    assert_eq!(erased["disposal"]["state"], "erased", "{erased}");
    // The erasure ended the upload and deleted what had arrived.
    assert_eq!(upload_state(&s, &path).await, "terminated");
    assert!(!part.exists(), "the partial upload is erased too");

    // The agent, unaware, sends the rest: refused, nothing stored.
    let r = patch(&s, &d, &path, half, &bytes[half..]).await;
    assert_eq!(refusal(&r), (410, "erased".to_owned()), "{}", r.text());
    assert!(r.text().contains("delete the local copy"), "{}", r.text());
    assert!(
        !r.text().contains("the customer asked"),
        "the reason stays on the server"
    );
    assert_eq!(head(&s, &d, &path).await.status, 410, "HEAD has no body");
    // A new upload for it is refused at creation.
    let r = create(&s, &d, "c-1", bytes.len()).await;
    assert_eq!(refusal(&r), (410, "erased".to_owned()), "{}", r.text());
    assert_eq!(stored(&s, "c-1").await, None);
    assert!(store_files(&s).is_empty(), "{:?}", store_files(&s));
    assert!(part_files(&s).is_empty(), "{:?}", part_files(&s));

    // Each refusal is audited once, without content: the upload the
    // erasure ended (not again when the PATCH and HEAD were refused), and
    // the creation.
    let rows = s.audited("upload.refused", "c-1").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let of_upload: Vec<_> = rows
        .iter()
        .filter(|r| r["detail"]["upload"] == json!(upload_id(&path)))
        .collect();
    assert_eq!(of_upload.len(), 1, "{rows:?}");
    for row in &rows {
        assert_eq!(row["actor"], json!(format!("device:{}", d.id)));
        assert_eq!(row["detail"]["disposal"], "erased");
        let mut keys: Vec<_> = row["detail"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["disposal", "upload"],
            "nothing of the content: {row}"
        );
    }
}

#[tokio::test]
async fn an_upload_is_refused_from_the_moment_a_disposal_commits_its_intent() {
    let s = TestServer::start().await;
    let d = device(&s, test_key()).await;
    contacts(&s, &["c-patch", "c-finish", "c-new"]).await;

    // An erasure whose intent committed but whose files are not deleted
    // yet (it runs, or a crash interrupted it): the next PATCH is refused
    // and deletes the partial upload itself.
    let bytes = d.recording("c-patch");
    let path = create_ok(&s, &d, "c-patch", bytes.len()).await;
    patch(&s, &d, &path, 0, &bytes[..100]).await;
    dispose(&s, "c-patch", "erasing").await;
    let r = patch(&s, &d, &path, 100, &bytes[100..]).await;
    assert_eq!(refusal(&r), (410, "erased".to_owned()), "{}", r.text());
    assert_eq!(upload_state(&s, &path).await, "terminated");
    assert!(!s.state.uploads().part_path(&upload_id(&path)).exists());
    assert_eq!(s.audited("upload.refused", "c-patch").await.len(), 1);
    // The interrupted erasure finishes at the next start as before.
    let finished = deskrec_server::compliance::resume(&s.state).await.unwrap();
    assert_eq!(finished, ["c-patch"]);
    assert_eq!(s.audited("upload.refused", "c-patch").await.len(), 1);

    // The last byte arrived just before a crash, and the recording had
    // been put in the store under the upload's key, when the contact's
    // erasure committed: the sweep that finishes the upload refuses it,
    // and neither the upload's bytes nor the stored object remain.
    let bytes = d.recording("c-finish");
    let path = create_ok(&s, &d, "c-finish", bytes.len()).await;
    let id = upload_id(&path);
    std::fs::write(s.state.uploads().part_path(&id), &bytes).unwrap();
    let hex = id.trim_start_matches("up-");
    let object = s
        .dir
        .path()
        .join("recordings")
        .join(&hex[..2])
        .join(deskrec_vault::FileKind::Recording.file_name(&id));
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, &bytes).unwrap();
    let (length, i) = (bytes.len() as i64, id.clone());
    s.state
        .db()
        .call(move |c| {
            c.execute(
                "UPDATE uploads SET received = ?2 WHERE id = ?1",
                rusqlite::params![i, length],
            )
        })
        .await
        .unwrap();
    dispose(&s, "c-finish", "erasing").await;
    deskrec_server::uploads::sweep(&s.state).await.unwrap();
    assert_eq!(stored(&s, "c-finish").await, None);
    assert!(
        !object.exists(),
        "the object the cut-short store put is gone"
    );
    assert!(store_files(&s).is_empty(), "{:?}", store_files(&s));
    assert!(part_files(&s).is_empty(), "{:?}", part_files(&s));
    assert_eq!(upload_state(&s, &path).await, "terminated");
    assert_eq!(
        s.metric(r#"deskrec_uploads_finished_total{outcome="refused"}"#)
            .await,
        Some(1.0)
    );

    // Retention's disposal refuses the same way, with its own code.
    dispose(&s, "c-new", "expired").await;
    let r = create(&s, &d, "c-new", 100).await;
    assert_eq!(refusal(&r), (410, "expired".to_owned()), "{}", r.text());
    let rows = s.audited("upload.refused", "c-new").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0]["detail"],
        json!({"upload": null, "disposal": "expired"})
    );
}
