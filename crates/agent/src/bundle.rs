//! The diagnostics bundle IT asks for: one zip with what the Diagnostics
//! view shows (status, policy, clock, segments, audit), the queue and the
//! log files. It holds no key, credential or token: none of those is in
//! the diagnostics, and nothing logs them.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use zip::write::SimpleFileOptions;

use crate::AgentError;
use crate::view::{Diagnostics, Queue};

/// Log files larger than this are cut to their last bytes.
const MAX_LOG_BYTES: u64 = 16 << 20;

/// Writes the bundle to `out` (through a temporary file renamed into
/// place, so a half-written zip never carries the final name).
pub(crate) fn write(
    out: &Path,
    diagnostics: &Diagnostics,
    queue: &Queue,
    logs: Option<&Path>,
) -> Result<(), AgentError> {
    let partial = out.with_extension("zip.partial");
    let file = std::fs::File::create(&partial).map_err(AgentError::io(&partial))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default();
    let io = AgentError::io(out);
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        add_json(&mut zip, "diagnostics.json", diagnostics, options)?;
        add_json(&mut zip, "queue.json", queue, options)?;
        if let Some(dir) = logs {
            for entry in std::fs::read_dir(dir)?.flatten() {
                let path = entry.path();
                if !path.is_file() {
                    continue;
                }
                let name = format!("logs/{}", entry.file_name().to_string_lossy());
                zip.start_file(name, options)?;
                let mut f = std::fs::File::open(&path)?;
                let len = f.metadata()?.len();
                if len > MAX_LOG_BYTES {
                    use std::io::Seek;
                    f.seek(std::io::SeekFrom::Start(len - MAX_LOG_BYTES))?;
                }
                std::io::copy(&mut f, &mut zip)?;
            }
        }
        zip.finish()?.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(io(std::io::Error::other(e.to_string())));
    }
    std::fs::rename(&partial, out).map_err(AgentError::io(out))
}

fn add_json<W: Write + std::io::Seek>(
    zip: &mut zip::ZipWriter<W>,
    name: &str,
    value: &impl Serialize,
    options: SimpleFileOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    zip.start_file(name, options)?;
    serde_json::to_writer_pretty(&mut *zip, value)?;
    Ok(())
}
