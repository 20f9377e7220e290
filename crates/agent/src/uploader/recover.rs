//! Start-up repair of what a crash left behind.

use crate::contacts;
use crate::{AgentError, DataDir};

/// Startup repair: contacts cut mid-splice go back to the queue; recording
/// files the database does not know (a crash between a commit and an
/// unlink, or an unfinished splice) are deleted.
pub(crate) async fn recover(db: &crate::db::Db, dir: &DataDir) -> Result<(), AgentError> {
    let recordings = dir.recordings();
    db.call(move |c| {
        c.execute(
            "UPDATE contacts SET state = 'queued' WHERE state = 'splicing'",
            [],
        )?;
        let live = contacts::live_recording_paths(c)?;
        let entries = match std::fs::read_dir(&recordings) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(AgentError::io(&recordings)(e)),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !live.contains(&path) {
                tracing::info!(file = %path.display(), "removing a leftover recording file");
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    })
    .await
}
