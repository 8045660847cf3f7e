//! Positions of keys and items in a YAML file, so that an error found after
//! parsing (an unknown field, an unset variable, an unknown input) can still
//! name its file, line and column.
//!
//! serde_yaml's `Value` forgets positions; yaml-rust2's event parser keeps
//! them. Config files are small, so reading each one twice costs nothing.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a path into a YAML document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// 1-based line and column of every mapping key and sequence item.
#[derive(Debug, Default)]
pub struct Locator {
    positions: HashMap<Vec<Seg>, (usize, usize)>,
}

impl Locator {
    /// Index `text`. A file that yaml-rust2 cannot parse gets an empty index:
    /// its errors then point at line 1.
    pub fn new(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return Self::default();
        }
        Self { positions: builder.positions }
    }

    /// The position of `path`, or of its nearest known ancestor.
    pub fn find(&self, path: &[Seg]) -> (usize, usize) {
        (0..=path.len())
            .rev()
            .find_map(|len| self.positions.get(&path[..len]).copied())
            .unwrap_or((1, 1))
    }
}

enum Frame {
    Map { path: Vec<Seg>, key: Option<String> },
    Seq { path: Vec<Seg>, index: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    positions: HashMap<Vec<Seg>, (usize, usize)>,
}

impl Builder {
    /// The path of a value that starts now, recording item positions; `None`
    /// when the node is a mapping key (recorded by `on_key`).
    fn value_path(&mut self, mark: Marker) -> Option<Vec<Seg>> {
        let position = (mark.line(), mark.col() + 1);
        match self.stack.last_mut() {
            None => Some(Vec::new()),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Map { path, key: Some(key) }) => {
                let mut path = path.clone();
                path.push(Seg::Key(key.clone()));
                Some(path)
            }
            Some(Frame::Seq { path, index }) => {
                let mut path = path.clone();
                path.push(Seg::Index(*index));
                self.positions.entry(path.clone()).or_insert(position);
                Some(path)
            }
        }
    }

    /// A value (scalar or closed container) is complete in its parent.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }

    fn on_scalar(&mut self, text: String, mark: Marker) {
        if let Some(Frame::Map { path, key: key @ None }) = self.stack.last_mut() {
            let mut key_path = path.clone();
            key_path.push(Seg::Key(text.clone()));
            self.positions.entry(key_path).or_insert((mark.line(), mark.col() + 1));
            *key = Some(text);
            return;
        }
        self.value_path(mark);
        self.value_done();
    }

    fn open(&mut self, mark: Marker, map: bool) {
        // A container used as a mapping key is not addressable; give it a
        // placeholder key so the structure stays balanced.
        let path = self.value_path(mark).unwrap_or_else(|| vec![Seg::Key("?".into())]);
        self.stack.push(if map {
            Frame::Map { path, key: None }
        } else {
            Frame::Seq { path, index: 0 }
        });
    }

    fn close(&mut self) {
        self.stack.pop();
        if let Some(Frame::Map { key: key @ None, .. }) = self.stack.last_mut() {
            // The container was a (complex) key; its value follows.
            *key = Some("?".into());
        } else {
            self.value_done();
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => self.on_scalar(text, mark),
            Event::Alias(_) => self.on_scalar(String::new(), mark),
            Event::MappingStart(..) => self.open(mark, true),
            Event::SequenceStart(..) => self.open(mark, false),
            Event::MappingEnd | Event::SequenceEnd => self.close(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.into())
    }

    #[test]
    fn finds_keys_and_items() {
        let text = "sources:\n  in:\n    type: file\n    inputs: [a, b]\nsinks:\n  - x: 1\n    y: {z: 2}\n";
        let locator = Locator::new(text);
        assert_eq!(locator.find(&[key("sources")]), (1, 1));
        assert_eq!(locator.find(&[key("sources"), key("in")]), (2, 3));
        assert_eq!(locator.find(&[key("sources"), key("in"), key("type")]), (3, 5));
        assert_eq!(
            locator.find(&[key("sources"), key("in"), key("inputs"), Seg::Index(1)]),
            (4, 17)
        );
        assert_eq!(locator.find(&[key("sinks"), Seg::Index(0), key("x")]), (6, 5));
        assert_eq!(locator.find(&[key("sinks"), Seg::Index(0), key("y"), key("z")]), (7, 9));
    }

    #[test]
    fn unknown_paths_fall_back_to_the_nearest_ancestor() {
        let locator = Locator::new("a:\n  b: 1\n");
        assert_eq!(locator.find(&[key("a"), key("b"), key("c")]), (2, 3));
        assert_eq!(locator.find(&[key("zzz")]), (1, 1));
    }
}
