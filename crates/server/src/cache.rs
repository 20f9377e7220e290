//! Files of the playback cache made once: the video export, the opened call
//! audio and the muxed download.
//!
//! Each is expensive to make (seconds of decrypting, verifying or
//! encoding) and then read many times, and several requests often want the
//! same file at once (a `<video>` element asks once per seek). So every
//! producer follows one pattern, `Exports::once`: a file that exists is
//! served; otherwise the request takes the file's own lock, looks again
//! (another request may have made it while this one waited), and only then
//! makes it. A producer writes under a temporary name and renames into
//! place, so a file that exists is whole.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// Per-file locks of the playback cache (video exports, opened audio,
/// muxed downloads). Entries are weak, so a lock lives only while some
/// request holds or waits for it; dead entries are swept on insert.
#[derive(Debug, Default)]
pub struct Exports {
    locks: Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>,
}

impl Exports {
    /// Makes `out` with `produce` unless it exists, at most one request at
    /// a time per file: exists → lock → exists again → produce.
    /// `produce` must leave `out` whole or absent (a temporary name, then a
    /// rename).
    pub(crate) async fn once<E, F>(&self, out: &Path, produce: impl FnOnce() -> F) -> Result<(), E>
    where
        F: Future<Output = Result<(), E>>,
    {
        if out.exists() {
            return Ok(());
        }
        let lock = self.lock_for(out);
        let _held = lock.lock().await;
        // Another request may have made it while this one waited.
        if out.exists() {
            return Ok(());
        }
        produce().await
    }

    fn lock_for(&self, path: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = locks.get(path).and_then(Weak::upgrade) {
            return l;
        }
        locks.retain(|_, l| l.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(path.to_owned(), Arc::downgrade(&l));
        l
    }

    /// Waits until no request holds or waits for the lock of a file
    /// `matches`: the exports in progress of a recording being deleted
    /// finish (or fail) before its cache files are removed.
    pub(crate) async fn wait_for(&self, matches: impl Fn(&Path) -> bool) {
        let held: Vec<_> = {
            let locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks
                .iter()
                .filter(|(path, _)| matches(path))
                .filter_map(|(_, l)| l.upgrade())
                .collect()
        };
        for lock in held {
            drop(lock.lock().await);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_requests_make_a_file_once_and_all_find_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("v1-abc.mp4");
        let exports = Arc::new(Exports::default());
        let made = Arc::new(AtomicUsize::new(0));
        let requests: Vec<_> = (0..8)
            .map(|_| {
                let (exports, made, out) = (exports.clone(), made.clone(), out.clone());
                tokio::spawn(async move {
                    exports
                        .once(&out, || async {
                            made.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            std::fs::write(&out, b"mp4")
                        })
                        .await
                })
            })
            .collect();
        for r in requests {
            r.await.unwrap().unwrap();
        }
        assert_eq!(made.load(Ordering::SeqCst), 1);
        assert_eq!(std::fs::read(&out).unwrap(), b"mp4");
    }

    #[tokio::test]
    async fn a_failed_producer_is_retried_by_the_next_request() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("audio-v1-abc");
        let exports = Exports::default();
        let failed = exports
            .once(&out, || async { Err::<(), _>("ffmpeg failed") })
            .await;
        assert_eq!(failed, Err("ffmpeg failed"));
        exports
            .once(&out, || async { std::fs::write(&out, b"pcm") })
            .await
            .unwrap();
        assert!(out.exists());
    }
}
