//! The screens recorded: a private 1920x1080x24 Xvfb with a few ordinary X
//! clients on it, placed side by side without a window manager on a black
//! background (`-br`).
//!
//! ```text
//! +-------------------+ +-------+
//! | xterm 100x30: top | | xclock|          static: top refreshes every 3 s,
//! +-------------------+ +-------+          the clock's second hand every 1 s
//! +----------------------------+
//! | xterm 150x50: scroll-lines |           busy: plus 50 coloured lines/s
//! +----------------------------+
//!
//! +------------------------------+ +-------+
//! | xterm 120x40, white: editor  | | xclock|  typing: notes typed at ~5
//! | type-text                    | +-------+  keys/s, a blinking caret
//! +------------------------------+
//!
//!      +---------------------------+
//!      | scroll-page 1280x1080     |          scroll: a web-like page, read
//!      | (text, links, pictures)   |          and scrolled by the wheel
//!      +---------------------------+
//! ```

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use deskrec_capture::testing::Xvfb;

use super::record::Programs;

/// The screen: 1080p at 24 bits.
pub const SCREEN: &str = "1920x1080x24";
/// Its size, for ffmpeg's `-video_size`.
pub const VIDEO_SIZE: &str = "1920x1080";
/// Time for the clients to map their windows and draw before recording.
const SETTLE: Duration = Duration::from_secs(3);

/// Which scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SceneKind {
    /// `top` in an xterm and an `xclock -update 1`.
    Static,
    /// Notes typed into an editor-like xterm (`type-text`) at a typist's
    /// pace with a blinking caret, and the clock.
    Typing,
    /// A web-like page scrolled as a reader scrolls it (`scroll-page`).
    Scroll,
    /// The static scene plus a 150x50 xterm scrolling coloured lines at
    /// 50 lines/s.
    Busy,
}

impl SceneKind {
    /// Every scene, in the order they run.
    pub const ALL: [SceneKind; 4] = [
        SceneKind::Static,
        SceneKind::Typing,
        SceneKind::Scroll,
        SceneKind::Busy,
    ];

    /// Its name, the prefix of its figures.
    pub fn name(self) -> &'static str {
        match self {
            SceneKind::Static => "static",
            SceneKind::Typing => "typing",
            SceneKind::Scroll => "scroll",
            SceneKind::Busy => "busy",
        }
    }
}

/// A running scene, stopped when dropped.
pub struct Scene {
    // Dropped before `xvfb` (fields drop in order): clients go first.
    clients: Vec<(&'static str, Child)>,
    xvfb: Xvfb,
}

impl Scene {
    /// Starts Xvfb and the clients of `kind` (running this package's
    /// scene programs from `programs`) and waits until they have drawn.
    pub fn start(kind: SceneKind, programs: &Programs) -> Result<Self> {
        let xvfb = Xvfb::start_with(SCREEN, &["-br"])
            .ok_or_else(|| anyhow!("Xvfb is not installed (Debian: apt-get install xvfb)"))?;
        let mut scene = Self {
            clients: Vec::new(),
            xvfb,
        };
        let clock = |geometry| {
            let mut cmd = Command::new("xclock");
            cmd.args(["-update", "1", "-geometry", geometry]);
            cmd
        };
        match kind {
            SceneKind::Static | SceneKind::Busy => {
                scene.client(
                    "xterm running top",
                    Command::new("xterm").args(["-geometry", "100x30+0+0", "-e", "top"]),
                )?;
                scene.client("xclock", &mut clock("200x200+720+0"))?;
            }
            SceneKind::Typing => {
                scene.client(
                    "xterm running type-text",
                    Command::new("xterm")
                        .args(["-bg", "white", "-fg", "black"])
                        .args(["-geometry", "120x40+0+0", "-e"])
                        .arg(&programs.typist),
                )?;
                scene.client("xclock", &mut clock("200x200+1700+0"))?;
            }
            SceneKind::Scroll => {
                scene.client("scroll-page", &mut Command::new(&programs.page))?;
            }
        }
        if kind == SceneKind::Busy {
            scene.client(
                "xterm running scroll-lines",
                Command::new("xterm")
                    .args(["-geometry", "150x50+0+420", "-e"])
                    .arg(&programs.scroller),
            )?;
        }
        std::thread::sleep(SETTLE);
        for (name, child) in &mut scene.clients {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited at start ({status})");
            }
        }
        Ok(scene)
    }

    fn client(&mut self, name: &'static str, cmd: &mut Command) -> Result<()> {
        let child = cmd
            .env("DISPLAY", self.display())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.clients.push((name, child));
        Ok(())
    }

    /// The X display, e.g. `:305`.
    pub fn display(&self) -> &str {
        self.xvfb.display()
    }

    /// CPU time the X server has used so far.
    pub fn server_cpu(&self) -> Duration {
        self.xvfb.cpu_time()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        for (_, child) in &mut self.clients {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
