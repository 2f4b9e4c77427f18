//! ICP Filing service codes: generation from the OS CSPRNG, the check symbol, the canonical
//! written form and verification. Codes are bearer secrets: nothing here logs or prints one, and
//! error messages describe a code's fault without repeating the code.

/// Crockford's Base32 alphabet: no I, L, O or U.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The fewest random bits a code may carry.
pub const MIN_RANDOM_BITS: usize = 90;
/// GF(32) has 31 non-zero elements: with the check symbol, at most 31 positions have distinct
/// non-zero weights.
pub const MAX_SYMBOLS: usize = 31;

/// How codes are written: a prefix, the random symbols plus one check symbol, in groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    prefix: String,
    random_symbols: usize,
    group: usize,
}

impl Format {
    /// Validates a format: at least 90 random bits, a prefix of ASCII letters and digits.
    pub fn new(prefix: &str, random_symbols: usize, group: usize) -> Result<Format, String> {
        // The upper bound first: `random_symbols` may be any 64-bit number, and the bits it
        // gives are counted only once it is known to be small.
        if random_symbols >= MAX_SYMBOLS {
            return Err(format!(
                "at most {} random symbols fit the check symbol",
                MAX_SYMBOLS - 1
            ));
        }
        if random_symbols * 5 < MIN_RANDOM_BITS {
            return Err(format!(
                "a code needs at least {MIN_RANDOM_BITS} random bits: {random_symbols} symbols give {}",
                random_symbols * 5
            ));
        }
        if prefix.len() > 16 || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "prefix `{prefix}` must be at most 16 ASCII letters and digits"
            ));
        }
        if group == 0 {
            return Err("group must be at least 1".to_string());
        }
        Ok(Format {
            prefix: prefix.to_ascii_uppercase(),
            random_symbols,
            group,
        })
    }

    /// A fresh code from the operating system's CSPRNG, in canonical form.
    pub fn generate(&self) -> Result<String, String> {
        Ok(self.generate_many(1)?.get(0).to_string())
    }

    /// `n` fresh codes from one read of the operating system's CSPRNG, in canonical form
    /// (written out side by side: a run issues up to millions).
    pub fn generate_many(&self, n: usize) -> Result<CodeList, String> {
        use rayon::prelude::*;
        let mut bytes = vec![0u8; n * self.random_symbols];
        getrandom::fill(&mut bytes)
            .map_err(|e| format!("the operating system's random source failed: {e}"))?;
        let width = self.width();
        let mut text = vec![0u8; n * width];
        text.par_chunks_exact_mut(width)
            .zip(bytes.par_chunks_exact(self.random_symbols))
            .for_each(|(out, chunk)| {
                // INVARIANT: 256 is a multiple of 32, so the low five bits of a uniform byte
                // are uniform.
                let mut values = [0u8; MAX_SYMBOLS];
                let values = &mut values[..=chunk.len()];
                for (v, b) in values.iter_mut().zip(chunk) {
                    *v = b & 31;
                }
                values[chunk.len()] = check_value(&values[..chunk.len()]);
                self.render_into(values, out);
            });
        let text = String::from_utf8(text)
            .map_err(|_| "a rendered code is not ASCII (a bug in the renderer)".to_string())?;
        Ok(CodeList { text, width })
    }

    /// The length of every code of this format, in bytes: the prefix and its hyphen, the
    /// symbols, a hyphen between groups.
    fn width(&self) -> usize {
        let symbols = self.random_symbols + 1;
        let prefix = match self.prefix.len() {
            0 => 0,
            n => n + 1,
        };
        prefix + symbols + (symbols - 1) / self.group
    }

    /// Checks a code as a person may type it (any case, any hyphens, I and L read as 1, O as 0)
    /// and returns its canonical form.
    pub fn verify(&self, input: &str) -> Result<String, String> {
        let compact: String = input.chars().filter(|c| *c != '-').collect();
        let body = strip_prefix_ignore_case(&compact, &self.prefix)
            .ok_or_else(|| format!("does not start with the prefix `{}`", self.prefix))?;
        let values = body
            .chars()
            .map(decode_symbol)
            .collect::<Option<Vec<u8>>>()
            .ok_or("has a character outside Crockford's Base32 alphabet")?;
        let want = self.random_symbols + 1;
        if values.len() != want {
            return Err(format!(
                "has {} symbols after the prefix, expected {want}",
                values.len()
            ));
        }
        if weighted_sum(&values) != 0 {
            return Err("has a check symbol that does not match".to_string());
        }
        Ok(self.render(&values))
    }

    fn render(&self, values: &[u8]) -> String {
        let mut out = vec![0u8; self.width()];
        self.render_into(values, &mut out);
        // INVARIANT: the prefix is ASCII (`new`), and so are the alphabet and the hyphens.
        out.into_iter().map(char::from).collect()
    }

    /// Writes the code of `values` (the random symbols and the check symbol) into `out`, which
    /// is `width()` bytes long.
    fn render_into(&self, values: &[u8], out: &mut [u8]) {
        let mut at = 0;
        let mut put = |b: u8| {
            out[at] = b;
            at += 1;
        };
        if !self.prefix.is_empty() {
            self.prefix.bytes().for_each(&mut put);
            put(b'-');
        }
        for (i, v) in values.iter().enumerate() {
            if i > 0 && i % self.group == 0 {
                put(b'-');
            }
            put(ALPHABET[*v as usize]);
        }
    }
}

/// Codes of one format, all of one length, kept side by side in one buffer rather than as a
/// string each (a run issues up to millions; a `String` apiece is a heap block apiece).
#[derive(Debug, Default)]
pub struct CodeList {
    text: String,
    width: usize,
}

impl CodeList {
    pub fn len(&self) -> usize {
        self.text.len().checked_div(self.width).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The i-th code.
    pub fn get(&self, i: usize) -> &str {
        &self.text[i * self.width..(i + 1) * self.width]
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Puts `code`, a code of the same format, in the i-th place.
    pub fn set(&mut self, i: usize, code: &str) {
        assert_eq!(code.len(), self.width, "a code of another format");
        self.text
            .replace_range(i * self.width..(i + 1) * self.width, code);
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Crockford decoding of one symbol: case-insensitive, I and L read as 1, O as 0.
fn decode_symbol(c: char) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        'I' | 'L' => '1',
        'O' => '0',
        c => c,
    };
    ALPHABET
        .iter()
        .position(|a| *a as char == c)
        .map(|p| p as u8)
}

/// The key under which two codes are the same code: Crockford-normalised, without hyphens or
/// spaces, upper case. Codes written before this tool (any format) are keyed the same way.
pub fn identity_key(code: &str) -> String {
    let mut key = String::new();
    identity_key_into(code, &mut key);
    key
}

/// The longest code `identity_key_into` keys on the stack (codes are ~24 bytes).
const SHORT: usize = 64;

/// In `KEY_BYTES`, a byte left out of the key (never ASCII, so never a mapped byte).
const DROPPED: u8 = 0xFF;

/// Per ASCII byte, what it is in an identity key, or `DROPPED` (hyphen, space).
const KEY_BYTES: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        table[b] = match (b as u8).to_ascii_uppercase() {
            b'-' | b' ' => DROPPED,
            b'I' | b'L' => b'1',
            b'O' => b'0',
            c => c,
        };
        b += 1;
    }
    table
};

/// `identity_key` into a buffer the caller reuses (cleared first).
pub fn identity_key_into(code: &str, key: &mut String) {
    key.clear();
    if let Some(grouped) = grouped_key(code.as_bytes()) {
        key.push_str(std::str::from_utf8(&grouped).expect("ASCII in, ASCII out"));
        return;
    }
    if code.is_ascii() && code.len() <= SHORT {
        // The common case, byte by byte through a table into a buffer on the stack (every
        // byte is written; a dropped one is overwritten by the next): the same mapping as
        // below, without decoding chars or a branch per byte.
        let mut buf = [0u8; SHORT];
        let mut n = 0;
        for b in code.bytes() {
            let mapped = KEY_BYTES[usize::from(b)];
            buf[n] = mapped;
            n += usize::from(mapped != DROPPED);
        }
        key.push_str(std::str::from_utf8(&buf[..n]).expect("ASCII in, ASCII out"));
        return;
    }
    // Beyond ASCII, compatibility forms are read as what they stand for (full-width letters
    // and digits: `ＡＢ` is `AB`), and Unicode's other hyphens, dashes and spaces, and the
    // characters a text shows as nothing, are left out as the ASCII hyphen and space are.
    use unicode_normalization::UnicodeNormalization;
    key.extend(
        code.nfkc()
            .filter(|c| !separator(*c))
            .map(|c| match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                c => c,
            }),
    );
}

/// What an identity key leaves out: hyphens, dashes and spaces (ASCII's and Unicode's), and the
/// characters a text shows as nothing (`input::ignorable`).
fn separator(c: char) -> bool {
    matches!(
        c,
        '-' | ' ' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}'
    ) || (!c.is_ascii() && (c.is_whitespace() || crate::input::ignorable(c)))
}

/// The identity key of a code in groups of four separated by hyphens (`XXXX-XXXX-XXXX-XXXX-XXXX`,
/// the shape this tool issues and the ledger mostly holds), when it is one: its twenty symbols
/// mapped at fixed places, with no byte-by-byte compaction. `None` for any other text, and for
/// a group holding a byte that is dropped or not ASCII: the general path keys those.
fn grouped_key(b: &[u8]) -> Option<[u8; 20]> {
    let b: &[u8; 24] = b.try_into().ok()?;
    if b[4] != b'-' || b[9] != b'-' || b[14] != b'-' || b[19] != b'-' {
        return None;
    }
    let mut key = [0u8; 20];
    let mut odd = 0u8;
    for (i, k) in key.iter_mut().enumerate() {
        let byte = b[i + i / 4];
        // A byte of 0x80 or more is not ASCII: marked, and mapped as any byte below 128 (the
        // result is then thrown away).
        odd |= byte;
        let mapped = KEY_BYTES[usize::from(byte & 0x7F)];
        odd |= mapped;
        *k = mapped;
    }
    // `DROPPED` and non-ASCII bytes both set the top bit; mapped ASCII bytes never do.
    (odd & 0x80 == 0).then_some(key)
}

/// Products in GF(32), `PRODUCTS[a][b] = a · b`, computed at compile time.
const PRODUCTS: [[u8; 32]; 32] = {
    let mut table = [[0u8; 32]; 32];
    let mut a = 0;
    while a < 32 {
        let mut b = 0;
        while b < 32 {
            table[a][b] = gf_mul(a as u8, b as u8);
            b += 1;
        }
        a += 1;
    }
    table
};

/// `a · b` in GF(32), from the table.
fn times(a: u8, b: u8) -> u8 {
    PRODUCTS[usize::from(a & 31)][usize::from(b & 31)]
}

/// Multiplication in GF(32) = GF(2)[x] / (x^5 + x^2 + 1).
const fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        b >>= 1;
        a <<= 1;
        if a & 32 != 0 {
            a ^= 0b100101;
        }
    }
    product
}

/// The weight of position `i`: α^i for the primitive element α = x, distinct and non-zero for
/// i < 31.
fn weight(i: usize) -> u8 {
    WEIGHTS[i]
}

/// α^i for i in 0..31, computed at compile time.
const WEIGHTS: [u8; MAX_SYMBOLS] = {
    let mut w = [0u8; MAX_SYMBOLS];
    let mut x = 1u8;
    let mut i = 0;
    while i < MAX_SYMBOLS {
        w[i] = x;
        // Multiply by α = x and reduce by x^5 + x^2 + 1.
        x <<= 1;
        if x & 32 != 0 {
            x ^= 0b100101;
        }
        i += 1;
    }
    w
};

/// Σ weight(i) · value(i) over GF(32); zero for a code with a correct check symbol.
fn weighted_sum(values: &[u8]) -> u8 {
    values
        .iter()
        .enumerate()
        .fold(0, |acc, (i, v)| acc ^ times(weight(i), *v))
}

/// The check symbol that completes `symbols` (canonical symbols of the alphabet, the random
/// part of a code) into a code that verifies; `None` when one is not of the alphabet. For test
/// data that must read as issued codes (`generate`): a run's codes come from `generate_many`.
pub fn check_symbol(symbols: &[u8]) -> Option<u8> {
    let values: Option<Vec<u8>> = symbols
        .iter()
        .map(|&c| decode_symbol(char::from(c)))
        .collect();
    Some(ALPHABET[usize::from(check_value(&values?))])
}

/// The check value that makes the weighted sum of `values` followed by it zero.
fn check_value(values: &[u8]) -> u8 {
    let partial = weighted_sum(values);
    let w = weight(values.len());
    // Solve w · c = partial: c = partial · w⁻¹, and w⁻¹ = w^30 in GF(32).
    let inverse = (0..29).fold(w, |acc, _| times(acc, w));
    times(partial, inverse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_format() -> Format {
        Format::new("", 19, 4).unwrap()
    }

    #[test]
    fn the_product_table_is_the_field_product() {
        for a in 0..32u8 {
            for b in 0..32u8 {
                assert_eq!(times(a, b), gf_mul(a, b));
                assert_eq!(times(a, b), times(b, a));
            }
            assert_eq!(times(a, 1), a);
        }
    }

    #[test]
    fn weights_are_distinct_and_non_zero() {
        let weights: Vec<u8> = (0..MAX_SYMBOLS).map(weight).collect();
        assert!(weights.iter().all(|w| *w != 0));
        let mut sorted = weights.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), MAX_SYMBOLS);
    }

    #[test]
    fn generated_codes_verify_and_are_canonical() {
        let f = Format::new("icp", 19, 4).unwrap();
        for _ in 0..200 {
            let code = f.generate().unwrap();
            assert_eq!(code.len(), 4 + 20 + 4);
            assert!(code.starts_with("ICP-"));
            assert_eq!(f.verify(&code).unwrap(), code);
            let sloppy = code.replace('-', "").to_lowercase();
            assert_eq!(f.verify(&sloppy).unwrap(), code);
        }
    }

    #[test]
    fn a_batch_of_codes_is_one_buffer_of_whole_canonical_codes() {
        for (prefix, symbols, group) in [("icp", 19, 4), ("", 18, 5), ("X", 30, 1), ("AB", 20, 30)]
        {
            let f = Format::new(prefix, symbols, group).unwrap();
            let mut codes = f.generate_many(500).unwrap();
            assert_eq!(codes.len(), 500);
            let all: Vec<String> = codes.iter().map(str::to_string).collect();
            for code in &all {
                assert_eq!(code.len(), f.width());
                assert_eq!(f.verify(code).unwrap(), *code, "{prefix} {symbols} {group}");
            }
            let distinct: std::collections::HashSet<&String> = all.iter().collect();
            assert_eq!(distinct.len(), all.len());
            // Replacing one code leaves its neighbours as they were.
            let other = f.generate().unwrap();
            codes.set(7, &other);
            assert_eq!(codes.get(7), other);
            assert_eq!((codes.get(6), codes.get(8)), (&*all[6], &*all[8]));
        }
        assert!(
            Format::new("icp", 19, 4)
                .unwrap()
                .generate_many(0)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn crockford_decoding_reads_i_l_as_one_and_o_as_zero() {
        let f = default_format();
        // Find a valid code containing a 1 and a 0, then type them as I/L and O.
        let code = (0..10_000)
            .map(|_| f.generate().unwrap())
            .find(|c| c.contains('1') && c.contains('0'))
            .unwrap();
        let typed = code.replacen('1', "l", 1).replacen('0', "O", 1);
        assert_eq!(f.verify(&typed).unwrap(), code);
        assert_eq!(identity_key(&typed), identity_key(&code));
    }

    /// Texts close to the grouped shape that are not in it: a space, a hyphen out of place, a
    /// byte outside ASCII, a group of five, one byte short.
    const GROUPED_NEAR_MISSES: [&str; 5] = [
        "DP2D-FA P-JNC1-3DMC-J9X5",
        "DP2D-FA-P-JNC1-3DMC-J9X5",
        "DP2D-FANP-JNC1-3DMC-J9é",
        "DP2DF-ANP-JNC1-3DMC-J9X5",
        "DP2D-FANP-JNC1-3DMC-J9X",
    ];

    #[test]
    fn grouped_codes_are_keyed_at_fixed_places() {
        let key = |code: &str| grouped_key(code.as_bytes()).map(|k| k.to_vec());
        assert_eq!(
            key("dp2d-fanp-jnc1-3dmo-j9il"),
            Some(b"DP2DFANPJNC13DM0J911".to_vec())
        );
        for near_miss in GROUPED_NEAR_MISSES {
            assert_eq!(key(near_miss), None, "{near_miss:?}");
        }
    }

    #[test]
    fn identity_keys_of_ascii_and_other_text_follow_one_mapping() {
        // The mapping char by char, as the non-ASCII path applies it.
        let by_chars = |code: &str| -> String {
            code.chars()
                .filter(|c| !matches!(c, '-' | ' '))
                .map(|c| match c.to_ascii_uppercase() {
                    'I' | 'L' => '1',
                    'O' => '0',
                    c => c,
                })
                .collect()
        };
        let every_ascii: String = (0u8..128).map(char::from).collect();
        let long = "abcd-".repeat(20);
        for code in [
            "ab-cd ef",
            "iLlo-O0",
            "ABCD-EFGH",
            "x-é-i",
            "-- ",
            "",
            "Ünïcode-l",
            "nul\0-in\0side",
            &every_ascii,
            &every_ascii[..SHORT],
            &long,
            // The grouped shape, and texts of its length or near it that are not in it.
            "dp2d-fanp-jnc1-3dmc-j9x5",
            "DP2D-FANP-JNC1-3DMC-J9X5",
            "DP2D-FANP-JNC1-3DMC-J9X55",
            "----------------------- ",
            "\u{7f}\u{7f}\u{7f}\u{7f}-oooo-iiii-llll-\0\0\0\0",
        ]
        .into_iter()
        .chain(GROUPED_NEAR_MISSES)
        {
            assert_eq!(identity_key(code), by_chars(code), "{code:?}");
        }
        assert_eq!(identity_key("ab-il o"), "AB110");
    }

    /// Beyond ASCII, a code's other spellings are one code: full-width forms, Unicode's
    /// hyphens, dashes and spaces, characters shown as nothing (until the twenty-third session
    /// a ledger could hold `ABCD` and `ＡＢＣＤ`, or `AB‐CD` with U+2010, as two codes).
    #[test]
    fn identity_keys_fold_unicode_spellings_of_a_code() {
        for code in [
            "\u{ff21}\u{ff22}\u{ff23}\u{ff24}",
            "AB\u{2010}CD",
            "AB\u{2013}CD",
            "AB\u{2212}CD",
            "AB\u{ff0d}CD",
            "AB\u{3000}CD",
            "AB\u{a0}CD",
            "AB\u{200b}CD",
            "\u{feff}ABCD",
            "ab\u{ad}cd",
        ] {
            assert_eq!(identity_key(code), "ABCD", "{code:?}");
        }
        assert_eq!(identity_key("\u{ff4f}\u{ff49}"), "01");
        assert_eq!(identity_key("ÀBCD"), "ÀBCD");
    }

    /// Every single-symbol substitution and every adjacent transposition of distinct symbols is
    /// caught, at every position, for many codes: exhaustive over positions and symbols.
    #[test]
    fn check_symbol_catches_every_substitution_and_adjacent_transposition() {
        let f = default_format();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..300 {
            let mut values: Vec<u8> = (0..19).map(|_| rng.u8(0..32)).collect();
            values.push(check_value(&values));
            assert_eq!(weighted_sum(&values), 0);
            for i in 0..values.len() {
                for s in 0..32u8 {
                    if s == values[i] {
                        continue;
                    }
                    let mut v = values.clone();
                    v[i] = s;
                    assert_ne!(weighted_sum(&v), 0, "substitution at {i} undetected");
                    assert!(f.verify(&f.render(&v)).is_err());
                }
                if i + 1 < values.len() && values[i] != values[i + 1] {
                    let mut v = values.clone();
                    v.swap(i, i + 1);
                    assert_ne!(weighted_sum(&v), 0, "transposition at {i} undetected");
                }
            }
        }
    }

    /// The same property for every code shape at once: a substitution changes the sum by
    /// w_i·(a⊕b) and a transposition by (w_i⊕w_{i+1})·(a⊕b); neither is ever zero.
    #[test]
    fn check_symbol_algebra_holds_for_all_positions_and_symbol_pairs() {
        for i in 0..MAX_SYMBOLS {
            for a in 0..32u8 {
                for b in 0..32u8 {
                    if a == b {
                        continue;
                    }
                    assert_ne!(gf_mul(weight(i), a ^ b), 0);
                    if i + 1 < MAX_SYMBOLS {
                        assert_ne!(gf_mul(weight(i) ^ weight(i + 1), a ^ b), 0);
                    }
                }
            }
        }
    }

    #[test]
    fn formats_with_too_few_bits_or_bad_prefix_are_refused() {
        assert!(Format::new("", 17, 4).is_err());
        assert!(Format::new("", 18, 4).is_ok());
        assert!(Format::new("", 31, 4).is_err());
        // Any number: the largest ones are refused, not multiplied past 64 bits.
        assert!(
            Format::new("", usize::MAX, 4)
                .unwrap_err()
                .contains("at most 30")
        );
        assert!(Format::new("", usize::MAX / 5 + 1, 4).is_err());
        assert!(Format::new("IC-P", 20, 4).is_err());
        assert!(Format::new("", 20, 0).is_err());
    }

    #[test]
    fn verification_errors_do_not_repeat_the_code() {
        let f = default_format();
        for bad in ["ZZZZ-ZZZZ", "UUUU-UUUU-UUUU-UUUU-UUUU", "not a code"] {
            let e = f.verify(bad).unwrap_err();
            assert!(!e.contains(bad), "{e}");
        }
    }
}
