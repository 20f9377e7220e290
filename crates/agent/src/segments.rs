//! The segment files on disk, as the splicer and the status see them.
//!
//! The recorder names segments by start time and writes them itself; the
//! agent indexes them in the `segments` table by scanning their structure
//! (headers and chunk heads, no bodies, no keys). A finished segment is
//! scanned once; the one being written is scanned again on each refresh.

use std::path::{Path, PathBuf};

use deskrec_protocol::{SegmentFindings, SegmentReport};
use deskrec_vault::{ScanDepth, TimeRange, scan_segment};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::AgentError;

/// Brings the `segments` table up to date with `dir`.
pub fn refresh(conn: &mut Connection, dir: &Path, now: i64) -> Result<(), AgentError> {
    let files = match deskrec_recorder::segment_files(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(AgentError::io(dir)(e)),
    };
    let tx = crate::db::write_tx(conn)?;
    for path in &files {
        let key = path.to_string_lossy();
        let known: Option<(bool, Option<i64>)> = tx
            .query_row(
                "SELECT complete, deleted_at FROM segments WHERE path = ?1",
                [&key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match known {
            // Retention deleted it, then the agent stopped before the
            // unlink: finish the deletion.
            Some((_, Some(_))) => {
                let _ = std::fs::remove_file(path);
                continue;
            }
            Some((true, None)) => continue,
            _ => {}
        }
        let scan = match scan_segment(path, ScanDepth::Structure) {
            Ok(s) => s,
            // A segment whose header is not on disk yet (just created), or
            // unreadable: nothing in it can be spliced.
            Err(e) => {
                tracing::debug!(segment = %path.display(), error = %e, "segment not readable yet");
                continue;
            }
        };
        let started = scan.header.started_at;
        let ended = scan.chunks.last().map_or(started, |c| c.head.range.end);
        tx.execute(
            "INSERT INTO segments (path, started_at, ended_at, bytes, chunks, complete, scanned_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (path) DO UPDATE SET ended_at = excluded.ended_at,
                 bytes = excluded.bytes, chunks = excluded.chunks,
                 complete = excluded.complete, scanned_at = excluded.scanned_at",
            params![
                key,
                started,
                ended,
                scan.intact_len,
                scan.chunks.len() as u64,
                scan.is_complete(),
                now
            ],
        )?;
    }
    // Files that are gone without the agent deleting them.
    let known: Vec<String> = {
        let mut stmt = tx.prepare("SELECT path FROM segments WHERE deleted_at IS NULL")?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for k in known {
        if !files.iter().any(|f| f.to_string_lossy() == k) {
            tracing::warn!(segment = %k, "a segment file disappeared");
            let findings = SegmentFindings {
                unreadable: Some("the file disappeared without the agent deleting it".into()),
                ..SegmentFindings::default()
            };
            mark_deleted(&tx, Path::new(&k), "missing", &findings, now)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Segments with chunks inside `range`, oldest first.
pub fn overlapping(conn: &Connection, range: TimeRange) -> Result<Vec<PathBuf>, AgentError> {
    let mut stmt = conn.prepare(
        "SELECT path FROM segments WHERE started_at < ?2 AND ended_at > ?1 AND deleted_at IS NULL
         ORDER BY started_at",
    )?;
    let rows = stmt
        .query_map(params![range.start, range.end], |r| {
            Ok(PathBuf::from(r.get::<_, String>(0)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The segments on disk, for the status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Segment files.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Start of the oldest (agent clock, µs).
    pub oldest: Option<i64>,
}

/// Counts the indexed segments.
pub fn summary(conn: &Connection) -> Result<Summary, AgentError> {
    Ok(conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(started_at) FROM segments
         WHERE deleted_at IS NULL",
        [],
        |r| {
            Ok(Summary {
                count: r.get(0)?,
                bytes: r.get(1)?,
                oldest: r.get(2)?,
            })
        },
    )?)
}

/// A segment on disk, as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The file.
    pub path: PathBuf,
    /// Header start (agent clock).
    pub started_at: i64,
    /// End of the last intact chunk.
    pub ended_at: i64,
    /// Bytes.
    pub bytes: u64,
    /// Finished (will not grow).
    pub complete: bool,
}

/// Segments on disk, oldest first.
pub fn on_disk(conn: &Connection) -> Result<Vec<Segment>, AgentError> {
    let mut stmt = conn.prepare(
        "SELECT path, started_at, ended_at, bytes, complete FROM segments
         WHERE deleted_at IS NULL ORDER BY started_at",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Segment {
                path: PathBuf::from(r.get::<_, String>(0)?),
                started_at: r.get(1)?,
                ended_at: r.get(2)?,
                bytes: r.get(3)?,
                complete: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Why the deleted segments overlapping `range` went, if any did.
pub fn deleted_overlapping(
    conn: &Connection,
    range: TimeRange,
) -> Result<Option<String>, AgentError> {
    Ok(conn
        .query_row(
            "SELECT deleted_reason FROM segments
             WHERE started_at < ?2 AND ended_at > ?1 AND deleted_at IS NOT NULL
             ORDER BY deleted_at DESC LIMIT 1",
            params![range.start, range.end],
            |r| r.get(0),
        )
        .optional()?)
}

/// Marks a segment deleted (in the caller's transaction) with an audit
/// row carrying the reason and what the analysis found, and queues the
/// findings for the server when something was wrong; the caller removes
/// the file after the commit.
pub fn mark_deleted(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    reason: &str,
    findings: &SegmentFindings,
    now: i64,
) -> Result<(), AgentError> {
    let key = path.to_string_lossy();
    let json = serde_json::to_value(findings).unwrap_or_default();
    tx.execute(
        "UPDATE segments SET deleted_at = ?2, deleted_reason = ?3, findings = ?4,
             report_pending = ?5
         WHERE path = ?1",
        params![
            key,
            now,
            reason,
            json.to_string(),
            findings.has_discrepancies()
        ],
    )?;
    crate::db::audit(
        tx,
        now,
        "segment.deleted",
        &key,
        serde_json::json!({"reason": reason, "findings": json}),
    )?;
    Ok(())
}

/// Reports of deleted segments not yet sent to the server, oldest first.
pub fn pending_reports(conn: &Connection) -> Result<Vec<SegmentReport>, AgentError> {
    let mut stmt = conn.prepare(
        "SELECT started_at, deleted_reason, findings FROM segments
         WHERE report_pending = 1 ORDER BY started_at",
    )?;
    let rows = stmt
        .query_map([], |r| {
            let findings: Option<String> = r.get(2)?;
            Ok(SegmentReport {
                started_at: r.get(0)?,
                deleted: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                findings: findings
                    .and_then(|f| serde_json::from_str(&f).ok())
                    .unwrap_or_default(),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The report of the segment that started at `started_at` reached the
/// server.
pub fn report_sent(conn: &Connection, started_at: i64) -> Result<(), AgentError> {
    conn.execute(
        "UPDATE segments SET report_pending = 0 WHERE started_at = ?1",
        [started_at],
    )?;
    Ok(())
}
