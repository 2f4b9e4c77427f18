//! Lookups over the loaded tables: instance id → its inventory rows, and request id → the first
//! batch row that carries it. The hash tables hold a row number and a hash tag (8 bytes a slot);
//! the text they stand for is read from the table when a tag matches.

use super::Table;
use crate::schema::col;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// How many ids a batched lookup takes at most.
pub const BATCH: usize = 256;

/// The upper half of a slot: 32 bits of its text's hash.
const TAG: u64 = 0xffff_ffff_0000_0000;

/// Distinct texts of one column, each by the first row that carries it.
///
/// Open addressing with linear probing over 64-bit slots: the upper half is a tag (32 bits of
/// the text's hash), the lower half the row plus one (0 marks an empty slot). The text itself
/// stays in the table and is read only to confirm a matching tag. A lookup in the table is a
/// chain of cache misses (the slot, the row's bounds, the row's text), so lookups are made a
/// batch at a time, one step of the chain for the whole batch before the next: the misses of a
/// step overlap instead of each waiting for the one before (`get_batch`).
struct FirstRows<'t, S = foldhash::fast::RandomState> {
    table: &'t Table,
    col: usize,
    hasher: S,
    slots: Vec<u64>,
    mask: usize,
}

impl<'t, S: BuildHasher> FirstRows<'t, S> {
    /// Indexes every non-empty text of `col`, in row order; `repeat(row, first)` is told of
    /// each row whose text an earlier row, `first`, carried.
    fn build(table: &'t Table, col: usize, hasher: S, mut repeat: impl FnMut(u32, u32)) -> Self {
        let rows = table.len();
        assert!(
            rows < u32::MAX as usize,
            "a table has fewer than 2^32 - 1 rows"
        );
        // At most three quarters full: probes stay short.
        let size = (rows + rows / 3 + 1).next_power_of_two().max(8);
        let mut me = FirstRows {
            table,
            col,
            hasher,
            // Probed before it is written: see `filled`.
            slots: super::filled(size, 0),
            mask: size - 1,
        };
        let mut hashes = [0u64; BATCH];
        for start in (0..rows).step_by(BATCH) {
            let batch = start..(start + BATCH).min(rows);
            for (h, row) in hashes.iter_mut().zip(batch.clone()) {
                *h = me.hash(table.text(col, row));
            }
            let n = batch.len();
            me.fetch_homes(&hashes[..n]);
            for (h, row) in hashes.iter().zip(batch) {
                let row = row as u32;
                let first = me.first_of(row, *h);
                if first != row {
                    repeat(row, first);
                }
            }
        }
        me
    }

    fn hash(&self, text: &str) -> u64 {
        self.hasher.hash_one(text)
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    fn text(&self, row: u32) -> &'t str {
        self.table.text(self.col, row as usize)
    }

    /// Prefetches the home slot of each hash, so that their cache misses overlap.
    fn fetch_homes(&self, hashes: &[u64]) {
        for h in hashes {
            super::prefetch(&self.slots[self.home(*h)]);
        }
    }

    /// The first row carrying `row`'s text (whose hash is `hash`); `row` itself when it is the
    /// first, and then it is recorded. An empty text is not indexed.
    fn first_of(&mut self, row: u32, hash: u64) -> u32 {
        let text = self.text(row);
        if text.is_empty() {
            return row;
        }
        let mut at = self.home(hash);
        loop {
            match self.probe(hash, at) {
                Ok((other, _)) if self.text(other) == text => return other,
                Ok((_, found)) => at = (found + 1) & self.mask,
                Err(empty) => {
                    self.slots[empty] = hash & TAG | (u64::from(row) + 1);
                    return row;
                }
            }
        }
    }

    /// From slot `at` on: the first slot whose tag is `hash`'s, as (its row, where it is), or
    /// `Err` with the first empty slot.
    fn probe(&self, hash: u64, mut at: usize) -> Result<(u32, usize), usize> {
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return Err(at);
            }
            if slot & TAG == hash & TAG {
                return Ok((slot as u32 - 1, at));
            }
            at = (at + 1) & self.mask;
        }
    }

    /// The row carrying `text`, probing from slot `at` on.
    fn find_from(&self, text: &str, hash: u64, mut at: usize) -> Option<u32> {
        while let Ok((row, found)) = self.probe(hash, at) {
            if self.text(row) == text {
                return Some(row);
            }
            at = (found + 1) & self.mask;
        }
        None
    }

    fn get(&self, text: &str) -> Option<u32> {
        let hash = self.hash(text);
        self.find_from(text, hash, self.home(hash))
    }

    /// `out[i] = get(texts[i])` for a batch of at most `BATCH` texts, a step of every lookup at a
    /// time: the home slots, then the rows whose tags match (their bounds), then their texts,
    /// then the comparisons. A tag that matched another text (rare) probes on alone.
    fn get_batch(&self, texts: &[&str], out: &mut [Option<u32>]) {
        let n = texts.len();
        assert!(
            n <= BATCH && out.len() >= n,
            "a batch holds at most BATCH texts"
        );
        let mut hashes = [0u64; BATCH];
        for (h, text) in hashes.iter_mut().zip(texts) {
            *h = self.hash(text);
        }
        self.fetch_homes(&hashes[..n]);
        let mut found = [None; BATCH];
        for (f, h) in found.iter_mut().zip(&hashes[..n]) {
            *f = self.probe(*h, self.home(*h)).ok();
            if let Some((row, _)) = f {
                self.table.prefetch_row(*row as usize);
            }
        }
        for (row, _) in found[..n].iter().flatten() {
            self.table.prefetch_text(self.col, *row as usize);
        }
        for i in 0..n {
            out[i] = match found[i] {
                None => None,
                Some((row, _)) if self.text(row) == texts[i] => Some(row),
                Some((_, at)) => self.find_from(texts[i], hashes[i], (at + 1) & self.mask),
            };
        }
    }
}

/// Instance id → key (the id's first inventory row), and key → every row that carries the id.
pub struct InstanceIndex<'t> {
    first: FirstRows<'t>,
    /// Rows after the first, for the rare ids that appear more than once.
    more: HashMap<u32, Vec<u32>>,
    /// The keys of the inventory ids not written as the API writes ids (with upper case, or
    /// surrounding spaces), by their `loose` form; almost always empty.
    odd: HashMap<String, Vec<u32>>,
    /// The keys of the ids the inventory also writes in another spelling (`loose_rows`).
    spelt: std::collections::HashSet<u32>,
}

/// An id as the API writes ids: without surrounding spaces, in lower case. Beyond ASCII, two
/// ids are one when Unicode's compatibility caseless match (its definition D146) makes them one:
/// case folded (`I-Ü1` is `i-ü1`, `SS` is `ß`, `Σ` is `ς` and `σ`, the Kelvin sign is `k`), and
/// composed and decomposed letters (`é` as one code point or as `e` and an accent), full-width
/// forms (`ｉ-１`) and other compatibility spellings taken as the letters they stand for; so
/// that a limit never fails open on a spelling outside ASCII either. Characters that a text
/// shows as nothing (`ignorable`: zero-width spaces and joiners, the soft hyphen, a byte-order
/// mark) are dropped. The key is composed again (NFC), so that an id already written so is its
/// own key.
pub fn loose(id: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    if id.is_ascii() {
        return id.trim().to_ascii_lowercase();
    }
    let shown: String = id.chars().filter(|c| !ignorable(*c)).collect();
    let fold = |s: String| unicase::UniCase::unicode(s).to_folded_case();
    let once = fold(shown.trim().nfd().collect());
    let twice = fold(once.nfkd().collect());
    // Compatibility forms may stand for an ignorable character (the half-width Hangul filler).
    twice.nfkd().nfc().filter(|c| !ignorable(*c)).collect()
}

/// Unicode's default-ignorable code points (the `Default_Ignorable_Code_Point` property of its
/// `DerivedCoreProperties.txt`, Unicode 15): the soft hyphen, zero-width spaces, joiners and
/// non-joiners, direction marks and embeddings, the word joiner and invisible operators, the
/// byte-order mark, variation selectors, Hangul fillers, tags and the unassigned code points
/// reserved for such use. A text shows none of them, so an id written with one is read as the
/// id without it.
pub fn ignorable(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Whether an id is already in its `loose` form.
pub(super) fn is_loose(id: &str) -> bool {
    if id.is_ascii() {
        super::table::trim(id).len() == id.len() && !id.bytes().any(|b| b.is_ascii_uppercase())
    } else {
        loose(id) == id
    }
}

impl<'t> InstanceIndex<'t> {
    pub fn new(instances: &'t Table) -> Self {
        let mut more: HashMap<u32, Vec<u32>> = HashMap::new();
        let first = FirstRows::build(
            instances,
            col::INSTANCE_ID,
            Default::default(),
            |row, key| more.entry(key).or_default().push(row),
        );
        let id = |row: usize| instances.text(col::INSTANCE_ID, row);
        let mut odd: HashMap<String, Vec<u32>> = HashMap::new();
        for row in instances.odd_id_rows().iter().map(|r| *r as usize) {
            // A repeated id's key is its first row's, listed once.
            if first.get(id(row)) == Some(row as u32) {
                odd.entry(loose(id(row))).or_default().push(row as u32);
            }
        }
        // Keys whose loose form more than one key has: one instance in several spellings.
        let mut spelt = std::collections::HashSet::new();
        for (loose_id, keys) in &odd {
            let mut group: Vec<u32> = first
                .get(loose_id)
                .into_iter()
                .chain(keys.iter().copied())
                .collect();
            group.sort_unstable();
            group.dedup();
            if group.len() > 1 {
                spelt.extend(group);
            }
        }
        InstanceIndex {
            first,
            more,
            odd,
            spelt,
        }
    }

    /// Whether some inventory id is written with upper case or surrounding spaces.
    pub fn has_odd_ids(&self) -> bool {
        !self.odd.is_empty()
    }

    /// The keys of the inventory ids that `loose_id` (an id in its `loose` form) stands for
    /// once spelt loosely on either side: the id itself, and the inventory ids written with
    /// upper case, spaces or another Unicode spelling.
    pub fn loose_keys(&self, loose_id: &str) -> Vec<u32> {
        let mut keys: Vec<u32> = self.key(loose_id).into_iter().collect();
        if let Some(odd) = self.odd.get(loose_id) {
            keys.extend(odd);
        }
        keys
    }

    /// The number of keys may reach this (keys are row numbers).
    pub fn key_space(&self) -> usize {
        self.first.table.len()
    }

    pub fn key(&self, instance_id: &str) -> Option<u32> {
        if instance_id.is_empty() {
            return None;
        }
        self.first.get(instance_id)
    }

    /// `out[i] = key(ids[i])` for a batch of at most `BATCH` ids, their lookups overlapped.
    pub fn keys(&self, ids: &[&str], out: &mut [Option<u32>]) {
        self.first.get_batch(ids, out);
    }

    fn others(&self, key: u32) -> &[u32] {
        if self.more.is_empty() {
            return &[];
        }
        self.more.get(&key).map(Vec::as_slice).unwrap_or_default()
    }

    /// The inventory rows of a key, in file order.
    pub fn rows(&self, key: u32) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(key)
            .chain(self.others(key).iter().copied())
            .map(|r| r as usize)
    }

    pub fn row_count(&self, key: u32) -> usize {
        1 + self.others(key).len()
    }

    /// Whether the inventory also writes `key`'s id in another spelling (`loose_rows`).
    pub fn spelt_otherwise(&self, key: u32) -> bool {
        // Asked of every request: an empty set (almost always) answers without hashing.
        !self.spelt.is_empty() && self.spelt.contains(&key)
    }

    /// Every inventory row whose id is the same as `key`'s once spelt loosely (`loose`): its
    /// own rows and those of its other spellings (case, spaces, Unicode's forms), ascending.
    /// Such rows hold each other's codes and share one quota: they are one instance, listed
    /// more than once. Only `key`'s rows when the inventory writes no id oddly.
    pub fn loose_rows(&self, instances: &Table, key: u32) -> Vec<usize> {
        let mut rows: Vec<usize> = self.rows(key).collect();
        if self.has_odd_ids() {
            let id = loose(instances.text(col::INSTANCE_ID, key as usize));
            for k in self.loose_keys(&id) {
                let first = self.key(instances.text(col::INSTANCE_ID, k as usize));
                rows.extend(first.into_iter().flat_map(|f| self.rows(f)));
            }
            rows.sort_unstable();
            rows.dedup();
        }
        rows
    }
}

/// Request id → the first row carrying it (empty ids are not indexed), and the rows whose id
/// an earlier row already carried. Only the ledger scan looks ids up; what the later stages
/// need is kept by `into_repeats`, and the lookup table is freed.
pub struct RequestIndex<'t> {
    first: FirstRows<'t>,
    repeats: Repeats,
}

/// Row → the first row with the same request id, for the rows whose id an earlier row carried.
pub struct Repeats(HashMap<u32, u32>);

impl<'t> RequestIndex<'t> {
    pub fn new(requests: &'t Table) -> Self {
        let mut repeats = HashMap::new();
        let first = FirstRows::build(requests, col::REQUEST_ID, Default::default(), |row, at| {
            repeats.insert(row, at);
        });
        RequestIndex {
            first,
            repeats: Repeats(repeats),
        }
    }

    /// The first row carrying `request_id`.
    pub fn first_row(&self, request_id: &str) -> Option<u32> {
        if request_id.is_empty() {
            return None;
        }
        self.first.get(request_id)
    }

    /// `out[i] = first_row(ids[i])` for a batch of at most `BATCH` ids, their lookups overlapped.
    pub fn first_rows(&self, ids: &[&str], out: &mut [Option<u32>]) {
        self.first.get_batch(ids, out);
    }

    /// The repeated rows, without the lookup table.
    pub fn into_repeats(self) -> Repeats {
        self.repeats
    }
}

impl Repeats {
    /// For a row whose id an earlier row carried, that earlier row.
    pub fn of(&self, row: usize) -> Option<usize> {
        if self.0.is_empty() {
            return None;
        }
        self.0.get(&(row as u32)).map(|r| *r as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    /// Ids that differ only in case (Unicode's case folding beyond ASCII) or surrounding spaces
    /// (Unicode's too) have one loose form; others keep theirs apart. The ASCII shortcut of
    /// `is_loose` agrees with `loose`.
    #[test]
    fn spellings_of_one_id_have_one_loose_form() {
        let same = [
            ("I-BP1", "i-bp1"),
            ("i-bp1\t", " i-bp1"),
            ("I-Ü1 ", "i-ü1"),
            ("i-\u{212A}", "i-k"),
            ("i-1\u{a0}", "i-1"),
            ("I-SS3", "i-ß3"),
            ("I-ẞ3", "i-ss3"),
            ("I-ΑΣ1", "i-ασ1"),
            ("I-Σ2", "i-ς2"),
            // Composed and decomposed letters, and compatibility forms.
            ("i-\u{e9}", "i-e\u{301}"),
            ("I-E\u{301}", "i-\u{e9}"),
            ("\u{ff49}-\u{ff11}", "i-1"),
            ("i-\u{fb01}", "i-fi"),
            // A capital sharp s with an accent: `ss` and the accent.
            ("i-\u{1e9e}\u{301}", "i-ss\u{301}"),
        ];
        for (a, b) in same {
            assert_eq!(loose(a), loose(b), "{a:?} and {b:?}");
        }
        let apart = [
            ("i-bp1", "i-bp2"),
            ("i-ü1", "i-u1"),
            ("i-ß", "i-s"),
            // A non-breaking hyphen is a hyphen of its own, not `-`.
            ("i\u{2011}1", "i-1"),
        ];
        for (a, b) in apart {
            assert_ne!(loose(a), loose(b), "{a:?} and {b:?}");
        }
        for id in ["i-bp1", "i-ü1", "i-ss3", "i-k", "", "i-\u{e9}"] {
            assert!(is_loose(id), "{id:?}");
        }
        for id in [
            "I-bp1",
            " i-bp1",
            "i-bp1\t",
            "I-Ü1",
            "i-\u{212A}",
            "i-1\u{a0}",
            "i-ß3",
            "i-e\u{301}",
            "\u{ff49}-1",
        ] {
            assert!(!is_loose(id), "{id:?}");
        }
    }

    /// A request table with one row per id ("" for a row without one).
    fn requests(ids: &[String]) -> Table {
        let mut text = String::from("request_id,account_id,instance_id,requested_at\n");
        for id in ids {
            text.push_str(&format!("{id},1,i-1,2026-11-01T00:00Z\n"));
        }
        super::super::table::parse(text.as_bytes(), "r.csv", &Schema::requests()).unwrap()
    }

    /// Gives every text the same hash: every tag matches, so only the texts tell ids apart.
    struct Colliding;

    impl BuildHasher for Colliding {
        type Hasher = Constant;
        fn build_hasher(&self) -> Constant {
            Constant
        }
    }

    struct Constant;

    impl std::hash::Hasher for Constant {
        fn finish(&self) -> u64 {
            0x1234_5678_0000_0007
        }
        fn write(&mut self, _: &[u8]) {}
    }

    /// Builds an index over `n` random ids (repeats and empty ones among them) and holds its
    /// repeats, batched lookups and single lookups to a `HashMap` of first rows.
    fn agrees_with_a_map<S: BuildHasher>(hasher: S, n: usize, seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let ids: Vec<String> = (0..n)
            .map(|_| match rng.u8(..10) {
                0 => String::new(),
                _ => format!("R-{}", rng.usize(..n)),
            })
            .collect();
        let table = requests(&ids);
        let mut repeats = Vec::new();
        let index = FirstRows::build(&table, col::REQUEST_ID, hasher, |row, first| {
            repeats.push((row, first))
        });
        let mut first: HashMap<&str, u32> = HashMap::new();
        let mut want_repeats = Vec::new();
        for (row, id) in ids.iter().enumerate().filter(|(_, id)| !id.is_empty()) {
            let at = *first.entry(id.as_str()).or_insert(row as u32);
            if at != row as u32 {
                want_repeats.push((row as u32, at));
            }
        }
        assert!(!want_repeats.is_empty() && want_repeats.len() < n / 2);
        assert_eq!(repeats, want_repeats);
        let absent = (0..n).map(|i| format!("R-{i}x"));
        let probes: Vec<String> = ids.iter().cloned().chain(absent).collect();
        for batch in probes.chunks(BATCH) {
            let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
            let mut got = [Some(u32::MAX); BATCH];
            index.get_batch(&texts, &mut got);
            for (text, got) in texts.iter().zip(got) {
                let want = first.get(text).copied();
                assert_eq!(got, want, "batched lookup of {text:?}");
                assert_eq!(index.get(text), want, "lookup of {text:?}");
            }
        }
    }

    #[test]
    fn lookups_find_the_first_row_of_each_id() {
        agrees_with_a_map(foldhash::fast::RandomState::default(), 20_000, 1);
    }

    #[test]
    fn lookups_are_exact_when_every_hash_collides() {
        agrees_with_a_map(Colliding, 700, 2);
    }
}
