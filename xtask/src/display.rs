//! A virtual X display for the demo and benchmarks when there is no screen.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// An Xvfb server, stopped when dropped, with the programs started on it.
pub struct VirtualDisplay {
    name: String,
    server: Child,
    programs: Vec<Child>,
}

impl VirtualDisplay {
    /// Starts Xvfb at `width`x`height` on the first free display number.
    /// `-noreset` keeps it up when its last client leaves.
    pub fn start(width: u32, height: u32) -> Result<Self> {
        let n = (90..200)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .unwrap_or(199);
        let name = format!(":{n}");
        let server = Command::new("Xvfb")
            .args([
                &name,
                "-screen",
                "0",
                &format!("{width}x{height}x24"),
                "-noreset",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let display = Self {
            name,
            server,
            programs: Vec::new(),
        };
        let socket = format!("/tmp/.X11-unix/X{n}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&socket).exists() {
            if Instant::now() > deadline {
                bail!("Xvfb {} did not start within 10 s", display.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(display)
    }

    /// The display name, for `DISPLAY`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts a program on the display; it is killed with the display.
    pub fn spawn(&mut self, program: &str, args: &[&str]) -> Result<()> {
        let child = Command::new(program)
            .args(args)
            .env("DISPLAY", &self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.programs.push(child);
        Ok(())
    }
}

impl Drop for VirtualDisplay {
    fn drop(&mut self) {
        for child in self
            .programs
            .iter_mut()
            .chain(std::iter::once(&mut self.server))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
