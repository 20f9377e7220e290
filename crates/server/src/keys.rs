//! The server's recording key pair (RSA-2048, vault format).
//!
//! Agents wrap every segment key under the public half, sent in each
//! policy; the private half, kept in `data_dir/recording-key.pem` (0600),
//! will decrypt uploads. Generated on first start.
//!
//! TODO(next slice): encrypt the private key at rest with a passphrase or
//! key file, and support rotation (a keyring of old keys).

use std::path::Path;

use deskrec_vault::{PrivateKey, VaultError};

use crate::eligibility::ServerKey;

/// Loads `path`, or generates and saves a new key there if it is missing.
pub fn load_or_generate(path: &Path) -> Result<(PrivateKey, ServerKey), VaultError> {
    let key = if path.exists() {
        PrivateKey::load(path)?
    } else {
        let key = PrivateKey::generate()?;
        key.save(path)?;
        tracing::info!(key_id = %key.id(), "generated the server recording key");
        key
    };
    let public = ServerKey {
        public_pem: key.public().to_pem(),
        key_id: key.id().to_string(),
    };
    Ok((key, public))
}
