//! What the pages read from the database. Read-only, shaped for display.

use rusqlite::{Connection, OptionalExtension, params};

/// Contacts shown per page.
pub const PAGE_SIZE: u32 = 50;

/// A contact as the pages show it.
#[derive(Clone, Debug)]
pub struct ContactRow {
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
}

/// The stored recording of a contact.
#[derive(Clone, Debug)]
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
}

/// Filters of the contacts list.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ContactFilter {
    /// Exact Windows login (case-insensitive); empty means any.
    #[serde(default)]
    pub login: String,
    /// One status; empty means any.
    #[serde(default)]
    pub status: String,
    /// Page number, from 1.
    #[serde(default)]
    pub page: Option<u32>,
}

impl ContactFilter {
    /// The page number, from 1.
    pub fn page(&self) -> u32 {
        self.page.unwrap_or(1).max(1)
    }
}

const CONTACT_COLUMNS: &str = "c.contact_id, c.windows_login, u.name, c.start_at, c.end_at,
     c.direction, c.queue, c.status, c.status_reason
     FROM contacts c LEFT JOIN users u ON u.windows_login = c.windows_login";

fn contact_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ContactRow> {
    Ok(ContactRow {
        contact_id: r.get(0)?,
        windows_login: r.get(1)?,
        agent_name: r.get(2)?,
        start_at: r.get(3)?,
        end_at: r.get(4)?,
        direction: r.get(5)?,
        queue: r.get(6)?,
        status: r.get(7)?,
        status_reason: r.get(8)?,
    })
}

/// One page of contacts, newest first, and whether there are more.
pub fn contacts(conn: &Connection, f: &ContactFilter) -> rusqlite::Result<(Vec<ContactRow>, bool)> {
    let offset = i64::from(f.page() - 1) * i64::from(PAGE_SIZE);
    let sql = format!(
        "SELECT {CONTACT_COLUMNS}
         WHERE (?1 = '' OR c.windows_login = ?1) AND (?2 = '' OR c.status = ?2)
         ORDER BY c.start_at DESC, c.id DESC LIMIT ?3 OFFSET ?4"
    );
    let mut rows = conn
        .prepare_cached(&sql)?
        .query_map(
            params![f.login.trim(), f.status, PAGE_SIZE + 1, offset],
            contact_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = rows.len() > PAGE_SIZE as usize;
    rows.truncate(PAGE_SIZE as usize);
    Ok((rows, more))
}

/// One contact and its stored recording, if any.
pub fn contact(
    conn: &Connection,
    contact_id: &str,
) -> rusqlite::Result<Option<(ContactRow, Option<RecordingRow>)>> {
    let sql = format!("SELECT {CONTACT_COLUMNS} WHERE c.contact_id = ?1");
    let Some(contact) = conn.query_row(&sql, [contact_id], contact_row).optional()? else {
        return Ok(None);
    };
    let recording = conn
        .query_row(
            "SELECT r.device_id, d.host, r.bytes, r.trim_start, r.trim_end, r.stored_at
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
                })
            },
        )
        .optional()?;
    Ok(Some((contact, recording)))
}
