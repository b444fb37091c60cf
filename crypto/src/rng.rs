//! The production CSPRNG: ChaCha20 seeded with 256 bits from the operating system.
//!
//! This is the one place the crate asks the OS for anything. Every other function takes its
//! randomness as an argument, so tests inject seeded generators and simulations are
//! reproducible.

use chacha20::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroize;

/// The operating system could not provide randomness.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RngError(String);

/// A ChaCha20 CSPRNG seeded from the operating system's random source.
///
/// # Errors
///
/// [`RngError`] if the OS source fails (never silently falls back to a weaker seed).
pub fn from_os() -> Result<ChaCha20Rng, RngError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| RngError(e.to_string()))?;
    let rng = ChaCha20Rng::from_seed(seed);
    seed.zeroize();
    Ok(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    #[test]
    fn two_generators_differ() {
        let (mut a, mut b) = (from_os().unwrap(), from_os().unwrap());
        assert_ne!(a.next_u64(), b.next_u64());
    }
}
