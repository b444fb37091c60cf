//! What binds each cryptographic value to its round and parties: the byte strings that are
//! signed, derived from and authenticated, shared by the node and the coordinator so that
//! both sides compute them identically. Every label below is prefixed with
//! `fedprof_crypto::LABEL_PREFIX` (the protocol version) by the crypto crate.

use fedprof_crypto::{
    AeadError, KexError, KexPublic, KexSecret, SecretKey32, ShamirError, Share, derive_key, digest,
    framed, label,
};
use zeroize::Zeroizing;

use fedprof_protocol::secagg::RoundTag;

/// Signature label of a key advertisement.
pub(crate) const ADVERTISE_LABEL: &str = "secagg/advertise";
/// Bytes of one sealed share envelope: two 40-byte shares and the 16-byte tag.
pub const ENVELOPE_BYTES: usize =
    2 * fedprof_crypto::shamir::SHARE_BYTES + fedprof_crypto::aead::AEAD_TAG_LEN;
/// Each envelope key seals exactly one envelope, so the nonce can be fixed.
const ENVELOPE_NONCE: [u8; 12] = [0; 12];

fn tag_bytes(tag: RoundTag) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&tag.job.to_be_bytes());
    out[8..].copy_from_slice(&tag.round.to_be_bytes());
    out
}

/// The message an advertisement's signature covers.
pub(crate) fn advert_message(
    config_digest: &[u8; 32],
    tag: RoundTag,
    sender: u32,
    cipher_public: &[u8; 32],
    mask_public: &[u8; 32],
    commitment: &[u8; 32],
) -> Vec<u8> {
    [
        config_digest.as_slice(),
        &tag_bytes(tag),
        &sender.to_be_bytes(),
        cipher_public,
        mask_public,
        commitment,
    ]
    .concat()
}

/// Commitment to a node's self-mask seed.
pub(crate) fn self_mask_commitment(seed: &SecretKey32, tag: RoundTag, owner: u32) -> [u8; 32] {
    digest(
        label!("secagg/self-mask-commitment"),
        &[&tag_bytes(tag), &owner.to_be_bytes(), seed.expose_secret()],
    )
}

/// The PRG key of a node's self mask.
pub(crate) fn self_mask_key(seed: &SecretKey32, tag: RoundTag, owner: u32) -> SecretKey32 {
    derive_key(
        seed.expose_secret(),
        label!("secagg/self-mask"),
        &[&tag_bytes(tag), &owner.to_be_bytes()],
    )
}

/// The PRG key of the pairwise mask between `u` and `v`, from `u`'s mask secret key and
/// `v`'s mask public key (or the other way round: the agreement is symmetric).
pub(crate) fn pairwise_mask_key(
    secret: &KexSecret,
    peer: &KexPublic,
    tag: RoundTag,
    u: u32,
    v: u32,
) -> Result<SecretKey32, KexError> {
    let shared = secret.agree(peer)?;
    let (lo, hi) = (u.min(v), u.max(v));
    Ok(derive_key(
        shared.expose_secret(),
        label!("secagg/pairwise-mask"),
        &[&tag_bytes(tag), &lo.to_be_bytes(), &hi.to_be_bytes()],
    ))
}

/// The keys of the envelopes `me -> peer` and `peer -> me`, from one agreement.
pub(crate) fn envelope_keys(
    secret: &KexSecret,
    peer_public: &KexPublic,
    tag: RoundTag,
    me: u32,
    peer: u32,
) -> Result<(SecretKey32, SecretKey32), KexError> {
    let shared = secret.agree(peer_public)?;
    let key = |from: u32, to: u32| {
        derive_key(
            shared.expose_secret(),
            label!("secagg/share-envelope-key"),
            &[&tag_bytes(tag), &from.to_be_bytes(), &to.to_be_bytes()],
        )
    };
    Ok((key(me, peer), key(peer, me)))
}

fn envelope_ad(tag: RoundTag, sender: u32, recipient: u32) -> Vec<u8> {
    framed(
        "secagg/share-envelope",
        &[
            &tag_bytes(tag),
            &sender.to_be_bytes(),
            &recipient.to_be_bytes(),
        ],
    )
}

/// Seals `sender`'s two shares for `recipient`.
pub(crate) fn seal_shares(
    key: &SecretKey32,
    tag: RoundTag,
    sender: u32,
    recipient: u32,
    self_mask_share: &Share,
    mask_key_share: &Share,
) -> Result<Vec<u8>, AeadError> {
    let mut plaintext = Zeroizing::new([0u8; 2 * fedprof_crypto::shamir::SHARE_BYTES]);
    let (a, b) = plaintext.split_at_mut(fedprof_crypto::shamir::SHARE_BYTES);
    a.copy_from_slice(self_mask_share.to_bytes().as_slice());
    b.copy_from_slice(mask_key_share.to_bytes().as_slice());
    fedprof_crypto::aead::seal(
        key,
        &ENVELOPE_NONCE,
        &envelope_ad(tag, sender, recipient),
        plaintext.as_slice(),
    )
}

/// Why an envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    Aead,
    Share,
}

impl From<AeadError> for OpenError {
    fn from(_: AeadError) -> Self {
        OpenError::Aead
    }
}

impl From<ShamirError> for OpenError {
    fn from(_: ShamirError) -> Self {
        OpenError::Share
    }
}

/// Opens the envelope `sender -> recipient`: the recipient's shares of the sender's self-mask
/// seed and mask key.
pub(crate) fn open_shares(
    key: &SecretKey32,
    tag: RoundTag,
    sender: u32,
    recipient: u32,
    ciphertext: &[u8],
) -> Result<(Share, Share), OpenError> {
    let plaintext = fedprof_crypto::aead::open(
        key,
        &ENVELOPE_NONCE,
        &envelope_ad(tag, sender, recipient),
        ciphertext,
    )?;
    if plaintext.len() != 2 * fedprof_crypto::shamir::SHARE_BYTES {
        return Err(OpenError::Share);
    }
    let (a, b) = plaintext.split_at(fedprof_crypto::shamir::SHARE_BYTES);
    let point = share_point(recipient);
    Ok((Share::from_bytes(point, a)?, Share::from_bytes(point, b)?))
}

/// The Shamir point of the share held by node `holder`.
pub(crate) fn share_point(holder: u32) -> u64 {
    u64::from(holder) + 1
}

/// Masked vector to its wire bytes.
#[must_use]
pub fn vector_to_bytes(values: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 8);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Adds the wire bytes of a vector into `acc` (wrapping); `None` if the length is not
/// `8 * acc.len()`.
pub(crate) fn add_bytes_into(acc: &mut [u64], bytes: &[u8]) -> Option<()> {
    if bytes.len() != acc.len() * 8 {
        return None;
    }
    for (a, chunk) in acc.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *a = a.wrapping_add(u64::from_le_bytes(word));
    }
    Some(())
}
