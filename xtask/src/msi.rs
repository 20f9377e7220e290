//! `cargo xtask msi [--sign CERT.p12] [--timestamp URL] [--version V]
//! [--wine]`: builds `target/msi/Deskrec-<version>-x64.msi` from
//! `installer/deskrec.wxs` with wixl (msitools), from the Windows build
//! `cargo xtask windows` makes, then checks its tables with msiinfo.
//!
//! - `--sign CERT.p12` signs the exes (before they are packed) and the MSI
//!   with osslsigncode; the PKCS#12 password comes from
//!   `$DESKREC_SIGN_PASSWORD` (empty if unset). `--timestamp URL` adds an
//!   RFC 3161 timestamp from that server. `osslsigncode verify` checks
//!   every signed file, against Debian's trust store or `--ca CA.pem` (a
//!   private or self-signed certificate's).
//! - `--wine` then installs, runs, upgrades and removes it under wine
//!   (`install.rs`); `cargo xtask windows` does that on every CI run.
//!
//! wixl reads a subset of WiX 3; what it cannot express is added to the
//! built database with msibuild ([`complete`]), each with its reason.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::util::{output, root, run as run_cmd, target_dir};
use crate::{setup, windows};

/// The UpgradeCode of every Deskrec MSI (installer/deskrec.wxs).
pub const UPGRADE_CODE: &str = "{64EB7C8F-C932-40B3-83B2-967C43D285C4}";
/// The public properties an administrator may set on the command line.
/// They must be "secure" to reach the elevated part of the install.
pub const PROPERTIES: &[&str] = &[
    "SERVER_URL",
    "SERVER_FINGERPRINT",
    "ENROLL_TOKEN",
    "AUTOSTART",
    "REMOVE_DATA",
    "WEBVIEW2_INSTALLER",
];
/// What the MSI installs in `Program Files\Deskrec`, and from where.
const FILES: &[&str] = &[
    "deskrec-tray.exe",
    "deskrec-agent.exe",
    "WebView2Loader.dll",
];
/// The checks of the properties, before anything changes: error actions
/// (type 19) named for what is wrong, so any MSI log says it (the text is
/// logged by Windows, the name by wine too). Name, condition, message.
const CHECKS: &[(&str, &str, &str)] = &[
    (
        "ServerUrlMustBeHttps",
        r#"SERVER_URL AND NOT (SERVER_URL << "https://")"#,
        "SERVER_URL must be the https:// address of the recording server, for example https://rec.example:8443 (it is \"[SERVER_URL]\").",
    ),
    (
        "ServerFingerprintMustBeSha256",
        r#"SERVER_FINGERPRINT AND NOT (SERVER_FINGERPRINT << "spki-sha256:" OR SERVER_FINGERPRINT << "sha256:")"#,
        "SERVER_FINGERPRINT must be the pin the server prints: spki-sha256:<64 hex digits> (it is \"[SERVER_FINGERPRINT]\").",
    ),
    (
        "ServerFingerprintIsNeeded",
        "SERVER_URL AND NOT SERVER_FINGERPRINT",
        "SERVER_FINGERPRINT is needed with SERVER_URL: the PC trusts only the server key it names.",
    ),
];

/// Files among [`FILES`] that are signed.
const EXES: &[&str] = &["deskrec-tray.exe", "deskrec-agent.exe"];

/// How to sign: a PKCS#12 file, its password, an optional timestamp
/// server.
#[derive(Clone, Debug)]
pub struct Signer {
    /// The certificate and its key.
    pub pkcs12: PathBuf,
    /// Its password.
    pub password: String,
    /// An RFC 3161 timestamp server's URL.
    pub timestamp: Option<String>,
    /// The CA certificate (PEM) `verify` checks the chain against, for a
    /// certificate Debian's trust store does not know (the tests' own).
    pub ca: Option<PathBuf>,
}

/// Entry point of `cargo xtask msi`.
pub fn run(args: &[String]) -> Result<()> {
    let mut version = workspace_version()?;
    let mut signer: Option<Signer> = None;
    let (mut timestamp, mut ca, mut wine) = (None, None, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().context("a value is missing");
        match arg.as_str() {
            "--sign" => {
                signer = Some(Signer {
                    pkcs12: value()?.into(),
                    password: std::env::var("DESKREC_SIGN_PASSWORD").unwrap_or_default(),
                    timestamp: None,
                    ca: None,
                })
            }
            "--timestamp" => timestamp = Some(value()?),
            "--ca" => ca = Some(PathBuf::from(value()?)),
            "--version" => version = value()?,
            "--wine" => wine = true,
            other => bail!(
                "usage: cargo xtask msi [--sign CERT.p12 [--timestamp URL] [--ca CA.pem]] [--version V] [--wine] (not {other:?})"
            ),
        }
    }
    if let Some(s) = signer.as_mut() {
        s.timestamp = timestamp;
        s.ca = ca;
    }
    setup::ensure(setup::BASE)?;
    setup::ensure(setup::WINDOWS)?;
    setup::ensure(setup::MSI)?;
    let bin = windows::app_exe_dir(true)?;
    let msi = build(&bin, &version, signer.as_ref(), &out_dir())?;
    println!("{}", msi.display());
    if wine {
        windows::with_wine(|prefix| crate::install::under_wine(prefix, &bin))?;
    }
    Ok(())
}

/// Where the MSIs go.
pub fn out_dir() -> PathBuf {
    target_dir().join("msi")
}

/// The workspace's version, which every crate and the MSI carry.
pub fn workspace_version() -> Result<String> {
    let manifest = fs::read_to_string(root().join("Cargo.toml"))?;
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package && let Some(v) = line.strip_prefix("version") {
            let v = v
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            return Ok(v.to_owned());
        }
    }
    bail!("Cargo.toml has no [workspace.package] version")
}

/// Builds `Deskrec-<version>-x64.msi` in `out` from the exes in `bin`,
/// signed when `signer` says so, and checks its tables.
pub fn build(bin: &Path, version: &str, signer: Option<&Signer>, out: &Path) -> Result<PathBuf> {
    // wixl names files relative to the directory it runs in: stage them.
    let stage = out.join(format!("stage-{version}"));
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    fs::create_dir_all(&stage)?;
    for file in FILES {
        let from = bin.join(file);
        let to = stage.join(file);
        match signer.filter(|_| EXES.contains(file)) {
            Some(s) => sign(s, &from, &to)?,
            None => {
                fs::copy(&from, &to).with_context(|| format!("{} is missing", from.display()))?;
            }
        }
    }
    fs::copy(root().join("LICENSE"), stage.join("LICENSE.txt"))?;
    fs::copy(
        root().join("assets/app/icon.ico"),
        stage.join("deskrec.ico"),
    )?;
    fs::copy(
        root().join("installer/deskrec.wxs"),
        stage.join("deskrec.wxs"),
    )?;

    let name = format!("Deskrec-{version}-x64.msi");
    let unsigned = stage.join(&name);
    run_cmd(
        Command::new("wixl")
            .current_dir(&stage)
            .args(["--arch", "x64", "-D"])
            .arg(format!("Version={version}"))
            .arg("-o")
            .arg(&unsigned)
            .arg("deskrec.wxs"),
    )?;
    complete(&unsigned)?;
    let msi = out.join(&name);
    match signer {
        Some(s) => {
            sign(s, &unsigned, &msi)?;
            for exe in EXES {
                verify(s, &stage.join(exe))?;
            }
            verify(s, &msi)?;
        }
        None => {
            fs::rename(&unsigned, &msi)?;
        }
    }
    check_tables(&msi, version)?;
    fs::remove_dir_all(&stage)?;
    Ok(msi)
}

/// What wixl 0.101 cannot write, added with msibuild's SQL:
/// - `SecureCustomProperties`: wixl has no `Property/@Secure`, and a public
///   property that is not secure never reaches the elevated install;
/// - the [`CHECKS`]: wixl has no `CustomAction/@Error`;
/// - the `Autostart` component's condition: wixl reads no `Condition`
///   under `Component` (nor under `Feature`);
/// - `RemoveExistingProducts` right after `InstallValidate` (WiX's
///   default): wixl ignores `MajorUpgrade/@Schedule` and places it after
///   the custom actions, inside the install.
fn complete(msi: &Path) -> Result<()> {
    let secure = format!(
        "WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;{}",
        PROPERTIES.join(";")
    );
    let mut queries = vec![
        format!(
            "UPDATE `Property` SET `Value` = '{secure}' WHERE `Property` = 'SecureCustomProperties'"
        ),
        "UPDATE `Component` SET `Condition` = 'AUTOSTART = \"1\"' WHERE `Component` = 'Autostart'"
            .to_owned(),
        "UPDATE `InstallExecuteSequence` SET `Sequence` = 1401 WHERE `Action` = 'RemoveExistingProducts'"
            .to_owned(),
    ];
    // Right after LaunchConditions (100), not at an uninstall.
    for (i, (name, condition, message)) in CHECKS.iter().enumerate() {
        // MSI SQL has no escape for a quote inside a string.
        let sql = |s: &str| {
            assert!(!s.contains('\''), "a quote in {s}");
            s.to_owned()
        };
        queries.push(format!(
            "INSERT INTO `CustomAction` (`Action`, `Type`, `Source`, `Target`) VALUES ('{name}', 19, '', '{}')",
            sql(message)
        ));
        queries.push(format!(
            "INSERT INTO `InstallExecuteSequence` (`Action`, `Condition`, `Sequence`) VALUES ('{name}', '{}', {})",
            sql(&format!("NOT REMOVE~=\"ALL\" AND {condition}")),
            101 + i
        ));
    }
    for q in queries {
        run_cmd(Command::new("msibuild").arg(msi).arg("-q").arg(q))?;
    }
    Ok(())
}

/// Signs `from` into `to` (an exe or an MSI).
fn sign(s: &Signer, from: &Path, to: &Path) -> Result<()> {
    let _ = fs::remove_file(to);
    let mut cmd = Command::new("osslsigncode");
    cmd.arg("sign")
        .arg("-pkcs12")
        .arg(&s.pkcs12)
        .args(["-pass", &s.password])
        .args(["-h", "sha256", "-n", "Deskrec"])
        .args(["-i", "https://github.com/deskrec/deskrec"]);
    if let Some(url) = &s.timestamp {
        cmd.args(["-ts", url]);
    }
    output(cmd.arg("-in").arg(from).arg("-out").arg(to))
        .with_context(|| format!("cannot sign {}", from.display()))?;
    Ok(())
}

/// `osslsigncode verify`: the signature, its digest and its chain.
fn verify(s: &Signer, file: &Path) -> Result<()> {
    let mut cmd = Command::new("osslsigncode");
    cmd.arg("verify");
    if let Some(ca) = &s.ca {
        cmd.arg("-CAfile").arg(ca);
    }
    let out = output(cmd.arg("-in").arg(file)).with_context(|| {
        format!(
            "osslsigncode verify: {} is not validly signed",
            file.display()
        )
    })?;
    ensure!(
        out.contains("Signature verification: ok"),
        "osslsigncode verify {}: {out}",
        file.display()
    );
    println!("     signed and verified: {}", file.display());
    Ok(())
}

/// A self-signed code-signing certificate for the tests, in `dir`.
pub fn test_signer(dir: &Path) -> Result<Signer> {
    fs::create_dir_all(dir)?;
    let (key, cert, p12) = (
        dir.join("key.pem"),
        dir.join("cert.pem"),
        dir.join("test.p12"),
    );
    let password = "deskrec-test";
    run_cmd(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7",
            ])
            .args(["-subj", "/CN=Deskrec test code signing"])
            .args(["-addext", "extendedKeyUsage=codeSigning"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    )?;
    run_cmd(
        Command::new("openssl")
            .args(["pkcs12", "-export", "-passout"])
            .arg(format!("pass:{password}"))
            .arg("-inkey")
            .arg(&key)
            .arg("-in")
            .arg(&cert)
            .arg("-out")
            .arg(&p12),
    )?;
    Ok(Signer {
        pkcs12: p12,
        password: password.into(),
        timestamp: None,
        ca: Some(cert),
    })
}

/// One table of `msi` as msiinfo exports it: rows of columns (the three
/// header lines dropped).
fn table(msi: &Path, name: &str) -> Result<Vec<Vec<String>>> {
    let text = output(Command::new("msiinfo").arg("export").arg(msi).arg(name))?;
    Ok(text
        .lines()
        .skip(3)
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect())
}

/// The row of `rows` whose first column is `key`.
fn row<'a>(rows: &'a [Vec<String>], key: &str) -> Option<&'a [String]> {
    rows.iter().find(|r| r[0] == key).map(Vec::as_slice)
}

/// The test of what the MSI holds, read back with msiinfo: the files and
/// their components, the `Run` value and its condition, the properties,
/// the upgrade rows and where the custom actions run.
pub fn check_tables(msi: &Path, version: &str) -> Result<()> {
    let mut wrong = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            wrong.push(what)
        }
    };

    let files = table(msi, "File")?;
    let components = table(msi, "Component")?;
    for name in FILES.iter().chain(&["LICENSE.txt"]) {
        let file = files.iter().find(|r| r[2] == *name);
        check(file.is_some(), format!("no File row for {name}"));
        let component = file.and_then(|f| row(&components, &f[1]));
        // 256: msidbComponentAttributes64bit (Program Files, not x86).
        check(
            component.is_some_and(|c| {
                c[2] == "INSTALLDIR" && c[3].parse::<u32>().is_ok_and(|a| a & 256 != 0)
            }),
            format!("{name}'s component is not a 64-bit one in INSTALLDIR: {component:?}"),
        );
    }
    let autostart = row(&components, "Autostart");
    check(
        autostart.is_some_and(|c| c[4] == "AUTOSTART = \"1\""),
        format!("the Run value's component is not conditioned on AUTOSTART: {autostart:?}"),
    );

    let registry = table(msi, "Registry")?;
    let run = registry.iter().find(|r| r[5] == "Autostart");
    check(
        run.is_some_and(|r| {
            r[1] == "2"
                && r[2] == r"Software\Microsoft\Windows\CurrentVersion\Run"
                && r[3] == "Deskrec"
                && r[4] == "\"[#TrayExe]\""
        }),
        format!("the HKLM Run value is not the tray exe: {run:?}"),
    );

    let properties = table(msi, "Property")?;
    let property = |name: &str| row(&properties, name).map(|r| r[1].clone());
    for (name, value) in [
        ("ProductVersion", version),
        ("UpgradeCode", UPGRADE_CODE),
        ("Manufacturer", "Deskrec"),
        ("AUTOSTART", "1"),
        ("ARPNOMODIFY", "1"),
        ("ARPNOREPAIR", "1"),
        ("ARPPRODUCTICON", "deskrec.ico"),
        ("ALLUSERS", "1"),
        ("MsiHiddenProperties", "ENROLL_TOKEN"),
    ] {
        let got = property(name);
        check(
            got.as_deref()
                .is_some_and(|g| g.eq_ignore_ascii_case(value)),
            format!("property {name} is {got:?}, not {value:?}"),
        );
    }
    let secure = property("SecureCustomProperties").unwrap_or_default();
    for name in PROPERTIES {
        check(
            secure.split(';').any(|p| p == *name),
            format!("{name} is not in SecureCustomProperties ({secure})"),
        );
    }

    let upgrades = table(msi, "Upgrade")?;
    let older = upgrades
        .iter()
        .find(|r| r[6] == "WIX_UPGRADE_DETECTED" && r[0].eq_ignore_ascii_case(UPGRADE_CODE));
    check(
        older.is_some_and(|r| r[1].is_empty() && r[2] == version),
        format!("no upgrade row replacing every older Deskrec: {older:?}"),
    );
    let newer = upgrades.iter().find(|r| r[6] == "WIX_DOWNGRADE_DETECTED");
    check(
        newer.is_some_and(|r| r[1] == version && r[2].is_empty()),
        format!("no row refusing a downgrade: {newer:?}"),
    );

    let actions = table(msi, "CustomAction")?;
    for name in ["DeskrecDeploy", "DeskrecRemoveData"] {
        let ca = row(&actions, name);
        // 3090 = 18 (an installed exe) + 1024 (deferred) + 2048 (as
        // LocalSystem, not the user).
        check(
            ca.is_some_and(|c| c[1] == "3090" && c[2] == "AgentExe"),
            format!("{name} is not a deferred LocalSystem run of the agent exe: {ca:?}"),
        );
    }
    let sequence = table(msi, "InstallExecuteSequence")?;
    let at =
        |action: &str| -> Option<u32> { row(&sequence, action).and_then(|r| r[2].parse().ok()) };
    let order = |a: &str, b: &str| at(a).zip(at(b)).is_some_and(|(a, b)| a < b);
    for (a, b) in [
        ("InstallValidate", "RemoveExistingProducts"),
        ("RemoveExistingProducts", "InstallInitialize"),
        ("InstallInitialize", "DeskrecRemoveData"),
        ("DeskrecRemoveData", "RemoveFiles"),
        ("InstallFiles", "DeskrecDeploy"),
        ("DeskrecDeploy", "InstallFinalize"),
        ("InstallFiles", "InstallWebView2"),
        ("InstallWebView2", "InstallFinalize"),
    ] {
        check(order(a, b), format!("{a} does not run before {b}"));
    }
    let condition_of = |action: &str| {
        row(&sequence, action)
            .map(|r| r[1].clone())
            .unwrap_or_default()
    };
    check(
        condition_of("DeskrecRemoveData").contains("NOT UPGRADINGPRODUCTCODE"),
        "REMOVE_DATA would act at an upgrade's removal of the old version".into(),
    );
    check(
        condition_of("InstallWebView2").contains("NOT WVRTINSTALLED"),
        "the WebView2 installer would run where the runtime is installed".into(),
    );
    for (name, condition, _) in CHECKS {
        let ca = row(&actions, name);
        check(
            ca.is_some_and(|c| c[1] == "19"),
            format!("{name} is not an error action: {ca:?}"),
        );
        check(
            order(name, "InstallInitialize") && condition_of(name).contains(condition),
            format!("{name} does not run before anything changes, on {condition}"),
        );
    }
    if !wrong.is_empty() {
        bail!(
            "{} is not what installer/deskrec.wxs means:\n  {}",
            msi.display(),
            wrong.join("\n  ")
        );
    }
    println!(
        "     {}: tables checked (files, components, Run value, properties, upgrade rows, actions)",
        msi.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::CHECKS;

    /// MSI SQL has no escape for a quote inside a string: a check's text
    /// with one fails only when the MSI is built, late in CI.
    #[test]
    fn no_check_holds_a_single_quote() {
        for (name, condition, message) in CHECKS {
            for text in [name, condition, message] {
                assert!(!text.contains('\''), "{name}: {text}");
            }
        }
    }
}
