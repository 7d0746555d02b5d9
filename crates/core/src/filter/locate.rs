//! Finding the `host`, `user` and `echo` groups of a match without the backtracker.
//!
//! Receives a rule's expanded regex once, at compile time, and later the start of a match the
//! rule's own regex found (its lazy DFA, no captures); emits the spans of the three groups, or
//! `None` when this shortcut cannot be sure, and the caller then asks the regex for its
//! captures as before. Never guesses: a span it returns is the one the captures would report.
//!
//! How. A regex whose groups of interest all sit at the top level of its concatenation is
//! split there into pieces: `A (?P<user>U) B (?P<host>H) C` gives `A`, `U`, `B`, `H`, `C`,
//! each compiled alone with the same syntax. The captures report the first successful path of
//! the regex in priority order (leftmost-first). Its choices inside `A` come before those
//! inside the rest, so its `A` part is the first path of `A` that both completes `A` and lets
//! the rest succeed from where it ends. The anchored leftmost-first search of `A` alone gives
//! the first path that completes `A`; so when, piece after piece, each anchored search from
//! where the last one ended succeeds up to the last piece, that chain is the regex's first
//! successful path, and its piece boundaries are the groups' spans. When some piece finds no
//! match from there (the regex had to backtrack into an earlier piece: `<HOST>:\d+` after an
//! IPv6 address that ate the port), `None`. A regex with a group of interest inside a
//! repetition or an alternation is not split at all (its rules always use the captures).

use regex_automata::meta::{self, Regex};
use regex_automata::{Anchored, Input};
use regex_syntax::hir::{Hir, HirKind};

use super::host;

/// The group names a match's consumer reads.
const NAMES: [&str; 3] = [host::GROUP, "user", "echo"];

/// The spans of the groups of interest in one match (byte offsets into the haystack).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spans {
    pub host: Option<(usize, usize)>,
    pub user: Option<(usize, usize)>,
    pub echo: Option<(usize, usize)>,
}

/// One piece of a split regex: the text between two groups of interest, or a group's body.
#[derive(Debug, Clone)]
struct Piece {
    /// `None`: the piece is empty (it matches where it starts).
    regex: Option<Regex>,
    /// The group this piece is the body of (an index into [`NAMES`]).
    group: Option<usize>,
}

/// The pieces of one rule's regex.
#[derive(Debug, Clone)]
pub struct Locator {
    pieces: Vec<Piece>,
}

/// Search caches of one [`Locator`], one per piece (owned by a matcher).
#[derive(Debug, Clone)]
pub struct LocatorCache {
    caches: Vec<Option<meta::Cache>>,
}

impl Locator {
    /// The locator of an expanded regex as `regex::bytes::RegexBuilder::new(..).unicode(false)`
    /// compiles it; `None` when the regex cannot be split (its rule then uses the captures).
    pub fn new(expanded: &str) -> Option<Locator> {
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(expanded)
            .ok()?;
        let items: Vec<Hir> = match hir.kind() {
            HirKind::Concat(items) => items.clone(),
            _ => vec![hir.clone()],
        };
        let named = |item: &Hir| match item.kind() {
            HirKind::Capture(capture) => capture
                .name
                .as_deref()
                .and_then(|name| NAMES.iter().position(|n| *n == name)),
            _ => None,
        };
        let top_level = items.iter().filter(|item| named(item).is_some()).count();
        if count_named(&hir) == 0 {
            // Nothing to locate: the match itself is all a consumer needs.
            return Some(Locator { pieces: Vec::new() });
        }
        if top_level != count_named(&hir) {
            return None; // a group of interest is nested: only the captures know its span
        }
        let mut pieces = Vec::new();
        let mut between = Vec::new();
        for item in items {
            if let Some(group) = named(&item) {
                pieces.push(Piece::new(Hir::concat(std::mem::take(&mut between)), None)?);
                let HirKind::Capture(capture) = item.kind() else {
                    return None;
                };
                pieces.push(Piece::new((*capture.sub).clone(), Some(group))?);
            } else {
                between.push(item);
            }
        }
        pieces.push(Piece::new(Hir::concat(between), None)?);
        Some(Locator { pieces })
    }

    pub fn cache(&self) -> LocatorCache {
        LocatorCache {
            caches: self
                .pieces
                .iter()
                .map(|piece| piece.regex.as_ref().map(Regex::create_cache))
                .collect(),
        }
    }

    /// The groups' spans of the match of the whole regex that starts at `start` and ends at
    /// `end`; `None` when the chain of pieces does not reach `end` (see the module doc).
    pub fn locate(
        &self,
        cache: &mut LocatorCache,
        haystack: &[u8],
        start: usize,
        end: usize,
    ) -> Option<Spans> {
        let mut spans = Spans::default();
        if self.pieces.is_empty() {
            return Some(spans);
        }
        let mut at = start;
        for (piece, cache) in self.pieces.iter().zip(cache.caches.iter_mut()) {
            let from = at;
            if let (Some(regex), Some(cache)) = (&piece.regex, cache) {
                let input = Input::new(haystack)
                    .range(from..)
                    .anchored(Anchored::Yes);
                at = regex.search_half_with(cache, &input)?.offset();
            }
            let span = Some((from, at));
            match piece.group {
                Some(0) => spans.host = span,
                Some(1) => spans.user = span,
                Some(2) => spans.echo = span,
                _ => {}
            }
        }
        // The chain is the first successful path, so it ends where the match does; anything
        // else would mean the reasoning above does not hold for this regex: trust the captures.
        (at == end).then_some(spans)
    }
}

impl Piece {
    fn new(hir: Hir, group: Option<usize>) -> Option<Piece> {
        if matches!(hir.kind(), HirKind::Empty) {
            return Some(Piece { regex: None, group });
        }
        let regex = meta::Builder::new()
            .configure(meta::Config::new().utf8_empty(false))
            .build_from_hir(&hir)
            .ok()?;
        Some(Piece {
            regex: Some(regex),
            group,
        })
    }
}

/// How many groups of interest `hir` holds, at any depth.
fn count_named(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Capture(capture) => {
            let own = capture
                .name
                .as_deref()
                .is_some_and(|name| NAMES.contains(&name));
            usize::from(own) + count_named(&capture.sub)
        }
        HirKind::Concat(items) | HirKind::Alternation(items) => items.iter().map(count_named).sum(),
        HirKind::Repetition(repetition) => count_named(&repetition.sub),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::host::{HostRule, expand};
    use regex::bytes::RegexBuilder;

    /// The spans the captures report, for comparison.
    fn by_captures(pattern: &str, text: &str) -> Option<Spans> {
        let regex = RegexBuilder::new(pattern).unicode(false).build().unwrap();
        let caps = regex.captures(text.as_bytes())?;
        let span = |name| caps.name(name).map(|m| (m.start(), m.end()));
        Some(Spans {
            host: span("host"),
            user: span("user"),
            echo: span("echo"),
        })
    }

    fn by_locator(pattern: &str, text: &str) -> Option<Option<Spans>> {
        let locator = Locator::new(pattern)?;
        let regex = RegexBuilder::new(pattern).unicode(false).build().unwrap();
        let found = regex.find(text.as_bytes())?;
        let mut cache = locator.cache();
        Some(locator.locate(&mut cache, text.as_bytes(), found.start(), found.end()))
    }

    #[test]
    fn spans_agree_with_the_captures_or_defer_to_them() {
        let cases: &[(&str, &str)] = &[
            (r"^Failed \S+ for (?:invalid user )?(?P<user>.*?) from <HOST>(?: port \d+)?(?: on \S+)?(?: ssh\d?)?$", "Failed password for invalid user a from b from 192.0.2.1 port 22 ssh2"),
            (r"^Failed \S+ for (?:invalid user )?(?P<user>.*?) from <HOST>(?: port \d+)?(?: on \S+)?(?: ssh\d?)?$", "Failed password for root from 2001:db8::1 port 22 ssh2"),
            (r"^Failed \S+ for (?:invalid user )?(?P<user>.*?) from <HOST>(?: port \d+)?$", "Failed password for invalid user  from 10.0.0.1"),
            (r"^(?i)invalid user (?P<user>\S+) from <HOST>", "INVALID USER x from 10.1.1.1 trailing"),
            (r"connect from \S+\[<HOST>\]:\d+", "postfix: connect from unknown[2001:db8::2]:25"),
            // Backtracking into the host: the IPv6 branch eats the port, the chain fails.
            (r"^from <HOST>:\d+$", "from 2001:db8::1:2222"),
            (r"^from <HOST>:\d+$", "from 192.0.2.7:2222"),
            (r"^user (?P<user>\S+) repeated (?P<echo>\S+) from <HOST>", "user bob repeated bob from 192.0.2.9"),
            (r"(?m:^)Failed \S+ for (?P<user>\S+) from <HOST> port \d+ ssh1: ruser .*$", "Failed none for x from 192.0.2.3 port 1 ssh1: ruser y"),
            (r"^a(?P<user>.*) <HOST>$", "a b c 1.2.3.4 5.6.7.8"),
            (r"\bfrom\b <HOST>\b", "xfrom 1.1.1.1 from 2.2.2.2"),
            (r"^kex: (?:read: )?closed", "kex: read: closed"),
        ];
        for (pattern, text) in cases {
            let expanded = expand(pattern, HostRule::Optional).unwrap();
            let want = by_captures(&expanded, text);
            match by_locator(&expanded, text) {
                Some(Some(got)) => assert_eq!(Some(got), want, "{pattern} on {text}"),
                Some(None) => assert!(want.is_some(), "{pattern}: a match without spans"),
                None => assert!(want.is_none(), "{pattern} on {text}: no match found"),
            }
        }
    }

    #[test]
    fn the_ipv6_host_before_a_port_is_left_to_the_captures() {
        // The greedy host group must give back the port: only backtracking finds that.
        let expanded = expand(r"^from <HOST>:\d+$", HostRule::Required).unwrap();
        assert_eq!(by_locator(&expanded, "from 2001:db8::1:2222"), Some(None));
    }

    #[test]
    fn nested_groups_are_not_split() {
        let nested = [
            r"^(?:a (?P<user>\S+)|b) from <HOST>",
            r"^x(?: for (?P<user>.*?))? <HOST>",
            r"^(?:from <HOST>)+",
        ];
        for pattern in nested {
            let expanded = expand(pattern, HostRule::Required).unwrap();
            assert!(Locator::new(&expanded).is_none(), "{pattern}");
        }
        let flat = expand(r"^from <HOST> port", HostRule::Required).unwrap();
        assert!(Locator::new(&flat).is_some());
        assert!(Locator::new(r"^kex_exchange_identification: (a|b)").is_some());
    }
}
