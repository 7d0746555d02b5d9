//! `JailName`: the identifier shared by config, tracker, banner, backend, state and control.
//!
//! A jail's name becomes part of nftables set names (`sshd_v4`, `postfix-sasl_net6`), of state
//! records and of control requests, so it is checked once, when read: ASCII letters, digits, `_`
//! and `-`, starting with a letter, at most 64 characters.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest jail name; leaves room for the set suffixes within nftables' 256-byte names.
pub const MAX_JAIL_NAME: usize = 64;

/// A validated jail name. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JailName(Arc<str>);

/// Why a text is not a jail name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid jail name (letters, digits, '_' and '-', starting with a letter, at most 64 characters)"
)]
pub struct JailNameError(pub String);

impl JailName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for JailName {
    type Err = JailNameError;

    fn from_str(text: &str) -> Result<JailName, JailNameError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_JAIL_NAME
            && text.starts_with(|c: char| c.is_ascii_alphabetic())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(JailName(Arc::from(text)))
        } else {
            Err(JailNameError(text.to_string()))
        }
    }
}

impl fmt::Display for JailName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for JailName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for JailName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for JailName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for JailName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JailName, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_fail2ban_style_names() {
        for name in ["sshd", "postfix-sasl", "nginx_http_auth", "recidive", "a1"] {
            assert_eq!(name.parse::<JailName>().unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_names_nftables_or_paths_would_choke_on() {
        let long = "a".repeat(MAX_JAIL_NAME + 1);
        for name in [
            "",
            "1sshd",
            "-x",
            "ssh d",
            "ssh/d",
            "ssh.d",
            "sshd;drop",
            "é",
            long.as_str(),
        ] {
            assert!(name.parse::<JailName>().is_err(), "{name:?} accepted");
        }
    }
}
