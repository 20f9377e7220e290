//! The evidence download: a contact's screen recording with its call
//! audio muxed in, one MP4 (H.264 video as exported, AAC audio) that
//! players and ffprobe read as one video and one audio stream.
//!
//! The audio is re-encoded: ACDs export mu-law WAV, MP3 or Opus, and MP4
//! players expect AAC. There is no well-kept AAC (or Opus) encoder in
//! Rust, so the server runs `ffmpeg` ([`MuxConfig::ffmpeg`]), the tool
//! every media pipeline has; the video is copied, never re-encoded. A
//! server without ffmpeg still serves the video-only download, and the
//! muxed one answers 503 naming the setting.
//!
//! The audio is aligned to the recording: it starts at the contact's
//! start, the video at the recording's trim start, so the audio is cut
//! from `trim_start - contact start` for the recording's duration. The
//! result is cached beside the video export, named after both inputs'
//! digests, and bounded like it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where ffmpeg is.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MuxConfig {
    /// The ffmpeg binary: a path, or a name looked up on `PATH`. Empty:
    /// no muxed downloads.
    pub ffmpeg: PathBuf,
}

impl Default for MuxConfig {
    fn default() -> Self {
        Self {
            ffmpeg: PathBuf::from("ffmpeg"),
        }
    }
}

/// Why a mux failed.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// ffmpeg is not configured or does not run.
    #[error("muxing needs ffmpeg ([mux] ffmpeg in the configuration): {0}")]
    Unavailable(String),
    /// ffmpeg ran and failed.
    #[error("ffmpeg failed to mux: {0}")]
    Failed(String),
}

/// Longest a mux may take: ffmpeg copies the video and encodes the audio,
/// seconds for an hour-long contact.
const MUX_TIMEOUT: Duration = Duration::from_secs(600);

/// What to mux: the exported video, the decrypted audio, and where the
/// audio starts and how long the result lasts, µs.
pub struct MuxJob<'a> {
    /// The video export (MP4).
    pub video: &'a Path,
    /// The call audio as imported.
    pub audio: &'a Path,
    /// Audio to skip: the recording starts this long after the call.
    pub audio_offset_us: i64,
    /// The recording's duration.
    pub duration_us: i64,
    /// Where the MP4 goes (written under a temporary name, then renamed).
    pub out: &'a Path,
}

/// Muxes `job` with ffmpeg (blocking; call from `spawn_blocking`).
pub fn mux(config: &MuxConfig, job: &MuxJob<'_>) -> Result<(), MuxError> {
    if config.ffmpeg.as_os_str().is_empty() {
        return Err(MuxError::Unavailable("[mux] ffmpeg is empty".into()));
    }
    let tmp = part_path(job.out);
    let seconds = |us: i64| format!("{:.6}", us.max(0) as f64 / 1e6);
    let mut child = std::process::Command::new(&config.ffmpeg)
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(job.video)
        .args(["-ss", &seconds(job.audio_offset_us), "-i"])
        .arg(job.audio)
        .args(["-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"])
        .args([
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-t",
            &seconds(job.duration_us),
        ])
        .args(["-movflags", "+faststart", "-f", "mp4"])
        .arg(&tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| MuxError::Unavailable(format!("{}: {e}", config.ffmpeg.display())))?;
    let deadline = std::time::Instant::now() + MUX_TIMEOUT;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| MuxError::Failed(e.to_string()))?
        {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&tmp);
            return Err(MuxError::Failed(format!(
                "still running after {MUX_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let _ = std::fs::remove_file(&tmp);
        return Err(MuxError::Failed(format!("{status}: {}", err.trim())));
    }
    std::fs::rename(&tmp, job.out).map_err(|e| MuxError::Failed(e.to_string()))
}

/// The temporary name of `out` while ffmpeg writes it.
fn part_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!(".{name}.part"))
}

/// Why the muxed download cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The video could not be exported.
    #[error(transparent)]
    Video(#[from] crate::playback::PlaybackError),
    /// The audio could not be opened.
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
    /// The mux failed.
    #[error(transparent)]
    Mux(#[from] MuxError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// The download of `contact` in `scope`: its video with the call audio
/// muxed in when it has audio (cached), else the video export alone.
pub async fn download(
    state: &crate::state::AppState,
    scope: crate::scope::Scope,
    contact: &str,
) -> Result<PathBuf, DownloadError> {
    let video = crate::playback::cached_mp4(state, scope, contact).await?;
    let c = contact.to_owned();
    let detail = state
        .db()
        .call(move |conn| crate::web::queries::contact(conn, scope, &c))
        .await?;
    let Some(detail) = detail else {
        return Err(crate::playback::PlaybackError::NoContact(contact.to_owned()).into());
    };
    let (Some(rec), Some(audio)) = (detail.recording, detail.audio) else {
        return Ok(video);
    };
    let out = state
        .data_dir()
        .join(crate::playback::CACHE_DIR)
        .join(format!(
            "mux-v1-{}-{}.mp4",
            rec.sha256.to_ascii_lowercase(),
            audio.sha256
        ));
    state
        .exports()
        .once(&out, || async {
            let (audio_path, _) = crate::audio::cached(state, scope, contact).await?;
            let config = state.mux().clone();
            let target = out.clone();
            let offset = rec.trim_start - detail.contact.start_at;
            let duration = rec.trim_end - rec.trim_start;
            let started = std::time::Instant::now();
            tokio::task::spawn_blocking(move || {
                mux(
                    &config,
                    &MuxJob {
                        video: &video,
                        audio: &audio_path,
                        audio_offset_us: offset,
                        duration_us: duration,
                        out: &target,
                    },
                )
            })
            .await
            .map_err(|e| MuxError::Failed(e.to_string()))??;
            tracing::info!(
                contact,
                ms = started.elapsed().as_millis() as u64,
                "download muxed"
            );
            Ok::<_, DownloadError>(())
        })
        .await?;
    Ok(out)
}
