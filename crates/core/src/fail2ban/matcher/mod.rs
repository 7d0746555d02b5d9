//! fail2ban's `Filter.processLine` / `findFailure`: a stateful matcher per log source.
//!
//! Receives: log lines (or journal entries already formatted) one by one, with `now` and the
//! log's [`Zone`].
//! Emits: [`Found`] failures exactly as fail2ban reports them, including multi-line results
//! attributed to earlier lines (`maxlines` buffers, `<F-MLFID>` sessions).
//! Never: counts, bans or ignores addresses (that is the tracker), or resolves host names.

mod buffer;
mod failure;
pub mod journal;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::NaiveDateTime;

use crate::fail2ban::address::{Family, parse_address};
use crate::fail2ban::date::detector::date_of;
use crate::fail2ban::date::strptime::Parsed;
use crate::fail2ban::date::{DateDetector, Zone};
use crate::fail2ban::filter::Fail2banFilter;
use crate::fail2ban::filter::regex::FilterRegex;
use buffer::{BufferedLine, Searched, lines_buffer, search};
use failure::{FailData, SessionCache, merge_failure};

/// One failure, as fail2ban would put it in a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The address (`None` when the id is not an address, e.g. an `<F-ID>` or a host name).
    pub host: Option<IpAddr>,
    /// Prefix length when the regex captured a `<CIDR>`/`<SUBNET>`.
    pub prefix: Option<u8>,
    /// The failure id as text (the `<HOST>`/`<ADDR>`/`<F-ID>` capture).
    pub raw: String,
    /// Unix time of the failure (`now` when the line had no date).
    pub time: i64,
    /// The same time in the log's zone, as written in the log.
    pub local_time: NaiveDateTime,
    pub user: Option<String>,
    /// All users of a multi-line session.
    pub users: Vec<String>,
    /// fail2ban's `nofail`: a match that is not a failure (it is never counted).
    pub nofail: bool,
    /// The line number (1-based, per matcher) that completed the failure.
    pub line: u64,
    /// The lines of the failure (its `matches`; their count is fail2ban's attempts).
    pub lines: Vec<u64>,
    /// Index of the failregex that matched.
    pub failregex: usize,
}

/// The stateful matcher of one log source.
#[derive(Debug, Clone)]
pub struct Fail2banMatcher {
    filter: Arc<Fail2banFilter>,
    detector: DateDetector,
    buffer: Vec<BufferedLine>,
    last_time_text: Option<String>,
    last_date: Option<i64>,
    sessions: SessionCache,
    line_number: u64,
    /// Lines dropped because fail2ban would raise on them (e.g. an unknown zone name).
    pub dropped: u64,
}

impl Fail2banMatcher {
    pub fn new(filter: Arc<Fail2banFilter>) -> Self {
        Fail2banMatcher {
            detector: DateDetector::new(&filter.templates),
            filter,
            buffer: Vec::new(),
            last_time_text: None,
            last_date: None,
            sessions: SessionCache::default(),
            line_number: 0,
            dropped: 0,
        }
    }

    /// The filter this matcher runs.
    pub fn filter(&self) -> &Fail2banFilter {
        &self.filter
    }

    /// Lines fed so far.
    pub fn lines_read(&self) -> u64 {
        self.line_number
    }

    /// Processes one log line (trailing `\r`/`\n` are removed).
    pub fn feed(&mut self, line: &str, now: i64, zone: &Zone) -> Vec<Found> {
        self.line_number += 1;
        let line = line.trim_end_matches(['\r', '\n']);
        let text: Arc<str> = Arc::from(line);
        let mut date: Option<i64> = None;
        let mut no_date = false;
        let mut span = (0, 0);
        let mut has_date_match = false;
        if let Some(found) = self.detector.match_time(&text, now as f64) {
            has_date_match = true;
            let (start, end) = found.found.span(1).unwrap_or((0, 0));
            span = (start, end);
            if start < end {
                match date_of(&found, self.filter.default_offset, now, zone) {
                    Parsed::Time(time) => {
                        date = Some(time);
                        self.last_time_text = Some(text[start..end].to_string());
                        self.last_date = Some(time);
                    }
                    Parsed::Invalid => {}
                    Parsed::Abort => {
                        self.dropped += 1;
                        return Vec::new();
                    }
                }
            } else if self.last_date.is_some_and(|last| last > now - 60) {
                span = (0, 0);
                date = self.last_date;
            } else {
                date = Some(now);
            }
        }
        if !has_date_match {
            span = (0, 0);
        }
        if date.is_none() {
            no_date = true;
            if self.last_date.is_some_and(|last| last > now - 60) {
                span = (0, 0);
                date = self.last_date;
            }
        }
        let _ = no_date;
        let line = BufferedLine {
            text,
            date: span,
            number: self.line_number,
        };
        self.find_failure(line, date, now, zone)
    }

    /// Processes a journal entry formatted as fail2ban's systemd backend does
    /// ([`journal::format_entry`]) with the entry's own time.
    pub fn feed_journal(&mut self, line: &str, time: i64, now: i64, zone: &Zone) -> Vec<Found> {
        self.line_number += 1;
        self.last_time_text = None;
        self.last_date = Some(time);
        let line = BufferedLine {
            text: Arc::from(line.replace('\n', "\\n")),
            date: (0, 0),
            number: self.line_number,
        };
        self.find_failure(line, Some(time), now, zone)
    }

    fn ignored(
        &mut self,
        buffer: &str,
        original: &[BufferedLine],
        failure: Option<&Searched>,
    ) -> bool {
        let multi_line = self.filter.maxlines > 1;
        let (buffer, original): (String, Vec<BufferedLine>) = match failure {
            Some(searched) if multi_line => {
                (lines_buffer(&searched.matched), searched.matched.clone())
            }
            _ => (buffer.to_string(), original.to_vec()),
        };
        for regex in &self.filter.ignoreregex {
            if search(regex, &buffer, &original).is_some() {
                if let Some(searched) = failure {
                    self.buffer = searched.unmatched.clone();
                }
                return true;
            }
        }
        false
    }

    fn find_failure(
        &mut self,
        line: BufferedLine,
        date: Option<i64>,
        now: i64,
        zone: &Zone,
    ) -> Vec<Found> {
        let filter = Arc::clone(&self.filter);
        let current = line.number;
        if filter.maxlines > 1 {
            self.buffer.push(line);
            let excess = self.buffer.len().saturating_sub(filter.maxlines);
            self.buffer.drain(..excess);
        } else {
            self.buffer = vec![line];
        }
        let original = self.buffer.clone();
        let mut buffer = Some(lines_buffer(&original));
        if !filter.ignoreregex.is_empty()
            && filter.ignoreregex.len() + 2 < filter.failregex.len()
            && self.ignored(buffer.as_deref().unwrap_or_default(), &original, None)
        {
            return Vec::new();
        }
        let mut prefix_groups: Option<FailData> = None;
        if let Some(prefix) = &filter.prefregex {
            let Some(found) = search(prefix, buffer.as_deref().unwrap_or_default(), &original)
            else {
                return Vec::new();
            };
            let mut groups = group_data(prefix, &found);
            if let Some(content) = groups.pop("content").filter(|content| !content.is_empty()) {
                self.buffer = vec![BufferedLine {
                    text: Arc::from(content.as_str()),
                    date: (0, 0),
                    number: current,
                }];
                buffer = None;
            }
            prefix_groups = Some(groups);
        }
        for (index, regex) in filter.failregex.iter().enumerate() {
            let text = buffer
                .get_or_insert_with(|| lines_buffer(&self.buffer))
                .clone();
            let Some(searched) = search(regex, &text, &original) else {
                continue;
            };
            let mut fail = group_data(regex, &searched);
            if !filter.ignoreregex.is_empty() && self.ignored(&text, &original, Some(&searched)) {
                break;
            }
            self.buffer = searched.unmatched.clone();
            buffer = None;
            if let Some(prefix) = &prefix_groups {
                let mut merged = prefix.clone();
                merged.update_all(&fail);
                fail = merged;
            }
            let matched: Vec<u64> = searched.matched.iter().map(|line| line.number).collect();
            let session = fail.get("mlfid").map(str::to_string);
            let mut cached = false;
            if let Some(session) = &session {
                let (merged, in_cache) =
                    merge_failure(&mut self.sessions, session, fail, &matched, now as f64);
                fail = merged;
                cached = in_cache;
                if fail.truthy("nofail") {
                    return Vec::new();
                }
            } else {
                fail.matches
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&matched);
            }
            let failure_id = fail.get("fid").map(str::to_string);
            let mut cidr = fail.get("cidr").and_then(|cidr| cidr.parse::<u32>().ok());
            let (identifier, family) = if let Some(ip) = fail.get("ip4") {
                (Some(ip.to_string()), Family::V4)
            } else if let Some(ip) = fail.get("ip6") {
                (Some(ip.to_string()), Family::V6)
            } else if let Some(dns) = fail.get("dns") {
                (Some(dns.to_string()), Family::Any)
            } else {
                if failure_id.is_none() && session.is_none() {
                    // fail2ban: "No group found" (logged), then the next failregex is tried.
                    continue;
                }
                cidr = None;
                (failure_id.clone(), Family::Any)
            };
            let Some(identifier) = identifier else {
                fail.pending = true;
                if cached && let Some(session) = &session {
                    self.sessions.replace(session, fail);
                }
                return Vec::new();
            };
            let address = parse_address(&identifier, family, cidr);
            if family == Family::Any
                && fail.get("dns") == Some(identifier.as_str())
                && address.is_none()
            {
                // usedns = no: a host name yields no address and no failure.
                return Vec::new();
            }
            let raw = match &failure_id {
                Some(id) if *id != identifier => id.clone(),
                _ => identifier.clone(),
            };
            let time = date.unwrap_or(now);
            let users: Vec<String> = fail.users.iter().flatten().cloned().collect();
            return vec![Found {
                host: address.map(|address| address.ip),
                prefix: cidr.and(address.map(|address| address.prefix)),
                raw,
                time,
                local_time: zone.to_local(time),
                user: fail.get("user").map(str::to_string),
                users,
                nofail: fail.truthy("nofail"),
                line: current,
                lines: fail.matches.clone().unwrap_or_default(),
                failregex: index,
            }];
        }
        Vec::new()
    }
}

/// `getGroups()`: the group dict with `F-ALT_*` and `F-TUPLE_*` folded in.
fn group_data(regex: &FilterRegex, searched: &Searched) -> FailData {
    let mut data = FailData {
        groups: Vec::with_capacity(regex.names.len() + 4),
        ..FailData::default()
    };
    for (name, index) in &regex.names {
        data.groups.push((
            Arc::from(name.as_str()),
            searched.groups.get(*index).cloned().flatten(),
        ));
    }
    for (index, target) in &regex.alternates {
        let value = searched.groups.get(*index).cloned().flatten();
        if value.as_deref().is_some_and(|value| !value.is_empty()) && !data.truthy(target) {
            data.set(target, value);
        }
    }
    let mut tuples: Vec<(String, Vec<Option<String>>)> = Vec::new();
    for (index, target) in &regex.tuples {
        let value = searched.groups.get(*index).cloned().flatten();
        match tuples.iter_mut().find(|(name, _)| name == target) {
            Some((_, values)) => values.push(value),
            None => tuples.push((
                target.clone(),
                vec![data.get(target).map(str::to_string), value],
            )),
        }
    }
    for (target, values) in tuples {
        let parts: Vec<String> = values
            .iter()
            .map(|value| {
                value
                    .as_ref()
                    .map_or("None".to_string(), |value| format!("'{value}'"))
            })
            .collect();
        data.set(&target, Some(format!("({})", parts.join(", "))));
    }
    data
}
