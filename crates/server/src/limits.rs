//! What one client may hold: connections, per address and in all, and how
//! long a request may take to arrive.
//!
//! Every open connection costs the server a socket, a file descriptor and a
//! task, whether or not its client ever finishes a request. A client that
//! sends headers and then a body that never comes (or comes a byte a
//! minute) would hold them forever, and a few thousand such clients would
//! fill the connection limit. So:
//!
//! - a request's headers must arrive within [`Limits::request_timeout`]
//!   (hyper's header-read timeout), and so must its whole body
//!   ([`body_deadline`]); a tus PATCH body is exempt, since a recording
//!   may be gigabytes on a slow line, and has its own idle timeout;
//! - one IP address may hold at most [`Limits::connections_per_address`]
//!   connections ([`PerAddress`]); more are closed at once, so a single
//!   client cannot take the whole [`Limits::connections`].
//!
//! Agents behind one NAT share an address: a site with more agents than
//! the per-address limit must raise it (`docs/operations.md`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame};
use serde::Deserialize;

use crate::state::AppState;

/// Connection and request limits (`[limits]` in the configuration).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections open at once, from all clients.
    pub connections: usize,
    /// Connections open at once from one IP address.
    pub connections_per_address: usize,
    /// Seconds a client has to send a request's headers, and then its
    /// whole body (tus PATCH bodies excepted).
    pub request_timeout_secs: u64,
    /// Uploads one device may have receiving at once (an agent sends one
    /// at a time; a few more cover retries after a lost answer).
    pub open_uploads_per_device: u32,
    /// Seconds an RTE session may go without a frame from its agent; the
    /// server pings every third of it, so a live agent always answers.
    pub rte_idle_secs: u64,
    /// Hours an exported (decrypted) MP4 stays in the playback cache.
    pub playback_cache_hours: u64,
    /// MiB the playback cache may hold; the oldest exports go first.
    pub playback_cache_mib: u64,
    /// MiB of free disk kept in reserve: a new upload that would leave
    /// less is refused with 507, so uploads never fill the disk the
    /// database and stored recordings live on.
    pub disk_reserve_mib: u64,
    /// MiB one contact's call audio may have (a two-hour call in 16-bit
    /// stereo WAV at 44.1 kHz is about 1.2 GiB; ACDs export 8 kHz mu-law
    /// or compressed audio, a few MB an hour).
    pub audio_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: 10_000,
            connections_per_address: 1_000,
            request_timeout_secs: 30,
            open_uploads_per_device: 8,
            rte_idle_secs: 90,
            playback_cache_hours: 24,
            playback_cache_mib: 10 << 10,
            disk_reserve_mib: 1024,
            audio_mib: 512,
        }
    }
}

impl Limits {
    /// [`Limits::request_timeout_secs`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// [`Limits::rte_idle_secs`] as a duration.
    pub fn rte_idle(&self) -> Duration {
        Duration::from_secs(self.rte_idle_secs)
    }

    /// [`Limits::audio_mib`] in bytes.
    pub fn audio_bytes(&self) -> u64 {
        self.audio_mib.saturating_mul(1 << 20)
    }

    /// [`Limits::disk_reserve_mib`] in bytes.
    pub fn disk_reserve(&self) -> u64 {
        self.disk_reserve_mib.saturating_mul(1 << 20)
    }

    /// Refuses limits that would stop the server from working at all.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 || self.connections_per_address == 0 {
            return Err(
                "limits.connections and limits.connections_per_address must be at least 1".into(),
            );
        }
        if self.open_uploads_per_device == 0 {
            return Err("limits.open_uploads_per_device must be at least 1".into());
        }
        if self.rte_idle_secs < 3 {
            return Err("limits.rte_idle_secs must be at least 3".into());
        }
        if self.request_timeout_secs == 0 {
            return Err("limits.request_timeout_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// Open connections per IP address.
#[derive(Debug, Default)]
pub struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// A slot for one more connection from `ip`, or `None` if it already
    /// holds `max`. The slot is given back when dropped.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.lock();
        let n = open.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip`.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.lock().get(&ip).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One connection's place in [`PerAddress`].
#[derive(Debug)]
pub struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Middleware: a request body (other than a tus PATCH's) must arrive whole
/// within [`Limits::request_timeout`] of the handler asking for it; after
/// that it ends with an error, the handler answers 4xx and hyper closes
/// the connection.
pub async fn body_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() == Method::PATCH {
        return next.run(req).await;
    }
    let timeout = state.limits().request_timeout();
    let req = req.map(|body| Body::new(Deadline::new(body, timeout)));
    next.run(req).await
}

/// A body that fails once its deadline passes.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(inner: Body, timeout: Duration) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

/// Why a body was cut off.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl HttpBody for Deadline {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Bytes free for an unprivileged writer on the file system holding
/// `path`, if the platform says (Unix: `statvfs`).
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: `c` is a valid C string and `st` is written by statvfs
        // before it is read.
        let st = unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            if libc::statvfs(c.as_ptr(), &mut st) != 0 {
                return None;
            }
            st
        };
        // Field widths differ between Unixes.
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// File descriptors kept free for the database, storage files, logs and
/// accept errors, on top of one per connection.
#[cfg(unix)]
const SPARE_DESCRIPTORS: u64 = 256;

/// Raises the process's open-file limit to its hard limit (Unix; Windows
/// has no such per-process limit for sockets) and returns how many
/// connections it leaves room for: `wanted`, or fewer with a warning that
/// says how to raise it.
pub fn descriptor_room(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write `lim`.
        let soft = unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return wanted;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim.rlim_cur = lim.rlim_max;
                }
            }
            // rlim_t is u64 on Linux but not on every Unix.
            #[allow(clippy::unnecessary_cast)]
            let soft = lim.rlim_cur as u64;
            soft
        };
        let room = soft.saturating_sub(SPARE_DESCRIPTORS) as usize;
        if room < wanted {
            tracing::warn!(
                open_files = soft,
                connections = room,
                configured = wanted,
                "the open-file limit leaves room for fewer connections than limits.connections: \
                 raise LimitNOFILE (systemd) or `ulimit -n`"
            );
            return room.max(1);
        }
        wanted
    }
    #[cfg(not(unix))]
    wanted
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[test]
    fn an_address_gets_at_most_its_share_and_slots_come_back() {
        let table = Arc::new(PerAddress::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = table.acquire(a, 2).unwrap();
        let _second = table.acquire(a, 2).unwrap();
        assert!(table.acquire(a, 2).is_none(), "a third from one address");
        assert!(
            table.acquire(b, 2).is_some(),
            "another address is not affected"
        );
        drop(first);
        assert_eq!(table.open(a), 1);
        assert!(table.acquire(a, 2).is_some());
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_fails_and_one_that_does_passes() {
        let never =
            futures_util::stream::pending::<Result<Frame<axum::body::Bytes>, std::io::Error>>();
        let stalled = Deadline::new(
            Body::new(http_body_util::StreamBody::new(never)),
            Duration::from_millis(50),
        );
        let err = stalled
            .collect()
            .await
            .expect_err("a stalled body fails at its deadline");
        assert!(err.is::<BodyTimedOut>(), "{err}");
        let whole = Deadline::new(Body::from("hello"), Duration::from_secs(30));
        assert_eq!(whole.collect().await.unwrap().to_bytes(), "hello");
    }
}
