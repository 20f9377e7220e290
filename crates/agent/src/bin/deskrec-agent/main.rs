//! `deskrec-agent`: the agent engine, headless, and the Windows
//! installer's actions.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_agent::{Agent, AgentConfig, DataDir, deployment, enroll};

/// The Deskrec agent: records this PC's screen as the server's policy says
/// and uploads the recordings of contacts.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrolls this PC with a compact enrollment token from the server.
    Enroll {
        /// The token (`enrollment_token` of `POST /api/v1/admin/enrollment-tokens`).
        /// Tokens are base64url: one in 64 starts with `-`, which is a
        /// value here, not an option.
        #[arg(allow_hyphen_values = true)]
        token: String,
        /// The agent's data directory.
        #[arg(long, default_value_os_t = DataDir::platform_default().root().to_path_buf())]
        data_dir: PathBuf,
        /// The host name to register (default: this PC's).
        #[arg(long)]
        host: Option<String>,
    },
    /// Runs the agent until Ctrl-C or SIGTERM.
    Run {
        /// The agent's data directory.
        #[arg(long, default_value_os_t = DataDir::platform_default().root().to_path_buf())]
        data_dir: PathBuf,
        /// A fixed session user (default: follow the PC's sessions through
        /// logind or WTS, else the user running the agent).
        #[arg(long)]
        login: Option<String>,
        /// Seconds of padding before and after each contact.
        #[arg(long, default_value_t = 5.0)]
        pad_seconds: f64,
        /// What to record: this PC's screen, or test pictures.
        #[arg(long, value_enum, default_value_t = Source::Screen)]
        source: Source,
    },
    /// The installer's action (as LocalSystem): gives the data directory
    /// its access rights and, when a server is given, checks and writes the
    /// deployment settings the PC enrolls from. Unset values are empty.
    Deploy {
        /// The agent's data directory.
        #[arg(long, default_value_os_t = DataDir::platform_default().root().to_path_buf())]
        data_dir: PathBuf,
        /// `SERVER_URL`: the recording server's https:// address.
        #[arg(long, default_value = "")]
        server_url: String,
        /// `SERVER_FINGERPRINT`: its key pin, `spki-sha256:<hex>`.
        #[arg(long, default_value = "")]
        fingerprint: String,
        /// `ENROLL_TOKEN`: a fleet or one-time enrollment token (it may
        /// start with `-`).
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        token: String,
    },
    /// The uninstaller's action for `REMOVE_DATA`: `1` removes the data
    /// directory unless a contact's recording is not uploaded yet, `FORCE`
    /// removes it anyway, anything else keeps it.
    RemoveData {
        /// The agent's data directory.
        #[arg(long, default_value_os_t = DataDir::platform_default().root().to_path_buf())]
        data_dir: PathBuf,
        /// The value of `REMOVE_DATA`.
        #[arg(long, default_value = "")]
        mode: String,
    },
    /// Prints the agent's status as JSON (what the tray shows).
    Status {
        /// The agent's data directory.
        #[arg(long, default_value_os_t = DataDir::platform_default().root().to_path_buf())]
        data_dir: PathBuf,
    },
}

/// The picture source.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Source {
    /// The screen.
    Screen,
    /// Numbered test pictures (640x360), for trying the agent without a
    /// display.
    Synthetic,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Enroll {
            token,
            data_dir,
            host,
        } => {
            let dir = DataDir::new(data_dir);
            let host = host.unwrap_or_else(deskrec_agent::host_name);
            let identity =
                enroll::enroll(&dir, &dir.secret_store(), &token, &host, SystemClock.now())
                    .await
                    .context("enrollment failed")?;
            println!("{}", serde_json::to_string_pretty(&identity)?);
        }
        Command::Run {
            data_dir,
            login,
            pad_seconds,
            source,
        } => {
            let mut config = AgentConfig::new(DataDir::new(data_dir));
            config.login = login;
            if let Source::Synthetic = source {
                config.source = std::sync::Arc::new(|| {
                    let interval = std::time::Duration::from_millis(200);
                    Ok(Box::new(
                        deskrec_capture::SyntheticSource::new(640, 360)?
                            .with_fixed_clock(std::time::Instant::now(), interval),
                    ))
                });
            }
            config.pad = std::time::Duration::try_from_secs_f64(pad_seconds)
                .context("--pad-seconds must be a non-negative number")?;
            let agent = Agent::start(config)
                .await
                .context("the agent cannot start")?;
            shutdown_signal().await;
            tracing::info!("stopping");
            agent.shutdown().await;
        }
        Command::Deploy {
            data_dir,
            server_url,
            fingerprint,
            token,
        } => {
            let dir = DataDir::new(data_dir);
            installer_step(
                &dir,
                "deploy",
                deploy(&dir, &server_url, &fingerprint, &token).await,
            )?;
        }
        Command::RemoveData { data_dir, mode } => {
            let dir = DataDir::new(data_dir);
            let force = match mode.trim() {
                "1" => false,
                m if m.eq_ignore_ascii_case("force") => true,
                _ => return Ok(()),
            };
            match deployment::remove_data(&dir, force) {
                Ok(removal) => {
                    tracing::info!(?removal, dir = %dir.root().display(), "data removed")
                }
                // Kept, so the reason goes into its install log.
                Err(e) => installer_step(
                    &dir,
                    "remove-data",
                    Err(anyhow::Error::new(e).context(format!("{} is kept", dir.root().display()))),
                )?,
            }
        }
        Command::Status { data_dir } => {
            let report = deskrec_agent::status::report(&DataDir::new(data_dir))
                .context("cannot read the agent's state")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

/// The deploy action: the data directory's rights, then the settings when
/// a server is named (an upgrade passes none and keeps the PC's), then one
/// try to enroll with them, as LocalSystem: the one time something that
/// may read the token runs without a person, so most PCs are enrolled
/// before anyone logs on. A try that fails (the server out of reach, a
/// wrong fingerprint) does not fail the install: the tray app tries again
/// where it may read the settings, and says why where it may not.
async fn deploy(dir: &DataDir, url: &str, fingerprint: &str, token: &str) -> Result<String> {
    let path = deployment::prepare(dir)?;
    if url.trim().is_empty() {
        if !fingerprint.trim().is_empty() || !token.trim().is_empty() {
            anyhow::bail!("SERVER_FINGERPRINT or ENROLL_TOKEN is given without SERVER_URL");
        }
        return Ok(format!(
            "data directory ready; deployment settings unchanged ({})",
            path.display()
        ));
    }
    let settings = deployment::Deployment::new(url, fingerprint, token)?;
    settings.write(&path)?;
    let written = format!(
        "deployment settings written to {} (server {})",
        path.display(),
        settings.server_url
    );
    let enrolled =
        tokio::time::timeout(ENROLL_AT_INSTALL, deployment::enroll(dir, &settings)).await;
    Ok(match enrolled {
        Ok(Ok(done)) => format!("{written}; {done}"),
        Ok(Err(e)) => format!("{written}; not enrolled yet ({e}): the tray app tries again"),
        Err(_) => format!(
            "{written}; not enrolled yet (no answer in {ENROLL_AT_INSTALL:?}): the tray app tries again"
        ),
    })
}

/// How long the install waits for the server to enroll the PC.
const ENROLL_AT_INSTALL: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs an installer action and appends its outcome to the data
/// directory's `install.log`: an MSI does not log what an exe action
/// prints, and this is where IT looks when an install fails (its exit code
/// is in the MSI log).
fn installer_step(dir: &DataDir, what: &str, outcome: Result<String>) -> Result<()> {
    let line = match &outcome {
        Ok(done) => format!("{what}: {done}"),
        Err(e) => format!("{what} failed: {e:#}"),
    };
    tracing::info!("{line}");
    let log = dir.root().join("install.log");
    let stamp = jiff::Timestamp::now();
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, format!("{stamp} {line}\n").as_bytes())
        });
    if let Err(e) = appended {
        tracing::warn!(error = %e, log = %log.display(), "cannot append to the install log");
    }
    outcome.map(drop)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    /// Seen in CI: the MSI passed a token starting with `-` and the
    /// install failed on "unexpected argument '-d'".
    #[test]
    fn a_token_that_starts_with_a_dash_is_a_token() {
        let token = "-dTRcXJEIFNF0NtWXXi4410kiBAEeU9JwLB_ryWrKBg";
        let cli = Cli::try_parse_from(["deskrec-agent", "enroll", token]).unwrap();
        assert!(matches!(cli.command, Command::Enroll { token: t, .. } if t == token));
        let deploy = [
            "deskrec-agent",
            "deploy",
            "--server-url",
            "https://x",
            "--token",
            token,
        ];
        let cli = Cli::try_parse_from(deploy).unwrap();
        assert!(matches!(cli.command, Command::Deploy { token: t, .. } if t == token));
    }
}
