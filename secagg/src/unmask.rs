//! Mask removal, with the proof as a type: an [`UnmaskedSum`] can only be built by
//! [`MaskedSum::remove_self_masks`] followed by [`SelfMasksRemoved::remove_dropped_masks`],
//! and each step takes recovered secrets whose owner sets must equal the sets recorded in the
//! masked sum (every survivor's self-mask seed; every dropped node's mask key, for each dropped
//! node that shared with a survivor). Nothing else in the crate constructs those values.

use std::sync::Arc;

use fedprof_crypto::{KexPublic, KexSecret, MaskOp, MaskStreams, SecretKey32};

use crate::binding;
use crate::config::RoundConfig;
use fedprof_protocol::secagg::RoundTag;

/// The sum of the survivors' masked inputs, and who is in it.
#[derive(Debug)]
pub(crate) struct MaskedSum {
    pub(crate) config: Arc<RoundConfig>,
    /// Nodes whose masked input is in `sum` (U3), sorted.
    pub(crate) survivors: Vec<u32>,
    /// Nodes that shared but sent no masked input, and have a surviving neighbour, sorted.
    pub(crate) dropped: Vec<u32>,
    pub(crate) sum: Vec<u64>,
}

/// Self-mask seeds recovered for exactly the listed owners (checked against their
/// commitments by the coordinator before this is built).
#[derive(Debug)]
pub(crate) struct RecoveredSeeds {
    pub(crate) owners: Vec<u32>,
    pub(crate) seeds: Vec<SecretKey32>,
}

/// Mask secret keys recovered for exactly the listed owners (checked against the advertised
/// public keys), with the survivors' mask public keys needed to redo the agreements.
#[derive(Debug)]
pub(crate) struct RecoveredMaskKeys {
    pub(crate) owners: Vec<u32>,
    pub(crate) keys: Vec<KexSecret>,
    /// Mask public key of every node, `None` where it did not advertise.
    pub(crate) mask_publics: Vec<Option<KexPublic>>,
}

/// Why masks could not be removed: the recovered secrets do not cover the required owners.
/// The coordinator's own logic rules this out; the check is the type's guarantee.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnmaskError {
    /// Recovered self-mask seeds are not exactly the survivors'.
    #[error("recovered self-mask seeds do not match the survivors")]
    SelfMasksIncomplete,
    /// Recovered mask keys are not exactly the dropped nodes'.
    #[error("recovered mask keys do not match the dropped nodes")]
    MaskKeysIncomplete,
    /// A key agreement with a survivor's advertised key failed (cannot happen for keys that
    /// passed the advertisement checks).
    #[error("mask key agreement failed for party {0}")]
    Agreement(u32),
}

impl MaskedSum {
    /// Subtracts `PRG(b_u)` for every survivor `u`.
    pub(crate) fn remove_self_masks(
        mut self,
        recovered: RecoveredSeeds,
    ) -> Result<SelfMasksRemoved, UnmaskError> {
        if recovered.owners != self.survivors || recovered.seeds.len() != self.survivors.len() {
            return Err(UnmaskError::SelfMasksIncomplete);
        }
        let tag = self.config.tag();
        let mut masks = MaskStreams::with_capacity(recovered.seeds.len());
        for (&u, seed) in recovered.owners.iter().zip(&recovered.seeds) {
            masks.push(&binding::self_mask_key(seed, tag, u), MaskOp::Subtract);
        }
        // The vector length was checked against MAX_VECTOR_LEN, far below the PRG limit.
        let _ = masks.apply(&mut self.sum);
        Ok(SelfMasksRemoved(self))
    }
}

/// The masked sum with every survivor's self mask removed; only the pairwise masks between
/// survivors and dropped nodes remain.
#[derive(Debug)]
pub(crate) struct SelfMasksRemoved(MaskedSum);

impl SelfMasksRemoved {
    /// Removes, for every dropped node `v` and every surviving neighbour `w`, the mask
    /// `(+/-) PRG(s_wv)` that `w` added (masks between two survivors cancel in the sum).
    pub(crate) fn remove_dropped_masks(
        self,
        recovered: RecoveredMaskKeys,
    ) -> Result<UnmaskedSum, UnmaskError> {
        let mut m = self.0;
        if recovered.owners != m.dropped || recovered.keys.len() != m.dropped.len() {
            return Err(UnmaskError::MaskKeysIncomplete);
        }
        let tag = m.config.tag();
        // One stream per (dropped, surviving neighbour) pair, all folded in one pass.
        let mut masks = MaskStreams::with_capacity(recovered.owners.len());
        for (&v, secret) in recovered.owners.iter().zip(&recovered.keys) {
            for w in m.config.neighbourhood(v) {
                if w == v || m.survivors.binary_search(&w).is_err() {
                    continue;
                }
                let public = recovered
                    .mask_publics
                    .get(w as usize)
                    .copied()
                    .flatten()
                    .ok_or(UnmaskError::Agreement(w))?;
                let key = binding::pairwise_mask_key(secret, &public, tag, v, w)
                    .map_err(|_| UnmaskError::Agreement(w))?;
                // w added +PRG when w < v, -PRG otherwise; undo exactly that.
                let op = if w < v { MaskOp::Subtract } else { MaskOp::Add };
                masks.push(&key, op);
            }
        }
        // The vector length was checked against MAX_VECTOR_LEN, far below the PRG limit.
        let _ = masks.apply(&mut m.sum);
        Ok(UnmaskedSum {
            tag,
            contributors: m.survivors,
            values: m.sum,
        })
    }
}

/// The released result of a round: the exact sum, in `Z_2^64`, of the inputs of
/// [`UnmaskedSum::contributors`]. Only mask removal builds it (see the module docs), so holding
/// one proves every survivor's self mask and every dropped node's pairwise masks were removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmaskedSum {
    tag: RoundTag,
    contributors: Vec<u32>,
    values: Vec<u64>,
}

impl UnmaskedSum {
    /// The round.
    #[must_use]
    pub fn tag(&self) -> RoundTag {
        self.tag
    }

    /// Indices of the nodes whose inputs are in the sum, sorted.
    #[must_use]
    pub fn contributors(&self) -> &[u32] {
        &self.contributors
    }

    /// The sum, element-wise in `Z_2^64`.
    #[must_use]
    pub fn values(&self) -> &[u64] {
        &self.values
    }

    /// The sum, by value.
    #[must_use]
    pub fn into_values(self) -> Vec<u64> {
        self.values
    }
}
