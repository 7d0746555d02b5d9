//! fail2ban's recursive `<tag>` substitution (`substituteRecursiveTags`).
//!
//! Receives: the combined options of a filter (definition, `[Init]` and jail-given options) and
//! a fallback lookup for tags that are not options (`get_ex` on `[Definition]`).
//! Emits: every option with its `<tag>`s replaced, repeatedly, until nothing changes.
//! Never: replaces an unknown tag (`<HOST>` and friends stay for the regex layer) or loops
//! forever (a self reference or more than 25 replacements of one tag is an error).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use crate::fail2ban::python_re::PythonRegex;

static TAG: LazyLock<PythonRegex> = LazyLock::new(|| PythonRegex::internal(r"<([^ <>]+)>"));

const MAX_TAG_REPLACE_COUNT: usize = 25;

/// A self-referencing or runaway definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "properties contain self referencing definitions and cannot be resolved, fail tag: {tag}, found: {found} in value: {value}"
)]
pub struct RecursionError {
    pub tag: String,
    pub found: String,
    pub value: String,
}

/// Substitutes tags in `tags` (ordered name → value) in place.
pub fn substitute_recursive_tags(
    tags: &mut [(String, String)],
    ignore: &HashSet<String>,
    mut fallback: impl FnMut(&str) -> Result<Option<String>, String>,
) -> Result<(), TagError> {
    let mut done: HashSet<String> = HashSet::new();
    let mut replace_counts: HashMap<String, HashMap<String, usize>> = HashMap::new();
    loop {
        let mut repeat = false;
        for index in 0..tags.len() {
            let tag = tags[index].0.clone();
            if ignore.contains(&tag) || done.contains(&tag) {
                continue;
            }
            let original = tags[index].1.clone();
            let mut value = original.clone();
            let mut counts = replace_counts.get(&tag).cloned().unwrap_or_default();
            let mut search_from = 0;
            while let Some(found) = TAG.search_at(&value, search_from) {
                let referenced = found.group(1).unwrap_or_default().to_string();
                let (start, end) = (found.start(), found.end());
                if ignore.contains(&referenced) {
                    search_from = end;
                    continue;
                }
                if referenced == tag
                    || counts.get(&referenced).copied().unwrap_or(1) > MAX_TAG_REPLACE_COUNT
                {
                    return Err(TagError::Recursion(RecursionError {
                        tag,
                        found: referenced,
                        value,
                    }));
                }
                let replacement = match tags.iter().find(|(name, _)| *name == referenced) {
                    Some((_, replacement)) => Some(replacement.clone()),
                    None => fallback(&referenced).map_err(TagError::Lookup)?,
                };
                let Some(replacement) = replacement else {
                    // Unknown tags stay (they may be <HOST>, <F-USER>, …).
                    search_from = end;
                    continue;
                };
                value = value.replace(&format!("<{referenced}>"), &replacement);
                *counts.entry(referenced).or_insert(0) += 1;
                search_from = start;
            }
            if original != value {
                if TAG.is_match(&value) {
                    replace_counts.insert(tag.clone(), counts);
                    repeat = true;
                }
                tags[index].1 = value.clone();
            }
            if !value.contains('<') {
                done.insert(tag);
            }
        }
        if !repeat {
            return Ok(());
        }
    }
}

/// Why substitution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error(transparent)]
    Recursion(RecursionError),
    /// The fallback lookup failed (an interpolation error in the referenced option).
    #[error("{0}")]
    Lookup(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pairs: &[(&str, &str)]) -> Result<Vec<(String, String)>, TagError> {
        let mut tags: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        substitute_recursive_tags(&mut tags, &HashSet::new(), |name| {
            Ok((name == "fallback").then(|| "F".to_string()))
        })?;
        Ok(tags)
    }

    #[test]
    fn substitutes_recursively_and_keeps_unknown_tags() {
        let tags = run(&[
            ("a", "3"),
            ("b", "<a>_3"),
            ("c", "<b>-<HOST>-<fallback>"),
            ("d", "<lt_<a>>"),
            ("lt_3", "x"),
        ])
        .unwrap();
        assert_eq!(tags[1].1, "3_3");
        assert_eq!(tags[2].1, "3_3-<HOST>-F");
        assert_eq!(tags[3].1, "x");
    }

    #[test]
    fn refuses_self_reference() {
        assert!(run(&[("a", "<a>")]).is_err());
        assert!(run(&[("a", "<b>"), ("b", "<a>")]).is_err());
    }
}
