//! Reading the records of one piece: plain pieces (no quote but around whole simple fields, no
//! carriage return but in CRLF line ends) in one pass over their commas and line feeds, any
//! other through the csv crate's reader; both give the same cells, lines and offsets.

use super::{Lines, Piece};
use crate::input::quoted;

/// A reader over CSV bytes, configured the one way every input is read.
pub fn reader<R: std::io::Read>(bytes: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(bytes)
}

/// One cell of a record: its text, or what is wrong with it.
pub type Cell<'a> = std::result::Result<&'a str, Bad<'a>>;

/// A cell that cannot be taken as text, with its bytes (as the csv reader gave them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad<'a> {
    /// Not valid UTF-8.
    NotUtf8(&'a [u8]),
    /// A quoted value with more after its closing quote (`"r3"x`): not RFC 4180, and read
    /// leniently it would be a value (`r3x`) the file does not hold.
    AfterQuote(&'a [u8]),
}

impl<'a> Bad<'a> {
    pub fn bytes(&self) -> &'a [u8] {
        match *self {
            Bad::NotUtf8(b) | Bad::AfterQuote(b) => b,
        }
    }

    /// What a problem with the cell says.
    pub fn message(&self) -> &'static str {
        match self {
            Bad::NotUtf8(_) => "the value is not valid UTF-8",
            Bad::AfterQuote(_) => "text follows the closing quote of a quoted value",
        }
    }
}

/// What `read_records` read of a piece.
pub struct PieceRead {
    /// Where the last record starts (its byte offset and line), for `unclosed_quote`.
    pub last: (usize, u64),
    /// Whether the piece was plain: valid UTF-8, without carriage returns but in CRLF line
    /// ends, and without quotes but pairs that each enclose a whole field holding no comma, line
    /// end or quote, so that no cell of it holds a comma, a quote or a line end (none needs
    /// quoting when written out).
    pub plain: bool,
}

/// Reads every record of `piece`, calling `each(cells, line)` for each; returns where the last
/// record starts and whether the piece was plain, or the CSV reader's error with the line it
/// stopped on.
///
/// A piece of valid UTF-8 whose carriage returns (if any) each end a CRLF line end, and whose
/// quotes (if any) each pair around a whole field holding no comma, line end or quote (what
/// exports and the generator write, on Unix or Windows, quoting every field or none) has a
/// record per non-blank line and a cell between each pair of commas; such a piece is split in
/// one pass over its commas and line feeds (`Separators`), its fields' quotes taken off, and
/// is checked as text once (measured at 1M: the read and scan phases a sixth to a quarter
/// faster; CRLF and quoted files, which took the csv crate's reader until the twentieth
/// session, 0.8 and 1.6 CPU-seconds faster). Any other piece goes through the csv crate's
/// reader. A test holds the two to the same records, lines and offsets.
pub fn read_records<'a>(
    piece: &Piece<'a>,
    each: impl FnMut(&[Cell<'_>], u64),
) -> std::result::Result<PieceRead, (csv::Error, u64)> {
    // One pass over the usual piece, which has neither.
    let (plain, quoted) = match memchr::memchr2(b'"', b'\r', piece.bytes) {
        None => (true, false),
        Some(_) => {
            let quoted = memchr::memchr(b'"', piece.bytes).is_some();
            let simple = !quoted || quoted::simple(piece.bytes);
            (simple && crlf_only(piece.bytes), quoted)
        }
    };
    match (plain, std::str::from_utf8(piece.bytes)) {
        (true, Ok(text)) => Ok(PieceRead {
            last: read_plain(text, piece.first_line, quoted, each),
            plain: true,
        }),
        _ => read_with_csv(piece, each).map(|last| PieceRead { last, plain: false }),
    }
}

/// Whether every carriage return in `bytes` is followed by a line feed: a CRLF line end, which
/// the plain reader reads as the line feed alone. (A lone one ends a record for the csv reader.)
fn crlf_only(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\r', bytes).all(|i| bytes.get(i + 1) == Some(&b'\n'))
}

/// `read_records` for text whose carriage returns all end CRLF line ends (`crlf_only`), and
/// whose quotes, with `unquote`, each enclose a whole field without a comma, a line end or a
/// quote inside (`quoted::simple`), and are taken off it; without `unquote`, it has none.
fn read_plain<'a>(
    text: &'a str,
    first_line: u64,
    unquote: bool,
    mut each: impl FnMut(&[Cell<'_>], u64),
) -> (usize, u64) {
    let cell = |from: usize, to: usize| -> Cell<'a> {
        let cell = &text[from..to];
        Ok(match unquote && cell.starts_with('"') {
            true => &cell[1..cell.len() - 1],
            false => cell,
        })
    };
    let mut cells: Vec<Cell<'a>> = Vec::with_capacity(16);
    let (mut line, mut last) = (first_line, (0, first_line));
    // Like the csv reader, a record's offset is where the blank lines before it start.
    let (mut record_start, mut line_start, mut cell_start) = (0, 0, 0);
    // One pass over every comma and line feed of the piece.
    let bytes = text.as_bytes();
    for at in Separators::new(bytes).chain([text.len()]) {
        if at < text.len() && bytes[at] == b',' {
            cells.push(cell(cell_start, at));
            cell_start = at + 1;
            continue;
        }
        // A line ends (or the text does); a CR before its line feed is the line end's. (A CR
        // just before a comma, or at the text's end, is not in a piece read here.)
        let end = match at.checked_sub(1) {
            Some(cr) if cr >= cell_start && bytes[cr] == b'\r' => cr,
            _ => at,
        };
        cells.push(cell(cell_start, end));
        cell_start = at + 1;
        // A record unless the line is blank.
        if end > line_start {
            each(&cells, line);
            last = (record_start, line);
            // The csv reader ends a record at a CRLF's CR, and starts the next at its LF.
            record_start = end + 1;
        }
        cells.clear();
        line_start = at + 1;
        line += 1;
    }
    last
}

/// The offsets of every comma and line feed in a text, ascending. The text is read sixteen
/// bytes at a time, and each chunk's separators are found at once, as a bit mask (bit `i` for
/// byte `i`): a cell is about ten bytes long, so a search that starts again after every
/// separator (`memchr2_iter`) spends more on starting than on searching.
struct Separators<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
    /// The bytes after the last whole chunk (fewer than sixteen).
    tail: &'a [u8],
    /// Where the chunk of `mask` starts.
    base: usize,
    /// The separators of the current chunk not yet given.
    mask: u32,
    /// Where the next chunk starts.
    next: usize,
}

impl<'a> Separators<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let chunks = bytes.chunks_exact(CHUNK);
        let tail = chunks.remainder();
        Separators {
            chunks,
            tail,
            base: 0,
            mask: 0,
            next: 0,
        }
    }
}

/// How many bytes `separators` judges at once.
const CHUNK: usize = 16;

/// Bit `i` set for each byte `i` of `chunk` that is a comma or a line feed: two byte
/// comparisons and a mask of their lanes, in SSE2 (every x86-64 processor has it).
#[cfg(target_arch = "x86_64")]
fn separators(chunk: &[u8; CHUNK]) -> u32 {
    use safe_arch::set_splat_i8_m128i as splat;
    use safe_arch::{bitor_m128i, cmp_eq_mask_i8_m128i, m128i, move_mask_i8_m128i};
    let v = m128i::from(*chunk);
    let comma = cmp_eq_mask_i8_m128i(v, splat(b',' as i8));
    let line_feed = cmp_eq_mask_i8_m128i(v, splat(b'\n' as i8));
    move_mask_i8_m128i(bitor_m128i(comma, line_feed)) as u32
}

#[cfg(not(target_arch = "x86_64"))]
fn separators(chunk: &[u8; CHUNK]) -> u32 {
    separators_bytewise(chunk)
}

/// `separators` a byte at a time, for other processors (and to test the SSE2 one against).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn separators_bytewise(chunk: &[u8; CHUNK]) -> u32 {
    chunk
        .iter()
        .enumerate()
        .fold(0, |m, (i, b)| m | u32::from(matches!(b, b',' | b'\n')) << i)
}

impl Iterator for Separators<'_> {
    type Item = usize;

    // Inlined into the loop that reads the cells: a call per separator cost more than
    // finding it.
    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.mask = match self.chunks.next() {
                Some(c) => separators(c.try_into().expect("a chunk of CHUNK bytes")),
                None if !self.tail.is_empty() => {
                    // The last bytes, padded with zeros (neither a comma nor a line feed).
                    let mut last = [0u8; CHUNK];
                    last[..self.tail.len()].copy_from_slice(self.tail);
                    self.tail = &[];
                    separators(&last)
                }
                None => return None,
            };
            self.base = self.next;
            self.next += CHUNK;
        }
        let at = self.base + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(at)
    }
}

/// `read_records` by the csv crate's reader: any CSV.
fn read_with_csv(
    piece: &Piece,
    mut each: impl FnMut(&[Cell<'_>], u64),
) -> std::result::Result<(usize, u64), (csv::Error, u64)> {
    // The csv reader drops a byte-order mark at the start of what it reads: only the file's own
    // first bytes may lose one (the header's reader). A piece that starts with one (a row whose
    // first cell does) is read after a blank line, which keeps it a byte of that cell, as the
    // plain reader keeps it; offsets are counted in the piece again.
    let shift = usize::from(piece.bytes.starts_with(b"\xef\xbb\xbf"));
    let mut rdr = reader(std::io::Read::chain(&b"\n"[..shift], piece.bytes));
    let offset = |byte: u64| (byte as usize).saturating_sub(shift);
    let mut record = csv::ByteRecord::new();
    let mut lines = Lines::new(piece);
    let mut last = (0, piece.first_line);
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(last),
            Err(e) => return Err((e, lines.at(offset(rdr.position().byte()) as u64))),
        }
        let at = offset(record.position().map_or(0, |p| p.byte()));
        let line = lines.at(at as u64);
        last = (at, line);
        let raw = &piece.bytes[at..offset(rdr.position().byte()).min(piece.bytes.len())];
        let stray = after_quote(raw);
        let cells: Vec<Cell> = record
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if stray.contains(&i) {
                    return Err(Bad::AfterQuote(f));
                }
                std::str::from_utf8(f).map_err(|_| Bad::NotUtf8(f))
            })
            .collect();
        each(&cells, line);
    }
}

/// The fields (by place) of one record's raw bytes that have text after their closing quote,
/// which the csv reader would join to the value (`"r3"x` → `r3x`). The record is read as the
/// csv reader reads it (a field that starts with a quote is quoted, `""` inside it is a
/// quote); it ends at the first line end outside quotes.
fn after_quote(raw: &[u8]) -> Vec<usize> {
    let mut stray = Vec::new();
    if memchr::memchr(b'"', raw).is_none() {
        return stray;
    }
    let end_of_field = |b: u8| matches!(b, b',' | b'\n' | b'\r');
    let (mut i, mut field) = (0, 0);
    while i < raw.len() {
        if raw[i] == b'"' {
            i += 1;
            // To the closing quote (a doubled quote is one quote of the value).
            loop {
                match raw.get(i) {
                    None => return stray,
                    Some(b'"') if raw.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            if raw.get(i).is_some_and(|b| !end_of_field(*b)) {
                stray.push(field);
            }
        }
        // The rest of the field, read as unquoted text.
        while i < raw.len() && !end_of_field(raw[i]) {
            i += 1;
        }
        match raw.get(i) {
            Some(b',') => {
                field += 1;
                i += 1;
            }
            _ => break,
        }
    }
    stray
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::chunks::line_ends;

    /// The chunked search finds what a byte-by-byte one does, in texts of every length mod 16
    /// and bytes of every value (those that differ from a separator in one bit too); the SSE2
    /// mask agrees with the portable one.
    #[test]
    fn separators_are_every_comma_and_line_feed() {
        let mut rng = fastrand::Rng::with_seed(7);
        let near = [
            b',',
            b'\n',
            b',' ^ 0x80,
            b'\n' ^ 0x80,
            b',' ^ 1,
            b'\n' ^ 2,
            0,
            0x7f,
            0xff,
        ];
        for len in 0..200 {
            for _ in 0..20 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| match rng.u8(..3) {
                        0 => near[rng.usize(..near.len())],
                        _ => rng.u8(..),
                    })
                    .collect();
                let want: Vec<usize> = (0..len)
                    .filter(|i| matches!(bytes[*i], b',' | b'\n'))
                    .collect();
                assert_eq!(
                    Separators::new(&bytes).collect::<Vec<_>>(),
                    want,
                    "{bytes:?}"
                );
                for chunk in bytes.chunks_exact(CHUNK) {
                    let chunk = chunk.try_into().unwrap();
                    assert_eq!(separators(chunk), separators_bytewise(chunk));
                }
            }
        }
    }

    /// Every record as (line, cells), and where the last starts, by one of the two readers.
    type Read = (Vec<(u64, Vec<String>)>, (usize, u64));

    fn read(piece: &Piece, plain: bool) -> Read {
        let mut out = Vec::new();
        let mut each = |cells: &[Cell], line: u64| {
            let cells = cells
                .iter()
                .map(|c| {
                    c.map_or_else(
                        |b| String::from_utf8_lossy(b.bytes()).into(),
                        str::to_string,
                    )
                })
                .collect();
            out.push((line, cells));
        };
        let last = if plain {
            let text = std::str::from_utf8(piece.bytes).unwrap();
            read_plain(text, piece.first_line, text.contains('"'), &mut each)
        } else {
            read_with_csv(piece, &mut each).unwrap()
        };
        (out, last)
    }

    /// On every text the plain reader takes (a CR only in a CRLF line end; quotes only around
    /// whole fields without commas, line ends or quotes), the two readers give the same
    /// records, lines and last offset: blank lines of either ending, empty cells before a
    /// CRLF, quoted and empty quoted fields, no final line end.
    #[test]
    fn the_plain_reader_agrees_with_the_csv_reader() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = [
            "a",
            "Z",
            "0",
            " ",
            ",",
            "\n",
            "\r\n",
            "\r\n",
            "-",
            "é",
            "語",
            "\t",
            "=",
            "\r",
            ",\"q\"",
            ",\"\"",
            ",\"q,\"",
            "\"",
            ",\"é 1\"\r\n",
            "\u{feff}",
        ];
        let (mut plain, mut with_crlf, mut with_quotes) = (0, 0, 0);
        for _ in 0..12_000 {
            let len = rng.usize(0..60);
            let text: String = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            if !crlf_only(text.as_bytes()) || !quoted::simple(text.as_bytes()) {
                continue;
            }
            plain += 1;
            with_crlf += usize::from(text.contains("\r\n"));
            with_quotes += usize::from(text.contains('"'));
            let piece = Piece {
                bytes: text.as_bytes(),
                first_line: rng.u64(1..5),
                lines: line_ends(text.as_bytes(), 0, text.len()),
                number: 0,
            };
            assert_eq!(read(&piece, true), read(&piece, false), "{text:?}");
        }
        assert!(
            plain > 800 && with_crlf > 350 && with_quotes > 250,
            "{plain} texts, {with_crlf} with CRLF, {with_quotes} with quotes"
        );
    }

    /// A byte-order mark that starts a piece (a row whose first cell starts with U+FEFF) is a
    /// byte of that cell for either reader: the csv reader, which drops one at the start of what
    /// it reads, dropped it only for the rows that happened to start a piece.
    #[test]
    fn a_byte_order_mark_starting_a_piece_is_kept() {
        for text in [
            "\u{feff}a,b\n\u{feff}c\n",
            "\u{feff}a,\"b\nc\"\n\u{feff}d\n",
        ] {
            let piece = Piece {
                bytes: text.as_bytes(),
                first_line: 2,
                lines: line_ends(text.as_bytes(), 0, text.len()),
                number: 0,
            };
            let (rows, last) = read(&piece, false);
            let firsts: Vec<&str> = rows.iter().map(|(_, cells)| cells[0].as_str()).collect();
            assert_eq!(firsts.len(), 2, "{text:?}");
            assert!(
                firsts.iter().all(|c| c.starts_with('\u{feff}')),
                "{text:?}: {rows:?}"
            );
            assert_eq!(rows[0].0, 2);
            assert_eq!(last.0, text.rfind('\u{feff}').unwrap(), "{text:?}");
            if !text.contains('"') {
                assert_eq!(read(&piece, true), (rows, last), "{text:?}");
            }
        }
    }

    /// A carriage return that is not part of a CRLF line end (a lone one, which the csv reader
    /// takes as a line end, or one at the very end) sends a piece to the csv reader.
    #[test]
    fn only_crlf_line_ends_keep_a_piece_plain() {
        for (text, plain) in [
            ("a,b\nc,d\n", true),
            ("a,b\r\nc,d\r\n", true),
            ("a,b\r\n\r\nc,d", true),
            ("a,b\rc,d\n", false),
            ("a\r,b\n", false),
            ("a,b\r\nc,d\r", false),
            ("\r", false),
        ] {
            let piece = Piece {
                bytes: text.as_bytes(),
                first_line: 1,
                lines: line_ends(text.as_bytes(), 0, text.len()),
                number: 0,
            };
            let read = read_records(&piece, |_, _| {}).unwrap();
            assert_eq!(read.plain, plain, "{text:?}");
        }
    }

    /// A quoted value with text after its closing quote is told apart, by its field's place,
    /// from every well-formed use of quotes; the csv reader hands it on as `Bad::AfterQuote`.
    #[test]
    fn text_after_a_closing_quote_is_found() {
        for (raw, want) in [
            ("\"r3\"x,100,i-2\n", vec![0]),
            ("a,\"b\" ,c\n", vec![1]),
            ("a,b,\"c\"d\r\n", vec![2]),
            ("\"a\"x,\"b\"y\n", vec![0, 1]),
            ("\"a,\"\"x\"\"\",b\n", vec![]),
            ("\"two\nlines\",b\n", vec![]),
            ("r\"2,100\n", vec![]),
            ("\"\",\"\"\"\"\n", vec![]),
            ("a,\"b\"", vec![]),
            ("plain,cells\n", vec![]),
        ] {
            assert_eq!(after_quote(raw.as_bytes()), want, "{raw:?}");
        }
        let text = "\"r1\",a\n\"r3\"x,b\n";
        let piece = Piece {
            bytes: text.as_bytes(),
            first_line: 2,
            lines: 2,
            number: 0,
        };
        let mut got = Vec::new();
        read_records(&piece, |cells, line| {
            let first = match cells[0] {
                Ok(text) => Ok(text.to_string()),
                Err(b) => Err((b.message(), b.bytes().to_vec())),
            };
            got.push((line, first));
        })
        .unwrap();
        let stray = (Bad::AfterQuote(b"").message(), b"r3x".to_vec());
        assert_eq!(got, [(2, Ok("r1".to_string())), (3, Err(stray))]);
    }
}
