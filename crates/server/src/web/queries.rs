//! What the pages and the supervisors' API read from the database.
//! Read-only, shaped for display, and always within a [`Scope`].
//!
//! The contact search builds its `WHERE` from the filters given
//! ([`Filter`]). Each filter has an index that ends in
//! `(start_at, id)` (migration 7), so a search reads the newest matching
//! rows off one index and stops after a page. Pages are keyed by a cursor
//! (the last row's start and id), not an offset, so the thousandth page
//! costs what the first does.

use std::fmt;

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::db::Filter;
use crate::scope::Scope;

/// Contacts shown per page.
pub const PAGE_SIZE: u32 = 50;

/// Most contacts in one answer of the API.
pub const MAX_LIMIT: u32 = 500;

/// The recording statuses a search may ask for.
pub const STATUSES: [&str; 4] = ["pending", "uploaded", "failed", "unrecoverable"];

/// A contact as the pages show it.
#[derive(Clone, Debug, Serialize)]
pub struct ContactRow {
    /// The database row id, for the paging cursor.
    #[serde(skip)]
    pub id: i64,
    /// The ACD's contact id.
    pub contact_id: String,
    /// The agent's Windows login.
    pub windows_login: String,
    /// The agent's display name, if the login is a known user.
    pub agent_name: Option<String>,
    /// Start, µs.
    pub start_at: i64,
    /// End, µs.
    pub end_at: i64,
    /// `inbound`, `outbound`, ... as the ACD said.
    pub direction: Option<String>,
    /// The ACD queue.
    pub queue: Option<String>,
    /// `pending`, `uploaded`, `failed` or `unrecoverable`.
    pub status: String,
    /// Why it failed or is unrecoverable.
    pub status_reason: Option<String>,
    /// Its recording and audio expired or were erased (`compliance`).
    pub disposal: Option<crate::compliance::DisposalRecord>,
}

/// The stored recording of a contact.
#[derive(Clone, Debug, Serialize)]
pub struct RecordingRow {
    /// The device that recorded it.
    pub device_id: String,
    /// That device's host name.
    pub host: Option<String>,
    /// Size of the stored file.
    pub bytes: i64,
    /// The range the recording shows, µs.
    pub trim_start: i64,
    /// The range the recording shows, µs.
    pub trim_end: i64,
    /// When it was stored, µs.
    pub stored_at: i64,
    /// SHA-256 of the stored recording.
    pub sha256: String,
    /// Stretches inside it with no video (recording paused or stopped),
    /// `[start, end]` µs.
    pub gaps: Vec<[i64; 2]>,
    /// Stretches recorded as paused pictures, with why.
    pub pauses: Vec<deskrec_vault::PauseSpan>,
}

/// The filters of a contact search: the contacts page's form and
/// `GET /api/v1/contacts`. Empty fields filter nothing.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContactSearch {
    /// The agent's Windows login (case-insensitive, exact).
    pub login: String,
    /// The ACD queue (exact).
    pub queue: String,
    /// The direction (exact).
    pub direction: String,
    /// The recording status, one of [`STATUSES`].
    pub status: String,
    /// Contacts starting at or after this (see [`parse_time`]).
    pub from: String,
    /// Contacts starting before this.
    pub to: String,
    /// The cursor of the page to show: `next` of the page before.
    pub before: String,
    /// Contacts per answer (the API only; at most [`MAX_LIMIT`]).
    pub limit: Option<u32>,
}

/// Where a page of contacts ends: the start and row id of its last
/// contact; the next page holds the contacts ordered after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    start_at: i64,
    id: i64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.start_at, self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = SearchError;

    fn from_str(s: &str) -> Result<Self, SearchError> {
        let bad = || SearchError::Invalid(format!("before {s:?} is not a cursor from `next`"));
        let (start, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            start_at: start.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// One page of a search, newest first.
#[derive(Clone, Debug, Serialize)]
pub struct ContactPage {
    /// The contacts.
    pub contacts: Vec<ContactRow>,
    /// The cursor of the next (older) page, if there are more.
    #[serde(serialize_with = "display_opt")]
    pub next: Option<Cursor>,
}

fn display_opt<S: serde::Serializer>(c: &Option<Cursor>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.collect_str(c),
        None => s.serialize_none(),
    }
}

/// Why a search cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A filter is malformed; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// A time filter: RFC 3339 (`2026-11-25T09:00:00Z`), or a date and time
/// without a zone (`2026-11-25T09:00`, what a `datetime-local` input
/// sends) or a date alone, both read as UTC, as the pages show times.
/// Empty is no filter.
pub fn parse_time(what: &str, s: &str) -> Result<Option<i64>, SearchError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let utc = jiff::tz::TimeZone::UTC;
    let t = if let Ok(t) = s.parse::<jiff::Timestamp>() {
        Some(t)
    } else if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        dt.to_zoned(utc).ok().map(|z| z.timestamp())
    } else if let Ok(d) = s.parse::<jiff::civil::Date>() {
        d.to_zoned(utc).ok().map(|z| z.timestamp())
    } else {
        None
    };
    t.map(|t| Some(t.as_microsecond())).ok_or_else(|| {
        SearchError::Invalid(format!(
            "{what} {s:?} is not a time: give RFC 3339 (2026-11-25T09:00:00Z) or a UTC date"
        ))
    })
}

const CONTACT_COLUMNS: &str = "c.id, c.contact_id, c.windows_login, u.name, c.start_at, c.end_at,
     c.direction, c.queue, c.status, c.status_reason,
     c.disposal, c.disposal_at, c.disposal_by, c.disposal_reason
     FROM contacts c LEFT JOIN users u ON u.windows_login = c.windows_login";

fn contact_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ContactRow> {
    Ok(ContactRow {
        id: r.get(0)?,
        contact_id: r.get(1)?,
        windows_login: r.get(2)?,
        agent_name: r.get(3)?,
        start_at: r.get(4)?,
        end_at: r.get(5)?,
        direction: r.get(6)?,
        queue: r.get(7)?,
        status: r.get(8)?,
        status_reason: r.get(9)?,
        disposal: crate::compliance::DisposalRecord::from_row(r, 10)?,
    })
}

/// One page of the contacts in `scope` that `f` matches, newest first,
/// at most `limit` of them.
///
/// A supervisor's search without an agent runs once per agent of their
/// teams, each reading that agent's newest matches off the
/// `(windows_login, start_at, id)` index, and merges the pages: reading
/// the whole team's contacts to sort them, or every contact to find the
/// team's, would cost what the team or the server holds, not a page.
pub fn search(
    conn: &Connection,
    scope: Scope,
    f: &ContactSearch,
    limit: u32,
) -> Result<ContactPage, SearchError> {
    let q = Query::parse(f)?;
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut contacts = match scope {
        // With a rare status the status index is read: it holds fewer
        // rows than the team's agents together.
        Scope::TeamsOf(_) if q.login.is_none() && q.rare_status().is_none() => {
            let mut rows = vec![];
            for login in scope_logins(conn, scope)? {
                let one = Query {
                    login: Some(login),
                    ..q.clone()
                };
                rows.extend(one.run(conn, Scope::All, limit + 1)?);
            }
            rows.sort_by_key(|r| std::cmp::Reverse((r.start_at, r.id)));
            rows
        }
        _ => q.run(conn, scope, limit + 1)?,
    };
    let more = contacts.len() > limit as usize;
    contacts.truncate(limit as usize);
    let next = more.then(|| {
        let last = contacts.last().expect("more than limit >= 1 rows");
        Cursor {
            start_at: last.start_at,
            id: last.id,
        }
    });
    Ok(ContactPage { contacts, next })
}

/// The Windows logins of the users in `scope`'s teams.
fn scope_logins(conn: &Connection, scope: Scope) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT DISTINCT u.windows_login FROM team_members mine
         JOIN team_members theirs ON theirs.team_id = mine.team_id
         JOIN users u ON u.id = theirs.user_id
         WHERE mine.user_id = ?1",
    )?
    .query_map([scope.param()], |r| r.get(0))?
    .collect()
}

/// A search, checked and parsed.
#[derive(Clone, Debug)]
struct Query {
    login: Option<String>,
    queue: Option<String>,
    direction: Option<String>,
    status: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    before: Option<Cursor>,
}

impl Query {
    fn parse(f: &ContactSearch) -> Result<Self, SearchError> {
        let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let status = some(&f.status);
        if let Some(s) = &status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(SearchError::Invalid(format!(
                "status {s:?} is not one of {}",
                STATUSES.join(", ")
            )));
        }
        Ok(Query {
            login: some(&f.login),
            queue: some(&f.queue),
            direction: some(&f.direction),
            status,
            from: parse_time("from", &f.from)?,
            to: parse_time("to", &f.to)?,
            before: some(&f.before).map(|b| b.parse()).transpose()?,
        })
    }

    /// The status filter, unless it is `uploaded`, which most contacts
    /// have: the rare outcomes are what people search for.
    fn rare_status(&self) -> Option<&str> {
        self.status.as_deref().filter(|s| *s != "uploaded")
    }

    /// The newest `limit` matches in `scope`.
    ///
    /// SQLite keeps no statistics on how many rows each value has, so
    /// left to itself it may read a whole queue's rows to find a rare
    /// status in it. The query names the one index to read, the most
    /// selective filter's: the agent, else a rare status, else the queue,
    /// else the direction. The other filters are written `+column`, which
    /// keeps SQLite from reading their indexes; every index ends in
    /// `(start_at, id)`, so the time range and the cursor narrow whichever
    /// is read.
    fn run(
        &self,
        conn: &Connection,
        scope: Scope,
        limit: u32,
    ) -> rusqlite::Result<Vec<ContactRow>> {
        let driver = if self.login.is_some() {
            "c.windows_login"
        } else if self.rare_status().is_some() {
            "c.status"
        } else if self.queue.is_some() {
            "c.queue"
        } else if self.direction.is_some() {
            "c.direction"
        } else {
            ""
        };
        let mut filter = Filter::default();
        filter.push(scope.condition(), ":scope", scope.param());
        for (column, name, value) in [
            ("c.windows_login", ":login", &self.login),
            ("c.status", ":status", &self.status),
            ("c.queue", ":queue", &self.queue),
            ("c.direction", ":direction", &self.direction),
        ] {
            if let Some(v) = value {
                let plus = if column == driver { "" } else { "+" };
                filter.push(format!("{plus}{column} = {name}"), name, v.clone());
            }
        }
        if let Some(from) = self.from {
            filter.push("c.start_at >= :from", ":from", from);
        }
        if let Some(to) = self.to {
            filter.push("c.start_at < :to", ":to", to);
        }
        if let Some(cursor) = self.before {
            filter.push(
                "(c.start_at, c.id) < (:before_start, :before_id)",
                ":before_start",
                cursor.start_at,
            );
            filter.bind(":before_id", cursor.id);
        }
        filter.bind(":limit", limit);
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} WHERE {}
             ORDER BY c.start_at DESC, c.id DESC LIMIT :limit",
            filter.sql()
        );
        conn.prepare_cached(&sql)?
            .query_map(filter.params().as_slice(), contact_row)?
            .collect()
    }
}

/// A contact with what is stored of it.
#[derive(Clone, Debug, Serialize)]
pub struct ContactDetail {
    /// The contact.
    pub contact: ContactRow,
    /// Its screen recording, once stored.
    pub recording: Option<RecordingRow>,
    /// Its call audio, once imported.
    pub audio: Option<crate::audio::StoredAudio>,
}

/// One contact in `scope` with its stored recording and audio; `None` for
/// a contact that does not exist or is outside the scope.
pub fn contact(
    conn: &Connection,
    scope: Scope,
    contact_id: &str,
) -> rusqlite::Result<Option<ContactDetail>> {
    let sql = format!(
        "SELECT {CONTACT_COLUMNS} WHERE c.contact_id = :contact AND {}",
        scope.condition()
    );
    let Some(contact) = conn
        .query_row(
            &sql,
            rusqlite::named_params! { ":contact": contact_id, ":scope": scope.param() },
            contact_row,
        )
        .optional()?
    else {
        return Ok(None);
    };
    let recording = conn
        .query_row(
            "SELECT r.device_id, d.host, r.bytes, r.trim_start, r.trim_end, r.stored_at, r.sha256,
                    r.gaps, r.pauses
             FROM recordings r LEFT JOIN devices d ON d.id = r.device_id
             WHERE r.contact_id = ?1",
            [contact_id],
            |r| {
                Ok(RecordingRow {
                    device_id: r.get(0)?,
                    host: r.get(1)?,
                    bytes: r.get(2)?,
                    trim_start: r.get(3)?,
                    trim_end: r.get(4)?,
                    stored_at: r.get(5)?,
                    sha256: r.get(6)?,
                    // Written by the server as JSON; unreadable would be
                    // a bug, shown as no gaps rather than no page.
                    gaps: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
                    pauses: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
                })
            },
        )
        .optional()?;
    Ok(Some(ContactDetail {
        contact,
        recording,
        audio: crate::audio::stored(conn, scope, contact_id)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc3339_or_utc_dates() {
        let t = |s| parse_time("from", s).unwrap();
        assert_eq!(t(""), None);
        assert_eq!(t("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(t("1970-01-01T00:01"), Some(60_000_000));
        assert_eq!(t("1970-01-02"), Some(86_400_000_000));
        assert!(parse_time("from", "yesterday").is_err());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            start_at: 1_900_000_000_000_000,
            id: 42,
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        assert!("12".parse::<Cursor>().is_err());
        assert!("a.b".parse::<Cursor>().is_err());
    }
}
