//! The MIT-SHM fast path: the X server copies the screen straight into a
//! System V shared memory segment that this process has mapped, instead of
//! sending megabytes over the socket: ~1 ms instead of 5-10 ms CPU a 1080p
//! frame, client and server together, the copy out of the segment included.
//! The segment holds a band of rows, not the screen (see `X11Source`'s
//! band capture): half a megabyte instead of 8 MiB at 1080p.
//!
//! # Lifetime of the segment
//!
//! The segment is marked for removal (`IPC_RMID`) as soon as the X server
//! has attached it, whatever happened, so it disappears when the last of
//! the two processes detaches or exits: a crash of either cannot leak it.
//! This process unmaps it in `Drop`; the server detaches on
//! [`ShmSegment::release`] or when the connection closes.

use std::io;
use std::ops::Range;
use std::ptr::{self, NonNull};

use x11rb::connection::Connection;
use x11rb::errors::ReplyError;
use x11rb::protocol::shm::{self, Seg};
use x11rb::protocol::xproto::{ImageFormat, Window};

use super::band_extent;
use crate::BoxError;

/// A shared memory segment mapped here and attached in the X server.
pub(super) struct ShmSegment {
    /// The server-side id of the attachment.
    xid: Seg,
    /// Our mapping of the segment.
    mapping: Mapping,
}

impl ShmSegment {
    /// Creates a segment of `len` bytes, shares it with the server and checks
    /// that the server really writes into it.
    ///
    /// # Errors
    ///
    /// Why shared memory cannot be used (no segment, the server cannot
    /// attach it: a remote display or another IPC namespace, ...); the caller
    /// falls back to plain `GetImage`.
    pub(super) fn create(
        conn: &impl Connection,
        root: Window,
        len: usize,
    ) -> Result<Self, BoxError> {
        // SAFETY: plain system call; a new private segment, readable and
        // writable by this user only.
        let shmid = unsafe { libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600) };
        if shmid < 0 {
            return Err(context("shmget", io::Error::last_os_error()));
        }
        let shared = map_and_attach(conn, shmid, len);
        // SAFETY: `shmid` is the segment created above; removal only takes
        // effect once neither we nor the server have it attached.
        unsafe { libc::shmctl(shmid, libc::IPC_RMID, ptr::null_mut()) };
        let (xid, mapping) = shared?;
        let mut segment = Self { xid, mapping };
        match segment.server_writes(conn, root) {
            Ok(true) => Ok(segment),
            Ok(false) => {
                segment.release(conn);
                Err(
                    "the X server attached the segment but does not write into it \
                     (another IPC namespace?)"
                        .into(),
                )
            }
            Err(err) => {
                segment.release(conn);
                Err(err.into())
            }
        }
    }

    /// Size of the segment in bytes.
    pub(super) fn len(&self) -> usize {
        self.mapping.len
    }

    /// Captures the `width` pixels of rows `rows` of `root`, from its left
    /// edge, as a ZPixmap into the segment's start; returns how many bytes
    /// the server wrote (rows of `width * 4` bytes).
    ///
    /// # Panics
    ///
    /// When the rows do not fit the segment.
    pub(super) fn grab(
        &mut self,
        conn: &impl Connection,
        root: Window,
        width: u32,
        rows: Range<u32>,
    ) -> Result<usize, ReplyError> {
        let bytes = width as usize * rows.len() * 4;
        assert!(
            bytes <= self.len(),
            "{width}x{} does not fit {} bytes",
            rows.len(),
            self.len()
        );
        let (top, width, height) = band_extent(width, &rows);
        let format = ImageFormat::Z_PIXMAP.into();
        let reply =
            shm::get_image(conn, root, 0, top, width, height, !0, format, self.xid, 0)?.reply()?;
        Ok((reply.size as usize).min(bytes))
    }

    /// The segment's first `len` bytes: what [`grab`](Self::grab) wrote,
    /// and beyond it what earlier grabs left.
    pub(super) fn pixels(&mut self, len: usize) -> &[u8] {
        self.mapping.bytes(len)
    }

    /// Detaches the segment in the server (best effort: once the
    /// connection is gone the server has detached it already) and unmaps it
    /// here.
    pub(super) fn release(self, conn: &impl Connection) {
        if let Ok(cookie) = shm::detach(conn, self.xid) {
            cookie.ignore_error();
        }
    }

    /// Whether a capture lands in our mapping. Grabs one pixel twice, over
    /// two different markers: a pixel cannot equal both, so if neither
    /// marker was overwritten the server is writing somewhere else.
    fn server_writes(&mut self, conn: &impl Connection, root: Window) -> Result<bool, ReplyError> {
        for marker in [0x00, 0xff] {
            self.mapping.fill_start(marker, 4);
            let written = self.grab(conn, root, 1, 0..1)?;
            if self.pixels(written) != [marker; 4] {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Maps segment `shmid` here and attaches it in the server.
fn map_and_attach(
    conn: &impl Connection,
    shmid: libc::c_int,
    len: usize,
) -> Result<(Seg, Mapping), BoxError> {
    let mapping = Mapping::new(shmid, len)?;
    let xid = conn.generate_id()?;
    let shmid = u32::try_from(shmid)?;
    // `check` waits for the server: it has attached (or refused) when it
    // returns, so the caller may remove the id.
    shm::attach(conn, xid, shmid, false)?.check()?;
    Ok((xid, mapping))
}

/// This process's mapping of a segment; unmapped on drop.
struct Mapping {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping belongs to the process, not to a thread; it is only
// read or written through `&mut Mapping`.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(shmid: libc::c_int, len: usize) -> Result<Self, BoxError> {
        // SAFETY: attaches an existing segment at an address the kernel picks.
        let addr = unsafe { libc::shmat(shmid, ptr::null(), 0) };
        if addr as isize == -1 {
            return Err(context("shmat", io::Error::last_os_error()));
        }
        let addr = NonNull::new(addr.cast::<u8>()).ok_or("shmat returned null")?;
        Ok(Self { addr, len })
    }

    /// The first `len` bytes. Taking `&mut self` keeps the slice from living
    /// across the next capture, when the server writes the memory.
    fn bytes(&mut self, len: usize) -> &[u8] {
        assert!(len <= self.len);
        // SAFETY: the mapping is `self.len` bytes long and stays mapped while
        // `self` lives; the server writes it only while a capture request
        // (which needs `&mut self`) runs.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr(), len) }
    }

    /// Sets the first `len` bytes to `value`.
    fn fill_start(&mut self, value: u8, len: usize) {
        assert!(len <= self.len);
        // SAFETY: within the mapping, see `bytes`.
        unsafe { self.addr.as_ptr().write_bytes(value, len) };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr` came from `shmat` and no slice of it outlives `self`.
        unsafe { libc::shmdt(self.addr.as_ptr().cast()) };
    }
}

fn context(call: &str, err: io::Error) -> BoxError {
    format!("{call}: {err}").into()
}
