//! Durable file writes: the crash-safety rules in one place.
//!
//! Every file Deskrec must not lose or half-write goes through here: the
//! vault's segments and recordings, the agent's secrets, the server's keys,
//! secrets and stored recordings. The rule is the usual one: write a
//! temporary sibling, fsync it, rename it over the final name, then fsync
//! the directory, because the rename itself is only durable once the
//! directory's entry has reached the disk. A failure at any step is an
//! error for the caller: a write that "succeeded" but vanishes at the next
//! power cut is worse than one that says it failed.
//!
//! Errors are plain [`std::io::Error`]s; each caller adds the path and what
//! to do in its own error type.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file written under a temporary name and renamed into place on
/// [`commit`](AtomicFile::commit), so readers see either nothing or the
/// whole file, never a half-written one. Dropped uncommitted, it removes
/// the temporary file.
pub struct AtomicFile {
    /// `None` once committed.
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Creates `dest`'s temporary sibling (`.NAME.partial`), with `mode` on
    /// Unix (ignored elsewhere).
    ///
    /// # Errors
    ///
    /// When `dest` has no file name or the temporary file cannot be created.
    pub fn create(dest: &Path, mode: u32) -> io::Result<Self> {
        let tmp = partial_path(dest)?;
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        set_mode(&mut opts, mode);
        let file = opts.open(&tmp)?;
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

    /// Fsyncs the file, renames it into place and fsyncs the directory.
    ///
    /// # Errors
    ///
    /// When any of the three fails; the temporary file is then removed.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("the file is open until commit");
        let done = persist(file, &self.tmp, &self.dest);
        if done.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        done
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

/// Writes `bytes` to `path` atomically and durably, readable and writable
/// by its owner only (mode 0600 on Unix): for keys, secrets and
/// credentials.
///
/// # Errors
///
/// As [`AtomicFile::create`] and [`AtomicFile::commit`].
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(path, 0o600)?;
    f.file().write_all(bytes)?;
    f.commit()
}

/// Makes `tmp`, already written through `file`, the durable file `dest`:
/// fsyncs it, renames it over `dest` and fsyncs `dest`'s directory. For a
/// temporary file made some other way than [`AtomicFile`] (a hard link, a
/// copy); it must be in `dest`'s directory.
///
/// # Errors
///
/// When a step fails; `tmp` is left for the caller to remove.
pub fn persist(file: File, tmp: &Path, dest: &Path) -> io::Result<()> {
    file.sync_all()?;
    // Closed before the rename: Windows cannot rename an open file.
    drop(file);
    std::fs::rename(tmp, dest)?;
    sync_parent(dest)
}

/// Fsyncs the directory holding `path`, so a rename, a new or a removed
/// file there survives a power cut.
///
/// # Errors
///
/// When the directory cannot be opened or synced.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    sync_dir(dir)
}

/// Fsyncs the directory `dir` itself. A no-op on Windows, which cannot open
/// a directory as a file (NTFS journals its renames).
///
/// # Errors
///
/// When the directory cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(any(test, feature = "test-utils"))]
    if testing::dir_sync_fails() {
        return Err(io::Error::other(format!(
            "syncing {} failed (injected by durable::testing)",
            dir.display()
        )));
    }
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// `.NAME.partial` beside `dest`.
fn partial_path(dest: &Path) -> io::Result<PathBuf> {
    let name = dest.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", dest.display()),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".partial");
    Ok(dest.with_file_name(tmp_name))
}

#[cfg(unix)]
fn set_mode(opts: &mut OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    opts.mode(mode);
}

#[cfg(not(unix))]
fn set_mode(_opts: &mut OpenOptions, _mode: u32) {}

/// Faults for tests: a directory fsync that fails, which no real file
/// system here can be made to do on demand. Per thread, so tests running
/// in parallel do not see each other's faults.
#[cfg(any(test, feature = "test-utils"))]
pub mod testing {
    use std::cell::Cell;

    thread_local! {
        static FAIL_DIR_SYNC: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs `f` with every directory fsync on this thread failing.
    pub fn with_failing_dir_sync<R>(f: impl FnOnce() -> R) -> R {
        FAIL_DIR_SYNC.with(|c| c.set(true));
        let result = f();
        FAIL_DIR_SYNC.with(|c| c.set(false));
        result
    }

    pub(super) fn dir_sync_fails() -> bool {
        FAIL_DIR_SYNC.with(Cell::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_write_replaces_the_file_whole_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("key.pem");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["key.pem"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_failed_directory_sync_is_an_error_not_a_success() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("key.pem");
        let written = testing::with_failing_dir_sync(|| write_private(&path, b"one"));
        assert!(written.is_err(), "{written:?}");
        assert!(write_private(&path, b"one").is_ok(), "the fault is over");
    }

    #[test]
    fn an_uncommitted_file_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.dskr");
        let mut f = AtomicFile::create(&path, 0o640).unwrap();
        f.file().write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
