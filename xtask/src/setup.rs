//! System packages, installed once per machine with apt-get.

use std::process::Command;

use anyhow::Result;

use crate::util;

/// Packages every build and test needs.
pub const BASE: &[&str] = &[
    "build-essential",
    "pkg-config",
    // OpenH264's assembly: without nasm it silently builds ~2x slower.
    "nasm",
    // ffprobe checks every exported MP4; ffmpeg decodes frames in tests.
    "ffmpeg",
    "openssl",
    // A virtual display for the X11 capture tests and the demo.
    "xvfb",
    "xauth",
    // A private message bus for the agent's logind session-watcher test.
    "dbus-daemon",
    // The tray app (Tauri 2 on WebKitGTK, its tray through
    // libayatana-appindicator): build and run.
    "libwebkit2gtk-4.1-dev",
    "libxdo-dev",
    "libssl-dev",
    "libayatana-appindicator3-dev",
    "librsvg2-dev",
    // The tray tests look for the app's window (xwininfo).
    "x11-utils",
    // The desktop fixtures' test against a real appindicator item.
    "python3-gi",
    "gir1.2-ayatanaappindicator3-0.1",
];

/// Packages for the Windows cross-build and its tests under wine.
pub const WINDOWS: &[&str] = &[
    "mingw-w64",
    "wine",
    "wine64",
    "xvfb",
    "xauth",
    "rustc-web",
    "cargo-web",
    "rust-web-src",
];

/// Packages that build, sign and read the MSI (`cargo xtask msi`): wixl
/// and msibuild/msiinfo are separate Debian packages.
pub const MSI: &[&str] = &["wixl", "msitools", "osslsigncode", "openssl"];

/// `cargo xtask setup`: installs everything any task needs.
pub fn run(_args: &[String]) -> Result<()> {
    ensure(BASE)?;
    ensure(WINDOWS)?;
    ensure(MSI)
}

/// Installs the packages of `names` that are not installed yet.
pub fn ensure(names: &[&str]) -> Result<()> {
    let missing: Vec<&str> = names.iter().copied().filter(|n| !installed(n)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let sudo = if is_root() { None } else { Some("sudo") };
    let apt = |args: &[&str]| {
        let mut cmd = match sudo {
            Some(s) => {
                let mut c = Command::new(s);
                c.arg("apt-get");
                c
            }
            None => Command::new("apt-get"),
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-q", "-y", "-o", "DPkg::Lock::Timeout=600"])
            .args(args);
        cmd
    };
    util::run(&mut apt(&["update"]))?;
    let mut install = apt(&["install", "--no-install-recommends"]);
    install.args(&missing);
    util::run(&mut install)
}

fn installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    util::output(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}
