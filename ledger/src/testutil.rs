//! Fixtures shared by this crate's unit tests.

use ed25519_dalek::SigningKey;
use fedprof_protocol::{JobId, PartyId, PartyName, Role, RoundId};

use crate::clock::Timestamp;
use crate::encoding::{Digest, Writer};
use crate::entry::KeyRing;
use crate::mechanism::{DiscreteGaussian, MechanismRecord, ReleaseId, Sensitivity};

/// 2026-12-07T15:04:18Z: the time of the entries unit tests write.
pub(crate) const NOW: Timestamp = Timestamp(1_796_655_858);

/// A clock tests move by hand.
#[derive(Clone)]
pub(crate) struct TestClock(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl TestClock {
    /// A clock an hour into month `m` (`YYYY-MM`).
    pub(crate) fn in_month(m: &str) -> TestClock {
        let c = TestClock(std::sync::Arc::default());
        c.set_month(m);
        c
    }

    /// Moves the clock to an hour into month `m`.
    pub(crate) fn set_month(&self, m: &str) {
        let start = m.parse::<crate::clock::Month>().unwrap().start().secs();
        self.0
            .store(start + 3600, std::sync::atomic::Ordering::SeqCst);
    }

    /// The clock a store reads.
    pub(crate) fn clock(&self) -> crate::clock::Clock {
        let t = self.0.clone();
        crate::clock::Clock::from_fn(move || Timestamp(t.load(std::sync::atomic::Ordering::SeqCst)))
    }
}

pub(crate) fn party(role: Role, name: &str) -> PartyId {
    PartyId {
        role,
        name: PartyName::new(name).unwrap(),
    }
}

pub(crate) fn node(name: &str) -> PartyId {
    party(Role::Node, name)
}

pub(crate) fn coordinator() -> PartyId {
    party(Role::Coordinator, "coordinator")
}

/// A deterministic key per party name.
pub(crate) fn key(name: &str) -> SigningKey {
    let mut seed = [7u8; 32];
    for (s, b) in seed.iter_mut().zip(name.bytes()) {
        *s ^= b;
    }
    SigningKey::from_bytes(&seed)
}

pub(crate) fn ring(nodes: &[&str]) -> KeyRing {
    let mut ring = KeyRing::new();
    for n in nodes {
        ring.insert(node(n), key(n).verifying_key().to_bytes())
            .unwrap();
    }
    ring.insert(coordinator(), key("coordinator").verifying_key().to_bytes())
        .unwrap();
    ring
}

pub(crate) fn writer(p: PartyId) -> Writer {
    Writer::new(p)
}

pub(crate) fn release(job: u64, round: u32) -> ReleaseId {
    ReleaseId {
        job: JobId(job),
        round: RoundId(round),
        nonce: Digest::of(&job.to_le_bytes()),
    }
}

/// rho = 1 / (2 * sigma_sq_node * (n_min - c)); with (4, 2, 1): 1/8.
pub(crate) fn gaussian(sigma_sq_node: u64, n_min: u32, colluders: u32) -> MechanismRecord {
    let g = DiscreteGaussian::new(
        Sensitivity {
            l2_sq: "1".parse().unwrap(),
            l1: "1".parse().unwrap(),
        },
        3,
        sigma_sq_node.to_string().parse().unwrap(),
        n_min,
        colluders,
    )
    .unwrap();
    MechanismRecord::DistributedDiscreteGaussian(g)
}
