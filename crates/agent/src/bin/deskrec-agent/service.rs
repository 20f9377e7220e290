//! The Deskrec service ("DeskrecService", LocalSystem, started at boot and
//! by the install): enrolls the PC from the deployment settings when it is
//! not enrolled, trying again with a growing pause until it can, then
//! stops. An enrolled PC's service stops at once.
//!
//! Why a service: the settings hold the enrollment token, which only the
//! system and administrators may read, while the tray app runs as whoever
//! logs on. The install tries once; a PC imaged or installed away from the
//! recording server would otherwise stay unenrolled until an administrator
//! started Deskrec. Everything else runs in the tray app, in the user's
//! session, where the screen is.

use std::ffi::OsString;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use deskrec_agent::{AgentError, DataDir, deployment};
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

/// The service's name (installer/deskrec.wxs installs it).
const NAME: &str = "DeskrecService";
/// The first pause after a failed try; it doubles up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(10);
/// The longest pause between tries.
const LONGEST_PAUSE: Duration = Duration::from_secs(600);

define_windows_service!(ffi_service_main, service_main);

/// Hands this process to the service manager until the service stops.
pub fn run() -> Result<()> {
    service_dispatcher::start(NAME, ffi_service_main)
        .context("not started by the service manager (the Deskrec service runs only as a service)")
}

fn service_main(_args: Vec<OsString>) {
    let dir = DataDir::platform_default();
    if let Err(e) = serve(&dir) {
        let _ = crate::installer_step(&dir, "service", Err(e));
    }
}

/// Runs the service: reports running, enrolls (or finds the PC enrolled),
/// reports stopped.
fn serve(dir: &DataDir) -> Result<()> {
    let (stop, stopped) = mpsc::channel();
    let handle = service_control_handler::register(NAME, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            let _ = stop.send(());
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })?;
    let report = |state, accepted| {
        handle.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accepted,
            exit_code: ServiceExitCode::Win32(0),
            checkpoint: 0,
            wait_hint: Duration::default(),
            process_id: None,
        })
    };
    report(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
    )?;
    let outcome = enroll_until_done(dir, &stopped);
    report(ServiceState::Stopped, ServiceControlAccept::empty())?;
    crate::installer_step(dir, "service", outcome)
}

/// Tries to enroll until it has, or cannot (no settings, a refused token),
/// or the service is stopped; what happened.
fn enroll_until_done(dir: &DataDir, stopped: &mpsc::Receiver<()>) -> Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut pause = FIRST_PAUSE;
    loop {
        let path = deployment::path(dir);
        let Some(settings) = deployment::load(&path)? else {
            return Ok(format!(
                "no deployment settings in {}: nothing to enroll with",
                path.display()
            ));
        };
        match runtime.block_on(deployment::enroll(dir, &settings)) {
            Ok(done) => return Ok(done.to_string()),
            Err(e @ AgentError::Client(_)) => {
                crate::installer_step(
                    dir,
                    "service",
                    Ok(format!("not enrolled yet ({e}); trying again in {pause:?}")),
                )?;
            }
            Err(e) => return Err(e).context("enrollment refused; the service stops"),
        }
        match stopped.recv_timeout(pause) {
            Err(mpsc::RecvTimeoutError::Timeout) => pause = (pause * 2).min(LONGEST_PAUSE),
            _ => return Ok("stopped before the PC was enrolled".into()),
        }
    }
}
