//! Where each node of a YAML document stands: a map from a node's path (`rules[2].require.field`)
//! to its line and column, so that problems found after deserialization can name their place.
//! serde_yaml gives no positions for values; yaml-rust2's event parser does, and it reports
//! aliases without expanding them, so this pass is safe on alias bombs.

use std::collections::{BTreeMap, HashMap};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line and column of every node, by path; every plain scalar as written; and every
/// key that a mapping gives twice (serde names only the mapping).
#[derive(Debug, Default)]
pub struct Locations {
    places: HashMap<String, (usize, usize)>,
    /// Where each mapping key stands, by the path of its value (the first, when it repeats).
    keys: HashMap<String, (usize, usize)>,
    /// Ordered, so that the paths under a node are one range (see `Walker::copy_written`).
    written: BTreeMap<String, String>,
    /// Every key a mapping gives again, in document order.
    repeats: Vec<Repeat>,
    /// Where and why the walk stopped short of the document's end (`None`: it read it all):
    /// what `alias_trouble` finds; what the event parser cannot read, where serde may read on
    /// (a tab after a colon); paths longer in all than `MAX_PATH_BYTES`.
    stopped: Option<((usize, usize), String)>,
}

/// The most nodes a document may stand for once its aliases are expanded: nested aliases (a
/// "billion laughs") stand for exponentially many, and many aliases of a long list for the
/// product of the two, which a reader that expands them (serde_yaml) pays for in memory.
const MAX_EXPANDED: u64 = 1_000_000;

/// How many bytes of a value count as one value toward `MAX_EXPANDED`.
const VALUE_UNIT: usize = 64;

/// The deepest nesting of collections a document may have: the locator's event parser reads
/// nested nodes by recursion, which a deeper document would take past the stack. serde_yaml
/// stops at 128 levels itself, with "recursion limit exceeded": the same bound, checked first,
/// says what is wrong.
const MAX_DEPTH: usize = 128;

/// The most bytes the paths of a document's values may take in all (each value is kept by its
/// path, and an alias repeats the paths under its anchor): long keys could otherwise make a
/// small file cost gigabytes.
const MAX_PATH_BYTES: usize = 16 << 20;

/// A key given a second time in the same mapping: its path, where the repeat stands, and where
/// the first one does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeat {
    pub path: String,
    /// The key as written.
    pub key: String,
    pub at: (usize, usize),
    pub first: (usize, usize),
}

impl Locations {
    pub fn of(text: &str) -> Locations {
        let mut walker = Walker::default();
        // Not walked at all when its aliases or its depth make it unsafe to (`alias_trouble`).
        let trouble = alias_trouble(text);
        // A syntax error was already reported by serde_yaml; what was read so far still helps.
        let read = match trouble {
            None => Parser::new_from_str(text).load(&mut walker, false),
            Some(_) => Ok(()),
        };
        let stopped = trouble.or(walker.overflow.take()).or_else(|| {
            read.err().map(|e| {
                (
                    place(*e.marker()),
                    unreadable(
                        e.info(),
                        "write spaces, and indent a continued value past its key",
                    ),
                )
            })
        });
        Locations {
            stopped,
            places: walker.places,
            keys: walker.keys,
            written: walker.written,
            repeats: walker.repeats,
        }
    }

    /// Whether every node of the document has its place and its spelling (see `stopped`).
    pub fn complete(&self) -> bool {
        self.stopped.is_none()
    }

    /// Where and why the walk stopped short of the document's end, if it did.
    pub fn stopped(&self) -> Option<&((usize, usize), String)> {
        self.stopped.as_ref()
    }

    /// A plain (unquoted) scalar's text as written, before YAML read it as a number: `0111`,
    /// `1.50` and `0x1F`, where serde gives 111, 1.5 and 31.
    pub fn written(&self, path: &str) -> Option<&str> {
        self.written.get(path).map(String::as_str)
    }

    /// The place of the key whose value is at `path` (`rules[0].descr`: where `descr` is
    /// written), or `find(path)` when `path` is not a key's.
    pub fn find_key(&self, path: &str) -> (usize, usize) {
        match self.keys.get(path) {
            Some(place) => *place,
            None => self.find(path),
        }
    }

    /// The place of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> (usize, usize) {
        let mut p = path;
        loop {
            if let Some(place) = self.places.get(p) {
                return *place;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return (1, 1),
            }
        }
    }
}

/// For serde's error `message` about `text`: when it is about a key given twice, the place of
/// the repeat and what to say there; `None` for other errors.
pub fn repeated_key(text: &str, message: &str) -> Option<((usize, usize), String)> {
    if !message.contains("duplicate") {
        return None;
    }
    // The walker compares keys as written, serde as values (`1` and `"1"`): the repeat placed is
    // the first that serde's message names.
    let names = |r: &&Repeat| {
        message.contains(&format!("`{}`", r.key)) || message.contains(&format!("\"{}\"", r.key))
    };
    let locations = Locations::of(text);
    let r = locations.repeats.iter().find(names)?;
    let (line, col) = r.first;
    Some((
        r.at,
        format!("`{}` is given twice (first at {line}:{col})", r.path),
    ))
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        /// The keys given so far, with where each stands.
        seen: HashMap<String, (usize, usize)>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    places: HashMap<String, (usize, usize)>,
    keys: HashMap<String, (usize, usize)>,
    written: BTreeMap<String, String>,
    repeats: Vec<Repeat>,
    /// The path of each anchored node (`&a`), by anchor id: an alias (`*a`) stands for the
    /// node written there, so it is written as that node was.
    anchors: HashMap<usize, String>,
    /// The bytes of the paths kept so far, and where they passed `MAX_PATH_BYTES`.
    bytes: usize,
    overflow: Option<((usize, usize), String)>,
}

impl Walker {
    /// An alias at `path` of the node anchored at `anchor`: the scalars written under that
    /// node are written under `path` too (all of that node was read before the alias).
    fn copy_written(&mut self, anchor: &str, path: &str, mark: Marker) {
        if self.overflow.is_some() {
            return;
        }
        // The anchored node itself, and the paths under it: those start with `anchor.` or
        // `anchor[`, each one range of the ordered map (and nothing else is scanned: not
        // `anchor0`, a sibling).
        let mut copies: Vec<(String, String)> = Vec::new();
        if let Some(text) = self.written.get(anchor) {
            copies.push((path.to_string(), text.clone()));
        }
        for under in [format!("{anchor}."), format!("{anchor}[")] {
            copies.extend(
                (self.written.range(under.clone()..))
                    .take_while(|(at, _)| at.starts_with(&under))
                    .map(|(at, text)| (format!("{path}{}", &at[anchor.len()..]), text.clone())),
            );
        }
        for (at, text) in copies {
            if !self.spend(at.len() + text.len(), mark) {
                return;
            }
            self.written.entry(at).or_insert(text);
        }
    }

    /// The path of the node starting now (at `mark`); `None` when the event is a mapping key.
    fn node_path(&mut self, key_text: Option<&str>, mark: Marker) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map {
                path,
                key: k @ None,
                seen,
            }) => {
                let key = key_text.unwrap_or("?").to_string();
                let here = place(mark);
                match seen.get(&key) {
                    Some(first) => self.repeats.push(Repeat {
                        path: join(path, &key),
                        key: key.clone(),
                        at: here,
                        first: *first,
                    }),
                    None => {
                        seen.insert(key.clone(), here);
                        self.keys.insert(join(path, &key), here);
                    }
                }
                *k = Some(key);
                None
            }
            Some(Frame::Map {
                path, key: Some(k), ..
            }) => Some(join(path, k)),
            Some(Frame::Seq { path, index }) => Some(format!("{path}[{index}]")),
        }
    }

    /// A value node in the top frame is complete.
    fn finish_value(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        if self.spend(path.len(), mark) {
            self.places.entry(path.to_string()).or_insert(place(mark));
        }
    }

    /// Counts `bytes` more kept; `false` (and the walk marked stopped) past `MAX_PATH_BYTES`.
    fn spend(&mut self, bytes: usize, mark: Marker) -> bool {
        if self.overflow.is_some() {
            return false;
        }
        self.bytes += bytes;
        if self.bytes > MAX_PATH_BYTES {
            let why = format!(
                "this document's values, each kept with its path, pass {} MiB in all (long keys \
                 or values, or many of them, or repeated by aliases)",
                MAX_PATH_BYTES >> 20
            );
            self.overflow = Some((place(mark), why));
            return false;
        }
        true
    }
}

/// What makes a document unsafe to read, placed, with what to say there: an anchor name given
/// twice (`repeated_anchor`), aliases that would expand it past `MAX_EXPANDED` nodes, or
/// nesting past `MAX_DEPTH` (`expanded_size`). Checked before serde reads the document, which
/// expands aliases.
pub fn alias_trouble(text: &str) -> Option<((usize, usize), String)> {
    repeated_anchor(text).or_else(|| expanded_size(text))
}

/// Where aliases first make the document stand for more than `MAX_EXPANDED` nodes: a count
/// of each anchored node's size (an alias counts as the node it stands for), without
/// expanding anything. Events are read one at a time (no recursion: a deeply nested document
/// cannot overflow the stack), and the count stops at the first node past the bound. Where the
/// event parser stops short (a tab after a colon), the rest is not counted, so a rest that
/// holds an alias is refused there: serde might expand it.
fn expanded_size(text: &str) -> Option<((usize, usize), String)> {
    let mut parser = Parser::new_from_str(text);
    // The open collections: their anchor and their size so far; and those sizes' sum.
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut open_total: u64 = 0;
    let mut total: u64 = 0;
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    let mut aliases = false;
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) => {
                let rest = text.chars().skip(e.marker().index()).any(|c| c == '*');
                let why = unreadable(
                    e.info(),
                    "what follows holds an alias, which is not expanded unread",
                );
                return rest.then(|| (place(*e.marker()), why));
            }
        };
        let size = match event {
            Event::StreamEnd | Event::DocumentEnd => return None,
            Event::Scalar(value, _, anchor, _) => {
                // A long value counts once for each `VALUE_UNIT` bytes: repeated, its bytes
                // cost as much as that many short values.
                let size = 1 + (value.len() / VALUE_UNIT) as u64;
                if anchor > 0 {
                    sizes.insert(anchor, size);
                }
                size
            }
            Event::Alias(anchor) => {
                if open.iter().any(|(a, _)| *a == anchor) {
                    let why = "the alias here stands for a node that holds it".to_string();
                    return Some((place(mark), why));
                }
                aliases = true;
                sizes.get(&anchor).copied().unwrap_or(1)
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                open.push((anchor, 1));
                open_total = open_total.saturating_add(1);
                if open.len() > MAX_DEPTH {
                    let why = format!("collections are nested here deeper than {MAX_DEPTH} levels");
                    return Some((place(mark), why));
                }
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let Some((anchor, size)) = open.pop() else {
                    continue;
                };
                open_total = open_total.saturating_sub(size);
                if anchor > 0 {
                    sizes.insert(anchor, size);
                }
                size
            }
            _ => continue,
        };
        match open.last_mut() {
            Some((_, n)) => {
                *n = n.saturating_add(size);
                open_total = open_total.saturating_add(size);
            }
            None => total = total.saturating_add(size),
        }
        if total.saturating_add(open_total) > MAX_EXPANDED {
            let why = match aliases {
                true => format!(
                    "aliases here make the document stand for more than {MAX_EXPANDED} values \
                     (a long value counting once for each {VALUE_UNIT} bytes); name a list once \
                     and use it by name (`in: {{ set: NAME }}`), or write it out"
                ),
                false => format!(
                    "the document holds more than {MAX_EXPANDED} values here (a long value \
                     counting once for each {VALUE_UNIT} bytes)"
                ),
            };
            return Some((place(mark), why));
        }
    }
}

/// What to say where the event parser stops (`info`, its words) though a document may go on
/// (a syntax error, or what YAML 1.2 does not allow though libyaml takes it); then `then`.
fn unreadable(info: &str, then: &str) -> String {
    format!(
        "{info}: the reader that places every value and keeps how it is written stops here, \
         where YAML 1.2 allows less than some readers take (a tab after a colon, or a quoted or \
         bracketed value continued at its key's column): {then}"
    )
}

/// The first anchor name a document gives twice, placed at the second, with what to say there.
/// YAML lets a later `&a` stand for the node after it, but serde_yaml 0.9 numbers anchors by
/// how many it has seen, so an alias after a redefinition can read another node: a policy or a
/// test case that meant one list would silently read another. Such a document is refused.
fn repeated_anchor(text: &str) -> Option<((usize, usize), String)> {
    use yaml_rust2::scanner::{Scanner, Token, TokenType};
    let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
    for Token(mark, kind) in Scanner::new(text.chars()) {
        if let TokenType::Anchor(name) = kind {
            let here = place(mark);
            if let Some((line, col)) = seen.insert(name.clone(), here) {
                return Some((
                    here,
                    format!(
                        "the anchor `&{name}` is given again (first at {line}:{col}); give each \
                         anchor a name of its own"
                    ),
                ));
            }
        }
    }
    None
}

/// A marker's 1-based line and column.
fn place(mark: Marker) -> (usize, usize) {
    (mark.line().max(1), mark.col() + 1)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, style, anchor, _) => {
                if let Some(path) = self.node_path(Some(&text), mark) {
                    self.record(&path, mark);
                    if anchor > 0 {
                        self.anchors.insert(anchor, path.clone());
                    }
                    if style == yaml_rust2::scanner::TScalarStyle::Plain {
                        self.written.entry(path.clone()).or_insert(text);
                    }
                    self.finish_value();
                }
            }
            Event::Alias(anchor) => {
                if let Some(path) = self.node_path(None, mark) {
                    self.record(&path, mark);
                    if let Some(from) = self.anchors.get(&anchor).cloned() {
                        self.copy_written(&from, &path, mark);
                    }
                    self.finish_value();
                }
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let path = self.node_path(None, mark).unwrap_or_default();
                if anchor > 0 {
                    self.anchors.insert(anchor, path.clone());
                }
                self.record(&path, mark);
                self.stack.push(if is_map {
                    Frame::Map {
                        path,
                        key: None,
                        seen: HashMap::new(),
                    }
                } else {
                    Frame::Seq { path, index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.finish_value();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read without recursion and without expanding anything: nesting past `MAX_DEPTH`, an
    /// alias inside the node it names, a long value aliased many times (counted by its bytes),
    /// and an alias after where the event parser stops (a tab after a colon) are each refused
    /// at their place; the same documents in small are not.
    #[test]
    fn unsafe_documents_are_found_before_they_are_read() {
        let deep = format!("c:\n  {}x\n", "- ".repeat(100_000));
        let (at, why) = alias_trouble(&deep).expect("too deep");
        assert!(
            why.contains("deeper than 128 levels") && at.0 == 2,
            "{at:?} {why}"
        );
        assert_eq!(
            alias_trouble(&format!("c:\n  {}x\n", "- ".repeat(100))),
            None
        );
        let (_, why) = alias_trouble("a: &b [x, *b]\n").expect("self alias");
        assert!(why.contains("a node that holds it"), "{why}");
        let long = format!(
            "a: &b \"{}\"\nc: [{}]\n",
            "y".repeat(1 << 20),
            vec!["*b"; 100].join(", ")
        );
        let (_, why) = alias_trouble(&long).expect("long value aliased");
        assert!(why.contains("64 bytes"), "{why}");
        assert_eq!(
            alias_trouble(&format!("a: &b \"{}\"\nc: [*b, *b]\n", "y".repeat(1 << 20))),
            None
        );
        let tab = "name:\tx\na: &b [1]\nc: *b\n";
        let (at, why) = alias_trouble(tab).expect("an alias after the stop");
        assert!(at.0 == 1 && why.contains("holds an alias"), "{at:?} {why}");
        assert_eq!(alias_trouble("name:\tx\na: 1\n"), None, "no alias after it");
    }

    /// An anchor name given twice is refused, at the second; names given once each pass.
    #[test]
    fn an_anchor_given_twice_stops_the_walk() {
        let text = "a: &x [1]\nb: &x [2]\nc: *x\n";
        let stopped = Locations::of(text).stopped().cloned();
        let ((line, col), why) = stopped.expect("refused");
        assert_eq!((line, col), (2, 4));
        assert!(why.contains("`&x` is given again (first at 1:4)"), "{why}");
        assert!(Locations::of("a: &x [1]\nb: &y [2]\nc: *x\n").complete());
    }

    /// Aliases are written as their anchor, whole rows too, and only that node's paths are
    /// copied (`a` is no prefix of `ab`'s); a document whose aliases stand for more than
    /// `MAX_EXPANDED` nodes is stopped before anything is expanded, at the alias that passes
    /// the bound, and one whose paths pass `MAX_PATH_BYTES` where it passes them.
    #[test]
    fn aliases_are_written_as_their_anchor_within_bounds() {
        let l = Locations::of("a: &r { n: 0x1F }\nab: { n: 7 }\nb: *r\nc: &v 1.50\nd: [*v]\n");
        assert!(l.complete());
        assert_eq!(l.written("b.n"), Some("0x1F"));
        assert_eq!(l.written("d[0]"), Some("1.50"));
        assert_eq!(l.written("b"), None);
        let mut bomb = String::from("l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1]\n");
        for i in 1..9 {
            let p = i - 1;
            bomb.push_str(&format!(
                "l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
            ));
        }
        let (at, why) = alias_trouble(&bomb).expect("bounded");
        assert!(why.contains("more than 1000000 values"), "{why}");
        assert_eq!(at.0, 7, "the first alias past the bound: {at:?}");
        let l = Locations::of(&bomb);
        assert!(!l.complete());
        // 2,000 values used by 400 lists is 800,000: within the bound.
        let list = vec!["x"; 2000].join(", ");
        let mut wide = format!("s: &s [{list}]\nuses:\n");
        for _ in 0..400 {
            wide.push_str("  - *s\n");
        }
        assert_eq!(alias_trouble(&wide), None);
        // Long keys, each value kept by its path: stopped past the byte bound.
        let key = "k".repeat(1 << 16);
        let mut long = format!("s: &s [{list}]\n? {key}\n: [");
        long.push_str(&vec!["*s"; 450].join(", "));
        long.push_str("]\n");
        assert_eq!(alias_trouble(&long), None, "900,000 values");
        let l = Locations::of(&long);
        let why = &l.stopped().expect("bounded by bytes").1;
        assert!(why.contains("MiB"), "{why}");
    }

    #[test]
    fn finds_nested_nodes_and_falls_back_to_ancestors() {
        let text = "name: x\nrules:\n  - id: a\n    require:\n      all:\n        - field: instance.region_id\n          eq: cn\n";
        let l = Locations::of(text);
        assert_eq!(l.find("name"), (1, 7));
        assert_eq!(l.find("rules[0].id"), (3, 9));
        assert_eq!(l.find("rules[0].require.all[0].field"), (6, 18));
        assert_eq!(l.find("rules[0].require.all[0].eq"), (7, 15));
        assert_eq!(l.find("rules[0].require.all[0].missing").0, 6);
        // A key's own place, where its value starts on another line.
        assert_eq!(l.find("rules[0].require").0, 5);
        assert_eq!(l.find_key("rules[0].require"), (4, 5));
        assert_eq!(l.find_key("rules[0].id"), (3, 5));
        assert_eq!(l.find_key("rules[0].missing"), l.find("rules[0]"));
    }

    #[test]
    fn the_first_repeated_key_is_placed_at_the_repeat() {
        let text = "name: x\nrules:\n  - id: a\n    message: one\n    remedy: r\n    message: two\n    id: b\nname: y\n";
        let repeat = Locations::of(text).repeats.first().cloned();
        let want = Repeat {
            path: "rules[0].message".to_string(),
            key: "message".to_string(),
            at: (6, 5),
            first: (4, 5),
        };
        assert_eq!(repeat, Some(want));
        // Keys are compared as written (serde compares `1` and `"1"` as values: the caller
        // places the repeat serde names).
        let text = "sets: {1: [a], \"1\": [b]}\nrules:\n  - kind: a\n    kind: b\n";
        let said = repeated_key(text, "rules[0]: duplicate field `kind`");
        assert_eq!(said.map(|(at, _)| at), Some((4, 5)));
        // The same key in two mappings is no repeat.
        let text = "rules:\n  - id: a\n  - id: b\nsets: {a: [x], b: [x]}\n";
        assert_eq!(Locations::of(text).repeats, []);
    }

    #[test]
    fn flow_style_nodes_have_places_too() {
        let l = Locations::of("rules:\n  - {id: a, require: {exists: instance.x}}\n");
        assert_eq!(l.find("rules[0].require.exists"), (2, 31));
    }
}
