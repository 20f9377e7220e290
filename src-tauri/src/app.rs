//! The Tauri app: the tray, the engine's start (enrolling first when the
//! deployment settings say so), the run loop and a clean stop.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use deskrec_agent::{Absence, Agent, AgentConfig, AgentError, AgentHandle, DataDir, Status};
use tauri::{AppHandle, Manager, RunEvent};

use crate::cli::{Cli, Source};
use crate::notify::Notifier;
use crate::tray::{Tray, entry};
use crate::window::View;

/// How long an enrollment that failed on the network waits to try again.
const ENROLL_RETRY: Duration = Duration::from_secs(60);

/// What the app's parts share (Tauri's managed state).
pub struct Shared {
    /// The running engine's handle, once it runs.
    handle: RwLock<Option<AgentHandle>>,
    /// The engine itself, for a clean stop.
    agent: tokio::sync::Mutex<Option<Agent>>,
    /// The status while there is no engine (starting, not enrolled, …).
    absent: RwLock<Status>,
    /// The tray icon, once created.
    tray: Mutex<Option<Tray>>,
    /// Notifications, rate-limited.
    pub notifier: Mutex<Notifier>,
    data_dir: DataDir,
    log_dir: PathBuf,
}

impl Shared {
    fn new(cli: &Cli) -> Self {
        let data_dir = cli.data_dir();
        let mut starting = Status::without_engine(
            &Absence::Failed {
                message: String::new(),
            },
            &data_dir,
        );
        starting.indicator = deskrec_agent::Indicator {
            kind: deskrec_agent::IndicatorKind::NotRecording,
            headline: "Starting".into(),
            detail: "Deskrec is starting.".into(),
        };
        starting.reason = "starting".into();
        starting.last_error = None;
        Self {
            handle: RwLock::new(None),
            agent: tokio::sync::Mutex::new(None),
            absent: RwLock::new(starting),
            tray: Mutex::new(None),
            notifier: Mutex::new(Notifier::default()),
            data_dir,
            log_dir: cli.log_dir(),
        }
    }

    /// The running engine, if any.
    pub fn handle(&self) -> Option<AgentHandle> {
        self.handle.read().expect("handle lock").clone()
    }

    /// The status now: the engine's, or why there is none.
    pub fn status(&self) -> Status {
        match self.handle() {
            Some(h) => h.status(),
            None => self.absent.read().expect("status lock").clone(),
        }
    }

    /// Where the log files are.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Where "Save diagnostics" writes: the user's Downloads, else home.
    pub fn bundle_dir(&self) -> PathBuf {
        let home = std::env::var_os(if cfg!(windows) { "USERPROFILE" } else { "HOME" })
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let downloads = home.join("Downloads");
        if downloads.is_dir() { downloads } else { home }
    }

    /// Shows `status` in the tray.
    pub fn show_in_tray(&self, app: &AppHandle, status: &Status) {
        if let Some(t) = self.tray.lock().expect("tray lock").as_mut() {
            t.show(app, status);
        }
    }
}

/// Runs the app until it is quit (where the policy allows), the session
/// ends or the process is told to stop.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // One runtime for Tauri and the engine.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("deskrec")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tauri::async_runtime::set(runtime.handle().clone());
    let shared = Shared::new(&cli);
    tracing::info!(data_dir = %shared.data_dir.root().display(), version = env!("CARGO_PKG_VERSION"), "deskrec-tray starting");
    let app = tauri::Builder::default()
        // First: a second start in this logon session shows the first
        // one's window, and exits.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tracing::info!("started again: showing the window");
            crate::window::open(app, View::Status);
        }))
        .manage(shared)
        .invoke_handler(tauri::generate_handler![
            crate::commands::status,
            crate::commands::queue,
            crate::commands::retry_now,
            crate::commands::diagnostics,
            crate::commands::save_diagnostics,
            crate::commands::pause,
            crate::commands::resume,
            crate::commands::quit,
        ])
        .setup(move |app| {
            let handle = app.handle().clone();
            let shared = app.state::<Shared>();
            let tray = Tray::create(&handle, &shared.status())?;
            *shared.tray.lock().expect("tray lock") = Some(tray);
            tracing::info!("tray icon created");
            #[cfg(windows)]
            crate::notify::register_app_id(&std::env::current_exe().unwrap_or_default());
            tauri::async_runtime::spawn(tray_host_check(handle.clone()));
            tauri::async_runtime::spawn(start_engine(handle.clone(), cli.clone()));
            tauri::async_runtime::spawn(stop_on_signal(handle.clone()));
            if let Some(seconds) = cli.exit_after {
                let app = handle.clone();
                tauri::async_runtime::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                    tracing::info!(seconds, "--exit-after: quitting");
                    quit(&app);
                });
            }
            if cli.show {
                crate::window::open(&handle, View::Status);
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .context("cannot start the tray app")?;
    app.run(|app, event| match event {
        // The last window closed: the app lives on in the tray.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        RunEvent::Exit => stop_engine(app),
        _ => {}
    });
    Ok(())
}

/// A tray menu entry was clicked.
pub fn menu_clicked(app: &AppHandle, id: &str) {
    tracing::info!(entry = id, "menu");
    match id {
        entry::OPEN => crate::window::open(app, View::Status),
        entry::DIAGNOSTICS => crate::window::open(app, View::Diagnostics),
        entry::QUIT if app.state::<Shared>().status().allow_quit => quit(app),
        entry::RESUME => pause_or_resume(app, None),
        _ => {
            if let Some(reason) = id.strip_prefix(entry::PAUSE_FOR) {
                pause_or_resume(app, Some(reason.to_owned()));
            }
        }
    }
}

/// Pauses recording for `reason` (`None`: resumes the agent's own pause),
/// as the window's commands do; the menu shows the result when the
/// engine's status changes. A refusal is told in a notification, in the
/// engine's words: the menu has nowhere else to say it.
fn pause_or_resume(app: &AppHandle, reason: Option<String>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shared = app.state::<Shared>();
        let (result, title) = match reason {
            Some(reason) => (
                crate::commands::pause(shared.clone(), reason)
                    .await
                    .map(drop),
                "Recording not paused",
            ),
            None => (
                crate::commands::resume(shared.clone()).await.map(drop),
                "Recording not resumed",
            ),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "{title}");
            shared.notifier.lock().expect("notifier lock").send(
                "pause:failed",
                title,
                &e.to_string(),
            );
        }
    });
}

/// Quits: the engine finishes its segment first (see [`stop_engine`]).
pub fn quit(app: &AppHandle) {
    tracing::info!("quitting");
    app.exit(0);
}

/// The window could not be created (on Windows: no WebView2 runtime).
/// Recording goes on; the tray's tooltip and a notification say so.
pub fn window_failed(app: &AppHandle, why: &str) {
    tracing::error!(error = why, "the status window cannot open");
    let shared = app.state::<Shared>();
    let body = format!(
        "The Deskrec window cannot open ({why}). Recording goes on. Ask IT to install the Microsoft Edge WebView2 runtime."
    );
    shared.notifier.lock().expect("notifier lock").send(
        "window",
        "Deskrec window unavailable",
        &body,
    );
    // The icon says so too, for as long as the app runs.
    let status = shared.status();
    if let Some(t) = shared.tray.lock().expect("tray lock").as_mut() {
        t.add_note(
            app,
            "The window needs the Microsoft Edge WebView2 runtime: ask IT to install it.",
            &status,
        );
    }
}

/// Starts the engine, enrolling first if the PC is not enrolled and the
/// command line or the deployment settings say how.
async fn start_engine(app: AppHandle, cli: Cli) {
    let dir = cli.data_dir();
    let absence = loop {
        match Agent::start(config(&cli, &dir)).await {
            Ok(agent) => {
                let handle = agent.handle();
                let shared = app.state::<Shared>();
                *shared.agent.lock().await = Some(agent);
                *shared.handle.write().expect("handle lock") = Some(handle.clone());
                crate::bridge::run(app.clone(), handle).await;
                return;
            }
            Err(AgentError::NotEnrolled { .. }) => match enroll(&cli, &dir).await {
                Ok(()) => continue,
                Err(Retry::Later(why)) => {
                    set_absent(&app, &dir, Absence::NotEnrolled { why: Some(why) });
                    tokio::time::sleep(ENROLL_RETRY).await;
                    continue;
                }
                Err(Retry::Never(why)) => break Absence::NotEnrolled { why },
            },
            Err(AgentError::DirectoryInUse { holder, .. }) => {
                break Absence::DirectoryInUse { holder };
            }
            Err(e) => {
                break Absence::Failed {
                    message: e.to_string(),
                };
            }
        }
    };
    tracing::error!(?absence, "the engine is not running");
    set_absent(&app, &dir, absence);
}

fn set_absent(app: &AppHandle, dir: &DataDir, absence: Absence) {
    let status = Status::without_engine(&absence, dir);
    let shared = app.state::<Shared>();
    *shared.absent.write().expect("status lock") = status.clone();
    crate::bridge::show_status(app, &mut None, status);
}

/// Why enrolling did not happen.
enum Retry {
    /// Try again later (the server could not be reached).
    Later(String),
    /// Nothing to try (no settings), or the settings are wrong.
    Never(Option<String>),
}

async fn enroll(cli: &Cli, dir: &DataDir) -> Result<(), Retry> {
    use deskrec_agent::deployment::{self, DeployError};
    let (token, from) = match &cli.enroll {
        Some(args) => (
            deployment::token(&args[0], &args[1], cli.fingerprint.as_deref()),
            "--enroll".to_string(),
        ),
        None => {
            let path = cli
                .deployment
                .clone()
                .unwrap_or_else(|| deployment::path(dir));
            let never = |why: String| {
                tracing::error!("{why}");
                Err(Retry::Never(Some(why)))
            };
            match deployment::load(&path) {
                Ok(Some(d)) => match d.token() {
                    Some(token) => (token, path.display().to_string()),
                    None => {
                        return never(format!(
                            "the deployment settings ({}) name the server {} but no enrollment token: ask IT to enroll this PC (ENROLL_TOKEN)",
                            path.display(),
                            d.server_url
                        ));
                    }
                },
                Ok(None) => return Err(Retry::Never(None)),
                Err(DeployError::Unreadable { source, .. })
                    if source.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    return never(format!(
                        "the deployment settings ({}) are readable by administrators only: start Deskrec once as an administrator to enroll this PC",
                        path.display()
                    ));
                }
                Err(e) => return never(e.to_string()),
            }
        }
    };
    let host = deskrec_agent::host_name();
    let now = deskrec_agent::clock::Clock::now(&deskrec_agent::clock::SystemClock);
    tracing::info!(url = %token.url, from, "enrolling");
    match deskrec_agent::enroll::enroll_with(dir, &dir.secret_store(), &token, &host, now).await {
        Ok(id) => {
            tracing::info!(device = %id.device_id, "enrolled");
            Ok(())
        }
        Err(e @ AgentError::Client(_)) => Err(Retry::Later(format!(
            "enrolling with {} failed: {e}",
            token.url
        ))),
        Err(e) => Err(Retry::Never(Some(format!(
            "enrolling with {} failed: {e}",
            token.url
        )))),
    }
}

fn config(cli: &Cli, dir: &DataDir) -> AgentConfig {
    let mut config = AgentConfig::new(dir.clone());
    config.login = cli.login.clone();
    if let Source::Synthetic = cli.source {
        config.source = Arc::new(|| {
            Ok(Box::new(
                deskrec_capture::SyntheticSource::new(640, 360)?
                    .with_fixed_clock(std::time::Instant::now(), Duration::from_millis(200)),
            ))
        });
    }
    config
}

/// Says in the log and the window when no tray host will show the icon;
/// recording goes on.
async fn tray_host_check(app: AppHandle) {
    if let Err(why) = crate::desktop::tray_host().await {
        tracing::warn!(
            "no tray host: the Deskrec icon cannot be shown ({why}); recording goes on. The window is opened instead"
        );
        crate::window::open(&app, View::Status);
        crate::window::emit(
            &app,
            "deskrec://notice",
            deskrec_agent::Notice {
                kind: deskrec_agent::NoticeKind::Rejected,
                title: "No tray".into(),
                body: format!(
                    "This desktop shows no tray icons ({why}). Recording goes on; open Deskrec again to see this window."
                ),
                at: 0,
            },
        );
    }
}

/// Ctrl-C or SIGTERM (a service manager, a test) quits cleanly.
async fn stop_on_signal(app: AppHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    tracing::info!("stop requested");
    app.exit(0);
}

/// Stops the engine (its segment finished), then ends the process.
fn stop_engine(app: &AppHandle) {
    let shared = app.state::<Shared>();
    let agent = tauri::async_runtime::block_on(async { shared.agent.lock().await.take() });
    if let Some(agent) = agent {
        tracing::info!("stopping the engine");
        // The timeout is made inside the runtime: its timer needs one.
        let stopped = tauri::async_runtime::block_on(async {
            tokio::time::timeout(STOP_LIMIT, agent.shutdown()).await
        });
        if stopped.is_err() {
            // The segment being written is recovered at the next start
            // (the format is crash-safe); a hung quit would be worse: it
            // blocks logoff.
            tracing::error!(limit = ?STOP_LIMIT, "the engine did not stop in time; exiting anyway");
        }
    }
    tracing::info!("deskrec-tray stopped");
    crate::logs::flush();
    // Nothing is left to save: exit now rather than through Tauri's
    // teardown of open windows, one less place a quit could hang (a CI run
    // saw the app not exit with a window open; where it hung was not
    // logged).
    std::process::exit(0);
}

/// How long quitting waits for the engine to finish its segment.
const STOP_LIMIT: Duration = Duration::from_secs(15);
