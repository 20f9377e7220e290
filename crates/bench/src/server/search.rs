//! Contact search at scale: [`CONTACTS`] contacts, and signed-in
//! supervisors searching them and opening them over HTTPS.
//!
//! The contacts are written straight into the stopped server's database.
//! The import API takes 10,000 contacts a call and relays each one to the
//! devices that were logged on during it: seeding a million through it
//! would measure the import, not the search. The rows are what the import
//! writes (the columns the search reads), spread over 1,000 agents, 8
//! queues, two directions and the four statuses, two to three a minute
//! for a month.
//!
//! Two users search: a supervisor of one team of [`TEAM_SIZE`] agents (2%
//! of the contacts are theirs) and an administrator, who sees all. Each
//! runs every search in [`searches`] [`ROUNDS`] times, on one keep-alive
//! connection, timed from request to last byte; then opens
//! [`PAGE_SAMPLES`] contacts' pages.

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use deskrec_client::{HttpConnection, Method, ServerAddress};

use super::{AGENTS, login};

/// Contacts seeded.
pub const CONTACTS: usize = 1_000_000;
/// Agents per team (the bench's users are in teams of this many).
pub const TEAM_SIZE: usize = 20;
/// Times each search runs per user.
const ROUNDS: usize = 20;
/// Contact pages opened per user.
const PAGE_SAMPLES: usize = 200;
/// Queues the contacts are spread over.
const QUEUES: usize = 8;
/// The seeded month starts here (µs): 2030-11-01T00:00:00Z.
const MONTH_START: i64 = 1_919_721_600_000_000;
/// Between two contacts' starts (µs): a million in 30 days.
const SPACING: i64 = 30 * 86_400 * 1_000_000 / CONTACTS as i64;

/// The team of agent `i`.
pub fn team(i: usize) -> String {
    format!("team{:02}", i / TEAM_SIZE)
}

/// The supervisor of team 0 and the administrator, with their password.
pub const SUPERVISOR: &str = "BENCH\\supervisor";
/// See [`SUPERVISOR`].
pub const ADMINISTRATOR: &str = "BENCH\\admin";
/// Their password.
pub const PASSWORD: &str = "a bench password";

/// Contact `n`'s agent, queue, direction and status, each drawn on its
/// own (a hash of `n` and the field), so no two are correlated.
fn contact(n: usize) -> (usize, String, &'static str, &'static str) {
    let draw = |field: u64, of: u64| (mix(n as u64 ^ (field << 32)) % of) as usize;
    let agent = draw(1, AGENTS as u64);
    let queue = format!("q{}", draw(2, QUEUES as u64));
    let direction = if draw(3, 5) == 0 {
        "outbound"
    } else {
        "inbound"
    };
    let status = match draw(4, 200) {
        0 => "failed",
        1..=3 => "unrecoverable",
        4..=19 => "pending",
        _ => "uploaded",
    };
    (agent, queue, direction, status)
}

/// SplitMix64's finalizer: a well-spread hash of `z`.
fn mix(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes [`CONTACTS`] contacts into the database of the stopped server
/// at `data_dir`, in one transaction.
pub fn seed(data_dir: &std::path::Path) -> Result<()> {
    let mut db = rusqlite::Connection::open(data_dir.join("deskrec.db"))
        .context("opening the bench server's database")?;
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO contacts (contact_id, windows_login, start_at, end_at, direction, queue,
                                   status, status_reason, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?3, ?3)",
        )?;
        for n in 0..CONTACTS {
            let (agent, queue, direction, status) = contact(n);
            let start = MONTH_START + n as i64 * SPACING;
            let reason = (status == "unrecoverable").then_some("no_segments");
            insert.execute(rusqlite::params![
                format!("s{n}"),
                login(agent),
                start,
                start + 180_000_000,
                direction,
                queue,
                status,
                reason
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The searches each user runs, as query strings of `/`. `member` is an
/// agent the user may see.
fn searches(member: usize) -> Vec<String> {
    let day = |d: i64| deskrec_vault::utc::rfc3339(MONTH_START + d * 86_400_000_000);
    let agent = login(member).replace('\\', "%5C");
    vec![
        String::new(),
        format!("login={agent}"),
        "queue=q3".into(),
        "direction=outbound".into(),
        "status=failed".into(),
        "status=unrecoverable&queue=q1".into(),
        format!("from={}&to={}", day(12), day(13)),
        format!("login={agent}&from={}&to={}", day(3), day(20)),
        format!("status=pending&direction=outbound&from={}", day(25)),
    ]
}

/// Request times, ms.
#[derive(Default)]
pub struct Times {
    /// Searches (the contacts page with filters, and paging through it).
    pub search_ms: Vec<f64>,
    /// Contact pages.
    pub page_ms: Vec<f64>,
    /// Each search's slowest time, by user and query, for the log.
    pub slowest: std::collections::BTreeMap<String, f64>,
}

/// Signs in as each user and times their searches and contact pages.
pub async fn run(addr: &ServerAddress) -> Result<Times> {
    let mut times = Times::default();
    for (user, member) in [(SUPERVISOR, 7), (ADMINISTRATOR, 523)] {
        let mut conn = HttpConnection::connect(addr).await?;
        let cookie = sign_in(&mut conn, addr, user).await?;
        let headers = [("cookie", cookie.as_str())];
        for _ in 0..ROUNDS {
            for q in searches(member) {
                let started = Instant::now();
                let r = conn
                    .request(Method::GET, &format!("/?{q}"), &headers, "")
                    .await?;
                let ms = started.elapsed().as_secs_f64() * 1e3;
                times.search_ms.push(ms);
                let worst = times.slowest.entry(format!("{user} /?{q}")).or_default();
                *worst = worst.max(ms);
                ensure!(r.status == 200, "GET /?{q} as {user}: HTTP {}", r.status);
            }
        }
        // Paging back: 20 pages, each from the cursor of the one before.
        let mut before = String::new();
        let mut ids = vec![];
        for _ in 0..20 {
            let path = format!("/api/v1/contacts?limit=50&before={before}");
            let started = Instant::now();
            let r = conn.request(Method::GET, &path, &headers, "").await?;
            times.search_ms.push(started.elapsed().as_secs_f64() * 1e3);
            ensure!(r.status == 200, "GET {path} as {user}: HTTP {}", r.status);
            let page = r.json()?;
            for c in page["contacts"].as_array().context("contacts")? {
                ids.push(c["contact_id"].as_str().context("contact_id")?.to_owned());
            }
            before = page["next"].as_str().context("a next page")?.to_owned();
        }
        ensure!(
            ids.len() == 1000,
            "{user} paged through {} contacts",
            ids.len()
        );
        for id in ids.iter().step_by(ids.len() / PAGE_SAMPLES) {
            let path = format!("/contacts/{id}");
            let started = Instant::now();
            let r = conn.request(Method::GET, &path, &headers, "").await?;
            times.page_ms.push(started.elapsed().as_secs_f64() * 1e3);
            ensure!(r.status == 200, "GET {path} as {user}: HTTP {}", r.status);
        }
    }
    Ok(times)
}

/// Signs in through the login form; the session cookie to send.
async fn sign_in(conn: &mut HttpConnection, addr: &ServerAddress, user: &str) -> Result<String> {
    let body = format!(
        "login={}&password={}",
        user.replace('\\', "%5C"),
        PASSWORD.replace(' ', "+")
    );
    let origin = format!("https://{}", addr.authority());
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", origin.as_str()),
    ];
    let r = conn.request(Method::POST, "/login", &headers, body).await?;
    ensure!(r.status == 303, "sign-in as {user}: HTTP {}", r.status);
    let set = r.header("set-cookie").context("no session cookie")?;
    Ok(set.split(';').next().unwrap_or_default().to_owned())
}
