//! `deskrec`: the administrator's command.
//!
//! Keys (`keygen`) and vault files (`vault inspect|verify|splice|export`).
//! Every command prints JSON on success so scripts can use it, and an error
//! that says what to do on failure.

mod record;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use deskrec_vault::{
    DeviceIdentity, Keyring, PrivateKey, PublicKey, ScanDepth, SpliceRequest, TimeRange,
    export_mp4, scan_recording, scan_segment, splice, verify_recording,
};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "deskrec",
    version,
    about = "Deskrec administration: keys and recording files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an RSA-2048 key pair: KEY.key (private, mode 0600) and KEY.pub.
    Keygen {
        /// Path of the key without extension, e.g. /etc/deskrec/server.
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Record the screen (or test pictures) into encrypted segments.
    Record {
        /// A TOML configuration file (see docs/operations.md); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Directory for the segments.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The server's public key (segments are encrypted for it).
        #[arg(long)]
        server_pub: Option<PathBuf>,
        /// This device's id.
        #[arg(long)]
        device_id: Option<String>,
        /// How long to record, in seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Frames per second.
        #[arg(long)]
        fps: Option<f32>,
        /// Length of a segment, in seconds.
        #[arg(long)]
        segment_seconds: Option<f64>,
        /// Longest time between keyframes, in seconds (at most a segment).
        #[arg(long)]
        gop_seconds: Option<f64>,
        /// Where pictures come from.
        #[arg(long, value_enum)]
        source: Option<record::SourceKind>,
        /// Size of synthetic pictures, WIDTHxHEIGHT.
        #[arg(long, default_value = "1280x720")]
        size: String,
        /// Pause recording from FROM to UNTIL seconds after the start, for
        /// REASON, as an agent's pause would (repeatable):
        /// `--pause 4.5..5.7=card_payment`.
        #[arg(long = "pause", value_name = "FROM..UNTIL=REASON")]
        pauses: Vec<record::TimedPause>,
    },
    /// Segment and recording files.
    #[command(subcommand)]
    Vault(Vault),
}

#[derive(Subcommand)]
enum Vault {
    /// Describe a segment or recording as JSON (no keys needed).
    Inspect {
        /// The file.
        file: PathBuf,
    },
    /// Verify a recording: signature, every MAC, continuity.
    Verify {
        #[command(flatten)]
        keys: VerifyKeys,
        /// The recording.
        file: PathBuf,
    },
    /// Cut a recording for a contact from segments, without decrypting.
    Splice {
        /// The device's private signing key.
        #[arg(long)]
        device_key: PathBuf,
        /// The contact's id.
        #[arg(long)]
        contact: String,
        /// The agent's login.
        #[arg(long, default_value = "")]
        agent: String,
        /// Start, as UTC microseconds or RFC 3339 UTC (2026-11-24T09:00:00Z).
        #[arg(long)]
        start: String,
        /// End, in the same forms.
        #[arg(long)]
        end: String,
        /// Where to write the recording.
        #[arg(long, short)]
        out: PathBuf,
        /// Segment files (those outside the range are ignored).
        #[arg(required = true)]
        segments: Vec<PathBuf>,
    },
    /// Verify a recording and export it to MP4.
    Export {
        #[command(flatten)]
        keys: VerifyKeys,
        /// The recording.
        file: PathBuf,
        /// The MP4 to write.
        #[arg(long, short)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct VerifyKeys {
    /// Server private key(s); give older keys too after a rotation.
    #[arg(long = "server-key", required = true)]
    server_keys: Vec<PathBuf>,
    /// The public key the device registered.
    #[arg(long)]
    device_pub: PathBuf,
    /// The device's id (defaults to the one the manifest names).
    #[arg(long)]
    device: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Segment,
    Recording,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("deskrec: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let out = match cli.command {
        Command::Keygen { out, force } => keygen(&out, force)?,
        Command::Record {
            config,
            out,
            server_pub,
            device_id,
            seconds,
            fps,
            segment_seconds,
            gop_seconds,
            source,
            size,
            pauses,
        } => {
            let file = match &config {
                Some(path) => record::read_config(path)?,
                None => record::RecordFile {
                    server_public_key: None,
                    source: None,
                    recorder: Default::default(),
                },
            };
            let mut recorder = file.recorder;
            recorder.segment_dir = out.unwrap_or(recorder.segment_dir);
            recorder.device_id = device_id.unwrap_or(recorder.device_id);
            recorder.fps = fps.unwrap_or(recorder.fps);
            recorder.segment_seconds = segment_seconds.unwrap_or(recorder.segment_seconds);
            recorder.gop_seconds = gop_seconds.unwrap_or(recorder.gop_seconds);
            let size = size
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                .with_context(|| format!("--size {size:?} is not WIDTHxHEIGHT"))?;
            record::record(record::RecordSettings {
                recorder,
                server_pub: server_pub
                    .or(file.server_public_key)
                    .context("no server public key: pass --server-pub or set server_public_key")?,
                source: source.or(file.source).unwrap_or(record::SourceKind::Screen),
                seconds,
                size,
                pauses,
            })?
        }
        Command::Vault(Vault::Inspect { file }) => inspect(&file)?,
        Command::Vault(Vault::Verify { keys, file }) => {
            let (ring, device_pub, device) = load_verify_keys(&keys, &file)?;
            let who = DeviceIdentity {
                id: &device,
                key: &device_pub,
            };
            serde_json::to_value(verify_recording(&file, &ring, who)?)?
        }
        Command::Vault(Vault::Splice {
            device_key,
            contact,
            agent,
            start,
            end,
            out,
            segments,
        }) => {
            let key = PrivateKey::load(&device_key)?;
            let requested = TimeRange::new(parse_time(&start)?, parse_time(&end)?);
            let req = SpliceRequest {
                contact_id: contact,
                agent,
                requested,
                segments,
                clock_offset: 0,
            };
            create_parent(&out)?;
            let done = splice(&req, &key, &out)?;
            json!({ "recording": out, "bytes": done.bytes, "chunks": done.chunks, "manifest": done.manifest })
        }
        Command::Vault(Vault::Export { keys, file, out }) => {
            let (ring, device_pub, device) = load_verify_keys(&keys, &file)?;
            let who = DeviceIdentity {
                id: &device,
                key: &device_pub,
            };
            create_parent(&out)?;
            let done = export_mp4(&file, &ring, who, &out)?;
            json!({ "mp4": out, "export": done })
        }
    };
    print_json(&out)
}

/// Prints the result; a closed pipe (`deskrec ... | head`) is not an error.
fn print_json(value: &serde_json::Value) -> Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value)?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn keygen(out: &Path, force: bool) -> Result<serde_json::Value> {
    let (private, public) = (out.with_extension("key"), out.with_extension("pub"));
    for p in [&private, &public] {
        if p.exists() && !force {
            bail!(
                "{} exists; pass --force to replace it (old recordings need the old key)",
                p.display()
            );
        }
    }
    create_parent(out)?;
    let key = PrivateKey::generate()?;
    key.save(&private)?;
    key.public().save(&public)?;
    Ok(json!({ "private": private, "public": public, "key_id": key.id() }))
}

/// Creates the directory a file is to be written in.
fn create_parent(file: &Path) -> Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

fn inspect(file: &Path) -> Result<serde_json::Value> {
    let mut magic = [0u8; 8];
    use std::io::Read;
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut magic))
        .with_context(|| format!("reading {}", file.display()))?;
    let kind = match &magic[4..8] {
        b"SEGM" => Kind::Segment,
        b"RECD" => Kind::Recording,
        _ => bail!("{} is not a Deskrec segment or recording", file.display()),
    };
    Ok(match kind {
        Kind::Segment => {
            json!({ "kind": "segment", "segment": scan_segment(file, ScanDepth::Full)? })
        }
        Kind::Recording => {
            let scan = scan_recording(file)?;
            json!({ "kind": "recording", "manifest": scan.manifest.manifest, "parts": scan.parts })
        }
    })
}

fn load_verify_keys(keys: &VerifyKeys, file: &Path) -> Result<(Keyring, PublicKey, String)> {
    let mut ring = Keyring::new();
    for p in &keys.server_keys {
        ring.add(PrivateKey::load(p)?);
    }
    let device_pub = PublicKey::load(&keys.device_pub)?;
    let device = match &keys.device {
        Some(d) => d.clone(),
        None => scan_recording(file)?.manifest.manifest.device_id,
    };
    Ok((ring, device_pub, device))
}

/// UTC microseconds, or an RFC 3339 UTC time (`2026-11-24T09:00:00Z`).
fn parse_time(s: &str) -> Result<i64> {
    if let Ok(us) = s.parse::<i64>() {
        return Ok(us);
    }
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .with_context(|| format!("{s:?} is neither UTC microseconds nor an RFC 3339 time"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)?.as_micros() as i64)
}
