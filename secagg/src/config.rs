//! A round's public configuration: who takes part, the vector length, the threshold and the
//! neighbour graph. Every party builds the same [`RoundConfig`] from the job announcement and
//! the federation roster; its [`RoundConfig::digest`] is signed into every key advertisement,
//! so parties that were told different configurations refuse each other's keys.

use fedprof_crypto::{VerifyingKey, digest};

use fedprof_protocol::secagg::RoundTag;

/// Most parties in one round (indices and Shamir points must stay small).
pub const MAX_PARTIES: usize = 1 << 16;
/// Longest vector (2^27 elements, 1 GiB of `u64`).
pub const MAX_VECTOR_LEN: usize = 1 << 27;

/// One party in the round's roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// The party's name (from its certificate; used in logs and the digest).
    pub name: String,
    /// The party's certificate key: advertisements must be signed with it. The caller takes
    /// it from the party's CA-verified certificate.
    pub verifying_key: VerifyingKey,
}

/// Which pairs of nodes mask against each other and share secrets with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphSpec {
    /// Every node with every other (Bonawitz et al. 2017): per-node cost linear in `n`.
    Complete,
    /// SecAgg+ (Bell et al. 2020): each node with `neighbours` others on a ring laid over a
    /// pseudorandom permutation of the nodes (`neighbours / 2` on each side), the permutation
    /// derived from the public `seed` and the round tag. Per-node cost is linear in
    /// `neighbours`, which should grow like `log n`.
    Sparse {
        /// Neighbours per node, not counting itself: even, at least 2, below `n`.
        neighbours: u32,
        /// Public seed of the permutation (for example chosen by the coordinator per job).
        seed: [u8; 32],
    },
}

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Fewer than 2 or more than [`MAX_PARTIES`] parties.
    #[error("a round needs between 2 and {MAX_PARTIES} parties, not {0}")]
    PartyCount(usize),
    /// Two parties share a name or a certificate key.
    #[error("party {0} appears twice in the roster (same name or same key)")]
    DuplicateParty(u32),
    /// The vector length is 0 or above [`MAX_VECTOR_LEN`].
    #[error("vector length must be between 1 and {MAX_VECTOR_LEN}, not {0}")]
    VectorLen(usize),
    /// The sparse graph's neighbour count is odd, below 2, or not below `n`.
    #[error("a sparse graph needs an even neighbour count between 2 and n - 1, not {0}")]
    Neighbours(u32),
    /// The fewest survivors a release needs is below 2 or above `n`, or a sparse graph
    /// cannot guarantee it (its neighbourhood threshold is below it, so the coordinator could
    /// unmask sums of fewer nodes).
    #[error(
        "a release needing {min_survivors} survivors cannot be guaranteed by this round \
         ({n} parties, threshold {threshold}, {graph} graph)"
    )]
    MinSurvivors {
        /// Survivors the release requires (`n_min`).
        min_survivors: usize,
        /// Parties.
        n: usize,
        /// The threshold.
        threshold: usize,
        /// `complete` or `sparse`.
        graph: &'static str,
    },
    /// As many colluders as the threshold: together they hold `t` shares of an honest node's
    /// secrets and, with the coordinator, rebuild its vector.
    #[error(
        "{colluders} colluding node(s) would hold {colluders} shares of every honest node's \
         secrets; the threshold {threshold} must exceed them"
    )]
    Colluders {
        /// Colluders the release assumes.
        colluders: usize,
        /// The threshold.
        threshold: usize,
    },
    /// A sparse graph with fewer neighbours than `2 ceil(log2 n)`: dropouts could split its
    /// ring into pieces that each meet the threshold, and the coordinator would learn their
    /// separate sums.
    #[error("a sparse graph over {n} parties needs at least {need} neighbours, not {got}")]
    SparseTooThin {
        /// Parties.
        n: usize,
        /// Neighbours asked for.
        got: u32,
        /// Fewest accepted.
        need: u32,
    },
    /// The threshold is not a majority of a neighbourhood, or exceeds its size.
    #[error(
        "threshold {threshold} must be at least 2, more than half of a neighbourhood and at \
         most its size ({size})"
    )]
    Threshold {
        /// The threshold asked for.
        threshold: usize,
        /// Neighbourhood size, the node itself included.
        size: usize,
    },
}

/// A validated round configuration. Cheap to share (`Arc`) between a coordinator and many
/// simulated nodes.
#[derive(Debug, Clone)]
pub struct RoundConfig {
    tag: RoundTag,
    parties: Vec<Party>,
    vector_len: usize,
    threshold: usize,
    graph: Graph,
    spec: GraphSpec,
    /// Fewest survivors whose sum may be unmasked (the release's `n_min`; 0 when unbound).
    min_survivors: usize,
    /// Digest of the release this round serves (query, noise, `n_min`, nonce; zeros when
    /// unbound).
    release: [u8; 32],
    digest: [u8; 32],
}

#[derive(Debug, Clone)]
enum Graph {
    Complete,
    /// `order[p]` is the node at ring position `p`; `position[u]` is node `u`'s position.
    Ring {
        order: Vec<u32>,
        position: Vec<u32>,
        half: u32,
    },
}

impl RoundConfig {
    /// Validates a configuration. `threshold: None` takes [`default_threshold`] of the
    /// neighbourhood size (`n` for the complete graph, `neighbours + 1` for the sparse one).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first thing wrong.
    pub fn new(
        tag: RoundTag,
        parties: Vec<Party>,
        vector_len: usize,
        spec: GraphSpec,
        threshold: Option<usize>,
    ) -> Result<Self, ConfigError> {
        let n = parties.len();
        if !(2..=MAX_PARTIES).contains(&n) {
            return Err(ConfigError::PartyCount(n));
        }
        let mut names: Vec<(&str, [u8; 32], usize)> = parties
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), p.verifying_key.to_bytes(), i))
            .collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ConfigError::DuplicateParty(index(w[1].2)));
        }
        names.sort_unstable_by_key(|e| e.1);
        if let Some(w) = names.windows(2).find(|w| w[0].1 == w[1].1) {
            return Err(ConfigError::DuplicateParty(index(w[1].2)));
        }
        if !(1..=MAX_VECTOR_LEN).contains(&vector_len) {
            return Err(ConfigError::VectorLen(vector_len));
        }
        let graph = match spec {
            GraphSpec::Complete => Graph::Complete,
            GraphSpec::Sparse { neighbours, seed } => {
                if neighbours < 2 || neighbours % 2 == 1 || neighbours as usize >= n {
                    return Err(ConfigError::Neighbours(neighbours));
                }
                ring(tag, n, neighbours / 2, &seed)?
            }
        };
        let size = match spec {
            GraphSpec::Complete => n,
            GraphSpec::Sparse { neighbours, .. } => neighbours as usize + 1,
        };
        let threshold = threshold.unwrap_or_else(|| default_threshold(size));
        if threshold < 2 || threshold > size || 2 * threshold <= size {
            return Err(ConfigError::Threshold { threshold, size });
        }
        let mut config = Self {
            tag,
            parties,
            vector_len,
            threshold,
            graph,
            spec,
            min_survivors: 0,
            release: [0; 32],
            digest: [0; 32],
        };
        config.digest = config.compute_digest();
        Ok(config)
    }

    /// Binds the round to the release it serves: `min_survivors` (the release's `n_min`) and
    /// the release's canonical bytes (`JobAnnounce::release_binding`: query, noise, `n_min`,
    /// colluders, a fresh nonce), both covered by [`RoundConfig::digest`], which every node
    /// signs into its key advertisement. The coordinator machine then aborts before any unmask
    /// request when fewer than `min_survivors` sent their input, and nodes refuse unmask
    /// requests that list fewer (review finding C2).
    ///
    /// `colluders` (the release's `c`) must stay below the threshold (review finding M2): an
    /// honest node's self-mask seed and mask key are shared `t`-out-of-neighbourhood, so `c`
    /// colluders hold `c` shares of each, and only with `c >= t` could they and an
    /// honest-but-curious coordinator rebuild both and isolate the node's vector.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MinSurvivors`] when `min_survivors` is below 2 or above `n`, or when
    /// the graph is sparse and its threshold below `min_survivors` (a node sees only its
    /// neighbourhood, so only the threshold can guarantee the global count);
    /// [`ConfigError::Colluders`] when `colluders >= threshold`;
    /// [`ConfigError::SparseTooThin`] for a sparse graph below `2 ceil(log2 n)` neighbours.
    pub fn bind(
        mut self,
        min_survivors: usize,
        colluders: usize,
        release: &[u8],
    ) -> Result<Self, ConfigError> {
        let n = self.n();
        if colluders >= self.threshold {
            return Err(ConfigError::Colluders {
                colluders,
                threshold: self.threshold,
            });
        }
        let sparse = !self.is_complete();
        if min_survivors < 2 || min_survivors > n || (sparse && self.threshold < min_survivors) {
            return Err(ConfigError::MinSurvivors {
                min_survivors,
                n,
                threshold: self.threshold,
                graph: if sparse { "sparse" } else { "complete" },
            });
        }
        if let GraphSpec::Sparse { neighbours, .. } = self.spec {
            let need = min_sparse_neighbours(n);
            if neighbours < need {
                return Err(ConfigError::SparseTooThin {
                    n,
                    got: neighbours,
                    need,
                });
            }
        }
        self.min_survivors = min_survivors;
        self.release = digest(fedprof_crypto::label!("secagg/release"), &[release]);
        self.digest = self.compute_digest();
        Ok(self)
    }

    /// Fewest survivors whose sum may be unmasked (0: not bound to a release).
    #[must_use]
    pub fn min_survivors(&self) -> usize {
        self.min_survivors
    }

    /// The round.
    #[must_use]
    pub fn tag(&self) -> RoundTag {
        self.tag
    }

    /// Number of parties `n`; indices run `0..n`.
    #[must_use]
    pub fn n(&self) -> usize {
        self.parties.len()
    }

    /// The party with index `i`.
    #[must_use]
    pub fn party(&self, i: u32) -> Option<&Party> {
        self.parties.get(i as usize)
    }

    /// Elements in every input vector.
    #[must_use]
    pub fn vector_len(&self) -> usize {
        self.vector_len
    }

    /// Shares needed to rebuild a secret, and survivors needed in every neighbourhood.
    #[must_use]
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The graph as configured.
    #[must_use]
    pub fn graph(&self) -> GraphSpec {
        self.spec
    }

    /// Whether every node is every other node's neighbour.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        matches!(self.graph, Graph::Complete)
    }

    /// SHA-256 of everything above (label `secagg/config`), signed into advertisements.
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Node `u`'s neighbourhood, `u` itself included, sorted. Empty for an unknown `u`.
    #[must_use]
    pub fn neighbourhood(&self, u: u32) -> Vec<u32> {
        let n = self.n();
        if u as usize >= n {
            return Vec::new();
        }
        match &self.graph {
            Graph::Complete => (0..n).map(index).collect(),
            Graph::Ring {
                order,
                position,
                half,
            } => {
                let p = position[u as usize] as usize;
                let half = *half as usize;
                let mut out: Vec<u32> = (0..=2 * half)
                    .map(|j| order[(p + n + j - half) % n])
                    .collect();
                out.sort_unstable();
                out.dedup();
                out
            }
        }
    }

    /// Whether `u` and `v` are neighbours (every node is its own).
    #[must_use]
    pub fn are_neighbours(&self, u: u32, v: u32) -> bool {
        let n = self.n();
        if u as usize >= n || v as usize >= n {
            return false;
        }
        match &self.graph {
            Graph::Complete => true,
            Graph::Ring { position, half, .. } => {
                let (pu, pv) = (position[u as usize] as usize, position[v as usize] as usize);
                let d = pu.abs_diff(pv);
                d.min(n - d) <= *half as usize
            }
        }
    }

    fn compute_digest(&self) -> [u8; 32] {
        let mut parts: Vec<Vec<u8>> = vec![
            self.tag.job.to_be_bytes().to_vec(),
            self.tag.round.to_be_bytes().to_vec(),
            (self.n() as u64).to_be_bytes().to_vec(),
            (self.vector_len as u64).to_be_bytes().to_vec(),
            (self.threshold as u64).to_be_bytes().to_vec(),
            (self.min_survivors as u64).to_be_bytes().to_vec(),
            self.release.to_vec(),
        ];
        match self.spec {
            GraphSpec::Complete => parts.push(vec![0]),
            GraphSpec::Sparse { neighbours, seed } => {
                parts.push(vec![1]);
                parts.push(neighbours.to_be_bytes().to_vec());
                parts.push(seed.to_vec());
            }
        }
        for p in &self.parties {
            parts.push((p.name.len() as u64).to_be_bytes().to_vec());
            parts.push(p.name.as_bytes().to_vec());
            parts.push(p.verifying_key.to_bytes().to_vec());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        digest(fedprof_crypto::label!("secagg/config"), &refs)
    }
}

/// `2 ceil(log2 n)`, even: the fewest neighbours a node accepts in a sparse graph over `n`
/// parties (Bell et al. 2020 take `O(log n)`; below it, dropouts can cut the ring).
#[must_use]
pub fn min_sparse_neighbours(n: usize) -> u32 {
    let log = usize::BITS - n.saturating_sub(1).leading_zeros();
    2 * log
}

/// `max(2, ceil(2 * size / 3))`: the default threshold for a neighbourhood of `size` nodes.
#[must_use]
pub fn default_threshold(size: usize) -> usize {
    (2 * size).div_ceil(3).max(2)
}

/// An index known to be below [`MAX_PARTIES`].
pub(crate) fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The ring over a Fisher-Yates permutation drawn from the PRG keyed by
/// `HKDF(seed, "secagg/graph", tag)`. The modulo bias of `u64 % (i + 1)` is below
/// `n / 2^64`, far below anything observable.
///
/// # Errors
///
/// [`ConfigError::PartyCount`] when `n` is past the PRG's stream limit (callers check
/// `n <= MAX_PARTIES`, far below it): never a graph from an all-zero stream (review L5).
fn ring(tag: RoundTag, n: usize, half: u32, seed: &[u8; 32]) -> Result<Graph, ConfigError> {
    let mut order: Vec<u32> = (0..n).map(index).collect();
    let mut random = vec![0u64; n];
    let key = fedprof_crypto::derive_key(
        seed,
        fedprof_crypto::label!("secagg/graph"),
        &[&tag.job.to_be_bytes(), &tag.round.to_be_bytes()],
    );
    fedprof_crypto::expand_into(&key, fedprof_crypto::MaskOp::Add, &mut random)
        .map_err(|_| ConfigError::PartyCount(n))?;
    for i in (1..n).rev() {
        let j = (random[i] % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut position = vec![0u32; n];
    for (p, &u) in order.iter().enumerate() {
        position[u as usize] = index(p);
    }
    Ok(Graph::Ring {
        order,
        position,
        half,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
