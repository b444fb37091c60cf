//! The node's part of one job's secure aggregation, as a sans-IO state machine around the
//! typestates of [`fedprof_secagg::node`]: it is handed the coordinator's relayed messages and,
//! once the local computation is done, the node's (noised) vector, and answers with the
//! messages to send. The vector may arrive before or after the share bundle that needs it.

use std::sync::Arc;
use std::time::SystemTime;

use fedprof_crypto::{SigningKey, VerifyingKey};
use fedprof_ledger::{DebitReceipt, Digest, NodeBody, ReleaseId};
use fedprof_protocol::secagg::{CoordinatorMessage, NodeMessage, ShareBundle};
use fedprof_protocol::{
    JobAnnounce, JobId, PartyId, PartyName, Role, RosterEntry, RoundId, SecAggGraph,
};
use fedprof_secagg::{
    AwaitingBundle, AwaitingDirectory, AwaitingUnmask, GraphSpec, NodeError, Party, RoundConfig,
    RoundTag,
};
use rand_core::CryptoRng;

/// Why the node cannot take part in (or go on with) a job's secure aggregation.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The announcement's roster or parameters are unusable.
    #[error("the job's secure-aggregation setup is invalid: {0}")]
    Setup(String),
    /// This node is not in the roster.
    #[error("this node is not in the job's roster")]
    NotInRoster,
    /// The secure-aggregation state machine refused a message.
    #[error(transparent)]
    SecAgg(#[from] NodeError),
    /// A message arrived that this phase does not take.
    #[error("{0} is not expected in this phase")]
    OutOfPhase(&'static str),
    /// The debit receipt handed over is not this job's release.
    #[error("the debit receipt is not for this job's release {0}")]
    WrongReceipt(ReleaseId),
}

/// Checks a certificate received outside a handshake (a roster entry) against the federation
/// CA at `now`, and returns the party it names and its raw Ed25519 key. Implemented by
/// [`fedprof_transport::Credentials`]; a trait so that [`crate::core::NodeCore`] stays free of
/// TLS state and its tests can supply their own.
pub trait Certificates: Send + Sync {
    /// The party and key of certificate `der`, if it chains to the CA and is valid at `now`.
    fn verify_party(&self, der: &[u8], now: SystemTime) -> Result<(PartyId, [u8; 32]), String>;
}

impl Certificates for fedprof_transport::Credentials {
    fn verify_party(&self, der: &[u8], now: SystemTime) -> Result<(PartyId, [u8; 32]), String> {
        fedprof_transport::Credentials::verify_party(self, der, now).map_err(|e| e.to_string())
    }
}

/// [`Certificates`] that also refuses every certificate on the federation's revocation list
/// (security review H6): a revoked node never enters a round this node takes part in, even
/// if the coordinator still announced it. The list is the one in force at each check, so a
/// reload (SIGHUP) applies to the next announcement.
#[derive(Debug)]
pub struct Unrevoked<C> {
    /// The CA check.
    pub inner: std::sync::Arc<C>,
    /// The list in force.
    pub revocations: fedprof_transport::RevocationWatch,
}

impl<C: Certificates> Certificates for Unrevoked<C> {
    fn verify_party(&self, der: &[u8], now: SystemTime) -> Result<(PartyId, [u8; 32]), String> {
        let verified = self.inner.verify_party(der, now)?;
        if self.revocations.current().is_revoked(der) {
            return Err("the certificate is revoked".into());
        }
        Ok(verified)
    }
}

/// A roster whose every certificate was verified against the federation CA, names the node
/// its entry names, and carries a valid Ed25519 key; with this node's position in it. The
/// only way to get one is [`VerifiedRoster::verify`], and [`round_config`] takes nothing
/// else, so a round cannot be built on keys the coordinator chose (it could otherwise
/// substitute its own and unmask one node's vector).
#[derive(Debug, Clone)]
pub struct VerifiedRoster {
    names: Vec<PartyName>,
    keys: Vec<VerifyingKey>,
    me: u32,
}

impl VerifiedRoster {
    /// Verifies `roster` at `now` for the node `me`.
    pub fn verify(
        roster: &[RosterEntry],
        me: &PartyId,
        certificates: &dyn Certificates,
        now: SystemTime,
    ) -> Result<Self, JobError> {
        let mut keys = Vec::with_capacity(roster.len());
        let mut mine = None;
        for (i, entry) in roster.iter().enumerate() {
            let (party, key) = certificates
                .verify_party(&entry.certificate, now)
                .map_err(|e| {
                    JobError::Setup(format!(
                        "roster certificate of {} is not trusted: {e}",
                        entry.name
                    ))
                })?;
            if party.role != Role::Node || party.name != entry.name {
                return Err(JobError::Setup(format!(
                    "roster entry {} carries the certificate of {party}",
                    entry.name
                )));
            }
            if party == *me {
                if mine.is_some() {
                    return Err(JobError::Setup("this node is in the roster twice".into()));
                }
                mine = u32::try_from(i).ok();
            }
            keys.push(VerifyingKey::from_bytes(&key).map_err(|_| {
                JobError::Setup(format!(
                    "roster key of {} is not a valid Ed25519 key",
                    entry.name
                ))
            })?);
        }
        let me = mine.ok_or(JobError::NotInRoster)?;
        Ok(VerifiedRoster {
            names: roster.iter().map(|e| e.name.clone()).collect(),
            keys,
            me,
        })
    }

    /// This node's index in the round.
    pub fn me(&self) -> u32 {
        self.me
    }

    /// How many nodes the roster has.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the roster is empty (never, for a verified roster: this node is in it).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

enum Phase {
    Directory(AwaitingDirectory),
    Bundle(AwaitingBundle),
    Unmask(AwaitingUnmask),
    Done,
}

/// The id of the release a round configuration serves in every ledger: the job, round 0 and
/// the configuration's digest (which covers the coordinator's fresh nonce).
pub fn release_id(job: JobId, config: &RoundConfig) -> ReleaseId {
    ReleaseId {
        job,
        round: RoundId(0),
        nonce: Digest::from_bytes(config.digest()),
    }
}

/// One job's secure-aggregation state on the node.
pub struct NodeJob<R> {
    job: JobId,
    release: ReleaseId,
    phase: Phase,
    input: Option<Vec<u64>>,
    pending_bundle: Option<ShareBundle>,
    rng: R,
}

impl<R> std::fmt::Debug for NodeJob<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match self.phase {
            Phase::Directory(_) => "awaiting directory",
            Phase::Bundle(_) => "awaiting bundle",
            Phase::Unmask(_) => "awaiting unmask request",
            Phase::Done => "done",
        };
        f.debug_struct("NodeJob")
            .field("job", &self.job)
            .field("phase", &phase)
            .finish_non_exhaustive()
    }
}

/// Builds the round configuration every participant must agree on, from the announcement and
/// its roster as verified ([`VerifiedRoster::verify`] of the same announcement's roster).
pub fn round_config(
    job: JobId,
    announce: &JobAnnounce,
    roster: &VerifiedRoster,
) -> Result<Arc<RoundConfig>, JobError> {
    let setup = &announce.secagg;
    let same = setup.roster.len() == roster.names.len()
        && setup
            .roster
            .iter()
            .zip(&roster.names)
            .all(|(e, n)| e.name == *n);
    if !same {
        return Err(JobError::Setup(
            "the verified roster is not this announcement's".into(),
        ));
    }
    let parties = setup
        .roster
        .iter()
        .zip(roster.keys.iter().copied())
        .map(|(entry, verifying_key)| Party {
            name: entry.name.to_string(),
            verifying_key,
        })
        .collect();
    let binding = announce
        .release_binding()
        .map_err(|e| JobError::Setup(e.to_string()))?;
    let graph = match setup.graph {
        SecAggGraph::Complete => GraphSpec::Complete,
        SecAggGraph::Sparse { neighbours, seed } => GraphSpec::Sparse { neighbours, seed },
    };
    RoundConfig::new(
        RoundTag {
            job: job.0,
            round: 0,
        },
        parties,
        announce.spec.vector_len(),
        graph,
        Some(setup.threshold as usize),
    )
    // C2, M4: the round is bound to the release's n_min and to the release itself (query,
    // noise, colluders, job, nonce); a graph that cannot guarantee n_min is refused here.
    .and_then(|c| {
        c.bind(
            (announce.release.min_contributors.max(setup.min_survivors)) as usize,
            announce.release.colluders as usize,
            &binding,
        )
    })
    .map(Arc::new)
    .map_err(|e| JobError::Setup(e.to_string()))
}

impl<R: CryptoRng> NodeJob<R> {
    /// Starts the node's part as roster entry `me`; returns the key advertisement to send.
    pub fn start(
        job: JobId,
        config: Arc<RoundConfig>,
        me: u32,
        key: &SigningKey,
        mut rng: R,
    ) -> Result<(Self, NodeMessage), JobError> {
        let release = release_id(job, &config);
        let (state, advert) = fedprof_secagg::node::start(config, me, key, &mut rng)?;
        let job = NodeJob {
            job,
            release,
            phase: Phase::Directory(state),
            input: None,
            pending_bundle: None,
            rng,
        };
        Ok((job, NodeMessage::Advertise(advert)))
    }

    /// Handles a message from the coordinator.
    pub fn on_relay(
        &mut self,
        message: CoordinatorMessage,
    ) -> Result<Option<NodeMessage>, JobError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        match (phase, message) {
            (Phase::Directory(state), CoordinatorMessage::Directory(dir)) => {
                let (next, shares) = state.on_directory(&dir, &mut self.rng)?;
                self.phase = Phase::Bundle(next);
                Ok(Some(NodeMessage::Shares(shares)))
            }
            (Phase::Bundle(state), CoordinatorMessage::Bundle(bundle)) => {
                self.phase = Phase::Bundle(state);
                self.pending_bundle = Some(bundle);
                self.try_mask()
            }
            (Phase::Unmask(state), CoordinatorMessage::Unmask(request)) => {
                let response = state.on_unmask_request(&request)?;
                Ok(Some(NodeMessage::Unmask(response)))
            }
            (phase, message) => {
                self.phase = phase;
                Err(JobError::OutOfPhase(match message {
                    CoordinatorMessage::Directory(_) => "a key directory",
                    CoordinatorMessage::Bundle(_) => "a share bundle",
                    CoordinatorMessage::Unmask(_) => "an unmask request",
                }))
            }
        }
    }

    /// The release this job pays for.
    pub fn release(&self) -> ReleaseId {
        self.release
    }

    /// Hands over the node's vector with the proof it was paid for: the ledger's
    /// [`DebitReceipt`], which only [`fedprof_ledger::NodeLedger::prepare_release`] creates,
    /// after the debit is fsynced. Nothing else sets the input, so no vector is masked (and
    /// sent) unpaid. Returns the receipt's ledger line (for the coordinator, sent before the
    /// masked input) and the masked input once the share bundle is here too.
    pub fn set_input(
        &mut self,
        receipt: DebitReceipt,
    ) -> Result<(String, Option<NodeMessage>), JobError> {
        let paid = matches!(receipt.entry().body(), NodeBody::Debit { release, .. } if *release == self.release);
        if !paid {
            return Err(JobError::WrongReceipt(self.release));
        }
        let (entry, vector) = receipt.into_parts();
        self.input = Some(vector);
        Ok((entry.to_line(), self.try_mask()?))
    }

    /// Masks and sends the vector once both it and the share bundle are here.
    fn try_mask(&mut self) -> Result<Option<NodeMessage>, JobError> {
        let (Some(input), Some(bundle)) = (&self.input, &self.pending_bundle) else {
            return Ok(None);
        };
        let Phase::Bundle(state) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return Ok(None);
        };
        let (next, masked) = state.on_bundle(bundle, input)?;
        for (sender, why) in next.unreadable() {
            // The sender is at fault (or whoever relayed its envelope); this node stays in
            // the round without that sender's shares (security review M3).
            tracing::warn!(sender, error = %why, "a neighbour's envelope did not open; going on without its shares");
        }
        self.phase = Phase::Unmask(next);
        self.input = None;
        self.pending_bundle = None;
        Ok(Some(NodeMessage::Masked(masked)))
    }
}

#[cfg(test)]
mod unrevoked_tests {
    use super::*;
    use fedprof_transport::revocation::{Fingerprint, Revoked};
    use fedprof_transport::{FederationCa, RevocationList, RevocationWatch, Validity};
    use time::OffsetDateTime;

    /// Trusts every certificate as node `a` (the CA check is not what is tested here).
    struct AnyCert;

    impl Certificates for AnyCert {
        fn verify_party(&self, _: &[u8], _: SystemTime) -> Result<(PartyId, [u8; 32]), String> {
            Ok((
                PartyId {
                    role: Role::Node,
                    name: PartyName::new("a").unwrap(),
                },
                [1; 32],
            ))
        }
    }

    #[test]
    fn roster_certificates_on_the_reloaded_list_are_refused() {
        let now = OffsetDateTime::now_utc();
        let ca = FederationCa::generate("t", Validity::days_from(now, 1)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.json");
        let watch = RevocationWatch::open(Some(path.clone()), &ca.cert_pem()).unwrap();
        let certs = Unrevoked {
            inner: std::sync::Arc::new(AnyCert),
            revocations: watch.clone(),
        };
        let t = SystemTime::now();
        assert!(certs.verify_party(b"revoked", t).is_ok());
        let list = RevocationList::empty()
            .extended(
                [Revoked {
                    fingerprint: Fingerprint::of(b"revoked"),
                    party: AnyCert.verify_party(b"", t).unwrap().0,
                    revoked_at: now,
                    reason: "test".into(),
                }],
                now,
            )
            .unwrap();
        std::fs::write(&path, list.sign(&ca).unwrap()).unwrap();
        // Not before the reload (SIGHUP) ...
        assert!(certs.verify_party(b"revoked", t).is_ok());
        watch.reload().unwrap();
        // ... and from then on.
        let err = certs.verify_party(b"revoked", t).unwrap_err();
        assert!(err.contains("revoked"), "{err}");
        assert!(certs.verify_party(b"another", t).is_ok());
    }
}
