//! Fingerprints of the ledger's codes and request ids (keyed hashes, `digest`), gathered in
//! buckets as the ledger's pieces come in and sorted there: what tells a new code or a repeated
//! request id from those the ledger holds.

use rayon::prelude::*;

/// Fingerprints kept in 256 buckets by their top byte, each bucket sorted: gathered so as the
/// pieces of the ledger come in, they are sorted as 256 small sorts that each stay in cache,
/// where one sort of them all (16 MB at a million rows) went over memory at every level.
/// Fingerprints are keyed hashes, so distinct ones fill the buckets about equally; a value
/// that repeats (a ledger that will be refused) fills its bucket alone.
///
/// The buckets are regions of one buffer, so that freeing it hands its memory back at once: a
/// region's room that is never filled is never touched, and costs no memory. When a bucket
/// fills, every bucket is given room for twice what it holds: the buffer stays within about
/// twice the fingerprints held, however they fall.
#[derive(Default)]
pub struct Fingerprints {
    slots: Vec<u128>,
    /// Bucket `b` is `slots[starts[b]..][..lens[b]]`, with room up to `starts[b + 1]`.
    starts: Vec<usize>,
    /// How many fingerprints each bucket holds (both empty before the first room is made).
    lens: Vec<usize>,
}

/// How many buckets `Fingerprints` has: one per value of a fingerprint's top byte.
const BUCKETS: usize = 256;

fn bucket(fingerprint: u128) -> usize {
    (fingerprint >> 120) as usize
}

impl Fingerprints {
    /// Buckets with room for about `expected` fingerprints in all.
    pub(super) fn with_room(expected: usize) -> Fingerprints {
        let mut me = Fingerprints::default();
        me.make_room(&[expected / BUCKETS + expected / BUCKETS / 8 + 16; BUCKETS]);
        me
    }

    /// Moves the buckets into regions of `room[b]` fingerprints each (at least what each
    /// holds).
    fn make_room(&mut self, room: &[usize; BUCKETS]) {
        self.lens.resize(BUCKETS, 0);
        let mut starts = Vec::with_capacity(BUCKETS + 1);
        let mut total = 0;
        for (r, len) in room.iter().zip(&self.lens) {
            starts.push(total);
            total += (*r).max(*len);
        }
        starts.push(total);
        // Zeroed memory this large arrives untouched: only the pages written cost memory.
        let mut slots = vec![0u128; total];
        for (b, len) in self.lens.iter().enumerate().filter(|(_, len)| **len > 0) {
            slots[starts[b]..][..*len].copy_from_slice(&self.slots[self.starts[b]..][..*len]);
        }
        (self.slots, self.starts) = (slots, starts);
    }

    pub(super) fn extend(&mut self, fingerprints: &[u128]) {
        for fp in fingerprints {
            let b = bucket(*fp);
            if self.starts.is_empty() || self.starts[b] + self.lens[b] == self.starts[b + 1] {
                let mut room = [16; BUCKETS];
                for (r, len) in room.iter_mut().zip(&self.lens) {
                    *r += 2 * len;
                }
                self.make_room(&room);
            }
            self.slots[self.starts[b] + self.lens[b]] = *fp;
            self.lens[b] += 1;
        }
    }

    /// Sorts every bucket (in parallel) and returns the fingerprints that repeat, ascending,
    /// each once.
    pub(super) fn sort_and_find_repeats(&mut self) -> Vec<u128> {
        let mut buckets = Vec::with_capacity(self.lens.len());
        let mut rest = self.slots.as_mut_slice();
        for (b, len) in self.lens.iter().enumerate() {
            let (region, after) =
                std::mem::take(&mut rest).split_at_mut(self.starts[b + 1] - self.starts[b]);
            buckets.push(&mut region[..*len]);
            rest = after;
        }
        buckets
            .into_par_iter()
            .map(|b| {
                b.sort_unstable();
                let mut repeats: Vec<u128> = Vec::new();
                for pair in b.windows(2) {
                    if pair[0] == pair[1] && repeats.last() != Some(&pair[0]) {
                        repeats.push(pair[0]);
                    }
                }
                repeats
            })
            .flatten_iter()
            .collect()
    }

    /// Bucket `b`'s fingerprints (sorted, once `sort_and_find_repeats` has run).
    fn sorted_bucket(&self, b: usize) -> &[u128] {
        match self.lens.get(b) {
            Some(len) => &self.slots[self.starts[b]..][..*len],
            None => &[],
        }
    }

    /// Every fingerprint, ascending (once sorted): the buckets in order.
    fn ascending(&self) -> impl Iterator<Item = u128> + '_ {
        (0..BUCKETS).flat_map(|b| self.sorted_bucket(b).iter().copied())
    }
}

/// The fingerprints of the ledger's codes, sorted.
#[derive(Default)]
pub struct Codes(pub(super) Fingerprints);

impl Codes {
    /// Whether a code's identity key has this fingerprint.
    pub fn contains(&self, fingerprint: u128) -> bool {
        (self.0.sorted_bucket(bucket(fingerprint)))
            .binary_search(&fingerprint)
            .is_ok()
    }

    /// The fingerprints, ascending.
    pub fn fingerprints(&self) -> impl Iterator<Item = u128> + '_ {
        self.0.ascending()
    }

    /// For items in ascending order of `fingerprint`, whether each is a code's: `contains` for
    /// each, found by walking forward through the codes of each bucket (galloping, then a
    /// binary search within the step) rather than by a binary search of them all, whose first
    /// steps miss the cache for every item when the codes are many. Runs of items are walked
    /// in parallel.
    pub fn contains_sorted<T: Sync>(
        &self,
        items: &[T],
        fingerprint: impl Fn(&T) -> u128 + Sync,
    ) -> Vec<bool> {
        const RUN: usize = 4096;
        let fingerprint = &fingerprint;
        items
            .par_chunks(RUN)
            .flat_map_iter(|run| {
                // Where the walk is: a bucket, and how far into it.
                let (mut walked, mut at) = (usize::MAX, 0);
                run.iter().map(move |item| {
                    let fp = fingerprint(item);
                    if bucket(fp) != walked {
                        (walked, at) = (bucket(fp), 0);
                    }
                    let codes = self.0.sorted_bucket(walked);
                    let rest = &codes[at..];
                    let mut bound = 1;
                    while bound < rest.len() && rest[bound - 1] < fp {
                        bound *= 2;
                    }
                    let bound = bound.min(rest.len());
                    at += rest[..bound].partition_point(|s| *s < fp);
                    codes.get(at) == Some(&fp)
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fingerprint of few distinct values, spread over every bucket: `v`'s low byte is the
    /// top byte.
    fn spread(v: u32) -> u128 {
        u128::from(v).rotate_right(8)
    }

    #[test]
    fn bucketed_fingerprints_sort_and_find_repeats_as_one_sort_does() {
        let mut rng = fastrand::Rng::with_seed(12);
        for n in [0, 1, 2, 255, 256, 5_000, 40_000] {
            let space = (n as u32 / 2).max(1);
            let all: Vec<u128> = (0..n).map(|_| spread(rng.u32(..space))).collect();
            let mut fps = Fingerprints::with_room(n / 3);
            for part in all.chunks(777) {
                fps.extend(part);
            }
            let repeats = fps.sort_and_find_repeats();
            let mut sorted = all.clone();
            sorted.sort_unstable();
            let mut want: Vec<u128> = sorted
                .windows(2)
                .filter(|p| p[0] == p[1])
                .map(|p| p[0])
                .collect();
            want.dedup();
            assert_eq!(repeats, want, "{n} fingerprints");
            assert!(n < 5_000 || !repeats.is_empty());
            let flat: Vec<u128> = fps.ascending().collect();
            assert_eq!(
                flat, sorted,
                "the buckets, in order, are every fingerprint sorted"
            );
        }
    }

    #[test]
    fn a_value_that_repeats_grows_its_bucket_alone() {
        // 100,000 rows of one code and a few others: the buffer stays within about twice the
        // fingerprints held (room for each bucket's own), not 256 buckets as large as the
        // fullest.
        let n = 100_000;
        let one = spread(7);
        let mut fps = Fingerprints::with_room(0);
        for _ in 0..n / 1000 {
            fps.extend(&[one; 1000]);
            fps.extend(&[spread(8), spread(300)]);
        }
        let held = n + 2 * (n / 1000);
        assert!(
            fps.slots.len() <= 2 * held + 32 * BUCKETS,
            "{} slots for {held} fingerprints",
            fps.slots.len()
        );
        let mut want = vec![one, spread(8), spread(300)];
        want.sort_unstable();
        assert_eq!(fps.sort_and_find_repeats(), want);
        assert_eq!(fps.sorted_bucket(bucket(one)).len(), n);
    }

    #[test]
    fn contains_sorted_answers_as_contains_does() {
        let mut rng = fastrand::Rng::with_seed(11);
        for (codes, items) in [
            (0, 5),
            (5, 0),
            (1, 1),
            (300, 10),
            (10, 20_000),
            (50_000, 9_000),
        ] {
            // Few distinct fingerprints, so that items often hit codes; some items repeat.
            let space = 4 * (codes as u32).max(1);
            let seen: Vec<u128> = (0..codes).map(|_| spread(rng.u32(..space))).collect();
            let mut fps = Fingerprints::default();
            fps.extend(&seen);
            fps.sort_and_find_repeats();
            let codes = Codes(fps);
            let mut items: Vec<u128> = (0..items).map(|_| spread(rng.u32(..space))).collect();
            items.sort_unstable();
            let want: Vec<bool> = items.iter().map(|fp| codes.contains(*fp)).collect();
            assert!(want.iter().any(|b| *b) || seen.is_empty() || items.len() < 20);
            assert_eq!(
                want.iter().filter(|b| **b).count(),
                items.iter().filter(|fp| seen.contains(fp)).count()
            );
            assert_eq!(codes.contains_sorted(&items, |fp| *fp), want);
        }
    }
}
