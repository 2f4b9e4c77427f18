//! Where the records of quoted CSV end, found without reading it record by record, so that a
//! quoted file is cut into pieces parsed side by side, as a file without quotes is.
//!
//! A line feed ends a record unless it is inside a quoted field. Under RFC 4180 a quote opens a
//! field only as the field's first byte, and inside a quoted field quotes come in pairs (`""`,
//! one quote of the value) or close it: whether a byte is inside quotes is then the parity of
//! the quotes before it, which is found 64 bytes at a time. The csv reader reads more than RFC
//! 4180, though: a quote inside an unquoted field (`ab"c`) is a byte of the value, and so is one
//! after text that follows a closing quote (`"a"b"c"`); there the parity and the reader part
//! ways. Each such quote is one that the parity takes for an opening quote but that does not
//! start a field (the byte before it is not a comma, a line end or a quote): when one is met,
//! `record_ends` says so, and the caller reads the rest of the file as one piece, as before.
//!
//! Why the parity then agrees with the reader everywhere (csv-core's states): a field that
//! starts with a quote is quoted (the parity opens); in it a quote is either the first of a
//! pair (the parity closes, and the second, whose byte before is a quote, opens again: still
//! inside) or its closing quote (outside, as the reader is after it whatever follows: a comma,
//! a line end, or text read as unquoted); a quote in unquoted text is refused as above.

/// How many bytes are judged at once: one bit each in a `u64`.
const LANES: usize = 64;

/// Bit masks of one 64-byte chunk: bit `i` set where byte `i` is the character.
struct Masks {
    quote: u64,
    line_feed: u64,
    /// A comma, a line feed or a carriage return: what a field may start after.
    separator: u64,
}

/// Appends to `ends` the offset of every line feed of `bytes` that ends a record (or a blank
/// line) as the csv reader reads `bytes` from the start of a record, in ascending order.
/// Returns false, with `ends` holding part of them, when a quote in `bytes` is one that the
/// reader takes as a byte of a value (see the module's note): then only a reader going record
/// by record can tell.
pub fn record_ends(bytes: &[u8], ends: &mut Vec<usize>) -> bool {
    let mut parity = Parity::default();
    // Bit 0: whether a field may start at the chunk's first byte (the byte before it is a
    // separator or a quote, or there is none).
    let mut after_separator = 1u64;
    for (base, _, m) in chunk_masks(bytes) {
        let before = parity.before(m.quote);
        // Bit i: byte i - 1 is a separator or a quote (or byte i is the text's first).
        let may_open = ((m.separator | m.quote) << 1) | after_separator;
        if m.quote & !before & !may_open != 0 {
            return false;
        }
        let mut found = m.line_feed & !before;
        while found != 0 {
            ends.push(base + found.trailing_zeros() as usize);
            found &= found - 1;
        }
        after_separator = (m.separator | m.quote) >> 63;
    }
    true
}

/// Whether every quote of `bytes` (read from the start of a record) is one of a pair that
/// encloses a whole field holding no comma, line end or quote: `"i-bp1",12`, as exports that
/// quote every field write. A reader that takes such a field's quotes off reads each record
/// as the csv reader does.
pub fn simple(bytes: &[u8]) -> bool {
    let mut parity = Parity::default();
    // Bit 0: whether the byte before the chunk is a separator (or there is none).
    let mut after_separator = 1u64;
    // Bit 0: whether the byte before the chunk closes a quoted field.
    let mut after_close = 0u64;
    for (_, n, m) in chunk_masks(bytes) {
        let before = parity.before(m.quote);
        let (opening, closing) = (m.quote & !before, m.quote & before);
        // The bytes past the text's end count as separators: a field may end there.
        let past_end = if n == LANES { 0 } else { u64::MAX << n };
        let simple = m.separator & before == 0
            && opening & !((m.separator << 1) | after_separator) == 0
            && ((closing << 1) | after_close) & !(m.separator | past_end) == 0;
        if !simple {
            return false;
        }
        after_separator = m.separator >> 63;
        after_close = closing >> 63;
    }
    // And no quote is left open at the end.
    !parity.inside()
}

/// Whether the bytes judged so far leave the reader inside quotes, carried from chunk to chunk.
#[derive(Default)]
struct Parity(u64);

impl Parity {
    /// For the next chunk's quotes: bit i set where byte i is inside quotes (before it is read).
    fn before(&mut self, quote: u64) -> u64 {
        let after = prefix_xor(quote) ^ self.0;
        self.0 = (after >> 63).wrapping_neg();
        after ^ quote
    }

    fn inside(&self) -> bool {
        self.0 != 0
    }
}

/// The masks of `bytes`, 64 bytes at a time, each with where its chunk starts and how many of
/// its bytes are the text's: the last chunk is padded with zeros (none of the characters).
fn chunk_masks(bytes: &[u8]) -> impl Iterator<Item = (usize, usize, Masks)> + '_ {
    bytes.chunks(LANES).enumerate().map(|(k, chunk)| {
        let m = match <&[u8; LANES]>::try_from(chunk) {
            Ok(whole) => masks(whole),
            Err(_) => {
                let mut padded = [0u8; LANES];
                padded[..chunk.len()].copy_from_slice(chunk);
                masks(&padded)
            }
        };
        (k * LANES, chunk.len(), m)
    })
}

/// Bit i of the result: the parity of bits 0..=i of `x`.
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// The masks of a chunk: sixteen bytes at a time compared in SSE2 (every x86-64 processor has
/// it).
#[cfg(target_arch = "x86_64")]
fn masks(chunk: &[u8; LANES]) -> Masks {
    use safe_arch::set_splat_i8_m128i as splat;
    use safe_arch::{bitor_m128i, cmp_eq_mask_i8_m128i, m128i, move_mask_i8_m128i};
    let (mut quote, mut line_feed, mut separator) = (0u64, 0u64, 0u64);
    for (k, part) in chunk.chunks_exact(16).enumerate() {
        let v = m128i::from(<[u8; 16]>::try_from(part).expect("16 bytes"));
        let eq = |b: u8| cmp_eq_mask_i8_m128i(v, splat(b as i8));
        let bits = |m| u64::from(move_mask_i8_m128i(m) as u32 as u16) << (16 * k);
        let lf = eq(b'\n');
        quote |= bits(eq(b'"'));
        line_feed |= bits(lf);
        separator |= bits(bitor_m128i(bitor_m128i(eq(b','), lf), eq(b'\r')));
    }
    Masks {
        quote,
        line_feed,
        separator,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn masks(chunk: &[u8; LANES]) -> Masks {
    masks_bytewise(chunk)
}

/// `masks` a byte at a time, for other processors (and to test the SSE2 one against).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn masks_bytewise(chunk: &[u8; LANES]) -> Masks {
    let bit = |pred: fn(u8) -> bool| {
        chunk
            .iter()
            .enumerate()
            .fold(0u64, |m, (i, b)| m | u64::from(pred(*b)) << i)
    };
    Masks {
        quote: bit(|b| b == b'"'),
        line_feed: bit(|b| b == b'\n'),
        separator: bit(|b| matches!(b, b',' | b'\n' | b'\r')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record of `bytes` as the csv reader reads it (fields as bytes).
    fn records(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut rdr = super::super::chunks::reader(bytes);
        let mut record = csv::ByteRecord::new();
        let mut out = Vec::new();
        while rdr.read_byte_record(&mut record).unwrap() {
            out.push(record.iter().map(<[u8]>::to_vec).collect());
        }
        out
    }

    /// Random CSV: fields plain or quoted (with commas, line ends of every kind and pairs of
    /// quotes inside), now and then a field with a quote the reader takes as a value's byte,
    /// records ended by LF, CRLF or a lone CR, blank lines; long enough to cross chunks.
    fn random_csv(rng: &mut fastrand::Rng) -> String {
        let inside = ["a", ",", "\n", "\r\n", "\r", "\"\"", "é"];
        let odd = ["a\"b", "\"a\"b", "\"", "a\"", "\"a\" "];
        let ends = ["\n", "\r\n", "\r", "\n\n", "\r\n\r\n"];
        let mut text = String::new();
        for _ in 0..rng.usize(1..12) {
            for f in 0..rng.usize(1..5) {
                if f > 0 {
                    text.push(',');
                }
                match rng.u8(..40) {
                    0 => text.push_str(odd[rng.usize(..odd.len())]),
                    1..20 => {
                        text.push('"');
                        for _ in 0..rng.usize(..6) {
                            text.push_str(inside[rng.usize(..inside.len())]);
                        }
                        text.push('"');
                    }
                    _ => text.push_str(&"xyz"[..rng.usize(..4)]),
                }
            }
            text.push_str(ends[rng.usize(..ends.len())]);
        }
        text
    }

    /// On random CSV, every line feed said to end a record does: the reader reads the text as
    /// the text before it and the text after it, one after the other; and quotes the parity
    /// cannot follow are met often enough to be refused.
    #[test]
    fn the_line_feeds_found_end_records_as_the_csv_reader_reads_them() {
        let mut rng = fastrand::Rng::with_seed(11);
        let (mut judged, mut refused, mut splits) = (0, 0, 0);
        for _ in 0..3000 {
            let text = random_csv(&mut rng);
            let bytes = text.as_bytes();
            let mut ends = Vec::new();
            if !record_ends(bytes, &mut ends) {
                refused += 1;
                continue;
            }
            judged += 1;
            let whole = records(bytes);
            for &p in &ends {
                assert_eq!(bytes[p], b'\n');
                let mut parts = records(&bytes[..=p]);
                parts.extend(records(&bytes[p + 1..]));
                assert_eq!(parts, whole, "{text:?} split after {p}");
                splits += 1;
            }
        }
        assert!(
            judged > 1000 && refused > 300 && splits > 5000,
            "{judged} judged, {refused} refused, {splits} splits"
        );
    }

    /// Quotes the parity cannot follow send the text to the reader; quoted fields with line
    /// ends, commas and pairs of quotes do not.
    #[test]
    fn quotes_inside_unquoted_text_are_refused() {
        let mut ends = Vec::new();
        for text in ["ab\"c\n", "\"a\"b\"c\"\n", "x,\"a\" \"\n", "a\n b\"\n"] {
            assert!(!record_ends(text.as_bytes(), &mut ends), "{text:?}");
        }
        for (text, want) in [
            ("\"a\nb\",c\nd\n", vec![7, 9]),
            ("\"a\"\"b\",\"\"\n\"\"\"\"\n", vec![9, 14]),
            ("a,b\r\n\"c\r\nd\"\r\n", vec![4, 12]),
            ("\"x\"y,z\n", vec![6]),
        ] {
            ends.clear();
            assert!(record_ends(text.as_bytes(), &mut ends), "{text:?}");
            assert_eq!(ends, want, "{text:?}");
        }
    }

    /// A quote that is not one of a pair enclosing a whole field without commas, line ends or
    /// quotes makes a text not simple; fields quoted whole, empty ones too, keep it simple
    /// (across chunks and at the text's end).
    #[test]
    fn simple_quotes_enclose_whole_fields_only() {
        let long = format!("\"{}\",b\n", "x".repeat(70));
        for text in [
            "\"a\",\"b\"\n",
            "\"\",x,\"\"\r\n",
            "a,\"b\"",
            "\"a\"",
            long.as_str(),
            "",
            "plain,text\n",
        ] {
            assert!(simple(text.as_bytes()), "{text:?}");
        }
        for text in [
            "\"a,b\"\n",
            "\"a\nb\"\n",
            "\"a\"\"b\"\n",
            "\"a\"b\n",
            "a\"b\"\n",
            "\"a\" ,b\n",
            "\"a",
            "\"a\r\"\n",
        ] {
            assert!(!simple(text.as_bytes()), "{text:?}");
        }
    }

    #[test]
    fn sse2_masks_are_the_bytewise_ones() {
        let mut rng = fastrand::Rng::with_seed(5);
        let alphabet = b"a,\"\n\r \xff";
        for _ in 0..2000 {
            let chunk: [u8; LANES] = std::array::from_fn(|_| alphabet[rng.usize(..alphabet.len())]);
            let (a, b) = (masks(&chunk), masks_bytewise(&chunk));
            assert_eq!(
                (a.quote, a.line_feed, a.separator),
                (b.quote, b.line_feed, b.separator)
            );
        }
    }

    #[test]
    fn prefix_xor_is_the_running_parity() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..1000 {
            let x = rng.u64(..);
            let want = (0..64).fold(0u64, |m, i| {
                m | u64::from((x & (u64::MAX >> (63 - i))).count_ones() % 2 == 1) << i
            });
            assert_eq!(prefix_xor(x), want, "{x:#x}");
        }
    }
}
