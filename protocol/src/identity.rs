//! Party identities. A party's role and name are fixed by its certificate (the transport crate
//! extracts them); nothing a peer *says* in a message can change them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a party may do in a federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Runs jobs and merges aggregates; the only server.
    Coordinator,
    /// A data holder: computes local aggregates and contributes them.
    Node,
    /// Submits jobs and reads their results.
    Analyst,
    /// Reads ledgers and certificates; no data access.
    Auditor,
}

impl Role {
    /// All roles, in a fixed order.
    pub const ALL: [Role; 4] = [Role::Coordinator, Role::Node, Role::Analyst, Role::Auditor];

    /// The lowercase label used in certificates and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Node => "node",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
        }
    }

    /// Parses a label produced by [`Role::as_str`].
    pub fn from_label(label: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == label)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest accepted party name, in bytes (a DNS label's limit, so names fit in certificates).
pub const MAX_PARTY_NAME_LEN: usize = 63;

/// A party name: 1 to 63 characters of `a-z`, `0-9` and `-`, not starting or ending with `-`.
///
/// The restriction keeps names safe in file names, certificate fields, log lines and URIs without
/// any escaping. Construct with [`PartyName::new`]; an invalid name cannot be represented.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PartyName(String);

/// Why a string is not a valid [`PartyName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartyNameError {
    /// The name is empty.
    #[error("a party name must not be empty")]
    Empty,
    /// The name is longer than [`MAX_PARTY_NAME_LEN`].
    #[error("party name is {0} bytes long; at most {MAX_PARTY_NAME_LEN} are allowed")]
    TooLong(usize),
    /// The name holds a character outside `a-z`, `0-9`, `-`.
    #[error("party name {0:?} may only use lowercase letters a-z, digits and '-'")]
    BadCharacter(String),
    /// The name starts or ends with `-`.
    #[error("party name {0:?} must not start or end with '-'")]
    EdgeHyphen(String),
}

impl PartyName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, PartyNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(PartyNameError::Empty);
        }
        if name.len() > MAX_PARTY_NAME_LEN {
            return Err(PartyNameError::TooLong(name.len()));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(PartyNameError::BadCharacter(name));
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(PartyNameError::EdgeHyphen(name));
        }
        Ok(PartyName(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PartyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for PartyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for PartyName {
    type Err = PartyNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PartyName::new(s)
    }
}

impl<'de> Deserialize<'de> for PartyName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PartyName::new(s).map_err(serde::de::Error::custom)
    }
}

/// A party as its certificate names it: role and name together.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartyId {
    /// The role in the certificate.
    pub role: Role,
    /// The name in the certificate.
    pub name: PartyName,
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_label_names() {
        for ok in ["a", "branch-7", "x0", &"z".repeat(63)] {
            assert_eq!(
                PartyName::new(ok).map(|n| n.to_string()),
                Ok(ok.to_string())
            );
        }
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(PartyName::new(""), Err(PartyNameError::Empty));
        assert_eq!(
            PartyName::new("z".repeat(64)),
            Err(PartyNameError::TooLong(64))
        );
        for bad in ["A", "a b", "a/b", "ü", "a.b", "a_b"] {
            assert!(
                matches!(PartyName::new(bad), Err(PartyNameError::BadCharacter(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            PartyName::new("-a"),
            Err(PartyNameError::EdgeHyphen(_))
        ));
        assert!(matches!(
            PartyName::new("a-"),
            Err(PartyNameError::EdgeHyphen(_))
        ));
    }

    #[test]
    fn deserializing_validates() {
        let bytes = postcard::to_stdvec("Bad Name").unwrap();
        assert!(postcard::from_bytes::<PartyName>(&bytes).is_err());
        let bytes = postcard::to_stdvec("good").unwrap();
        assert_eq!(
            postcard::from_bytes::<PartyName>(&bytes).unwrap().as_str(),
            "good"
        );
    }

    #[test]
    fn role_labels_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::from_label(r.as_str()), Some(r));
        }
        assert_eq!(Role::from_label("admin"), None);
    }
}
