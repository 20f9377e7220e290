//! Retention: segments no contact can still need are analysed, then
//! deleted; hard limits delete oldest first. Every deletion is audited
//! with its reason and the analysis.
//!
//! A finished segment may go when the server's watermark (every contact
//! ending before it has been relayed), moved onto the PC's clock and
//! less the padding, has passed its end, and no contact with work left
//! overlaps it (padded). The segment being written never goes. Hard
//! limits from the policy — maximum age, maximum bytes, minimum free disk
//! — delete the oldest finished segments even if a contact might still
//! come for them; such a contact is then reported `segments_deleted`.
//!
//! Before deletion each segment is read whole (every record's digest) and
//! its discrepancies — damage, truncation (no clean end), gaps between
//! chunks, time running backwards — go into the audit row and, when there
//! are any, to the server (`segment_report`, sent by the RTE client).
//!
//! A segment is closed — may go — once finished, or when it is not the
//! one being written (a newer segment exists, or the recorder is not
//! running): a segment a crash left unfinished is analysed (truncated)
//! and deleted like any other.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deskrec_protocol::SegmentFindings;
use deskrec_vault::{ScanDepth, TimeRange, scan_segment};
use tokio::sync::watch;

use crate::AgentError;
use crate::db::{get_meta, keys};
use crate::engine::{Shared, sleep_or_shutdown};
use crate::segments::{self, Segment};
use crate::view::NoticeKind;

/// Runs a retention pass every `retention_interval` until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = pass(&shared).await {
            shared.error("retention", &e).await;
        }
        if sleep_or_shutdown(shared.config.retention_interval, &mut shutdown).await {
            return;
        }
    }
}

/// One pass: decide, analyse, delete.
pub(crate) async fn pass(shared: &Shared) -> Result<(), AgentError> {
    let now = shared.now();
    let offset = shared.offset().map(|o| o.offset_us);
    let limits = shared.policy.borrow().as_ref().map(|p| p.policy.retention);
    let pad = shared.config.pad.as_micros() as i64;
    let dir = shared.config.data_dir.segments();
    let free = crate::status::disk_free(&dir);
    let writing = *shared.recording.borrow();
    let plan = shared
        .db
        .call(move |c| {
            segments::refresh(c, &dir, now)?;
            let segs = segments::on_disk(c)?;
            // Closed: finished, or not the one the recorder writes.
            let newest = segs.iter().map(|s| s.started_at).max();
            let closed: Vec<Segment> = segs
                .iter()
                .filter(|s| s.complete || !writing || Some(s.started_at) != newest)
                .cloned()
                .collect();
            let active = crate::contacts::active_ranges(c)?;
            let watermark: Option<i64> = get_meta(c, keys::WATERMARK)?;
            let mut plan = Vec::new();
            if let (Some(w), Some(off)) = (watermark, offset) {
                let before = w - off - pad;
                for s in closed.iter().filter(|s| s.ended_at < before) {
                    let range = TimeRange::new(s.started_at, s.ended_at);
                    let needed = active.iter().any(|&(start, end)| {
                        TimeRange::new(start - off - pad, end - off + pad).overlaps(&range)
                    });
                    if !needed {
                        plan.push((s.path.clone(), "watermark"));
                    }
                }
            }
            if let Some(l) = limits {
                let day = 86_400_000_000i64;
                let oldest_kept = now - l.max_age_days as i64 * day;
                limit(&closed, &mut plan, "max_age", |s, _| {
                    s.ended_at < oldest_kept
                });
                let total: u64 = segs.iter().map(|s| s.bytes).sum();
                let over = total.saturating_sub(l.max_bytes);
                limit(&closed, &mut plan, "max_bytes", |_, freed| freed < over);
                if let Some(free) = free {
                    let short = l.min_free_disk_bytes.saturating_sub(free);
                    limit(&closed, &mut plan, "disk_floor", |_, freed| freed < short);
                }
            }
            Ok(plan)
        })
        .await?;
    let mut deleted: Vec<(&'static str, u64)> = Vec::new();
    for (path, reason) in plan {
        let p = path.clone();
        let findings = tokio::task::spawn_blocking(move || analyse(&p))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let report = findings.has_discrepancies();
        let (p, f) = (path.clone(), findings.clone());
        shared
            .db
            .call(move |c| {
                let tx = crate::db::write_tx(c)?;
                segments::mark_deleted(&tx, &p, reason, &f, now)?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AgentError::io(&path)(e)),
        }
        tracing::info!(segment = %path.display(), reason, ?findings, "segment deleted");
        match deleted.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => deleted.push((reason, 1)),
        }
        if report {
            shared.outbox.notify_one();
        }
    }
    if !deleted.is_empty() {
        shared.queue_changed();
    }
    for (reason, count) in deleted {
        tell(shared, reason, count).await;
    }
    Ok(())
}

/// Tells the agent of segments a hard limit deleted (those no contact
/// needed, behind the watermark, go without a word). At the disk floor the
/// attention icon shows too: contacts not relayed yet may have lost their
/// recording.
async fn tell(shared: &Shared, reason: &str, count: u64) {
    let why = match reason {
        "watermark" => return,
        "disk_floor" => "to keep the free disk space the policy asks for",
        "max_bytes" => "to stay within the space the policy allows for recordings",
        "max_age" => "because they were older than the policy keeps",
        other => other,
    };
    let body = format!("{count} segment(s) deleted {why}, oldest first.");
    shared.notice(
        NoticeKind::SegmentsDeleted,
        "Recordings deleted",
        body.clone(),
    );
    if reason == "disk_floor" {
        shared.alert("Disk space low", body).await;
    }
}

/// Adds the oldest of the closed segments not yet planned while
/// `more(segment, bytes planned by this limit so far)` holds.
fn limit(
    closed: &[Segment],
    plan: &mut Vec<(PathBuf, &'static str)>,
    reason: &'static str,
    more: impl Fn(&Segment, u64) -> bool,
) {
    let mut freed = 0u64;
    for s in closed {
        if plan.iter().any(|(p, _)| *p == s.path) {
            freed += s.bytes;
            continue;
        }
        if !more(s, freed) {
            break;
        }
        plan.push((s.path.clone(), reason));
        freed += s.bytes;
    }
}

/// Reads a segment whole and lists its discrepancies.
pub(crate) fn analyse(path: &Path) -> SegmentFindings {
    let scan = match scan_segment(path, ScanDepth::Full) {
        Ok(s) => s,
        Err(e) => {
            return SegmentFindings {
                unreadable: Some(e.to_string()),
                ..SegmentFindings::default()
            };
        }
    };
    let mut findings = SegmentFindings {
        chunks: scan.chunks.len() as u64,
        range: scan
            .chunks
            .first()
            .zip(scan.chunks.last())
            .map(|(f, l)| [f.head.range.start, l.head.range.end]),
        damage: scan.damage.as_ref().map(|d| d.to_string()),
        truncated: scan.end.is_none(),
        ..SegmentFindings::default()
    };
    for w in scan.chunks.windows(2) {
        let (a, b) = (&w[0].head.range, &w[1].head.range);
        if b.start > a.end {
            findings.gaps.push([a.end, b.start]);
        } else if b.start < a.end {
            findings.time_backwards += 1;
        }
    }
    findings
}
