//! fedprof ledgers: append-only, hash-chained, signed records of privacy spending.
//!
//! Every node keeps a **budget ledger** of its own debits; the coordinator keeps a **release
//! ledger** of what it published and the signed node receipts that paid for it. An auditor
//! verifies both from the files and the federation's certificates alone ([`audit`]).
//!
//! What this crate owns: the entry format and its canonical bytes ([`entry`]), the exact
//! mechanism records and their rho ([`mechanism`]), the sans-IO rules of each ledger
//! ([`node`], [`coordinator`]), the crash-safe file stores ([`node_store`],
//! [`coordinator_store`]) and the sans-IO audit ([`audit`]). It does not read certificates
//! (the caller hands it verified public keys) or open sockets; the books take the time as an
//! argument and only the stores read a [`Clock`] ([`clock`]: every entry is dated). It never
//! holds a float in a ledger: amounts are exact [`Rho`] values. See `docs/LEDGER.md`.

#![expect(
    clippy::result_large_err,
    reason = "errors carry exact rationals (a few hundred bytes); they occur once per refusal or \
              corrupt file, and the Ok values they travel with (entries) are larger still"
)]

pub mod audit;
pub mod clock;
pub mod coordinator;
pub mod coordinator_store;
pub mod encoding;
pub mod entry;
pub mod file;
pub mod mechanism;
pub mod node;
pub mod node_store;
#[cfg(test)]
mod testutil;

pub use audit::{
    AuditFailure, AuditInput, AuditReport, AuditWarning, LedgerHead, LedgerText, MaxHolders,
    NodeSummary, epsilon_at_delta, epsilon_simple_at_delta, person_rho_of_release,
};
pub use clock::{CLOCK_TOLERANCE_SECS, Clock, Month, Timestamp};
pub use coordinator::{
    CoordinatorBody, CoordinatorBook, CoordinatorEntry, ExpectedDebit, Policy, ReceiptError,
    ReleaseRecord,
};
pub use coordinator_store::{CoordinatorLedger, CoordinatorStoreError, RecordedRelease};
pub use ed25519_dalek::SigningKey;
pub use encoding::{Digest, Label, Period, Writer};
pub use entry::{Chain, Entry, EntryError, KeyError, KeyRing, signing_key_from_pem};
pub use fedprof_privacy::Rho;
pub use mechanism::{
    DiscreteGaussian, MechanismError, MechanismRecord, QueryRecord, ReleaseId, Sensitivity,
    TotalsRecord, legacy_vector_digest, vector_digest,
};
pub use node::{BudgetError, NodeBody, NodeBook, NodeEntry, PeriodAccount, RollbackError};
pub use node_store::{DebitReceipt, NodeLedger, StoreError};

/// Version of the ledger format. It is part of the label every signature covers, so a future
/// format cannot be confused with this one.
pub const LEDGER_FORMAT_VERSION: u32 = 1;
