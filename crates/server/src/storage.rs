//! Where verified recordings live.
//!
//! The rest of the server names a recording by a *storage key* (kept in the
//! `recordings` table) and never by a path, so the bytes can move to object
//! storage (S3, Azure Blob) by implementing [`RecordingStore`] for it: the
//! trait asks only for what such stores offer — put a whole object, read
//! it, delete it. [`LocalStore`] keeps them in a directory, by default
//! `data_dir/recordings/`.
//!
//! A store never exposes a half-written object under its final key: the
//! upload path verifies a recording, puts it, and only then commits the
//! database row that points at it. If the commit fails the caller deletes
//! the key again; a crash in between leaves an unreferenced object, never a
//! reference to a missing or partial one.

use std::fs::{self, File};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use deskrec_vault::durable;

use crate::secret::random_bytes;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key is not one the store can hold (empty, absolute, `..`, odd
    /// characters): a bug in the caller, never user input.
    #[error("invalid storage key {0:?}")]
    BadKey(String),
    /// No object has this key.
    #[error("no stored recording has key {0:?}")]
    NotFound(String),
    /// The storage failed (disk full, permissions, I/O error).
    #[error("recording storage, key {key:?}: {source}")]
    Io {
        /// The object being written, read or deleted.
        key: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A readable, seekable stored recording (players seek).
pub trait StoredReader: Read + Seek + Send {}
impl<T: Read + Seek + Send> StoredReader for T {}

/// Storage for verified recordings, keyed by an opaque string.
///
/// Methods block (disk or network I/O): call them from `spawn_blocking`.
/// Keys are relative, `/`-separated paths of `[A-Za-z0-9._-]` segments, so
/// every backend can use them as object names unchanged.
pub trait RecordingStore: Send + Sync + std::fmt::Debug {
    /// Stores the complete file at `src` under `key`, atomically: readers
    /// see the whole object or nothing. `src` is left in place (the caller
    /// removes it once the database refers to the key). Replaces an object
    /// with the same key. Returns the stored size in bytes.
    fn put(&self, key: &str, src: &Path) -> Result<u64, StoreError>;

    /// Opens the object for reading.
    fn open(&self, key: &str) -> Result<Box<dyn StoredReader>, StoreError>;

    /// Deletes the object; deleting a missing key is not an error, so
    /// clean-ups can be retried.
    fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// Recordings as files under one directory, one file per key.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// The store rooted at `root` (created if missing).
    pub fn open(root: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(root)?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The file of `key`.
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let valid_segment = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if !key.split('/').all(valid_segment) {
            return Err(StoreError::BadKey(key.to_owned()));
        }
        Ok(self.root.join(key))
    }
}

impl RecordingStore for LocalStore {
    fn put(&self, key: &str, src: &Path) -> Result<u64, StoreError> {
        let dst = self.path(key)?;
        let io = |source| StoreError::Io {
            key: key.to_owned(),
            source,
        };
        let dir = dst.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io)?;
        // A temporary name in the target directory, then one rename: the
        // final name only ever names a complete, synced file. A hard link
        // costs nothing when `src` is on the same file system (it is, under
        // the data directory) and `src` is already synced; otherwise copy.
        let tmp = dir.join(format!(".put-{}.tmp", hex::encode(random_bytes::<8>())));
        if fs::hard_link(src, &tmp).is_err() {
            fs::copy(src, &tmp).map_err(io)?;
        }
        // Opened for writing: Windows flushes (FlushFileBuffers) only
        // through a handle with write access.
        let file = fs::OpenOptions::new().write(true).open(&tmp).map_err(io)?;
        let written = (|| {
            let len = file.metadata()?.len();
            durable::persist(file, &tmp, &dst)?;
            // New intermediate directories must reach the disk too.
            if dir != self.root {
                durable::sync_dir(&self.root)?;
            }
            Ok(len)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(io)
    }

    fn open(&self, key: &str) -> Result<Box<dyn StoredReader>, StoreError> {
        match File::open(self.path(key)?) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(key.to_owned()))
            }
            Err(source) => Err(StoreError::Io {
                key: key.to_owned(),
                source,
            }),
        }
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => durable::sync_parent(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(|source| StoreError::Io {
            key: key.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(&dir.path().join("recordings")).unwrap();
        (dir, store)
    }

    #[test]
    fn put_open_delete_round_trip_and_leave_the_source() {
        let (dir, store) = store();
        let src = dir.path().join("upload.part");
        File::create(&src)
            .unwrap()
            .write_all(b"recording bytes")
            .unwrap();
        assert_eq!(store.put("ab/rec-1.dskr", &src).unwrap(), 15);
        assert!(src.exists(), "the caller removes the source");
        let mut back = String::new();
        store
            .open("ab/rec-1.dskr")
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, "recording bytes");
        // No temporary file is left next to it.
        let names: Vec<_> = fs::read_dir(dir.path().join("recordings/ab"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["rec-1.dskr"]);
        store.delete("ab/rec-1.dskr").unwrap();
        store.delete("ab/rec-1.dskr").unwrap();
        assert!(matches!(
            store.open("ab/rec-1.dskr"),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn keys_cannot_leave_the_root() {
        let (dir, store) = store();
        let src = dir.path().join("x");
        File::create(&src).unwrap();
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a\\b",
            "a/./b",
        ] {
            assert!(
                matches!(store.put(key, &src), Err(StoreError::BadKey(_))),
                "{key:?} must be refused"
            );
        }
    }
}
