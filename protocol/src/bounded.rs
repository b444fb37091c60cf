//! Sequences with a most length, refused while they are decoded (security review M1).
//!
//! postcard writes a sequence's length before its items, and a one-byte item (a
//! `RevealedShare` with an empty share, say) decodes into a 32-byte value: a 16 MiB frame of
//! them would become half a gigabyte before any check ran. The secure-aggregation lists hold
//! at most one item per party of the round, so they are decoded through [`parties`], which
//! refuses a declared length above [`MAX_PARTIES`] before decoding any item. The encoding is
//! unchanged (the same bytes as a plain `Vec`).

use core::fmt;
use core::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

/// Most parties of one secure-aggregation round, hence most items in any of its lists (the
/// secagg crate's own limit is the same number).
pub const MAX_PARTIES: usize = 1 << 16;

/// Items reserved up front, whatever the declared length (the rest as they arrive).
const RESERVE: usize = 1024;

/// `#[serde(with = "crate::bounded::parties")]`: a `Vec` of at most [`MAX_PARTIES`] items.
pub mod parties {
    use super::*;

    /// As a plain sequence.
    pub fn serialize<S: serde::Serializer, T: serde::Serialize>(
        v: &[T],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(v)
    }

    /// Refuses more than [`MAX_PARTIES`] items, before decoding any when the length is
    /// declared up front (postcard always declares it).
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(Bounded::<T>(PhantomData))
    }
}

struct Bounded<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of at most {MAX_PARTIES} items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let declared = seq.size_hint().unwrap_or(0);
        if declared > MAX_PARTIES {
            return Err(serde::de::Error::invalid_length(declared, &self));
        }
        let mut out = Vec::with_capacity(declared.min(RESERVE));
        while let Some(item) = seq.next_element()? {
            if out.len() == MAX_PARTIES {
                return Err(serde::de::Error::invalid_length(MAX_PARTIES + 1, &self));
            }
            out.push(item);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::MAX_PARTIES;
    use crate::message::{Body, Envelope, Header};
    use crate::secagg::{NodeMessage, RevealedShare, RoundTag, UnmaskResponse};
    use crate::{JobId, RoundId};

    fn response(n: usize) -> Envelope {
        let shares = (0..n)
            .map(|i| RevealedShare {
                owner: u32::try_from(i % 128).unwrap(),
                share: Vec::new(),
            })
            .collect();
        Envelope {
            header: Header {
                job: JobId(1),
                round: RoundId(0),
                seq: 0,
            },
            body: Body::SecAgg(NodeMessage::Unmask(UnmaskResponse {
                tag: RoundTag { job: 1, round: 0 },
                sender: 0,
                self_mask_shares: shares,
                mask_key_shares: Vec::new(),
            })),
        }
    }

    /// A list longer than a round can have is refused from its declared length: two bytes a
    /// share on the wire, 32 in memory, so 16 MiB of them would have decoded into half a
    /// gigabyte (security review M1).
    #[test]
    fn secagg_lists_longer_than_a_round_are_refused_while_decoding() {
        let ok = crate::encode(&response(MAX_PARTIES)).unwrap();
        assert_eq!(crate::decode(&ok).unwrap(), response(MAX_PARTIES));
        let long = crate::encode(&response(MAX_PARTIES + 1)).unwrap();
        assert!(long.len() < 3 * (MAX_PARTIES + 1), "{} bytes", long.len());
        // (postcard reports every serde error alike; the count is in `Bounded::expecting`.)
        assert!(matches!(
            crate::decode(&long),
            Err(crate::DecodeError::Malformed(_))
        ));
    }
}
