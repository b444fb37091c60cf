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

/// A profiling job's id: 16 random bytes drawn by the coordinator when the job opens, so ids
/// never repeat across coordinator restarts. Hex in human-readable formats (ledgers, JSON).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId(pub [u8; 16]);

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProfileId({self})")
    }
}

impl std::str::FromStr for ProfileId {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return Err("a profiling job id is 32 hex digits");
        }
        let mut out = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hex = |c: u8| match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                _ => Err("a profiling job id is lowercase hex"),
            };
            out[i] = hex(pair[0])? << 4 | hex(pair[1])?;
        }
        Ok(ProfileId(out))
    }
}

impl Serialize for ProfileId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for ProfileId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 16]>::deserialize(d).map(ProfileId)
        }
    }
}

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
