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
//! successful path, and its piece boundaries are the groups' spans. A group whose body repeats
//! one byte class (`(?P<user>.*?)`, `\S+`) is tried length by length in its own order, the
//! first that lets the rest of the regex match winning: after each length the pieces that
//! follow are chained (when they all match, the rest matches, and this is its first path), and
//! only where they do not is the rest searched as a whole, to tell "not from here" from "only
//! the captures can split it" (at most 64 lengths in all, else the captures). When some piece
//! finds no
//! match from there (the regex had to backtrack into an earlier piece: `<HOST>:\d+` after an
//! IPv6 address that ate the port), `None`. A regex with a group of interest inside a
//! repetition or an alternation is not split at all (its rules always use the captures).

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::{Anchored, Input};
use regex_syntax::hir::{Class, Hir, HirKind};

use super::host;

/// Lengths of a [`Run`] tried before deferring to the captures.
const TRIES: usize = 64;

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
    /// `None`: the piece is empty (it matches where it starts) or a [`Piece::literal`].
    regex: Option<DFA>,
    /// The group this piece is the body of (an index into [`NAMES`]).
    group: Option<usize>,
    /// A group's body that repeats one byte class (`.*?`, `\S+`), with the rest of the regex
    /// after it: its paths are its lengths, tried in its order (see [`Run`]).
    run: Option<(Run, DFA)>,
    /// The piece is these bytes and nothing else (` from `): compared, not searched.
    literal: Option<Box<[u8]>>,
    /// The piece is `<HOST>`'s body: read by [`host::body_end`], not searched.
    host_body: bool,
}

/// What every match of a regex starts with, when that is a short list of literals: a length
/// of a [`Run`] after which the text starts with none of them cannot let the rest match, and
/// is passed over without a search (a lazy `(?P<user>.*?) from` then searches only where the
/// text continues with ` from`, not at every byte).
#[derive(Debug, Clone)]
struct Starts {
    literals: Vec<Vec<u8>>,
}

/// A repetition of one byte class: its paths are its lengths, longest first when greedy,
/// shortest first when lazy; the first one after which the rest of the regex matches is the
/// one the captures take (a lazy `(?P<user>.*?) from` ends at the first ` from` that lets the
/// whole regex match, which the first path of `.*?` alone, the empty one, is not).
#[derive(Debug, Clone)]
struct Run {
    class: [bool; 256],
    min: usize,
    max: Option<usize>,
    greedy: bool,
    /// What the rest of the regex starts with, when known: lengths the text does not continue
    /// with one of these after are not tried.
    then: Option<Starts>,
}

/// The pieces of one rule's regex.
#[derive(Debug, Clone)]
pub struct Locator {
    pieces: Vec<Piece>,
    /// The regex starts with `^` (not multi-line): every match starts at 0, so a chain that
    /// succeeds from 0 is the match, and the regex need not be searched first.
    anchored: bool,
}

/// Search caches of one [`Locator`], for each piece its own and its rest's (owned by a
/// matcher).
#[derive(Debug, Clone)]
pub struct LocatorCache {
    caches: Vec<(Option<Cache>, Option<Cache>)>,
}

impl Locator {
    /// The locator of an expanded regex as `regex::bytes::RegexBuilder::new(..).unicode(false)`
    /// compiles it; `None` when the regex cannot be split (its rule then uses the captures).
    pub fn new(expanded: &str) -> Option<Locator> {
        let hir = parser().parse(expanded).ok()?;
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
        let anchored = matches!(
            items.first().map(Hir::kind),
            Some(HirKind::Look(regex_syntax::hir::Look::Start))
        );
        if count_named(&hir) == 0 {
            // Nothing to locate: the match itself is all a consumer needs.
            return Some(Locator {
                pieces: Vec::new(),
                anchored: false,
            });
        }
        if top_level != count_named(&hir) {
            return None; // a group of interest is nested: only the captures know its span
        }
        let mut pieces = Vec::new();
        let mut between = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if let Some(group) = named(item) {
                pieces.push(Piece::new(Hir::concat(std::mem::take(&mut between)), None)?);
                let HirKind::Capture(capture) = item.kind() else {
                    return None;
                };
                let mut piece = Piece::new((*capture.sub).clone(), Some(group))?;
                if let Some(mut run) = Run::of(&capture.sub) {
                    let rest = Hir::concat(items[index + 1..].to_vec());
                    run.then = Starts::of(&rest);
                    piece.run = Some((run, build(&rest)?));
                }
                pieces.push(piece);
            } else {
                between.push(item.clone());
            }
        }
        pieces.push(Piece::new(Hir::concat(between), None)?);
        Some(Locator { pieces, anchored })
    }

    /// Whether [`Locator::locate_anchored`] can stand for a search of the regex: it starts
    /// with `^` and has groups to locate.
    pub fn anchored(&self) -> bool {
        self.anchored && !self.pieces.is_empty()
    }

    /// For a regex starting with `^` ([`Locator::anchored`]): the groups' spans and the end of
    /// the regex's match in `haystack`, found without searching the regex itself. A chain of
    /// pieces that succeeds from 0 is a path of the whole regex, so the regex matches, and
    /// (module doc) it is the first path, the one the captures report. `None`: no match, or
    /// one only the captures can split; the caller searches the regex to know which.
    pub fn locate_anchored(
        &self,
        cache: &mut LocatorCache,
        haystack: &[u8],
    ) -> Option<(Spans, usize)> {
        if !self.anchored() {
            return None;
        }
        self.chain(cache, haystack, 0)
    }

    pub fn cache(&self) -> LocatorCache {
        LocatorCache {
            caches: self
                .pieces
                .iter()
                .map(|piece| {
                    let own = piece.regex.as_ref().map(DFA::create_cache);
                    let rest = piece.run.as_ref().map(|(_, rest)| rest.create_cache());
                    (own, rest)
                })
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
        if self.pieces.is_empty() {
            return Some(Spans::default());
        }
        let (spans, at) = self.chain(cache, haystack, start)?;
        // The chain is the first successful path, so it ends where the match does; anything
        // else would mean the reasoning above does not hold for this regex: trust the captures.
        (at == end).then_some(spans)
    }

    /// The pieces matched one after the other from `start`: the groups' spans and where the
    /// last piece ends; `None` when a piece finds no match where the last one ended.
    fn chain(
        &self,
        cache: &mut LocatorCache,
        haystack: &[u8],
        start: usize,
    ) -> Option<(Spans, usize)> {
        let mut spans = Spans::default();
        let mut budget = TRIES;
        let end = follow(
            &self.pieces,
            &mut cache.caches,
            haystack,
            start,
            &mut spans,
            &mut budget,
        )?;
        Some((spans, end))
    }
}

/// The caches of one piece: its own, and its rest's (a [`Run`]'s).
type PieceCaches = (Option<Cache>, Option<Cache>);

/// What one length of a [`Run`] gave.
enum Try {
    /// The pieces after the run matched from there, up to this end.
    Found(usize),
    /// Not from there; the next length may do.
    Next,
    /// Only the captures can tell (the rest of the regex matches from there, and its pieces
    /// do not chain; or the budget of tries is spent).
    GiveUp,
}

/// Matches `pieces` one after the other from `at`, recording the groups' spans in `spans`;
/// returns where the last one ends. A [`Run`] is tried length by length, each followed by the
/// pieces after it (recursively); the first length after which they all match is the run's
/// path, as it is the first after which the rest of the regex matches (module doc). Where they
/// do not, the rest is searched as a whole: when it matches from there, the regex's path goes
/// through a split the pieces cannot find, and only the captures can. Every length tried, at
/// any depth, spends one of `budget` tries.
fn follow(
    pieces: &[Piece],
    caches: &mut [PieceCaches],
    haystack: &[u8],
    mut at: usize,
    spans: &mut Spans,
    budget: &mut usize,
) -> Option<usize> {
    for index in 0..pieces.len() {
        let piece = &pieces[index];
        let from = at;
        let (own, later) = caches[index..].split_first_mut()?;
        match piece {
            Piece {
                run: Some((run, rest)),
                ..
            } => {
                let rest_cache = own.1.as_mut()?;
                let mut found = None;
                let end = run.lengths(haystack, from, |x| {
                    if *budget == 0 {
                        return Try::GiveUp;
                    }
                    *budget -= 1;
                    let mut after = *spans;
                    if let Some(end) =
                        follow(&pieces[index + 1..], later, haystack, x, &mut after, budget)
                    {
                        found = Some((x, after));
                        return Try::Found(end);
                    }
                    match anchored_end(rest, rest_cache, haystack, x) {
                        Ok(None) => Try::Next,
                        // It matches, or the lazy DFA gave up: only the captures can tell.
                        Ok(Some(_)) | Err(_) => Try::GiveUp,
                    }
                })?;
                let (x, after) = found?;
                *spans = after;
                record(spans, piece.group, (from, x));
                // The pieces after the run were matched by the recursion.
                return Some(end);
            }
            Piece {
                literal: Some(literal),
                ..
            } => {
                if !haystack[from..].starts_with(literal) {
                    return None;
                }
                at = from + literal.len();
            }
            Piece {
                host_body: true, ..
            } => at = host::body_end(haystack, from)?,
            Piece {
                regex: Some(regex), ..
            } => at = anchored_end(regex, own.0.as_mut()?, haystack, from).ok()??,
            _ => {}
        }
        record(spans, piece.group, (from, at));
    }
    Some(at)
}

/// Notes the span of a group's piece.
fn record(spans: &mut Spans, group: Option<usize>, span: (usize, usize)) {
    match group {
        Some(0) => spans.host = Some(span),
        Some(1) => spans.user = Some(span),
        Some(2) => spans.echo = Some(span),
        _ => {}
    }
}

impl Piece {
    fn new(hir: Hir, group: Option<usize>) -> Option<Piece> {
        // A literal piece is compared and the host's body read, never searched: neither needs
        // a regex (nor its caches).
        let host_body = group == Some(0) && host_body_hir().is_some_and(|body| *body == hir);
        let (regex, literal) = match hir.kind() {
            _ if host_body => (None, None),
            HirKind::Empty => (None, None),
            HirKind::Literal(literal) => (None, Some(literal.0.clone())),
            _ => (Some(build(&hir)?), None),
        };
        Some(Piece {
            regex,
            group,
            run: None,
            literal,
            host_body,
        })
    }
}

/// [`host::BODY`] as a locator parses it, to know a host group's piece when it is exactly that
/// (under a flag that changes it, `(?U)`, which makes its repetitions lazy, it is not, and is
/// searched; `(?i)` leaves it as it is).
fn host_body_hir() -> Option<&'static Hir> {
    static BODY: std::sync::OnceLock<Option<Hir>> = std::sync::OnceLock::new();
    BODY.get_or_init(|| parser().parse(host::BODY).ok())
        .as_ref()
}

/// The parser of a locator: a regex as `regex::bytes::RegexBuilder::new(..).unicode(false)`
/// reads it.
fn parser() -> regex_syntax::Parser {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
}

impl Run {
    fn of(hir: &Hir) -> Option<Run> {
        let HirKind::Repetition(repetition) = hir.kind() else {
            return None;
        };
        let HirKind::Class(Class::Bytes(bytes)) = repetition.sub.kind() else {
            return None;
        };
        let mut class = [false; 256];
        for range in bytes.ranges() {
            for byte in range.start()..=range.end() {
                class[usize::from(byte)] = true;
            }
        }
        Some(Run {
            class,
            min: usize::try_from(repetition.min).ok()?,
            max: repetition.max.and_then(|max| usize::try_from(max).ok()),
            greedy: repetition.greedy,
            then: None,
        })
    }

    /// Tries this run's paths from `from` in its order (lengths the rest of the regex cannot
    /// start after are passed over): `attempt` says what each gave; the end it found, or
    /// `None` when no length did or it gave up.
    fn lengths(
        &self,
        haystack: &[u8],
        from: usize,
        mut attempt: impl FnMut(usize) -> Try,
    ) -> Option<usize> {
        let available = haystack[from..]
            .iter()
            .take_while(|&&byte| self.class[usize::from(byte)])
            .count();
        let longest = self.max.map_or(available, |max| max.min(available));
        if longest < self.min {
            return None;
        }
        let mut lengths = self.min..=longest;
        loop {
            let length = if self.greedy {
                lengths.next_back()?
            } else {
                lengths.next()?
            };
            let at = from + length;
            if self
                .then
                .as_ref()
                .is_some_and(|starts| !starts.at(&haystack[at..]))
            {
                continue; // the rest cannot match here: nothing to try
            }
            match attempt(at) {
                Try::Found(end) => return Some(end),
                Try::Next => {}
                Try::GiveUp => return None,
            }
        }
    }
}

impl Starts {
    /// Most literals kept: past that, checking them costs more than the searches they spare.
    const MOST: usize = 8;

    /// The literals every match of `hir` starts with; `None` when they are not a short list of
    /// non-empty literals (the rest may be empty, start with a class, or with too many words).
    fn of(hir: &Hir) -> Option<Starts> {
        use regex_syntax::hir::literal::{ExtractKind, Extractor};
        let mut extractor = Extractor::new();
        extractor.kind(ExtractKind::Prefix).limit_total(64);
        let seq = extractor.extract(hir);
        let literals = seq.literals()?;
        if literals.is_empty()
            || literals.len() > Self::MOST
            || literals.iter().any(|l| l.as_bytes().is_empty())
        {
            return None;
        }
        Some(Starts {
            literals: literals.iter().map(|l| l.as_bytes().to_vec()).collect(),
        })
    }

    /// Whether `text` starts with one of the literals.
    fn at(&self, text: &[u8]) -> bool {
        self.literals.iter().any(|l| text.starts_with(l))
    }
}

/// The end of the leftmost-first match of `dfa` that starts at `from` (`Err`: the lazy DFA
/// could not tell, which the callers treat as "ask the captures").
fn anchored_end(
    dfa: &DFA,
    cache: &mut Cache,
    haystack: &[u8],
    from: usize,
) -> Result<Option<usize>, regex_automata::MatchError> {
    let input = Input::new(haystack).range(from..).anchored(Anchored::Yes);
    Ok(dfa.try_search_fwd(cache, &input)?.map(|half| half.offset()))
}

/// A piece compiled as the regex crate compiles a `regex::bytes::Regex`, down to the lazy DFA
/// its searches run (leftmost-first, bytes): a piece is only ever searched anchored for where
/// its match ends, so the meta regex's other engines (reverse DFAs, the PikeVM, the
/// backtracker), their compilation and their caches, would be carried for nothing.
fn build(hir: &Hir) -> Option<DFA> {
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .utf8(false)
                .which_captures(thompson::WhichCaptures::None),
        )
        .build_from_hir(hir)
        .ok()?;
    DFA::builder().build_from_nfa(nfa).ok()
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
            (
                r"^Failed \S+ for (?:invalid user )?(?P<user>.*?) from <HOST>(?: port \d+)?(?: on \S+)?(?: ssh\d?)?$",
                "Failed password for invalid user a from b from 192.0.2.1 port 22 ssh2",
            ),
            (
                r"^Failed \S+ for (?:invalid user )?(?P<user>.*?) from <HOST>(?: port \d+)?(?: on \S+)?(?: ssh\d?)?$",
                "Failed password for root from 2001:db8::1 port 22 ssh2",
            ),
            (
                r"^Failed \S+ for (?:invalid user )?(?P<user>.*?) from <HOST>(?: port \d+)?$",
                "Failed password for invalid user  from 10.0.0.1",
            ),
            (
                r"^(?i)invalid user (?P<user>\S+) from <HOST>",
                "INVALID USER x from 10.1.1.1 trailing",
            ),
            (
                r"connect from \S+\[<HOST>\]:\d+",
                "postfix: connect from unknown[2001:db8::2]:25",
            ),
            // Backtracking into the host: the IPv6 branch eats the port, the chain fails.
            (r"^from <HOST>:\d+$", "from 2001:db8::1:2222"),
            (r"^from <HOST>:\d+$", "from 192.0.2.7:2222"),
            (
                r"^user (?P<user>\S+) repeated (?P<echo>\S+) from <HOST>",
                "user bob repeated bob from 192.0.2.9",
            ),
            (
                r"(?m:^)Failed \S+ for (?P<user>\S+) from <HOST> port \d+ ssh1: ruser .*$",
                "Failed none for x from 192.0.2.3 port 1 ssh1: ruser y",
            ),
            (r"^a(?P<user>.*) <HOST>$", "a b c 1.2.3.4 5.6.7.8"),
            (r"\bfrom\b <HOST>\b", "xfrom 1.1.1.1 from 2.2.2.2"),
            (r"^kex: (?:read: )?closed", "kex: read: closed"),
            (
                r"^a (?P<user>.*) from <HOST>",
                "a b from c from 10.0.0.1 from 10.0.0.2",
            ),
            (r"^a (?P<user>\S{2,3}) <HOST>", "a bcd 10.0.0.1"),
            (r"^a (?P<user>.{2,3}?)<HOST>", "a bcd 10.0.0.1"),
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

    /// In every built-in filter, a rule split into pieces reads its host by hand: the host
    /// group's body is recognised as `<HOST>`'s (not searched with a DFA of its own).
    #[test]
    fn built_in_rules_read_their_host_by_hand() {
        let mut split = 0;
        for (name, filter) in crate::filter::builtin::every_mode() {
            for rule in filter.rules.iter().filter(|r| r.host.is_some()) {
                let Some(locator) = rule.locator() else {
                    continue;
                };
                let hosts: Vec<&Piece> = locator
                    .pieces
                    .iter()
                    .filter(|p| p.group == Some(0))
                    .collect();
                if hosts.is_empty() {
                    continue;
                }
                split += 1;
                assert!(
                    hosts.iter().all(|p| p.host_body && p.regex.is_none()),
                    "{name}: {}",
                    rule.regex.as_str()
                );
            }
        }
        assert!(split > 50, "only {split} rules split");
    }

    /// A flag that changes the host's body (`(?U)`: lazy repetitions, a shorter address) keeps
    /// it searched; one that leaves it as it is (`(?i)`) does not.
    #[test]
    fn only_the_host_body_as_written_is_read_by_hand() {
        let host_piece = |pattern: &str| {
            let expanded = expand(pattern, HostRule::Required).unwrap();
            let locator = Locator::new(&expanded).unwrap();
            let piece = locator.pieces.iter().find(|p| p.group == Some(0)).unwrap();
            (piece.host_body, piece.regex.is_some())
        };
        assert_eq!(host_piece(r"^from <HOST> port \d+"), (true, false));
        assert_eq!(host_piece(r"^(?i)from <HOST> port \d+"), (true, false));
        assert_eq!(host_piece(r"^(?U)from <HOST> port \d+"), (false, true));
        let expanded = expand(r"^(?U)from <HOST>", HostRule::Required).unwrap();
        let text = "from 192.0.2.77";
        assert_eq!(
            by_captures(&expanded, text).unwrap().host,
            Some((5, 14)),
            "lazy: one digit"
        );
        assert_eq!(
            by_locator(&expanded, text),
            Some(by_captures(&expanded, text))
        );
    }

    #[test]
    fn the_ipv6_host_before_a_port_is_left_to_the_captures() {
        // The greedy host group must give back the port: only backtracking finds that.
        let expanded = expand(r"^from <HOST>:\d+$", HostRule::Required).unwrap();
        assert_eq!(by_locator(&expanded, "from 2001:db8::1:2222"), Some(None));
    }

    #[test]
    fn a_long_lazy_user_defers_to_the_captures() {
        // Each length of a lazy user where the text goes on with ` from` costs a search of the
        // rest: bounded, then the captures (a user name full of ` from `, chosen by an attacker).
        let expanded = expand(r"^u (?P<user>.*?) from <HOST>$", HostRule::Required).unwrap();
        let text = format!("u {}x from 10.0.0.1", "y from z ".repeat(100));
        assert_eq!(by_locator(&expanded, &text), Some(None));
        // Lengths the rest cannot start after are not tries: a long name without ` from ` is
        // located.
        let long = format!("u {}x from 10.0.0.1", "y".repeat(200));
        assert_eq!(
            by_locator(&expanded, &long),
            Some(by_captures(&expanded, &long))
        );
        let short = "u bob from 10.0.0.1";
        assert_eq!(
            by_locator(&expanded, short),
            Some(by_captures(&expanded, short))
        );
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

    /// Every rule of every built-in filter in every mode, on every line of the corpora under
    /// `tests/filters/` (each suffix after `": "` stands for a message): wherever the rule
    /// matches, the locator reports the captures' spans or defers to them.
    #[test]
    fn builtin_rules_locate_what_their_captures_capture_on_the_corpora() {
        use crate::filter::builtin;
        let corpora = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/filters");
        let mut texts = Vec::new();
        for entry in std::fs::read_dir(&corpora).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                texts.push(line.to_string());
                let mut rest = line;
                while let Some(at) = rest.find(": ") {
                    rest = &rest[at + 2..];
                    texts.push(rest.to_string());
                }
            }
        }
        let (mut located, mut deferred, mut anchored) = (0, 0, 0);
        for (name, filter) in builtin::every_mode() {
            for rule in &filter.rules {
                let Some(locator) = rule.locator() else {
                    continue;
                };
                let mut cache = locator.cache();
                for text in &texts {
                    let from_start = locator.locate_anchored(&mut cache, text.as_bytes());
                    let Some(caps) = rule.regex.captures(text.as_bytes()) else {
                        assert_eq!(from_start, None, "{name} {:?} on {text:?}", rule.regex);
                        continue;
                    };
                    let all = caps.get(0).unwrap();
                    let span = |slot: Option<usize>| {
                        slot.and_then(|i| caps.get(i)).map(|m| (m.start(), m.end()))
                    };
                    let want = Spans {
                        host: span(rule.host),
                        user: span(rule.user),
                        echo: span(rule.echo),
                    };
                    if let Some(got) = from_start {
                        assert_eq!(
                            got,
                            (want, all.end()),
                            "{name} {:?} on {text:?}",
                            rule.regex
                        );
                        anchored += 1;
                    }
                    match locator.locate(&mut cache, text.as_bytes(), all.start(), all.end()) {
                        Some(got) => {
                            assert_eq!(got, want, "{name} {:?} on {text:?}", rule.regex);
                            located += 1;
                        }
                        None => deferred += 1,
                    }
                }
            }
        }
        // The shortcut must be the common case on real lines, or it is not worth its code.
        assert!(
            located > 20 * deferred.max(1),
            "located {located}, deferred {deferred}"
        );
        // Most rules start with `^`: most lines are located without a search of the regex.
        assert!(
            anchored * 2 > located,
            "anchored {anchored}, located {located}"
        );
    }
}
