//! `deskrec-agent`: the agent engine, headless.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_agent::{DataDir, enroll};

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
        #[arg(long, default_value_os_t = default_data_dir())]
        data_dir: PathBuf,
        /// The host name to register (default: this PC's).
        #[arg(long)]
        host: Option<String>,
    },
}

fn default_data_dir() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(r"C:\ProgramData\Deskrec")
    } else {
        PathBuf::from("/var/lib/deskrec-agent")
    }
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
    }
    Ok(())
}
