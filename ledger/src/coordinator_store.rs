//! The coordinator's release ledger on disk (one JSON Lines file, mode 0600).
//!
//! A release is recorded, and the record fsynced, before its result is published:
//! [`CoordinatorLedger::record_release`] returns the [`RecordedRelease`] the publishing step
//! requires. One process at a time may use the file.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use fedprof_protocol::PartyId;

use crate::clock::Clock;
use crate::coordinator::{
    CoordinatorBook, CoordinatorEntry, CoordinatorRuleError, Policy, ReleaseRecord,
};
use crate::encoding::{Digest, Writer};
use crate::entry::{KeyError, KeyRing};
use crate::file::{self, FileError};
use crate::mechanism::ReleaseId;

/// Failures of the coordinator store.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorStoreError {
    /// A file could not be read or written, or the ledger's last line is torn.
    #[error(transparent)]
    File(#[from] FileError),
    /// A line of the ledger is invalid.
    #[error("{path}: line {line}: {error}")]
    Corrupt {
        /// The ledger file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        error: CoordinatorRuleError,
    },
    /// The release cannot be recorded (and so must not be published).
    #[error("release cannot be recorded: {0}")]
    Refused(CoordinatorRuleError),
    /// An earlier append failed part-way; reopen the ledger before writing again.
    #[error("an earlier write to the ledger failed; reopen it before writing again")]
    Poisoned,
}

/// Proof that a release, with every contributing node's receipt, is durable in the
/// coordinator's ledger: the one value that allows publishing its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRelease {
    seq: u64,
    release: ReleaseId,
    published_digest: Digest,
}

impl RecordedRelease {
    /// The ledger entry's position.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The release.
    pub fn release(&self) -> &ReleaseId {
        &self.release
    }

    /// The digest of the bytes that may be published (publish exactly those).
    pub fn published_digest(&self) -> &Digest {
        &self.published_digest
    }
}

/// The coordinator's open release ledger.
pub struct CoordinatorLedger {
    /// `<ledger>.lock`, held while the ledger is open.
    _lock: File,
    path: PathBuf,
    file: File,
    key: SigningKey,
    nodes: KeyRing,
    book: CoordinatorBook,
    /// Dates every entry written.
    clock: Clock,
    poisoned: bool,
}

impl fmt::Debug for CoordinatorLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordinatorLedger")
            .field("path", &self.path)
            .field("next_seq", &self.book.chain().next_seq())
            .finish_non_exhaustive()
    }
}

impl CoordinatorLedger {
    /// Opens (or creates) the ledger file at `path` of `coordinator`, whose certificate key is
    /// `key`; `nodes` holds the nodes' certificate keys, to check receipts. Every entry is
    /// verified; a torn last line or an invalid entry is refused. Entries written are dated by
    /// the system clock.
    pub fn open(
        path: &Path,
        key: SigningKey,
        coordinator: PartyId,
        nodes: KeyRing,
    ) -> Result<Self, CoordinatorStoreError> {
        CoordinatorLedger::open_with_clock(path, key, coordinator, nodes, Clock::system())
    }

    /// [`CoordinatorLedger::open`] with entries dated by `clock`.
    pub fn open_with_clock(
        path: &Path,
        key: SigningKey,
        coordinator: PartyId,
        nodes: KeyRing,
        clock: Clock,
    ) -> Result<Self, CoordinatorStoreError> {
        let corrupt = |line, error| CoordinatorStoreError::Corrupt {
            path: path.to_owned(),
            line,
            error,
        };
        let mut book = CoordinatorBook::new(Writer::new(coordinator)).map_err(|e| corrupt(0, e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            file::ensure_dir(dir)?;
        }
        // One process per ledger: two coordinators would fork its chain.
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = file::lock(Path::new(&lock_path))?;
        let bytes = file::read_optional(path)?.unwrap_or_default();
        let vk = key.verifying_key();
        for (i, line) in file::ledger_lines(path, &bytes)?.into_iter().enumerate() {
            book.apply_line(line, &vk, &nodes)
                .map_err(|e| corrupt(i + 1, e))?;
        }
        let file = file::open_append(path)?;
        Ok(CoordinatorLedger {
            _lock: lock,
            path: path.to_owned(),
            file,
            key,
            nodes,
            book,
            clock,
            poisoned: false,
        })
    }

    /// Trusts `key` for receipts signed by `party`: call it only with keys from certificates
    /// verified against the federation CA (e.g. by the TLS handshake) that name `party`.
    pub fn trust_node(&mut self, party: PartyId, key: [u8; 32]) -> Result<(), KeyError> {
        self.nodes.insert(party, key)
    }

    /// Checks a node entry's signature against the trusted key of the node that wrote it.
    pub fn verify_node_entry(&self, entry: &crate::NodeEntry) -> Result<(), crate::EntryError> {
        entry.verify_signature(self.nodes.get(entry.writer())?)
    }

    /// The latest receipt of `node` this ledger recorded, for the node's rollback check (see
    /// [`CoordinatorBook::last_receipt`]).
    pub fn last_receipt(
        &self,
        node: &fedprof_protocol::PartyName,
    ) -> Option<fedprof_protocol::ReceiptHead> {
        self.book.last_receipt(node)
    }

    /// The ledger's state.
    pub fn book(&self) -> &CoordinatorBook {
        &self.book
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `policy` for the releases that follow.
    pub fn set_policy(&mut self, policy: Policy) -> Result<(), CoordinatorStoreError> {
        let entry = self
            .book
            .plan_policy(policy, self.clock.now(), &self.key)
            .map_err(CoordinatorStoreError::Refused)?;
        self.append(&entry)
    }

    /// Checks and durably records a release (receipts, mechanism, per-job cap, digest of what
    /// will be published); only then may the result be published.
    pub fn record_release(
        &mut self,
        record: ReleaseRecord,
    ) -> Result<RecordedRelease, CoordinatorStoreError> {
        let (release, published_digest) = (record.release, record.published_digest);
        let entry = self
            .book
            .plan_release(record, self.clock.now(), &self.key, &self.nodes)
            .map_err(CoordinatorStoreError::Refused)?;
        self.append(&entry)?;
        Ok(RecordedRelease {
            seq: entry.seq(),
            release,
            published_digest,
        })
    }

    fn append(&mut self, entry: &CoordinatorEntry) -> Result<(), CoordinatorStoreError> {
        if self.poisoned {
            return Err(CoordinatorStoreError::Poisoned);
        }
        if let Err(e) = file::append_line(&mut self.file, &self.path, &entry.to_line()) {
            self.poisoned = true;
            return Err(e.into());
        }
        self.book
            .commit(entry, &self.nodes)
            .map_err(|error| CoordinatorStoreError::Corrupt {
                path: self.path.clone(),
                line: entry.seq() as usize + 1,
                error,
            })
    }
}
