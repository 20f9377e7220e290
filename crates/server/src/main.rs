//! `deskrec-server`: runs the recording server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use deskrec_server::{AppState, Config, serve};

/// The Deskrec recording server.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file; defaults apply without one.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Overrides `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    deskrec_server::logging::init();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let state = tokio::task::spawn_blocking(move || AppState::open(&config, addr))
        .await?
        .context("cannot start")?;
    println!("deskrec-server listening on {addr}");
    println!("public URL: {}", state.public_url());
    println!("TLS certificate SHA-256: {}", state.tls().fingerprint);
    // Last: scripts read the lines above once they see this one.
    println!("TLS key pin: {}", state.tls().pin);
    serve(listener, state, shutdown_signal()).await;
    Ok(())
}

/// Completes on Ctrl-C, or SIGTERM on Unix (service managers send it).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
