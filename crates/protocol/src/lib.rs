//! Messages shared by Deskrec agents and the recording server.
//!
//! Everything here is plain data with serde JSON encodings, so the agent and
//! the server agree on the wire format by sharing one crate. The byte-level
//! description with examples is `docs/protocol.md`.
//!
//! ```
//! use deskrec_protocol::{AgentMessage, Hello, PROTOCOL_VERSION};
//!
//! let hello = AgentMessage::Hello(Hello {
//!     version: PROTOCOL_VERSION,
//!     device_id: "dev-1".into(),
//!     windows_login: "CORP\\ann".into(),
//!     host: "PC-17".into(),
//!     agent_version: "0.1.0".into(),
//!     last_contact_cursor: None,
//! });
//! let json = serde_json::to_string(&hello).unwrap();
//! assert!(json.starts_with(r#"{"type":"hello","version":1"#));
//! assert_eq!(AgentMessage::from_json(&json).unwrap(), hello);
//! ```
//!
//! # Layout
//!
//! - `rte`: the RTE WebSocket channel — [`AgentMessage`] (agent → server) and
//!   [`ServerMessage`] (server → agent), the [`Policy`] and its parts;
//! - `enroll`: the one-time [`EnrollmentToken`] an administrator hands to a
//!   PC, and the [`EnrollRequest`]/[`EnrollResponse`] of `POST /api/v1/enroll`;
//! - `pins`: the server's TLS key pins and the signed announcement of its
//!   next key, [`ServerPins`];
//! - `error`: the JSON error body every HTTP endpoint returns, [`ErrorBody`].

#![deny(missing_docs)]

mod enroll;
mod error;
mod pause;
mod pins;
mod rte;

pub use enroll::{EnrollRequest, EnrollResponse, EnrollmentToken, TokenError};
pub use error::ErrorBody;
pub use pause::{PauseCommand, PausePolicy, PauseReport, PauseRule, PauseSource, ResumeCommand};
pub use pins::{CERT_PIN_PREFIX, SPKI_PIN_PREFIX, ServerPins, next_pin_message};
pub use rte::{
    AgentMessage, AgentStatus, ClockProbe, ClockReply, ContactAck, ContactOutcome, ContactRelay,
    DesktopPolicy, FPS_RANGE, Heartbeat, Hello, PROTOCOL_VERSION, Policy, PolicyReason,
    RecordingState, RecordingStored, RetentionLimits, RteError, SegmentFindings, SegmentReport,
    ServerMessage, UnrecoverableReason, UploadLimits, Watermark,
};
