//! Waiting on a fixture's recorded state, with a deadline.

use std::time::Duration;

use tokio::sync::watch;

use crate::error::{Error, Result, timeout};

/// Waits until `check` finds what it wants in the state behind `rx`
/// (checked now, then after every change), for at most `limit`. On timeout
/// the error names `what` and shows `describe` of the last state.
pub(crate) async fn watch_until<T, R>(
    rx: &mut watch::Receiver<T>,
    limit: Duration,
    what: &str,
    mut check: impl FnMut(&T) -> Option<R>,
    describe: impl Fn(&T) -> String,
) -> Result<R> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = check(&rx.borrow_and_update()) {
            return Ok(found);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(Error::Protocol(format!(
                    "the fixture stopped while waiting for {what}"
                )));
            }
            Err(_) => return Err(timeout(what, limit, Some(describe(&rx.borrow())))),
        }
    }
}
