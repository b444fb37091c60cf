//! The coordinator (server) side of a round, as a sans-IO state machine. The driver hands it
//! each node message with the sender's index (from the authenticated connection), and decides
//! when a phase ends: when [`Coordinator::receive`] reports that every expected node answered,
//! or when the phase's deadline passes. [`Coordinator::close_phase`] then checks the thresholds
//! and returns the messages of the next phase, or, after the unmask phase, the
//! [`UnmaskedSum`]. A round that falls below a threshold aborts and releases nothing.
//!
//! Phases (Bonawitz et al. 2017, section 4, rounds 0 to 4 without the consistency check):
//! 0. collect [`AdvertiseKeys`] (verified) from the set `U1`;
//! 1. send each node the adverts of its neighbourhood in `U1`, collect [`ShareKeys`] (`U2`);
//! 2. relay the envelopes, collect [`MaskedInput`] (`U3`), adding each into a running sum;
//! 3. send each survivor the survivors of its neighbourhood, collect [`UnmaskResponse`]s, then
//!    rebuild each survivor's self-mask seed and each dropped node's mask key from `t` shares
//!    and remove the masks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fedprof_crypto::{KexPublic, KexSecret, Reconstructor, SecretKey32, Share};

use crate::binding::{self, ENVELOPE_BYTES};
use crate::config::{RoundConfig, index};
use crate::node::verify_advert;
use crate::unmask::{MaskedSum, RecoveredMaskKeys, RecoveredSeeds};
use fedprof_protocol::secagg::{
    AdvertiseKeys, CoordinatorMessage, KeyDirectory, MaskedInput, NodeMessage, RelayedShare,
    RevealedShare, ShareBundle, ShareKeys, UnmaskRequest, UnmaskResponse,
};

mod types;

pub use types::{AbortReason, CoordinatorError, Phase, Progress, Step};

/// Shares revealed for one owner: (holder, share), in arrival order.
type Revealed = BTreeMap<u32, Vec<(u32, Share)>>;

/// The coordinator's state for one round.
#[derive(Debug)]
pub struct Coordinator {
    config: Arc<RoundConfig>,
    phase: Phase,
    /// Nodes expected in the current phase.
    expected: Vec<bool>,
    /// Nodes that answered the current phase.
    answered: Vec<bool>,
    adverts: Vec<Option<AdvertiseKeys>>,
    /// U1 and U2 once known.
    advertised: Vec<bool>,
    shared: Vec<bool>,
    envelopes: Vec<Option<ShareKeys>>,
    sum: Vec<u64>,
    survivors: Vec<bool>,
    self_mask_shares: Revealed,
    mask_key_shares: Revealed,
    abort: Option<AbortReason>,
    /// Holders found to have revealed a share that does not rebuild its owner's committed
    /// secret (security review M3): their other shares are not used, and the driver is told.
    misbehaving: BTreeSet<u32>,
}

impl Coordinator {
    /// A round waiting for every node's key advertisement.
    #[must_use]
    pub fn new(config: Arc<RoundConfig>) -> Self {
        let n = config.n();
        Self {
            phase: Phase::AdvertiseKeys,
            expected: vec![true; n],
            answered: vec![false; n],
            adverts: vec![None; n],
            advertised: vec![false; n],
            shared: vec![false; n],
            envelopes: vec![None; n],
            sum: vec![0; config.vector_len()],
            survivors: vec![false; n],
            self_mask_shares: BTreeMap::new(),
            mask_key_shares: BTreeMap::new(),
            abort: None,
            misbehaving: BTreeSet::new(),
            config,
        }
    }

    /// The current phase.
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Why the round aborted, once it has.
    #[must_use]
    pub fn abort_reason(&self) -> Option<&AbortReason> {
        self.abort.as_ref()
    }

    /// Holders that revealed a share inconsistent with its owner's commitment in the unmask
    /// phase (each found by rebuilding without it, see `Rebuild::verified`). The round's sum
    /// is still right; the driver should treat them as having broken the protocol.
    #[must_use]
    pub fn misbehaving(&self) -> Vec<u32> {
        self.misbehaving.iter().copied().collect()
    }

    /// Nodes expected in this phase that have not answered yet.
    #[must_use]
    pub fn pending(&self) -> Vec<u32> {
        (0..self.config.n())
            .filter(|&i| self.expected[i] && !self.answered[i])
            .map(index)
            .collect()
    }

    fn progress(&self) -> Progress {
        Progress {
            answered: self.answered.iter().filter(|a| **a).count(),
            expected: self.expected.iter().filter(|e| **e).count(),
        }
    }

    /// Takes a message from node `from` (the index of the authenticated connection).
    ///
    /// # Errors
    ///
    /// A [`CoordinatorError`] when the message is refused; the node is then out of the round
    /// (except for [`CoordinatorError::Duplicate`], [`CoordinatorError::OutOfPhase`] and the
    /// round-level errors, which leave the node's standing unchanged).
    pub fn receive(
        &mut self,
        from: u32,
        message: NodeMessage,
    ) -> Result<Progress, CoordinatorError> {
        if matches!(self.phase, Phase::Finished | Phase::Aborted) {
            return Err(CoordinatorError::RoundOver(self.phase));
        }
        let i = from as usize;
        if i >= self.config.n() {
            return Err(CoordinatorError::UnknownParty(from));
        }
        let (tag, claimed) = match &message {
            NodeMessage::Advertise(m) => (m.tag, m.sender),
            NodeMessage::Shares(m) => (m.tag, m.sender),
            NodeMessage::Masked(m) => (m.tag, m.sender),
            NodeMessage::Unmask(m) => (m.tag, m.sender),
        };
        if tag != self.config.tag() {
            return Err(CoordinatorError::WrongRound {
                expected: self.config.tag(),
                got: tag,
            });
        }
        if claimed != from {
            return Err(CoordinatorError::SenderMismatch { from, claimed });
        }
        if !self.expected[i] {
            return Err(CoordinatorError::NotExpected(from));
        }
        if self.answered[i] {
            return Err(CoordinatorError::Duplicate(from));
        }
        let result = match (self.phase, message) {
            (Phase::AdvertiseKeys, NodeMessage::Advertise(m)) => self.on_advert(m),
            (Phase::ShareKeys, NodeMessage::Shares(m)) => self.on_shares(m),
            (Phase::MaskedInput, NodeMessage::Masked(m)) => self.on_masked(&m),
            (Phase::Unmask, NodeMessage::Unmask(m)) => self.on_unmask(m),
            (phase, m) => {
                return Err(CoordinatorError::OutOfPhase {
                    phase,
                    kind: m.kind(),
                });
            }
        };
        match result {
            Ok(()) => {
                self.answered[i] = true;
                Ok(self.progress())
            }
            Err(e) => {
                // A node that sent an invalid message takes no further part.
                self.expected[i] = false;
                Err(e)
            }
        }
    }

    fn on_advert(&mut self, m: AdvertiseKeys) -> Result<(), CoordinatorError> {
        let from = m.sender;
        verify_advert(&self.config, &m).map_err(|_| CoordinatorError::BadAdvert(from))?;
        self.adverts[from as usize] = Some(m);
        Ok(())
    }

    fn on_shares(&mut self, m: ShareKeys) -> Result<(), CoordinatorError> {
        let from = m.sender;
        let malformed = |what| CoordinatorError::Malformed { party: from, what };
        // Exactly one envelope per other neighbour that advertised, sorted.
        let mut want = self
            .config
            .neighbourhood(from)
            .into_iter()
            .filter(|&v| v != from && self.advertised[v as usize]);
        for s in &m.shares {
            if want.next() != Some(s.recipient) {
                return Err(malformed(
                    "envelopes do not match the neighbours that advertised",
                ));
            }
            if s.ciphertext.len() != ENVELOPE_BYTES {
                return Err(malformed("envelope has the wrong length"));
            }
        }
        if want.next().is_some() {
            return Err(malformed(
                "envelopes do not match the neighbours that advertised",
            ));
        }
        self.envelopes[from as usize] = Some(m);
        Ok(())
    }

    fn on_masked(&mut self, m: &MaskedInput) -> Result<(), CoordinatorError> {
        binding::add_bytes_into(&mut self.sum, &m.masked).ok_or(CoordinatorError::Malformed {
            party: m.sender,
            what: "masked input has the wrong length",
        })
    }

    fn on_unmask(&mut self, m: UnmaskResponse) -> Result<(), CoordinatorError> {
        let from = m.sender;
        let malformed = |what| CoordinatorError::Malformed { party: from, what };
        let held: Vec<u32> = self
            .config
            .neighbourhood(from)
            .into_iter()
            .filter(|&v| self.shared[v as usize])
            .collect();
        let (alive, dropped): (Vec<u32>, Vec<u32>) =
            held.into_iter().partition(|&v| self.survivors[v as usize]);
        let parse = |list: &[RevealedShare],
                     owners: &[u32]|
         -> Result<Vec<(u32, Share)>, CoordinatorError> {
            // In order and each at most once, from the owners this node may reveal for; it
            // may leave some out (a sender whose envelope did not open for it: M3).
            let mut allowed = owners.iter();
            if !list.iter().all(|r| allowed.by_ref().any(|o| *o == r.owner)) {
                return Err(malformed(
                    "revealed shares do not match the survivors and dropped nodes",
                ));
            }
            list.iter()
                .map(|r| {
                    Share::from_bytes(binding::share_point(from), &r.share)
                        .map(|s| (r.owner, s))
                        .map_err(|_| malformed("revealed share is not a valid share"))
                })
                .collect()
        };
        let b = parse(&m.self_mask_shares, &alive)?;
        let s = parse(&m.mask_key_shares, &dropped)?;
        for (owner, share) in b {
            self.self_mask_shares
                .entry(owner)
                .or_default()
                .push((from, share));
        }
        for (owner, share) in s {
            self.mask_key_shares
                .entry(owner)
                .or_default()
                .push((from, share));
        }
        Ok(())
    }

    /// Ends the current phase with the nodes that answered.
    ///
    /// # Errors
    ///
    /// [`CoordinatorError::Aborted`] when a threshold is not met or a secret cannot be rebuilt
    /// (the round is then over and nothing is released), [`CoordinatorError::NothingToClose`]
    /// in a final state.
    pub fn close_phase(&mut self) -> Result<Step, CoordinatorError> {
        let step = match self.phase {
            Phase::AdvertiseKeys => self.close_adverts(),
            Phase::ShareKeys => self.close_shares(),
            Phase::MaskedInput => self.close_masked(),
            Phase::Unmask => self.close_unmask(),
            Phase::Finished | Phase::Aborted => return Err(CoordinatorError::NothingToClose),
        };
        step.map_err(|reason| {
            self.phase = Phase::Aborted;
            self.sum.clear();
            self.self_mask_shares.clear();
            self.mask_key_shares.clear();
            self.abort = Some(reason.clone());
            CoordinatorError::Aborted(reason)
        })
    }

    /// Moves the answered set into `set` and makes it the next phase's expected set.
    fn next_phase(&mut self, next: Phase) -> Vec<bool> {
        let answered = std::mem::replace(&mut self.answered, vec![false; self.config.n()]);
        self.expected.clone_from(&answered);
        self.phase = next;
        answered
    }

    fn close_adverts(&mut self) -> Result<Step, AbortReason> {
        self.check_alive(Phase::AdvertiseKeys, &self.answered)?;
        self.advertised = self.next_phase(Phase::ShareKeys);
        let tag = self.config.tag();
        let out = self
            .members(&self.advertised)
            .map(|u| {
                let adverts = self
                    .config
                    .neighbourhood(u)
                    .into_iter()
                    .filter_map(|v| self.adverts[v as usize].clone())
                    .collect();
                (
                    u,
                    CoordinatorMessage::Directory(KeyDirectory {
                        tag,
                        recipient: u,
                        adverts,
                    }),
                )
            })
            .collect();
        Ok(Step::Send(out))
    }

    fn close_shares(&mut self) -> Result<Step, AbortReason> {
        self.check_alive(Phase::ShareKeys, &self.answered)?;
        self.shared = self.next_phase(Phase::MaskedInput);
        let tag = self.config.tag();
        let n = self.config.n();
        let mut bundles: Vec<Vec<RelayedShare>> = vec![Vec::new(); n];
        for u in 0..n {
            if !self.shared[u] {
                self.envelopes[u] = None;
                continue;
            }
            if let Some(m) = self.envelopes[u].take() {
                for s in m.shares {
                    if self.shared[s.recipient as usize] {
                        bundles[s.recipient as usize].push(RelayedShare {
                            sender: index(u),
                            ciphertext: s.ciphertext,
                        });
                    }
                }
            }
        }
        // Senders were visited in increasing order, so every bundle is sorted.
        let out = bundles
            .into_iter()
            .enumerate()
            .filter(|(v, _)| self.shared[*v])
            .map(|(v, shares)| {
                let recipient = index(v);
                (
                    recipient,
                    CoordinatorMessage::Bundle(ShareBundle {
                        tag,
                        recipient,
                        shares,
                    }),
                )
            })
            .collect();
        Ok(Step::Send(out))
    }

    fn close_masked(&mut self) -> Result<Step, AbortReason> {
        self.check_alive(Phase::MaskedInput, &self.answered)?;
        // Every dropped node with a surviving neighbour needs t surviving holders of its key.
        for v in self.dropped_with_survivor_neighbours(&self.answered) {
            let have = self.count_in(v, &self.answered);
            let need = self.config.threshold();
            if have < need {
                return Err(AbortReason::NeighbourhoodTooSmall {
                    phase: Phase::MaskedInput,
                    party: v,
                    have,
                    need,
                });
            }
        }
        self.survivors = self.next_phase(Phase::Unmask);
        let tag = self.config.tag();
        let out = self
            .members(&self.survivors)
            .map(|u| {
                let survivors = self
                    .config
                    .neighbourhood(u)
                    .into_iter()
                    .filter(|&v| self.survivors[v as usize])
                    .collect();
                (
                    u,
                    CoordinatorMessage::Unmask(UnmaskRequest {
                        tag,
                        recipient: u,
                        survivors,
                    }),
                )
            })
            .collect();
        Ok(Step::Send(out))
    }

    fn close_unmask(&mut self) -> Result<Step, AbortReason> {
        let t = self.config.threshold();
        let responders = self.answered.iter().filter(|a| **a).count();
        if responders < t {
            return Err(AbortReason::TooFewSurvivors {
                phase: Phase::Unmask,
                have: responders,
                need: t,
            });
        }
        self.phase = Phase::Finished;
        let tag = self.config.tag();
        let survivors: Vec<u32> = self.members(&self.survivors).collect();
        let dropped = self.dropped_with_survivor_neighbours(&self.survivors);
        let mut cache: BTreeMap<Vec<u64>, Reconstructor> = BTreeMap::new();

        let mut seeds = Vec::with_capacity(survivors.len());
        for &u in &survivors {
            let committed = self.adverts[u as usize]
                .as_ref()
                .map(|a| a.self_mask_commitment);
            let seed = Rebuild {
                revealed: &self.self_mask_shares,
                t,
                what: "self-mask seed",
            }
            .verified(u, &mut cache, &mut self.misbehaving, |seed| {
                committed == Some(binding::self_mask_commitment(seed, tag, u))
            })?;
            seeds.push(seed);
        }
        let mut keys = Vec::with_capacity(dropped.len());
        for &v in &dropped {
            let advertised = self.adverts[v as usize].as_ref().map(|a| a.mask_public);
            let bytes = Rebuild {
                revealed: &self.mask_key_shares,
                t,
                what: "mask key",
            }
            .verified(v, &mut cache, &mut self.misbehaving, |bytes| {
                advertised == Some(KexSecret::from_secret(bytes).public_key().to_bytes())
            })?;
            keys.push(KexSecret::from_secret(&bytes));
        }
        let mask_publics = self
            .adverts
            .iter()
            .map(|a| a.as_ref().map(|a| KexPublic::from_bytes(a.mask_public)))
            .collect();
        let masked = MaskedSum {
            config: Arc::clone(&self.config),
            survivors: survivors.clone(),
            dropped: dropped.clone(),
            sum: std::mem::take(&mut self.sum),
        };
        let failed = |_| AbortReason::ReconstructionFailed {
            owner: u32::MAX,
            what: "mask removal",
        };
        let sum = masked
            .remove_self_masks(RecoveredSeeds {
                owners: survivors,
                seeds,
            })
            .map_err(failed)?
            .remove_dropped_masks(RecoveredMaskKeys {
                owners: dropped,
                keys,
                mask_publics,
            })
            .map_err(failed)?;
        self.self_mask_shares.clear();
        self.mask_key_shares.clear();
        Ok(Step::Finished(sum))
    }

    fn members<'a>(&self, set: &'a [bool]) -> impl Iterator<Item = u32> + 'a {
        set.iter()
            .enumerate()
            .filter(|(_, m)| **m)
            .map(|(i, _)| index(i))
    }

    fn count_in(&self, u: u32, set: &[bool]) -> usize {
        if self.config.is_complete() {
            return set.iter().filter(|m| **m).count();
        }
        self.config
            .neighbourhood(u)
            .into_iter()
            .filter(|&v| set[v as usize])
            .count()
    }

    /// The threshold rule of every phase: at least `t` nodes, and at least `t` of every
    /// remaining node's neighbourhood (the same rule for the complete graph).
    fn check_alive(&self, phase: Phase, set: &[bool]) -> Result<(), AbortReason> {
        let need = self.config.threshold();
        let have = set.iter().filter(|m| **m).count();
        // The release's n_min as well as the threshold: a round below it stops at once, and
        // in any case before any unmask request, so no sum of fewer nodes is ever rebuilt.
        let min = need.max(self.config.min_survivors());
        if have < min {
            return Err(AbortReason::TooFewSurvivors {
                phase,
                have,
                need: min,
            });
        }
        if !self.config.is_complete() {
            for u in self.members(set) {
                let have = self.count_in(u, set);
                if have < need {
                    return Err(AbortReason::NeighbourhoodTooSmall {
                        phase,
                        party: u,
                        have,
                        need,
                    });
                }
            }
        }
        Ok(())
    }

    /// Nodes that shared but are not in `alive`, and have a neighbour in `alive`.
    fn dropped_with_survivor_neighbours(&self, alive: &[bool]) -> Vec<u32> {
        let any_alive = alive.iter().any(|a| *a);
        self.members(&self.shared)
            .filter(|&v| !alive[v as usize])
            .filter(|&v| {
                if self.config.is_complete() {
                    any_alive
                } else {
                    self.config
                        .neighbourhood(v)
                        .into_iter()
                        .any(|w| alive[w as usize])
                }
            })
            .collect()
    }
}

/// Rebuilding owners' secrets from the shares their neighbours revealed.
struct Rebuild<'a> {
    revealed: &'a Revealed,
    t: usize,
    what: &'static str,
}

impl Rebuild<'_> {
    /// `owner`'s secret from `t` of the shares revealed for it, checked by `ok` (its
    /// commitment or its advertised public key). The first `t` shares by holder are tried
    /// first; if they do not rebuild a secret `ok` accepts, one of them is wrong, and each of
    /// them is left out in turn (the next share taking its place): the holder whose absence
    /// gives a secret `ok` accepts revealed a bad share, goes into `misbehaving`, and none of
    /// its shares is used again in this round. So one lying holder per owner costs the round
    /// nothing, instead of aborting it with the blame on the owner (security review M3).
    /// Shares of holders already in `misbehaving` are never used.
    fn verified(
        &self,
        owner: u32,
        cache: &mut BTreeMap<Vec<u64>, Reconstructor>,
        misbehaving: &mut BTreeSet<u32>,
        ok: impl Fn(&SecretKey32) -> bool,
    ) -> Result<SecretKey32, AbortReason> {
        let failed = AbortReason::ReconstructionFailed {
            owner,
            what: self.what,
        };
        let mut shares: Vec<&(u32, Share)> = self
            .revealed
            .get(&owner)
            .map(|v| v.iter().filter(|(h, _)| !misbehaving.contains(h)).collect())
            .unwrap_or_default();
        shares.sort_unstable_by_key(|(holder, _)| *holder);
        if shares.len() < self.t {
            return Err(failed);
        }
        if let Some(secret) = try_subset(&shares[..self.t], cache).filter(|s| ok(s)) {
            return Ok(secret);
        }
        if shares.len() > self.t {
            for left_out in 0..self.t {
                let subset: Vec<&(u32, Share)> = shares
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != left_out)
                    .map(|(_, s)| *s)
                    .take(self.t)
                    .collect();
                if let Some(secret) = try_subset(&subset, cache).filter(|s| ok(s)) {
                    misbehaving.insert(shares[left_out].0);
                    return Ok(secret);
                }
            }
        }
        Err(failed)
    }
}

/// The secret `shares` (exactly `t`, distinct holders) rebuild, if they rebuild one.
fn try_subset(
    shares: &[&(u32, Share)],
    cache: &mut BTreeMap<Vec<u64>, Reconstructor>,
) -> Option<SecretKey32> {
    let points: Vec<u64> = shares
        .iter()
        .map(|(h, _)| binding::share_point(*h))
        .collect();
    let reconstructor = match cache.get(&points) {
        Some(r) => r,
        None => {
            let r = Reconstructor::new(&points).ok()?;
            cache.entry(points).or_insert(r)
        }
    };
    reconstructor
        .reconstruct(shares.iter().map(|(_, s)| s))
        .ok()
}
