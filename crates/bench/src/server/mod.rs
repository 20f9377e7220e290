//! The `server` benchmark: a release `deskrec-server` process with 1,000
//! simulated agents connected over loopback TLS.
//!
//! 1. Seeds the server through its admin API: an `agent` role with
//!    `record_screen`, 1,000 users, 1,000 enrolled devices.
//! 2. Connects 1,000 RTE WebSockets (one tokio task each, all in this
//!    process), each saying Hello as its own user; samples the server's RSS
//!    from `/proc` while they are connected.
//! 3. Imports contacts at 100 a second (one contact per call, from four
//!    keep-alive connections, to random agents) and measures, per contact,
//!    the time from the start of the import call to the agent task reading
//!    it off its socket (`relay_p50_ms`, `relay_p99_ms`). Every contact must
//!    arrive.
//! 4. Starts one real agent (the engine, in this process) among them and
//!    times API pauses of it, from the call to its recorder's first paused
//!    picture (`pause_relay_p99_ms`; see [`pause`]).
//! 5. Uploads a real signed recording with tus (verified by the server)
//!    and compares the time with `cp` of the same bytes (`ingest_vs_copy`).
//! 6. Stops the server, writes 1,000,000 contacts into its database,
//!    starts it again, and times a team supervisor's and an
//!    administrator's searches and contact pages (`search`:
//!    `contact_search_ms_p99`, `contact_page_ms_p99`).
//!
//! The agents and the clock are in this process, so latencies include the
//! client side's scheduling on the same two cores: an upper bound.

mod agents;
mod ingest;
pub mod pause;
mod search;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use deskrec_client::{HttpConnection, Method, ServerAddress};
use serde_json::json;

use crate::process::{self, ServerProcess};
use crate::report::{Goal, Report};
use agents::Arrivals;
pub(crate) use ingest::server_key;

/// Simulated agents.
pub const AGENTS: usize = 1000;
/// Contacts imported per second during the relay phase.
pub const CONTACTS_PER_SECOND: usize = 100;
/// Length of the relay phase.
pub const RELAY_SECONDS: usize = 20;
/// Parallel import connections (the ACD side).
const IMPORTERS: usize = 4;

/// Runs the benchmark with scratch files under `work`.
pub fn run(work: &Path) -> Result<Report> {
    process::raise_fd_limit(4 * AGENTS as u64 + 256)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(work))
}

async fn run_async(work: &Path) -> Result<Report> {
    let server = ServerProcess::start(&work.join("server"))?;
    let addr = server.address.clone();
    let mut admin = Admin::connect(&addr, server.admin_token.clone()).await?;
    let device_key = deskrec_vault::PrivateKey::generate()?;

    let seeded = Instant::now();
    let devices = admin.seed(AGENTS, &device_key.public().to_pem()).await?;
    println!(
        "seeded {AGENTS} users and devices in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    let arrivals = Arc::new(Arrivals::new(CONTACTS_PER_SECOND * RELAY_SECONDS));
    let connected = Instant::now();
    let fleet = agents::connect_all(&addr, &devices, arrivals.clone()).await?;
    println!(
        "{AGENTS} agents connected in {:.1} s",
        connected.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = server.rss_mb()?;

    let rss_peak = Arc::new(std::sync::Mutex::new(idle_rss));
    let sampler = {
        let (pid, peak) = (server.pid(), rss_peak.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if let Ok(mb) = process::rss_mb(pid) {
                    let mut p = peak.lock().unwrap();
                    *p = p.max(mb);
                }
            }
        })
    };
    relay(&addr, &server.admin_token, &arrivals).await?;
    let all_in = Instant::now() + Duration::from_secs(10);
    while arrivals.missing() > 0 && Instant::now() < all_in {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sampler.abort();
    let lost = arrivals.missing();
    let latencies = arrivals.latencies_ms();
    ensure!(
        fleet.all_alive(),
        "agents lost their connection during the run: {}",
        fleet.failures()
    );
    let rss_1000 = *rss_peak.lock().unwrap();

    let pauses = pause::run(work, &mut admin).await?;
    ensure!(
        fleet.all_alive(),
        "agents lost their connection during the pauses: {}",
        fleet.failures()
    );

    let ingest = ingest::run(work, &addr, &mut admin, &devices[0], &device_key).await?;
    drop(fleet);
    admin.supervisors().await?;
    let server_peak = server.peak_rss_mb()?;
    server.stop()?;

    let seeded = Instant::now();
    search::seed(&work.join("server"))?;
    println!(
        "seeded {} contacts in {:.1} s",
        search::CONTACTS,
        seeded.elapsed().as_secs_f64()
    );
    let server = ServerProcess::start(&work.join("server"))?;
    let searched = search::run(&server.address).await?;
    server.stop()?;
    for (query, ms) in &searched.slowest {
        println!("  slowest {ms:7.1} ms  {query}");
    }

    let mut r = Report::default();
    r.add_goal_in(
        "relay_p50_ms",
        percentile(&latencies, 0.50),
        "ms",
        Goal::AtMost(50.0),
        "contact import call start to agent receipt, median",
    );
    r.add_goal_in(
        "relay_p99_ms",
        percentile(&latencies, 0.99),
        "ms",
        Goal::AtMost(50.0),
        format!(
            "same, 99th percentile ({} contacts at {CONTACTS_PER_SECOND}/s)",
            latencies.len()
        ),
    );
    r.add(
        "relay_max_ms",
        percentile(&latencies, 1.0),
        "ms",
        "same, slowest",
    );
    r.add_goal_in(
        "relay_lost",
        lost as f64,
        "contacts",
        Goal::AtMost(0.0),
        "contacts imported that no agent received within 10 s",
    );
    r.add_goal_in(
        "pause_relay_p99_ms",
        percentile(&pauses, 0.99),
        "ms",
        Goal::AtMost(1000.0),
        format!(
            "API pause call start to the agent recorder's first paused picture, 99th percentile \
             ({} pauses, {AGENTS} agents connected)",
            pauses.len()
        ),
    );
    r.add(
        "pause_relay_p50_ms",
        percentile(&pauses, 0.50),
        "ms",
        "same, median",
    );
    r.add_goal_in(
        "rss_mb_1000_agents",
        rss_1000,
        "MB",
        Goal::AtMost(200.0),
        format!("server RSS with {AGENTS} agents connected, peak of samples during the relay"),
    );
    r.add(
        "rss_mb_idle_1000_agents",
        idle_rss,
        "MB",
        "server RSS with the agents connected, before the relay",
    );
    r.add(
        "server_peak_rss_mb",
        server_peak,
        "MB",
        "server VmHWM over the whole run, ingest included",
    );
    r.add(
        "ingest_vs_copy",
        ingest.ratio(),
        "ratio",
        format!(
            "tus upload + verification + storage of a {:.0} MB recording, over `cp` of the same file",
            ingest.bytes as f64 / 1e6
        ),
    );
    r.add(
        "ingest_vs_durable_copy",
        ingest.durable_ratio(),
        "ratio",
        "same, over `cp` then `sync` of the copy (durable, like the server's storage)",
    );
    r.add(
        "ingest_mb_per_s",
        ingest.mb_per_s(),
        "MB/s",
        "upload, verified and stored",
    );
    r.add(
        "copy_mb_per_s",
        ingest.copy_mb_per_s(),
        "MB/s",
        "cp of the same bytes",
    );
    r.add_goal_in(
        "contact_search_ms_p99",
        percentile(&searched.search_ms, 0.99),
        "ms",
        Goal::AtMost(50.0),
        format!(
            "contacts page with filters (agent, queue, direction, status, time, paging), {} \
             contacts, a team supervisor and an administrator, 99th percentile of {}",
            search::CONTACTS,
            searched.search_ms.len()
        ),
    );
    r.add(
        "contact_search_ms_p50",
        percentile(&searched.search_ms, 0.50),
        "ms",
        "same, median",
    );
    r.add_goal_in(
        "contact_page_ms_p99",
        percentile(&searched.page_ms, 0.99),
        "ms",
        Goal::AtMost(50.0),
        format!(
            "one contact's page, 99th percentile of {}",
            searched.page_ms.len()
        ),
    );
    r.note(format!(
        "{AGENTS} agents and the importers run in this process on the same cores as the server; \
         latencies are measured with one monotonic clock."
    ));
    Ok(r)
}

/// Imports contacts at [`CONTACTS_PER_SECOND`] for [`RELAY_SECONDS`], one
/// per call, round-robin over [`IMPORTERS`] connections.
async fn relay(addr: &ServerAddress, admin_token: &str, arrivals: &Arc<Arrivals>) -> Result<()> {
    let total = CONTACTS_PER_SECOND * RELAY_SECONDS;
    let period = Duration::from_secs(1) / (CONTACTS_PER_SECOND / IMPORTERS) as u32;
    let mut workers = Vec::new();
    for w in 0..IMPORTERS {
        let mut conn = Admin::connect(addr, admin_token.to_owned()).await?;
        let arrivals = arrivals.clone();
        workers.push(tokio::spawn(async move {
            // Stagger the importers evenly across one period.
            tokio::time::sleep(period * w as u32 / IMPORTERS as u32).await;
            let mut tick = tokio::time::interval(period);
            for n in (w..total).step_by(IMPORTERS) {
                tick.tick().await;
                let agent = (n * 7919) % AGENTS;
                let start = Instant::now();
                arrivals.sent(n, start);
                conn.import_contact(n, agent).await?;
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(())
}

/// The admin side: seeding and contact import, over one connection.
pub struct Admin {
    conn: HttpConnection,
    token: String,
}

/// A seeded device: its id, credential and user.
#[derive(Clone, Debug)]
pub struct SeededDevice {
    /// Device id from enrollment.
    pub device_id: String,
    /// Its credential.
    pub credential: String,
    /// The Windows login it says Hello as.
    pub login: String,
}

/// The login of simulated agent `i`.
pub fn login(i: usize) -> String {
    format!("BENCH\\agent{i:04}")
}

/// Contact `n`'s times: 2 minutes, in an hour (no agent records anything;
/// the agents' login sessions, open since they said hello, cover it).
fn contact_times(n: usize) -> (String, String) {
    let start = jiff::Timestamp::now()
        + jiff::SignedDuration::from_hours(1)
        + jiff::SignedDuration::from_millis(n as i64);
    (
        start.to_string(),
        (start + jiff::SignedDuration::from_mins(2)).to_string(),
    )
}

impl Admin {
    /// Connects with the admin bearer `token`.
    pub async fn connect(addr: &ServerAddress, token: String) -> Result<Self> {
        Ok(Self {
            conn: HttpConnection::connect(addr).await?,
            token,
        })
    }

    /// An admin call that must succeed; its JSON answer.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let resp = self
            .conn
            .json(method.clone(), path, &self.token, body.as_ref())
            .await?;
        if !(200..300).contains(&resp.status) {
            bail!(
                "{method} {path}: HTTP {} {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            );
        }
        Ok(resp.json()?)
    }

    /// Makes `login` eligible for recording: the `agent` role with
    /// `record_screen` (created or replaced) and a user `name` with it.
    pub async fn eligible_user(&mut self, name: &str, login: &str) -> Result<()> {
        let admin = "/api/v1/admin";
        self.call(
            Method::PUT,
            &format!("{admin}/roles/agent"),
            Some(json!({"permissions": ["record_screen"]})),
        )
        .await?;
        self.call(
            Method::POST,
            &format!("{admin}/users"),
            Some(json!({"name": name, "windows_login": login, "roles": ["agent"]})),
        )
        .await?;
        Ok(())
    }

    /// A new single-use enrollment token, in the compact form
    /// `deskrec-agent enroll` and `deskrec-tray --enroll` take.
    pub async fn enrollment_token(&mut self) -> Result<String> {
        let t = self
            .call(Method::POST, "/api/v1/admin/enrollment-tokens", None)
            .await?;
        Ok(t["enrollment_token"]
            .as_str()
            .context("no enrollment_token")?
            .to_owned())
    }

    async fn seed(&mut self, n: usize, public_key_pem: &str) -> Result<Vec<SeededDevice>> {
        let admin = "/api/v1/admin";
        self.call(
            Method::PUT,
            &format!("{admin}/roles/agent"),
            Some(json!({"permissions": ["record_screen"]})),
        )
        .await?;
        let users: Vec<_> = (0..n)
            .map(|i| {
                json!({"name": format!("Agent {i}"), "windows_login": login(i), "roles": ["agent"],
                       "teams": [search::team(i)]})
            })
            .collect();
        self.call(
            Method::POST,
            &format!("{admin}/users/import"),
            Some(json!(users)),
        )
        .await?;
        let mut devices = Vec::with_capacity(n);
        for i in 0..n {
            let t = self
                .call(Method::POST, &format!("{admin}/enrollment-tokens"), None)
                .await?;
            let body = json!({
                "token": t["token"],
                "public_key_pem": public_key_pem,
                "host": format!("BENCH-PC-{i:04}"),
            });
            let resp = self
                .conn
                .json(Method::POST, "/api/v1/enroll", "", Some(&body))
                .await?;
            ensure!(resp.status == 200, "enroll: HTTP {}", resp.status);
            let e = resp.json()?;
            devices.push(SeededDevice {
                device_id: e["device_id"].as_str().context("device_id")?.to_owned(),
                credential: e["credential"].as_str().context("credential")?.to_owned(),
                login: login(i),
            });
        }
        Ok(devices)
    }

    /// The searching users: the supervisor of the first team and an
    /// administrator, with [`search::PASSWORD`].
    async fn supervisors(&mut self) -> Result<()> {
        let admin = "/api/v1/admin";
        for (role, permissions) in [
            ("supervisor", json!(["view_recordings"])),
            ("administrator", json!(["view_recordings", "admin"])),
        ] {
            self.call(
                Method::PUT,
                &format!("{admin}/roles/{role}"),
                Some(json!({ "permissions": permissions })),
            )
            .await?;
        }
        for (name, user, role, teams) in [
            (
                "Supervisor",
                search::SUPERVISOR,
                "supervisor",
                json!([search::team(0)]),
            ),
            (
                "Administrator",
                search::ADMINISTRATOR,
                "administrator",
                json!([]),
            ),
        ] {
            let u = self
                .call(
                    Method::POST,
                    &format!("{admin}/users"),
                    Some(json!({"name": name, "windows_login": user, "roles": [role], "teams": teams})),
                )
                .await?;
            self.call(
                Method::PUT,
                &format!("{admin}/users/{}/password", u["id"]),
                Some(json!({ "password": search::PASSWORD })),
            )
            .await?;
        }
        Ok(())
    }

    async fn import_contact(&mut self, n: usize, agent: usize) -> Result<()> {
        let (start, end) = contact_times(n);
        let body = json!({"contacts": [{
            "contact_id": format!("c{n}"), "windows_login": login(agent), "start": start, "end": end,
        }]});
        let r = self
            .call(Method::POST, "/api/v1/admin/contacts", Some(body))
            .await?;
        ensure!(
            r["deliveries"] == 1,
            "contact c{n} was queued {} times",
            r["deliveries"]
        );
        Ok(())
    }
}

/// The `q` quantile (0..=1) of `samples`, nearest rank; NaN when empty.
fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentile_is_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(super::percentile(&s, 0.5), 50.0);
        assert_eq!(super::percentile(&s, 0.99), 99.0);
        assert_eq!(super::percentile(&s, 1.0), 100.0);
        assert!(super::percentile(&[], 0.5).is_nan());
    }
}
