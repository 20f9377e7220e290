//! A contact's recording: the covering chunks of the local segments
//! spliced into one signed recording, or the reason there is none.

use std::sync::Arc;
use std::time::Duration;

use deskrec_protocol::UnrecoverableReason;
use deskrec_vault::{FileKind, SpliceRequest, TimeRange, VaultError, utc};

use super::outcome::give_up;
use crate::AgentError;
use crate::contacts::{self, Contact, ContactState, Recording};
use crate::engine::Shared;

/// Splice attempts before a contact whose segments cannot be read is
/// reported `damaged`.
const MAX_SPLICE_ATTEMPTS: u32 = 5;
/// Margin after a contact's padded end before splicing, beyond one
/// chunk: the recorder's last chunk must be on disk.
const SETTLE_US: i64 = 1_000_000;

/// The range to splice for a contact, on the agent's clock.
pub fn requested_range(contact: &Contact, offset_us: i64, pad: Duration) -> TimeRange {
    let pad = pad.as_micros() as i64;
    TimeRange::new(
        contact.start - offset_us - pad,
        contact.end - offset_us + pad,
    )
}

/// Splices the contact's recording; `Some(wait)` when its time has not
/// passed yet or the clock offset is still unknown.
pub(super) async fn splice(
    shared: &Arc<Shared>,
    contact: &Contact,
) -> Result<Option<Duration>, AgentError> {
    let Some(offset) = shared.offset() else {
        // The first measurement follows the first hello.
        return Ok(Some(Duration::from_secs(1)));
    };
    let requested = requested_range(contact, offset.offset_us, shared.config.pad);
    let chunk_us = (shared.config.chunk_seconds * 1e6) as i64;
    let ready_at = requested.end + chunk_us + SETTLE_US;
    let now = shared.now();
    if now < ready_at {
        return Ok(Some(Duration::from_micros((ready_at - now) as u64)));
    }
    let id = contact.contact_id.clone();
    let segments_dir = shared.config.data_dir.segments();
    let candidates = shared
        .db
        .call(move |c| {
            contacts::set_state(c, &id, ContactState::Splicing, now)?;
            crate::segments::refresh(c, &segments_dir, now)?;
            crate::segments::overlapping(c, requested)
        })
        .await?;
    shared.queue_changed();
    if candidates.is_empty() {
        return not_recorded(shared, contact, requested)
            .await
            .map(|()| None);
    }
    let dir = shared.config.data_dir.recordings();
    let out = dir.join(FileKind::Recording.file_name(&file_name(&contact.contact_id)));
    let req = SpliceRequest {
        contact_id: contact.contact_id.clone(),
        agent: contact.windows_login.clone(),
        requested,
        segments: candidates,
        clock_offset: offset.offset_us,
    };
    let key = shared.creds.device_key.clone();
    let target = out.clone();
    std::fs::create_dir_all(&dir).map_err(AgentError::io(&dir))?;
    let result = tokio::task::spawn_blocking(move || deskrec_vault::splice(&req, &key, &target))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let outcome = match result {
        Ok(o) => o,
        Err(VaultError::NotCovered(_)) => {
            return not_recorded(shared, contact, requested)
                .await
                .map(|()| None);
        }
        Err(e) if contact.attempts + 1 >= MAX_SPLICE_ATTEMPTS => {
            let (id, reason) = (&contact.contact_id, UnrecoverableReason::Damaged);
            give_up(shared, id, reason, e.to_string(), false).await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let rec = Recording {
        path: out,
        bytes: outcome.bytes,
    };
    tracing::info!(contact = %contact.contact_id, bytes = rec.bytes, chunks = outcome.chunks,
        trim = %outcome.manifest.trim, "recording spliced");
    let (id, now) = (contact.contact_id.clone(), shared.now());
    shared
        .db
        .call(move |c| contacts::store_recording(c, &id, &rec, &outcome.manifest, now))
        .await?;
    shared.queue_changed();
    Ok(None)
}

/// Reports a contact with no segment: `segments_deleted` when retention
/// (or someone) deleted the segments of its time, else what the timeline
/// says of that time: `not_eligible`, or `not_recorded` (logged off, PC or
/// agent off) with the states in the detail.
async fn not_recorded(
    shared: &Shared,
    contact: &Contact,
    requested: TimeRange,
) -> Result<(), AgentError> {
    let span = format!(
        "{} to {}",
        utc::rfc3339(requested.start),
        utc::rfc3339(requested.end)
    );
    let (deleted, timeline) = shared
        .db
        .call(move |c| {
            Ok((
                crate::segments::deleted_overlapping(c, requested)?,
                crate::timeline::during(c, requested)?,
            ))
        })
        .await?;
    let (reason, detail) = match deleted {
        Some(why) => (
            UnrecoverableReason::SegmentsDeleted,
            format!("the segments covering {span} (PC clock) were deleted ({why})"),
        ),
        None => {
            let (reason, states) = crate::timeline::explain(&timeline);
            (
                reason,
                format!("no segment on this PC covers {span} (PC clock); {states}"),
            )
        }
    };
    tracing::info!(contact = %contact.contact_id, %detail, "contact not recorded");
    give_up(shared, &contact.contact_id, reason, detail, false).await
}

/// A contact id as a file name, distinct for distinct ids and at most
/// [`MAX_NAME`] bytes: ASCII letters, digits and `-` stay, anything else
/// becomes `_` and its code point in six hex digits (fixed width: `/8` and
/// U+02F8 must not meet). An id that is still too long is cut, and the
/// SHA-256 of the whole id follows a `~`, which the escaped form never
/// holds, so the two forms cannot meet either.
fn file_name(id: &str) -> String {
    let mut s = String::new();
    for ch in id.chars() {
        if ch.is_ascii_alphanumeric() || ch == '-' {
            s.push(ch);
        } else {
            s.push_str(&format!("_{:06x}", ch as u32));
        }
    }
    if s.len() <= MAX_NAME {
        return s;
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(id.as_bytes());
    let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(MAX_NAME - 1 - hash.len()); // ASCII only: any cut is a char boundary
    format!("{s}~{hash}")
}

/// The longest contact file name, before its `.dskr`: well under the 255
/// bytes of every file system the agent runs on.
const MAX_NAME: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_convert_with_the_offset_and_pad() {
        let c = Contact {
            contact_id: "c".into(),
            seq: 1,
            windows_login: "ann".into(),
            start: 1_000_000_000,
            end: 1_060_000_000,
            state: ContactState::Queued,
            upload_url: None,
            upload_offset: 0,
            attempts: 0,
        };
        // The server is 300 s ahead of the agent: agent times are earlier.
        let r = requested_range(&c, 300_000_000, Duration::from_secs(5));
        assert_eq!(r, TimeRange::new(695_000_000, 765_000_000));
        assert_eq!(file_name("acd/8 x"), "acd_00002f8_000020x");
    }

    #[test]
    fn contact_file_names_never_collide_and_stay_short() {
        // Variable-width escapes once gave these one name.
        assert_ne!(file_name("/8"), file_name("\u{2f8}"));
        assert_ne!(file_name("a_"), file_name("a_00005f"));
        let long = "x".repeat(300);
        let longer = format!("{long}y");
        for id in [&long, &longer, &"é".repeat(100)] {
            let name = file_name(id);
            assert!(name.len() <= MAX_NAME, "{} bytes", name.len());
            assert!(name.is_ascii());
        }
        assert_ne!(file_name(&long), file_name(&longer));
        assert_eq!(file_name(&long), file_name(&long), "stable");
    }
}
