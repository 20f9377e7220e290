//! [`Tmpfs`]: a small filesystem of its own, to fill up in tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Tells this process's mount points apart.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A tmpfs of a given size mounted on a fresh directory, unmounted and
/// removed when dropped. Mounting needs root: [`Tmpfs::mount`] returns
/// `None` (the test skips) when it fails, except under CI (`CI` set),
/// which runs as root, where it panics.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
    /// Whether the mount point is ours to remove.
    created: bool,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` on a new temporary directory.
    #[must_use]
    pub fn mount(bytes: u64) -> Option<Self> {
        let path = std::env::temp_dir().join(format!(
            "deskrec-tmpfs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("a mount point");
        let mounted = Self::mount_at(&path, bytes);
        if mounted.is_none() {
            let _ = std::fs::remove_dir(&path);
        }
        mounted.map(|mut m| {
            m.created = true;
            m
        })
    }

    /// Mounts a tmpfs of `bytes` on `path` (an existing, empty directory).
    #[must_use]
    pub fn mount_at(path: &Path, bytes: u64) -> Option<Self> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must be able to mount a tmpfs (it runs as root)"
            );
            eprintln!("skipped: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(Self {
            path: path.into(),
            created: false,
        })
    }

    /// The mount point.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
        if self.created {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
