//! A node's budget ledger on disk, and the one way to obtain a vector the node may send.
//!
//! Layout of a node's ledger directory (mode 0700; files 0600):
//! ```text
//! DIR/ledger.jsonl                            the signed, hash-chained entries
//! DIR/vectors/<job>-<round>-<nonce>.json      the noisy vector of each debited release
//! ```
//!
//! Order of effects in [`NodeLedger::prepare_release`], and what a crash at each point leaves:
//! 1. budget check: refuse before anything is generated;
//! 2. the noisy vector is generated and written atomically to `vectors/` (crash: a vector
//!    without a debit; the next call for the release reuses it and writes the debit);
//! 3. the debit is appended and fsynced (crash during: a torn last line, refused on open, see
//!    `docs/LEDGER.md`; crash after: the budget is spent, the next call returns the same vector);
//! 4. only then the [`DebitReceipt`] exists, and only a receipt hands out the vector.
//!
//! One process at a time may use a directory (the node service is that process).

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use fedprof_privacy::Rho;
use fedprof_protocol::PartyId;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::encoding::{Digest, Period, Writer};
use crate::entry::Entry;
use crate::file::{self, FileError};
use crate::mechanism::{MechanismRecord, ReleaseId, legacy_vector_digest, vector_digest};
use crate::node::{BudgetError, NodeBody, NodeBook, NodeEntry, NodeRuleError};

/// Failures of the node store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written, or the ledger's last line is torn.
    #[error(transparent)]
    File(#[from] FileError),
    /// A line of the ledger is invalid (tampered with, or not this node's).
    #[error("{path}: line {line}: {error}")]
    Corrupt {
        /// The ledger file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        error: NodeRuleError,
    },
    /// The node refuses the release: nothing was generated or sent.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// A release was debited but its cached vector is gone: the same vector cannot be sent
    /// again, and a new one must never be, so the release stays unanswered (budget spent).
    #[error(
        "release {release} was debited but its cached vector {path} is missing; it cannot be re-sent"
    )]
    CacheMissing {
        /// The release.
        release: ReleaseId,
        /// Where the vector should be.
        path: PathBuf,
    },
    /// An earlier append failed part-way; the file may end in a torn line. Reopen the ledger
    /// (which checks it) before writing again.
    #[error("an earlier write to the ledger failed; reopen it before writing again")]
    Poisoned,
    /// A cached vector does not match what the ledger recorded for it.
    #[error("cached vector {path} is damaged or belongs to another release: {reason}")]
    CacheCorrupt {
        /// The cache file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
}

/// Proof that a release's debit is durable in the node's ledger, carrying the vector paid for.
///
/// Only [`NodeLedger::prepare_release`] creates one, after the debit is fsynced; a node sends
/// nothing for a release except [`DebitReceipt::noisy_vector`], together with
/// [`DebitReceipt::entry`] for the coordinator's ledger.
pub struct DebitReceipt {
    entry: NodeEntry,
    vector: Vec<u64>,
    retry: bool,
}

impl DebitReceipt {
    /// The signed debit entry (send its [`Entry::to_line`] to the coordinator).
    pub fn entry(&self) -> &NodeEntry {
        &self.entry
    }

    /// The noisy vector this debit paid for.
    pub fn noisy_vector(&self) -> &[u64] {
        &self.vector
    }

    /// Whether the debit already existed (a retry of the same release).
    pub fn is_retry(&self) -> bool {
        self.retry
    }

    /// The entry and the vector.
    pub fn into_parts(self) -> (NodeEntry, Vec<u64>) {
        (self.entry, self.vector)
    }
}

impl fmt::Debug for DebitReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebitReceipt")
            .field("seq", &self.entry.seq())
            .field(
                "vector",
                &format_args!("<{} values redacted>", self.vector.len()),
            )
            .field("retry", &self.retry)
            .finish()
    }
}

/// The cache file format: the vector with enough context to check it belongs where it is.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CachedVector {
    release: ReleaseId,
    /// The mechanism the noise was drawn for: a vector is never reused under other
    /// parameters (it might carry less noise than the debit would claim).
    mechanism: MechanismRecord,
    /// The secret salt of [`vector_digest`] (absent in caches of releases debited before
    /// digests were salted, which use the legacy digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt: Option<Digest>,
    vector_digest: Digest,
    vector: Vec<u64>,
}

impl CachedVector {
    fn digest(&self) -> Digest {
        match &self.salt {
            Some(salt) => vector_digest(salt, &self.vector),
            None => legacy_vector_digest(&self.vector),
        }
    }
}

/// A node's open budget ledger.
pub struct NodeLedger {
    /// The state directory's lock, held while the ledger is open.
    _lock: File,
    dir: PathBuf,
    path: PathBuf,
    file: File,
    key: SigningKey,
    book: NodeBook,
    /// Dates every entry written.
    clock: Clock,
    poisoned: bool,
    #[cfg(test)]
    pub(crate) crash_after_cache: bool,
}

impl fmt::Debug for NodeLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeLedger")
            .field("path", &self.path)
            .field("writer", self.book.chain().writer())
            .field("next_seq", &self.book.chain().next_seq())
            .finish_non_exhaustive()
    }
}

impl NodeLedger {
    /// Opens (or creates) the ledger in `dir` of `node`, whose certificate key is `key`, and
    /// verifies every entry: chain, signatures with `key`, budget rules. A torn last line or
    /// any invalid entry is refused. Entries written are dated by the system clock.
    pub fn open(dir: &Path, key: SigningKey, node: PartyId) -> Result<Self, StoreError> {
        NodeLedger::open_with_clock(dir, key, node, Clock::system())
    }

    /// [`NodeLedger::open`] with entries dated by `clock`.
    pub fn open_with_clock(
        dir: &Path,
        key: SigningKey,
        node: PartyId,
        clock: Clock,
    ) -> Result<Self, StoreError> {
        file::ensure_dir(dir)?;
        file::ensure_dir(&dir.join("vectors"))?;
        // One process per state directory: two would both pay from one budget.
        let lock = file::lock(&dir.join("LOCK"))?;
        let path = dir.join("ledger.jsonl");
        let mut book = NodeBook::new(Writer::new(node)).map_err(|error| StoreError::Corrupt {
            path: path.clone(),
            line: 0,
            error,
        })?;
        let bytes = file::read_optional(&path)?.unwrap_or_default();
        let vk = key.verifying_key();
        for (i, line) in file::ledger_lines(&path, &bytes)?.into_iter().enumerate() {
            book.apply_line(line, &vk)
                .map_err(|error| StoreError::Corrupt {
                    path: path.clone(),
                    line: i + 1,
                    error,
                })?;
        }
        let file = file::open_append(&path)?;
        Ok(NodeLedger {
            _lock: lock,
            dir: dir.to_owned(),
            path,
            file,
            key,
            book,
            clock,
            poisoned: false,
            #[cfg(test)]
            crash_after_cache: false,
        })
    }

    /// The account so far.
    pub fn book(&self) -> &NodeBook {
        &self.book
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens budget period `period` with cap `cap`; later debits count against it. A lifetime
    /// cap in force stays in force; see [`NodeLedger::open_period_capped`].
    pub fn open_period(&mut self, period: Period, cap: Rho) -> Result<(), StoreError> {
        let entry = self
            .book
            .plan_budget(period, cap, self.clock.now(), &self.key)?;
        self.append(&entry)
    }

    /// Opens `period` with cap `cap` and, with `lifetime_cap: Some(l)`, then records the
    /// lifetime cap `l` (a `lifetime_cap` entry) unless that very cap is already in force.
    /// `None` leaves the lifetime cap as it is (none, or the one recorded before: a lifetime cap
    /// is never dropped). A lifetime cap above the one in force is refused before anything is
    /// written, so the period is not opened either.
    pub fn open_period_capped(
        &mut self,
        period: Period,
        cap: Rho,
        lifetime_cap: Option<Rho>,
    ) -> Result<(), StoreError> {
        if let (Some(l), Some(current)) = (&lifetime_cap, self.book.lifetime_cap())
            && l > current
        {
            return Err(BudgetError::LifetimeCapRaised {
                cap: current.clone(),
                requested: l.clone(),
            }
            .into());
        }
        self.open_period(period, cap)?;
        match lifetime_cap {
            Some(l) if self.book.lifetime_cap() != Some(&l) => self.set_lifetime_cap(l),
            _ => Ok(()),
        }
    }

    /// Records the lifetime cap `cap` (over all periods); see [`NodeBody::LifetimeCap`].
    pub fn set_lifetime_cap(&mut self, cap: Rho) -> Result<(), StoreError> {
        let entry = self
            .book
            .plan_lifetime_cap(cap, self.clock.now(), &self.key)?;
        self.append(&entry)
    }

    /// Pays for `release` and returns the vector to send for it (see the module docs for the
    /// order of effects). `make_noisy_vector` is called at most once per release, ever, and
    /// never when the budget does not allow the release. `salt` (32 bytes from the caller's
    /// CSPRNG) salts the debit's commitment to a new vector and stays in the cache; a retry
    /// keeps the salt it was first given.
    pub fn prepare_release(
        &mut self,
        release: ReleaseId,
        mechanism: MechanismRecord,
        salt: [u8; 32],
        make_noisy_vector: impl FnOnce() -> Vec<u64>,
    ) -> Result<DebitReceipt, StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        let cache = self.cache_path(&release);
        if let Some(info) = self.book.debit(&release).cloned() {
            let entry = self.read_entry(info.seq)?;
            if !matches!(entry.body(), NodeBody::Debit { mechanism: m, .. } if *m == mechanism) {
                return Err(BudgetError::ReleaseMismatch(release).into());
            }
            let cached = read_cache(&cache, &release)?.ok_or_else(|| StoreError::CacheMissing {
                release,
                path: cache.clone(),
            })?;
            if cached.vector_digest != info.vector_digest {
                let reason = "its digest differs from the one the debit recorded".to_owned();
                return Err(StoreError::CacheCorrupt {
                    path: cache,
                    reason,
                });
            }
            return Ok(DebitReceipt {
                entry,
                vector: cached.vector,
                retry: true,
            });
        }
        let now = self.clock.now();
        self.book.check_debit_at(&release, &mechanism, now)?;
        let cached = match read_cache(&cache, &release)? {
            // A vector generated before a crash that came before its debit: it never left
            // (nothing leaves without a receipt), and it is the one to send.
            Some(cached) if cached.mechanism == mechanism => cached,
            Some(_) => return Err(BudgetError::ReleaseMismatch(release).into()),
            None => {
                let vector = make_noisy_vector();
                let salt = Digest::from_bytes(salt);
                let cached = CachedVector {
                    release,
                    mechanism: mechanism.clone(),
                    vector_digest: vector_digest(&salt, &vector),
                    salt: Some(salt),
                    vector,
                };
                let json = crate::entry::canonical_json(&cached);
                file::write_atomic(&cache, json.as_bytes())?;
                cached
            }
        };
        #[cfg(test)]
        if self.crash_after_cache {
            return Err(FileError::Io {
                path: cache,
                source: std::io::Error::other("simulated crash"),
            }
            .into());
        }
        let entry =
            self.book
                .plan_debit(release, mechanism, cached.vector_digest, now, &self.key)?;
        self.append(&entry)?;
        Ok(DebitReceipt {
            entry,
            vector: cached.vector,
            retry: false,
        })
    }

    fn append(&mut self, entry: &NodeEntry) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        if let Err(e) = file::append_line(&mut self.file, &self.path, &entry.to_line()) {
            self.poisoned = true;
            return Err(e.into());
        }
        self.book
            .commit(entry)
            .map_err(|error| StoreError::Corrupt {
                path: self.path.clone(),
                line: entry.seq() as usize + 1,
                error,
            })
    }

    fn read_entry(&self, seq: u64) -> Result<NodeEntry, StoreError> {
        let corrupt = |error| StoreError::Corrupt {
            path: self.path.clone(),
            line: seq as usize + 1,
            error,
        };
        let bytes = file::read_optional(&self.path)?.unwrap_or_default();
        let lines = file::ledger_lines(&self.path, &bytes)?;
        let line = usize::try_from(seq)
            .ok()
            .and_then(|i| lines.get(i))
            .ok_or_else(|| {
                corrupt(NodeRuleError::Entry(crate::EntryError::Malformed(
                    "entry vanished from the file".into(),
                )))
            })?;
        Entry::from_line(line).map_err(|e| corrupt(e.into()))
    }

    fn cache_path(&self, release: &ReleaseId) -> PathBuf {
        self.dir.join("vectors").join(format!(
            "{}-{}-{}.json",
            release.job.0, release.round.0, release.nonce
        ))
    }
}

fn read_cache(path: &Path, release: &ReleaseId) -> Result<Option<CachedVector>, StoreError> {
    let Some(bytes) = file::read_optional(path)? else {
        return Ok(None);
    };
    let corrupt = |reason: String| StoreError::CacheCorrupt {
        path: path.to_owned(),
        reason,
    };
    let cached: CachedVector =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if cached.release != *release {
        return Err(corrupt(format!("it is for release {}", cached.release)));
    }
    if cached.digest() != cached.vector_digest {
        return Err(corrupt("the vector does not match its digest".into()));
    }
    Ok(Some(cached))
}

#[cfg(test)]
#[path = "node_store_tests.rs"]
mod tests;
