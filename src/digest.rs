//! Hashing while reading: the SHA-256 of every input for the summary, taken on the bytes the
//! parser reads so that each file is read once; and keyed 128-bit fingerprints of ledger codes
//! and request ids, so that a million of them fit in little memory.

use sha2::{Digest, Sha256};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read};

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Reads whatever the parser left unread, then returns the hex digest of the whole stream.
    pub fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// 128-bit fingerprints under two random SipHash keys chosen per run: two distinct strings
/// collide with probability about 2⁻¹²⁸, and nobody can craft a collision without the keys.
pub struct Fingerprinter {
    a: RandomState,
    b: RandomState,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Fingerprinter {
            a: RandomState::new(),
            b: RandomState::new(),
        }
    }
}

impl Fingerprinter {
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
