//! Hashes: the SHA-256 of every input for the summary, and keyed 128-bit fingerprints of ledger codes
//! and request ids, so that a million of them fit in little memory.

use foldhash::quality::RandomState;
use sha2::{Digest, Sha256};
use std::hash::BuildHasher;

/// The SHA-256 of some bytes, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// 128-bit fingerprints under two independent hash seeds chosen at random per run: two
/// distinct strings collide with probability about 2⁻¹²⁸, and a collision cannot be prepared in
/// advance without the seeds.
#[derive(Default)]
pub struct Fingerprinter {
    a: RandomState,
    b: RandomState,
}

impl Fingerprinter {
    #[inline]
    pub fn of(&self, s: &str) -> u128 {
        (u128::from(self.a.hash_one(s)) << 64) | u128::from(self.b.hash_one(s))
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
