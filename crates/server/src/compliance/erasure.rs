//! Erasure on request: a contact's stored recording and call audio deleted
//! at an administrator's word (`POST /api/v1/admin/contacts/{id}/erase`,
//! with a reason), before their retention ends.
//!
//! The contact row stays, marked `erased` with who, when and why, and one
//! `recording.erased` audit row records it without the content. Its video,
//! audio and download answer 410 from then on, an audio import for it is
//! refused (410), and so is an agent's upload of its recording: one not
//! started yet (a PC that was offline uploads it later), or one under way,
//! which the erasure ends and whose bytes it deletes (`crate::uploads`).
//! A contact a legal
//! hold covers is refused (409 `held`): lift the hold first, which is
//! itself audited. Erasing an erased contact changes nothing; erasing an
//! expired one marks it erased (its files are gone already).

use serde::Serialize;

use super::{ComplianceError, Deleted, Disposal, DisposalRecord, hold};
use crate::audit::Actor;
use crate::state::AppState;

/// What an erasure did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Erasure {
    /// The contact.
    pub contact_id: String,
    /// Its disposal now: `erased`, by whom, when, why.
    pub disposal: DisposalRecord,
    /// What this request deleted (nothing when it was erased before).
    pub deleted: Deleted,
    /// False when the contact was erased already.
    pub changed: bool,
}

/// Where a contact stands before its erasure.
enum Before {
    /// Erased already: nothing to do.
    Erased,
    /// The erasing intent is committed (now, or by an erasure a crash
    /// interrupted): finish it.
    Erasing,
}

/// Erases `contact`'s recording and audio (see the module doc).
pub async fn erase(
    state: &AppState,
    contact: &str,
    actor: Actor,
    reason: &str,
) -> Result<Erasure, ComplianceError> {
    let reason = hold::reason("an erasure", reason)?;
    let c = contact.to_owned();
    let before = state
        .db()
        .call(move |conn| -> Result<Before, ComplianceError> {
            let tx = crate::db::write_tx(conn)?;
            let state = super::in_scope(&tx, crate::scope::Scope::All, &c)?
                .ok_or_else(|| ComplianceError::NoContact(c.clone()))?;
            match state.map(|d| d.state) {
                Some(Disposal::Erased) => return Ok(Before::Erased),
                Some(Disposal::Erasing) => return Ok(Before::Erasing),
                _ => {}
            }
            if let Some((hold, reason)) = hold::covering(&tx, &c)? {
                return Err(ComplianceError::Held {
                    contact: c,
                    hold,
                    reason,
                });
            }
            if !super::begin(&tx, &c, Disposal::Erasing, &actor, &reason)? {
                // Neither held nor disposed of a moment ago: a bug.
                return Err(ComplianceError::Invalid(format!(
                    "contact {c:?} could not be marked for erasure"
                )));
            }
            tx.commit()?;
            Ok(Before::Erasing)
        })
        .await?;
    let deleted = match before {
        Before::Erased => None,
        Before::Erasing => {
            crate::crashpoint::hit(Disposal::Erasing.crash_points().0);
            super::finish(state, contact, Disposal::Erasing).await?
        }
    };
    let c = contact.to_owned();
    let disposal = state
        .db()
        .call(move |conn| super::in_scope(conn, crate::scope::Scope::All, &c))
        .await?
        .flatten()
        .ok_or_else(|| ComplianceError::NoContact(contact.to_owned()))?;
    Ok(Erasure {
        contact_id: contact.to_owned(),
        disposal,
        changed: deleted.is_some(),
        deleted: deleted.unwrap_or_default(),
    })
}
