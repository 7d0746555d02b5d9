//! Why a request was refused, as a stable word a program can act on.
//!
//! Receives nothing; emits the `code` of a refusal reply (`{"ok": false, "error": "…", "code":
//! "unknown_jail"}`). The `error` text is for people and may be reworded; the code is part of the
//! protocol: codes may be added, never renamed. The HTTP API answers with the same code (and maps
//! it to a status: [`ErrorCode::http_status`]), so a panel handles refusals the same way through
//! either door.

use serde::{Deserialize, Serialize};

use super::Reply;

/// A refusal's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request could not be read (malformed JSON, unknown command or field, too large).
    BadRequest,
    /// An address or prefix that does not parse.
    InvalidAddress,
    /// A duration that does not parse (`for`).
    InvalidDuration,
    /// No enabled jail of that name.
    UnknownJail,
    /// Unban of something that is not banned.
    NotBanned,
    /// No firewall rule or forward with that id (or it is the other kind).
    UnknownId,
    /// Understood, and refused by policy: every address was in an ignore list, or is covered by
    /// a longer ban.
    Refused,
    /// A protected firewall rule: it cannot be deleted through the API.
    Protected,
    /// A firewall rule or forward written in a `firewall.d` file: change it there and reload.
    FromFile,
    /// A firewall rule that does what an existing one does.
    Duplicate,
    /// A forward that takes packets another forward takes.
    Overlap,
    /// The change would lock the administrator out (their SSH session or an admin port).
    Lockout,
    /// `firewall_confirm` with no enable waiting for it (it was never asked, or rolled back).
    NotPending,
    /// `firewall_enable` while an enable waits for `firewall_confirm`.
    Pending,
    /// `firewall_enable` with `confirm_within` while the firewall is already on (there would be
    /// nothing to roll back to).
    AlreadyEnabled,
    /// A mutating request from a peer that may not mutate.
    PermissionDenied,
    /// A reload refused: the new configuration is invalid or needs a restart.
    InvalidConfig,
    /// The kernel or the disk did not take a change (nothing was reported done).
    Failed,
    /// Too many clients at once; try again.
    Busy,
    /// The daemon is stopping.
    Stopping,
}

impl ErrorCode {
    /// The word on the wire (`unknown_jail`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidAddress => "invalid_address",
            ErrorCode::InvalidDuration => "invalid_duration",
            ErrorCode::UnknownJail => "unknown_jail",
            ErrorCode::NotBanned => "not_banned",
            ErrorCode::UnknownId => "unknown_id",
            ErrorCode::Refused => "refused",
            ErrorCode::Protected => "protected",
            ErrorCode::FromFile => "from_file",
            ErrorCode::Duplicate => "duplicate",
            ErrorCode::Overlap => "overlap",
            ErrorCode::Lockout => "lockout",
            ErrorCode::NotPending => "not_pending",
            ErrorCode::Pending => "pending",
            ErrorCode::AlreadyEnabled => "already_enabled",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::Failed => "failed",
            ErrorCode::Busy => "busy",
            ErrorCode::Stopping => "stopping",
        }
    }

    /// The HTTP status the API answers a refusal of this kind with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidAddress | ErrorCode::InvalidDuration => 400,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::UnknownJail | ErrorCode::NotBanned | ErrorCode::UnknownId => 404,
            ErrorCode::Refused
            | ErrorCode::Protected
            | ErrorCode::FromFile
            | ErrorCode::Duplicate
            | ErrorCode::Overlap
            | ErrorCode::Lockout
            | ErrorCode::NotPending
            | ErrorCode::Pending
            | ErrorCode::AlreadyEnabled => 409,
            ErrorCode::InvalidConfig => 422,
            ErrorCode::Failed => 500,
            ErrorCode::Busy | ErrorCode::Stopping => 503,
        }
    }
}

/// A request the edge could not turn into a command, refused with its reason: `bad_request`
/// (so that `?` on a `Result<_, String>` works where requests are checked).
impl From<String> for Reply {
    fn from(message: String) -> Reply {
        Reply::refuse(ErrorCode::BadRequest, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_word_is_the_serde_name() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::InvalidAddress,
            ErrorCode::InvalidDuration,
            ErrorCode::UnknownJail,
            ErrorCode::NotBanned,
            ErrorCode::UnknownId,
            ErrorCode::Refused,
            ErrorCode::Protected,
            ErrorCode::FromFile,
            ErrorCode::Duplicate,
            ErrorCode::Overlap,
            ErrorCode::Lockout,
            ErrorCode::NotPending,
            ErrorCode::Pending,
            ErrorCode::AlreadyEnabled,
            ErrorCode::PermissionDenied,
            ErrorCode::InvalidConfig,
            ErrorCode::Failed,
            ErrorCode::Busy,
            ErrorCode::Stopping,
        ] {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
            assert!((400..600).contains(&code.http_status()));
        }
        let refused: Reply = "no such rule".to_string().into();
        assert_eq!(refused.code, Some(ErrorCode::BadRequest));
    }
}
