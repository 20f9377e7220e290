//! `deskrec-agent`: the agent engine, headless.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_agent::{Agent, AgentConfig, DataDir, enroll};

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

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
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
        Command::Status { data_dir } => {
            let report = deskrec_agent::status::report(&DataDir::new(data_dir))
                .context("cannot read the agent's state")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
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
