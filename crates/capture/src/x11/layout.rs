//! The X screen's geometry: the size of the root window and the RandR
//! monitors laid out on it, and the even-sized frame cut from it.

use x11rb::connection::Connection;
use x11rb::errors::ReplyError;
use x11rb::protocol::randr::{self, MonitorInfo};
use x11rb::protocol::xproto::{self, Window};

use crate::{FrameSize, Monitor};

/// Root window size and monitors, as last read from the server. Two reads
/// are equal when nothing the recorder cares about changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    /// The whole root window (the desktop), in pixels.
    pub screen: FrameSize,
    /// The monitors, primary first (RandR order); never empty.
    pub monitors: Vec<Monitor>,
}

impl Layout {
    /// Reads the current layout. `randr_monitors` says whether the server
    /// has RandR 1.5 (`GetMonitors`); without it, or when RandR lists no
    /// active monitor (all outputs off), the layout is one monitor covering
    /// the root window.
    pub(super) fn read(
        conn: &impl Connection,
        root: Window,
        randr_monitors: bool,
    ) -> Result<Self, ReplyError> {
        let geometry = xproto::get_geometry(conn, root)?.reply()?;
        let screen = FrameSize::new(geometry.width.into(), geometry.height.into());
        let mut monitors = if randr_monitors {
            read_monitors(conn, root)?
        } else {
            Vec::new()
        };
        if monitors.is_empty() {
            monitors.push(Monitor::whole(screen));
        }
        Ok(Self { screen, monitors })
    }

    /// The size of the frames captured from this layout: the screen with a
    /// trailing odd column and row cropped (see [`even_size`]).
    pub(super) fn frame_size(&self) -> FrameSize {
        even_size(self.screen)
    }
}

/// `size` rounded down to even width and height.
///
/// H.264 in 4:2:0 needs even sizes. Cropping the last column or row (rather
/// than scaling) keeps every other pixel exact, and loses one line at the
/// right or bottom edge of the desktop, which only odd-sized virtual
/// screens have.
pub(super) fn even_size(size: FrameSize) -> FrameSize {
    FrameSize::new(size.width & !1, size.height & !1)
}

/// The active RandR monitors with their names (one round trip for the list,
/// one for all the names together).
fn read_monitors(conn: &impl Connection, root: Window) -> Result<Vec<Monitor>, ReplyError> {
    let reply = randr::get_monitors(conn, root, true)?.reply()?;
    let name_cookies = reply
        .monitors
        .iter()
        .map(|m| xproto::get_atom_name(conn, m.name))
        .collect::<Result<Vec<_>, _>>()?;
    reply
        .monitors
        .iter()
        .zip(name_cookies)
        .map(|(info, cookie)| {
            let name = String::from_utf8_lossy(&cookie.reply()?.name).into_owned();
            Ok(monitor(info, name))
        })
        .collect()
}

fn monitor(info: &MonitorInfo, name: String) -> Monitor {
    Monitor {
        name,
        x: info.x.into(),
        y: info.y.into(),
        width: info.width.into(),
        height: info.height.into(),
        primary: info.primary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_odd_sides_only() {
        assert_eq!(
            even_size(FrameSize::new(1920, 1080)),
            FrameSize::new(1920, 1080)
        );
        assert_eq!(
            even_size(FrameSize::new(1281, 721)),
            FrameSize::new(1280, 720)
        );
        assert_eq!(even_size(FrameSize::new(1, 3)), FrameSize::new(0, 2));
    }
}
