//! What the window may call (`docs/tray.md`, "Commands"). Each is a line
//! or two over the engine's handle; errors go back as `{code, message}`.

use deskrec_agent::{AgentError, Diagnostics, PauseView, Queue, Status};
use serde::Serialize;
use tauri::{AppHandle, State};

use crate::app::Shared;

/// An error the window shows: `code` for the program, `message` for people.
#[derive(Debug, Serialize)]
pub struct CommandError {
    code: &'static str,
    message: String,
}

impl From<AgentError> for CommandError {
    fn from(e: AgentError) -> Self {
        let code = match e {
            AgentError::Refused(_) => "refused",
            _ => "failed",
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn no_engine() -> CommandError {
    CommandError {
        code: "no_engine",
        message: "the recording engine is not running on this PC; see the status".into(),
    }
}

/// The status now.
#[tauri::command]
pub fn status(shared: State<'_, Shared>) -> Status {
    shared.status()
}

/// The segments and contacts (empty without an engine).
#[tauri::command]
pub async fn queue(shared: State<'_, Shared>) -> Result<Queue, CommandError> {
    match shared.handle() {
        Some(h) => Ok(h.queue().await?),
        None => Ok(Queue::default()),
    }
}

/// Retries uploads waiting on a back-off now.
#[tauri::command]
pub async fn retry_now(shared: State<'_, Shared>) -> Result<u64, CommandError> {
    Ok(shared.handle().ok_or_else(no_engine)?.retry_now().await?)
}

/// The Diagnostics view's content, for an administrator or with the PIN.
#[tauri::command]
pub async fn diagnostics(
    shared: State<'_, Shared>,
    pin: Option<String>,
) -> Result<Diagnostics, CommandError> {
    let handle = shared.handle().ok_or_else(no_engine)?;
    Ok(handle.diagnostics(pin.as_deref()).await?)
}

/// Writes the diagnostics zip into the user's Downloads (or home)
/// directory; returns its path.
#[tauri::command]
pub async fn save_diagnostics(
    shared: State<'_, Shared>,
    pin: Option<String>,
) -> Result<String, CommandError> {
    let handle = shared.handle().ok_or_else(no_engine)?;
    let out = shared.bundle_dir();
    std::fs::create_dir_all(&out).map_err(AgentError::io(&out))?;
    let path = handle
        .save_diagnostics(pin.as_deref(), Some(shared.log_dir()), &out)
        .await?;
    Ok(path.display().to_string())
}

/// Pauses recording for `reason`, one of the status's `pause_reasons`;
/// the pause started. Refused (`code: "refused"`, the engine's words) for
/// a reason the policy does not give.
#[tauri::command]
pub async fn pause(shared: State<'_, Shared>, reason: String) -> Result<PauseView, CommandError> {
    Ok(shared
        .handle()
        .ok_or_else(no_engine)?
        .pause(&reason)
        .await?)
}

/// Ends the agent's own pause (not the contact centre's, nor a window
/// rule's); false when there was none.
#[tauri::command]
pub async fn resume(shared: State<'_, Shared>) -> Result<bool, CommandError> {
    Ok(shared.handle().ok_or_else(no_engine)?.resume().await?)
}

/// Quits, where the policy allows it.
#[tauri::command]
pub fn quit(app: AppHandle, shared: State<'_, Shared>) -> Result<(), CommandError> {
    if !shared.status().allow_quit {
        return Err(AgentError::Refused(
            "the recording policy does not allow quitting Deskrec".into(),
        )
        .into());
    }
    crate::app::quit(&app);
    Ok(())
}
