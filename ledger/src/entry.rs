//! Ledger entries: the line format, the canonical bytes that are signed and hashed, and the
//! chain rules (sequence numbers and `prev` hashes). Sans-IO: lines in, entries or errors out.
//!
//! An entry is one line of JSON with exactly these keys, in this order, and no whitespace:
//! `{"seq":N,"prev":"<hex>","writer":"<role>/<name>","time":T,"body":{...},"sig":"<hex>"}`.
//! `time` (unix seconds, UTC; see [`crate::clock`]) is absent from entries written before
//! ledgers carried timestamps; those still verify, as their signatures never covered one.
//!
//! - **Canonical form.** A line must be byte-for-byte the compact JSON that this crate writes
//!   for the entry it parses to (keys in declaration order, integers in decimal, strings drawn
//!   from escape-free ASCII alphabets; see [`crate::encoding`]). Any other spelling of the same
//!   content is refused, so one entry has one text and one hash.
//! - **Signature.** Ed25519 (`verify_strict`) by the writer's certificate key over
//!   [`SIGNING_LABEL`] followed by the canonical JSON of `{"seq","prev","writer","time","body"}`
//!   (without `time` when the entry has none).
//! - **Chain.** `prev` is the SHA-256 of the previous line's bytes (without its newline, and
//!   including that entry's signature); entry 0 has `prev` all zero; `seq` counts 0, 1, 2, ...
//! - **Time.** Once an entry is timed, every later one is, and none is dated more than
//!   [`CLOCK_TOLERANCE_SECS`] before an earlier one ([`Chain::check_time`]).

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use fedprof_protocol::PartyId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::{CLOCK_TOLERANCE_SECS, Timestamp};
use crate::encoding::{Digest, SignatureHex, Writer};

/// What every signature covers first: names this format and its version
/// ([`crate::LEDGER_FORMAT_VERSION`]), so an entry signature is never valid as any other
/// fedprof signature and vice versa.
pub const SIGNING_LABEL: &[u8] = b"fedprof/ledger/v1/entry\n";

/// One signed ledger entry with a body of type `B` (node or coordinator bodies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry<B> {
    seq: u64,
    prev: Digest,
    writer: Writer,
    /// When the writer wrote it (its clock); `None` only in entries from before timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<Timestamp>,
    body: B,
    sig: SignatureHex,
}

/// The signed part of an entry, in canonical field order.
#[derive(Serialize)]
struct SignedPart<'a, B> {
    seq: u64,
    prev: &'a Digest,
    writer: &'a Writer,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<Timestamp>,
    body: &'a B,
}

/// Compact JSON of a ledger value.
pub(crate) fn canonical_json<T: Serialize>(value: &T) -> String {
    #[expect(
        clippy::expect_used,
        reason = "ledger types hold only structs, enums, integers and strings: serializing cannot fail"
    )]
    serde_json::to_string(value).expect("ledger values serialize")
}

/// Why one line is not a valid entry at its place in a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The line is not JSON of an entry of this ledger's kind.
    #[error("not a valid entry: {0}")]
    Malformed(String),
    /// The line parses but is not in canonical form (extra whitespace, other key order, an
    /// escape, a non-reduced rho, ...).
    #[error("entry is not in canonical form (was the line edited?)")]
    NotCanonical,
    /// The sequence number is not the next one: an entry was dropped, duplicated, replayed or
    /// reordered.
    #[error("sequence number {found}, expected {expected} (entry dropped, replayed or reordered)")]
    Seq {
        /// The next sequence number.
        expected: u64,
        /// The one in the line.
        found: u64,
    },
    /// `prev` is not the hash of the previous line: the previous entry was changed or replaced.
    #[error("prev hash {found} does not match the previous entry ({expected})")]
    Prev {
        /// Hash of the previous line.
        expected: Digest,
        /// The `prev` in the line.
        found: Digest,
    },
    /// The entry names another writer than the one this ledger belongs to.
    #[error("written by {found}, but this ledger belongs to {expected}")]
    Writer {
        /// The ledger's owner.
        expected: Writer,
        /// The writer in the line.
        found: Writer,
    },
    /// An entry without a time after a timed one: every entry after the first timed one is
    /// timed, so a time cannot be dropped from a ledger's tail.
    #[error("entry has no time, but an earlier entry of this ledger is dated {previous}")]
    Untimed {
        /// The latest earlier time.
        previous: Timestamp,
    },
    /// The entry is dated more than the tolerance before an earlier entry of its ledger.
    #[error(
        "entry is dated {found}, before an earlier entry dated {previous} (more than the \
         {CLOCK_TOLERANCE_SECS} s tolerated): the writer's clock was moved back"
    )]
    TimeBackwards {
        /// The latest earlier time.
        previous: Timestamp,
        /// This entry's time.
        found: Timestamp,
    },
    /// No certificate key is known for the writer.
    #[error("no verified certificate for writer {0}")]
    UnknownWriter(Writer),
    /// The signature does not verify under the writer's certificate key.
    #[error("signature does not verify with {0}'s certificate key")]
    Signature(Writer),
}

impl<B: Serialize + DeserializeOwned> Entry<B> {
    /// Signs a new entry without a time, as entries were before ledgers carried timestamps
    /// (tests of old ledgers use it; writers use [`Chain::sign_next`]).
    pub fn sign(seq: u64, prev: Digest, writer: Writer, body: B, key: &SigningKey) -> Self {
        Entry::sign_at(seq, prev, writer, None, body, key)
    }

    /// Signs a new entry dated `time`. Signing is all this does: whether `seq`, `prev` and
    /// `time` continue a chain, and whether `key` belongs to `writer`, is what verification
    /// checks.
    pub fn sign_at(
        seq: u64,
        prev: Digest,
        writer: Writer,
        time: Option<Timestamp>,
        body: B,
        key: &SigningKey,
    ) -> Self {
        let message = signing_bytes(&SignedPart {
            seq,
            prev: &prev,
            writer: &writer,
            time,
            body: &body,
        });
        let sig = SignatureHex(key.sign(&message).to_bytes());
        Entry {
            seq,
            prev,
            writer,
            time,
            body,
            sig,
        }
    }

    /// Parses one line (without its newline) and checks that it is in canonical form. Does not
    /// verify the signature or the chain: see [`Chain::accept`].
    pub fn from_line(line: &str) -> Result<Self, EntryError> {
        let entry: Entry<B> =
            serde_json::from_str(line).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if entry.to_line() != line {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }

    /// The canonical line (without a newline).
    pub fn to_line(&self) -> String {
        canonical_json(self)
    }

    /// SHA-256 of the canonical line: the next entry's `prev`.
    pub fn digest(&self) -> Digest {
        Digest::of(self.to_line().as_bytes())
    }

    /// Checks the signature with `key`.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), EntryError> {
        let part = SignedPart {
            seq: self.seq,
            prev: &self.prev,
            writer: &self.writer,
            time: self.time,
            body: &self.body,
        };
        let sig = Signature::from_bytes(&self.sig.0);
        key.verify_strict(&signing_bytes(&part), &sig)
            .map_err(|_| EntryError::Signature(self.writer.clone()))
    }
}

impl<B> Entry<B> {
    /// Position in its ledger.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Hash of the previous entry's line.
    pub fn prev(&self) -> &Digest {
        &self.prev
    }

    /// Who wrote and signed it.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// When it was written (`None`: before ledgers carried timestamps).
    pub fn time(&self) -> Option<Timestamp> {
        self.time
    }

    /// What it records.
    pub fn body(&self) -> &B {
        &self.body
    }
}

fn signing_bytes<B: Serialize>(part: &SignedPart<'_, B>) -> Vec<u8> {
    let mut out = SIGNING_LABEL.to_vec();
    out.extend_from_slice(canonical_json(part).as_bytes());
    out
}

/// Why a key cannot be used to sign or check ledger entries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A private key file is not Ed25519 PKCS#8 PEM (the message never quotes the file).
    #[error("not an Ed25519 private key in PKCS#8 PEM form: {0}")]
    Pem(String),
    /// A certificate's public key is not a valid Ed25519 point.
    #[error("{0}'s public key is not a valid Ed25519 key")]
    Public(Writer),
}

/// Reads a party's certificate key (`key.pem` of `fedprof federation init`, PKCS#8 PEM). The
/// error never quotes the file's content.
pub fn signing_key_from_pem(pem: &str) -> Result<SigningKey, KeyError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Pem(e.to_string()))
}

/// The verified certificate keys of the federation's parties, by writer.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<Writer, VerifyingKey>,
}

impl KeyRing {
    /// An empty key ring.
    pub fn new() -> Self {
        KeyRing::default()
    }

    /// Adds `party`'s Ed25519 public key. Call it only with keys taken from certificates that
    /// were verified against the federation CA and name `party`.
    pub fn insert(&mut self, party: PartyId, public_key: [u8; 32]) -> Result<(), KeyError> {
        let writer = Writer::new(party);
        let Ok(key) = VerifyingKey::from_bytes(&public_key) else {
            return Err(KeyError::Public(writer));
        };
        self.keys.insert(writer, key);
        Ok(())
    }

    /// The key of `writer`.
    pub fn get(&self, writer: &Writer) -> Result<&VerifyingKey, EntryError> {
        self.keys
            .get(writer)
            .ok_or_else(|| EntryError::UnknownWriter(writer.clone()))
    }
}

/// The running state of one ledger's chain while its lines are checked or appended.
#[derive(Debug, Clone)]
pub struct Chain {
    writer: Writer,
    next_seq: u64,
    last: Digest,
    /// The latest time of an entry so far.
    latest: Option<Timestamp>,
}

impl Chain {
    /// An empty chain owned by `writer`.
    pub fn new(writer: Writer) -> Self {
        Chain {
            writer,
            next_seq: 0,
            last: Digest::ZERO,
            latest: None,
        }
    }

    /// The owner.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Sequence number of the next entry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Hash of the last line (all zero when empty).
    pub fn last_digest(&self) -> &Digest {
        &self.last
    }

    /// The latest time of an entry so far (`None`: no timed entry yet).
    pub fn latest_time(&self) -> Option<Timestamp> {
        self.latest
    }

    /// Checks that the next entry may be dated `time`: once an entry is timed, every later one
    /// is, and none is dated more than [`CLOCK_TOLERANCE_SECS`] before the latest time so far.
    pub fn check_time(&self, time: Option<Timestamp>) -> Result<(), EntryError> {
        match (self.latest, time) {
            (Some(previous), None) => Err(EntryError::Untimed { previous }),
            (Some(previous), Some(found))
                if found.secs().saturating_add(CLOCK_TOLERANCE_SECS) < previous.secs() =>
            {
                Err(EntryError::TimeBackwards { previous, found })
            }
            _ => Ok(()),
        }
    }

    /// Checks that `line` is the canonical, correctly signed next entry of this chain, and
    /// advances past it.
    pub fn accept<B: Serialize + DeserializeOwned>(
        &mut self,
        line: &str,
        key: &VerifyingKey,
    ) -> Result<Entry<B>, EntryError> {
        let entry = Entry::<B>::from_line(line)?;
        if entry.seq != self.next_seq {
            return Err(EntryError::Seq {
                expected: self.next_seq,
                found: entry.seq,
            });
        }
        if entry.prev != self.last {
            return Err(EntryError::Prev {
                expected: self.last,
                found: entry.prev,
            });
        }
        if entry.writer != self.writer {
            return Err(EntryError::Writer {
                expected: self.writer.clone(),
                found: entry.writer,
            });
        }
        entry.verify_signature(key)?;
        self.check_time(entry.time)?;
        self.advance(Digest::of(line.as_bytes()), entry.time);
        Ok(entry)
    }

    /// Signs `body` as the next entry, dated `now`. The chain does not advance until
    /// [`Chain::advance`] is called with the line's digest, i.e. after the line is durable.
    pub fn sign_next<B: Serialize + DeserializeOwned>(
        &self,
        body: B,
        now: Timestamp,
        key: &SigningKey,
    ) -> Result<Entry<B>, EntryError> {
        self.check_time(Some(now))?;
        Ok(Entry::sign_at(
            self.next_seq,
            self.last,
            self.writer.clone(),
            Some(now),
            body,
            key,
        ))
    }

    /// Moves past an entry whose line hashes to `digest`, dated `time`.
    pub fn advance(&mut self, digest: Digest, time: Option<Timestamp>) {
        self.next_seq += 1;
        self.last = digest;
        if let Some(t) = time {
            self.latest = Some(self.latest.map_or(t, |l| l.max(t)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LEDGER_FORMAT_VERSION;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    enum TestBody {
        Note { n: u64 },
    }

    fn writer(s: &str) -> Writer {
        s.parse().unwrap()
    }

    #[test]
    fn label_names_the_format_version() {
        let want = format!("fedprof/ledger/v{LEDGER_FORMAT_VERSION}/entry\n");
        assert_eq!(SIGNING_LABEL, want.as_bytes());
    }

    #[test]
    fn line_form_is_pinned_and_canonical() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let e = Entry::sign(
            0,
            Digest::ZERO,
            writer("node/a"),
            TestBody::Note { n: 5 },
            &key,
        );
        let line = e.to_line();
        let zeros = "0".repeat(64);
        let head = format!(
            r#"{{"seq":0,"prev":"{zeros}","writer":"node/a","body":{{"type":"note","n":5}},"sig":""#
        );
        assert!(line.starts_with(&head), "{line}");
        assert_eq!(Entry::<TestBody>::from_line(&line).unwrap(), e);
        let spaced = line.replacen("\"seq\":0", "\"seq\": 0", 1);
        assert_eq!(
            Entry::<TestBody>::from_line(&spaced),
            Err(EntryError::NotCanonical)
        );
        let reordered = line.replacen(r#""type":"note","n":5"#, r#""n":5,"type":"note""#, 1);
        assert_eq!(
            Entry::<TestBody>::from_line(&reordered),
            Err(EntryError::NotCanonical)
        );
        let extra = line.replacen("\"seq\":0", "\"seq\":0,\"x\":1", 1);
        assert!(matches!(
            Entry::<TestBody>::from_line(&extra),
            Err(EntryError::Malformed(_))
        ));
    }

    #[test]
    fn chain_catches_gaps_replays_edits_and_forgeries() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let w = writer("node/a");
        let mut chain = Chain::new(w.clone());
        let mut lines = Vec::new();
        for n in 0..3 {
            let e = chain
                .sign_next(TestBody::Note { n }, Timestamp(1_000 + n), &key)
                .unwrap();
            lines.push(e.to_line());
            chain.advance(e.digest(), e.time());
        }
        let vk = key.verifying_key();
        let check = |ls: &[&String]| {
            let mut c = Chain::new(w.clone());
            ls.iter()
                .try_for_each(|l| c.accept::<TestBody>(l, &vk).map(drop))
        };
        assert_eq!(check(&[&lines[0], &lines[1], &lines[2]]), Ok(()));
        assert!(matches!(
            check(&[&lines[0], &lines[2]]),
            Err(EntryError::Seq { .. })
        ));
        assert!(matches!(
            check(&[&lines[0], &lines[1], &lines[1]]),
            Err(EntryError::Seq { .. })
        ));
        let edited = lines[1].replacen("\"n\":1", "\"n\":9", 1);
        assert!(matches!(
            check(&[&lines[0], &edited]),
            Err(EntryError::Signature(_))
        ));
        let forged = Entry::sign(
            1,
            Digest::of(lines[0].as_bytes()),
            w.clone(),
            TestBody::Note { n: 1 },
            &other,
        );
        let forged = forged.to_line();
        assert!(matches!(
            check(&[&lines[0], &forged]),
            Err(EntryError::Signature(_))
        ));
        let foreign = Entry::sign(
            0,
            Digest::ZERO,
            writer("node/b"),
            TestBody::Note { n: 0 },
            &key,
        );
        assert!(matches!(
            check(&[&foreign.to_line()]),
            Err(EntryError::Writer { .. })
        ));
    }

    /// Item 6: entries carry their writer's time, signed and hashed with the rest; a time
    /// cannot be removed, changed or dropped from a ledger's tail, and one more than the
    /// tolerance before an earlier entry is refused, while untimed (old) entries still verify.
    #[test]
    fn times_are_signed_and_never_go_backwards() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let vk = key.verifying_key();
        let w = writer("node/a");
        let mut chain = Chain::new(w.clone());
        // An old, untimed entry first: still accepted.
        let old = Entry::sign(0, Digest::ZERO, w.clone(), TestBody::Note { n: 0 }, &key);
        chain.accept::<TestBody>(&old.to_line(), &vk).unwrap();
        let t = Timestamp(1_796_655_858);
        let timed = chain.sign_next(TestBody::Note { n: 1 }, t, &key).unwrap();
        let line = timed.to_line();
        assert!(
            line.contains(r#""writer":"node/a","time":1796655858,"body":"#),
            "{line}"
        );
        // The time is signed: changing or removing it breaks the signature.
        let mut c = chain.clone();
        let moved = line.replacen("1796655858", "1796655859", 1);
        assert!(matches!(
            c.accept::<TestBody>(&moved, &vk),
            Err(EntryError::Signature(_))
        ));
        let stripped = line.replacen(r#""time":1796655858,"#, "", 1);
        assert!(matches!(
            c.accept::<TestBody>(&stripped, &vk),
            Err(EntryError::Signature(_))
        ));
        let null = line.replacen("1796655858", "null", 1);
        assert!(c.accept::<TestBody>(&null, &vk).is_err());
        chain.accept::<TestBody>(&line, &vk).unwrap();
        assert_eq!(chain.latest_time(), Some(t));
        // Once timed, always timed.
        let untimed = Entry::sign(2, timed.digest(), w.clone(), TestBody::Note { n: 2 }, &key);
        assert_eq!(
            chain.clone().accept::<TestBody>(&untimed.to_line(), &vk),
            Err(EntryError::Untimed { previous: t })
        );
        // Within the tolerance back: accepted (an NTP step); beyond it: refused, by the writer
        // too, naming both times.
        let back = Timestamp(t.secs() - CLOCK_TOLERANCE_SECS);
        assert!(chain.sign_next(TestBody::Note { n: 2 }, back, &key).is_ok());
        let far = Timestamp(t.secs() - CLOCK_TOLERANCE_SECS - 1);
        let e = chain
            .sign_next(TestBody::Note { n: 2 }, far, &key)
            .unwrap_err();
        assert_eq!(
            e,
            EntryError::TimeBackwards {
                previous: t,
                found: far
            }
        );
        assert!(e.to_string().contains("2026-12-07T15:04:18Z"), "{e}");
        let forged = Entry::sign_at(
            2,
            timed.digest(),
            w,
            Some(far),
            TestBody::Note { n: 2 },
            &key,
        );
        assert!(matches!(
            chain.accept::<TestBody>(&forged.to_line(), &vk),
            Err(EntryError::TimeBackwards { .. })
        ));
    }
}
