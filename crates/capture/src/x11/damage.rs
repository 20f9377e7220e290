//! Unchanged-frame detection with the DAMAGE extension.
//!
//! A damage object on the root window with report level `NonEmpty` makes
//! the server send one `DamageNotify` when anything is drawn anywhere on the
//! screen (child windows included) after the damage was last cleared, and
//! nothing more until it is cleared again. So a still screen costs no event
//! and no capture; a busy one costs one event per frame.
//!
//! The order that loses no update: clear ([`DamageWatch::clear`]), *then*
//! capture. The server handles both requests in order, so anything drawn
//! after the clear either is in the picture already or raises a new event.

use x11rb::NONE;
use x11rb::connection::Connection;
use x11rb::errors::{ReplyError, ReplyOrIdError};
use x11rb::protocol::damage::{self, Damage, ReportLevel};
use x11rb::protocol::xproto::Window;

/// The DAMAGE version this code speaks; `Subtract` with no regions is 1.0.
const VERSION: (u32, u32) = (1, 1);

/// A damage object watching the whole screen.
pub(super) struct DamageWatch {
    id: Damage,
}

impl DamageWatch {
    /// Starts watching `root`; `None` when the server has no DAMAGE.
    pub(super) fn start(
        conn: &impl Connection,
        root: Window,
    ) -> Result<Option<Self>, ReplyOrIdError> {
        if conn
            .extension_information(damage::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Ok(None);
        }
        // The server refuses DAMAGE requests before the version handshake.
        damage::query_version(conn, VERSION.0, VERSION.1)?.reply()?;
        let id = conn.generate_id()?;
        damage::create(conn, id, root, ReportLevel::NON_EMPTY)?.check()?;
        Ok(Some(Self { id }))
    }

    /// Empties the damage so the next drawing raises a new event. Sent, not
    /// waited for: the capture request that follows flushes it.
    pub(super) fn clear(&self, conn: &impl Connection) -> Result<(), ReplyError> {
        damage::subtract(conn, self.id, NONE, NONE)?;
        Ok(())
    }

    /// Destroys the damage object (best effort, as in `ShmSegment::release`).
    pub(super) fn stop(self, conn: &impl Connection) {
        if let Ok(cookie) = damage::destroy(conn, self.id) {
            cookie.ignore_error();
        }
    }
}
