//! The verdicts of the rules that read only the instance, one per inventory row, packed into as
//! few bytes a row as they need: the evaluation reads one at random per request, so the smaller
//! the array, the fewer of those reads miss the cache.

use super::block::BLOCK;
use rayon::prelude::*;

/// What the rules that read only the instance say of one inventory row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The rules that refuse it: bit `i` for `policy.rules[i]`.
    pub refused: u64,
    /// Whether one of them could not be decided (a value was missing).
    pub unknown: bool,
}

/// How many rows one task decides and packs at a time (a whole number of blocks).
const ROWS_PER_TASK: usize = 4096;
const _: () = assert!(ROWS_PER_TASK.is_multiple_of(BLOCK));

/// Every inventory row's verdict. Bit `j` of a row's packed verdict says whether the `j`-th rule
/// that reads only the instance refuses the row, the bit after those whether one of them could
/// not be decided; a row takes the fewest bytes that hold those bits: one for up to seven such
/// rules (the shipped policies have six), nine for the most a policy can have.
pub struct Verdicts {
    bytes: Vec<u8>,
    /// Bytes a row.
    width: usize,
    /// For each byte of a packed verdict and each value of that byte, the policy rules its bits
    /// stand for, as a `Verdict::refused` mask.
    expand: Vec<[u64; 256]>,
    /// Where the bit that says `unknown` is.
    unknown_bit: usize,
}

impl Verdicts {
    /// The verdicts of `rows` rows, decided in parallel (on the current rayon pool) a block of
    /// at most `BLOCK` rows at a time by `verdict(first, out)`, which fills `out[i]` for row
    /// `first + i` with the rules that refuse it, as bit `j` for `rules[j]`, and whether one of
    /// them could not be decided. `rules` are the policy's indexes of the rules that read only
    /// the instance, in bit order.
    pub fn decide(
        rules: &[usize],
        rows: usize,
        verdict: impl Fn(usize, &mut [(u64, bool)]) + Sync,
    ) -> Verdicts {
        assert!(
            rules.len() <= 64 && rules.iter().all(|i| *i < 64),
            "a policy has at most 64 rules"
        );
        let unknown_bit = rules.len();
        let width = unknown_bit / 8 + 1;
        let mut expand = vec![[0u64; 256]; width];
        for (byte, table) in expand.iter_mut().enumerate() {
            for (value, mask) in table.iter_mut().enumerate() {
                for bit in (0..8).filter(|bit| value >> bit & 1 == 1) {
                    if let Some(i) = rules.get(byte * 8 + bit) {
                        *mask |= 1 << i;
                    }
                }
            }
        }
        // Each byte is written once, by the thread that decides its row; none is read before.
        let mut bytes = vec![0u8; rows * width];
        bytes
            .par_chunks_mut(ROWS_PER_TASK * width)
            .enumerate()
            .for_each(|(task, chunk)| {
                let mut out = [(0, false); BLOCK];
                for (b, block) in chunk.chunks_mut(BLOCK * width).enumerate() {
                    let out = &mut out[..block.len() / width];
                    verdict(task * ROWS_PER_TASK + b * BLOCK, out);
                    for (packed, (refused, unknown)) in block.chunks_exact_mut(width).zip(out) {
                        let word = u128::from(*refused) | u128::from(*unknown) << unknown_bit;
                        packed.copy_from_slice(&word.to_le_bytes()[..width]);
                    }
                }
            });
        Verdicts {
            bytes,
            width,
            expand,
            unknown_bit,
        }
    }

    /// Prefetches a row's verdict: a batch about to read many rows' verdicts calls this for
    /// each first, so that their cache misses overlap.
    pub fn prefetch(&self, row: usize) {
        if let Some(byte) = self.bytes.get(row * self.width) {
            crate::input::prefetch(byte);
        }
    }

    pub fn of(&self, row: usize) -> Verdict {
        let packed = &self.bytes[row * self.width..][..self.width];
        let refused = packed
            .iter()
            .zip(&self.expand)
            .fold(0, |mask, (byte, table)| mask | table[usize::from(*byte)]);
        let unknown = packed[self.unknown_bit / 8] >> (self.unknown_bit % 8) & 1 == 1;
        Verdict { refused, unknown }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For every number of per-instance rules a policy can have, spread among its 64 places at
    /// random, each row's verdict reads back as it was decided.
    #[test]
    fn verdicts_read_back_for_every_number_of_rules() {
        let mut rng = fastrand::Rng::with_seed(11);
        for count in 0..=64 {
            let mut places: Vec<usize> = (0..64).collect();
            rng.shuffle(&mut places);
            let mut rules = places[..count].to_vec();
            rules.sort_unstable();
            let rows = 2 * ROWS_PER_TASK + rng.usize(..100);
            let seed = rng.u64(..);
            // A verdict from the row alone, so that reading it back can be checked.
            let decided = |row: usize| {
                let mut rng = fastrand::Rng::with_seed(seed ^ row as u64);
                let bits = if count == 64 {
                    rng.u64(..)
                } else {
                    rng.u64(..) & ((1 << count) - 1)
                };
                (bits, rng.bool())
            };
            let verdicts = Verdicts::decide(&rules, rows, |first, out| {
                assert!(!out.is_empty() && out.len() <= BLOCK);
                for (i, v) in out.iter_mut().enumerate() {
                    *v = decided(first + i);
                }
            });
            assert_eq!(verdicts.width, count / 8 + 1, "{count} rules");
            for row in 0..rows {
                let (bits, unknown) = decided(row);
                let refused = rules
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| bits >> j & 1 == 1)
                    .fold(0u64, |mask, (_, i)| mask | 1 << i);
                assert_eq!(
                    verdicts.of(row),
                    Verdict { refused, unknown },
                    "{count} rules, row {row}"
                );
            }
        }
    }
}
