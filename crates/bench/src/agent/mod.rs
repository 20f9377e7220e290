//! The `agent` benchmark: a working day's backlog uploaded by the release
//! `deskrec-agent` to the release `deskrec-server`, over loopback TLS.
//!
//! 1. Starts the server, seeds an `agent` role and one user, and enrolls a
//!    real agent data directory (`deskrec-agent enroll`).
//! 2. Says Hello once as that device and login (the agent was online
//!    before: the server knows the login is on this PC) and takes the
//!    server's recording key from the policy.
//! 3. Writes 8 hours of busy-screen segments (10 minutes each, encrypted
//!    for the server's key, the device's id in their headers) into the
//!    agent's `segments/` directory, named as the recorder names them: what
//!    the agent recorded while the server was unreachable. The agent
//!    indexes them itself when it splices.
//! 4. Imports 100 contacts of 2-8 minutes spread over those 8 hours.
//! 5. Starts `deskrec-agent run --source synthetic` (it records while it
//!    uploads) and times from its start (the reconnect) until the server
//!    lists all 100 contacts `uploaded`, sampling the agent's RSS from
//!    `/proc`.
//! 6. Reference: `cp -r` of the recordings the server stored (exactly the
//!    bytes uploaded), in the same run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use deskrec_client::Method;
use deskrec_vault::Micros;
use serde_json::json;

use crate::process::{Process, ServerProcess, enroll_agent, release_binary};
use crate::report::{Goal, Report};
use crate::server::{Admin, SeededDevice, login, server_key};
use crate::synth::{self, RandomPayload, Rng};
use crate::timing;

/// Hours of backlog.
pub const HOURS: usize = 8;
/// Contacts in the backlog.
pub const CONTACTS: usize = 100;
/// Longest wait for the backlog to upload.
const TIMEOUT: Duration = Duration::from_secs(1800);
/// Runs of the `cp` reference (the median is kept).
const COPIES: usize = 3;
/// RSS sampling period.
const SAMPLE: Duration = Duration::from_millis(100);
/// Free disk space the run wants before it starts: the segments (2.6 GiB),
/// the recordings the server stores (2.4 GiB) and the agent's default
/// disk floor (2 GiB; below it, retention deletes segments).
const FREE_NEEDED: u64 = 7 << 30;

/// Runs the benchmark with scratch files under `work`.
pub fn run(work: &Path) -> Result<Report> {
    let free = free_bytes(work)?;
    ensure!(
        free >= FREE_NEEDED,
        "the agent benchmark needs {} GB free next to {}, there are {}",
        FREE_NEEDED >> 30,
        work.display(),
        free as f64 / 1e9
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(work))
}

async fn run_async(work: &Path) -> Result<Report> {
    let server_dir = work.join("server");
    let server = ServerProcess::start(&server_dir)?;
    let addr = server.address.clone();
    let mut admin = Admin::connect(&addr, server.admin_token.clone()).await?;
    let login = login(0);
    admin.eligible_user("Bench Agent", &login).await?;
    let token = admin.enrollment_token().await?;
    let agent_dir = work.join("agent");
    let agent_bin = release_binary("deskrec-agent")?;
    let identity = enroll_agent(&token, &agent_dir, "BENCH-PC")?;
    let device = SeededDevice {
        device_id: identity["device_id"]
            .as_str()
            .context("no device_id")?
            .to_owned(),
        credential: std::fs::read_to_string(agent_dir.join("secrets/credential"))?
            .trim()
            .to_owned(),
        login: login.clone(),
    };
    let recording_key = server_key(&addr, &device).await?;

    // The backlog ends a minute ago, so every contact's time has passed.
    let end = deskrec_vault::now_micros() / 1_000_000 * 1_000_000 - 60_000_000;
    let start = end - HOURS as Micros * 3_600_000_000;
    // The PC recorded that day offline, so it enrolled before it: the
    // server relays a login's contacts only from a device's enrollment on.
    rusqlite::Connection::open(server_dir.join("deskrec.db"))?.execute(
        "UPDATE devices SET enrolled_at = ?1 WHERE id = ?2",
        rusqlite::params![start - 3_600_000_000, device.device_id],
    )?;
    let segments_dir = agent_dir.join("segments");
    let written = Instant::now();
    let segment_bytes = {
        let (dir, id) = (segments_dir.clone(), device.device_id.clone());
        tokio::task::spawn_blocking(move || write_backlog(&dir, start, end, &id, &recording_key))
            .await??
    };
    println!(
        "wrote {HOURS} h of segments ({:.0} MB) in {:.0} s",
        segment_bytes as f64 / 1e6,
        written.elapsed().as_secs_f64()
    );
    // The server closes idle keep-alive connections: a new one.
    let mut admin = Admin::connect(&addr, server.admin_token.clone()).await?;
    let contacts = plan_contacts(start, end);
    let at = deskrec_vault::utc::rfc3339;
    let body = contacts
        .iter()
        .enumerate()
        .map(|(n, &(s, e))| {
            Ok(
                json!({"contact_id": format!("day-{n:03}"), "windows_login": login,
                "start": at(s), "end": at(e)}),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let r = admin
        .call(
            Method::POST,
            "/api/v1/admin/contacts",
            Some(json!({ "contacts": body })),
        )
        .await?;
    ensure!(
        r["deliveries"] == CONTACTS,
        "{CONTACTS} contacts were queued {} times",
        r["deliveries"]
    );
    let contact_minutes: f64 = contacts.iter().map(|(s, e)| (e - s) as f64 / 6e7).sum();

    let started = Instant::now();
    let mut agent = Process::spawn(
        Command::new(&agent_bin)
            .arg("run")
            .arg("--data-dir")
            .arg(&agent_dir)
            .args(["--login", &login, "--source", "synthetic"])
            .env("RUST_LOG", "warn")
            .stderr(std::fs::File::create(work.join("agent.log"))?),
    )?;
    let mut rss_peak = 0f64;
    let mut next_poll = Instant::now();
    let backlog = loop {
        if let Ok(mb) = agent.rss_mb() {
            rss_peak = rss_peak.max(mb);
        }
        if Instant::now() >= next_poll {
            next_poll += Duration::from_millis(500);
            let uploaded = count(&mut admin, &login, "uploaded").await?;
            if uploaded == CONTACTS {
                break started.elapsed();
            }
            let lost = count(&mut admin, &login, "unrecoverable").await?;
            ensure!(
                lost == 0,
                "{lost} contacts are unrecoverable (see {})",
                work.join("agent.log").display()
            );
            ensure!(
                agent.running(),
                "the agent exited (see {})",
                work.join("agent.log").display()
            );
            if started.elapsed() > TIMEOUT {
                bail!(
                    "{uploaded} of {CONTACTS} contacts uploaded after {} s",
                    TIMEOUT.as_secs()
                );
            }
        }
        tokio::time::sleep(SAMPLE).await;
    };
    println!(
        "{CONTACTS} contacts uploaded in {:.1} s",
        backlog.as_secs_f64()
    );
    let agent_hwm = agent.peak_rss_mb()?;
    agent.stop()?;
    server.stop()?;
    // The segments are done with: free their space before the copy.
    std::fs::remove_dir_all(&segments_dir)?;

    let stored = server_dir.join("recordings");
    let bytes = dir_bytes(&stored)?;
    let copy = copy_median(&stored, &work.join("copy"))?;
    let mb = bytes as f64 / 1e6;
    let mut r = Report::default();
    r.add_goal_in(
        "backlog_vs_copy",
        backlog.as_secs_f64() / copy.as_secs_f64(),
        "ratio",
        Goal::AtMost(2.0),
        "agent start (reconnect) to all contacts uploaded, over `cp -r` of the stored recordings",
    );
    r.add_goal_in(
        "agent_rss_mb",
        rss_peak,
        "MB",
        Goal::AtMost(80.0),
        format!(
            "agent RSS while recording and uploading, peak of samples every {} ms",
            SAMPLE.as_millis()
        ),
    );
    r.add(
        "agent_peak_rss_mb",
        agent_hwm,
        "MB",
        "agent VmHWM over the whole run",
    );
    r.add(
        "backlog_s",
        backlog.as_secs_f64(),
        "s",
        format!("{CONTACTS} contacts ({contact_minutes:.0} min) spliced, uploaded, verified"),
    );
    r.add(
        "copy_s",
        copy.as_secs_f64(),
        "s",
        format!("cp -r of the same bytes, median of {COPIES}"),
    );
    r.add("backlog_mb", mb, "MB", "recordings uploaded and stored");
    r.add(
        "segments_mb",
        segment_bytes as f64 / 1e6,
        "MB",
        format!("{HOURS} h of busy-screen segments on the agent"),
    );
    r.add(
        "backlog_mb_per_s",
        mb / backlog.as_secs_f64(),
        "MB/s",
        "upload, verified and stored",
    );
    r.add(
        "copy_mb_per_s",
        mb / copy.as_secs_f64(),
        "MB/s",
        "cp of the same bytes",
    );
    r.note(
        "The agent and the server share the machine's cores; the copy reads files the server \
         has just written (page cache, dirty pages flushed first) and does not fsync.",
    );
    Ok(r)
}

/// `cp -r` of `from` to `to`, [`COPIES`] times (each copy removed before
/// the next, dirty pages flushed with `sync` before each so that earlier
/// writes are not billed to it): the median.
fn copy_median(from: &Path, to: &Path) -> Result<Duration> {
    let mut runs = Vec::new();
    for _ in 0..COPIES {
        // SAFETY: sync(2) takes nothing and cannot fail.
        unsafe { libc::sync() };
        let took = timing::timed(|| {
            let status = Command::new("cp").arg("-r").arg(from).arg(to).status()?;
            ensure!(status.success(), "cp failed");
            Ok(())
        })?;
        std::fs::remove_dir_all(to)?;
        runs.push(took.as_secs_f64());
    }
    Ok(Duration::from_secs_f64(timing::median(&runs)))
}

/// Writes `[start, end)` as 10-minute segments named `<start µs>.dseg` in
/// `dir`, as the recorder names them. Returns their total size.
fn write_backlog(
    dir: &Path,
    start: Micros,
    end: Micros,
    device_id: &str,
    server: &deskrec_vault::PublicKey,
) -> Result<u64> {
    std::fs::create_dir_all(dir)?;
    let mut payload = RandomPayload::new();
    let mut paths = Vec::new();
    let mut t = start;
    while t < end {
        let path = deskrec_vault::FileKind::Segment.file_name(&t.to_string());
        let path = dir.join(path);
        synth::write_segment_at(&path, t, device_id, server, &mut payload)?;
        paths.push(path);
        t += synth::SEGMENT_US;
    }
    synth::total_len(&paths)
}

/// [`CONTACTS`] contacts of 2-8 minutes (shorter ones more common: 2 +
/// 6u² minutes, 4 on average) with 0-60 s between them, scaled to fit in
/// `[start, end)` less a minute at each end. Fixed seed.
fn plan_contacts(start: Micros, end: Micros) -> Vec<(Micros, Micros)> {
    let mut rng = Rng(0x5eed_da7a_2026_0005);
    let mut unit = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let raw: Vec<(f64, f64)> = (0..CONTACTS)
        .map(|_| {
            let u = unit();
            (unit() * 60.0, (2.0 + 6.0 * u * u) * 60.0)
        })
        .collect();
    let total: f64 = raw.iter().map(|(gap, len)| gap + len).sum();
    let span = (end - start - 120_000_000) as f64 / 1e6;
    let scale = (span / total).min(1.0);
    let mut t = (start + 60_000_000) as f64 / 1e6;
    raw.into_iter()
        .map(|(gap, len)| {
            let s = t + gap * scale;
            t = s + len * scale;
            ((s * 1e6) as Micros, (t * 1e6) as Micros)
        })
        .collect()
}

/// How many of `login`'s contacts have `status` on the server.
async fn count(admin: &mut Admin, login: &str, status: &str) -> Result<usize> {
    let login = login.replace('\\', "%5C");
    let list = admin
        .call(
            Method::GET,
            &format!("/api/v1/admin/contacts?login={login}&status={status}&limit=1000"),
            None,
        )
        .await?;
    Ok(list.as_array().context("contacts list")?.len())
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Free bytes on the file system holding `path`.
fn free_bytes(path: &Path) -> Result<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: statvfs is plain data, zero is a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    ensure!(rc == 0, "statvfs {}", path.display());
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_fit_the_day_in_order() {
        let start = synth::T0;
        let end = start + HOURS as Micros * 3_600_000_000;
        let c = plan_contacts(start, end);
        assert_eq!(c.len(), CONTACTS);
        assert!(c[0].0 >= start + 60_000_000);
        assert!(c[CONTACTS - 1].1 <= end - 60_000_000);
        for w in c.windows(2) {
            assert!(w[0].0 < w[0].1 && w[0].1 <= w[1].0);
        }
        let minutes: Vec<f64> = c.iter().map(|(s, e)| (e - s) as f64 / 6e7).collect();
        assert!(minutes.iter().all(|&m| (1.5..=8.0).contains(&m)));
    }
}
