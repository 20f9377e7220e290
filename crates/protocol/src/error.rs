//! The JSON error body of the HTTP API.

use serde::{Deserialize, Serialize};

/// What every failing HTTP endpoint returns: a stable machine-readable `code`
/// (snake_case, e.g. `unauthorized`, `not_found`) and a human-readable
/// `message`. Clients branch on `code`, never on `message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable error code.
    pub code: String,
    /// Explanation for people; may change between versions.
    pub message: String,
}
