//! `cargo xtask windows [CARGO-TEST-ARGS] [-- TEST-ARGS]`: cross-builds the
//! workspace's tests for `x86_64-pc-windows-gnu` and runs them under wine.
//!
//! The shape follows what was measured on Debian 12
//! (`shared/notes/windows-cross.md`):
//! - rustup's toolchain has no Windows std and cannot fetch one, so Debian's
//!   `rustc-web` rebuilds std (`-Zbuild-std`) into a target dir of its own,
//!   linking with mingw-w64;
//! - OpenH264 is C++: the mingw `libstdc++.a` is put first on the link search
//!   path so no exe needs `libstdc++-6.dll`, which wine does not have;
//! - wine 8.0 lacks two DLLs the exes import; small shims built from
//!   `xtask/wine/` go into a private wine prefix;
//! - every test exe runs under wine in its package's directory, like
//!   `cargo test` would, inside a virtual X display when there is no display.
//!
//! CARGO-TEST-ARGS go to `cargo test` (e.g. `--release`, `-p deskrec-vault`),
//! TEST-ARGS to every test exe (e.g. a test name filter).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::display::VirtualDisplay;
use crate::setup;
use crate::util::{cache_dir, output, root, run as run_cmd, xtask_dir};

/// The Rust target the Windows agent is built for.
const TARGET: &str = "x86_64-pc-windows-gnu";
/// Prefix of the mingw-w64 tools for that target.
const MINGW: &str = "x86_64-w64-mingw32";
/// The DLLs wine 8.0 lacks, built from `xtask/wine/NAME.{c,def}`.
const SHIMS: &[&str] = &["bcryptprimitives", "coremessaging"];
/// Longest a test exe may run: a hung wine process must not hang CI.
const TEST_TIMEOUT: &str = "20m";
/// Size of the virtual display: a real agent's, so monitor queries under
/// wine answer like a real PC would.
const SCREEN: (u32, u32) = (1920, 1080);
/// The X display wine runs on when this task started its own.
static WINE_DISPLAY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Entry point of `cargo xtask windows`.
pub fn run(args: &[String]) -> Result<()> {
    // BASE too: the crates' build scripts need a host C compiler and nasm
    // (OpenH264's assembly) whatever the target.
    setup::ensure(setup::BASE)?;
    setup::ensure(setup::WINDOWS)?;
    let (cargo_args, test_args) = split_args(args);
    let with_app = !selects_packages(cargo_args) || cargo_args.iter().any(|a| a.contains("tray"));
    if with_app {
        setup::ensure(setup::MSI)?;
    }

    let started = Instant::now();
    let exes = build_tests(cargo_args)?;
    let built = started.elapsed();
    let mut outcomes = Vec::new();
    let ran = Instant::now();
    let app = with_wine(|prefix| {
        check_imports(&exes, prefix)?;
        for exe in &exes {
            let mut outcome = run_test_exe(exe, prefix, test_args)?;
            if outcome.killed_after_passing() {
                // Seen once, in CI on 2026-12-03 (capture's `windows` tests,
                // after "test result: ok"): wine's teardown SIGKILLed the exe. The tests
                // themselves passed, so run the exe once more rather than
                // fail CI on wine's exit path; a second kill fails.
                eprintln!(
                    "warning: {} passed its tests but was killed at exit ({}); running it again",
                    exe.name, outcome.status
                );
                outcome = run_test_exe(exe, prefix, test_args)?;
            }
            outcomes.push(outcome);
        }
        // The app as IT installs it: the MSI, under wine's msiexec.
        Ok(with_app.then(|| crate::install::under_wine(prefix, &app_exe_dir(false)?)))
    })?;
    report(&exes, &outcomes, built, ran.elapsed())?;
    app.transpose().map(drop)
}

/// Runs `f` with the private wine prefix, on an X display (a virtual one
/// when there is none: wine needs one for anything with a window or a tray
/// icon, and some DLLs look for one at load). One display serves the whole
/// run: per-exe displays would leave wine's desktop process bound to a
/// dead one. Wine's processes are waited for before the display goes.
pub fn with_wine<T>(f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let _display = match std::env::var("DISPLAY") {
        Ok(d) if !d.is_empty() => None,
        _ => {
            let display = VirtualDisplay::start(SCREEN.0, SCREEN.1)?;
            WINE_DISPLAY.get_or_init(|| display.name().to_string());
            Some(display)
        }
    };
    let prefix = wine_prefix()?;
    let result = f(&prefix);
    stop_wine(&prefix)?;
    result
}

/// The directory of the app's Windows exes (the tray app, the headless
/// agent, `WebView2Loader.dll`), from the test build, which makes them
/// with the workspace's features (a build of the app alone would resolve
/// features anew and rebuild half the dependency tree). With `build`,
/// builds them when they are missing.
pub fn app_exe_dir(build: bool) -> Result<PathBuf> {
    let dir = cache_dir()
        .join("target-windows")
        .join(TARGET)
        .join("debug");
    let wanted = [
        "deskrec-tray.exe",
        "deskrec-agent.exe",
        "WebView2Loader.dll",
    ];
    if build && !wanted.iter().all(|f| dir.join(f).exists()) {
        println!("\n     Building the app for Windows");
        let mut cmd = cross_cargo()?;
        run_cmd(
            cmd.args(["build", "-Zbuild-std", "--target", TARGET])
                .args(["-p", "deskrec-tray", "-p", "deskrec-agent"]),
        )?;
    }
    if let Some(missing) = wanted.iter().find(|f| !dir.join(f).exists()) {
        bail!(
            "{missing} is not in {}: run `cargo xtask windows`",
            dir.display()
        );
    }
    Ok(dir)
}

/// Waits for wine's helper processes to exit while the display still
/// exists, so the prefix is left consistent for the next run; kills what a
/// test left running rather than wait for it forever.
fn stop_wine(prefix: &Path) -> Result<()> {
    let waited =
        run_cmd(wine_env(&mut Command::new("timeout"), prefix).args(["30s", "wineserver", "-w"]));
    if waited.is_err() {
        eprintln!("warning: a test left wine processes running; killing them");
        run_cmd(wine_env(&mut Command::new("wineserver"), prefix).arg("-k"))?;
    }
    Ok(())
}

/// Splits `[CARGO-TEST-ARGS] [-- TEST-ARGS]`.
fn split_args(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[]),
    }
}

/// One test executable built for Windows, as cargo reported it.
struct TestExe {
    /// What to call it in messages: the target's name and kind.
    name: String,
    /// The `.exe` on this machine.
    path: PathBuf,
    /// Its package's directory: `cargo test` runs tests from there.
    package_dir: PathBuf,
}

/// Builds the workspace's tests for Windows and lists their executables.
fn build_tests(cargo_args: &[String]) -> Result<Vec<TestExe>> {
    let mut cmd = cross_cargo()?;
    cmd.args(["test", "-Zbuild-std", "--target", TARGET, "--no-run"])
        .arg("--message-format=json-render-diagnostics");
    if !selects_packages(cargo_args) {
        // The desktop test fixtures are D-Bus on Linux: not for Windows.
        cmd.args([
            "--workspace",
            "--exclude",
            "xtask",
            "--exclude",
            "deskrec-e2e",
        ]);
    }
    cmd.args(cargo_args);
    let json = stdout_while_streaming_stderr(&mut cmd)?;
    let exes: Vec<TestExe> = json.lines().filter_map(test_exe).collect();
    if exes.is_empty() {
        bail!("cargo built no Windows test executables");
    }
    Ok(exes)
}

/// Whether the caller chose packages themselves, which `--workspace` would
/// override.
fn selects_packages(cargo_args: &[String]) -> bool {
    cargo_args
        .iter()
        .any(|a| a.starts_with("-p") || a.starts_with("--package"))
}

/// A Debian `cargo` set up to build for [`TARGET`] (with `-Zbuild-std`).
fn cross_cargo() -> Result<Command> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut path_dirs = vec![PathBuf::from("/usr/bin")];
    path_dirs.extend(std::env::split_paths(&path));
    let target_env = TARGET.replace('-', "_");
    let target_var = target_env.to_uppercase();

    let mut cmd = Command::new("/usr/bin/cargo");
    cmd.current_dir(root())
        // Debian's rustc, not rustup's: only it can build a Windows std here.
        // Build scripts that run `cargo` or `rustc` must find Debian's too.
        .env("PATH", std::env::join_paths(path_dirs)?)
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTDOC", "/usr/bin/rustdoc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTC_WRAPPER")
        .env("CARGO_TARGET_DIR", cache_dir().join("target-windows"))
        .env(
            format!("CARGO_TARGET_{target_var}_LINKER"),
            format!("{MINGW}-gcc"),
        )
        .env("RUSTFLAGS", rustflags()?)
        .env(format!("CC_{target_env}"), format!("{MINGW}-gcc"))
        .env(format!("CXX_{target_env}"), format!("{MINGW}-g++"))
        .env(format!("AR_{target_env}"), format!("{MINGW}-ar"));
    Ok(cmd)
}

/// The caller's `RUSTFLAGS` (CI may set `-Dwarnings`) plus
/// [`static_cxx_flags`]. With `--target`, they apply to the Windows crates
/// only, not to build scripts.
fn rustflags() -> Result<String> {
    let theirs = std::env::var("RUSTFLAGS").unwrap_or_default();
    Ok(format!("{theirs} {}", static_cxx_flags()?)
        .trim()
        .to_string())
}

/// Rust flags that make C++ code (OpenH264) link mingw's C++ runtime
/// statically. Build scripts ask for `-lstdc++`, which the linker would
/// resolve to `libstdc++.dll.a` and so to `libstdc++-6.dll`; a directory
/// holding only `libstdc++.a`, searched first, makes it pick the static
/// library, without any crate needing a Windows-specific build script.
/// (Unwinding and threads are already static: rustc links `libgcc_eh.a` and
/// `libpthread.a` into executables on this target.)
fn static_cxx_flags() -> Result<String> {
    let dir = cache_dir().join("windows-static-cxx");
    fs::create_dir_all(&dir)?;
    let lib = output(Command::new(format!("{MINGW}-g++")).arg("-print-file-name=libstdc++.a"))?;
    let lib = PathBuf::from(lib.trim());
    if !lib.is_absolute() {
        bail!("{MINGW}-g++ has no libstdc++.a");
    }
    // A link, not a copy: it follows mingw upgrades and costs nothing.
    let link = dir.join("libstdc++.a");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&lib, &link)?;
    Ok(format!("-L native={}", dir.display()))
}

/// Runs `cmd` with its diagnostics shown live and returns its standard
/// output (cargo's JSON messages).
fn stdout_while_streaming_stderr(cmd: &mut Command) -> Result<String> {
    let args: Vec<_> = cmd.get_args().map(OsStr::to_string_lossy).collect();
    eprintln!(
        "$ {} {}",
        cmd.get_program().to_string_lossy(),
        args.join(" ")
    );
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("could not start cargo")?;
    if !out.status.success() {
        bail!(
            "the Windows build failed ({}); see the compiler's messages above",
            out.status
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The test executable a line of cargo's JSON output announces, if any.
fn test_exe(line: &str) -> Option<TestExe> {
    let msg: Value = serde_json::from_str(line).ok()?;
    if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
        return None;
    }
    let path = PathBuf::from(msg["executable"].as_str()?);
    let manifest = Path::new(msg["manifest_path"].as_str()?);
    let target = &msg["target"];
    let kind = target["kind"][0].as_str().unwrap_or("test");
    Some(TestExe {
        name: format!("{} ({kind})", target["name"].as_str()?),
        package_dir: manifest.parent()?.to_path_buf(),
        path,
    })
}

/// The private wine prefix the tests run in, created on first use (~10 s)
/// and reused after, with the shim DLLs (re)installed.
fn wine_prefix() -> Result<PathBuf> {
    let prefix = prefix_dir();
    // Written last: a prefix without it was interrupted while being made.
    let ready = prefix.join(".deskrec-ready");
    if !ready.exists() {
        if prefix.exists() {
            fs::remove_dir_all(&prefix)?;
        }
        fs::create_dir_all(&prefix)?;
        // It complains about syswow64\rundll32.exe: harmless, there is no
        // 32-bit wine here and the tests are 64-bit.
        run_cmd(wine_env(&mut Command::new("wineboot"), &prefix).arg("-i"))?;
        run_cmd(wine_env(&mut Command::new("wineserver"), &prefix).arg("-w"))?;
        fs::write(&ready, "")?;
    }
    let system32 = system32(&prefix);
    for dll in build_shims()? {
        install(&dll, &system32)?;
    }
    Ok(prefix)
}

/// Where the wine prefix lives: outside the clone, reused across runs.
fn prefix_dir() -> PathBuf {
    cache_dir().join("wineprefix")
}

/// Copies `file` into `dir` by renaming a fresh copy over the old one, so a
/// wine process of a concurrent run never maps a half-written DLL.
fn install(file: &Path, dir: &Path) -> Result<()> {
    let name = file.file_name().context("a file without a name")?;
    let partial = dir.join(format!(".{}.new", name.to_string_lossy()));
    fs::copy(file, &partial)
        .and_then(|_| fs::rename(&partial, dir.join(name)))
        .with_context(|| format!("installing {} into {}", file.display(), dir.display()))?;
    Ok(())
}

/// Where a 64-bit prefix keeps its 64-bit DLLs.
fn system32(prefix: &Path) -> PathBuf {
    prefix.join("drive_c/windows/system32")
}

/// The environment every wine command of this task runs with.
pub fn wine_env<'a>(cmd: &'a mut Command, prefix: &Path) -> &'a mut Command {
    if let Some(display) = WINE_DISPLAY.get() {
        cmd.env("DISPLAY", display);
    }
    cmd.env("WINEPREFIX", prefix)
        .env("WINEARCH", "win64")
        .env("WINEDEBUG", "-all")
        // No .NET or HTML engine: Debian ships neither, and wineboot would
        // otherwise stop to offer a download of each (or fail headless).
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
}

/// Compiles the shim DLLs from `xtask/wine/` (a fraction of a second, so
/// always: no staleness to get wrong) and returns their paths.
fn build_shims() -> Result<Vec<PathBuf>> {
    let sources = xtask_dir().join("wine");
    let out_dir = cache_dir().join("wine-shims");
    fs::create_dir_all(&out_dir)?;
    SHIMS
        .iter()
        .map(|name| {
            let dll = out_dir.join(format!("{name}.dll"));
            run_cmd(
                Command::new(format!("{MINGW}-gcc"))
                    .args(["-shared", "-O2", "-s", "-Wall", "-Wextra", "-o"])
                    .arg(&dll)
                    .arg(sources.join(format!("{name}.c")))
                    .arg(sources.join(format!("{name}.def")))
                    .arg("-ladvapi32"),
            )?;
            Ok(dll)
        })
        .collect()
}

/// Fails if a test exe imports a DLL that neither wine nor the build's own
/// directories provide: such an exe exits at load without any output, which
/// is hard to tell from a crash, and would fail the same way on a Windows PC
/// that lacks the mingw runtime DLLs (`libstdc++-6.dll`, `libgcc_s_seh-1.dll`,
/// `libwinpthread-1.dll`).
fn check_imports(exes: &[TestExe], prefix: &Path) -> Result<()> {
    let available = dll_names(&system32(prefix))?;
    let mut problems = Vec::new();
    for exe in exes {
        let mut beside = BTreeSet::new();
        for dir in dll_dirs(exe) {
            beside.append(&mut dll_names(dir)?);
        }
        let missing: Vec<String> = imported_dlls(&exe.path)?
            .into_iter()
            .filter(|dll| !is_api_set(dll) && !available.contains(dll) && !beside.contains(dll))
            .collect();
        if !missing.is_empty() {
            problems.push(format!("{}: {}", exe.path.display(), missing.join(", ")));
        }
    }
    if !problems.is_empty() {
        bail!(
            "Windows test executables import DLLs that wine does not have:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// Whether `dll` names a Windows API set (e.g. Rust std's
/// `api-ms-win-core-synch-l1-2-0.dll`): the loader maps those to real DLLs,
/// so no file of that name exists, in wine or in Windows.
fn is_api_set(dll: &str) -> bool {
    dll.starts_with("api-ms-win-") || dll.starts_with("ext-ms-win-")
}

/// Where the build leaves DLLs a test exe may load: `deps/` beside it and
/// the profile directory above it, where build scripts copy DLLs to ship
/// (e.g. Tauri's `WebView2Loader.dll`). `cargo test` puts both on the DLL
/// search path; so does this task.
fn dll_dirs(exe: &TestExe) -> impl Iterator<Item = &Path> {
    exe.path.ancestors().skip(1).take(2).filter(|d| d.is_dir())
}

/// `path` as wine names it: the root of this machine is drive Z:.
pub fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// The DLLs an executable imports, lowercased, as `objdump -p` lists them.
fn imported_dlls(exe: &Path) -> Result<BTreeSet<String>> {
    let dump = output(Command::new(format!("{MINGW}-objdump")).arg("-p").arg(exe))?;
    Ok(dump
        .lines()
        .filter_map(|l| l.trim().strip_prefix("DLL Name:"))
        .map(|n| n.trim().to_lowercase())
        .collect())
}

/// The `.dll` files in a directory, lowercased (Windows names ignore case).
fn dll_names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().to_lowercase();
        if name.ends_with(".dll") {
            names.insert(name);
        }
    }
    Ok(names)
}

/// What running one test exe gave.
struct Outcome {
    /// Whether it exited successfully.
    ok: bool,
    /// Its exit status, for the summary when it failed.
    status: String,
    /// Totals of its `test result:` lines; `None` if it printed none (it
    /// died before running tests, or was killed).
    counts: Option<Counts>,
    /// How long it ran.
    elapsed: Duration,
    /// Whether a signal ended it (no exit code).
    signalled: bool,
}

impl Outcome {
    /// Whether the exe reported its tests passed, then died by a signal on
    /// the way out.
    fn killed_after_passing(&self) -> bool {
        !self.ok && self.signalled && self.counts.is_some_and(|c| c.failed == 0 && c.passed > 0)
    }
}

/// Test totals as libtest prints them.
#[derive(Default, Clone, Copy)]
struct Counts {
    passed: u32,
    failed: u32,
    ignored: u32,
}

impl Counts {
    fn add(self, other: Counts) -> Counts {
        Counts {
            passed: self.passed + other.passed,
            failed: self.failed + other.failed,
            ignored: self.ignored + other.ignored,
        }
    }
}

/// Runs one test exe under wine, from its package's directory with the
/// environment `cargo test` would give it, passing its output through.
fn run_test_exe(exe: &TestExe, prefix: &Path, test_args: &[String]) -> Result<Outcome> {
    println!(
        "\n     Running {} under wine ({})",
        exe.name,
        exe.path.display()
    );
    let started = Instant::now();
    let mut child = wine_env(&mut Command::new("timeout"), prefix)
        .args(["--kill-after=10s", TEST_TIMEOUT, "wine"])
        .arg(&exe.path)
        .args(test_args)
        // The working directory maps to drive Z:, so build-machine paths
        // baked in by env!("CARGO_MANIFEST_DIR") resolve under wine too.
        .current_dir(&exe.package_dir)
        .env("CARGO_MANIFEST_DIR", &exe.package_dir)
        .env(
            "WINEPATH",
            dll_dirs(exe)
                .map(windows_path)
                .collect::<Vec<_>>()
                .join(";"),
        )
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start wine")?;
    let counts = Arc::new(Mutex::new(None));
    let reader = {
        let (out, counts) = (child.stdout.take().context("no stdout")?, counts.clone());
        thread::spawn(move || pass_through_counting(out, &counts))
    };
    let status = child.wait()?;
    // A process the test started may hold the pipe open after the exe
    // exits; its output is not the test's, so don't wait for it for long.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !reader.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let counts = *counts.lock().unwrap_or_else(|e| e.into_inner());
    let status_text = match status.code() {
        Some(124) => "timed out".to_string(),
        _ => status.to_string(),
    };
    Ok(Outcome {
        ok: status.success(),
        status: status_text,
        counts,
        elapsed: started.elapsed(),
        signalled: status.code().is_none(),
    })
}

/// Copies a test exe's output to ours line by line, adding up its
/// `test result:` lines in `counts` as they come.
fn pass_through_counting(out: impl Read, counts: &Mutex<Option<Counts>>) -> io::Result<()> {
    let mut reader = BufReader::new(out);
    let mut stdout = io::stdout();
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line)? > 0 {
        stdout.write_all(&line)?;
        stdout.flush()?;
        if let Some(c) = parse_test_result(&String::from_utf8_lossy(&line)) {
            let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
            *counts = Some(counts.unwrap_or_default().add(c));
        }
        line.clear();
    }
    Ok(())
}

/// Reads `test result: ok. 5 passed; 0 failed; 1 ignored; ...`.
fn parse_test_result(line: &str) -> Option<Counts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let mut counts = Counts::default();
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(what), Some(n)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse() else { continue };
        match what {
            "passed" => counts.passed = n,
            "failed" => counts.failed = n,
            "ignored" => counts.ignored = n,
            _ => {}
        }
    }
    Some(counts)
}

/// Prints one line per test exe and the totals; fails if any exe failed.
fn report(exes: &[TestExe], outcomes: &[Outcome], built: Duration, ran: Duration) -> Result<()> {
    println!("\nWindows tests under wine ({TARGET}):");
    let mut total = Counts::default();
    let mut failed = Vec::new();
    for (exe, o) in exes.iter().zip(outcomes) {
        let counts = match o.counts {
            Some(c) => {
                total = total.add(c);
                format!(
                    "{} passed, {} failed, {} ignored",
                    c.passed, c.failed, c.ignored
                )
            }
            // A test with `harness = false` prints its own way.
            None if o.ok => "passed (no libtest summary)".to_string(),
            // Most often a DLL missing at load: wine then prints nothing.
            None => format!(
                "no test output; to see why: WINEPREFIX={} WINEDEBUG=err+all,+loaddll wine {}",
                prefix_dir().display(),
                exe.path.display()
            ),
        };
        let verdict = if o.ok { "ok" } else { "FAILED" };
        println!(
            "  {verdict:<6} {:<40} {counts} in {:.1}s{}",
            exe.name,
            o.elapsed.as_secs_f64(),
            if o.ok {
                String::new()
            } else {
                format!(" ({})", o.status)
            }
        );
        if !o.ok {
            failed.push(exe.name.as_str());
        }
    }
    println!(
        "  total: {} passed, {} failed, {} ignored in {} executables; build {:.0}s, tests {:.0}s",
        total.passed,
        total.failed,
        total.ignored,
        exes.len(),
        built.as_secs_f64(),
        ran.as_secs_f64()
    );
    if !failed.is_empty() {
        bail!("Windows tests failed under wine: {}", failed.join(", "));
    }
    Ok(())
}
