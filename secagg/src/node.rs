//! The node (client) side of a round, as typestates: each phase is a type whose one method
//! consumes it with the coordinator's message and returns the next state and the reply. Any
//! error ends the node's part in the round (the state is gone, and with it every secret), so a
//! node can never be driven backwards, answer a phase twice, or reveal both shares of one
//! neighbour: [`AwaitingUnmask::on_unmask_request`] is the only place shares are revealed, it
//! runs at most once, and for each neighbour it reveals the self-mask share (survivor) or the
//! mask-key share (dropped), never both.
//!
//! Randomness is injected (`rand_core::CryptoRng`); nothing here reads a clock or a socket.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fedprof_crypto::{KexPublic, KexSecret, MaskOp, MaskStreams, SecretKey32, Share, SigningKey};
use rand_core::CryptoRng;

use crate::binding::{self, OpenError};
use crate::config::RoundConfig;
use fedprof_protocol::secagg::{
    AdvertiseKeys, KeyDirectory, MaskedInput, RelayedShare, RevealedShare, RoundTag, SealedShare,
    ShareBundle, ShareKeys, UnmaskRequest, UnmaskResponse,
};

/// Why a node stopped taking part in the round. Each variant names the party at fault where
/// there is one; none carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// `me` is not an index of the roster.
    #[error("node index {0} is not in the round's roster")]
    NotInRoster(u32),
    /// The signing key is not the one the roster (certificate) holds for this node.
    #[error("the signing key does not match this node's certificate key")]
    NotMyKey,
    /// The message is for another round.
    #[error("message is for {got:?}, this round is {expected:?}")]
    WrongRound {
        /// This round.
        expected: RoundTag,
        /// The message's tag.
        got: RoundTag,
    },
    /// The message is addressed to another node.
    #[error("message is addressed to node {0}")]
    WrongRecipient(u32),
    /// An entry names a party that is not this node's neighbour (or not in the roster).
    #[error("party {0} is not a neighbour of this node")]
    NotANeighbour(u32),
    /// Entries are not strictly sorted by party: one appears twice (a replay) or out of order.
    #[error("party {0} appears twice or out of order")]
    Duplicate(u32),
    /// An advertisement's signature does not verify under the party's certificate key.
    #[error("advertisement of party {0} has a bad signature")]
    BadSignature(u32),
    /// A public key appears twice in the directory (two parties, or both keys of one party).
    #[error("party {0} advertised a public key that was already advertised")]
    KeyReused(u32),
    /// The directory does not hold this node's own advertisement unchanged.
    #[error("the directory does not carry this node's own advertisement unchanged")]
    OwnAdvertAltered,
    /// A party's public key is a low-order point.
    #[error("party {0} advertised a low-order X25519 key")]
    WeakKey(u32),
    /// Fewer than the threshold remain in this node's neighbourhood: the round must not go on.
    #[error("only {have} of this node's neighbourhood remain in phase {phase}; {need} are needed")]
    BelowThreshold {
        /// Phase name.
        phase: &'static str,
        /// Neighbours (this node included) still in the round.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// An envelope failed authentication (tampered, or made for another round or pair).
    #[error("the share envelope from party {0} does not authenticate")]
    BadEnvelope(u32),
    /// An envelope authenticated but does not hold two valid shares.
    #[error("the share envelope from party {0} does not hold valid shares")]
    MalformedShare(u32),
    /// The input vector does not have the round's length.
    #[error("input has {got} elements; the round takes {expected}")]
    WrongInputLength {
        /// Round's vector length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// The survivor list names a party that did not share with this node.
    #[error("survivor {0} did not share with this node")]
    UnknownSurvivor(u32),
    /// The survivor list does not contain this node.
    #[error("this node is not in the survivor list it was sent")]
    NotASurvivor,
    /// A cryptographic operation failed on parameters this node produced (should not happen).
    #[error("internal cryptographic failure: {0}")]
    Internal(&'static str),
}

/// Starts the node's part: fresh key pairs and self-mask seed, and the signed advertisement.
///
/// # Errors
///
/// [`NodeError::NotInRoster`], [`NodeError::NotMyKey`].
pub fn start<R: CryptoRng + ?Sized>(
    config: Arc<RoundConfig>,
    me: u32,
    signing_key: &SigningKey,
    rng: &mut R,
) -> Result<(AwaitingDirectory, AdvertiseKeys), NodeError> {
    let party = config.party(me).ok_or(NodeError::NotInRoster(me))?;
    if party.verifying_key != signing_key.verifying_key() {
        return Err(NodeError::NotMyKey);
    }
    let cipher = KexSecret::generate(rng);
    let mask = KexSecret::generate(rng);
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let self_seed = SecretKey32::from_bytes(seed);
    zeroize::Zeroize::zeroize(&mut seed);
    let tag = config.tag();
    let cipher_public = cipher.public_key().to_bytes();
    let mask_public = mask.public_key().to_bytes();
    let commitment = binding::self_mask_commitment(&self_seed, tag, me);
    let signed = binding::advert_message(
        &config.digest(),
        tag,
        me,
        &cipher_public,
        &mask_public,
        &commitment,
    );
    let signature = signing_key
        .sign(binding::ADVERTISE_LABEL, &signed)
        .map_err(|_| NodeError::Internal("signing"))?;
    let advert = AdvertiseKeys {
        tag,
        sender: me,
        cipher_public,
        mask_public,
        self_mask_commitment: commitment,
        signature: signature.to_bytes().to_vec(),
    };
    let state = AwaitingDirectory {
        config,
        me,
        cipher,
        mask,
        self_seed,
        advert: advert.clone(),
    };
    Ok((state, advert))
}

/// Phase 1: waiting for the key directory.
#[derive(Debug)]
pub struct AwaitingDirectory {
    config: Arc<RoundConfig>,
    me: u32,
    cipher: KexSecret,
    mask: KexSecret,
    self_seed: SecretKey32,
    advert: AdvertiseKeys,
}

/// A neighbour's keys as this node holds them after the directory.
#[derive(Debug)]
struct Peer {
    mask_public: KexPublic,
    /// Key of the envelope the peer seals for this node.
    inbound: SecretKey32,
}

impl AwaitingDirectory {
    /// Checks the directory (tags, neighbours, signatures, distinct keys, own advertisement,
    /// threshold), Shamir-shares the self-mask seed and the mask secret key among the
    /// neighbours in it, and seals one envelope per other neighbour.
    ///
    /// # Errors
    ///
    /// Any check that fails, as a [`NodeError`]; the node then leaves the round.
    pub fn on_directory<R: CryptoRng + ?Sized>(
        self,
        directory: &KeyDirectory,
        rng: &mut R,
    ) -> Result<(AwaitingBundle, ShareKeys), NodeError> {
        let cfg = &self.config;
        let (tag, me) = (cfg.tag(), self.me);
        check_tag(tag, directory.tag)?;
        if directory.recipient != me {
            return Err(NodeError::WrongRecipient(directory.recipient));
        }
        let mut seen_keys = BTreeSet::new();
        let mut last = None;
        let mut holders = Vec::with_capacity(directory.adverts.len());
        let mut own_seen = false;
        for advert in &directory.adverts {
            let v = advert.sender;
            check_order(&mut last, v)?;
            if !cfg.are_neighbours(me, v) {
                return Err(NodeError::NotANeighbour(v));
            }
            check_tag(tag, advert.tag)?;
            if v == me {
                if *advert != self.advert {
                    return Err(NodeError::OwnAdvertAltered);
                }
                own_seen = true;
            } else {
                verify_advert(cfg, advert)?;
            }
            if !seen_keys.insert(advert.cipher_public) || !seen_keys.insert(advert.mask_public) {
                return Err(NodeError::KeyReused(v));
            }
            holders.push(v);
        }
        if !own_seen {
            return Err(NodeError::OwnAdvertAltered);
        }
        check_threshold("share-keys", holders.len(), cfg.threshold())?;

        let points: Vec<u64> = holders.iter().map(|&v| binding::share_point(v)).collect();
        let t = cfg.threshold();
        let seed_shares = fedprof_crypto::shamir::split(&self.self_seed, t, &points, rng)
            .map_err(|_| NodeError::Internal("sharing the self-mask seed"))?;
        let mask_key_shares =
            fedprof_crypto::shamir::split(&self.mask.to_secret(), t, &points, rng)
                .map_err(|_| NodeError::Internal("sharing the mask key"))?;

        let mut peers = BTreeMap::new();
        let mut sealed = Vec::with_capacity(holders.len().saturating_sub(1));
        let mut own = None;
        for ((advert, b), s) in directory
            .adverts
            .iter()
            .zip(seed_shares)
            .zip(mask_key_shares)
        {
            let v = advert.sender;
            if v == me {
                own = Some((b, s));
                continue;
            }
            let (outbound, inbound) = binding::envelope_keys(
                &self.cipher,
                &KexPublic::from_bytes(advert.cipher_public),
                tag,
                me,
                v,
            )
            .map_err(|_| NodeError::WeakKey(v))?;
            let ciphertext = binding::seal_shares(&outbound, tag, me, v, &b, &s)
                .map_err(|_| NodeError::Internal("sealing"))?;
            sealed.push(SealedShare {
                recipient: v,
                ciphertext,
            });
            peers.insert(
                v,
                Peer {
                    mask_public: KexPublic::from_bytes(advert.mask_public),
                    inbound,
                },
            );
        }
        let own = own.ok_or(NodeError::OwnAdvertAltered)?;
        let next = AwaitingBundle {
            config: self.config,
            me,
            mask: self.mask,
            self_seed: self.self_seed,
            peers,
            own,
        };
        Ok((
            next,
            ShareKeys {
                tag,
                sender: me,
                shares: sealed,
            },
        ))
    }
}

/// Phase 2: waiting for the envelopes the neighbours sealed for this node.
#[derive(Debug)]
pub struct AwaitingBundle {
    config: Arc<RoundConfig>,
    me: u32,
    mask: KexSecret,
    self_seed: SecretKey32,
    peers: BTreeMap<u32, Peer>,
    own: (Share, Share),
}

impl AwaitingBundle {
    /// Opens every envelope (holding no share of a sender whose envelope fails to
    /// authenticate or holds malformed shares: see [`AwaitingUnmask::unreadable`]), then masks
    /// `input`:
    /// `y = x + PRG(b_u) + sum_v (+/-) PRG(s_uv)` over the neighbours that shared, with `+` when
    /// this node's index is the smaller one. The mask secret key and seed are wiped when this
    /// returns.
    ///
    /// # Errors
    ///
    /// Any check that fails, as a [`NodeError`]; the node then leaves the round.
    pub fn on_bundle(
        self,
        bundle: &ShareBundle,
        input: &[u64],
    ) -> Result<(AwaitingUnmask, MaskedInput), NodeError> {
        let cfg = &self.config;
        let (tag, me) = (cfg.tag(), self.me);
        check_tag(tag, bundle.tag)?;
        if bundle.recipient != me {
            return Err(NodeError::WrongRecipient(bundle.recipient));
        }
        if input.len() != cfg.vector_len() {
            return Err(NodeError::WrongInputLength {
                expected: cfg.vector_len(),
                got: input.len(),
            });
        }
        let mut held = BTreeMap::new();
        // Senders whose envelope does not open (security review M3): this node masks with
        // them all the same (the pairwise key needs only their advertised key, and the
        // coordinator removes a pairwise mask for every sender it relayed), holds none of their
        // shares, and stays in the round. Leaving would let one bad sender abort every round
        // with the blame on its honest recipients; the sender's secrets are rebuilt from its
        // other neighbours' shares, or its own round fails naming it.
        let mut unreadable = BTreeMap::new();
        let mut senders = Vec::with_capacity(bundle.shares.len());
        let mut last = None;
        for RelayedShare {
            sender: v,
            ciphertext,
        } in &bundle.shares
        {
            let v = *v;
            check_order(&mut last, v)?;
            let peer = self.peers.get(&v).ok_or(NodeError::NotANeighbour(v))?;
            senders.push(v);
            match binding::open_shares(&peer.inbound, tag, v, me, ciphertext) {
                Ok(shares) => {
                    held.insert(v, shares);
                }
                Err(e) => {
                    unreadable.insert(
                        v,
                        match e {
                            OpenError::Aead => NodeError::BadEnvelope(v),
                            OpenError::Share => NodeError::MalformedShare(v),
                        },
                    );
                }
            }
        }
        check_threshold("masked-input", held.len() + 1, cfg.threshold())?;

        // All masks are folded in one pass, straight into the wire bytes (no copy of the input).
        let mut masks = MaskStreams::with_capacity(senders.len() + 1);
        masks.push(
            &binding::self_mask_key(&self.self_seed, tag, me),
            MaskOp::Add,
        );
        for &v in &senders {
            let peer = &self.peers[&v];
            let key = binding::pairwise_mask_key(&self.mask, &peer.mask_public, tag, me, v)
                .map_err(|_| NodeError::WeakKey(v))?;
            let op = if me < v {
                MaskOp::Add
            } else {
                MaskOp::Subtract
            };
            masks.push(&key, op);
        }
        let mut masked = Vec::new();
        masks
            .apply_to_le_bytes(input, &mut masked)
            .map_err(|_| NodeError::Internal("prg"))?;
        held.insert(me, self.own);
        let next = AwaitingUnmask {
            config: self.config,
            me,
            held,
            unreadable,
        };
        Ok((
            next,
            MaskedInput {
                tag,
                sender: me,
                masked,
            },
        ))
    }
}

/// Phase 3: holding one pair of shares per neighbour that shared (this node included), until
/// the coordinator says who survived.
#[derive(Debug)]
pub struct AwaitingUnmask {
    config: Arc<RoundConfig>,
    me: u32,
    held: BTreeMap<u32, (Share, Share)>,
    /// Senders whose envelope did not open, and why; this node holds none of their shares.
    unreadable: BTreeMap<u32, NodeError>,
}

impl AwaitingUnmask {
    /// Reveals, for every neighbour that shared with this node, the self-mask share if the
    /// neighbour survived and the mask-key share if it dropped. Consumes the state: a node
    /// answers one unmask request per round, so it never reveals both shares of anyone.
    ///
    /// # Errors
    ///
    /// [`NodeError::Duplicate`], [`NodeError::UnknownSurvivor`], [`NodeError::NotASurvivor`] or
    /// [`NodeError::BelowThreshold`] for a survivor list it must not answer.
    pub fn on_unmask_request(self, request: &UnmaskRequest) -> Result<UnmaskResponse, NodeError> {
        let cfg = &self.config;
        let (tag, me) = (cfg.tag(), self.me);
        check_tag(tag, request.tag)?;
        if request.recipient != me {
            return Err(NodeError::WrongRecipient(request.recipient));
        }
        let mut last = None;
        for &v in &request.survivors {
            check_order(&mut last, v)?;
            if !self.held.contains_key(&v) && !self.unreadable.contains_key(&v) {
                return Err(NodeError::UnknownSurvivor(v));
            }
        }
        if request.survivors.binary_search(&me).is_err() {
            return Err(NodeError::NotASurvivor);
        }
        check_threshold("unmask", request.survivors.len(), cfg.threshold())?;
        // With the complete graph the list is every survivor: fewer than the release's n_min
        // means the sum would cover fewer nodes than the noise was sized for (C2). (A sparse
        // graph's threshold is at least n_min, checked when the round was bound.)
        if cfg.is_complete() {
            check_threshold(
                "unmask (n_min)",
                request.survivors.len(),
                cfg.min_survivors(),
            )?;
        }
        let mut self_mask_shares = Vec::new();
        let mut mask_key_shares = Vec::new();
        for (&owner, (b, s)) in &self.held {
            if request.survivors.binary_search(&owner).is_ok() {
                self_mask_shares.push(RevealedShare {
                    owner,
                    share: b.to_bytes().to_vec(),
                });
            } else {
                mask_key_shares.push(RevealedShare {
                    owner,
                    share: s.to_bytes().to_vec(),
                });
            }
        }
        Ok(UnmaskResponse {
            tag,
            sender: me,
            self_mask_shares,
            mask_key_shares,
        })
    }

    /// The neighbours (this node included) whose shares this node holds.
    #[must_use]
    pub fn holds_shares_of(&self) -> Vec<u32> {
        self.held.keys().copied().collect()
    }

    /// Senders whose envelope did not open ([`NodeError::BadEnvelope`] or
    /// [`NodeError::MalformedShare`]): this node masked with them but holds none of their
    /// shares. For the driver's log: it names the sender, not this node, as the fault.
    #[must_use]
    pub fn unreadable(&self) -> Vec<(u32, NodeError)> {
        self.unreadable
            .iter()
            .map(|(v, e)| (*v, e.clone()))
            .collect()
    }
}

fn check_tag(expected: RoundTag, got: RoundTag) -> Result<(), NodeError> {
    if expected != got {
        return Err(NodeError::WrongRound { expected, got });
    }
    Ok(())
}

fn check_order(last: &mut Option<u32>, v: u32) -> Result<(), NodeError> {
    if last.is_some_and(|l| l >= v) {
        return Err(NodeError::Duplicate(v));
    }
    *last = Some(v);
    Ok(())
}

fn check_threshold(phase: &'static str, have: usize, need: usize) -> Result<(), NodeError> {
    if have < need {
        return Err(NodeError::BelowThreshold { phase, have, need });
    }
    Ok(())
}

/// Verifies a neighbour's advertisement against the config digest and its certificate key.
pub(crate) fn verify_advert(cfg: &RoundConfig, advert: &AdvertiseKeys) -> Result<(), NodeError> {
    let v = advert.sender;
    let party = cfg.party(v).ok_or(NodeError::NotANeighbour(v))?;
    let signature = fedprof_crypto::Signature::from_slice(&advert.signature)
        .ok_or(NodeError::BadSignature(v))?;
    let signed = binding::advert_message(
        &cfg.digest(),
        advert.tag,
        v,
        &advert.cipher_public,
        &advert.mask_public,
        &advert.self_mask_commitment,
    );
    party
        .verifying_key
        .verify(binding::ADVERTISE_LABEL, &signed, &signature)
        .map_err(|_| NodeError::BadSignature(v))?;
    if advert.cipher_public == advert.mask_public {
        return Err(NodeError::KeyReused(v));
    }
    Ok(())
}
