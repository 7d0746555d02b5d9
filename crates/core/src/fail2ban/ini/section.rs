//! Ordered option maps with the place of every value, as Python's dicts keep them.
//!
//! Receives: option names and values from the parser and the include merger.
//! Emits: lookups in insertion order; an update keeps the first position of a key.
//! Never: reorders keys (fail2ban's option order decides the order of its regexes).

use crate::fail2ban::finding::Place;

/// A raw (not interpolated) value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub place: Place,
    /// The file line of every line of `text` (same length as `text.split('\n')`).
    pub lines: Vec<u32>,
}

impl Value {
    /// A value that was not read from a file line (options given on the command line, defaults).
    pub fn synthetic(text: impl Into<String>, place: Place) -> Self {
        let text = text.into();
        let count = text.split('\n').count();
        let line = place.line.unwrap_or(0);
        Value {
            text,
            lines: vec![line; count],
            place,
        }
    }

    /// The file line of line `index` of this value.
    pub fn line_of(&self, index: usize) -> Option<u32> {
        self.lines
            .get(index)
            .copied()
            .filter(|line| *line > 0)
            .or(self.place.line)
    }
}

/// An ordered map of option name → value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    entries: Vec<(String, Value)>,
}

impl Section {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name`, keeping its position if it already exists (Python's `dict[name] = value`).
    pub fn insert(&mut self, name: String, value: Value) {
        match self.entries.iter_mut().find(|(key, _)| *key == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(key, _)| key == name)?;
        Some(self.entries.remove(index).1)
    }

    /// Python's `dict.update(other)`.
    pub fn update(&mut self, other: &Section) {
        for (name, value) in &other.entries {
            self.insert(name.clone(), value.clone());
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(key, _)| key.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_str(), value))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Sections in the order they were first seen, plus `[DEFAULT]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sections {
    pub defaults: Section,
    entries: Vec<(String, Section)>,
}

impl Sections {
    pub fn get(&self, name: &str) -> Option<&Section> {
        self.entries
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, section)| section)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Section> {
        self.entries
            .iter_mut()
            .find(|(key, _)| key == name)
            .map(|(_, section)| section)
    }

    /// The section `name`, created empty at the end if missing.
    pub fn get_or_create(&mut self, name: &str) -> &mut Section {
        let index = match self.entries.iter().position(|(key, _)| key == name) {
            Some(index) => index,
            None => {
                self.entries.push((name.to_string(), Section::default()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[index].1
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(key, _)| key.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.entries
            .iter()
            .map(|(key, section)| (key.as_str(), section))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}
