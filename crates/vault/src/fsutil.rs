//! Durable file operations: the crash-safety rules in one place.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, VaultError};

/// A file written under a temporary name and renamed into place on
/// [`commit`](AtomicFile::commit), so readers see either nothing or the
/// whole file, never a half-written one.
pub struct AtomicFile {
    /// `None` once committed.
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Creates `dest`'s temporary sibling, with `mode` on Unix.
    pub fn create(dest: &Path, mode: u32) -> Result<Self> {
        let name = dest
            .file_name()
            .ok_or_else(|| VaultError::Invalid(format!("{} has no file name", dest.display())))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".partial");
        let tmp = dest.with_file_name(tmp_name);
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        set_mode(&mut opts, mode);
        let file = opts.open(&tmp).map_err(VaultError::io(&tmp))?;
        Ok(Self {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("the file is open until commit")
    }

    /// Flushes, fsyncs, renames into place and fsyncs the directory.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("the file is open until commit");
        file.sync_all().map_err(VaultError::io(&self.tmp))?;
        // Closed before the rename: Windows cannot rename an open file.
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(VaultError::io(&self.dest))?;
        sync_dir(&self.dest)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Not committed: remove the partial file.
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a secret file atomically, readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path, 0o600)?;
    f.file().write_all(bytes).map_err(VaultError::io(path))?;
    f.commit()
}

/// Fsyncs the directory holding `path`, so a rename or a new file survives
/// a power cut. A no-op where directories cannot be opened (Windows).
pub fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(VaultError::io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(unix)]
fn set_mode(opts: &mut OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    opts.mode(mode);
}

#[cfg(not(unix))]
fn set_mode(_opts: &mut OpenOptions, _mode: u32) {}
