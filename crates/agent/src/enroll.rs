//! Enrollment: the device key, the credential and who the server is.
//!
//! `deskrec-agent enroll <token>` generates the device's RSA signing key,
//! calls `POST /api/v1/enroll` over TLS pinned to the fingerprint in the
//! token, and stores the credential and key in the [`SecretStore`] and the
//! server's address with the device id in the database. The key is stored
//! before the server hears of it, so a crash after enrollment never leaves
//! a registered key the PC does not have.

use deskrec_client::{HttpConnection, Method, Pin, ServerAddress, VerifiedPins};
use deskrec_protocol::{EnrollRequest, EnrollResponse, EnrollmentToken};
use deskrec_vault::PrivateKey;
use serde::{Deserialize, Serialize};

use crate::db::{Db, get_meta, keys, put_meta};
use crate::secrets::{CREDENTIAL, DEVICE_KEY, SecretStore};
use crate::{AgentError, DataDir};

/// Who this PC is to its server (no secrets: those are in the
/// [`SecretStore`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The device id the server assigned.
    pub device_id: String,
    /// The server's base URL.
    pub url: String,
    /// The server's pin ([`deskrec_client::Pin`]): its public key's, or
    /// for agents enrolled before public-key pins (whose identity names it
    /// `cert_sha256`) its certificate's until the first announcement.
    #[serde(alias = "cert_sha256")]
    pub pin: String,
    /// The key the server announced it will serve next, trusted beside
    /// `pin` until the server serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_pin: Option<String>,
    /// The host name sent at enrollment and in every hello.
    pub host: String,
    /// When enrolled (agent clock, µs).
    pub enrolled_at: i64,
}

impl Identity {
    /// The server's address, pinned to the current and the next key.
    pub fn address(&self) -> Result<ServerAddress, AgentError> {
        let mut addr = ServerAddress::new(&self.url, &self.pin)?;
        if let Some(next) = &self.next_pin {
            addr.pins.push(next.parse()?);
        }
        Ok(addr)
    }

    /// Takes in the server's checked announcement: the key it serves now
    /// becomes the pin (upgrading a certificate pin, or completing a
    /// rotation to the announced key), and its next key is trusted too.
    /// Returns whether anything changed.
    pub fn follow(&mut self, pins: &VerifiedPins) -> bool {
        let (pin, next_pin) = (
            pins.current.to_string(),
            pins.next.as_ref().map(Pin::to_string),
        );
        let changed = (&pin, &next_pin) != (&self.pin, &self.next_pin);
        (self.pin, self.next_pin) = (pin, next_pin);
        changed
    }
}

/// The secrets an enrolled agent works with.
pub struct Credentials {
    /// Bearer token for the RTE channel and uploads.
    pub credential: String,
    /// The device's signing key.
    pub device_key: PrivateKey,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// Enrolls this PC with the compact enrollment token.
pub async fn enroll(
    dir: &DataDir,
    secrets: &dyn SecretStore,
    compact_token: &str,
    host: &str,
    now: i64,
) -> Result<Identity, AgentError> {
    let token = EnrollmentToken::decode(compact_token)?;
    enroll_with(dir, secrets, &token, host, now).await
}

/// Enrolls this PC with a token given as its parts: the server's URL,
/// its pin (see [`Pin`]) and the secret, as a deployment config gives them.
pub async fn enroll_with(
    dir: &DataDir,
    secrets: &dyn SecretStore,
    token: &EnrollmentToken,
    host: &str,
    now: i64,
) -> Result<Identity, AgentError> {
    let db = dir.open_db()?;
    let enrolled = || -> Result<(), AgentError> {
        match db.call_blocking(|c| get_meta::<Identity>(c, keys::IDENTITY))? {
            Some(id) => Err(AgentError::AlreadyEnrolled {
                device_id: id.device_id,
                data_dir: dir.root().to_owned(),
            }),
            None => Ok(()),
        }
    };
    enrolled()?;
    // One enrollment at a time: the Windows service and a tray app started
    // by an administrator may both enroll from the deployment settings, and
    // two interleaved ones would leave one's key beside the other's
    // credential. The engine's lock serves: no engine runs unenrolled.
    let _lock = crate::lock::DirLock::acquire(dir, now)?;
    enrolled()?;
    let addr = ServerAddress::new(&token.url, &token.server_pin())?;
    let key = tokio::task::spawn_blocking(PrivateKey::generate)
        .await
        .map_err(AgentError::KeyGeneration)??;
    secrets.put(DEVICE_KEY, key.to_pem().as_bytes())?;
    let body = serde_json::to_value(EnrollRequest {
        token: token.token.clone(),
        public_key_pem: key.public().to_pem(),
        host: host.to_owned(),
    })
    .map_err(|source| AgentError::Encode {
        what: "the enrollment request".into(),
        source,
    })?;
    let mut conn = HttpConnection::connect(&addr).await?;
    let headers = [("content-type", "application/json")];
    let resp = conn
        .request(Method::POST, "/api/v1/enroll", &headers, body.to_string())
        .await?
        .ok()?;
    let answer: EnrollResponse =
        serde_json::from_slice(&resp.body).map_err(AgentError::EnrollAnswer)?;
    secrets.put(CREDENTIAL, answer.credential.as_bytes())?;
    let identity = Identity {
        device_id: answer.device_id,
        url: token.url.clone(),
        pin: addr.pins[0].to_string(),
        next_pin: None,
        host: host.to_owned(),
        enrolled_at: now,
    };
    let stored = identity.clone();
    db.call_blocking(move |c| -> Result<(), AgentError> {
        let tx = crate::db::write_tx(c)?;
        put_meta(&tx, keys::IDENTITY, &stored)?;
        crate::db::audit(
            &tx,
            now,
            "device.enrolled",
            &stored.device_id,
            serde_json::json!({"url": stored.url, "host": stored.host, "key_id": key.id().to_string()}),
        )?;
        tx.commit()?;
        Ok(())
    })?;
    tracing::info!(device = %identity.device_id, url = %identity.url, "enrolled");
    Ok(identity)
}

/// The identity and secrets stored in `dir`.
pub fn load(
    dir: &DataDir,
    secrets: &dyn SecretStore,
) -> Result<(Identity, Credentials), AgentError> {
    load_from(&dir.open_db()?, dir, secrets)
}

/// [`load`] through an open database.
pub(crate) fn load_from(
    db: &Db,
    dir: &DataDir,
    secrets: &dyn SecretStore,
) -> Result<(Identity, Credentials), AgentError> {
    let identity = db
        .call_blocking(|c| get_meta::<Identity>(c, keys::IDENTITY))?
        .ok_or_else(|| AgentError::NotEnrolled {
            data_dir: dir.root().to_owned(),
        })?;
    let missing = |name: &str| AgentError::SecretMissing { name: name.into() };
    let credential = secrets
        .get(CREDENTIAL)?
        .ok_or_else(|| missing(CREDENTIAL))?;
    let credential =
        String::from_utf8(credential.to_vec()).map_err(|_| AgentError::SecretNotText {
            name: CREDENTIAL.into(),
        })?;
    let pem = secrets
        .get(DEVICE_KEY)?
        .ok_or_else(|| missing(DEVICE_KEY))?;
    let pem = std::str::from_utf8(&pem).map_err(|_| AgentError::SecretNotText {
        name: DEVICE_KEY.into(),
    })?;
    let device_key = PrivateKey::from_pem(pem)?;
    Ok((
        identity,
        Credentials {
            credential,
            device_key,
        },
    ))
}
