//! Upload ingest: one real recording through tus, against `cp`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use deskrec_client::{HttpConnection, Method, RteSocket, ServerAddress};
use deskrec_protocol::{AgentMessage, Hello, PROTOCOL_VERSION, ServerMessage};
use deskrec_vault::{PrivateKey, PublicKey, SpliceRequest, TimeRange};
use serde_json::json;

use super::{Admin, SeededDevice};
use crate::synth::{self, RandomPayload};

/// Segments the recording is spliced from (10 minutes each).
const SEGMENTS: usize = 2;

/// What the ingest run measured.
pub struct Ingest {
    /// Recording size.
    pub bytes: u64,
    /// Create + upload + verification + storage.
    pub upload: Duration,
    /// `cp` of the same file.
    pub copy: Duration,
    /// `cp` then `sync` of the copy: durable, as the server's storage is.
    pub durable_copy: Duration,
}

impl Ingest {
    /// Upload time over copy time.
    pub fn ratio(&self) -> f64 {
        self.upload.as_secs_f64() / self.copy.as_secs_f64()
    }

    /// Upload throughput, MB/s.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.upload.as_secs_f64()
    }

    /// Upload time over durable copy time.
    pub fn durable_ratio(&self) -> f64 {
        self.upload.as_secs_f64() / self.durable_copy.as_secs_f64()
    }

    /// `cp` throughput, MB/s.
    pub fn copy_mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.copy.as_secs_f64()
    }
}

/// Splices a busy 18-minute contact recorded by `device`, imports the
/// contact, uploads the recording in one PATCH and times it, then times
/// `cp` of the same file.
pub async fn run(
    work: &Path,
    addr: &ServerAddress,
    admin: &mut Admin,
    device: &SeededDevice,
    device_key: &PrivateKey,
) -> Result<Ingest> {
    let server_key = server_key(addr, device).await?;
    let dir = work.join("ingest");
    std::fs::create_dir_all(&dir)?;
    let mut payload = RandomPayload::new();
    let segments = (0..SEGMENTS)
        .map(|k| {
            let path = dir.join(format!("seg-{k}.dsk"));
            synth::write_segment(&path, k, &device.device_id, &server_key, &mut payload)?;
            Ok(path)
        })
        .collect::<Result<Vec<_>>>()?;
    let minute = 60_000_000;
    let range = TimeRange::new(
        synth::T0 + minute,
        synth::T0 + (SEGMENTS as i64 * 10 - 1) * minute,
    );
    let recording = dir.join("recording.dskr");
    let req = SpliceRequest {
        contact_id: "ingest".into(),
        agent: device.login.clone(),
        requested: range,
        segments,
        clock_offset: 0,
    };
    let spliced = deskrec_vault::splice(&req, device_key, &recording)?;
    let at = deskrec_vault::utc::rfc3339;
    admin
        .call(
            Method::POST,
            "/api/v1/admin/contacts",
            Some(
                json!({"contacts": [{"contact_id": "ingest", "windows_login": device.login,
                "start": at(range.start), "end": at(range.end)}]}),
            ),
        )
        .await?;
    let bytes = std::fs::read(&recording)?;
    ensure!(bytes.len() as u64 == spliced.bytes);

    let started = Instant::now();
    upload(addr, &device.credential, "ingest", bytes).await?;
    let upload = started.elapsed();

    let copy = timed_copy(&recording, &dir.join("copy.dskr"), false)?;
    let durable_copy = timed_copy(&recording, &dir.join("durable-copy.dskr"), true)?;
    Ok(Ingest {
        bytes: spliced.bytes,
        upload,
        copy,
        durable_copy,
    })
}

/// Times `cp FROM TO`, and with `durable` also `sync TO` (an fsync of the
/// copy, as the server does for what it stores).
fn timed_copy(from: &Path, to: &Path, durable: bool) -> Result<Duration> {
    let started = Instant::now();
    ensure!(
        Command::new("cp").arg(from).arg(to).status()?.success(),
        "cp failed"
    );
    if durable {
        ensure!(
            Command::new("sync").arg(to).status()?.success(),
            "sync failed"
        );
    }
    Ok(started.elapsed())
}

/// The server's recording key, from the policy a Hello gets.
pub(crate) async fn server_key(addr: &ServerAddress, device: &SeededDevice) -> Result<PublicKey> {
    let mut rte = RteSocket::connect(addr, &device.credential).await?;
    rte.send(&AgentMessage::Hello(Hello {
        version: PROTOCOL_VERSION,
        device_id: device.device_id.clone(),
        windows_login: device.login.clone(),
        host: "bench".into(),
        agent_version: "bench".into(),
        last_contact_cursor: None,
    }))
    .await?;
    loop {
        match rte
            .recv()
            .await?
            .context("the server closed the RTE socket")?
        {
            ServerMessage::Policy(p) => return Ok(PublicKey::from_pem(&p.server_public_key_pem)?),
            ServerMessage::Error(e) => bail!("RTE error {}: {}", e.code, e.message),
            _ => continue,
        }
    }
}

/// A tus 1.0 creation then one PATCH with every byte; done when the server
/// answers the PATCH, which it does after verifying and storing.
async fn upload(
    addr: &ServerAddress,
    credential: &str,
    contact: &str,
    bytes: Vec<u8>,
) -> Result<()> {
    let mut http = HttpConnection::connect(addr).await?;
    let auth = format!("Bearer {credential}");
    let length = bytes.len().to_string();
    let metadata = format!(
        "contact_id {}",
        base64::engine::general_purpose::STANDARD.encode(contact)
    );
    let created = http
        .request(
            Method::POST,
            "/api/v1/uploads",
            &[
                ("authorization", &auth),
                ("tus-resumable", "1.0.0"),
                ("upload-length", &length),
                ("upload-metadata", &metadata),
            ],
            Vec::new(),
        )
        .await?;
    ensure!(
        created.status == 201,
        "tus create: HTTP {} {:?}",
        created.status,
        created.body
    );
    let location = created
        .header("location")
        .context("tus create answered no Location")?
        .to_owned();
    let path = location
        .strip_prefix(&format!("https://{}", addr.authority()))
        .unwrap_or(&location)
        .to_owned();
    let done = http
        .request(
            Method::PATCH,
            &path,
            &[
                ("authorization", &auth),
                ("tus-resumable", "1.0.0"),
                ("upload-offset", "0"),
                ("content-type", "application/offset+octet-stream"),
            ],
            bytes,
        )
        .await?;
    ensure!(
        done.status == 204,
        "tus PATCH: HTTP {} {}",
        done.status,
        String::from_utf8_lossy(&done.body)
    );
    Ok(())
}
