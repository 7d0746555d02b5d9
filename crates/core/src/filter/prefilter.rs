//! The prefilter: which regexes of a mode can match a message at all, found without running
//! any of them.
//!
//! Receives, once, each regex's [`Gate`] (derived from its syntax tree); then messages, and
//! emits a bitset of candidate rules. A regex anchored with `^` whose matches must begin with
//! one of a few literals (`Failed password for `, `error: maximum …`) is a candidate only when
//! the message starts with one of them: a table indexed by the message's first byte makes that
//! a couple of comparisons. Other regexes are candidates when the message contains one of their
//! required keywords (one overlapping Aho-Corasick pass for all of them), and regexes with no
//! usable literal always are. It never allocates per message and never decides a match.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind, Look};

/// Keywords shorter than this are too common to be worth a prefilter entry.
const MIN_KEYWORD: usize = 3;

/// The literal condition a regex's matches satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Anchored at the start: every match begins with one of these (non-empty) literals.
    Prefixes(Vec<Vec<u8>>),
    /// Every match contains one of these literals.
    Keywords(Vec<Vec<u8>>),
    /// Nothing useful is known.
    Always,
}

impl Gate {
    /// The gate of a regex (already `<HOST>`-expanded), parsed as the matcher compiles it.
    pub fn of(pattern: &str) -> Gate {
        let Ok(hir) = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(pattern)
        else {
            return Gate::Always;
        };
        if hir.properties().look_set_prefix().contains(Look::Start) {
            let mut extractor = Extractor::new();
            extractor.kind(ExtractKind::Prefix);
            let seq = extractor.extract(&hir);
            if let Some(literals) = seq.literals()
                && !literals.is_empty()
                && literals.iter().all(|l| !l.as_bytes().is_empty())
            {
                return Gate::Prefixes(literals.iter().map(|l| l.as_bytes().to_vec()).collect());
            }
        }
        match required(&hir) {
            Some(kws) if kws.iter().all(|k| k.len() >= MIN_KEYWORD) => Gate::Keywords(kws),
            _ => Gate::Always,
        }
    }
}

/// A set of literals, one of which every match of `hir` contains; `None` if none is known.
/// Among the candidates of a concatenation, the set whose shortest literal is longest wins.
fn required(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    match hir.kind() {
        HirKind::Literal(lit) => Some(vec![lit.0.to_vec()]),
        HirKind::Capture(cap) => required(&cap.sub),
        HirKind::Repetition(rep) if rep.min >= 1 => required(&rep.sub),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for branch in branches {
                all.extend(required(branch)?);
            }
            Some(all)
        }
        HirKind::Concat(parts) => {
            let mut best: Option<Vec<Vec<u8>>> = None;
            let mut run: Vec<u8> = Vec::new();
            let consider = |candidate: Option<Vec<Vec<u8>>>, best: &mut Option<Vec<Vec<u8>>>| {
                if score(&candidate) > score(best) {
                    *best = candidate;
                }
            };
            for part in parts {
                if let HirKind::Literal(lit) = part.kind() {
                    run.extend_from_slice(&lit.0);
                    continue;
                }
                if !run.is_empty() {
                    consider(Some(vec![std::mem::take(&mut run)]), &mut best);
                }
                consider(required(part), &mut best);
            }
            if !run.is_empty() {
                consider(Some(vec![run]), &mut best);
            }
            best
        }
        _ => None,
    }
}

fn score(keywords: &Option<Vec<Vec<u8>>>) -> usize {
    keywords
        .as_ref()
        .map_or(0, |k| k.iter().map(Vec::len).min().unwrap_or(0))
}

/// One prefix of a [`Gate::Prefixes`] rule. Its first sixteen bytes are also kept as two
/// numbers with masks, so that the many prefixes a message does not start with (a filter has
/// dozens per first byte: `Connection closed by`, `Connection reset by`, …) are told apart by
/// comparisons of numbers, and one of at most sixteen bytes is decided without comparing bytes.
#[derive(Debug, Clone)]
struct Prefix {
    heads: [(u64, u64); 2],
    bytes: Box<[u8]>,
    rule: usize,
}

impl Prefix {
    fn new(bytes: &[u8], rule: usize) -> Prefix {
        let word = |at: usize| {
            let (head, len) = head(bytes.get(at..).unwrap_or_default());
            let mask = match len {
                8 => u64::MAX,
                len => (1u64 << (8 * len)) - 1,
            };
            (head, mask)
        };
        Prefix {
            heads: [word(0), word(8)],
            bytes: bytes.into(),
            rule,
        }
    }

    /// Whether `message`, whose first sixteen bytes are `words`, starts with this prefix.
    fn starts(&self, message: &[u8], words: [u64; 2]) -> bool {
        let [(head0, mask0), (head1, mask1)] = self.heads;
        words[0] & mask0 == head0
            && words[1] & mask1 == head1
            && message.len() >= self.bytes.len()
            && (self.bytes.len() <= 16 || message.starts_with(&self.bytes))
    }
}

/// The first (at most) eight bytes of `bytes` as a little-endian number, and how many.
fn head(bytes: &[u8]) -> (u64, usize) {
    let len = bytes.len().min(8);
    let mut word = [0u8; 8];
    word[..len].copy_from_slice(&bytes[..len]);
    (u64::from_le_bytes(word), len)
}

/// The search for the keywords of [`Gate::Keywords`] rules.
#[derive(Debug, Clone)]
enum Keywords {
    /// A few keywords (the common case: one or two rules of a filter): each found with its own
    /// vectorized substring search, which skips through a message far faster than an
    /// automaton stepping byte by byte.
    Few(Vec<memchr::memmem::Finder<'static>>),
    /// Many: one overlapping Aho-Corasick pass for all of them.
    Many(AhoCorasick),
}

/// Up to this many keywords are searched one by one ([`Keywords::Few`]).
const FEW: usize = 4;

/// Candidate rules of a message, from the rules' gates.
#[derive(Debug, Clone)]
pub struct Prefilter {
    /// For each first byte, the prefixes starting with it and their rule.
    by_first_byte: Vec<Vec<Prefix>>,
    searcher: Option<Keywords>,
    /// Rule of each searcher pattern.
    pattern_rule: Vec<usize>,
    /// Rules that are always candidates.
    always: Vec<u64>,
    any_always: bool,
}

impl Prefilter {
    pub fn new(gates: &[Gate]) -> Prefilter {
        let mut by_first_byte = vec![Vec::new(); 256];
        let mut always = vec![0u64; gates.len().div_ceil(64).max(1)];
        let mut patterns: Vec<&[u8]> = Vec::new();
        let mut pattern_rule = Vec::new();
        for (rule, gate) in gates.iter().enumerate() {
            match gate {
                Gate::Prefixes(prefixes) => {
                    for prefix in prefixes {
                        by_first_byte[usize::from(prefix[0])].push(Prefix::new(prefix, rule));
                    }
                }
                Gate::Keywords(keywords) => {
                    for keyword in keywords {
                        patterns.push(keyword);
                        pattern_rule.push(rule);
                    }
                }
                Gate::Always => always[rule / 64] |= 1 << (rule % 64),
            }
        }
        let searcher = (!patterns.is_empty()).then(|| {
            if patterns.len() <= FEW {
                return Keywords::Few(
                    patterns
                        .iter()
                        .map(|p| memchr::memmem::Finder::new(p).into_owned())
                        .collect(),
                );
            }
            Keywords::Many(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&patterns)
                    .or_else(|_| {
                        AhoCorasick::builder()
                            .match_kind(MatchKind::Standard)
                            .build(&patterns)
                    })
                    .expect("invariant: keywords are short literals, within aho-corasick's limits"),
            )
        });
        let any_always = always.iter().any(|w| *w != 0);
        Prefilter {
            by_first_byte,
            searcher,
            pattern_rule,
            always,
            any_always,
        }
    }

    /// Words of the candidate bitset.
    pub fn words(&self) -> usize {
        self.always.len()
    }

    /// Sets in `out` the bit of every rule that can match `message`; returns whether any is set.
    pub fn candidates(&self, message: &[u8], out: &mut [u64]) -> bool {
        out.copy_from_slice(&self.always);
        let mut any = self.any_always;
        if let Some(&first) = message.first() {
            let words = [
                head(message).0,
                head(message.get(8..).unwrap_or_default()).0,
            ];
            for prefix in &self.by_first_byte[usize::from(first)] {
                if prefix.starts(message, words) {
                    out[prefix.rule / 64] |= 1 << (prefix.rule % 64);
                    any = true;
                }
            }
        }
        match &self.searcher {
            Some(Keywords::Few(finders)) => {
                for (finder, rule) in finders.iter().zip(&self.pattern_rule) {
                    if finder.find(message).is_some() {
                        out[rule / 64] |= 1 << (rule % 64);
                        any = true;
                    }
                }
            }
            Some(Keywords::Many(searcher)) => {
                for hit in searcher.find_overlapping_iter(message) {
                    let rule = self.pattern_rule[hit.pattern().as_usize()];
                    out[rule / 64] |= 1 << (rule % 64);
                    any = true;
                }
            }
            None => {}
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::host::{HostRule, expand};

    fn gate(pattern: &str) -> Gate {
        Gate::of(&expand(pattern, HostRule::Optional).unwrap())
    }

    fn strings(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn gates_from_regexes() {
        let cases: &[(&str, Gate)] = &[
            (
                r"^Invalid user (?P<user>.*) from <HOST>",
                Gate::Prefixes(strings(&["Invalid user "])),
            ),
            (
                r"^(?:error: )?maximum auth",
                Gate::Prefixes(strings(&["error: maximum auth", "maximum auth"])),
            ),
            (
                r"^Failed (?:password|none) for",
                Gate::Prefixes(strings(&["Failed password for", "Failed none for"])),
            ),
            (r"^\w+ <HOST>", Gate::Always),
            (
                r"Failed \S+ for .* from <HOST> port \d+",
                Gate::Keywords(strings(&["Failed "])),
            ),
            (
                r"(?:Connection closed|Disconnected) by <HOST>",
                Gate::Keywords(strings(&["Connection closed", "Disconnected"])),
            ),
            (
                r"[aA]uthentication failure",
                Gate::Keywords(strings(&["uthentication failure"])),
            ),
            (r"(?i)login failed", Gate::Always),
            (r"(?:a|bc) <HOST>", Gate::Always),
            (r"x?yz", Gate::Always),
        ];
        for (pattern, want) in cases {
            assert_eq!(&gate(pattern), want, "{pattern:?}");
        }
    }

    #[test]
    fn marks_candidates() {
        let gates = [
            gate("^Failed x <HOST>"),
            gate("^(?:Invalid|Illegal) user <HOST>"),
            gate(r"^\w+ <HOST>"),
            gate("rhost=<HOST>"),
        ];
        let pre = Prefilter::new(&gates);
        let mut out = vec![0u64; pre.words()];
        assert!(pre.candidates(b"Invalid user 1.2.3.4", &mut out));
        assert_eq!(out[0], 0b0110);
        pre.candidates(b"Failed x Illegal user rhost=", &mut out);
        assert_eq!(out[0], 0b1101);
        let only_anchored = Prefilter::new(&gates[..2]);
        let mut out = vec![0u64; only_anchored.words()];
        assert!(!only_anchored.candidates(b"x Failed x", &mut out));
        assert!(!only_anchored.candidates(b"", &mut out));
        assert_eq!(out[0], 0);
    }

    /// Prefixes shorter and longer than the eight bytes compared as a number, against
    /// messages shorter and longer than them.
    #[test]
    fn prefixes_of_any_length_against_messages_of_any_length() {
        let prefixes = [
            "ab",
            "abcdefgh",
            "abcdefghij",
            "abcdefgh\0",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmno\0",
        ];
        let gates: Vec<Gate> = prefixes
            .iter()
            .map(|p| Gate::Prefixes(strings(&[p])))
            .collect();
        let pre = Prefilter::new(&gates);
        for message in [
            "",
            "a",
            "ab",
            "abc",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghij",
            "abcdefghijk",
            "abcdefgh\0x",
            "xbcdefghij",
            "abcdefgX",
            "abcdefghijklmno",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnopqr",
            "abcdefghijklmno\0",
            "abcdefghijklmnoX",
            "abcdefghijklmnopX",
        ] {
            let mut out = vec![0u64; 1];
            pre.candidates(message.as_bytes(), &mut out);
            let want = prefixes
                .iter()
                .enumerate()
                .filter(|(_, p)| message.starts_with(**p))
                .fold(0u64, |bits, (rule, _)| bits | 1 << rule);
            assert_eq!(out[0], want, "{message:?}");
        }
    }

    /// A few keywords are searched one by one, many in one automaton pass: both mark the same
    /// rules, also where keywords overlap in the message.
    #[test]
    fn few_and_many_keywords_mark_the_same_rules() {
        let words = ["rhost=", "host=x", "ruser ", "user x", "ssh1: ruser "];
        let gates: Vec<Gate> = words
            .iter()
            .map(|w| Gate::Keywords(strings(&[w])))
            .collect();
        let many = Prefilter::new(&gates);
        assert!(matches!(many.searcher, Some(Keywords::Many(_))));
        let messages: [&[u8]; 5] = [
            b"a rhost=x ruser x",
            b"ssh1: ruser x",
            b"nothing here",
            b"rhost=host=x",
            b"",
        ];
        for message in messages {
            let mut want = vec![0u64; 1];
            many.candidates(message, &mut want);
            let mut got = 0u64;
            for (at, chunk) in gates.chunks(FEW).enumerate() {
                let few = Prefilter::new(chunk);
                assert!(matches!(few.searcher, Some(Keywords::Few(_))));
                let mut out = vec![0u64; 1];
                few.candidates(message, &mut out);
                got |= out[0] << (at * FEW);
            }
            assert_eq!(got, want[0], "{:?}", String::from_utf8_lossy(message));
        }
    }
}
