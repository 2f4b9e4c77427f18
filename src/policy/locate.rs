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
    /// what the event parser cannot read, where serde may read on (a tab after a colon); an
    /// anchor name given twice, which serde_yaml 0.9 resolves to the wrong node; aliases that
    /// repeat more than `MAX_ALIASED` values.
    stopped: Option<((usize, usize), String)>,
}

/// The most scalars that aliases may repeat in one document: a document of nested aliases
/// (a "billion laughs") repeats exponentially many, which serde_yaml refuses at its own limit.
const MAX_ALIASED: usize = 100_000;

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
        // A syntax error was already reported by serde_yaml; what was read so far still helps.
        let read = Parser::new_from_str(text).load(&mut walker, false);
        let stopped = repeated_anchor(text)
            .or(walker.overflow.take())
            .or_else(|| {
                read.err().map(|e| {
                    let why = format!(
                        "{}: the reader that places every value and keeps how it is written \
                         stops here (a tab after a colon? write spaces)",
                        e.info()
                    );
                    (place(*e.marker()), why)
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
    /// How many scalars aliases have repeated so far, and where they passed `MAX_ALIASED`.
    aliased: usize,
    overflow: Option<((usize, usize), String)>,
}

impl Walker {
    /// An alias at `path` of the node anchored at `anchor`: the scalars written under that
    /// node are written under `path` too (all of that node was read before the alias).
    fn copy_written(&mut self, anchor: &str, path: &str, mark: Marker) {
        if self.overflow.is_some() {
            return;
        }
        // The paths under `anchor` start with it: one range of the ordered map.
        let copies: Vec<(String, String)> = (self.written.range(anchor.to_string()..))
            .take_while(|(at, _)| at.starts_with(anchor))
            .filter_map(|(at, text)| {
                let rest = &at[anchor.len()..];
                (rest.is_empty() || rest.starts_with(['.', '[']))
                    .then(|| (format!("{path}{rest}"), text.clone()))
            })
            .collect();
        self.aliased += copies.len();
        if self.aliased > MAX_ALIASED {
            self.overflow = Some((
                place(mark),
                format!("aliases repeat more than {MAX_ALIASED} values"),
            ));
            return;
        }
        for (at, text) in copies {
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
        self.places.entry(path.to_string()).or_insert(place(mark));
    }
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

    /// Aliases are written as their anchored node, whole rows too, and only that node's paths
    /// are copied (`a` is no prefix of `ab`'s); nested aliases stop at `MAX_ALIASED` values
    /// rather than repeat exponentially many.
    #[test]
    fn aliases_are_written_as_their_anchor_within_a_bound() {
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
        let l = Locations::of(&bomb);
        let why = &l.stopped().expect("bounded").1;
        assert!(why.contains("aliases repeat more than"), "{why}");
        assert!(l.written.len() <= 2 * MAX_ALIASED);
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
