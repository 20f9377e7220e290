//! Following the server's TLS key.
//!
//! Every policy carries the server's announcement of its pins
//! ([`ServerPins`]); connected agents get a new policy as soon as the
//! server prepares a next key. Once the announcement checks out against
//! the pins held (see [`deskrec_client::verify_pins`]), the agent stores
//! what changed before using it: a certificate pin becomes the key's pin,
//! an announced next key is trusted beside the current one, and once the
//! server serves that key it becomes the only pin. So the server can change
//! its key without cutting off the PCs that connected in between.

use deskrec_client::verify_pins;
use deskrec_protocol::ServerPins;

use crate::AgentError;
use crate::db::{audit, get_meta, keys, put_meta, write_tx};
use crate::engine::Shared;
use crate::enroll::Identity;

/// Checks and stores the server's announced pins; afterwards new
/// connections trust what the server announced.
pub(crate) async fn follow(shared: &Shared, announced: &ServerPins) -> Result<(), AgentError> {
    let verified = verify_pins(&shared.server().pins, announced)?;
    let now = shared.now();
    let changed = shared
        .db
        .call(move |c| -> Result<Option<Identity>, AgentError> {
            let tx = write_tx(c)?;
            let mut id: Identity =
                get_meta(&tx, keys::IDENTITY)?.ok_or(AgentError::EnrollmentGone)?;
            let before = (id.pin.clone(), id.next_pin.clone());
            if !id.follow(&verified) {
                return Ok(None);
            }
            put_meta(&tx, keys::IDENTITY, &id)?;
            let detail = serde_json::json!({
                "pin": id.pin, "next_pin": id.next_pin,
                "was": before.0, "next_was": before.1,
            });
            audit(&tx, now, "server.pins", &id.device_id, detail)?;
            tx.commit()?;
            Ok(Some(id))
        })
        .await?;
    if let Some(id) = changed {
        tracing::info!(pin = %id.pin, next_pin = ?id.next_pin, "following the server's announced TLS key");
        shared.set_server(id.address()?);
    }
    Ok(())
}
