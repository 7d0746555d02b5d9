//! fail2ban's `DateDetector`: which template finds the date of a line, with its caching of the
//! last template and position, its distance heuristics and its template re-ordering.
//!
//! Receives: the filter's templates (from `datepattern`, or fail2ban's defaults) once, then log
//! lines with `now`.
//! Emits: the date's span in the line and the template that found it, then its time.
//! Never: shares hit counters between sources (fail2ban's are process-global; per source is what
//! `fail2ban-regex` and a one-jail server see).

use std::sync::{Arc, LazyLock};

use super::strptime::{Parsed, group_dict_to_time};
use super::template::{
    DateTemplate, LINE_BEGIN, LINE_END, TemplateError, TemplateKind, anchored,
    cached_default_templates, default_templates, pattern_key, unbound_pattern,
};
use super::zone::Zone;
use crate::fail2ban::python_re::{Flags, PythonMatch, PythonRegex};

static RE_DATE_PREMATCH: LazyLock<PythonRegex> = LazyLock::new(|| {
    PythonRegex::new(
        r"(?<!\\)\{DATE\}",
        Flags {
            ignore_case: true,
            ..Flags::default()
        },
    )
    .expect("invariant: compiles")
});

/// The templates of a filter, resolved from its `datepattern` lines.
#[derive(Debug, Clone)]
pub struct Templates {
    pub list: Vec<Arc<DateTemplate>>,
    /// No `datepattern`: the defaults are used (added lazily, as fail2ban does).
    pub defaults: bool,
}

impl Templates {
    /// `setDatePattern(pattern)` (`None`: fail2ban's default detector).
    pub fn from_datepattern(
        datepattern: Option<&str>,
        year_window: &str,
    ) -> Result<Self, TemplateError> {
        let Some(datepattern) = datepattern else {
            return Ok(Templates {
                list: cached_default_templates(year_window),
                defaults: true,
            });
        };
        let mut list: Vec<Arc<DateTemplate>> = Vec::new();
        let push = |list: &mut Vec<Arc<DateTemplate>>,
                    template: Arc<DateTemplate>,
                    ignore_duplicate: bool|
         -> Result<(), TemplateError> {
            if list.iter().any(|existing| existing.name == template.name) {
                if ignore_duplicate {
                    return Ok(());
                }
                return Err(TemplateError::Format {
                    pattern: format!("there is already a template with name {}", template.name),
                });
            }
            list.push(template);
            Ok(())
        };
        for pattern in datepattern
            .split('\n')
            .map(str::trim)
            .filter(|line| !line.is_empty())
        {
            let key = pattern_key(pattern);
            if key == "{^LN-BEG}" || key == "{DEFAULT}" {
                let ignore = !list.is_empty();
                for template in cached_default_templates(year_window) {
                    if key == "{^LN-BEG}" && template.flags & LINE_BEGIN == 0 {
                        continue;
                    }
                    push(&mut list, template, ignore)?;
                }
            } else if key.contains("{DATE}") {
                let ignore = !list.is_empty();
                for template in default_templates(year_window) {
                    let wrap = |text: &str| {
                        RE_DATE_PREMATCH.replace_with(pattern, 0, |_| unbound_pattern(text))
                    };
                    let copy = anchored(&template, &wrap, year_window)?;
                    push(&mut list, Arc::new(copy), ignore)?;
                }
            } else if key == "{NONE}" {
                push(
                    &mut list,
                    Arc::new(DateTemplate::from_key("{UNB}^", &key, year_window)?),
                    false,
                )?;
            } else {
                push(
                    &mut list,
                    Arc::new(DateTemplate::from_key(pattern, &key, year_window)?),
                    false,
                )?;
            }
        }
        Ok(Templates {
            list,
            defaults: false,
        })
    }
}

#[derive(Debug, Clone)]
struct Entry {
    template: Arc<DateTemplate>,
    /// Wins of this template in this detector.
    hits: u64,
    /// Successful searches of this template (fail2ban's `template.hits`).
    searches: u64,
    last_used: f64,
    distance: usize,
}

impl Entry {
    fn weight(&self) -> f64 {
        self.hits as f64 * self.template.weight / (self.distance.max(1) as f64)
    }
}

/// Boundary characters around the last date (Python's one-character slices; `None` = empty).
#[derive(Debug, Clone, Copy)]
struct Boundary {
    position: usize,
    before: Option<char>,
    after: Option<char>,
}

/// Where a date was found.
#[derive(Debug, Clone)]
pub struct DateMatch<'l> {
    pub found: PythonMatch<'l>,
    pub template: Arc<DateTemplate>,
}

/// The per-source detector state.
#[derive(Debug, Clone)]
pub struct DateDetector {
    entries: Vec<Entry>,
    unused_time: f64,
    last_position: Boundary,
    last_end: Boundary,
    last_index: usize,
    first_unused: usize,
}

fn character_index_to_byte(line: &str, index: usize) -> usize {
    if line.is_ascii() {
        return index.min(line.len());
    }
    line.char_indices()
        .nth(index)
        .map_or(line.len(), |(byte, _)| byte)
}

fn byte_to_character_index(line: &str, byte: usize) -> usize {
    if line.is_ascii() {
        return byte;
    }
    line[..byte].chars().count()
}

/// `line[index:index+1]` in characters.
fn character_at(line: &str, index: usize) -> Option<char> {
    if line.is_ascii() {
        return line.as_bytes().get(index).map(|byte| *byte as char);
    }
    line.chars().nth(index)
}

/// `line[index-1:index]` in characters (empty at 0).
fn character_before(line: &str, index: usize) -> Option<char> {
    if index == 0 {
        None
    } else {
        character_at(line, index - 1)
    }
}

fn is_alphanumeric(character: Option<char>) -> bool {
    character.is_some_and(char::is_alphanumeric)
}

impl DateDetector {
    pub fn new(templates: &Templates) -> Self {
        DateDetector {
            entries: templates
                .list
                .iter()
                .map(|template| Entry {
                    template: Arc::clone(template),
                    hits: 0,
                    searches: 0,
                    last_used: 0.0,
                    distance: 0x7fff_ffff,
                })
                .collect(),
            unused_time: 300.0,
            last_position: Boundary {
                position: 1,
                before: None,
                after: None,
            },
            last_end: Boundary {
                position: 0x7fff_ffff,
                before: None,
                after: None,
            },
            last_index: usize::MAX,
            first_unused: 0,
        }
    }

    fn search<'l>(
        &mut self,
        index: usize,
        line: &'l str,
        range: Option<(usize, usize)>,
    ) -> Option<PythonMatch<'l>> {
        let entry = &mut self.entries[index];
        let found = match range {
            Some((start, end)) => entry.template.regex.search_range(
                line,
                character_index_to_byte(line, start),
                character_index_to_byte(line, end),
            ),
            None => entry.template.regex.search(line),
        };
        if found.is_some() {
            entry.searches += 1;
        }
        found
    }

    /// `matchTime(line)`: the winning template's match; `now` stands for fail2ban's wall clock.
    pub fn match_time<'l>(&mut self, line: &'l str, now: f64) -> Option<DateMatch<'l>> {
        let count = self.entries.len();
        let mut found: Option<(PythonMatch<'l>, usize, usize, usize)> = None;
        let mut ignore_by_search = usize::MAX;
        let mut winner: Option<(PythonMatch<'l>, usize)> = None;
        let index = self.last_index;
        if index < count {
            let flags = self.entries[index].template.flags;
            let attempt = if flags & (LINE_BEGIN | LINE_END) != 0 {
                ignore_by_search = index;
                self.search(index, line, None)
            } else {
                let (distance, end) = (self.last_position.position, self.last_end.position);
                let begin_ok = character_before(line, distance) == self.last_position.before
                    || (character_at(line, distance) == self.last_position.after
                        && !is_alphanumeric(self.last_position.after));
                let end_ok = character_at(line, end) == self.last_end.after
                    || (character_before(line, end) == self.last_end.before
                        && !is_alphanumeric(self.last_end.before));
                if begin_ok && end_ok {
                    self.search(index, line, Some((distance, end)))
                } else {
                    ignore_by_search = index;
                    self.search(index, line, None)
                }
            };
            if let Some(attempt) = attempt {
                let distance = byte_to_character_index(line, attempt.start());
                let end = byte_to_character_index(line, attempt.end());
                if count == 1
                    || flags & (LINE_BEGIN | LINE_END) != 0
                    || (distance == self.last_position.position && end == self.last_end.position)
                {
                    winner = Some((attempt, index));
                } else {
                    found = Some((attempt, distance, end, index));
                }
            }
        }
        if winner.is_none() {
            let mut index = 0;
            while index < count {
                if index == ignore_by_search {
                    index += 1;
                    continue;
                }
                let Some(attempt) = self.search(index, line, None) else {
                    index += 1;
                    continue;
                };
                let distance = byte_to_character_index(line, attempt.start());
                let end = byte_to_character_index(line, attempt.end());
                let entry = &self.entries[index];
                if index + 1 >= count || entry.template.flags & (LINE_BEGIN | LINE_END) != 0 {
                    winner = Some((attempt, index));
                    break;
                }
                if distance == 0 && entry.hits > 0 && self.entries[index + 1].searches == 0 {
                    winner = Some((attempt, index));
                    break;
                }
                if distance > entry.distance || distance > self.last_position.position {
                    if found.as_ref().is_none_or(|best| distance < best.1) {
                        found = Some((attempt, distance, end, index));
                    }
                    index += 1;
                    continue;
                }
                winner = Some((attempt, index));
                break;
            }
            if winner.is_none()
                && let Some((attempt, _, _, index)) = found
            {
                winner = Some((attempt, index));
            }
        }
        let (attempt, mut index) = winner?;
        let distance = byte_to_character_index(line, attempt.start());
        let end = byte_to_character_index(line, attempt.end());
        let entry = &mut self.entries[index];
        entry.hits += 1;
        entry.last_used = now;
        entry.distance = distance;
        if self.first_unused == index {
            self.first_unused += 1;
        }
        self.last_position = Boundary {
            position: distance,
            before: character_before(line, distance),
            after: character_at(line, distance),
        };
        self.last_end = Boundary {
            position: end,
            before: if end == 0 {
                line.chars().last()
            } else {
                character_at(line, end - 1)
            },
            after: character_at(line, end),
        };
        if index != 0 && index != self.last_index {
            index = self.reorder(index);
        }
        self.last_index = index;
        let template = Arc::clone(&self.entries[index].template);
        Some(DateMatch {
            found: attempt,
            template,
        })
    }

    /// `_reorderTemplate(num)`: bubbles a winning template up.
    fn reorder(&mut self, number: usize) -> usize {
        let entry = &self.entries[number];
        let unused_before = entry.last_used - self.unused_time;
        let weight = entry.weight();
        let mut position = if self.first_unused < number {
            self.first_unused
        } else {
            number / 2
        };
        let movable = |entries: &[Entry], position: usize| {
            weight > entries[position].weight() || unused_before > entries[position].last_used
        };
        if !movable(&self.entries, position) {
            if position == number - 1 {
                return number;
            }
            position = number - 1;
            if !movable(&self.entries, position) {
                return number;
            }
        }
        let moved = self.entries.remove(number);
        self.entries.insert(position, moved);
        while self.first_unused < self.entries.len() && self.entries[self.first_unused].hits > 0 {
            self.first_unused += 1;
        }
        position
    }
}

/// `getDate` of a match: the Unix time.
pub fn date_of(date: &DateMatch<'_>, default_offset: Option<i32>, now: i64, zone: &Zone) -> Parsed {
    let found = &date.found;
    match &date.template.kind {
        TemplateKind::Pattern => {
            let groups: Vec<(&str, Option<&str>)> = date
                .template
                .regex
                .group_names()
                .map(|(name, index)| (name, found.group(index)))
                .collect();
            group_dict_to_time(&groups, default_offset, now, zone)
        }
        TemplateKind::Epoch { long, group } => {
            let Some(text) = found.group(*group) else {
                return Parsed::Invalid;
            };
            let Ok(mut value) = text.parse::<f64>() else {
                return Parsed::Invalid;
            };
            if *long && text.len() >= 13 {
                value /= if text.len() >= 16 && !text.contains('.') {
                    1_000_000.0
                } else {
                    1000.0
                };
            }
            Parsed::Time(value.floor() as i64)
        }
        TemplateKind::Tai64n => {
            let text = found.group(1).unwrap_or_default();
            match text
                .get(2..17)
                .and_then(|hex| i64::from_str_radix(hex, 16).ok())
            {
                Some(seconds) => Parsed::Time(seconds),
                None => Parsed::Invalid,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_syslog_dates_and_caches_the_template() {
        let window = "(?:200|201|202)";
        let templates = Templates::from_datepattern(Some("{^LN-BEG}"), window).unwrap();
        assert_eq!(templates.list.len(), 17);
        let mut detector = DateDetector::new(&templates);
        for _ in 0..3 {
            let found = detector
                .match_time("Jan 23 21:59:59 host sshd[1]: x", 0.0)
                .unwrap();
            assert_eq!(found.found.group(1), Some("Jan 23 21:59:59"));
        }
        let defaults = Templates::from_datepattern(None, window).unwrap();
        let mut detector = DateDetector::new(&defaults);
        let found = detector
            .match_time("[Sun Jul 24 11:04:19 2005] x", 0.0)
            .unwrap();
        assert_eq!(found.found.group(1), Some("Sun Jul 24 11:04:19 2005"));
        let premarked = Templates::from_datepattern(Some(r"^<\d+>\d+\s+{DATE}"), window).unwrap();
        assert_eq!(premarked_names(&premarked)[7], r"^<\d+>\d+\s+Epoch");
    }

    fn premarked_names(templates: &Templates) -> Vec<String> {
        templates
            .list
            .iter()
            .map(|template| template.name.clone())
            .collect()
    }
}
