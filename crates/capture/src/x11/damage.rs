//! What changed on the screen, from the DAMAGE extension.
//!
//! A damage object on the root window with report level `NonEmpty` makes
//! the server send one `DamageNotify` when anything is drawn anywhere on the
//! screen (child windows included) after the damage was last emptied, and
//! nothing more until it is emptied again. So a still screen costs no event
//! and no capture; a busy one costs one event per frame.
//!
//! Each capture empties the damage into an XFixes region and fetches it
//! ([`DamageWatch::take`]): the rectangles drawn since the capture before,
//! which become the picture's [`ChangeMap`](crate::ChangeMap).
//!
//! The order that loses no update: empty the damage, *then* capture, with
//! the server grabbed from before the one to after the other, so no other
//! client draws in between. Anything drawn after the grab ends is in the
//! next damage, and was not in this picture; anything drawn before it is
//! in this damage and in this picture. Without the grab, something drawn
//! between the two requests would be in the picture but only in the next
//! picture's damage: the encoder, told that block was unchanged, would
//! show it a frame late. The grab lasts the shared-memory `GetImage`s of
//! the bands of rows with damage and their conversion (`X11Source`'s
//! bands; about a millisecond at 1080p for the whole screen, a fraction of
//! that for typing).

use x11rb::NONE;
use x11rb::connection::Connection;
use x11rb::cookie::Cookie;
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::damage::{self, Damage, ReportLevel};
use x11rb::protocol::xfixes::{self, FetchRegionReply, Region};
use x11rb::protocol::xproto::{self, Rectangle, Window};

/// The DAMAGE version this code speaks; `Subtract` into a region is 1.0.
const VERSION: (u32, u32) = (1, 1);
/// The XFixes version this code speaks: regions are 2.0.
const XFIXES_VERSION: (u32, u32) = (2, 0);

/// A damage object watching the whole screen, and the region its damage is
/// emptied into.
pub(super) struct DamageWatch {
    id: Damage,
    region: Region,
}

impl DamageWatch {
    /// Starts watching `root`; `None` when the server has no DAMAGE or no
    /// XFixes.
    pub(super) fn start(
        conn: &impl Connection,
        root: Window,
    ) -> Result<Option<Self>, ReplyOrIdError> {
        for name in [damage::X11_EXTENSION_NAME, xfixes::X11_EXTENSION_NAME] {
            if conn.extension_information(name)?.is_none() {
                return Ok(None);
            }
        }
        // The server refuses either's requests before its version handshake.
        xfixes::query_version(conn, XFIXES_VERSION.0, XFIXES_VERSION.1)?.reply()?;
        damage::query_version(conn, VERSION.0, VERSION.1)?.reply()?;
        let region = conn.generate_id()?;
        xfixes::create_region(conn, region, &[])?.check()?;
        let id = conn.generate_id()?;
        damage::create(conn, id, root, ReportLevel::NON_EMPTY)?.check()?;
        Ok(Some(Self { id, region }))
    }

    /// Grabs the server, empties the damage into the region and asks for
    /// its rectangles; the caller captures next, then ends the grab with
    /// [`DamageWatch::release`] and reads the rectangles with
    /// [`DamageWatch::rectangles`].
    pub(super) fn take<'c, C: Connection>(
        &self,
        conn: &'c C,
    ) -> Result<Cookie<'c, C, FetchRegionReply>, ConnectionError> {
        xproto::grab_server(conn)?;
        damage::subtract(conn, self.id, NONE, self.region)?;
        xfixes::fetch_region(conn, self.region)
    }

    /// Ends the grab [`take`](Self::take) began (sent, not waited for).
    pub(super) fn release(conn: &impl Connection) -> Result<(), ConnectionError> {
        xproto::ungrab_server(conn)?;
        conn.flush()
    }

    /// The rectangles [`take`](Self::take) asked for.
    pub(super) fn rectangles<C: Connection>(
        taken: Cookie<'_, C, FetchRegionReply>,
    ) -> Result<Vec<Rectangle>, ReplyError> {
        Ok(taken.reply()?.rectangles)
    }

    /// Destroys the damage object and the region (best effort, as in
    /// `ShmSegment::release`).
    pub(super) fn stop(self, conn: &impl Connection) {
        if let Ok(cookie) = damage::destroy(conn, self.id) {
            cookie.ignore_error();
        }
        if let Ok(cookie) = xfixes::destroy_region(conn, self.region) {
            cookie.ignore_error();
        }
    }
}
