//! Profiling jobs as units of budgeting: one id for all the releases of a job.
//!
//! A profiling job is many feature-query releases (quantiles, segments, k-means steps). The
//! coordinator opens the job at its first release: it draws a random [`ProfileId`], fixes the
//! participant set by its own policy (every registered node), and records the job's declared
//! total (the first release's budget plus its reserve). Every release of the job then carries
//! the same [`ProfileTag`] to the nodes, which sum their debits per job and per analyst
//! against their own caps; the ledgers record the tag with every release.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::PartyName;
use crate::message::Fraction;

/// Sixteen bytes shown as 32 lowercase hex digits in human-readable formats (ledgers, JSON,
/// journals) and as raw bytes on the wire.
macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl std::str::FromStr for $name {
            type Err = &'static str;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex16(s)
                    .map($name)
                    .ok_or(concat!("a ", $what, " is 32 lowercase hex digits"))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; 16]>::deserialize(d).map($name)
                }
            }
        }
    };
}

fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    let bytes = s.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = hex(pair[0])? << 4 | hex(pair[1])?;
    }
    Some(out)
}

hex_id!(
    /// A profiling job's id: 16 random bytes drawn by the coordinator when the job opens, so
    /// ids never repeat across coordinator restarts.
    ProfileId,
    "profiling job id"
);

hex_id!(
    /// An analyst's idempotency key for one submitted release (16 bytes the analyst derives
    /// from its own random run nonce and the release's step). The coordinator keeps, per
    /// analyst, which requests it published and what: a request sent again (the analyst, or
    /// the coordinator, restarted) gets the published result back instead of a second round,
    /// so resuming a profiling job never pays twice for a release that was published. Never
    /// shown to nodes.
    RequestId,
    "request id"
);

/// What every release of a profiling job carries to the nodes and into the ledgers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileTag {
    /// The job.
    pub id: ProfileId,
    /// Who asked for it: the analyst's certificate name, or the coordinator's own name for
    /// local and scheduled runs.
    pub analyst: PartyName,
    /// The job's declared total zCDP loss per node (its first release's budget plus
    /// reserve); no release of the job may take the job past it.
    pub cap: Fraction,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_in_both_encodings() {
        let id = ProfileId([0xa5; 16]);
        assert_eq!(id.to_string(), "a5".repeat(16));
        assert_eq!(id.to_string().parse::<ProfileId>(), Ok(id));
        let bytes = postcard::to_stdvec(&id).unwrap_or_default();
        assert_eq!(bytes, vec![0xa5; 16]);
        assert_eq!(postcard::from_bytes::<ProfileId>(&bytes).ok(), Some(id));
        for bad in ["", "A5", &"g0".repeat(16), &"a5".repeat(17)] {
            assert!(bad.parse::<ProfileId>().is_err(), "{bad}");
        }
    }
}
