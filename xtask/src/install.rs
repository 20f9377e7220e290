//! The MSI as IT uses it, under wine beside the real (Linux) server: built
//! and signed with a test certificate, refused on a malformed property,
//! installed silently with a fleet token, the installed tray app recording
//! (marked blank frames: wine has no Windows Graphics Capture) and
//! uploading a contact, upgraded with a recording still to upload, which
//! then uploads, and removed with and without `REMOVE_DATA`.
//!
//! Wine enforces no access rights, so what `deploy` sets is checked on
//! Windows only; this checks everything else the MSI does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::demo::{Api, Server};
use crate::msi;
use crate::util::{cache_dir, output, target_dir};
use crate::windows::{windows_path, wine_env};

/// The HKLM `Run` key.
const RUN_KEY: &str = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Run";
/// Where Add/Remove Programs lists installed products.
const ARP_KEY: &str = r"HKEY_LOCAL_MACHINE\Software\Microsoft\Windows\CurrentVersion\Uninstall";
/// The login the tray app records as.
const LOGIN: &str = "ann";

/// One wine prefix with Deskrec in it, and where things are.
struct Pc<'a> {
    prefix: &'a Path,
    work: PathBuf,
}

impl Pc<'_> {
    /// `C:\Program Files\Deskrec` on this machine.
    fn program_dir(&self) -> PathBuf {
        self.prefix.join("drive_c/Program Files/Deskrec")
    }

    /// `%ProgramData%\Deskrec`.
    fn data_dir(&self) -> PathBuf {
        self.prefix.join("drive_c/ProgramData/Deskrec")
    }

    /// `msiexec ARGS /qn /l*v LOG`; its status and its log.
    fn msiexec(&self, what: &str, args: &[&str]) -> Result<(ExitStatus, String)> {
        let log = self.work.join(format!("msiexec-{what}.log"));
        let _ = fs::remove_file(&log);
        println!("     msiexec {what}: {}", args.join(" "));
        let status = wine_env(&mut Command::new("timeout"), self.prefix)
            .args(["--kill-after=10s", "300s", "wine", "msiexec"])
            .args(args)
            .args(["/qn", "/l*v"])
            .arg(windows_path(&log))
            .status()
            .context("could not start wine msiexec")?;
        // msiexec writes its log in UTF-16 on Windows, in UTF-8 under wine:
        // read either.
        let bytes = fs::read(&log).unwrap_or_default();
        let text = if bytes.starts_with(&[0xff, 0xfe]) {
            let units: Vec<u16> = bytes[2..]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Ok((status, text))
    }

    /// Installs `msi` with `properties`; it must succeed.
    fn install(&self, what: &str, msi: &Path, properties: &[String]) -> Result<String> {
        let mut args = vec!["/i".to_owned(), windows_path(msi)];
        args.extend(properties.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, log) = self.msiexec(what, &args)?;
        ensure!(status.success(), "msiexec {what}: {status}\n{}", tail(&log));
        Ok(log)
    }

    /// Uninstalls `msi` with `properties`; it must succeed.
    fn uninstall(&self, what: &str, msi: &Path, properties: &[&str]) -> Result<()> {
        let path = windows_path(msi);
        let mut args = vec!["/x", &path];
        args.extend(properties);
        let (status, log) = self.msiexec(what, &args)?;
        ensure!(status.success(), "msiexec {what}: {status}\n{}", tail(&log));
        Ok(())
    }

    /// The HKLM `Run` value's data, if there is one.
    fn run_value(&self) -> Result<Option<String>> {
        let out = wine_env(&mut Command::new("wine"), self.prefix)
            .args(["reg", "query", RUN_KEY, "/v", "Deskrec"])
            .output()
            .context("could not run wine reg")?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .find(|l| l.contains("Deskrec") && l.contains("REG_SZ"))
            .and_then(|l| l.split("REG_SZ").nth(1))
            .map(|v| v.trim().to_owned()))
    }

    /// `install.log` in the data directory: what the installer's actions
    /// and the service did.
    fn install_log(&self) -> String {
        fs::read_to_string(self.data_dir().join("install.log")).unwrap_or_default()
    }

    /// The Add/Remove Programs entries named Deskrec: each one's values
    /// (`DisplayVersion`, `Publisher`, `NoModify`, ...), and its key's
    /// name, the product code, as `ProductCode`.
    fn arp_entries(&self) -> Result<Vec<std::collections::BTreeMap<String, String>>> {
        let query = |key: &str| -> Result<String> {
            let out = wine_env(&mut Command::new("wine"), self.prefix)
                .args(["reg", "query", key])
                .output()
                .context("could not run wine reg")?;
            Ok(String::from_utf8_lossy(&out.stdout).replace('\r', ""))
        };
        let mut entries = Vec::new();
        for key in query(ARP_KEY)?
            .lines()
            .filter(|l| l.starts_with(ARP_KEY) && l.len() > ARP_KEY.len())
        {
            let mut values: std::collections::BTreeMap<String, String> = query(key)?
                .lines()
                .filter_map(|l| {
                    let mut parts = l.trim().splitn(3, "    ");
                    let (name, _kind) = (parts.next()?, parts.next()?);
                    Some((
                        name.to_owned(),
                        parts.next().unwrap_or("").trim().to_owned(),
                    ))
                })
                .collect();
            if values.get("DisplayName").is_some_and(|n| n == "Deskrec") {
                let code = key.rsplit('\\').next().unwrap_or_default();
                values.insert("ProductCode".to_owned(), code.to_owned());
                entries.push(values);
            }
        }
        Ok(entries)
    }

    /// Checks there is one Add/Remove Programs entry, for `version`.
    fn one_arp_entry(&self, version: &str) -> Result<bool> {
        let entries = self.arp_entries()?;
        let ok = entries.len() == 1 && {
            let e = &entries[0];
            let is = |k: &str, v: &str| e.get(k).is_some_and(|x| x == v);
            is("DisplayVersion", version)
                && is("Publisher", "Deskrec")
                && is("NoModify", "0x1")
                && is("NoRepair", "0x1")
        };
        if !ok {
            println!("     Add/Remove Programs: {entries:?}");
        }
        Ok(ok)
    }

    /// Runs the installed tray app for up to `seconds` in the background:
    /// no data directory or deployment file on its command line, as the
    /// `Run` value starts it; only a fixed login and its logs here.
    fn start_tray(&self, name: &str, seconds: u64) -> Result<Tray> {
        let logs = self.work.join(format!("tray-{name}-logs"));
        let _ = fs::remove_dir_all(&logs);
        let child = wine_env(&mut Command::new("timeout"), self.prefix)
            .args(["--kill-after=10s", &format!("{}s", seconds + 60), "wine"])
            .arg(r"C:\Program Files\Deskrec\deskrec-tray.exe")
            .args([
                "--login",
                LOGIN,
                "--show",
                "--exit-after",
                &seconds.to_string(),
            ])
            .arg("--log-dir")
            .arg(windows_path(&logs))
            .spawn()
            .context("could not start the installed tray app under wine")?;
        Ok(Tray {
            child,
            logs,
            deadline: Instant::now() + Duration::from_secs(seconds + 30),
        })
    }

    /// The agent's contacts not uploaded yet, as the installed agent's
    /// `status` reports them.
    fn pending_contacts(&self) -> Result<u64> {
        let out = output(
            wine_env(&mut Command::new("wine"), self.prefix)
                .arg(r"C:\Program Files\Deskrec\deskrec-agent.exe")
                .arg("status"),
        )?;
        let status: Value = serde_json::from_str(&out)?;
        let c = &status["contacts"];
        Ok(["queued", "splicing", "uploading"]
            .iter()
            .map(|k| c[k].as_u64().unwrap_or(0))
            .sum())
    }
}

/// A running tray app.
struct Tray {
    child: std::process::Child,
    logs: PathBuf,
    /// Well after it should have quit.
    deadline: Instant,
}

impl Tray {
    /// Waits for it to quit; its status and its log.
    fn wait(mut self) -> Result<(ExitStatus, String)> {
        let status = self.child.wait()?;
        ensure!(
            Instant::now() < self.deadline,
            "the tray app did not quit when told ({status}): see its log in {}",
            self.logs.display()
        );
        let log = fs::read_dir(&self.logs)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        Ok((status, log))
    }
}

/// Whether the tray app stopped cleanly: it logged its clean stop (the
/// engine stopped, its files closed) and exited before [`Tray::wait`]'s
/// deadline. The exit status itself is only reported: under wine about one
/// exit in three after the clean stop ends in a kill or a fault in wine's
/// process teardown (measured: 4 of 12 runs of the installed exe, 1 of 6
/// of the exe in the target directory; statuses 137 and others), apparently
/// while the blank-frame source's Direct3D device, on Mesa's llvmpipe
/// threads that wine does not own, is torn down. A Windows ExitProcess ends
/// those threads itself.
fn exited_cleanly(status: ExitStatus, log: &str) -> bool {
    let stopped = log.contains("deskrec-tray stopped");
    if stopped && !status.success() {
        println!(
            "     (the tray app stopped cleanly, then its process ended with {status} under wine: see exited_cleanly)"
        );
    }
    stopped
}

/// The last lines of an msiexec log, for an error message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Checks `checks` (what, whether it holds), naming every one that fails.
fn require(stage: &str, checks: &[(&str, bool)], log: &str) -> Result<()> {
    let failed: Vec<&str> = checks.iter().filter(|c| !c.1).map(|c| c.0).collect();
    if !failed.is_empty() {
        println!("{log}");
        bail!("{stage}: not {}", failed.join(", not "));
    }
    println!(
        "     {stage}: {}",
        checks.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// Imports a contact of [`LOGIN`] from `from` to `to` seconds from now.
fn import_contact(api: &Api, id: &str, from: i64, to: i64) -> Result<()> {
    let now = jiff::Timestamp::now();
    let at = |s: i64| (now + jiff::SignedDuration::from_secs(s)).to_string();
    api.admin(
        "POST",
        "/contacts",
        json!({"contacts": [{
            "contact_id": id, "windows_login": LOGIN,
            "start": at(from), "end": at(to),
            "direction": "inbound", "queue": "msi"
        }]}),
    )?;
    Ok(())
}

/// Waits until the server has verified the contact's upload.
fn wait_uploaded(api: &Api, id: &str, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let c = api.admin("GET", &format!("/contacts/{id}"), Value::Null)?;
        match c["status"].as_str() {
            Some("uploaded") => return Ok(()),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
            _ => bail!("contact {id} was not uploaded in {limit:?}: {c}"),
        }
    }
}

/// The whole flow; `bin` holds the Windows exes.
pub fn under_wine(prefix: &Path, bin: &Path) -> Result<()> {
    let work = cache_dir().join("msi-wine");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    let pc = Pc {
        prefix,
        work: work.clone(),
    };

    // The MSI, signed with a test certificate, and a higher version of it
    // for the upgrade.
    let version = msi::workspace_version()?;
    let next = next_version(&version)?;
    let signer = msi::test_signer(&work.join("cert"))?;
    let out = work.join("msi");
    let first = msi::build(bin, &version, Some(&signer), &out)?;
    let second = msi::build(bin, &next, None, &out)?;

    // Whatever an earlier, interrupted run left, by its product code: each
    // build of the MSI has a new one (`Product Id="*"`), so this run's
    // packages would not find the last run's product to remove.
    for entry in pc.arp_entries()? {
        let code = &entry["ProductCode"];
        let _ = pc.msiexec("cleanup", &["/x", code]);
    }
    let left = pc.arp_entries()?;
    ensure!(
        left.is_empty() && !pc.program_dir().exists(),
        "an earlier run's Deskrec is still installed in the wine prefix {} \
         (Add/Remove Programs: {left:?}); remove the prefix and run again",
        pc.prefix.display(),
    );
    let _ = fs::remove_dir_all(pc.data_dir());

    // The real server, on a port it keeps across a restart.
    crate::util::run(crate::util::cargo().args([
        "build",
        "-p",
        "deskrec-server",
        "-p",
        "deskrec-agent",
    ]))?;
    let server_bin = target_dir().join("debug/deskrec-server");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_on(&server_bin, &work.join("server"), &listen)?;
    let api = Api::new(&server)?;
    api.admin(
        "PATCH",
        "/settings",
        json!({"segment_seconds": 10, "gop_seconds": 2}),
    )?;
    api.recorded_agent("Ann", LOGIN)?;
    let fleet = api.admin(
        "POST",
        "/fleet-tokens",
        json!({"name": "wine site", "max_uses": 5}),
    )?;
    let token = fleet["token"]
        .as_str()
        .context("no fleet token")?
        .to_owned();
    let fingerprint = server.pin.clone();
    let props = |url: &str, fp: &str| {
        vec![
            format!("SERVER_URL={url}"),
            format!("SERVER_FINGERPRINT={fp}"),
            format!("ENROLL_TOKEN={token}"),
        ]
    };

    // 1. A malformed SERVER_URL fails the install, says why in the MSI
    //    log, and changes nothing.
    let mut args = vec!["/i".to_owned(), windows_path(&first)];
    args.extend(props("http//rec.example", &fingerprint));
    let (status, log) = pc.msiexec(
        "bad-url",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    require(
        "a malformed SERVER_URL",
        &[
            ("failed the install", !status.success()),
            // The failing check's name; Windows logs its text too.
            (
                "said why in the MSI log",
                log.contains("ServerUrlMustBeHttps"),
            ),
            ("installed no files", !pc.program_dir().exists()),
            ("wrote no Run value", pc.run_value()?.is_none()),
        ],
        &tail(&log),
    )?;

    // 2. A wrong fingerprint (and AUTOSTART=0): installed, but enrollment
    //    fails and the tray says so; then REMOVE_DATA=1 removes the data
    //    with the program.
    let wrong = format!("spki-sha256:{}", "0".repeat(64));
    let mut wrong_props = props(&server.url, &wrong);
    wrong_props.push("AUTOSTART=0".into());
    pc.install("wrong-fingerprint", &first, &wrong_props)?;
    let autostart = pc.run_value()?;
    let (status, log) = pc.start_tray("wrong-fingerprint", 12)?.wait()?;
    let install_log = pc.install_log();
    require(
        "a wrong SERVER_FINGERPRINT",
        &[
            (
                "installed",
                pc.program_dir().join("deskrec-tray.exe").exists(),
            ),
            ("wrote no Run value with AUTOSTART=0", autostart.is_none()),
            (
                "not enrolled at install",
                install_log.contains("not enrolled yet"),
            ),
            ("the tray ran", exited_cleanly(status, &log)),
            ("its enrollment failed", log.contains("enrolling with")),
            (
                "the tray showed why",
                log.contains("tray shows") && log.contains("fingerprint"),
            ),
        ],
        &format!("{install_log}\n{log}"),
    )?;
    pc.uninstall("remove-data", &first, &["REMOVE_DATA=1"])?;
    require(
        "uninstall with REMOVE_DATA=1",
        &[
            ("removed the program", !pc.program_dir().exists()),
            ("removed the Run value", pc.run_value()?.is_none()),
            ("removed the data", !pc.data_dir().exists()),
        ],
        "",
    )?;

    // 3. The silent install IT runs: it writes the settings and enrolls
    //    the PC with the fleet token as LocalSystem.
    let log = pc.install("install", &first, &props(&server.url, &fingerprint))?;
    let install_log = pc.install_log();
    let settings =
        fs::read_to_string(pc.data_dir().join("config/deployment.toml")).unwrap_or_default();
    let run = pc.run_value()?.unwrap_or_default();
    let installed = |f: &str| pc.program_dir().join(f).exists();
    require(
        "msiexec /i /qn SERVER_URL SERVER_FINGERPRINT ENROLL_TOKEN",
        &[
            ("installed the tray app", installed("deskrec-tray.exe")),
            ("installed the agent", installed("deskrec-agent.exe")),
            (
                "installed WebView2Loader.dll",
                installed("WebView2Loader.dll"),
            ),
            ("installed the licence", installed("LICENSE.txt")),
            (
                "wrote the Run value",
                run.contains(r"C:\Program Files\Deskrec\deskrec-tray.exe"),
            ),
            (
                "listed itself in Add/Remove Programs (version, publisher, no Modify)",
                pc.one_arp_entry(&version)?,
            ),
            (
                "wrote the deployment settings",
                settings.contains(&server.url) && settings.contains(&token),
            ),
            (
                "enrolled the PC with the fleet token",
                install_log.contains("enrolled as"),
            ),
            // Not: the token out of the MSI log. Windows hides it
            // (MsiHiddenProperties, checked in the tables); wine's msi
            // ignores that property and logs it.
        ],
        &format!("{install_log}\n{}", tail(&log)),
    )?;
    let uses = api.admin(
        "GET",
        &format!("/fleet-tokens/{}/uses", fleet["id"]),
        Value::Null,
    )?;
    ensure!(
        uses.as_array().is_some_and(|u| u
            .iter()
            .any(|u| u["outcome"] == "enrolled" || u["device_id"].is_string())),
        "the server's audit has no enrollment with the fleet token: {uses}"
    );

    // 4. The installed tray app records (marked blank frames: no capture
    //    method starts under wine) and uploads a contact.
    let tray = pc.start_tray("record", 75)?;
    std::thread::sleep(Duration::from_secs(25));
    import_contact(&api, "msi-1", -15, -5)?;
    wait_uploaded(&api, "msi-1", Duration::from_secs(45))?;
    // A second contact, then the server goes away: its recording waits on
    // the PC through the upgrade.
    import_contact(&api, "msi-2", -10, -4)?;
    std::thread::sleep(Duration::from_secs(3));
    drop(server);
    let (status, log) = tray.wait()?;
    let pending = pc.pending_contacts()?;
    require(
        "the installed tray app",
        &[
            ("exited cleanly", exited_cleanly(status, &log)),
            ("created its tray icon", log.contains("tray icon created")),
            (
                "recorded marked blank frames",
                log.contains("screen capture cannot start; recording marked blank frames"),
            ),
            (
                "said in its tooltip that the window needs WebView2",
                log.contains("the status window cannot open")
                    && log.contains("The window needs the Microsoft Edge WebView2 runtime")
                    && !log.contains("window opened"),
            ),
            ("holds a contact not uploaded yet", pending >= 1),
            ("stopped cleanly", log.contains("deskrec-tray stopped")),
            ("did not panic", !log.contains("panicked")),
        ],
        &log,
    )?;

    // 5. A major upgrade keeps the enrollment, the data and the recording
    //    not uploaded yet, which uploads once the server is back.
    pc.install("upgrade", &second, &[])?;
    let settings_after =
        fs::read_to_string(pc.data_dir().join("config/deployment.toml")).unwrap_or_default();
    require(
        "the upgrade",
        &[
            ("kept the program", installed("deskrec-tray.exe")),
            (
                "replaced the old version in Add/Remove Programs",
                pc.one_arp_entry(&next)?,
            ),
            ("kept the Run value", pc.run_value()?.is_some()),
            ("kept the deployment settings", settings_after == settings),
            (
                "kept the contact not uploaded",
                pc.pending_contacts()? == pending,
            ),
        ],
        "",
    )?;
    let server = Server::start_on(&server_bin, &work.join("server"), &listen)?;
    let api = Api::new(&server)?;
    let tray = pc.start_tray("upgraded", 60)?;
    let uploaded = wait_uploaded(&api, "msi-2", Duration::from_secs(50));
    let (status, log) = tray.wait()?;
    require(
        "after the upgrade",
        &[
            (
                "the tray ran on the same enrollment",
                !log.contains("enrolling with"),
            ),
            ("the recording uploaded", uploaded.is_ok()),
            ("the tray exited cleanly", exited_cleanly(status, &log)),
        ],
        &format!("{log}\n{uploaded:?}"),
    )?;

    // 6. Uninstall keeps the data.
    pc.uninstall("uninstall", &second, &[])?;
    require(
        "uninstall",
        &[
            ("removed the program", !pc.program_dir().exists()),
            ("removed the Run value", pc.run_value()?.is_none()),
            ("left Add/Remove Programs", pc.arp_entries()?.is_empty()),
            ("kept the data", pc.data_dir().join("agent.db").exists()),
        ],
        "",
    )?;
    fs::remove_dir_all(pc.data_dir())?;
    drop(server);
    Ok(())
}

/// `version` with its patch number one higher.
fn next_version(version: &str) -> Result<String> {
    let (rest, patch) = version
        .rsplit_once('.')
        .context("a version without a dot")?;
    let patch: u32 = patch
        .parse()
        .with_context(|| format!("version {version}"))?;
    Ok(format!("{rest}.{}", patch + 1))
}
