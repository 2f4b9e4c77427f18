//! Where each node of a YAML document stands: a map from a node's path (`rules[2].require.field`)
//! to its line and column, so that problems found after deserialization can name their place.
//! serde_yaml gives no positions for values; yaml-rust2's event parser does, and it reports
//! aliases without expanding them, so this pass is safe on alias bombs.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line and column of every node, by path; and every plain scalar as written.
#[derive(Debug, Default)]
pub struct Locations {
    places: HashMap<String, (usize, usize)>,
    written: HashMap<String, String>,
}

impl Locations {
    pub fn of(text: &str) -> Locations {
        let mut walker = Walker::default();
        // A syntax error was already reported by serde_yaml; what was read so far still helps.
        let _ = Parser::new_from_str(text).load(&mut walker, false);
        Locations {
            places: walker.places,
            written: walker.written,
        }
    }

    /// A plain (unquoted) scalar's text as written, before YAML read it as a number: `0111`,
    /// `1.50` and `0x1F`, where serde gives 111, 1.5 and 31.
    pub fn written(&self, path: &str) -> Option<&str> {
        self.written.get(path).map(String::as_str)
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

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    places: HashMap<String, (usize, usize)>,
    written: HashMap<String, String>,
}

impl Walker {
    /// The path of the node starting now; `None` when the event is a mapping key.
    fn node_path(&mut self, key_text: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { key: k @ None, .. }) => {
                *k = Some(key_text.unwrap_or("?").to_string());
                None
            }
            Some(Frame::Map { path, key: Some(k) }) => Some(join(path, k)),
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
        self.places
            .entry(path.to_string())
            .or_insert((mark.line().max(1), mark.col() + 1));
    }
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
            Event::Scalar(text, style, ..) => {
                if let Some(path) = self.node_path(Some(&text)) {
                    self.record(&path, mark);
                    if style == yaml_rust2::scanner::TScalarStyle::Plain {
                        self.written.entry(path.clone()).or_insert(text);
                    }
                    self.finish_value();
                }
            }
            Event::Alias(_) => {
                if let Some(path) = self.node_path(None) {
                    self.record(&path, mark);
                    self.finish_value();
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let path = self.node_path(None).unwrap_or_default();
                self.record(&path, mark);
                self.stack.push(if is_map {
                    Frame::Map { path, key: None }
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

    #[test]
    fn finds_nested_nodes_and_falls_back_to_ancestors() {
        let text = "name: x\nrules:\n  - id: a\n    require:\n      all:\n        - field: instance.region_id\n          eq: cn\n";
        let l = Locations::of(text);
        assert_eq!(l.find("name"), (1, 7));
        assert_eq!(l.find("rules[0].id"), (3, 9));
        assert_eq!(l.find("rules[0].require.all[0].field"), (6, 18));
        assert_eq!(l.find("rules[0].require.all[0].eq"), (7, 15));
        assert_eq!(l.find("rules[0].require.all[0].missing").0, 6);
    }

    #[test]
    fn flow_style_nodes_have_places_too() {
        let l = Locations::of("rules:\n  - {id: a, require: {exists: instance.x}}\n");
        assert_eq!(l.find("rules[0].require.exists"), (2, 31));
    }
}
