//! `deskrec-tray`: Deskrec on the agent's desktop.
//!
//! A thin adapter over the agent engine (`deskrec-agent`): it runs the
//! engine in this process and turns its handle and events into a tray
//! icon, a menu, a status window and notifications. Every decision —
//! record or not, why, what to upload, what the icon says — is the
//! engine's.
//!
//! # Layout
//!
//! - `cli`: the command line;
//! - `app`: the Tauri app — the engine's start (enrolling first where the
//!   deployment settings say so), the tray, the run loop, a clean stop;
//! - `bridge`: engine events to tray, window and notifications;
//! - `tray`, `window`, `notify`: each surface; `commands` what the window
//!   may call;
//! - `desktop`: what the desktop offers (a display, a tray host);
//! - `logs`: the log files the diagnostics bundle carries.

// No console window behind the tray app on Windows.
#![cfg_attr(windows, windows_subsystem = "windows")]

mod app;
mod bridge;
mod cli;
mod commands;
mod desktop;
mod logs;
mod notify;
mod tray;
mod window;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Err(e) = logs::init(&cli.log_dir()) {
        eprintln!("deskrec-tray: cannot write logs: {e:#}");
    }
    // Tauri panics without a display; say so plainly instead.
    if let Err(why) = desktop::check_display() {
        tracing::error!("{why}");
        eprintln!("deskrec-tray: {why}");
        logs::flush();
        return ExitCode::from(2);
    }
    let code = match app::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("deskrec-tray: {e:#}");
            ExitCode::FAILURE
        }
    };
    logs::flush();
    code
}
