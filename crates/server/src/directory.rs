//! The directory: users, roles with permissions, and server-wide settings.
//!
//! Users are keyed by their Windows login (unique, case-insensitive): that is
//! what an agent reports and what the contact-centre platform exports, so
//! imports are idempotent on it. Every function here takes a connection (in
//! practice a transaction) and writes its audit rows through it, so a change
//! and its audit entry commit together.

use std::collections::{BTreeMap, BTreeSet};

use deskrec_protocol::{DesktopPolicy, PausePolicy, RetentionLimits, UploadLimits};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Actor};
use crate::db::now_micros;

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The named user or role does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The change collides with existing data (e.g. a duplicate login).
    #[error("{0}")]
    Conflict(String),
    /// The input is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

type Result<T> = std::result::Result<T, DirectoryError>;

/// A permission a role can grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// The user's screen is recorded.
    RecordScreen,
    /// The user may play recordings.
    ViewRecordings,
    /// The user may administer the server.
    Admin,
}

impl Permission {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::RecordScreen => "record_screen",
            Permission::ViewRecordings => "view_recordings",
            Permission::Admin => "admin",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "record_screen" => Some(Permission::RecordScreen),
            "view_recordings" => Some(Permission::ViewRecordings),
            "admin" => Some(Permission::Admin),
            _ => None,
        }
    }
}

/// A user as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Windows login, e.g. `CORP\ann` (unique, case-insensitive).
    pub windows_login: String,
    /// Inactive users are never recorded.
    pub active: bool,
    /// Names of the user's roles, sorted.
    pub roles: Vec<String>,
    /// Names of the user's teams, sorted. A supervisor sees the contacts
    /// of the users who share a team with them.
    #[serde(default)]
    pub teams: Vec<String>,
}

/// A user to create or import.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Display name.
    pub name: String,
    /// Windows login.
    pub windows_login: String,
    /// Defaults to true.
    #[serde(default = "yes")]
    pub active: bool,
    /// Role names; every one must exist.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Team names (case-insensitive); a team that does not exist yet is
    /// created.
    #[serde(default)]
    pub teams: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A partial update of a user: absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New display name.
    pub name: Option<String>,
    /// New Windows login.
    pub windows_login: Option<String>,
    /// New active flag.
    pub active: Option<bool>,
    /// New complete role list.
    pub roles: Option<Vec<String>>,
    /// New complete team list.
    pub teams: Option<Vec<String>>,
}

/// A role and what it grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Unique name.
    pub name: String,
    /// Granted permissions, sorted, no duplicates.
    pub permissions: Vec<Permission>,
}

/// Server-wide settings. Stored one row per field; fields never written
/// keep their defaults, so adding a field needs no migration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Master switch for the RTE channel's recording decisions: when off,
    /// every agent is told not to record (`rte_disabled`).
    pub rte_enabled: bool,
    /// Create an (active, role-less, so not recorded) user when an agent
    /// reports an unknown Windows login. Off by default: the directory is
    /// normally synced from the contact-centre platform.
    pub auto_create_users: bool,
    /// Capture frame rate sent in policies.
    pub fps: f32,
    /// Segment length sent in policies, seconds.
    pub segment_seconds: u32,
    /// Keyframe interval sent in policies, seconds.
    pub gop_seconds: u32,
    /// Retention limits sent in policies.
    pub retention: RetentionLimits,
    /// Upload limits sent in policies.
    pub upload: UploadLimits,
    /// What the tray app lets agents do, sent in policies.
    pub desktop: DesktopPolicy,
    /// How recording may be paused (agent reasons, the longest pause,
    /// window rules), sent in policies.
    pub pause: PausePolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rte_enabled: true,
            auto_create_users: false,
            fps: 5.0,
            segment_seconds: 600,
            gop_seconds: 10,
            retention: RetentionLimits::default(),
            upload: UploadLimits::default(),
            desktop: DesktopPolicy::default(),
            pause: PausePolicy::default(),
        }
    }
}

/// Most uploads an agent may run at once: each holds a connection and a
/// recording open on the PC.
pub const MAX_PARALLEL_UPLOADS: u32 = 64;

impl Settings {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(DirectoryError::Invalid(m.into()));
        if !deskrec_protocol::FPS_RANGE.contains(&self.fps) {
            return Err(DirectoryError::Invalid(format!(
                "fps must be in {:?}",
                deskrec_protocol::FPS_RANGE
            )));
        }
        if !(10..=3600).contains(&self.segment_seconds) {
            return bad("segment_seconds must be in [10, 3600]");
        }
        if self.gop_seconds == 0 || self.gop_seconds > self.segment_seconds {
            return bad("gop_seconds must be in [1, segment_seconds]");
        }
        if !(1..=MAX_PARALLEL_UPLOADS).contains(&self.upload.max_parallel) {
            return Err(DirectoryError::Invalid(format!(
                "upload.max_parallel must be in [1, {MAX_PARALLEL_UPLOADS}]"
            )));
        }
        self.validate_pause()?;
        if let Some(phc) = &self.desktop.diagnostics_pin_phc
            && (!phc.starts_with("$argon2id$")
                || argon2::password_hash::phc::PasswordHash::new(phc).is_err())
        {
            return bad(
                "desktop.diagnostics_pin_phc must be an Argon2id PHC string ($argon2id$v=19$...)",
            );
        }
        Ok(())
    }
}

impl Settings {
    /// Pause settings: reasons a frame can carry, a sane maximum, rules
    /// with at least one pattern that compiles (the agent would refuse
    /// them, and record nothing, otherwise).
    fn validate_pause(&self) -> Result<()> {
        let bad = |m: String| Err(DirectoryError::Invalid(m));
        let p = &self.pause;
        if !(1..=86_400).contains(&p.max_seconds) {
            return bad("pause.max_seconds must be in [1, 86400]".into());
        }
        let reasons = p
            .agent_reasons
            .iter()
            .chain(p.rules.iter().map(|r| &r.reason));
        for reason in reasons {
            if !deskrec_vault::valid_pause_reason(reason) {
                return bad(format!(
                    "pause reason {reason:?} must have 1 to {} bytes",
                    deskrec_vault::MAX_PAUSE_REASON
                ));
            }
        }
        for (i, rule) in p.rules.iter().enumerate() {
            let patterns = [&rule.title, &rule.class, &rule.process];
            if patterns.iter().all(|p| p.is_none()) {
                return bad(format!(
                    "pause.rules[{i}] has no title, class or process pattern"
                ));
            }
            for pattern in patterns.into_iter().flatten() {
                if let Err(e) = regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                {
                    return bad(format!("pause.rules[{i}]: {e}"));
                }
            }
        }
        Ok(())
    }
}

fn check_login(login: &str) -> Result<()> {
    if login.trim().is_empty() || login.trim() != login {
        return Err(DirectoryError::Invalid(format!(
            "windows_login {login:?} must be non-empty without surrounding spaces"
        )));
    }
    Ok(())
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(DirectoryError::Invalid(format!("{what} must not be empty")));
    }
    Ok(())
}

// ---------------------------------------------------------------- users

/// Every user, by login.
pub fn list_users(conn: &Connection) -> Result<Vec<User>> {
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM users ORDER BY windows_login")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.into_iter().map(|id| get_user(conn, id)).collect()
}

/// One user by id.
pub fn get_user(conn: &Connection, id: i64) -> Result<User> {
    let user = conn
        .query_row(
            "SELECT id, name, windows_login, active FROM users WHERE id = ?1",
            [id],
            |r| {
                Ok(User {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    windows_login: r.get(2)?,
                    active: r.get(3)?,
                    roles: vec![],
                    teams: vec![],
                })
            },
        )
        .optional()?
        .ok_or_else(|| DirectoryError::NotFound(format!("user {id}")))?;
    Ok(User {
        roles: user_roles(conn, id)?,
        teams: user_teams(conn, id)?,
        ..user
    })
}

fn user_id_by_login(conn: &Connection, login: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM users WHERE windows_login = ?1",
            [login],
            |r| r.get(0),
        )
        .optional()?)
}

fn user_roles(conn: &Connection, user_id: i64) -> Result<Vec<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id
             WHERE ur.user_id = ?1 ORDER BY r.name",
        )?
        .query_map([user_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

fn role_ids(conn: &Connection, names: &[String]) -> Result<Vec<i64>> {
    let unique: BTreeSet<&String> = names.iter().collect();
    unique
        .into_iter()
        .map(|n| {
            conn.query_row("SELECT id FROM roles WHERE name = ?1", [n], |r| r.get(0))
                .optional()?
                .ok_or_else(|| DirectoryError::Invalid(format!("unknown role {n:?}")))
        })
        .collect()
}

fn set_user_roles(conn: &Connection, user_id: i64, roles: &[String]) -> Result<()> {
    let ids = role_ids(conn, roles)?;
    conn.execute("DELETE FROM user_roles WHERE user_id = ?1", [user_id])?;
    for rid in ids {
        conn.execute(
            "INSERT INTO user_roles (user_id, role_id) VALUES (?1, ?2)",
            [user_id, rid],
        )?;
    }
    Ok(())
}

fn user_teams(conn: &Connection, user_id: i64) -> Result<Vec<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT t.name FROM team_members m JOIN teams t ON t.id = m.team_id
             WHERE m.user_id = ?1 ORDER BY t.name",
        )?
        .query_map([user_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Longest team name accepted.
pub const MAX_TEAM_NAME: usize = 100;

/// `names` as they will be stored: checked, each spelled as its existing
/// team is (names compare case-insensitively), without duplicates, sorted.
/// So importing `Team A` for a member of `team a` changes nothing.
fn team_names(conn: &Connection, names: &[String]) -> Result<Vec<String>> {
    let mut out = BTreeMap::new();
    for n in names {
        if n.trim().is_empty() || n.trim() != n || n.chars().count() > MAX_TEAM_NAME {
            return Err(DirectoryError::Invalid(format!(
                "team {n:?} must be 1 to {MAX_TEAM_NAME} characters without surrounding spaces"
            )));
        }
        let stored: Option<String> = conn
            .query_row("SELECT name FROM teams WHERE name = ?1", [n], |r| r.get(0))
            .optional()?;
        out.entry(n.to_lowercase())
            .or_insert_with(|| stored.unwrap_or_else(|| n.clone()));
    }
    let mut names: Vec<String> = out.into_values().collect();
    names.sort();
    Ok(names)
}

/// Makes `user_id` a member of exactly `teams` (as [`team_names`] gives
/// them), creating the teams that do not exist.
fn set_user_teams(conn: &Connection, user_id: i64, teams: &[String]) -> Result<()> {
    conn.execute("DELETE FROM team_members WHERE user_id = ?1", [user_id])?;
    for name in teams {
        conn.execute(
            "INSERT INTO teams (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            params![name, now_micros()],
        )?;
        conn.execute(
            "INSERT INTO team_members (team_id, user_id)
             SELECT id, ?2 FROM teams WHERE name = ?1",
            params![name, user_id],
        )?;
    }
    Ok(())
}

fn sorted_unique(roles: &[String]) -> Vec<String> {
    roles
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Creates a user; the login must be new.
pub fn create_user(conn: &Connection, actor: &Actor, new: &NewUser) -> Result<User> {
    check_name("name", &new.name)?;
    check_login(&new.windows_login)?;
    let teams = team_names(conn, &new.teams)?;
    if user_id_by_login(conn, &new.windows_login)?.is_some() {
        return Err(DirectoryError::Conflict(format!(
            "a user with windows_login {:?} exists",
            new.windows_login
        )));
    }
    let now = now_micros();
    conn.execute(
        "INSERT INTO users (name, windows_login, active, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![new.name, new.windows_login, new.active, now],
    )?;
    let id = conn.last_insert_rowid();
    set_user_roles(conn, id, &new.roles)?;
    set_user_teams(conn, id, &teams)?;
    let user = get_user(conn, id)?;
    audit::record(
        conn,
        actor,
        "user.create",
        &user.windows_login,
        json!({ "after": user }),
    )?;
    Ok(user)
}

/// Applies a partial update; returns the user after it. Writes (and audits)
/// nothing if the patch changes nothing.
pub fn update_user(conn: &Connection, actor: &Actor, id: i64, patch: &UserPatch) -> Result<User> {
    let before = get_user(conn, id)?;
    let mut after = before.clone();
    if let Some(n) = &patch.name {
        check_name("name", n)?;
        after.name = n.clone();
    }
    if let Some(l) = &patch.windows_login {
        check_login(l)?;
        if let Some(other) = user_id_by_login(conn, l)?
            && other != id
        {
            return Err(DirectoryError::Conflict(format!(
                "a user with windows_login {l:?} exists"
            )));
        }
        after.windows_login = l.clone();
    }
    if let Some(a) = patch.active {
        after.active = a;
    }
    if let Some(r) = &patch.roles {
        role_ids(conn, r)?; // validate before writing anything
        after.roles = sorted_unique(r);
    }
    if let Some(t) = &patch.teams {
        after.teams = team_names(conn, t)?;
    }
    write_user(conn, actor, "user.update", &before, &after)?;
    Ok(after)
}

/// Writes `after` over `before` (same id) if they differ, with an audit row.
/// Returns whether anything changed.
fn write_user(
    conn: &Connection,
    actor: &Actor,
    action: &str,
    before: &User,
    after: &User,
) -> Result<bool> {
    if before == after {
        return Ok(false);
    }
    conn.execute(
        "UPDATE users SET name = ?2, windows_login = ?3, active = ?4, updated_at = ?5 WHERE id = ?1",
        params![after.id, after.name, after.windows_login, after.active, now_micros()],
    )?;
    if before.roles != after.roles {
        set_user_roles(conn, after.id, &after.roles)?;
    }
    if before.teams != after.teams {
        set_user_teams(conn, after.id, &after.teams)?;
    }
    audit::record(
        conn,
        actor,
        action,
        &after.windows_login,
        json!({ "before": before, "after": after }),
    )?;
    Ok(true)
}

/// What a bulk import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Users that did not exist.
    pub created: u32,
    /// Users whose name, active flag or roles changed.
    pub updated: u32,
    /// Users already exactly as imported.
    pub unchanged: u32,
}

/// Creates or updates each user by Windows login, so importing the same
/// data twice changes (and audits) nothing the second time. Users not in
/// the import are left alone. All-or-nothing when run in a transaction:
/// the first invalid record fails the whole import.
pub fn import_users(conn: &Connection, actor: &Actor, users: &[NewUser]) -> Result<ImportReport> {
    let mut seen = BTreeSet::new();
    let mut report = ImportReport::default();
    for (i, u) in users.iter().enumerate() {
        let at = |e: DirectoryError| match e {
            DirectoryError::Invalid(m) => DirectoryError::Invalid(format!("record {}: {m}", i + 1)),
            other => other,
        };
        check_name("name", &u.name).map_err(at)?;
        check_login(&u.windows_login).map_err(at)?;
        if !seen.insert(u.windows_login.to_lowercase()) {
            return Err(at(DirectoryError::Invalid(format!(
                "windows_login {:?} appears twice",
                u.windows_login
            ))));
        }
        match user_id_by_login(conn, &u.windows_login)? {
            None => {
                create_user(conn, actor, u).map_err(at)?;
                report.created += 1;
            }
            Some(id) => {
                role_ids(conn, &u.roles).map_err(at)?;
                let before = get_user(conn, id)?;
                let after = User {
                    id,
                    name: u.name.clone(),
                    // Keep the stored spelling unless the import changes
                    // more than case.
                    windows_login: if before.windows_login.eq_ignore_ascii_case(&u.windows_login) {
                        before.windows_login.clone()
                    } else {
                        u.windows_login.clone()
                    },
                    active: u.active,
                    roles: sorted_unique(&u.roles),
                    teams: team_names(conn, &u.teams).map_err(at)?,
                };
                if write_user(conn, actor, "user.import", &before, &after)? {
                    report.updated += 1;
                } else {
                    report.unchanged += 1;
                }
            }
        }
    }
    Ok(report)
}

/// One CSV row of an import: `name,windows_login,active,roles,teams` with
/// roles and teams separated by `;` and `active` as
/// `true`/`false`/`1`/`0`/`yes`/`no` (empty means true). `active`, `roles`
/// and `teams` may be left out.
#[derive(Debug, Deserialize)]
struct CsvUser {
    name: String,
    windows_login: String,
    #[serde(default)]
    active: String,
    #[serde(default)]
    roles: String,
    #[serde(default)]
    teams: String,
}

/// The items of a `;`-separated CSV cell.
fn list_cell(cell: &str) -> Vec<String> {
    cell.split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(String::from)
        .collect()
}

/// Parses a CSV import (with a header row naming the columns).
pub fn parse_csv(text: &str) -> Result<Vec<NewUser>> {
    let mut rd = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    // A header without the required columns is a wrong file (or not CSV
    // at all), not an empty import.
    let headers = rd
        .headers()
        .map_err(|e| DirectoryError::Invalid(format!("CSV: {e}")))?;
    for column in ["name", "windows_login"] {
        if !headers.iter().any(|h| h == column) {
            return Err(DirectoryError::Invalid(format!(
                "CSV: the header has no {column:?} column (columns: name, windows_login, active, roles, teams)"
            )));
        }
    }
    let mut out = vec![];
    for (i, row) in rd.deserialize::<CsvUser>().enumerate() {
        let row = row.map_err(|e| DirectoryError::Invalid(format!("CSV: {e}")))?;
        let active = match row.active.to_ascii_lowercase().as_str() {
            "" | "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            other => {
                return Err(DirectoryError::Invalid(format!(
                    "CSV record {}: active {other:?} is not a boolean",
                    i + 1
                )));
            }
        };
        out.push(NewUser {
            name: row.name,
            windows_login: row.windows_login,
            active,
            roles: list_cell(&row.roles),
            teams: list_cell(&row.teams),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------- roles

/// Every role, by name.
pub fn list_roles(conn: &Connection) -> Result<Vec<Role>> {
    let names: Vec<String> = conn
        .prepare_cached("SELECT name FROM roles ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    names.into_iter().map(|n| get_role(conn, &n)).collect()
}

/// One role by name.
pub fn get_role(conn: &Connection, name: &str) -> Result<Role> {
    let id: i64 = conn
        .query_row("SELECT id FROM roles WHERE name = ?1", [name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| DirectoryError::NotFound(format!("role {name:?}")))?;
    let perms: Vec<String> = conn
        .prepare_cached("SELECT permission FROM role_permissions WHERE role_id = ?1")?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut permissions: Vec<Permission> =
        perms.iter().filter_map(|p| Permission::parse(p)).collect();
    permissions.sort();
    Ok(Role {
        name: name.to_owned(),
        permissions,
    })
}

/// Creates the role or replaces its permissions. Returns the role and
/// whether anything changed.
pub fn put_role(
    conn: &Connection,
    actor: &Actor,
    name: &str,
    permissions: &[Permission],
) -> Result<(Role, bool)> {
    check_name("role name", name)?;
    let mut permissions = permissions.to_vec();
    permissions.sort();
    permissions.dedup();
    let after = Role {
        name: name.to_owned(),
        permissions,
    };
    let before = match get_role(conn, name) {
        Ok(r) => Some(r),
        Err(DirectoryError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    if before.as_ref() == Some(&after) {
        return Ok((after, false));
    }
    if before.is_none() {
        conn.execute(
            "INSERT INTO roles (name, created_at) VALUES (?1, ?2)",
            params![name, now_micros()],
        )?;
    }
    let id: i64 = conn.query_row("SELECT id FROM roles WHERE name = ?1", [name], |r| r.get(0))?;
    conn.execute("DELETE FROM role_permissions WHERE role_id = ?1", [id])?;
    for p in &after.permissions {
        conn.execute(
            "INSERT INTO role_permissions (role_id, permission) VALUES (?1, ?2)",
            params![id, p.as_str()],
        )?;
    }
    let action = if before.is_some() {
        "role.update"
    } else {
        "role.create"
    };
    audit::record(
        conn,
        actor,
        action,
        name,
        json!({ "before": before, "after": after }),
    )?;
    Ok((after, true))
}

/// Deletes a role (users lose it).
pub fn delete_role(conn: &Connection, actor: &Actor, name: &str) -> Result<()> {
    let before = get_role(conn, name)?;
    conn.execute("DELETE FROM roles WHERE name = ?1", [name])?;
    audit::record(
        conn,
        actor,
        "role.delete",
        name,
        json!({ "before": before }),
    )?;
    Ok(())
}

// ---------------------------------------------------------------- settings

/// The settings: stored values over defaults.
pub fn load_settings(conn: &Connection) -> Result<Settings> {
    let mut obj = match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(o)) => o,
        _ => unreachable!("Settings serializes to an object"),
    };
    let rows: Vec<(String, String)> = conn
        .prepare_cached("SELECT key, value FROM settings")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (k, v) in rows {
        let v = serde_json::from_str(&v)
            .map_err(|e| DirectoryError::Invalid(format!("stored setting {k}: {e}")))?;
        obj.insert(k, v);
    }
    serde_json::from_value(serde_json::Value::Object(obj))
        .map_err(|e| DirectoryError::Invalid(format!("stored settings: {e}")))
}

/// Applies a partial update: a JSON object with some of [`Settings`]'
/// top-level fields (nested objects are replaced whole). Validates the
/// result, writes and audits each changed field. Returns the new settings
/// and whether anything changed.
pub fn patch_settings(
    conn: &Connection,
    actor: &Actor,
    patch: &serde_json::Map<String, serde_json::Value>,
) -> Result<(Settings, bool)> {
    let before = load_settings(conn)?;
    let before_obj: BTreeMap<String, serde_json::Value> = match serde_json::to_value(&before) {
        Ok(serde_json::Value::Object(o)) => o.into_iter().collect(),
        _ => unreachable!("Settings serializes to an object"),
    };
    let mut merged: serde_json::Map<_, _> = before_obj.clone().into_iter().collect();
    for (k, v) in patch {
        merged.insert(k.clone(), v.clone());
    }
    let after: Settings = serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| DirectoryError::Invalid(format!("settings: {e}")))?;
    after.validate()?;
    // Compare in normalized form so `5` and `5.0` are the same.
    let after_obj = match serde_json::to_value(&after) {
        Ok(serde_json::Value::Object(o)) => o,
        _ => unreachable!("Settings serializes to an object"),
    };
    let mut changed = false;
    for (k, v) in &after_obj {
        if before_obj.get(k) != Some(v) {
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![k, v.to_string()],
            )?;
            audit::record(
                conn,
                actor,
                "settings.update",
                k,
                json!({ "before": before_obj.get(k), "after": v }),
            )?;
            changed = true;
        }
    }
    Ok((after, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    fn audit_count(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn users_roles_and_settings_are_audited_and_idempotent() {
        let db = db::open_in_memory().unwrap();
        db.call_blocking(|c| {
            let a = Actor::Admin;
            let (_, changed) = put_role(c, &a, "agent", &[Permission::RecordScreen]).unwrap();
            assert!(changed);
            let (_, changed) = put_role(c, &a, "agent", &[Permission::RecordScreen]).unwrap();
            assert!(!changed);
            let u = create_user(
                c,
                &a,
                &NewUser {
                    name: "Ann".into(),
                    windows_login: "CORP\\ann".into(),
                    active: true,
                    roles: vec!["agent".into(), "agent".into()],
                    teams: vec![],
                },
            )
            .unwrap();
            assert_eq!(u.roles, vec!["agent"]);
            let dup = NewUser {
                name: "Other".into(),
                windows_login: "corp\\ANN".into(),
                active: true,
                roles: vec![],
                teams: vec![],
            };
            assert!(matches!(
                create_user(c, &a, &dup),
                Err(DirectoryError::Conflict(_))
            ));
            let n = audit_count(c);
            update_user(c, &a, u.id, &UserPatch::default()).unwrap();
            assert_eq!(audit_count(c), n, "an empty patch writes nothing");
            let patch = serde_json::json!({"rte_enabled": false, "fps": 5});
            let (s, changed) = patch_settings(c, &a, patch.as_object().unwrap()).unwrap();
            assert!(changed && !s.rte_enabled);
            assert_eq!(audit_count(c), n + 1, "fps 5 == 5.0 is not a change");
            let bad = serde_json::json!({"gop_seconds": 0});
            assert!(patch_settings(c, &a, bad.as_object().unwrap()).is_err());
            let unknown = serde_json::json!({"nope": 1});
            assert!(patch_settings(c, &a, unknown.as_object().unwrap()).is_err());
        });
    }

    #[test]
    fn csv_import_parses_roles_and_booleans() {
        let users = parse_csv(
            "name,windows_login,active,roles\nAnn,CORP\\ann,true,agent;team-lead\nBob, CORP\\bob ,no,\n",
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].roles, vec!["agent", "team-lead"]);
        assert_eq!(users[1].windows_login, "CORP\\bob");
        assert!(!users[1].active);
        assert!(parse_csv("name,windows_login,active\nA,B,maybe\n").is_err());
        assert!(parse_csv("name\nA\n").is_err());
    }

    #[test]
    fn teams_come_with_the_import_idempotently_and_case_blind() {
        let db = db::open_in_memory().unwrap();
        db.call_blocking(|c| {
            let a = Actor::Admin;
            let csv =
                "name,windows_login,teams\nAnn,CORP\\ann,Team A;team a\nBob,CORP\\bob,TEAM A;B\n";
            let users = parse_csv(csv).unwrap();
            let r = import_users(c, &a, &users).unwrap();
            assert_eq!(r.created, 2);
            let ann = get_user(c, user_id_by_login(c, "CORP\\ann").unwrap().unwrap()).unwrap();
            let bob = get_user(c, user_id_by_login(c, "CORP\\bob").unwrap().unwrap()).unwrap();
            assert_eq!(ann.teams, vec!["Team A"]);
            assert_eq!(
                bob.teams,
                vec!["B", "Team A"],
                "one team, spelled as first seen"
            );
            let n = audit_count(c);
            let r = import_users(c, &a, &users).unwrap();
            assert_eq!((r.updated, r.unchanged), (0, 2));
            assert_eq!(audit_count(c), n, "a second import changes nothing");
            let teams: i64 = c
                .query_row("SELECT count(*) FROM teams", [], |r| r.get(0))
                .unwrap();
            assert_eq!(teams, 2);
            let patch = UserPatch {
                teams: Some(vec![]),
                ..UserPatch::default()
            };
            assert!(update_user(c, &a, bob.id, &patch).unwrap().teams.is_empty());
            let long = UserPatch {
                teams: Some(vec!["x".repeat(MAX_TEAM_NAME + 1)]),
                ..UserPatch::default()
            };
            assert!(matches!(
                update_user(c, &a, bob.id, &long),
                Err(DirectoryError::Invalid(_))
            ));
        });
    }
}
